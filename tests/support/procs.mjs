// Processes for the benchmark: starts commands in their own process groups (so that everything a
// command spawns can be stopped at once), finds the workerd process that runs a worker under
// `wrangler dev` (apart from the workerd proxy in front of it and wrangler's node process), and
// reads a process's CPU time from /proc.

import { spawn } from "node:child_process";
import { openSync, readdirSync, readFileSync } from "node:fs";
import net from "node:net";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Starts `command args` in a new process group, its output appended to `logFile`. */
export function startGroup(command, args, { env = {}, logFile }) {
  const out = openSync(logFile, "a");
  const child = spawn(command, args, {
    detached: true,
    stdio: ["ignore", out, out],
    env: { ...process.env, ...env },
  });
  child.unref();
  return { pid: child.pid, logFile, exited: new Promise((resolve) => child.once("exit", resolve)) };
}

/** Stops every process in the group (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopGroup(group, graceMs = 3000) {
  for (const signal of ["SIGTERM", "SIGKILL"]) {
    try {
      process.kill(-group.pid, signal);
    } catch {
      return; // the group is gone
    }
    const stopped = await Promise.race([group.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (stopped && groupMembers(group.pid).length === 0) return;
  }
}

/** `{ pid, comm, args, utime + stime in ms }` of every process in process group `pgid`. */
export function groupMembers(pgid) {
  const members = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(name);
    if (stat && stat.pgid === pgid) members.push({ pid: Number(name), ...stat, args: readArgs(name) });
  }
  return members;
}

/** The processes of one `wrangler dev` group: the workerd that runs the worker (it has an
 * inspector), the workerd proxy in front of it, and wrangler's node process. */
export function wranglerProcesses(pgid) {
  const members = groupMembers(pgid);
  const workerd = members.filter((m) => m.args[0]?.endsWith("/workerd") && m.args[1] === "serve");
  const runner = workerd.filter((m) => m.args.some((a) => a.startsWith("--inspector-addr")));
  const proxy = workerd.filter((m) => !runner.includes(m));
  const node = members.filter((m) => m.comm === "node" && m.args.some((a) => a.endsWith("wrangler-dist/cli.js")));
  if (runner.length !== 1 || proxy.length !== 1 || node.length !== 1) {
    throw new Error(`expected one runner, proxy and node in group ${pgid}, found ${JSON.stringify(members.map((m) => m.args.slice(0, 2)))}`);
  }
  return { runner: runner[0].pid, proxy: proxy[0].pid, node: node[0].pid };
}

/** CPU time (user + system, all threads) that process `pid` has used, in ms. */
export function cpuMs(pid) {
  const stat = readStat(String(pid));
  if (!stat) throw new Error(`process ${pid} is gone`);
  return stat.cpuMs;
}

function readStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Fields after the command name, which is in parentheses and may hold spaces.
  const comm = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const [utime, stime] = [Number(fields[11]), Number(fields[12])];
  return { comm, pgid: Number(fields[2]), cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND };
}

function readArgs(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` (async, truthy when ready) every 200 ms for at most `timeoutMs`. */
export async function waitFor(probe, { timeoutMs, what, group }) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    if (group && groupMembers(group.pid).length === 0) break;
    await sleep(200);
  }
  const log = group ? `; see ${group.logFile}` : "";
  throw new Error(`${what} did not come up within ${timeoutMs} ms${log}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU time (ms) of each thread of process `pid`, keyed `comm:tid` (the main thread is `main`). */
export function threadCpuMs(pid) {
  const out = {};
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const stat = readStat(`${pid}/task/${tid}`);
    if (stat) out[tid === String(pid) ? "main" : `${stat.comm}:${tid}`] = stat.cpuMs;
  }
  return out;
}
