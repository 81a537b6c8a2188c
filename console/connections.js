// The Connections view: every connection (GET /admin/connections, the default first), each with
// a compact summary of its own status (its GET status: pending, dead letters, the oldest pending,
// its token, its mapping; the word "alert" where Status would show one) and whether it is
// paused, with links to its Status and to manage it; below, the chosen one managed (manage.js).

import { api, describe } from "./api.js";
import { $, duration, h } from "./ui.js";
import * as selection from "./selection.js";
import * as manage from "./manage.js";
import { tokenAlert, tokenState } from "./status.js";

/** How many status requests are in flight at once while the list is read. */
const AT_ONCE = 4;
let reading = 0; // which read of the list is the latest (an older one's answers are dropped)

export function setUp() {
  manage.setUp(load);
}

export async function load() {
  const read = ++reading;
  const answer = await selection.refresh();
  if (read !== reading) return;
  $("#connections-error").textContent = answer.ok ? "" : `The connections could not be read: ${describe(answer)}`;
  const all = selection.list();
  const chosen = selection.current();
  const rows = new Map(all.map((connection) => [connection.id, row(connection, connection.id === chosen.id)]));
  $("#connection-list").replaceChildren(...rows.values());
  if (!all.length && answer.ok) $("#connection-list").append(h("li", { text: "No connection yet: add one below." }));
  $("#connection-list-read").textContent = "";
  manage.show(chosen);
  readStatuses(all, rows, read); // each row fills in as its answer comes
}

/** Reads each connection's status, a few at a time, into its row. */
async function readStatuses(all, rows, read) {
  const queue = [...all];
  const worker = async () => {
    for (let connection = queue.shift(); connection; connection = queue.shift()) {
      const answer = await api("GET", "status", { at: selection.baseOf(connection) });
      if (read !== reading) return;
      summarise(rows.get(connection.id), connection, answer);
    }
  };
  await Promise.all(Array.from({ length: Math.min(AT_ONCE, all.length) }, worker));
  if (read === reading) $("#connection-list-read").textContent = `${all.length} connection(s), read ${new Date().toLocaleTimeString()}.`;
}

function row(connection, chosen) {
  const { id } = connection;
  return h(
    "li",
    { class: "connection", "data-connection": id, "aria-current": chosen ? "true" : null },
    h(
      "h3",
      { class: "connection-title" },
      h("span", { class: "connection-id", text: id }),
      connection.label ? h("span", { class: "connection-label", text: connection.label }) : null,
      connection.default ? h("span", { class: "tag", text: "default" }) : null,
      connection.paused ? h("span", { class: "badge paused", text: "paused" }) : null,
      chosen ? h("span", { class: "tag chosen", text: "chosen" }) : null,
    ),
    h("dl", { class: "summary-line" }, h("div", {}, h("dt", { text: "Status" }), h("dd", { text: "reading…" }))),
    h("p", { class: "note" }, about(connection), h("br"), h("span", { class: "mono", text: connection.webhook_path ?? "" })),
    h(
      "div",
      { class: "actions" },
      h("a", { href: selection.hashFor("status", id) }, "Status", h("span", { class: "visually-hidden", text: ` of ${id}` })),
      h("a", { href: selection.hashFor("connections", id) }, "Manage", h("span", { class: "visually-hidden", text: ` ${id}` })),
    ),
  );
}

/** What the record says: token kind and signing secrets (the webhook path goes under it). */
function about(connection) {
  const token = connection.token?.kind === "agency" ? `agency ${connection.token.company_id}` : connection.token?.kind ?? "?";
  const secrets = connection.secrets?.length ?? 0;
  return `Token: ${token} · ${secrets} signing secret(s)`;
}

/** The row's summary from its status answer (or the refusal's message). */
function summarise(li, connection, answer) {
  const line = li.querySelector(".summary-line");
  if (!answer.ok) {
    line.replaceChildren(h("div", { class: "alert" }, h("dt", { text: "Status" }), h("dd", { text: describe(answer) })));
    li.classList.add("alert");
    return;
  }
  const s = answer.json;
  const now = Date.now();
  const token = s.tokens?.[0];
  const figures = [
    ["Pending", s.pending, false],
    ["Dead letters", s.parked, s.parked > 0],
    ["Oldest pending", duration(s.oldest_pending_age_secs), s.oldest_pending_age_secs > s.alert_pending_age_secs],
    ["Token", token ? tokenState(token) : "—", token ? tokenAlert(token, now) : false],
    ["Mapping", s.mapping?.effective ?? "—", s.mapping?.effective === "unusable"],
  ];
  if (connection.paused || s.paused) figures.unshift(["Paused", "nothing is sent", false]);
  line.replaceChildren(
    ...figures.map(([label, value, alert]) =>
      h("div", { class: alert ? "alert" : null }, h("dt", { text: label }), h("dd", {}, String(value ?? "—"), alert ? h("span", { class: "badge", text: "alert" }) : null)),
    ),
  );
  li.classList.toggle("alert", figures.some(([, , alert]) => alert));
}

/** Forgets what the view shows that must not outlive it (a secret shown once). */
export function leave() {
  manage.forgetSecret();
}

export function reset() {
  manage.reset();
}
