// Contact sync end to end: signed contact webhooks reach the Contacts API simulator through the
// built Wasm worker in workerd, with idempotency, duplicate adoption and stale drops kept in KV.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { apiCalls, contactEvent, LOCATION, SECRET, startWorld, TOKEN } from "./harness.mjs";

describe("contact sync", () => {
  let world;
  before(async () => {
    world = await startWorld();
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  const ada = {
    id: "sm_ada",
    email: "ada@example.com",
    name: "Ada Lovelace",
    phone: "+15550100",
    status: "active",
  };

  test("contact.created creates the contact and remembers its id", async () => {
    const answer = await world.deliver(contactEvent("contact.created", ada));
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json.status, "applied");
    assert.equal(answer.json.action, "created");
    assert.equal(answer.json.sightmill_id, "sm_ada");

    const [contact] = world.sim.state().contacts;
    assert.equal(contact.id, answer.json.contact_id);
    assert.equal(contact.locationId, LOCATION);
    assert.equal(contact.email, "ada@example.com");
    assert.equal(contact.firstName, "Ada");
    assert.equal(contact.lastName, "Lovelace");
    assert.equal(contact.phone, "+15550100");
    assert.deepEqual(contact.customFields, [{ id: "cf_status", value: "active" }]);
    assert.deepEqual(world.sim.counts(), { "POST /contacts/": 1 });

    const link = await world.kv.get(`contact:${LOCATION}:sm_ada`, "json");
    assert.equal(link.contact_id, contact.id);
  });

  test("contact.updated updates the mapped contact with PUT", async () => {
    const created = await world.deliver(contactEvent("contact.created", ada));
    const updated = await world.deliver(
      contactEvent("contact.updated", {
        id: "sm_ada",
        name: "Ada King",
        phone: null,
        status: "customer",
        updated_at: "2026-11-27T11:00:00Z",
      }),
    );
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.json.action, "updated");
    assert.equal(updated.json.contact_id, created.json.contact_id);

    const [contact] = world.sim.state().contacts;
    assert.equal(contact.lastName, "King");
    assert.equal(contact.email, "ada@example.com", "absent fields are left alone");
    assert.equal(contact.phone ?? null, null, "null clears a field");
    assert.deepEqual(contact.customFields, [{ id: "cf_status", value: "customer" }]);
    assert.deepEqual(world.sim.counts(), { "POST /contacts/": 1, "PUT /contacts/:contactId": 1 });
    const put = world.sim.requests().find((r) => r.method === "PUT");
    assert.equal(put.headers.version, "2021-07-28");
    assert.equal(put.body.tags, undefined, "tags are never PUT: that would overwrite them");
  });

  test("a redelivery sends nothing and answers the same result", async () => {
    const event = contactEvent("contact.created", ada);
    const first = await world.deliver(event, { id: "msg_redelivered" });
    const second = await world.deliver(event, { id: "msg_redelivered" });
    assert.equal(second.status, first.status);
    assert.deepEqual(second.json, first.json);
    assert.equal(second.headers.get("x-sightmill-sync-replayed"), "true");
    assert.equal(apiCalls(world.sim), 1, "exactly one Contacts API call");
  });

  test("a duplicate email reported by the API is adopted and updated", async () => {
    const existing = await fetch(`${world.sim.url}/contacts/`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, version: "2021-07-28", "content-type": "application/json" },
      body: JSON.stringify({ locationId: LOCATION, email: "ADA@example.com", firstName: "Old" }),
    }).then((r) => r.json());
    const before = apiCalls(world.sim);

    const answer = await world.deliver(contactEvent("contact.created", ada));
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json.action, "adopted");
    assert.equal(answer.json.contact_id, existing.contact.id);
    assert.equal(world.sim.state().contacts.length, 1, "no second contact");
    assert.equal(world.sim.state().contacts[0].firstName, "Ada");
    assert.equal(apiCalls(world.sim) - before, 2, "the refused create, then one update");

    const later = await world.deliver(
      contactEvent("contact.updated", { id: "sm_ada", name: "Ada B", updated_at: "2026-11-27T12:00:00Z" }),
    );
    assert.equal(later.json.contact_id, existing.contact.id, "the adopted id is remembered");
  });

  test("an update older than the one applied is dropped and nothing is sent", async () => {
    await world.deliver(contactEvent("contact.created", { ...ada, updated_at: "2026-11-27T12:00:00Z" }));
    const stale = await world.deliver(
      contactEvent("contact.updated", { id: "sm_ada", name: "Old Name", updated_at: "2026-11-27T11:00:00Z" }),
    );
    assert.equal(stale.status, 200);
    assert.equal(stale.json.status, "stale");
    assert.equal(apiCalls(world.sim), 1);
    assert.equal(world.sim.state().contacts[0].firstName, "Ada");
  });

  test("a webhook id reused for another body is refused with 409", async () => {
    await world.deliver(contactEvent("contact.created", ada), { id: "msg_reused" });
    const reused = await world.deliver(contactEvent("contact.created", { ...ada, id: "sm_other" }), { id: "msg_reused" });
    assert.equal(reused.status, 409);
    assert.equal(reused.json.error, "webhook_id_reused");
    assert.equal(apiCalls(world.sim), 1);
  });

  test("a 5xx leaves the webhook pending with 503, and the redelivery applies it", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503 });
    const event = contactEvent("contact.created", ada);
    const first = await world.deliver(event, { id: "msg_retry" });
    assert.equal(first.status, 503, first.text);
    assert.equal(first.json.error, "contacts_api_unavailable");
    assert.equal(first.json.retryable, true);
    const pending = await world.kv.get("webhook:msg_retry", "json");
    assert.equal(pending.state, "pending");
    assert.equal(pending.attempts, 1);
    assert.match(pending.last_error, /503/);

    const second = await world.deliver(event, { id: "msg_retry" });
    assert.equal(second.status, 200, second.text);
    assert.equal(world.sim.state().contacts.length, 1);
    const finished = await world.kv.get("webhook:msg_retry", "json");
    assert.equal(finished.state, "finished");
  });

  test("a 429 answers 503 with the API's Retry-After", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 429, headers: { "Retry-After": "7" } });
    const answer = await world.deliver(contactEvent("contact.created", ada));
    assert.equal(answer.status, 503);
    assert.equal(answer.headers.get("retry-after"), "7");
    assert.equal(world.sim.state().contacts.length, 0);
  });

  test("a hung Contacts API call times out into a 503", async () => {
    world.sim.injectFault({ route: "POST /contacts/", hang: true });
    const started = Date.now();
    const answer = await world.deliver(contactEvent("contact.created", ada));
    assert.equal(answer.status, 503, answer.text);
    assert.match(answer.json.message, /no answer within 2000 ms/);
    assert.ok(Date.now() - started < 10_000);
  });

  test("a change the API refuses for good answers 422 and is not retried", async () => {
    world.sim.injectFault({
      route: "POST /contacts/",
      status: 422,
      body: { statusCode: 422, message: ["email must be an email"], error: "Unprocessable Entity" },
    });
    const event = contactEvent("contact.created", ada);
    const first = await world.deliver(event, { id: "msg_rejected" });
    assert.equal(first.status, 422, first.text);
    assert.equal(first.json.status, "rejected");
    assert.equal(first.json.api_status, 422);
    assert.equal(first.json.message, "email must be an email");
    const again = await world.deliver(event, { id: "msg_rejected" });
    assert.deepEqual(again.json, first.json);
    assert.equal(apiCalls(world.sim), 1);
  });

  test("a refused token answers 503 and keeps the webhook pending", async () => {
    world.sim.revokeToken(TOKEN);
    try {
      const answer = await world.deliver(contactEvent("contact.created", ada), { id: "msg_token" });
      assert.equal(answer.status, 503);
      assert.equal(answer.json.error, "contacts_api_token_rejected");
      assert.equal((await world.kv.get("webhook:msg_token", "json")).state, "pending");
    } finally {
      world.sim.addToken(TOKEN, LOCATION);
    }
  });

  test("logs carry one JSON line per outcome and never a secret", async () => {
    await world.deliver(contactEvent("contact.created", ada), { id: "msg_logged" });
    world.sim.injectFault({ route: "PUT /contacts/:contactId", status: 500 });
    await world.deliver(contactEvent("contact.updated", { ...ada, updated_at: "2026-11-27T13:00:00Z" }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const logs = world.logs();
    const line = logs.split("\n").find((l) => l.includes('"webhook_id":"msg_logged"'));
    assert.ok(line, logs);
    const entry = JSON.parse(line.slice(line.indexOf("{")));
    assert.equal(entry.decision, "finished");
    assert.equal(entry.status, "applied");
    assert.match(logs, /"decision":"retry_later"/);
    const secretBytes = SECRET.replace("whsec_", "");
    for (const secret of [TOKEN, SECRET, secretBytes, "ada@example.com", "Lovelace"]) {
      assert.ok(!logs.includes(secret), `logs must not contain ${secret}`);
    }
  });
});
