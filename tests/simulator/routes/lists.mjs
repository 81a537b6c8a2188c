// Contacts API v2 contact lists: GET /contacts/ (get-contacts: `query` search, cursor pages by
// startAfter/startAfterId, `meta` as the spec's ContactsMetaSchema) and GET
// /contacts/business/:businessId (skip/limit pages). Both list the token's location only, oldest
// first (by dateAdded, then id), and `count` is the number of matches across all pages.
// Tests tie contacts to a business with `assignBusiness` (sim.assignBusiness or control).

import { apiError, ok } from "../http.mjs";
import { numberString, string, unprocessable } from "../validate.mjs";
import { SeedError } from "../store.mjs";
import { NO_LOCATION_ACCESS } from "./contacts.mjs";

const DEFAULT_LIMIT = 20;
const DEFAULT_BUSINESS_LIMIT = 25;

/** get-contacts query parameters. */
const LIST_QUERY = {
  fields: {
    locationId: string,
    startAfterId: string,
    startAfter: numberString(),
    query: string,
    limit: numberString({ min: 1, max: 100 }),
  },
  required: ["locationId"],
};

/** get-contacts-by-businessId query parameters. */
const BUSINESS_QUERY = {
  fields: { locationId: string, limit: numberString({ min: 1 }), skip: numberString({ min: 0 }), query: string },
  required: ["locationId"],
};

const addedMs = (contact) => Date.parse(contact.dateAdded);

function oldestFirst(a, b) {
  return addedMs(a) - addedMs(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Case-insensitive substring search over names, email, phone and company. */
function matches(contact, query) {
  if (query === undefined || query === "") return true;
  const needle = query.toLowerCase();
  return ["firstName", "lastName", "name", "email", "phone", "companyName"].some(
    (key) => typeof contact[key] === "string" && contact[key].toLowerCase().includes(needle),
  );
}

/** The location's contacts matching `query`, oldest first. */
function listed(ctx, keep = () => true) {
  return [...ctx.store.contacts.values()]
    .filter((c) => c.locationId === ctx.auth.locationId && keep(c) && matches(c, ctx.query.query))
    .sort(oldestFirst);
}

/** Checks the query and its locationId; returns a refusal or null. */
export function refuseQuery(ctx, shape) {
  return unprocessable(ctx.query, shape) ?? (ctx.query.locationId === ctx.auth.locationId ? null : NO_LOCATION_ACCESS());
}

/** The position after the cursor `startAfter` (ms) / `startAfterId`: `{ start }` or `{ error }`. */
function cursorStart(ctx, contacts) {
  const { startAfter, startAfterId } = ctx.query;
  if (startAfter === undefined && startAfterId === undefined) return { start: 0 };
  let ms = startAfter === undefined ? undefined : Number(startAfter);
  if (ms === undefined) {
    const known = contacts.find((c) => c.id === startAfterId);
    if (!known) return { error: apiError(400, `startAfterId ${startAfterId} is not a contact of this list`) };
    ms = addedMs(known);
  }
  const after = (c) => addedMs(c) > ms || (addedMs(c) === ms && startAfterId !== undefined && c.id > startAfterId);
  const start = contacts.findIndex(after);
  return { start: start === -1 ? contacts.length : start };
}

function nextPageUrl(ctx, last) {
  const params = new URLSearchParams({ locationId: ctx.auth.locationId });
  for (const name of ["query", "limit"]) if (ctx.query[name] !== undefined) params.set(name, ctx.query[name]);
  params.set("startAfter", String(addedMs(last)));
  params.set("startAfterId", last.id);
  return `${ctx.origin}/contacts/?${params}`;
}

/** ContactsMetaSchema for the page `[start, start + page.length)` of `total` matches. */
function pageMeta(ctx, { start, limit, page, total }) {
  const currentPage = Math.floor(start / limit) + 1;
  const last = page.at(-1);
  const more = start + page.length < total;
  return {
    total,
    nextPageUrl: more ? nextPageUrl(ctx, last) : null,
    startAfterId: last?.id ?? null,
    startAfter: last ? addedMs(last) : null,
    currentPage,
    nextPage: more ? currentPage + 1 : null,
    prevPage: currentPage > 1 ? currentPage - 1 : null,
  };
}

function getContacts(ctx) {
  const refused = refuseQuery(ctx, LIST_QUERY);
  if (refused) return refused;
  const contacts = listed(ctx);
  const cursor = cursorStart(ctx, contacts);
  if (cursor.error) return cursor.error;
  const limit = Number(ctx.query.limit ?? DEFAULT_LIMIT);
  const page = contacts.slice(cursor.start, cursor.start + limit);
  const meta = pageMeta(ctx, { start: cursor.start, limit, page, total: contacts.length });
  return ok(200, { contacts: structuredClone(page), count: contacts.length, meta });
}

function getBusinessContacts(ctx) {
  const refused = refuseQuery(ctx, BUSINESS_QUERY);
  if (refused) return refused;
  const contacts = listed(ctx, (c) => c.businessId === ctx.params.businessId);
  const skip = Number(ctx.query.skip ?? 0);
  const limit = Number(ctx.query.limit ?? DEFAULT_BUSINESS_LIMIT);
  return ok(200, { contacts: structuredClone(contacts.slice(skip, skip + limit)), count: contacts.length });
}

/** Ties the contact `contactId` to `businessId` (null unties it); throws SeedError if unknown. */
export function assignBusiness(store, contactId, businessId) {
  const contact = store.contacts.get(contactId);
  if (!contact) throw new SeedError(`no contact ${JSON.stringify(contactId)}`);
  if (businessId !== null && (typeof businessId !== "string" || businessId === "")) {
    throw new SeedError("businessId must be a non-empty string or null");
  }
  if (businessId === null) delete contact.businessId;
  else contact.businessId = businessId;
  return structuredClone(contact);
}

export const listRoutes = [
  { method: "GET", path: "/contacts/", handler: getContacts },
  { method: "GET", path: "/contacts/business/:businessId", handler: getBusinessContacts },
];
