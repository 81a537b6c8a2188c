#!/usr/bin/env node
// The soak with fault injection: EVENTS SightMill events over CONTACTS contacts (every event type,
// 20% delivered twice, 10% out of order) through the built worker in workerd (Miniflare, in this
// process; its Durable Objects for real, KV on the production KV model by default) while the
// Contacts API simulator answers 20% of calls with 503, 10% with 429 and leaves 5% hanging; 2% are
// applied but answered after the worker's timeout (late), and the API token is revoked for a few
// seconds halfway through. Cron runs go on beside the deliveries and until the operator API shows
// nothing pending; meanwhile the runtime is restarted RESTARTS times (state kept on disk, the
// simulator kept). Then the simulator's state is compared with the state the events alone call for.
// --duplicates allow|refuse (required: the API's default is undocumented and both are common) sets
// the location's "Allow Duplicate Contact" setting; 15% of the contacts have no email, 15% no
// phone and 15% neither. With --locations L the default connection is joined by L-1 named ones
// (each its own location and its own events, alternating the other setting and the chosen one);
// the faults and the outage hit one location of each setting, and every location's state is
// compared with its own expected state. With --seeds N it runs seeds SEED..SEED+N-1 in a row. Prints the figures (one line per seed, the
// full figures for a single seed, and a summary); exits 1 if anything was lost, duplicated or
// mismatched in any run.
//
//   node scripts/soak.mjs --duplicates allow|refuse [EVENTS=10000] [CONTACTS=500] [SEED=1] [--seeds 1] [--kv production|miniflare]
//                         [--restarts 3] [--concurrency N] [--no-build] [--api-timeout-ms 1000] [--late 0.02]
//                         [--locations 1]

import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { describeMachine } from "../tests/support/machine.mjs";
import { runSoak } from "../tests/support/soak-run.mjs";

const USAGE = [
  "usage: node scripts/soak.mjs --duplicates allow|refuse [EVENTS] [CONTACTS] [SEED] [--seeds N] [--kv production|miniflare]",
  "         [--restarts N] [--concurrency N] [--no-build] [--api-timeout-ms MS] [--late SHARE] [--locations L]",
  "  --duplicates (required): the location's \"Allow Duplicate Contact\" setting; allow is the harsher one",
  "  (a create sent twice makes two contacts), refuse answers a second create 400 with the contact's id.",
].join("\n");

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    concurrency: { type: "string", default: "8" },
    "no-build": { type: "boolean", default: false },
    "api-timeout-ms": { type: "string", default: "1000" },
    late: { type: "string", default: "0.02" },
    kv: { type: "string", default: "production" },
    restarts: { type: "string", default: "3" },
    seeds: { type: "string", default: "1" },
    locations: { type: "string", default: "1" },
    duplicates: { type: "string" },
  },
});
const [events = 10_000, contacts = 500, seed = 1] = positionals.map(Number);
const seeds = Number(values.seeds);
const restarts = Number(values.restarts);
const locations = Number(values.locations);
const valid =
  [events, contacts, seed, seeds, restarts, locations].every(Number.isInteger) &&
  locations >= 1 &&
  events >= contacts &&
  contacts >= 1 &&
  seeds >= 1 &&
  restarts >= 0 &&
  ["production", "miniflare"].includes(values.kv) &&
  ["allow", "refuse"].includes(values.duplicates);
if (!valid) {
  console.error(USAGE);
  process.exit(2);
}

if (!values["no-build"]) {
  console.log("soak: building the release Wasm (scripts/build.sh)");
  execFileSync("bash", ["scripts/build.sh"], { stdio: ["ignore", "ignore", "inherit"] });
}
const stamp = () => new Date().toISOString().slice(11, 19);
console.log(`machine: ${describeMachine()}`);
console.log(
  `soak: ${events} events over ${contacts} contacts${locations > 1 ? ` in each of ${locations} locations` : ""}, duplicates ${values.duplicates}, seeds ${seed}..${seed + seeds - 1}, KV ${values.kv}, ${restarts} restarts mid-drain`,
);

const results = [];
for (let s = seed; s < seed + seeds; s += 1) {
  const result = await runSoak({
    duplicates: values.duplicates,
    events,
    contacts,
    seed: s,
    concurrency: Number(values.concurrency),
    apiTimeoutMs: Number(values["api-timeout-ms"]),
    faults: { late: Number(values.late) },
    kv: values.kv,
    restarts,
    locations,
    log: (line) => console.log(`soak ${stamp()} seed ${s}: ${line}`),
  });
  results.push(result);
  console.log(seedLine(result));
  if (locations > 1) for (const line of locationLines(result)) console.log(line);
  for (const line of exampleLines(result)) console.log(line);
}
if (results.length === 1) printDetails(results[0]);
printSummary(results);
process.exit(results.every(clean) ? 0 : 1);

function clean(r) {
  return r.lost + r.duplicated + r.mismatched === 0 && r.drained.pending === 0;
}

function sum(counts) {
  return Object.values(counts ?? {}).reduce((total, n) => total + n, 0);
}

/** KV operations by type over every location: `{ get, put, delete, list, refused }`. */
function kvTotals(kvOps) {
  const totals = { get: 0, put: 0, delete: 0, list: 0, refused: 0 };
  for (const ops of Object.values(kvOps ?? {})) for (const [op, n] of Object.entries(ops)) totals[op] = (totals[op] ?? 0) + n;
  return totals;
}

/** One line of figures for one seed. */
function seedLine(r) {
  const kv = r.kvOps ? kvTotals(r.kvOps) : null;
  const perEvent = (n) => (n / r.events).toFixed(2);
  return [
    `seed ${r.seed}: lost ${r.lost}, duplicated ${r.duplicated}, mismatched ${r.mismatched}`,
    `drained ${r.drained.pending === 0 ? "yes" : `NO (${r.drained.pending} pending)`}`,
    `${r.restarts.length} restarts (pending ${r.restarts.map((x) => x.pending).join("/") || "-"})`,
    `dead letters ${sum(r.deadLetters)}`,
    `API calls/event ${perEvent(sum(r.apiCalls))}`,
    kv ? `KV/event get ${perEvent(kv.get)} put ${perEvent(kv.put)} delete ${perEvent(kv.delete)} list ${perEvent(kv.list)} refused ${kv.refused}` : "KV ops not counted (miniflare)",
    `${(r.totalMs / 1000).toFixed(1)} s`,
  ].join("; ");
}

/** Each location's own comparison, one line each. */
function locationLines(r) {
  return r.locations.map(
    (l) =>
      `  ${l.id} (duplicates ${l.duplicates}${l.faulted ? "; faults and outage" : ""}): lost ${l.lost}, duplicated ${l.duplicated}, mismatched ${l.mismatched}`,
  );
}

/** What was lost, duplicated or mismatched, one line each. */
function exampleLines(r) {
  return ["lost", "duplicated", "mismatched"].flatMap((kind) => r.examples[kind].map((e) => `  ${kind}: ${e}`));
}

function printDetails(r) {
  const totalCalls = sum(r.apiCalls);
  const lines = [
    "",
    `events: ${r.events} over ${r.contacts} contacts, seed ${r.seed}; by type: ${format(r.byType)}`,
    `deliveries: ${r.deliveries} (${r.redelivered} redelivered, ${r.reordered} out of order), ${r.concurrency} at a time; answers: ${format(r.answers)}; failed deliveries redelivered: ${format(r.deliveryFailures) || "none"}`,
    `faults answered by the simulator: ${format(r.faultsSeen)} (hung = never answered); credentials outage: ${r.outage}`,
    `drained: ${r.drained.pending === 0 ? "yes" : `NO, ${r.drained.pending} still pending`} after ${r.drained.cronRounds} cron rounds (${r.drained.cronRunsFailed} runs cut short by restarts); ${(r.deliverMs / 1000).toFixed(1)} s delivering, ${(r.totalMs / 1000).toFixed(1)} s in all`,
    `restarts mid-drain: ${r.restarts.map((x) => `at ${(x.atMs / 1000).toFixed(1)} s with ${x.pending} pending`).join(", ") || "none"}`,
    "",
    `lost ${r.lost}, duplicated ${r.duplicated}, mismatched ${r.mismatched} (of ${r.expectedRecords} expected contacts, notes and tasks, and every deletion)`,
    `diagnostics: ${diagnosticsLine(r.diagnostics)}`,
    `dead letters: ${sum(r.deadLetters)}${Object.entries(r.deadLetters).map(([reason, n]) => `\n  ${n} x ${reason}`).join("")}`,
    `API calls: ${totalCalls} in all, ${(totalCalls / r.events).toFixed(2)} per event; by route: ${format(r.apiCalls)}`,
    `KV operations (${r.kv}): ${r.kvOps ? kvLine(r) : "not counted on Miniflare's KV (use --kv production)"}`,
  ];
  console.log(lines.join("\n"));
}

/** KV operations by type in all and per event, then by location. */
function kvLine(r) {
  const totals = kvTotals(r.kvOps);
  const all = Object.entries(totals)
    .map(([op, n]) => `${op} ${n} (${(n / r.events).toFixed(2)}/event)`)
    .join(", ");
  const byLocation = Object.entries(r.kvOps)
    .map(([location, ops]) => `${location}: ${format(ops)}`)
    .join("; ");
  return `${all}\n  by location: ${byLocation}`;
}

function printSummary(rs) {
  const total = (field) => rs.reduce((n, r) => n + r[field], 0); // (inside a function: no TDZ at the top level)
  const failed = rs.filter((r) => !clean(r)).map((r) => r.seed);
  console.log(
    [
      "",
      `summary: ${rs.length} run(s) of ${events} events, duplicates ${values.duplicates}, KV ${values.kv}: lost ${total("lost")}, duplicated ${total("duplicated")}, mismatched ${total("mismatched")}`,
      `  restarts mid-drain: ${rs.reduce((n, r) => n + r.restarts.length, 0)}; undrained runs: ${rs.filter((r) => r.drained.pending !== 0).length}`,
      `  ${failed.length === 0 ? "every seed clean" : `FAILED seeds: ${failed.join(", ")}`}`,
    ].join("\n"),
  );
}

function diagnosticsLine(d) {
  return [
    `${d.timedOutCalls} calls timed out by the worker: ${d.hungCalls} never answered (hung), ${d.lateAnswers} answered after the timeout (late answers)`,
    `${d.lateCreates} of the late answers were note or task creates; ${d.createLookups} note or task lookups of a create in doubt`,
  ].join("; ");
}

function format(counts) {
  return Object.entries(counts ?? {})
    .map(([key, n]) => `${key} ${n}`)
    .join(", ");
}
