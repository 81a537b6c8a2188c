// Tokens end to end: the built worker in workerd against the simulator's Contacts API and OAuth
// token endpoint, in each token mode. Covers caching in KV (encrypted), renewal ahead of expiry,
// the 401-then-refresh path, two deliveries racing to spend one refresh token, refusals for good
// (webhooks wait, the operator is told), the install flow and its refusals, key rotation, and a
// log capture that fails if any credential appears in a log line or a response.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, test } from "node:test";
import { contactEvent, LOCATION, SECRET, startWorld, TOKEN } from "./harness.mjs";

const CLIENT_ID = "sightmill-sync-e2e";
const CLIENT_SECRET = `client-secret-${randomBytes(12).toString("hex")}`;
const KEY1 = randomBytes(32).toString("base64");
const KEY2 = randomBytes(32).toString("base64");
const KEY3 = randomBytes(32).toString("base64");
const SHORT_LIFETIME_SECS = 60; // inside the worker's 5-minute refresh margin: renewed on every use

const issuerVars = (mode) => ({
  TOKEN_MODE: mode,
  CONTACTS_API_TOKEN: undefined,
  OAUTH_CLIENT_ID: CLIENT_ID,
  OAUTH_CLIENT_SECRET: CLIENT_SECRET,
  TOKEN_ENCRYPTION_KEYS: `k1:${KEY1}`,
});

/** A world in `mode` whose simulator knows only the app's client (no static token). */
const issuerWorld = (mode) =>
  startWorld({
    vars: issuerVars(mode),
    simulator: { tokens: {}, oauth: { clients: { [CLIENT_ID]: { secret: CLIENT_SECRET, locationId: LOCATION, companyId: "co-e2e" } } } },
  });

const ada = (id = "sm_ada") => contactEvent("contact.created", { id, email: `${id}@example.com`, name: "Ada Lovelace" });
const adaLater = (id = "sm_ada", at = "2026-11-27T11:00:00Z") =>
  contactEvent("contact.updated", { id, name: "Ada King", updated_at: at });

/** `[grantType, status]` of every token request the simulator answered. */
const grants = (world) => world.sim.oauth.grants().map((g) => [g.grantType, g.status]);
/** Statuses the Contacts API answered, in order. */
const apiStatuses = (world) => world.sim.requests().filter((r) => r.route.includes("/contacts")).map((r) => r.status);

async function storedToken(world) {
  return world.kv.get(`token:${LOCATION}`, "json");
}

/** Waits (bounded) until the worker's captured logs match `pattern`; the logs arrive asynchronously. */
async function logsMatching(world, pattern) {
  for (let i = 0; i < 100 && !pattern.test(world.logs()); i += 1) await new Promise((r) => setTimeout(r, 20));
  return world.logs();
}

/** The JSON log lines with `"msg": msg`. */
function logLines(logs, msg) {
  return logs
    .split("\n")
    .filter((line) => line.includes(`"msg":"${msg}"`))
    .map((line) => JSON.parse(line.slice(line.indexOf("{"))));
}

/** Runs the install flow like a browser: install route -> consent page -> callback (with the cookie). */
async function install(world, { cookie: sendCookie = true } = {}) {
  const start = await world.fetch("/oauth/install", { redirect: "manual" });
  assert.equal(start.status, 302, await start.clone().text());
  const cookie = start.headers.get("set-cookie").split(";")[0];
  const consent = await fetch(start.headers.get("location"), { redirect: "manual" });
  assert.equal(consent.status, 302);
  const callback = new URL(consent.headers.get("location"));
  const answer = await world.fetch(`${callback.pathname}${callback.search}`, { headers: sendCookie ? { cookie } : {} });
  return { start, cookie, callback, status: answer.status, headers: answer.headers, json: await answer.json() };
}

describe("private integration token (the default mode)", () => {
  let world;
  before(async () => {
    world = await startWorld();
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  test("the static token is sent as is and nothing is stored for it", async () => {
    const answer = await world.deliver(ada());
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(await world.kvKeys(), [`contact:${LOCATION}:sm_ada`, `webhook:${answer.id}`].sort());
    assert.deepEqual(grants(world), []);
  });

  test("a refused static token is not retried; the webhook waits and the operator is told", async () => {
    world.sim.revokeToken(TOKEN);
    try {
      const answer = await world.deliver(ada());
      assert.equal(answer.status, 503);
      assert.equal(answer.json.error, "contacts_api_token_rejected");
      assert.deepEqual(apiStatuses(world), [401], "no second call with the same token");
      const [line] = logLines(await logsMatching(world, /token refused/), "token refused");
      assert.equal(line.alert, true);
      assert.equal(line.mode, "private_integration");
      assert.match(line.action, /CONTACTS_API_TOKEN/);
    } finally {
      world.sim.addToken(TOKEN, LOCATION);
    }
  });
});

describe("client credentials", () => {
  let world;
  before(async () => {
    world = await issuerWorld("client_credentials");
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  test("the first webhook obtains a token; later ones reuse it from KV, where it is encrypted", async () => {
    assert.equal((await world.deliver(ada("sm_1"))).status, 200);
    assert.equal((await world.deliver(ada("sm_2"))).status, 200);
    assert.deepEqual(grants(world), [["client_credentials", 200]]);
    const record = await storedToken(world);
    assert.deepEqual(Object.keys(record).sort(), ["ciphertext", "kid", "nonce"]);
    assert.equal(record.kid, "k1");
    const raw = await world.kv.get(`token:${LOCATION}`);
    for (const secret of world.sim.oauth.secrets()) assert.ok(!raw.includes(secret), "no credential in clear in KV");
  });

  test("a token within the refresh margin of its expiry is renewed before it is used", async () => {
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    assert.equal((await world.deliver(ada("sm_1"))).status, 200);
    assert.equal((await world.deliver(ada("sm_2"))).status, 200);
    assert.deepEqual(grants(world), [["client_credentials", 200], ["client_credentials", 200]]);
    assert.deepEqual(apiStatuses(world), [201, 201], "the API never saw a stale token");
  });

  test("a token the API answers 401 for is renewed once and the call retried", async () => {
    await world.deliver(ada());
    world.sim.oauth.expireAccessTokens();
    const answer = await world.deliver(adaLater());
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json.action, "updated");
    assert.deepEqual(apiStatuses(world), [201, 401, 200]);
    assert.deepEqual(grants(world), [["client_credentials", 200], ["client_credentials", 200]]);
  });

  test("a token endpoint outage leaves the webhook pending with 503; the redelivery applies it", async () => {
    world.sim.injectFault({ route: "POST /oauth/token", status: 503 });
    const event = ada();
    const first = await world.deliver(event, { id: "msg_cc_outage" });
    assert.equal(first.status, 503, first.text);
    assert.equal(first.json.error, "contacts_api_unavailable");
    assert.match(first.json.message, /token endpoint answered HTTP 503/);
    assert.equal((await world.kv.get("webhook:msg_cc_outage", "json")).state, "pending");
    assert.deepEqual(apiStatuses(world), []);

    const second = await world.deliver(event, { id: "msg_cc_outage" });
    assert.equal(second.status, 200, second.text);
  });

  test("a wrong client secret is refused for good: the webhook waits and the operator is told", async () => {
    await world.reconfigure({ ...issuerVars("client_credentials"), OAUTH_CLIENT_SECRET: "not-the-secret" });
    try {
      const event = ada();
      const first = await world.deliver(event, { id: "msg_cc_client" });
      assert.equal(first.status, 503);
      assert.equal(first.json.error, "contacts_api_token_rejected");
      assert.equal((await world.kv.get("webhook:msg_cc_client", "json")).state, "pending");
      const [line] = logLines(await logsMatching(world, /token refused/), "token refused");
      assert.equal(line.mode, "client_credentials");
      assert.match(line.error, /invalid_client/);
      assert.match(line.action, /OAUTH_CLIENT_SECRET/);

      await world.reconfigure(issuerVars("client_credentials"));
      const again = await world.deliver(event, { id: "msg_cc_client" });
      assert.equal(again.status, 200, again.text);
    } finally {
      await world.reconfigure(issuerVars("client_credentials"));
    }
  });
});
