// Unit tests of the soak's parts (tests/support/soak.mjs) that need no worker: the generator's
// histories, its contacts with and without email and phone, and the comparer.

import assert from "node:assert/strict";
import { test } from "node:test";
import { compare, countByType, DEFAULT_MISSING, expectedState, generate } from "./soak.mjs";

/** The contact.created events' data, one per contact. */
const createdContacts = (events) => events.filter((e) => e.type === "contact.created").map((e) => e.data);

/** A simulator state that holds exactly what `expected` calls for (contacts' API ids `api0`...). */
function faithfulState(expected) {
  const state = { contacts: [], notes: [], tasks: [] };
  let n = 0;
  for (const [sm, c] of expected.contacts) {
    const stored = { id: `api${n++}`, firstName: sm, lastName: c.lastName, tags: c.tags };
    if (c.email !== undefined) stored.email = c.email;
    if (c.phone !== undefined) stored.phone = c.phone;
    state.contacts.push(stored);
  }
  const apiId = (sm) => state.contacts.find((c) => c.firstName === sm).id;
  for (const note of expected.notes.values()) state.notes.push({ id: `n${n++}`, contactId: apiId(note.contact), body: note.body });
  for (const task of expected.tasks.values()) state.tasks.push({ id: `t${n++}`, ...task, contactId: apiId(task.contact) });
  return state;
}

const tallyOf = (result) => [result.lost, result.duplicated, result.mismatched];

test("the generator's histories are consistent: created first, times increasing, nothing after a deletion", () => {
  const events = generate({ events: 2000, contacts: 50, seed: 3 });
  const lastAt = new Map();
  const deleted = new Set();
  const created = new Set();
  for (const { type, data } of events) {
    const [kind, verb] = type.split(".");
    const contact = kind === "contact" ? data.id : data.contact_id;
    const record = kind === "tag" ? `${contact}:${data.tag}` : data.id;
    assert.ok(kind === "contact" && verb === "created" ? !created.has(contact) : created.has(contact), `${type} ${record}`);
    created.add(contact);
    for (const key of [contact, record]) assert.ok(!deleted.has(key), `${type} after ${key} was deleted`);
    const at = Date.parse(data.updated_at);
    assert.ok((lastAt.get(record) ?? -Infinity) < at, `${record}: updated_at increases`);
    lastAt.set(record, at);
    if (verb === "deleted") deleted.add(record);
  }
  assert.equal(Object.keys(countByType(events)).length, 12);
});

test("the comparer counts lost, duplicated and mismatched records", () => {
  const events = generate({ events: 40, contacts: 2, seed: 5 });
  const expected = expectedState(events);
  const state = faithfulState(expected);
  assert.deepEqual(tallyOf(compare(expected, state)), [0, 0, 0]);

  const broken = structuredClone(state);
  broken.contacts.pop(); // lost
  broken.notes.push({ ...broken.notes[0], id: "copy" }); // duplicated
  broken.tasks[0].title = `${broken.tasks[0].title.split(" ")[0]} v99`; // mismatched
  const result = compare(expected, broken);
  assert.ok(result.lost >= 1 && result.duplicated === 1 && result.mismatched >= 1, JSON.stringify(result));
});

test("the generator makes contacts without email, without phone and with neither, by seed", () => {
  const kinds = (events) =>
    createdContacts(events).map((c) => `${c.email === undefined ? "-" : "e"}${c.phone === undefined ? "-" : "p"}`);
  const events = generate({ events: 1000, contacts: 1000, seed: 4 });
  const counts = countByType(kinds(events).map((type) => ({ type })));
  const share = (kind) => (counts[kind] ?? 0) / 1000;
  for (const [kind, want] of [["-p", DEFAULT_MISSING.noEmail], ["e-", DEFAULT_MISSING.noPhone], ["--", DEFAULT_MISSING.neither]]) {
    assert.ok(Math.abs(share(kind) - want) < 0.04, `${kind}: ${share(kind)} near ${want}`);
  }
  assert.ok(share("ep") > 0.5, JSON.stringify(counts));
  assert.deepEqual(kinds(generate({ events: 1000, contacts: 1000, seed: 4 })), kinds(events), "the same for a seed");
  assert.notDeepEqual(kinds(generate({ events: 1000, contacts: 1000, seed: 5 })), kinds(events), "another seed, others");

  const none = { noEmail: 0, noPhone: 0, neither: 0 };
  const full = generate({ events: 300, contacts: 30, seed: 4, missing: none });
  assert.deepEqual(new Set(kinds(full)), new Set(["ep"]));
  const shape = (list) => list.map((e) => [e.type, e.data.id ?? e.data.contact_id, e.data.updated_at]);
  assert.deepEqual(shape(generate({ events: 300, contacts: 30, seed: 4 })), shape(full), "the shares change no event's type, record or time");
  assert.deepEqual(new Set(kinds(generate({ events: 50, contacts: 50, seed: 1, missing: { neither: 1, noEmail: 0, noPhone: 0 } }))), new Set(["--"]));
  assert.throws(() => generate({ events: 10, contacts: 10, seed: 1, missing: { noEmail: 0.5, noPhone: 0.5, neither: 0.5 } }), /add up to at most 1/);
});

test("a contact without email or phone keeps none through its updates, and its name stays unique", () => {
  const events = generate({ events: 600, contacts: 40, seed: 9, missing: { noEmail: 0.3, noPhone: 0.3, neither: 0.3 } });
  const first = new Map(createdContacts(events).map((c) => [c.id, c]));
  for (const { type, data } of events.filter((e) => e.type === "contact.updated")) {
    const created = first.get(data.id);
    assert.equal("email" in data, "email" in created, `${type} ${data.id}: email`);
    assert.equal("phone" in data, "phone" in created, `${type} ${data.id}: phone`);
    assert.equal(data.name.split(" ")[0], data.id, "the name starts with the SightMill id");
  }
  const expected = expectedState(events);
  const bare = [...expected.contacts].filter(([, c]) => c.email === undefined && c.phone === undefined);
  assert.ok(bare.length > 0, "some expected contacts have neither");
});

test("the comparer matches contacts by SightMill id, with or without email and phone", () => {
  const events = generate({ events: 300, contacts: 20, seed: 6, missing: { noEmail: 0.3, noPhone: 0.3, neither: 0.3 } });
  const expected = expectedState(events);
  const state = faithfulState(expected);
  assert.deepEqual(tallyOf(compare(expected, state)), [0, 0, 0]);

  const bareIndex = state.contacts.findIndex((c) => c.email === undefined && c.phone === undefined);
  assert.ok(bareIndex >= 0, "the state holds a contact with neither");
  const doubled = structuredClone(state);
  doubled.contacts.push({ ...doubled.contacts[bareIndex], id: "api-copy" }); // created twice
  const twice = compare(expected, doubled);
  assert.deepEqual(tallyOf(twice), [0, 1, 0], JSON.stringify(twice.examples));
  assert.match(twice.examples.duplicated[0], /has another copy api-copy/);

  const given = structuredClone(state);
  given.contacts[bareIndex].email = "made-up@soak.test"; // an email SightMill never sent
  assert.deepEqual(tallyOf(compare(expected, given)), [0, 0, 1]);
});
