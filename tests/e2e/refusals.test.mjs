// Every way a webhook is refused: each answers its status with a JSON error, sends nothing to the
// Contacts API and writes nothing to KV.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { apiCalls, contactEvent, sign, startWorld } from "./harness.mjs";

const good = contactEvent("contact.created", { id: "sm_1", email: "a@example.com" });
const now = () => Math.floor(Date.now() / 1000);

const cases = [
  ["bad signature", { signature: "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }, 401, "invalid_signature"],
  ["signature by another secret", { secret: `whsec_${Buffer.from("another-key").toString("base64")}` }, 401, "invalid_signature"],
  ["missing signature header", { headers: { "webhook-signature": undefined } }, 401, "invalid_signature"],
  ["missing webhook-id", { headers: { "webhook-id": undefined } }, 401, "invalid_signature"],
  ["webhook-id with path characters", { id: "../../etc" }, 401, "invalid_signature"],
  ["stale timestamp", { timestamp: now() - 360 }, 401, "invalid_signature"],
  ["future timestamp", { timestamp: now() + 360 }, 401, "invalid_signature"],
  ["malformed JSON", { rawBody: '{"type": "contact.created",' }, 400, "malformed_json"],
  ["deeply nested JSON", { rawBody: `${"[".repeat(100)}${"]".repeat(100)}` }, 400, "malformed_json"],
  ["invalid UTF-8", { rawBody: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }, 400, "malformed_json"],
  ["unknown event type", { rawBody: JSON.stringify({ ...good, type: "contact.exploded" }) }, 422, "unprocessable_event"],
  ["missing data.id", { rawBody: JSON.stringify(contactEvent("contact.created", {})) }, 422, "unprocessable_event"],
  ["id with path characters", { rawBody: JSON.stringify(contactEvent("contact.created", { id: "a/../b" })) }, 422, "unprocessable_event"],
  ["oversized body", { rawBody: JSON.stringify({ ...good, pad: "x".repeat(300 * 1024) }) }, 413, "body_too_large"],
  ["wrong content type", { headers: { "content-type": "text/plain" } }, 415, "unsupported_media_type"],
  ["missing content type", { headers: { "content-type": undefined } }, 415, "unsupported_media_type"],
  ["GET on the webhook route", { method: "GET", rawBody: null, signature: "v1,x" }, 405, "method_not_allowed"],
];

describe("refused webhooks", () => {
  let world;
  before(async () => {
    world = await startWorld();
  });
  after(() => world.close());

  for (const [name, overrides, status, code] of cases) {
    test(`${name}: ${status} ${code}, nothing sent or stored`, async () => {
      await world.reset();
      const answer = await world.deliver(good, overrides);
      assert.equal(answer.status, status, answer.text);
      assert.equal(answer.json?.error, code, answer.text);
      assert.equal(typeof answer.json.message, "string");
      assert.equal(apiCalls(world.sim), 0);
      assert.deepEqual(await world.kvKeys(), []);
    });
  }

  test("a signature over a body is not valid for another body", async () => {
    await world.reset();
    const body = JSON.stringify(good);
    const timestamp = now();
    const signature = sign(
      `whsec_${Buffer.from("sightmill-e2e-signing-key-32byte").toString("base64")}`,
      "msg_x",
      timestamp,
      body,
    );
    const tampered = body.replace("a@example.com", "b@example.com");
    const answer = await world.deliver(good, { id: "msg_x", timestamp, signature, rawBody: tampered });
    assert.equal(answer.status, 401);
    assert.equal(apiCalls(world.sim), 0);
  });

  test("unknown routes answer 404 with a JSON error", async () => {
    const response = await world.fetch("/nope");
    assert.equal(response.status, 404);
    assert.equal((await response.json()).error, "not_found");
  });
});

describe("misconfiguration", () => {
  test("a missing setting answers 500 naming it, and never a secret value", async () => {
    const world = await startWorld({ vars: { GHL_LOCATION_ID: undefined } });
    try {
      const answer = await world.deliver(good);
      assert.equal(answer.status, 500);
      assert.equal(answer.json.error, "misconfigured");
      assert.match(answer.json.message, /GHL_LOCATION_ID/);
      assert.equal(apiCalls(world.sim), 0);
    } finally {
      await world.close();
    }
  });

  test("a missing token is accepted and waits in the queue, naming the setting", async () => {
    const world = await startWorld({ vars: { CONTACTS_API_TOKEN: undefined } });
    try {
      const { answer, record } = await world.deliverAndSettle(good, { id: "msg_no_token" });
      assert.equal(answer.status, 202, answer.text);
      assert.equal(record.state, "pending");
      assert.match(record.last_error, /CONTACTS_API_TOKEN/);
      assert.equal(apiCalls(world.sim), 0);
      assert.match(world.logs(), /"kind":"token_renewal"/, "the operator is told");
    } finally {
      await world.close();
    }
  });
});
