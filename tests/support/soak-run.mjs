// Runs one soak in process: the built worker in workerd (Miniflare, tests/e2e/harness.mjs, its
// Durable Objects for real and KV on the production KV model or Miniflare's own) against the
// Contacts API simulator with faults injected (5xx, 429, hung calls, late answers) and a
// credentials outage mid-run. Delivers the plan while cron runs go on beside it, drives the cron
// until the operator API shows nothing pending, restarting the runtime a few times mid-drain
// (state on disk in a temporary directory; the simulator keeps running), then compares the
// simulator's state with the state the events alone call for. `duplicates` ("allow" or "refuse")
// is the default location's "Allow Duplicate Contact" setting. With `locations` > 1 the default
// connection is joined by named ones (created through the operator API), each its own location in
// the simulator with its own events, alternating the other setting and the default's; the faults
// and the outage hit one location of each setting (two named ones, or with two locations both),
// and each location's state is compared with its own expected state.
// Used by scripts/soak.mjs (figures) and tests/e2e/soak.test.mjs (assertions).

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { LOCATION, SECRET, sleep, startWorld, TOKEN, WEBHOOK_PATH } from "../e2e/harness.mjs";
import { signedDelivery } from "./webhooks.mjs";
import { compare, countByType, deliver, deliveryPlan, expectedState, generate, webhookBody } from "./soak.mjs";

/** Retries every second or two, long enough that faults alone never exhaust it. */
const RETRY_SCHEDULE = "1s,1s,1s,2s,2s,2s,2s,3s,3s,3s,5s,5s,5s,5s,5s,5s";

/**
 * The credentials outage: today the Private Integration Token is revoked in the simulator, then
 * added back. A mode with expiring OAuth tokens replaces this object: `expire` lets the current
 * access token lapse (the worker must refresh it), `restore` ends the outage.
 */
export const pitRevocation = {
  name: "Private Integration Token revoked, then restored",
  expire: (sim, { token }) => sim.revokeToken(token),
  restore: (sim, { token, id }) => sim.addToken(token, id),
};

/**
 * The simulator's faults: shares of all API calls answered 5xx, 429 or never (hung, not applied),
 * and applied but answered `lateMs` later (late: after the worker's timeout, when `lateMs` exceeds it).
 */
export function injectFaults(sim, { error5xx = 0.2, rateLimited = 0.1, hung = 0.05, late = 0.02, lateMs = 2000, location } = {}) {
  // Rules are tried in order and each draws on its own, so later shares are scaled to the rest.
  const where = location ? { location } : {};
  sim.injectFault({ ...where, fraction: error5xx, status: 503, count: null });
  sim.injectFault({ ...where, fraction: rateLimited / (1 - error5xx), status: 429, headers: { "Retry-After": "1" }, count: null });
  sim.injectFault({ ...where, fraction: hung / (1 - error5xx - rateLimited), hang: true, count: null });
  if (late > 0) {
    const fraction = late / (1 - error5xx - rateLimited - hung);
    sim.injectFault({ ...where, fraction, afterApply: true, latencyMs: lateMs, count: null });
  }
}

/** The named connections' records are sealed with it. */
const ENCRYPTION_KEYS = `soak:${Buffer.alloc(32, 11).toString("base64")}`;

const DUPLICATE_SETTINGS = ["allow", "refuse"];

/**
 * The connections a soak runs on: the default one (`LOCATION`, with the soak's `duplicates`
 * setting) and, with `count` > 1, named ones created through the operator API, each with its own
 * location and Private Integration Token in the simulator, its webhook path and its signing
 * secret; named location i has the default's setting when i is even, the other one when odd.
 * Those that take the faults are `faulted`: one location of each setting where there are two
 * (loc-soak-1 and loc-soak-2; with two connections, both), the default alone when it is alone.
 */
async function connect(world, count, duplicates) {
  const other = DUPLICATE_SETTINGS.find((setting) => setting !== duplicates);
  const connections = [{ id: LOCATION, path: WEBHOOK_PATH, secret: SECRET, token: TOKEN, duplicates }];
  for (let i = 1; i < count; i += 1) {
    const id = `loc-soak-${i}`;
    const token = `pit-soak-${i}-0123456789abcdef`;
    const setting = i % 2 === 0 ? duplicates : other;
    world.sim.addToken(token, id);
    world.sim.setLocation(id, { allowDuplicates: setting === "allow" });
    const { status, json } = await world.admin("POST", "connections", { body: { id, token: { kind: "private_integration", token } } });
    if (status !== 201) throw new Error(`creating the connection ${id} answered ${status}: ${JSON.stringify(json)}`);
    connections.push({ id, path: `${WEBHOOK_PATH}/${id}`, secret: json.signing_secret, token, admin: `connections/${id}/`, duplicates: setting });
  }
  const named = connections.slice(1, 3);
  return { connections, faulted: named.length === 2 ? named : connections.slice(0, 2) };
}

/** One location's part of the simulator's state: its contacts, and their notes and tasks. */
function stateOf(state, locationId) {
  const contacts = state.contacts.filter((contact) => contact.locationId === locationId);
  const ids = new Set(contacts.map((contact) => contact.id));
  const mine = (record) => ids.has(record.contactId);
  return { ...state, contacts, notes: state.notes.filter(mine), tasks: state.tasks.filter(mine) };
}

/** Removes `dir`, and again a moment later: a stopped runtime may still be flushing its files. */
async function removeSoon(dir) {
  rmSync(dir, { recursive: true, force: true });
  await sleep(500);
  rmSync(dir, { recursive: true, force: true });
}

/** How often SightMill redelivers a webhook whose delivery failed (no answer, or a 5xx). */
const REDELIVERY_ATTEMPTS = 20;
const REDELIVERY_PAUSE_MS = 250;

/**
 * Runs a soak. Options: duplicates ("allow" or "refuse", required: the default location's
 * duplicate setting), events, contacts, seed, concurrency (deliveries in flight), cronRuns
 * (cron runs started together, as overlapping triggers would), outageMs, faults (see
 * injectFaults), credentials (see pitRevocation), drainTimeoutMs, kv ("production" or
 * "miniflare"), restarts (runtime restarts mid-drain), restartEveryMs (the pause between them),
 * log (progress lines). Returns the figures.
 */
export async function runSoak(options) {
  const {
    duplicates,
    events: eventCount,
    contacts,
    seed = 1,
    concurrency = 4,
    cronRuns = 4,
    outageMs = 3000,
    faults = {},
    credentials = pitRevocation,
    drainTimeoutMs = 30 * 60 * 1000,
    // How long one Contacts API call may take. A call that the simulator applied but answered
    // later than this is retried; a retried note or task create must not duplicate (the API
    // offers no idempotency key for them). The `late` fault provokes that on purpose, and a short
    // timeout on a loaded machine provokes it by chance.
    apiTimeoutMs = 1000,
    kv = "production",
    restarts = 3,
    restartEveryMs = 2000,
    locations = 1,
    log = () => {},
  } = options;
  if (!DUPLICATE_SETTINGS.includes(duplicates)) {
    throw new Error(`runSoak: duplicates must be "allow" or "refuse" (the default location's setting), not ${JSON.stringify(duplicates)}`);
  }
  const stateRoot = mkdtempSync(path.join(os.tmpdir(), "sightmill-soak-"));
  const world = await startWorld({
    duplicates,
    kv,
    persist: stateRoot,
    edges: ["edge-a", "edge-b"], // a redelivery may land where the first delivery was not seen
    vars: {
      RETRY_SCHEDULE,
      API_TIMEOUT_MS: String(apiTimeoutMs),
      CRON_MAX_API_CALLS: "1000",
      CRON_TIME_BUDGET_MS: "20000",
      RATE_LIMIT_PER_10S: "1000",
      TOKEN_ENCRYPTION_KEYS: ENCRYPTION_KEYS,
    },
    simulator: { seed, rateLimit: { max: 1000, intervalMs: 10_000 } },
  });
  const started = Date.now();
  try {
    const { connections, faulted } = await connect(world, locations, duplicates);
    // Each location its own events (a seed of its own); SightMill ids and webhook ids repeat across
    // workspaces, as they may: nothing may be taken for another connection's.
    const runs = connections.map((connection, i) => {
      const events = generate({ events: eventCount, contacts, seed: seed + i * 7919 });
      return { connection, events, plan: deliveryPlan(events, { seed: seed + i * 7919 }) };
    });
    const deliveries = runs.reduce((n, run) => n + run.plan.deliveries.length, 0);
    for (const { id } of faulted) {
      injectFaults(world.sim, { lateMs: apiTimeoutMs + 1000, ...faults, ...(locations > 1 ? { location: id } : {}) });
    }
    const cron = startCronLoop(world, cronRuns, drainTimeoutMs * 2);
    const failures = {};
    let delivered = 0;
    const outage = { started: false, done: null };
    const answers = await Promise.all(
      runs.map(({ connection, plan }) => {
        const send = sender(world, failures, connection);
        return deliver(
          plan,
          async (event) => {
            delivered += 1;
            if (!outage.started && delivered >= deliveries / 2) {
              outage.started = true;
              outage.done = Promise.all(faulted.map((connection) => credentialsOutage(world.sim, credentials, connection, outageMs, log)));
            }
            if (delivered % 1000 === 0) log(`delivered ${delivered}/${deliveries}`);
            return send(event);
          },
          { concurrency },
        );
      }),
    );
    const statuses = {};
    for (const counts of answers) for (const [status, n] of Object.entries(counts)) statuses[status] = (statuses[status] ?? 0) + n;
    await outage.done;
    const deliveredAt = Date.now();
    log(`delivered all ${deliveries} in ${deliveredAt - started} ms; draining the queue`);
    const restartsDone = [];
    const drained = await drain(world, cron, connections, { timeoutMs: drainTimeoutMs, restarts, restartEveryMs, restartsDone, log });
    world.sim.clearFaults();
    const state = world.sim.state();
    const byLocation = runs.map(({ connection, events }) => {
      const expected = expectedState(events);
      const own = locations > 1 ? stateOf(state, connection.id) : state;
      return { id: connection.id, duplicates: connection.duplicates, faulted: faulted.includes(connection), expected, ...compare(expected, own) };
    });
    const result = combine(byLocation);
    const events = runs.flatMap((run) => run.events);
    const plan = { redelivered: 0, reordered: 0 };
    for (const run of runs) {
      plan.redelivered += run.plan.redelivered;
      plan.reordered += run.plan.reordered;
    }
    return {
      events: events.length,
      duplicates,
      locations: byLocation.map(({ id, duplicates: setting, faulted: hit, lost, duplicated, mismatched }) => ({
        id,
        duplicates: setting,
        faulted: hit,
        lost,
        duplicated,
        mismatched,
      })),
      contacts,
      seed,
      concurrency,
      cronRuns,
      byType: countByType(events),
      deliveries,
      redelivered: plan.redelivered,
      reordered: plan.reordered,
      answers: statuses,
      deliveryFailures: failures,
      outage: credentials.name,
      drained,
      kv,
      restarts: restartsDone,
      kvOps: await world.kvOps(),
      ...result,
      deadLetters: await deadLetters(world, connections),
      apiCalls: world.sim.counts(),
      faultsSeen: faultTally(world.sim),
      diagnostics: diagnostics(world, apiTimeoutMs),
      expectedRecords: byLocation.reduce((n, { expected }) => n + expected.contacts.size + expected.notes.size + expected.tasks.size, 0),
      deliverMs: deliveredAt - started,
      totalMs: Date.now() - started,
    };
  } finally {
    await world.close();
    await removeSoon(stateRoot);
  }
}

/**
 * Signs and posts one event the way SightMill would (a redelivery repeats the id and body), and
 * redelivers it while the worker gives no answer (its runtime restarting) or a 5xx, as SightMill
 * does; each failure is counted in `failures` (by status, or "no answer"). Answers the last status.
 */
function sender(world, failures, connection) {
  const once = async (event) => {
    const request = signedDelivery(connection.secret, null, {
      id: event.webhookId,
      rawBody: JSON.stringify(webhookBody(event)),
    });
    try {
      const response = await world.fetch(connection.path, request);
      await response.arrayBuffer();
      return response.status;
    } catch {
      return "no answer";
    }
  };
  return async (event) => {
    let status;
    for (let attempt = 1; attempt <= REDELIVERY_ATTEMPTS; attempt += 1) {
      status = await once(event);
      if (typeof status === "number" && status < 500) break;
      failures[status] = (failures[status] ?? 0) + 1;
      await sleep(REDELIVERY_PAUSE_MS);
    }
    return { status };
  };
}

/** Takes `connection`'s credentials away for `ms`, then gives them back. */
async function credentialsOutage(sim, credentials, connection, ms, log) {
  log(`credentials outage for ${ms} ms in ${connection.id}: ${credentials.name}`);
  await credentials.expire(sim, connection);
  await sleep(ms);
  await credentials.restore(sim, connection);
  log("credentials restored");
}

/** The counts of every location added up, with the examples named by location. */
function combine(byLocation) {
  const tally = { lost: 0, duplicated: 0, mismatched: 0, examples: { lost: [], duplicated: [], mismatched: [] } };
  for (const location of byLocation) {
    for (const kind of ["lost", "duplicated", "mismatched"]) {
      tally[kind] += location[kind];
      const named = location.examples[kind].map((e) => (byLocation.length > 1 ? `${location.id}: ${e}` : e));
      tally.examples[kind].push(...named.slice(0, 20 - tally.examples[kind].length));
    }
  }
  return tally;
}

/**
 * Runs rounds of `runs` overlapping cron runs, a second apart, until stopped or for at most
 * `maxMs`; a run that fails (the runtime restarting under it) is shrugged off, as the next
 * trigger would come anyway. Returns the loop's handle.
 */
function startCronLoop(world, runs, maxMs) {
  const loop = { stopped: false, rounds: 0, failed: 0 };
  const deadline = Date.now() + maxMs;
  loop.done = (async () => {
    while (!loop.stopped && Date.now() < deadline) {
      const results = await Promise.allSettled(Array.from({ length: runs }, () => world.cron()));
      loop.failed += results.filter((r) => r.status === "rejected").length;
      loop.rounds += 1;
      await sleep(1000);
    }
  })();
  return loop;
}

/** Webhooks pending in every connection's Durable Object (`GET .../status`), or null while the runtime cannot answer. */
async function pendingNow(world, connections) {
  try {
    let pending = 0;
    for (const { admin = "" } of connections) {
      const { status, json } = await world.admin("GET", `${admin}status`);
      if (status !== 200) return null;
      pending += json.pending;
    }
    return pending;
  } catch {
    return null;
  }
}

/**
 * Waits until the operator API shows nothing pending, at most `timeoutMs`, restarting the runtime
 * up to `restarts` times meanwhile, `restartEveryMs` apart, while something is pending (each
 * restart is recorded in `restartsDone` with the pending count and when); stops the cron loop.
 */
async function drain(world, cron, connections, { timeoutMs, restarts, restartEveryMs, restartsDone, log }) {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let pending = null;
  let logged = 0;
  let lastRestart = started - restartEveryMs;
  while (Date.now() < deadline) {
    pending = await pendingNow(world, connections);
    if (pending === 0) break;
    if (pending !== null && restartsDone.length < restarts && Date.now() - lastRestart >= restartEveryMs) {
      await world.restart();
      lastRestart = Date.now();
      restartsDone.push({ pending, atMs: lastRestart - started });
      log(`restarted the runtime with ${pending} pending (${restartsDone.length}/${restarts})`);
      continue;
    }
    if (Date.now() - logged >= 15_000) {
      log(`pending ${pending}, cron rounds ${cron.rounds}`);
      logged = Date.now();
    }
    await sleep(250);
  }
  cron.stopped = true;
  await cron.done;
  return { pending: pending ?? -1, cronRounds: cron.rounds, cronRunsFailed: cron.failed, drainMs: Date.now() - started };
}

/** The parked webhooks of every connection, counted by reason. */
async function deadLetters(world, connections) {
  const reasons = {};
  for (const { admin = "" } of connections) {
    let cursor = null;
    for (let page = 0; page < 1000; page += 1) {
      const query = `${admin}events?state=parked&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const { json } = await world.admin("GET", query);
      for (const event of json.events) reasons[event.reason] = (reasons[event.reason] ?? 0) + 1;
      cursor = json.cursor;
      if (!cursor) break;
    }
  }
  return reasons;
}

/**
 * The known way to apply something twice, and what guards against it: calls the worker gave up
 * on (its log's timeouts) that the simulator never answered (hung) or answered after the
 * worker's timeout (late; of those, note and task creates, and the lookups that a retry after an
 * unanswered create makes before creating again).
 */
function diagnostics(world, apiTimeoutMs) {
  const logs = world.logs();
  const requests = world.sim.requests();
  const late = requests.filter((r) => r.answeredAt !== null && r.answeredAt - r.at > apiTimeoutMs);
  const creates = new Set(["POST /contacts/:contactId/notes", "POST /contacts/:contactId/tasks"]);
  const lookups = new Set(["GET /contacts/:contactId/notes", "GET /contacts/:contactId/tasks"]);
  return {
    timedOutCalls: (logs.match(/no answer within/g) ?? []).length,
    hungCalls: requests.filter((r) => r.status === 0).length,
    lateAnswers: late.length,
    lateCreates: late.filter((r) => creates.has(r.route)).length,
    createLookups: requests.filter((r) => lookups.has(r.route)).length,
  };
}

/** How many API calls the simulator answered with each fault (or left hanging). */
function faultTally(sim) {
  const tally = { "5xx": 0, 429: 0, hung: 0, 401: 0 };
  for (const { status } of sim.requests()) {
    if (status >= 500) tally["5xx"] += 1;
    else if (status === 429) tally[429] += 1;
    else if (status === 0) tally.hung += 1;
    else if (status === 401) tally[401] += 1;
  }
  return tally;
}
