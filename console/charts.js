// The Charts view: the counters the location's Durable Object keeps (GET metrics), per minute for
// the last hour or per hour for the last 24, drawn with uPlot (bundled at build time). Each chart
// also says its totals in words, for screen readers and for a quick read.

import uPlot from "./vendor/uPlot.esm.js";
import { api, describe } from "./api.js";
import { $ } from "./ui.js";

const CHARTS = [
  {
    id: "webhooks",
    series: [
      ["accepted", "Accepted", "#2563eb"],
      ["applied", "Applied", "#16a34a"],
      ["retried", "Retried", "#d97706"],
      ["waiting", "Waiting", "#7c3aed"],
      ["parked", "Parked", "#dc2626"],
      ["skipped", "Skipped", "#6b7280"],
    ],
  },
  { id: "api", series: [["api_calls", "Calls", "#0891b2"], ["api_429", "429s", "#dc2626"]] },
  { id: "latency", series: [["p50_ms", "p50", "#16a34a"], ["p99_ms", "p99", "#dc2626"]], seconds: true },
];
const plots = new Map();

export function setUp() {
  for (const radio of document.querySelectorAll('input[name="resolution"]')) radio.addEventListener("change", load);
  addEventListener("resize", () => {
    for (const [id, plot] of plots) plot.setSize(size($(`#chart-${id}`)));
  });
}

export async function load() {
  const answer = await api("GET", "metrics");
  if (!answer.ok) {
    $("#chart-webhooks-summary").textContent = describe(answer);
    return;
  }
  const resolution = document.querySelector('input[name="resolution"]:checked').value;
  const data = answer.json[resolution];
  for (const chart of CHARTS) draw(chart, data, resolution);
}

/** Another connection is chosen: its charts are drawn afresh. */
export function reset() {
  for (const plot of plots.values()) plot.destroy();
  plots.clear();
  for (const chart of CHARTS) $(`#chart-${chart.id}-summary`).textContent = "";
}

function draw(chart, data, resolution) {
  const target = $(`#chart-${chart.id}`);
  const values = chart.series.map(([key]) => data[key].map((v) => (v == null ? null : chart.seconds ? v / 1000 : v)));
  const columns = [data.start.map((ms) => ms / 1000), ...values];
  plots.get(chart.id)?.destroy();
  const options = {
    ...size(target),
    series: [{}, ...chart.series.map(([, label, stroke]) => ({ label, stroke, width: 2, spanGaps: false }))],
    axes: [{}, { label: chart.seconds ? "s" : resolution === "minutes" ? "per minute" : "per hour" }],
    scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    legend: { live: false },
  };
  plots.set(chart.id, new uPlot(options, columns, target));
  $(`#chart-${chart.id}-summary`).textContent = summary(chart, values, resolution);
}

function size(target) {
  const width = Math.max(280, Math.min(target.parentElement.clientWidth - 8, 1200));
  return { width, height: width < 500 ? 180 : 220 };
}

/** "In the last hour: 12 accepted, 10 applied, …" or the worst percentiles for latency. */
function summary(chart, values, resolution) {
  const span = resolution === "minutes" ? "In the last hour" : "In the last 24 hours";
  const parts = chart.series.map(([, label], i) => {
    const known = values[i].filter((v) => v != null);
    if (chart.seconds) return `${label} at most ${known.length ? Math.max(...known) : "—"} s`;
    return `${known.reduce((a, b) => a + b, 0)} ${label.toLowerCase()}`;
  });
  return `${span}: ${parts.join(", ")}.`;
}
