#!/usr/bin/env node
// Per-operation CPU under `wrangler dev`: starts a tiny JS worker (tests/bench/ops-worker.js, one
// simulated KV namespace) and a local HTTP target, sends N requests at concurrency C for each
// operation, each request doing the operation K times, and prints the CPU the workerd runner (the
// process that runs the worker and the simulated KV) spent per operation: the marginal cost
// (CPU at K minus CPU at K=1, over K-1), the cost of one request that does it once, and, beside
// them, the same for the workerd proxy and wrangler's node process. Also prints the runner's idle
// CPU per second and its per-thread split. Stops every process it started.
//
//   node scripts/opcost.mjs [N=400] [C=16] [--k 5] [--ops get,put,...] [--repeat 1]
//
// Operations: none get getmiss getmeta put put1k putmeta putttl delete list fetch log timer
// (see tests/bench/ops-worker.js); "wait" variants run the work in ctx.waitUntil (e.g. put:wait).

import { createServer } from "node:http";
import os from "node:os";
import { mkdirSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { drive } from "../tests/support/load.mjs";
import { describeMachine } from "../tests/support/machine.mjs";
import { cpuMs, freePort, sleep, startGroup, stopGroup, threadCpuMs, waitFor, wranglerProcesses } from "../tests/support/procs.mjs";

const DIR = ".opcost";
const WRANGLER = "node_modules/.bin/wrangler";
const ALL = ["none", "get", "getmiss", "getmeta", "put", "put1k", "putmeta", "putttl", "delete", "list", "fetch", "log", "timer"];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    k: { type: "string", default: "5" },
    ops: { type: "string", default: ALL.join(",") },
    repeat: { type: "string", default: "1" },
  },
});
const [n = 400, c = 16] = positionals.map(Number);
const k = Number(values.k);
const ops = values.ops.split(",");
const repeat = Number(values.repeat);

const groups = [];
let target;
process.once("SIGINT", () => stopAll().then(() => process.exit(130)));
try {
  await main();
} catch (error) {
  console.error(`opcost: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}

async function stopAll() {
  target?.close();
  await Promise.all(groups.splice(0).map((group) => stopGroup(group)));
}

async function main() {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  console.log(`opcost: machine: ${describeMachine()}; load average ${loadAverage()}`);
  target = createServer((req, res) => res.end('{"contact":{"id":"abc"}}'));
  await new Promise((resolve) => target.listen(0, "127.0.0.1", resolve));
  const targetUrl = `http://127.0.0.1:${target.address().port}/`;
  const port = await freePort();
  const group = startGroup(
    WRANGLER,
    ["dev", "--config", "tests/bench/ops.toml", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0",
      "--show-interactive-dev-session=false", "--persist-to", `${DIR}/state`, "--test-scheduled"],
    { logFile: `${DIR}/wrangler.log`, env: { WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" } },
  );
  groups.push(group);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(() => fetch(`${base}/?op=none`).then((r) => r.ok), { timeoutMs: 60_000, what: "the ops worker", group });
  const pids = wranglerProcesses(group.pid);

  // Seed the keys the gets read, and warm every path once.
  const url = (op, count, key, wait) => `${base}/?op=${op}&k=${count}&key=${key}&target=${encodeURIComponent(targetUrl)}${wait ? "&wait=1" : ""}`;
  await drive(Array.from({ length: n }, (_, i) => ({ url: url("put1k", 1, i % 64) })), c);
  for (const op of ALL) await drive(Array.from({ length: 2 * c }, (_, i) => ({ url: url(op, 1, i % 64) })), c);

  const idle = await idleCpu(pids.runner, 5000);
  console.log(`opcost: runner idle: ${idle.toFixed(2)} ms CPU per second`);

  const measure = async (op, count, wait) => {
    const requests = Array.from({ length: n }, (_, i) => ({ url: url(op, count, i % 64, wait) }));
    const before = { runner: cpuMs(pids.runner), proxy: cpuMs(pids.proxy), node: cpuMs(pids.node), threads: threadCpuMs(pids.runner) };
    const started = Date.now();
    await drive(requests, c);
    if (wait) await sleep(count * 60 + 500); // let waitUntil work finish
    const seconds = (Date.now() - started) / 1000;
    await sleep(300); // the inspector messages reach node
    const after = { runner: cpuMs(pids.runner), proxy: cpuMs(pids.proxy), node: cpuMs(pids.node), threads: threadCpuMs(pids.runner) };
    const per = (role) => (after[role] - before[role] - (wait ? idle * seconds : 0)) / n;
    const threads = Object.fromEntries(Object.keys(after.threads).map((t) => [t, ((after.threads[t] - (before.threads[t] ?? 0)) / n)]));
    return { runner: per("runner"), proxy: per("proxy"), node: per("node"), threads };
  };

  console.log(`opcost: ${n} requests at concurrency ${c} per row; marginal = (CPU at k=${k} - CPU at k=1) / ${k - 1}; ms of CPU`);
  console.log(`  ${"op".padEnd(14)} ${"runner/op".padStart(10)} ${"runner/req(k=1)".padStart(16)} ${"proxy/req".padStart(10)} ${"node/req".padStart(10)}  runner threads/req(k=1)`);
  for (let r = 0; r < repeat; r++) {
    for (const spec of ops) {
      const [op, mode] = spec.split(":");
      const wait = mode === "wait";
      const one = await measure(op, 1, wait);
      const many = await measure(op, k, wait);
      const marginal = (many.runner - one.runner) / (k - 1);
      const threads = Object.entries(one.threads).filter(([, v]) => v >= 0.005).map(([t, v]) => `${t} ${v.toFixed(2)}`).join(", ");
      console.log(`  ${spec.padEnd(14)} ${marginal.toFixed(3).padStart(10)} ${one.runner.toFixed(3).padStart(16)} ${one.proxy.toFixed(3).padStart(10)} ${one.node.toFixed(3).padStart(10)}  ${threads}`);
    }
  }
  console.log(`opcost: load average after: ${loadAverage()}`);
}

async function idleCpu(pid, ms) {
  const before = cpuMs(pid);
  await sleep(ms);
  return ((cpuMs(pid) - before) * 1000) / ms;
}

function loadAverage() {
  return os.loadavg().map((x) => x.toFixed(2)).join(" ");
}
