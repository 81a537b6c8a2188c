// OAuth 2.0 for the simulator: the token endpoint (POST /oauth/token, form-encoded, grant types
// client_credentials, authorization_code and refresh_token, for user_type Location or Company),
// the marketplace consent page (GET /oauth/chooselocation, which redirects back with a code for a
// location or a company install), location tokens minted from company tokens (the agency routes
// in routes/agency.mjs call in here), and the state behind them. Issued access tokens are bearer
// tokens until their lifetime ends: location ones for the API routes, company ones for the agency
// routes; refresh tokens rotate (each use spends the old one); spent, expired or revoked grants
// and inactive locations are refused with `{ error: "invalid_grant", error_description }` as
// OAuth servers do. Tests steer it through `sim.oauth` (in process) or /__control/oauth/...
// (another process).

import { randomBytes } from "node:crypto";
import { apiError, ok } from "../http.mjs";
import { isPlainObject, string, unprocessable } from "../validate.mjs";
import { installedIds, listInstalled, normaliseCompany, OAuthSetupError } from "./agency.mjs";

export { OAuthSetupError };

export const DEFAULT_TOKEN_LIFETIME_SECS = 86_399;
const CODE_LIFETIME_MS = 10 * 60_000;
const REFRESH_LIFETIME_MS = 365 * 24 * 3_600_000;
const DEFAULT_SCOPE = "contacts.readonly contacts.write";

const oauthError = (status, error, description) => ({ status, body: { error, error_description: description } });
const secret = (prefix) => `${prefix}_${randomBytes(18).toString("hex")}`;

/** POST /oauth/locationToken form (GetLocationAccessCodeBodyDto). */
const LOCATION_TOKEN_FORM = { fields: { companyId: string, locationId: string }, required: ["companyId", "locationId"] };

const USER_TYPES = ["Location", "Company"];

/**
 * The OAuth state. Options: `clock` (() => ms), `clients` {clientId: {secret, locationId?,
 * companyId?}} (locationId: the location a client-credentials grant and the consent page act
 * for; companyId: the company of its codes, and the one a company consent installs under),
 * `companies` {companyId: {locations, name?}} (see addCompany), `tokenLifetimeSecs` (default 86399).
 */
export function createOAuth({ clock = Date.now, clients = {}, companies = {}, tokenLifetimeSecs } = {}) {
  const defaultLifetime = tokenLifetimeSecs ?? DEFAULT_TOKEN_LIFETIME_SECS;
  const registered = new Map(Object.entries(clients));
  const agencies = new Map(Object.entries(companies).map(([id, config]) => [id, normaliseCompany(id, config)]));
  let run;
  function fresh() {
    return {
      lifetimeSecs: defaultLifetime,
      codes: new Map(), // code -> { userType, clientId, locationId, companyId, redirectUri, scope, expiresAt, used }
      accessTokens: new Map(), // token -> { userType, clientId, locationId?, companyId, scope, expiresAt }
      refreshTokens: new Map(), // token -> { userType, clientId, locationId?, companyId, scope, expiresAt, spent, revoked }
      inactive: new Set(),
      consentLocation: null,
      consentCompany: null,
      grants: [], // { grantType, status, error, userType? (Company), companyId?, locationId? (location_token) }
    };
  }
  run = fresh();

  const installedUnder = (companyId) => installedIds(agencies.get(companyId));

  function accessToken(fields) {
    const token = secret("sim_at");
    run.accessTokens.set(token, { ...fields, expiresAt: clock() + run.lifetimeSecs * 1000 });
    return token;
  }

  /** A token answer for a grant `{ userType, clientId, locationId, companyId, scope }`. */
  function issue({ userType = "Location", clientId, locationId, companyId, scope, withRefresh }) {
    const holder = userType === "Company" ? { companyId } : { locationId, companyId };
    const body = {
      access_token: accessToken({ userType, clientId, scope, ...holder }),
      token_type: "Bearer",
      expires_in: run.lifetimeSecs,
      scope,
      userType,
      ...holder,
      ...(userType === "Company" ? { approvedLocations: installedUnder(companyId) } : {}),
      userId: "sim-user",
    };
    if (withRefresh) {
      body.refresh_token = secret("sim_rt");
      run.refreshTokens.set(body.refresh_token, {
        userType,
        clientId,
        ...holder,
        scope,
        expiresAt: clock() + REFRESH_LIFETIME_MS,
        spent: false,
        revoked: false,
      });
    }
    return ok(200, body);
  }

  const notActive = (grant) =>
    grant.userType !== "Company" &&
    run.inactive.has(grant.locationId) &&
    oauthError(400, "invalid_grant", "Location is not active");

  /** A code or refresh token of one user type used as the other is refused (and not spent). */
  const wrongUserType = (grant, userType, what) =>
    grant.userType !== userType &&
    oauthError(400, "invalid_grant", `${what} was issued for user_type ${grant.userType}, not ${userType}`);

  function byCode(form, clientId, userType) {
    const grant = run.codes.get(form.code ?? "");
    if (!grant || grant.clientId !== clientId) return oauthError(400, "invalid_grant", "Invalid authorization code");
    if (grant.used) return oauthError(400, "invalid_grant", "Authorization code has already been used");
    if (clock() > grant.expiresAt) return oauthError(400, "invalid_grant", "Authorization code has expired");
    if (grant.redirectUri && form.redirect_uri !== grant.redirectUri) {
      return oauthError(400, "invalid_grant", "redirect_uri does not match the one the code was issued for");
    }
    const mismatch = wrongUserType(grant, userType, "Authorization code");
    if (mismatch) return mismatch;
    grant.used = true;
    return notActive(grant) || issue({ ...grant, clientId, withRefresh: true });
  }

  function byRefresh(form, clientId, userType) {
    const grant = run.refreshTokens.get(form.refresh_token ?? "");
    if (!grant || grant.clientId !== clientId) return oauthError(400, "invalid_grant", "Invalid refresh token");
    if (grant.spent) return oauthError(400, "invalid_grant", "Refresh token has already been used");
    if (grant.revoked) return oauthError(400, "invalid_grant", "Refresh token has been revoked");
    if (clock() > grant.expiresAt) return oauthError(400, "invalid_grant", "Refresh token has expired");
    const refused = wrongUserType(grant, userType, "Refresh token") || notActive(grant);
    if (refused) return refused;
    grant.spent = true;
    return issue({ ...grant, clientId, withRefresh: true });
  }

  function byClient(client, clientId, userType) {
    if (userType !== "Location") {
      return oauthError(400, "invalid_request", "client_credentials is only simulated for user_type Location");
    }
    if (!client.locationId) return oauthError(400, "unauthorized_client", "This client is not bound to a location");
    const grant = { clientId, locationId: client.locationId, companyId: client.companyId, scope: DEFAULT_SCOPE };
    return notActive(grant) || issue({ ...grant, withRefresh: false });
  }

  function answer(form) {
    const client = registered.get(form.client_id ?? "");
    if (!client || form.client_secret !== client.secret) {
      return oauthError(401, "invalid_client", "Client authentication failed");
    }
    const userType = form.user_type ?? "Location";
    if (!USER_TYPES.includes(userType)) {
      return oauthError(400, "invalid_request", "user_type must be Company or Location");
    }
    switch (form.grant_type) {
      case "authorization_code":
        return byCode(form, form.client_id, userType);
      case "refresh_token":
        return byRefresh(form, form.client_id, userType);
      case "client_credentials":
        return byClient(client, form.client_id, userType);
      case undefined:
        return oauthError(400, "invalid_request", "grant_type is required");
      default:
        return oauthError(400, "unsupported_grant_type", `grant_type ${form.grant_type} is not supported`);
    }
  }

  /** POST /oauth/locationToken for the company token `auth` ({ companyId, clientId, scope }). */
  function mintLocationToken(auth, form) {
    const invalid = unprocessable(form, LOCATION_TOKEN_FORM);
    if (invalid) return invalid;
    if (form.companyId !== auth.companyId) return apiError(400, "companyId is not the company of this token");
    if (!installedUnder(auth.companyId).includes(form.locationId)) {
      return apiError(400, `the app is not installed on location ${form.locationId} under this company`);
    }
    if (run.inactive.has(form.locationId)) return apiError(400, "Location is not active");
    const holder = { locationId: form.locationId, companyId: auth.companyId };
    return ok(200, {
      access_token: accessToken({ userType: "Location", clientId: auth.clientId, scope: auth.scope, ...holder }),
      token_type: "Bearer",
      expires_in: run.lifetimeSecs,
      scope: auth.scope,
      locationId: form.locationId,
      userId: "sim-user",
    });
  }

  /** What a location consent installs on: `{ locationId }` or `{ error }`. */
  function locationConsent(client) {
    const locationId = run.consentLocation ?? client.locationId;
    return locationId ? { locationId } : { error: "no location to install on: set one with setConsentLocation" };
  }

  /** What a company consent installs under: `{ userType, companyId }` or `{ error }`. */
  function companyConsent(client) {
    const companyId = run.consentCompany ?? client.companyId;
    if (!agencies.has(companyId)) {
      return { error: "no company to install under: add one with addCompany (and setConsentCompany)" };
    }
    return { userType: "Company", companyId };
  }

  /** Expires the live access tokens `which` picks; returns how many. */
  function expire(which) {
    let n = 0;
    for (const issued of run.accessTokens.values()) {
      if (which(issued)) {
        issued.expiresAt = clock() - 1;
        n += 1;
      }
    }
    return n;
  }

  /** Revokes the live refresh tokens `which` picks; returns how many. */
  function revoke(which) {
    let n = 0;
    for (const grant of run.refreshTokens.values()) {
      if (!grant.spent && which(grant)) {
        grant.revoked = true;
        n += 1;
      }
    }
    return n;
  }

  const ofLocation = (locationId) => (t) => locationId === undefined || t.locationId === locationId;
  const ofCompany = (companyId) => (t) => t.userType === "Company" && (companyId === undefined || t.companyId === companyId);

  return {
    /** POST /oauth/token with the parsed form. */
    token(form) {
      const result = answer(form ?? {});
      run.grants.push({
        grantType: form?.grant_type ?? null,
        status: result.status,
        error: result.body.error ?? null,
        ...(form?.user_type === "Company" ? { userType: "Company" } : {}),
      });
      return result;
    },
    /** POST /oauth/locationToken with the bearer check (`{ auth }` or `{ error }`) and the parsed form. */
    locationToken(agency, form) {
      const result = agency.error ?? mintLocationToken(agency.auth, form ?? {});
      run.grants.push({
        grantType: "location_token",
        status: result.status,
        error: result.status === 200 ? null : String(result.body.error ?? result.body.message),
        companyId: form?.companyId ?? null,
        locationId: form?.locationId ?? null,
      });
      return result;
    },
    /** GET /oauth/installedLocations with the bearer check (`{ auth }` or `{ error }`) and the query. */
    installedLocations(agency, query) {
      return agency.error ?? listInstalled({ auth: agency.auth, query, company: agencies.get(agency.auth.companyId) });
    },
    /** GET /oauth/chooselocation: the user consents at once, for the consent location or company. */
    chooseLocation(query) {
      const client = registered.get(query.client_id ?? "");
      if (query.response_type !== "code" || !client || !query.redirect_uri || !query.scope) {
        return apiError(400, "response_type=code, a known client_id, redirect_uri and scope are required");
      }
      const forCompany = query.user_type === "Company" || (run.consentCompany !== null && query.user_type !== "Location");
      const install = forCompany ? companyConsent(client) : locationConsent(client);
      if (install.error) return apiError(400, install.error);
      const { client_id: clientId, redirect_uri: redirectUri, scope } = query;
      const code = this.issueCode({ ...install, clientId, redirectUri, scope });
      const back = new URL(query.redirect_uri);
      back.searchParams.set("code", code);
      if (query.state !== undefined) back.searchParams.set("state", query.state);
      return { status: 302, headers: { Location: back.toString() } };
    },
    /** The location an access token was issued for, expired or not (for location-scoped faults). */
    issuedFor(token) {
      return run.accessTokens.get(token)?.locationId;
    },
    /** The location a token request's form acts for: its code's, refresh token's or client's. */
    grantLocation(form) {
      if (form.grant_type === "authorization_code") return run.codes.get(form.code ?? "")?.locationId;
      if (form.grant_type === "refresh_token") return run.refreshTokens.get(form.refresh_token ?? "")?.locationId;
      if (form.grant_type === "client_credentials" && (form.user_type ?? "Location") === "Location") {
        return registered.get(form.client_id ?? "")?.locationId;
      }
      return undefined;
    },
    /** The bearer token's location while it is a valid location token, else undefined. */
    locationOf(token) {
      const issued = run.accessTokens.get(token);
      return issued && issued.userType === "Location" && clock() < issued.expiresAt ? issued.locationId : undefined;
    },
    /** The bearer token's `{ companyId, clientId, scope }` while it is a valid company token, else undefined. */
    companyOf(token) {
      const issued = run.accessTokens.get(token);
      if (!issued || issued.userType !== "Company" || clock() >= issued.expiresAt) return undefined;
      return { companyId: issued.companyId, clientId: issued.clientId, scope: issued.scope };
    },
    addClient(clientId, { secret: clientSecret, locationId, companyId }) {
      registered.set(clientId, { secret: clientSecret, locationId, companyId });
    },
    /**
     * Adds (or replaces) a company: `locations` the app is installed on under it (ids, or
     * `{ id, name?, address?, isInstalled? }` for locations listed with details or not installed).
     */
    addCompany(companyId, config) {
      agencies.set(companyId, normaliseCompany(companyId, config));
      return structuredClone(agencies.get(companyId));
    },
    /** Every company: `[{ companyId, name, locations }]`. */
    companies: () => structuredClone([...agencies.values()]),
    /**
     * An authorization code, as the consent page would hand it to the redirect URI; a Company one
     * (`userType: "Company"`) for `companyId` (default: the client's), which must have been added.
     */
    issueCode({ clientId, locationId, companyId, userType = "Location", redirectUri, scope = DEFAULT_SCOPE }) {
      const client = registered.get(clientId);
      const company = companyId ?? client?.companyId;
      if (!USER_TYPES.includes(userType)) throw new OAuthSetupError("userType must be Company or Location");
      if (userType === "Company" && !agencies.has(company)) {
        throw new OAuthSetupError(`unknown company ${JSON.stringify(company)}: add it with addCompany`);
      }
      const code = secret("sim_code");
      run.codes.set(code, {
        userType,
        clientId,
        locationId: userType === "Company" ? undefined : locationId,
        companyId: company ?? "sim-company",
        redirectUri,
        scope,
        expiresAt: clock() + CODE_LIFETIME_MS,
        used: false,
      });
      return code;
    },
    /** Lifetime (`expires_in`) of access tokens issued from now on. */
    setTokenLifetime(seconds) {
      run.lifetimeSecs = seconds;
    },
    /**
     * Expires every access token issued so far (company ones too), or those of one location when
     * given (minted with /oauth/locationToken or not): the API answers 401.
     */
    expireAccessTokens: (locationId) => expire(ofLocation(locationId)),
    /** Expires every company access token (of one company, when given). */
    expireCompanyTokens: (companyId) => expire(ofCompany(companyId)),
    /** Revokes every live refresh token (company ones too, or one location's): the next refresh is refused. */
    revokeRefreshTokens: (locationId) => revoke(ofLocation(locationId)),
    /** Revokes every live company refresh token (of one company, when given). */
    revokeCompanyRefreshTokens: (companyId) => revoke(ofCompany(companyId)),
    deactivateLocation(locationId) {
      run.inactive.add(locationId);
    },
    activateLocation(locationId) {
      run.inactive.delete(locationId);
    },
    /** The location the consent page installs on (default: the client's own). */
    setConsentLocation(locationId) {
      run.consentLocation = locationId ?? null;
    },
    /** The company the consent page installs under (null: location consents unless asked). */
    setConsentCompany(companyId) {
      run.consentCompany = companyId ?? null;
    },
    /** Every token request so far: `{ grantType, status, error }` (see README.md). */
    grants: () => structuredClone(run.grants),
    /** Every credential the simulator knows: codes, access and refresh tokens, client secrets. */
    secrets: () => [
      ...run.codes.keys(),
      ...run.accessTokens.keys(),
      ...run.refreshTokens.keys(),
      ...[...registered.values()].map((client) => client.secret),
    ],
    /** Forgets codes, tokens, grants, inactive locations, consent choices and lifetime changes; keeps clients, companies. */
    reset() {
      run = fresh();
    },
  };
}

/** API routes: the token endpoint and the consent page take no bearer token. */
export const oauthRoutes = [
  {
    method: "POST",
    path: "/oauth/token",
    auth: false,
    body: "form",
    faultLocation: ({ form, oauth }) => oauth.grantLocation(form),
    handler: ({ body, oauth }) => oauth.token(body),
  },
  {
    method: "GET",
    path: "/oauth/chooselocation",
    auth: false,
    body: "none",
    handler: ({ query, oauth }) => oauth.chooseLocation(query),
  },
];

const badRequest = (message) => apiError(400, message, { error: "Bad Request" });
const isString = (value) => typeof value === "string" && value !== "";

function addClient({ sim, body }) {
  if (!isPlainObject(body) || !isString(body.clientId) || !isString(body.secret)) {
    return badRequest("expected {clientId, secret, locationId?, companyId?}");
  }
  sim.oauth.addClient(body.clientId, body);
  return ok(201, { clientId: body.clientId });
}

function issueCode({ sim, body }) {
  const forCompany = isPlainObject(body) && body.userType === "Company";
  if (!isPlainObject(body) || !isString(body.clientId) || !(forCompany || isString(body.locationId))) {
    return badRequest(
      'expected {clientId, locationId, redirectUri?, scope?} or {clientId, userType: "Company", companyId?, ...}',
    );
  }
  try {
    return ok(201, { code: sim.oauth.issueCode(body) });
  } catch (err) {
    if (err instanceof OAuthSetupError) return badRequest(err.message);
    throw err;
  }
}

function setLifetime({ sim, body }) {
  if (!isPlainObject(body) || !Number.isInteger(body.seconds) || body.seconds < 1) {
    return badRequest("expected {seconds} (a positive integer)");
  }
  sim.oauth.setTokenLifetime(body.seconds);
  return ok(204);
}

const given = (body, name) => (isPlainObject(body) && isString(body[name]) ? body[name] : undefined);

/** `{ companyId }`: that company's company tokens; else `{ locationId? }` as `byLocation`. */
const byHolder = (body, byLocation, byCompany) =>
  given(body, "companyId") === undefined ? byLocation(given(body, "locationId")) : byCompany(given(body, "companyId"));

/** Control routes under /__control/oauth/ (see the simulator README). */
export const oauthControlRoutes = [
  { method: "POST", path: "/__control/oauth/clients", handler: addClient },
  { method: "POST", path: "/__control/oauth/codes", handler: issueCode },
  { method: "POST", path: "/__control/oauth/lifetime", handler: setLifetime },
  {
    method: "POST",
    path: "/__control/oauth/expire",
    handler: ({ sim, body }) =>
      ok(200, { expired: byHolder(body, sim.oauth.expireAccessTokens, sim.oauth.expireCompanyTokens) }),
  },
  {
    method: "POST",
    path: "/__control/oauth/revoke",
    handler: ({ sim, body }) =>
      ok(200, { revoked: byHolder(body, sim.oauth.revokeRefreshTokens, sim.oauth.revokeCompanyRefreshTokens) }),
  },
  {
    method: "POST",
    path: "/__control/oauth/locations/:locationId/deactivate",
    handler: ({ sim, params }) => (sim.oauth.deactivateLocation(params.locationId), ok(204)),
  },
  {
    method: "POST",
    path: "/__control/oauth/locations/:locationId/activate",
    handler: ({ sim, params }) => (sim.oauth.activateLocation(params.locationId), ok(204)),
  },
  { method: "GET", path: "/__control/oauth/grants", handler: ({ sim }) => ok(200, sim.oauth.grants()) },
];
