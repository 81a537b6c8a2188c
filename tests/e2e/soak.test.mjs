// A small soak in the test command, once where the location allows duplicate contacts and once
// where it refuses them: a few hundred SightMill events over every type (contacts with and without
// email and phone), redelivered and reordered, through the built worker on the production KV model
// while the simulator injects 5xx, 429, hung calls and calls applied but answered after the
// worker's timeout, the API token is revoked for a while, and the runtime is restarted three times
// mid-drain (state on disk, the simulator kept). Nothing may be lost, duplicated or mismatched, and
// the queue must drain. scripts/soak.mjs runs the same thing at full size and prints its figures.

import assert from "node:assert/strict";
import { test } from "node:test";
import { generate } from "../support/soak.mjs";
import { runSoak } from "../support/soak-run.mjs";

// Sized for a loaded 2-CPU CI machine: three runtime restarts, retries a second or more apart.
const DRAIN_TIMEOUT_MS = 180_000;
const EVENTS = 150;
const CONTACTS = 15;
const SEED = 7; // its contacts include some without email, some without phone and some with neither

/** Which of email and phone the contacts of a history have: "email+phone", "email", "phone", "neither". */
function identifierKinds(events) {
  const kinds = events
    .filter((e) => e.type === "contact.created")
    .map(({ data }) => [data.email && "email", data.phone && "phone"].filter(Boolean).join("+") || "neither");
  return new Set(kinds);
}

/** The small soak on a location with the `duplicates` setting; asserts a clean result. */
async function smallSoak(duplicates) {
  const kinds = identifierKinds(generate({ events: EVENTS, contacts: CONTACTS, seed: SEED }));
  assert.deepEqual(kinds, new Set(["email+phone", "email", "phone", "neither"]), "every kind of contact");
  const result = await runSoak({
    duplicates,
    events: EVENTS,
    contacts: CONTACTS,
    seed: SEED,
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
}

const TIMEOUT = { timeout: DRAIN_TIMEOUT_MS + 90_000 };

test("a small soak where duplicates are allowed loses, duplicates and mismatches nothing", TIMEOUT, () => smallSoak("allow"));

test("a small soak where duplicates are refused loses, duplicates and mismatches nothing", TIMEOUT, () => smallSoak("refuse"));
