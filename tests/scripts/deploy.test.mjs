// scripts/deploy.sh against a stand-in for wrangler (tests/support/fake-wrangler.mjs; no network):
// the first run deploys, creates the missing secrets and prints each once with the URLs and the
// health check; a second run changes nothing and prints no secret; no secret value is written to
// a file by the script (the repository's files changed meanwhile and its TMPDIR are searched).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FAKE = path.join(ROOT, "tests/support/fake-wrangler.mjs");
/** Directories of the repository the script has no business writing to, and too big to search. */
const SKIP = new Set([".git", "node_modules", "target", "fuzz", ".dev", ".bench"]);

let tmp;
let server;
let url;
const started = Date.now();
/** The cloud the health check reads: the stand-in's state directory of the run being checked. */
let cloud;
let healthChecks = 0;

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "sightmill-deploy-test-"));
  server = createServer((req, res) => {
    if (req.url !== "/health") return res.writeHead(404).end();
    healthChecks += 1;
    const secrets = JSON.parse(readFileSync(path.join(cloud, "secrets.json"), "utf8"));
    const missing = ["ADMIN_API_KEYS", "TOKEN_ENCRYPTION_KEYS"].filter((name) => !secrets[name]);
    res.writeHead(missing.length ? 503 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify(missing.length ? { ok: false, misconfigured: missing } : { ok: true }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${server.address().port}`;
});
after(() => {
  server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs the deploy script once against the stand-in whose state is in `state`. */
function deploy(state, { args = [], env = {} } = {}) {
  const scriptTmp = path.join(tmp, "script-tmp");
  mkdirSync(scriptTmp, { recursive: true });
  mkdirSync(state, { recursive: true });
  cloud = state;
  const environment = { ...process.env, WRANGLER: `node ${FAKE}`, FAKE_WRANGLER_STATE: state, FAKE_WRANGLER_URL: url, TMPDIR: scriptTmp, ...env };
  delete environment.CONTACTS_API_TOKEN;
  delete environment.WORKER_URL;
  Object.assign(environment, env);
  return new Promise((resolve) => {
    execFile("bash", [path.join(ROOT, "scripts/deploy.sh"), ...args], { env: environment, cwd: ROOT, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

const calls = (state) => readFileSync(path.join(state, "calls.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line));
const secretsOf = (state) => JSON.parse(readFileSync(path.join(state, "secrets.json"), "utf8"));
const count = (text, value) => text.split(value).length - 1;

/** Every file under `dir` (skipping SKIP) changed since the test started, or every file when `all`. */
function files(dir, { all = false } = {}) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...files(full, { all }));
    else if (entry.isFile() && (all || statSync(full).mtimeMs >= started - 1000)) found.push(full);
  }
  return found;
}

function assertNotOnDisk(values, { except }) {
  const searched = [...files(ROOT), ...files(path.join(tmp, "script-tmp"), { all: true }), ...files(tmp, { all: true })]
    .filter((file) => !file.startsWith(except));
  for (const file of searched) {
    const text = readFileSync(file, "latin1");
    for (const value of values) assert.ok(!text.includes(value), `a secret value is in ${file}`);
  }
}

describe("scripts/deploy.sh", () => {
  test("named connections only (wrangler.toml as shipped): creates the operator and encryption keys once, then nothing", async () => {
    const state = path.join(tmp, "cloud-named");
    const first = await deploy(state);
    assert.equal(first.code, 0, first.output);
    const created = secretsOf(state);
    assert.deepEqual(Object.keys(created).sort(), ["ADMIN_API_KEYS", "TOKEN_ENCRYPTION_KEYS"]);
    assert.match(created.ADMIN_API_KEYS, /^[A-Za-z0-9_-]{43}$/, "32 random bytes");
    assert.match(created.TOKEN_ENCRYPTION_KEYS, /^k1:[A-Za-z0-9+/]{43}=$/, "a 32-byte AES key");
    for (const value of Object.values(created)) assert.equal(count(first.output, value), 1, "each created secret printed once");
    assert.ok(first.output.includes(`console:  ${url}/console/`), first.output);
    assert.ok(first.output.includes(`${url}/webhooks/sightmill/<connection id>`), first.output);
    assert.match(first.output, /the worker answers and its settings are valid/);
    assert.deepEqual(
      calls(state).map((args) => args.join(" ")),
      ["deploy --config wrangler.toml", "secret list --format json --config wrangler.toml", "secret bulk --config wrangler.toml"],
    );

    const callsBefore = calls(state).length;
    const before = readFileSync(path.join(state, "secrets.json"), "utf8");
    const checksBefore = healthChecks;
    const second = await deploy(state);
    assert.equal(second.code, 0, second.output);
    assert.equal(readFileSync(path.join(state, "secrets.json"), "utf8"), before, "no secret changed");
    const secondCalls = calls(state).slice(callsBefore).map((args) => args.slice(0, 2).join(" "));
    assert.deepEqual(secondCalls, ["deploy --config", "secret list"], "no secret written");
    for (const value of Object.values(created)) assert.equal(count(second.output, value), 0, "no secret printed twice");
    assert.match(second.output, /none changed/);
    assert.equal(healthChecks, checksBefore + 1, "the worker checked again");
    assertNotOnDisk(Object.values(created), { except: state });
  });

  test("a default connection: its signing secret created and printed once, the token taken from the environment and never printed", async () => {
    const state = path.join(tmp, "cloud-default");
    const config = path.join(ROOT, "wrangler.toml");
    const copy = path.join(tmp, "wrangler.location.toml");
    writeFileSync(copy, readFileSync(config, "utf8").replace(/^GHL_LOCATION_ID = ""$/m, 'GHL_LOCATION_ID = "loc-deploy"'));
    const token = `pit-${Math.random().toString(36).slice(2)}-from-the-environment`;
    const first = await deploy(state, { args: [copy], env: { CONTACTS_API_TOKEN: token } });
    assert.equal(first.code, 0, first.output);
    const created = secretsOf(state);
    assert.deepEqual(Object.keys(created).sort(), ["ADMIN_API_KEYS", "CONTACTS_API_TOKEN", "TOKEN_ENCRYPTION_KEYS", "WEBHOOK_SECRETS"]);
    assert.equal(created.CONTACTS_API_TOKEN, token);
    assert.match(created.WEBHOOK_SECRETS, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(count(first.output, created.WEBHOOK_SECRETS), 1);
    assert.equal(count(first.output, token), 0, "a token given is never printed");
    assert.ok(first.output.includes(`webhooks: ${url}/webhooks/sightmill (location loc-deploy)`), first.output);
    assert.ok(calls(state).every((args) => args.includes(copy)), "every call uses the config given");

    const before = readFileSync(path.join(state, "secrets.json"), "utf8");
    const second = await deploy(state, { args: [copy], env: { CONTACTS_API_TOKEN: `${token}-changed` } });
    assert.equal(second.code, 0, second.output);
    assert.equal(readFileSync(path.join(state, "secrets.json"), "utf8"), before, "an existing secret is never replaced");
    for (const value of Object.values(created)) assert.equal(count(second.output, value), 0);
    assertNotOnDisk([...Object.values(created), `${token}-changed`], { except: state });
  });

  test("a failed deploy touches no secret", async () => {
    const state = path.join(tmp, "cloud-failing");
    const failing = await deploy(state, { env: { WRANGLER: `node ${path.join(tmp, "missing-wrangler.mjs")}` } });
    assert.notEqual(failing.code, 0);
    assert.match(failing.output, /wrangler deploy failed; no secret was changed/);
    assert.ok(!existsSync(path.join(state, "secrets.json")));
  });
});
