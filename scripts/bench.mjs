#!/usr/bin/env node
// The benchmark (not part of the pass/fail tests; it prints figures and targets, never a verdict
// on the run): builds the release Wasm, starts the Contacts API simulator and two `wrangler dev`
// workers (the product, with its location's Durable Object `Location`, and an "ok" worker that is
// the runtime's own floor), drives the same N signed webhooks at concurrency C through each, and
// prints the product's figures beside the floor's:
//   - per webhook: acknowledgement p50/p95/p99, webhooks per second, worker CPU (read from /proc
//     for the workerd process that runs each worker, apart from the workerd proxy and wrangler's
//     node process), webhook to applied p50/p99 (the record's finished_at minus the send time),
//     KV operations by type (get, put, delete, list) for the whole product, the Durable Object
//     included, Durable Object requests (fetches and alarms) and SQLite rows written and read
//     (deltas of GET /admin/status `durable_object`, less the status calls the bench itself made),
//     and Contacts API calls per event type;
//   - per idle hour: the cron handler run 60 times with nothing pending (production runs it every
//     minute), its KV operations, Durable Object requests and rows, scaled to an hour and a day;
//   - the Free plan's daily capacity (webhooks a day before the first Free-plan quota binds, after
//     the idle day's own usage) and the marginal cost per million webhooks at Cloudflare's list
//     prices, itemised (Durable Object duration estimated from its awake wall time at 128 MB);
//   - the drain of a backlog of BACKLOG contact.created events for one location, queued while every
//     API call fails and then drained by the cron and the Durable Object's alarms under the API's
//     rate limit (100 requests per 10 s), as a percentage of that limit, with the 429s seen;
//   - with --locations L (L > 1): the same backlog in each of L named connections at once, each its
//     own location with its own rate limit in the simulator, drained together: each location's
//     share of its own limit and its 429s, and the aggregate rate beside the single location's;
//   - with --idle-connections 1,10,100: the idle hour again with that many named connections (made
//     through the operator API, each its own location, each sent one webhook and left to apply it
//     first, so that its Location has had work and emptied): Durable Object requests per cron run
//     (the Directory's and the Locations', fetches and alarms), KV operations and rows (the default
//     location's, the Directory's and every named location's) per hour, each count beside the others;
//   - the targets, each with its figure.
// The product runs as tests/bench/memkv-worker.js: build/index.js with both entry points' SYNC_KV
// counted. --kv counted (the default) counts the simulated KV of `wrangler dev`; --kv memory counts
// an in-memory stub in the worker's own isolate instead, to show the product's CPU without the
// simulated KV. The load is driven with no cron: an alarm set at acceptance makes each first
// attempt, as in production, where the cron runs only once a minute.
// --perf also samples the product's workerd runner with Linux `perf` during the load and prints
// where its CPU goes per webhook (JIT code, V8 builtins, GC, SQLite behind the simulated KV and the
// Durable Object, the kernel, ...; tests/support/perf.mjs), keeping .bench/product.perf.data for
// `perf report -i`. --no-backlog skips the backlog drain. Stops every process it started, even on
// failure.
//
//   node scripts/bench.mjs [N=2000] [C=16] [--backlog 1000] [--seed 1] [--no-build] [--perf] [--no-backlog]
//                          [--kv counted|memory] [--locations L] [--idle-connections 1,10,100]

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { drive, percentile, statusCounts } from "../tests/support/load.mjs";
import { describeMachine } from "../tests/support/machine.mjs";
import { cpuMs, freePort, sleep, startGroup, stopGroup, waitFor, wranglerProcesses } from "../tests/support/procs.mjs";
import { havePerf, startPerf, summarizePerf } from "../tests/support/perf.mjs";
import { generate, webhookBody } from "../tests/support/soak.mjs";
import { signedDelivery } from "../tests/support/webhooks.mjs";

const DIR = ".bench";
const LOCATION = "loc-bench";
const TOKEN = "pit-bench-0123456789abcdef";
const SECRET = `whsec_${Buffer.from("sightmill-bench-signing-key-32by").toString("base64")}`;
const ADMIN_KEY = "admin-bench-0123456789abcdef";
const READ_KEY = "read-bench-0123456789abcdef";
const WEBHOOK_PATH = "/webhooks/sightmill";
const WRANGLER = "node_modules/.bin/wrangler";
/** The product's settings that shape the figures: the shipped defaults, but for the retries. */
const SETTINGS = {
  RATE_LIMIT_PER_10S: "100",
  CRON_MAX_API_CALLS: "40",
  CRON_TIME_BUDGET_MS: "25000",
  // Every second: a backlog event that failed while the API was down (however often) is due
  // again within a second of its recovery, so that the drain measures the pacing, not the
  // retry schedule. 24 entries: none is parked while the API is down.
  RETRY_SCHEDULE: Array(24).fill("1s").join(","),
};
/** The API's limit the backlog drains against: 100 requests per 10 s per location. */
const API_RATE = { max: 100, intervalMs: 10_000 };
/** Cron runs in one idle hour: production runs the cron every minute. */
const IDLE_RUNS = 60;
/** How often the bench polls GET /admin/status while it waits for a drain. */
const POLL_MS = 1000;
/** A drain whose pending count has not fallen for this long has stalled. */
const STALL_MS = 90_000;
const KV_OPS = ["get", "put", "delete", "list"];

/** Free-plan daily quotas (design.md, "Platform facts"). */
const FREE = {
  worker_requests: { label: "Workers requests", limit: 100_000 },
  kv_get: { label: "KV reads", limit: 100_000 },
  kv_put: { label: "KV writes", limit: 1_000 },
  kv_delete: { label: "KV deletes", limit: 1_000 },
  kv_list: { label: "KV lists", limit: 1_000 },
  do_requests: { label: "Durable Object requests", limit: 100_000 },
  do_rows_read: { label: "Durable Object rows read", limit: 5_000_000 },
  do_rows_written: { label: "Durable Object rows written", limit: 100_000 },
  do_gb_s: { label: "Durable Object duration (GB-s, estimated)", limit: 13_000 },
};
/** List prices in dollars per million (Workers Paid, beyond the included allowances). */
const PRICES = {
  worker_requests: { label: "Workers requests", perMillion: 0.3 },
  kv_get: { label: "KV reads", perMillion: 0.5 },
  kv_put: { label: "KV writes", perMillion: 5.0 },
  kv_delete: { label: "KV deletes", perMillion: 5.0 },
  kv_list: { label: "KV lists", perMillion: 5.0 },
  do_requests: { label: "Durable Object requests", perMillion: 0.15 },
  do_rows_read: { label: "Durable Object rows read", perMillion: 0.001 },
  do_rows_written: { label: "Durable Object rows written", perMillion: 1.0 },
  do_gb_s: { label: "Durable Object duration (estimate)", perMillion: 12.5 },
};
/** The memory a Durable Object is billed for. */
const DO_GB = 0.128;

const groups = [];
process.once("SIGINT", () => stopAll().then(() => process.exit(130)));
process.once("SIGTERM", () => stopAll().then(() => process.exit(143)));

const options = parseOptions();
try {
  await main(options);
} catch (error) {
  console.error(`bench: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}

function parseOptions() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      backlog: { type: "string", default: "1000" },
      seed: { type: "string", default: "1" },
      "no-build": { type: "boolean", default: false },
      perf: { type: "boolean", default: false },
      "no-backlog": { type: "boolean", default: false },
      kv: { type: "string", default: "counted" },
      locations: { type: "string", default: "1" },
      "idle-connections": { type: "string", default: "" },
    },
  });
  const [n = 2000, c = 16] = positionals.map(Number);
  const parsed = {
    n, c, backlog: Number(values.backlog), seed: Number(values.seed), build: !values["no-build"],
    perf: values.perf, drain: !values["no-backlog"], kv: values.kv, locations: Number(values.locations),
    idleConnections: values["idle-connections"] ? values["idle-connections"].split(",").map(Number) : [],
  };
  const counts = parsed.idleConnections;
  if (!counts.every((v, i) => Number.isInteger(v) && v > 0 && (i === 0 || v > counts[i - 1]))) {
    console.error("bench: --idle-connections is a rising list of connection counts, such as 1,10,100");
    process.exit(2);
  }
  if (!["counted", "memory"].includes(parsed.kv)) {
    console.error("bench: --kv is counted (the simulated KV, counted) or memory (an in-memory stub, counted)");
    process.exit(2);
  }
  if (parsed.perf && !havePerf()) {
    console.error("bench: --perf needs Linux perf on the PATH");
    process.exit(2);
  }
  if (![n, c, parsed.backlog, parsed.seed, parsed.locations].every((v) => Number.isInteger(v) && v > 0) || n < 10) {
    console.error("usage: node scripts/bench.mjs [N>=10] [C] [--backlog B] [--seed S] [--no-build] [--perf] [--no-backlog] [--kv counted|memory] [--locations L]");
    process.exit(2);
  }
  return parsed;
}

async function stopAll() {
  await Promise.all(groups.splice(0).map((group) => stopGroup(group)));
}

async function main({ n, c, backlog, seed, build, perf, drain: withDrain, kv, locations, idleConnections }) {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  say(`machine: ${describeMachine()}`);
  const upload = build ? measureUpload() : null;
  const world = await startWorld(kv);
  say(`warming up`);
  await warmUp(world, c);

  const contacts = Math.max(1, Math.floor(n / 4));
  const events = generate({ events: n, contacts, seed, prefix: "sm_load_" });
  say(`load: ${n} signed webhooks (every event type, ${contacts} contacts) at concurrency ${c}`);
  const floor = await measureFloor(world, events, c);
  const product = await measureProduct(world, events, c, perf);
  say(`idle hour: ${IDLE_RUNS} cron runs with nothing pending`);
  const idle = await measureIdle(world);
  if (idleConnections.length > 0) {
    say(`idle hour with ${idleConnections.join(", ")} named connections: ${IDLE_RUNS} cron runs each`);
    idle.named = await measureIdleConnections(world, idleConnections);
  }
  product.paths = await measurePaths(world, events, c);
  let drain = null;
  if (withDrain) {
    say(`backlog: ${backlog} events for one location, drained by the cron and the Durable Object against ${API_RATE.max} requests per ${API_RATE.intervalMs / 1000} s`);
    drain = await measureBacklog(world, backlog, c);
  }
  let many = null;
  if (withDrain && locations > 1) {
    say(`backlog: ${backlog} events in each of ${locations} connections at once, each location against its own ${API_RATE.max} requests per ${API_RATE.intervalMs / 1000} s`);
    many = await measureBacklogs(world, backlog, locations, c);
  }
  report({ n, c, upload, floor, product, idle, drain, many, kv });
}

// ---- setting up ---------------------------------------------------------------------------------

/** `wrangler deploy --dry-run` builds the release Wasm (scripts/build.sh) and prints the upload. */
function measureUpload() {
  say("building the release Wasm (wrangler deploy --dry-run runs scripts/build.sh)");
  const output = execFileSync(WRANGLER, ["deploy", "--dry-run", "--outdir", "dist"], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${process.env.HOME}/.cargo/bin:${process.env.PATH}`, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const match = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
  if (!match) throw new Error(`no upload size in:\n${output}`);
  return { raw: Number(match[1]), gzip: Number(match[2]) };
}

async function startWorld(kv) {
  const [simPort, productPort, floorPort] = [await freePort(), await freePort(), await freePort()];
  const sim = `http://127.0.0.1:${simPort}`;
  groups.push(
    startGroup(
      "node",
      ["tests/simulator/cli.mjs", "--port", String(simPort), "--token", `${TOKEN}:${LOCATION}`,
        "--location", `${LOCATION}:noduplicates`, "--rate-max", "1000000"],
      { logFile: `${DIR}/simulator.log` },
    ),
  );
  await waitFor(() => fetch(`${sim}/__control/counts`).then((r) => r.ok), { timeoutMs: 10_000, what: "the simulator", group: groups[0] });
  writeProductConfig(sim, kv);
  const product = startWrangler("product", `${DIR}/product.toml`, productPort, ["--env-file", resolve(DIR, "product.env")]);
  const floor = startWrangler("floor", "tests/bench/wrangler.toml", floorPort, []);
  const url = (port) => `http://127.0.0.1:${port}`;
  await waitFor(() => fetch(`${url(productPort)}/healthz`).then((r) => r.ok), { timeoutMs: 60_000, what: "the product worker", group: product });
  await waitFor(() => fetch(url(floorPort)).then((r) => r.ok), { timeoutMs: 60_000, what: "the ok worker", group: floor });
  return {
    sim,
    kv,
    product: { url: url(productPort), pids: wranglerProcesses(product.pid), log: product.logFile },
    floor: { url: url(floorPort), pids: wranglerProcesses(floor.pid) },
  };
}

/**
 * A wrangler config without a [build] step, on the prebuilt build/ behind the counting wrapper,
 * with the location's Durable Object bound as in wrangler.toml, and the product's settings.
 */
function writeProductConfig(sim, kv) {
  writeFileSync(
    `${DIR}/product.toml`,
    [
      "# Written by scripts/bench.mjs: the product on the prebuilt build/ (KV counted by",
      "# tests/bench/memkv-worker.js), no [build] step.",
      'name = "sightmill-sync-bench"',
      'main = "../tests/bench/memkv-worker.js"',
      'compatibility_date = "2026-04-26"',
      "",
      "[[kv_namespaces]]",
      'binding = "SYNC_KV"',
      'id = "00000000000000000000000000000000"',
      "",
      "[[durable_objects.bindings]]",
      'name = "LOCATIONS"',
      'class_name = "Location"',
      "",
      "[[durable_objects.bindings]]",
      'name = "DIRECTORY"',
      'class_name = "Directory"',
      "",
      "[[migrations]]",
      'tag = "v1"',
      'new_sqlite_classes = ["Location"]',
      "",
      "[[migrations]]",
      'tag = "v2"',
      'new_sqlite_classes = ["Directory"]',
      "",
    ].join("\n"),
  );
  const settings = {
    BENCH_KV: kv,
    GHL_LOCATION_ID: LOCATION,
    CONTACTS_API_BASE: sim,
    WEBHOOK_SECRETS: SECRET,
    CONTACTS_API_TOKEN: TOKEN,
    ADMIN_API_KEYS: ADMIN_KEY,
    READ_API_KEYS: READ_KEY,
    // The named connections' records are sealed with it (--locations).
    TOKEN_ENCRYPTION_KEYS: `bench:${Buffer.alloc(32, 7).toString("base64")}`,
    ...SETTINGS,
  };
  writeFileSync(`${DIR}/product.env`, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(""));
}

function startWrangler(name, config, port, extra) {
  const group = startGroup(
    WRANGLER,
    ["dev", "--config", config, "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0",
      "--show-interactive-dev-session=false", "--persist-to", `${DIR}/state-${name}`, "--test-scheduled", ...extra],
    { logFile: `${DIR}/wrangler-${name}.log`, env: { WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" } },
  );
  groups.push(group);
  return group;
}

async function warmUp(world, c) {
  const warm = generate({ events: 100, contacts: 10, seed: 999, prefix: "sm_warm_" });
  await drive(webhooks(world.floor.url, warm, "warm"), c);
  await drive(webhooks(world.product.url, warm, "warm"), c);
  const drained = await untilDrained(world);
  if (!drained.drained) throw new Error(`the warm-up did not drain: ${JSON.stringify(drained)}`);
  await runCron(world);
  // The location's pacing window (100 calls per 10 s) empties again before the load.
  await sleep(API_RATE.intervalMs + 1000);
}

/** Signed deliveries of `events` to `base`, with webhook ids unique to `tag`. */
function webhooks(base, events, tag) {
  return events.map((event) => ({
    url: `${base}${WEBHOOK_PATH}`,
    init: signedDelivery(SECRET, null, { id: `msg_${tag}_${event.n}`, rawBody: JSON.stringify(webhookBody(event)) }),
  }));
}

// ---- reading the product ------------------------------------------------------------------------

/** CPU (ms) of a wrangler group's runner, proxy and node. */
function cpu(pids) {
  return Object.fromEntries(Object.entries(pids).map(([role, pid]) => [role, cpuMs(pid)]));
}

/** CPU per item (ms) between two readings of `cpu`. */
function cpuDelta(before, after, count) {
  return Object.fromEntries(Object.keys(before).map((role) => [role, (after[role] - before[role]) / count]));
}

/** The counting wrapper's figures (tests/bench/memkv-worker.js): KV operations by type, and the
 * Durable Object's instances, fetches, alarms and awake time. Touches neither KV nor the object. */
async function benchCounts(world) {
  return (await fetch(`${world.product.url}/__bench/counts`)).json();
}

async function adminStatus(world) {
  const response = await fetch(`${world.product.url}/admin/status`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  if (!response.ok) throw new Error(`GET /admin/status answered ${response.status}: ${await response.text()}`);
  return response.json();
}

/** One reading of everything the bench counts: the wrapper's counts, then the status. */
async function reading(world) {
  const counts = await benchCounts(world);
  const status = await adminStatus(world);
  return { counts, status, at: Date.now() };
}

/**
 * What one GET /admin/status costs the product: read twice in a row with nothing else under way,
 * the second reading's `durable_object` minus the first's is the second call's own request and
 * rows (each reading includes its own call); the wrapper's counts around both give its KV
 * operations and awake time (halved).
 */
async function statusCost(world) {
  const before = await benchCounts(world);
  const first = await adminStatus(world);
  const second = await adminStatus(world);
  const after = await benchCounts(world);
  const d = (key) => second.durable_object[key] - first.durable_object[key];
  return {
    requests: d("requests"),
    rows_read: d("rows_read"),
    rows_written: d("rows_written"),
    kv: Object.fromEntries(KV_OPS.map((op) => [op, (after.kv[op] - before.kv[op]) / 2])),
    awake_ms: (after.durable_object.awake_ms - before.durable_object.awake_ms) / 2,
    restarted: after.durable_object.instances !== before.durable_object.instances,
  };
}

/** The mean of two status costs (the rows a status call reads grow with the tables). */
function meanCost(a, b) {
  const mean = (x, y) => (x + y) / 2;
  return {
    requests: mean(a.requests, b.requests),
    rows_read: mean(a.rows_read, b.rows_read),
    rows_written: mean(a.rows_written, b.rows_written),
    kv: Object.fromEntries(KV_OPS.map((op) => [op, mean(a.kv[op], b.kv[op])])),
    awake_ms: mean(a.awake_ms, b.awake_ms),
    restarted: a.restarted || b.restarted,
  };
}

/**
 * The product's usage between two readings, less `statusCalls` status calls at `cost` each
 * (the last reading's own call included): KV operations by type, Durable Object requests, rows
 * written and read, awake time, instances started, and the location's counters' deltas.
 */
function usage(before, after, statusCalls, cost) {
  const kv = Object.fromEntries(KV_OPS.map((op) => [op, after.counts.kv[op] - before.counts.kv[op] - statusCalls * cost.kv[op]]));
  const started = after.counts.durable_object.instances - before.counts.durable_object.instances;
  const d = (key) => after.status.durable_object[key] - before.status.durable_object[key];
  const counters = {};
  for (const [name, value] of Object.entries(after.status.counters ?? {})) counters[name] = value - (before.status.counters?.[name] ?? 0);
  return {
    kv,
    // A Durable Object that restarted between the readings has counted from zero again: its
    // figures are then the wrapper's (requests) or unknown (rows).
    doRequests: started === 0 ? d("requests") - statusCalls * cost.requests
      : after.counts.durable_object.fetches + after.counts.durable_object.alarms
        - before.counts.durable_object.fetches - before.counts.durable_object.alarms - statusCalls,
    rowsWritten: started === 0 ? d("rows_written") - statusCalls * cost.rows_written : NaN,
    rowsRead: started === 0 ? d("rows_read") - statusCalls * cost.rows_read : NaN,
    awakeMs: after.counts.durable_object.awake_ms - before.counts.durable_object.awake_ms - statusCalls * cost.awake_ms,
    alarms: after.counts.durable_object.alarms - before.counts.durable_object.alarms,
    started,
    statusCalls,
    statusCost: cost,
    counters,
  };
}

/**
 * Waits until nothing is pending, polling GET /admin/status every POLL_MS; gives up when the
 * pending count has not fallen for STALL_MS (and says so). Returns the polls made.
 */
async function untilDrained(world, { cron = false } = {}) {
  let polls = 0;
  let lowest = Infinity;
  let since = Date.now();
  const started = Date.now();
  for (;;) {
    if (cron) await runCron(world);
    const status = await adminStatus(world);
    polls += 1;
    if (status.pending === 0) return { drained: true, polls, ms: Date.now() - started };
    if (status.pending < lowest) {
      lowest = status.pending;
      since = Date.now();
    } else if (Date.now() - since > STALL_MS) {
      return { drained: false, polls, ms: Date.now() - started, pending: status.pending, status };
    }
    await sleep(POLL_MS);
  }
}

async function runCron(world) {
  const response = await fetch(`${world.product.url}/__scheduled?cron=${encodeURIComponent("* * * * *")}`);
  await response.arrayBuffer();
}

// ---- measuring ----------------------------------------------------------------------------------

async function measureFloor(world, events, c) {
  const before = cpu(world.floor.pids);
  const { results, elapsedMs } = await drive(webhooks(world.floor.url, events, "floor"), c);
  const after = cpu(world.floor.pids);
  return { ack: ackFigures(results, elapsedMs), cpu: cpuDelta(before, after, events.length) };
}

/**
 * The load: N webhooks at concurrency C, no cron (an alarm set at acceptance makes each first
 * attempt), then GET /admin/status every second until nothing is pending. A drain that stalls is
 * reported; the cron then runs every second until it ends, so that the other figures exist.
 */
async function measureProduct(world, events, c, perf) {
  const logStart = statSync(world.product.log).size;
  const costBefore = await statusCost(world);
  const recording = perf ? await startPerf(world.product.pids.runner, resolve(DIR, "product.perf.data")) : null;
  const cpuBefore = cpu(world.product.pids);
  const before = await reading(world);
  const { results, elapsedMs } = await drive(webhooks(world.product.url, events, "load"), c);
  const drained = await untilDrained(world);
  let rescued = null;
  if (!drained.drained) {
    say(`the load's drain stalled at ${drained.pending} pending; the cron now runs every second`);
    rescued = await untilDrained(world, { cron: true });
  }
  const cpuAfter = cpu(world.product.pids);
  const after = await reading(world);
  await recording?.stop();
  const costAfter = await statusCost(world);
  const statusCalls = drained.polls + (rescued?.polls ?? 0) + 1;
  const applied = await appliedLatencies(world, events, results, c);
  return {
    perf: recording ? summarizePerf(resolve(DIR, "product.perf.data")) : null,
    ack: ackFigures(results, elapsedMs),
    cpu: cpuDelta(cpuBefore, cpuAfter, events.length),
    usage: usage(before, after, statusCalls, meanCost(costBefore, costAfter)),
    drainMs: after.at - before.at - elapsedMs,
    drained,
    rescued,
    applied,
    calls: callsByType(world.product.log, logStart, events, "load"),
  };
}

/** One idle hour: IDLE_RUNS cron runs in a row with nothing pending, less the closing status call. */
async function measureIdle(world) {
  const cost = await statusCost(world);
  const before = await reading(world);
  if (before.status.pending !== 0) throw new Error(`the idle hour needs nothing pending; ${before.status.pending} are`);
  for (let i = 0; i < IDLE_RUNS; i += 1) await runCron(world);
  await sleep(2000); // an alarm the runs set, if any, has fired
  const after = await reading(world);
  return usage(before, after, 1, meanCost(cost, await statusCost(world)));
}

/**
 * The idle hour with named connections, for each of `counts` (rising): connections made through the
 * operator API until there are that many (each its own token and location in the simulator), each
 * new one sent one webhook and left to apply it, then IDLE_RUNS cron runs. Every reading of rows is
 * made outside the wrapper's counts, so that the requests and KV operations counted are the cron's.
 */
async function measureIdleConnections(world, counts) {
  const control = simControl(world);
  const connections = [];
  const results = [];
  for (const count of counts) {
    const fresh = [];
    while (connections.length < count) {
      const i = connections.length;
      const id = `loc-idle-${i}`;
      const token = `pit-idle-${i}-0123456789abcdef`;
      await control("POST", "tokens", { token, locationId: id });
      await control("POST", "locations", { locationId: id, allowDuplicates: false, rateLimit: API_RATE });
      const created = await admin(world, "POST", "/admin/connections", { id, token: { kind: "private_integration", token } });
      if (created.status !== 201) throw new Error(`creating ${id} answered ${created.status}: ${JSON.stringify(created.json)}`);
      const connection = { id, secret: created.json.signing_secret };
      connections.push(connection);
      fresh.push(connection);
    }
    const { results: sent } = await drive(fresh.map(({ id, secret }) => ({
      url: `${world.product.url}${WEBHOOK_PATH}/${id}`,
      init: signedDelivery(secret, null, {
        id: `msg_idle_${id}`,
        rawBody: JSON.stringify(webhookBody({
          type: "contact.created",
          data: { id: `sm_idle_${id}`, name: `Idle ${id}`, email: `${id}@bench.test`, updated_at: "2026-11-27T10:00:00Z" },
        })),
      }),
    })), 4);
    if (sent.some((r) => r.status !== 202)) throw new Error(`webhooks to the new connections answered ${JSON.stringify(statusCounts(sent))}`);
    const statuses = () => Promise.all(fresh.map(async ({ id }) => (await admin(world, "GET", `/admin/connections/${id}/status`)).json));
    await waitFor(async () => (await statuses()).every((status) => status.pending === 0), { timeoutMs: 120_000, what: `the ${fresh.length} new connections' webhooks` });
    await sleep(1000); // the runs' last reports to the Directory
    results.push({ count, ...(await idleHourWith(world, connections)) });
  }
  return results;
}

/** One idle hour (IDLE_RUNS cron runs) with `connections` named: requests, KV and rows. */
async function idleHourWith(world, connections) {
  const namedUsage = async (id) => (await admin(world, "GET", `/admin/connections/${id}/status`)).json.durable_object;
  const named = () => Promise.all(connections.map(({ id }) => namedUsage(id)));
  const directory = async (route) => (await fetch(`${world.product.url}/__bench/directory/${route}`)).json();
  // One status call's own rows on a named location: the second of two in a row less the first.
  const [first, second] = [await namedUsage(connections[0].id), await namedUsage(connections[0].id)];
  const defaultCost = await statusCost(world);
  const namedBefore = await named();
  const directoryBefore = await directory("usage");
  const defaultBefore = await adminStatus(world);
  const before = await benchCounts(world);
  for (let i = 0; i < IDLE_RUNS; i += 1) await runCron(world);
  await sleep(2000); // an alarm the runs set, if any, has fired
  const after = await benchCounts(world);
  const defaultAfter = await adminStatus(world);
  const directoryAfter = await directory("usage");
  const namedAfter = await named();
  const work = (await directory("work")).work;
  const rows = (key) => {
    const defaults = defaultAfter.durable_object[key] - defaultBefore.durable_object[key] - defaultCost[key];
    const directoryRows = directoryAfter[key] - directoryBefore[key];
    const namedRows = namedAfter.reduce((sum, usage, i) => sum + usage[key] - namedBefore[i][key] - (second[key] - first[key]), 0);
    return defaults + directoryRows + namedRows;
  };
  const locationRequests = after.durable_object.fetches + after.durable_object.alarms - before.durable_object.fetches - before.durable_object.alarms;
  const directoryRequests = after.directory.fetches + after.directory.alarms - before.directory.fetches - before.directory.alarms;
  return {
    perCron: { directory: directoryRequests / IDLE_RUNS, locations: locationRequests / IDLE_RUNS },
    kv: Object.fromEntries(KV_OPS.map((op) => [op, after.kv[op] - before.kv[op]])),
    rowsRead: rows("rows_read"),
    rowsWritten: rows("rows_written"),
    started: after.durable_object.instances - before.durable_object.instances,
    recorded: work.length,
    due: work.filter((row) => row.due_at !== null && row.due_at <= Date.now()).length,
  };
}

function ackFigures(results, elapsedMs) {
  const ms = results.map((r) => r.ms);
  return {
    p50: percentile(ms, 50),
    p95: percentile(ms, 95),
    p99: percentile(ms, 99),
    perSecond: (results.length / elapsedMs) * 1000,
    statuses: statusCounts(results),
  };
}

/**
 * The runner's CPU, KV operations and Durable Object requests (the wrapper's count) for three
 * cheap paths of the product: a delivery refused for its signature, a redelivery of a finished
 * webhook (answered from its KV idempotency key), and a read of a contact with no id map.
 */
async function measurePaths(world, events, c) {
  const sample = events.slice(0, Math.min(events.length, 500));
  const refused = webhooks(world.product.url, sample, "load").map(({ url, init }) => ({
    url,
    init: { ...init, headers: { ...init.headers, "webhook-signature": "v1,AAAA" } },
  }));
  const replayed = webhooks(world.product.url, sample, "load");
  const reads = sample.map(() => ({
    url: `${world.product.url}/contacts/nobody`,
    init: { headers: { authorization: `Bearer ${READ_KEY}` } },
  }));
  const perRequest = async (requests) => {
    const before = cpu(world.product.pids);
    const countsBefore = await benchCounts(world);
    const { results } = await drive(requests, c);
    const countsAfter = await benchCounts(world);
    const k = requests.length;
    return {
      cpu: cpuDelta(before, cpu(world.product.pids), k).runner,
      kv: Object.fromEntries(KV_OPS.map((op) => [op, (countsAfter.kv[op] - countsBefore.kv[op]) / k])),
      doRequests: (countsAfter.durable_object.fetches + countsAfter.durable_object.alarms
        - countsBefore.durable_object.fetches - countsBefore.durable_object.alarms) / k,
      statuses: statusCounts(results),
    };
  };
  return { refused: await perRequest(refused), replayed: await perRequest(replayed), read: await perRequest(reads) };
}

/** For each webhook, its record's finished_at minus the time it was sent. */
async function appliedLatencies(world, events, results, c) {
  const reads = events.map((event) => ({
    url: `${world.product.url}/admin/events/msg_load_${event.n}`,
    init: { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
  }));
  const finished = [];
  for (let i = 0; i < reads.length; i += c * 8) {
    const batch = reads.slice(i, i + c * 8);
    const bodies = await Promise.all(batch.map(({ url, init }) => fetch(url, init).then((r) => r.json())));
    finished.push(...bodies.map((body) => body.finished_at));
  }
  const ms = finished.map((at, i) => at - results[i].sentAt).filter(Number.isFinite);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), max: Math.max(...ms), finished: ms.length };
}

/** Contacts API calls per event, by type, from the worker's log lines for webhooks tagged `tag`. */
function callsByType(logFile, from, events, tag) {
  const calls = {};
  const text = readFileSync(logFile, "utf8").slice(from);
  for (const line of text.split("\n")) {
    if (!line.includes('"msg":"webhook"') || !line.includes(`"webhook_id":"msg_${tag}_`)) continue;
    const entry = JSON.parse(line.slice(line.indexOf("{")));
    calls[entry.event] = (calls[entry.event] ?? 0) + entry.api_calls;
  }
  const counts = {};
  for (const { type } of events) counts[type] = (counts[type] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).map(([type, count]) => [type, { events: count, calls: calls[type] ?? 0 }]));
}

/**
 * Queues `size` contact.created events while every API call fails (the Durable Object's alarm
 * attempts them, and retries them every second), until `size` creates have failed; then the API
 * recovers under its rate limit and the cron (every minute, as in production, the first at once)
 * and the Durable Object's alarms drain them: events per second from the recovery to the last
 * applied one, as a share of the limit, and the 429s seen.
 */
async function measureBacklog(world, size, c) {
  const control = simControl(world);
  await control("POST", "reset");
  await control("POST", "faults", { status: 503, count: null });
  const events = Array.from({ length: size }, (_, i) => ({
    n: i,
    type: "contact.created",
    data: { id: `sm_backlog_${i}`, name: `Backlog ${i}`, email: `backlog${i}@bench.test`, updated_at: "2026-11-27T10:00:00Z" },
  }));
  const accepted = await drive(webhooks(world.product.url, events, "backlog"), c);
  const failed = async () => ((await (await control("GET", "counts")).json())["POST /contacts/"] ?? 0) >= size;
  await waitFor(failed, { timeoutMs: 120_000 + size * 200, what: `${size} failed creates` });
  const cost = await statusCost(world);
  const before = await reading(world);
  await control("DELETE", "faults");
  await control("POST", "reset");
  await control("POST", "ratelimit", API_RATE);

  const cpuBefore = cpu(world.product.pids);
  const started = Date.now();
  const { crons, polls, stalled } = await drainWithCron(world, started, async () => {
    const status = await adminStatus(world);
    return { pending: status.pending, stalled: () => ({ pending: status.pending, seconds: (Date.now() - started) / 1000, status }) };
  });
  const cpuAfter = cpu(world.product.pids);
  const after = await reading(world);
  const requests = await (await control("GET", "requests")).json();
  const applied = requests.filter((r) => r.status >= 200 && r.status < 300);
  const lastAt = Math.max(...applied.map((r) => r.at));
  const seconds = (lastAt - started) / 1000;
  // The longest pause between two applied calls: where the drain left the limit unused.
  const times = applied.map((r) => r.at).sort((a, b) => a - b);
  const gaps = times.slice(1).map((at, i) => at - times[i]);
  const firstAppliedS = (times[0] - started) / 1000;
  // The steady rate: the pacing sends a window's calls in a burst, then waits for the window to
  // pass, so the rate is the calls sent before the last burst over the time from the first burst
  // to the last one (the first window after the recovery still holds the calls that failed
  // while the API was down, so counting from the recovery understates it).
  const { windows, steadyShare } = steady(times);
  return {
    firstAppliedS,
    windows,
    steadyShare,
    longestGapMs: gaps.length ? Math.max(...gaps) : NaN,
    gapsOver1s: gaps.filter((g) => g > 1000).length,
    size,
    acceptedStatuses: statusCounts(accepted.results),
    applied: applied.length,
    seconds,
    perSecond: applied.length / seconds,
    tooMany: requests.filter((r) => r.status === 429).length,
    requests: requests.length,
    crons,
    stalled,
    usage: usage(before, after, polls + 1, cost),
    cpu: cpuDelta(cpuBefore, cpuAfter, size),
  };
}

/**
 * The steady share of the limit of one location's applied calls (`times`, sorted): the pacing
 * sends a window's calls in a burst, then waits for the window to pass, so the rate is the calls
 * sent before the last burst over the time from the first burst to the last one (the first window
 * after the recovery still holds the calls that failed while the API was down, so counting from
 * the recovery understates it).
 */
function steady(times) {
  const burstStarts = times.filter((at, i) => i > 0 && at - times[i - 1] > 1000);
  const lastBurst = burstStarts.at(-1);
  const windows = burstStarts.length;
  const beforeLast = lastBurst === undefined ? 0 : times.filter((at) => at < lastBurst).length;
  const steadyShare = windows > 0 ? beforeLast / (((lastBurst - times[0]) / API_RATE.intervalMs) * API_RATE.max) : NaN;
  return { windows, steadyShare };
}

/**
 * The backlog of `size` contact.created events in each of `count` named connections at once
 * (created through the operator API, each with its own Private Integration Token and its own
 * location in the simulator, rate limited on its own), queued while every API call fails, then
 * drained together by the cron (which nudges every connection) and each location's alarms: each
 * location's steady share of its own limit and its 429s, and the aggregate events per second.
 */
async function measureBacklogs(world, size, count, c) {
  const control = simControl(world);
  await control("POST", "reset");
  const connections = [];
  for (let i = 0; i < count; i += 1) {
    const id = `loc-many-${i}`;
    const token = `pit-many-${i}-0123456789abcdef`;
    await control("POST", "tokens", { token, locationId: id });
    await control("POST", "locations", { locationId: id, allowDuplicates: false, rateLimit: API_RATE });
    const created = await admin(world, "POST", "/admin/connections", { id, token: { kind: "private_integration", token } });
    if (created.status !== 201) throw new Error(`creating ${id} answered ${created.status}: ${JSON.stringify(created.json)}`);
    connections.push({ id, secret: created.json.signing_secret });
  }
  await control("POST", "faults", { status: 503, count: null });
  const deliveries = connections.flatMap(({ id, secret }) =>
    Array.from({ length: size }, (_, i) => ({
      url: `${world.product.url}${WEBHOOK_PATH}/${id}`,
      init: signedDelivery(secret, null, {
        id: `msg_many_${id}_${i}`,
        rawBody: JSON.stringify(webhookBody({
          type: "contact.created",
          data: { id: `sm_many_${i}`, name: `Many ${i}`, email: `many${i}@bench.test`, updated_at: "2026-11-27T10:00:00Z" },
        })),
      }),
    })),
  );
  const accepted = await drive(deliveries, c);
  const failed = async () => ((await (await control("GET", "counts")).json())["POST /contacts/"] ?? 0) >= size * count;
  await waitFor(failed, { timeoutMs: 180_000 + size * count * 50, what: `${size * count} failed creates` });
  await control("DELETE", "faults");
  await control("POST", "reset");

  const started = Date.now();
  const { stalled } = await drainWithCron(world, started, async () => {
    const pending = await Promise.all(connections.map(async ({ id }) => (await admin(world, "GET", `/admin/connections/${id}/status`)).json.pending));
    return {
      pending: pending.reduce((a, b) => a + b, 0),
      stalled: () => ({ pending: Object.fromEntries(connections.map(({ id }, i) => [id, pending[i]])) }),
    };
  });
  const requests = await (await control("GET", "requests")).json();
  const perLocation = connections.map(({ id }) => {
    const mine = requests.filter((r) => r.route === "POST /contacts/" && r.body?.locationId === id);
    const times = mine.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.at).sort((a, b) => a - b);
    return { id, applied: times.length, tooMany: mine.filter((r) => r.status === 429).length, ...steady(times) };
  });
  const applied = perLocation.reduce((sum, l) => sum + l.applied, 0);
  const lastAt = Math.max(...requests.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.at));
  return {
    size,
    count,
    perLocation,
    applied,
    seconds: (lastAt - started) / 1000,
    perSecond: applied / ((lastAt - started) / 1000),
    tooMany: requests.filter((r) => r.status === 429).length,
    acceptedStatuses: statusCounts(accepted.results),
    stalled,
  };
}

/** The simulator's control interface: `control(method, path, body?)` answers the fetch's Response. */
function simControl(world) {
  return (method, path, body) =>
    fetch(`${world.sim}/__control/${path}`, {
      method,
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
}

/**
 * Drives a drain from `started`: the cron every minute (the first at once) while `poll()` says
 * what is pending (`{ pending, stalled() }`), every POLL_MS, until nothing is or nothing has
 * drained for STALL_MS (then `stalled` is what `stalled()` describes). Answers the cron runs, the
 * polls and `stalled` (null when it drained).
 */
async function drainWithCron(world, started, poll) {
  let crons = 0;
  let polls = 0;
  let lowest = Infinity;
  let since = started;
  let nextCron = started;
  for (;;) {
    if (Date.now() >= nextCron) {
      await runCron(world);
      crons += 1;
      nextCron += 60_000;
    }
    const { pending, stalled } = await poll();
    polls += 1;
    if (pending === 0) return { crons, polls, stalled: null };
    if (pending < lowest) {
      lowest = pending;
      since = Date.now();
    } else if (Date.now() - since > STALL_MS) {
      return { crons, polls, stalled: stalled() };
    }
    await sleep(POLL_MS);
  }
}

/** An operator API call: `{ status, json }`. */
async function admin(world, method, path, body) {
  const response = await fetch(`${world.product.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, json: await response.json() };
}

// ---- figures ------------------------------------------------------------------------------------

/** What one webhook costs, by billed quantity. */
function perWebhook(product, n) {
  const u = product.usage;
  return {
    worker_requests: 1,
    kv_get: u.kv.get / n,
    kv_put: u.kv.put / n,
    kv_delete: u.kv.delete / n,
    kv_list: u.kv.list / n,
    do_requests: u.doRequests / n,
    do_rows_read: u.rowsRead / n,
    do_rows_written: u.rowsWritten / n,
    do_gb_s: (u.awakeMs / 1000 / n) * DO_GB,
  };
}

/** What an idle day costs (24 idle hours; each cron run is a Workers request). */
function idleDay(idle) {
  const day = 24;
  return {
    worker_requests: IDLE_RUNS * day,
    kv_get: idle.kv.get * day,
    kv_put: idle.kv.put * day,
    kv_delete: idle.kv.delete * day,
    kv_list: idle.kv.list * day,
    do_requests: idle.doRequests * day,
    do_rows_read: idle.rowsRead * day,
    do_rows_written: idle.rowsWritten * day,
    do_gb_s: (idle.awakeMs / 1000) * day * DO_GB,
  };
}

/** Webhooks a day each Free-plan quota allows after the idle day; the first to bind. */
function freeCapacity(webhook, idle) {
  const rows = Object.entries(FREE).map(([key, { label, limit }]) => {
    const left = limit - idle[key];
    const each = webhook[key];
    const webhooks = left <= 0 ? 0 : each > 0 ? Math.floor(left / each) : Infinity;
    return { key, label, limit, idle: idle[key], each, webhooks };
  });
  const binding = rows.reduce((a, b) => (b.webhooks < a.webhooks ? b : a));
  return { rows, binding };
}

/** Dollars per million webhooks at list prices, marginal (no included allowances), by item. */
function costPerMillion(webhook) {
  const items = Object.entries(PRICES).map(([key, { label, perMillion }]) => ({ key, label, each: webhook[key], dollars: webhook[key] * perMillion }));
  return { items, total: items.reduce((sum, item) => sum + item.dollars, 0) };
}

// ---- printing -----------------------------------------------------------------------------------

function say(line) {
  console.log(`bench: ${line}`);
}

function f1(x) {
  return Number.isFinite(x) ? x.toFixed(1) : String(x);
}

function f2(x) {
  return Number.isFinite(x) ? x.toFixed(2) : String(x);
}

function f3(x) {
  return Number.isFinite(x) ? x.toFixed(3) : String(x);
}

function int(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : x === Infinity ? "unbounded" : String(x);
}

function verdict(ok) {
  return ok ? "meets" : "MISSES";
}

function kvLine(kv, scale = 1, digits = f2) {
  return KV_OPS.map((op) => `${op} ${digits(kv[op] * scale)}`).join(", ");
}

function report({ n, c, upload, floor, product, idle, drain, many, kv }) {
  const row = (label, productValue, floorValue = "-") => `  ${label.padEnd(50)} ${String(productValue).padEnd(30)} ${floorValue}`;
  const u = product.usage;
  const webhook = perWebhook(product, n);
  const day = idleDay(idle);
  const capacity = freeCapacity(webhook, day);
  const cost = costPerMillion(webhook);
  const paths = product.paths;
  const pathLine = (p) => `${f2(p.cpu)} ms; KV ${kvLine(p.kv)}; DO requests ${f2(p.doRequests)}; ${JSON.stringify(p.statuses)}`;
  const kvWrites = webhook.kv_put + webhook.kv_delete;
  const idleWrites = idle.kv.put + idle.kv.delete + idle.kv.list;
  const ackRatio = product.ack.p99 / floor.ack.p99;
  const lines = [
    "",
    `machine: ${describeMachine()}`,
    upload ? `upload (wrangler deploy --dry-run): ${upload.raw} KiB, gzip ${upload.gzip} KiB` : "upload: not built (--no-build)",
    `load: ${n} signed webhooks of every event type, concurrency ${c}; wrangler dev (workerd ${workerdVersion()}), ${kv === "memory" ? "in-memory KV stub, counted (--kv memory)" : "simulated KV, counted (--kv counted)"}`,
    `settings: ${Object.entries(SETTINGS).map(([k, v]) => `${k}=${k === "RETRY_SCHEDULE" ? "1s x24" : v}`).join(", ")}; the load ran with no cron (alarms only)`,
    "",
    "per webhook:",
    row("", "product", "ok worker (floor)"),
    row("acknowledgement p50 / p95 / p99 (ms)", `${f1(product.ack.p50)} / ${f1(product.ack.p95)} / ${f1(product.ack.p99)}`, `${f1(floor.ack.p50)} / ${f1(floor.ack.p95)} / ${f1(floor.ack.p99)}`),
    row("webhooks per second (acknowledged)", f1(product.ack.perSecond), f1(floor.ack.perSecond)),
    row("answers", JSON.stringify(product.ack.statuses), JSON.stringify(floor.ack.statuses)),
    row("worker CPU per webhook (ms, workerd runner)", f2(product.cpu.runner), f2(floor.cpu.runner)),
    row("  beside it: workerd proxy / wrangler node", `${f2(product.cpu.proxy)} / ${f2(product.cpu.node)}`, `${f2(floor.cpu.proxy)} / ${f2(floor.cpu.node)}`),
    row("webhook to applied p50 / p99 / max (ms)", `${f1(product.applied.p50)} / ${f1(product.applied.p99)} / ${f1(product.applied.max)}`),
    row("  finished / drained after the last ack", `${product.applied.finished} of ${n} / ${f1(product.drainMs / 1000)} s`),
    row("KV operations per webhook", kvLine(u.kv, 1 / n)),
    row("Durable Object requests per webhook", `${f2(webhook.do_requests)} (alarms ${f2(u.alarms / n)})`),
    row("Durable Object rows written / read per webhook", `${f2(webhook.do_rows_written)} / ${f2(webhook.do_rows_read)}`),
    row("Durable Object awake per webhook (ms)", f2(u.awakeMs / n)),
    row("Contacts API calls per webhook (counters)", `${f2((u.counters.api_calls ?? 0) / n)}, 429s ${u.counters.api_429 ?? 0}`),
    `  Contacts API calls per event: ${Object.entries(product.calls).map(([type, v]) => `${type} ${f2(v.calls / v.events)}`).join(", ")}`,
    `  status calls excluded: ${u.statusCalls}, each ${f2(u.statusCost.requests)} request, ${f1(u.statusCost.rows_read)} rows read, ${f1(u.statusCost.rows_written)} written, KV ${kvLine(u.statusCost.kv)} (measured as the difference of two status calls in a row before and after the load, averaged)`,
    ...(u.started ? [`  NOTE: the Durable Object restarted ${u.started} time(s) during the load: its requests are the wrapper's count and its rows are unknown`] : []),
    ...(product.drained.drained ? [] : [`  STALLED: with alarms only, ${product.drained.pending} webhooks stayed pending for ${STALL_MS / 1000} s (status: ${JSON.stringify(product.drained.status)}); the cron then ran every second and the drain ${product.rescued?.drained ? "ended" : "still stalled"}; the figures above include those cron runs`]),
    row("  refused webhook (bad signature)", pathLine(paths.refused)),
    row("  redelivery of a finished webhook", pathLine(paths.replayed)),
    row("  read of an unmapped contact", pathLine(paths.read)),
    "",
    `per idle hour (${IDLE_RUNS} cron runs, nothing pending; less 1 status call):`,
    `  KV operations: per hour ${kvLine(idle.kv, 1, int)}; per day ${kvLine(idle.kv, 24, int)}`,
    `  Durable Object requests: per hour ${int(idle.doRequests)} (alarms ${idle.alarms}); per day ${int(idle.doRequests * 24)}`,
    `  Durable Object rows written: per hour ${int(idle.rowsWritten)}; per day ${int(idle.rowsWritten * 24)}; rows read: per hour ${int(idle.rowsRead)}; per day ${int(idle.rowsRead * 24)}`,
    `  Durable Object awake: ${f1(idle.awakeMs)} ms per hour; Contacts API calls ${idle.counters.api_calls ?? 0}`,
    ...(idle.started ? [`  NOTE: the Durable Object restarted ${idle.started} time(s) during the idle hour`] : []),
    ...(idle.named ? idleNamedLines(idle.named) : []),
    "",
    "Free plan, webhooks a day before each quota binds (after the idle day's own usage):",
    ...capacity.rows.map((r) => `  ${r.label.padEnd(44)} ${int(r.limit).padStart(10)} a day; idle day ${int(r.idle).padStart(8)}; per webhook ${f3(r.each).padStart(8)} -> ${int(r.webhooks)}`),
    `  binds first: ${capacity.binding.label}, at ${int(capacity.binding.webhooks)} webhooks a day`,
    "",
    "cost per million webhooks at list prices (Workers Paid, marginal: included allowances ignored):",
    ...cost.items.map((i) => `  ${i.label.padEnd(44)} ${f3(i.key === "do_gb_s" ? i.each * 1e6 : i.each).padStart(10)} ${i.key === "do_gb_s" ? "GB-s per million" : "per webhook"}  $${f2(i.dollars)}`),
    `  total $${f2(cost.total)} per million webhooks (duration is an estimate: the Durable Object's awake wall time, fetches and alarms under way, at ${DO_GB * 1000} MB; production may keep it billed a little longer)`,
    `  an idle day: $${f3(costPerMillion(day).total / 1e6)} (${IDLE_RUNS * 24} cron runs)`,
    "",
    drain ? backlogLine(drain) : "backlog: not measured (--no-backlog)",
    ...(many ? manyLines(many, drain) : []),
    "",
    "targets:",
    `  KV writes (put + delete) per webhook <= 1: ${f2(kvWrites)} -> ${verdict(kvWrites <= 1)}`,
    `  KV writes, deletes and lists per idle hour = 0: put ${idle.kv.put}, delete ${idle.kv.delete}, list ${idle.kv.list} -> ${verdict(idleWrites === 0)}`,
    drain
      ? `  backlog >= 97% of the rate limit, 0 429s: ${f1(drain.steadyShare * 100)}% steady, over ${drain.windows} windows from the first burst to the last (${f1(drain.perSecond * 10)}% counted from the recovery), ${drain.tooMany} -> ${verdict(drain.steadyShare >= 0.97 && drain.tooMany === 0 && !drain.stalled)}`
      : "  backlog: not measured",
    ...(many
      ? [`  each of ${many.count} locations >= 97% of its own limit, 0 429s: ${many.perLocation.filter((l) => l.steadyShare >= 0.97 && l.tooMany === 0).length} of ${many.count} (lowest ${f1(Math.min(...many.perLocation.map((l) => l.steadyShare)) * 100)}%, 429s ${many.tooMany}) -> ${verdict(many.perLocation.every((l) => l.steadyShare >= 0.97 && l.tooMany === 0) && !many.stalled)}`]
      : []),
    `  Durable Object rows read per webhook <= 20: ${f2(webhook.do_rows_read)} -> ${verdict(webhook.do_rows_read <= 20)}`,
    `  Durable Object rows written per webhook <= 6: ${f2(webhook.do_rows_written)} -> ${verdict(webhook.do_rows_written <= 6)}`,
    ...(drain ? [`  backlog rows read per event <= 20: ${f2(drain.usage.rowsRead / drain.size)} -> ${verdict(drain.usage.rowsRead / drain.size <= 20)}`] : []),
    `  acknowledgement p99 <= 2 x the floor's: ${f1(product.ack.p99)} ms vs ${f1(2 * floor.ack.p99)} ms (${f2(ackRatio)} x) -> ${verdict(ackRatio <= 2)}`,
    `  webhook to applied p99 reported: ${f1(product.applied.p99)} ms (${product.applied.finished} of ${n} finished)`,
    upload ? `  upload <= 512 KiB gzip: ${upload.gzip} KiB -> ${verdict(upload.gzip <= 512)}` : "  upload <= 512 KiB gzip: not measured (--no-build)",
    ...perfLines(product),
  ];
  console.log(lines.join("\n"));
}

function idleNamedLines(named) {
  return [
    `per idle hour with named connections (${IDLE_RUNS} cron runs; each connection sent one webhook, applied, before; rows: the default location's, the Directory's and every named location's, less the bench's status calls):`,
    `  ${"connections".padEnd(12)} ${"DO requests per cron run (Directory + Locations)".padEnd(50)} ${"KV operations per hour".padEnd(40)} DO rows read / written per hour`,
    ...named.map((r) => `  ${String(r.count).padEnd(12)} ${`${f2(r.perCron.directory + r.perCron.locations)} (${f2(r.perCron.directory)} + ${f2(r.perCron.locations)})`.padEnd(50)} ${kvLine(r.kv, 1, int).padEnd(40)} ${int(r.rowsRead)} / ${int(r.rowsWritten)}`
      + `; work record ${r.recorded} row(s), ${r.due} due${r.started ? `; NOTE: ${r.started} Location instance(s) started` : ""}`),
  ];
}

function manyLines(many, drain) {
  return [
    `backlog in ${many.count} locations at once: ${many.applied} of ${many.size * many.count} events applied in ${f1(many.seconds)} s after the API recovered: ${f2(many.perSecond)} events/s in all (${drain ? `one location alone: ${f2(drain.perSecond)} events/s, ${f2(many.perSecond / drain.perSecond)} x` : "one location alone: not measured"}); 429s seen: ${many.tooMany}; acknowledged while the API was down: ${JSON.stringify(many.acceptedStatuses)}`,
    ...many.perLocation.map((l) => `  ${l.id.padEnd(14)} ${String(l.applied).padStart(5)} applied, ${f1(l.steadyShare * 100).padStart(5)}% of its own limit over ${l.windows} windows, 429s ${l.tooMany}`),
    ...(many.stalled ? [`  STALLED: pending ${JSON.stringify(many.stalled.pending)}`] : []),
  ];
}

function backlogLine(drain) {
  const u = drain.usage;
  const lines = [
    `backlog: ${drain.applied} of ${drain.size} events applied in ${f1(drain.seconds)} s after the API recovered: ${f2(drain.perSecond)} events/s against the 10 requests/s the API allows (${f1(drain.perSecond * 10)}%); 429s seen: ${drain.tooMany} (the location's api_429 counter: ${u.counters.api_429 ?? 0})`,
    `  ${drain.requests} API requests, ${drain.crons} cron run(s) (every minute), ${u.alarms} alarm(s); Durable Object requests ${int(u.doRequests)} (${f2(u.doRequests / drain.size)} per event), rows written ${f2(u.rowsWritten / drain.size)} / read ${f2(u.rowsRead / drain.size)} per event; KV ${kvLine(u.kv, 1 / drain.size)} per event; worker CPU ${f2(drain.cpu.runner)} ms per event`,
    `  first applied ${f1(drain.firstAppliedS)} s after the recovery; longest pause between applied calls ${int(drain.longestGapMs)} ms, ${drain.gapsOver1s} pause(s) over 1 s; acknowledged while the API was down: ${JSON.stringify(drain.acceptedStatuses)}`,
  ];
  if (drain.stalled) lines.push(`  STALLED: ${drain.stalled.pending} pending did not fall for ${STALL_MS / 1000} s (at ${f1(drain.stalled.seconds)} s; status: ${JSON.stringify(drain.stalled.status)})`);
  if (u.started) lines.push(`  NOTE: the Durable Object restarted ${u.started} time(s) during the drain`);
  return lines.join("\n");
}

/** The --perf summary: the runner's CPU per webhook split by where perf saw it. */
function perfLines(product) {
  if (!product.perf) return [];
  const perWebhookMs = product.cpu.runner;
  const lines = ["", `where the runner's ${f2(perWebhookMs)} ms per webhook went (perf, ${product.perf.samples} samples; .bench/product.perf.data):`];
  for (const { name, share } of product.perf.categories) lines.push(`  ${name.padEnd(46)} ${f2(share * perWebhookMs).padStart(6)} ms  ${f1(share * 100).padStart(5)}%`);
  lines.push("top symbols:");
  for (const { sym, dso, share } of product.perf.symbols.slice(0, 20)) lines.push(`  ${f1(share * 100).padStart(5)}%  ${f2(share * perWebhookMs)} ms  ${sym.slice(0, 90)}  (${dso})`);
  return lines;
}

function workerdVersion() {
  try {
    return execFileSync("node_modules/.bin/workerd", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}
