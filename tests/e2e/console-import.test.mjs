// The console's Imports view in a real browser (headless Chromium, as console.test.mjs): signs in,
// chooses a small CSV with one bad row (its format guessed from its name), dry-runs its first rows,
// imports it, watches the progress bar move to the end while the view polls the import, and
// downloads the failed rows (read with the operator key as a header, never in a URL) and checks
// the CSV it saved. Creates are slowed in the simulator so that the bar is seen part way.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { openBrowser, until, WAIT_MS } from "./browser.mjs";
import { ADMIN_KEY, startWorld } from "./harness.mjs";

const CSV = [
  "id,updated_at,name,email",
  "sm_imp_1,2026-11-27T10:00:00Z,Ada Lovelace,ada@example.com",
  'sm_imp_2,not a time,"Bad, Row",bad@example.com',
  "sm_imp_3,2026-11-27T10:00:00Z,Grace Hopper,grace@example.com",
  "sm_imp_4,2026-11-27T10:00:00Z,Edsger Dijkstra,edsger@example.com",
  "",
].join("\n");

describe("the console's Imports view", () => {
  let world;
  let browser;
  let page;

  before(async () => {
    world = await startWorld({ duplicates: "refuse" });
    browser = await openBrowser();
    ({ page } = browser);
  });

  after(async () => {
    await browser?.close();
    await world?.close();
  });

  test("uploads a CSV, watches the progress bar reach the end, and downloads the failed rows", async () => {
    await page.goto(`${await world.url()}console/`);
    await page.locator("#key").fill(ADMIN_KEY);
    await page.keyboard.press("Enter");
    await page.locator("#nav").waitFor({ state: "visible", timeout: WAIT_MS });
    await page.locator("#nav a[href='#imports']").click();
    await page.locator("#imports").waitFor({ state: "visible", timeout: WAIT_MS });
    await page.locator("#import-table tbody").filter({ hasText: "No import yet." }).waitFor({ timeout: WAIT_MS });

    await page.locator("#import-file").setInputFiles({ name: "sightmill-contacts.csv", mimeType: "text/csv", buffer: Buffer.from(CSV) });
    assert.equal(await page.locator("#import-format").inputValue(), "csv", "the format is guessed from the name");

    await page.locator("#import-dry-run").click();
    await page.locator("#import-dry-run-output").waitFor({ state: "visible", timeout: WAIT_MS });
    const dry = await page.locator("#import-dry-run-output").innerText();
    assert.match(dry, /ada@example\.com/, "the dry run shows the requests");
    assert.match(await page.locator("#import-dry-run-bad").innerText(), /line 3/, "the bad row, by its line");
    assert.equal(world.sim.state().contacts.length, 0, "the dry run sent nothing");

    // Slow creates: the import takes a few seconds, so the 2 s polling sees it part way.
    world.sim.injectFault({ route: "POST /contacts/", latencyMs: 1500, count: null });
    await page.locator("#import-start").click();
    const bar = page.locator("#import-progress");
    await page.locator("#import-progress-panel").waitFor({ state: "visible", timeout: WAIT_MS });
    assert.equal(await bar.getAttribute("aria-valuemax"), "4");
    const seen = [];
    await until(async () => {
      const now = Number(await bar.getAttribute("aria-valuenow"));
      if (seen.at(-1) !== now) seen.push(now);
      return now === 4 && /finished/.test(await page.locator("#import-state").innerText());
    }, "the progress bar to reach the end", 60_000);
    assert.ok(seen.length >= 2, `the bar moved while the view polled: ${seen.join(" -> ")}`);
    assert.deepEqual([...seen].sort((a, b) => a - b), seen, "it never went back");
    assert.equal(await bar.evaluate((element) => element.value), 4);
    assert.match(await page.locator("#import-count").innerText(), /4 \/ 4 rows \(100%\)/);
    const figures = await page.locator("#import-figures").innerText();
    assert.match(figures, /Created\s+3/);
    assert.match(figures, /Failed\s+1/);
    assert.equal(world.sim.state().contacts.length, 3);
    await browser.shoot("imports");

    const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT_MS }), page.locator("#import-failed").click()]);
    assert.match(download.suggestedFilename(), /failed\.csv$/);
    const saved = readFileSync(await download.path(), "utf8");
    const lines = saved.split(/\r?\n/).filter(Boolean);
    assert.equal(lines[0], "line,reason,row");
    assert.equal(lines.length, 2, saved);
    assert.match(lines[1], /^3,/, "the bad row's line");
    assert.match(lines[1], /sm_imp_2/);
    assert.match(lines[1], /""Bad, Row""|Bad, Row/, "the row, quoted");

    const failedRequest = browser.requests.find((r) => r.url.includes("/failed.csv"));
    assert.ok(failedRequest, "failed.csv was fetched");
    assert.equal(failedRequest.headers.authorization, `Bearer ${ADMIN_KEY}`, "with the key as a header");
    assert.ok(browser.requests.every((r) => !r.url.includes(ADMIN_KEY)), "the key is in no URL");
    assert.deepEqual(browser.problems, [], "no script error or policy violation");
  });
});
