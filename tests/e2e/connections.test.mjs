// Named connections end to end (issue 16): the operator API under /admin/connections (create,
// list, read, change, rotate and remove secrets, pause, resume, remove with what happens to
// pending events), each connection's own operator API forwarded to its location, the cron's
// fan-out to the named connections whose work is due by the Directory's work record (issue 21),
// and connections made by the OAuth installs (a location
// other than the default one, and an agency whose company token lists its locations), started by
// the operator's single-use install links or the allow-list (issue 22), and how soon a new
// connection's record, which the Directory publishes in KV, is known at the edge. The real
// worker runs in Miniflare with the Location and Directory Durable Objects; the simulator plays
// the Contacts API and the OAuth endpoints.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, test } from "node:test";
import { ADMIN_KEY, contactEvent, LOCATION, SECRET, sleep, startWorld, TOKEN } from "./harness.mjs";
import { newSecret, signedDelivery } from "../support/webhooks.mjs";

const KEYS = `k1:${randomBytes(32).toString("base64")}`;
const PIT_B = "pit-b-0123456789abcdef";
const PIT_C = "pit-c-0123456789abcdef";
const PIT_LAST = "pit-n40-0123456789abcdef";

/** Waits for `check()` to be truthy (its value), polling, until `timeoutMs`. */
async function until(what, check, { timeoutMs = 5000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Posts `event` to connection `id`'s webhook URL, signed with `secret`. */
async function deliverTo(world, id, secret, event, overrides = {}) {
  const request = signedDelivery(secret, event, overrides);
  const response = await world.fetch(`/webhooks/sightmill/${id}`, request);
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null, text, id: request.id };
}

/** Connection `id`'s own operator API (forwarded to its location). */
const ofConnection = (world, id, method, path, options) => world.admin(method, `connections/${id}/${path}`, options);

/** One call to the Directory's internal route `/internal/{path}` (what the Worker and the Locations call). */
async function directoryCall(world, method, path, body) {
  const namespace = await world.mf.getDurableObjectNamespace("DIRECTORY");
  const stub = namespace.get(namespace.idFromName("directory"));
  const init = { method };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const response = await stub.fetch(`http://directory.test/internal/${path}`, init);
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

/** Location `id`'s alarm through the test hook of the production KV model's wrapper: `GET` reads it, `DELETE` drops it. */
async function alarmOf(world, id, method) {
  const namespace = await world.mf.getDurableObjectNamespace("LOCATIONS");
  const response = await namespace.get(namespace.idFromName(id)).fetch("http://location.test/__test/alarm", { method });
  return response.json();
}

/** The webhook's record in connection `id`'s location, once its first attempt is over. */
async function settled(world, id, webhookId) {
  return until(`${webhookId} to settle in ${id}`, async () => {
    const { status, json } = await ofConnection(world, id, "GET", `events/${webhookId}`);
    return status === 200 && (json.state !== "pending" || json.last_error) ? json : null;
  });
}

/** The simulator's contacts of `location`. */
const contactsOf = (world, location) => world.sim.state().contacts.filter((contact) => contact.locationId === location);

const ada = (id) => contactEvent("contact.created", { id, email: `${id}@example.com`, name: "Ada Lovelace" });

const pit = (token) => ({ kind: "private_integration", token });

describe("connections through the operator API", () => {
  let world;
  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: { TOKEN_ENCRYPTION_KEYS: KEYS },
      simulator: {
        tokens: { [TOKEN]: LOCATION, [PIT_B]: "loc-b", [PIT_C]: "loc-c", [PIT_LAST]: "loc-n40" },
        locations: { [LOCATION]: { allowDuplicates: false }, "loc-b": { allowDuplicates: false }, "loc-c": { allowDuplicates: false } },
      },
    });
  });
  after(() => world?.close());
  beforeEach(() => world.reset());

  test("create, list, read and change a connection; its secret and token are never shown again", async () => {
    const created = await world.admin("POST", "connections", { body: { id: "loc-b", label: "Branch B", token: pit(PIT_B) } });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const { connection, signing_secret: secret } = created.json;
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(
      { ...connection, secrets: connection.secrets.length },
      {
        id: "loc-b",
        default: false,
        label: "Branch B",
        paused: false,
        token: { kind: "private_integration" },
        secrets: 1,
        webhook_path: "/webhooks/sightmill/loc-b",
        created_at_ms: connection.created_at_ms,
      },
    );
    assert.match(connection.secrets[0].fingerprint, /^whsec:[0-9a-f]{8}$/);

    const listed = await world.admin("GET", "connections");
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.json.connections.map((c) => [c.id, c.default]), [[LOCATION, true], ["loc-b", false]]);
    const [defaults] = listed.json.connections;
    assert.deepEqual(defaults.token, { kind: "private_integration" });
    assert.equal(defaults.webhook_path, "/webhooks/sightmill");
    assert.match(defaults.secrets[0].fingerprint, /^whsec:[0-9a-f]{8}$/);
    for (const text of [JSON.stringify(listed.json), JSON.stringify((await world.admin("GET", "connections/loc-b")).json)]) {
      assert.ok(!text.includes(PIT_B) && !text.includes(secret) && !text.includes(SECRET), "no token or secret shown");
    }
    assert.equal((await world.admin("GET", `connections/${LOCATION}`)).json.connection.default, true);

    const patched = await world.admin("PATCH", "connections/loc-b", { body: { label: "Sales" } });
    assert.equal(patched.status, 200);
    assert.equal(patched.json.connection.label, "Sales");
    assert.equal((await world.admin("GET", "connections/loc-b")).json.connection.label, "Sales");

    // Its webhooks go to its own location, with its own token.
    const delivered = await deliverTo(world, "loc-b", secret, ada("sm_b1"));
    assert.equal(delivered.status, 202, delivered.text);
    assert.equal((await settled(world, "loc-b", delivered.id)).state, "finished");
    assert.deepEqual(contactsOf(world, "loc-b").map((c) => c.email), ["sm_b1@example.com"]);
    assert.deepEqual(contactsOf(world, LOCATION), []);
    assert.ok(!world.logs().includes(secret) && !world.logs().includes(PIT_B), "the log holds no secret or token");
  });

  test("refusals: taken ids, taken secrets, bad ids and bodies, the default connection, no key", async () => {
    const b = await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } });
    assert.equal(b.status, 201);
    const cases = [
      ["POST", "connections", { id: "loc-b", token: pit(PIT_B) }, 409, "connection_exists"],
      ["POST", "connections", { id: LOCATION, token: pit(PIT_B) }, 409, "connection_exists"],
      ["POST", "connections", { id: "loc-c", token: pit(PIT_C), signing_secret: SECRET }, 409, "secret_in_use"],
      ["POST", "connections", { id: "loc-c", token: pit(PIT_C), signing_secret: b.json.signing_secret }, 409, "secret_in_use"],
      ["POST", "connections", { id: "loc.c", token: pit(PIT_C) }, 400, "invalid_connection_id"],
      ["POST", "connections", { id: "loc-c", token: { kind: "pit" } }, 400, "invalid_body"],
      ["POST", "connections", { id: "loc-c", token: { kind: "agency", company_id: "co-none" } }, 404, "unknown_agency"],
      ["POST", "connections/loc-b/secrets", { signing_secret: SECRET }, 409, "secret_in_use"],
      ["GET", "connections/loc-zz", undefined, 404, "unknown_connection"],
      ["GET", "connections/loc%2Fb", undefined, 400, "invalid_path"],
      ["GET", "connections/loc%2Fb/status", undefined, 400, "invalid_path"],
      ["GET", `connections/${"x".repeat(65)}/status`, undefined, 400, "invalid_connection_id"],
      ["DELETE", `connections/${LOCATION}`, undefined, 409, "default_connection"],
      ["POST", `connections/${LOCATION}/pause`, undefined, 409, "default_connection"],
      ["GET", "connections/loc-zz/status", undefined, 404, "unknown_connection"],
      ["PUT", "connections/loc-b", {}, 405, "method_not_allowed"],
    ];
    for (const [method, path, body, status, error] of cases) {
      const answer = await world.admin(method, path, { body });
      assert.equal(answer.status, status, `${method} ${path}: ${JSON.stringify(answer.json)}`);
      assert.equal(answer.json.error, error, `${method} ${path}`);
      assert.equal(typeof answer.json.message, "string");
    }
    assert.equal((await world.admin("GET", "connections", { key: null })).status, 401);
    assert.equal((await world.admin("GET", "connections", { key: "not-the-admin-key-0000" })).status, 401);
    const inUrl = await world.fetch(`/admin/connections?key=${ADMIN_KEY}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(inUrl.status, 400);
    assert.deepEqual((await world.admin("GET", "connections")).json.connections.map((c) => c.id), [LOCATION, "loc-b"]);

    // Named connections' records are sealed: without the keys nothing is created, and the setting is named.
    await world.reconfigure({ TOKEN_ENCRYPTION_KEYS: undefined });
    try {
      const unsealed = await world.admin("POST", "connections", { body: { id: "loc-c", token: pit(PIT_C) } });
      assert.equal(unsealed.status, 500);
      assert.equal(unsealed.json.error, "misconfigured");
      assert.match(unsealed.json.message, /TOKEN_ENCRYPTION_KEYS/);
    } finally {
      await world.reconfigure({ TOKEN_ENCRYPTION_KEYS: KEYS });
    }
    assert.deepEqual((await world.admin("GET", "connections")).json.connections.map((c) => c.id), [LOCATION, "loc-b"]);
  });

  test("a rotation keeps the old secret until keep_old_for ends, then refuses it; another connection is untouched", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    const cSecret = newSecret();
    const c = await world.admin("POST", "connections", { body: { id: "loc-c", token: pit(PIT_C), signing_secret: cSecret } });
    assert.equal(c.status, 201);
    assert.equal(c.json.signing_secret, cSecret);
    const cBefore = (await world.admin("GET", "connections/loc-c")).json.connection;

    const rotated = await world.admin("POST", "connections/loc-b/secrets", { body: { keep_old_for: "3s" } });
    assert.equal(rotated.status, 201, JSON.stringify(rotated.json));
    const { signing_secret: fresh, fingerprint, connection } = rotated.json;
    assert.notEqual(fresh, b.signing_secret);
    assert.deepEqual(connection.secrets.map((s) => [s.fingerprint, s.expires_at_ms === null]), [
      [b.connection.secrets[0].fingerprint, false],
      [fingerprint, true],
    ]);
    assert.equal((await deliverTo(world, "loc-b", b.signing_secret, ada("sm_old"))).status, 202, "the old one still works");
    assert.equal((await deliverTo(world, "loc-b", fresh, ada("sm_new"))).status, 202);
    const oldEnds = connection.secrets[0].expires_at_ms;
    await until("the old secret's end", () => Date.now() > oldEnds + 50, { timeoutMs: 6000 });
    const refused = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_late"));
    assert.equal(refused.status, 401, refused.text);
    assert.equal((await deliverTo(world, "loc-b", fresh, ada("sm_newer"))).status, 202);

    // loc-c: its record and its secret as they were; B's secrets do not open C's URL.
    assert.deepEqual((await world.admin("GET", "connections/loc-c")).json.connection, cBefore);
    assert.equal((await deliverTo(world, "loc-c", cSecret, ada("sm_c1"))).status, 202);
    assert.equal((await deliverTo(world, "loc-c", fresh, ada("sm_c2"))).status, 401);

    // A secret removed by its fingerprint stops at once.
    const removed = await world.admin("DELETE", `connections/loc-b/secrets/${encodeURIComponent(fingerprint)}`);
    assert.equal(removed.status, 200, JSON.stringify(removed.json));
    assert.deepEqual(removed.json.connection.secrets, []);
    assert.equal((await world.admin("DELETE", `connections/loc-b/secrets/${encodeURIComponent(fingerprint)}`)).json.error, "unknown_secret");
  });

  test("pause keeps events pending and sends nothing; resume sends them", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    const paused = await world.admin("POST", "connections/loc-b/pause");
    assert.equal(paused.status, 200);
    assert.equal(paused.json.connection.paused, true);
    const delivered = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_p1"));
    assert.equal(delivered.status, 202, delivered.text);
    await world.cron();
    await sleep(300); // nothing should happen: a paused connection sends nothing (checked below)
    assert.equal((await ofConnection(world, "loc-b", "GET", `events/${delivered.id}`)).json.state, "pending");
    assert.deepEqual(contactsOf(world, "loc-b"), []);

    const resumed = await world.admin("POST", "connections/loc-b/resume");
    assert.equal(resumed.json.connection.paused, false);
    await world.cron();
    assert.equal((await settled(world, "loc-b", delivered.id)).state, "finished");
    assert.equal(contactsOf(world, "loc-b").length, 1);
  });

  test("remove: refused while events are pending, then with ?pending=discard; the id is unknown after", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    await world.admin("POST", "connections/loc-b/pause");
    for (const id of ["sm_r1", "sm_r2"]) assert.equal((await deliverTo(world, "loc-b", b.signing_secret, ada(id))).status, 202);

    const refused = await world.admin("DELETE", "connections/loc-b");
    assert.equal(refused.status, 409, JSON.stringify(refused.json));
    assert.equal(refused.json.error, "pending_events");
    assert.equal(refused.json.pending, 2);
    assert.equal((await world.admin("GET", "connections/loc-b")).status, 200, "still there");
    assert.equal((await world.admin("DELETE", "connections/loc-b?pending=later")).json.error, "invalid_query");

    const removed = await world.admin("DELETE", "connections/loc-b?pending=discard");
    assert.deepEqual([removed.status, removed.json], [200, { removed: "loc-b", discarded: 2 }]);
    assert.equal((await world.admin("GET", "connections/loc-b")).json.error, "unknown_connection");
    assert.deepEqual((await world.admin("GET", "connections")).json.connections.map((c) => c.id), [LOCATION]);
    const late = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_r3"));
    assert.equal(late.status, 404, late.text);
    assert.equal(late.json.error, "unknown_connection");
    assert.deepEqual(contactsOf(world, "loc-b"), []);

    // The id may be connected again: a new record, new secret; the old secret stays refused.
    const again = await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } });
    assert.equal(again.status, 201, JSON.stringify(again.json));
    const revived = await until("the new record to reach the edge", async () => {
      const answer = await deliverTo(world, "loc-b", again.json.signing_secret, ada("sm_r4"));
      return answer.status === 202 ? answer : null;
    }, { timeoutMs: 8000 });
    assert.equal((await settled(world, "loc-b", revived.id)).state, "finished");
    assert.equal((await deliverTo(world, "loc-b", b.signing_secret, ada("sm_r5"))).status, 401);

    // Without pending events no query is needed.
    const c = (await world.admin("POST", "connections", { body: { id: "loc-c", token: pit(PIT_C) } })).json;
    assert.ok(c.signing_secret);
    assert.deepEqual((await world.admin("DELETE", "connections/loc-c")).json, { removed: "loc-c", discarded: 0 });
  });

  test("/admin/connections/{id}/... is that connection's own operator API, the default's too", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    const delivered = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_f1"));
    await settled(world, "loc-b", delivered.id);
    const status = await ofConnection(world, "loc-b", "GET", "status");
    assert.equal(status.status, 200, JSON.stringify(status.json));
    assert.equal(status.json.counters.accepted, 1);
    await world.admin("POST", "connections/loc-b/pause");
    const waiting = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_f2"));
    const listing = await ofConnection(world, "loc-b", "GET", "events?state=pending&limit=5");
    assert.deepEqual(listing.json.events.map((e) => e.webhook_id), [waiting.id], "the query is passed on");
    const defaults = await ofConnection(world, LOCATION, "GET", "status");
    assert.equal(defaults.status, 200);
    assert.deepEqual(defaults.json.counters, (await world.admin("GET", "status")).json.counters);
    assert.equal(defaults.json.counters.accepted ?? 0, 0, "the default location saw none of B's");
    assert.deepEqual((await world.admin("GET", "events?state=pending")).json.events, []);
  });

  test("the cron nudges a named connection whose retry is due: a failed event is retried", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    world.sim.injectFault({ route: "POST /contacts/", location: "loc-b", status: 500 });
    const delivered = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_c1"));
    const failed = await settled(world, "loc-b", delivered.id);
    assert.equal(failed.state, "pending");
    assert.match(failed.last_error, /500/);
    // Only the cron drives a retry (RETRY_SCHEDULE is 1s here): run it until the event is done.
    const record = await until("the cron to retry the event", async () => {
      await world.cron();
      const { json } = await ofConnection(world, "loc-b", "GET", `events/${delivered.id}`);
      return json.state === "finished" ? json : null;
    });
    assert.equal(record.state, "finished");
    assert.equal(contactsOf(world, "loc-b").length, 1);
  });

  test("a named connection's object woken by its alarm after a restart opens its own record and carries on", async () => {
    // More events than one invocation's calls (CRON_MAX_API_CALLS, 40): the run arms its alarm to
    // carry on. The runtime restarts mid-drain, and only that alarm wakes the object again, which
    // is not told its name then: it must still know it is loc-b, not the default connection.
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    world.sim.injectFault({ route: "POST /contacts/", location: "loc-b", latencyMs: 50, count: null });
    const events = Array.from({ length: 60 }, (_, n) => ada(`sm_w${n}`));
    for (const event of events) assert.equal((await deliverTo(world, "loc-b", b.signing_secret, event)).status, 202);
    await until("the drain to start", () => contactsOf(world, "loc-b").length >= 5);
    await world.restart();
    world.sim.clearFaults();
    await until("the alarm to finish the drain", () => contactsOf(world, "loc-b").length === 60, { timeoutMs: 20_000 });
    assert.equal(world.sim.counts()["POST /contacts/"] >= 60, true);
  });

  test("a new connection is known at the edge at once, or within KV's 30 s where its id was looked up before (production KV model)", async (t) => {
    if (world.kvFlavour !== "production") return t.skip("a cached miss is the production KV model's");
    // Never looked up before: its first webhook is accepted.
    const b = await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } });
    const first = await deliverTo(world, "loc-b", b.json.signing_secret, ada("sm_b1"));
    assert.equal(first.status, 202, first.text);

    // Looked up while it did not exist (the edge's KV cache keeps that miss, as production's does).
    const probedAt = Date.now();
    const probe = await deliverTo(world, "loc-c", newSecret(), ada("sm_c0"));
    assert.equal(probe.status, 401);
    const c = await world.admin("POST", "connections", { body: { id: "loc-c", token: pit(PIT_C) } });
    assert.equal(c.status, 201, JSON.stringify(c.json));
    const early = await deliverTo(world, "loc-c", c.json.signing_secret, ada("sm_c1"));
    assert.equal(early.status, 401, "the cached miss still stands");
    const accepted = await until("the cached miss to age out", async () => {
      const answer = await deliverTo(world, "loc-c", c.json.signing_secret, ada("sm_c2"));
      return answer.status === 202 ? Date.now() : null;
    }, { timeoutMs: 40_000 });
    t.diagnostic(`accepted ${accepted - probedAt} ms after the id was looked up while unknown`);
    assert.ok(accepted - probedAt >= 30_000 - 1000 && accepted - probedAt <= 36_000, `${accepted - probedAt} ms`);
  });

  test("past 40 connections with work due the Directory's alarm carries the fan-out on: the 41st is nudged too", async () => {
    const ids = Array.from({ length: 41 }, (_, n) => `loc-n${String(n).padStart(2, "0")}`);
    let last;
    for (const id of ids) {
      const token = pit(id === "loc-n40" ? PIT_LAST : `pit-${id}-0123456789abcdef`);
      const created = await world.admin("POST", "connections", { body: { id, token } });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      last = created.json;
    }
    world.sim.injectFault({ route: "POST /contacts/", location: "loc-n40", status: 500 });
    const delivered = await deliverTo(world, "loc-n40", last.signing_secret, ada("sm_n40"));
    assert.equal((await settled(world, "loc-n40", delivered.id)).state, "pending");
    // The other 40 recorded as due, as if each had reported work (an old sequence number: the
    // Location's own report, newer, is kept for loc-n40).
    for (const id of ids) {
      const kept = await directoryCall(world, "POST", `work/${id}`, { due_at: 1, seq: 1 });
      assert.deepEqual(kept, { status: 200, json: { recorded: id !== "loc-n40" } });
    }
    await until("loc-n40's retry to fall due", async () => {
      const { json } = await directoryCall(world, "GET", "work");
      return json.work.find((row) => row.connection === "loc-n40").due_at <= Date.now();
    });
    // Straight to the Directory's /cron (what the cron trigger calls), to read its answer.
    const answer = (await directoryCall(world, "POST", "cron", {})).json;
    assert.deepEqual(answer, { nudged: 40, more: true });
    const record = await until("the alarm's batch to retry loc-n40", async () => {
      const { json } = await ofConnection(world, "loc-n40", "GET", `events/${delivered.id}`);
      if (json.state === "finished") return json;
      await directoryCall(world, "POST", "cron", {});
      return null;
    }, { timeoutMs: 8000 });
    assert.equal(record.state, "finished");
    // Every nudge found an empty queue: the record holds no work, and the next run nudges nobody.
    const work = await until("the record to empty", async () => {
      const { json } = await directoryCall(world, "GET", "work");
      return json.work.every((row) => row.due_at === null) ? json.work : null;
    });
    assert.equal(work.length, 41);
    assert.deepEqual((await directoryCall(world, "POST", "cron", {})).json, { nudged: 0, more: false });
  });
});

describe("the work record: the cron nudges only the connections with work due", () => {
  let world;
  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: { TOKEN_ENCRYPTION_KEYS: KEYS },
      simulator: {
        tokens: { [TOKEN]: LOCATION, [PIT_B]: "loc-b", [PIT_C]: "loc-c" },
        locations: { [LOCATION]: { allowDuplicates: false }, "loc-b": { allowDuplicates: false }, "loc-c": { allowDuplicates: false } },
      },
    });
  });
  after(() => world?.close());
  beforeEach(() => world.reset());

  const workOf = async (world, id) => (await directoryCall(world, "GET", "work")).json.work.find((row) => row.connection === id);
  const cron = async (world) => (await directoryCall(world, "POST", "cron", {})).json;
  /** Location `id`'s Durable Object requests so far (its status call itself is one). */
  const requestsOf = async (world, id) => (await ofConnection(world, id, "GET", "status")).json.durable_object.requests;

  test("an idle connection is not nudged; one with a retry due is, and leaves the record once its queue empties", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    await world.admin("POST", "connections", { body: { id: "loc-c", token: pit(PIT_C) } });
    assert.deepEqual(await cron(world), { nudged: 0, more: false }, "nothing to do: nobody nudged");
    const idleBefore = await requestsOf(world, "loc-c");
    for (let n = 0; n < 3; n++) await world.cron();
    assert.equal(await requestsOf(world, "loc-c"), idleBefore + 1, "only the status call reached the idle connection");
    assert.equal(await workOf(world, "loc-c"), undefined, "an idle connection is not in the record");

    world.sim.injectFault({ route: "POST /contacts/", location: "loc-b", status: 500 });
    const delivered = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_w1"));
    const failed = await settled(world, "loc-b", delivered.id);
    assert.match(failed.last_error, /500/);
    // The run that failed it told the Directory when the retry is due (RETRY_SCHEDULE 1s).
    const row = await until("the retry's time in the record", async () => {
      const row = await workOf(world, "loc-b");
      return row?.due_at >= failed.accepted_at + 700 ? row : null;
    });
    assert.ok(row.due_at <= Date.now() + 1300, JSON.stringify(row));
    const answers = [];
    await until("the cron to retry the event", async () => {
      answers.push(await cron(world));
      const { json } = await ofConnection(world, "loc-b", "GET", `events/${delivered.id}`);
      return json.state === "finished";
    });
    assert.ok(answers.some((answer) => answer.nudged === 1), JSON.stringify(answers));
    assert.ok(answers.every((answer) => answer.nudged <= 1 && !answer.more), "loc-b alone was nudged");
    const emptied = await until("the record to say loc-b is empty", async () => ((await workOf(world, "loc-b"))?.due_at === null ? true : null));
    assert.ok(emptied);
    assert.deepEqual(await cron(world), { nudged: 0, more: false });
  });

  test("a burst is reported once, and a connection whose alarm was lost mid-drain is woken by the cron and drains", async (t) => {
    if (world.kvFlavour !== "production") return t.skip("the alarm hook is the production KV model's wrapper's");
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    // Slow calls (250 ms each), so that the drain is still under way when the alarm is lost.
    world.sim.injectFault({ route: "POST /contacts/", location: "loc-b", latencyMs: 250, count: null });
    const first = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_l0"));
    assert.equal(first.status, 202);
    const reported = await workOf(world, "loc-b");
    assert.ok(reported?.due_at > 0, `the first webhook filled the queue: ${JSON.stringify(reported)}`);
    for (let n = 1; n < 60; n++) assert.equal((await deliverTo(world, "loc-b", b.signing_secret, ada(`sm_l${n}`))).status, 202);
    assert.deepEqual(await workOf(world, "loc-b"), reported, "59 more webhooks, no more reports");
    await until("the drain to start", () => contactsOf(world, "loc-b").length >= 5);

    // The alarm is lost: dropped, and the runtime restarted (the drain under way ends with it).
    await alarmOf(world, "loc-b", "DELETE");
    await world.restart();
    await alarmOf(world, "loc-b", "DELETE");
    assert.deepEqual(await alarmOf(world, "loc-b", "GET"), { at: null });
    world.sim.clearFaults();
    const stalled = contactsOf(world, "loc-b").length;
    await sleep(1500);
    assert.equal(contactsOf(world, "loc-b").length, stalled, "nothing drains without the alarm");
    assert.ok(stalled < 60, `${stalled} applied before the restart`);

    assert.deepEqual(await cron(world), { nudged: 1, more: false }, "the record says loc-b has work due");
    // The cron runs every second from here: a webhook cut off mid-attempt by the restart waits for
    // its retry, which only the cron drives.
    let cronAt = Date.now();
    const withCron = async (check) => {
      if (Date.now() - cronAt > 1000) {
        cronAt = Date.now();
        assert.ok((await cron(world)).nudged <= 1);
      }
      return check();
    };
    await until("the nudged alarm to finish the drain", () => withCron(() => contactsOf(world, "loc-b").length === 60), { timeoutMs: 20_000 });
    await until("the record to say loc-b is empty", () => withCron(async () => (await workOf(world, "loc-b"))?.due_at === null), { timeoutMs: 10_000 });
    assert.equal((await ofConnection(world, "loc-b", "GET", "status")).json.pending, 0);
  });

  test("a paused connection is not nudged; resumed, it is", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    world.sim.injectFault({ route: "POST /contacts/", location: "loc-b", status: 500, count: 1 });
    const delivered = await deliverTo(world, "loc-b", b.signing_secret, ada("sm_p1"));
    assert.match((await settled(world, "loc-b", delivered.id)).last_error, /500/);
    assert.equal((await world.admin("POST", "connections/loc-b/pause")).status, 200);
    await sleep(1100); // the retry falls due
    assert.ok((await workOf(world, "loc-b")).due_at <= Date.now(), "its work is due");
    const before = await requestsOf(world, "loc-b");
    assert.deepEqual(await cron(world), { nudged: 0, more: false });
    assert.equal(await requestsOf(world, "loc-b"), before + 1, "only the status call reached it");

    assert.equal((await world.admin("POST", "connections/loc-b/resume")).status, 200);
    const record = await until("the resumed connection to finish the event", async () => {
      await cron(world);
      const { json } = await ofConnection(world, "loc-b", "GET", `events/${delivered.id}`);
      return json.state === "finished" ? json : null;
    });
    assert.equal(record.state, "finished");
  });

  test("a removed connection leaves the record", async () => {
    const b = (await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } })).json;
    await world.admin("POST", "connections/loc-b/pause");
    assert.equal((await deliverTo(world, "loc-b", b.signing_secret, ada("sm_x1"))).status, 202);
    assert.ok((await workOf(world, "loc-b"))?.due_at > 0);
    assert.equal((await world.admin("DELETE", "connections/loc-b?pending=discard")).status, 200);
    assert.equal(await workOf(world, "loc-b"), undefined);
    assert.deepEqual(await cron(world), { nudged: 0, more: false });
  });

  test("refusals of a work report: a bad id, a bad body, an unknown or removed connection", async () => {
    const refused = async (path, body) => {
      const { status, json } = await directoryCall(world, "POST", path, body);
      return [status, json.error, typeof json.message];
    };
    assert.deepEqual(await refused("work/bad.id", { due_at: 1, seq: 1 }), [400, "invalid_connection_id", "string"]);
    await world.admin("POST", "connections", { body: { id: "loc-b", token: pit(PIT_B) } });
    assert.deepEqual(await refused("work/loc-b", "not json"), [400, "invalid_body", "string"]);
    assert.deepEqual(await refused("work/loc-b", { due_at: "soon", seq: 1 }), [400, "invalid_body", "string"]);
    assert.deepEqual(await refused("work/loc-b", { due_at: 1 }), [400, "invalid_body", "string"]);
    assert.deepEqual(await refused("work/loc-z", { due_at: 1, seq: 1 }), [404, "unknown_connection", "string"]);
    await world.admin("DELETE", "connections/loc-b");
    assert.deepEqual(await refused("work/loc-b", { due_at: 1, seq: 1 }), [404, "unknown_connection", "string"]);
    assert.equal(await workOf(world, "loc-b"), undefined, "nothing kept");
  });
});

const CLIENT_ID = "sightmill-sync-e2e";
const CLIENT_SECRET = `client-secret-${randomBytes(12).toString("hex")}`;

/** An install link the operator mints (`kind`: "location" or "agency"): the path to open. */
async function installLink(world, kind) {
  const minted = await world.admin("POST", "installs", { body: { kind } });
  assert.equal(minted.status, 201, JSON.stringify(minted.json));
  const url = new URL(minted.json.install_url);
  return `${url.pathname}${url.search}`;
}

/**
 * Runs the install flow like a browser, through an install link the operator minted (`query`:
 * "?agency=1" for an agency install), or through `path` as given.
 */
async function install(world, query = "", path = undefined) {
  const start = await world.fetch(path ?? (await installLink(world, query ? "agency" : "location")), { redirect: "manual" });
  assert.equal(start.status, 302, await start.clone().text());
  const cookie = start.headers.get("set-cookie").split(";")[0];
  const consent = await fetch(start.headers.get("location"), { redirect: "manual" });
  assert.equal(consent.status, 302, await consent.clone().text());
  const callback = new URL(consent.headers.get("location"));
  const answer = await world.fetch(`${callback.pathname}${callback.search}`, { headers: { cookie } });
  return { status: answer.status, json: await answer.json(), consent: new URL(start.headers.get("location")) };
}

describe("connections made by the OAuth installs", () => {
  let world;
  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: { TOKEN_MODE: "oauth", CONTACTS_API_TOKEN: undefined, OAUTH_CLIENT_ID: CLIENT_ID, OAUTH_CLIENT_SECRET: CLIENT_SECRET, TOKEN_ENCRYPTION_KEYS: KEYS },
      simulator: {
        tokens: {},
        oauth: {
          clients: { [CLIENT_ID]: { secret: CLIENT_SECRET, locationId: LOCATION, companyId: "co-ag" } },
          companies: { "co-ag": { name: "Agency", locations: [{ id: "loc-g1", name: "G one" }, "loc-g2", { id: "loc-g3", isInstalled: false }] } },
        },
      },
    });
  });
  after(() => world?.close());
  beforeEach(() => world.reset());

  test("an install on another location than GHL_LOCATION_ID creates an oauth connection without a secret", async () => {
    world.sim.oauth.setConsentLocation("loc-o");
    const flow = await install(world);
    assert.equal(flow.status, 200, JSON.stringify(flow.json));
    assert.equal(flow.json.connection, "loc-o");
    assert.match(flow.json.next, /POST \/admin\/connections\/loc-o\/secrets/);
    const { connection } = (await world.admin("GET", "connections/loc-o")).json;
    assert.deepEqual([connection.token, connection.secrets], [{ kind: "oauth" }, []]);

    const unsigned = await deliverTo(world, "loc-o", newSecret(), ada("sm_o1"));
    assert.equal(unsigned.status, 401, unsigned.text);
    assert.equal(unsigned.json.error, "invalid_signature", "answered as an unknown id is: nothing to probe");
    const { signing_secret: secret } = (await world.admin("POST", "connections/loc-o/secrets")).json;
    // The edge refetches a record it holds at most once per 5 s: the new secret is seen by then.
    const delivered = await until("the new secret to be taken", async () => {
      const answer = await deliverTo(world, "loc-o", secret, ada("sm_o2"));
      return answer.status === 202 ? answer : null;
    }, { timeoutMs: 8000 });
    assert.equal((await settled(world, "loc-o", delivered.id)).state, "finished");
    assert.equal(contactsOf(world, "loc-o").length, 1);

    // Installing again re-tokens it and keeps the record (its secret too).
    assert.equal((await install(world)).status, 200);
    assert.equal((await world.admin("GET", "connections/loc-o")).json.connection.secrets.length, 1);
  });

  test("an agency install stores the company token and creates a connection per installed location", async () => {
    const flow = await install(world, "?agency=1");
    assert.equal(flow.consent.searchParams.get("user_type"), "Company");
    assert.equal(flow.status, 200, JSON.stringify(flow.json));
    assert.deepEqual(flow.json, { status: "installed", company_id: "co-ag", connections: ["loc-g1", "loc-g2"] });
    const grants = world.sim.oauth.grants();
    assert.ok(grants.some((g) => g.userType === "Company" && g.grantType === "authorization_code" && g.status === 200));

    const listed = (await world.admin("GET", "connections")).json.connections;
    assert.deepEqual(
      listed.map((c) => [c.id, c.token.kind, c.token.company_id, c.secrets.length]),
      [[LOCATION, "oauth", undefined, 1], ["loc-g1", "agency", "co-ag", 0], ["loc-g2", "agency", "co-ag", 0]],
    );
    assert.equal(listed[1].label, "G one");
    const agencies = await world.admin("GET", "agencies");
    assert.equal(agencies.status, 200);
    assert.deepEqual(agencies.json.agencies.map((a) => [a.company_id, a.connections]), [["co-ag", 2]]);
    const locations = await world.admin("GET", "agencies/co-ag/locations");
    assert.equal(locations.status, 200, JSON.stringify(locations.json));
    assert.deepEqual(locations.json.locations.map((l) => [l.id, l.connected]), [["loc-g1", true], ["loc-g2", true]]);
    assert.equal((await world.admin("GET", "agencies/co-none/locations")).json.error, "unknown_agency");

    // A webhook to an agency connection is applied with a location token minted from the company token.
    const { signing_secret: secret } = (await world.admin("POST", "connections/loc-g1/secrets")).json;
    const delivered = await deliverTo(world, "loc-g1", secret, ada("sm_g1"));
    assert.equal(delivered.status, 202, delivered.text);
    const record = await settled(world, "loc-g1", delivered.id);
    assert.equal(record.state, "finished", JSON.stringify(record));
    assert.equal(contactsOf(world, "loc-g1").length, 1);
    assert.ok(world.sim.oauth.grants().some((g) => g.grantType === "location_token" && g.locationId === "loc-g1" && g.status === 200));

    // Installing again creates nothing new.
    const again = await install(world, "?agency=1");
    assert.deepEqual(again.json.connections, []);
  });

  test("an install link works once; without one (and no allow-list) nothing starts", async () => {
    world.sim.oauth.setConsentLocation("loc-once");
    const link = await installLink(world, "location");
    assert.equal((await install(world, "", link)).status, 200);
    world.sim.oauth.setConsentLocation("loc-twice");
    const again = await install(world, "", link);
    assert.deepEqual([again.status, again.json.error], [409, "install_link_used"], JSON.stringify(again.json));
    const listed = (await world.admin("GET", "connections")).json.connections.map((c) => c.id);
    assert.deepEqual(listed, [LOCATION, "loc-once"], "the second use created nothing");

    for (const path of ["/oauth/install", "/oauth/install?agency=1"]) {
      const start = await world.fetch(path, { redirect: "manual" });
      assert.deepEqual([start.status, (await start.json()).error], [403, "install_link_required"], path);
    }
    const forged = `${link.slice(0, -4)}AAAA`;
    const refused = await world.fetch(forged, { redirect: "manual" });
    assert.deepEqual([refused.status, (await refused.json()).error], [401, "invalid_install_link"]);
  });

  test("with an allow-list, installs start without a link, and one it does not name creates nothing", async () => {
    await world.reconfigure({ OAUTH_INSTALL_ALLOW: "loc-listed co-other" });
    try {
      world.sim.oauth.setConsentLocation("loc-listed");
      assert.equal((await install(world, "", "/oauth/install")).status, 200);
      world.sim.oauth.setConsentLocation("loc-stranger");
      const stranger = await install(world, "", "/oauth/install");
      assert.deepEqual([stranger.status, stranger.json.error], [403, "install_not_allowed"], JSON.stringify(stranger.json));
      const agency = await install(world, "", "/oauth/install?agency=1");
      assert.deepEqual([agency.status, agency.json.error], [403, "install_not_allowed"], "co-ag is not listed");
      const listed = (await world.admin("GET", "connections")).json.connections.map((c) => c.id);
      assert.deepEqual(listed, [LOCATION, "loc-listed"]);
      assert.deepEqual((await world.admin("GET", "agencies")).json.agencies, []);
    } finally {
      await world.reconfigure({ OAUTH_INSTALL_ALLOW: undefined });
    }
  });
});

describe("an agency's company token", () => {
  let world;
  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: { TOKEN_MODE: "oauth", CONTACTS_API_TOKEN: undefined, OAUTH_CLIENT_ID: CLIENT_ID, OAUTH_CLIENT_SECRET: CLIENT_SECRET, TOKEN_ENCRYPTION_KEYS: KEYS },
      simulator: {
        tokens: {},
        oauth: {
          // Inside the 5-minute refresh margin: the company token is renewed on every use.
          tokenLifetimeSecs: 60,
          clients: { [CLIENT_ID]: { secret: CLIENT_SECRET, locationId: LOCATION, companyId: "co-ag" } },
          companies: { "co-ag": { locations: ["loc-g1"] } },
        },
      },
    });
  });
  after(() => world?.close());

  test("is renewed in the Directory with its rotating refresh token, one renewal at a time", async () => {
    assert.equal((await install(world, "?agency=1")).status, 200);
    const answers = await Promise.all([1, 2, 3].map(() => world.admin("GET", "agencies/co-ag/locations")));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200], JSON.stringify(answers.map((a) => a.json)));
    const renewals = world.sim.oauth.grants().filter((g) => g.userType === "Company" && g.grantType === "refresh_token");
    assert.equal(renewals.length, 3, "each use renewed it");
    assert.ok(renewals.every((g) => g.status === 200), `no refresh token spent twice: ${JSON.stringify(renewals)}`);

    world.sim.oauth.revokeCompanyRefreshTokens("co-ag");
    const refused = await world.admin("GET", "agencies/co-ag/locations");
    assert.equal(refused.status, 409, JSON.stringify(refused.json));
    assert.equal(refused.json.error, "agency_token_refused");
    assert.match(refused.json.message, /\/oauth\/install\?agency=1/);
    assert.ok(!JSON.stringify(refused.json).includes("sim_"), "no token in the answer");
  });
});
