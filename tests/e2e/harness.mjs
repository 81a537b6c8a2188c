// End-to-end harness: runs the built worker (build/index.js + Wasm) inside workerd through
// Miniflare, with its Durable Objects bound for real (LOCATIONS, class Location, SQLite) and its
// KV namespace either seen through the production KV model (tests/support/prodkv-worker.js:
// per-location caches up to 60 s stale, lagging lists, one write per key per second) or as
// Miniflare's own strongly consistent KV; beside the Contacts API simulator. State lives on disk
// (a temporary directory unless `persist` names one), so that the runtime can be restarted
// without losing it. Signs webhooks the way SightMill does, captures everything the worker logs,
// and reads the worker's state through its operator API, as an operator would.
//
// The KV flavour defaults to "production"; SIGHTMILL_TEST_KV=miniflare runs the suites on
// Miniflare's KV instead.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { startSimulator } from "../simulator/server.mjs";
import { sightmillEvent, sign, signedDelivery } from "../support/webhooks.mjs";

export { sign };

export const LOCATION = "loc-e2e";
export const TOKEN = "pit-e2e-0123456789abcdef";
export const SECRET = `whsec_${Buffer.from("sightmill-e2e-signing-key-32byte").toString("base64")}`;
export const WEBHOOK_PATH = "/webhooks/sightmill";
/** Two read API keys (several may be configured) and an operator API key. */
export const READ_KEYS = ["read-key-e2e-0123456789abcdef", "read-key-e2e-fedcba9876543210"];
export const ADMIN_KEY = "admin-key-e2e-0123456789abcdef";
/** The KV flavours startWorld knows. */
export const KV_FLAVOURS = ["production", "miniflare"];
/** startWorld's `duplicates` -> the default location's "Allow Duplicate Contact" setting. */
const DUPLICATE_SETTINGS = { allow: true, refuse: false };
/** The named edge cache the read API keeps answers in (emptied by reset()). */
const READ_CACHE = "sightmill-sync-read";
const BASE = "http://worker.test";
/** The repository's root: module names and script paths are relative to it. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCRIPTS = {
  production: path.join(ROOT, "tests/support/prodkv-worker.js"),
  miniflare: path.join(ROOT, "build/index.js"),
};
const DEFAULT_KV = process.env.SIGHTMILL_TEST_KV ?? "production";
/** The operator console's built assets (scripts/build.sh), served as wrangler's [assets] would. */
const ASSETS = path.join(ROOT, "public");
/** The operator status fields that describe stored state (not the clock). */
const STATUS_STATE = ["pending", "due_now", "parked", "stale_dropped", "last_cron_run", "rate_limited_until", "tokens", "mapping"];
/** A Durable Object's own database in Miniflare's state directory: 64 hex digits of its id. */
const OBJECT_DATABASE = /^[0-9a-f]{64}\.sqlite$/;

/** The worker's settings: the tests' defaults with `vars` over them (undefined removes one). */
function workerBindings(sim, vars) {
  const all = {
    GHL_LOCATION_ID: LOCATION,
    CONTACTS_API_BASE: sim.url,
    WEBHOOK_SECRETS: SECRET,
    CONTACTS_API_TOKEN: TOKEN,
    API_TIMEOUT_MS: "2000",
    ADMIN_API_KEYS: ADMIN_KEY,
    READ_API_KEYS: READ_KEYS.join(" "),
    // Seconds instead of minutes, so that tests can drive retries.
    RETRY_SCHEDULE: "1s,1s,1s",
    OAUTH_BASE: sim.url,
    OAUTH_INSTALL_URL: `${sim.url}/oauth/chooselocation`,
    ...vars,
  };
  return dropUndefined(all);
}

const dropUndefined = (object) => Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));

/** Miniflare's options for one run of the runtime on the state in `dir`. */
function runtimeOptions({ kv, bindKv, bindings, edges, kvModel, dir, logs }) {
  const production = kv === "production";
  const modelBindings = production
    ? dropUndefined({
        KV_MODEL_EDGES: edges.join(","),
        KV_MODEL_CACHE_MS: kvModel.cacheMs === undefined ? undefined : String(kvModel.cacheMs),
        KV_MODEL_LIST_LAG_MS: kvModel.listLagMs === undefined ? undefined : String(kvModel.listLagMs),
      })
    : {};
  return {
    modules: true,
    scriptPath: SCRIPTS[kv],
    modulesRoot: ROOT,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
    ],
    compatibilityDate: "2026-04-26",
    kvNamespaces: bindKv ? ["SYNC_KV"] : [],
    durableObjects: {
      LOCATIONS: { className: "Location", useSQLite: true },
      DIRECTORY: { className: "Directory", useSQLite: true },
    },
    kvPersist: path.join(dir, "kv"),
    durableObjectsPersist: path.join(dir, "do"),
    unsafeTriggerHandlers: true,
    ...(existsSync(ASSETS) ? { assets: { directory: ASSETS, routerConfig: { has_user_worker: true } } } : {}),
    bindings: { ...bindings, ...modelBindings },
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (chunk) => logs.push(chunk.toString()));
      stderr.on("data", (chunk) => logs.push(chunk.toString()));
    },
  };
}

/** Starts a runtime; if it fails to start, the error carries what the runtime logged. */
async function startRuntime(options, logs) {
  const mf = new Miniflare(options);
  try {
    await mf.ready;
  } catch (error) {
    error.message += `\nruntime output:\n${logs.join("").slice(-4000)}`;
    await mf.dispose().catch(() => {});
    throw error;
  }
  return mf;
}

/** Adds the counts `more` (`{ location: { op: n } }`) into `total`. */
function addOps(total, more) {
  for (const [location, ops] of Object.entries(more ?? {})) {
    total[location] ??= {};
    for (const [op, n] of Object.entries(ops)) total[location][op] = (total[location][op] ?? 0) + n;
  }
  return total;
}

/** Parses a response body as JSON, or null when it is empty or not JSON. */
function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/**
 * The simulator's `locations` for a world: the suite's own (`given`) with the default location's
 * duplicate setting set to `duplicates` ("allow" or "refuse"), which every suite must choose: the
 * API's default is undocumented and the product must be exact under both.
 */
function worldLocations(duplicates, given = {}) {
  if (!Object.hasOwn(DUPLICATE_SETTINGS, duplicates)) {
    throw new Error(
      `startWorld: duplicates must be "allow" or "refuse" (the default location's "Allow Duplicate Contact" setting), not ${JSON.stringify(duplicates)}`,
    );
  }
  const allowDuplicates = DUPLICATE_SETTINGS[duplicates];
  const own = given[LOCATION] ?? {};
  if (own.allowDuplicates !== undefined && own.allowDuplicates !== allowDuplicates) {
    throw new Error(`startWorld: simulator.locations[${JSON.stringify(LOCATION)}].allowDuplicates contradicts duplicates: "${duplicates}"`);
  }
  return { ...given, [LOCATION]: { ...own, allowDuplicates } };
}

/**
 * Starts the simulator and the worker. Options:
 * - `duplicates` (required): "allow" or "refuse", the default location's duplicate setting;
 * - `vars` override the worker's settings (a value of `undefined` removes one);
 * - `simulator` is passed to startSimulator;
 * - `bindKv: false` starts the worker without its KV namespace (a broken deployment);
 * - `kv`: "production" (the production KV model; the default) or "miniflare";
 * - `persist`: a directory for the state (KV and Durable Objects, in `gen-N/` under it), kept
 *   after close(); without it a temporary directory is used and removed on close();
 * - `edges`: the locations requests read KV through, in turn (production model; default ["edge"]);
 * - `kvModel`: `{ cacheMs, listLagMs }` for the production model (defaults 60 s and 10 s).
 */
export async function startWorld({
  duplicates,
  vars = {},
  simulator = {},
  bindKv = true,
  kv = DEFAULT_KV,
  persist,
  edges = ["edge"],
  kvModel = {},
} = {}) {
  if (!KV_FLAVOURS.includes(kv)) throw new Error(`startWorld: kv must be one of ${KV_FLAVOURS.join(", ")}, not ${kv}`);
  const sim = await startSimulator({
    tokens: { [TOKEN]: LOCATION },
    ...simulator,
    locations: worldLocations(duplicates, simulator.locations),
  });
  const root = persist ?? mkdtempSync(path.join(os.tmpdir(), "sightmill-world-"));
  let generation = 0;
  const stateDir = () => path.join(root, `gen-${generation}`);
  let bindings = workerBindings(sim, vars);
  const logs = [];
  const options = () => runtimeOptions({ kv, bindKv, bindings, edges, kvModel, dir: stateDir(), logs });

  let mf;
  try {
    mf = await startRuntime(options(), logs);
  } catch (error) {
    await sim.close();
    if (!persist) rmSync(root, { recursive: true, force: true });
    throw error;
  }
  /** The KV namespace of the runtime now running (null when none is bound). */
  let kvNamespace = bindKv ? await mf.getKVNamespace("SYNC_KV") : null;
  /** Set while the runtime restarts; calls made meanwhile wait for it. */
  let restarting = null;
  /** The model's counts from runtimes that are gone (each restart starts a fresh isolate). */
  let pastOps = {};

  const runtime = async () => {
    while (restarting) await restarting;
    return mf;
  };
  const dispatch = async (urlPath, init) => (await runtime()).dispatchFetch(`${BASE}${urlPath}`, init);
  const currentOps = async () => {
    if (kv !== "production") return {};
    const response = await mf.dispatchFetch(`${BASE}/__kvmodel/ops`);
    return response.json();
  };
  /** Runs `change` (which replaces or reconfigures the runtime) with callers held until it is done. */
  const whileRestarting = async (change) => {
    while (restarting) await restarting;
    restarting = (async () => {
      pastOps = addOps(pastOps, await currentOps().catch(() => ({})));
      await change();
      kvNamespace = bindKv ? await mf.getKVNamespace("SYNC_KV") : null;
    })();
    try {
      await restarting;
    } finally {
      restarting = null;
    }
  };

  const world = {
    sim,
    kvFlavour: kv,
    /** The Miniflare instance now running (a restart replaces it). */
    get mf() {
      return mf;
    },
    /**
     * The KV namespace itself, strongly consistent: the truth behind the production model (a test
     * reading it sees what every location will see once their caches age out). Only tokens,
     * idempotency keys and read versions live there now.
     */
    get kv() {
      return kvNamespace;
    },
    /** The state directory in use. */
    get stateDir() {
      return stateDir();
    },
    logs: () => logs.join(""),
    /** The runtime's own HTTP address (what a browser opens), e.g. `http://127.0.0.1:PORT/`. */
    async url() {
      return (await (await runtime()).ready).toString();
    },

    /** Restarts the worker with `vars` changed (undefined removes one); KV, Durable Objects and the simulator keep their state. */
    async reconfigure(changed) {
      bindings = workerBindings(sim, { ...bindings, ...changed });
      await whileRestarting(() => mf.setOptions(options()));
    },
    /** Stops the runtime and starts it again on the same state directory (the simulator keeps running). */
    async restart() {
      await whileRestarting(async () => {
        await mf.dispose();
        mf = await startRuntime(options(), logs);
      });
    },

    fetch: (urlPath, init) => dispatch(urlPath, init),
    /** Signs and posts a webhook; `overrides` can break any part of it. */
    async deliver(event, overrides = {}) {
      const request = signedDelivery(SECRET, event, overrides);
      const response = await dispatch(WEBHOOK_PATH, request);
      const text = await response.text();
      return { status: response.status, headers: response.headers, json: parseJson(text), text, id: request.id };
    },
    /** The webhook's record as the operator API shows it (`GET /admin/events/{id}`), or null if unknown. */
    async record(id) {
      const { status, json } = await world.admin("GET", `events/${encodeURIComponent(id)}`);
      if (status === 404) return null;
      if (status !== 200) throw new Error(`GET /admin/events/${id} answered ${status}: ${JSON.stringify(json)}`);
      return json;
    },
    /** Waits until the webhook's first attempt is over (finished, parked, or rescheduled with an error). */
    async settle(id, { timeoutMs = 5000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const record = await world.record(id);
        if (record && (record.state !== "pending" || record.last_error)) return record;
        if (Date.now() > deadline) throw new Error(`webhook ${id} did not settle: ${JSON.stringify(record)}`);
        await sleep(10);
      }
    },
    /** Delivers a webhook and waits for its first attempt; returns the answer and the record. */
    async deliverAndSettle(event, overrides = {}) {
      const answer = await world.deliver(event, overrides);
      if (answer.status !== 202) return { answer, record: await world.record(answer.id) };
      return { answer, record: await world.settle(answer.id) };
    },
    /**
     * What the Durable Object keeps for one SightMill contact (`GET /admin/contacts/{id}`):
     * `{ contact: link|null, notes: { id: link }, tasks: { id: link }, tags: { tag: { present, updated_at } } }`.
     */
    async links(smContactId) {
      const { status, json } = await world.admin("GET", `contacts/${encodeURIComponent(smContactId)}`);
      if (status !== 200) throw new Error(`GET /admin/contacts/${smContactId} answered ${status}: ${JSON.stringify(json)}`);
      return json;
    },
    /** Runs one SQL statement on the location's Durable Object (the production KV model's wrapper has the hook; on Miniflare's KV it is missing). */
    async sql(query, ...bindings) {
      const namespace = await (await runtime()).getDurableObjectNamespace("LOCATIONS");
      const stub = namespace.get(namespace.idFromName(LOCATION));
      const response = await stub.fetch("http://location.test/__test/sql", { method: "POST", body: JSON.stringify({ query, bindings }) });
      if (!response.ok) throw new Error(`sql answered ${response.status}: ${await response.text()}`);
      return response.json();
    },
    /** The operator's status (`GET /admin/status`). */
    async status() {
      const { status, json } = await world.admin("GET", "status");
      if (status !== 200) throw new Error(`GET /admin/status answered ${status}: ${JSON.stringify(json)}`);
      return json;
    },
    /** Runs the scheduled (cron) handler once, as the cron trigger would. */
    async cron() {
      const worker = await (await runtime()).getWorker();
      await worker.scheduled({ cron: "* * * * *" });
    },
    /** Calls the operator API with the admin key (or `key`). */
    async admin(method, urlPath, { body, key = ADMIN_KEY } = {}) {
      const headers = key ? { authorization: `Bearer ${key}` } : {};
      const init = { method, headers };
      if (body !== undefined) {
        init.body = typeof body === "string" ? body : JSON.stringify(body);
        headers["content-type"] = "application/json";
      }
      const response = await dispatch(`/admin/${urlPath}`, init);
      const text = await response.text();
      return { status: response.status, json: text ? JSON.parse(text) : null };
    },
    /** Every key in KV (the truth, not a location's view), in order. */
    async kvKeys() {
      const names = [];
      let cursor;
      do {
        const listed = await world.kv.list({ cursor });
        names.push(...listed.keys.map((key) => key.name));
        cursor = listed.list_complete ? undefined : listed.cursor;
      } while (cursor);
      return names;
    },
    /** Every KV entry (the truth) as `[name, value, metadata]`, in key order. */
    async kvEntries() {
      const entries = [];
      for (const name of await world.kvKeys()) {
        const { value, metadata } = await world.kv.getWithMetadata(name);
        entries.push([name, value, metadata ?? null]);
      }
      return entries;
    },
    /** How many Durable Objects have a database on disk (one is made when an object first stores something). */
    durableObjectsOnDisk() {
      const dir = path.join(stateDir(), "do");
      if (!existsSync(dir)) return 0;
      const files = readdirSync(dir, { recursive: true }).map((file) => path.basename(String(file)));
      return files.filter((file) => OBJECT_DATABASE.test(file)).length;
    },
    /**
     * What the worker holds, as an operator sees it: KV's entries, the status counters that
     * describe state, the pending and parked listings, and the records of `webhooks` and the
     * links of `contacts` (SightMill ids).
     */
    async storedState({ webhooks = [], contacts = [] } = {}) {
      const status = await world.status();
      const listing = async (state) => (await world.admin("GET", `events?state=${state}&limit=100`)).json;
      const state = {
        kv: await world.kvEntries(),
        status: Object.fromEntries(STATUS_STATE.map((field) => [field, status[field]])),
        pending: await listing("pending"),
        parked: await listing("parked"),
        records: {},
        links: {},
      };
      for (const id of webhooks) state.records[id] = await world.record(id);
      for (const id of contacts) state.links[id] = await world.links(id);
      return state;
    },
    /**
     * Asserts that nothing is stored: KV is empty, and the Durable Object holds no webhook, pending
     * or parked (through the operator API), or, where the operator API cannot answer (turned off
     * or misconfigured), that no Durable Object was ever given a database.
     */
    async assertNothingStored(message = "nothing stored") {
      assert.deepEqual(await world.kvKeys(), [], `${message}: KV is empty`);
      const { status, json } = await world.admin("GET", "status");
      if (status !== 200) {
        assert.equal(world.durableObjectsOnDisk(), 0, `${message}: no Durable Object has storage`);
        return;
      }
      assert.deepEqual([json.pending, json.parked], [0, 0], `${message}: nothing pending or parked`);
      for (const state of ["pending", "parked"]) {
        const listed = (await world.admin("GET", `events?state=${state}`)).json.events;
        assert.deepEqual(listed, [], `${message}: no ${state} webhook listed`);
      }
    },
    /**
     * KV operations the product made through the production model since the world started or was
     * reset, by location ("edge"..., "cron", "do") and type; null on Miniflare's KV.
     */
    async kvOps() {
      if (kv !== "production") return null;
      return addOps(addOps({}, pastOps), await currentOps());
    },
    /**
     * A clean world: the simulator emptied, the runtime restarted on a fresh state directory (KV,
     * the Durable Objects and the model's caches and counts all new), the read cache emptied.
     */
    async reset() {
      sim.reset();
      const old = stateDir();
      generation += 1;
      await whileRestarting(() => mf.setOptions(options()));
      pastOps = {};
      rmSync(old, { recursive: true, force: true });
      await mf.purgeCache(READ_CACHE);
      logs.length = 0;
    },
    async close() {
      while (restarting) await restarting.catch(() => {});
      await mf.dispose();
      await sim.close();
      if (persist) return;
      // Twice, a moment apart: a stopped runtime may still be flushing its files.
      rmSync(root, { recursive: true, force: true });
      await sleep(200);
      rmSync(root, { recursive: true, force: true });
    },
  };
  return world;
}

/** A contact.created / contact.updated event. */
export const contactEvent = sightmillEvent;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The location's lists a mapping reads (custom fields, workflows, campaigns): not contact calls. */
export const LIST_ROUTES = ["GET /locations/:locationId/customFields", "GET /workflows/", "GET /campaigns/"];

/** Total API calls the simulator received, the reads of the location's lists aside. */
export function apiCalls(sim) {
  return Object.entries(sim.counts())
    .filter(([route]) => !LIST_ROUTES.includes(route))
    .reduce((sum, [, n]) => sum + n, 0);
}
