// Connections kept apart, end to end: named connections created through the operator API
// (POST /admin/connections, which the Directory pushes to each location's Durable Object), each
// with its own webhook URL, signing secret, Private Integration Token and location in the
// simulator, beside the default connection. A delivery signed with another connection's secret,
// for an unknown connection or with path characters in its id, and a read key used on a
// connection it does not name, are each refused with their JSON error, and nothing is written or
// sent; each connection's events go to its own location in order; a paused connection keeps its
// events until it is resumed; a revoked secret stops at the location at once, even while the
// edge's copy of the record still holds it.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { ADMIN_KEY, apiCalls, contactEvent, LOCATION, READ_KEYS, sleep, startWorld, TOKEN } from "./harness.mjs";
import { newSecret, signedDelivery } from "../support/webhooks.mjs";

const KEYS = `k1:${Buffer.alloc(32, 7).toString("base64")}`;
const A = { id: "loc-a", token: "pit-a-0123456789abcdef", secret: newSecret() };
const B = { id: "loc-b", token: "pit-b-0123456789abcdef", secret: newSecret() };
/** A read key that reaches loc-a only. */
const SCOPED = "read-key-scoped-0123456789abcdef";

const locations = {
  [LOCATION]: { allowDuplicates: false },
  [A.id]: { allowDuplicates: false },
  [B.id]: { allowDuplicates: false },
};

async function json(response) {
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null, text };
}

/** Polls `check` until it returns a truthy value, for at most `ms`. */
async function until(what, check, ms = 8000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe("connections kept apart", () => {
  let world;
  const post = (connection, event, overrides = {}) =>
    world.fetch(`/webhooks/sightmill/${connection.id}`, signedDelivery(overrides.secret ?? connection.secret, event, overrides)).then(json);
  const admin = (method, path, body) => world.admin(method, path, { body });
  const status = async (connection) => (await admin("GET", `connections/${connection.id}/status`)).json;
  const contactsIn = (location) => world.sim.state().contacts.filter((contact) => contact.locationId === location);
  const create = async (connection) => {
    const body = { id: connection.id, token: { kind: "private_integration", token: connection.token }, signing_secret: connection.secret };
    const created = await admin("POST", "connections", body);
    assert.equal(created.status, 201, JSON.stringify(created.json));
  };
  /** What A and B hold and what was sent: compared before and after a refused request. */
  const snapshot = async () => ({
    a: await status(A),
    b: await status(B),
    calls: apiCalls(world.sim),
    kv: await world.kvKeys(),
  });
  const stored = ({ pending, parked, counters }) => ({ pending, parked, counters });
  const assertUnchanged = async (before) => {
    const now = await snapshot();
    assert.equal(now.calls, before.calls, "nothing was sent to the Contacts API");
    assert.deepEqual(now.kv, before.kv, "no KV key was written");
    assert.deepEqual(stored(now.a), stored(before.a), "nothing was written in A");
    assert.deepEqual(stored(now.b), stored(before.b), "nothing was written in B");
  };

  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: { TOKEN_ENCRYPTION_KEYS: KEYS, READ_API_KEYS: `${READ_KEYS.join(" ")} ${SCOPED}@${A.id}` },
      simulator: { tokens: { [TOKEN]: LOCATION, [A.token]: A.id, [B.token]: B.id }, locations },
    });
  });
  beforeEach(async () => {
    await world.reset();
    await create(A);
    await create(B);
  });
  after(() => world.close());

  test("each connection's events go to its own location, in order", async () => {
    const same = "sm_shared";
    for (const [connection, email] of [[A, "a@example.com"], [B, "b@example.com"]]) {
      const created = await post(connection, contactEvent("contact.created", { id: same, email, updated_at: "2026-11-27T10:00:00Z" }));
      assert.equal(created.status, 202, created.text);
      const updated = await post(connection, contactEvent("contact.updated", { id: same, email, name: `Late ${connection.id}`, updated_at: "2026-11-27T10:05:00Z" }));
      assert.equal(updated.status, 202, updated.text);
    }
    for (const [connection, email] of [[A, "a@example.com"], [B, "b@example.com"]]) {
      const [contact] = await until(`${connection.id}'s contact`, () => {
        const found = contactsIn(connection.id);
        return found.length === 1 && found[0].firstName === "Late" ? found : null;
      });
      assert.equal(contact.email, email, "each location got its own connection's contact");
      assert.equal(contact.lastName, connection.id, "the later event was applied last");
    }
    assert.equal(contactsIn(LOCATION).length, 0, "the default location got nothing");
    // The simulator lets a token act for its own location only: each create above went out with
    // its connection's Private Integration Token.
    const a = await status(A);
    assert.deepEqual(a.connection, { id: A.id, default: false, paused: false, token: { kind: "private_integration" } });
    assert.equal(a.pending, 0);
    const keys = await world.kvKeys();
    assert.ok(keys.some((key) => key.startsWith(`webhook@${A.id}:`)), keys.join(","));
    assert.ok(!keys.some((key) => key.startsWith("webhook:")), "a named connection's keys are its own");
  });

  test("A's URL signed with B's secret: 401 invalid_signature, nothing written in A or B, nothing sent", async () => {
    const before = await snapshot();
    const answer = await post(A, contactEvent("contact.created", { id: "sm_x" }), { secret: B.secret });
    assert.equal(answer.status, 401, answer.text);
    assert.equal(answer.json.error, "invalid_signature");
    assert.ok(!answer.text.includes(B.secret) && !answer.text.includes(A.secret));
    await assertUnchanged(before);
  });

  const refusedRows = [
    ["an unknown connection (answered as a wrong signature)", "/webhooks/sightmill/loc-nobody", 401, "invalid_signature"],
    ["a connection id with an encoded slash", "/webhooks/sightmill/loc-a%2F..%2Floc-b", 400, "invalid_path"],
    ["a connection id with a dot", "/webhooks/sightmill/loc.a", 400, "invalid_connection_id"],
    ["a connection id and a further segment", "/webhooks/sightmill/loc-a/extra", 400, "invalid_connection_id"],
    ["a connection id of 65 characters", `/webhooks/sightmill/${"a".repeat(65)}`, 400, "invalid_connection_id"],
  ];
  for (const [name, path, code, error] of refusedRows) {
    test(`${name}: ${code} ${error}, nothing written or sent`, async () => {
      const before = await snapshot();
      const answer = await json(await world.fetch(path, signedDelivery(A.secret, contactEvent("contact.created", { id: "sm_x" }))));
      assert.equal(answer.status, code, answer.text);
      assert.equal(answer.json.error, error);
      assert.equal(typeof answer.json.message, "string");
      await assertUnchanged(before);
    });
  }

  test("a read key used on a connection it does not name: 403 connection_not_allowed, nothing sent", async () => {
    const read = (path, key) => world.fetch(path, { headers: { authorization: `Bearer ${key}` } }).then(json);
    const before = await snapshot();
    const refused = await read(`/connections/${B.id}/contacts/c1`, SCOPED);
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.json.error, "connection_not_allowed");
    const defaultRefused = await read("/contacts/c1", SCOPED);
    assert.equal(defaultRefused.status, 403, "the default connection is named by its id");
    await assertUnchanged(before);
    const unknown = await read("/connections/loc-nobody/contacts/c1", READ_KEYS[0]);
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.error, "unknown_connection");
    const allowed = await read(`/connections/${A.id}/sightmill/contacts/sm_none`, SCOPED);
    assert.equal(allowed.status, 404, allowed.text);
    assert.equal(allowed.json.error, "not_mapped", "the scoped key reaches its own connection");
  });

  test("a paused connection keeps its events pending until it is resumed", async () => {
    const paused = await admin("POST", `connections/${B.id}/pause`);
    assert.equal(paused.status, 200, JSON.stringify(paused.json));
    const calls = apiCalls(world.sim);
    const answer = await post(B, contactEvent("contact.created", { id: "sm_p", email: "p@example.com" }));
    assert.equal(answer.status, 202, answer.text);
    await world.cron();
    const held = await status(B);
    assert.equal(held.pending, 1);
    assert.equal(held.paused, true);
    assert.equal(held.connection.paused, true);
    assert.equal(apiCalls(world.sim), calls, "nothing was sent while paused");
    const resumed = await admin("POST", `connections/${B.id}/resume`);
    assert.equal(resumed.status, 200, JSON.stringify(resumed.json));
    await until("the resumed connection's contact", () => contactsIn(B.id).length === 1);
    assert.equal((await status(B)).pending, 0);
  });

  test("a revoked secret stops at the location at once, while the edge's copy still holds it", async () => {
    const first = await post(A, contactEvent("contact.created", { id: "sm_r" }));
    assert.equal(first.status, 202, first.text); // the edge's copy of A now holds A.secret
    const rotated = await admin("POST", `connections/${A.id}/secrets`, { keep_old_for: "0s" });
    assert.equal(rotated.status, 201, JSON.stringify(rotated.json));
    const before = await snapshot();
    const revoked = await post(A, contactEvent("contact.created", { id: "sm_r2" }));
    assert.equal(revoked.status, 401, revoked.text);
    assert.equal(revoked.json.error, "invalid_signature");
    await assertUnchanged(before);
    const fresh = { ...A, secret: rotated.json.signing_secret };
    const accepted = await until("the new secret to be accepted", async () => {
      const answer = await post(fresh, contactEvent("contact.created", { id: "sm_r3" }));
      return answer.status === 202 ? answer : null;
    }, 10000);
    assert.equal(accepted.status, 202);
    assert.equal(world.logs().includes(fresh.secret), false, "the secret is never logged");
  });

  test("a webhook on a named connection costs what one on the default costs, and the Directory once", async (t) => {
    const count = (ops, op) => Object.values(ops ?? {}).reduce((sum, byOp) => sum + (byOp[op] ?? 0), 0);
    const fetched = () => world.logs().split("\n").filter((line) => line.includes("connection record fetched")).length;
    const N = 10;
    const cost = async (deliver, statusOf) => {
      const [ops, requests, lookups] = [await world.kvOps(), (await statusOf()).durable_object.requests, fetched()];
      const ids = [];
      for (let n = 0; n < N; n += 1) {
        const answer = await deliver(contactEvent("contact.created", { id: `sm_c${n}`, email: `c${n}@example.com` }));
        assert.equal(answer.status, 202, answer.text);
        ids.push(answer.id);
      }
      await until("every webhook to finish", async () => (await statusOf()).pending === 0);
      const after = await world.kvOps();
      return {
        kv_get: (count(after, "get") - count(ops, "get")) / N,
        kv_put: (count(after, "put") - count(ops, "put")) / N,
        // Requests to the location's Durable Object, alarms included, less the status reads.
        do_requests: ((await statusOf()).durable_object.requests - requests - 2) / N,
        directory_lookups: fetched() - lookups,
      };
    };
    const named = await cost((event) => post(A, event), () => status(A));
    const byDefault = await cost((event) => world.deliver(event), () => world.status());
    t.diagnostic(`per webhook, named: ${JSON.stringify(named)}; default: ${JSON.stringify(byDefault)}`);
    // The named connection's record is read from KV at most once a minute (the edge's copy).
    assert.ok(named.kv_get - byDefault.kv_get <= 1 / N + 1e-9, `${named.kv_get} vs ${byDefault.kv_get}`);
    assert.equal(named.kv_put, byDefault.kv_put);
    assert.ok(named.directory_lookups <= 1, `the record fetched at most once a minute: ${named.directory_lookups}`);
    assert.equal(byDefault.directory_lookups, 0);
  });

  test("the default connection is unchanged beside named ones, and every Location line names its connection", async () => {
    const answer = await world.deliver(contactEvent("contact.created", { id: "sm_d", email: "d@example.com" }));
    assert.equal(answer.status, 202, answer.text);
    await until("the default location's contact", () => contactsIn(LOCATION).length === 1);
    const status = await world.status();
    assert.deepEqual(status.connection, { id: LOCATION, default: true, paused: false, token: { kind: "private_integration" } });
    const lines = world.logs().split("\n").filter((line) => line.includes('"msg":"webhook"'));
    assert.ok(lines.length > 0);
    for (const line of lines) assert.match(line, new RegExp(`"connection":"${LOCATION}"`), line);
    assert.equal(world.logs().includes(ADMIN_KEY), false);
  });
});
