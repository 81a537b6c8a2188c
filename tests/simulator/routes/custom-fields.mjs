// A location's custom fields (the Locations API, apps/locations.json): list them (GET
// /locations/:locationId/customFields?model=), read one by id or key, create one. Each field has
// the spec's CustomFieldSchema shape (id, name, fieldKey, dataType, picklistOptions, model, ...);
// ids come from the seeded PRNG, so the same field has another id in every location.
// What a contact write keeps of its custom fields is custom-field-values.mjs.

import { apiError, ok } from "../http.mjs";
import { arrayOf, boolean, isPlainObject, oneOf, string, unprocessable } from "../validate.mjs";
import { newId, NO_LOCATION_ACCESS } from "./contacts.mjs";
import { OPTION_TYPES, ofLocation } from "./custom-field-values.mjs";

/** The scope that lists custom fields (the spec's security requirement). */
export const CUSTOM_FIELDS_SCOPE = "locations/customFields.readonly";

const MODELS = ["contact", "opportunity"];
const finite = (v, name) => (typeof v === "number" && Number.isFinite(v) ? [] : [`${name} must be a number`]);

/** The spec's CreateCustomFieldsDTO. */
const CREATE_CUSTOM_FIELD = {
  fields: {
    name: string,
    dataType: string,
    placeholder: string,
    acceptedFormat: arrayOf(string),
    isMultipleFile: boolean,
    maxNumberOfFiles: finite,
    textBoxListOptions: arrayOf((v, name) => (isPlainObject(v) ? [] : [`${name} must be an object`])),
    position: finite,
    model: oneOf(MODELS),
  },
  required: ["name", "dataType"],
};

/** `contact.plan_tier` from "Plan tier". */
function keyOf(model, name) {
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return `${model}.${slug || "field"}`;
}

/**
 * Makes a field in `locationId` from spec-shaped `fields`; a test seeding one may also give its
 * `id`, `fieldKey` and `picklistOptions`.
 */
export function addCustomField(ctx, locationId, fields) {
  const model = fields.model ?? "contact";
  const field = {
    id: fields.id ?? newId(ctx, ctx.store.customFields),
    name: fields.name,
    fieldKey: fields.fieldKey ?? keyOf(model, fields.name),
    placeholder: fields.placeholder ?? "",
    dataType: fields.dataType,
    position: fields.position ?? 0,
    picklistOptions: OPTION_TYPES.includes(fields.dataType) ? [...(fields.picklistOptions ?? [])] : [],
    isAllowedCustomOption: false,
    locationId,
    model,
  };
  ctx.store.customFields.set(field.id, field);
  return field;
}

/** The token must act for the location in the path. */
function forLocation(ctx, handler) {
  return ctx.params.locationId === ctx.auth.locationId ? handler(ctx.params.locationId) : NO_LOCATION_ACCESS();
}

function listFields(ctx) {
  const model = ctx.query.model ?? "all";
  const invalid = unprocessable({ model }, { fields: { model: oneOf([...MODELS, "all"]) } });
  if (invalid) return invalid;
  return forLocation(ctx, (locationId) => {
    const fields = ofLocation(ctx.store, locationId).filter((f) => model === "all" || f.model === model);
    return ok(200, { customFields: structuredClone(fields) });
  });
}

function getField(ctx) {
  return forLocation(ctx, (locationId) => {
    const field = ofLocation(ctx.store, locationId).find((f) => f.id === ctx.params.id || f.fieldKey === ctx.params.id);
    return field ? ok(200, { customField: structuredClone(field) }) : apiError(400, "Custom field not found");
  });
}

function createField(ctx) {
  const invalid = unprocessable(ctx.body, CREATE_CUSTOM_FIELD);
  if (invalid) return invalid;
  return forLocation(ctx, (locationId) => ok(201, { customField: addCustomField(ctx, locationId, ctx.body) }));
}

export const customFieldRoutes = [
  { method: "GET", path: "/locations/:locationId/customFields", handler: listFields, scope: CUSTOM_FIELDS_SCOPE },
  { method: "GET", path: "/locations/:locationId/customFields/:id", handler: getField },
  { method: "POST", path: "/locations/:locationId/customFields", handler: createField, scope: "locations/customFields.write" },
];
