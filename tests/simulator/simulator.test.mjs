// Tests of the Contacts API simulator itself (node --test tests/simulator/): API behaviour,
// auth, validation, duplicates, rate limits, fault injection and the control interface.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
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
    assert.deepEqual(sim.state(), { contacts: [contact], notes: [], tasks: [], appointments: [], customFields: [], droppedCustomFields: [], workflows: [], campaigns: [], enrollments: [] });

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

test("custom fields take fieldValue or field_value, by id or key, and read back as {id, value}", async () => {
  await withSim({}, async (sim) => {
    const given = [
      { id: "cf1", fieldValue: "v3" },
      { id: "cf2", field_value: "v2" },
      { key: "plan", fieldValue: "pro" },
      { id: "cf4", key: "score", field_value: 7 },
    ];
    const { contact } = (await create(sim, { customFields: given })).body;
    const stored = [
      { id: "cf1", value: "v3" },
      { id: "cf2", value: "v2" },
      { id: "plan", value: "pro" },
      { id: "cf4", value: 7 },
    ];
    assert.deepEqual(contact.customFields, stored);

    const changes = { customFields: [{ id: "cf2", fieldValue: "changed" }, { key: "plan", field_value: "basic" }] };
    const updated = await call(sim, "PUT", `/contacts/${contact.id}`, { body: changes });
    assert.equal(updated.status, 200);
    const got = (await call(sim, "GET", `/contacts/${contact.id}`)).body.contact;
    assert.deepEqual(got.customFields, [
      { id: "cf1", value: "v3" },
      { id: "cf2", value: "changed" },
      { id: "plan", value: "basic" },
      { id: "cf4", value: 7 },
    ]);

    const unnamed = await create(sim, { customFields: [{ fieldValue: "x" }, { id: "cf1", fieldValue: true }] });
    assert.equal(unnamed.status, 422);
    assert.deepEqual(unnamed.body.message, [
      "customFields.0.id should not be empty",
      "customFields.0.id must be a string",
      "customFields.1.fieldValue must be a string, number, array of strings or object",
    ]);
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

test("rate limit: each location has its own windows and may have its own limits", async () => {
  let now = 1_000_000;
  const tokens = { [TOKEN]: LOCATION, "pit-b": "loc-b", "pit-c": "loc-c" };
  const options = { tokens, rateLimit: { max: 2, intervalMs: 1000 }, now: () => now };
  await withSim({ ...options, locations: { "loc-b": { rateLimit: { max: 3, daily: 4 } } } }, async (sim) => {
    const status = async (token) => (await call(sim, "GET", "/contacts/x", { token })).status;
    assert.deepEqual([await status(TOKEN), await status(TOKEN), await status(TOKEN)], [400, 400, 429]);
    assert.equal(await status("pit-c"), 400, "another unlisted location has its own window");
    const b = [];
    for (let i = 0; i < 4; i += 1) b.push(await status("pit-b"));
    assert.deepEqual(b, [400, 400, 400, 429], "loc-b's own max");
    const headers = (await call(sim, "GET", "/contacts/x", { token: "pit-b" })).headers;
    assert.deepEqual(
      ["max", "interval-milliseconds", "limit-daily"].map((h) => headers.get(`x-ratelimit-${h}`)),
      ["3", "1000", "4"],
      "left-out limits come from the global ones",
    );

    now += 1000;
    assert.equal(await status("pit-b"), 400);
    assert.equal(await status("pit-b"), 429, "loc-b's daily allowance is spent");
    const daily = await call(sim, "GET", "/contacts/x", { token: "pit-b" });
    assert.equal(daily.headers.get("x-ratelimit-daily-remaining"), "0");
    assert.ok(Number(daily.headers.get("retry-after")) > 3600);

    const set = sim.setLocation("loc-b", { rateLimit: { max: 1, intervalMs: 60_000 } });
    assert.deepEqual(set, { allowDuplicates: true, rateLimit: { max: 1, intervalMs: 60_000, daily: 200_000 } });
    assert.deepEqual([await status("pit-b"), await status("pit-b")], [400, 429], "new limits, windows afresh");
    assert.equal(await status(TOKEN), 400, "the other locations' windows carry on");

    sim.setRateLimit({ max: 5 });
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "pit-c" })).headers.get("x-ratelimit-max"), "5");
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "pit-b" })).headers.get("x-ratelimit-max"), "1");
    assert.deepEqual(sim.setLocation("loc-b", { rateLimit: null }).rateLimit, { max: 5, intervalMs: 1000, daily: 200_000 });
    assert.throws(() => sim.setLocation("loc-b", { rateLimit: { max: 0 } }), /max must be a positive integer/);
  });
});

test("setLocation keeps what it is not given", async () => {
  await withSim({ locations: { [LOCATION]: { allowDuplicates: false, rateLimit: { max: 7 } } } }, async (sim) => {
    assert.deepEqual(sim.setLocation(LOCATION, { rateLimit: { max: 9 } }), {
      allowDuplicates: false,
      rateLimit: { max: 9, intervalMs: 10_000, daily: 200_000 },
    });
    assert.equal(sim.setLocation(LOCATION, { allowDuplicates: true }).rateLimit.max, 9);
    const body = { email: "same@example.com" };
    assert.equal((await create(sim, body)).status, 201);
    assert.equal((await create(sim, body)).status, 201, "duplicates allowed now");
  });
});

/** Runs cli.mjs with `args` until it prints its URL (10 s deadline); `{ url, child }`. */
async function startCli(args) {
  const child = spawn(process.execPath, [new URL("./cli.mjs", import.meta.url).pathname, "--port", "0", ...args]);
  let out = "";
  const url = await new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`cli did not start: ${out}`)), 10_000);
    const settle = (outcome) => {
      clearTimeout(deadline);
      outcome();
    };
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const found = /listening on (\S+)/.exec(out);
      if (found) settle(() => resolve(found[1]));
    });
    child.once("exit", (code) => settle(() => reject(new Error(`cli exited ${code}: ${out}`))));
  });
  return { url, child };
}

test("cli: --location takes noduplicates and its own rate=MAX/INTERVAL_MS[/DAILY]", async () => {
  const { url, child } = await startCli(["--token", `${TOKEN}:${LOCATION}`, "--token", "pit-b:loc-b",
    "--location", `${LOCATION}:noduplicates:rate=2/60000/50`, "--location", "loc-b"]);
  try {
    const sim = { url };
    const body = { email: "a@b.c" };
    assert.equal((await create(sim, body)).status, 201);
    const second = await create(sim, body);
    assert.equal(second.status, 400, "no duplicates");
    assert.equal(second.headers.get("x-ratelimit-limit-daily"), "50");
    assert.equal((await create(sim, body)).status, 429, "its own max");
    const b = await call(sim, "GET", "/contacts/x", { token: "pit-b" });
    assert.deepEqual([b.status, b.headers.get("x-ratelimit-max")], [400, "100"]);
  } finally {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
  const bad = spawn(process.execPath, [new URL("./cli.mjs", import.meta.url).pathname, "--location", "x:rate=5"]);
  const [code] = await once(bad, "exit");
  assert.equal(code, 2, "a bad --location is refused");
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

test("fault: afterApply with latency applies at once and answers late; with hang, never", async () => {
  await withSim({}, async (sim) => {
    sim.injectFault({ route: "POST /contacts/", latencyMs: 300, afterApply: true });
    const late = create(sim, { firstName: "A" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(sim.state().contacts.length, 1, "applied before the answer");
    assert.equal(sim.requests()[0].answeredAt, null);
    assert.equal((await late).status, 201, "then the real answer, late");
    const [entry] = sim.requests();
    assert.ok(entry.answeredAt - entry.at >= 295, `answered ${entry.answeredAt - entry.at} ms later`);

    sim.injectFault({ route: "POST /contacts/", hang: true, afterApply: true });
    const signal = AbortSignal.timeout(100);
    await assert.rejects(create(sim, { firstName: "B" }, { signal }), { name: "TimeoutError" });
    assert.equal(sim.state().contacts.length, 2, "applied, answer dropped");
    assert.equal(sim.requests()[1].status, 0);
  });
});

test("fault: location scopes a rule to requests whose bearer token acts for that location", async () => {
  await withSim({ tokens: { [TOKEN]: LOCATION, "pit-b": "loc-b", "pit-b2": "loc-b" } }, async (sim) => {
    const fault = sim.injectFault({ location: "loc-b", status: 503, count: 2 });
    assert.equal(fault.location, "loc-b");
    assert.equal((await call(sim, "GET", "/contacts/x")).status, 400, "loc-1 is not affected");
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "pit-b" })).status, 503);
    assert.equal((await call(sim, "GET", "/nowhere", { token: "pit-b2" })).status, 503, "any token of loc-b, any route");
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "pit-b" })).status, 400, "spent");

    sim.injectFault({ route: "POST /contacts/", location: "loc-b", status: 500 });
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "pit-b" })).status, 400, "another route");
    assert.equal((await create(sim, { firstName: "A" })).status, 201, "another location");
    const faulted = await call(sim, "POST", "/contacts/", { token: "pit-b", body: { locationId: "loc-b" } });
    assert.equal(faulted.status, 500);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "nobody" })).status, 401);
    assert.equal(sim.faults().length, 0);

    sim.injectFault({ location: "loc-b", status: 502 });
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "pit-b", version: null })).status, 502, "before the Version check");
    sim.injectFault({ location: "loc-b", status: 502 });
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "nobody" })).status, 401, "unknown tokens act for no location");
    sim.revokeToken("pit-b2");
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "pit-b2" })).status, 401, "nor revoked ones");

    assert.throws(() => sim.injectFault({ location: "", status: 500 }), /location must be a non-empty string/);
    assert.throws(() => sim.injectFault({ location: 7, status: 500 }), /location/);
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
    assert.equal((await control("POST", "faults", { location: 5, status: 500 })).status, 400);
    assert.equal((await control("DELETE", "faults")).status, 204);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 400);

    assert.equal((await control("GET", "state")).body.contacts.length, 1);
    assert.equal((await control("GET", "requests")).body.length, 5);
    assert.deepEqual((await control("GET", "counts")).body, { "POST /contacts/": 2, "GET /contacts/:contactId": 3 });

    const limits = await control("POST", "ratelimit", { max: 1, intervalMs: 60_000 });
    assert.deepEqual([limits.status, limits.body.rateLimit.max, limits.body.rateLimit.daily], [200, 1, 200_000]);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 400);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 429);
    assert.equal((await control("POST", "ratelimit", { max: 0 })).status, 400);
    assert.equal((await control("POST", "ratelimit", { burst: 5 })).status, 400);
    assert.equal((await control("POST", "ratelimit", { max: 100, intervalMs: 10_000 })).status, 200);
    const own = await control("POST", "locations", { locationId: "loc-9", rateLimit: { max: 1, intervalMs: 60_000 } });
    assert.deepEqual(own, {
      status: 201,
      body: { locationId: "loc-9", allowDuplicates: false, rateLimit: { max: 1, intervalMs: 60_000, daily: 200_000 } },
    });
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 400);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 429);
    assert.equal((await call(sim, "GET", "/contacts/x")).status, 400, "loc-1 keeps the global limits");
    assert.equal((await control("POST", "locations", { locationId: "loc-9", rateLimit: { daily: -1 } })).status, 400);
    assert.equal((await control("POST", "locations", { locationId: "loc-9", rateLimit: null })).body.rateLimit.max, 100);

    assert.equal((await control("DELETE", "tokens/ctl")).status, 204);
    assert.equal((await call(sim, "GET", "/contacts/x", { token: "ctl" })).status, 401);

    assert.equal((await control("POST", "reset")).status, 204);
    assert.deepEqual((await control("GET", "state")).body, { contacts: [], notes: [], tasks: [], appointments: [], customFields: [], droppedCustomFields: [], workflows: [], campaigns: [], enrollments: [] });
    assert.deepEqual((await control("GET", "requests")).body, []);
    assert.deepEqual((await control("GET", "counts")).body, {}, "control requests are never counted");
    assert.equal((await call(sim, "GET", "/contacts/x")).status, 400, "tokens survive reset");
  });
});

// ---- sub-resources and lists ------------------------------------------------------------------

test("DELETE /contacts/:contactId answers {succeded} and removes the contact's notes and tasks", async () => {
  await withSim({}, async (sim) => {
    const { contact } = (await create(sim, { firstName: "Gone" })).body;
    const kept = (await create(sim, { firstName: "Kept" })).body.contact;
    await call(sim, "POST", `/contacts/${contact.id}/notes`, { body: { body: "n" } });
    await call(sim, "POST", `/contacts/${kept.id}/notes`, { body: { body: "k" } });
    const task = { title: "t", dueDate: "2026-12-01T10:00:00Z", completed: false };
    await call(sim, "POST", `/contacts/${contact.id}/tasks`, { body: task });

    const deleted = await call(sim, "DELETE", `/contacts/${contact.id}`);
    assert.deepEqual([deleted.status, deleted.body], [200, { succeded: true }]);
    const state = sim.state();
    assert.deepEqual(state.contacts.map((c) => c.id), [kept.id]);
    assert.deepEqual(state.notes.map((n) => n.contactId), [kept.id]);
    assert.deepEqual(state.tasks, []);

    const again = await call(sim, "DELETE", `/contacts/${contact.id}`);
    assert.deepEqual([again.status, again.body.message], [400, "Contact not found"]);
    assert.equal(sim.counts()["DELETE /contacts/:contactId"], 2);
  });
});

test("notes: create, list, get, update, delete, validated as NotesDTO", async () => {
  await withSim({}, async (sim) => {
    const { contact } = (await create(sim, {})).body;
    const base = `/contacts/${contact.id}/notes`;
    const created = await call(sim, "POST", base, { body: { body: "first", userId: "u1", pinned: true } });
    assert.equal(created.status, 201);
    const { note } = created.body;
    assert.match(note.id, /^[A-Za-z0-9]{20}$/);
    assert.deepEqual(
      { body: note.body, userId: note.userId, pinned: note.pinned, contactId: note.contactId },
      { body: "first", userId: "u1", pinned: true, contactId: contact.id },
    );
    assert.ok(note.dateAdded);

    const listed = await call(sim, "GET", base);
    assert.deepEqual([listed.status, listed.body], [200, { notes: [note] }]);
    assert.deepEqual((await call(sim, "GET", `${base}/${note.id}`)).body, { note });

    const updated = await call(sim, "PUT", `${base}/${note.id}`, { body: { body: "changed", title: "T" } });
    assert.equal(updated.status, 200);
    assert.deepEqual(updated.body.note, { ...note, body: "changed", title: "T" });
    assert.deepEqual(sim.state().notes, [updated.body.note]);

    const deleted = await call(sim, "DELETE", `${base}/${note.id}`);
    assert.deepEqual([deleted.status, deleted.body], [200, { succeded: true }]);
    assert.deepEqual(sim.state().notes, []);

    for (const [method, body] of [["GET"], ["PUT", { body: "x" }], ["DELETE"]]) {
      const missing = await call(sim, method, `${base}/${note.id}`, { body });
      assert.deepEqual([missing.status, missing.body.message], [400, "Note not found"], method);
    }
    const noContact = await call(sim, "POST", "/contacts/nobody/notes", { body: { body: "x" } });
    assert.deepEqual([noContact.status, noContact.body.message], [400, "Contact not found"]);

    const invalid = await call(sim, "POST", base, { body: { userId: 5, colour: "red" } });
    assert.equal(invalid.status, 422);
    for (const message of ["property colour should not exist", "body should not be empty", "userId must be a string"]) {
      assert.ok(invalid.body.message.includes(message), `${message} in ${invalid.body.message}`);
    }
    const invalidUpdate = await call(sim, "PUT", `${base}/x`, { body: { pinned: "yes" } });
    assert.deepEqual(invalidUpdate.body.message, ["pinned must be a boolean value"]);
  });
});

test("tags: POST adds without duplicates, DELETE removes, each answers the tags now", async () => {
  await withSim({}, async (sim) => {
    const { contact } = (await create(sim, { tags: ["a"] })).body;
    const path = `/contacts/${contact.id}/tags`;
    const added = await call(sim, "POST", path, { body: { tags: ["b", "a", "c", "b"] } });
    assert.deepEqual([added.status, added.body], [201, { tags: ["a", "b", "c"] }]);
    const removed = await call(sim, "DELETE", path, { body: { tags: ["a", "zz"] } });
    assert.deepEqual([removed.status, removed.body], [200, { tags: ["b", "c"] }]);
    assert.deepEqual(sim.state().contacts[0].tags, ["b", "c"]);

    const invalid = await call(sim, "POST", path, { body: { tags: "a", extra: 1 } });
    assert.equal(invalid.status, 422);
    assert.ok(invalid.body.message.includes("property extra should not exist"));
    assert.ok(invalid.body.message.includes("tags must be an array"));
    assert.deepEqual((await call(sim, "DELETE", path, { body: {} })).body.message, ["tags should not be empty", "tags must be an array"]);
    assert.equal((await call(sim, "POST", "/contacts/nobody/tags", { body: { tags: [] } })).status, 400);
    assert.deepEqual(sim.counts(), { "POST /contacts/": 1, "POST /contacts/:contactId/tags": 3, "DELETE /contacts/:contactId/tags": 2 });
  });
});

test("tasks: create, list, get, update, complete, delete, validated as in the spec", async () => {
  await withSim({}, async (sim) => {
    const { contact } = (await create(sim, {})).body;
    const base = `/contacts/${contact.id}/tasks`;
    const fields = { title: "Call", body: "about the order", dueDate: "2026-12-01T10:00:00Z", completed: false };
    const created = await call(sim, "POST", base, { body: fields });
    assert.equal(created.status, 201);
    const { task } = created.body;
    assert.deepEqual(task, { id: task.id, ...fields, contactId: contact.id });

    assert.deepEqual((await call(sim, "GET", base)).body, { tasks: [task] });
    assert.deepEqual((await call(sim, "GET", `${base}/${task.id}`)).body, { task });

    const updated = await call(sim, "PUT", `${base}/${task.id}`, { body: { title: "Call back", assignedTo: "u1" } });
    assert.deepEqual([updated.status, updated.body.task], [200, { ...task, title: "Call back", assignedTo: "u1" }]);
    const completed = await call(sim, "PUT", `${base}/${task.id}/completed`, { body: { completed: true } });
    assert.deepEqual([completed.status, completed.body.task.completed], [200, true]);
    assert.deepEqual(sim.state().tasks, [completed.body.task]);

    const deleted = await call(sim, "DELETE", `${base}/${task.id}`);
    assert.deepEqual([deleted.status, deleted.body], [200, { succeded: true }]);
    const missing = await call(sim, "GET", `${base}/${task.id}`);
    assert.deepEqual([missing.status, missing.body.message], [400, "Task not found"]);

    const invalid = await call(sim, "POST", base, { body: { title: "x", dueDate: "tomorrow", priority: 1 } });
    assert.equal(invalid.status, 422);
    for (const message of [
      "property priority should not exist",
      "dueDate must be a valid ISO 8601 date string",
      "completed should not be empty",
      "completed must be a boolean value",
    ]) {
      assert.ok(invalid.body.message.includes(message), `${message} in ${invalid.body.message}`);
    }
    const badStatus = await call(sim, "PUT", `${base}/x/completed`, { body: { completed: "yes", title: "x" } });
    assert.deepEqual(badStatus.body.message, ["property title should not exist", "completed must be a boolean value"]);
    assert.equal(sim.counts()["PUT /contacts/:contactId/tasks/:taskId/completed"], 2);
  });
});

test("appointments: seeded per contact, listed as {events}", async () => {
  await withSim({}, async (sim) => {
    const ada = (await create(sim, { firstName: "Ada" })).body.contact;
    const bob = (await create(sim, { firstName: "Bob" })).body.contact;
    const event = sim.seedAppointment(ada.id, { title: "Demo", startTime: "2026-12-01T10:00:00Z" });
    assert.deepEqual(
      { title: event.title, contactId: event.contactId, locationId: event.locationId, status: event.status },
      { title: "Demo", contactId: ada.id, locationId: LOCATION, status: "booked" },
    );
    const listed = await call(sim, "GET", `/contacts/${ada.id}/appointments`);
    assert.deepEqual([listed.status, listed.body], [200, { events: [event] }]);
    assert.deepEqual((await call(sim, "GET", `/contacts/${bob.id}/appointments`)).body, { events: [] });
    assert.equal((await call(sim, "GET", "/contacts/nobody/appointments")).status, 400);
    assert.deepEqual(sim.state().appointments, [event]);
    assert.throws(() => sim.seedAppointment("nobody"), /no contact/);
  });
});

test("GET /contacts/: locationId checked, query search, cursor pages with meta", async () => {
  let now = Date.parse("2026-11-27T10:00:00Z");
  await withSim({ now: () => now, tokens: { [TOKEN]: LOCATION, other: "loc-2" } }, async (sim) => {
    const ids = [];
    for (const name of ["Ada", "Bob", "Cy", "Adam", "Dee"]) {
      ids.push((await create(sim, { firstName: name, email: `${name.toLowerCase()}@x.com` })).body.contact.id);
      now += 1000;
    }
    await call(sim, "POST", "/contacts/", { token: "other", body: { locationId: "loc-2", firstName: "Ada" } });

    const all = await call(sim, "GET", `/contacts/?locationId=${LOCATION}`);
    assert.equal(all.status, 200);
    assert.deepEqual(all.body.contacts.map((c) => c.id), ids, "oldest first, this location only");
    assert.equal(all.body.count, 5);
    assert.deepEqual(all.body.meta, {
      total: 5,
      nextPageUrl: null,
      startAfterId: ids[4],
      startAfter: Date.parse("2026-11-27T10:00:04Z"),
      currentPage: 1,
      nextPage: null,
      prevPage: null,
    });

    const first = await call(sim, "GET", `/contacts/?locationId=${LOCATION}&limit=2`);
    assert.deepEqual(first.body.contacts.map((c) => c.id), ids.slice(0, 2));
    assert.deepEqual([first.body.meta.currentPage, first.body.meta.nextPage], [1, 2]);
    const next = new URL(first.body.meta.nextPageUrl);
    assert.equal(next.origin, sim.url);
    assert.equal(next.searchParams.get("startAfterId"), ids[1]);
    const second = await call(sim, "GET", next.pathname + next.search);
    assert.deepEqual(second.body.contacts.map((c) => c.id), ids.slice(2, 4));
    assert.deepEqual([second.body.meta.currentPage, second.body.meta.prevPage], [2, 1]);
    const byIdOnly = await call(sim, "GET", `/contacts/?locationId=${LOCATION}&startAfterId=${ids[3]}`);
    assert.deepEqual(byIdOnly.body.contacts.map((c) => c.id), [ids[4]]);
    const byTime = await call(sim, "GET", `/contacts/?locationId=${LOCATION}&startAfter=${Date.parse("2026-11-27T10:00:02Z")}`);
    assert.deepEqual(byTime.body.contacts.map((c) => c.id), ids.slice(3));

    const search = await call(sim, "GET", `/contacts/?locationId=${LOCATION}&query=ADA`);
    assert.deepEqual(search.body.contacts.map((c) => c.firstName), ["Ada", "Adam"]);
    assert.equal(search.body.count, 2);

    const refusals = [
      ["/contacts/", 422, ["locationId should not be empty", "locationId must be a string"]],
      [`/contacts/?locationId=${LOCATION}&limit=101`, 422, ["limit must not be greater than 100"]],
      [`/contacts/?locationId=${LOCATION}&limit=x&sort=asc`, 422, ["property sort should not exist", "limit must be a number conforming to the specified constraints"]],
      ["/contacts/?locationId=loc-2", 403, "The token does not have access to this location."],
      [`/contacts/?locationId=${LOCATION}&startAfterId=nobody`, 400, "startAfterId nobody is not a contact of this list"],
    ];
    for (const [path, status, message] of refusals) {
      const res = await call(sim, "GET", path);
      assert.deepEqual([res.status, res.body.message], [status, message], path);
    }
    assert.equal(sim.counts()["GET /contacts/"], 11);
  });
});

test("GET /contacts/business/:businessId lists the business's contacts with skip/limit", async () => {
  let now = Date.parse("2026-11-27T10:00:00Z");
  await withSim({ now: () => now }, async (sim) => {
    const ids = [];
    for (const name of ["Ada", "Bob", "Cy", "Dee"]) {
      ids.push((await create(sim, { firstName: name })).body.contact.id);
      now += 1000;
    }
    for (const id of ids.slice(0, 3)) sim.assignBusiness(id, "biz-1");
    sim.assignBusiness(ids[3], "biz-2");

    const res = await call(sim, "GET", `/contacts/business/biz-1?locationId=${LOCATION}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.contacts.map((c) => c.id), ids.slice(0, 3));
    assert.equal(res.body.count, 3);
    assert.ok(res.body.contacts.every((c) => c.businessId === "biz-1"));
    const page = await call(sim, "GET", `/contacts/business/biz-1?locationId=${LOCATION}&skip=1&limit=1`);
    assert.deepEqual([page.body.contacts.map((c) => c.id), page.body.count], [[ids[1]], 3]);
    const search = await call(sim, "GET", `/contacts/business/biz-1?locationId=${LOCATION}&query=cy`);
    assert.deepEqual(search.body.contacts.map((c) => c.id), [ids[2]]);
    assert.deepEqual((await call(sim, "GET", `/contacts/business/none?locationId=${LOCATION}`)).body, { contacts: [], count: 0 });

    const missing = await call(sim, "GET", "/contacts/business/biz-1");
    assert.equal(missing.status, 422);
    const bad = await call(sim, "GET", `/contacts/business/biz-1?locationId=${LOCATION}&skip=-1`);
    assert.deepEqual(bad.body.message, ["skip must not be less than 0"]);
    assert.throws(() => sim.assignBusiness("nobody", "b"), /no contact/);
  });
});

test("new routes share auth, rate limits and fault injection", async () => {
  await withSim({ rateLimit: { max: 2, intervalMs: 60_000 } }, async (sim) => {
    assert.equal((await call(sim, "GET", "/contacts/x/notes", { version: null })).status, 401);
    assert.equal((await call(sim, "GET", `/contacts/?locationId=${LOCATION}`, { token: "bad" })).status, 401);
    sim.injectFault({ route: "GET /contacts/:contactId/tasks", status: 404, body: { statusCode: 404, message: "gone" } });
    const faulted = await call(sim, "GET", "/contacts/x/tasks");
    assert.deepEqual([faulted.status, faulted.body.message], [404, "gone"]);
    assert.equal((await call(sim, "GET", "/contacts/x/appointments")).status, 400);
    assert.equal((await call(sim, "GET", "/contacts/x/appointments")).status, 400);
    const limited = await call(sim, "GET", "/contacts/business/b?locationId=loc-1");
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get("retry-after")) > 0);
  });
});

test("control: seed appointments and businesses over HTTP", async () => {
  await withSim({}, async (sim) => {
    const control = async (path, body) => {
      const res = await fetch(`${sim.url}/__control/${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    const { contact } = (await create(sim, {})).body;
    const booked = await control("appointments", { contactId: contact.id, title: "Call" });
    assert.deepEqual([booked.status, booked.body.event.title], [201, "Call"]);
    assert.equal((await control("appointments", { contactId: "nobody" })).status, 400);
    assert.equal((await control("appointments", {})).status, 400);
    const tied = await control("business", { contactId: contact.id, businessId: "biz" });
    assert.deepEqual([tied.status, tied.body.contact.businessId], [200, "biz"]);
    assert.equal((await control("business", { contactId: contact.id, businessId: 5 })).status, 400);
    assert.equal(sim.state().contacts[0].businessId, "biz");
    assert.deepEqual(sim.counts(), { "POST /contacts/": 1 }, "control requests are not counted");
  });
});

/** GET /contacts/search/duplicate for the test location with `params` (URL-encoded here). */
function duplicateOf(sim, params, opts) {
  return call(sim, "GET", `/contacts/search/duplicate?${new URLSearchParams({ locationId: LOCATION, ...params })}`, opts);
}

test("GET /contacts/search/duplicate: email first, then phone, the oldest of several, null for none", async () => {
  let now = Date.parse("2026-11-27T10:00:00Z");
  await withSim({ now: () => now, locations: { [LOCATION]: { allowDuplicates: true } } }, async (sim) => {
    const made = [];
    for (const fields of [{ email: "a+b@x.com" }, { phone: "+1 555-0100" }, { email: "A+B@x.com", phone: "+1 555 0199" }]) {
      made.push((await create(sim, fields)).body.contact);
      now += 1000;
    }
    const id = async (params) => (await duplicateOf(sim, params)).body.contact?.id ?? null;
    const found = await duplicateOf(sim, { email: "A+b@X.com" });
    assert.equal(found.status, 200);
    assert.deepEqual(found.body, { contact: made[0] }, "the oldest of the two with that email, whole");
    assert.equal(await id({ number: "+15550100" }), made[1].id, "phone by its digits");
    assert.equal(await id({ email: "a+b@x.com", number: "+15550100" }), made[0].id, "email before phone");
    assert.equal(await id({ email: "nobody@x.com", number: "(555) 0199" }), null, "digits must match in full");
    assert.equal(await id({ email: "nobody@x.com", number: "+1 555 0199" }), made[2].id, "phone when no email matches");
    assert.deepEqual((await duplicateOf(sim, { email: "nobody@x.com" })).body, { contact: null });
    assert.deepEqual((await duplicateOf(sim, {})).body, { contact: null }, "neither given");
    const raw = await call(sim, "GET", `/contacts/search/duplicate?locationId=${LOCATION}&email=a+b@x.com`);
    assert.deepEqual(raw.body, { contact: null }, "an unencoded + is a space, as in any query string");

    const refusals = [
      ["/contacts/search/duplicate?email=a%40x.com", 422, ["locationId should not be empty", "locationId must be a string"]],
      [`/contacts/search/duplicate?locationId=${LOCATION}&phone=1`, 422, ["property phone should not exist"]],
      ["/contacts/search/duplicate?locationId=loc-2&email=a%40x.com", 403, "The token does not have access to this location."],
    ];
    for (const [path, status, message] of refusals) {
      const res = await call(sim, "GET", path);
      assert.deepEqual([res.status, res.body.message], [status, message], path);
    }
    assert.equal((await duplicateOf(sim, { email: "a+b@x.com" }, { token: "nope" })).status, 401);
    assert.equal((await duplicateOf(sim, { email: "a+b@x.com" }, { version: null })).status, 401);
  });
});

test("GET /contacts/search/duplicate where duplicates are refused: the contact a create would collide with", async () => {
  await withSim({ locations: { [LOCATION]: { allowDuplicates: false } } }, async (sim) => {
    const ada = (await create(sim, { email: "ada@x.com" })).body.contact;
    const bob = (await create(sim, { phone: "+1 555-0100" })).body.contact;
    const refused = await create(sim, { email: "ada@x.com", phone: "+15550100" });
    assert.equal(refused.body.meta.contactId, ada.id);
    assert.equal((await duplicateOf(sim, { email: "ada@x.com", number: "+15550100" })).body.contact.id, ada.id);
    assert.equal((await duplicateOf(sim, { number: "+15550100" })).body.contact.id, bob.id);
  });
});

/** POST /contacts/search for the test location with `body`. */
function search(sim, body = {}, opts) {
  return call(sim, "POST", "/contacts/search", { body: { locationId: LOCATION, ...body }, ...opts });
}

const ids = (res) => res.body.contacts.map((c) => c.id);

test("POST /contacts/search: eq, exists and range filters ANDed; custom fields; sort and pages", async () => {
  let now = Date.parse("2026-11-27T10:00:00Z");
  await withSim({ now: () => now, tokens: { [TOKEN]: LOCATION, other: "loc-2" } }, async (sim) => {
    const people = [
      { firstName: "Ada", lastName: "Lovelace", email: "Ada@X.com", phone: "+1 555-0100", customFields: [{ id: "cf_sm", field_value: "sm_1" }] },
      { firstName: "Ada", lastName: "King", customFields: [{ id: "cf_sm", fieldValue: "sm_2" }, { id: "cf_n", fieldValue: 7 }] },
      { firstName: "Bob", phone: "+1 (555) 0100" },
    ];
    const made = [];
    for (const fields of people) {
      made.push((await create(sim, fields)).body.contact);
      now += 60_000;
    }
    await call(sim, "POST", "/contacts/", { token: "other", body: { locationId: "loc-2", firstName: "Ada" } });
    const [ada, king, bob] = made.map((c) => c.id);

    const all = await search(sim);
    assert.equal(all.status, 200);
    assert.deepEqual([ids(all), all.body.total], [[bob, king, ada], 3], "this location only, newest first by default");
    assert.deepEqual(all.body.contacts[2], made[0], "the whole contact");
    const cases = [
      [[{ field: "email", operator: "eq", value: "ada@x.COM" }], [ada]],
      [[{ field: "phone", operator: "eq", value: "+15550100" }], [bob, ada]],
      [[{ field: "firstNameLowerCase", operator: "eq", value: "ada" }, { field: "lastName", operator: "eq", value: "KING" }], [king]],
      [[{ field: "firstName", operator: "eq", value: "Ada" }, { field: "email", operator: "exists" }], [ada]],
      [[{ field: "phone", operator: "exists" }], [bob, ada]],
      [[{ field: "id", operator: "eq", value: king }], [king]],
      [[{ field: "customFields.cf_sm", operator: "eq", value: "sm_2" }], [king]],
      [[{ field: "customFields.cf_sm", operator: "eq", value: "SM_1" }], [ada]],
      [[{ field: "customFields.cf_n", operator: "eq", value: 7 }], [king]],
      [[{ field: "customFields.cf_n", operator: "exists" }], [king]],
      [[{ field: "dateAdded", operator: "range", value: { gte: "2026-11-27T10:01:00Z" } }], [bob, king]],
      [[{ field: "dateAdded", operator: "range", value: { gt: "2026-11-27T10:00:00Z", lt: "2026-11-27T10:02:00.000Z" } }], [king]],
      [[{ field: "dateUpdated", operator: "range", value: { lte: "2026-11-27T10:00:00Z" } }], [ada]],
      [[{ field: "lastName", operator: "eq", value: "nobody" }], []],
    ];
    for (const [filters, want] of cases) {
      const res = await search(sim, { filters });
      assert.deepEqual([res.status, ids(res), res.body.total], [200, want, want.length], JSON.stringify(filters));
    }

    assert.deepEqual(ids(await search(sim, { sort: [{ field: "dateAdded", direction: "asc" }] })), [ada, king, bob]);
    const page2 = await search(sim, { page: 2, pageLimit: 2, sort: [{ field: "dateAdded", direction: "asc" }] });
    assert.deepEqual([ids(page2), page2.body.total], [[bob], 3], "total counts every page");
    assert.deepEqual(ids(await search(sim, { page: 3, pageLimit: 2 })), []);
  });
});

test("POST /contacts/search refuses what it does not support with 422 naming it, and other locations with 403", async () => {
  await withSim({}, async (sim) => {
    const refusals = [
      [{ filters: [{ field: "companyName", operator: "eq", value: "x" }] }, /filters\.0\.field "companyName" is not a searchable field/],
      [{ filters: [{ field: "email", operator: "contains", value: "x" }] }, /filters\.0\.operator "contains" is not supported \(eq, exists, range\)/],
      [{ filters: [{ field: "email", operator: "range", value: { gt: "2026-01-01" } }] }, /operator range is not supported for field email \(eq, exists\)/],
      [{ filters: [{ field: "dateAdded", operator: "eq", value: "2026-01-01" }] }, /operator eq is not supported for field dateAdded \(range, exists\)/],
      [{ filters: [{ field: "email", operator: "exists", value: true }] }, /filters\.0\.value must be left out for operator exists/],
      [{ filters: [{ field: "email", operator: "eq", value: 5 }] }, /filters\.0\.value must be a string/],
      [{ filters: [{ field: "dateAdded", operator: "range", value: {} }] }, /filters\.0\.value must have at least one of gt, gte, lt, lte/],
      [{ filters: [{ field: "dateAdded", operator: "range", value: { after: "2026-01-01" } }] }, /filters\.0\.value\.property after should not exist/],
      [{ filters: [{ field: "dateAdded", operator: "range", value: { gt: "yesterday" } }] }, /filters\.0\.value\.gt must be a valid ISO 8601 date string/],
      [{ filters: [{ field: "customFields.", operator: "exists" }] }, /"customFields\." is not a searchable field/],
      [{ filters: [{ group: "OR", filters: [] }] }, /filters\.0\.property group should not exist/],
      [{ sort: [{ field: "firstNameLowerCase", direction: "asc" }] }, /sort\.0\.field "firstNameLowerCase" is not sortable \(dateAdded\)/],
      [{ sort: [{ field: "dateAdded", direction: "up" }] }, /sort\.0\.direction "up" must be asc or desc/],
      [{ pageLimit: 501 }, /pageLimit must not be greater than 500/],
      [{ pageLimit: 0 }, /pageLimit must not be less than 1/],
      [{ page: 0 }, /page must not be less than 1/],
      [{ page: 1.5 }, /page must be an integer number/],
      [{ query: "ada" }, /property query should not exist/],
      [{ locationId: undefined }, /locationId should not be empty/],
    ];
    for (const [body, message] of refusals) {
      const res = await search(sim, body);
      assert.equal(res.status, 422, JSON.stringify(body));
      assert.match(res.body.message.join("; "), message, JSON.stringify(body));
    }
    const foreign = await search(sim, { locationId: "loc-2" });
    assert.deepEqual([foreign.status, foreign.body.message], [403, "The token does not have access to this location."]);
    assert.equal((await search(sim, {}, { version: null })).status, 401);
  });
});

test("search routes are their own route templates: counted, recorded and faulted, not taken for a contact id", async () => {
  await withSim({}, async (sim) => {
    sim.injectFault({ route: "POST /contacts/search", status: 503 });
    sim.injectFault({ route: "GET /contacts/search/duplicate", afterApply: true, status: 502 });
    assert.equal((await search(sim)).status, 503);
    assert.equal((await duplicateOf(sim, { email: "a@x.com" })).status, 502);
    assert.equal((await search(sim)).status, 200);
    assert.deepEqual((await duplicateOf(sim, { email: "a@x.com" })).body, { contact: null });
    assert.equal((await call(sim, "GET", "/contacts/search")).body.message, "Contact not found", "GET /contacts/search is a contact id");
    assert.deepEqual(sim.counts(), { "POST /contacts/search": 2, "GET /contacts/search/duplicate": 2, "GET /contacts/:contactId": 1 });
    assert.deepEqual(sim.requests().map((r) => [r.route, r.status]).slice(0, 2), [["POST /contacts/search", 503], ["GET /contacts/search/duplicate", 502]]);
  });
});
