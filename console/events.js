// The Events view: dead letters and pending webhooks, filtered (state, event type, SightMill id,
// time window) and paged; one opened shows its attempts, its last error or reason and its body.
// Replay one, the selection or the window, and discard: each confirmed, each result shown.

import { api, describe } from "./api.js";
import { $, confirm, h, when } from "./ui.js";

let pages = [null]; // the cursor of each page shown so far; the last is the page on screen
let nextCursor = null;
let opened = null;

export async function setUp() {
  const types = await api("GET", "mapping/catalogue");
  const select = $("#event-filters select[name=type]");
  for (const type of types.json?.event_types ?? []) select.append(h("option", { value: type, text: type }));
  $("#event-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    pages = [null];
    load();
  });
  $("#next-page").addEventListener("click", () => {
    pages.push(nextCursor);
    load();
  });
  $("#first-page").addEventListener("click", () => {
    pages = [null];
    load();
  });
  $("#select-all").addEventListener("change", (event) => {
    for (const box of rowBoxes()) box.checked = event.target.checked;
  });
  $("#replay-selected").addEventListener("click", replaySelected);
  $("#discard-selected").addEventListener("click", discardSelected);
  $("#replay-window").addEventListener("click", replayWindow);
  $("#detail-replay").addEventListener("click", () => opened && replayOne(opened));
  $("#detail-discard").addEventListener("click", () => opened && discard([opened]));
  $("#detail-close").addEventListener("click", closeDetail);
}

function filters() {
  const form = new FormData($("#event-filters"));
  const time = (name) => (form.get(name) ? new Date(form.get(name)).toISOString() : "");
  return {
    state: form.get("state"),
    type: form.get("type"),
    sightmill_id: form.get("sightmill_id").trim(),
    from: time("from"),
    to: time("to"),
  };
}

export async function load() {
  const query = { ...filters(), limit: 25, cursor: pages.at(-1) };
  const answer = await api("GET", "events", { query });
  const body = $("#event-table tbody");
  $("#select-all").checked = false;
  if (!answer.ok) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "error", text: describe(answer) })));
    return;
  }
  const { events, cursor } = answer.json;
  nextCursor = cursor;
  $("#next-page").disabled = !cursor;
  $("#first-page").disabled = pages.length === 1;
  const label = query.state === "parked" ? "Dead letters" : "Pending events";
  $("#event-caption").textContent = `${label}: page ${pages.length}, ${events.length} shown`;
  body.replaceChildren(...(events.length ? events.map(row) : [h("tr", {}, h("td", { colspan: 7, text: "Nothing here." }))]));
}

function row(event) {
  const when_ = event.state === "parked" ? `parked ${when(event.parked_at)}` : `due ${when(event.due_at)}`;
  return h(
    "tr",
    { "data-id": event.webhook_id },
    h("td", {}, h("input", { type: "checkbox", value: event.webhook_id, "aria-label": `Select ${event.webhook_id}` })),
    h("td", {}, h("button", { type: "button", class: "link", text: event.webhook_id, onclick: () => open(event.webhook_id) })),
    h("td", { text: event.event_type }),
    h("td", { text: event.sightmill_id }),
    h("td", { text: String(event.attempts) }),
    h("td", { text: when_ }),
    h("td", { class: "reason", text: event.reason ?? event.last_error ?? "" }),
  );
}

const rowBoxes = () => [...document.querySelectorAll("#event-table tbody input[type=checkbox]")];
const selected = () => rowBoxes().filter((box) => box.checked).map((box) => box.value);

async function open(id) {
  const answer = await api("GET", `events/${encodeURIComponent(id)}`);
  if (!answer.ok) return result(describe(answer));
  const record = answer.json;
  opened = id;
  $("#event-detail").hidden = false;
  $("#detail-title").textContent = `Webhook ${id}`;
  const fields = [
    ["State", record.state],
    ["Event type", record.event_type],
    ["SightMill id", record.sightmill_id],
    ["Accepted", when(record.accepted_at)],
    ["Attempts", record.attempts],
    ["Failures", record.failures],
    [record.state === "parked" ? "Parked" : "Due", when(record.parked_at ?? record.due_at)],
    [record.reason ? "Reason" : "Last error", record.reason ?? record.last_error ?? "none"],
  ].filter(([, value]) => value !== undefined);
  $("#detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]));
  $("#detail-body").textContent = JSON.stringify(record.body ?? null, null, 2);
  $("#detail-replay").disabled = record.state !== "parked";
  $("#detail-discard").disabled = record.state === "finished";
  $("#detail-title").focus();
}

/** Starts over for another connection: the first page, nothing opened, no result. */
export function reset() {
  pages = [null];
  nextCursor = null;
  closeDetail();
  result("");
  $("#event-table tbody").replaceChildren();
}

function closeDetail() {
  opened = null;
  $("#event-detail").hidden = true;
}

function result(text) {
  $("#events-result").textContent = text;
}

async function replayOne(id) {
  if (!(await confirm(`Replay webhook ${id}? It goes back into the queue and is applied now.`))) return;
  const answer = await api("POST", `events/${encodeURIComponent(id)}/replay`);
  result(answer.ok ? `Replayed ${id}.` : `Not replayed: ${describe(answer)}`);
  closeDetail();
  load();
}

async function replaySelected() {
  const ids = selected();
  if (!ids.length) return result("Select the dead letters to replay first.");
  if (!(await confirm(`Replay ${ids.length} selected webhook(s)?`))) return;
  const answer = await api("POST", "replay", { body: { ids } });
  if (!answer.ok) return result(`Not replayed: ${describe(answer)}`);
  const { replayed, skipped } = answer.json;
  result(`Replayed ${replayed.length}${skipped.length ? `; not parked, left as they were: ${skipped.join(", ")}` : ""}.`);
  load();
}

async function replayWindow() {
  const { from, to } = filters();
  if (!from || !to) return result("Set From and To: the window is when the webhooks were parked.");
  if (!(await confirm(`Replay every dead letter parked between ${when(Date.parse(from))} and ${when(Date.parse(to))}?`))) return;
  let total = 0;
  for (;;) {
    const answer = await api("POST", "replay", { body: { from, to } });
    if (!answer.ok) return result(`Replayed ${total}, then: ${describe(answer)}`);
    total += answer.json.replayed.length;
    if (!answer.json.more) break;
  }
  result(`Replayed ${total} dead letter(s) from the window.`);
  load();
}

async function discardSelected() {
  const ids = selected();
  if (!ids.length) return result("Select the webhooks to discard first.");
  await discard(ids);
}

async function discard(ids) {
  const what = ids.length === 1 ? `webhook ${ids[0]}` : `${ids.length} webhooks`;
  if (!(await confirm(`Discard ${what}? Discarded webhooks are never applied, and a redelivery changes nothing.`))) return;
  const done = [];
  for (const id of ids) {
    const answer = await api("DELETE", `events/${encodeURIComponent(id)}`);
    if (!answer.ok) {
      result(`Discarded ${done.length}; ${id}: ${describe(answer)}`);
      return load();
    }
    done.push(id);
  }
  result(`Discarded ${what}.`);
  if (ids.includes(opened)) closeDetail();
  load();
}
