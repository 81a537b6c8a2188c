// Tests of the Contacts API simulator itself (node --test tests/simulator/): API behaviour,
// auth, validation, duplicates, rate limits, fault injection and the control interface.

import assert from "node:assert/strict";
import { test } from "node:test";
import { startSimulator } from "./server.mjs";

const TOKEN = "pit-test";
const LOCATION = "loc-1";
const VERSION = "2021-07-28";

/** Starts a simulator, runs `fn(sim)`, always closes it. */
async function withSim(options, fn) {
  const sim = await startSimulator({ tokens: { [TOKEN]: LOCATION }, ...options });
  try {
    await fn(sim);
  } finally {
    await sim.close();
  }
}

/** One API call; `token`/`version` may be null to leave the header out. */
async function call(sim, method, path, { body, token = TOKEN, version = VERSION, headers = {}, signal } = {}) {
  const h = { ...headers };
  if (token !== null) h.Authorization = `Bearer ${token}`;
  if (version !== null) h.Version = version;
  if (body !== undefined) h["Content-Type"] ??= "application/json";
  const res = await fetch(sim.url + path, {
    method,
    headers: h,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === "" ? null : JSON.parse(text) };
}

/** POST /contacts/ for the test location. */
function create(sim, fields, opts) {
  return call(sim, "POST", "/contacts/", { body: { locationId: LOCATION, ...fields }, ...opts });
}

test("creates a contact and gets it back", async () => {
  await withSim({}, async (sim) => {
    const created = await create(sim, {
      firstName: "Ada",
      lastName: "Lovelace",
      email: "Ada@Example.com",
      phone: "+1 555 0100",
      tags: ["vip"],
      customFields: [{ id: "cf1", key: "score", field_value: 7 }],
      dndSettings: { Email: { status: "active" } },
    });
    assert.equal(created.status, 201);
    assert.match(created.headers.get("content-type"), /^application\/json/);
    const { contact } = created.body;
    assert.match(contact.id, /^[A-Za-z0-9]{20}$/);
    assert.equal(contact.locationId, LOCATION);
    assert.equal(contact.emailLowerCase, "ada@example.com");
    assert.equal(contact.fullNameLowerCase, "ada lovelace");
    assert.deepEqual(contact.tags, ["vip"]);
    assert.deepEqual(contact.customFields, [{ id: "cf1", value: 7 }]);
    assert.ok(contact.dateAdded && contact.dateUpdated);

    const got = await call(sim, "GET", `/contacts/${contact.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, { contact });
    assert.deepEqual(sim.state(), { contacts: [contact] });

    const missing = await call(sim, "GET", "/contacts/nope");
    assert.deepEqual([missing.status, missing.body], [400, { statusCode: 400, message: "Contact not found" }]);
  });
});

test("ids come from the seeded PRNG", async () => {
  const ids = [];
  for (const seed of [7, 7, 8]) {
    await withSim({ seed }, async (sim) => ids.push((await create(sim, {})).body.contact.id));
  }
  assert.equal(ids[0], ids[1]);
  assert.notEqual(ids[0], ids[2]);
});

test("updates given fields only and answers {succeded, contact}", async () => {
  await withSim({}, async (sim) => {
    const original = { firstName: "Ada", tags: ["a", "b"], customFields: [{ id: "x", field_value: "1" }] };
    const { contact } = (await create(sim, original)).body;
    const changes = {
      lastName: "King",
      tags: ["c"],
      customFields: [
        { id: "y", field_value: ["p", "q"] },
        { id: "x", field_value: "2" },
      ],
    };
    const updated = await call(sim, "PUT", `/contacts/${contact.id}`, { body: changes });
    assert.equal(updated.status, 200);
    assert.equal(updated.body.succeded, true);
    const c = updated.body.contact;
    assert.equal(c.firstName, "Ada");
    assert.equal(c.lastName, "King");
    assert.equal(c.fullNameLowerCase, "ada king");
    assert.deepEqual(c.tags, ["c"], "tags overwrite");
    assert.deepEqual(c.customFields, [{ id: "x", value: "2" }, { id: "y", value: ["p", "q"] }]);
    assert.deepEqual(sim.state().contacts[0], c);

    const unknown = await call(sim, "PUT", "/contacts/doesNotExist", { body: { firstName: "x" } });
    assert.deepEqual([unknown.status, unknown.body.message], [400, "Contact not found"]);
  });
});

test("a contact of another location is not found", async () => {
  await withSim({ tokens: { [TOKEN]: LOCATION, other: "loc-2" } }, async (sim) => {
    const { contact } = (await create(sim, { firstName: "A" })).body;
    assert.equal((await call(sim, "GET", `/contacts/${contact.id}`, { token: "other" })).status, 400);
    assert.equal((await call(sim, "PUT", `/contacts/${contact.id}`, { token: "other", body: {} })).status, 400);
  });
});

test("unknown properties and wrong types answer 422 with a message list", async () => {
  await withSim({}, async (sim) => {
    const res = await create(sim, {
      foo: 1,
      firstName: 5,
      dnd: "yes",
      tags: ["ok", 3],
      customFields: [{ field_value: true }],
    });
    assert.equal(res.status, 422);
    assert.equal(res.body.statusCode, 422);
    assert.equal(res.body.error, "Unprocessable Entity");
    for (const message of [
      "property foo should not exist",
      "firstName must be a string",
      "dnd must be a boolean value",
      "each value in tags must be a string",
      "customFields.0.id must be a string",
      "customFields.0.field_value must be a string, number, array of strings or object",
    ]) {
      assert.ok(res.body.message.includes(message), `${message} in ${JSON.stringify(res.body.message)}`);
    }
    assert.deepEqual(sim.state().contacts, [], "nothing created");
  });
});

test("locationId is required on create, foreign on update, and must be the token's", async () => {
  await withSim({}, async (sim) => {
    const missing = await call(sim, "POST", "/contacts/", { body: { firstName: "A" } });
    assert.equal(missing.status, 422);
    assert.ok(missing.body.message.includes("locationId should not be empty"));

    const foreign = await create(sim, { locationId: "loc-other" });
    assert.deepEqual(foreign.body, { statusCode: 403, message: "The token does not have access to this location." });

    const { contact } = (await create(sim, {})).body;
    const put = await call(sim, "PUT", `/contacts/${contact.id}`, { body: { locationId: LOCATION } });
    assert.equal(put.status, 422);
    assert.deepEqual(put.body.message, ["property locationId should not exist"]);
  });
});

test("bodies must be JSON", async () => {
  await withSim({}, async (sim) => {
    const malformed = await call(sim, "POST", "/contacts/", { body: "{not json" });
    assert.equal(malformed.status, 400);
    assert.match(malformed.body.message, /JSON/);
    const wrongType = await call(sim, "POST", "/contacts/", { body: "a=b", headers: { "Content-Type": "text/plain" } });
    assert.equal(wrongType.status, 415);
  });
});

test("the Version header is checked first, then the token", async () => {
  await withSim({}, async (sim) => {
    const versionError = { statusCode: 401, message: "version header was not found." };
    for (const version of [null, "2021-04-15"]) {
      const res = await call(sim, "GET", "/contacts/x", { version, token: "bad" });
      assert.deepEqual([res.status, res.body], [401, versionError]);
      assert.equal(res.headers.get("x-ratelimit-max"), null);
    }
    const noToken = await call(sim, "GET", "/contacts/x", { token: null });
    assert.deepEqual(noToken.body, { statusCode: 401, message: "Invalid JWT", error: "Unauthorized" });
    const badToken = await call(sim, "GET", "/contacts/x", { token: "bad" });
    assert.deepEqual(badToken.body, {
      statusCode: 401,
      message: "Invalid token: access token is invalid",
      error: "Unauthorized",
    });

    sim.addToken("new", LOCATION);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "new" })).status, 400);
    sim.revokeToken("new");
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "new" })).status, 401);
  });
});

test("duplicates are refused with meta.contactId where the location disallows them", async () => {
  await withSim(
    { tokens: { [TOKEN]: LOCATION, t2: "loc-2" }, locations: { [LOCATION]: { allowDuplicates: false } } },
    async (sim) => {
      const fields = { firstName: "Ada", lastName: "L", email: "ada@x.com", phone: "+1 555-0100" };
      const first = (await create(sim, fields)).body.contact;
      const byEmail = await create(sim, { email: "ADA@X.COM" });
      assert.deepEqual(byEmail.body, {
        statusCode: 400,
        message: "This location does not allow duplicated contacts.",
        meta: { contactName: "Ada L", contactId: first.id, matchingField: "email" },
      });
      const byPhone = await create(sim, { phone: "+15550100" });
      assert.deepEqual([byPhone.status, byPhone.body.meta.matchingField], [400, "phone"]);
      assert.equal(sim.state().contacts.length, 1);

      // loc-2 is not configured: duplicates allowed there.
      const body = { locationId: "loc-2", email: "ada@x.com" };
      assert.equal((await call(sim, "POST", "/contacts/", { token: "t2", body })).status, 201);
      assert.equal((await call(sim, "POST", "/contacts/", { token: "t2", body })).status, 201);
    },
  );
});

test("rate limit: 429 with Retry-After past max, X-RateLimit headers on every answer", async () => {
  let now = 1_000_000;
  await withSim({ rateLimit: { max: 3, intervalMs: 1000, daily: 10 }, now: () => now }, async (sim) => {
    const remaining = [];
    for (let i = 0; i < 3; i += 1) {
      const res = await call(sim, "GET", "/contacts/x");
      assert.equal(res.status, 400);
      assert.equal(res.headers.get("x-ratelimit-max"), "3");
      assert.equal(res.headers.get("x-ratelimit-interval-milliseconds"), "1000");
      assert.equal(res.headers.get("x-ratelimit-limit-daily"), "10");
      remaining.push(res.headers.get("x-ratelimit-remaining"));
    }
    assert.deepEqual(remaining, ["2", "1", "0"]);

    now += 400;
    const limited = await create(sim, { firstName: "late" });
    assert.deepEqual([limited.status, limited.body], [429, { statusCode: 429, message: "Too Many Requests" }]);
    assert.equal(limited.headers.get("retry-after"), "1");
    assert.equal(limited.headers.get("x-ratelimit-remaining"), "0");
    assert.equal(limited.headers.get("x-ratelimit-daily-remaining"), "7");
    assert.deepEqual(sim.state().contacts, [], "a 429 is not applied");

    now += 600; // the window has ended
    const after = await call(sim, "GET", "/contacts/x");
    assert.equal(after.status, 400);
    assert.equal(after.headers.get("x-ratelimit-remaining"), "2");
  });
});

test("rate limit with the real clock", async () => {
  await withSim({ rateLimit: { max: 3, intervalMs: 1000 } }, async (sim) => {
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await call(sim, "GET", "/contacts/x")).status);
    assert.deepEqual(statuses, [400, 400, 400, 429]);
  });
});

test("fault: status for the next N matching requests, state untouched", async () => {
  await withSim({}, async (sim) => {
    sim.injectFault({ route: "POST /contacts/", count: 2, status: 503, headers: { "Retry-After": "2" } });
    const first = await create(sim, { firstName: "A" });
    assert.deepEqual([first.status, first.body], [503, { statusCode: 503, message: "Service Unavailable" }]);
    assert.equal(first.headers.get("retry-after"), "2");
    assert.equal((await call(sim, "GET", "/contacts/x")).status, 400, "other routes unaffected");
    assert.equal((await create(sim, { firstName: "A" })).status, 503);
    assert.equal((await create(sim, { firstName: "A" })).status, 201);
    assert.equal(sim.state().contacts.length, 1);
    assert.deepEqual(
      sim.requests().map((r) => r.status),
      [503, 400, 503, 201],
    );

    sim.injectFault({ status: 500, body: { custom: true } });
    assert.deepEqual((await call(sim, "GET", "/contacts/x")).body, { custom: true });
    assert.throws(() => sim.injectFault({ route: "POST /contacts", status: 500 }), /unknown route/);
  });
});

test("fault: afterApply answers the fault status but keeps the change", async () => {
  await withSim({}, async (sim) => {
    sim.injectFault({ route: "POST /contacts/", status: 422, afterApply: true });
    assert.equal((await create(sim, { firstName: "A" })).status, 422);
    assert.equal(sim.state().contacts.length, 1);
  });
});

test("fault: fraction draws from the seeded PRNG", async () => {
  async function pattern(seed) {
    let statuses;
    await withSim({ seed }, async (sim) => {
      sim.injectFault({ fraction: 0.5, status: 500 });
      statuses = [];
      for (let i = 0; i < 16; i += 1) statuses.push((await call(sim, "GET", "/contacts/x")).status);
    });
    return statuses;
  }
  const a = await pattern(3);
  assert.deepEqual(await pattern(3), a, "same seed, same faults");
  assert.ok(a.includes(500) && a.includes(400), `a mix of faults and answers: ${a}`);
});

test("fault: latency delays, then the request is handled", async () => {
  await withSim({}, async (sim) => {
    sim.injectFault({ route: "POST /contacts/", latencyMs: 100 });
    const started = performance.now();
    const res = await create(sim, { firstName: "A" });
    assert.ok(performance.now() - started >= 95);
    assert.equal(res.status, 201);
  });
});

test("fault: hang never answers; close() still completes promptly", async () => {
  const sim = await startSimulator({ tokens: { [TOKEN]: LOCATION } });
  sim.injectFault({ route: "POST /contacts/", hang: true });
  await assert.rejects(create(sim, { firstName: "A" }, { signal: AbortSignal.timeout(100) }), { name: "TimeoutError" });
  assert.deepEqual(sim.state().contacts, []);
  assert.equal(sim.requests()[0].status, 0);

  const pending = create(sim, { firstName: "B" }); // no fault left: answered
  assert.equal((await pending).status, 201);

  sim.injectFault({ hang: true });
  const hung = create(sim, {}).catch((err) => err);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const started = performance.now();
  await sim.close();
  assert.ok(performance.now() - started < 500, "close() does not wait for hung requests");
  assert.ok((await hung) instanceof Error, "the hung request's socket is destroyed");
});

test("fault: clearFaults() releases hung requests", async () => {
  await withSim({}, async (sim) => {
    sim.injectFault({ hang: true, count: null });
    const hung = call(sim, "GET", "/contacts/x").catch((err) => err);
    await new Promise((resolve) => setTimeout(resolve, 50));
    sim.clearFaults();
    assert.ok((await hung) instanceof Error);
    assert.equal((await call(sim, "GET", "/contacts/x")).status, 400);
  });
});

test("counts by route template, unknown routes 404", async () => {
  await withSim({}, async (sim) => {
    const { contact } = (await create(sim, {})).body;
    await call(sim, "GET", `/contacts/${contact.id}`);
    await call(sim, "PUT", `/contacts/${contact.id}`, { body: { firstName: "B" } });
    await call(sim, "POST", "/contacts", { body: { locationId: LOCATION } }); // trailing slash optional
    const missing = await call(sim, "GET", "/nowhere");
    assert.deepEqual([missing.status, missing.body.message], [404, "Cannot GET /nowhere"]);
    assert.deepEqual(sim.counts(), {
      "POST /contacts/": 2,
      "GET /contacts/:contactId": 1,
      "PUT /contacts/:contactId": 1,
      "GET <unmatched>": 1,
    });
    const [first] = sim.requests();
    assert.equal(first.route, "POST /contacts/");
    assert.equal(first.headers.authorization, "[redacted]");
    assert.equal(first.headers.version, VERSION);
    assert.deepEqual(first.body, { locationId: LOCATION });
    assert.equal(typeof first.at, "number");
  });
});

test("control HTTP interface", async () => {
  await withSim({}, async (sim) => {
    const control = async (method, path, body) => {
      const res = await fetch(`${sim.url}/__control/${path}`, {
        method,
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };

    assert.equal((await control("POST", "tokens", { token: "ctl", locationId: "loc-9" })).status, 201);
    assert.equal((await control("POST", "locations", { locationId: "loc-9", allowDuplicates: false })).status, 201);
    const body = { locationId: "loc-9", email: "a@b.c" };
    assert.equal((await call(sim, "POST", "/contacts/", { token: "ctl", body })).status, 201);
    assert.equal((await call(sim, "POST", "/contacts/", { token: "ctl", body })).status, 400);

    const fault = await control("POST", "faults", { route: "GET /contacts/:contactId", status: 502, count: null });
    assert.equal(fault.status, 201);
    assert.equal(fault.body.fault.count, null, "Infinity travels as null");
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 502);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 502);
    assert.equal((await control("POST", "faults", { route: "nope", status: 500 })).status, 400);
    assert.equal((await control("DELETE", "faults")).status, 204);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 400);

    assert.equal((await control("GET", "state")).body.contacts.length, 1);
    assert.equal((await control("GET", "requests")).body.length, 5);
    assert.deepEqual((await control("GET", "counts")).body, { "POST /contacts/": 2, "GET /contacts/:contactId": 3 });

    assert.equal((await control("DELETE", "tokens/ctl")).status, 204);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 401);

    assert.equal((await control("POST", "reset")).status, 204);
    assert.deepEqual((await control("GET", "state")).body, { contacts: [] });
    assert.deepEqual((await control("GET", "requests")).body, []);
    assert.deepEqual((await control("GET", "counts")).body, {}, "control requests are never counted");
    assert.equal((await call(sim, "GET", "/contacts/x")).status, 400, "tokens survive reset");
  });
});
