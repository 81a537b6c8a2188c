// End-to-end harness: runs the built worker (build/index.js + Wasm) inside workerd through
// Miniflare, with a real local KV namespace, beside the Contacts API simulator; signs webhooks the
// way SightMill does and captures everything the worker logs.

import { Miniflare } from "miniflare";
import { startSimulator } from "../simulator/server.mjs";
import { sightmillEvent, sign, signedDelivery } from "../support/webhooks.mjs";

export { sign };

export const LOCATION = "loc-e2e";
export const TOKEN = "pit-e2e-0123456789abcdef";
export const SECRET = `whsec_${Buffer.from("sightmill-e2e-signing-key-32byte").toString("base64")}`;
export const WEBHOOK_PATH = "/webhooks/sightmill";
const BASE = "http://worker.test";

/**
 * Starts the simulator and the worker. `vars` override the worker's settings (a value of
 * `undefined` removes one); `simulator` is passed to startSimulator.
 */
export async function startWorld({ vars = {}, simulator = {} } = {}) {
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
      STATUS_CUSTOM_FIELD_ID: "cf_status",
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
    kvNamespaces: ["SYNC_KV"],
    unsafeTriggerHandlers: true,
    bindings,
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (chunk) => logs.push(chunk.toString()));
      stderr.on("data", (chunk) => logs.push(chunk.toString()));
    },
  };
  const mf = new Miniflare(options);
  await mf.ready;
  let kv = await mf.getKVNamespace("SYNC_KV");

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
    /** Every key in KV. */
    async kvKeys() {
      const { keys } = await kv.list();
      return keys.map((key) => key.name);
    },
    /** Empties the simulator and KV between tests. */
    async reset() {
      sim.reset();
      for (const name of await this.kvKeys()) await kv.delete(name);
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

/** Total API calls the simulator received. */
export function apiCalls(sim) {
  return Object.values(sim.counts()).reduce((sum, n) => sum + n, 0);
}
