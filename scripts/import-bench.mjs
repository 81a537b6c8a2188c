#!/usr/bin/env node
// The import benchmark (issue 23; not a pass/fail test: it prints figures beside their targets):
// builds the release Wasm (scripts/build.sh), starts the Contacts API simulator in this process
// (so that its request log is read without copying) and the product under `wrangler dev` on the
// counting wrapper (tests/bench/memkv-worker.js, as scripts/bench.mjs runs it), then
//   1. live traffic alone for a while (signed contact.updated and note.created webhooks at
//      --live-rate a second, for contacts made first): its Contacts API calls a second and its
//      Durable Object rows per webhook;
//   2. uploads a CSV of N contacts (POST /admin/imports) while the same live traffic goes on, and
//      waits for the import to end (GET /admin/imports/{id} every POLL_MS, the cron every minute
//      as in production): the upload time; the drain rate (the import's calls a second) as a share
//      of what the live traffic left of the rate limit; the 429s the API answered; Durable Object
//      rows read and written per imported record (less the live traffic's own, measured in 1, and
//      the bench's own calls); the live webhooks' time to applied while the import ran; the
//      workerd runner's peak resident memory (from /proc: every isolate of the product and its
//      SQLite, an upper bound of the isolate's own);
//   3. the same file again: its Contacts API calls (target 0) and how long it took.
// The API's limit is raised for the bench so that 100,000 records finish in reasonable time:
// --rate calls per 10 s (default 1000, the most RATE_LIMIT_PER_10S allows) for the location in
// the simulator and RATE_LIMIT_PER_10S in the product alike; production's API allows 100.
// Stops every process it started, even on failure.
//
//   node scripts/import-bench.mjs [N=100000] [--live-rate 5] [--rate 1000] [--live-secs 30] [--no-build]

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { percentile } from "../tests/support/load.mjs";
import { describeMachine } from "../tests/support/machine.mjs";
import { freePort, sleep, startGroup, stopGroup, waitFor, wranglerProcesses } from "../tests/support/procs.mjs";
import { signedDelivery } from "../tests/support/webhooks.mjs";
import { startSimulator } from "../tests/simulator/server.mjs";

const DIR = ".bench-import";
const LOCATION = "loc-bench";
const TOKEN = "pit-bench-0123456789abcdef";
const SECRET = `whsec_${Buffer.from("sightmill-bench-signing-key-32by").toString("base64")}`;
const ADMIN_KEY = "admin-bench-0123456789abcdef";
const WEBHOOK_PATH = "/webhooks/sightmill";
const WRANGLER = "node_modules/.bin/wrangler";
/** Live contacts the live traffic is about (made before the import). */
const LIVE_CONTACTS = 50;
/** How often the bench reads the import's progress, and gives up when `done` has not moved. */
const POLL_MS = 2000;
const STALL_MS = 120_000;
/** List routes a mapping reads: not contact calls. */
const LIST_ROUTES = new Set(["GET /locations/:locationId/customFields", "GET /workflows/", "GET /campaigns/"]);

const groups = [];
let sim = null;
process.once("SIGINT", () => stopAll().then(() => process.exit(130)));
process.once("SIGTERM", () => stopAll().then(() => process.exit(143)));

const options = parseOptions();
try {
  await main(options);
} catch (error) {
  console.error(`import-bench: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}

function parseOptions() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      "live-rate": { type: "string", default: "5" },
      rate: { type: "string", default: "1000" },
      "live-secs": { type: "string", default: "30" },
      "no-build": { type: "boolean", default: false },
    },
  });
  const n = Number(positionals[0] ?? 100_000);
  const parsed = { n, liveRate: Number(values["live-rate"]), rate: Number(values.rate), liveSecs: Number(values["live-secs"]), build: !values["no-build"] };
  if (![n, parsed.rate, parsed.liveSecs].every((v) => Number.isInteger(v) && v > 0) || !(parsed.liveRate >= 0) || parsed.rate > 1000 || n < 10) {
    console.error("usage: node scripts/import-bench.mjs [N>=10] [--live-rate R] [--rate CALLS_PER_10S<=1000] [--live-secs S] [--no-build]");
    process.exit(2);
  }
  return parsed;
}

async function stopAll() {
  await Promise.all(groups.splice(0).map((group) => stopGroup(group)));
  await sim?.close().catch(() => {});
  sim = null;
}

async function main({ n, liveRate, rate, liveSecs, build }) {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const startedAt = new Date();
  say(`machine: ${describeMachine()}`);
  if (build) {
    say("building (scripts/build.sh)");
    execFileSync("bash", ["scripts/build.sh"], { stdio: ["ignore", "ignore", "inherit"] });
  }
  const world = await startWorld(rate);
  const live = liveTraffic(world, liveRate);

  say(`live contacts: ${LIVE_CONTACTS} made through webhooks`);
  await live.makeContacts();

  say(`live traffic alone for ${liveSecs} s at ${liveRate} webhooks/s`);
  const alone = await measureLiveAlone(world, live, liveSecs);

  const file = contactsCsv(n);
  writeFileSync(`${DIR}/contacts.csv`, file);
  say(`import: ${n} contacts (${(file.length / 1024 / 1024).toFixed(1)} MB CSV) while live traffic runs at ${liveRate}/s`);
  const first = await measureImport(world, live, file, { withLive: true });

  say("the same file again");
  const again = await measureImport(world, live, file, { withLive: false });

  report({ n, liveRate, rate, liveSecs, alone, first, again, startedAt });
}

// ---- setting up ---------------------------------------------------------------------------------

async function startWorld(rate) {
  sim = await startSimulator({
    tokens: { [TOKEN]: LOCATION },
    locations: { [LOCATION]: { allowDuplicates: false, rateLimit: { max: rate, intervalMs: 10_000, daily: 10_000_000 } } },
  });
  const port = await freePort();
  writeProductConfig(sim.url, rate);
  const group = startGroup(
    WRANGLER,
    ["dev", "--config", `${DIR}/product.toml`, "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0",
      "--show-interactive-dev-session=false", "--persist-to", `${DIR}/state`, "--test-scheduled",
      "--env-file", resolve(DIR, "product.env")],
    { logFile: `${DIR}/wrangler.log`, env: { WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" } },
  );
  groups.push(group);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(() => fetch(`${url}/healthz`).then((r) => r.ok), { timeoutMs: 60_000, what: "the product worker", group });
  return { url, rate, pids: wranglerProcesses(group.pid) };
}

function writeProductConfig(simUrl, rate) {
  writeFileSync(
    `${DIR}/product.toml`,
    [
      "# Written by scripts/import-bench.mjs: the product on the prebuilt build/ (KV counted by",
      "# tests/bench/memkv-worker.js), no [build] step.",
      'name = "sightmill-sync-import-bench"',
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
    BENCH_KV: "counted",
    GHL_LOCATION_ID: LOCATION,
    CONTACTS_API_BASE: simUrl,
    WEBHOOK_SECRETS: SECRET,
    CONTACTS_API_TOKEN: TOKEN,
    ADMIN_API_KEYS: ADMIN_KEY,
    RATE_LIMIT_PER_10S: String(rate),
    RETRY_SCHEDULE: "1s,1s,1s",
  };
  writeFileSync(`${DIR}/product.env`, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(""));
}

// ---- the product --------------------------------------------------------------------------------

async function admin(world, method, path, { body, type } = {}) {
  const headers = { authorization: `Bearer ${ADMIN_KEY}` };
  if (type) headers["content-type"] = type;
  const response = await fetch(`${world.url}/admin/${path}`, { method, headers, body });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { text: text.slice(0, 300) };
  }
  return { status: response.status, json };
}

async function status(world) {
  const { status: code, json } = await admin(world, "GET", "status");
  if (code !== 200) throw new Error(`GET /admin/status answered ${code}: ${JSON.stringify(json)}`);
  return json;
}

async function runCron(world) {
  await (await fetch(`${world.url}/__scheduled?cron=${encodeURIComponent("* * * * *")}`)).arrayBuffer();
}

/** What one status call and one progress read cost in Durable Object rows (read twice in a row). */
async function callCosts(world, importId) {
  const a = await status(world);
  const b = await status(world);
  const statusCost = { read: b.durable_object.rows_read - a.durable_object.rows_read, written: b.durable_object.rows_written - a.durable_object.rows_written };
  if (!importId) return { status: statusCost, progress: { read: 0, written: 0 } };
  await admin(world, "GET", `imports/${importId}`);
  const c = await status(world);
  return {
    status: statusCost,
    progress: {
      read: c.durable_object.rows_read - b.durable_object.rows_read - statusCost.read,
      written: c.durable_object.rows_written - b.durable_object.rows_written - statusCost.written,
    },
  };
}

/** Contacts API calls the simulator received for contacts (the location's lists aside). */
function apiCalls() {
  return Object.entries(sim.counts()).filter(([route]) => !LIST_ROUTES.has(route)).reduce((sum, [, n]) => sum + n, 0);
}

/** The workerd runner's resident memory now and its peak since it started (kB, /proc). */
function memory(pid) {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

// ---- the load -----------------------------------------------------------------------------------

/** Live webhooks: contact.updated and note.created about LIVE_CONTACTS contacts, at `perSecond`. */
function liveTraffic(world, perSecond) {
  let sent = 0;
  let running = null;
  const resign = (type, data) => {
    const id = `msg_live_${sent++}`;
    const init = signedDelivery(SECRET, { type, timestamp: data.updated_at, data }, { id });
    return { id, init };
  };
  const post = async ({ id, init }) => {
    const response = await fetch(`${world.url}${WEBHOOK_PATH}`, init);
    await response.arrayBuffer();
    return { id, status: response.status, sentAt: Date.now() };
  };
  let version = 0;
  const next = () => {
    version += 1;
    const contact = `sm_live_${version % LIVE_CONTACTS}`;
    const updatedAt = new Date(Date.parse("2026-11-28T00:00:00Z") + version * 1000).toISOString();
    return version % 2
      ? resign("contact.updated", { id: contact, name: `${contact} v${version}`, email: `${contact}@live.test`, updated_at: updatedAt })
      : resign("note.created", { id: `${contact}_n${version}`, contact_id: contact, body: `note ${version}`, updated_at: updatedAt });
  };
  return {
    async makeContacts() {
      for (let i = 0; i < LIVE_CONTACTS; i += 1) {
        const r = await post(resign("contact.created", { id: `sm_live_${i}`, name: `sm_live_${i} v0`, email: `sm_live_${i}@live.test`, updated_at: "2026-11-27T00:00:00Z" }));
        if (r.status !== 202) throw new Error(`a live contact.created answered ${r.status}`);
      }
      await waitFor(async () => (await status(world)).pending === 0, { timeoutMs: 120_000, what: "the live contacts" });
    },
    /** Starts sending; `stop()` answers what was sent: `[{ id, status, sentAt }]`. */
    start() {
      const results = [];
      let stopped = false;
      const t0 = Date.now();
      running = (async () => {
        for (let k = 0; !stopped && perSecond > 0; k += 1) {
          const due = t0 + (k * 1000) / perSecond;
          if (due > Date.now()) await sleep(due - Date.now());
          if (stopped) break;
          post(next()).then((r) => results.push(r), () => results.push({ status: -1 }));
        }
      })();
      return async () => {
        stopped = true;
        await running;
        await sleep(500);
        return results;
      };
    },
  };
}

/** Applied latency (finished_at - sentAt) for up to 300 of `results`, read from /admin/events. */
async function appliedLatency(world, results) {
  const sample = results.filter((r) => r.status === 202).filter((_, i, all) => i % Math.max(1, Math.floor(all.length / 300)) === 0);
  const ms = [];
  let unfinished = 0;
  for (const r of sample) {
    const { json } = await admin(world, "GET", `events/${r.id}`);
    if (json?.finished_at) ms.push(json.finished_at - r.sentAt);
    else unfinished += 1;
  }
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms.length ? Math.max(...ms) : NaN, sampled: sample.length, unfinished };
}

async function measureLiveAlone(world, live, secs) {
  const costs = await callCosts(world);
  const before = await status(world);
  const callsBefore = apiCalls();
  const t0 = Date.now();
  const stop = live.start();
  await sleep(secs * 1000);
  const results = await stop();
  await waitFor(async () => (await status(world)).pending === 0, { timeoutMs: 60_000, what: "the live traffic to drain" });
  const after = await status(world);
  const seconds = (Date.now() - t0) / 1000;
  const webhooks = results.filter((r) => r.status === 202).length;
  const rowsRead = after.durable_object.rows_read - before.durable_object.rows_read - costs.status.read * 1;
  const rowsWritten = after.durable_object.rows_written - before.durable_object.rows_written - costs.status.written * 1;
  return {
    webhooks,
    callsPerSecond: (apiCalls() - callsBefore) / seconds,
    rowsReadPerWebhook: rowsRead / webhooks,
    rowsWrittenPerWebhook: rowsWritten / webhooks,
    statuses: countBy(results.map((r) => r.status)),
    applied: await appliedLatency(world, results),
  };
}

/** A CSV of `n` contacts SightMill-side: id, updated_at, name, email, phone. */
function contactsCsv(n) {
  const lines = ["id,updated_at,name,email,phone"];
  for (let i = 0; i < n; i += 1) {
    const id = `sm_imp_${String(i).padStart(6, "0")}`;
    lines.push(`${id},2026-11-27T10:00:00Z,${id} Imported,${id}@import.test,+1555${String(i).padStart(7, "0")}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Uploads `file`, then reads the import's progress every POLL_MS (the cron every minute, the first
 * at once) until it ends or stalls, with the live traffic running (`withLive`). Answers the figures.
 */
async function measureImport(world, live, file, { withLive }) {
  const preCosts = await callCosts(world);
  const before = await status(world);
  const requestsBefore = sim.requests().length;
  const callsBefore = apiCalls();
  const memBefore = memory(world.pids.runner);
  let peakRss = memBefore.rss;
  const stop = withLive ? live.start() : null;

  const uploadStart = Date.now();
  const uploaded = await admin(world, "POST", "imports?format=csv", { body: file, type: "text/csv" });
  const uploadMs = Date.now() - uploadStart;
  if (uploaded.status !== 201) {
    await stop?.();
    throw new Error(`POST /admin/imports answered ${uploaded.status}: ${JSON.stringify(uploaded.json)}`);
  }
  const id = uploaded.json.import.id;
  say(`  uploaded in ${(uploadMs / 1000).toFixed(1)} s: import ${id}, ${uploaded.json.import.total} rows`);
  const started = Date.now();
  let polls = 0;
  let crons = 0;
  let nextCron = started;
  let progress = uploaded.json.import;
  let lastDone = -1;
  let since = Date.now();
  let stalled = false;
  let lastSaid = 0;
  for (;;) {
    if (Date.now() >= nextCron) {
      await runCron(world);
      crons += 1;
      nextCron += 60_000;
    }
    peakRss = Math.max(peakRss, memory(world.pids.runner).rss);
    const read = await admin(world, "GET", `imports/${id}`);
    polls += 1;
    if (read.status !== 200) throw new Error(`GET /admin/imports/${id} answered ${read.status}: ${JSON.stringify(read.json)}`);
    progress = read.json.import ?? read.json; // `{ import: P }`, as pause/resume/cancel answer
    if (["done", "cancelled"].includes(progress.state)) break;
    if (progress.done > lastDone) {
      lastDone = progress.done;
      since = Date.now();
    } else if (Date.now() - since > STALL_MS) {
      stalled = true;
      break;
    }
    if (Date.now() - lastSaid > 30_000) {
      lastSaid = Date.now();
      say(`  ${progress.done} / ${progress.total} (${progress.state}), ${progress.calls} calls, eta ${progress.eta_secs ?? "?"} s`);
    }
    await sleep(POLL_MS);
  }
  const ended = Date.now();
  const results = stop ? await stop() : [];
  const seconds = (ended - started) / 1000;
  await waitFor(async () => (await status(world)).pending === 0, { timeoutMs: 120_000, what: "the live traffic to drain" }).catch(() => {});
  const after = await status(world);
  const postCosts = await callCosts(world, id);
  const memAfter = memory(world.pids.runner);

  const requests = sim.requests().slice(requestsBefore);
  const window = requests.filter((r) => r.at >= started && r.at <= ended && !LIST_ROUTES.has(r.route));
  const tooMany = requests.filter((r) => r.status === 429).length;
  const importCalls = progress.calls;
  const windowCalls = window.length;
  const liveCalls = Math.max(0, windowCalls - importCalls);
  const limitInWindow = (world.rate / 10) * seconds;
  const leftOver = limitInWindow - liveCalls;
  // Rows: everything the Durable Object read and wrote from before the upload to after the end,
  // less the live webhooks' own (at the per-webhook figures measured alone) and the bench's calls.
  const liveWebhooks = results.filter((r) => r.status === 202).length;
  const statusCost = { read: (preCosts.status.read + postCosts.status.read) / 2, written: (preCosts.status.written + postCosts.status.written) / 2 };
  const benchRows = (key) => polls * postCosts.progress[key] + 1 * statusCost[key];
  const rows = (key, liveEach) => after.durable_object[`rows_${key}`] - before.durable_object[`rows_${key}`] - benchRows(key) - liveWebhooks * liveEach;
  return {
    id,
    progress,
    stalled,
    uploadMs,
    bytes: file.length,
    seconds,
    polls,
    crons,
    importCalls,
    liveCalls,
    limitInWindow,
    leftOver,
    share: leftOver > 0 ? importCalls / leftOver : NaN,
    tooMany,
    api429Counter: (after.counters?.api_429 ?? 0) - (before.counters?.api_429 ?? 0),
    callsMade: apiCalls() - callsBefore,
    liveWebhooks,
    liveStatuses: countBy(results.map((r) => r.status)),
    applied: results.length ? await appliedLatency(world, results) : null,
    rows: { read: (lw) => rows("read", lw), written: (lw) => rows("written", lw) },
    rawRows: { read: after.durable_object.rows_read - before.durable_object.rows_read, written: after.durable_object.rows_written - before.durable_object.rows_written },
    restarted: after.durable_object.rows_read < before.durable_object.rows_read,
    memory: { before: memBefore, after: memAfter, peakRss },
  };
}

function countBy(values) {
  const counts = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

// ---- printing -----------------------------------------------------------------------------------

function say(line) {
  console.log(`import-bench: ${line}`);
}

// Function declarations, not constants: main() runs (top-level await) before this point is reached.
function f1(x) {
  return Number.isFinite(x) ? x.toFixed(1) : String(x);
}
function f2(x) {
  return Number.isFinite(x) ? x.toFixed(2) : String(x);
}
function int(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : String(x);
}
function verdict(ok) {
  return ok ? "meets" : "MISSES";
}
function mb(kb) {
  return `${f1(kb / 1024)} MB`;
}

function report({ n, liveRate, rate, liveSecs, alone, first, again, startedAt }) {
  const p = first.progress;
  const readPer = first.rows.read(alone.rowsReadPerWebhook) / n;
  const writtenPer = first.rows.written(alone.rowsWrittenPerWebhook) / n;
  const lines = [
    "",
    `date: ${startedAt.toISOString()}; machine: ${describeMachine()}`,
    `command: node scripts/import-bench.mjs ${n} --live-rate ${liveRate} --rate ${rate} --live-secs ${liveSecs}`,
    `API limit: ${rate} calls per 10 s for the location in the simulator and RATE_LIMIT_PER_10S=${rate} in the product (production's API: 100), raised so that ${int(n)} records finish in reasonable time; wrangler dev, simulated KV counted`,
    "",
    `live traffic alone (${liveSecs} s at ${liveRate}/s, contact.updated and note.created): ${alone.webhooks} webhooks, ${f2(alone.callsPerSecond)} Contacts API calls/s, rows read ${f2(alone.rowsReadPerWebhook)} / written ${f2(alone.rowsWrittenPerWebhook)} per webhook, applied p50 ${f1(alone.applied.p50)} ms / p99 ${f1(alone.applied.p99)} ms`,
    "",
    `import of ${int(n)} contacts (${f1(first.bytes / 1024 / 1024)} MB CSV), import ${first.id}: ${p.state}${first.stalled ? ` STALLED (done did not move for ${STALL_MS / 1000} s)` : ""}`,
    `  upload (POST to 201): ${f1(first.uploadMs / 1000)} s (${f1(first.bytes / 1024 / 1024 / (first.uploadMs / 1000))} MB/s)`,
    `  figures: done ${int(p.done)} / ${int(p.total)}, created ${int(p.created)}, updated ${int(p.updated)}, unchanged ${int(p.unchanged)}, skipped ${int(p.skipped)}, failed ${int(p.failed)}, calls ${int(p.calls)}`,
    `  drain: ${int(first.importCalls)} import calls in ${f1(first.seconds)} s = ${f2(first.importCalls / first.seconds)} calls/s; the limit allowed ${int(first.limitInWindow)}, live traffic used ${int(first.liveCalls)} (${first.liveWebhooks} webhooks, ${JSON.stringify(first.liveStatuses)}), leaving ${int(first.leftOver)}: the import took ${f1(first.share * 100)}% of what was left`,
    `  429s answered by the API: ${first.tooMany} (the location's api_429 counter: ${first.api429Counter})`,
    `  live webhooks while the import ran: applied p50 ${f1(first.applied?.p50)} ms / p99 ${f1(first.applied?.p99)} ms / max ${f1(first.applied?.max)} ms (${first.applied?.sampled} sampled, ${first.applied?.unfinished} not finished)`,
    `  Durable Object rows per imported record: read ${f2(readPer)}, written ${f2(writtenPer)} (all rows: read ${int(first.rawRows.read)}, written ${int(first.rawRows.written)}; less the live webhooks' at their figures alone and the bench's ${first.polls} progress reads)${first.restarted ? " NOTE: the Durable Object restarted; rows are unreliable" : ""}`,
    `  workerd runner memory (/proc VmRSS: every isolate of the product and SQLite; an upper bound): ${mb(first.memory.before.rss)} before, peak ${mb(first.memory.peakRss)} sampled every ${POLL_MS / 1000} s, ${mb(first.memory.after.rss)} after; process peak (VmHWM) ${mb(first.memory.after.hwm)}`,
    `  cron runs: ${first.crons} (every minute, as in production)`,
    "",
    `the same file again, import ${again.id}: ${again.progress.state} in ${f1(again.seconds)} s (upload ${f1(again.uploadMs / 1000)} s); unchanged ${int(again.progress.unchanged)}, skipped ${int(again.progress.skipped)}, created ${int(again.progress.created)}, updated ${int(again.progress.updated)}; Contacts API calls: ${again.callsMade} (the import's own figure: ${again.progress.calls})`,
    "",
    "targets:",
    `  drain >= 95% of the rate limit left over by live traffic: ${f1(first.share * 100)}% -> ${verdict(first.share >= 0.95 && !first.stalled)}`,
    `  0 429s: ${first.tooMany + again.tooMany} -> ${verdict(first.tooMany + again.tooMany === 0)}`,
    `  Durable Object rows read per imported record <= 20: ${f2(readPer)} -> ${verdict(readPer <= 20)}`,
    `  rows written per imported record: ${f2(writtenPer)} (reported)`,
    `  the same file again makes 0 Contacts API calls: ${again.callsMade} -> ${verdict(again.callsMade === 0)}`,
    `  every record imported: ${int(p.done)} of ${int(n)} done, ${int(p.created)} created -> ${verdict(p.state === "done" && p.done === n && p.created === n)}`,
  ];
  console.log(lines.join("\n"));
}
