// Actions beyond fields, end to end (issue 24): the mapping's rules add a contact to a workflow
// when its status becomes a value and take it out when the status leaves it, add followers when
// a tag is added and take it out of a campaign when the tag is removed; each is applied once,
// even when an add's answer is lost and the event is retried; the dry run shows the calls.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { contactEvent, LOCATION, sleep, startWorld } from "./harness.mjs";

const MAPPING = {
  fields: [{ from: "email", to: "email" }],
  actions: [
    { when: "status_becomes", value: "customer", do: "add_to_workflow", id: "wf_onboard", name: "Onboarding" },
    { when: "status_becomes", value: "customer", do: "add_to_campaign", id: "cmp_nurture", name: "Nurture" },
    { when: "status_leaves", value: "customer", do: "remove_from_workflow", id: "wf_onboard", name: "Onboarding" },
    { when: "tag_added", value: "vip", do: "add_followers", followers: ["user_ada"] },
    { when: "tag_removed", value: "vip", do: "remove_from_campaign", id: "cmp_nurture" },
  ],
};
const at = (minute) => `2026-12-07T10:${String(minute).padStart(2, "0")}:00Z`;

for (const duplicates of ["allow", "refuse"]) describe(`actions beyond fields (duplicates: ${duplicates})`, () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates, vars: { CONTACT_MAPPING: JSON.stringify(MAPPING) } });
  });
  after(() => world?.close());
  beforeEach(async () => {
    await world.reset();
    world.sim.seedFlow("workflow", LOCATION, { id: "wf_onboard", name: "Onboarding" });
    world.sim.seedFlow("campaign", LOCATION, { id: "cmp_nurture", name: "Nurture" });
  });

  const update = (minute, data) =>
    world.deliverAndSettle(contactEvent(minute === 0 ? "contact.created" : "contact.updated", { id: "sm_ada", email: "ada@example.com", updated_at: at(minute), ...data }));
  const enrolled = (kind) =>
    world.sim.state().enrollments.filter((e) => e.kind === kind).map((e) => (e.removedAt ? "removed" : "open"));

  test("a status change adds the contact to a workflow and a later one removes it", async () => {
    const created = await update(0, { status: "lead" });
    assert.equal(created.record.state, "finished");
    assert.deepEqual(enrolled("workflow"), [], "a lead sets nothing off");

    const customer = await update(1, { status: "customer" });
    assert.equal(customer.record.state, "finished", JSON.stringify(customer.record));
    assert.deepEqual(enrolled("workflow"), ["open"]);
    assert.deepEqual(enrolled("campaign"), ["open"]);
    const contactId = world.sim.state().contacts[0].id;
    const add = world.sim.requests().find((r) => r.route === "POST /contacts/:contactId/workflow/:flowId");
    assert.equal(add.path, `/contacts/${contactId}/workflow/wf_onboard`);
    assert.deepEqual(add.body, {});

    await update(2, { status: "customer", email: "ada@lovelace.example" });
    assert.deepEqual(enrolled("workflow"), ["open"], "still a customer: nothing again");

    const churned = await update(3, { status: "churned" });
    assert.equal(churned.record.state, "finished");
    assert.deepEqual(enrolled("workflow"), ["removed"]);
    assert.deepEqual(enrolled("campaign"), ["open"], "no rule takes it out of the campaign on leaving");
    const counts = world.sim.counts();
    assert.equal(counts["POST /contacts/:contactId/workflow/:flowId"], 1);
    assert.equal(counts["DELETE /contacts/:contactId/workflow/:flowId"], 1);
  });

  test("a tag added adds followers; the tag removed takes the contact out of a campaign", async () => {
    await update(0, { status: "customer" });
    const tag = (type, minute) =>
      world.deliverAndSettle({ type, timestamp: at(minute), data: { contact_id: "sm_ada", tag: "vip", updated_at: at(minute) } });
    assert.equal((await tag("tag.added", 1)).record.state, "finished");
    assert.deepEqual(world.sim.state().contacts[0].followers, ["user_ada"]);
    assert.deepEqual(world.sim.state().contacts[0].tags, ["vip"]);
    assert.equal((await tag("tag.removed", 2)).record.state, "finished");
    assert.deepEqual(enrolled("campaign"), ["removed"]);
    assert.deepEqual(world.sim.state().contacts[0].tags, []);
  });

  test("an add whose answer was lost is applied once, though the event is retried", async () => {
    await update(0, { status: "lead" });
    // The workflow add is applied and its answer never comes (the worker gives up after its
    // 2 s timeout); the campaign add then fails once, so the whole event is tried again.
    world.sim.injectFault({ route: "POST /contacts/:contactId/workflow/:flowId", afterApply: true, hang: true });
    world.sim.injectFault({ route: "POST /contacts/:contactId/campaigns/:flowId", status: 503 });
    const { record } = await update(1, { status: "customer" });
    assert.equal(record.state, "pending", `${JSON.stringify(record)} ${JSON.stringify(world.sim.requests().map((r) => [r.route, r.status]))}`);
    assert.match(record.last_error, /HTTP 503/);
    let finished;
    for (let i = 0; i < 100 && !finished; i += 1) {
      await sleep(200);
      await world.cron();
      const again = await world.record(record.webhook_id);
      if (again.state === "finished") finished = again;
    }
    assert.ok(finished, "the retry finished the event");
    assert.deepEqual(enrolled("workflow"), ["open"], "enrolled once: the lost add was never sent again");
    assert.deepEqual(enrolled("campaign"), ["open"]);
    const counts = world.sim.counts();
    assert.equal(counts["POST /contacts/:contactId/workflow/:flowId"], 1);
    assert.equal(counts["POST /contacts/:contactId/campaigns/:flowId"], 2, "the refused add, then the one applied");
    assert.equal(counts["POST /contacts/"], 1, "the contact is updated on the retry, never made again");
    assert.equal(finished.notes.length, 1, JSON.stringify(finished.notes));
    assert.match(finished.notes[0], /^add_to_workflow wf_onboard \("Onboarding"\): sent once and its answer was lost; not sent again/);
  });

  test("an action the API refuses parks the event with the action named; a replay sends what is left", async () => {
    await update(0, { status: "lead" });
    const refusal = { statusCode: 400, message: "Workflow not found" };
    world.sim.injectFault({ route: "POST /contacts/:contactId/workflow/:flowId", status: 400, body: refusal });
    const { record } = await update(1, { status: "customer" });
    assert.equal(record.state, "parked", JSON.stringify(record));
    assert.match(record.reason, /add_to_workflow wf_onboard \("Onboarding"\) refused: Workflow not found/);
    assert.deepEqual([enrolled("workflow"), enrolled("campaign")], [[], []]);

    assert.equal((await world.admin("POST", `events/${record.webhook_id}/replay`)).status, 202);
    let replayed;
    for (let i = 0; i < 50 && !replayed; i += 1) {
      await sleep(100);
      const again = await world.record(record.webhook_id);
      if (again.state === "finished") replayed = again;
    }
    assert.ok(replayed, "the replay finished");
    assert.deepEqual([enrolled("workflow"), enrolled("campaign")], [["open"], ["open"]]);
  });

  test("the dry run shows the actions' calls and sends nothing", async () => {
    await update(0, { status: "lead" });
    const before = world.sim.requests().length;
    const event = contactEvent("contact.updated", { id: "sm_ada", status: "customer", updated_at: at(1) });
    const dry = await world.admin("POST", "dry-run", { body: event });
    assert.equal(dry.status, 200);
    const contactId = world.sim.state().contacts[0].id;
    assert.deepEqual(dry.json.actions, [
      { action: 'add_to_workflow wf_onboard ("Onboarding")', request: { method: "POST", path: `/contacts/${contactId}/workflow/wf_onboard`, body: {} } },
      { action: 'add_to_campaign cmp_nurture ("Nurture")', request: { method: "POST", path: `/contacts/${contactId}/campaigns/cmp_nurture`, body: {} } },
    ]);
    assert.equal(world.sim.requests().length, before, "nothing sent");
  });
});
