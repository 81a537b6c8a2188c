// A stored record that no longer parses is never read as absent: an unreadable id map stops its
// event (retried with the reason, then parked), so a contact is never created twice; an
// unreadable webhook row is taken out of the queue and counted, never applied again; an unusable
// live mapping stops every event until the operator saves or removes it. The rows are
// damaged through the test wrapper's SQL hook (tests/support/prodkv-worker.js).

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { contactEvent, LOCATION, sleep, startWorld } from "./harness.mjs";

const ada = (updated_at) => contactEvent("contact.created", { id: "sm_ada", email: "ada@example.com", name: "Ada L", updated_at });

describe("unreadable stored records", () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates: "refuse", kv: "production", vars: { RETRY_SCHEDULE: "1s,1s" } });
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  test("an unreadable id map stops the event with the reason, retried then parked, and nothing is created twice", async () => {
    assert.equal((await world.deliverAndSettle(ada("2026-11-27T10:00:00Z"))).record.state, "finished");
    await world.sql("UPDATE links SET value = '{not json' WHERE key = ?", `contact:${LOCATION}:sm_ada`);
    const update = contactEvent("contact.updated", { id: "sm_ada", email: "ada@example.com", name: "Ada Lovelace", updated_at: "2026-11-27T11:00:00Z" });
    const { answer, record } = await world.deliverAndSettle(update);
    assert.equal(record.state, "pending");
    assert.match(record.last_error, /contact:loc-e2e:sm_ada.*unreadable/);
    for (const _ of [1, 2]) {
      await sleep(1300);
      await world.cron();
    }
    const parked = await world.record(answer.id);
    assert.equal(parked.state, "parked");
    assert.match(parked.reason, /unreadable/);
    assert.equal(world.sim.counts()["POST /contacts/"], 1, "never created again");
    assert.equal(world.sim.counts()["PUT /contacts/:contactId"], undefined, "nothing sent on a guess");
  });

  test("an unusable live mapping applies nothing (never the deployed one instead) until the operator removes it", async () => {
    await world.sql("INSERT INTO meta (key, value) VALUES ('live_mapping', '{not json')");
    const answer = await world.deliver(ada("2026-11-27T10:00:00Z"));
    assert.equal(answer.status, 202, "webhooks are still accepted");
    // The first attempt (the alarm set at acceptance) finds the mapping unusable and says so.
    for (let tries = 0; !/live mapping unusable/.test(world.logs()); tries += 1) {
      assert.ok(tries < 100, "the attempt logged why it applied nothing");
      await sleep(50);
    }
    await world.cron();
    assert.equal((await world.record(answer.id)).state, "pending");
    const status = await world.status();
    assert.equal(status.mapping.effective, "unusable");
    assert.match(status.mapping.problem, /live mapping could not be read/);
    assert.equal(status.pending, 1);
    assert.equal(world.sim.requests().length, 0, "nothing sent with a mapping the operator did not choose");

    const removed = await world.admin("DELETE", "mapping");
    assert.deepEqual([removed.status, removed.json.effective], [200, "deployed"]);
    await world.cron();
    assert.equal((await world.record(answer.id)).state, "finished");
    assert.deepEqual(world.sim.state().contacts.map((c) => c.email), ["ada@example.com"]);
  });

  test("an unreadable webhook row is taken out of the queue and counted, never applied again", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503, count: 1 });
    const { answer, record } = await world.deliverAndSettle(ada("2026-11-27T10:00:00Z"));
    assert.equal(record.state, "pending");
    await world.sql("UPDATE webhooks SET record = '{not json' WHERE id = ?", answer.id);
    await sleep(1300);
    await world.cron();
    const status = await world.status();
    assert.deepEqual([status.pending, status.unreadable], [0, 1]);
    assert.equal(world.sim.counts()["POST /contacts/"], 1, "the failed create was not sent again");
    const again = await world.deliver(ada("2026-11-27T10:00:00Z"), { id: answer.id });
    assert.equal(again.status, 503, "a redelivery is not taken for a new webhook");
    assert.equal(world.sim.counts()["POST /contacts/"], 1);
  });
});
