// The product (build/index.js) as scripts/bench.mjs runs it: both of its entry points, the Worker
// (the default export) and the location's Durable Object (`Location`), get a KV binding SYNC_KV
// that counts every operation by type (get, put, delete, list), so that the bench sees the whole
// product's KV use, the Durable Object's included. BENCH_KV chooses what is counted:
//   counted (the default): the simulated KV of `wrangler dev`, wrapped;
//   memory: an in-memory stub in the worker's own isolate, to show the product's CPU without the
//     simulated KV (a separate worker and SQLite database in the same workerd process, which
//     production does not have). The stub keeps values, metadata and expirations the way the KV
//     API returns them; its own cost is a few microseconds per operation.
// It also times the Durable Object: how many instances started, its fetches and alarms, and the
// wall time during which at least one of them was under way (awake), for the duration estimate.
// GET /__bench/counts answers all of it, from the Worker, without touching KV or the Durable
// Object, with the Directory's requests beside it. Under `wrangler dev` the Worker and its Durable Objects share one isolate, so these
// module-level counts are the product's.
import Product, { Directory as ProductDirectory, Location as ProductLocation } from "../../build/index.js";

/** Operations the product made, by kind. */
const kvCounts = { get: 0, put: 0, delete: 0, list: 0 };
/** The Durable Object as the wrapper saw it. */
const doCounts = { instances: 0, fetches: 0, alarms: 0, awake_ms: 0 };
/** The Directory as the wrapper saw it (its requests: fetches and alarms). */
const directoryCounts = { fetches: 0, alarms: 0 };
let underWay = 0;
let awakeSince = 0;

function enter() {
  if (underWay === 0) awakeSince = Date.now();
  underWay += 1;
}

function leave() {
  underWay -= 1;
  if (underWay === 0) doCounts.awake_ms += Date.now() - awakeSince;
}

/** Awake time so far, an invocation under way included. */
function awakeMs() {
  return doCounts.awake_ms + (underWay > 0 ? Date.now() - awakeSince : 0);
}

// ---- the in-memory stub (--kv memory) ----

const entries = new Map(); // key -> { value, metadata, expiration (s) }

function live(key) {
  const entry = entries.get(key);
  if (entry && entry.expiration !== undefined && entry.expiration * 1000 <= Date.now()) {
    entries.delete(key);
    return undefined;
  }
  return entry;
}

function decode(value, type) {
  if (value === undefined) return null;
  if (type === "json") return JSON.parse(value);
  if (type === "arrayBuffer") return new TextEncoder().encode(value).buffer;
  return value;
}

const memoryKv = {
  async get(key, options) {
    const type = typeof options === "string" ? options : options?.type;
    return decode(live(key)?.value, type);
  },
  async getWithMetadata(key, options) {
    const type = typeof options === "string" ? options : options?.type;
    const entry = live(key);
    return { value: decode(entry?.value, type), metadata: entry?.metadata ?? null };
  },
  async put(key, value, options = {}) {
    const text = typeof value === "string" ? value : new TextDecoder().decode(value);
    const expiration = options.expiration ?? (options.expirationTtl ? Math.floor(Date.now() / 1000) + options.expirationTtl : undefined);
    entries.set(key, { value: text, metadata: options.metadata ?? null, expiration });
  },
  async delete(key) {
    entries.delete(key);
  },
  async list({ prefix = "", limit = 1000, cursor } = {}) {
    const names = [...entries.keys()].filter((k) => k.startsWith(prefix) && live(k)).sort();
    const start = cursor ? Number(cursor) : 0;
    const page = names.slice(start, start + limit);
    const complete = start + limit >= names.length;
    return {
      keys: page.map((name) => {
        const { metadata, expiration } = entries.get(name);
        return { name, ...(metadata != null ? { metadata } : {}), ...(expiration ? { expiration } : {}) };
      }),
      list_complete: complete,
      ...(complete ? {} : { cursor: String(start + limit) }),
    };
  },
};

// ---- counting ----

/** `kv` with every operation counted by type (getWithMetadata is a get). */
function counting(kv) {
  return {
    get(...args) {
      kvCounts.get += 1;
      return kv.get(...args);
    },
    getWithMetadata(...args) {
      kvCounts.get += 1;
      return kv.getWithMetadata(...args);
    },
    put(...args) {
      kvCounts.put += 1;
      return kv.put(...args);
    },
    delete(...args) {
      kvCounts.delete += 1;
      return kv.delete(...args);
    },
    list(...args) {
      kvCounts.list += 1;
      return kv.list(...args);
    },
  };
}

const wrapped = new WeakMap();

/** The product's env with SYNC_KV counted (and in memory when BENCH_KV=memory). */
function benchEnv(env) {
  if (!env.SYNC_KV) return env; // a deployment without KV: the product says so itself
  let kv = wrapped.get(env.SYNC_KV);
  if (!kv) {
    kv = counting(env.BENCH_KV === "memory" ? memoryKv : env.SYNC_KV);
    wrapped.set(env.SYNC_KV, kv);
  }
  return { ...env, SYNC_KV: kv };
}

export default class extends Product {
  constructor(ctx, env) {
    super(ctx, benchEnv(env));
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/__bench/counts") {
      return Response.json({
        kv: kvCounts,
        durable_object: { ...doCounts, awake_ms: awakeMs(), under_way: underWay },
        directory: directoryCounts,
      });
    }
    // The Directory's own figures, from its internal routes: GET /__bench/directory/usage (its
    // requests and rows; reads no row) and /__bench/directory/work (its work record). Each is a
    // Directory request, which the bench makes outside what it measures.
    if (path === "/__bench/directory/usage" || path === "/__bench/directory/work") {
      const stub = this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName("directory"));
      const answer = await stub.fetch(`https://directory.internal/internal/${path.slice("/__bench/directory/".length)}`);
      return new Response(answer.body, answer);
    }
    return super.fetch(request);
  }
}

export class Location extends ProductLocation {
  constructor(state, env) {
    super(state, benchEnv(env));
    doCounts.instances += 1;
  }

  async fetch(...args) {
    doCounts.fetches += 1;
    enter();
    try {
      return await super.fetch(...args);
    } finally {
      leave();
    }
  }

  async alarm(...args) {
    doCounts.alarms += 1;
    enter();
    try {
      return await super.alarm(...args);
    } finally {
      leave();
    }
  }
}

/** The directory of connections, with the same counted env, its requests counted. */
export class Directory extends ProductDirectory {
  constructor(state, env) {
    super(state, benchEnv(env));
  }

  async fetch(...args) {
    directoryCounts.fetches += 1;
    return super.fetch(...args);
  }

  async alarm(...args) {
    directoryCounts.alarms += 1;
    return super.alarm(...args);
  }
}
