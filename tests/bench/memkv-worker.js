// The product (build/index.js) with its KV binding SYNC_KV replaced by an in-memory stub in the
// worker's own isolate, for `scripts/bench.mjs --kv memory`: the runner's CPU then holds the
// product's own work and the runtime's per-request and per-fetch costs, without the simulated KV
// (a separate worker and SQLite database in the same workerd process, which production does not
// have). The stub keeps values, metadata and expirations the way the KV API returns them; its own
// cost is a few microseconds per operation.
import Product from "../../build/index.js";

const entries = new Map(); // key -> { value, metadata, expiration (s) }
/** Operations the product made, by kind: served at GET /__bench/kv-ops. */
const counts = { get: 0, put: 0, delete: 0, list: 0 };

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
    counts.get += 1;
    const type = typeof options === "string" ? options : options?.type;
    return decode(live(key)?.value, type);
  },
  async getWithMetadata(key, options) {
    counts.get += 1;
    const type = typeof options === "string" ? options : options?.type;
    const entry = live(key);
    return { value: decode(entry?.value, type), metadata: entry?.metadata ?? null };
  },
  async put(key, value, options = {}) {
    counts.put += 1;
    const text = typeof value === "string" ? value : new TextDecoder().decode(value);
    const expiration = options.expiration ?? (options.expirationTtl ? Math.floor(Date.now() / 1000) + options.expirationTtl : undefined);
    entries.set(key, { value: text, metadata: options.metadata ?? null, expiration });
  },
  async delete(key) {
    counts.delete += 1;
    entries.delete(key);
  },
  async list({ prefix = "", limit = 1000, cursor } = {}) {
    counts.list += 1;
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

export default class extends Product {
  constructor(ctx, env) {
    super(ctx, { ...env, SYNC_KV: memoryKv });
  }

  async fetch(request) {
    if (new URL(request.url).pathname === "/__bench/kv-ops") return Response.json(counts);
    return super.fetch(request);
  }
}
