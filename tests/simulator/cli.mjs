#!/usr/bin/env node
// Runs the Contacts API simulator standalone (for wrangler dev or manual poking):
//   node tests/simulator/cli.mjs --port 8788 --token TOKEN:LOCATION [--token ...]
//     [--location LOC[:noduplicates|:duplicates][:rate=MAX/INTERVAL_MS[/DAILY]]] [--host H] [--seed N]
//     [--rate-max N] [--rate-interval-ms N] [--rate-daily N]
// Prints "simulator listening on http://127.0.0.1:PORT" and runs until SIGINT/SIGTERM.

import { parseArgs } from "node:util";
import { startSimulator } from "./server.mjs";

const USAGE =
  "usage: cli.mjs [--port N] [--host H] [--token TOKEN:LOCATION]... " +
  "[--location LOC[:noduplicates|:duplicates][:rate=MAX/INTERVAL_MS[/DAILY]]]... " +
  "[--seed N] [--rate-max N] [--rate-interval-ms N] [--rate-daily N]";

function fail(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

/** "a:b:c" -> ["a:b", "c"]: the part after the last colon is the location (or flag). */
function splitLast(text, what) {
  const at = text.lastIndexOf(":");
  if (at <= 0 || at === text.length - 1) fail(`bad ${what}: ${JSON.stringify(text)}`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function integer(text, name) {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`);
  return n;
}

/** "rate=10/10000[/5000]" -> { max: 10, intervalMs: 10000, daily?: 5000 }. */
function parseRate(text, whole) {
  const parts = text.split("/");
  const numbers = parts.map(Number);
  if (parts.length < 2 || parts.length > 3 || numbers.some((n) => !Number.isInteger(n) || n < 1)) {
    fail(`bad --location ${JSON.stringify(whole)}: want rate=MAX/INTERVAL_MS[/DAILY] (positive integers)`);
  }
  const [max, intervalMs, daily] = numbers;
  return daily === undefined ? { max, intervalMs } : { max, intervalMs, daily };
}

/** "loc-1:noduplicates:rate=10/10000" -> ["loc-1", { allowDuplicates: false, rateLimit }]. */
function parseLocation(text) {
  const [id, ...flags] = text.split(":");
  if (id === "") fail(`bad --location ${JSON.stringify(text)}`);
  const config = { allowDuplicates: true };
  for (const flag of flags) {
    if (flag === "noduplicates" || flag === "duplicates") config.allowDuplicates = flag === "duplicates";
    else if (flag.startsWith("rate=")) config.rateLimit = parseRate(flag.slice("rate=".length), text);
    else fail(`bad --location ${JSON.stringify(text)}: unknown flag ${JSON.stringify(flag)}`);
  }
  return [id, config];
}

function optionsFrom(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        token: { type: "string", multiple: true },
        location: { type: "string", multiple: true },
        seed: { type: "string" },
        "rate-max": { type: "string" },
        "rate-interval-ms": { type: "string" },
        "rate-daily": { type: "string" },
        help: { type: "boolean" },
      },
    }));
  } catch (err) {
    fail(err.message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const rateLimit = Object.fromEntries(
    [
      ["max", integer(values["rate-max"], "rate-max")],
      ["intervalMs", integer(values["rate-interval-ms"], "rate-interval-ms")],
      ["daily", integer(values["rate-daily"], "rate-daily")],
    ].filter(([, v]) => v !== undefined),
  );
  return {
    port: integer(values.port, "port") ?? 0,
    host: values.host ?? "127.0.0.1",
    seed: integer(values.seed, "seed") ?? 1,
    tokens: Object.fromEntries((values.token ?? []).map((t) => splitLast(t, "--token (want TOKEN:LOCATION)"))),
    locations: Object.fromEntries((values.location ?? []).map(parseLocation)),
    rateLimit,
  };
}

const simulator = await startSimulator(optionsFrom(process.argv.slice(2)));
process.stdout.write(`simulator listening on ${simulator.url}\n`);

async function shutdown() {
  await simulator.close();
  process.exit(0);
}
process.once("SIGINT", shutdown);
process.once("SIGTERM", shutdown);
