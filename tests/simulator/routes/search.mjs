// Contacts API v2 search routes: GET /contacts/search/duplicate (get-duplicate-contact: the
// contact a create with that email or phone would duplicate) and POST /contacts/search
// (search-contacts-advanced: ANDed filters, a sort by dateAdded, page/pageLimit). Both answer for
// the token's location only. The spec leaves the search body open; the simulator takes the subset
// the design notes name and refuses any other field, operator or property with 422, so that the
// worker never leans on a search the simulator does not check.

import { ok } from "../http.mjs";
import { anyOf, arrayOf, boolean, finiteNumber, integer, isoDateString, isPlainObject, objectOf, string, unprocessable, validateShape } from "../validate.mjs";
import { digitsOf, findDuplicate, NO_LOCATION_ACCESS } from "./contacts.mjs";
import { refuseQuery } from "./lists.mjs";

const DEFAULT_PAGE_LIMIT = 20;
const MAX_PAGE_LIMIT = 500;
const CUSTOM_FIELD_PREFIX = "customFields.";

// ---- GET /contacts/search/duplicate -------------------------------------------------------------

/** get-duplicate-contact query parameters (URL-decoded by the time they get here). */
const DUPLICATE_QUERY = { fields: { locationId: string, email: string, number: string }, required: ["locationId"] };

/**
 * The contact a create with `email` / `number` would duplicate, under either duplicate setting:
 * email first, then phone, the oldest where several match (see findDuplicate). `{ contact: null }`
 * when none does, or when neither is given.
 */
function getDuplicate(ctx) {
  const refused = refuseQuery(ctx, DUPLICATE_QUERY);
  if (refused) return refused;
  const { email, number } = ctx.query;
  const found = findDuplicate(ctx.store.contacts, ctx.auth.locationId, { email, phone: number });
  return ok(200, { contact: found ? structuredClone(found.contact) : null });
}

// ---- POST /contacts/search: what may be searched, and how --------------------------------------

const lowerCase = (v) => (typeof v === "string" ? v.toLowerCase() : undefined);
const hasValue = (v) => v !== undefined && v !== null && v !== "" && !(Array.isArray(v) && v.length === 0);
const eqValue = (v, name) => string(v, name);

/** Kinds of searchable field: the operators each takes and how `eq` compares. */
const TEXT = { operators: ["eq", "exists"], eqValue, same: (have, want) => lowerCase(have) === want.toLowerCase() };
const EXACT = { operators: ["eq", "exists"], eqValue, same: (have, want) => have === want };
const PHONE = {
  operators: ["eq", "exists"],
  eqValue,
  same: (have, want) => digitsOf(want) !== "" && digitsOf(have) === digitsOf(want),
};
const DATE = { operators: ["range", "exists"] };
const CUSTOM = {
  operators: ["eq", "exists"],
  eqValue: anyOf("must be a string, number or boolean", string, finiteNumber, boolean),
  same: (have, want) =>
    typeof have === "string" && typeof want === "string" ? lowerCase(have) === lowerCase(want) : have === want,
};

const FIELDS = {
  email: TEXT,
  phone: PHONE,
  firstName: TEXT,
  lastName: TEXT,
  firstNameLowerCase: TEXT,
  lastNameLowerCase: TEXT,
  dateAdded: DATE,
  dateUpdated: DATE,
  id: EXACT,
};
const SEARCHABLE = [...Object.keys(FIELDS), `${CUSTOM_FIELD_PREFIX}<fieldId>`].join(", ");

/** The field `name` as `{ ...kind, read(contact) }`, or null when it cannot be searched. */
function searchField(name) {
  if (typeof name === "string" && name.startsWith(CUSTOM_FIELD_PREFIX) && name.length > CUSTOM_FIELD_PREFIX.length) {
    const id = name.slice(CUSTOM_FIELD_PREFIX.length);
    return { ...CUSTOM, read: (contact) => contact.customFields.find((f) => f.id === id)?.value };
  }
  return Object.hasOwn(FIELDS, name) ? { ...FIELDS[name], read: (contact) => contact[name] } : null;
}

const RANGE_BOUNDS = ["gt", "gte", "lt", "lte"];
const rangeShape = objectOf({ fields: Object.fromEntries(RANGE_BOUNDS.map((b) => [b, isoDateString])) });

/** A range value: `{ gt?, gte?, lt?, lte? }` of ISO 8601 instants, at least one of them. */
function rangeValue(v, name) {
  const messages = rangeShape(v, name);
  if (messages.length > 0) return messages;
  return RANGE_BOUNDS.some((b) => hasValue(v[b])) ? [] : [`${name} must have at least one of ${RANGE_BOUNDS.join(", ")}`];
}

function inRange(have, range) {
  const t = Date.parse(have);
  if (Number.isNaN(t)) return false;
  const bound = (b) => Date.parse(range[b]);
  return (
    (!hasValue(range.gt) || t > bound("gt")) &&
    (!hasValue(range.gte) || t >= bound("gte")) &&
    (!hasValue(range.lt) || t < bound("lt")) &&
    (!hasValue(range.lte) || t <= bound("lte"))
  );
}

/** Operators: `check(value, name, field)` lists what is wrong with a value, `test` matches one. */
const OPERATORS = {
  eq: { check: (value, name, field) => field.eqValue(value, name), test: (have, value, field) => hasValue(have) && field.same(have, value) },
  exists: {
    check: (value, name) => (value === undefined || value === null ? [] : [`${name} must be left out for operator exists`]),
    test: (have) => hasValue(have),
  },
  range: { check: rangeValue, test: (have, value) => inRange(have, value) },
};

// ---- POST /contacts/search: the body ------------------------------------------------------------

const FILTER_SHAPE = { fields: { field: string, operator: string, value: () => [] }, required: ["field", "operator"] };

/** One filter `{ field, operator, value? }`: its shape, then whether the field takes the operator and value. */
function filterChecker(v, name) {
  if (!isPlainObject(v)) return [`${name} must be an object`];
  const messages = validateShape(v, FILTER_SHAPE, `${name}.`);
  if (messages.length > 0) return messages;
  const field = searchField(v.field);
  if (!field) return [`${name}.field ${JSON.stringify(v.field)} is not a searchable field (${SEARCHABLE})`];
  if (!Object.hasOwn(OPERATORS, v.operator)) {
    return [`${name}.operator ${JSON.stringify(v.operator)} is not supported (${Object.keys(OPERATORS).join(", ")})`];
  }
  if (!field.operators.includes(v.operator)) {
    return [`${name}.operator ${v.operator} is not supported for field ${v.field} (${field.operators.join(", ")})`];
  }
  return OPERATORS[v.operator].check(v.value, `${name}.value`, field);
}

const SORT_SHAPE = { fields: { field: string, direction: string }, required: ["field", "direction"] };

/** One sort entry `{ field: "dateAdded", direction: "asc" | "desc" }`. */
function sortChecker(v, name) {
  if (!isPlainObject(v)) return [`${name} must be an object`];
  const messages = validateShape(v, SORT_SHAPE, `${name}.`);
  if (messages.length > 0) return messages;
  if (v.field !== "dateAdded") messages.push(`${name}.field ${JSON.stringify(v.field)} is not sortable (dateAdded)`);
  if (!["asc", "desc"].includes(v.direction)) messages.push(`${name}.direction ${JSON.stringify(v.direction)} must be asc or desc`);
  return messages;
}

/** The search body: `{ locationId, page?, pageLimit?, filters?, sort? }`; nothing else. */
const SEARCH_BODY = {
  fields: {
    locationId: string,
    page: integer({ min: 1 }),
    pageLimit: integer({ min: 1, max: MAX_PAGE_LIMIT }),
    filters: arrayOf(filterChecker),
    sort: arrayOf(sortChecker),
  },
  required: ["locationId"],
};

/** Whether `contact` passes the (already checked) filter. */
function passes(contact, { field, operator, value }) {
  const searched = searchField(field);
  return OPERATORS[operator].test(searched.read(contact), value, searched);
}

/** By dateAdded in the first sort entry's direction (default desc); ties keep creation order, reversed for desc. */
function sorted(contacts, sort) {
  const oldestFirst = [...contacts].sort((a, b) => Date.parse(a.dateAdded) - Date.parse(b.dateAdded));
  return (sort[0]?.direction ?? "desc") === "asc" ? oldestFirst : oldestFirst.reverse();
}

/** The token's location's contacts that pass every filter, sorted and paged: `{ contacts, total }`. */
function searchContacts(ctx) {
  const invalid = unprocessable(ctx.body, SEARCH_BODY);
  if (invalid) return invalid;
  if (ctx.body.locationId !== ctx.auth.locationId) return NO_LOCATION_ACCESS();
  const filters = ctx.body.filters ?? [];
  const page = ctx.body.page ?? 1;
  const pageLimit = ctx.body.pageLimit ?? DEFAULT_PAGE_LIMIT;
  const found = [...ctx.store.contacts.values()].filter(
    (c) => c.locationId === ctx.auth.locationId && filters.every((filter) => passes(c, filter)),
  );
  const start = (page - 1) * pageLimit;
  const shown = sorted(found, ctx.body.sort ?? []).slice(start, start + pageLimit);
  return ok(200, { contacts: structuredClone(shown), total: found.length });
}

export const searchRoutes = [
  { method: "GET", path: "/contacts/search/duplicate", handler: getDuplicate },
  { method: "POST", path: "/contacts/search", handler: searchContacts },
];
