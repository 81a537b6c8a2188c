// The product (build/index.js) run on the production KV model (./kv-model.js): an entry module
// for Miniflare whose default Worker and Durable Object classes `Location` and `Directory` extend the product's and
// hand it an env whose SYNC_KV is the real binding seen from one Cloudflare location:
// - requests read through "edge" (or round-robin through the locations listed in the binding
//   KV_MODEL_EDGES, such as "edge-a,edge-b"), the scheduled handler through "cron", and the
//   Durable Object through "do";
// - KV_MODEL_CACHE_MS and KV_MODEL_LIST_LAG_MS (bindings, optional) set the model's windows.
// It also answers, without calling the product:
// - GET /__kvmodel/ops: the model's operation counts, `{ [location]: { get, put, delete, list, refused } }`;
// - POST /__kvmodel/reset: zeroes the counts and drops every location's caches;
// - GET /__kvmodel/directory: `{ requests }`, the fetches the Directory Durable Object has served
//   in this isolate (kept outside the object, so that its eviction does not reset the count).
// How env reaches the Wasm: worker-build's shim calls `exports.fetch(request, this.env, this.ctx)`
// (and the same for `scheduled`) with the entrypoint instance's `env`, so each invocation sets
// `this.env` before calling the product; the Durable Object's Rust constructor takes
// `(state, env)` and keeps that env, so its env is wrapped once, in the constructor.

import Product, { Directory as ProductDirectory, Location as ProductLocation } from "../../build/index.js";
import { kvOps, productionKv, resetKvModel } from "./kv-model.js";

const MODEL_PREFIX = "/__kvmodel/";
/** The bindings that configure the model; the product never sees them. */
const MODEL_BINDINGS = ["KV_MODEL_EDGES", "KV_MODEL_CACHE_MS", "KV_MODEL_LIST_LAG_MS"];

let requestsSeen = 0;
/** Fetches the Directory served (a module global: the object itself may be evicted and made again). */
let directoryRequests = 0;

/** The model's windows from the bindings (defaults: production's 60 s cache, 10 s list lag). */
function modelOptions(env) {
  const number = (name, fallback) => (env[name] === undefined ? fallback : Number(env[name]));
  return { cacheMs: number("KV_MODEL_CACHE_MS", 60_000), listLagMs: number("KV_MODEL_LIST_LAG_MS", 10_000) };
}

/** `env` as the product sees it from `location`: SYNC_KV through the model, the model's bindings gone. */
function productEnv(env, location) {
  const product = { ...env };
  for (const name of MODEL_BINDINGS) delete product[name];
  if (env.SYNC_KV) product.SYNC_KV = productionKv(env.SYNC_KV, location, modelOptions(env));
  return product;
}

/** The edge location that serves the next request (round-robin over KV_MODEL_EDGES). */
function nextEdge(env) {
  const edges = String(env.KV_MODEL_EDGES ?? "edge").split(",").map((edge) => edge.trim()).filter(Boolean);
  requestsSeen += 1;
  return edges[(requestsSeen - 1) % edges.length] ?? "edge";
}

/** The model's own routes. */
function modelRoute(request, path) {
  if (path === `${MODEL_PREFIX}ops` && request.method === "GET") return Response.json(kvOps());
  if (path === `${MODEL_PREFIX}directory` && request.method === "GET") return Response.json({ requests: directoryRequests });
  if (path === `${MODEL_PREFIX}reset` && request.method === "POST") {
    resetKvModel();
    return Response.json({ reset: true });
  }
  return Response.json({ error: "not_found", message: `the KV model has no route ${request.method} ${path}` }, { status: 404 });
}

export default class ProductOnProductionKv extends Product {
  constructor(ctx, env) {
    super(ctx, env);
    this.platformEnv = env;
  }

  fetch(request) {
    const path = new URL(request.url).pathname;
    if (path.startsWith(MODEL_PREFIX)) return modelRoute(request, path);
    this.env = productEnv(this.platformEnv, nextEdge(this.platformEnv));
    return super.fetch(request);
  }

  scheduled(controller) {
    this.env = productEnv(this.platformEnv, "cron");
    return super.scheduled(controller);
  }
}

export class Location extends ProductLocation {
  constructor(state, env) {
    super(state, productEnv(env, "do"));
    this.testState = state;
  }

  /**
   * `POST /__test/sql` `{query, bindings}` runs one statement on the Durable Object's own SQLite
   * and answers its rows: how a test damages a stored row, which nothing in the product can do.
   * Reached only from Node (`mf.getDurableObjectNamespace`), never through the Worker.
   * `GET /__test/alarm` answers `{ at }` (the alarm set, or null) and `DELETE /__test/alarm`
   * drops it: how a test loses an alarm, which production can (an alarm given up after its
   * retries), and nothing in the product does.
   */
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/__test/alarm" && request.method === "DELETE") {
      await this.testState.storage.deleteAlarm();
      return Response.json({ at: null });
    }
    if (path === "/__test/alarm") return Response.json({ at: await this.testState.storage.getAlarm() });
    if (path !== "/__test/sql") return super.fetch(request);
    const { query, bindings = [] } = await request.json();
    return Response.json(this.testState.storage.sql.exec(query, ...bindings).toArray());
  }
}

/** The directory of connections, on the same model ("do"), its fetches counted. */
export class Directory extends ProductDirectory {
  constructor(state, env) {
    super(state, productEnv(env, "do"));
  }

  fetch(request) {
    directoryRequests += 1;
    return super.fetch(request);
  }
}
