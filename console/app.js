// The operator console: sign in with an operator key, then one view at a time (Status, Charts,
// Events, Mapping), chosen by the address's fragment. Every view reads and changes the worker
// only through the operator API (api.js).

import { api, describe, operatorKey, whenRefused } from "./api.js";
import { $ } from "./ui.js";
import * as status from "./status.js";
import * as charts from "./charts.js";
import * as events from "./events.js";
import * as mapping from "./mapping.js";

const VIEWS = { status, charts, events, mapping };
const shown = new Set();

function signedIn(yes) {
  $("#sign-in-view").hidden = yes;
  $("#nav").hidden = !yes;
  $("#sign-out").hidden = !yes;
  for (const name of Object.keys(VIEWS)) $(`#${name}`).hidden = true;
  if (yes) show();
}

/** Shows the view the fragment names (Status by default), sets it up once, and loads it. */
async function show() {
  if (!operatorKey.get()) return;
  const name = VIEWS[location.hash.slice(1)] ? location.hash.slice(1) : "status";
  for (const other of Object.keys(VIEWS)) $(`#${other}`).hidden = other !== name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!shown.has(name)) {
    shown.add(name);
    await VIEWS[name].setUp?.();
  }
  VIEWS[name].load();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#key");
  operatorKey.set(input.value.trim());
  input.value = "";
  const answer = await api("GET", "status");
  if (!answer.ok) {
    operatorKey.clear();
    $("#sign-in-error").textContent = `Not signed in: ${describe(answer)}`;
    return;
  }
  $("#sign-in-error").textContent = "";
  signedIn(true);
}

function signOut() {
  operatorKey.clear();
  shown.clear();
  signedIn(false);
  $("#key").focus();
}

whenRefused((refusal) => {
  if (!operatorKey.get()) return;
  operatorKey.clear();
  signedIn(false);
  $("#sign-in-error").textContent = `Signed out: ${refusal?.message ?? "the key was refused"}`;
});

$("#sign-in").addEventListener("submit", signIn);
$("#sign-out").addEventListener("click", signOut);
for (const button of document.querySelectorAll("[data-refresh]")) {
  button.addEventListener("click", () => VIEWS[button.dataset.refresh].load());
}
addEventListener("hashchange", show);
signedIn(Boolean(operatorKey.get()));
