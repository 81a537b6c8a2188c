// Managing connections (the Connections view's lower half), all through the operator API under
// `/admin/connections`: add one (its id, label, token source, optionally its own signing secret),
// and for the chosen one pause, resume, rotate its signing secret, remove a secret by its
// fingerprint, or remove it, saying what happens to its unfinished events, pending or parked
// (the worker refuses with 409 pending_events and their number; the operator may then discard
// them and remove it); and make a single-use install link (POST /admin/installs) for a location
// or an agency. A signing secret the worker answers is shown once, with a copy button,
// and kept nowhere: not in storage, not in the address, not in a log; leaving the view or hiding
// it forgets it. Every refusal's message is shown.

import { api, describe } from "./api.js";
import { $, confirm, h, when } from "./ui.js";
import * as selection from "./selection.js";

const AT = { at: "/admin" };
const FINGERPRINT = /^whsec:[0-9a-f]{8}$/;
let reload = async () => {};
let shownId = null; // the connection the panel manages
let pendingFor = null; // the connection whose removal waits on the discard choice
let secretOf = null; // the connection whose secret is shown once

/** Binds the forms and buttons; `changed` re-reads the list after a change. */
export function setUp(changed) {
  reload = changed;
  $("#create-form").addEventListener("submit", create);
  $("#install-form").addEventListener("submit", installLink);
  for (const radio of document.querySelectorAll("#create-form input[name=kind]")) radio.addEventListener("change", showKind);
  $("#rotate-form").addEventListener("submit", rotate);
  $("#pause-connection").addEventListener("click", pause);
  $("#resume-connection").addEventListener("click", resume);
  $("#remove-connection").addEventListener("click", () => remove(shownId, false));
  $("#discard-and-remove").addEventListener("click", () => remove(pendingFor, true));
  $("#keep-connection").addEventListener("click", keep);
  $("#copy-secret").addEventListener("click", copySecret);
  $("#hide-secret").addEventListener("click", () => {
    forgetSecret();
    $("#manage-title").focus();
  });
  showKind();
  agencies();
}

/** The agencies whose install is stored, offered as company ids (none when there are none). */
async function agencies() {
  const answer = await api("GET", "agencies", AT);
  const ids = answer.ok ? answer.json.agencies.map((agency) => agency.company_id) : [];
  $("#agency-ids").replaceChildren(...ids.map((id) => h("option", { value: id })));
  $("#agency-known").textContent = answer.ok
    ? ids.length ? `Installed agencies: ${ids.join(", ")}.` : "No agency has installed the app yet (make an agency install link below)."
    : `The agencies could not be read: ${describe(answer)}`;
}

/** Makes a single-use install link and shows it (as text: it is the operator's to send). */
async function installLink(event) {
  event.preventDefault();
  const kind = new FormData($("#install-form")).get("install_kind");
  const answer = await api("POST", "installs", { ...AT, body: { kind } });
  $("#install-url").textContent = answer.ok ? answer.json.install_url : "";
  $("#install-result").textContent = answer.ok
    ? `A ${kind} install link, good once until ${when(answer.json.expires_at_ms)}:`
    : `No install link was made: ${describe(answer)}`;
}

/** Shows only the token field the chosen kind needs. */
function showKind() {
  const kind = new FormData($("#create-form")).get("kind");
  for (const element of document.querySelectorAll("#create-form [data-kind]")) element.hidden = element.dataset.kind !== kind;
}

/** The panel for `connection` (the chosen one). */
export function show(connection) {
  const named = !connection.default && !connection.unknown && connection.id;
  shownId = named ? connection.id : null;
  $("#manage-title").textContent = connection.unknown
    ? `${connection.id} is not a connection`
    : connection.id
      ? `Manage ${connection.id}`
      : "Manage";
  $("#manage-default").hidden = !connection.default || !connection.id;
  $("#manage-named").hidden = !named;
  $("#manage-fields").replaceChildren(...(connection.unknown || !connection.id ? [] : fields(connection)));
  if (pendingFor !== shownId) hidePending();
  if (!named) return;
  $("#pause-connection").disabled = connection.paused;
  $("#resume-connection").disabled = !connection.paused;
  $("#secret-table tbody").replaceChildren(...(connection.secrets ?? []).map((secret) => secretRow(connection.id, secret)));
  if (!connection.secrets?.length) {
    $("#secret-table tbody").append(h("tr", {}, h("td", { colspan: 4, text: "None: every delivery is refused (401 invalid_signature) until one is added." })));
  }
}

function fields(connection) {
  const token = connection.token?.kind === "agency" ? `agency, company ${connection.token.company_id}` : tokenName(connection.token?.kind);
  const pairs = [
    ["Id", connection.id],
    ["Label", connection.label || "—"],
    ["Token", token],
    ["Webhook URL", webhookUrl(connection)],
    ["Added", connection.created_at_ms ? when(connection.created_at_ms) : "—"],
    ["Sending", connection.paused ? "paused: webhooks are accepted and kept pending" : "yes"],
  ];
  return pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]);
}

function tokenName(kind) {
  const names = {
    private_integration: "a Private Integration Token",
    static: "a Private Integration Token (CONTACTS_API_TOKEN)",
    oauth: "the app installed on the location (OAuth)",
  };
  return names[kind] ?? kind ?? "—";
}

const webhookUrl = (connection) => (connection.webhook_path ? `${location.origin}${connection.webhook_path}` : "—");

function secretRow(id, secret) {
  return h(
    "tr",
    { "data-fingerprint": secret.fingerprint },
    h("td", { class: "mono", "data-label": "Fingerprint", text: secret.fingerprint }),
    h("td", { "data-label": "Added", text: when(secret.created_at_ms) }),
    h("td", { "data-label": "Stops working", text: stops(secret.expires_at_ms) }),
    h("td", {}, h("button", { type: "button", text: "Remove", "aria-label": `Remove secret ${secret.fingerprint}`, onclick: () => removeSecret(id, secret.fingerprint) })),
  );
}

/** When a secret stops admitting deliveries: a time, "stopped at" one, or when it is removed. */
function stops(at) {
  if (!at) return "when removed";
  return at <= Date.now() ? `stopped at ${when(at)}` : when(at);
}

/** Another connection is chosen: what was said about the last one goes. */
export function reset() {
  $("#manage-result").textContent = "";
  hidePending();
}

function result(text) {
  $("#manage-result").textContent = text;
}

/** A path under /admin/connections for connection `id`. */
const under = (id, rest = "") => `connections/${encodeURIComponent(id)}${rest}`;

async function create(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const text = (name) => String(form.get(name) ?? "").trim();
  const kind = text("kind");
  const token = { kind };
  if (kind === "private_integration") token.token = text("token");
  if (kind === "agency") token.company_id = text("company_id");
  const body = { id: text("id"), token };
  if (text("label")) body.label = text("label");
  if (text("signing_secret")) body.signing_secret = text("signing_secret");
  const answer = await api("POST", "connections", { ...AT, body });
  if (!answer.ok) return ($("#create-result").textContent = `Not created: ${describe(answer)}`);
  const { connection, signing_secret } = answer.json;
  event.target.reset();
  showKind();
  $("#create-result").textContent = `Created ${connection.id}. Choose it at the top, or Manage it in the list.`;
  showSecret(connection, signing_secret, `SightMill posts to ${webhookUrl(connection)}, signed with it.`);
  await reload();
}

async function pause() {
  const id = shownId;
  const question = `Pause ${id}? Its webhooks are still accepted and kept pending; nothing is sent to the Contacts API until it is resumed.`;
  if (!(await confirm(question))) return;
  const answer = await api("POST", under(id, "/pause"), AT);
  result(answer.ok ? `Paused ${id}: webhooks are kept pending until it is resumed.` : `Not paused: ${describe(answer)}`);
  await reload();
  if (answer.ok) $("#resume-connection").focus();
}

async function resume() {
  const id = shownId;
  const answer = await api("POST", under(id, "/resume"), AT);
  result(answer.ok ? `Resumed ${id}: its pending webhooks are sent again.` : `Not resumed: ${describe(answer)}`);
  await reload();
  if (answer.ok) $("#pause-connection").focus();
}

async function rotate(event) {
  event.preventDefault();
  const id = shownId;
  const form = new FormData(event.target);
  const secret = String(form.get("signing_secret") ?? "").trim();
  const keep = String(form.get("keep_old_for") ?? "").trim() || "24h";
  const old = keep === "0s" ? "the old ones stop working now" : `the old ones keep working for ${keep}`;
  if (!(await confirm(`Rotate ${id}'s signing secret? A new one is added and ${old}.`))) return;
  const body = { keep_old_for: keep };
  if (secret) body.signing_secret = secret;
  const answer = await api("POST", under(id, "/secrets"), { ...AT, body });
  if (!answer.ok) return result(`Not rotated: ${describe(answer)}`);
  event.target.elements.signing_secret.value = "";
  result(`Rotated ${id}'s secret: the new one is ${answer.json.fingerprint}; ${old}.`);
  showSecret(answer.json.connection, answer.json.signing_secret, `The new secret of ${id} (${answer.json.fingerprint}).`);
  await reload();
}

async function removeSecret(id, fingerprint) {
  if (!(await confirm(`Remove secret ${fingerprint} of ${id}? Deliveries signed with it are refused from now on.`))) return;
  const path = FINGERPRINT.test(fingerprint) ? fingerprint : encodeURIComponent(fingerprint);
  const answer = await api("DELETE", under(id, `/secrets/${path}`), AT);
  result(answer.ok ? `Removed secret ${fingerprint} of ${id}.` : `Not removed: ${describe(answer)}`);
  await reload();
}

/**
 * Removes connection `id`. Without `discard` the worker refuses while events are pending (409
 * pending_events, with their number): then the choice is offered; with it they are discarded.
 */
async function remove(id, discard) {
  if (!id) return;
  if (!discard) {
    const question = `Remove ${id}? Its webhook URL refuses every delivery from then on and its token is deleted. If events are not finished (pending or dead letters), you are told how many first.`;
    if (!(await confirm(question))) return;
  }
  const answer = await api("DELETE", under(id), { ...AT, query: discard ? { pending: "discard" } : {} });
  if (answer.status === 409 && answer.json?.error === "pending_events") return offerDiscard(id, answer);
  hidePending();
  if (!answer.ok) return result(`Not removed: ${describe(answer)}`);
  const discarded = answer.json.discarded ?? 0;
  const said = `Removed ${id}${discarded ? `; ${discarded} unfinished event(s) discarded, never applied` : ""}.`;
  if (secretOf === id) forgetSecret();
  if (selection.current().id === id) location.hash = selection.hashFor("connections", null);
  $("#connections-result").textContent = said;
  await reload();
  $("#manage-title").focus();
}

function offerDiscard(id, answer) {
  const n = answer.json.pending ?? "some";
  pendingFor = id;
  $("#pending-text").textContent =
    `${id} was not removed: ${n} of its event(s) are not finished (pending, or parked as dead letters), so they have ` +
    `not been applied to the Contacts API. The worker says: ${answer.json.message ?? "events are pending"}. ` +
    "Discard them and remove it: they are marked discarded and never applied, and SightMill's deliveries to its URL " +
    "are refused from then on. Or keep the connection: pending events are sent once it runs (resume it if it is paused), " +
    "and dead letters wait in Events.";
  $("#discard-and-remove").textContent = `Discard the ${n} event(s) and remove ${id}`;
  $("#pending-choice").hidden = false;
  $("#discard-and-remove").focus();
}

function keep() {
  const id = pendingFor;
  hidePending();
  result(`Kept ${id} and its pending events.`);
  $("#remove-connection").focus();
}

function hidePending() {
  pendingFor = null;
  $("#pending-choice").hidden = true;
  $("#pending-text").textContent = "";
}

/** Shows a signing secret the worker answered, this once. */
function showSecret(connection, secret, where) {
  secretOf = connection.id;
  $("#secret-once-title").textContent = `Signing secret of ${connection.id}: shown this once`;
  $("#secret-value").value = secret;
  $("#secret-once-where").textContent = where;
  $("#secret-once-result").textContent = "";
  $("#secret-once").hidden = false;
  $("#secret-once-title").focus();
}

/** Forgets the secret shown once (its value is gone from the page). */
export function forgetSecret() {
  secretOf = null;
  $("#secret-value").value = "";
  $("#secret-once-where").textContent = "";
  $("#secret-once-result").textContent = "";
  $("#secret-once").hidden = true;
}

async function copySecret() {
  const input = $("#secret-value");
  try {
    await navigator.clipboard.writeText(input.value);
    $("#secret-once-result").textContent = "Copied. Paste it into SightMill; it will not be shown again.";
  } catch {
    input.focus();
    input.select();
    $("#secret-once-result").textContent = "Selected: copy it now (Ctrl+C or ⌘C); it will not be shown again.";
  }
}
