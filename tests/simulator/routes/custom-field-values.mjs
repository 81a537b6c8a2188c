// What a contact write keeps of its custom fields: a custom field the location does not define,
// or a value its type cannot take, is dropped without a word, as the live API does (the connector
// failures users report); what was dropped is kept in `state().droppedCustomFields` for the tests.
// The definitions themselves are routes/custom-fields.mjs.

/** The types whose values are picked from `picklistOptions`. */
export const OPTION_TYPES = ["SINGLE_OPTIONS", "MULTIPLE_OPTIONS", "CHECKBOX", "RADIO"];

/** The custom fields `locationId` defines. */
export const ofLocation = (store, locationId) =>
  [...store.customFields.values()].filter((field) => field.locationId === locationId);

const NUMERIC = /^-?\d+(\.\d+)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}/;

/** Whether `value` is one a field of `dataType` keeps (an empty string clears any field). */
function fits(field, value) {
  if (value === "" || value === null) return true;
  const scalar = typeof value === "string" || typeof value === "number";
  const inOptions = (item) => field.picklistOptions.length === 0 || field.picklistOptions.includes(item);
  switch (field.dataType) {
    case "NUMERICAL":
    case "MONETORY":
      return typeof value === "number" || (typeof value === "string" && NUMERIC.test(value));
    case "DATE":
      return typeof value === "number" || (typeof value === "string" && DATE.test(value) && !Number.isNaN(Date.parse(value)));
    case "SINGLE_OPTIONS":
    case "RADIO":
      return typeof value === "string" && inOptions(value);
    case "MULTIPLE_OPTIONS":
    case "CHECKBOX":
      return Array.isArray(value) && value.every((item) => typeof item === "string" && inOptions(item));
    default:
      return scalar;
  }
}

/**
 * The given `[{id | key, fieldValue | field_value}]` as the location keeps them: `[{id, value}]`
 * for each field it defines and whose type takes the value. A location with no fields defined
 * keeps everything (a field named by key alone is stored with the key as its id).
 */
export function fitCustomFields(ctx, contactId, given) {
  const defined = ofLocation(ctx.store, ctx.auth.locationId).filter((f) => f.model === "contact");
  const kept = [];
  for (const entry of given) {
    const value = entry.fieldValue ?? entry.field_value ?? null;
    if (defined.length === 0) {
      kept.push({ id: entry.id || entry.key, value });
      continue;
    }
    const field = defined.find((f) => (entry.id ? f.id === entry.id : f.fieldKey === entry.key));
    const why = !field ? "no such field in this location" : fits(field, value) ? null : `not a ${field.dataType} value`;
    if (why) ctx.store.droppedCustomFields.set(ctx.store.droppedCustomFields.size, { contactId, ...entry, why });
    else kept.push({ id: field.id, value });
  }
  return kept;
}

