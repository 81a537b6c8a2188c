// The read API end to end: SightMill's users read contacts, tasks, notes, appointments and
// contact lists back through the built worker in workerd, authenticated with a read key, against
// the Contacts API simulator; SightMill ids resolve through the location's id map (its Durable
// Object); answers pass through; edge caching (when turned on) goes stale when a webhook changes
// the contact (a read version the Durable Object keeps, `readver:{contact id}` in its `meta` table).

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  ADMIN_KEY,
  apiCalls,
  contactEvent,
  LOCATION,
  READ_KEYS,
  SECRET,
  startWorld,
  TOKEN,
  WEBHOOK_PATH,
} from "./harness.mjs";

/** One GET on the worker; `key: null` sends no Authorization header. */
async function read(world, path, { key = READ_KEYS[0], method = "GET" } = {}) {
  const headers = key === null ? {} : { authorization: `Bearer ${key}` };
  const response = await world.fetch(path, { method, headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: JSON.parse(text), text };
}

/** One call straight to the simulator, as the worker would make it. */
async function api(world, method, path, body) {
  const response = await fetch(`${world.sim.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, version: "2021-07-28", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

/**
 * Two contacts created by webhook (sm_ada, sm_bob), Ada with a note, a task, an appointment and
 * a business. Returns their ids; the simulator's counts start from zero afterwards.
 */
async function seed(world) {
  const ada = await world.deliverAndSettle(contactEvent("contact.created", { id: "sm_ada", email: "ada@example.com", name: "Ada Lovelace" }));
  const bob = await world.deliverAndSettle(contactEvent("contact.created", { id: "sm_bob", email: "bob@example.com", name: "Bob Babbage" }));
  assert.equal(ada.record.state, "finished", JSON.stringify(ada.record));
  const contactId = ada.record.outcome.contact_id;
  const note = (await api(world, "POST", `/contacts/${contactId}/notes`, { body: "Met at the conference" })).json.note;
  const task = (
    await api(world, "POST", `/contacts/${contactId}/tasks`, { title: "Call", dueDate: "2026-12-01T10:00:00Z", completed: false })
  ).json.task;
  world.sim.seedAppointment(contactId, { title: "Demo" });
  world.sim.assignBusiness(contactId, "biz-1");
  const ids = { contactId, bobId: bob.record.outcome.contact_id, noteId: note.id, taskId: task.id };
  countsFrom(world);
  return ids;
}

/** Remembers the simulator's request count so that `newCalls` counts only what follows. */
function countsFrom(world) {
  world.callsBefore = apiCalls(world.sim);
}

function newCalls(world) {
  return apiCalls(world.sim) - world.callsBefore;
}

/** The contact-scoped routes, as paths below /contacts/:contactId (the same on the worker and the API). */
function contactRoutes({ noteId, taskId }) {
  return ["", "/tasks", `/tasks/${taskId}`, "/notes", `/notes/${noteId}`, "/appointments"];
}

describe("read API", () => {
  let world;
  let ids;
  before(async () => {
    world = await startWorld({ duplicates: "refuse" });
  });
  after(() => world.close());
  beforeEach(async () => {
    await world.reset();
    ids = await seed(world);
  });

  test("each contact route answers exactly what the Contacts API answers", async () => {
    for (const suffix of contactRoutes(ids)) {
      const path = `/contacts/${ids.contactId}${suffix}`;
      const answer = await read(world, path);
      const sent = world.sim.requests().at(-1);
      const direct = await api(world, "GET", path);
      assert.equal(answer.status, 200, `${path}: ${answer.text}`);
      assert.deepEqual(answer.json, direct.json, path);
      assert.equal(answer.headers.get("content-type"), "application/json", path);
      assert.deepEqual([sent.method, sent.path, sent.status], ["GET", path, 200]);
      assert.equal(sent.headers.version, "2021-07-28");
      assert.equal(sent.headers.authorization, "[redacted]", "the worker sent its token");
    }
    const task = await read(world, `/contacts/${ids.contactId}/tasks/${ids.taskId}`);
    assert.equal(task.json.task.title, "Call");
    const events = await read(world, `/contacts/${ids.contactId}/appointments`);
    assert.equal(events.json.events[0].title, "Demo");
  });

  test("GET /contacts/ passes the API's query and pagination through, with the worker's location", async () => {
    const first = await read(world, "/contacts/?limit=1");
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.contacts.length, 1);
    assert.equal(first.json.count, 2);
    assert.equal(first.json.meta.nextPage, 2);
    const next = new URL(first.json.meta.nextPageUrl);
    const second = await read(world, `/contacts/${next.search}`);
    assert.equal(second.status, 200, second.text);
    assert.deepEqual(
      [...first.json.contacts, ...second.json.contacts].map((c) => c.id).sort(),
      [ids.contactId, ids.bobId].sort(),
    );
    assert.equal(second.json.meta.nextPageUrl, null);
    const search = await read(world, "/contacts/?query=babbage");
    assert.deepEqual(search.json.contacts.map((c) => c.id), [ids.bobId]);
    const paths = world.sim.requests().slice(-3).map((r) => r.path);
    assert.equal(paths[0], `/contacts/?locationId=${LOCATION}&limit=1`);
    assert.match(paths[1], new RegExp(`^/contacts/\\?locationId=${LOCATION}&limit=1&startAfter=\\d+&startAfterId=`));
    assert.equal(paths[2], `/contacts/?locationId=${LOCATION}&query=babbage`);
  });

  test("GET /contacts/business/:businessId lists the business's contacts", async () => {
    const answer = await read(world, "/contacts/business/biz-1?limit=5&skip=0");
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.json.contacts.map((c) => c.id), [ids.contactId]);
    assert.equal(answer.json.count, 1);
    assert.equal(world.sim.requests().at(-1).path, `/contacts/business/biz-1?locationId=${LOCATION}&limit=5&skip=0`);
  });

  test("the same routes under /sightmill/contacts/:sightmillId resolve SightMill's id", async () => {
    for (const suffix of contactRoutes(ids)) {
      const bySightMill = await read(world, `/sightmill/contacts/sm_ada${suffix}`);
      const byApiId = await read(world, `/contacts/${ids.contactId}${suffix}`);
      assert.equal(bySightMill.status, 200, `${suffix}: ${bySightMill.text}`);
      assert.deepEqual(bySightMill.json, byApiId.json, suffix);
    }
    const bob = await read(world, "/sightmill/contacts/sm_bob");
    assert.equal(bob.json.contact.id, ids.bobId);
  });

  test("an unmapped SightMill id answers 404 not_mapped and calls nothing", async () => {
    const answer = await read(world, "/sightmill/contacts/sm_nobody/tasks");
    assert.equal(answer.status, 404);
    assert.equal(answer.json.error, "not_mapped");
    assert.doesNotMatch(answer.json.message, /sm_nobody/, "the path's id is not repeated");
    assert.equal(newCalls(world), 0);
  });

  test("a missing key answers 401 missing_api_key, a wrong one 401 invalid_api_key; every configured key works", async () => {
    const path = `/contacts/${ids.contactId}`;
    const missing = await read(world, path, { key: null });
    assert.deepEqual([missing.status, missing.json.error], [401, "missing_api_key"]);
    assert.equal(missing.headers.get("www-authenticate"), "Bearer");
    const wrong = await read(world, path, { key: "read-key-e2e-0123456789abcdeX" });
    assert.deepEqual([wrong.status, wrong.json.error], [401, "invalid_api_key"]);
    const admin = await read(world, path, { key: ADMIN_KEY });
    assert.deepEqual([admin.status, admin.json.error], [401, "invalid_api_key"], "the admin key is not a read key");
    const unmapped = await read(world, "/sightmill/contacts/sm_nobody", { key: null });
    assert.equal(unmapped.status, 401, "keys are checked before anything is looked up");
    assert.equal(newCalls(world), 0);
    for (const key of READ_KEYS) {
      assert.equal((await read(world, path, { key })).status, 200);
    }
  });

  test("a read key cannot call the operator API", async () => {
    for (const [key, code] of [[READ_KEYS[0], "invalid_api_key"], [READ_KEYS[1], "invalid_api_key"], [null, "missing_api_key"]]) {
      const answer = await read(world, "/admin/status", { key });
      assert.equal(answer.status, 401, answer.text);
      assert.equal(answer.json.error, code);
      assert.equal(typeof answer.json.message, "string");
    }
    const admin = await read(world, "/admin/status", { key: ADMIN_KEY });
    assert.equal(admin.status, 200, "the operator key gets in");
  });

  test("no key reaches the webhook path: it needs a signature", async () => {
    for (const key of [READ_KEYS[0], ADMIN_KEY]) {
      const response = await world.fetch(WEBHOOK_PATH, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(contactEvent("contact.updated", { id: "sm_ada", name: "Mallory" })),
      });
      assert.equal(response.status, 401);
      assert.equal((await response.json()).error, "invalid_signature");
    }
    assert.equal(newCalls(world), 0);
    assert.equal(world.sim.state().contacts.find((c) => c.id === ids.contactId).firstName, "Ada");
  });

  test("the API's own 400 for an unknown contact passes through", async () => {
    const answer = await read(world, "/contacts/nobody123/tasks");
    assert.equal(answer.status, 400);
    assert.deepEqual(answer.json, { statusCode: 400, message: "Contact not found" });
  });

  test("a 404 from the API passes through", async () => {
    const body = { statusCode: 404, message: "Note gone" };
    world.sim.injectFault({ route: "GET /contacts/:contactId/notes/:id", status: 404, body });
    const answer = await read(world, `/contacts/${ids.contactId}/notes/${ids.noteId}`);
    assert.deepEqual([answer.status, answer.json], [404, body]);
  });

  test("a 429 passes through with its Retry-After, and blocks the location until then", async () => {
    world.sim.injectFault({ route: "GET /contacts/:contactId/tasks", status: 429, headers: { "Retry-After": "2" } });
    const answer = await read(world, "/sightmill/contacts/sm_ada/tasks");
    assert.equal(answer.status, 429);
    assert.equal(answer.headers.get("retry-after"), "2");
    assert.deepEqual(answer.json, { statusCode: 429, message: "Too Many Requests" });
    assert.equal(newCalls(world), 1);

    const status = await world.admin("GET", "status");
    assert.ok(status.json.rate_limited_until > Date.now(), "the write path sees the block too");
    const blocked = await read(world, `/contacts/${ids.contactId}`);
    assert.equal(blocked.status, 429, blocked.text);
    assert.equal(blocked.json.error, "rate_limited");
    assert.match(blocked.headers.get("retry-after"), /^[12]$/);
    assert.equal(newCalls(world), 1, "nothing is sent while the location is blocked");

    await new Promise((resolve) => setTimeout(resolve, 2_100));
    assert.equal((await read(world, `/contacts/${ids.contactId}`)).status, 200, "the block ends");
    assert.equal(newCalls(world), 2);
  });

  test("a refused static token cannot be renewed: 502 after one call, never the caller's 401", async () => {
    const refused = { statusCode: 401, message: "Invalid JWT", error: "Unauthorized" };
    world.sim.injectFault({ route: "GET /contacts/:contactId", status: 401, body: refused });
    const answer = await read(world, `/contacts/${ids.contactId}`);
    assert.equal(answer.status, 502, answer.text);
    assert.equal(answer.json.error, "contacts_api_unauthorized", "a 401 never reaches the caller as its own");
    assert.equal(newCalls(world), 1, "the same static token is not sent again");

    countsFrom(world);
    const version = { statusCode: 401, message: "version header was not found." };
    world.sim.injectFault({ route: "GET /contacts/:contactId", status: 401, body: version });
    const misversioned = await read(world, `/contacts/${ids.contactId}`);
    assert.equal(misversioned.status, 502);
    assert.equal(newCalls(world), 1, "a Version problem is not a token problem: no retry");
  });

  test("a hung API call answers 504 contacts_api_timeout", async () => {
    world.sim.injectFault({ route: "GET /contacts/:contactId/appointments", hang: true });
    const answer = await read(world, `/contacts/${ids.contactId}/appointments`);
    assert.equal(answer.status, 504, answer.text);
    assert.equal(answer.json.error, "contacts_api_timeout");
    assert.match(answer.json.message, /no answer within 2000 ms/);
  });

  const refusals = [
    ["an id that is not path-safe", "GET", "/contacts/a.b/notes", 400, "invalid_id"],
    ["an encoded slash in an id", "GET", "/contacts/a%2Fb", 400, "invalid_path"],
    ["a SightMill id with a colon", "GET", "/sightmill/contacts/sm%3Aada", 400, "invalid_id"],
    ["an unknown sub-resource", "GET", "/contacts/abc/emails", 404, "not_found"],
    ["a route the read API does not offer", "GET", "/sightmill/contacts/sm_ada/tags", 404, "not_found"],
    ["a write method", "POST", "/contacts/abc", 405, "method_not_allowed"],
    ["a delete", "DELETE", "/sightmill/contacts/sm_ada", 405, "method_not_allowed"],
    ["an unknown list parameter", "GET", "/contacts/?sort=asc", 400, "invalid_query"],
    ["another location", "GET", "/contacts/?locationId=loc-other", 400, "invalid_query"],
    ["a parameter on a contact route", "GET", "/contacts/abc/tasks?completed=true", 400, "invalid_query"],
  ];
  for (const [name, method, path, status, code] of refusals) {
    test(`${name}: ${status} ${code}, nothing sent`, async () => {
      const answer = await read(world, path, { method });
      assert.equal(answer.status, status, answer.text);
      assert.equal(answer.json.error, code);
      assert.equal(typeof answer.json.message, "string");
      assert.equal(newCalls(world), 0);
    });
  }

  test("caching is off by default: every read calls the API, and writes bump no read version", async () => {
    const first = await read(world, `/contacts/${ids.contactId}`);
    const second = await read(world, `/contacts/${ids.contactId}`);
    assert.deepEqual(second.json, first.json);
    assert.equal(second.headers.get("x-sightmill-sync-cache"), null);
    assert.equal(newCalls(world), 2);
    assert.deepEqual((await world.kvKeys()).filter((k) => k.startsWith("readver:")), []);
    assert.deepEqual(await world.sql("SELECT key FROM meta WHERE key LIKE 'readver:%'"), [], "no read version kept");
  });

  test("logs carry one line per read and never a key, a token or contact data", async () => {
    await read(world, `/sightmill/contacts/sm_ada/notes`);
    await read(world, `/contacts/${ids.contactId}`, { key: "read-key-e2e-wrong-0123456789" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const logs = world.logs();
    const lines = logs.split("\n").filter((l) => l.includes('"msg":"read"'));
    const entries = lines.map((l) => JSON.parse(l.slice(l.indexOf("{"))));
    assert.deepEqual(
      entries.map((e) => [e.route, e.status, e.error, e.api_calls]),
      [
        ["contact.notes", 200, null, 1],
        ["unrouted", 401, "invalid_api_key", 0],
      ],
    );
    for (const secret of [...READ_KEYS, ADMIN_KEY, TOKEN, SECRET, "read-key-e2e-wrong", "ada@example.com", "conference"]) {
      assert.ok(!logs.includes(secret), `logs must not contain ${secret}`);
    }
  });
});

describe("read API caching (READ_CACHE_TTL_SECS=60)", () => {
  let world;
  let ids;
  before(async () => {
    world = await startWorld({ duplicates: "refuse", vars: { READ_CACHE_TTL_SECS: "60" } });
  });
  after(() => world.close());
  beforeEach(async () => {
    await world.reset();
    ids = await seed(world);
  });

  test("a second read is served from the edge cache, shared by both id forms", async () => {
    const first = await read(world, `/contacts/${ids.contactId}/tasks`);
    assert.equal(first.headers.get("x-sightmill-sync-cache"), "miss");
    const second = await read(world, `/contacts/${ids.contactId}/tasks`);
    const third = await read(world, "/sightmill/contacts/sm_ada/tasks");
    for (const cached of [second, third]) {
      assert.equal(cached.status, 200);
      assert.equal(cached.headers.get("x-sightmill-sync-cache"), "hit");
      assert.deepEqual(cached.json, first.json);
    }
    assert.equal(newCalls(world), 1, "one API call for three reads");
    await read(world, `/contacts/${ids.contactId}/notes`);
    assert.equal(newCalls(world), 2, "each resource is cached on its own");
  });

  test("a webhook update makes the contact's cached reads stale", async () => {
    const before = await read(world, `/sightmill/contacts/sm_ada`);
    assert.equal(before.json.contact.lastName, "Lovelace");
    assert.equal((await read(world, `/sightmill/contacts/sm_ada`)).headers.get("x-sightmill-sync-cache"), "hit");

    const update = await world.deliverAndSettle(
      contactEvent("contact.updated", { id: "sm_ada", name: "Ada King", updated_at: "2026-11-27T11:00:00Z" }),
    );
    assert.equal(update.record.state, "finished", JSON.stringify(update.record));
    const [version] = await world.sql("SELECT value FROM meta WHERE key = ?", `readver:${ids.contactId}`);
    assert.ok(version, "the write bumped the read version, in the Durable Object");
    countsFrom(world);

    const after = await read(world, `/sightmill/contacts/sm_ada`);
    assert.equal(after.headers.get("x-sightmill-sync-cache"), "miss");
    assert.equal(after.json.contact.lastName, "King");
    assert.equal(newCalls(world), 1, "the read went to the API again");
    assert.equal((await read(world, `/contacts/${ids.contactId}`)).headers.get("x-sightmill-sync-cache"), "hit");
    assert.equal(newCalls(world), 1);
  });

  test("failures and lists are never cached", async () => {
    world.sim.injectFault({ route: "GET /contacts/:contactId/notes", status: 503 });
    assert.equal((await read(world, `/contacts/${ids.contactId}/notes`)).status, 503);
    const recovered = await read(world, `/contacts/${ids.contactId}/notes`);
    assert.equal(recovered.status, 200);
    assert.equal(recovered.headers.get("x-sightmill-sync-cache"), "miss");
    assert.equal((await read(world, "/contacts/nobody123")).status, 400);
    assert.equal((await read(world, "/contacts/nobody123")).status, 400);
    for (const list of ["/contacts/", "/contacts/", "/contacts/business/biz-1", "/contacts/business/biz-1"]) {
      const answer = await read(world, list);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get("x-sightmill-sync-cache"), null);
    }
    assert.equal(newCalls(world), 8);
  });
});

describe("read API settings", () => {
  const cases = [
    ["no READ_API_KEYS turns the read API off", { READ_API_KEYS: undefined }, 404, "read_api_disabled", /READ_API_KEYS/],
    ["a read key shorter than 24 characters", { READ_API_KEYS: "read-key-of-20-chars" }, 500, "misconfigured", /READ_API_KEYS/],
    ["an invalid READ_CACHE_TTL_SECS", { READ_CACHE_TTL_SECS: "forever" }, 500, "misconfigured", /READ_CACHE_TTL_SECS/],
    ["a missing token", { CONTACTS_API_TOKEN: undefined }, 503, "misconfigured", /CONTACTS_API_TOKEN/],
    ["an unreachable Contacts API", { CONTACTS_API_BASE: "http://127.0.0.1:1" }, 502, "contacts_api_unavailable", /network error/],
  ];
  for (const [name, vars, status, code, message] of cases) {
    test(`${name}: ${status} ${code}`, async () => {
      const world = await startWorld({ duplicates: "refuse", vars });
      try {
        const answer = await read(world, "/contacts/abc");
        assert.equal(answer.status, status, answer.text);
        assert.equal(answer.json.error, code);
        assert.match(answer.json.message, message);
        assert.ok(!answer.text.includes("read-key-of-20-chars") && !answer.text.includes(TOKEN), "never a secret value");
        assert.equal(apiCalls(world.sim), 0);
      } finally {
        await world.close();
      }
    });
  }
});

describe("read API with a renewable token (client credentials)", () => {
  const CLIENT_ID = "read-e2e-client";
  const CLIENT_SECRET = "read-e2e-client-secret-0123456789";
  let world;
  let contactId;
  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: {
        TOKEN_MODE: "client_credentials",
        CONTACTS_API_TOKEN: undefined,
        OAUTH_CLIENT_ID: CLIENT_ID,
        OAUTH_CLIENT_SECRET: CLIENT_SECRET,
        TOKEN_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 7).toString("base64")}`,
      },
      simulator: { tokens: {}, oauth: { clients: { [CLIENT_ID]: { secret: CLIENT_SECRET, locationId: LOCATION } } } },
    });
    const { record } = await world.deliverAndSettle(contactEvent("contact.created", { id: "sm_ada", name: "Ada" }));
    contactId = record.outcome.contact_id;
  });
  after(() => world.close());

  test("a token 401 is renewed once and the call retried once", async () => {
    const refused = { statusCode: 401, message: "Invalid JWT", error: "Unauthorized" };
    const reads = () => world.sim.counts()["GET /contacts/:contactId"] ?? 0;
    const renewals = () => world.sim.oauth.grants().length;
    world.sim.injectFault({ route: "GET /contacts/:contactId", status: 401, body: refused });
    let [readsBefore, renewalsBefore] = [reads(), renewals()];
    const retried = await read(world, `/contacts/${contactId}`);
    assert.equal(retried.status, 200, retried.text);
    assert.equal(retried.json.contact.id, contactId);
    assert.equal(reads() - readsBefore, 2, "the call, then one retry");
    assert.equal(renewals() - renewalsBefore, 1, "with a renewed token");

    world.sim.injectFault({ route: "GET /contacts/:contactId", status: 401, body: refused, count: 2 });
    [readsBefore, renewalsBefore] = [reads(), renewals()];
    const twice = await read(world, `/contacts/${contactId}`);
    assert.equal(twice.status, 502, twice.text);
    assert.equal(twice.json.error, "contacts_api_unauthorized");
    assert.match(twice.json.message, /Invalid JWT/);
    assert.equal(reads() - readsBefore, 2, "one retry only");
  });
});
