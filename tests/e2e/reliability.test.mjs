// Never lose an event: retries from the cron trigger through the simulator's fault injection,
// rate limits, hung connections, dead letters and replay, a runtime that dies while applying or
// draining (restarted on its state), redeliveries whose KV key is missing or stale, overlapping
// cron runs, alerts with their quiet period, and the operator API.

import assert from "node:assert/strict";
import http from "node:http";
import { after, before, beforeEach, describe, test } from "node:test";
import { apiCalls, contactEvent, LOCATION, sleep, startWorld } from "./harness.mjs";

/** A local receiver for alert webhooks. */
async function startReceiver() {
  const received = [];
  const receiver = { failNext: 0 };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      if (receiver.failNext > 0) {
        receiver.failNext -= 1;
        res.statusCode = 500;
        return res.end("down");
      }
      received.push(JSON.parse(body));
      res.end("ok");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${server.address().port}/alerts`,
    received,
    close: () => new Promise((resolve) => server.close(resolve)),
  });
}

const person = (n) => ({ id: `sm_${n}`, email: `p${n}@example.com`, name: `Person ${n}` });
const created = (n) => contactEvent("contact.created", person(n));
/** The `fields` of `object`. */
const pick = (object, fields) => Object.fromEntries(fields.map((field) => [field, object[field]]));

/** Waits (at most 5 s) until `condition()` holds. */
async function waitFor(condition, what) {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await sleep(10);
  }
}

/** Waits until KV (the truth) holds `key`. */
const waitForKey = (world, key) => waitFor(async () => (await world.kvKeys()).includes(key), `KV key ${key}`);

/**
 * Waits past the 1 s test retry delay (plus jitter) and past the time a contact create left in
 * doubt by a 5xx or a timeout may still be applied (API_TIMEOUT_MS 500 + 1 s), then runs the cron.
 */
const nextCron = async (world) => {
  await sleep(1800);
  await world.cron();
};

describe("reliability", () => {
  let world;
  let receiver;
  before(async () => {
    receiver = await startReceiver();
    world = await startWorld({
      duplicates: "refuse",
      vars: { ALERT_WEBHOOK_URL: receiver.url, API_TIMEOUT_MS: "500", ALERT_PENDING_AGE: "1s" },
    });
  });
  after(async () => {
    await world.close();
    await receiver.close();
  });
  beforeEach(async () => {
    await world.reset();
    receiver.received.length = 0;
    receiver.failNext = 0;
  });

  test("a 5xx is retried by the cron until it succeeds", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503, count: 2 });
    const { answer, record } = await world.deliverAndSettle(created(1));
    assert.equal(answer.status, 202);
    assert.equal(record.state, "pending");
    assert.equal(record.failures, 1);
    assert.match(record.last_error, /HTTP 503/);

    await nextCron(world);
    assert.equal((await world.record(answer.id)).failures, 2);
    await nextCron(world);
    const done = await world.record(answer.id);
    assert.equal(done.state, "finished");
    assert.equal(done.attempts, 3);
    assert.equal(world.sim.state().contacts.length, 1);
    assert.equal(world.sim.counts()["POST /contacts/"], 3);
  });

  test("a 429 with Retry-After blocks the location until then: nothing is sent meanwhile, and nothing is lost", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 429, headers: { "Retry-After": "1" } });
    const first = await world.deliverAndSettle(created(1));
    assert.equal(first.record.state, "pending");
    assert.match(first.record.last_error, /429/);
    const second = await world.deliverAndSettle(created(2));
    assert.equal(second.record.state, "finished", "the second waited out the block, then was sent");
    const [limited, sent] = world.sim.requests();
    assert.deepEqual([limited.status, sent.status], [429, 201]);
    assert.ok(sent.at - limited.at >= 900, `nothing was sent while the location was blocked (${sent.at - limited.at} ms)`);

    await nextCron(world);
    assert.equal((await world.record(first.answer.id)).state, "finished");
    assert.equal(world.sim.state().contacts.length, 2);
    assert.equal(world.sim.requests().filter((r) => r.status === 429).length, 1, "one 429, never a second");
  });

  test("a spent X-RateLimit window stops sending before any 429, and the next window sends the rest", async () => {
    const limited = await startWorld({ duplicates: "refuse", simulator: { rateLimit: { max: 2, intervalMs: 1000 } } });
    try {
      const answers = [];
      for (const n of [1, 2, 3]) answers.push(await limited.deliverAndSettle(created(n)));
      assert.deepEqual(answers.map((a) => a.record.state), ["finished", "finished", "finished"]);
      const [first, , third] = limited.sim.requests();
      assert.ok(third.at - first.at >= 1000, `the third waited for the next window (${third.at - first.at} ms)`);
      assert.equal(limited.sim.state().contacts.length, 3);
      assert.equal(limited.sim.requests().filter((r) => r.status === 429).length, 0, "no 429 was provoked");
    } finally {
      await limited.close();
    }
  });

  test("a hung connection times out and the cron completes the event", async () => {
    world.sim.injectFault({ route: "POST /contacts/", hang: true });
    const { answer, record } = await world.deliverAndSettle(created(1));
    assert.match(record.last_error, /no answer within 500 ms/);
    world.sim.clearFaults();
    await nextCron(world);
    assert.equal((await world.record(answer.id)).state, "finished");
  });

  test("a 400 is parked at once with the API's message, alerted, and replayed by an operator", async () => {
    world.sim.injectFault({
      route: "POST /contacts/",
      status: 400,
      body: { statusCode: 400, message: "The email address is invalid." },
    });
    const { answer, record } = await world.deliverAndSettle(created(1));
    assert.equal(record.state, "parked");
    assert.equal(record.reason, "HTTP 400: The email address is invalid.");
    assert.equal(apiCalls(world.sim), 1);
    assert.deepEqual(pick(await world.status(), ["pending", "parked"]), { pending: 0, parked: 1 });
    await sleep(100);
    assert.equal(receiver.received.length, 1);
    assert.equal(receiver.received[0].kind, "parked");
    assert.match(receiver.received[0].text, /was parked: HTTP 400: The email address is invalid/);

    const listed = await world.admin("GET", "events?state=parked");
    assert.deepEqual(listed.json.events.map((e) => e.webhook_id), [answer.id]);
    const inspected = await world.admin("GET", `events/${answer.id}`);
    assert.equal(inspected.json.reason, record.reason);
    assert.equal(inspected.json.body.data.id, "sm_1");

    const replay = await world.admin("POST", `events/${answer.id}/replay`);
    assert.equal(replay.status, 202);
    await world.cron();
    assert.equal((await world.record(answer.id)).state, "finished");
    assert.equal(world.sim.state().contacts.length, 1);
    assert.deepEqual(pick(await world.status(), ["pending", "parked"]), { pending: 0, parked: 0 });
    assert.deepEqual((await world.admin("GET", "events?state=parked")).json.events, []);
    const again = await world.admin("POST", `events/${answer.id}/replay`);
    assert.equal(again.status, 409, "only parked webhooks are replayed");
  });

  test("alerts of one kind are sent once per quiet period", async () => {
    // A 400 is a definite refusal (a 422 would leave the create in doubt, to be looked up).
    world.sim.injectFault({ route: "POST /contacts/", status: 400, count: 3 });
    for (const n of [1, 2, 3]) await world.deliverAndSettle(created(n));
    await sleep(100);
    assert.equal(receiver.received.filter((a) => a.kind === "parked").length, 1);
    const alertLines = world.logs().split("\n").filter((l) => l.includes('"msg":"alert"') && l.includes('"kind":"parked"'));
    assert.equal(alertLines.length, 3, "every alert is still logged");

    const window = await world.admin("POST", "replay", {
      body: { from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z" },
    });
    assert.equal(window.json.replayed.length, 3);
    await world.cron();
    assert.equal(world.sim.state().contacts.length, 3);
  });

  test("an alert whose post failed does not silence the next one", async () => {
    receiver.failNext = 1;
    world.sim.injectFault({ route: "POST /contacts/", status: 400, count: 2 });
    await world.deliverAndSettle(created(1));
    await sleep(100);
    assert.equal(receiver.received.length, 0, "the first post failed");
    assert.match(world.logs(), /"msg":"alert delivery failed"/);
    await world.deliverAndSettle(created(2));
    await sleep(100);
    assert.deepEqual(receiver.received.map((a) => a.kind), ["parked"], "the next alert went out");
    assert.match(receiver.received[0].text, /msg_/);
  });

  test("replaying every dead letter goes in pages of 100, each request saying whether more are left", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 400, count: null });
    const events = Array.from({ length: 103 }, (_, i) => created(100 + i));
    for (let i = 0; i < events.length; i += 16) await Promise.all(events.slice(i, i + 16).map((e) => world.deliver(e)));
    for (let tries = 0; (await world.admin("GET", "status")).json.parked < 103; tries += 1) {
      assert.ok(tries < 200, "every event was parked");
      await sleep(50);
    }
    world.sim.clearFaults();
    const first = await world.admin("POST", "replay", { body: { all: true } });
    assert.deepEqual([first.status, first.json.replayed.length, first.json.more], [202, 100, true]);
    const second = await world.admin("POST", "replay", { body: { all: true } });
    assert.deepEqual([second.json.replayed.length, second.json.more], [3, false]);
    assert.equal(new Set([...first.json.replayed, ...second.json.replayed]).size, 103, "each once");
    // Applied by the alarm, at most CRON_MAX_API_CALLS (40) calls per invocation, an alarm carrying on.
    let status;
    for (let tries = 0; ; tries += 1) {
      status = (await world.admin("GET", "status")).json;
      if (status.pending === 0 || tries > 200) break;
      await sleep(50);
    }
    assert.deepEqual([status.parked, status.pending], [0, 0]);
    assert.equal(world.sim.state().contacts.length, 103);
  });

  test("an event accepted by a runtime that died while applying it is finished after the restart", async () => {
    // The first attempt (the Durable Object's alarm) is left hanging on the API, and the runtime
    // is stopped under it: the call was never applied and its answer never came. Later calls
    // answer 503 until the faults are cleared, so that the webhook stays pending long enough
    // to be alerted on.
    world.sim.injectFault({ route: "POST /contacts/", hang: true });
    world.sim.injectFault({ route: "POST /contacts/", status: 503, count: null });
    const answer = await world.deliver(created(7));
    assert.equal(answer.status, 202, answer.text);
    await waitFor(() => world.sim.requests().length === 1, "the first attempt reached the API");
    await world.restart();
    assert.equal((await world.record(answer.id))?.state, "pending", "the accepted webhook survived the restart");

    await sleep(2300); // the age is counted in whole seconds and must exceed ALERT_PENDING_AGE (1 s)
    await world.cron();
    await sleep(100);
    assert.ok(receiver.received.some((a) => a.kind === "pending_age"), "the old pending event raised an alert");
    world.sim.clearFaults();
    await nextCron(world);
    const done = await world.record(answer.id);
    assert.equal(done.state, "finished", JSON.stringify(done));
    assert.deepEqual(world.sim.state().contacts.map((c) => c.email), ["p7@example.com"]);
    const status = await world.status();
    assert.equal(status.pending, 0);
    assert.ok(status.last_cron_run, "the cron run is recorded");
  });

  test("events behind a head that waits for its retry do not keep re-arming the alarm", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503, count: null });
    const head = await world.deliverAndSettle(created(1));
    assert.equal(head.record.state, "pending", "the create waits for its retry");
    for (const n of [2, 3]) {
      const update = contactEvent("contact.updated", { ...person(1), name: `Person ${n}`, updated_at: `2026-11-27T10:00:0${n}Z` });
      assert.equal((await world.deliver(update)).status, 202);
    }
    // The updates are due but wait behind the create; only its retry (1 s) may wake the object.
    const before = (await world.status()).durable_object.requests;
    await sleep(1500);
    const after = (await world.status()).durable_object.requests;
    assert.ok(after - before < 20, `${after - before} Durable Object requests while nothing could be worked`);
    world.sim.clearFaults();
  });

  test("a restart mid-drain loses nothing and sends nothing twice", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503, count: 6 });
    const ids = [];
    for (const n of [1, 2, 3, 4, 5, 6]) ids.push((await world.deliverAndSettle(created(n))).answer.id);
    assert.equal((await world.status()).pending, 6);
    // Slow answers, so that the drain is under way when the runtime stops.
    world.sim.injectFault({ route: "POST /contacts/", latencyMs: 300, count: null });
    await sleep(1300);
    const draining = world.cron().catch(() => "stopped");
    await waitFor(() => world.sim.counts()["POST /contacts/"] > 6, "the drain started");
    await world.restart();
    await draining;
    world.sim.clearFaults();
    // A create that was under way when the runtime stopped is in doubt: it is looked up no sooner
    // than API_TIMEOUT_MS (500) + 1 s after it was sent, so the cron waits past that. An alarm
    // may be the one to finish it (the wake leaves a run already under way to carry on).
    await sleep(1800);
    await world.cron();
    for (const id of ids) await waitFor(async () => (await world.record(id)).state === "finished", `${id} finished`);
    const emails = world.sim.state().contacts.map((c) => c.email).sort();
    assert.deepEqual(emails, [1, 2, 3, 4, 5, 6].map((n) => `p${n}@example.com`), "each contact once");
    assert.equal((await world.status()).pending, 0);
  });

  test("a redelivery whose KV key is missing or stale is still answered exactly by the Durable Object", async () => {
    // Applied, then its idempotency key lost from KV: the Durable Object still knows the outcome.
    const first = created(1);
    const applied = await world.deliverAndSettle(first);
    assert.equal(applied.record.state, "finished");
    await waitForKey(world, `webhook:${applied.answer.id}`);
    await world.kv.delete(`webhook:${applied.answer.id}`);
    const calls = apiCalls(world.sim);
    const again = await world.deliver(first, { id: applied.answer.id });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.headers.get("x-sightmill-sync-replayed"), "true");
    assert.equal(again.json.action, applied.record.outcome.action);
    const reused = await world.deliver(created(9), { id: applied.answer.id });
    assert.equal(reused.status, 409, "the id with another body is refused without its KV key too");

    // Pending when the edge first looked (a miss it may keep for 60 s), finished since.
    world.sim.injectFault({ route: "POST /contacts/", status: 503 });
    const second = created(2);
    const late = await world.deliverAndSettle(second);
    assert.equal(late.record.state, "pending");
    const whilePending = await world.deliver(second, { id: late.answer.id });
    assert.ok([200, 202].includes(whilePending.status), whilePending.text);
    assert.equal((await world.status()).pending, 1, "a redelivery of a pending webhook is not queued twice");
    await nextCron(world);
    assert.equal((await world.record(late.answer.id)).state, "finished");
    const afterwards = await world.deliver(second, { id: late.answer.id });
    assert.equal(afterwards.status, 200, afterwards.text);
    assert.equal(afterwards.headers.get("x-sightmill-sync-replayed"), "true");
    assert.equal(world.sim.counts()["POST /contacts/"], calls + 2, "one failed and one applied call for sm_2, nothing for the redeliveries");
    assert.equal(world.sim.state().contacts.length, 2);
  });

  test("two overlapping cron runs send each event once", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503, count: 6 });
    const ids = [];
    for (const n of [1, 2, 3, 4, 5, 6]) ids.push((await world.deliverAndSettle(created(n))).answer.id);
    assert.equal(world.sim.counts()["POST /contacts/"], 6);
    await sleep(1800); // each create is in doubt after its 503: looked up, then made
    await Promise.all([world.cron(), world.cron()]);
    for (const id of ids) assert.equal((await world.record(id)).state, "finished");
    assert.equal(world.sim.counts()["POST /contacts/"], 12, "one call per event per run");
    assert.equal(world.sim.state().contacts.length, 6);
  });

  test("the operator API shows the queue, discards, and refuses without the admin key", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503 });
    const event = created(1);
    const { answer } = await world.deliverAndSettle(event);
    const status = await world.admin("GET", "status");
    assert.equal(status.status, 200);
    assert.equal(status.json.pending, 1);
    assert.equal(status.json.location_id, LOCATION);
    assert.deepEqual(status.json.tokens, [{ location_id: LOCATION, mode: "private_integration", state: "static" }]);
    const pending = await world.admin("GET", "events?state=pending&limit=10");
    assert.equal(pending.json.events[0].webhook_id, answer.id);
    assert.equal(pending.json.events[0].failures, 1);
    assert.equal(pending.json.events[0].body, undefined, "listings carry no contact data");

    const discarded = await world.admin("DELETE", `events/${answer.id}`);
    assert.equal(discarded.status, 200);
    assert.equal((await world.admin("GET", "status")).json.pending, 0);
    const redelivered = await world.deliver(event, { id: answer.id });
    assert.equal(redelivered.status, 200, "a discarded webhook stays finished");
    assert.equal(redelivered.json.status, "discarded");
    assert.equal(apiCalls(world.sim), 1);

    for (const [key, expected] of [[null, 401], ["wrong-key-0123456789", 401]]) {
      const refused = await world.admin("GET", "status", { key });
      assert.equal(refused.status, expected);
      assert.ok(refused.json.error);
    }
    assert.equal((await world.admin("GET", "events/..%2F..")).status, 400, "a path that climbs is refused before routing");
    assert.equal((await world.admin("GET", "nope")).status, 404);
    assert.equal((await world.admin("GET", "events?state=bogus")).status, 400);
    assert.equal((await world.admin("POST", "replay", { body: { from: "yesterday" } })).status, 400);
  });
});
