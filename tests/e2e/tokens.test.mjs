// Tokens end to end: the built worker in workerd against the simulator's Contacts API and OAuth
// token endpoint, in each token mode. Covers caching in KV (encrypted), renewal ahead of expiry,
// the 401-then-refresh path, two deliveries racing to spend one refresh token, refusals for good
// (webhooks wait, the operator is told), the install flow and its refusals, key rotation, and a
// log capture that fails if any credential appears in a log line or a response.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, test } from "node:test";
import { contactEvent, LOCATION, SECRET, sleep, startWorld, TOKEN } from "./harness.mjs";

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
  // Installs without an operator's install link are let in for this company's locations only.
  OAUTH_INSTALL_ALLOW: "co-e2e",
});

/** A world in `mode` whose simulator knows only the app's client (no static token). */
const issuerWorld = (mode) =>
  startWorld({
    duplicates: "refuse",
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

/** The token record in KV (the truth behind every location's cache). */
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

/** Delivers `event`, waits for its first attempt, and asserts that attempt applied it. */
async function applied(world, event, overrides) {
  const { answer, record } = await world.deliverAndSettle(event, overrides);
  assert.equal(answer.status, 202, answer.text);
  assert.equal(record.state, "finished", JSON.stringify(record));
  return { answer, record };
}

/** Delivers `event`, waits for its first attempt, and asserts it waits in the queue. */
async function waits(world, event, overrides) {
  const { answer, record } = await world.deliverAndSettle(event, overrides);
  assert.equal(answer.status, 202, answer.text);
  assert.equal(record.state, "pending", JSON.stringify(record));
  return { answer, record };
}

/** Lets a waiting webhook come due (the tests' retry delays are 1 s), runs the cron, returns its record. */
async function retried(world, id) {
  await sleep(1300);
  await world.cron();
  return world.record(id);
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
    world = await startWorld({ duplicates: "refuse" });
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  test("the static token is sent as is and nothing is stored for it", async () => {
    const { answer } = await applied(world, ada());
    assert.deepEqual(await world.kvKeys(), [`webhook:${answer.id}`], "only the finished webhook's idempotency key");
    assert.equal((await world.links("sm_ada")).contact.state, "live", "the id map is the Durable Object's");
    assert.deepEqual(grants(world), []);
  });

  test("a refused static token is not retried; the webhook waits and the operator is told", async () => {
    world.sim.revokeToken(TOKEN);
    try {
      const { record } = await waits(world, ada());
      assert.match(record.last_error, /token renewal refused/);
      assert.deepEqual(apiStatuses(world), [401], "no second call with the same token");
      const [line] = logLines(await logsMatching(world, /token refused/), "token refused");
      assert.equal(line.alert, true);
      assert.equal(line.mode, "private_integration");
      assert.match(line.action, /CONTACTS_API_TOKEN/);
    } finally {
      world.sim.addToken(TOKEN, LOCATION);
    }
  });

  test("the install routes are off: 404 oauth_disabled, 405 for other methods", async () => {
    for (const path of ["/oauth/install", "/oauth/callback?code=x&state=y"]) {
      const response = await world.fetch(path, { redirect: "manual" });
      assert.equal(response.status, 404);
      assert.equal((await response.json()).error, "oauth_disabled");
    }
    const post = await world.fetch("/oauth/callback", { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal((await post.json()).error, "method_not_allowed");
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
    await applied(world, ada("sm_1"));
    await applied(world, ada("sm_2"));
    assert.deepEqual(grants(world), [["client_credentials", 200]]);
    const record = await storedToken(world);
    assert.deepEqual(Object.keys(record).sort(), ["ciphertext", "kid", "nonce"]);
    assert.equal(record.kid, "k1");
    const raw = await world.kv.get(`token:${LOCATION}`);
    for (const secret of world.sim.oauth.secrets()) assert.ok(!raw.includes(secret), "no credential in clear in KV");
    const status = await world.admin("GET", "status");
    const [token] = status.json.tokens;
    assert.equal(token.mode, "client_credentials");
    assert.equal(token.state, "stored");
    assert.ok(token.expires_at_ms > Date.now(), "the operator sees when the token expires");
    for (const secret of world.sim.oauth.secrets()) assert.ok(!JSON.stringify(status.json).includes(secret));
  });

  test("a token within the refresh margin of its expiry is renewed before it is used", async () => {
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    await applied(world, ada("sm_1"));
    await applied(world, ada("sm_2"));
    assert.deepEqual(grants(world), [["client_credentials", 200], ["client_credentials", 200]]);
    assert.deepEqual(apiStatuses(world), [201, 201], "the API never saw a stale token");
  });

  test("a token the API answers 401 for is renewed once and the call retried", async () => {
    await applied(world, ada());
    world.sim.oauth.expireAccessTokens();
    const { record } = await applied(world, adaLater());
    assert.equal(record.outcome.action, "updated");
    assert.deepEqual(apiStatuses(world), [201, 401, 200]);
    assert.deepEqual(grants(world), [["client_credentials", 200], ["client_credentials", 200]]);
  });

  test("a token endpoint outage leaves the webhook waiting in the queue; the cron applies it", async () => {
    world.sim.injectFault({ route: "POST /oauth/token", status: 503 });
    const { record } = await waits(world, ada(), { id: "msg_cc_outage" });
    assert.match(record.last_error, /token endpoint answered HTTP 503/);
    assert.deepEqual(apiStatuses(world), []);
    assert.equal((await retried(world, "msg_cc_outage")).state, "finished");
  });

  test("a wrong client secret is refused for good: the webhook waits and the operator is told", async () => {
    await world.reconfigure({ ...issuerVars("client_credentials"), OAUTH_CLIENT_SECRET: "not-the-secret" });
    try {
      const { record } = await waits(world, ada(), { id: "msg_cc_client" });
      assert.match(record.last_error, /token renewal refused/);
      const [line] = logLines(await logsMatching(world, /token refused/), "token refused");
      assert.equal(line.mode, "client_credentials");
      assert.match(line.error, /invalid_client/);
      assert.match(line.action, /OAUTH_CLIENT_SECRET/);

      await world.reconfigure(issuerVars("client_credentials"));
      assert.equal((await retried(world, "msg_cc_client")).state, "finished");
    } finally {
      await world.reconfigure(issuerVars("client_credentials"));
    }
  });
});

describe("OAuth install", () => {
  let world;
  before(async () => {
    world = await issuerWorld("oauth");
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  test("before the install, webhooks wait in the queue with a message pointing at /oauth/install", async () => {
    const { record } = await waits(world, ada(), { id: "msg_early" });
    assert.match(record.last_error, /no OAuth installation for location `loc-e2e`.*\/oauth\/install/);

    assert.equal((await install(world)).status, 200);
    assert.equal((await retried(world, "msg_early")).state, "finished");
  });

  test("install -> consent -> callback stores the tokens encrypted; webhooks then use them", async () => {
    const flow = await install(world);
    const redirect = new URL(flow.start.headers.get("location"));
    assert.equal(`${redirect.origin}${redirect.pathname}`, `${world.sim.url}/oauth/chooselocation`);
    assert.equal(redirect.searchParams.get("response_type"), "code");
    assert.equal(redirect.searchParams.get("client_id"), CLIENT_ID);
    assert.equal(redirect.searchParams.get("redirect_uri"), "http://worker.test/oauth/callback");
    const scopes = "contacts.readonly contacts.write locations/customFields.readonly workflows.readonly campaigns.readonly";
    assert.equal(redirect.searchParams.get("scope"), scopes, "the contacts, custom fields, workflows and campaigns scopes");
    assert.match(redirect.searchParams.get("state"), /^\d+\.[\w-]+\.location\.-\.0\.[\w-]+$/, "kind, no install link (the allow-list let it start)");
    assert.match(flow.start.headers.get("set-cookie"), /^sightmill_sync_oauth=[\w-]+; Path=\/oauth\/callback; Max-Age=600; HttpOnly; Secure; SameSite=Lax$/);

    assert.equal(flow.status, 200, JSON.stringify(flow.json));
    assert.deepEqual(flow.json, { status: "installed", location_id: LOCATION, company_id: "co-e2e", scope: scopes });
    assert.match(flow.headers.get("set-cookie"), /^sightmill_sync_oauth=; .*Max-Age=0/);
    assert.equal((await storedToken(world)).kid, "k1");

    await applied(world, ada());
    assert.deepEqual(grants(world), [["authorization_code", 200]]);
  });

  test("forged, foreign-browser, incomplete and denied callbacks are refused and store nothing", async () => {
    const start = await world.fetch("/oauth/install", { redirect: "manual" });
    const cookie = start.headers.get("set-cookie").split(";")[0];
    const state = new URL(start.headers.get("location")).searchParams.get("state");
    const [expires, nonce, mac] = state.split(".");
    const forged = `${Number(expires) + 3600}.${nonce}.${mac}`;
    const enc = encodeURIComponent;
    const cases = [
      [`?code=c1`, cookie, 401, "invalid_state"],
      [`?code=c1&state=${enc(forged)}`, cookie, 401, "invalid_state"],
      [`?code=c1&state=${enc(`${expires}.${nonce}.${"A".repeat(43)}`)}`, cookie, 401, "invalid_state"],
      [`?code=c1&state=not-a-state`, cookie, 401, "invalid_state"],
      [`?code=c1&state=${enc(state)}`, null, 401, "invalid_state"],
      [`?code=c1&state=${enc(state)}`, "sightmill_sync_oauth=someone-else", 401, "invalid_state"],
      [`?state=${enc(state)}`, cookie, 400, "missing_code"],
      [`?error=access_denied&state=${enc(state)}`, cookie, 400, "authorization_denied"],
      [`?code=made-up-code&state=${enc(state)}`, cookie, 400, "authorization_code_rejected"],
    ];
    for (const [query, sentCookie, status, code] of cases) {
      const response = await world.fetch(`/oauth/callback${query}`, { headers: sentCookie ? { cookie: sentCookie } : {} });
      const body = await response.json();
      assert.equal(response.status, status, `${query}: ${JSON.stringify(body)}`);
      assert.equal(body.error, code, query);
      assert.equal(typeof body.message, "string");
    }
    assert.deepEqual(await world.kvKeys(), []);
  });

  test("a code is good for one callback only", async () => {
    const flow = await install(world);
    assert.equal(flow.status, 200);
    const replay = await world.fetch(`${flow.callback.pathname}${flow.callback.search}`, { headers: { cookie: flow.cookie } });
    assert.equal(replay.status, 400);
    const body = await replay.json();
    assert.equal(body.error, "authorization_code_rejected");
    assert.match(body.message, /invalid_grant: Authorization code has already been used/);
  });

  test("an install for another location makes it a named connection (no secret yet); the default one is untouched", async () => {
    world.sim.oauth.setConsentLocation("loc-elsewhere");
    const flow = await install(world);
    assert.equal(flow.status, 200, JSON.stringify(flow.json));
    assert.equal(flow.json.connection, "loc-elsewhere");
    assert.match(flow.json.next, /POST \/admin\/connections\/loc-elsewhere\/secrets/);
    assert.deepEqual(await world.kvKeys(), ["connection:loc-elsewhere", "token:loc-elsewhere"], "the tokens are the new location's, and its record is published for the edge");
    const { connection } = (await world.admin("GET", "connections/loc-elsewhere")).json;
    assert.deepEqual([connection.token.kind, connection.secrets], ["oauth", []]);
  });

  test("a token without a location (not a sub-account install) is refused with 502", async () => {
    const companyToken = { access_token: "company-token", expires_in: 86399, refresh_token: "company-refresh", userType: "Company" };
    world.sim.injectFault({ route: "POST /oauth/token", status: 200, body: companyToken });
    const flow = await install(world);
    assert.equal(flow.status, 502);
    assert.equal(flow.json.error, "no_location");
    assert.deepEqual(await world.kvKeys(), []);
  });

  test("a token endpoint outage during the callback answers 503", async () => {
    world.sim.injectFault({ route: "POST /oauth/token", status: 502 });
    const flow = await install(world);
    assert.equal(flow.status, 503);
    assert.equal(flow.json.error, "token_endpoint_unavailable");
  });

  test("an invalid token setting answers 500 naming it, never its value", async () => {
    await world.reconfigure({ ...issuerVars("oauth"), TOKEN_ENCRYPTION_KEYS: `k1:${KEY1.slice(0, 20)}` });
    try {
      const response = await world.fetch("/oauth/install", { redirect: "manual" });
      assert.equal(response.status, 500);
      const body = await response.json();
      assert.equal(body.error, "misconfigured");
      assert.match(body.message, /`TOKEN_ENCRYPTION_KEYS` is invalid: entry 1 \(`k1`\)/);
      assert.ok(!body.message.includes(KEY1.slice(0, 20)));
      const { record } = await waits(world, ada());
      assert.match(record.last_error, /TOKEN_ENCRYPTION_KEYS/);
    } finally {
      await world.reconfigure(issuerVars("oauth"));
    }
  });
});

describe("OAuth renewal", () => {
  let world;
  before(async () => {
    world = await issuerWorld("oauth");
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  test("near expiry the token is refreshed, and each refresh's new refresh token is the one kept", async () => {
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    assert.equal((await install(world)).status, 200);
    const installed = await storedToken(world);
    await applied(world, ada("sm_1"));
    const refreshed = await storedToken(world);
    assert.notEqual(refreshed.ciphertext, installed.ciphertext);
    await applied(world, ada("sm_2"));
    assert.deepEqual(grants(world), [
      ["authorization_code", 200],
      ["refresh_token", 200],
      ["refresh_token", 200], // a spent refresh token would have been refused with 400
    ]);
    assert.deepEqual(apiStatuses(world), [201, 201]);
    const renewals = logLines(await logsMatching(world, /token renewed/), "token renewed");
    assert.deepEqual(renewals.map((l) => l.grant), ["refresh_token", "refresh_token"]);
  });

  test("a 401 for the token leads to one refresh and one retry", async () => {
    await install(world);
    await applied(world, ada());
    world.sim.oauth.expireAccessTokens();
    await applied(world, adaLater());
    assert.deepEqual(apiStatuses(world), [201, 401, 200]);
    assert.deepEqual(grants(world), [["authorization_code", 200], ["refresh_token", 200]]);
  });

  test("a second token 401 after the refresh is not retried again: the webhook waits", async () => {
    await install(world);
    world.sim.injectFault({ route: "POST /contacts/", status: 401, count: 2, body: { statusCode: 401, message: "Invalid JWT" } });
    const { record } = await waits(world, ada(), { id: "msg_twice" });
    assert.match(record.last_error, /refused the access token/);
    assert.deepEqual(apiStatuses(world), [401, 401]);
    assert.deepEqual(grants(world), [["authorization_code", 200], ["refresh_token", 200]]);
    assert.equal((await retried(world, "msg_twice")).state, "finished");
  });

  test("the Version-header 401 is a configuration error, not a token problem: no refresh", async () => {
    await install(world);
    world.sim.injectFault({ route: "POST /contacts/", status: 401, body: { statusCode: 401, message: "version header was not found." } });
    const { record } = await waits(world, ada());
    assert.match(record.last_error, /Version header/);
    assert.deepEqual(grants(world), [["authorization_code", 200]]);
  });

  test("two deliveries that both need a refresh share one: the refresh token is spent once, both apply", async () => {
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    await install(world);
    // The refresh is held at the endpoint, so the second webhook's attempt asks while it is under way.
    world.sim.injectFault({ route: "POST /oauth/token", latencyMs: 500, count: 1 });
    await Promise.all([applied(world, ada("sm_a")), applied(world, ada("sm_b"))]);
    const refreshes = world.sim.oauth.grants().filter((g) => g.grantType === "refresh_token");
    assert.deepEqual(refreshes.map((g) => [g.status, g.error]), [[200, null]], "one refresh, never a second with the spent token");
    assert.equal(world.sim.state().contacts.length, 2);
    assert.deepEqual(apiStatuses(world), [201, 201]);
    assert.equal(logLines(world.logs(), "token refused").length, 0, "no false alarm");
  });

  test("a revoked refresh token: webhooks wait in the queue, the operator is told, nothing is lost", async () => {
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    await install(world);
    world.sim.oauth.revokeRefreshTokens();
    const { record } = await waits(world, ada(), { id: "msg_revoked" });
    assert.match(record.last_error, /token renewal refused/);
    const [line] = logLines(await logsMatching(world, /token refused/), "token refused");
    assert.equal(line.alert, true);
    assert.equal(line.location_id, LOCATION);
    assert.match(line.error, /invalid_grant: Refresh token has been revoked/);
    assert.match(line.action, /\/oauth\/install/);
    assert.deepEqual(apiStatuses(world), []);

    assert.equal((await install(world)).status, 200, "the operator installs again");
    assert.equal((await retried(world, "msg_revoked")).state, "finished");
    assert.equal(world.sim.state().contacts.length, 1);
  });

  test("an inactive location: the refresh is refused, webhooks wait, and apply once it is active", async () => {
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    await install(world);
    world.sim.oauth.deactivateLocation(LOCATION);
    await waits(world, ada(), { id: "msg_inactive" });
    const [line] = logLines(await logsMatching(world, /token refused/), "token refused");
    assert.match(line.error, /Location is not active/);
    world.sim.oauth.activateLocation(LOCATION);
    assert.equal((await retried(world, "msg_inactive")).state, "finished");
  });
});

describe("encryption key rotation", () => {
  let world;
  before(async () => {
    world = await issuerWorld("oauth");
  });
  after(() => world.close());

  test("records under the old key still open, and are re-encrypted under the new key on the next write", async () => {
    await install(world);
    assert.equal((await storedToken(world)).kid, "k1");

    await world.reconfigure({ ...issuerVars("oauth"), TOKEN_ENCRYPTION_KEYS: `k2:${KEY2} k1:${KEY1}` });
    await applied(world, ada("sm_1")); // the k1 record opens
    assert.equal((await storedToken(world)).kid, "k1", "reading alone does not rewrite it");

    world.sim.oauth.expireAccessTokens();
    await applied(world, ada("sm_2"));
    assert.equal((await storedToken(world)).kid, "k2", "the refresh wrote it under the current key");

    await world.reconfigure({ ...issuerVars("oauth"), TOKEN_ENCRYPTION_KEYS: `k2:${KEY2}` });
    await applied(world, ada("sm_3")); // k1 can be retired

    await world.reconfigure({ ...issuerVars("oauth"), TOKEN_ENCRYPTION_KEYS: `k3:${KEY3}` });
    const { record } = await waits(world, ada("sm_4"));
    assert.match(record.last_error, /key id `k2`, which TOKEN_ENCRYPTION_KEYS does not list/);
    assert.deepEqual(grants(world), [["authorization_code", 200], ["refresh_token", 200]]);
  });
});

describe("credentials never reach logs or responses", () => {
  let world;
  before(async () => {
    world = await issuerWorld("oauth");
  });
  after(() => world.close());

  test("a full flow through every token path logs no token, refresh token, code, client secret or key", async () => {
    const texts = [];
    const keep = async (promise) => {
      const { answer, record } = await promise;
      texts.push(answer.text, JSON.stringify(record));
      return answer;
    };
    const deliver = (event) => world.deliverAndSettle(event);
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    const flow = await install(world);
    texts.push(JSON.stringify(flow.json), flow.start.headers.get("location"));
    await keep(deliver(ada("sm_1"))); // refresh ahead of expiry
    world.sim.oauth.setTokenLifetime(3600);
    await keep(deliver(ada("sm_2"))); // refresh
    world.sim.oauth.expireAccessTokens();
    await keep(deliver(adaLater("sm_2"))); // 401, refresh, retry
    world.sim.oauth.setTokenLifetime(SHORT_LIFETIME_SECS);
    world.sim.oauth.expireAccessTokens();
    await keep(deliver(ada("sm_3")));
    world.sim.injectFault({ route: "POST /oauth/token", latencyMs: 300, count: 2 });
    await Promise.all([keep(deliver(ada("sm_4"))), keep(deliver(ada("sm_5")))]); // race
    world.sim.oauth.revokeRefreshTokens();
    await keep(deliver(ada("sm_6"))); // refused for good
    const replay = await world.fetch(`${flow.callback.pathname}${flow.callback.search}`, { headers: { cookie: flow.cookie } });
    texts.push(await replay.text()); // a spent code

    await world.reconfigure({ ...issuerVars("client_credentials"), TOKEN_ENCRYPTION_KEYS: `k2:${KEY2} k1:${KEY1}` });
    await keep(deliver(ada("sm_7")));
    await world.reconfigure({ ...issuerVars("client_credentials"), OAUTH_CLIENT_SECRET: `${CLIENT_SECRET}-wrong` });
    world.sim.oauth.expireAccessTokens();
    await keep(deliver(ada("sm_8"))); // 401, then the client_credentials grant: invalid_client

    const logs = await logsMatching(world, /invalid_client/);
    const kinds = ["token renewed", "token refused", "oauth installed"];
    for (const kind of kinds) assert.ok(logLines(logs, kind).length > 0, `the flow logged "${kind}"`);
    const secrets = [
      ...world.sim.oauth.secrets(),
      `${CLIENT_SECRET}-wrong`,
      KEY1,
      KEY2,
      TOKEN,
      SECRET,
      SECRET.replace("whsec_", ""),
    ];
    assert.ok(secrets.length > 12, `${secrets.length} credentials checked`);
    const everything = [logs, ...texts].join("\n");
    for (const secret of secrets) {
      assert.ok(!everything.includes(secret), `credential number ${secrets.indexOf(secret)} leaked`);
    }
    for (const key of await world.kvKeys()) {
      const value = await world.kv.get(key);
      for (const secret of secrets) assert.ok(!value.includes(secret), `a credential is in clear in KV under ${key}`);
    }
  });
});
