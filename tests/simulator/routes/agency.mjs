// Agency (Company) side of the simulator's OAuth: the companies the app is installed under and
// their locations, GET /oauth/installedLocations (lists them) and POST /oauth/locationToken
// (mints a location token from a company token). Both take a Version header and a company
// access token (checked by the server, handed over as `agency`: `{ auth }` or `{ error }`), are
// not rate-limited, and are recorded, counted and faultable like every API route. The token
// state itself lives in routes/oauth.mjs; this module holds the company records, the listing and
// the control routes that add companies and steer the consent page.

import { apiError, ok } from "../http.mjs";
import { isPlainObject, oneOf, string, unprocessable } from "../validate.mjs";

/** Thrown for OAuth set-up that makes no sense (an unknown company, a bad company record). */
export class OAuthSetupError extends Error {}

const isName = (value) => typeof value === "string" && value !== "";

function locationRecord(entry) {
  const given = typeof entry === "string" ? { id: entry } : entry;
  if (!isPlainObject(given) || !isName(given.id)) {
    throw new OAuthSetupError("each location must be an id or {id, name?, address?, isInstalled?}");
  }
  return {
    _id: given.id,
    name: given.name ?? `Location ${given.id}`,
    address: given.address ?? "",
    isInstalled: given.isInstalled !== false,
  };
}

/** A company record `{ companyId, name, locations: [{ _id, name, address, isInstalled }] }`. */
export function normaliseCompany(companyId, config) {
  if (!isName(companyId)) throw new OAuthSetupError("companyId must be a non-empty string");
  if (!isPlainObject(config) || !Array.isArray(config.locations)) {
    throw new OAuthSetupError("expected {locations: [id | {id, name?, address?, isInstalled?}], name?}");
  }
  const locations = config.locations.map(locationRecord);
  if (new Set(locations.map((l) => l._id)).size !== locations.length) throw new OAuthSetupError("duplicate location id");
  return { companyId, name: config.name ?? companyId, locations };
}

/** The ids of the locations the app is installed on under `company` (none for an unknown one). */
export function installedIds(company) {
  return (company?.locations ?? []).filter((l) => l.isInstalled).map((l) => l._id);
}

const boolString = oneOf(["true", "false"]);

/** A query-string whole number of at least `min`. */
const wholeString = (min) => (v, name) =>
  typeof v === "string" && /^\d+$/.test(v) && Number(v) >= min
    ? []
    : [`${name} must be a whole number not less than ${min}`];

/** GET /oauth/installedLocations query (the spec's parameters; others are refused). */
const INSTALLED_QUERY = {
  fields: {
    companyId: string,
    appId: string,
    skip: wholeString(0),
    limit: wholeString(1),
    query: string,
    isInstalled: boolString,
    locationId: string,
    versionId: string,
    onTrial: boolString,
    planId: string,
  },
  required: ["companyId", "appId"],
};

const forbidden = (message) => apiError(403, message, { error: "Forbidden" });

/** Whether `appId` names the app of `clientId` (the client id itself, or its part before "-"). */
const isAppOf = (appId, clientId) => appId === clientId || appId === clientId.split("-")[0];

function wanted(location, query) {
  if (query.isInstalled !== undefined && location.isInstalled !== (query.isInstalled === "true")) return false;
  if (query.locationId !== undefined && location._id !== query.locationId) return false;
  return query.query === undefined || location.name.toLowerCase().includes(query.query.toLowerCase());
}

/** The page `skip`/`limit` (default 0/20) of `company`'s matching locations; `count`: all matches. */
export function listInstalled({ auth, query, company }) {
  const invalid = unprocessable(query, INSTALLED_QUERY);
  if (invalid) return invalid;
  if (query.companyId !== auth.companyId) return forbidden("The token does not have access to this company");
  if (!isAppOf(query.appId, auth.clientId)) return forbidden("appId is not the app this token was issued to");
  const matches = (company?.locations ?? []).filter((l) => wanted(l, query));
  const skip = Number(query.skip ?? 0);
  const limit = Number(query.limit ?? 20);
  return ok(200, { locations: structuredClone(matches.slice(skip, skip + limit)), count: matches.length });
}

/** API routes for company tokens (`auth: "company"`: the server hands the bearer check over). */
export const agencyRoutes = [
  {
    method: "POST",
    path: "/oauth/locationToken",
    auth: "company",
    body: "form",
    faultLocation: ({ form }) => form.locationId,
    handler: ({ agency, body, oauth }) => oauth.locationToken(agency, body),
  },
  {
    method: "GET",
    path: "/oauth/installedLocations",
    auth: "company",
    body: "none",
    faultLocation: () => null,
    handler: ({ agency, query, oauth }) => oauth.installedLocations(agency, query),
  },
];

const badRequest = (message) => apiError(400, message, { error: "Bad Request" });

function addCompany({ sim, body }) {
  if (!isPlainObject(body)) return badRequest("expected {companyId, locations, name?}");
  try {
    return ok(201, { company: sim.oauth.addCompany(body.companyId, body) });
  } catch (err) {
    if (err instanceof OAuthSetupError) return badRequest(err.message);
    throw err;
  }
}

function setConsent({ sim, body }) {
  const given = isPlainObject(body) ? body : {};
  const optional = (value) => value === undefined || value === null || isName(value);
  if (!isPlainObject(body) || !optional(given.locationId) || !optional(given.companyId)) {
    return badRequest("expected {locationId?, companyId?} (absent or null: the client's own / a location consent)");
  }
  sim.oauth.setConsentLocation(given.locationId ?? null);
  sim.oauth.setConsentCompany(given.companyId ?? null);
  return ok(204);
}

/** Control routes under /__control/oauth/ for companies and the consent page. */
export const agencyControlRoutes = [
  { method: "POST", path: "/__control/oauth/companies", handler: addCompany },
  { method: "GET", path: "/__control/oauth/companies", handler: ({ sim }) => ok(200, sim.oauth.companies()) },
  { method: "POST", path: "/__control/oauth/consent", handler: setConsent },
];
