// Which connection the console works on. The address's fragment names it, `#view@id` (so a
// reload keeps it; the default connection is `#view`, with no `@`), and the fragment is the one
// place a choice is made: choosing writes it, app.js reads it back and calls apply(). The list
// (GET /admin/connections, the default first) says which id is the default; the operator API
// base goes with the choice: `/admin` for the default, `/admin/connections/{id}` for a named one.

import { api, setBase } from "./api.js";

/** The connection id rule (the contract's): safe in a path and a fragment alike. */
const ID = /^[A-Za-z0-9_-]{1,64}$/;

let connections = null; // the last list the operator API gave, or null before the first
let problem = null; // the operator API's refusal of the last list, if it refused
let chosenId = null; // the id the fragment names, or null for the default connection
let changed = () => {};

/** `#events@loc-a` as `{ view: "events", id: "loc-a" }`; an id that breaks the rule is ignored. */
export function parseHash(hash) {
  const [view, id] = hash.replace(/^#/, "").split("@");
  return { view, id: id && ID.test(id) ? id : null };
}

/** The fragment for `view` of connection `id` (none for the default connection). */
export function hashFor(view, id = chosenId) {
  const named = id && !connections?.find((c) => c.id === id)?.default;
  return `#${view}${named ? `@${id}` : ""}`;
}

/** The operator API base of `connection`. */
export const baseOf = (connection) => (connection.default ? "/admin" : `/admin/connections/${connection.id}`);

export const list = () => connections ?? [];
export const loaded = () => connections !== null;
/** The refusal `{ status, json }` of the last list, or null when it was read. */
export const refusal = () => problem;

/** Called whenever the list or the choice changes (the header shows them). */
export function whenChanged(handler) {
  changed = handler;
}

/**
 * Reads the list (GET /admin/connections) and keeps it, with the base that goes with the choice
 * now that the list says which id is the default. A refused list is kept as empty. Answers the
 * operator API's answer.
 */
export async function refresh() {
  const answer = await api("GET", "connections", { at: "/admin" });
  problem = answer.ok ? null : answer;
  connections = answer.ok ? answer.json.connections : [];
  setBase(baseOf(current()));
  changed();
  return answer;
}

/** Makes `id` (null: the default) the chosen connection. Answers true when the choice changed. */
export function apply(id) {
  if (id === chosenId) return false;
  chosenId = id;
  setBase(baseOf(current()));
  changed();
  return true;
}

/**
 * The chosen connection: its entry in the list, or `{ id, unknown: true }` when the list has no
 * such id (the operator API then answers for it, e.g. 404 unknown_connection); without an id, the
 * default connection, or the first when none is configured.
 */
export function current() {
  const all = list();
  if (chosenId) return all.find((c) => c.id === chosenId) ?? { id: chosenId, default: false, unknown: loaded() };
  return all.find((c) => c.default) ?? all[0] ?? { id: "", default: true };
}

export function forget() {
  connections = null;
  problem = null;
  chosenId = null;
  setBase("/admin");
}
