// The browser side of the console suites: Debian's headless Chromium driven by playwright-core
// (which downloads no browser), a fresh profile each run, every request and every script error
// or policy violation recorded, and screenshots that go into docs/console/ only with
// UPDATE_SCREENSHOTS=1 (otherwise into a temporary folder, so that a test run leaves the working
// tree as it found it). Shared by console.test.mjs and console-connections.test.mjs.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const SHOTS = process.env.UPDATE_SCREENSHOTS === "1"
  ? fileURLToPath(new URL("../../docs/console/", import.meta.url))
  : mkdtempSync(path.join(os.tmpdir(), "sightmill-console-shots-"));
export const WAIT_MS = 15_000;

/** The system's Chromium (scripts/setup.sh installs it), or CHROMIUM_PATH. */
function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("Chromium is not installed: run scripts/setup.sh (Debian/Ubuntu: apt-get install chromium)");
  }
}

/** Waits until `check()` holds (a condition with a deadline, never a fixed sleep). */
export async function until(check, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts Chromium. The browser logs every 4xx answer as an error: `refusals` are the statuses the
 * suite asks for (e.g. a wrong key's 401); any other error is kept in `problems`.
 */
export async function openBrowser({ refusals = [] } = {}) {
  const profile = mkdtempSync(path.join(os.tmpdir(), "sightmill-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    viewport: { width: 1280, height: 800 },
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  const messages = [];
  const requests = [];
  const refused = new RegExp(`Failed to load resource: the server responded with a status of (${refusals.join("|") || "none"})`);
  page.on("console", (message) => {
    messages.push(message.text());
    if (message.type() === "error" && !refused.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));
  page.on("request", (request) => requests.push({ url: request.url(), headers: request.headers() }));
  mkdirSync(SHOTS, { recursive: true });
  return {
    context,
    page,
    problems,
    messages,
    requests,
    shoot: (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }),
    /** Confirms the console's dialog from the keyboard (it focuses Confirm). */
    async confirmDialog() {
      await page.locator("#confirm").waitFor({ state: "visible" });
      await page.keyboard.press("Enter");
      await page.locator("#confirm").waitFor({ state: "hidden" });
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
