// GET /health, the check after a deploy: 200 `{"ok": true}` when the settings let every part
// that is turned on work, 503 naming each broken setting otherwise, never a value; and it costs
// no KV operation and no Durable Object request (the settings object alone answers).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ADMIN_KEY, LOCATION, READ_KEYS, SECRET, TOKEN, startWorld } from "./harness.mjs";

/** The requests the location's Durable Object has served, as its status counts them. */
async function locationRequests(world) {
  const status = await world.status();
  return status.durable_object.requests;
}

async function health(world) {
  const response = await world.fetch("/health");
  const text = await response.text();
  return { status: response.status, text, json: JSON.parse(text) };
}

describe("GET /health", () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates: "refuse" });
  });
  after(() => world.close());

  test("a deployment whose settings are valid answers 200 {ok: true}, costing no KV and no Durable Object request", async (t) => {
    // Two status calls back to back give the status call's own count; the same two calls with
    // /health between them must give the same.
    const a = await locationRequests(world);
    const b = await locationRequests(world);
    const kvBefore = world.kvFlavour === "production" ? JSON.stringify(await world.kvOps()) : null;
    const directoryBefore = world.kvFlavour === "production" ? await directoryRequests(world) : null;
    for (let n = 0; n < 5; n += 1) {
      const answer = await health(world);
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(answer.json, { ok: true });
    }
    const c = await locationRequests(world);
    assert.equal(c - b, b - a, "no Durable Object request for /health");
    if (world.kvFlavour === "production") {
      assert.equal(JSON.stringify(await world.kvOps()), kvBefore, "no KV operation");
      assert.equal(await directoryRequests(world), directoryBefore, "no Directory request");
    } else {
      t.diagnostic("KV and the Directory are counted by the production KV model only");
    }
  });

  test("broken settings answer 503 naming each, never its value", async () => {
    const values = {
      CONTACT_MAPPING: '{"fields": [{"from": "secret_source_field", "to": "nickname"}]}',
      READ_API_KEYS: "short-read-key",
      READ_SHARE_PERCENT: "314",
    };
    await world.reconfigure(values);
    try {
      const answer = await health(world);
      assert.equal(answer.status, 503, answer.text);
      assert.equal(answer.json.ok, false);
      assert.deepEqual(answer.json.misconfigured, ["CONTACT_MAPPING", "READ_API_KEYS", "READ_SHARE_PERCENT"]);
      for (const value of [...Object.values(values), "secret_source_field", "nickname", SECRET, TOKEN, ADMIN_KEY, ...READ_KEYS]) {
        assert.ok(!answer.text.includes(value), `the answer does not carry ${value.slice(0, 12)}...`);
      }
    } finally {
      await world.reconfigure({ CONTACT_MAPPING: undefined, READ_API_KEYS: READ_KEYS.join(" "), READ_SHARE_PERCENT: undefined });
    }
    assert.equal((await health(world)).status, 200, "fixed: 200 again");
  });

  test("a missing token and a deployment that could connect nothing are named", async () => {
    await world.reconfigure({ CONTACTS_API_TOKEN: undefined });
    try {
      assert.deepEqual((await health(world)).json.misconfigured, ["CONTACTS_API_TOKEN"]);
      await world.reconfigure({ GHL_LOCATION_ID: undefined, WEBHOOK_SECRETS: undefined });
      const answer = await health(world);
      assert.equal(answer.status, 503);
      assert.deepEqual(answer.json.misconfigured, ["TOKEN_ENCRYPTION_KEYS"], "named connections need it");
      assert.ok(!answer.text.includes(SECRET.slice(6)));
    } finally {
      await world.reconfigure({ CONTACTS_API_TOKEN: TOKEN, GHL_LOCATION_ID: LOCATION, WEBHOOK_SECRETS: SECRET });
    }
  });
});

/** Fetches the Directory has served (the production KV model's wrapper counts them). */
async function directoryRequests(world) {
  const response = await world.fetch("/__kvmodel/directory");
  return (await response.json()).requests;
}
