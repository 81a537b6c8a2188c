// The whole event catalogue end to end: contacts, notes, tags and tasks reach the Contacts API
// simulator in order per contact, redeliveries send nothing twice, the operator's mapping shapes
// every body, a bad mapping stops everything, and the dry run shows the exact requests.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { apiCalls, LOCATION, sleep, startWorld } from "./harness.mjs";
import { sightmillEvent } from "../support/webhooks.mjs";

const MAPPING = {
  fields: [
    { from: "name", to: "firstName+lastName", transforms: ["trim"] },
    { from: "email", to: "email", transforms: ["trim", "lowercase"] },
    { from: "phone", to: "phone", transforms: ["e164"] },
    { from: "company", to: "companyName" },
    { from: "plan", to: "customField:cf_plan" },
    { value: "sightmill", to: "source" },
  ],
  status: { to: "tag", prefix: "status:" },
  default_country_code: "1",
};

const at = (hour) => `2026-11-27T${String(hour).padStart(2, "0")}:00:00Z`;
const contact = { id: "sm_c1", name: "Grace Hopper", email: "Grace@Example.com", phone: "(555) 010-0199", status: "lead" };

describe("the event catalogue", () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates: "refuse", vars: { CONTACT_MAPPING: JSON.stringify(MAPPING) } });
  });
  after(() => world.close());
  beforeEach(async () => {
    await world.reset();
    world.sim.seedCustomField(LOCATION, { id: "cf_plan", name: "Plan", dataType: "TEXT" });
  });

  const apply = async (type, data) => {
    const event = sightmillEvent(type, data);
    const { answer, record } = await world.deliverAndSettle(event);
    assert.equal(answer.status, 202, answer.text);
    assert.equal(record.state, "finished", `${type}: ${JSON.stringify(record)}`);
    return { id: answer.id, type, event, outcome: record.outcome };
  };

  test("every event type reaches the Contacts API, and every redelivery sends nothing", async () => {
    const applied = [];
    applied.push(await apply("contact.created", { ...contact, plan: "pro", company: "Navy", updated_at: at(1) }));
    const [created] = world.sim.state().contacts;
    assert.equal(created.email, "grace@example.com");
    assert.equal(created.phone, "+15550100199");
    assert.equal(created.companyName, "Navy");
    assert.equal(created.source, "sightmill");
    assert.deepEqual(created.tags, ["status:lead"]);
    assert.deepEqual(created.customFields, [{ id: "cf_plan", value: "pro" }]);

    applied.push(await apply("contact.updated", { ...contact, status: "customer", updated_at: at(2) }));
    assert.deepEqual(world.sim.state().contacts[0].tags, ["status:customer"], "the status tag is swapped");

    applied.push(await apply("note.created", { id: "sm_n1", contact_id: "sm_c1", body: "First call", updated_at: at(3) }));
    applied.push(await apply("note.updated", { id: "sm_n1", contact_id: "sm_c1", body: "First call, edited", updated_at: at(4) }));
    let [note] = world.sim.state().notes;
    assert.equal(note.body, "First call, edited");
    assert.equal(note.contactId, created.id);

    applied.push(await apply("tag.added", { contact_id: "sm_c1", tag: "vip", updated_at: at(5) }));
    assert.deepEqual(world.sim.state().contacts[0].tags.sort(), ["status:customer", "vip"]);
    applied.push(await apply("tag.removed", { contact_id: "sm_c1", tag: "vip", updated_at: at(6) }));
    assert.deepEqual(world.sim.state().contacts[0].tags, ["status:customer"]);

    const task = { id: "sm_t1", contact_id: "sm_c1", title: "Follow up", body: "Call back", due_date: at(20), updated_at: at(7) };
    applied.push(await apply("task.created", task));
    applied.push(await apply("task.updated", { ...task, title: "Follow up soon", body: null, updated_at: at(8) }));
    applied.push(await apply("task.completed", { id: "sm_t1", contact_id: "sm_c1", updated_at: at(9) }));
    const [storedTask] = world.sim.state().tasks;
    assert.equal(storedTask.title, "Follow up soon");
    assert.equal(storedTask.completed, true);
    assert.equal(storedTask.dueDate, at(20));
    assert.equal(storedTask.body, "", "a body the newest snapshot no longer has is cleared");
    applied.push(await apply("task.deleted", { id: "sm_t1", contact_id: "sm_c1", updated_at: at(10) }));
    assert.deepEqual(world.sim.state().tasks, []);
    applied.push(await apply("note.deleted", { id: "sm_n1", contact_id: "sm_c1", updated_at: at(11) }));
    assert.deepEqual(world.sim.state().notes, []);

    const callsBeforeDelete = apiCalls(world.sim);
    applied.push(await apply("contact.deleted", { id: "sm_c1", updated_at: at(12) }));
    assert.deepEqual(world.sim.state().contacts, []);
    assert.equal(apiCalls(world.sim), callsBeforeDelete + 1);
    const links = await world.links("sm_c1");
    assert.equal(links.contact.state, "deleted");
    assert.deepEqual([links.notes, links.tasks, links.tags], [{}, {}, {}], "the contact's id maps are cleared");

    for (const { outcome, type } of applied) assert.equal(outcome.status, "applied", type);
    const counts = world.sim.counts();
    assert.equal(counts["PUT /contacts/:contactId/tags"], undefined, "tags are never PUT");
    assert.equal(counts["POST /contacts/"], 1);

    const calls = apiCalls(world.sim);
    for (const { id, type, event, outcome } of applied) {
      const again = await world.deliver(event, { id });
      assert.equal(again.status, 200, `${type}: ${again.text}`);
      assert.equal(again.headers.get("x-sightmill-sync-replayed"), "true");
      assert.equal(again.json.action, outcome.action, type);
    }
    assert.equal(apiCalls(world.sim), calls, "redeliveries send nothing");
  });

  test("a note that arrives before its contact waits, then is applied to that contact", async () => {
    const early = await world.deliverAndSettle(
      sightmillEvent("note.created", { id: "sm_n1", contact_id: "sm_c1", body: "Early", updated_at: at(2) }),
    );
    assert.equal(early.answer.status, 202);
    assert.equal(early.record.state, "pending");
    assert.match(early.record.last_error, /contact is not in the Contacts API yet/);
    assert.equal(apiCalls(world.sim), 0);

    await apply("contact.created", { ...contact, updated_at: at(1) });
    await sleep(1300);
    await world.cron();
    const note = await world.record(early.answer.id);
    assert.equal(note.state, "finished", JSON.stringify(note));
    assert.equal(world.sim.state().contacts.length, 1, "no second contact");
    assert.equal(world.sim.state().notes.length, 1, "no orphan");
    assert.equal(world.sim.state().notes[0].contactId, world.sim.state().contacts[0].id);
  });

  test("older updates are dropped per record, whatever order they arrive in", async () => {
    await apply("contact.created", { ...contact, updated_at: at(1) });
    await apply("note.updated", { id: "sm_n1", contact_id: "sm_c1", body: "Newest", updated_at: at(5) });
    const late = await apply("note.created", { id: "sm_n1", contact_id: "sm_c1", body: "Oldest", updated_at: at(3) });
    assert.equal(late.outcome.status, "stale");
    assert.equal(world.sim.state().notes.length, 1);
    assert.equal(world.sim.state().notes[0].body, "Newest");

    await apply("task.deleted", { id: "sm_t1", contact_id: "sm_c1", updated_at: at(6) });
    const resurrected = await apply("task.created", {
      id: "sm_t1", contact_id: "sm_c1", title: "Too late", due_date: at(20), updated_at: at(4),
    });
    assert.equal(resurrected.outcome.status, "stale", "a tombstone keeps a deleted task deleted");
    assert.deepEqual(world.sim.state().tasks, []);

    const status = await world.admin("GET", "status");
    assert.equal(status.json.stale_dropped, 2, "drops are counted");
    assert.equal((world.logs().match(/"status":"stale"/g) ?? []).length, 2, "and logged");
  });

  test("a contact the mapping cannot convert is parked with the field named, nothing half-sent", async () => {
    const { record } = await world.deliverAndSettle(
      sightmillEvent("contact.created", { ...contact, phone: "call me maybe", updated_at: at(1) }),
    );
    assert.equal(record.state, "parked");
    assert.match(record.reason, /field `phone`/);
    assert.equal(apiCalls(world.sim), 0);
  });

  test("the dry run answers the exact requests and sends and writes nothing", async () => {
    const event = sightmillEvent("contact.created", { ...contact, plan: "basic", updated_at: at(1) });
    const dry = await world.admin("POST", "dry-run", { body: event });
    assert.equal(dry.status, 200);
    assert.equal(dry.json.decision, "send");
    assert.deepEqual(dry.json.requests, [
      {
        method: "POST",
        path: "/contacts/",
        body: {
          firstName: "Grace",
          lastName: "Hopper",
          email: "grace@example.com",
          phone: "+15550100199",
          source: "sightmill",
          customFields: [{ id: "cf_plan", fieldValue: "basic" }],
          tags: ["status:lead"],
          locationId: LOCATION,
        },
      },
    ]);
    assert.equal(apiCalls(world.sim), 0);
    await world.assertNothingStored("a dry run stores nothing");
    assert.deepEqual(
      (await world.status()).counters,
      { api_calls: 1 },
      "the location recorded nothing but its read of the custom fields the mapping names",
    );
    assert.deepEqual(Object.keys(world.sim.counts()), ["GET /locations/:locationId/customFields"]);

    await apply("contact.created", { ...contact, updated_at: at(1) });
    const update = sightmillEvent("contact.updated", { ...contact, status: "customer", updated_at: at(2) });
    const swap = await world.admin("POST", "dry-run", { body: update });
    const contactId = world.sim.state().contacts[0].id;
    assert.deepEqual(
      swap.json.requests.map((r) => `${r.method} ${r.path}`),
      [`PUT /contacts/${contactId}`, `DELETE /contacts/${contactId}/tags`, `POST /contacts/${contactId}/tags`],
    );
    const waiting = await world.admin("POST", "dry-run", {
      body: sightmillEvent("note.created", { id: "n", contact_id: "sm_unknown", body: "x", updated_at: at(1) }),
    });
    assert.equal(waiting.json.decision, "wait");

    const bad = await world.admin("POST", "dry-run", { body: { type: "contact.exploded" } });
    assert.equal(bad.status, 422);
    const huge = await world.admin("POST", "dry-run", { body: { ...event, pad: "x".repeat(300 * 1024) } });
    assert.equal(huge.status, 413);
    assert.equal(huge.json.error, "body_too_large");
    const unauthorised = await world.admin("POST", "dry-run", { body: event, key: "wrong-key-0123456789" });
    assert.equal(unauthorised.status, 401);
  });
});

describe("a bad mapping", () => {
  test("is refused before any event is processed with it, naming the entry", async () => {
    const bad = { fields: [{ from: "email", to: "email" }, { from: "name", to: "nickname" }] };
    const world = await startWorld({ duplicates: "refuse", vars: { CONTACT_MAPPING: JSON.stringify(bad) } });
    try {
      const answer = await world.deliver(sightmillEvent("contact.created", { ...contact, updated_at: at(1) }));
      assert.equal(answer.status, 500);
      assert.equal(answer.json.error, "misconfigured");
      assert.match(answer.json.message, /CONTACT_MAPPING.*`fields\[1\]`: unknown target `nickname`/);
      await world.cron();
      assert.equal(apiCalls(world.sim), 0);
      await world.assertNothingStored("a refused mapping stores nothing");
      const dry = await world.admin("POST", "dry-run", { body: {} });
      assert.equal(dry.status, 500);
    } finally {
      await world.close();
    }
  });
});
