// The control interface under /__control/: lets tests that run the simulator in another process
// read its state and steer it. Never authenticated, rate-limited, faulted or recorded.
// Each handler gets `{ sim, body, params }` (sim = the object startSimulator returns).

import { apiError, ok } from "../http.mjs";
import { FaultSpecError } from "../faults.mjs";
import { isPlainObject } from "../validate.mjs";
import { SeedError } from "../store.mjs";
import { RateLimitError } from "../ratelimit.mjs";

const NO_CONTENT = () => ok(204);

function badRequest(message) {
  return apiError(400, message, { error: "Bad Request" });
}

function addFault({ sim, body }) {
  try {
    return ok(201, { fault: sim.injectFault(body) });
  } catch (err) {
    if (err instanceof FaultSpecError) return badRequest(err.message);
    throw err;
  }
}

function addToken({ sim, body }) {
  if (!isPlainObject(body) || typeof body.token !== "string" || typeof body.locationId !== "string") {
    return badRequest("expected {token, locationId} strings");
  }
  const scopes = body.scopes;
  if (scopes !== undefined && !(Array.isArray(scopes) && scopes.every((s) => typeof s === "string"))) {
    return badRequest("scopes must be a list of strings");
  }
  sim.addToken(body.token, body.locationId, scopes);
  return ok(201, { token: body.token, locationId: body.locationId, scopes });
}

const DATA_TYPES = ["TEXT", "LARGE_TEXT", "NUMERICAL", "MONETORY", "PHONE", "DATE", "CHECKBOX", "SINGLE_OPTIONS", "MULTIPLE_OPTIONS", "RADIO", "FILE_UPLOAD"];

function addCustomField({ sim, body }) {
  const valid =
    isPlainObject(body) &&
    typeof body.locationId === "string" &&
    typeof body.name === "string" &&
    DATA_TYPES.includes(body.dataType) &&
    (body.picklistOptions === undefined || (Array.isArray(body.picklistOptions) && body.picklistOptions.every((o) => typeof o === "string")));
  if (!valid) return badRequest(`expected {locationId, name, dataType (${DATA_TYPES.join(", ")}), fieldKey?, picklistOptions?}`);
  const { locationId, ...fields } = body;
  return ok(201, { customField: sim.seedCustomField(locationId, fields) });
}

function addFlow(kind) {
  return ({ sim, body }) => {
    if (!isPlainObject(body) || typeof body.locationId !== "string" || typeof body.name !== "string") {
      return badRequest("expected {locationId, name, status?}");
    }
    const { locationId, ...fields } = body;
    return ok(201, { [kind]: sim.seedFlow(kind, locationId, fields) });
  };
}

function setLocation({ sim, body }) {
  if (!isPlainObject(body) || typeof body.locationId !== "string") {
    return badRequest("expected {locationId, allowDuplicates?, rateLimit?}");
  }
  const { locationId, ...config } = body;
  return limiting(201, () => ({ locationId, ...sim.setLocation(locationId, config) }));
}

/** Runs a call that sets rate limits; a RateLimitError (a bad value) answers 400. */
function limiting(status, set) {
  try {
    return ok(status, set());
  } catch (err) {
    if (err instanceof RateLimitError) return badRequest(err.message);
    throw err;
  }
}

/** Runs a seeding call; a SeedError (unknown contact, bad fields) answers 400. */
function seeding(status, seed) {
  try {
    return ok(status, seed());
  } catch (err) {
    if (err instanceof SeedError) return badRequest(err.message);
    throw err;
  }
}

function addAppointment({ sim, body }) {
  if (!isPlainObject(body) || typeof body.contactId !== "string") {
    return badRequest("expected {contactId, ...appointment fields}");
  }
  const { contactId, ...fields } = body;
  return seeding(201, () => ({ event: sim.seedAppointment(contactId, fields) }));
}

function setRateLimit({ sim, body }) {
  return limiting(200, () => ({ rateLimit: sim.setRateLimit(body) }));
}

function setBusiness({ sim, body }) {
  if (!isPlainObject(body) || typeof body.contactId !== "string") {
    return badRequest("expected {contactId, businessId}");
  }
  return seeding(200, () => ({ contact: sim.assignBusiness(body.contactId, body.businessId ?? null) }));
}

export const controlRoutes = [
  { method: "GET", path: "/__control/state", handler: ({ sim }) => ok(200, sim.state()) },
  { method: "GET", path: "/__control/requests", handler: ({ sim }) => ok(200, sim.requests()) },
  { method: "GET", path: "/__control/counts", handler: ({ sim }) => ok(200, sim.counts()) },
  { method: "POST", path: "/__control/faults", handler: addFault },
  { method: "DELETE", path: "/__control/faults", handler: ({ sim }) => (sim.clearFaults(), NO_CONTENT()) },
  { method: "POST", path: "/__control/reset", handler: ({ sim }) => (sim.reset(), NO_CONTENT()) },
  { method: "POST", path: "/__control/tokens", handler: addToken },
  {
    method: "DELETE",
    path: "/__control/tokens/:token",
    handler: ({ sim, params }) => (sim.revokeToken(params.token), NO_CONTENT()),
  },
  { method: "POST", path: "/__control/locations", handler: setLocation },
  { method: "POST", path: "/__control/ratelimit", handler: setRateLimit },
  { method: "POST", path: "/__control/appointments", handler: addAppointment },
  { method: "POST", path: "/__control/business", handler: setBusiness },
  { method: "POST", path: "/__control/custom-fields", handler: addCustomField },
  { method: "POST", path: "/__control/workflows", handler: addFlow("workflow") },
  { method: "POST", path: "/__control/campaigns", handler: addFlow("campaign") },
];
