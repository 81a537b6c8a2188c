// The operator console's connections in a real browser (the harness of console.test.mjs: the
// built worker in workerd, the Contacts API simulator, Debian's headless Chromium). Lists the
// default connection, is refused a bad id and a taken one with the worker's messages, creates a
// named connection with its own Private Integration Token and sees its signing secret once,
// switches the whole console to it (header, fragment, a reload keeps it) and sees its own status
// and dead letter beside the default's, pauses it (a webhook waits) and resumes it (it is
// applied), rotates its secret and removes the old one by fingerprint (deliveries signed with it
// are refused from then on), and removes it with a pending event and a dead letter: 409 and their
// number shown, then discarded. The
// signing secrets and the token never reach a URL, a cookie, storage, the page once hidden, or a log.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { openBrowser, until, WAIT_MS } from "./browser.mjs";
import { ADMIN_KEY, LOCATION, TOKEN, contactEvent, startWorld } from "./harness.mjs";
import { signedDelivery } from "../support/webhooks.mjs";

const NAMED = "loc-console-b";
const NAMED_TOKEN = "pit-console-b-0123456789abcdef";
/** Named connections' records are sealed with TOKEN_ENCRYPTION_KEYS. */
const SEALING_KEY = Buffer.alloc(32, 11).toString("base64");

const fingerprint = (secret) => `whsec:${createHash("sha256").update(secret).digest("hex").slice(0, 8)}`;

describe("the operator console's connections", () => {
  let world;
  let browser;
  let page;
  const secrets = []; // every signing secret the console showed

  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: { TOKEN_ENCRYPTION_KEYS: `k1:${SEALING_KEY}` },
      simulator: {
        tokens: { [TOKEN]: LOCATION, [NAMED_TOKEN]: NAMED },
        locations: { [LOCATION]: { allowDuplicates: false }, [NAMED]: { allowDuplicates: false } },
      },
    });
    // The refusals the test asks for: a bad id (400), an agency without an install (404), a taken
    // id and unfinished events (409); the removed secret's delivery is not the browser's.
    browser = await openBrowser({ refusals: [400, 404, 409] });
    ({ page } = browser);
  });

  after(async () => {
    await browser?.close();
    await world?.close();
  });

  const text = (selector) => page.locator(selector).innerText();
  const row = (id) => page.locator(`#connection-list li[data-connection="${id}"]`);
  const card = (label) => page.locator("#status-cards .card", { has: page.locator("dt", { hasText: new RegExp(`^${label}$`) }) });
  const named = (method, rest = "", options) => world.admin(method, `connections/${NAMED}${rest}`, options);
  /** Posts a webhook to the named connection's URL, signed with `secret`. */
  const deliver = async (secret, event) => {
    const request = signedDelivery(secret, event);
    const response = await world.fetch(`/webhooks/sightmill/${NAMED}`, request);
    return { status: response.status, json: await response.json().catch(() => null), id: request.id };
  };
  const namedRecord = async (id) => (await named("GET", `/events/${encodeURIComponent(id)}`)).json;
  /** The secret the console shows once, read from the page (and kept to check it leaks nowhere). */
  const shownSecret = async () => {
    await page.locator("#secret-once").waitFor({ state: "visible", timeout: WAIT_MS });
    const secret = await page.locator("#secret-value").inputValue();
    assert.match(secret, /^whsec_/);
    secrets.push(secret);
    return secret;
  };
  /** The page's markup and the values of its fields (which the markup does not carry). */
  const everythingOnPage = async () =>
    (await page.content()) + (await page.evaluate(() => [...document.querySelectorAll("input, textarea")].map((f) => f.value).join("\n")));
  const hideSecret = async (secret) => {
    await page.locator("#hide-secret").click();
    await page.locator("#secret-once").waitFor({ state: "hidden" });
    assert.ok(!(await everythingOnPage()).includes(secret), "the hidden secret is gone from the page");
  };

  test("signs in and lists the default connection first, with its own status", async () => {
    await page.goto(`${await world.url()}console/#connections`);
    await page.locator("#key").fill(ADMIN_KEY);
    await page.keyboard.press("Enter");
    const first = page.locator("#connection-list li").first();
    await first.filter({ hasText: "Pending" }).waitFor({ timeout: WAIT_MS });
    assert.equal(await first.getAttribute("data-connection"), LOCATION);
    assert.match(await first.innerText(), /default/i);
    assert.match(await first.innerText(), /Dead letters\s*0/);
    assert.match(await page.locator("#connection-select").inputValue(), new RegExp(LOCATION));
    assert.ok(await page.locator("#manage-default").isVisible(), "the default connection is the deployment's settings");
  });

  test("shows the worker's refusal of a bad id, an unknown agency and a taken id, then creates a connection and shows its secret once", async () => {
    const form = page.locator("#create-form");
    await form.getByLabel("Location id").fill("bad/id");
    await form.getByRole("textbox", { name: "Private Integration Token" }).fill(NAMED_TOKEN);
    await form.getByRole("button", { name: "Create the connection" }).click();
    await page.locator("#create-result").filter({ hasText: "invalid_connection_id" }).waitFor({ timeout: WAIT_MS });
    assert.match(await text("#create-result"), /Not created: a connection id is 1-64 characters/);

    await form.getByLabel("Location id").fill(LOCATION);
    await form.getByRole("button", { name: "Create the connection" }).click();
    await page.locator("#create-result").filter({ hasText: "connection_exists" }).waitFor({ timeout: WAIT_MS });

    await form.getByRole("radio", { name: "From the agency's install" }).check();
    assert.ok(await form.getByRole("textbox", { name: "Private Integration Token" }).isHidden(), "only the field the kind needs");
    await page.locator("#agency-known").filter({ hasText: "No agency has installed the app yet" }).waitFor({ timeout: WAIT_MS });
    await form.getByLabel("Location id").fill("loc-console-agency");
    await form.getByLabel("Agency company id").fill("company-nobody");
    await form.getByRole("button", { name: "Create the connection" }).click();
    await page.locator("#create-result").filter({ hasText: "unknown_agency" }).waitFor({ timeout: WAIT_MS });
    await form.getByRole("radio", { name: "Private Integration Token" }).check();

    // Install links are the oauth mode's: this deployment refuses to make one, and says why.
    await page.locator("#install-form").getByRole("radio", { name: "An agency (its installed locations)" }).check();
    await page.locator("#install-form").getByRole("button", { name: "Make an install link" }).click();
    await page.locator("#install-result").filter({ hasText: "oauth_disabled" }).waitFor({ timeout: WAIT_MS });
    assert.match(await text("#install-result"), /No install link was made/);
    assert.equal(await text("#install-url"), "");

    await form.getByLabel("Location id").fill(NAMED);
    await form.getByLabel("Label (optional)").fill("Branch B");
    await form.getByRole("button", { name: "Create the connection" }).click();
    const secret = await shownSecret();
    assert.match(await text("#secret-once"), /will not be shown again/);
    assert.match(await text("#secret-once"), new RegExp(`/webhooks/sightmill/${NAMED}`));
    assert.equal(await page.evaluate(() => document.activeElement?.id), "secret-once-title", "focus goes to the secret");
    assert.equal(await form.getByRole("textbox", { name: "Private Integration Token" }).inputValue(), "", "the token is not left in the form");
    await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(await world.url()).origin });
    await page.locator("#copy-secret").click();
    await page.locator("#secret-once-result").filter({ hasText: "Copied" }).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, "the copy button copies the secret");
    await page.evaluate(() => navigator.clipboard.writeText(""));
    await row(NAMED).filter({ hasText: "Pending" }).waitFor({ timeout: WAIT_MS });
    assert.match(await row(NAMED).innerText(), /Branch B/);
    await browser.shoot("connections-secret");
    await hideSecret(secret);

    const listed = (await world.admin("GET", "connections")).json.connections;
    assert.deepEqual(listed.map((c) => c.id), [LOCATION, NAMED], "the default first");
    assert.deepEqual(listed[1].secrets.map((s) => s.fingerprint), [fingerprint(secret)]);
    assert.equal(listed[1].token.kind, "private_integration");
  });

  test("switches the whole console to it, shows its own status beside the default's, and a reload keeps it", async () => {
    const [secret] = secrets;
    world.sim.injectFault({ route: "POST /contacts/", status: 400, body: { message: "phone is invalid" } });
    const parked = await deliver(secret, contactEvent("contact.created", { id: "sm_conn_1", name: "Ada Lovelace" }));
    assert.equal(parked.status, 202);
    await until(async () => (await namedRecord(parked.id))?.state === "parked", "the named connection's dead letter");

    await page.locator("#connection-select").selectOption(NAMED);
    await until(async () => (await page.evaluate(() => location.hash)) === `#connections@${NAMED}`, "the fragment to name it");
    await page.locator("#manage-title").filter({ hasText: `Manage ${NAMED}` }).waitFor({ timeout: WAIT_MS });
    await page.getByRole("link", { name: "Status", exact: true }).click();
    await page.locator("#status-location").filter({ hasText: NAMED }).waitFor({ timeout: WAIT_MS });
    await until(async () => (await card("Dead letters").locator(".value").innerText()).startsWith("1"), "its own dead letter");
    assert.equal(await page.evaluate(() => location.hash), `#status@${NAMED}`);
    assert.match(await page.title(), new RegExp(NAMED));

    await page.getByRole("link", { name: "Events" }).click();
    await page.locator(`#event-table tr[data-id="${parked.id}"]`).waitFor({ timeout: WAIT_MS });

    await page.reload();
    await page.locator(`#event-table tr[data-id="${parked.id}"]`).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.locator("#connection-select").inputValue(), NAMED, "the reload kept the connection");

    await page.locator("#connection-select").selectOption(LOCATION);
    await until(async () => (await page.evaluate(() => location.hash)) === "#events", "the default's fragment");
    await page.locator("#event-table tbody").filter({ hasText: "Nothing here." }).waitFor({ timeout: WAIT_MS });

    await page.getByRole("link", { name: "Connections" }).click();
    await row(NAMED).filter({ hasText: "alert" }).waitFor({ timeout: WAIT_MS });
    assert.match(await row(NAMED).innerText(), /Dead letters\s*1/);
    assert.match(await row(LOCATION).innerText(), /Dead letters\s*0/);
    await browser.shoot("connections");
    const requests = browser.requests.map((r) => new URL(r.url).pathname);
    assert.ok(requests.includes(`/admin/connections/${NAMED}/status`), "its status from its own route");
    assert.ok(requests.includes(`/admin/connections/${NAMED}/events`), "its events from its own route");
  });

  test("pauses it (a webhook waits) and resumes it (the webhook is applied)", async () => {
    const [secret] = secrets;
    await row(NAMED).getByRole("link", { name: `Manage ${NAMED}` }).click();
    await page.locator("#manage-title").filter({ hasText: NAMED }).waitFor({ timeout: WAIT_MS });
    await page.locator("#pause-connection").click();
    await browser.confirmDialog();
    await page.locator("#manage-result").filter({ hasText: `Paused ${NAMED}` }).waitFor({ timeout: WAIT_MS });
    await page.locator("#connection-paused").waitFor({ state: "visible", timeout: WAIT_MS });
    await row(NAMED).filter({ hasText: "paused" }).waitFor({ timeout: WAIT_MS });
    assert.ok(await page.locator("#pause-connection").isDisabled());
    assert.equal(await page.evaluate(() => document.activeElement?.id), "resume-connection", "focus goes to Resume");
    assert.equal((await world.admin("GET", `connections/${NAMED}`)).json.connection.paused, true);

    const waiting = await deliver(secret, contactEvent("contact.created", { id: "sm_conn_2", name: "Grace Hopper", email: "grace@b.example" }));
    assert.equal(waiting.status, 202, "a paused connection still accepts");
    await world.cron();
    assert.equal((await namedRecord(waiting.id)).state, "pending", "nothing is sent while paused");
    assert.equal(world.sim.state().contacts.find((c) => c.email === "grace@b.example"), undefined);

    await page.getByRole("link", { name: "Status", exact: true }).first().click();
    await card("Sending").filter({ hasText: "paused" }).waitFor({ timeout: WAIT_MS });
    await until(async () => (await card("Pending").locator(".value").innerText()) === "1", "the pending webhook");
    await browser.shoot("connection-paused-status");

    await page.getByRole("link", { name: "Connections" }).click();
    await page.locator("#resume-connection").click();
    await page.locator("#manage-result").filter({ hasText: `Resumed ${NAMED}` }).waitFor({ timeout: WAIT_MS });
    await until(async () => (await namedRecord(waiting.id)).state === "finished", "the webhook applied once resumed");
    assert.ok(world.sim.state().contacts.find((c) => c.email === "grace@b.example"), "written into its location");
    assert.ok(await page.locator("#connection-paused").isHidden());
  });

  test("rotates its secret (the old one keeps working for keep_old_for) and removes the old one by fingerprint", async () => {
    const [old] = secrets;
    const form = page.locator("#rotate-form");
    assert.equal(await form.getByLabel("Old secrets keep working for").inputValue(), "24h", "24 h by default");
    await form.getByRole("button", { name: "Rotate" }).click();
    await browser.confirmDialog();
    const fresh = await shownSecret();
    assert.notEqual(fresh, old);
    await page.locator("#manage-result").filter({ hasText: `the new one is ${fingerprint(fresh)}` }).waitFor({ timeout: WAIT_MS });
    await page.locator("#secret-table tbody tr").nth(1).waitFor({ timeout: WAIT_MS });
    const oldRow = page.locator(`#secret-table tr[data-fingerprint="${fingerprint(old)}"]`);
    assert.doesNotMatch(await oldRow.innerText(), /when removed/, "the old one stops working at a time");
    await hideSecret(fresh);

    // The edge refetches a connection's record after a mismatch at most once per 5 s: the new
    // secret is admitted once it has (SightMill's retries do the same).
    await until(async () => (await deliver(fresh, contactEvent("contact.updated", { id: "sm_conn_2", name: "Grace B. Hopper" }))).status === 202, "the new secret admitted", 10_000);
    assert.equal((await deliver(old, contactEvent("contact.updated", { id: "sm_conn_2", name: "Grace C. Hopper" }))).status, 202, "the old one still works");

    await oldRow.getByRole("button", { name: `Remove secret ${fingerprint(old)}` }).click();
    await browser.confirmDialog();
    await page.locator("#manage-result").filter({ hasText: `Removed secret ${fingerprint(old)}` }).waitFor({ timeout: WAIT_MS });
    await oldRow.waitFor({ state: "detached", timeout: WAIT_MS });
    const refused = await deliver(old, contactEvent("contact.updated", { id: "sm_conn_2", name: "Grace D. Hopper" }));
    assert.equal(refused.status, 401, `the removed secret is refused: ${JSON.stringify(refused.json)}`);
    assert.equal((await deliver(fresh, contactEvent("contact.updated", { id: "sm_conn_2", name: "Grace E. Hopper" }))).status, 202);
  });

  test("removes it with unfinished events: the 409 and their number shown, then discarded and removed", async () => {
    const fresh = secrets.at(-1);
    await page.locator("#pause-connection").click();
    await browser.confirmDialog();
    await page.locator("#manage-result").filter({ hasText: `Paused ${NAMED}` }).waitFor({ timeout: WAIT_MS });
    const waiting = await deliver(fresh, contactEvent("contact.created", { id: "sm_conn_3", name: "Alan Turing", email: "alan@b.example" }));
    assert.equal(waiting.status, 202);

    // Not finished: the dead letter of the first delivery and the webhook waiting while paused.
    const { pending, parked } = (await named("GET", "/status")).json;
    assert.deepEqual([pending, parked], [1, 1]);

    await page.locator("#remove-connection").click();
    await browser.confirmDialog();
    const choice = page.locator("#pending-choice");
    await choice.waitFor({ state: "visible", timeout: WAIT_MS });
    const said = await choice.innerText();
    assert.match(said, /not removed: 2 of its event\(s\) are not finished \(pending, or parked as dead letters\)/);
    assert.match(said, /The worker says: 2 webhooks are not finished/, "the refusal's own message");
    assert.match(said, /never applied/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), "discard-and-remove");
    assert.ok((await world.admin("GET", `connections/${NAMED}`)).json.connection, "still there");
    await browser.shoot("connection-remove-pending");

    await page.getByRole("button", { name: `Discard the 2 event(s) and remove ${NAMED}` }).click();
    await page.locator("#connections-result").filter({ hasText: `Removed ${NAMED}; 2 unfinished event(s) discarded, never applied.` }).waitFor({ timeout: WAIT_MS });
    await row(NAMED).waitFor({ state: "detached", timeout: WAIT_MS });
    assert.equal(await page.evaluate(() => location.hash), "#connections", "back to the default connection");
    assert.equal((await world.admin("GET", `connections/${NAMED}`)).status, 404);
    const gone = await deliver(fresh, contactEvent("contact.created", { id: "sm_conn_4", name: "Kurt Gödel" }));
    assert.deepEqual([gone.status, gone.json?.error], [404, "unknown_connection"]);
    assert.equal(world.sim.state().contacts.find((c) => c.email === "alan@b.example"), undefined, "the discarded event was never sent");

    // An address that still names it (a bookmark): the worker's refusal, and the header says so.
    await page.goto(`${await world.url()}console/#status@${NAMED}`);
    await page.locator("#status-cards").filter({ hasText: "unknown_connection" }).waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator("#connection-select option:checked").innerText(), /not a connection/);
    await page.getByRole("link", { name: "Mapping" }).click();
    await page.locator("#mapping-effective").filter({ hasText: "unknown_connection" }).waitFor({ timeout: WAIT_MS });
    assert.ok(await page.locator("#save-mapping").isDisabled());
    await page.getByRole("link", { name: "Connections" }).click();
    await page.locator("#manage-title").filter({ hasText: `${NAMED} is not a connection` }).waitFor({ timeout: WAIT_MS });
    await page.locator("#connection-select").selectOption(LOCATION);
    await page.locator("#manage-title").filter({ hasText: `Manage ${LOCATION}` }).waitFor({ timeout: WAIT_MS });
    await page.getByRole("link", { name: "Mapping" }).click();
    await page.locator("#mapping-validation").filter({ hasText: "The mapping is valid." }).waitFor({ timeout: WAIT_MS });
    await page.getByRole("link", { name: "Connections" }).click();
  });

  test("the Connections view fits a phone's width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator("#connection-list li").first().filter({ hasText: "Pending" }).waitFor({ timeout: WAIT_MS });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px too wide)`);
    await browser.shoot("phone-connections");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test("kept the key, the signing secrets and the token out of every URL, cookie, storage and log", async () => {
    const kept = [ADMIN_KEY, NAMED_TOKEN, SEALING_KEY, ...secrets];
    assert.equal(secrets.length, 2);
    for (const request of browser.requests) for (const value of kept) assert.ok(!request.url.includes(value), `nothing secret in ${request.url}`);
    assert.deepEqual(await browser.context.cookies(), []);
    const storage = await page.evaluate(() => JSON.stringify({ ...sessionStorage, ...localStorage }));
    for (const value of [NAMED_TOKEN, ...secrets]) assert.ok(!storage.includes(value), "no secret in storage");
    const onPage = await everythingOnPage();
    for (const value of kept) assert.ok(!onPage.includes(value), "no secret left in the page");
    const logs = world.logs();
    for (const value of kept) assert.ok(!logs.includes(value), "no secret in the worker's log");
    for (const value of kept) assert.ok(!browser.messages.some((m) => m.includes(value)), "no secret in the browser's console");
    const hosts = new Set(browser.requests.map((request) => new URL(request.url).host));
    assert.equal(hosts.size, 1, `one origin only: ${[...hosts].join(", ")}`);
    assert.deepEqual(browser.problems, [], "no script errors or policy violations");
  });
});
