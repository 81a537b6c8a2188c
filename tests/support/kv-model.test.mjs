// Unit tests of the production KV model (tests/support/kv-model.js) against an in-memory,
// strongly consistent origin and a fake clock: stale reads up to the cache window, cached misses,
// a location's own writes, list lag, the 1 s write refusal and the operation counts.

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { forgetKvModel, kvOps, productionKv, resetKvModel } from "./kv-model.js";

/** A strongly consistent KV binding in memory (the truth the model wraps), with its own op log. */
function memoryOrigin(clock) {
  const entries = new Map(); // key -> { bytes, metadata, expiration }
  const live = (key) => {
    const entry = entries.get(key);
    if (entry?.expiration != null && entry.expiration * 1000 <= clock.now()) return undefined;
    return entry;
  };
  const calls = [];
  return {
    calls,
    entries,
    async getWithMetadata(key, type) {
      calls.push(["get", key]);
      assert.equal(type, "arrayBuffer", "the model reads the origin as bytes");
      const entry = live(key);
      return { value: entry ? entry.bytes.slice().buffer : null, metadata: entry?.metadata ?? null };
    },
    async put(key, bytes, options = {}) {
      calls.push(["put", key]);
      assert.ok(bytes instanceof Uint8Array);
      const expiration = options.expiration ?? (options.expirationTtl ? Math.floor(clock.now() / 1000) + options.expirationTtl : null);
      entries.set(key, { bytes: bytes.slice(), metadata: options.metadata ?? null, expiration });
    },
    async delete(key) {
      calls.push(["delete", key]);
      entries.delete(key);
    },
    async list({ prefix = "", limit = 1000, cursor } = {}) {
      calls.push(["list", prefix]);
      const names = [...entries.keys()].filter((k) => k.startsWith(prefix) && live(k)).sort();
      const start = cursor ? Number(cursor) : 0;
      const page = names.slice(start, start + limit);
      const complete = start + limit >= names.length;
      return { keys: page.map((name) => ({ name })), list_complete: complete, ...(complete ? {} : { cursor: String(start + limit) }) };
    },
  };
}

/** A clock the test moves by hand. */
function fakeClock(start = 1_800_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe("the production KV model", () => {
  let clock;
  let origin;
  /** The model seen from `location`, on the fake clock. */
  let at;
  beforeEach(() => {
    forgetKvModel();
    clock = fakeClock();
    origin = memoryOrigin(clock);
    at = (location, options = {}) => productionKv(origin, location, { now: clock.now, ...options });
  });

  test("a read is served from the location's cache until 60 s after it first read the key, then fresh", async () => {
    await at("b").put("k", "v1");
    clock.advance(1000);
    assert.equal(await at("a").get("k"), "v1");
    await at("b").put("k", "v2");
    assert.equal(new TextDecoder().decode(origin.entries.get("k").bytes), "v2");
    clock.advance(60_000 - 1); // 59.999 s after a's first read
    assert.equal(await at("a").get("k"), "v1", "stale within the window");
    assert.equal(await at("a").get("k", { type: "text" }), "v1");
    clock.advance(1);
    assert.equal(await at("a").get("k"), "v2", "fresh once the window is over");
    await at("b").put("k", "v3");
    clock.advance(59_000);
    assert.equal(await at("a").get("k"), "v2", "the refreshed copy starts a new window");
  });

  test("a miss is cached too: a key written elsewhere stays missing until the window is over", async () => {
    assert.equal(await at("a").get("k", "json"), null);
    await at("b").put("k", JSON.stringify({ n: 1 }));
    assert.deepEqual(await at("b").get("k", "json"), { n: 1 });
    clock.advance(30_000);
    assert.equal(await at("a").get("k", "json"), null, "the cached miss is served");
    const { value, metadata } = await at("a").getWithMetadata("k", { type: "json" });
    assert.deepEqual([value, metadata], [null, null]);
    clock.advance(30_000);
    assert.deepEqual(await at("a").get("k", "json"), { n: 1 });
  });

  test("a deletion elsewhere goes unseen while a copy is cached", async () => {
    await at("a").put("k", "v");
    clock.advance(2000);
    assert.equal(await at("c").get("k"), "v");
    await at("b").delete("k");
    assert.equal(await at("b").get("k"), null, "the deleting location sees it gone");
    assert.equal(await at("c").get("k"), "v", "another location still serves its copy");
    assert.equal(await at("a").get("k"), "v", "so does the location that wrote it");
    clock.advance(60_000);
    assert.equal(await at("c").get("k"), null);
  });

  test("a location's own write is visible to it at once, and only to it", async () => {
    await at("a").put("k", "old");
    clock.advance(5000);
    assert.equal(await at("b").get("k"), "old");
    await at("a").put("k", "new", { metadata: { v: 2 } });
    assert.equal(await at("a").get("k"), "new");
    assert.deepEqual(await at("a").getWithMetadata("k"), { value: "new", metadata: { v: 2 }, cacheStatus: null });
    assert.equal(await at("b").get("k"), "old", "b's cached copy is not updated");
    assert.equal(await at("fresh").get("k"), "new", "a location with no copy reads the truth");
    await at("a").delete("fresh-key-never-written");
    assert.equal(await at("a").get("fresh-key-never-written"), null);
  });

  test("values keep their types: text, json, arrayBuffer, stream, and bytes put", async () => {
    const kv = at("a");
    await kv.put("t", "héllo");
    await kv.put("b", new Uint8Array([1, 2, 255]));
    await kv.put("j", '{"a":[1,2]}');
    for (const location of ["a", "other"]) {
      const view = at(location);
      assert.equal(await view.get("t"), "héllo");
      assert.deepEqual([...new Uint8Array(await view.get("b", "arrayBuffer"))], [1, 2, 255]);
      assert.deepEqual(await view.get("j", { type: "json" }), { a: [1, 2] });
      assert.equal(await new Response(await view.get("t", "stream")).text(), "héllo");
    }
    await assert.rejects(kv.get("t", "bogus"), /unknown response type/);
  });

  test("a bulk get reads each key through the cache and counts one get per key", async () => {
    await at("b").put("x", '{"n":1}');
    assert.equal(await at("a").get("y"), null);
    await at("b").put("y", '{"n":2}');
    const values = await at("a").get(["x", "y"], "json");
    assert.deepEqual([...values], [["x", { n: 1 }], ["y", null]], "y's cached miss is served");
    const withMeta = await at("a").getWithMetadata(["x"], { type: "text" });
    assert.deepEqual(withMeta.get("x"), { value: '{"n":1}', metadata: null });
    assert.equal(kvOps().a.get, 4);
    await assert.rejects(at("a").get(["x"], "arrayBuffer"), /type must be text or json/);
  });

  test("a read's cacheTtl sets its window, and one under 30 s is refused", async () => {
    assert.equal(await at("a").get("k", { cacheTtl: 300 }), null);
    await at("b").put("k", "v");
    clock.advance(200_000);
    assert.equal(await at("a").get("k", { cacheTtl: 300 }), null);
    clock.advance(100_000);
    assert.equal(await at("a").get("k", { cacheTtl: 300 }), "v");
    await assert.rejects(at("a").get("k", { cacheTtl: 10 }), /Cache TTL must be at least 30/);
  });

  test("an expiring key leaves a cached copy when it expires", async () => {
    const slow = (location) => at(location, { cacheMs: 300_000 });
    await slow("a").put("k", "v", { expirationTtl: 60 });
    clock.advance(59_000);
    assert.equal(await slow("a").get("k"), "v");
    clock.advance(1000);
    assert.equal(await slow("a").get("k"), null, "expired though the cached copy is younger than the window");
  });

  test("lists leave out keys written less than 10 s ago, and are cached for 60 s", async () => {
    await at("a").put("due:1", "");
    clock.advance(5000);
    await at("a").put("due:2", "");
    await at("a").put("other", "");
    const names = async (location, options = { prefix: "due:" }) => (await at(location).list(options)).keys.map((k) => k.name);
    assert.deepEqual(await names("a"), [], "not even the writer lists a key written 5 s ago");
    clock.advance(5000);
    assert.deepEqual(await names("b"), ["due:1"], "10 s after its write a key is listed");
    clock.advance(5000);
    assert.deepEqual(await names("c"), ["due:1", "due:2"]);
    assert.deepEqual(await names("b"), ["due:1"], "b's listing is served from its cache");
    await at("a").delete("due:1");
    assert.deepEqual(await names("c"), ["due:1", "due:2"], "a deletion goes unseen by a cached listing");
    clock.advance(60_000);
    assert.deepEqual(await names("b"), ["due:2"]);
    assert.deepEqual(await names("b", {}), ["due:2", "other"], "each query has its own cached listing");
  });

  test("list pages follow the origin's cursor", async () => {
    for (const n of [1, 2, 3]) await at("a").put(`k${n}`, "");
    clock.advance(10_000);
    const first = await at("b").list({ limit: 2 });
    assert.deepEqual([first.keys.map((k) => k.name), first.list_complete], [["k1", "k2"], false]);
    const second = await at("b").list({ limit: 2, cursor: first.cursor });
    assert.deepEqual([second.keys.map((k) => k.name), second.list_complete], [["k3"], true]);
  });

  test("a second write to one key within 1 s is refused with 429, wherever it comes from", async () => {
    await at("a").put("k", "v1");
    clock.advance(999);
    await assert.rejects(at("a").put("k", "v2"), /KV PUT failed: 429 Too Many Requests/);
    await assert.rejects(at("b").put("k", "v2"), /429 Too Many Requests/, "the limit is the key's, not the location's");
    await assert.rejects(at("b").delete("k"), /KV DELETE failed: 429 Too Many Requests/);
    assert.equal(new TextDecoder().decode(origin.entries.get("k").bytes), "v1", "a refused write changes nothing");
    assert.equal(await at("a").get("k"), "v1", "nor the writer's cache");
    await at("a").put("other", "x");
    clock.advance(1);
    await at("b").delete("k");
    assert.equal(origin.entries.has("k"), false);
    await assert.rejects(at("a").put("k", "v3"), /429/, "a deletion counts as a write");
  });

  test("two writes racing in one instant: one wins, the other is refused", async () => {
    const results = await Promise.allSettled([at("a").put("k", "1"), at("b").put("k", "2")]);
    assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    assert.equal(origin.calls.filter(([op]) => op === "put").length, 1);
  });

  test("a write the origin refuses leaves the 1 s window as it was", async () => {
    const failing = { ...origin, put: async () => Promise.reject(new Error("KV PUT failed: 414 key too long")) };
    await assert.rejects(productionKv(failing, "a", { now: clock.now }).put("k", "v"), /414/);
    await at("a").put("k", "v");
  });

  test("operations are counted by location and type; reset zeroes them and drops the caches", async () => {
    await at("edge").put("k", "v");
    await at("edge").get("k");
    await at("edge").getWithMetadata("k");
    await at("edge").list({});
    await at("do").delete("x");
    await at("do").put("k", "again").catch(() => {});
    assert.deepEqual(kvOps(), {
      edge: { get: 2, put: 1, delete: 0, list: 1, refused: 0 },
      do: { get: 0, put: 1, delete: 1, list: 0, refused: 1 },
    });
    assert.deepEqual(
      origin.calls.map(([op]) => op),
      ["put", "list", "delete"],
      "the edge's reads were served from its cache, and the refused put never reached the origin",
    );

    await at("cron").get("k"); // caches "v"
    clock.advance(1000);
    await at("do").put("k", "v2");
    resetKvModel();
    assert.deepEqual(kvOps(), {
      edge: { get: 0, put: 0, delete: 0, list: 0, refused: 0 },
      do: { get: 0, put: 0, delete: 0, list: 0, refused: 0 },
      cron: { get: 0, put: 0, delete: 0, list: 0, refused: 0 },
    });
    assert.equal(await at("cron").get("k"), "v2", "the cache was dropped");
    await assert.rejects(at("edge").put("k", "v3"), /429/, "write times are the truth's and survive a reset");
  });
});
