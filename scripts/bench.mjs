#!/usr/bin/env node
// The benchmark (not part of the pass/fail tests): builds the release Wasm, starts the Contacts API
// simulator and two `wrangler dev` workers (the product, and an "ok" worker that is the runtime's
// own floor), drives the same N signed webhooks at concurrency C through each, and prints the
// product's figures beside the floor's: upload size, acknowledgement latency, webhooks per second,
// worker CPU per webhook (read from /proc for the workerd process that runs each worker, apart
// from the workerd proxy and wrangler's node process), time from webhook to applied, Contacts API
// calls per event type, and the drain of a backlog of BACKLOG events for one location under the
// API's rate limit (100 requests per 10 s). Stops every process it started, even on failure.
// --perf also samples the product's workerd runner with Linux `perf` during the load and prints
// where its CPU goes per webhook (JIT code, V8 builtins, GC, SQLite behind the simulated KV, the
// kernel, ...; tests/support/perf.mjs), keeping .bench/product.perf.data for `perf report -i`.
// --no-backlog skips the backlog drain. --kv memory runs the product on an in-memory KV stub in its
// own isolate (tests/bench/memkv-worker.js) instead of the simulated KV, to show its CPU without it.
//
//   node scripts/bench.mjs [N=2000] [C=16] [--backlog 1000] [--seed 1] [--no-build] [--perf] [--no-backlog]
//                          [--kv simulated|memory]

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
/** The calls per 10 s a cron run allows itself: the shipped default. */
const RATE_PER_10S = 90;
/** The API's limit the backlog drains against: 100 requests per 10 s per location. */
const API_RATE = { max: 100, intervalMs: 10_000 };

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
      kv: { type: "string", default: "simulated" },
    },
  });
  const [n = 2000, c = 16] = positionals.map(Number);
  const parsed = {
    n, c, backlog: Number(values.backlog), seed: Number(values.seed), build: !values["no-build"],
    perf: values.perf, drain: !values["no-backlog"], kv: values.kv,
  };
  if (!["simulated", "memory"].includes(parsed.kv)) {
    console.error("bench: --kv is simulated or memory");
    process.exit(2);
  }
  if (parsed.perf && !havePerf()) {
    console.error("bench: --perf needs Linux perf on the PATH");
    process.exit(2);
  }
  if (![n, c, parsed.backlog, parsed.seed].every((v) => Number.isInteger(v) && v > 0) || n < 10) {
    console.error("usage: node scripts/bench.mjs [N>=10] [C] [--backlog B] [--seed S] [--no-build]");
    process.exit(2);
  }
  return parsed;
}

async function stopAll() {
  await Promise.all(groups.splice(0).map((group) => stopGroup(group)));
}

async function main({ n, c, backlog, seed, build, perf, drain: withDrain, kv }) {
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
  product.paths = await measurePaths(world, events, c);
  let drain = null;
  if (withDrain) {
    say(`backlog: ${backlog} events for one location, drained by the cron against ${API_RATE.max} requests per ${API_RATE.intervalMs / 1000} s`);
    drain = await measureBacklog(world, backlog, c);
  }
  report({ n, c, upload, floor, product, drain, kv });
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

/** A wrangler config without a [build] step, on the prebuilt build/, and the product's settings. */
function writeProductConfig(sim, kv) {
  writeFileSync(
    `${DIR}/product.toml`,
    [
      "# Written by scripts/bench.mjs: the product on the prebuilt build/, no [build] step.",
      'name = "sightmill-sync-bench"',
      kv === "memory" ? 'main = "../tests/bench/memkv-worker.js"' : 'main = "../build/index.js"',
      'compatibility_date = "2026-04-26"',
      "[[kv_namespaces]]",
      'binding = "SYNC_KV"',
      'id = "00000000000000000000000000000000"',
      "",
    ].join("\n"),
  );
  const settings = {
    GHL_LOCATION_ID: LOCATION,
    CONTACTS_API_BASE: sim,
    WEBHOOK_SECRETS: SECRET,
    CONTACTS_API_TOKEN: TOKEN,
    ADMIN_API_KEYS: ADMIN_KEY,
    READ_API_KEYS: READ_KEY,
    RETRY_SCHEDULE: "1s,5s,30s,5m",
    CRON_MAX_API_CALLS: "1000",
    CRON_TIME_BUDGET_MS: "240000",
    RATE_LIMIT_PER_10S: String(RATE_PER_10S),
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
  await withCron(world, async () => {
    await drive(webhooks(world.product.url, warm, "warm"), c);
    await untilDrained(world, 60_000);
  });
}

/** Signed deliveries of `events` to `base`, with webhook ids unique to `tag`. */
function webhooks(base, events, tag) {
  return events.map((event) => ({
    url: `${base}${WEBHOOK_PATH}`,
    init: signedDelivery(SECRET, null, { id: `msg_${tag}_${event.n}`, rawBody: JSON.stringify(webhookBody(event)) }),
  }));
}

// ---- measuring ----------------------------------------------------------------------------------

/** CPU (ms) of a wrangler group's runner, proxy and node. */
function cpu(pids) {
  return Object.fromEntries(Object.entries(pids).map(([role, pid]) => [role, cpuMs(pid)]));
}

/** CPU per item (ms) between two readings of `cpu`. */
function cpuDelta(before, after, count) {
  return Object.fromEntries(Object.keys(before).map((role) => [role, (after[role] - before[role]) / count]));
}

async function measureFloor(world, events, c) {
  const before = cpu(world.floor.pids);
  const { results, elapsedMs } = await drive(webhooks(world.floor.url, events, "floor"), c);
  const after = cpu(world.floor.pids);
  return { ack: ackFigures(results, elapsedMs), cpu: cpuDelta(before, after, events.length) };
}

/**
 * The runner's CPU for three cheap paths of the product, to show where a webhook's CPU goes: a
 * delivery refused for its signature (no KV at all), a redelivery of a finished webhook (answered
 * from one KV read), and a read through the read API (one outbound fetch, no KV).
 */
async function measurePaths(world, events, c) {
  const sample = events.slice(0, Math.min(events.length, 500));
  const refused = webhooks(world.product.url, sample, "load").map(({ url, init }) => ({
    url,
    init: { ...init, headers: { ...init.headers, "webhook-signature": "v1,AAAA" } },
  }));
  const replayed = webhooks(world.product.url, sample, "load");
  const perRequest = async (requests) => {
    const before = cpu(world.product.pids);
    await drive(requests, c);
    return cpuDelta(before, cpu(world.product.pids), requests.length).runner;
  };
  const reads = sample.map(() => ({
    url: `${world.product.url}/contacts/nobody`,
    init: { headers: { authorization: `Bearer ${READ_KEY}` } },
  }));
  return { refused: await perRequest(refused), replayed: await perRequest(replayed), read: await perRequest(reads) };
}

async function measureProduct(world, events, c, perf) {
  const logStart = statSync(world.product.log).size;
  const recording = perf ? await startPerf(world.product.pids.runner, resolve(DIR, "product.perf.data")) : null;
  const before = cpu(world.product.pids);
  const kvBefore = await kvOps(world);
  const { results, elapsedMs } = await withCron(world, async () => {
    const driven = await drive(webhooks(world.product.url, events, "load"), c);
    await untilDrained(world, 120_000);
    return driven;
  });
  const after = cpu(world.product.pids);
  const kvAfter = await kvOps(world);
  await recording?.stop();
  const applied = await appliedLatencies(world, events, results, c);
  return {
    perf: recording ? summarizePerf(resolve(DIR, "product.perf.data")) : null,
    ack: ackFigures(results, elapsedMs),
    cpu: cpuDelta(before, after, events.length),
    kvOps: kvBefore && kvAfter ? cpuDelta(kvBefore, kvAfter, events.length) : null,
    applied,
    calls: callsByType(world.product.log, logStart, events, "load"),
  };
}

/** The in-memory KV stub's operation counts (`--kv memory` only; `null` on the simulated KV). */
async function kvOps(world) {
  if (world.kv !== "memory") return null;
  return (await fetch(`${world.product.url}/__bench/kv-ops`)).json();
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
 * Runs the cron every second (production: every minute) until stopped, for at most 15 minutes,
 * or until the worker is gone.
 */
function cronLoop(world) {
  const loop = { stopped: false };
  const deadline = Date.now() + 15 * 60_000;
  loop.stop = () => (loop.stopped = true);
  loop.done = (async () => {
    while (!loop.stopped && Date.now() < deadline) {
      try {
        await runCron(world);
      } catch {
        return;
      }
      await sleep(1000);
    }
  })();
  return loop;
}

/** Runs `work` with the cron loop beside it. */
async function withCron(world, work) {
  const cron = cronLoop(world);
  try {
    return await work();
  } finally {
    cron.stop();
    await cron.done;
  }
}

async function runCron(world) {
  const response = await fetch(`${world.product.url}/__scheduled?cron=${encodeURIComponent("* * * * *")}`);
  await response.arrayBuffer();
}

async function adminStatus(world) {
  const response = await fetch(`${world.product.url}/admin/status`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  return response.json();
}

/** Waits until no webhook is pending, polling the operator API every 500 ms. */
async function untilDrained(world, timeoutMs) {
  await waitFor(async () => (await adminStatus(world)).pending === 0, { timeoutMs, what: "an empty queue" });
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
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), finished: ms.length };
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
 * Queues `size` contact.created events while every API call fails, then lets the cron drain them
 * under the API's rate limit: events per second and 429s seen.
 */
async function measureBacklog(world, size, c) {
  const control = (method, path, body) =>
    fetch(`${world.sim}/__control/${path}`, {
      method,
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  await control("POST", "reset");
  await control("POST", "faults", { status: 503, count: null });
  const events = Array.from({ length: size }, (_, i) => ({
    n: i,
    type: "contact.created",
    data: { id: `sm_backlog_${i}`, name: `Backlog ${i}`, email: `backlog${i}@bench.test`, updated_at: "2026-11-27T10:00:00Z" },
  }));
  await drive(webhooks(world.product.url, events, "backlog"), c);
  const failedFirst = async () => ((await (await control("GET", "counts")).json())["POST /contacts/"] ?? 0) >= size;
  await waitFor(failedFirst, { timeoutMs: 120_000, what: "the failed first attempts" });
  await sleep(2000); // their records rewritten, and due (the first retry is 1 s later)
  await control("DELETE", "faults");
  await control("POST", "reset");
  await control("POST", "ratelimit", API_RATE);

  const before = cpu(world.product.pids);
  const started = Date.now();
  let runs = 0;
  while (Date.now() - started < 15 * 60_000) {
    await runCron(world);
    runs += 1;
    if ((await adminStatus(world)).pending === 0) break;
  }
  const after = cpu(world.product.pids);
  const requests = await (await control("GET", "requests")).json();
  const applied = requests.filter((r) => r.status >= 200 && r.status < 300);
  const lastAt = Math.max(...applied.map((r) => r.at));
  const seconds = (lastAt - started) / 1000;
  return {
    size,
    applied: applied.length,
    seconds,
    perSecond: applied.length / seconds,
    tooMany: requests.filter((r) => r.status === 429).length,
    runs,
    cpu: cpuDelta(before, after, size),
  };
}

// ---- printing -----------------------------------------------------------------------------------

function say(line) {
  console.log(`bench: ${line}`);
}

function f1(x) {
  return x.toFixed(1);
}

function f2(x) {
  return x.toFixed(2);
}

function verdict(ok) {
  return ok ? "meets" : "MISSES";
}

function report({ n, c, upload, floor, product, drain, kv }) {
  const row = (label, productValue, floorValue) => `  ${label.padEnd(40)} ${String(productValue).padEnd(22)} ${floorValue}`;
  const contactEvents = Object.entries(product.calls).filter(([type]) => type.startsWith("contact."));
  const perContactEvent = contactEvents.map(([, v]) => Number(f2(v.calls / v.events)));
  const lines = [
    "",
    `machine: ${describeMachine()}`,
    upload ? `upload (wrangler deploy --dry-run): ${upload.raw} KiB, gzip ${upload.gzip} KiB` : "upload: not built (--no-build)",
    `load: ${n} signed webhooks of every event type, concurrency ${c}; wrangler dev (workerd ${workerdVersion()}), ${kv === "memory" ? "in-memory KV stub (--kv memory)" : "simulated KV"}`,
    "",
    row("", "product", "ok worker (floor)"),
    row("acknowledgement p50 / p95 / p99 (ms)", `${f1(product.ack.p50)} / ${f1(product.ack.p95)} / ${f1(product.ack.p99)}`, `${f1(floor.ack.p50)} / ${f1(floor.ack.p95)} / ${f1(floor.ack.p99)}`),
    row("webhooks per second", f1(product.ack.perSecond), f1(floor.ack.perSecond)),
    row("answers", JSON.stringify(product.ack.statuses), JSON.stringify(floor.ack.statuses)),
    row("worker CPU per webhook (ms, workerd runner)", f2(product.cpu.runner), f2(floor.cpu.runner)),
    row("  beside it: workerd proxy / wrangler node", `${f2(product.cpu.proxy)} / ${f2(product.cpu.node)}`, `${f2(floor.cpu.proxy)} / ${f2(floor.cpu.node)}`),
    row("  refused webhook / replay (1 KV read) / read (1 fetch)", `${f2(product.paths.refused)} / ${f2(product.paths.replayed)} / ${f2(product.paths.read)}`, "-"),
    row("webhook to applied p50 / p99 (ms)", `${f1(product.applied.p50)} / ${f1(product.applied.p99)}`, "-"),
    row("KV operations per webhook (cron included)", product.kvOps ? ["get", "put", "delete", "list"].map((op) => `${op} ${f2(product.kvOps[op])}`).join(", ") : "counted with --kv memory", "-"),
    "",
    `Contacts API calls per event: ${Object.entries(product.calls).map(([type, v]) => `${type} ${f2(v.calls / v.events)}`).join(", ")}`,
    drain ? `backlog: ${drain.applied} of ${drain.size} events applied in ${f1(drain.seconds)} s by ${drain.runs} cron run(s): ${f2(drain.perSecond)} events/s against the 10 requests/s the API allows (${f2(drain.perSecond * 10)}%), 429s seen: ${drain.tooMany}; worker CPU ${f2(drain.cpu.runner)} ms per event` : "backlog: not measured (--no-backlog)",
    "",
    "targets:",
    upload ? `  upload <= 200 KiB gzip: ${upload.gzip} KiB -> ${verdict(upload.gzip <= 200)}` : "  upload: not measured",
    `  worker CPU per webhook <= 2 ms: ${f2(product.cpu.runner)} ms -> ${verdict(product.cpu.runner <= 2)}${kv === "memory" ? " (in-memory KV stub: no KV CPU)" : ` (a simulated KV read costs ~${f2(product.paths.replayed - product.paths.refused)} ms here; count the operations with --kv memory)`}`,
    `  acknowledgement p99 <= 3 x the floor's: ${f1(product.ack.p99)} ms vs ${f1(3 * floor.ack.p99)} ms -> ${verdict(product.ack.p99 <= 3 * floor.ack.p99)}`,
    `  one API call per contact event: ${contactEvents.map(([type, v]) => `${type} ${f2(v.calls / v.events)}`).join(", ")} -> ${verdict(perContactEvent.every((x) => x <= 1))}`,
    drain
      ? `  backlog >= 90% of the rate limit, no 429s: ${f2(drain.perSecond * 10)}%, ${drain.tooMany} -> ${verdict(drain.perSecond >= 9 && drain.tooMany === 0)} (RATE_LIMIT_PER_10S=${RATE_PER_10S}: a long drain tends to ${RATE_PER_10S}%)`
      : "  backlog: not measured",
    ...perfLines(product),
  ];
  console.log(lines.join("\n"));
}

/** The --perf summary: the runner's CPU per webhook split by where perf saw it. */
function perfLines(product) {
  if (!product.perf) return [];
  const perWebhook = product.cpu.runner;
  const lines = ["", `where the runner's ${f2(perWebhook)} ms per webhook went (perf, ${product.perf.samples} samples; .bench/product.perf.data):`];
  for (const { name, share } of product.perf.categories) lines.push(`  ${name.padEnd(46)} ${f2(share * perWebhook).padStart(6)} ms  ${f1(share * 100).padStart(5)}%`);
  lines.push("top symbols:");
  for (const { sym, dso, share } of product.perf.symbols.slice(0, 20)) lines.push(`  ${f1(share * 100).padStart(5)}%  ${f2(share * perWebhook)} ms  ${sym.slice(0, 90)}  (${dso})`);
  return lines;
}

function workerdVersion() {
  try {
    return execFileSync("node_modules/.bin/workerd", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}
