// A note or task create that the Contacts API applied but whose answer the worker never got (it
// came after API_TIMEOUT_MS, was dropped, or was a 5xx) must not be created again: its link is left
// in doubt, and the next event about the record (the create's retry, an update, a completion or a
// deletion) looks the contact's notes or tasks up and adopts the one the create made. A create
// that really failed is made once, and so is one whose runtime was restarted while it was sent.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { sleep, startWorld } from "./harness.mjs";
import { sightmillEvent } from "../support/webhooks.mjs";

const TIMEOUT_MS = 500;
const at = (minute) => `2026-11-27T10:${String(minute).padStart(2, "0")}:00Z`;
const contact = sightmillEvent("contact.created", { id: "sm_c1", email: "ada@example.com", name: "Ada L", updated_at: at(0) });
const note = (type, body, minute) => sightmillEvent(type, { id: "sm_n1", contact_id: "sm_c1", body, updated_at: at(minute) });
const task = (type, title, minute) =>
  sightmillEvent(type, { id: "sm_t1", contact_id: "sm_c1", title, body: "About it", due_date: "2026-12-01T09:00:00Z", updated_at: at(minute) });

/** The applied-but-unanswered faults: late (after the worker's timeout), dropped, and a 5xx after applying. */
const LATE = { afterApply: true, latencyMs: TIMEOUT_MS + 1000 };
const DROPPED = { afterApply: true, hang: true };
const FAILED_AFTER_APPLY = { afterApply: true, status: 503 };

describe("a note or task create whose answer was lost", () => {
  let world;
  before(async () => {
    world = await startWorld({ duplicates: "refuse", vars: { API_TIMEOUT_MS: String(TIMEOUT_MS) } });
  });
  after(() => world.close());
  beforeEach(() => world.reset());

  /** Creates the contact, then delivers `event` with `fault` on its create; returns its webhook id. */
  async function deliverWithFault(route, fault, event) {
    assert.equal((await world.deliverAndSettle(contact)).record.state, "finished");
    world.sim.injectFault({ route, ...fault });
    const { answer, record } = await world.deliverAndSettle(event);
    assert.equal(answer.status, 202);
    assert.equal(record.state, "pending", JSON.stringify(record));
    return { id: answer.id, record };
  }

  /** Waits out the 1 s retry delay (and any late answer), then runs the cron. */
  async function retry() {
    await sleep(TIMEOUT_MS + 1300);
    await world.cron();
  }

  /** The Durable Object's link for one of sm_c1's notes or tasks (`kind`: "note" or "task"), or null. */
  const link = async (kind, id) => (await world.links("sm_c1"))[`${kind}s`][id] ?? null;

  for (const [name, fault] of [
    ["answered late", LATE],
    ["answered 503 after applying", FAILED_AFTER_APPLY],
  ]) {
    test(`note.created ${name}: the retry adopts the note, and a later update applies to it`, async () => {
      const route = "POST /contacts/:contactId/notes";
      const { id } = await deliverWithFault(route, fault, note("note.created", "First call", 1));
      const doubt = await link("note", "sm_n1");
      assert.equal(doubt.state, "in_doubt", "the link remembers the unanswered create");
      assert.deepEqual(doubt.sent, { body: "First call" });
      assert.equal(world.sim.state().notes.length, 1, "the simulator applied it");

      await retry();
      const done = await world.record(id);
      assert.equal(done.state, "finished", JSON.stringify(done));
      assert.equal(done.outcome.action, "adopted");
      const notes = world.sim.state().notes;
      assert.deepEqual(notes.map((n) => n.body), ["First call"], "exactly one note");
      assert.equal(done.outcome.record_id, notes[0].id);
      assert.equal((await link("note", "sm_n1")).id, notes[0].id);
      assert.equal(world.sim.counts()[route], 1, "never created again");
      assert.equal(world.sim.counts()["GET /contacts/:contactId/notes"], 1);

      const updated = await world.deliverAndSettle(note("note.updated", "Second call", 2));
      assert.equal(updated.record.state, "finished");
      assert.deepEqual(world.sim.state().notes.map((n) => [n.id, n.body]), [[notes[0].id, "Second call"]]);
    });
  }

  test("task.created whose answer was dropped: the retry adopts the task, and its completion applies", async () => {
    const route = "POST /contacts/:contactId/tasks";
    const { id } = await deliverWithFault(route, DROPPED, task("task.created", "Call back", 1));
    assert.equal(world.sim.state().tasks.length, 1);

    await retry();
    const done = await world.record(id);
    assert.equal(done.state, "finished", JSON.stringify(done));
    assert.equal(done.outcome.action, "adopted");
    const tasks = world.sim.state().tasks;
    assert.equal(tasks.length, 1, "exactly one task");
    assert.deepEqual([tasks[0].title, tasks[0].body, tasks[0].completed], ["Call back", "About it", false]);
    assert.equal((await link("task", "sm_t1")).id, tasks[0].id);
    assert.equal(world.sim.counts()[route], 1);

    const completed = await world.deliverAndSettle(sightmillEvent("task.completed", { id: "sm_t1", contact_id: "sm_c1", updated_at: at(2) }));
    assert.equal(completed.record.state, "finished");
    assert.equal(world.sim.state().tasks[0].completed, true);
  });

  test("task.created answered late: the retry adopts it", async () => {
    const route = "POST /contacts/:contactId/tasks";
    const { id } = await deliverWithFault(route, LATE, task("task.created", "Call back", 1));
    await retry();
    const done = await world.record(id);
    assert.equal(done.outcome?.action, "adopted", JSON.stringify(done));
    assert.equal(world.sim.state().tasks.length, 1);
    assert.equal(world.sim.counts()[route], 1);
  });

  for (const [kind, event] of [
    ["notes", note("note.created", "First call", 1)],
    ["tasks", task("task.created", "Call back", 1)],
  ]) {
    test(`a ${kind.slice(0, -1)} create that really failed (nothing applied) is made once by the retry`, async () => {
      const route = `POST /contacts/:contactId/${kind}`;
      const { id } = await deliverWithFault(route, { hang: true }, event);
      assert.equal((await link(kind.slice(0, -1), kind === "notes" ? "sm_n1" : "sm_t1")).state, "in_doubt");
      assert.equal(world.sim.state()[kind].length, 0);

      await retry();
      const done = await world.record(id);
      assert.equal(done.state, "finished", JSON.stringify(done));
      assert.equal(done.outcome.action, "created");
      assert.equal(world.sim.state()[kind].length, 1, "exactly one");
      assert.equal(world.sim.counts()[route], 2, "created after the lookup found nothing");
      assert.equal(world.sim.counts()[`GET /contacts/:contactId/${kind}`], 1);
    });
  }

  for (const [kind, event, id] of [
    ["notes", note("note.created", "First call", 1), "sm_n1"],
    ["tasks", task("task.created", "Call back", 1), "sm_t1"],
  ]) {
    test(`a ${kind.slice(0, -1)} create cut off by a runtime restart is not made twice`, async () => {
      // The simulator holds the create, then applies it after the runtime that sent it is gone:
      // no answer ever comes, and nothing after the send ran in that runtime.
      const route = `POST /contacts/:contactId/${kind}`;
      assert.equal((await world.deliverAndSettle(contact)).record.state, "finished");
      world.sim.injectFault({ route, latencyMs: 400 });
      const answer = await world.deliver(event);
      assert.equal(answer.status, 202);
      for (let i = 0; i < 200 && !world.sim.counts()[route]; i += 1) await sleep(10);
      await world.restart();
      await sleep(500); // the held create is applied now
      assert.equal(world.sim.state()[kind].length, 1, "the simulator applied it");

      await retry();
      const done = await world.record(answer.id);
      assert.equal(done.state, "finished", JSON.stringify(done));
      assert.equal(world.sim.state()[kind].length, 1, "exactly one");
      assert.equal((await link(kind.slice(0, -1), id)).id, world.sim.state()[kind][0].id);
    });
  }

  test("a create refused with 429 is a definite answer: the retry creates without a lookup", async () => {
    const route = "POST /contacts/:contactId/notes";
    const { id } = await deliverWithFault(route, { status: 429, headers: { "Retry-After": "1" } }, note("note.created", "First call", 1));
    assert.equal(await link("note", "sm_n1"), null);
    await retry();
    assert.equal((await world.record(id)).outcome?.action, "created");
    assert.equal(world.sim.state().notes.length, 1);
    assert.equal(world.sim.counts()["GET /contacts/:contactId/notes"], undefined);
  });
  // A later event about the record waits behind the create (one event per contact at a time, in
  // SightMill's order); the create's retry looks the record up and adopts it, then the later
  // event applies to it.
  const completedTask = (minute) => sightmillEvent("task.completed", { id: "sm_t1", contact_id: "sm_c1", updated_at: at(minute) });
  const deletedTask = (minute) => sightmillEvent("task.deleted", { id: "sm_t1", contact_id: "sm_c1", updated_at: at(minute) });

  /** Delivers `later` while the create (answered late) waits for its retry; then the retry runs. */
  async function laterEventBehind(kind, created, later) {
    const { id } = await deliverWithFault(`POST /contacts/:contactId/${kind}`, LATE, created);
    const behind = await world.deliver(later);
    assert.equal(behind.status, 202);
    await sleep(300);
    const waiting = await world.record(behind.id);
    assert.deepEqual([waiting.state, waiting.attempts], ["pending", 0], "it waits behind the create");
    await retry();
    const create = await world.record(id);
    assert.equal(create.outcome?.action, "adopted", JSON.stringify(create));
    const applied = await world.record(behind.id);
    assert.equal(applied.state, "finished", JSON.stringify(applied));
    assert.equal(world.sim.counts()[`POST /contacts/:contactId/${kind}`], 1, "never created again");
    return { applied, create };
  }

  test("note.created answered late, then note.updated behind it: one note, with the new body", async () => {
    const { applied } = await laterEventBehind("notes", note("note.created", "First call", 1), note("note.updated", "Second call", 2));
    assert.equal(applied.outcome.action, "updated");
    const notes = world.sim.state().notes;
    assert.deepEqual(notes.map((n) => n.body), ["Second call"]);
    assert.equal((await link("note", "sm_n1")).id, notes[0].id);
  });

  test("note.created answered late, then note.deleted behind it: no note remains", async () => {
    const deleted = sightmillEvent("note.deleted", { id: "sm_n1", contact_id: "sm_c1", updated_at: at(2) });
    const { applied } = await laterEventBehind("notes", note("note.created", "First call", 1), deleted);
    assert.equal(applied.outcome.action, "deleted");
    assert.deepEqual(world.sim.state().notes, []);
    assert.equal((await link("note", "sm_n1")).state, "deleted");
  });

  test("task.created answered late, then task.completed behind it: one task, completed", async () => {
    const { applied } = await laterEventBehind("tasks", task("task.created", "Call back", 1), completedTask(2));
    assert.equal(applied.outcome.action, "completed");
    const tasks = world.sim.state().tasks;
    assert.deepEqual(tasks.map((t) => [t.title, t.completed]), [["Call back", true]]);
  });

  test("task.created answered late, then task.deleted behind it: no task remains", async () => {
    const { applied } = await laterEventBehind("tasks", task("task.created", "Call back", 1), deletedTask(2));
    assert.equal(applied.outcome.action, "deleted");
    assert.deepEqual(world.sim.state().tasks, []);
  });

  test("a task.completed behind a create that made nothing waits, and is applied right after the create's retry makes it", async () => {
    const { id } = await deliverWithFault("POST /contacts/:contactId/tasks", { hang: true }, task("task.created", "Call back", 1));
    const completed = await world.deliver(completedTask(2));
    await sleep(300);
    assert.deepEqual([(await world.record(completed.id)).state, (await world.record(completed.id)).attempts], ["pending", 0], "it waits behind its task's create");
    await retry();
    assert.equal((await world.record(id)).outcome?.action, "created");
    assert.equal((await world.record(completed.id)).outcome?.action, "completed", "in the same run");
    assert.deepEqual(world.sim.state().tasks.map((t) => [t.title, t.completed]), [["Call back", true]]);
  });
});
