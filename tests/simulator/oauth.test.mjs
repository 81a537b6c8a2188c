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

// ---- agency (Company) OAuth -------------------------------------------------------------------

const COMPANY = "co-1";
const AGENCY_LOCATIONS = ["loc-a", "loc-b", { id: "loc-c", name: "Corner shop", address: "1 Main St" }, { id: "loc-x", isInstalled: false }];

/** A simulator whose client belongs to COMPANY, which has the app on loc-a, loc-b and loc-c. */
async function withAgency(options, fn) {
  await withSim({ ...options, oauth: { ...clientOptions(), companies: { [COMPANY]: { locations: AGENCY_LOCATIONS, name: "Agency" } }, ...options.oauth } }, fn);
}

const clientOptions = () => ({ clients: { [CLIENT.clientId]: { secret: CLIENT.secret, locationId: LOCATION, companyId: COMPANY } } });

/** A company token pair through a Company code. */
async function installCompany(sim) {
  const code = sim.oauth.issueCode({ clientId: CLIENT.clientId, userType: "Company" });
  return token(sim, { grant_type: "authorization_code", code, user_type: "Company" });
}

/** An agency API request with a (company) bearer token. */
async function agency(sim, method, path, { bearer, form, version = "2021-07-28" } = {}) {
  const headers = { authorization: `Bearer ${bearer}` };
  if (version !== null) headers.version = version;
  const res = await fetch(`${sim.url}${path}`, { method, headers, body: form === undefined ? undefined : new URLSearchParams(form) });
  return { status: res.status, body: await res.json() };
}

const mint = (sim, bearer, locationId, companyId = COMPANY) =>
  agency(sim, "POST", "/oauth/locationToken", { bearer, form: { companyId, locationId } });

const installed = (sim, bearer, query) =>
  agency(sim, "GET", `/oauth/installedLocations?${new URLSearchParams({ companyId: COMPANY, appId: CLIENT.clientId, ...query })}`, { bearer });

test("Company codes issue company tokens that rotate and do not work on location routes", async () => {
  await withAgency({}, async (sim) => {
    const issued = await installCompany(sim);
    assert.equal(issued.status, 200);
    const { access_token, refresh_token, ...rest } = issued.body;
    assert.match(access_token, /^sim_at_/);
    assert.match(refresh_token, /^sim_rt_/);
    assert.deepEqual(rest, {
      token_type: "Bearer",
      expires_in: 86_399,
      scope: "contacts.readonly contacts.write",
      userType: "Company",
      companyId: COMPANY,
      approvedLocations: ["loc-a", "loc-b", "loc-c"],
      userId: "sim-user",
    });
    assert.equal(await apiStatus(sim, access_token), 401, "a company token is no location token");

    const asLocation = await token(sim, { grant_type: "refresh_token", refresh_token, user_type: "Location" });
    assert.deepEqual(asLocation.body, { error: "invalid_grant", error_description: "Refresh token was issued for user_type Company, not Location" });
    const renewed = await token(sim, { grant_type: "refresh_token", refresh_token, user_type: "Company" });
    assert.equal(renewed.status, 200, "the refused attempt did not spend it");
    assert.equal(renewed.body.userType, "Company");
    assert.notEqual(renewed.body.refresh_token, refresh_token);
    const spent = await token(sim, { grant_type: "refresh_token", refresh_token, user_type: "Company" });
    assert.equal(spent.body.error_description, "Refresh token has already been used");

    const locationCode = sim.oauth.issueCode({ clientId: CLIENT.clientId, locationId: LOCATION });
    const wrong = await token(sim, { grant_type: "authorization_code", code: locationCode, user_type: "Company" });
    assert.equal(wrong.body.error_description, "Authorization code was issued for user_type Location, not Company");
    assert.equal((await token(sim, { grant_type: "authorization_code", code: locationCode })).status, 200, "not spent");
    const companyCode = sim.oauth.issueCode({ clientId: CLIENT.clientId, userType: "Company" });
    assert.equal((await token(sim, { grant_type: "authorization_code", code: companyCode })).body.error, "invalid_grant", "user_type defaults to Location");
    assert.equal((await token(sim, { grant_type: "authorization_code", code: companyCode, user_type: "Agency" })).body.error, "invalid_request");

    assert.deepEqual(sim.oauth.grants().map((g) => [g.grantType, g.status, g.userType ?? "-"]), [
      ["authorization_code", 200, "Company"],
      ["refresh_token", 400, "-"],
      ["refresh_token", 200, "Company"],
      ["refresh_token", 400, "Company"],
      ["authorization_code", 400, "Company"],
      ["authorization_code", 200, "-"],
      ["authorization_code", 400, "-"],
      ["authorization_code", 400, "-"],
    ]);
    assert.throws(() => sim.oauth.issueCode({ clientId: CLIENT.clientId, userType: "Company", companyId: "nobody" }), /unknown company/);
  });
});

test("POST /oauth/locationToken mints location tokens that act for their location", async () => {
  let now = 1_000_000;
  await withAgency({ now: () => now, rateLimit: { max: 2, intervalMs: 60_000 } }, async (sim) => {
    const company = (await installCompany(sim)).body;
    const minted = await mint(sim, company.access_token, "loc-b");
    assert.equal(minted.status, 200);
    const { access_token, ...rest } = minted.body;
    assert.deepEqual(rest, { token_type: "Bearer", expires_in: 86_399, scope: company.scope, locationId: "loc-b", userId: "sim-user" });
    const read = await fetch(`${sim.url}/contacts/x`, { headers: { authorization: `Bearer ${access_token}`, version: "2021-07-28" } });
    assert.equal(read.status, 400, "accepted (contact not found)");
    assert.equal(read.headers.get("x-ratelimit-remaining"), "1", "rate-limited as loc-b");
    const created = await fetch(`${sim.url}/contacts/`, {
      method: "POST",
      headers: { authorization: `Bearer ${access_token}`, version: "2021-07-28", "content-type": "application/json" },
      body: JSON.stringify({ locationId: "loc-b", firstName: "B" }),
    });
    assert.equal(created.status, 201);
    assert.equal(sim.state().contacts[0].locationId, "loc-b");
    assert.ok(sim.oauth.secrets().includes(access_token));

    const other = (await mint(sim, company.access_token, "loc-a")).body.access_token;
    assert.equal(sim.oauth.expireAccessTokens("loc-b"), 1, "minted tokens expire with their location's");
    assert.equal(await apiStatus(sim, access_token), 401);
    assert.equal(await apiStatus(sim, other), 400, "loc-a's still works");
    now += 86_399_000;
    assert.equal(await apiStatus(sim, other), 401, "and expires after its lifetime");
  });
});

test("company tokens expire after their lifetime, with expireAccessTokens() or expireCompanyTokens", async () => {
  let now = 1_000_000;
  await withAgency({ now: () => now, oauth: { tokenLifetimeSecs: 60 } }, async (sim) => {
    const first = (await installCompany(sim)).body;
    assert.equal(first.expires_in, 60);
    now += 59_999;
    assert.equal((await mint(sim, first.access_token, "loc-a")).status, 200);
    now += 1;
    assert.equal((await mint(sim, first.access_token, "loc-a")).status, 401, "expired");
    const second = (await installCompany(sim)).body;
    assert.equal(sim.oauth.expireAccessTokens("loc-a"), 1, "a location's: only the token minted for it");
    assert.equal((await mint(sim, second.access_token, "loc-a")).status, 200);
    assert.equal(sim.oauth.expireAccessTokens(), 4, "every one, company tokens too");
    assert.equal((await mint(sim, second.access_token, "loc-a")).status, 401);
  });
});

test("POST /oauth/locationToken refusals", async () => {
  await withAgency({}, async (sim) => {
    const company = (await installCompany(sim)).body;
    const location = (await install(sim)).body;
    assert.equal((await mint(sim, "made-up", "loc-a")).status, 401);
    const withLocationToken = await mint(sim, location.access_token, "loc-a");
    assert.deepEqual(withLocationToken, {
      status: 401,
      body: { statusCode: 401, message: "This route needs an agency (Company) access token", error: "Unauthorized" },
    });
    const noVersion = await agency(sim, "POST", "/oauth/locationToken", { bearer: company.access_token, form: { companyId: COMPANY, locationId: "loc-a" }, version: null });
    assert.deepEqual([noVersion.status, noVersion.body.message], [401, "version header was not found."]);
    const missing = await agency(sim, "POST", "/oauth/locationToken", { bearer: company.access_token, form: { companyId: COMPANY } });
    assert.deepEqual([missing.status, missing.body.message], [422, ["locationId should not be empty", "locationId must be a string"]]);
    assert.equal((await mint(sim, company.access_token, "loc-a", "co-2")).status, 400, "another company");
    const notInstalled = await mint(sim, company.access_token, "loc-x");
    assert.deepEqual([notInstalled.status, notInstalled.body.message], [400, "the app is not installed on location loc-x under this company"]);
    assert.equal((await mint(sim, company.access_token, "loc-elsewhere")).status, 400);
    sim.oauth.deactivateLocation("loc-a");
    assert.deepEqual((await mint(sim, company.access_token, "loc-a")).body.message, "Location is not active");
    sim.oauth.activateLocation("loc-a");

    assert.equal(sim.oauth.expireCompanyTokens(COMPANY), 1);
    assert.equal(sim.oauth.expireCompanyTokens("co-2"), 0);
    assert.equal((await mint(sim, company.access_token, "loc-a")).status, 401, "an expired company token");
    const grants = sim.oauth.grants().filter((g) => g.grantType === "location_token");
    assert.equal(grants.length, 9, "every attempt is recorded");
    assert.deepEqual(grants[6], { grantType: "location_token", status: 400, error: "the app is not installed on location loc-elsewhere under this company", companyId: COMPANY, locationId: "loc-elsewhere" });
    assert.equal(sim.counts()["POST /oauth/locationToken"], 9);

    const fresh = await installCompany(sim);
    sim.oauth.addCompany(COMPANY, { locations: ["loc-a"] });
    assert.equal((await mint(sim, fresh.body.access_token, "loc-b")).status, 400, "uninstalled since");
    assert.equal(sim.oauth.revokeCompanyRefreshTokens(COMPANY), 2, "both installs' live refresh tokens");
    const revoked = await token(sim, { grant_type: "refresh_token", refresh_token: fresh.body.refresh_token, user_type: "Company" });
    assert.equal(revoked.body.error_description, "Refresh token has been revoked");
  });
});

test("GET /oauth/installedLocations pages the company's locations, filtered", async () => {
  await withAgency({}, async (sim) => {
    const bearer = (await installCompany(sim)).body.access_token;
    const all = await installed(sim, bearer, {});
    assert.equal(all.status, 200);
    assert.deepEqual(all.body, {
      locations: [
        { _id: "loc-a", name: "Location loc-a", address: "", isInstalled: true },
        { _id: "loc-b", name: "Location loc-b", address: "", isInstalled: true },
        { _id: "loc-c", name: "Corner shop", address: "1 Main St", isInstalled: true },
        { _id: "loc-x", name: "Location loc-x", address: "", isInstalled: false },
      ],
      count: 4,
    });
    const ids = (answer) => answer.body.locations.map((l) => l._id);
    const page = await installed(sim, bearer, { isInstalled: "true", skip: "1", limit: "1" });
    assert.deepEqual([ids(page), page.body.count], [["loc-b"], 3]);
    assert.deepEqual(ids(await installed(sim, bearer, { isInstalled: "true", skip: "3" })), []);
    assert.deepEqual(ids(await installed(sim, bearer, { isInstalled: "false" })), ["loc-x"]);
    assert.deepEqual(ids(await installed(sim, bearer, { query: "corner" })), ["loc-c"]);
    assert.deepEqual(ids(await installed(sim, bearer, { locationId: "loc-b" })), ["loc-b"]);
    assert.equal((await installed(sim, bearer, { appId: "client" })).status, 200, "the client id's app part");

    const noApp = await agency(sim, "GET", `/oauth/installedLocations?companyId=${COMPANY}`, { bearer });
    assert.deepEqual([noApp.status, noApp.body.message], [422, ["appId should not be empty", "appId must be a string"]]);
    assert.equal((await agency(sim, "GET", "/oauth/installedLocations?appId=client-1", { bearer })).status, 422);
    assert.equal((await installed(sim, bearer, { limit: "0" })).status, 422);
    assert.equal((await installed(sim, bearer, { isInstalled: "yes" })).status, 422);
    assert.equal((await installed(sim, bearer, { sort: "name" })).status, 422);
    assert.equal((await installed(sim, bearer, { companyId: "co-2" })).status, 403);
    assert.equal((await installed(sim, bearer, { appId: "other-app" })).status, 403);
    const location = (await install(sim)).body.access_token;
    assert.equal((await installed(sim, location, {})).status, 401);
    assert.equal((await installed(sim, "made-up", {})).status, 401);
    assert.equal(sim.counts()["GET /oauth/installedLocations"], 16);
    assert.ok(!sim.oauth.grants().some((g) => g.grantType === "location_token"), "listing is no grant");
  });
});

test("the consent page installs under a company when asked", async () => {
  await withAgency({}, async (sim) => {
    const query = { response_type: "code", client_id: CLIENT.clientId, redirect_uri: REDIRECT, scope: "contacts.write" };
    const consent = async (extra) => {
      const res = await fetch(`${sim.url}/oauth/chooselocation?${new URLSearchParams({ ...query, ...extra })}`, { redirect: "manual" });
      return res.status === 302 ? new URL(res.headers.get("location")).searchParams.get("code") : res.status;
    };
    const exchange = async (code, userType) =>
      (await token(sim, { grant_type: "authorization_code", code, redirect_uri: REDIRECT, user_type: userType })).body;

    const company = await exchange(await consent({ user_type: "Company" }), "Company");
    assert.deepEqual([company.userType, company.companyId, company.scope], ["Company", COMPANY, "contacts.write"]);
    assert.equal((await exchange(await consent({}), "Location")).locationId, LOCATION, "a location install otherwise");

    sim.oauth.addCompany("co-2", { locations: ["loc-z"], name: "Second" });
    sim.oauth.setConsentCompany("co-2");
    const second = await exchange(await consent({}), "Company");
    assert.deepEqual([second.companyId, second.approvedLocations], ["co-2", ["loc-z"]]);
    assert.equal((await exchange(await consent({ user_type: "Location" }), "Location")).userType, "Location");
    sim.oauth.setConsentCompany("nobody");
    assert.equal(await consent({}), 400);
    sim.oauth.setConsentCompany(null);
    assert.equal((await exchange(await consent({}), "Location")).userType, "Location");
  });
});

test("company and minted tokens are secrets, faults scope by the minted location, reset keeps companies", async () => {
  await withAgency({}, async (sim) => {
    const company = (await installCompany(sim)).body;
    const minted = (await mint(sim, company.access_token, "loc-a")).body;
    const secrets = sim.oauth.secrets();
    for (const credential of [company.access_token, company.refresh_token, minted.access_token]) assert.ok(secrets.includes(credential));

    sim.injectFault({ location: "loc-b", status: 503, count: null });
    assert.equal((await mint(sim, company.access_token, "loc-a")).status, 200);
    assert.equal((await mint(sim, company.access_token, "loc-b")).status, 503, "the form's location");
    assert.equal((await installed(sim, company.access_token, { locationId: "loc-b" })).status, 200, "listing acts for none");
    assert.equal((await token(sim, { grant_type: "refresh_token", refresh_token: company.refresh_token, user_type: "Company" })).status, 200, "company grants act for none");
    sim.clearFaults();
    sim.injectFault({ location: "loc-a", status: 502 });
    assert.equal(await apiStatus(sim, minted.access_token), 502, "a minted token acts for its location");

    sim.reset();
    assert.equal((await mint(sim, company.access_token, "loc-a")).status, 401, "tokens forgotten");
    assert.deepEqual(sim.oauth.companies().map((c) => [c.companyId, c.name]), [[COMPANY, "Agency"]]);
    assert.equal((await installCompany(sim)).status, 200);
  });
});

test("control HTTP interface for agencies", async () => {
  await withSim({ oauth: clientOptions() }, async (sim) => {
    const control = async (method, path, body) => {
      const res = await fetch(`${sim.url}/__control/oauth${path}`, {
        method,
        headers: { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const added = await control("POST", "/companies", { companyId: COMPANY, locations: ["loc-a", { id: "loc-b", isInstalled: false }] });
    assert.deepEqual(added, {
      status: 201,
      body: {
        company: {
          companyId: COMPANY,
          name: COMPANY,
          locations: [
            { _id: "loc-a", name: "Location loc-a", address: "", isInstalled: true },
            { _id: "loc-b", name: "Location loc-b", address: "", isInstalled: false },
          ],
        },
      },
    });
    assert.equal((await control("GET", "/companies")).body.length, 1);
    for (const bad of [{ companyId: COMPANY }, { companyId: "", locations: [] }, { companyId: "c", locations: [5] }, { companyId: "c", locations: ["a", "a"] }]) {
      assert.equal((await control("POST", "/companies", bad)).status, 400, JSON.stringify(bad));
    }
    const { code } = (await control("POST", "/codes", { clientId: CLIENT.clientId, userType: "Company" })).body;
    assert.equal((await token(sim, { grant_type: "authorization_code", code, user_type: "Company" })).body.companyId, COMPANY);
    assert.equal((await control("POST", "/codes", { clientId: CLIENT.clientId, userType: "Company", companyId: "nobody" })).status, 400);
    assert.deepEqual((await control("POST", "/expire", { companyId: COMPANY })).body, { expired: 1 });
    assert.deepEqual((await control("POST", "/revoke", { companyId: COMPANY })).body, { revoked: 1 });

    assert.equal((await control("POST", "/consent", { companyId: COMPANY })).status, 204);
    const query = new URLSearchParams({ response_type: "code", client_id: CLIENT.clientId, redirect_uri: REDIRECT, scope: "s" });
    const res = await fetch(`${sim.url}/oauth/chooselocation?${query}`, { redirect: "manual" });
    const consented = new URL(res.headers.get("location")).searchParams.get("code");
    assert.equal((await token(sim, { grant_type: "authorization_code", code: consented, redirect_uri: REDIRECT, user_type: "Company" })).body.userType, "Company");
    assert.equal((await control("POST", "/consent", { locationId: "loc-q" })).status, 204);
    const back = await fetch(`${sim.url}/oauth/chooselocation?${query}`, { redirect: "manual" });
    const located = new URL(back.headers.get("location")).searchParams.get("code");
    assert.equal((await token(sim, { grant_type: "authorization_code", code: located, redirect_uri: REDIRECT })).body.locationId, "loc-q");
    assert.equal((await control("POST", "/consent", { companyId: 5 })).status, 400);
  });
});
