// KV use on the production KV model, counted by the model: an idle cron run reads at most and
// writes, deletes and lists nothing; a webhook costs at most one KV write; a redelivery of a
// finished webhook costs none. These are the targets of the issue that moved coordination into
// the Durable Object (the benchmark prints the same figures at scale).

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { contactEvent, startWorld } from "./harness.mjs";

/** Sums one operation type over every location. */
const total = (ops, type) => Object.values(ops).reduce((sum, byType) => sum + (byType[type] ?? 0), 0);
const writes = (ops) => total(ops, "put") + total(ops, "delete");

describe("KV use (production KV model)", () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates: "refuse", kv: "production" });
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  test("idle cron runs write, delete and list nothing in KV", async () => {
    for (let run = 0; run < 3; run += 1) await world.cron();
    const ops = await world.kvOps();
    assert.deepEqual([writes(ops), total(ops, "list")], [0, 0], JSON.stringify(ops));
  });

  test("each webhook costs at most one KV write, and a redelivery of a finished one none", async () => {
    const events = [1, 2, 3, 4, 5].map((n) => contactEvent("contact.created", { id: `sm_${n}`, email: `p${n}@example.com` }));
    const answers = [];
    for (const event of events) {
      const { answer, record } = await world.deliverAndSettle(event);
      assert.equal(record.state, "finished", JSON.stringify(record));
      answers.push(answer);
    }
    const afterApplying = await world.kvOps();
    assert.ok(writes(afterApplying) <= events.length, `at most one write per webhook: ${JSON.stringify(afterApplying)}`);
    assert.equal(total(afterApplying, "list"), 0, "no listing");
    for (const [n, event] of events.entries()) {
      const again = await world.deliver(event, { id: answers[n].id });
      assert.equal(again.status, 200, again.text);
    }
    const afterRedelivering = await world.kvOps();
    assert.equal(writes(afterRedelivering), writes(afterApplying), `redeliveries write nothing: ${JSON.stringify(afterRedelivering)}`);
    for (let run = 0; run < 2; run += 1) await world.cron();
    assert.equal(writes(await world.kvOps()), writes(afterApplying), "nor do the cron runs after them");
  });
});
