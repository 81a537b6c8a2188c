// The Status view: the chosen connection's queue and location at a glance, with an alert colour
// (and the word "alert") wherever the worker would raise an alert. Its token rules are shared
// with the Connections view's summaries.

import { api, describe } from "./api.js";
import { $, duration, h, when } from "./ui.js";
import { current } from "./selection.js";

export async function load() {
  const cards = $("#status-cards");
  const answer = await api("GET", "status");
  if (!answer.ok) {
    $("#status-location").textContent = "";
    cards.replaceChildren(h("p", { class: "error", role: "alert", text: describe(answer) }));
    return;
  }
  const s = answer.json;
  const now = Date.now();
  const connection = current();
  const paused = Boolean(connection.paused || s.paused);
  const label = connection.label ? ` (${connection.label})` : "";
  $("#status-location").textContent = `Location ${s.location_id}${label}${connection.default ? " · the default connection" : ""} · read ${new Date(now).toLocaleTimeString()}`;
  const limit = s.alert_pending_age_secs;
  const blockedFor = s.rate_limited_until && s.rate_limited_until > now ? (s.rate_limited_until - now) / 1000 : null;
  const run = s.last_cron_run;
  const shown = [
    paused ? card("Sending", "paused", "webhooks are accepted and kept pending until it is resumed", false) : null,
    ...s.tokens.map((token) => card(`Token ${token.location_id}`, tokenState(token), tokenNote(token), tokenAlert(token, now))),
    card("Pending", s.pending, null, false),
    card("Due now", s.due_now, null, false),
    card("Oldest pending", duration(s.oldest_pending_age_secs), `alert after ${duration(limit)}`, s.oldest_pending_age_secs > limit),
    card("Dead letters", s.parked, "parked webhooks wait for an operator", s.parked > 0),
    card("Unreadable", s.unreadable, "stored rows that no longer parse", s.unreadable > 0),
    card("Stale drops", s.stale_dropped, "older than what the contact already had", false),
    card("Rate-limit block", blockedFor ? `for ${duration(blockedFor)}` : "none", null, Boolean(blockedFor)),
    card("Last run", run ? when(run.finished_at) : "none yet", run ? runNote(run) : null, false),
    card("Mapping", s.mapping?.effective === "live" ? "live" : "deployed", mappingNote(s.mapping), false),
  ];
  cards.replaceChildren(...shown.filter(Boolean));
}

/** Forgets the last connection's figures (another one is chosen). */
export function reset() {
  $("#status-location").textContent = "";
  $("#status-cards").replaceChildren();
}

function card(label, value, note, alert) {
  return h(
    "div",
    { class: alert ? "card alert" : "card" },
    h("dt", { text: label }),
    h("dd", { class: "value" }, String(value ?? "—"), alert ? h("span", { class: "badge", text: "alert" }) : null),
    note ? h("dd", { class: "note", text: note }) : null,
  );
}

export function tokenState(token) {
  if (token.error) return "error";
  return token.state ?? "unknown";
}

function tokenNote(token) {
  if (token.error) return token.error;
  if (token.state === "static") return `${token.mode}: a Private Integration Token`;
  if (token.expires_at_ms) return `${token.mode}: expires ${when(token.expires_at_ms)}`;
  return token.mode;
}

export function tokenAlert(token, now) {
  if (token.error || token.state === "unreadable" || token.state === "none") return true;
  return Boolean(token.expires_at_ms && token.expires_at_ms < now);
}

function runNote(run) {
  return `${run.finished} finished, ${run.retried} retried, ${run.parked} parked, ${run.api_calls} calls`;
}

function mappingNote(mapping) {
  if (mapping?.effective !== "live") return "CONTACT_MAPPING as deployed";
  return `saved by ${mapping.saved_by || "?"} at ${when(mapping.saved_at)}`;
}
