// The Imports view: the chosen connection's imports of a SightMill export (POST /admin/imports).
// Choose a file (CSV of contacts or NDJSON of webhook-shaped lines; the format is guessed from its
// name and can be changed), dry-run its first rows (the decisions and the exact requests, nothing
// stored), or import it. The import shown has a progress bar (done / total) with its figures
// (created, updated, unchanged, skipped, failed, calls, ETA), read again every 2 s while it runs;
// it can be paused, resumed and cancelled, and its failed rows downloaded as CSV (read with the
// operator key as a header, like every call: the key never goes into a link). Below, the
// connection's recent imports; one opened is the one shown. Every refusal's message is shown.

import { api, describe, download } from "./api.js";
import { $, confirm, duration, h, when } from "./ui.js";

/** The rows a dry run shows. */
const DRY_RUN_ROWS = 5;
/** How often the import shown is read again while it runs, and while it waits for tomorrow. */
const POLL_MS = 2000;
const WAITING_POLL_MS = 60_000;
/** A file's format from its name; the Content-Type that names it. */
const FORMATS = {
  csv: { extensions: [".csv"], type: "text/csv" },
  ndjson: { extensions: [".ndjson", ".jsonl"], type: "application/x-ndjson" },
};
const STATES = {
  running: "running",
  paused: "paused",
  cancelled: "cancelled",
  done: "finished",
  stopped_for_the_day: "stopped for the day (the API's daily allowance is low; it goes on tomorrow)",
};
const ENDED = new Set(["done", "cancelled"]);

let shownId = null; // the import in the progress panel
let timer = null;
let epoch = 0; // bumped when another connection is chosen: answers for the last one are dropped

export function setUp() {
  $("#import-file").addEventListener("change", guessFormat);
  $("#import-form").addEventListener("submit", (event) => {
    event.preventDefault();
    start();
  });
  $("#import-dry-run").addEventListener("click", dryRun);
  $("#import-pause").addEventListener("click", () => act("pause"));
  $("#import-resume").addEventListener("click", () => act("resume"));
  $("#import-cancel").addEventListener("click", cancel);
  $("#import-failed").addEventListener("click", failedRows);
}

/** Reads the connection's imports; shows the newest one unless another was opened. */
export async function load() {
  const mine = epoch;
  const answer = await api("GET", "imports");
  if (mine !== epoch) return;
  const body = $("#import-table tbody");
  if (!answer.ok) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "error", text: describe(answer) })));
    return;
  }
  const imports = answer.json.imports ?? [];
  body.replaceChildren(...(imports.length ? imports.map(row) : [h("tr", {}, h("td", { colspan: 6, text: "No import yet." }))]));
  const shown = imports.find((p) => p.id === shownId) ?? imports[0];
  if (shown) show(shown);
  else hideProgress();
}

/** Another connection is chosen: nothing of the last one's imports stays, and polling stops. */
export function reset() {
  epoch += 1;
  stopPolling();
  shownId = null;
  hideProgress();
  result("");
  $("#import-dry-run-output").hidden = true;
  $("#import-table tbody").replaceChildren();
}

function result(text, error = false) {
  const element = $("#import-result");
  element.textContent = text;
  element.classList.toggle("error", error);
}

/** The format the file's name (or, failing that, its type) says; null when neither does. */
function formatOf(file) {
  const name = file.name.toLowerCase();
  for (const [format, { extensions, type }] of Object.entries(FORMATS)) {
    if (extensions.some((extension) => name.endsWith(extension)) || file.type === type) return format;
  }
  return null;
}

function guessFormat() {
  $("#import-dry-run-output").hidden = true; // it was about the last file
  const file = chosenFile();
  if (!file) return;
  const format = formatOf(file);
  if (format) {
    $("#import-format").value = format;
    result(`${file.name}: ${format === "csv" ? "CSV of contacts" : "NDJSON (one webhook-shaped object a line)"}, ${size(file.size)}.`);
  } else {
    result(`${file.name}: the format is not clear from its name (.csv, .ndjson or .jsonl); choose it.`);
  }
}

const chosenFile = () => $("#import-file").files?.[0] ?? null;

function size(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${bytes} bytes`;
}

/** The file and its format, or null (and says why) when none is chosen. */
function upload() {
  const file = chosenFile();
  if (!file) {
    result("Choose a file first.", true);
    $("#import-file").focus();
    return null;
  }
  const format = $("#import-format").value;
  return { file, format, type: FORMATS[format].type };
}

async function dryRun() {
  const chosen = upload();
  if (!chosen) return;
  const mine = epoch;
  const query = { format: chosen.format, dry_run: DRY_RUN_ROWS };
  const answer = await api("POST", "imports", { query, body: chosen.file, type: chosen.type });
  if (mine !== epoch) return;
  if (!answer.ok) {
    $("#import-dry-run-output").hidden = true;
    return result(`Dry run refused: ${describe(answer)}`, true);
  }
  const { rows = [], bad = [] } = answer.json;
  result(`Dry run of the first ${rows.length + bad.length} row(s) of ${chosen.file.name}: nothing was stored or sent.`);
  $("#import-dry-run-rows").replaceChildren(
    ...(rows.length ? rows.map(dryRunRow) : [h("tr", {}, h("td", { colspan: 4, text: "No row to apply." }))]),
  );
  $("#import-dry-run-bad").replaceChildren(...bad.map((b) => h("li", { text: `line ${b.line}: ${b.reason}` })));
  $("#import-dry-run-bad-title").hidden = !bad.length;
  $("#import-dry-run-output").hidden = false;
  $("#import-dry-run-title").focus();
}

function dryRunRow(r) {
  const requests = r.requests?.length
    ? h("pre", { text: r.requests.map((request) => JSON.stringify(request, null, 2)).join("\n") })
    : h("span", { class: "hint", text: "no request" });
  return h(
    "tr",
    { "data-line": r.line },
    h("td", { text: String(r.line) }),
    h("td", { text: r.decision }),
    h("td", { class: "reason", text: r.reason ?? "" }),
    h("td", {}, requests),
  );
}

async function start() {
  const chosen = upload();
  if (!chosen) return;
  const mine = epoch;
  const button = $("#import-start");
  button.disabled = true;
  result(`Uploading ${chosen.file.name} (${size(chosen.file.size)})…`);
  const answer = await api("POST", "imports", { query: { format: chosen.format }, body: chosen.file, type: chosen.type });
  button.disabled = false;
  if (mine !== epoch) return;
  if (!answer.ok) return result(`Not imported: ${describe(answer)}`, true);
  const progress = answer.json.import;
  result(`Import ${progress.id} started: ${progress.total} row(s) stored; live webhooks go first, the import takes what is left of the rate limit.`);
  $("#import-form").reset();
  shownId = progress.id;
  show(progress);
  await load();
}

function row(p) {
  return h(
    "tr",
    { "data-id": p.id, "aria-current": p.id === shownId ? "true" : false },
    h("td", {}, h("button", { type: "button", class: "link", text: p.id, "aria-label": `Show import ${p.id}`, onclick: () => open(p.id) })),
    h("td", { text: p.format }),
    h("td", { text: p.state.replaceAll("_", " ") }),
    h("td", { text: `${p.done} / ${p.total}` }),
    h("td", { text: p.failed ? String(p.failed) : "0" }),
    h("td", { text: when(p.started_at ? Date.parse(p.started_at) : null) }),
  );
}

async function open(id) {
  const mine = epoch;
  const answer = await api("GET", `imports/${encodeURIComponent(id)}`);
  if (mine !== epoch) return;
  if (!answer.ok) return result(describe(answer), true);
  shownId = id;
  show(progressIn(answer.json));
  for (const tr of document.querySelectorAll("#import-table tbody tr")) {
    if (tr.dataset.id === id) tr.setAttribute("aria-current", "true");
    else tr.removeAttribute("aria-current");
  }
  $("#import-progress-title").focus();
}

/** Shows import `p` in the progress panel, and polls it while it runs. */
function show(p) {
  if (p.id !== shownId || $("#import-progress-panel").hidden) $("#import-failed-result").textContent = "";
  shownId = p.id;
  $("#import-progress-panel").hidden = false;
  $("#import-progress-title").textContent = `Import ${p.id} (${p.format})`;
  $("#import-state").textContent = STATES[p.state] ?? p.state;
  const bar = $("#import-progress");
  bar.max = Math.max(1, p.total);
  bar.value = p.done;
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", String(p.total));
  bar.setAttribute("aria-valuenow", String(p.done));
  const percent = p.total ? Math.floor((p.done / p.total) * 100) : 100;
  bar.setAttribute("aria-valuetext", `${p.done} of ${p.total} rows (${percent}%)`);
  $("#import-count").textContent = `${p.done} / ${p.total} rows (${percent}%)`;
  const pairs = [
    ["Created", p.created],
    ["Updated", p.updated],
    ["Unchanged", p.unchanged],
    ["Skipped (a newer version was already applied)", p.skipped],
    ["Failed", p.failed],
    ["Contacts API calls", p.calls],
    ["Time left", ENDED.has(p.state) ? "—" : p.eta_secs == null ? "unknown" : duration(p.eta_secs)],
    ["Started", when(p.started_at ? Date.parse(p.started_at) : null)],
    ["Finished", when(p.finished_at ? Date.parse(p.finished_at) : null)],
  ];
  $("#import-figures").replaceChildren(...pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { "data-figure": k.split(" ")[0].toLowerCase(), text: String(v ?? "—") })]));
  $("#import-pause").disabled = !(p.state === "running" || p.state === "stopped_for_the_day");
  $("#import-resume").disabled = p.state !== "paused";
  $("#import-cancel").disabled = ENDED.has(p.state);
  $("#import-failed").disabled = !p.failed;
  poll(p);
}

/** An import's progress from GET /admin/imports/{id}: `{ import: P }` (as pause/resume/cancel answer), or P. */
const progressIn = (json) => json?.import ?? json;

function hideProgress() {
  $("#import-progress-panel").hidden = true;
}

/** Reads the import shown again in 2 s while it runs (a minute while it waits for tomorrow). */
function poll(p) {
  stopPolling();
  const every = p.state === "running" ? POLL_MS : p.state === "stopped_for_the_day" ? WAITING_POLL_MS : null;
  if (!every) return;
  const mine = epoch;
  timer = setTimeout(async () => {
    timer = null;
    if (mine !== epoch || p.id !== shownId) return;
    if ($("#imports").hidden) return; // the view is left: load() starts again when it is shown
    const answer = await api("GET", `imports/${encodeURIComponent(p.id)}`);
    if (mine !== epoch || p.id !== shownId) return;
    if (!answer.ok) {
      result(`The import could not be read: ${describe(answer)}`, true);
      return poll(p); // tried again, as it still runs as far as is known
    }
    const progress = progressIn(answer.json);
    show(progress);
    if (ENDED.has(progress.state)) load(); // the list shows how it ended
  }, every);
}

function stopPolling() {
  clearTimeout(timer);
  timer = null;
}

async function act(action) {
  const id = shownId;
  if (!id) return;
  const mine = epoch;
  const answer = await api("POST", `imports/${encodeURIComponent(id)}/${action}`);
  if (mine !== epoch) return;
  if (!answer.ok) return result(`Not ${action === "pause" ? "paused" : action === "resume" ? "resumed" : "cancelled"}: ${describe(answer)}`, true);
  const said = {
    pause: `Paused import ${id}: it sends nothing until it is resumed; live webhooks go on.`,
    resume: `Resumed import ${id}.`,
    cancel: `Cancelled import ${id}: its rows not yet applied are dropped; what it applied stays.`,
  };
  result(said[action]);
  show(answer.json.import);
  await load();
}

async function cancel() {
  const id = shownId;
  if (!id) return;
  const question = `Cancel import ${id}? The rows it has not applied yet are dropped (what it applied stays); it cannot be resumed.`;
  if (!(await confirm(question))) return;
  await act("cancel");
}

/** Reads the failed rows with the key as a header, and saves them as a file. */
async function failedRows() {
  const id = shownId;
  if (!id) return;
  const answer = await download(`imports/${encodeURIComponent(id)}/failed.csv`);
  if (!answer.ok) return ($("#import-failed-result").textContent = `Not downloaded: ${describe(answer)}`);
  const url = URL.createObjectURL(answer.blob);
  const link = h("a", { href: url, download: `import-${id}-failed.csv`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  $("#import-failed-result").textContent = `Saved import-${id}-failed.csv (${size(answer.blob.size)}).`;
}
