// Tests of the simulator's custom fields, workflows, campaigns and followers (node --test
// tests/simulator/): the lists as the specs shape them, the scope each needs, ids that differ per
// location, contact writes that silently drop what a field cannot take, and enrollments.

import assert from "node:assert/strict";
import { test } from "node:test";
import { startSimulator } from "./server.mjs";

const TOKEN = "pit-lists";
const OTHER = "pit-other";
const VERSION = "2021-07-28";

async function withSim(fn) {
  const sim = await startSimulator({ tokens: { [TOKEN]: "loc-1", [OTHER]: "loc-2" } });
  try {
    await fn(sim);
  } finally {
    await sim.close();
  }
}

async function call(sim, method, path, { body, token = TOKEN } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Version: VERSION };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(sim.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text === "" ? null : JSON.parse(text) };
}

const contact = async (sim, fields = {}, token = TOKEN) =>
  (await call(sim, "POST", "/contacts/", { body: { locationId: token === TOKEN ? "loc-1" : "loc-2", ...fields }, token })).body.contact;

test("custom fields are listed per location and model, with ids of their own", async () => {
  await withSim(async (sim) => {
    const plan1 = sim.seedCustomField("loc-1", { name: "Plan", dataType: "SINGLE_OPTIONS", picklistOptions: ["Basic", "Pro"] });
    const plan2 = sim.seedCustomField("loc-2", { name: "Plan", dataType: "SINGLE_OPTIONS", picklistOptions: ["Basic", "Pro"] });
    sim.seedCustomField("loc-1", { name: "Deal size", dataType: "NUMERICAL", model: "opportunity" });
    assert.notEqual(plan1.id, plan2.id);
    assert.equal(plan1.fieldKey, plan2.fieldKey);
    assert.equal(plan1.fieldKey, "contact.plan");

    const listed = await call(sim, "GET", "/locations/loc-1/customFields?model=contact");
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.customFields.map((f) => [f.id, f.fieldKey, f.dataType, f.picklistOptions]), [
      [plan1.id, "contact.plan", "SINGLE_OPTIONS", ["Basic", "Pro"]],
    ]);
    assert.equal((await call(sim, "GET", "/locations/loc-1/customFields")).body.customFields.length, 2, "all models");
    assert.equal((await call(sim, "GET", "/locations/loc-1/customFields?model=deal")).status, 422);
    assert.equal((await call(sim, "GET", "/locations/loc-2/customFields")).status, 403, "another location's");
    const byKey = await call(sim, "GET", "/locations/loc-1/customFields/contact.plan");
    assert.equal(byKey.body.customField.id, plan1.id);
  });
});

test("a token without the scope is refused the list with 401 naming the scope problem", async () => {
  await withSim(async (sim) => {
    sim.addToken("pit-narrow", "loc-1", ["contacts.readonly", "contacts.write"]);
    const refused = await call(sim, "GET", "/locations/loc-1/customFields", { token: "pit-narrow" });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.message, "The token is not authorized for this scope.");
    assert.equal((await call(sim, "GET", "/workflows/?locationId=loc-1", { token: "pit-narrow" })).status, 401);
    assert.equal((await call(sim, "POST", "/contacts/", { body: { locationId: "loc-1" }, token: "pit-narrow" })).status, 201);
  });
});

test("custom fields are created as the spec's CreateCustomFieldsDTO says", async () => {
  await withSim(async (sim) => {
    const made = await call(sim, "POST", "/locations/loc-1/customFields", { body: { name: "Renewal date", dataType: "DATE", model: "contact" } });
    assert.equal(made.status, 201);
    assert.equal(made.body.customField.fieldKey, "contact.renewal_date");
    const bad = await call(sim, "POST", "/locations/loc-1/customFields", { body: { dataType: "TEXT", options: [] } });
    assert.equal(bad.status, 422);
    assert.deepEqual(bad.body.message, ["property options should not exist", "name should not be empty", "name must be a string"]);
  });
});

test("a contact write keeps what each field's type takes and drops the rest without a word", async () => {
  await withSim(async (sim) => {
    const ids = Object.fromEntries(
      [
        ["plan", "SINGLE_OPTIONS", ["Basic", "Pro"]],
        ["score", "NUMERICAL"],
        ["renewal", "DATE"],
        ["tags", "MULTIPLE_OPTIONS", ["a", "b"]],
        ["note", "TEXT"],
      ].map(([name, dataType, picklistOptions]) => [name, sim.seedCustomField("loc-1", { name, dataType, picklistOptions }).id]),
    );
    const given = [
      { id: ids.plan, fieldValue: "Gold" },
      { id: ids.score, fieldValue: "12 apples" },
      { id: ids.renewal, fieldValue: "soon" },
      { id: ids.tags, fieldValue: "a" },
      { id: "no-such-field", fieldValue: "x" },
      { key: "contact.note", field_value: "kept" },
      { id: ids.score, fieldValue: 12 },
    ];
    const made = await call(sim, "POST", "/contacts/", { body: { locationId: "loc-1", customFields: given } });
    assert.equal(made.status, 201, "the API answers as if all went well");
    assert.deepEqual(made.body.contact.customFields, [
      { id: ids.note, value: "kept" },
      { id: ids.score, value: 12 },
    ]);
    assert.deepEqual(
      sim.state().droppedCustomFields.map((d) => d.why),
      ["not a SINGLE_OPTIONS value", "not a NUMERICAL value", "not a DATE value", "not a MULTIPLE_OPTIONS value", "no such field in this location"],
    );
  });
});

test("workflows and campaigns are listed, and every add is an enrollment of its own", async () => {
  await withSim(async (sim) => {
    const workflow = sim.seedFlow("workflow", "loc-1", { name: "Onboarding" });
    const draft = sim.seedFlow("campaign", "loc-1", { name: "Old", status: "draft" });
    const campaign = sim.seedFlow("campaign", "loc-1", { name: "Nurture" });
    sim.seedFlow("workflow", "loc-2", { name: "Elsewhere" });
    const workflows = await call(sim, "GET", "/workflows/?locationId=loc-1");
    assert.deepEqual(workflows.body.workflows.map((w) => w.name), ["Onboarding"]);
    assert.equal((await call(sim, "GET", "/workflows/")).status, 422, "locationId is required");
    assert.equal((await call(sim, "GET", "/workflows/?locationId=loc-2")).status, 403);
    const published = await call(sim, "GET", "/campaigns/?locationId=loc-1&status=published");
    assert.deepEqual(published.body.campaigns.map((c) => c.id), [campaign.id]);
    assert.equal((await call(sim, "GET", "/campaigns/?locationId=loc-1")).body.campaigns.length, 2);

    const ada = await contact(sim);
    const add = () => call(sim, "POST", `/contacts/${ada.id}/workflow/${workflow.id}`, { body: { eventStartTime: "2026-12-07T10:00:00Z" } });
    assert.deepEqual(await add(), { status: 200, body: { succeded: true } });
    await add();
    const open = () => sim.state().enrollments.filter((e) => e.kind === "workflow" && !e.removedAt);
    assert.equal(open().length, 2, "an add sent twice enrols twice");
    assert.equal((await call(sim, "POST", `/contacts/${ada.id}/workflow/${workflow.id}`, { body: { eventStartTime: "soon" } })).status, 422);
    assert.equal((await call(sim, "POST", `/contacts/${ada.id}/workflow/nope`, { body: {} })).body.message, "Workflow not found");
    assert.equal((await call(sim, "DELETE", `/contacts/${ada.id}/workflow/${workflow.id}`, { body: {} })).status, 200);
    assert.equal(open().length, 0);
    assert.equal((await call(sim, "DELETE", `/contacts/${ada.id}/workflow/${workflow.id}`, { body: {} })).status, 200, "again: the same");

    assert.equal((await call(sim, "POST", `/contacts/${ada.id}/campaigns/${campaign.id}`, { body: {} })).status, 201);
    assert.equal((await call(sim, "POST", `/contacts/${ada.id}/campaigns/${draft.id}`, { body: {} })).status, 201);
    assert.equal((await call(sim, "DELETE", `/contacts/${ada.id}/campaigns/${campaign.id}`)).status, 200);
    const campaigns = () => sim.state().enrollments.filter((e) => e.kind === "campaign" && !e.removedAt).map((e) => e.flowId);
    assert.deepEqual(campaigns(), [draft.id]);
    assert.equal((await call(sim, "DELETE", `/contacts/${ada.id}/campaigns/removeAll`)).status, 200);
    assert.deepEqual(campaigns(), []);
    assert.equal((await call(sim, "POST", `/contacts/nobody/campaigns/${campaign.id}`, { body: {} })).body.message, "Contact not found");
  });
});

test("followers are a set: adding or removing twice changes nothing more", async () => {
  await withSim(async (sim) => {
    const ada = await contact(sim);
    const path = `/contacts/${ada.id}/followers`;
    assert.deepEqual(await call(sim, "POST", path, { body: { followers: ["u1", "u2"] } }), {
      status: 201,
      body: { followers: ["u1", "u2"], followersAdded: ["u1", "u2"] },
    });
    assert.deepEqual((await call(sim, "POST", path, { body: { followers: ["u1"] } })).body, { followers: ["u1", "u2"], followersAdded: [] });
    assert.deepEqual((await call(sim, "DELETE", path, { body: { followers: ["u1"] } })).body, { followers: ["u2"], followersRemoved: ["u1"] });
    assert.deepEqual((await call(sim, "DELETE", path, { body: { followers: ["u1"] } })).body, { followers: ["u2"], followersRemoved: [] });
    assert.equal((await call(sim, "POST", path, { body: { followers: "u3" } })).status, 422);
  });
});

test("the control interface seeds custom fields, workflows, campaigns and narrow tokens", async () => {
  await withSim(async (sim) => {
    const control = async (path, body) => {
      const res = await fetch(`${sim.url}/__control/${path}`, { method: "POST", body: JSON.stringify(body) });
      return { status: res.status, body: await res.json() };
    };
    const made = await control("custom-fields", { locationId: "loc-1", name: "Tier", dataType: "RADIO", picklistOptions: ["A"] });
    assert.equal(made.status, 201);
    assert.deepEqual([made.body.customField.fieldKey, made.body.customField.picklistOptions], ["contact.tier", ["A"]]);
    assert.equal((await control("custom-fields", { locationId: "loc-1", name: "X", dataType: "COLOUR" })).status, 400);
    assert.equal((await control("workflows", { locationId: "loc-1", name: "W" })).body.workflow.name, "W");
    assert.equal((await control("campaigns", { locationId: "loc-1" })).status, 400);
    assert.equal((await control("tokens", { token: "narrow", locationId: "loc-1", scopes: ["contacts.write"] })).status, 201);
    assert.equal((await control("tokens", { token: "bad", locationId: "loc-1", scopes: "all" })).status, 400);
    assert.equal((await call(sim, "GET", "/campaigns/?locationId=loc-1", { token: "narrow" })).status, 401);
  });
});
