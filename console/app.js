// The operator console: sign in with an operator key, then one view at a time (Connections,
// Status, Charts, Events, Mapping, Imports) of one connection, both chosen by the address's fragment
// (`#events@loc-a`; see selection.js). Every view reads and changes the worker only through the
// operator API (api.js); switching the connection switches every view to its own.

import { api, describe, operatorKey, whenRefused } from "./api.js";
import { $, h } from "./ui.js";
import * as selection from "./selection.js";
import * as connections from "./connections.js";
import * as status from "./status.js";
import * as charts from "./charts.js";
import * as events from "./events.js";
import * as mapping from "./mapping.js";
import * as imports from "./imports.js";

const VIEWS = { connections, status, charts, events, mapping, imports };
const shown = new Set();

function signedIn(yes) {
  $("#sign-in-view").hidden = yes;
  $("#nav").hidden = !yes;
  $("#sign-out").hidden = !yes;
  $("#chooser").hidden = !yes;
  for (const name of Object.keys(VIEWS)) $(`#${name}`).hidden = true;
  if (yes) show();
}

/**
 * Shows the view the fragment names (Status by default) of the connection it names, sets the
 * view up once, and loads it. A different connection resets what the views keep of the last one.
 */
async function show() {
  if (!operatorKey.get()) return;
  const name = viewName();
  const { id } = selection.parseHash(location.hash);
  if (!selection.loaded()) await selection.refresh();
  if (!operatorKey.get()) return; // the key was refused meanwhile
  if (selection.apply(id)) {
    for (const each of Object.values(VIEWS)) each.reset?.();
  }
  if (name !== "connections") connections.leave();
  header(name);
  for (const other of Object.keys(VIEWS)) $(`#${other}`).hidden = other !== name;
  if (!shown.has(name)) {
    shown.add(name);
    if ((await VIEWS[name].setUp?.()) === false) shown.delete(name); // set up again next time
  }
  VIEWS[name].load();
}

/** The view the fragment names, Status when it names none. */
function viewName() {
  const { view } = selection.parseHash(location.hash);
  return VIEWS[view] ? view : "status";
}

/** The chosen connection in the header (the selector, and "paused"), and links that keep it. */
function header(name = viewName()) {
  const chosen = selection.current();
  for (const link of document.querySelectorAll("#nav a")) {
    const view = link.dataset.view;
    link.setAttribute("href", selection.hashFor(view));
    if (view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const select = $("#connection-select");
  const options = selection.list().map((c) =>
    h("option", { value: c.id, selected: c.id === chosen.id, text: `${c.id}${c.default ? " (default)" : ""}${c.paused ? " · paused" : ""}` }),
  );
  if (chosen.unknown) options.push(h("option", { value: chosen.id, selected: true, text: `${chosen.id} (not a connection)` }));
  if (!options.length) options.push(h("option", { value: "", text: "none yet" }));
  select.replaceChildren(...options);
  $("#connection-paused").hidden = !chosen.paused;
  const words = `Connection ${chosen.id || "none"}${chosen.default ? " (default)" : ""}${chosen.paused ? ", paused" : ""}`;
  if ($("#connection-now").textContent !== words) $("#connection-now").textContent = words;
  document.title = `${chosen.id ? `${chosen.id} · ` : ""}sightmill-sync · operator console`;
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#key");
  operatorKey.set(input.value.trim());
  input.value = "";
  // The list of connections checks the key; a deployment whose list cannot be read (its
  // Directory unavailable) is still signed into with its default connection's status.
  let answer = await selection.refresh();
  if (!answer.ok && answer.status !== 401) answer = await api("GET", "status", { at: "/admin" });
  if (!answer.ok) {
    operatorKey.clear();
    selection.forget();
    $("#sign-in-error").textContent = `Not signed in: ${describe(answer)}`;
    return;
  }
  $("#sign-in-error").textContent = "";
  signedIn(true);
}

function signOut() {
  operatorKey.clear();
  shown.clear();
  selection.forget();
  connections.leave();
  signedIn(false);
  $("#key").focus();
}

whenRefused((refusal) => {
  if (!operatorKey.get()) return;
  operatorKey.clear();
  selection.forget();
  connections.leave();
  signedIn(false);
  $("#sign-in-error").textContent = `Signed out: ${refusal?.message ?? "the key was refused"}`;
});

selection.whenChanged(() => operatorKey.get() && header());
$("#sign-in").addEventListener("submit", signIn);
$("#sign-out").addEventListener("click", signOut);
$("#connection-select").addEventListener("change", (event) => {
  location.hash = selection.hashFor(viewName(), event.target.value);
});
for (const button of document.querySelectorAll("[data-refresh]")) {
  button.addEventListener("click", () => VIEWS[button.dataset.refresh].load());
}
addEventListener("hashchange", show);
signedIn(Boolean(operatorKey.get()));
