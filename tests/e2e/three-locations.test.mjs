// Three locations in one deployment (issue 16), each its own connection and its own location in
// the simulator: one that disallows duplicates (a contact with the same email is already there),
// one rate limited hard (2 calls per 10 s), and one whose token the API refuses. Each gets the
// same story about one contact (created, renamed, tagged, noted); each location's events must
// apply in SightMill's order, the first location must finish while the second still waits for
// its rate limit and the third for its token, and the third must catch up once its token works.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { contactEvent, sleep, startWorld } from "./harness.mjs";
import { signedDelivery } from "../support/webhooks.mjs";

const KEYS = `k1:${randomBytes(32).toString("base64")}`;
const DUPLICATES = { id: "loc-nodup", token: "pit-nodup-0123456789abcdef" };
const LIMITED = { id: "loc-limited", token: "pit-limited-0123456789abcdef" };
const REFUSED = { id: "loc-refused", token: "pit-refused-0123456789abcdef" };
const ALL = [DUPLICATES, LIMITED, REFUSED];
const EMAIL = "grace@example.com";

/** Waits for `check()` to be truthy (its value), polling, until `timeoutMs`. */
async function until(what, check, { timeoutMs = 60_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** One contact's story, in SightMill's order (each a minute after the last). */
function story() {
  const at = (minute) => `2026-11-27T10:0${minute}:00Z`;
  return [
    contactEvent("contact.created", { id: "sm_grace", email: EMAIL, name: "Grace Hopper", updated_at: at(0) }),
    contactEvent("contact.updated", { id: "sm_grace", email: EMAIL, name: "Grace Brewster", updated_at: at(1) }),
    { type: "tag.added", timestamp: at(2), data: { contact_id: "sm_grace", tag: "admiral", updated_at: at(2) } },
    { type: "note.created", timestamp: at(3), data: { id: "sm_note_1", contact_id: "sm_grace", body: "COBOL", updated_at: at(3) } },
  ];
}

describe("three locations: one disallows duplicates, one is rate limited hard, one's token is refused", () => {
  let world;
  before(async () => {
    world = await startWorld({
      duplicates: "refuse",
      vars: { TOKEN_ENCRYPTION_KEYS: KEYS, RETRY_SCHEDULE: "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s" },
      simulator: {
        tokens: Object.fromEntries(ALL.map(({ id, token }) => [token, id])),
        locations: {
          [DUPLICATES.id]: { allowDuplicates: false },
          [LIMITED.id]: { allowDuplicates: false, rateLimit: { max: 2, intervalMs: 10_000 } },
          [REFUSED.id]: { allowDuplicates: false },
        },
      },
    });
    for (const connection of ALL) {
      const created = await world.admin("POST", "connections", {
        body: { id: connection.id, token: { kind: "private_integration", token: connection.token } },
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      connection.secret = created.json.signing_secret;
    }
    // Already in the first location: its create is answered as a duplicate and adopted.
    const seeded = await fetch(`${world.sim.url}/contacts/`, {
      method: "POST",
      headers: { authorization: `Bearer ${DUPLICATES.token}`, version: "2021-07-28", "content-type": "application/json" },
      body: JSON.stringify({ locationId: DUPLICATES.id, email: EMAIL, firstName: "Grace" }),
    });
    assert.equal(seeded.status, 201);
    world.sim.revokeToken(REFUSED.token);
  });
  after(() => world?.close());

  const status = async ({ id }) => (await world.admin("GET", `connections/${id}/status`)).json;
  const calls = ({ id }) =>
    world.sim.requests().filter((r) => r.status >= 200 && r.status < 300 && r.route !== "GET <unmatched>" && belongsTo(r, id));
  const belongsTo = (request, id) => request.body?.locationId === id || contactIdsOf(id).has(request.path.split("/")[2]);
  const contactIdsOf = (id) => new Set(world.sim.state().contacts.filter((c) => c.locationId === id).map((c) => c.id));
  const contactsOf = ({ id }) => world.sim.state().contacts.filter((c) => c.locationId === id);

  test("each location applies its own events in order while the others wait", async () => {
    for (const connection of ALL) {
      for (const event of story()) {
        const request = signedDelivery(connection.secret, event);
        const response = await world.fetch(`/webhooks/sightmill/${connection.id}`, request);
        assert.equal(response.status, 202, `${connection.id}: ${await response.text()}`);
      }
    }
    // The first location finishes at once, duplicate adopted, while the second is still held by
    // its 2 calls per 10 s and the third by its refused token.
    await until("the first location to finish", async () => (await status(DUPLICATES)).pending === 0);
    const [limited, refused] = [await status(LIMITED), await status(REFUSED)];
    assert.ok(limited.pending > 0, `the rate-limited location is still waiting: ${JSON.stringify(limited)}`);
    assert.equal(refused.pending, 4, "nothing of the refused location is applied");
    assert.deepEqual(contactsOf(REFUSED), []);

    await until("the rate-limited location to finish", async () => (await status(LIMITED)).pending === 0);
    assert.equal((await status(REFUSED)).pending, 4, "the refused location still waits for its token");
    assert.equal((await status(LIMITED)).counters.api_429 ?? 0, 0, "the pacing kept under the location's limit");

    world.sim.addToken(REFUSED.token, REFUSED.id);
    await until("the refused location to catch up", async () => {
      await world.cron();
      return (await status(REFUSED)).pending === 0;
    });

    for (const connection of ALL) {
      const contacts = contactsOf(connection);
      assert.equal(contacts.length, 1, `${connection.id}: one contact`);
      const [contact] = contacts;
      assert.deepEqual([contact.firstName, contact.lastName], ["Grace", "Brewster"], `${connection.id}: the later name`);
      assert.deepEqual(contact.tags, ["admiral"], connection.id);
      const notes = world.sim.state().notes.filter((note) => note.contactId === contact.id);
      assert.deepEqual(notes.map((note) => note.body), ["COBOL"], connection.id);
      // The applied calls in SightMill's order: the contact (created, or adopted), its update,
      // its tag, its note.
      const routes = calls(connection).map((r) => r.route).filter((route) => route !== "GET /contacts/:contactId");
      const order = ["PUT /contacts/:contactId", "POST /contacts/:contactId/tags", "POST /contacts/:contactId/notes"];
      const firsts = routes.filter((route) => order.includes(route)).filter((route, i, all) => all.indexOf(route) === i);
      assert.deepEqual(firsts, order, `${connection.id}: ${routes.join(", ")}`);
      assert.ok(routes.lastIndexOf(order[0]) < routes.indexOf(order[1]), `${connection.id}: renamed before tagged: ${routes.join(", ")}`);
    }
  });
});
