// Contacts API v2 routes: create, update, get and delete a contact. Each route is a table entry
// `{ method, path, handler }`; a handler gets a context (params, body, auth, store, ...) and
// returns a result `{ status, body }`. The sibling modules (notes, tags, tasks, appointments,
// lists) reuse the contact lookup and id helpers exported here.

import { apiError, ok } from "../http.mjs";
import { randomId } from "../prng.mjs";
import { CREATE_CONTACT, UPDATE_CONTACT, unprocessable } from "../validate.mjs";
import { fitCustomFields } from "./custom-field-values.mjs";

export const CONTACT_NOT_FOUND = () => apiError(400, "Contact not found");
export const NO_LOCATION_ACCESS = () => apiError(403, "The token does not have access to this location.");

// ---- record helpers ---------------------------------------------------------------------------

function fullName(contact) {
  if (typeof contact.name === "string") return contact.name;
  const parts = [contact.firstName, contact.lastName].filter((p) => typeof p === "string" && p !== "");
  return parts.length > 0 ? parts.join(" ") : undefined;
}

export function setOrDelete(record, key, value) {
  if (value === undefined || value === null) delete record[key];
  else record[key] = value;
}

/** Recomputes the lower-case search fields the API keeps beside the names and email. */
function refreshDerivedFields(contact) {
  setOrDelete(contact, "firstNameLowerCase", contact.firstName?.toLowerCase());
  setOrDelete(contact, "lastNameLowerCase", contact.lastName?.toLowerCase());
  setOrDelete(contact, "fullNameLowerCase", fullName(contact)?.toLowerCase());
  setOrDelete(contact, "emailLowerCase", contact.email?.toLowerCase());
}

/**
 * `[{id | key, fieldValue | field_value}]` from a request merged by id into the stored
 * `[{id, value}]`, after the location's definitions kept what they take (routes/custom-fields.mjs).
 */
function mergeCustomFields(ctx, contact, given) {
  const merged = contact.customFields.map((f) => ({ ...f }));
  for (const { id, value } of fitCustomFields(ctx, contact.id, given)) {
    const existing = merged.find((f) => f.id === id);
    if (existing) existing.value = value;
    else merged.push({ id, value });
  }
  return merged;
}

/** Applies the given body properties to `contact` (null clears a property). */
function applyFields(ctx, contact, body) {
  for (const [key, value] of Object.entries(body)) {
    if (key === "customFields") {
      if (Array.isArray(value)) contact.customFields = mergeCustomFields(ctx, contact, value);
    } else if (key === "tags") {
      contact.tags = value === null ? [] : [...value]; // overwrites all tags, as the spec warns
    } else {
      setOrDelete(contact, key, value === null ? null : structuredClone(value));
    }
  }
  refreshDerivedFields(contact);
}

/** A phone number's digits ("" for none), as the API compares numbers. */
export function digitsOf(phone) {
  return typeof phone === "string" ? phone.replace(/\D/g, "") : "";
}

/**
 * The existing contact that one with `email` and `phone` would duplicate, with the field that
 * matched (`{ contact, matchingField }`, or null): email (case-insensitive) first, then phone
 * (digits). Where several match, the oldest: the store keeps contacts in the order created.
 */
export function findDuplicate(contacts, locationId, { email: givenEmail, phone: givenPhone }) {
  const email = typeof givenEmail === "string" && givenEmail !== "" ? givenEmail.toLowerCase() : null;
  const phone = digitsOf(givenPhone);
  const sameLocation = [...contacts.values()].filter((c) => c.locationId === locationId);
  const byEmail = email && sameLocation.find((c) => c.emailLowerCase === email);
  if (byEmail) return { contact: byEmail, matchingField: "email" };
  const byPhone = phone && sameLocation.find((c) => digitsOf(c.phone) === phone);
  if (byPhone) return { contact: byPhone, matchingField: "phone" };
  return null;
}

/** A fresh id from the seeded PRNG that `records` (a store collection) does not hold yet. */
export function newId(ctx, records) {
  let id;
  do id = randomId(ctx.random);
  while (records.has(id));
  return id;
}

/** The contact `:contactId` names, when it belongs to the token's location. */
export function contactOfLocation(ctx) {
  const contact = ctx.store.contacts.get(ctx.params.contactId);
  return contact && contact.locationId === ctx.auth.locationId ? contact : null;
}

/** Runs `handler(contact)` for the contact `:contactId` names, or answers "Contact not found". */
export function withContact(ctx, handler) {
  const contact = contactOfLocation(ctx);
  return contact ? handler(contact) : CONTACT_NOT_FOUND();
}

/** Stamps `contact` as changed now (sub-resource changes such as tags count too). */
export function touch(ctx, contact) {
  contact.dateUpdated = new Date(ctx.now()).toISOString();
}

// ---- handlers ---------------------------------------------------------------------------------

function createContact(ctx) {
  const { body, auth } = ctx;
  const locationId = body?.locationId;
  if (typeof locationId === "string" && locationId !== "" && locationId !== auth.locationId) {
    return NO_LOCATION_ACCESS();
  }
  const invalid = unprocessable(body, CREATE_CONTACT);
  if (invalid) return invalid;

  if (!ctx.location(auth.locationId).allowDuplicates) {
    const duplicate = findDuplicate(ctx.store.contacts, auth.locationId, body);
    if (duplicate) {
      return apiError(400, "This location does not allow duplicated contacts.", {
        meta: {
          contactName: fullName(duplicate.contact) ?? "",
          contactId: duplicate.contact.id,
          matchingField: duplicate.matchingField,
        },
      });
    }
  }

  const stamp = new Date(ctx.now()).toISOString();
  const contact = { id: newId(ctx, ctx.store.contacts), locationId: auth.locationId, tags: [], customFields: [] };
  const { locationId: _ignored, ...fields } = body;
  applyFields(ctx, contact, fields);
  contact.dateAdded = stamp;
  contact.dateUpdated = stamp;
  ctx.store.contacts.set(contact.id, contact);
  return ok(201, { contact: structuredClone(contact) });
}

function updateContact(ctx) {
  const invalid = unprocessable(ctx.body, UPDATE_CONTACT);
  if (invalid) return invalid;
  const contact = contactOfLocation(ctx);
  if (!contact) return CONTACT_NOT_FOUND();
  applyFields(ctx, contact, ctx.body);
  touch(ctx, contact);
  return ok(200, { succeded: true, contact: structuredClone(contact) }); // sic: the API's spelling
}

function getContact(ctx) {
  return withContact(ctx, (contact) => ok(200, { contact: structuredClone(contact) }));
}

/** Removes `records` entries (notes, tasks) that belong to `contactId`. */
function removeOwned(records, contactId) {
  for (const [id, record] of records) if (record.contactId === contactId) records.delete(id);
}

/** Deletes the contact with its notes and tasks; appointments live in calendars and stay. */
function deleteContact(ctx) {
  return withContact(ctx, (contact) => {
    ctx.store.contacts.delete(contact.id);
    removeOwned(ctx.store.notes, contact.id);
    removeOwned(ctx.store.tasks, contact.id);
    return ok(200, { succeded: true });
  });
}

export const contactRoutes = [
  { method: "POST", path: "/contacts/", handler: createContact },
  { method: "PUT", path: "/contacts/:contactId", handler: updateContact },
  { method: "GET", path: "/contacts/:contactId", handler: getContact },
  { method: "DELETE", path: "/contacts/:contactId", handler: deleteContact },
];
