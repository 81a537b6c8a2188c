// Never lose an event: retries from the cron trigger through the simulator's fault injection,
// rate limits, hung connections, dead letters and replay, a worker that dies after answering,
// overlapping cron runs, alerts with their quiet period, and the operator API.

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
/** Waits past the 1 s test retry delay (plus jitter), then runs the cron. */
const nextCron = async (world) => {
  await sleep(1300);
  await world.cron();
};

describe("reliability", () => {
  let world;
  let receiver;
  before(async () => {
    receiver = await startReceiver();
    world = await startWorld({
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
    const limited = await startWorld({ simulator: { rateLimit: { max: 2, intervalMs: 1000 } } });
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
    const parkedKeys = (await world.kvKeys()).filter((k) => k.startsWith("parked:"));
    assert.equal(parkedKeys.length, 1);
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
    assert.deepEqual((await world.kvKeys()).filter((k) => k.startsWith("parked:")), []);
    const again = await world.admin("POST", `events/${answer.id}/replay`);
    assert.equal(again.status, 409, "only parked webhooks are replayed");
  });

  test("alerts of one kind are sent once per quiet period", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 422, count: 3 });
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
    world.sim.injectFault({ route: "POST /contacts/", status: 422, count: 2 });
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
    world.sim.injectFault({ route: "POST /contacts/", status: 422, count: null });
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

  test("an event acknowledged by a worker that died before applying it is finished by the cron", async () => {
    const event = created(7);
    const body = JSON.stringify(event);
    const now = Date.now();
    const record = {
      body_sha256: "x",
      event_type: "contact.created",
      sightmill_id: "sm_7",
      accepted_at: now - 180_000,
      attempts: 0,
      state: "pending",
      body,
      due_at: now - 60_000,
      failures: 0,
    };
    await world.kv.put("webhook:msg_orphan", JSON.stringify(record));
    await world.kv.put(`due:${String(now - 60_000).padStart(13, "0")}:msg_orphan`, "", {
      metadata: { accepted_at: now - 180_000 },
    });
    await world.cron();
    assert.equal((await world.record("msg_orphan")).state, "finished");
    assert.equal(world.sim.state().contacts[0].email, "p7@example.com");
    await sleep(100);
    assert.ok(receiver.received.some((a) => a.kind === "pending_age"), "the old pending event raised an alert");
    const status = await world.admin("GET", "status");
    assert.equal(status.json.last_cron_run.finished, 1);
    assert.equal(status.json.pending, 0);
  });

  test("a queue key written before a record write that failed neither hides nor duplicates a webhook", async () => {
    const now = Date.now();
    const dueKey = (at, id) => `due:${String(at).padStart(13, "0")}:${id}`;
    const meta = { metadata: { accepted_at: now } };
    // The webhook's record write failed after its due: key was written (answered 503): the
    // redelivery is accepted afresh and applied.
    await world.kv.put(dueKey(now + 120_000, "msg_redelivered"), "", meta);
    const redelivered = await world.deliver(created(1), { id: "msg_redelivered" });
    assert.equal(redelivered.status, 202);
    assert.equal(redelivered.headers.get("x-sightmill-sync-replayed"), null);
    assert.equal((await world.settle("msg_redelivered")).state, "finished");

    // A key its record does not name is dropped once settled; a fresh one may be a key whose
    // record is still being written, and is kept for the next run.
    const settled = dueKey(now - 180_000, "msg_gone");
    const fresh = dueKey(now - 1_000, "msg_late");
    await world.kv.put(settled, "", meta);
    await world.kv.put(fresh, "", meta);
    await world.cron();
    const keys = await world.kvKeys();
    assert.ok(!keys.includes(settled), "a settled stale key is dropped");
    assert.ok(keys.includes(fresh), "a fresh key is kept");
    const record = {
      body_sha256: "x",
      event_type: "contact.created",
      sightmill_id: "sm_2",
      accepted_at: now,
      attempts: 0,
      state: "pending",
      body: JSON.stringify(created(2)),
      due_at: now - 1_000,
      failures: 0,
    };
    await world.kv.put("webhook:msg_late", JSON.stringify(record));
    await world.cron();
    assert.equal((await world.record("msg_late")).state, "finished");
    assert.equal(world.sim.state().contacts.length, 2);

    // Parking's record write failed after its parked: key was written: the webhook is still
    // pending, listed once as pending and never as a dead letter.
    world.sim.injectFault({ route: "POST /contacts/", status: 503 });
    const { answer } = await world.deliverAndSettle(created(3));
    await world.kv.put(`parked:${String(now).padStart(13, "0")}:${answer.id}`, "");
    assert.deepEqual((await world.admin("GET", "events?state=parked")).json.events, []);
    const pending = (await world.admin("GET", "events?state=pending")).json.events;
    assert.deepEqual(pending.map((e) => [e.webhook_id, e.state]), [[answer.id, "pending"]]);
    assert.deepEqual((await world.admin("POST", "replay", { body: { all: true } })).json.replayed, []);
  });

  test("two overlapping cron runs send each event once", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503, count: 6 });
    const ids = [];
    for (const n of [1, 2, 3, 4, 5, 6]) ids.push((await world.deliverAndSettle(created(n))).answer.id);
    assert.equal(world.sim.counts()["POST /contacts/"], 6);
    await sleep(1300);
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
    assert.equal((await world.admin("GET", "events/..%2F..")).status, 404);
    assert.equal((await world.admin("GET", "nope")).status, 404);
    assert.equal((await world.admin("GET", "events?state=bogus")).status, 400);
    assert.equal((await world.admin("POST", "replay", { body: { from: "yesterday" } })).status, 400);
  });
});
