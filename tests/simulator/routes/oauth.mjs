// OAuth 2.0 for the simulator: the token endpoint (POST /oauth/token, form-encoded, grant types
// client_credentials, authorization_code and refresh_token), the marketplace consent page
// (GET /oauth/chooselocation, which redirects back with a code), and the state behind them.
// Issued access tokens are bearer tokens for the API routes until their lifetime ends; refresh
// tokens rotate (each use spends the old one); spent, expired or revoked grants and inactive
// locations are refused with `{ error: "invalid_grant", error_description }` as OAuth servers do.
// Tests steer it through `sim.oauth` (in process) or /__control/oauth/... (another process).

import { randomBytes } from "node:crypto";
import { apiError, ok } from "../http.mjs";
import { isPlainObject } from "../validate.mjs";

export const DEFAULT_TOKEN_LIFETIME_SECS = 86_399;
const CODE_LIFETIME_MS = 10 * 60_000;
const REFRESH_LIFETIME_MS = 365 * 24 * 3_600_000;
const DEFAULT_SCOPE = "contacts.readonly contacts.write";

const oauthError = (status, error, description) => ({ status, body: { error, error_description: description } });
const secret = (prefix) => `${prefix}_${randomBytes(18).toString("hex")}`;

/**
 * The OAuth state. Options: `clock` (() => ms), `clients` {clientId: {secret, locationId?,
 * companyId?}} (locationId: the location a client-credentials grant and the consent page act
 * for), `tokenLifetimeSecs` (default 86399).
 */
export function createOAuth({ clock = Date.now, clients = {}, tokenLifetimeSecs } = {}) {
  const defaultLifetime = tokenLifetimeSecs ?? DEFAULT_TOKEN_LIFETIME_SECS;
  const registered = new Map(Object.entries(clients));
  let run;
  function fresh() {
    return {
      lifetimeSecs: defaultLifetime,
      codes: new Map(), // code -> { clientId, locationId, companyId, redirectUri, scope, expiresAt, used }
      accessTokens: new Map(), // token -> { locationId, expiresAt }
      refreshTokens: new Map(), // token -> { clientId, locationId, companyId, scope, expiresAt, spent, revoked }
      inactive: new Set(),
      consentLocation: null,
      grants: [], // { grantType, status, error }
    };
  }
  run = fresh();

  function issue({ clientId, locationId, companyId, scope, withRefresh }) {
    const accessToken = secret("sim_at");
    run.accessTokens.set(accessToken, { locationId, expiresAt: clock() + run.lifetimeSecs * 1000 });
    const body = {
      access_token: accessToken,
      token_type: "Bearer",
      expires_in: run.lifetimeSecs,
      scope,
      userType: "Location",
      locationId,
      companyId,
      userId: "sim-user",
    };
    if (withRefresh) {
      body.refresh_token = secret("sim_rt");
      run.refreshTokens.set(body.refresh_token, {
        clientId,
        locationId,
        companyId,
        scope,
        expiresAt: clock() + REFRESH_LIFETIME_MS,
        spent: false,
        revoked: false,
      });
    }
    return ok(200, body);
  }

  const notActive = (locationId) => run.inactive.has(locationId) && oauthError(400, "invalid_grant", "Location is not active");

  function byCode(form, clientId) {
    const grant = run.codes.get(form.code ?? "");
    if (!grant || grant.clientId !== clientId) return oauthError(400, "invalid_grant", "Invalid authorization code");
    if (grant.used) return oauthError(400, "invalid_grant", "Authorization code has already been used");
    if (clock() > grant.expiresAt) return oauthError(400, "invalid_grant", "Authorization code has expired");
    if (grant.redirectUri && form.redirect_uri !== grant.redirectUri) {
      return oauthError(400, "invalid_grant", "redirect_uri does not match the one the code was issued for");
    }
    grant.used = true;
    return notActive(grant.locationId) || issue({ ...grant, clientId, withRefresh: true });
  }

  function byRefresh(form, clientId) {
    const grant = run.refreshTokens.get(form.refresh_token ?? "");
    if (!grant || grant.clientId !== clientId) return oauthError(400, "invalid_grant", "Invalid refresh token");
    if (grant.spent) return oauthError(400, "invalid_grant", "Refresh token has already been used");
    if (grant.revoked) return oauthError(400, "invalid_grant", "Refresh token has been revoked");
    if (clock() > grant.expiresAt) return oauthError(400, "invalid_grant", "Refresh token has expired");
    const inactive = notActive(grant.locationId);
    if (inactive) return inactive;
    grant.spent = true;
    return issue({ ...grant, clientId, withRefresh: true });
  }

  function byClient(client, clientId) {
    if (!client.locationId) return oauthError(400, "unauthorized_client", "This client is not bound to a location");
    return (
      notActive(client.locationId) ||
      issue({ clientId, locationId: client.locationId, companyId: client.companyId, scope: DEFAULT_SCOPE, withRefresh: false })
    );
  }

  function answer(form) {
    const client = registered.get(form.client_id ?? "");
    if (!client || form.client_secret !== client.secret) {
      return oauthError(401, "invalid_client", "Client authentication failed");
    }
    if (form.user_type !== undefined && form.user_type !== "Location") {
      return oauthError(400, "invalid_request", "only user_type Location is simulated");
    }
    switch (form.grant_type) {
      case "authorization_code":
        return byCode(form, form.client_id);
      case "refresh_token":
        return byRefresh(form, form.client_id);
      case "client_credentials":
        return byClient(client, form.client_id);
      case undefined:
        return oauthError(400, "invalid_request", "grant_type is required");
      default:
        return oauthError(400, "unsupported_grant_type", `grant_type ${form.grant_type} is not supported`);
    }
  }

  return {
    /** POST /oauth/token with the parsed form. */
    token(form) {
      const result = answer(form ?? {});
      run.grants.push({ grantType: form?.grant_type ?? null, status: result.status, error: result.body.error ?? null });
      return result;
    },
    /** GET /oauth/chooselocation: the user consents at once, for the consent location. */
    chooseLocation(query) {
      const client = registered.get(query.client_id ?? "");
      if (query.response_type !== "code" || !client || !query.redirect_uri || !query.scope) {
        return apiError(400, "response_type=code, a known client_id, redirect_uri and scope are required");
      }
      const locationId = run.consentLocation ?? client.locationId;
      if (!locationId) return apiError(400, "no location to install on: set one with setConsentLocation");
      const code = this.issueCode({ clientId: query.client_id, locationId, redirectUri: query.redirect_uri, scope: query.scope });
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
      if (form.grant_type === "client_credentials") return registered.get(form.client_id ?? "")?.locationId;
      return undefined;
    },
    /** The bearer token's location while it is valid, else undefined. */
    locationOf(token) {
      const issued = run.accessTokens.get(token);
      return issued && clock() < issued.expiresAt ? issued.locationId : undefined;
    },
    addClient(clientId, { secret: clientSecret, locationId, companyId }) {
      registered.set(clientId, { secret: clientSecret, locationId, companyId });
    },
    /** An authorization code, as the consent page would hand it to the redirect URI. */
    issueCode({ clientId, locationId, companyId, redirectUri, scope = DEFAULT_SCOPE }) {
      const code = secret("sim_code");
      const client = registered.get(clientId);
      run.codes.set(code, {
        clientId,
        locationId,
        companyId: companyId ?? client?.companyId ?? "sim-company",
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
    /** Expires every access token issued so far (of one location, when given): the API answers 401. */
    expireAccessTokens(locationId) {
      let n = 0;
      for (const issued of run.accessTokens.values()) {
        if (locationId === undefined || issued.locationId === locationId) {
          issued.expiresAt = clock() - 1;
          n += 1;
        }
      }
      return n;
    },
    /** Revokes every live refresh token (of one location, when given): the next refresh is refused. */
    revokeRefreshTokens(locationId) {
      let n = 0;
      for (const grant of run.refreshTokens.values()) {
        if (!grant.spent && (locationId === undefined || grant.locationId === locationId)) {
          grant.revoked = true;
          n += 1;
        }
      }
      return n;
    },
    deactivateLocation(locationId) {
      run.inactive.add(locationId);
    },
    activateLocation(locationId) {
      run.inactive.delete(locationId);
    },
    /** The location the consent page installs on (default: the client's own). */
    setConsentLocation(locationId) {
      run.consentLocation = locationId;
    },
    /** Every token request so far: `{ grantType, status, error }`. */
    grants: () => structuredClone(run.grants),
    /** Every credential the simulator knows: codes, access and refresh tokens, client secrets. */
    secrets: () => [
      ...run.codes.keys(),
      ...run.accessTokens.keys(),
      ...run.refreshTokens.keys(),
      ...[...registered.values()].map((client) => client.secret),
    ],
    /** Forgets codes, tokens, grants, inactive locations and lifetime changes; clients stay. */
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
  if (!isPlainObject(body) || !isString(body.clientId) || !isString(body.locationId)) {
    return badRequest("expected {clientId, locationId, redirectUri?, scope?}");
  }
  return ok(201, { code: sim.oauth.issueCode(body) });
}

function setLifetime({ sim, body }) {
  if (!isPlainObject(body) || !Number.isInteger(body.seconds) || body.seconds < 1) {
    return badRequest("expected {seconds} (a positive integer)");
  }
  sim.oauth.setTokenLifetime(body.seconds);
  return ok(204);
}

const locationOf = (body) => (isPlainObject(body) && isString(body.locationId) ? body.locationId : undefined);

/** Control routes under /__control/oauth/ (see the simulator README). */
export const oauthControlRoutes = [
  { method: "POST", path: "/__control/oauth/clients", handler: addClient },
  { method: "POST", path: "/__control/oauth/codes", handler: issueCode },
  { method: "POST", path: "/__control/oauth/lifetime", handler: setLifetime },
  {
    method: "POST",
    path: "/__control/oauth/expire",
    handler: ({ sim, body }) => ok(200, { expired: sim.oauth.expireAccessTokens(locationOf(body)) }),
  },
  {
    method: "POST",
    path: "/__control/oauth/revoke",
    handler: ({ sim, body }) => ok(200, { revoked: sim.oauth.revokeRefreshTokens(locationOf(body)) }),
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
