// A stateful simulator of the GoHighLevel / LeadConnector Contacts API v2 for end-to-end tests:
// checks the Version header and bearer token, rate-limits per location (each with its own
// windows and, if set, its own limits), validates bodies, keeps contacts in memory, serves OAuth
// for locations and agencies, records every request and injects faults on demand (for a route,
// a location, or both). A control interface under /__control/ steers it from other processes.
// See README.md.

import http from "node:http";
import { createFaults, normaliseFault } from "./faults.mjs";
import {
  apiError,
  isJsonContentType,
  MAX_BODY_BYTES,
  notFound,
  readBody,
  send,
  tryParseJson,
  defaultErrorBody,
} from "./http.mjs";
import { createInflight } from "./inflight.mjs";
import { createRandom } from "./prng.mjs";
import { checkRateLimit, createRateLimiter, RateLimitError } from "./ratelimit.mjs";
import { createRouter } from "./router.mjs";
import { appointmentRoutes, seedAppointment } from "./routes/appointments.mjs";
import { contactRoutes } from "./routes/contacts.mjs";
import { addCustomField, customFieldRoutes } from "./routes/custom-fields.mjs";
import { followerRoutes } from "./routes/followers.mjs";
import { addFlow, flowRoutes } from "./routes/workflows.mjs";
import { controlRoutes } from "./routes/control.mjs";
import { assignBusiness, listRoutes } from "./routes/lists.mjs";
import { noteRoutes } from "./routes/notes.mjs";
import { searchRoutes } from "./routes/search.mjs";
import { tagRoutes } from "./routes/tags.mjs";
import { taskRoutes } from "./routes/tasks.mjs";
import { agencyControlRoutes, agencyRoutes } from "./routes/agency.mjs";
import { createOAuth, oauthControlRoutes, oauthRoutes } from "./routes/oauth.mjs";
import { createStore, snapshot } from "./store.mjs";

export const API_VERSION = "2021-07-28";
const CONTROL_PREFIX = "/__control/";
const UNMATCHED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/** Every API route the simulator serves: add route tables here. */
const API_ROUTES = [
  ...contactRoutes,
  ...noteRoutes,
  ...tagRoutes,
  ...taskRoutes,
  ...appointmentRoutes,
  ...listRoutes,
  ...customFieldRoutes,
  ...flowRoutes,
  ...followerRoutes,
  ...searchRoutes,
  ...oauthRoutes,
  ...agencyRoutes,
];

const unauthorized = (message) => apiError(401, message, { error: "Unauthorized" });

// ---- request pieces ---------------------------------------------------------------------------

function redactedHeaders(headers) {
  const copy = { ...headers };
  if (copy.authorization !== undefined) copy.authorization = "[redacted]";
  return copy;
}

/** Parses the body the way `route.body` ("json" | "form" | "none") says; `{ value }` or `{ error }`. */
function parseBody(route, req, raw) {
  const kind = route.body ?? (["POST", "PUT", "PATCH"].includes(req.method) ? "json" : "none");
  if (kind === "none") return { value: null };
  if (kind === "form") return { value: Object.fromEntries(new URLSearchParams(raw)) };
  if (raw.trim() === "") return { value: {} };
  if (!isJsonContentType(req.headers["content-type"])) {
    return { error: apiError(415, "Content-Type must be application/json", { error: "Unsupported Media Type" }) };
  }
  try {
    return { value: JSON.parse(raw) };
  } catch (err) {
    return { error: apiError(400, err.message) };
  }
}

function faultResult(fault) {
  return {
    status: fault.status,
    body: fault.body === undefined ? defaultErrorBody(fault.status) : fault.body,
    headers: fault.headers,
  };
}

export { RateLimitError };

/**
 * A location's settings `{ allowDuplicates, rateLimit }` (rateLimit: its own partial limits, or
 * null for the global ones) from `config`; what `config` leaves out stays as in `previous`.
 */
function normaliseLocation(given, previous = { allowDuplicates: true, rateLimit: null }) {
  const config = given ?? {};
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new RateLimitError("expected {allowDuplicates?, rateLimit?}");
  }
  const { allowDuplicates, rateLimit } = config;
  return {
    allowDuplicates: allowDuplicates === undefined ? previous.allowDuplicates : allowDuplicates !== false,
    rateLimit:
      rateLimit === undefined ? previous.rateLimit : rateLimit === null ? null : { ...checkRateLimit(rateLimit) },
  };
}

// ---- the simulator ------------------------------------------------------------------------------

/**
 * Starts the simulator. Options (all optional): port, host, tokens {token: locationId},
 * locations {locationId: {allowDuplicates, rateLimit}}, rateLimit {max, intervalMs, daily} (the
 * default for locations without their own), seed,
 * now (() => ms, the clock; default Date.now), oauth {clients, companies, tokenLifetimeSecs}
 * (routes/oauth.mjs, routes/agency.mjs).
 */
export async function startSimulator(options = {}) {
  const clock = options.now ?? Date.now;
  const seed = options.seed ?? 1;
  const tokens = new Map(Object.entries(options.tokens ?? {}));
  /** token -> the scopes it was given; a token not here has every scope. */
  const tokenScopes = new Map();
  const locations = new Map(
    Object.entries(options.locations ?? {}).map(([id, config]) => [id, normaliseLocation(config)]),
  );
  const apiRouter = createRouter(API_ROUTES);
  const controlRouter = createRouter([...controlRoutes, ...oauthControlRoutes, ...agencyControlRoutes]);
  const oauth = createOAuth({ clock, ...options.oauth });
  const faultRoutes = [...apiRouter.keys, ...UNMATCHED_METHODS.map((m) => `${m} <unmatched>`)];
  const inflight = createInflight();
  let rateLimit = { ...options.rateLimit };

  const newLimiter = () => createRateLimiter(rateLimit, clock, (id) => locations.get(id)?.rateLimit);

  let run; // everything reset() starts afresh
  function freshRun() {
    return {
      store: createStore(),
      idRandom: createRandom(seed),
      faults: createFaults(createRandom(seed ^ 0x5eed5eed)),
      limiter: newLimiter(),
      log: [],
      counts: new Map(),
    };
  }
  run = freshRun();

  const locationConfig = (id) => locations.get(id) ?? normaliseLocation();

  const bearerOf = (headers) => /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? "")?.[1];

  /**
   * The location a request acts for, as location-scoped faults see it: its route's own answer
   * (`faultLocation`, e.g. the OAuth routes'), none for other routes without auth, else the one
   * its bearer token was issued for (expired or not); null for none.
   */
  function requestLocation(match, headers, url, raw) {
    const route = match?.route;
    if (route?.faultLocation) {
      const form = Object.fromEntries(new URLSearchParams(route.body === "form" ? raw : ""));
      return route.faultLocation({ form, query: Object.fromEntries(url.searchParams), oauth });
    }
    if (route?.auth === false) return null; // (company routes name theirs)
    const token = bearerOf(headers);
    return token === undefined ? null : (tokens.get(token) ?? oauth.issuedFor(token));
  }

  /** Version header, then bearer token: `{ auth }` or `{ error }`. */
  function authenticate(headers) {
    if (headers.version !== API_VERSION) {
      return { error: apiError(401, "version header was not found.") };
    }
    const token = bearerOf(headers);
    if (token === undefined) return { error: unauthorized("Invalid JWT") };
    const locationId = tokens.get(token) ?? oauth.locationOf(token);
    if (locationId === undefined) return { error: unauthorized("Invalid token: access token is invalid") };
    return { auth: { token, locationId } };
  }

  /**
   * For the company routes: Version header, then a company access token: `{ auth: { token,
   * companyId, clientId, scope } }` or `{ error }` (a location token is refused as such).
   */
  function authenticateCompany(headers) {
    if (headers.version !== API_VERSION) return { error: apiError(401, "version header was not found.") };
    const token = bearerOf(headers);
    if (token === undefined) return { error: unauthorized("Invalid JWT") };
    const company = oauth.companyOf(token);
    if (company) return { auth: { token, ...company } };
    const isLocationToken = tokens.has(token) || oauth.locationOf(token) !== undefined;
    return {
      error: unauthorized(
        isLocationToken ? "This route needs an agency (Company) access token" : "Invalid token: access token is invalid",
      ),
    };
  }

  /** Runs one API request through auth, rate limit, body parsing and its handler. */
  function respond(match, req, url, raw) {
    if (!match) return notFound(req.method, url.pathname);
    const { route, params } = match;
    let auth = null;
    let limitHeaders = {};
    if (route.auth !== false && route.auth !== "company") {
      const checked = authenticate(req.headers);
      if (checked.error) return checked.error;
      auth = checked.auth;
      if (route.scope && !(tokenScopes.get(auth.token) ?? [route.scope]).includes(route.scope)) {
        return unauthorized("The token is not authorized for this scope.");
      }
      const limit = run.limiter.take(auth.locationId);
      limitHeaders = limit.headers;
      if (!limit.allowed) {
        const tooMany = apiError(429, "Too Many Requests");
        return { ...tooMany, headers: { ...limitHeaders, "Retry-After": String(limit.retryAfter) } };
      }
    }
    const withLimits = (result) => ({ ...result, headers: { ...limitHeaders, ...(result.headers ?? {}) } });
    const body = parseBody(route, req, raw);
    if (body.error) return withLimits(body.error);
    return withLimits(
      route.handler({
        params,
        origin: sim.url,
        query: Object.fromEntries(url.searchParams),
        body: body.value,
        auth,
        store: run.store,
        random: run.idRandom,
        now: clock,
        location: locationConfig,
        oauth,
        agency: route.auth === "company" ? authenticateCompany(req.headers) : undefined,
      }),
    );
  }

  function record(req, routeKey, raw) {
    const entry = {
      method: req.method,
      path: req.url,
      route: routeKey,
      status: 0,
      headers: redactedHeaders(req.headers),
      body: tryParseJson(raw),
      at: clock(),
      answeredAt: null,
    };
    run.log.push(entry);
    run.counts.set(routeKey, (run.counts.get(routeKey) ?? 0) + 1);
    return entry;
  }

  async function handleApi(req, res, url, raw) {
    const match = apiRouter.match(req.method, url.pathname);
    const routeKey = match ? match.route.key : `${req.method} <unmatched>`;
    const entry = record(req, routeKey, raw);
    const reply = (result) => {
      entry.status = result.status;
      entry.answeredAt = clock();
      send(res, result);
    };

    const fault = run.faults.take(routeKey, () => requestLocation(match, req.headers, url, raw));
    if (fault?.afterApply) return answerAfterApply(fault, respond(match, req, url, raw), res, reply);
    if (fault && fault.latencyMs > 0 && !(await inflight.delay(fault.latencyMs, res))) return;
    if (fault && (fault.hang || fault.status !== null)) {
      return fault.hang ? inflight.hang(res) : reply(faultResult(fault));
    }
    reply(respond(match, req, url, raw));
  }

  /**
   * An `afterApply` fault: the request was applied (`result`); its answer is then held for
   * `latencyMs` (a late answer), and is the fault's status, nothing at all (hang), or the real one.
   */
  async function answerAfterApply(fault, result, res, reply) {
    if (fault.latencyMs > 0 && !(await inflight.delay(fault.latencyMs, res))) return;
    if (fault.hang) return inflight.hang(res);
    reply(fault.status === null ? result : faultResult(fault));
  }

  function handleControl(req, res, url, raw) {
    const match = controlRouter.match(req.method, url.pathname);
    if (!match) return send(res, notFound(req.method, url.pathname));
    let body = null;
    if (raw.trim() !== "") {
      body = tryParseJson(raw);
      if (body === null) return send(res, apiError(400, "malformed JSON body"));
    }
    send(res, match.route.handler({ sim, body, params: match.params }));
  }

  async function onRequest(req, res) {
    try {
      const url = new URL(req.url, "http://simulator.invalid");
      const raw = await readBody(req);
      if (url.pathname.startsWith(CONTROL_PREFIX)) handleControl(req, res, url, raw);
      else await handleApi(req, res, url, raw);
    } catch (err) {
      const status = err.message === "request entity too large" ? 413 : 500;
      const message = status === 413 ? `request body over ${MAX_BODY_BYTES} bytes` : `simulator error: ${err.message}`;
      send(res, apiError(status, message));
    }
  }

  const server = http.createServer((req, res) => {
    onRequest(req, res);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });

  const { address, port } = server.address();
  const host = address.includes(":") ? `[${address}]` : address;
  let closing = null;

  const sim = {
    url: `http://${host}:${port}`,
    port,
    state: () => snapshot(run.store),
    seedAppointment: (contactId, fields) =>
      seedAppointment({ store: run.store, random: run.idRandom, now: clock }, contactId, fields),
    assignBusiness: (contactId, businessId) => assignBusiness(run.store, contactId, businessId),
    requests: () => structuredClone(run.log),
    counts: () => Object.fromEntries(run.counts),
    oauth,
    injectFault(spec) {
      const fault = normaliseFault(spec, faultRoutes);
      run.faults.add(fault);
      return { ...fault };
    },
    faults: () => run.faults.list(),
    clearFaults() {
      run.faults.clear();
      inflight.releaseHung();
    },
    reset() {
      inflight.releaseHung();
      run = freshRun();
      oauth.reset();
    },
    /** Adds a token for `locationId`; with `scopes`, routes that need another scope answer 401. */
    addToken(token, locationId, scopes) {
      tokens.set(token, locationId);
      if (scopes === undefined) tokenScopes.delete(token);
      else tokenScopes.set(token, [...scopes]);
    },
    /** Defines a custom field in `locationId` (`{ name, dataType, fieldKey?, picklistOptions?, model? }`). */
    seedCustomField: (locationId, fields) =>
      structuredClone(addCustomField({ store: run.store, random: run.idRandom }, locationId, fields)),
    /** Seeds a workflow (`kind` "workflow") or campaign ("campaign") `{ name, status? }` in `locationId`. */
    seedFlow: (kind, locationId, fields) =>
      structuredClone(addFlow({ store: run.store, random: run.idRandom, now: clock }, kind, locationId, fields)),
    revokeToken(token) {
      tokens.delete(token);
    },
    /** Changes the rate limits (partial `{ max, intervalMs, daily }`); windows start afresh. */
    setRateLimit(limits) {
      rateLimit = { ...rateLimit, ...checkRateLimit(limits) };
      run.limiter = newLimiter();
      return run.limiter.limits;
    },
    /**
     * Changes a location's settings: `allowDuplicates`, `rateLimit` (its own partial limits over
     * the global ones; null = the global ones). Left-out settings stay; new limits start its
     * windows afresh. Returns `{ allowDuplicates, rateLimit }` (the limits in force there).
     */
    setLocation(locationId, config) {
      locations.set(locationId, normaliseLocation(config, locationConfig(locationId)));
      if (config?.rateLimit !== undefined) run.limiter.forget(locationId);
      return { allowDuplicates: locationConfig(locationId).allowDuplicates, rateLimit: run.limiter.limitsFor(locationId) };
    },
    close() {
      closing ??= new Promise((resolve) => {
        inflight.closeAll();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
  return sim;
}
