// A model of production Workers KV for tests, the soak and the benchmark. It wraps a real,
// strongly consistent KV binding (the truth: Miniflare's KV, or an in-memory stand-in in unit
// tests) and answers the KV API the way Cloudflare's KV does from one location:
// - reads (missing keys included) are served from that location's cache for up to `cacheMs`
//   (or the read's `cacheTtl`) after the location first read the key;
// - a write is visible at once in the location that made it (its cache takes the new value) and
//   elsewhere only once their cached copy ages out;
// - lists are served from the location's cache for up to `cacheMs` and leave out keys written
//   less than `listLagMs` ago;
// - a second write (put or delete) to one key within 1 s is refused with an Error whose message
//   says 429 Too Many Requests, as production refuses it;
// - operations are counted by type (get, put, delete, list; `refused` counts refused writes) per
//   location; a bulk get counts one get per key.
// State (caches, counts, last-write times) lives in module globals keyed by location and shared
// by every invocation in the isolate, as production's per-location caches are shared by every
// Worker invocation there. No Node imports: this module runs inside workerd as well as in Node.

/** Production refuses a second write to one key within this long. */
export const WRITE_INTERVAL_MS = 1000;
/** The smallest `cacheTtl` production accepts on a read, in seconds. */
const MIN_CACHE_TTL_SECS = 30;

/** location -> { reads: Map(key -> entry), lists: Map(query -> listing), counts } */
const locations = new Map();
/** key -> when it was last written (put or delete), from any location: the 1 s rule and list lag. */
const lastWrites = new Map();
/** key -> when it was last put, from any location: what lists leave out. */
const lastPuts = new Map();

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function emptyCounts() {
  return { get: 0, put: 0, delete: 0, list: 0, refused: 0 };
}

/** The cache and counters of `location`, created on first use. */
function place(location) {
  let state = locations.get(location);
  if (!state) {
    state = { reads: new Map(), lists: new Map(), counts: emptyCounts() };
    locations.set(location, state);
  }
  return state;
}

/** Operations made so far, by location and type: `{ [location]: { get, put, delete, list, refused } }`. */
export function kvOps() {
  return Object.fromEntries([...locations].map(([name, state]) => [name, { ...state.counts }]));
}

/** Zeroes the counts and drops every location's caches (write times are kept: they are the truth's). */
export function resetKvModel() {
  for (const state of locations.values()) {
    state.reads.clear();
    state.lists.clear();
    state.counts = emptyCounts();
  }
}

/** Forgets everything, write times included: a fresh isolate (used by unit tests). */
export function forgetKvModel() {
  locations.clear();
  lastWrites.clear();
  lastPuts.clear();
}

/** The `type` of a read's options (a string, or `{ type }`), text by default. */
function readType(options) {
  const type = typeof options === "string" ? options : options?.type;
  return type ?? "text";
}

/** How long this read may be served from the cache, in ms. */
function cacheWindow(options, cacheMs) {
  const ttl = typeof options === "object" && options !== null ? options.cacheTtl : undefined;
  if (ttl === undefined) return cacheMs;
  if (!(ttl >= MIN_CACHE_TTL_SECS)) {
    throw new TypeError(`KV GET failed: 400 Invalid cache_ttl of ${ttl}. Cache TTL must be at least ${MIN_CACHE_TTL_SECS}.`);
  }
  return ttl * 1000;
}

/** Stored bytes as the KV API hands them out for `type`. */
function decode(bytes, type) {
  if (bytes === null) return null;
  switch (type) {
    case "text":
      return decoder.decode(bytes);
    case "json":
      return JSON.parse(decoder.decode(bytes));
    case "arrayBuffer":
      return bytes.slice().buffer;
    case "stream":
      return new Response(bytes.slice()).body;
    default:
      throw new TypeError(`KV GET failed: unknown response type ${JSON.stringify(type)}`);
  }
}

/** A put's value as bytes (strings, ArrayBuffers, views and streams, as the KV API takes them). */
async function encode(value) {
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  if (value instanceof ReadableStream) return new Uint8Array(await new Response(value).arrayBuffer());
  throw new TypeError("KV PUT failed: the value must be a string, an ArrayBuffer, an ArrayBufferView or a ReadableStream");
}

/** The expiration (unix seconds) a put's options ask for, or null. */
function expirationOf(options, nowMs) {
  if (options.expiration !== undefined) return Number(options.expiration);
  if (options.expirationTtl !== undefined) return Math.floor(nowMs / 1000) + Number(options.expirationTtl);
  return null;
}

/** Whether a cached entry read at `readAt` (for `windowMs`) may still be served at `nowMs`. */
function fresh(entry, nowMs, windowMs) {
  return entry !== undefined && nowMs - entry.readAt < windowMs;
}

/** A cached entry's bytes, or null when absent or past its own expiration. */
function cachedBytes(entry, nowMs) {
  if (entry.bytes === null) return null;
  if (entry.expiration !== null && entry.expiration * 1000 <= nowMs) return null;
  return entry.bytes;
}

/** Refuses a write to `key` made within 1 s of the last one, as production does. */
function checkWriteRate(key, kind, nowMs) {
  const last = lastWrites.get(key);
  if (last !== undefined && nowMs - last < WRITE_INTERVAL_MS) {
    throw new Error(`KV ${kind.toUpperCase()} failed: 429 Too Many Requests`);
  }
}

/** Sets `map[key]` back to `value` (undefined: removes it). */
function restore(map, key, value) {
  if (value === undefined) map.delete(key);
  else map.set(key, value);
}

/** A rejection handler that undoes an admitted write, then rethrows. */
function failed(undo) {
  return (error) => {
    undo();
    throw error;
  };
}

/** A listing's cache key. */
function listQuery({ prefix = "", limit = 1000, cursor } = {}) {
  return JSON.stringify([prefix ?? "", limit ?? 1000, cursor ?? null]);
}

/**
 * `origin` (a KV binding, the truth) as seen from `location` of production KV. Options: cacheMs
 * (how long reads and lists are served from the location's cache), listLagMs (how long a written
 * key stays out of lists), now (the clock, ms).
 */
export function productionKv(origin, location, { cacheMs = 60_000, listLagMs = 10_000, now = Date.now } = {}) {
  const state = () => place(location);

  /** The key's entry as this location sees it, reading the origin once the cached copy is too old. */
  async function entryOf(key, options) {
    const windowMs = cacheWindow(options, cacheMs);
    const { reads } = state();
    const cached = reads.get(key);
    if (fresh(cached, now(), windowMs)) return cached;
    const { value, metadata } = await origin.getWithMetadata(key, "arrayBuffer");
    const entry = {
      bytes: value === null ? null : new Uint8Array(value),
      metadata: metadata ?? null,
      expiration: null,
      readAt: now(),
    };
    reads.set(key, entry);
    return entry;
  }

  /** Shows a write made here in this location's cache at once. */
  function remember(key, entry) {
    state().reads.set(key, { ...entry, readAt: now() });
  }

  /**
   * Counts a write and refuses it if it comes within 1 s of the key's last one; an admitted write
   * takes the key's write time at once, so that two writes racing in one instant cannot both pass.
   * Returns a function that gives the time back if the origin then refuses the write.
   */
  function admitWrite(key, kind) {
    const { counts } = state();
    counts[kind] += 1;
    const at = now();
    try {
      checkWriteRate(key, kind, at);
    } catch (error) {
      counts.refused += 1;
      throw error;
    }
    const before = [lastWrites.get(key), lastPuts.get(key)];
    lastWrites.set(key, at);
    if (kind === "put") lastPuts.set(key, at);
    return () => {
      restore(lastWrites, key, before[0]);
      restore(lastPuts, key, before[1]);
    };
  }

  /** An origin listing with keys put less than `listLagMs` ago left out. */
  async function laggedListing(options) {
    const listing = await origin.list(options);
    const at = now();
    const visible = listing.keys.filter(({ name }) => !(at - (lastPuts.get(name) ?? -Infinity) < listLagMs));
    return { ...listing, keys: visible };
  }

  /** One key's value (and metadata) as this location sees it; counted as one read. */
  async function readOne(key, options) {
    state().counts.get += 1;
    const entry = await entryOf(key, options);
    const bytes = cachedBytes(entry, now());
    return { value: decode(bytes, readType(options)), metadata: bytes === null ? null : entry.metadata };
  }

  /** A bulk read (an array of keys): a Map of key -> pick(one key's read); each key counts as a read. */
  async function readMany(keys, options, pick) {
    if (!["text", "json"].includes(readType(options))) {
      throw new TypeError(`KV GET_BULK failed: 400 type must be text or json, not ${readType(options)}`);
    }
    const entries = await Promise.all(keys.map(async (key) => [key, pick(await readOne(key, options))]));
    return new Map(entries);
  }

  return {
    async get(key, options) {
      if (Array.isArray(key)) return readMany(key, options, (read) => read.value);
      return (await readOne(key, options)).value;
    },

    async getWithMetadata(key, options) {
      if (Array.isArray(key)) return readMany(key, options, (read) => read);
      return { ...(await readOne(key, options)), cacheStatus: null };
    },

    async put(key, value, options = {}) {
      const undo = admitWrite(key, "put");
      const bytes = await encode(value).catch(failed(undo));
      await origin.put(key, bytes, options).catch(failed(undo));
      remember(key, { bytes, metadata: options.metadata ?? null, expiration: expirationOf(options, now()) });
    },

    async delete(key) {
      const undo = admitWrite(key, "delete");
      await origin.delete(key).catch(failed(undo));
      remember(key, { bytes: null, metadata: null, expiration: null });
    },

    async list(options = {}) {
      const { counts, lists } = state();
      counts.list += 1;
      const query = listQuery(options);
      const cached = lists.get(query);
      if (fresh(cached, now(), cacheMs)) return structuredClone(cached.listing);
      const listing = await laggedListing(options);
      lists.set(query, { listing, readAt: now() });
      return structuredClone(listing);
    },
  };
}
