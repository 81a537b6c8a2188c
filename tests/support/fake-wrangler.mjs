#!/usr/bin/env node
// A stand-in for the wrangler commands scripts/deploy.sh runs, for its test (no network, no
// account): `deploy`, `secret list --format json` and `secret bulk` (JSON on stdin). It keeps its
// "Cloudflare" in FAKE_WRANGLER_STATE (secrets.json, deployed), records each call's arguments in
// calls.jsonl there (never a secret value), and prints the URL FAKE_WRANGLER_URL as wrangler
// prints a deployed worker's. Anything else fails, so the script cannot use a command unnoticed.

import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const state = process.env.FAKE_WRANGLER_STATE;
if (!state) throw new Error("FAKE_WRANGLER_STATE is not set");
const file = (name) => path.join(state, name);
const args = process.argv.slice(2);
appendFileSync(file("calls.jsonl"), `${JSON.stringify(args)}\n`);

const secrets = () => (existsSync(file("secrets.json")) ? JSON.parse(readFileSync(file("secrets.json"), "utf8")) : {});
const fail = (message) => {
  console.error(`✘ [ERROR] ${message}`);
  process.exit(1);
};
const command = args.filter((arg) => !arg.startsWith("-")).slice(0, 2).join(" ");

if (command.startsWith("deploy")) {
  writeFileSync(file("deployed"), "yes");
  console.log("Total Upload: 1024.00 KiB / gzip: 356.00 KiB");
  console.log("Uploaded sightmill-sync (1.00 sec)");
  console.log("Deployed sightmill-sync triggers (0.50 sec)");
  console.log(`  ${process.env.FAKE_WRANGLER_URL}`);
  console.log("  schedule: * * * * *");
  console.log("Current Version ID: 00000000-0000-0000-0000-000000000000");
} else if (command === "secret list") {
  if (!existsSync(file("deployed"))) fail("This Worker does not exist on your account. [code: 10007]");
  console.log("▲ [WARNING] a warning line, as wrangler sometimes prints one first");
  console.log(JSON.stringify(Object.keys(secrets()).map((name) => ({ name, type: "secret_text" })), null, 2));
} else if (command === "secret bulk") {
  if (args.length > 2 + args.filter((arg) => arg.startsWith("-")).length * 2) fail("the stand-in takes secrets on stdin only");
  const given = JSON.parse(readFileSync(0, "utf8"));
  writeFileSync(file("secrets.json"), JSON.stringify({ ...secrets(), ...given }, null, 2));
  for (const name of Object.keys(given)) console.log(`✨ Successfully created secret for key: ${name}`);
} else {
  fail(`the stand-in does not do \`wrangler ${args.join(" ")}\``);
}
