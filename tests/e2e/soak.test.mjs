// A small soak in the test command: a few hundred SightMill events over every type, redelivered and
// reordered, through the built worker on the production KV model while the simulator injects 5xx,
// 429, hung calls and calls applied but answered after the worker's timeout, the API token is
// revoked for a while, and the runtime is restarted three times mid-drain (state on disk, the
// simulator kept). Nothing may be lost, duplicated or mismatched, and the queue must drain.
// scripts/soak.mjs runs the same thing at full size and prints its figures.

import assert from "node:assert/strict";
import { test } from "node:test";
import { runSoak } from "../support/soak-run.mjs";

// Sized for a loaded 2-CPU CI machine: three runtime restarts, retries a second or more apart.
const DRAIN_TIMEOUT_MS = 180_000;

test("a small soak under faults and restarts loses, duplicates and mismatches nothing", { timeout: DRAIN_TIMEOUT_MS + 90_000 }, async () => {
  const result = await runSoak({
    events: 150,
    contacts: 15,
    seed: 7,
    concurrency: 8,
    drainTimeoutMs: DRAIN_TIMEOUT_MS,
    apiTimeoutMs: 2000, // room for a loaded CI machine: hung calls time out, and late ones come after it
    faults: { late: 0.05 }, // more late answers than the default 2%: a few note and task creates among them
    kv: "production",
    restarts: 3,
    restartEveryMs: 1500,
  });
  const examples = JSON.stringify(result.examples);
  assert.equal(result.drained.pending, 0, "the queue drained");
  assert.equal(result.lost, 0, examples);
  assert.equal(result.duplicated, 0, examples);
  assert.equal(result.mismatched, 0, examples);
  assert.deepEqual(result.deadLetters, {}, "nothing was parked");
  assert.equal(result.restarts.length, 3, `three restarts mid-drain: ${JSON.stringify(result.restarts)}`);
  assert.ok(result.restarts.every((r) => r.pending > 0), "each restart came with work pending");
  assert.ok(Object.keys(result.kvOps).includes("do"), `the model counted KV operations: ${JSON.stringify(result.kvOps)}`);
  assert.ok(Object.keys(result.byType).length === 12, `every event type: ${Object.keys(result.byType)}`);
  assert.ok(result.redelivered > 0 && result.reordered > 0, "some were redelivered and reordered");
  for (const fault of ["5xx", "429", "hung", "401"]) assert.ok(result.faultsSeen[fault] > 0, `faults seen: ${fault}`);
  for (const status of Object.keys(result.answers)) {
    assert.ok(["200", "202"].includes(status), `every delivery accepted: ${JSON.stringify(result.answers)}`);
  }
});
