// Contact sync end to end: signed contact webhooks are accepted durably (202), then applied to the
// Contacts API simulator by the built Wasm worker in workerd, with idempotency, duplicate adoption
// and stale drops kept by the location's Durable Object.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { apiCalls, contactEvent, LOCATION, SECRET, startWorld, TOKEN } from "./harness.mjs";

const MAPPING = JSON.stringify({
  fields: [
    { from: "name", to: "firstName+lastName", transforms: ["trim"] },
    { from: "email", to: "email", transforms: ["trim", "lowercase"] },
    { from: "phone", to: "phone" },
  ],
  status: { to: "customField:cf_status" },
});

describe("contact sync", () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates: "refuse", vars: { CONTACT_MAPPING: MAPPING } });
  });
  after(() => world.close());
  beforeEach(async () => {
    await world.reset();
    world.sim.seedCustomField(LOCATION, { id: "cf_status", name: "Status", dataType: "TEXT" });
  });
  const LISTED = { "GET /locations/:locationId/customFields": 1 };

  const ada = { id: "sm_ada", email: "ada@example.com", name: "Ada Lovelace", phone: "+15550100", status: "active" };

  test("contact.created is accepted with 202, then created and its id remembered", async () => {
    const { answer, record } = await world.deliverAndSettle(contactEvent("contact.created", ada));
    assert.equal(answer.status, 202, answer.text);
    assert.deepEqual(answer.json, {
      webhook_id: answer.id,
      event: "contact.created",
      sightmill_id: "sm_ada",
      status: "accepted",
      state: "pending",
    });
    assert.equal(record.state, "finished");
    assert.equal(record.outcome.status, "applied");
    assert.equal(record.outcome.action, "created");

    const [contact] = world.sim.state().contacts;
    assert.equal(contact.id, record.outcome.contact_id);
    assert.equal(contact.locationId, LOCATION);
    assert.equal(contact.email, "ada@example.com");
    assert.equal(contact.firstName, "Ada");
    assert.equal(contact.lastName, "Lovelace");
    assert.equal(contact.phone, "+15550100");
    assert.deepEqual(contact.customFields, [{ id: "cf_status", value: "active" }]);
    assert.deepEqual(world.sim.counts(), { ...LISTED, "POST /contacts/": 1 });

    const { contact: link } = await world.links("sm_ada");
    assert.equal(link.state, "live");
    assert.equal(link.id, contact.id);
    assert.equal((await world.status()).pending, 0, "nothing left queued");
  });

  test("contact.updated updates the mapped contact with PUT", async () => {
    const created = await world.deliverAndSettle(contactEvent("contact.created", ada));
    const updated = await world.deliverAndSettle(
      contactEvent("contact.updated", {
        id: "sm_ada",
        name: "Ada King",
        phone: null,
        status: "customer",
        updated_at: "2026-11-27T11:00:00Z",
      }),
    );
    assert.equal(updated.record.outcome.action, "updated");
    assert.equal(updated.record.outcome.contact_id, created.record.outcome.contact_id);

    const [contact] = world.sim.state().contacts;
    assert.equal(contact.lastName, "King");
    assert.equal(contact.email, "ada@example.com", "absent fields are left alone");
    assert.equal(contact.phone ?? null, null, "null clears a field");
    assert.deepEqual(contact.customFields, [{ id: "cf_status", value: "customer" }]);
    assert.deepEqual(world.sim.counts(), { ...LISTED, "POST /contacts/": 1, "PUT /contacts/:contactId": 1 });
    const put = world.sim.requests().find((r) => r.method === "PUT");
    assert.equal(put.headers.version, "2021-07-28");
    assert.equal(put.body.tags, undefined, "tags are never PUT: that would overwrite them");
  });

  test("a redelivery sends nothing and answers the stored result", async () => {
    const event = contactEvent("contact.created", ada);
    const first = await world.deliverAndSettle(event, { id: "msg_redelivered" });
    const second = await world.deliver(event, { id: "msg_redelivered" });
    assert.equal(second.status, 200);
    assert.equal(second.headers.get("x-sightmill-sync-replayed"), "true");
    assert.deepEqual(second.json, {
      webhook_id: "msg_redelivered",
      event: "contact.created",
      sightmill_id: "sm_ada",
      ...first.record.outcome,
    });
    assert.equal(apiCalls(world.sim), 1, "exactly one Contacts API call");
  });

  test("a redelivery while the first is still pending is acknowledged again and sends nothing", async () => {
    world.sim.injectFault({ route: "POST /contacts/", status: 503 });
    const event = contactEvent("contact.created", ada);
    await world.deliverAndSettle(event, { id: "msg_pending" });
    const again = await world.deliver(event, { id: "msg_pending" });
    assert.equal(again.status, 202);
    assert.equal(again.json.state, "pending");
    assert.equal(apiCalls(world.sim), 1);
  });

  test("a duplicate email reported by the API is adopted and updated", async () => {
    const existing = await fetch(`${world.sim.url}/contacts/`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, version: "2021-07-28", "content-type": "application/json" },
      body: JSON.stringify({ locationId: LOCATION, email: "ADA@example.com", firstName: "Old" }),
    }).then((r) => r.json());
    const before = apiCalls(world.sim);

    const { record } = await world.deliverAndSettle(contactEvent("contact.created", ada));
    assert.equal(record.outcome.action, "adopted");
    assert.equal(record.outcome.contact_id, existing.contact.id);
    assert.equal(world.sim.state().contacts.length, 1, "no second contact");
    assert.equal(world.sim.state().contacts[0].firstName, "Ada");
    assert.equal(apiCalls(world.sim) - before, 2, "the refused create, then one update");

    const later = await world.deliverAndSettle(
      contactEvent("contact.updated", { id: "sm_ada", name: "Ada B", updated_at: "2026-11-27T12:00:00Z" }),
    );
    assert.equal(later.record.outcome.contact_id, existing.contact.id, "the adopted id is remembered");
  });

  test("an update older than the one applied is dropped and nothing is sent", async () => {
    await world.deliverAndSettle(contactEvent("contact.created", { ...ada, updated_at: "2026-11-27T12:00:00Z" }));
    const stale = await world.deliverAndSettle(
      contactEvent("contact.updated", { id: "sm_ada", name: "Old Name", updated_at: "2026-11-27T11:00:00Z" }),
    );
    assert.equal(stale.record.outcome.status, "stale");
    assert.equal(apiCalls(world.sim), 1);
    assert.equal(world.sim.state().contacts[0].firstName, "Ada");
    assert.match(world.logs(), /"status":"stale"/, "the drop is logged");
  });

  test("a webhook id reused for another body is refused with 409", async () => {
    await world.deliverAndSettle(contactEvent("contact.created", ada), { id: "msg_reused" });
    const reused = await world.deliver(contactEvent("contact.created", { ...ada, id: "sm_other" }), {
      id: "msg_reused",
    });
    assert.equal(reused.status, 409);
    assert.equal(reused.json.error, "webhook_id_reused");
    assert.equal(apiCalls(world.sim), 1);
  });

  test("logs carry one JSON line per outcome and never a secret or contact data", async () => {
    await world.deliverAndSettle(contactEvent("contact.created", ada), { id: "msg_logged" });
    world.sim.injectFault({ route: "PUT /contacts/:contactId", status: 500 });
    // A change to send (an update of the same fields sends nothing: the link's digest matches).
    await world.deliverAndSettle(contactEvent("contact.updated", { ...ada, name: "Ada King", updated_at: "2026-11-27T13:00:00Z" }));
    const logs = world.logs();
    const line = logs.split("\n").find((l) => l.includes('"webhook_id":"msg_logged"'));
    assert.ok(line, logs);
    const entry = JSON.parse(line.slice(line.indexOf("{")));
    assert.equal(entry.decision, "finished");
    assert.equal(entry.status, "applied");
    assert.equal(entry.api_calls, 1);
    assert.match(logs, /"decision":"retry"/);
    const secretBytes = SECRET.replace("whsec_", "");
    for (const secret of [TOKEN, SECRET, secretBytes, "ada@example.com", "Lovelace", "+15550100"]) {
      assert.ok(!logs.includes(secret), `logs must not contain ${secret}`);
    }
  });
});
