// The operator console in a real browser: Debian's headless Chromium driven by playwright-core,
// against the built worker in workerd (its [assets] served by Miniflare, headers from _headers)
// and the Contacts API simulator. Signs in (and is refused with a wrong key), reads the status,
// sees a parked event appear after a simulated 400, inspects and replays it and sees it applied,
// edits the mapping, sees a validation error, dry-runs a sample, saves, and sees the next webhook
// use the new mapping. Takes screenshots of the main views; with UPDATE_SCREENSHOTS=1 they go
// into docs/console/ (docs/console.md shows them), otherwise into a temporary folder, so that a test
// run leaves the working tree as it found it.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { openBrowser, until, WAIT_MS } from "./browser.mjs";
import { ADMIN_KEY, contactEvent, LOCATION, startWorld, TOKEN } from "./harness.mjs";

describe("the operator console", () => {
  let world;
  let browser;
  let context;
  let page;
  let problems;
  let requests;

  before(async () => {
    world = await startWorld({ duplicates: "refuse" });
    // The wrong key's 401, the invalid mapping's 422 and the lists a narrowed token may not read
    // (403) are refusals the test asks for.
    browser = await openBrowser({ refusals: [401, 403, 422] });
    ({ context, page, problems, requests } = browser);
  });

  after(async () => {
    await browser?.close();
    await world?.close();
  });

  const text = (selector) => page.locator(selector).innerText();
  const shoot = (name) => browser.shoot(name);
  const confirmDialog = () => browser.confirmDialog();
  const card = (label) => page.locator(".card", { has: page.locator("dt", { hasText: label }) });

  test("is served as static files with a strict Content-Security-Policy", async () => {
    const response = await page.goto(`${await world.url()}console/`);
    assert.equal(response.status(), 200);
    const headers = response.headers();
    assert.match(headers["content-security-policy"], /default-src 'none'; script-src 'self'; style-src 'self'/);
    assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
    assert.equal(headers["x-content-type-options"], "nosniff");
    assert.equal(headers["referrer-policy"], "no-referrer");
    const worker = await fetch(`${await world.url()}healthz`);
    assert.deepEqual(await worker.json(), { ok: true }, "paths that are not files still reach the Worker");
  });

  test("refuses a wrong key, and signs in with an operator key from the keyboard", async () => {
    await page.locator("#key").fill("not-the-key-0123456789");
    await page.keyboard.press("Enter");
    await page.locator("#sign-in-error").filter({ hasText: "invalid_api_key" }).waitFor({ timeout: WAIT_MS });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "a refused key is not kept");
    assert.ok(await page.locator("#nav").isHidden());

    await page.locator("#key").focus();
    await page.keyboard.type(ADMIN_KEY);
    await page.keyboard.press("Enter");
    await page.locator("#status-cards .card").first().waitFor({ timeout: WAIT_MS });
    assert.equal(await card("Dead letters").locator(".value").innerText(), "0");
    assert.match(await text("#status-location"), /loc-e2e/);
  });

  test("shows a parked event after a 400, opens it, replays it, and it is applied; replays a selection; discards one", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 400, body: { message: "phone is invalid" } });
    const { answer, record } = await world.deliverAndSettle(contactEvent("contact.created", { id: "sm_console_1", name: "Grace Hopper", email: "grace@example.com" }));
    assert.equal(record.state, "parked");
    const listed = async (query) => (await world.admin("GET", `events?state=parked&${query}`)).json.events.map((e) => e.webhook_id);
    const iso = (ms) => new Date(ms).toISOString();
    assert.deepEqual(await listed(`from=${iso(record.parked_at - 1000)}&to=${iso(record.parked_at + 1000)}`), [answer.id], "in the window");
    assert.deepEqual(await listed(`from=${iso(record.parked_at + 1)}`), [], "parked before the window");
    assert.deepEqual(await listed("type=contact.updated"), [], "another event type");

    await page.locator("[data-refresh=status]").click();
    await until(async () => (await card("Dead letters").locator(".value").innerText()).startsWith("1"), "the dead letter on the status");
    assert.match(await card("Dead letters").getAttribute("class"), /alert/, "an alert colour where the parked alert fires");
    await shoot("status");

    await page.locator("#nav a[href='#events']").click();
    const row = page.locator(`#event-table tr[data-id="${answer.id}"]`);
    await row.waitFor({ timeout: WAIT_MS });
    assert.match(await row.innerText(), /contact\.created/);
    await page.locator("#event-filters input[name=sightmill_id]").fill("sm_nobody");
    await page.locator("#event-filters button[type=submit]").click();
    await page.locator("#event-table tbody").filter({ hasText: "Nothing here." }).waitFor({ timeout: WAIT_MS });
    await page.locator("#event-filters input[name=sightmill_id]").fill("sm_console_1");
    await page.locator("#event-filters select[name=type]").selectOption("contact.created");
    await page.locator("#event-filters button[type=submit]").click();
    await row.waitFor({ timeout: WAIT_MS });

    await row.locator("button.link").click();
    await page.locator("#event-detail").waitFor({ state: "visible" });
    assert.match(await text("#detail-fields"), /400/, "the reason names the refusal");
    assert.match(await text("#detail-body"), /grace@example\.com/, "the body is shown");
    await shoot("events");

    await page.locator("#detail-replay").click();
    await confirmDialog();
    await page.locator("#events-result").filter({ hasText: `Replayed ${answer.id}` }).waitFor({ timeout: WAIT_MS });
    await until(async () => (await world.record(answer.id)).state === "finished", "the replayed webhook to be applied");
    const contact = world.sim.state().contacts.find((c) => c.email === "grace@example.com");
    assert.equal(contact?.firstName, "Grace");

    // A second dead letter, replayed as a selection.
    world.sim.injectFault({ route: "POST /contacts/", status: 400, body: { message: "email is invalid" } });
    const second = await world.deliverAndSettle(contactEvent("contact.created", { id: "sm_console_3", name: "Edsger Dijkstra" }));
    assert.equal(second.record.state, "parked");
    await page.locator("#event-filters input[name=sightmill_id]").fill("");
    await page.locator("#event-filters button[type=submit]").click();
    const secondRow = page.locator(`#event-table tr[data-id="${second.answer.id}"]`);
    await secondRow.waitFor({ timeout: WAIT_MS });
    await secondRow.getByRole("checkbox").check();
    await page.locator("#replay-selected").click();
    await confirmDialog();
    await page.locator("#events-result").filter({ hasText: "Replayed 1." }).waitFor({ timeout: WAIT_MS });
    await until(async () => (await world.record(second.answer.id)).state === "finished", "the selection to be applied");

    // A third, discarded from its detail.
    world.sim.injectFault({ route: "POST /contacts/", status: 400, body: { message: "name is invalid" } });
    const third = await world.deliverAndSettle(contactEvent("contact.created", { id: "sm_console_4", name: "Barbara Liskov" }));
    await page.locator("#event-filters button[type=submit]").click();
    await page.locator(`#event-table tr[data-id="${third.answer.id}"] button.link`).click();
    await page.locator("#detail-title").filter({ hasText: third.answer.id }).waitFor({ timeout: WAIT_MS });
    await page.locator("#detail-discard").click();
    await confirmDialog();
    await page.locator("#events-result").filter({ hasText: `Discarded webhook ${third.answer.id}.` }).waitFor({ timeout: WAIT_MS });
    const discarded = await world.record(third.answer.id);
    assert.deepEqual([discarded.state, discarded.outcome?.status], ["finished", "discarded"]);
  });

  test("charts the last hour from the Durable Object's counters", async () => {
    await page.locator("#nav a[href='#charts']").click();
    await until(async () => /3 accepted/.test(await text("#chart-webhooks-summary")), "the chart's summary");
    const summary = await text("#chart-webhooks-summary");
    assert.match(summary, /2 applied/);
    assert.match(summary, /3 parked/);
    const calls = Number(/(\d+) calls/.exec(await text("#chart-api-summary"))[1]);
    assert.ok(calls >= 5, `the refused creates and the replayed ones (${calls} calls)`);
    assert.equal(await page.locator("#chart-webhooks canvas").count(), 1, "drawn by uPlot");
    await page.locator("input[name=resolution][value=hours]").check();
    await until(async () => /In the last 24 hours: 3 accepted/.test(await text("#chart-webhooks-summary")), "the hourly chart");
    await page.locator("input[name=resolution][value=minutes]").check();
    await until(async () => /In the last hour/.test(await text("#chart-webhooks-summary")), "the minute chart again");
    await shoot("charts");
  });

  test("edits the mapping with the worker's validation, dry-runs it, saves it, and the next webhook uses it", async () => {
    await page.locator("#nav a[href='#mapping']").click();
    await page.locator("#mapping-rows tbody tr").nth(2).waitFor({ timeout: WAIT_MS });
    assert.match(await text("#mapping-effective"), /deployed mapping/);
    await page.locator("#mapping-validation").filter({ hasText: "The mapping is valid." }).waitFor({ timeout: WAIT_MS });

    // The phone row (the default mapping's third) gets e164: the worker says it needs a country code.
    await page.getByRole("group", { name: "Field 3: transforms" }).getByLabel("e164").check();
    const invalid = page.locator("#mapping-validation").filter({ hasText: "the e164 transform needs `default_country_code`" });
    await invalid.waitFor({ timeout: WAIT_MS });
    assert.match(await text("#mapping-validation"), /mapping entry `fields\[2\]`/);
    assert.equal(await page.locator('#mapping-rows tr[data-row="2"]').getAttribute("aria-invalid"), "true");
    assert.ok(await page.locator("#save-mapping").isDisabled(), "an invalid mapping cannot be saved");

    await page.getByLabel("Default country code").fill("1");
    await page.locator("#add-row").click();
    await page.getByLabel("Field 4: source").selectOption("constant");
    await page.getByLabel("Field 4: constant value").fill("console");
    await page.getByLabel("Field 4: Contacts API target").selectOption("source");
    await page.locator("#mapping-validation").filter({ hasText: "The mapping is valid." }).waitFor({ timeout: WAIT_MS });

    await page.locator("#sample-type").selectOption("contact.created");
    const dryRun = page.locator("#dry-run-output");
    await dryRun.filter({ hasText: '"source": "console"' }).waitFor({ timeout: WAIT_MS });
    const planned = await dryRun.innerText();
    assert.match(planned, /POST \/contacts\//);
    assert.match(planned, /"phone": "\+15550100199"/, "the sample's phone in E.164");
    assert.match(await page.locator("#mapping-json").inputValue(), /"default_country_code": "1"/);
    // Issue 20's settings: adopt an existing match, and a custom field that holds the SightMill id.
    const idField = world.sim.seedCustomField(LOCATION, { name: "SightMill id", dataType: "TEXT" });
    await page.locator("#existing-contacts").selectOption("adopt");
    await page.getByLabel("Custom field id that holds the SightMill id (optional)").fill(idField.id);
    await page.locator("#mapping-validation").filter({ hasText: "The mapping is valid." }).waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator("#mapping-json").inputValue(), /"existing_contacts": "adopt"/);
    await shoot("mapping");

    await page.locator("#save-mapping").click();
    await confirmDialog();
    await page.locator("#mapping-result").filter({ hasText: "Saved" }).waitFor({ timeout: WAIT_MS });
    assert.match(await text("#mapping-effective"), /live mapping applies: saved by key:[0-9a-f]{8}/);

    const next = await world.deliverAndSettle(contactEvent("contact.created", { id: "sm_console_2", name: "Alan Turing", phone: "(555) 010-0123" }));
    assert.equal(next.record.state, "finished");
    const alan = world.sim.state().contacts.find((c) => c.firstName === "Alan");
    assert.equal(alan.phone, "+15550100123", "the live mapping's e164");
    assert.equal(alan.source, "console", "the live mapping's constant");
    const saved = (await world.admin("GET", "mapping")).json.live.document;
    assert.deepEqual([saved.existing_contacts, saved.sightmill_id_field], ["adopt", idField.id], "the console keeps both settings");
    assert.equal(world.sim.counts()["GET /contacts/search/duplicate"], 1, "a new contact asks the location first");
    assert.deepEqual(alan.customFields.find((f) => f.id === idField.id)?.value, "sm_console_2", "the SightMill id in its field");

    await page.locator("#revert-mapping").click();
    await confirmDialog();
    await page.locator("#mapping-result").filter({ hasText: "deployed mapping applies again" }).waitFor({ timeout: WAIT_MS });
    assert.equal((await world.admin("GET", "mapping")).json.effective, "deployed");
  });

  test("picks a custom field and a workflow by name, sees a type error in the dry run, saves, and the next webhook uses them", async () => {
    const plan = world.sim.seedCustomField(LOCATION, { name: "Plan", dataType: "SINGLE_OPTIONS", picklistOptions: ["Basic", "Pro"] });
    const onboarding = world.sim.seedFlow("workflow", LOCATION, { name: "Onboarding" });
    // Showing the view again reads the location's lists again.
    await page.locator("#nav a[href='#status']").click();
    await page.locator("#nav a[href='#mapping']").click();
    await page.locator("#mapping-rows tbody tr").nth(2).waitFor({ timeout: WAIT_MS });
    await until(async () => (await page.locator("#mapping-rows option", { hasText: "Plan (SINGLE_OPTIONS)" }).count()) > 0, "the custom fields listed");

    await page.locator("#add-row").click();
    await page.getByLabel("Field 4: SightMill field (a dotted path)").fill("plan");
    await page.getByLabel("Field 4: Contacts API target").selectOption("customField");
    await page.getByLabel("Field 4: custom field by name").selectOption({ label: "Plan (SINGLE_OPTIONS)" });
    assert.equal(await page.getByLabel("Field 4: custom field id or key").inputValue(), "contact.plan");
    assert.match(await page.locator('#mapping-rows tr[data-row="3"] [data-custom-hint]').innerText(), /Plan: SINGLE_OPTIONS, one of its options: Basic, Pro/);

    await page.locator("#add-action").click();
    await page.getByLabel("Action 1: when").selectOption("status_becomes");
    await page.getByLabel("Action 1: status or tag").fill("customer");
    await page.getByLabel("Action 1: do").selectOption("add_to_workflow");
    await page.getByLabel("Action 1: workflow by name").selectOption({ label: "Onboarding (published)" });
    assert.equal(await page.getByLabel("Action 1: id").inputValue(), onboarding.id);
    await page.locator("#mapping-validation").filter({ hasText: "The mapping is valid." }).waitFor({ timeout: WAIT_MS });

    const sample = (planValue) => ({
      type: "contact.created",
      timestamp: "2026-12-07T10:00:00Z",
      data: { id: "sm_console_pick", name: "Grace Hopper", status: "customer", plan: planValue, updated_at: "2026-12-07T10:00:00Z" },
    });
    await page.locator("#sample-type").selectOption("contact.created");
    await page.locator("#sample-body").fill(JSON.stringify(sample("Gold")));
    const dryRun = page.locator("#dry-run-output");
    await dryRun.filter({ hasText: "decision: park" }).waitFor({ timeout: WAIT_MS });
    assert.match(await dryRun.innerText(), /custom field `contact\.plan`: `Gold` is not one of its options \(Basic, Pro\)/);

    await page.locator("#sample-body").fill(JSON.stringify(sample("pro")));
    await dryRun.filter({ hasText: "decision: send" }).waitFor({ timeout: WAIT_MS });
    const planned = await dryRun.innerText();
    const customFields = /"customFields": (\[[^\]]*\])/.exec(planned)?.[1];
    assert.deepEqual(JSON.parse(customFields), [{ id: plan.id, fieldValue: "Pro" }], "the key resolved to the location's id, the value to its option");
    assert.match(planned, /POST \/contacts\/\n/);
    assert.match(planned, new RegExp(`action: add_to_workflow ${onboarding.id} \\("Onboarding"\\)\\s+POST /contacts/NEW_CONTACT_ID/workflow/${onboarding.id}`));
    await shoot("mapping-pickers");

    await page.locator("#save-mapping").click();
    await confirmDialog();
    await page.locator("#mapping-result").filter({ hasText: "Saved" }).waitFor({ timeout: WAIT_MS });
    const saved = (await world.admin("GET", "mapping")).json.live.document;
    assert.equal(saved.fields[3].to, "customField:contact.plan");
    assert.deepEqual(saved.actions, [{ when: "status_becomes", value: "customer", do: "add_to_workflow", id: onboarding.id, name: "Onboarding" }]);

    const next = await world.deliverAndSettle(contactEvent("contact.created", sample("basic").data));
    assert.equal(next.record.state, "finished", JSON.stringify(next.record));
    const grace = world.sim.state().contacts.find((c) => c.id === next.record.outcome.contact_id);
    assert.deepEqual(grace.customFields, [{ id: plan.id, value: "Basic" }]);
    const enrolled = world.sim.state().enrollments.filter((e) => e.contactId === grace.id);
    assert.deepEqual(enrolled.map((e) => [e.kind, e.flowId, e.removedAt]), [["workflow", onboarding.id, null]]);

    await page.locator("#revert-mapping").click();
    await confirmDialog();
    await page.locator("#mapping-result").filter({ hasText: "deployed mapping applies again" }).waitFor({ timeout: WAIT_MS });
  });

  test("names the scope a token lacks to list custom fields, workflows and campaigns; an id typed by hand still works", async () => {
    world.sim.addToken(TOKEN, LOCATION, ["contacts.readonly", "contacts.write"]);
    try {
      await page.locator("#nav a[href='#status']").click();
      await page.locator("#nav a[href='#mapping']").click();
      const lists = page.locator("#mapping-lists");
      // The three lists are asked for at once and answer in any order: wait for each.
      for (const list of ["Custom fields", "Workflows", "Campaigns"]) {
        await lists.filter({ hasText: `${list} cannot be listed` }).waitFor({ timeout: WAIT_MS });
      }
      await until(async () => (await page.locator("#mapping-rows tbody tr").count()) === 3, "the deployed mapping's three rows");
      const said = await lists.innerText();
      assert.match(said, /Custom fields cannot be listed: the token needs the scope locations\/customFields\.readonly\. Ids typed by hand still work\./);
      assert.match(said, /Workflows cannot be listed: the token needs the scope workflows\.readonly\./);
      assert.match(said, /Campaigns cannot be listed: the token needs the scope campaigns\.readonly\./);
      await page.locator("#add-row").click();
      await page.getByLabel("Field 4: SightMill field (a dotted path)").fill("plan");
      await page.getByLabel("Field 4: Contacts API target").selectOption("customField");
      // The Plan field's id, typed by hand (the worker still has the list it read before).
      const planId = world.sim.state().customFields.find((f) => f.fieldKey === "contact.plan").id;
      await page.getByLabel("Field 4: custom field id or key").fill(planId);
      await page.locator("#mapping-validation").filter({ hasText: "The mapping is valid." }).waitFor({ timeout: WAIT_MS });
      await page.locator("#sample-body").fill(JSON.stringify({
        type: "contact.created", timestamp: "2026-12-07T10:00:00Z",
        data: { id: "sm_console_hand", name: "Ada", plan: "pro", updated_at: "2026-12-07T10:00:00Z" },
      }));
      const dryRun = page.locator("#dry-run-output");
      await dryRun.filter({ hasText: `"id": "${planId}"` }).waitFor({ timeout: WAIT_MS });
      assert.match(await dryRun.innerText(), /"fieldValue": "Pro"/, "converted with the list the worker kept");
      await page.getByRole("button", { name: "Remove field 4" }).click();
    } finally {
      world.sim.addToken(TOKEN, LOCATION);
    }
  });

  test("fits a phone's width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator("#nav a[href='#status']").click();
    await page.locator("#status-cards .card").first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px too wide)`);
    await shoot("phone-status");
    await page.locator("#nav a[href='#mapping']").click();
    await page.locator("#mapping-rows tbody tr").first().waitFor();
    const mappingOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(mappingOverflow <= 0, `the mapping form fits (${mappingOverflow}px too wide)`);
  });

  test("the charts' counts are stored in the ring once their minute is over, and idle runs write nothing", async () => {
    const minute = (ms) => Math.floor(ms / 60_000);
    const started = minute(Date.now());
    await until(() => minute(Date.now()) > started, "the minute to turn", 61_000);
    await world.cron(); // the run's end folds the minute that is over
    const rows = await world.sql("SELECT slot, bucket FROM metrics ORDER BY slot");
    // A row is [start, accepted, applied, ...]: the flat array the Durable Object stores.
    const accepted = (kind) =>
      rows.filter((row) => (row.slot < 60) === (kind === "minute")).reduce((sum, row) => sum + JSON.parse(row.bucket)[1], 0);
    // One row per minute and per hour that counted something (how many depends on how long the
    // suite took), never more than the ring holds.
    const minuteRows = rows.filter((row) => row.slot < 60).length;
    const hourRows = rows.length - minuteRows;
    assert.ok(minuteRows >= 1 && minuteRows <= 60 && hourRows >= 1 && hourRows <= 24, `minute and hour rows: ${minuteRows}, ${hourRows} ${world.logs().split("\n").filter((l) => /charts|storage/.test(l)).join("\n")}`);
    assert.equal(accepted("minute"), 5, "the five webhooks, in the minute rows");
    assert.equal(accepted("hour"), 5, "the five webhooks, in the hour rows");
    const hours = (await world.admin("GET", "metrics")).json.hours;
    assert.equal(hours.accepted.reduce((a, b) => a + b, 0), 5, "the API serves the stored rows");

    const written = async () => (await world.status()).durable_object.rows_written;
    const before = await written();
    await world.cron();
    await world.cron();
    assert.equal(await written(), before, "an idle location writes no row");
  });

  test("kept the key out of every URL and cookie, and broke no policy", async () => {
    const admin = requests.filter((request) => new URL(request.url).pathname.startsWith("/admin/"));
    assert.ok(admin.length > 10, "the console used the operator API");
    for (const request of requests) assert.ok(!request.url.includes(ADMIN_KEY), `no key in ${request.url}`);
    for (const request of admin) assert.match(request.headers.authorization ?? "", /^Bearer /);
    assert.deepEqual(await context.cookies(), []);
    assert.ok(!world.logs().includes(ADMIN_KEY), "the key is not in the worker's log");
    const hosts = new Set(requests.map((request) => new URL(request.url).host));
    assert.equal(hosts.size, 1, `one origin only: ${[...hosts].join(", ")}`);
    assert.deepEqual(problems, [], "no script errors or policy violations");
  });
});
