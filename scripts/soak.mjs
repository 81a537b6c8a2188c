#!/usr/bin/env node
// The soak with fault injection: EVENTS SightMill events over CONTACTS contacts (every event type,
// 20% delivered twice, 10% out of order) through the built worker in workerd (Miniflare, in this
// process) while the Contacts API simulator answers 20% of calls with 503, 10% with 429 and
// leaves 5% hanging; 2% are applied but answered after the worker's timeout (late), and the API
// token is revoked for a few seconds halfway through. Cron runs
// go on beside the deliveries and until the queue is empty; then the simulator's state is
// compared with the state the events alone call for. Prints the figures; exits 1 if anything
// was lost, duplicated or mismatched.
//
//   node scripts/soak.mjs [EVENTS=10000] [CONTACTS=500] [SEED=1] [--concurrency N] [--no-build]
//                         [--api-timeout-ms 1000] [--late 0.02]

import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { describeMachine } from "../tests/support/machine.mjs";
import { runSoak } from "../tests/support/soak-run.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: "string", default: "8" },
    "no-build": { type: "boolean", default: false },
    "api-timeout-ms": { type: "string", default: "1000" },
    late: { type: "string", default: "0.02" },
  },
});
const [events = 10_000, contacts = 500, seed = 1] = positionals.map(Number);
if (![events, contacts, seed].every(Number.isInteger) || events < contacts || contacts < 1) {
  console.error(
    "usage: node scripts/soak.mjs [EVENTS] [CONTACTS] [SEED] [--concurrency N] [--no-build] [--api-timeout-ms MS] [--late SHARE]",
  );
  process.exit(2);
}

if (!values["no-build"]) {
  console.log("soak: building the release Wasm (scripts/build.sh)");
  execFileSync("bash", ["scripts/build.sh"], { stdio: ["ignore", "ignore", "inherit"] });
}
const stamp = () => new Date().toISOString().slice(11, 19);
const result = await runSoak({
  events,
  contacts,
  seed,
  concurrency: Number(values.concurrency),
  apiTimeoutMs: Number(values["api-timeout-ms"]),
  faults: { late: Number(values.late) },
  log: (line) => console.log(`soak ${stamp()} ${line}`),
});
print(result);
process.exit(result.lost + result.duplicated + result.mismatched === 0 ? 0 : 1);

function print(r) {
  const totalCalls = Object.values(r.apiCalls).reduce((sum, n) => sum + n, 0);
  const lines = [
    "",
    `machine: ${describeMachine()}`,
    `events: ${r.events} over ${r.contacts} contacts, seed ${r.seed}; by type: ${format(r.byType)}`,
    `deliveries: ${r.deliveries} (${r.redelivered} redelivered, ${r.reordered} out of order), ${r.concurrency} at a time; answers: ${format(r.answers)}`,
    `faults answered by the simulator: ${format(r.faultsSeen)} (hung = never answered); credentials outage: ${r.outage}`,
    `drained: ${r.drained.pending === 0 ? "yes" : `NO, ${r.drained.pending} still pending`} after ${r.drained.cronRounds} cron rounds; ${(r.deliverMs / 1000).toFixed(1)} s delivering, ${(r.totalMs / 1000).toFixed(1)} s in all`,
    "",
    `lost ${r.lost}, duplicated ${r.duplicated}, mismatched ${r.mismatched} (of ${r.expectedRecords} expected contacts, notes and tasks, and every deletion)`,
    ...["lost", "duplicated", "mismatched"].flatMap((kind) => r.examples[kind].map((e) => `  ${kind}: ${e}`)),
    `diagnostics: ${diagnosticsLine(r.diagnostics)}`,
    `dead letters: ${Object.values(r.deadLetters).reduce((sum, n) => sum + n, 0)}${Object.entries(r.deadLetters).map(([reason, n]) => `\n  ${n} x ${reason}`).join("")}`,
    `API calls: ${totalCalls} in all, ${(totalCalls / r.events).toFixed(2)} per event; by route: ${format(r.apiCalls)}`,
  ];
  console.log(lines.join("\n"));
}

function diagnosticsLine(d) {
  return [
    `${d.timedOutCalls} calls timed out by the worker: ${d.hungCalls} never answered (hung), ${d.lateAnswers} answered after the timeout (late answers)`,
    `${d.lateCreates} of the late answers were note or task creates; ${d.createLookups} note or task lookups of a create in doubt`,
    `${d.locksLost} contact locks taken over while held`,
  ].join("; ");
}

function format(counts) {
  return Object.entries(counts)
    .map(([key, n]) => `${key} ${n}`)
    .join(", ");
}
