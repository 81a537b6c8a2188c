// The soak's parts, shared by scripts/soak.mjs and tests/e2e/soak.test.mjs:
// - generate(): consistent SightMill histories over every event type (a contact is created before
//   anything else happens to it, every record's `updated_at` strictly increases, a deleted note,
//   task or contact sees no later event), over contacts with and without email and phone;
// - expectedState(): the Contacts API state those events should leave, computed from the events
//   alone (newest `updated_at` wins per record, deletions included);
// - deliveryPlan(): the order SightMill delivers them in, with redeliveries and reordering;
// - deliver(): sends a plan to the worker at a given concurrency;
// - compare(): the simulator's state against the expected one: lost, duplicated, mismatched.

import { createRandom } from "../simulator/prng.mjs";

/** The simulated SightMill clock starts here; event n happens n seconds later. */
const EPOCH_MS = Date.parse("2026-11-01T00:00:00Z");
const TAGS = ["vip", "lead", "churn-risk", "newsletter", "partner", "beta"];
const STATUSES = ["lead", "trial", "customer", "churned"];

/** Event types a contact that exists in SightMill can produce, by weight. */
const ACTIONS = [
  ["contact.updated", 3],
  ["note.created", 2],
  ["note.updated", 2],
  ["note.deleted", 1],
  ["tag.added", 2],
  ["tag.removed", 1],
  ["task.created", 2],
  ["task.updated", 2],
  ["task.completed", 1],
  ["task.deleted", 1],
];
/** The share of contacts that SightMill deletes (their last event). */
const DELETED_SHARE = 0.1;

const pick = (random, items) => items[Math.floor(random() * items.length)];
const at = (n) => new Date(EPOCH_MS + n * 1000).toISOString();
const pad = (n, width) => String(n).padStart(width, "0");

/** The default shares of contacts without an email, without a phone, and with neither. */
export const DEFAULT_MISSING = { noEmail: 0.15, noPhone: 0.15, neither: 0.15 };

/**
 * Which identifiers each contact has, drawn in turn from a stream of its own (so that the events
 * for a seed stay the same whatever the shares): `{ email, phone }` booleans.
 */
function identifierDraw(seed, { noEmail, noPhone, neither }) {
  const shares = [noEmail, noPhone, neither];
  if (!shares.every((share) => share >= 0) || noEmail + noPhone + neither > 1) {
    throw new Error(`missing shares must be >= 0 and add up to at most 1: ${JSON.stringify({ noEmail, noPhone, neither })}`);
  }
  const random = createRandom(seed ^ 0x1d5e);
  return () => {
    const roll = random();
    if (roll < neither) return { email: false, phone: false };
    if (roll < neither + noEmail) return { email: false, phone: true };
    if (roll < neither + noEmail + noPhone) return { email: true, phone: false };
    return { email: true, phone: true };
  };
}

/** One SightMill contact's side of the story while events are generated. */
function newContact(index, prefix, has) {
  const id = `${prefix}c${pad(index, 5)}`;
  const area = 200 + ([...prefix].reduce((hash, ch) => (hash * 31 + ch.charCodeAt(0)) % 7919, 7) % 800);
  return { id, index, area, has, created: false, deleted: false, version: 0, notes: new Map(), tasks: new Map(), tags: new Set(), next: 0 };
}

/**
 * The full contact snapshot SightMill sends: email and phone stay (a contact without one never
 * sends the key), name and status change. The name is unique per contact id ("<id> v<version>"),
 * which is all a contact with neither email nor phone can be found by. Phones are unique per
 * contact id (the area code comes from the id's prefix), so that histories that share a worker
 * never look like duplicates to the API.
 */
function contactData(contact) {
  return {
    id: contact.id,
    name: `${contact.id} v${contact.version}`,
    ...(contact.has.email ? { email: `${contact.id}@soak.test` } : {}),
    ...(contact.has.phone ? { phone: `+1${contact.area}${pad(contact.index, 7)}` } : {}),
    status: STATUSES[contact.version % STATUSES.length],
  };
}

/** The event types `contact` can produce now, with their weights. */
function possibleActions(contact) {
  const liveNotes = [...contact.notes.values()].length > 0;
  const liveTasks = [...contact.tasks.values()];
  const open = liveTasks.some((task) => !task.completed);
  const allowed = {
    "contact.updated": true,
    "note.created": true,
    "note.updated": liveNotes,
    "note.deleted": liveNotes,
    "tag.added": contact.tags.size < TAGS.length,
    "tag.removed": contact.tags.size > 0,
    "task.created": true,
    "task.updated": liveTasks.length > 0,
    "task.completed": open,
    "task.deleted": liveTasks.length > 0,
  };
  return ACTIONS.filter(([type]) => allowed[type]);
}

function weighted(random, choices) {
  const total = choices.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = random() * total;
  for (const [choice, weight] of choices) {
    roll -= weight;
    if (roll < 0) return choice;
  }
  return choices.at(-1)[0];
}

const taskData = (contact, task) => ({
  id: task.id,
  contact_id: contact.id,
  title: `${task.id} v${task.version}`,
  body: `About ${contact.id}`,
  due_date: task.dueDate,
  completed: task.completed,
});

/** Applies one SightMill action to `contact` and returns the event's type and data. */
function act(random, contact, type) {
  const note = () => pick(random, [...contact.notes.values()]);
  const task = () => pick(random, [...contact.tasks.values()]);
  switch (type) {
    case "contact.created":
      contact.created = true;
      return contactData(contact);
    case "contact.updated":
      contact.version += 1;
      return contactData(contact);
    case "contact.deleted":
      contact.deleted = true;
      return { id: contact.id };
    case "note.created": {
      const created = { id: `${contact.id}_n${contact.next++}`, version: 0 };
      contact.notes.set(created.id, created);
      return { id: created.id, contact_id: contact.id, body: `${created.id} v0` };
    }
    case "note.updated": {
      const updated = note();
      updated.version += 1;
      return { id: updated.id, contact_id: contact.id, body: `${updated.id} v${updated.version}` };
    }
    case "note.deleted": {
      const deleted = note();
      contact.notes.delete(deleted.id);
      return { id: deleted.id, contact_id: contact.id };
    }
    case "tag.added": {
      const tag = pick(random, TAGS.filter((t) => !contact.tags.has(t)));
      contact.tags.add(tag);
      return { contact_id: contact.id, tag };
    }
    case "tag.removed": {
      const tag = pick(random, [...contact.tags]);
      contact.tags.delete(tag);
      return { contact_id: contact.id, tag };
    }
    case "task.created": {
      const id = `${contact.id}_k${contact.next++}`;
      const created = { id, version: 0, completed: false, dueDate: at(86_400 * (1 + (contact.next % 30))) };
      contact.tasks.set(id, created);
      return taskData(contact, created);
    }
    case "task.updated": {
      const updated = task();
      updated.version += 1;
      return taskData(contact, updated);
    }
    case "task.completed": {
      const completed = pick(random, [...contact.tasks.values()].filter((t) => !t.completed));
      completed.completed = true;
      return { id: completed.id, contact_id: contact.id };
    }
    case "task.deleted": {
      const deleted = task();
      contact.tasks.delete(deleted.id);
      return { id: deleted.id, contact_id: contact.id };
    }
    default:
      throw new Error(`no such action ${type}`);
  }
}

/**
 * `events` SightMill events over `contacts` contacts, in the order SightMill produced them. Each is
 * `{ n, webhookId, type, data }`; `data.updated_at` is event n's instant (strictly increasing).
 * Every contact is created first; a tenth of them are deleted as their last event. SightMill ids
 * start with `prefix`, so that several histories can share one worker. `missing` gives the shares
 * of contacts without an email, without a phone and with neither (DEFAULT_MISSING for what it
 * leaves out); which contacts they are follows from the seed.
 */
export function generate({ events, contacts, seed, prefix = "sm_", missing = {} }) {
  if (events < contacts) throw new Error("at least one event per contact");
  const random = createRandom(seed);
  const identifiers = identifierDraw(seed, { ...DEFAULT_MISSING, ...missing });
  const people = Array.from({ length: contacts }, (_, i) => newContact(i + 1, prefix, identifiers()));
  const doomed = new Set(people.filter(() => random() < DELETED_SHARE).map((c) => c.id));
  const budget = new Map(people.map((c) => [c.id, 1]));
  for (let spare = events - contacts; spare > 0; spare -= 1) {
    const c = pick(random, people);
    budget.set(c.id, budget.get(c.id) + 1);
  }
  const out = [];
  for (let n = 0; n < events; n += 1) {
    const alive = people.filter((c) => budget.get(c.id) > 0);
    const contact = pick(random, alive);
    const left = budget.get(contact.id);
    budget.set(contact.id, left - 1);
    let type;
    if (!contact.created) type = "contact.created";
    else if (left === 1 && doomed.has(contact.id)) type = "contact.deleted";
    else type = weighted(random, possibleActions(contact));
    const data = { ...act(random, contact, type), updated_at: at(n) };
    out.push({ n, webhookId: `msg_soak_${seed}_${pad(n, 6)}`, type, data });
  }
  return out;
}

// ---- what the events say the Contacts API should hold -------------------------------------------

/** A record's newest state by `updated_at`; `null` means deleted. */
function newest(map, key, updatedAt, value) {
  const known = map.get(key);
  if (known && known.at >= updatedAt) return;
  map.set(key, { at: updatedAt, value });
}

/**
 * The expected Contacts API state, from the events alone: per SightMill id, the newest version of
 * each contact, note and task (or its deletion), and each contact's tags. Children of a deleted
 * contact are gone with it. Returns `{ contacts: Map<smId, {firstName, lastName, email, phone,
 * tags}> (email, phone undefined for a contact without), notes: Map<noteId, {contact, body}>, tasks: Map<taskId, {contact, title, dueDate,
 * completed, body}> }` plus the ids that must not exist (`gone`).
 */
export function expectedState(events) {
  const contacts = new Map();
  const notes = new Map();
  const tasks = new Map();
  const tags = new Map();
  const completions = new Map();
  for (const { type, data } of events) {
    const t = Date.parse(data.updated_at);
    const [kind, verb] = type.split(".");
    if (kind === "contact") newest(contacts, data.id, t, verb === "deleted" ? null : data);
    if (kind === "note") newest(notes, data.id, t, verb === "deleted" ? null : { contact: data.contact_id, body: data.body });
    if (kind === "tag") newest(tags, `${data.contact_id}\u0000${data.tag}`, t, verb === "added");
    if (kind === "task" && verb === "completed") newest(completions, data.id, t, true);
    else if (kind === "task") newest(tasks, data.id, t, verb === "deleted" ? null : { ...data });
  }
  return settle({ contacts, notes, tasks, tags, completions });
}

function settle({ contacts, notes, tasks, tags, completions }) {
  const live = new Map();
  const gone = { contacts: new Set(), notes: new Set(), tasks: new Set() };
  for (const [id, { value }] of contacts) {
    if (value === null) gone.contacts.add(id);
    else live.set(id, contactFields(value));
  }
  for (const [key, { value }] of tags) {
    const [contact, tag] = key.split("\u0000");
    if (value && live.has(contact)) live.get(contact).tags.push(tag);
  }
  for (const contact of live.values()) contact.tags.sort();
  const expectedNotes = new Map();
  for (const [id, { value }] of notes) {
    if (value === null || !live.has(value.contact)) gone.notes.add(id);
    else expectedNotes.set(id, value);
  }
  const expectedTasks = new Map();
  for (const [id, { at: updatedAt, value }] of tasks) {
    if (value === null || !live.has(value.contact_id)) {
      gone.tasks.add(id);
      continue;
    }
    const completedLater = (completions.get(id)?.at ?? -Infinity) > updatedAt;
    expectedTasks.set(id, {
      contact: value.contact_id,
      title: value.title,
      dueDate: value.due_date,
      completed: value.completed || completedLater,
      body: value.body,
    });
  }
  return { contacts: live, notes: expectedNotes, tasks: expectedTasks, gone };
}

/** What the default mapping makes of a SightMill contact snapshot (no email or phone: none). */
function contactFields(data) {
  const [firstName, ...rest] = data.name.split(" ");
  return { firstName, lastName: rest.join(" "), email: data.email?.toLowerCase(), phone: data.phone, tags: [] };
}

// ---- how SightMill delivers them ------------------------------------------------------------------

/**
 * The deliveries, in order: every event once, `duplicates` of them a second time (the same
 * webhook id and body, 1 to `redeliveryGap` deliveries later), and `outOfOrder` of them moved
 * behind one to three later events of the same contact. Returns `{ deliveries, redelivered,
 * reordered }`; each delivery is an event.
 */
export function deliveryPlan(events, { duplicates = 0.2, outOfOrder = 0.1, redeliveryGap = 200, seed = 1 } = {}) {
  const random = createRandom(seed ^ 0x50a4);
  const order = [...events];
  const byContact = new Map();
  for (const event of events) {
    const contact = contactOf(event);
    if (!byContact.has(contact)) byContact.set(contact, []);
    byContact.get(contact).push(event);
  }
  let reordered = 0;
  const movable = events.filter((e) => byContact.get(contactOf(e)).at(-1) !== e);
  for (const event of movable) {
    if (random() >= outOfOrder / (movable.length / events.length)) continue;
    const siblings = byContact.get(contactOf(event));
    const later = siblings.slice(siblings.indexOf(event) + 1, siblings.indexOf(event) + 4);
    const behind = pick(random, later);
    order.splice(order.indexOf(event), 1);
    order.splice(order.indexOf(behind) + 1, 0, event);
    reordered += 1;
  }
  const deliveries = [];
  const pending = [];
  let redelivered = 0;
  for (const event of order) {
    deliveries.push(event);
    if (random() < duplicates) {
      pending.push({ event, due: deliveries.length + 1 + Math.floor(random() * redeliveryGap) });
      redelivered += 1;
    }
    for (const again of pending.filter((p) => p.due <= deliveries.length)) {
      deliveries.push(again.event);
      pending.splice(pending.indexOf(again), 1);
    }
  }
  deliveries.push(...pending.map((p) => p.event));
  return { deliveries, redelivered, reordered };
}

const contactOf = (event) => (event.type.startsWith("contact.") ? event.data.id : event.data.contact_id);

/**
 * Sends every delivery of `plan` with `send(event)` (which answers `{ status }`), `concurrency` at
 * a time, in plan order. Returns the count of each answer status.
 */
export async function deliver(plan, send, { concurrency = 4 } = {}) {
  const statuses = {};
  let next = 0;
  async function lane() {
    while (next < plan.deliveries.length) {
      const event = plan.deliveries[next++];
      const { status } = await send(event);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  return statuses;
}

/** The body SightMill posts for `event`. */
export function webhookBody(event) {
  return { type: event.type, timestamp: event.data.updated_at, data: event.data };
}

// ---- comparing ------------------------------------------------------------------------------------

/**
 * Compares the simulator's state with `expected`. Every record is known by the SightMill id it
 * carries (a contact's firstName, the first word of a note's body or a task's title), never by
 * email or phone, which not every contact has.
 * - lost: a record that should exist and does not, or one that should be gone and is not;
 * - duplicated: each copy beyond the first of one SightMill record (e.g. a second simulator
 *   contact for one SightMill contact);
 * - mismatched: a single copy whose fields, completion, tags or contact are not the newest.
 * Returns the counts and up to 20 examples of each.
 */
export function compare(expected, state) {
  const tally = { lost: 0, duplicated: 0, mismatched: 0, examples: { lost: [], duplicated: [], mismatched: [] } };
  const note = (kind, what) => {
    tally[kind] += 1;
    if (tally.examples[kind].length < 20) tally.examples[kind].push(what);
  };
  const contactsBySm = groupBy(state.contacts, (c) => c.firstName);
  const smByApiId = new Map(state.contacts.map((c) => [c.id, c.firstName]));
  const check = (kind, expectedMap, gone, copies, same) => {
    for (const [id, want] of expectedMap) {
      const found = copies.get(id) ?? [];
      if (found.length === 0) note("lost", `${kind} ${id} is missing`);
      for (const extra of found.slice(1)) note("duplicated", `${kind} ${id} has another copy ${extra.id}`);
      if (found.length > 0 && !same(found[0], want)) {
        note("mismatched", `${kind} ${id}: ${JSON.stringify(pickFields(found[0], want))} != ${JSON.stringify(want)}`);
      }
    }
    for (const [id, found] of copies) {
      if (!expectedMap.has(id)) note("lost", `${kind} ${id} should be gone (${gone.has(id) ? "deleted" : "unknown"}) but has ${found.length} cop${found.length === 1 ? "y" : "ies"}`);
    }
  };
  check("contact", expected.contacts, expected.gone.contacts, contactsBySm, (c, want) =>
    c.lastName === want.lastName && c.email === want.email && c.phone === want.phone &&
    JSON.stringify([...(c.tags ?? [])].sort()) === JSON.stringify(want.tags));
  const ownerOk = (record, want) => smByApiId.get(record.contactId) === want.contact;
  check("note", expected.notes, expected.gone.notes, groupBy(state.notes, (n) => n.body.split(" ")[0]), (n, want) =>
    n.body === want.body && ownerOk(n, want));
  check("task", expected.tasks, expected.gone.tasks, groupBy(state.tasks, (t) => t.title.split(" ")[0]), (t, want) =>
    t.title === want.title && t.completed === want.completed && t.dueDate === want.dueDate && t.body === want.body && ownerOk(t, want));
  return tally;
}

function groupBy(records, key) {
  const groups = new Map();
  for (const record of records) {
    const k = key(record);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(record);
  }
  return groups;
}

function pickFields(record, want) {
  return Object.fromEntries(Object.keys(want).map((k) => [k, k === "contact" ? record.contactId : record[k]]));
}

/** How many events of each type `events` holds. */
export function countByType(events) {
  const counts = {};
  for (const { type } of events) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}
