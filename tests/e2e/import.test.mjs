// Importing an export of SightMill (issue 23) end to end, through the operator API only, on a
// location that allows duplicate contacts and on one that refuses them: a CSV import and an
// NDJSON import (contacts, notes, tasks, tags) into a location that already holds contacts made
// by webhooks leave exactly the expected records, each once; bad rows are reported with their
// line numbers (and in failed.csv) while the rest is applied; a file that is not what it claims
// is refused whole and nothing is stored; a restart in the middle resumes and finishes once;
// pause sends nothing until resume; cancel stops it; a live webhook newer than a row wins; the
// same file imported twice makes no Contacts API call the second time; the refusals (400, 404,
// 409, 413, 415) answer JSON `{ error, message }`.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { ADMIN_KEY, apiCalls, contactEvent, sleep, startWorld } from "./harness.mjs";

const CREATE = "POST /contacts/";
const UPDATE = "PUT /contacts/:contactId";
const at = (hour, minute = 0) => `2026-11-27T${String(hour).padStart(2, "0")}:${String(minute).padStart(2, "0")}:00Z`;
const TYPES = { csv: "text/csv", ndjson: "application/x-ndjson" };
/** The figures an import's progress carries. */
const FIGURES = ["id", "format", "state", "total", "done", "created", "updated", "unchanged", "skipped", "failed", "calls", "eta_secs", "started_at", "finished_at"];

/** A CSV file: `header` (names) and `rows` (arrays of values, quoted per RFC 4180 when needed). */
function csvFile(header, rows) {
  const cell = (value) => (/[",\r\n]/.test(String(value)) ? `"${String(value).replaceAll('"', '""')}"` : String(value));
  return [header, ...rows].map((row) => row.map(cell).join(",")).join("\n") + "\n";
}

/** An NDJSON file: one `{ type, data }` a line, or a raw string line as it is. */
const ndjsonFile = (lines) => lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n") + "\n";

/** Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF or LF) into rows of strings. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += ch;
  }
  assert.equal(quoted, false, "failed.csv ends inside a quoted field");
  if (field !== "" || row.length) rows.push([...row, field]);
  return rows;
}

for (const duplicates of ["allow", "refuse"]) {
  describe(`imports, on a location that ${duplicates}s duplicate contacts`, () => {
    let world;
    before(async () => {
      world = await startWorld({ duplicates });
    });
    after(() => world.close());
    beforeEach(() => world.reset());

    /** Posts a file to POST /admin/imports; `{ status, json, headers }`. */
    async function upload(body, { format, type = TYPES[format], dryRun, key = ADMIN_KEY } = {}) {
      const query = new URLSearchParams();
      if (format) query.set("format", format);
      if (dryRun !== undefined) query.set("dry_run", String(dryRun));
      const headers = { authorization: `Bearer ${key}` };
      if (type) headers["content-type"] = type;
      const response = await world.fetch(`/admin/imports${query.size ? `?${query}` : ""}`, { method: "POST", headers, body });
      const text = await response.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        assert.fail(`POST /admin/imports answered ${response.status} without JSON: ${text.slice(0, 200)}`);
      }
      return { status: response.status, json, headers: response.headers };
    }

    /** Starts an import and checks the 201 answer's shape; answers its progress. */
    async function startImport(body, format) {
      const answer = await upload(body, { format });
      assert.equal(answer.status, 201, JSON.stringify(answer.json));
      const progress = answer.json.import;
      assert.deepEqual(Object.keys(progress).sort(), [...FIGURES].sort(), "the progress carries exactly the contract's figures");
      assert.equal(progress.format, format);
      assert.equal(progress.state, "running");
      assert.equal(typeof progress.id, "string");
      return progress;
    }

    // GET /admin/imports/{id} answers `{ "import": P }`, as pause, resume and cancel do (the
    // contract as first written said P alone; the implementation wraps it like the others).
    const progressOf = async (id) => {
      const { status, json } = await world.admin("GET", `imports/${encodeURIComponent(id)}`);
      assert.equal(status, 200, JSON.stringify(json));
      assert.deepEqual(Object.keys(json), ["import"], JSON.stringify(json));
      return json.import;
    };

    /**
     * Waits until the import's progress satisfies `check`; runs the cron (as production does every
     * minute) only when nothing has moved for 3 s. Answers the progress.
     */
    async function waitImport(id, check, what, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last = null;
      let still = Date.now();
      for (;;) {
        const progress = await progressOf(id);
        if (check(progress)) return progress;
        if (Date.now() > deadline) {
          const rows = await world.sql("SELECT id, state, at, substr(record, 1, 300) AS record FROM import_rows WHERE state != 'failed' LIMIT 5").catch((e) => String(e));
          assert.fail(`import ${id}: timed out waiting for ${what}: ${JSON.stringify(progress)}; rows left: ${JSON.stringify(rows)}`);
        }
        const moved = JSON.stringify([progress.done, progress.state, progress.calls]);
        if (moved !== last) {
          last = moved;
          still = Date.now();
        } else if (Date.now() - still > 3000) {
          await world.cron();
          still = Date.now();
        }
        await sleep(50);
      }
    }

    const finished = (id) => waitImport(id, (p) => p.state === "done", "the import to end");

    async function failedCsv(id) {
      const response = await world.fetch(`/admin/imports/${encodeURIComponent(id)}/failed.csv`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/csv/);
      const rows = parseCsv(await response.text());
      assert.deepEqual(rows[0], ["line", "reason", "row"], "the header");
      return rows.slice(1).map(([line, reason, row]) => ({ line: Number(line), reason, row }));
    }

    /** The simulator's contacts, by the SightMill id their first name carries (`Sm_a` -> "sm_a"). */
    function contactsById() {
      const byId = {};
      for (const contact of world.sim.state().contacts) {
        (byId[contact.firstName] ??= []).push(contact);
      }
      return byId;
    }

    /** Asserts the simulator holds exactly one contact per first name in `names`, and no other. */
    function exactlyOnce(names) {
      const byId = contactsById();
      assert.deepEqual(Object.keys(byId).sort(), [...names].sort(), "exactly the expected contacts");
      for (const [name, copies] of Object.entries(byId)) assert.equal(copies.length, 1, `${name} once, not ${copies.length} times`);
      return Object.fromEntries(Object.entries(byId).map(([name, [contact]]) => [name, contact]));
    }

    /** Makes contacts through webhooks first: `[[smId, name, email, updatedAt]]`. */
    async function existing(people) {
      for (const [id, name, email, updatedAt] of people) {
        const { record } = await world.deliverAndSettle(contactEvent("contact.created", { id, name, email, updated_at: updatedAt }));
        assert.equal(record.state, "finished", JSON.stringify(record));
      }
    }

    /**
     * Asserts that an ended import's rows are gone from the Durable Object (table import_rows):
     * only its failed rows stay, for failed.csv, until the next import begins.
     */
    async function rowsDeleted(progress) {
      const rows = await world.sql("SELECT import, state FROM import_rows");
      assert.deepEqual(rows.filter((r) => r.import !== progress.id), [], "no row of another import");
      assert.equal(rows.filter((r) => r.state === "pending").length, 0, "no pending row once it ended");
      assert.equal(rows.length, progress.failed, `only its ${progress.failed} failed row(s) stay: ${JSON.stringify(rows)}`);
    }

    test("a CSV import into a location with contacts: created, updated, unchanged, bad rows reported with their lines; each contact once", async () => {
      await existing([
        ["Sm_a", "Sm_a Lovelace", "ada@example.com", at(10)],
        ["Sm_b", "Sm_b Babbage", "bob@example.com", at(10)],
      ]);
      const before = { ...world.sim.counts() };
      const callsBefore = apiCalls(world.sim);
      // No phone column: whether an empty cell clears a field or leaves it is not this test's business.
      const file = csvFile(["id", "updated_at", "name", "email"], [
        ["Sm_a", at(11), "Sm_a King", "ada@example.com"], // line 2: changed -> PUT
        ["Sm_b", at(11), "Sm_b Babbage", "bob@example.com"], // line 3: the same mapped fields -> unchanged
        ["Sm_c", at(11), "Sm_c Shaw", "carol@example.com"], // line 4: new -> POST
        ["Sm_d", "not a time", "Sm_d Bad, \"quoted\"", "dan@example.com"], // line 5: bad updated_at
        ["", at(11), "Sm_x Nobody", "nobody@example.com"], // line 6: no id
        ["Sm_e", at(11), "Sm_e Hopper", "grace@example.com"], // line 7: new -> POST
      ]);
      const started = await startImport(file, "csv");
      assert.equal(started.total, 6);
      const done = await finished(started.id);
      assert.equal(done.done, done.total, "done == total when it ends");
      assert.deepEqual(
        { created: done.created, updated: done.updated, unchanged: done.unchanged, skipped: done.skipped, failed: done.failed },
        { created: 2, updated: 1, unchanged: 1, skipped: 0, failed: 2 },
      );
      assert.ok(done.finished_at && !Number.isNaN(Date.parse(done.finished_at)), "finished_at is a time");

      const contacts = exactlyOnce(["Sm_a", "Sm_b", "Sm_c", "Sm_e"]);
      assert.equal(contacts.Sm_a.lastName, "King");
      assert.equal(contacts.Sm_c.email, "carol@example.com");
      const counts = world.sim.counts();
      assert.equal((counts[CREATE] ?? 0) - (before[CREATE] ?? 0), 2, "two creates");
      assert.equal((counts[UPDATE] ?? 0) - (before[UPDATE] ?? 0), 1, "one update, none for the unchanged contact");
      assert.equal(done.calls, apiCalls(world.sim) - callsBefore, "the import's calls are the calls the API saw");
      assert.equal((await world.links("Sm_c")).contact?.id, contacts.Sm_c.id, "the new contact's link is kept");

      const failed = await failedCsv(started.id);
      assert.deepEqual(failed.map((f) => f.line), [5, 6], "the bad rows, by their line in the file");
      assert.ok(failed.every((f) => f.reason.length > 0), "each with a reason");
      assert.match(failed[0].row, /Sm_d/);
      assert.match(failed[0].row, /"quoted"/, "the row's quotes survive failed.csv's own quoting");
      assert.match(failed[1].row, /Sm_x Nobody/);

      const listed = (await world.admin("GET", "imports")).json.imports;
      assert.deepEqual(listed.map((p) => p.id), [started.id]);
      assert.deepEqual(listed[0], done);
      await rowsDeleted(done);
    });

    test("an NDJSON import of contacts, notes, tasks and tags into a location with contacts: each record once, bad lines reported", async () => {
      await existing([["Sm_a", "Sm_a Lovelace", "ada@example.com", at(10)]]);
      const note = await world.deliverAndSettle(contactEvent("note.created", { id: "n_a1", contact_id: "Sm_a", body: "n_a1 first", updated_at: at(10) }));
      assert.equal(note.record.state, "finished");
      const file = ndjsonFile([
        { type: "contact.updated", data: { id: "Sm_a", name: "Sm_a King", email: "ada@example.com", updated_at: at(11) } }, // 1
        { type: "contact.created", data: { id: "Sm_e", name: "Sm_e Hopper", email: "grace@example.com", updated_at: at(11) } }, // 2
        { type: "note.created", data: { id: "n_e1", contact_id: "Sm_e", body: "n_e1 about Grace", updated_at: at(11) } }, // 3
        { type: "task.created", data: { id: "t_e1", contact_id: "Sm_e", title: "t_e1 call", body: "call her", due_date: at(15), completed: false, updated_at: at(11) } }, // 4
        { type: "tag.added", data: { contact_id: "Sm_e", tag: "vip", updated_at: at(11) } }, // 5
        "{not json", // 6
        { type: "contact.created", data: { name: "no id at all", updated_at: at(11) } }, // 7
        { type: "note.created", data: { id: "n_a2", contact_id: "Sm_a", body: "n_a2 second", updated_at: at(11) } }, // 8
      ]);
      const started = await startImport(file, "ndjson");
      assert.equal(started.total, 8);
      const done = await finished(started.id);
      assert.equal(done.done, 8);
      assert.equal(done.failed, 2);
      assert.equal(done.created + done.updated + done.unchanged + done.skipped + done.failed, done.done, "every row finished one way");

      const contacts = exactlyOnce(["Sm_a", "Sm_e"]);
      assert.equal(contacts.Sm_a.lastName, "King");
      assert.deepEqual(contacts.Sm_e.tags ?? [], ["vip"]);
      const { notes, tasks } = world.sim.state();
      const bodies = (contact) => notes.filter((n) => n.contactId === contact.id).map((n) => n.body).sort();
      assert.deepEqual(bodies(contacts.Sm_a), ["n_a1 first", "n_a2 second"], "the webhook's note and the import's, once each");
      assert.deepEqual(bodies(contacts.Sm_e), ["n_e1 about Grace"]);
      assert.deepEqual(tasks.map((t) => [t.contactId, t.title]), [[contacts.Sm_e.id, "t_e1 call"]]);

      const failed = await failedCsv(started.id);
      assert.deepEqual(failed.map((f) => f.line), [6, 7]);
      assert.equal(failed[0].row, "{not json");
      await rowsDeleted(done);
    });

    test("a dry run shows the first rows' decisions and requests, and stores and sends nothing", async () => {
      await existing([["Sm_a", "Sm_a Lovelace", "ada@example.com", at(10)]]);
      const calls = apiCalls(world.sim);
      const file = csvFile(["id", "updated_at", "name", "email"], [
        ["Sm_a", at(11), "Sm_a Lovelace", "ada@example.com"], // line 2: unchanged
        ["Sm_b", at(11), "Sm_b Babbage", "bob@example.com"], // line 3: a create
        ["Sm_c", "yesterday", "Sm_c Bad", "c@example.com"], // line 4: bad
        ["Sm_a", at(9), "Sm_a Older", "ada@example.com"], // line 5: older than what was applied
        ["Sm_d", at(11), "Sm_d Far", "d@example.com"], // line 6: beyond the dry run
      ]);
      const answer = await upload(file, { format: "csv", dryRun: 4 });
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.equal(answer.json.dry_run, true);
      assert.equal(answer.json.format, "csv");
      const rows = Object.fromEntries(answer.json.rows.map((r) => [r.line, r]));
      assert.deepEqual(Object.keys(rows).map(Number).sort((a, b) => a - b), [2, 3, 5], "rows 2, 3 and 5 (4 is bad, 6 beyond)");
      assert.equal(rows[2].decision, "finish", JSON.stringify(rows[2]));
      assert.deepEqual(rows[2].requests, [], "an unchanged contact sends nothing");
      assert.equal(rows[3].decision, "send");
      assert.equal(rows[3].requests.length, 1);
      assert.match(JSON.stringify(rows[3].requests[0]), /POST/);
      assert.match(JSON.stringify(rows[3].requests[0]), /bob@example\.com/);
      assert.equal(rows[5].decision, "finish", "an older row is skipped");
      assert.deepEqual(rows[5].requests, []);
      assert.deepEqual(answer.json.bad.map((b) => b.line), [4]);
      assert.ok(answer.json.bad[0].reason);
      assert.equal(apiCalls(world.sim), calls, "no Contacts API call");
      assert.deepEqual((await world.admin("GET", "imports")).json.imports, [], "no import stored");
    });

    test("a file that is not what it claims is refused whole, and nothing is stored", async () => {
      const refusals = [
        ["a CSV header without updated_at", csvFile(["id", "name"], [["Sm_a", "Sm_a Lovelace"]]), { format: "csv" }, 400, "invalid_import"],
        ["a CSV header without id", csvFile(["updated_at", "name"], [[at(10), "Sm_a Lovelace"]]), { format: "csv" }, 400, "invalid_import"],
        ["NDJSON whose first line is not an object", ndjsonFile(["[1, 2]", { type: "contact.created", data: { id: "Sm_a", updated_at: at(10) } }]), { format: "ndjson" }, 400, "invalid_import"],
        ["a file that is not UTF-8", Buffer.concat([Buffer.from("id,updated_at,name\nSm_a,2026-11-27T10:00:00Z,"), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from("\n")]), { format: "csv" }, 400, "invalid_import"],
        ["an unknown format", "<contacts/>", { format: "xml", type: "application/xml" }, 415, "unsupported_format"],
        ["an unknown Content-Type and no format", "<contacts/>", { type: "application/xml" }, 415, "unsupported_format"],
      ];
      for (const [what, body, options, status, error] of refusals) {
        const answer = await upload(body, options);
        assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.json)}`);
        assert.equal(answer.json.error, error, what);
        assert.equal(typeof answer.json.message, "string", what);
        assert.ok(answer.json.message.length > 0, what);
      }
      // Over 50 MB: refused before it is stored.
      const line = `Sm_big,${at(10)},${"x".repeat(200)}\n`;
      const big = Buffer.from(`id,updated_at,name\n${line.repeat(Math.ceil((50 * 1024 * 1024 + 1) / line.length))}`);
      const tooLarge = await upload(big, { format: "csv" });
      assert.equal(tooLarge.status, 413, JSON.stringify(tooLarge.json));
      assert.equal(tooLarge.json.error, "body_too_large");

      assert.deepEqual((await world.admin("GET", "imports")).json.imports, [], "no import stored");
      assert.equal(apiCalls(world.sim), 0, "no Contacts API call");
      assert.equal((await world.status()).pending, 0);
      // The Content-Type alone names the format.
      const named = await upload(csvFile(["id", "updated_at", "name"], [["Sm_a", at(10), "Sm_a Lovelace"]]), { type: "text/csv" });
      assert.equal(named.status, 201, JSON.stringify(named.json));
      assert.equal(named.json.import.format, "csv");
      await finished(named.json.import.id);
      exactlyOnce(["Sm_a"]);
    });

    test("the refusals: 404 unknown_import, 409 import_under_way and not_applicable", async () => {
      for (const [method, path] of [["GET", "imports/imp_nope"], ["POST", "imports/imp_nope/pause"], ["POST", "imports/imp_nope/resume"], ["POST", "imports/imp_nope/cancel"], ["GET", "imports/imp_nope/failed.csv"]]) {
        const { status, json } = await world.admin(method, path);
        assert.equal(status, 404, `${method} ${path}`);
        assert.equal(json.error, "unknown_import", `${method} ${path}`);
      }
      world.sim.injectFault({ route: CREATE, latencyMs: 300, count: null });
      const rows = Array.from({ length: 10 }, (_, i) => [`Sm_${i}`, at(10), `Sm_${i} Person`, `p${i}@example.com`]);
      const started = await startImport(csvFile(["id", "updated_at", "name", "email"], rows), "csv");
      const resumed = await world.admin("POST", `imports/${started.id}/resume`);
      assert.equal(resumed.status, 409, "a running import cannot be resumed");
      assert.equal(resumed.json.error, "not_applicable");
      const second = await upload(csvFile(["id", "updated_at", "name"], [["Sm_z", at(10), "Sm_z Other"]]), { format: "csv" });
      assert.equal(second.status, 409, "another import while one runs");
      assert.equal(second.json.error, "import_under_way");
      const paused = await world.admin("POST", `imports/${started.id}/pause`);
      assert.equal(paused.status, 200, JSON.stringify(paused.json));
      const third = await upload(csvFile(["id", "updated_at", "name"], [["Sm_z", at(10), "Sm_z Other"]]), { format: "csv" });
      assert.equal(third.status, 409, "another import while one is paused");
      assert.equal(third.json.error, "import_under_way");
      const cancelled = await world.admin("POST", `imports/${started.id}/cancel`);
      assert.equal(cancelled.status, 200);
      for (const action of ["pause", "resume", "cancel"]) {
        const { status, json } = await world.admin("POST", `imports/${started.id}/${action}`);
        assert.equal(status, 409, `${action} a cancelled import`);
        assert.equal(json.error, "not_applicable");
      }
      world.sim.clearFaults();
      const fourth = await upload(csvFile(["id", "updated_at", "name"], [["Sm_z", at(10), "Sm_z Other"]]), { format: "csv" });
      assert.equal(fourth.status, 201, "a new import once the last was cancelled");
      await finished(fourth.json.import.id);
      const again = await world.admin("POST", `imports/${fourth.json.import.id}/pause`);
      assert.equal(again.status, 409, "a finished import cannot be paused");
      assert.equal(again.json.error, "not_applicable");
      const listed = (await world.admin("GET", "imports")).json.imports.map((p) => p.id);
      assert.deepEqual(listed, [fourth.json.import.id, started.id], "newest first");
    });

    test("a restart in the middle resumes, and every row is applied exactly once", async () => {
      world.sim.injectFault({ route: CREATE, latencyMs: 1000, count: null });
      const names = Array.from({ length: 40 }, (_, i) => `Sm_r${i}`);
      const file = csvFile(["id", "updated_at", "name", "email"], names.map((n, i) => [n, at(10), `${n} Restarted`, `r${i}@example.com`]));
      const started = await startImport(file, "csv");
      await waitImport(started.id, (p) => p.done >= 4, "four rows done");
      await world.restart();
      const afterRestart = await progressOf(started.id);
      assert.ok(afterRestart.done < afterRestart.total, `the restart came in the middle: ${JSON.stringify(afterRestart)}`);
      assert.equal(afterRestart.state, "running");
      world.sim.clearFaults();
      const done = await finished(started.id);
      assert.equal(done.done, 40);
      assert.equal(done.failed, 0);
      assert.equal(done.created + done.updated, 40, JSON.stringify(done));
      exactlyOnce(names);
      for (const name of names) assert.ok((await world.links(name)).contact?.id, `${name} linked`);
      await rowsDeleted(done);
    });

    test("paused, an import makes no call until it is resumed; then it finishes", async () => {
      world.sim.injectFault({ route: CREATE, latencyMs: 1000, count: null });
      const names = Array.from({ length: 16 }, (_, i) => `Sm_p${i}`);
      const file = csvFile(["id", "updated_at", "name", "email"], names.map((n, i) => [n, at(10), `${n} Paused`, `p${i}@example.com`]));
      const started = await startImport(file, "csv");
      await waitImport(started.id, (p) => p.done >= 2, "two rows done");
      const paused = await world.admin("POST", `imports/${started.id}/pause`);
      assert.equal(paused.status, 200, JSON.stringify(paused.json));
      assert.equal(paused.json.import.state, "paused");
      await sleep(1000); // a call already under way may end
      const calls = apiCalls(world.sim);
      const held = await progressOf(started.id);
      await world.cron();
      await sleep(2500);
      await world.cron();
      assert.equal(apiCalls(world.sim), calls, "no Contacts API call while paused (the cron included)");
      const still = await progressOf(started.id);
      assert.equal(still.state, "paused");
      assert.equal(still.done, held.done);
      assert.ok(still.done < 16);
      // A live webhook still goes through while the import is paused.
      const live = await world.deliverAndSettle(contactEvent("contact.created", { id: "Sm_live", name: "Sm_live Webhook", email: "live@example.com", updated_at: at(10) }));
      assert.equal(live.record.state, "finished");

      const resumed = await world.admin("POST", `imports/${started.id}/resume`);
      assert.equal(resumed.status, 200);
      assert.equal(resumed.json.import.state, "running");
      world.sim.clearFaults();
      const done = await finished(started.id);
      assert.equal(done.done, 16);
      assert.equal(done.created, 16);
      exactlyOnce([...names, "Sm_live"]);
    });

    test("a cancelled import stops: no further call, its rows are dropped, and a new import may start", async () => {
      world.sim.injectFault({ route: CREATE, latencyMs: 1000, count: null });
      const names = Array.from({ length: 16 }, (_, i) => `Sm_k${i}`);
      const file = csvFile(["id", "updated_at", "name", "email"], names.map((n, i) => [n, at(10), `${n} Cancelled`, `k${i}@example.com`]));
      const started = await startImport(file, "csv");
      await waitImport(started.id, (p) => p.done >= 2, "two rows done");
      const cancelled = await world.admin("POST", `imports/${started.id}/cancel`);
      assert.equal(cancelled.status, 200, JSON.stringify(cancelled.json));
      assert.equal(cancelled.json.import.state, "cancelled");
      await sleep(1000);
      const calls = apiCalls(world.sim);
      await world.cron();
      await sleep(1500);
      assert.equal(apiCalls(world.sim), calls, "no call after the cancel (the cron included)");
      const ended = await progressOf(started.id);
      assert.equal(ended.state, "cancelled");
      assert.ok(ended.finished_at, "a cancelled import has ended");
      assert.ok(ended.done < 16);
      const made = world.sim.state().contacts.length;
      await rowsDeleted(ended);
      assert.equal(made, ended.created, "the import's figures count every contact it created");
      world.sim.clearFaults();
      const next = await startImport(csvFile(["id", "updated_at", "name"], [["Sm_next", at(10), "Sm_next One"]]), "csv");
      await finished(next.id);
      assert.equal(world.sim.state().contacts.length, made + 1);
    });

    test("a live webhook newer than a row wins: sent before the import, or while it runs", async () => {
      // Before: Sm_x is already at 12:00 when the import's 10:00 row comes.
      await existing([["Sm_x", "Sm_x Newer", "x@example.com", at(12)]]);
      world.sim.injectFault({ route: CREATE, latencyMs: 1000, count: null });
      const filler = Array.from({ length: 20 }, (_, i) => [`Sm_f${i}`, at(10), `Sm_f${i} Filler`, `f${i}@example.com`]);
      const file = csvFile(["id", "updated_at", "name", "email"], [
        ["Sm_x", at(10), "Sm_x Older", "x@example.com"],
        ...filler,
        ["Sm_y", at(10), "Sm_y Older", "y@example.com"], // last: the live webhook for it comes while the import runs
      ]);
      const started = await startImport(file, "csv");
      await waitImport(started.id, (p) => p.done >= 2, "two rows done");
      const live = await world.deliverAndSettle(contactEvent("contact.created", { id: "Sm_y", name: "Sm_y Newer", email: "y@example.com", updated_at: at(12) }), {});
      assert.equal(live.record.state, "finished", "the live webhook went first");
      assert.ok((await progressOf(started.id)).done < 22, "the import had not reached Sm_y's row yet");
      world.sim.clearFaults();
      const done = await finished(started.id);
      assert.equal(done.skipped, 2, JSON.stringify(done));
      assert.equal(done.created, 20);
      const contacts = exactlyOnce(["Sm_x", "Sm_y", ...filler.map(([id]) => id)]);
      assert.equal(contacts.Sm_x.lastName, "Newer", "the newer version stays");
      assert.equal(contacts.Sm_y.lastName, "Newer", "the newer version stays");
      const puts = world.sim.requests().filter((r) => r.route === UPDATE);
      assert.deepEqual(puts, [], "no update sent for the older rows");
    });

    test("the same file imported twice: the second import makes no Contacts API call", async () => {
      await existing([["Sm_a", "Sm_a Lovelace", "ada@example.com", at(10)]]);
      const csv = csvFile(["id", "updated_at", "name", "email", "phone"], [
        ["Sm_a", at(11), "Sm_a King", "ada@example.com", "+15550100009"],
        ...Array.from({ length: 6 }, (_, i) => [`Sm_t${i}`, at(11), `Sm_t${i} Twice`, `t${i}@example.com`, `+1555020000${i}`]),
      ]);
      const first = await finished((await startImport(csv, "csv")).id);
      assert.equal(first.created + first.updated, 7, JSON.stringify(first));
      const ndjson = ndjsonFile([
        { type: "contact.created", data: { id: "Sm_n", name: "Sm_n Notes", email: "n@example.com", updated_at: at(11) } },
        { type: "note.created", data: { id: "n_n1", contact_id: "Sm_n", body: "n_n1 hello", updated_at: at(11) } },
        { type: "task.created", data: { id: "t_n1", contact_id: "Sm_n", title: "t_n1 follow up", due_date: at(15), completed: false, updated_at: at(11) } },
        { type: "tag.added", data: { contact_id: "Sm_n", tag: "lead", updated_at: at(11) } },
      ]);
      await finished((await startImport(ndjson, "ndjson")).id);
      const state = world.sim.state();
      const calls = apiCalls(world.sim);

      const second = await finished((await startImport(csv, "csv")).id);
      assert.equal(apiCalls(world.sim), calls, "no Contacts API call for the same CSV again");
      assert.equal(second.calls, 0);
      assert.equal(second.unchanged + second.skipped, 7, JSON.stringify(second));
      const requestsBefore = world.sim.requests().length;
      const third = await finished((await startImport(ndjson, "ndjson")).id);
      const extra = world.sim.requests().slice(requestsBefore).map((r) => `${r.route} ${r.status}`);
      assert.deepEqual(extra, [], "no Contacts API call for the same NDJSON again");
      assert.equal(third.calls, 0);
      assert.equal(third.done, 4);
      assert.deepEqual(world.sim.state(), state, "the API holds exactly what it held");
      exactlyOnce(["Sm_a", "Sm_n", ...Array.from({ length: 6 }, (_, i) => `Sm_t${i}`)]);
    });
  });
}
