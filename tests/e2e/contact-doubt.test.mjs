// A contact create that the Contacts API applied but whose answer the worker never read (answered
// after API_TIMEOUT_MS, answered 422 after applying, or cut off by a runtime restart) must not make
// a second contact, on a location that allows duplicate contacts as on one that refuses them, for
// a contact with an email, with a phone only, and with neither: the create's link is written in
// doubt before it is sent, the retry searches for what it made (POST /contacts/search) and adopts
// it, and a later update lands on that one contact. A create that made nothing is made once.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { LOCATION, TOKEN, sleep, startWorld } from "./harness.mjs";
import { sightmillEvent } from "../support/webhooks.mjs";

const TIMEOUT_MS = 500;
const CREATE = "POST /contacts/";
const SEARCH = "POST /contacts/search";
const at = (minute) => `2026-11-27T10:${String(minute).padStart(2, "0")}:00Z`;

/** The identities a SightMill contact may have: what decides the lookup's key. */
const IDENTITIES = {
  "with an email": { email: "ada@example.com", phone: "+15550000001" },
  "with a phone only": { phone: "+15550000002" },
  "with neither email nor phone": {},
};

const contactEvent = (type, identity, minute, name) =>
  sightmillEvent(type, { id: "sm_c1", name, ...identity, updated_at: at(minute) });

/** Ways a create is applied without its answer reaching the worker. */
const LOST = {
  "answered after the timeout": { afterApply: true, latencyMs: TIMEOUT_MS + 1000 },
  "answered 422 after applying": { afterApply: true, status: 422, body: { statusCode: 422, message: ["unprocessable"] } },
};

/** A contact someone adds in GoHighLevel by hand (straight to the simulator); returns its id. */
async function madeByHand(world, fields) {
  const made = await fetch(`${world.sim.url}/contacts/`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, version: "2021-07-28", "content-type": "application/json" },
    body: JSON.stringify({ locationId: LOCATION, ...fields }),
  });
  assert.equal(made.status, 201);
  return (await made.json()).contact.id;
}

for (const duplicates of ["allow", "refuse"]) {
  describe(`a contact create whose answer was lost, on a location that ${duplicates}s duplicates`, () => {
    let world;
    before(async () => {
      world = await startWorld({ duplicates, vars: { API_TIMEOUT_MS: String(TIMEOUT_MS) } });
    });
    after(() => world.close());
    beforeEach(() => world.reset());

    /** Waits out the 1 s retry delay (and the doubt's settling time), then runs the cron. */
    async function retry() {
      await sleep(TIMEOUT_MS + 1300);
      await world.cron();
    }

    /** The one simulator contact; fails when there is not exactly one. */
    function onlyContact() {
      const contacts = world.sim.state().contacts;
      assert.equal(contacts.length, 1, `exactly one contact: ${JSON.stringify(contacts.map((c) => c.id))}`);
      return contacts[0];
    }

    /** The later update lands on the one contact, with no further create. */
    async function laterUpdateLands(identity, creates) {
      const updated = await world.deliverAndSettle(contactEvent("contact.updated", identity, 5, "Ada Lovelace"));
      assert.equal(updated.record.state, "finished", JSON.stringify(updated.record));
      const contact = onlyContact();
      assert.deepEqual([contact.firstName, contact.lastName], ["Ada", "Lovelace"]);
      assert.equal(world.sim.counts()[CREATE], creates, "no create after the adoption");
    }

    for (const [who, identity] of Object.entries(IDENTITIES)) {
      for (const [how, fault] of Object.entries(LOST)) {
        test(`${who}, ${how}: the retry adopts the contact, and the later update lands on it`, async () => {
          world.sim.injectFault({ route: CREATE, count: 1, ...fault });
          const { answer, record } = await world.deliverAndSettle(contactEvent("contact.created", identity, 1, "Ada Byron"));
          assert.equal(answer.status, 202);
          assert.equal(record.state, "pending", JSON.stringify(record));
          const doubt = (await world.links("sm_c1")).contact;
          assert.equal(doubt.state, "in_doubt", JSON.stringify(doubt));
          assert.equal(doubt.sent.email, identity.email);
          onlyContact();

          await retry();
          const done = await world.record(answer.id);
          assert.equal(done.state, "finished", JSON.stringify(done));
          assert.equal(done.outcome.action, "adopted");
          assert.equal(done.outcome.contact_id, onlyContact().id);
          assert.equal(world.sim.counts()[CREATE], 1, "never created again");
          assert.equal(world.sim.counts()[SEARCH], 1, "one search for the one doubt");
          await laterUpdateLands(identity, 1);
        });
      }

      test(`${who}, cut off by a runtime restart: one contact, and the later update lands on it`, async () => {
        // The simulator holds the create, then applies it after the runtime that sent it is gone.
        world.sim.injectFault({ route: CREATE, count: 1, latencyMs: 400 });
        const answer = await world.deliver(contactEvent("contact.created", identity, 1, "Ada Byron"));
        assert.equal(answer.status, 202);
        for (let i = 0; i < 200 && !world.sim.counts()[CREATE]; i += 1) await sleep(10);
        await world.restart();
        await sleep(500);
        onlyContact();

        await retry();
        const done = await world.record(answer.id);
        assert.equal(done.state, "finished", JSON.stringify(done));
        assert.equal(done.outcome.contact_id, onlyContact().id);
        await laterUpdateLands(identity, 1);
      });

      test(`${who}, a create that made nothing: made once by the retry`, async () => {
        world.sim.injectFault({ route: CREATE, count: 1, hang: true });
        const { answer } = await world.deliverAndSettle(contactEvent("contact.created", identity, 1, "Ada Byron"));
        assert.equal(world.sim.state().contacts.length, 0);
        await retry();
        const done = await world.record(answer.id);
        assert.equal(done.outcome?.action, "created", JSON.stringify(done));
        assert.equal(world.sim.counts()[CREATE], 2, "created after the search found nothing");
        await laterUpdateLands(identity, 2);
      });
    }

    test("two contacts that both match what the create sent park the event, naming both", async () => {
      world.sim.injectFault({ route: CREATE, count: 1, afterApply: true, latencyMs: TIMEOUT_MS + 1000 });
      const created = contactEvent("contact.created", {}, 1, "Ada Byron");
      const { answer } = await world.deliverAndSettle(created);
      // Someone adds a second "Ada Byron" by hand before the retry.
      await madeByHand(world, { firstName: "Ada", lastName: "Byron" });
      await retry();
      const parked = await world.record(answer.id);
      assert.equal(parked.state, "parked", JSON.stringify(parked));
      const ids = world.sim.state().contacts.map((c) => c.id);
      for (const id of ids) assert.ok(parked.reason.includes(id), `${parked.reason} names ${id}`);
      assert.equal(world.sim.counts()[CREATE], 2, "the hand-made one and the create in doubt, nothing more");
    });
  });
}

describe("a new SightMill contact that matches an existing Contacts API contact on a location that allows duplicates", () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates: "allow" });
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  const existing = () => madeByHand(world, { email: "ada@example.com", firstName: "Old" });

  const created = sightmillEvent("contact.created", { id: "sm_c1", name: "Ada Byron", email: "ada@example.com", updated_at: at(1) });

  test("by default (existing_contacts: create) gets a contact of its own, as the location asks", async () => {
    const old = await existing();
    const { record } = await world.deliverAndSettle(created);
    assert.equal(record.outcome.action, "created");
    assert.notEqual(record.outcome.contact_id, old);
    assert.equal(world.sim.state().contacts.length, 2);
  });

  test("with existing_contacts: adopt, adopts and updates the match", async () => {
    const old = await existing();
    const mapping = { fields: [{ from: "name", to: "firstName+lastName" }, { from: "email", to: "email" }], existing_contacts: "adopt" };
    const saved = await world.admin("PUT", "mapping", { body: mapping });
    assert.equal(saved.status, 200, JSON.stringify(saved.json));
    const { record } = await world.deliverAndSettle(created);
    assert.equal(record.outcome.action, "adopted", JSON.stringify(record));
    assert.equal(record.outcome.contact_id, old);
    const contacts = world.sim.state().contacts;
    assert.deepEqual(contacts.map((c) => [c.id, c.firstName]), [[old, "Ada"]]);
    assert.equal(world.sim.counts()["GET /contacts/search/duplicate"], 1);
  });
});
