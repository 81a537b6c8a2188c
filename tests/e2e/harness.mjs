// End-to-end harness: runs the built worker (build/index.js + Wasm) inside workerd through
// Miniflare, with a real local KV namespace, beside the Contacts API simulator; signs webhooks the
// way SightMill does and captures everything the worker logs.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { startSimulator } from "../simulator/server.mjs";
import { sightmillEvent, sign, signedDelivery } from "../support/webhooks.mjs";

export { sign };

export const LOCATION = "loc-e2e";
export const TOKEN = "pit-e2e-0123456789abcdef";
export const SECRET = `whsec_${Buffer.from("sightmill-e2e-signing-key-32byte").toString("base64")}`;
export const WEBHOOK_PATH = "/webhooks/sightmill";
/** Two read API keys (several may be configured) and an operator API key. */
export const READ_KEYS = ["read-key-e2e-0123456789abcdef", "read-key-e2e-fedcba9876543210"];
export const ADMIN_KEY = "admin-key-e2e-0123456789abcdef";
/** The named edge cache the read API keeps answers in (emptied by reset()). */
const READ_CACHE = "sightmill-sync-read";
const BASE = "http://worker.test";

/**
 * Starts the simulator and the worker. `vars` override the worker's settings (a value of
 * `undefined` removes one); `simulator` is passed to startSimulator; `bindKv: false` starts the
 * worker without its KV namespace (a broken deployment).
 */
export async function startWorld({ vars = {}, simulator = {}, bindKv = true } = {}) {
  const sim = await startSimulator({
    tokens: { [TOKEN]: LOCATION },
    locations: { [LOCATION]: { allowDuplicates: false } },
    ...simulator,
  });
  const bindings = Object.fromEntries(
    Object.entries({
      GHL_LOCATION_ID: LOCATION,
      CONTACTS_API_BASE: sim.url,
      WEBHOOK_SECRETS: SECRET,
      CONTACTS_API_TOKEN: TOKEN,
      API_TIMEOUT_MS: "2000",
      ADMIN_API_KEYS: ADMIN_KEY,
      READ_API_KEYS: READ_KEYS.join(" "),
      // Seconds instead of minutes, so that tests can drive retries.
      RETRY_SCHEDULE: "1s,1s,1s",
      OAUTH_BASE: sim.url,
      OAUTH_INSTALL_URL: `${sim.url}/oauth/chooselocation`,
      ...vars,
    }).filter(([, value]) => value !== undefined),
  );
  const logs = [];
  const options = {
    modules: true,
    scriptPath: "build/index.js",
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate: "2026-04-26",
    kvNamespaces: bindKv ? ["SYNC_KV"] : [],
    durableObjects: { LOCATIONS: { className: "Location", useSQLite: true } },
    unsafeTriggerHandlers: true,
    bindings,
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (chunk) => logs.push(chunk.toString()));
      stderr.on("data", (chunk) => logs.push(chunk.toString()));
    },
  };
  const mf = new Miniflare(options);
  await mf.ready;
  let kv = bindKv ? await mf.getKVNamespace("SYNC_KV") : null;

  return {
    sim,
    mf,
    kv,
    logs: () => logs.join(""),
    /** Restarts the worker with `vars` changed (undefined removes one); KV and the simulator keep their state. */
    async reconfigure(vars) {
      const changed = Object.entries({ ...bindings, ...vars }).filter(([, value]) => value !== undefined);
      await mf.setOptions({ ...options, bindings: Object.fromEntries(changed) });
      kv = await mf.getKVNamespace("SYNC_KV");
      this.kv = kv;
    },
    fetch: (path, init) => mf.dispatchFetch(`${BASE}${path}`, init),
    /** Signs and posts a webhook; `overrides` can break any part of it. */
    async deliver(event, overrides = {}) {
      const request = signedDelivery(SECRET, event, overrides);
      const response = await mf.dispatchFetch(`${BASE}${WEBHOOK_PATH}`, request);
      const text = await response.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {}
      return { status: response.status, headers: response.headers, json, text, id: request.id };
    },
    /** Waits until the webhook's first attempt is over (finished, parked, or rescheduled). */
    async settle(id, { timeoutMs = 5000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const record = await this.record(id);
        if (record && (record.state !== "pending" || record.last_error)) return record;
        if (Date.now() > deadline) throw new Error(`webhook ${id} did not settle: ${JSON.stringify(record)}`);
        await sleep(10);
      }
    },
    /** Delivers a webhook and waits for its first attempt; returns the answer and the record. */
    async deliverAndSettle(event, overrides = {}) {
      const answer = await this.deliver(event, overrides);
      if (answer.status !== 202) return { answer, record: await this.record(answer.id) };
      return { answer, record: await this.settle(answer.id) };
    },
    /** The webhook's record, from the operator API (null when unknown). */
    async record(id) {
      const { status, json } = await this.admin("GET", `events/${encodeURIComponent(id)}`);
      return status === 200 ? json : null;
    },
    /** Runs the scheduled (cron) handler once, as the cron trigger would. */
    async cron() {
      const worker = await mf.getWorker();
      await worker.scheduled({ cron: "* * * * *" });
    },
    /** Calls the operator API with the admin key (or `key`). */
    async admin(method, path, { body, key = ADMIN_KEY } = {}) {
      const headers = key ? { authorization: `Bearer ${key}` } : {};
      const init = { method, headers };
      if (body !== undefined) {
        init.body = typeof body === "string" ? body : JSON.stringify(body);
        headers["content-type"] = "application/json";
      }
      const response = await mf.dispatchFetch(`${BASE}/admin/${path}`, init);
      const text = await response.text();
      return { status: response.status, json: text ? JSON.parse(text) : null };
    },
    /** Every key in KV. */
    async kvKeys() {
      const { keys } = await kv.list();
      return keys.map((key) => key.name);
    },
    /** Empties the simulator, KV and the read cache between tests. */
    async reset() {
      sim.reset();
      for (const name of await this.kvKeys()) await kv.delete(name);
      await mf.purgeCache(READ_CACHE);
      // A fresh state directory: the Durable Object starts empty.
      options.durableObjectsPersist = mkdtempSync(join(tmpdir(), "sightmill-do-"));
      await mf.setOptions(options);
      kv = await mf.getKVNamespace("SYNC_KV");
      this.kv = kv;
      logs.length = 0;
    },
    async close() {
      await mf.dispose();
      await sim.close();
    },
  };
}

/** A contact.created / contact.updated event. */
export const contactEvent = sightmillEvent;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Total API calls the simulator received. */
export function apiCalls(sim) {
  return Object.values(sim.counts()).reduce((sum, n) => sum + n, 0);
}
