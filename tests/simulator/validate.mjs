// Compact request-body validation in the style of the API's class-validator answers:
// a shape is `{ fields: { name: checker }, required: [names] }`, and a checker turns a value
// and its property path into a list of messages ("firstName must be a string", ...).
// Unknown properties are refused ("property foo should not exist"), as on the real API.

export function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---- checkers -------------------------------------------------------------------------------

export const string = (v, name) => (typeof v === "string" ? [] : [`${name} must be a string`]);

export const boolean = (v, name) =>
  typeof v === "boolean" ? [] : [`${name} must be a boolean value`];

export const stringArray = (v, name) => {
  if (!Array.isArray(v)) return [`${name} must be an array`];
  return v.every((item) => typeof item === "string") ? [] : [`each value in ${name} must be a string`];
};

export const oneOf = (allowed) => (v, name) =>
  allowed.includes(v) ? [] : [`${name} must be one of the following values: ${allowed.join(", ")}`];

export const objectOf = (shape) => (v, name) =>
  isPlainObject(v) ? validateShape(v, shape, `${name}.`) : [`${name} must be an object`];

export const arrayOf = (itemChecker) => (v, name) => {
  if (!Array.isArray(v)) return [`${name} must be an array`];
  return v.flatMap((item, i) => itemChecker(item, `${name}.${i}`));
};

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** An ISO 8601 date or date-time string (class-validator's @IsISO8601). */
export const isoDateString = (v, name) =>
  typeof v === "string" && ISO_8601.test(v) && !Number.isNaN(Date.parse(v))
    ? []
    : [`${name} must be a valid ISO 8601 date string`];

/** A query-string number (query values arrive as strings), optionally within `min`..`max`. */
export const numberString =
  ({ min, max } = {}) =>
  (v, name) => {
    const n = typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
    if (!Number.isFinite(n)) return [`${name} must be a number conforming to the specified constraints`];
    if (min !== undefined && n < min) return [`${name} must not be less than ${min}`];
    if (max !== undefined && n > max) return [`${name} must not be greater than ${max}`];
    return [];
  };

/** A JSON integer, optionally within `min`..`max`. */
export const integer =
  ({ min, max } = {}) =>
  (v, name) => {
    if (!Number.isInteger(v)) return [`${name} must be an integer number`];
    if (min !== undefined && v < min) return [`${name} must not be less than ${min}`];
    if (max !== undefined && v > max) return [`${name} must not be greater than ${max}`];
    return [];
  };

/** Passes when any of `checkers` passes; otherwise answers `message`. */
export const anyOf = (message, ...checkers) => (v, name) =>
  checkers.some((check) => check(v, name).length === 0) ? [] : [`${name} ${message}`];

export const finiteNumber = (v, name) =>
  typeof v === "number" && Number.isFinite(v) ? [] : [`${name} must be a number`];
const plainObject = (v, name) => (isPlainObject(v) ? [] : [`${name} must be an object`]);

// ---- shape validation -------------------------------------------------------------------------

function isMissing(value) {
  return value === undefined || value === null || value === "";
}

/**
 * Validates `body` against `shape`; returns the list of messages (empty when valid).
 * Optional properties may be null (class-validator's @IsOptional).
 */
export function validateShape(body, shape, prefix = "") {
  const messages = [];
  for (const key of Object.keys(body)) {
    if (!Object.hasOwn(shape.fields, key)) messages.push(`${prefix}property ${key} should not exist`);
  }
  for (const [key, check] of Object.entries(shape.fields)) {
    const value = body[key];
    if ((shape.required ?? []).includes(key) && isMissing(value)) {
      messages.push(`${prefix}${key} should not be empty`);
      if (value === undefined || value === null) messages.push(...check(value, `${prefix}${key}`));
    } else if (value !== undefined && value !== null) {
      messages.push(...check(value, `${prefix}${key}`));
    }
  }
  return messages;
}

// ---- Contacts API shapes (written from the spec's CreateContactDto / UpdateContactDto) -----

const dndChannel = objectOf({
  fields: { status: oneOf(["active", "inactive", "permanent"]), message: string, code: string },
  required: ["status"],
});

const dndSettings = objectOf({
  fields: Object.fromEntries(["Call", "Email", "SMS", "WhatsApp", "GMB", "FB"].map((c) => [c, dndChannel])),
});

const inboundDndSettings = objectOf({
  fields: {
    all: objectOf({ fields: { status: oneOf(["active", "inactive"]), message: string }, required: ["status"] }),
  },
});

const customFieldValue = anyOf(
  "must be a string, number, array of strings or object",
  string,
  finiteNumber,
  stringArray,
  plainObject,
);

const CUSTOM_FIELD = { id: string, key: string, fieldValue: customFieldValue, field_value: customFieldValue };

/**
 * A custom field names its field by `id` or `key` and carries its value as `fieldValue` (the v3
 * spec's spelling, which the live API takes) or `field_value` (the v2 spec's); one with neither
 * `id` nor `key` is refused as the v2 spec's required `id`.
 */
const customField = (v, name) => {
  const named = isPlainObject(v) && !(isMissing(v.id) && isMissing(v.key));
  return objectOf({ fields: CUSTOM_FIELD, required: named ? [] : ["id"] })(v, name);
};

const customFields = arrayOf(customField);

const dateOfBirth = anyOf("must be a string or object", string, plainObject);

/** Properties that both create and update accept. */
const CONTACT_FIELDS = {
  firstName: string,
  lastName: string,
  name: string,
  email: string,
  phone: string,
  address1: string,
  city: string,
  state: string,
  postalCode: string,
  website: string,
  timezone: string,
  dnd: boolean,
  dndSettings,
  inboundDndSettings,
  tags: stringArray,
  customFields,
  source: string,
  dateOfBirth,
  country: string,
  assignedTo: string,
};

/** POST /contacts/ body. */
export const CREATE_CONTACT = {
  fields: { ...CONTACT_FIELDS, locationId: string, gender: string, companyName: string },
  required: ["locationId"],
};

/** PUT /contacts/:contactId body: no locationId, gender or companyName (as in the spec). */
export const UPDATE_CONTACT = { fields: { ...CONTACT_FIELDS } };

/** Validates a parsed JSON body (or a query object); returns a 422 result or null when valid. */
export function unprocessable(body, shape) {
  const messages = isPlainObject(body) ? validateShape(body, shape) : ["request body must be a JSON object"];
  if (messages.length === 0) return null;
  return {
    status: 422,
    body: { statusCode: 422, message: messages, error: "Unprocessable Entity" },
  };
}
