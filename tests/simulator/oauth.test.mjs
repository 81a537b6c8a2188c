// Tests of the simulator's OAuth side (node --test tests/simulator/): the token endpoint's three
// grants, rotating refresh tokens, lifetimes and expiry, refusals, the consent page, and control.

import assert from "node:assert/strict";
import { test } from "node:test";
import { startSimulator } from "./server.mjs";

const LOCATION = "loc-1";
const CLIENT = { clientId: "client-1", secret: "client-secret-1" };
const REDIRECT = "https://sync.example/oauth/callback";

async function withSim(options, fn) {
  const sim = await startSimulator({
    oauth: { clients: { [CLIENT.clientId]: { secret: CLIENT.secret, locationId: LOCATION, companyId: "co-1" } } },
    ...options,
  });
  try {
    await fn(sim);
  } finally {
    await sim.close();
  }
}

/** POST /oauth/token with a form; `fields` override the client's. */
async function token(sim, fields) {
  const form = new URLSearchParams({ client_id: CLIENT.clientId, client_secret: CLIENT.secret, user_type: "Location", ...fields });
  const res = await fetch(`${sim.url}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form,
  });
  return { status: res.status, body: await res.json() };
}

/** GET /contacts/x with a bearer token: 400 "not found" means the token was accepted. */
async function apiStatus(sim, bearer) {
  const res = await fetch(`${sim.url}/contacts/x`, { headers: { authorization: `Bearer ${bearer}`, version: "2021-07-28" } });
  return res.status;
}

const install = (sim) => token(sim, { grant_type: "authorization_code", code: sim.oauth.issueCode({ clientId: CLIENT.clientId, locationId: LOCATION, redirectUri: REDIRECT }), redirect_uri: REDIRECT });

test("authorization_code issues a location token pair, once per code", async () => {
  await withSim({}, async (sim) => {
    const code = sim.oauth.issueCode({ clientId: CLIENT.clientId, locationId: LOCATION, redirectUri: REDIRECT });
    const issued = await token(sim, { grant_type: "authorization_code", code, redirect_uri: REDIRECT });
    assert.equal(issued.status, 200);
    const body = issued.body;
    assert.match(body.access_token, /^sim_at_/);
    assert.match(body.refresh_token, /^sim_rt_/);
    assert.equal(body.expires_in, 86_399);
    assert.equal(body.token_type, "Bearer");
    assert.equal(body.userType, "Location");
    assert.equal(body.locationId, LOCATION);
    assert.equal(body.companyId, "co-1");
    assert.equal(body.scope, "contacts.readonly contacts.write");
    assert.equal(await apiStatus(sim, body.access_token), 400, "the access token works on the API");

    const again = await token(sim, { grant_type: "authorization_code", code, redirect_uri: REDIRECT });
    assert.deepEqual(again, { status: 400, body: { error: "invalid_grant", error_description: "Authorization code has already been used" } });
    const other = sim.oauth.issueCode({ clientId: CLIENT.clientId, locationId: LOCATION, redirectUri: REDIRECT });
    const wrongRedirect = await token(sim, { grant_type: "authorization_code", code: other, redirect_uri: "https://evil.example/cb" });
    assert.equal(wrongRedirect.body.error, "invalid_grant");
    assert.deepEqual((await token(sim, { grant_type: "authorization_code", code: "nope" })).body.error, "invalid_grant");
  });
});

test("refresh_token rotates: the new pair works, the old refresh token is spent", async () => {
  await withSim({}, async (sim) => {
    const first = (await install(sim)).body;
    const second = await token(sim, { grant_type: "refresh_token", refresh_token: first.refresh_token });
    assert.equal(second.status, 200);
    assert.notEqual(second.body.refresh_token, first.refresh_token);
    assert.notEqual(second.body.access_token, first.access_token);
    const spent = await token(sim, { grant_type: "refresh_token", refresh_token: first.refresh_token });
    assert.deepEqual(spent, { status: 400, body: { error: "invalid_grant", error_description: "Refresh token has already been used" } });
    const third = await token(sim, { grant_type: "refresh_token", refresh_token: second.body.refresh_token });
    assert.equal(third.status, 200);
    assert.deepEqual(
      sim.oauth.grants().map((g) => [g.grantType, g.status]),
      [["authorization_code", 200], ["refresh_token", 200], ["refresh_token", 400], ["refresh_token", 200]],
    );
  });
});

test("client_credentials issues an access token without a refresh token", async () => {
  await withSim({}, async (sim) => {
    const issued = await token(sim, { grant_type: "client_credentials" });
    assert.equal(issued.status, 200);
    assert.equal(issued.body.refresh_token, undefined);
    assert.equal(issued.body.locationId, LOCATION);
    assert.equal(await apiStatus(sim, issued.body.access_token), 400);
  });
});

test("access tokens expire after their lifetime, or at once on demand", async () => {
  let now = 1_000_000;
  await withSim({ now: () => now, oauth: { clients: { [CLIENT.clientId]: { secret: CLIENT.secret, locationId: LOCATION } }, tokenLifetimeSecs: 60 } }, async (sim) => {
    const short = (await token(sim, { grant_type: "client_credentials" })).body;
    assert.equal(short.expires_in, 60);
    now += 59_999;
    assert.equal(await apiStatus(sim, short.access_token), 400);
    now += 1;
    assert.equal(await apiStatus(sim, short.access_token), 401, "expired");

    sim.oauth.setTokenLifetime(3600);
    const long = (await token(sim, { grant_type: "client_credentials" })).body;
    assert.equal(long.expires_in, 3600);
    assert.equal(sim.oauth.expireAccessTokens(LOCATION), 2);
    assert.equal(await apiStatus(sim, long.access_token), 401);
  });
});

test("revoked or expired refresh tokens and inactive locations are refused", async () => {
  let now = 1_000_000;
  await withSim({ now: () => now }, async (sim) => {
    const revoked = (await install(sim)).body;
    assert.equal(sim.oauth.revokeRefreshTokens(LOCATION), 1);
    const refused = await token(sim, { grant_type: "refresh_token", refresh_token: revoked.refresh_token });
    assert.deepEqual(refused.body, { error: "invalid_grant", error_description: "Refresh token has been revoked" });

    const live = (await install(sim)).body;
    sim.oauth.deactivateLocation(LOCATION);
    const inactive = await token(sim, { grant_type: "refresh_token", refresh_token: live.refresh_token });
    assert.deepEqual(inactive, { status: 400, body: { error: "invalid_grant", error_description: "Location is not active" } });
    assert.equal((await token(sim, { grant_type: "client_credentials" })).body.error_description, "Location is not active");
    sim.oauth.activateLocation(LOCATION);
    assert.equal((await token(sim, { grant_type: "refresh_token", refresh_token: live.refresh_token })).status, 200, "not spent by the refusal");

    const old = (await install(sim)).body;
    now += 366 * 24 * 3_600_000;
    const expired = await token(sim, { grant_type: "refresh_token", refresh_token: old.refresh_token });
    assert.equal(expired.body.error_description, "Refresh token has expired");
  });
});

test("bad clients and requests get OAuth errors", async () => {
  await withSim({}, async (sim) => {
    const cases = [
      [{ client_secret: "wrong", grant_type: "client_credentials" }, 401, "invalid_client"],
      [{ client_id: "nobody", grant_type: "client_credentials" }, 401, "invalid_client"],
      [{ grant_type: "password" }, 400, "unsupported_grant_type"],
      [{}, 400, "invalid_request"],
      [{ grant_type: "client_credentials", user_type: "Company" }, 400, "invalid_request"],
      [{ grant_type: "refresh_token", refresh_token: "made-up" }, 400, "invalid_grant"],
    ];
    for (const [fields, status, error] of cases) {
      const answer = await token(sim, fields);
      assert.equal(answer.status, status, JSON.stringify(fields));
      assert.equal(answer.body.error, error, JSON.stringify(fields));
      assert.equal(typeof answer.body.error_description, "string");
    }
    assert.equal(sim.counts()["POST /oauth/token"], cases.length);
    assert.ok(sim.requests().every((r) => r.body === null), "form bodies (with secrets) are not recorded");
  });
});

test("the consent page redirects back with a code and the state", async () => {
  await withSim({}, async (sim) => {
    const query = new URLSearchParams({ response_type: "code", client_id: CLIENT.clientId, redirect_uri: REDIRECT, scope: "contacts.write", state: "s-1" });
    const res = await fetch(`${sim.url}/oauth/chooselocation?${query}`, { redirect: "manual" });
    assert.equal(res.status, 302);
    const back = new URL(res.headers.get("location"));
    assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
    assert.equal(back.searchParams.get("state"), "s-1");
    const issued = await token(sim, { grant_type: "authorization_code", code: back.searchParams.get("code"), redirect_uri: REDIRECT });
    assert.equal(issued.body.locationId, LOCATION);
    assert.equal(issued.body.scope, "contacts.write");

    sim.oauth.setConsentLocation("loc-2");
    const elsewhere = await fetch(`${sim.url}/oauth/chooselocation?${query}`, { redirect: "manual" });
    const code = new URL(elsewhere.headers.get("location")).searchParams.get("code");
    const other = await token(sim, { grant_type: "authorization_code", code, redirect_uri: REDIRECT });
    assert.equal(other.body.locationId, "loc-2");

    const bad = await fetch(`${sim.url}/oauth/chooselocation?client_id=nobody`, { redirect: "manual" });
    assert.equal(bad.status, 400);
  });
});

test("reset forgets issued grants but keeps clients", async () => {
  await withSim({}, async (sim) => {
    const issued = (await install(sim)).body;
    sim.oauth.setTokenLifetime(5);
    assert.ok(sim.oauth.secrets().includes(issued.refresh_token));
    assert.ok(sim.oauth.secrets().includes(CLIENT.secret));
    sim.reset();
    assert.equal(await apiStatus(sim, issued.access_token), 401);
    assert.deepEqual(sim.oauth.grants(), []);
    const again = (await token(sim, { grant_type: "client_credentials" })).body;
    assert.equal(again.expires_in, 86_399);
  });
});

test("control HTTP interface for OAuth", async () => {
  await withSim({ oauth: {} }, async (sim) => {
    const control = (method, path, body) =>
      fetch(`${sim.url}/__control/oauth${path}`, {
        method,
        headers: { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    assert.equal((await control("POST", "/clients", { clientId: "c2", secret: "s2", locationId: LOCATION })).status, 201);
    assert.equal((await control("POST", "/clients", { clientId: "c2" })).status, 400);
    assert.equal((await control("POST", "/lifetime", { seconds: 120 })).status, 204);
    assert.equal((await control("POST", "/lifetime", { seconds: 0 })).status, 400);
    const { code } = await (await control("POST", "/codes", { clientId: "c2", locationId: LOCATION })).json();
    const form = new URLSearchParams({ client_id: "c2", client_secret: "s2", grant_type: "authorization_code", code });
    const issued = await (await fetch(`${sim.url}/oauth/token`, { method: "POST", body: form })).json();
    assert.equal(issued.expires_in, 120);
    assert.deepEqual(await (await control("POST", "/expire", {})).json(), { expired: 1 });
    assert.deepEqual(await (await control("POST", "/revoke", { locationId: LOCATION })).json(), { revoked: 1 });
    assert.equal((await control("POST", `/locations/${LOCATION}/deactivate`)).status, 204);
    assert.equal((await control("POST", `/locations/${LOCATION}/activate`)).status, 204);
    const grants = await (await control("GET", "/grants")).json();
    assert.deepEqual(grants, [{ grantType: "authorization_code", status: 200, error: null }]);
  });
});

test("location-scoped faults match token requests by their code's, refresh token's or client's location", async () => {
  await withSim({}, async (sim) => {
    const live = (await install(sim)).body;
    const elsewhere = sim.oauth.issueCode({ clientId: CLIENT.clientId, locationId: "loc-2" });
    const res = await fetch(`${sim.url}/__control/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ route: "POST /oauth/token", location: LOCATION, status: 503, count: null }),
    });
    assert.equal(res.status, 201);
    assert.equal((await token(sim, { grant_type: "authorization_code", code: elsewhere })).status, 200, "loc-2's code");
    assert.equal((await token(sim, { grant_type: "refresh_token", refresh_token: live.refresh_token })).status, 503);
    assert.equal((await token(sim, { grant_type: "client_credentials" })).status, 503, "the client's location");
    const code = sim.oauth.issueCode({ clientId: CLIENT.clientId, locationId: LOCATION });
    assert.equal((await token(sim, { grant_type: "authorization_code", code })).status, 503);
    assert.equal((await token(sim, { grant_type: "refresh_token", refresh_token: "made-up" })).status, 400, "acts for none");

    sim.clearFaults();
    sim.injectFault({ location: LOCATION, status: 500, count: null });
    const query = new URLSearchParams({ response_type: "code", client_id: CLIENT.clientId, redirect_uri: REDIRECT, scope: "s" });
    const consent = await fetch(`${sim.url}/oauth/chooselocation?${query}`, { redirect: "manual" });
    assert.equal(consent.status, 302, "the consent page acts for no location");
    assert.equal(await apiStatus(sim, live.access_token), 500, "an OAuth access token acts for its location");
    sim.oauth.expireAccessTokens(LOCATION);
    assert.equal(await apiStatus(sim, live.access_token), 500, "expired or not");
  });
});
