//! In-memory ports for the engine's native tests: the location's rows ([`MemoryStore`]), a tiny
//! Contacts API with scripted faults ([`FakeApi`]), virtual time ([`FakeClock`], driven by
//! [`drive`]) and what leaves the location ([`Recorder`]); and the builders the tests share.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use serde_json::{json, Value};

use super::ports::{AlertKind, Api, Clock, Lane, Listed, Outside, Ports, Store, StoreError, StoreResult};
use super::tallies::{Counter, Tallies};
use super::{Ended, Engine};
use crate::config::Config;
use crate::contacts_api::{ApiRequest, ApiResponse, Method};
use crate::intake::event::parse_event;
use crate::secret::Secret;
use crate::sync::custom_fields::{Definitions, ListError};
use crate::sync::mapping::Mapping;
use crate::sync::metrics::Bucket;
use crate::sync::plan::{Failure, Known, Reads, RecordKey, Write};
use crate::sync::queue::{holds_contact, place, Intake, Place, QueueState};
use crate::sync::records::{body_fingerprint, contact_key, Outcome, WebhookRecord, WebhookState};
use crate::sync::retry::RateHeaders;
use crate::timestamp::{format_rfc3339, UnixMillis};

/// 2026-11-27T10:00:00Z: where the tests' time starts.
pub const T0: UnixMillis = 1_795_773_600_000;
pub const LOCATION: &str = "loc-1";

// ---- the store ----

/// One webhook's row, as the `webhooks` table keeps it.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    contact: String,
    order_at: UnixMillis,
    seq: i64,
    accepted_at: UnixMillis,
    state: QueueState,
    at: UnixMillis,
    holds: bool,
    /// The record as stored (JSON text): it may be made unreadable.
    record: String,
}

/// The location's rows in memory, with the SQLite store's semantics; they survive a restart of
/// the engine (a new [`Engine`] over the same store).
#[derive(Default)]
pub struct MemoryStore {
    rows: RefCell<Vec<Row>>,
    links: RefCell<BTreeMap<String, String>>,
    live: RefCell<Option<Result<Mapping, String>>>,
    /// What the live mapping becomes at each next ask (saved between two attempts).
    live_script: RefCell<VecDeque<Option<Result<Mapping, String>>>>,
    tallies: RefCell<Tallies>,
    /// The API contacts whose cached reads were marked stale, in order.
    pub changed: RefCell<Vec<String>>,
    /// The import's rows (id, contact, record or `None` once failed), in the file's order.
    import_rows: RefCell<Vec<(String, String, Option<WebhookRecord>)>>,
    /// Whether the import runs (paused: not).
    pub import_running: Cell<bool>,
    /// What the import's finished rows came to, and the calls they made.
    pub import_finished: RefCell<Vec<(String, Outcome)>>,
    pub import_calls: Cell<u32>,
}

impl MemoryStore {
    /// Accepts a webhook as the Durable Object does: its record from [`Intake::accept`], its row
    /// in its contact's order, and the tallies.
    pub fn accept(&self, webhook_id: &str, body: &Value, now: UnixMillis) {
        let text = body.to_string();
        let event = parse_event(text.as_bytes()).expect("a test's event parses");
        let intake = Intake {
            webhook_id: webhook_id.to_owned(),
            body_sha256: body_fingerprint(text.as_bytes()),
            body: text,
            event_type: event.kind().as_str().to_owned(),
            contact: event.sightmill_contact_id().to_owned(),
            order_at: event.updated_at,
            verified_with: None,
        };
        let record = intake.accept(now);
        let Place { state, at } = place(&record);
        let seq = self.tallies.borrow_mut().accept(place(&record), record.accepted_at);
        self.rows.borrow_mut().push(Row {
            id: intake.webhook_id,
            contact: intake.contact,
            order_at: intake.order_at,
            seq,
            accepted_at: record.accepted_at,
            state,
            at,
            holds: holds_contact(&record),
            record: serde_json::to_string(&record).unwrap(),
        });
    }

    /// Adds the import row of `line` with `body` (webhook-shaped), pending and due `now`.
    pub fn add_import_row(&self, line: u64, body: &Value, now: UnixMillis) -> String {
        let text = body.to_string();
        let event = parse_event(text.as_bytes()).expect("a test's event parses");
        let contact = event.sightmill_contact_id().to_owned();
        let record = WebhookRecord::accepted(text, String::new(), event.kind().as_str(), &contact, now, now);
        let id = format!("imp:{line:010}");
        self.import_rows.borrow_mut().push((id.clone(), contact, Some(record)));
        self.import_running.set(true);
        id
    }

    /// The import rows still pending, and those failed for good.
    pub fn import_left(&self) -> (usize, usize) {
        let rows = self.import_rows.borrow();
        let failed = rows
            .iter()
            .filter(|(_, _, record)| {
                record.as_ref().is_none_or(|r| matches!(r.state, WebhookState::Parked { .. }))
            })
            .count();
        (rows.len() - failed, failed)
    }

    fn import_due(&self, now: UnixMillis) -> Vec<(String, WebhookRecord)> {
        if !self.import_running.get() {
            return vec![];
        }
        let live = self.rows.borrow();
        let rows = self.import_rows.borrow();
        rows.iter()
            .filter_map(|(id, contact, record)| {
                let record = record.as_ref()?;
                let due = matches!(record.state, WebhookState::Pending { due_at, .. } if due_at <= now);
                let live_pending =
                    live.iter().any(|row| row.state == QueueState::Pending && row.contact == *contact);
                (due && !live_pending).then(|| (id.clone(), record.clone()))
            })
            .collect()
    }

    /// Makes webhook `id`'s stored record unreadable (its row, place and all, stays).
    pub fn corrupt(&self, id: &str) {
        self.row_mut(id, |row| row.record = "{\"state\": \"pend".into());
    }

    /// The record of webhook `id`.
    pub fn record(&self, id: &str) -> WebhookRecord {
        let rows = self.rows.borrow();
        let row = rows.iter().find(|row| row.id == id).unwrap_or_else(|| panic!("no webhook {id}"));
        serde_json::from_str(&row.record).unwrap_or_else(|e| panic!("webhook {id}: {e}"))
    }

    /// Webhook `id`'s place in the queue.
    pub fn state(&self, id: &str) -> QueueState {
        self.rows.borrow().iter().find(|row| row.id == id).map(|row| row.state).expect("a webhook")
    }

    /// The id-map record under `key`, as JSON.
    pub fn link_json(&self, key: &str) -> Option<Value> {
        self.links.borrow().get(key).map(|text| serde_json::from_str(text).unwrap())
    }

    pub fn put_link(&self, key: &str, value: Value) {
        self.links.borrow_mut().insert(key.to_owned(), value.to_string());
    }

    /// Saves (or, `None`, removes) the operator's live mapping; `Some(Err)`: one that cannot be used.
    pub fn set_live(&self, live: Option<Result<Mapping, String>>) {
        *self.live.borrow_mut() = live;
    }

    /// The live mapping as each next ask finds it: the first entry at the next ask, and so on
    /// (the last one stays).
    pub fn script_live(&self, script: Vec<Option<Result<Mapping, String>>>) {
        *self.live_script.borrow_mut() = script.into();
    }

    pub fn tallies(&self) -> Tallies {
        self.tallies.borrow().clone()
    }

    /// The tallies counted again from every row, the totals kept.
    pub fn recount(&self) -> Tallies {
        let rows = self.rows.borrow();
        let places = rows.iter().map(|row| (Place { state: row.state, at: row.at }, row.accepted_at));
        Tallies::recount(places.collect::<Vec<_>>(), self.tallies())
    }

    /// What a restarted writer finds: its rows, and the tallies counted again.
    pub fn restart(&self) {
        let recounted = self.recount();
        *self.tallies.borrow_mut() = recounted;
    }

    /// Ids of the webhooks in `state`.
    pub fn ids_in(&self, state: QueueState) -> Vec<String> {
        self.rows.borrow().iter().filter(|row| row.state == state).map(|row| row.id.clone()).collect()
    }

    fn row_mut(&self, id: &str, change: impl FnOnce(&mut Row)) {
        let mut rows = self.rows.borrow_mut();
        change(rows.iter_mut().find(|row| row.id == id).unwrap_or_else(|| panic!("no webhook {id}")));
    }

    /// Whether no earlier row of `row`'s contact holds it back.
    fn heads(rows: &[Row], row: &Row) -> bool {
        !rows.iter().any(|earlier| {
            earlier.holds
                && earlier.contact == row.contact
                && (earlier.order_at, earlier.seq) < (row.order_at, row.seq)
        })
    }

    fn listed(row: &Row) -> StoreResult<Listed> {
        let record = serde_json::from_str(&row.record)
            .map_err(|e| StoreError::Unreadable(format!("webhook {}", row.id), e.to_string()))?;
        Ok(Listed { id: row.id.clone(), record })
    }

    fn parse_link<T: serde::de::DeserializeOwned>(&self, key: &str) -> StoreResult<Option<T>> {
        match self.links.borrow().get(key) {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| StoreError::Unreadable(key.to_owned(), e.to_string())),
        }
    }
}

impl Store for MemoryStore {
    fn due_heads(&self, now: UnixMillis, limit: u32) -> StoreResult<Vec<String>> {
        let rows = self.rows.borrow();
        let mut due: Vec<&Row> = rows
            .iter()
            .filter(|row| row.state == QueueState::Pending && row.at <= now && Self::heads(&rows, row))
            .collect();
        due.sort_by_key(|row| (row.at, row.seq));
        Ok(due.into_iter().take(limit as usize).map(|row| row.id.clone()).collect())
    }

    fn due_head(&self, id: &str, now: UnixMillis) -> StoreResult<Option<Listed>> {
        let rows = self.rows.borrow();
        let row = rows.iter().find(|row| {
            row.id == id && row.state == QueueState::Pending && row.at <= now && Self::heads(&rows, row)
        });
        row.map(Self::listed).transpose()
    }

    fn import_heads(&self, now: UnixMillis, limit: u32) -> StoreResult<Vec<String>> {
        let mut due = self.import_due(now);
        due.sort_by_key(|(id, record)| (place(record).at, id.clone()));
        Ok(due.into_iter().take(limit as usize).map(|(id, _)| id).collect())
    }

    fn import_head(&self, id: &str, now: UnixMillis) -> StoreResult<Option<Listed>> {
        let due = self.import_due(now);
        Ok(due.into_iter().find(|(row, _)| row == id).map(|(id, record)| Listed { id, record }))
    }

    fn put_import_row(
        &self,
        id: &str,
        _before: &WebhookRecord,
        after: &WebhookRecord,
        calls: u32,
    ) -> StoreResult<()> {
        self.import_calls.set(self.import_calls.get() + calls);
        let mut rows = self.import_rows.borrow_mut();
        match &after.state {
            WebhookState::Finished { outcome, .. } => {
                rows.retain(|(row, _, _)| row != id);
                self.import_finished.borrow_mut().push((id.to_owned(), outcome.clone()));
            }
            _ => {
                let row = rows.iter_mut().find(|(row, _, _)| row == id).expect("an import row");
                row.2 = Some(after.clone());
            }
        }
        Ok(())
    }

    fn set_unreadable(&self, lane: Lane, id: &str) -> StoreResult<()> {
        if lane == Lane::Import {
            let mut rows = self.import_rows.borrow_mut();
            let row = rows.iter_mut().find(|(row, _, _)| row == id).expect("an import row");
            row.2 = None;
            return Ok(());
        }
        let mut rows = self.rows.borrow_mut();
        let row = rows.iter_mut().find(|row| row.id == id).expect("a webhook");
        let before = Place { state: row.state, at: row.at };
        row.state = QueueState::Unreadable;
        row.holds = false;
        let after = Place { state: row.state, at: row.at };
        self.tallies.borrow_mut().change(before, after, row.accepted_at);
        Ok(())
    }

    fn waiting_on(&self, contact: &str, now: UnixMillis) -> StoreResult<Vec<Listed>> {
        let rows = self.rows.borrow();
        rows.iter()
            .filter(|row| row.state == QueueState::Pending && row.contact == contact && row.at > now)
            .map(Self::listed)
            .collect()
    }

    fn put_webhook(&self, id: &str, before: &WebhookRecord, after: &WebhookRecord) -> StoreResult<()> {
        self.row_mut(id, |row| {
            let Place { state, at } = place(after);
            (row.state, row.at, row.holds) = (state, at, holds_contact(after));
            row.record = serde_json::to_string(after).unwrap();
        });
        self.tallies.borrow_mut().change(place(before), place(after), before.accepted_at);
        Ok(())
    }

    fn count(&self, counter: Counter, by: i64) {
        self.tallies.borrow_mut().add(counter, by);
    }

    fn known(&self, reads: &Reads) -> StoreResult<Known> {
        let mut known = Known { contact: self.parse_link(&reads.contact)?, ..Known::default() };
        match &reads.record {
            Some(RecordKey::Link(key)) => known.link = self.parse_link(key)?,
            Some(RecordKey::Tag(key)) => known.tag = self.parse_link(key)?,
            None => {}
        }
        Ok(known)
    }

    fn link(&self, key: &str) -> StoreResult<Option<Value>> {
        self.parse_link(key)
    }

    fn write(&self, write: &Write) -> StoreResult<()> {
        let mut links = self.links.borrow_mut();
        match write {
            Write::Put { key, value } => {
                links.insert(key.clone(), value.to_string());
            }
            Write::Delete(key) => {
                links.remove(key);
            }
            Write::ClearPrefix(prefix) => links.retain(|key, _| !key.starts_with(prefix.as_str())),
        }
        Ok(())
    }

    fn contact_changed(&self, contact_id: &str, _now: UnixMillis) -> StoreResult<()> {
        self.changed.borrow_mut().push(contact_id.to_owned());
        Ok(())
    }

    fn live_mapping(&self) -> Result<Option<Mapping>, String> {
        if let Some(next) = self.live_script.borrow_mut().pop_front() {
            *self.live.borrow_mut() = next;
        }
        self.live.borrow().clone().transpose()
    }
}

// ---- the clock ----

/// Virtual time: `sleep` registers a timer, and [`drive`] moves time to the earliest timer when
/// every worker waits, so that concurrent sleeps overlap as they do in real time.
#[derive(Clone)]
pub struct FakeClock {
    now: Rc<Cell<UnixMillis>>,
    timers: Rc<RefCell<BTreeMap<u64, UnixMillis>>>,
    next_timer: Rc<Cell<u64>>,
}

impl FakeClock {
    pub fn new(now: UnixMillis) -> FakeClock {
        FakeClock { now: Rc::new(Cell::new(now)), timers: Rc::default(), next_timer: Rc::default() }
    }

    pub fn set(&self, now: UnixMillis) {
        self.now.set(self.now.get().max(now));
    }

    pub fn advance(&self, ms: i64) {
        self.set(self.now.get() + ms);
    }

    fn earliest_timer(&self) -> Option<UnixMillis> {
        self.timers.borrow().values().min().copied()
    }
}

struct Sleep {
    clock: FakeClock,
    until: UnixMillis,
    timer: Option<u64>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now.get() >= self.until {
            if let Some(timer) = self.timer.take() {
                self.clock.timers.borrow_mut().remove(&timer);
            }
            return Poll::Ready(());
        }
        if self.timer.is_none() {
            let id = self.clock.next_timer.get();
            self.clock.next_timer.set(id + 1);
            self.clock.timers.borrow_mut().insert(id, self.until);
            self.timer = Some(id);
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            self.clock.timers.borrow_mut().remove(&timer);
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> UnixMillis {
        self.now.get()
    }

    async fn sleep(&self, ms: u64) {
        let until = self.now.get() + ms as i64;
        Sleep { clock: self.clone(), until, timer: None }.await
    }

    fn random(&self) -> f64 {
        0.5
    }
}

/// Polls `future` to its end on `futures_executor::block_on`, moving `clock` to its earliest
/// timer whenever nothing else can move; `None` when `stop` says so while it waits, or when it
/// is stuck (pending with no timer: a call whose answer never comes).
pub fn drive<F: Future>(clock: &FakeClock, future: F, stop: impl Fn() -> bool) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    futures_executor::block_on(std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if stop() {
            return Poll::Ready(None);
        }
        match clock.earliest_timer() {
            Some(at) => {
                clock.set(at);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }))
}

// ---- the API ----

/// A scripted fault, for the next request that matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answered with this status (and `Retry-After`, seconds), nothing applied.
    Status(u16, Option<u64>),
    /// 401: the token used is revoked from now on (a renewal gives another).
    Revoke,
    /// Applied, but the answer is lost: `Err("timed out")`.
    AppliedLost,
    /// Not applied, and no answer: `Err("timed out")`.
    Lost,
    /// Applied, then answered 422.
    AppliedThen422,
    /// Applied, and the answer never comes (the writer restarts while it waits).
    AppliedHang,
}

/// One request as the API saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub at: UnixMillis,
    pub token: String,
    pub body: Option<Value>,
}

/// A tiny Contacts API: contacts (with tags), notes and tasks, the contact search the engine
/// sends for a create in doubt, the rate-limit headers it announces, and scripted faults.
pub struct FakeApi {
    clock: FakeClock,
    pub contacts: RefCell<BTreeMap<String, Value>>,
    pub notes: RefCell<BTreeMap<String, (String, Value)>>,
    pub tasks: RefCell<BTreeMap<String, (String, Value)>>,
    next_id: Cell<u32>,
    pub seen: RefCell<Vec<Seen>>,
    faults: RefCell<VecDeque<(Method, String, Fault)>>,
    revoked: RefCell<BTreeSet<String>>,
    token: RefCell<String>,
    pub renewals_fail: Cell<bool>,
    pub tokens_asked: RefCell<Vec<Option<String>>>,
    /// What the API announces: (`X-RateLimit-Max`, `X-RateLimit-Interval-Milliseconds`).
    pub announce: Cell<Option<(u64, u64)>>,
    /// What the API announces of the day's calls left (`X-RateLimit-Daily-Remaining`).
    pub daily_remaining: Cell<Option<u64>>,
    /// Answers took this long (virtual ms).
    pub latency_ms: Cell<u64>,
    /// Calls under way now, and the most ever at once.
    in_flight: Cell<u32>,
    pub most_in_flight: Cell<u32>,
}

impl FakeApi {
    pub fn new(clock: &FakeClock) -> FakeApi {
        FakeApi {
            clock: clock.clone(),
            contacts: RefCell::default(),
            notes: RefCell::default(),
            tasks: RefCell::default(),
            next_id: Cell::new(1),
            seen: RefCell::default(),
            faults: RefCell::default(),
            revoked: RefCell::default(),
            token: RefCell::new("tok-1".into()),
            renewals_fail: Cell::new(false),
            tokens_asked: RefCell::default(),
            announce: Cell::new(None),
            daily_remaining: Cell::new(None),
            latency_ms: Cell::new(0),
            in_flight: Cell::new(0),
            most_in_flight: Cell::new(0),
        }
    }

    /// The next request of `method` to exactly `path` meets `fault`.
    pub fn fault(&self, method: Method, path: &str, fault: Fault) {
        self.faults.borrow_mut().push_back((method, path.to_owned(), fault));
    }

    /// A contact made beside the engine (by hand, or by another create).
    pub fn add_contact(&self, fields: Value) -> String {
        let mut body = fields.as_object().cloned().unwrap_or_default();
        body.insert("locationId".into(), json!(LOCATION));
        self.create_contact(body)["contact"]["id"].as_str().unwrap().to_owned()
    }

    /// The requests seen of `method` to exactly `path`.
    pub fn calls(&self, method: Method, path: &str) -> Vec<Seen> {
        self.seen.borrow().iter().filter(|seen| seen.method == method && seen.path == path).cloned().collect()
    }

    fn id(&self, prefix: &str) -> String {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        format!("{prefix}{n}")
    }

    fn take_fault(&self, request: &ApiRequest) -> Option<Fault> {
        let mut faults = self.faults.borrow_mut();
        let index =
            faults.iter().position(|(method, path, _)| *method == request.method && request.path == *path)?;
        faults.remove(index).map(|(_, _, fault)| fault)
    }

    fn create_contact(&self, mut body: serde_json::Map<String, Value>) -> Value {
        let id = self.id("c");
        body.insert("id".into(), json!(id));
        body.insert("dateAdded".into(), json!(format_rfc3339(self.clock.now.get())));
        body.entry("tags").or_insert_with(|| json!([]));
        self.contacts.borrow_mut().insert(id, Value::Object(body.clone()));
        json!({ "contact": body })
    }

    /// Applies `request`: its status and answer.
    fn apply(&self, request: &ApiRequest) -> (u16, Value) {
        let body = request.body.clone().unwrap_or(Value::Null);
        let path = request.path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let missing = |noun: &str| (400, json!({ "message": format!("{noun} not found") }));
        let mut contacts = self.contacts.borrow_mut();
        match (request.method, parts.as_slice()) {
            (Method::Post, ["contacts"]) => {
                drop(contacts);
                (201, self.create_contact(body.as_object().cloned().unwrap_or_default()))
            }
            (Method::Post, ["contacts", "search"]) => (200, search(&contacts, &body)),
            (method, ["contacts", id, rest @ ..]) if !contacts.contains_key(*id) => {
                let _ = (method, rest);
                missing("Contact")
            }
            (Method::Put, ["contacts", id]) => {
                let contact = contacts.get_mut(*id).unwrap();
                for (key, value) in body.as_object().cloned().unwrap_or_default() {
                    contact[key] = value;
                }
                (200, json!({ "succeded": true, "contact": contact }))
            }
            (Method::Delete, ["contacts", id]) => {
                contacts.remove(*id);
                (200, json!({ "succeded": true }))
            }
            (Method::Post | Method::Delete, ["contacts", id, "tags"]) => {
                let tags = contacts.get_mut(*id).unwrap()["tags"].as_array_mut().unwrap();
                for tag in body["tags"].as_array().cloned().unwrap_or_default() {
                    tags.retain(|held| *held != tag);
                    if request.method == Method::Post {
                        tags.push(tag);
                    }
                }
                (200, json!({ "tags": tags }))
            }
            (method, ["contacts", contact, kind @ ("notes" | "tasks"), rest @ ..]) => {
                let records = if *kind == "notes" { &self.notes } else { &self.tasks };
                let noun = if *kind == "notes" { "note" } else { "task" };
                let mut records = records.borrow_mut();
                match (method, rest) {
                    (Method::Get, []) => {
                        let list: Vec<Value> = records
                            .iter()
                            .filter(|(_, (owner, _))| owner == contact)
                            .map(|(id, (_, record))| {
                                let mut record = record.clone();
                                record["id"] = json!(id);
                                record
                            })
                            .collect();
                        let mut answer = serde_json::Map::new();
                        answer.insert((*kind).to_owned(), Value::Array(list));
                        (200, Value::Object(answer))
                    }
                    (Method::Post, []) => {
                        let id = self.id(&noun[..1]);
                        let mut record = body.clone();
                        record["dateAdded"] = json!(format_rfc3339(self.clock.now.get()));
                        records.insert(id.clone(), ((*contact).to_owned(), record.clone()));
                        record["id"] = json!(id);
                        (201, wrap(noun, record))
                    }
                    (_, [id, ..]) if !records.contains_key(*id) => {
                        let mut noun = noun.to_owned();
                        noun[..1].make_ascii_uppercase();
                        missing(&noun)
                    }
                    (Method::Put, [id, rest @ ..]) => {
                        let record = &mut records.get_mut(*id).unwrap().1;
                        if rest == ["completed"] {
                            record["completed"] = json!(true);
                        } else {
                            for (key, value) in body.as_object().cloned().unwrap_or_default() {
                                record[key] = value;
                            }
                        }
                        (200, wrap(noun, record.clone()))
                    }
                    (Method::Delete, [id]) => {
                        records.remove(*id);
                        (200, json!({ "succeded": true }))
                    }
                    _ => (404, json!({ "message": "no such route" })),
                }
            }
            _ => (404, json!({ "message": "no such route" })),
        }
    }

    /// The rate-limit headers of an answer at `now` with `status`: what is left of the window.
    fn rate(&self, status: u16, retry_after_secs: Option<u64>, now: UnixMillis) -> RateHeaders {
        let daily_remaining = self.daily_remaining.get();
        let mut rate = RateHeaders { status, retry_after_secs, daily_remaining, ..RateHeaders::default() };
        if let Some((max, interval)) = self.announce.get() {
            let recent = self.seen.borrow().iter().filter(|seen| seen.at > now - interval as i64).count();
            rate.max = Some(max);
            rate.interval_ms = Some(interval);
            rate.remaining = Some(max.saturating_sub(recent as u64));
        }
        rate
    }
}

fn wrap(noun: &str, record: Value) -> Value {
    let mut answer = serde_json::Map::new();
    answer.insert(noun.to_owned(), record);
    Value::Object(answer)
}

/// `POST /contacts/search`: the `eq` filters on email, phone, names and custom fields, and the
/// `dateAdded` range, newest first.
fn search(contacts: &BTreeMap<String, Value>, body: &Value) -> Value {
    let filters = body["filters"].as_array().cloned().unwrap_or_default();
    let lower = |value: &Value| value.as_str().unwrap_or_default().to_lowercase();
    let matches = |contact: &Value| {
        filters.iter().all(|filter| {
            let field = filter["field"].as_str().unwrap_or_default();
            let value = &filter["value"];
            match field {
                "dateAdded" => contact["dateAdded"].as_str() >= value["gte"].as_str(),
                "email" => lower(&contact["email"]) == lower(value),
                "phone" => contact["phone"] == *value,
                "firstNameLowerCase" => lower(&contact["firstName"]) == lower(value),
                "lastNameLowerCase" => lower(&contact["lastName"]) == lower(value),
                custom if custom.starts_with("customFields.") => {
                    let id = &custom["customFields.".len()..];
                    let fields = contact["customFields"].as_array().cloned().unwrap_or_default();
                    fields.iter().any(|entry| entry["id"] == id && entry["value"] == *value)
                }
                _ => false,
            }
        })
    };
    let mut found: Vec<Value> = contacts.values().filter(|contact| matches(contact)).cloned().collect();
    found.sort_by(|a, b| b["dateAdded"].as_str().cmp(&a["dateAdded"].as_str()));
    json!({ "total": found.len(), "contacts": found })
}

impl Api for FakeApi {
    async fn token(&self, rejected: Option<&Secret>) -> Result<Secret, Failure> {
        self.tokens_asked.borrow_mut().push(rejected.map(|token| token.expose().to_owned()));
        let current = self.token.borrow().clone();
        if rejected.is_some_and(|token| token.expose() == current) {
            if self.renewals_fail.get() {
                return Err(Failure::TokenRejected);
            }
            let n: u32 = current.trim_start_matches("tok-").parse().unwrap();
            *self.token.borrow_mut() = format!("tok-{}", n + 1);
        }
        Ok(Secret::new(self.token.borrow().clone()))
    }

    async fn send(&self, token: &Secret, request: &ApiRequest) -> Result<(ApiResponse, RateHeaders), String> {
        let latency = self.latency_ms.get();
        if latency > 0 {
            self.in_flight.set(self.in_flight.get() + 1);
            self.most_in_flight.set(self.most_in_flight.get().max(self.in_flight.get()));
            self.clock.sleep(latency).await;
            self.in_flight.set(self.in_flight.get() - 1);
        }
        let now = self.clock.now.get();
        self.seen.borrow_mut().push(Seen {
            method: request.method,
            path: request.path.clone(),
            at: now,
            token: token.expose().to_owned(),
            body: request.body.clone(),
        });
        let answer = |status: u16, body: Value, retry_after_secs: Option<u64>| {
            let rate = self.rate(status, retry_after_secs, now);
            Ok((ApiResponse { status, body, retry_after_secs }, rate))
        };
        if self.revoked.borrow().contains(token.expose()) {
            return answer(401, json!({ "message": "Invalid JWT" }), None);
        }
        if let Some((max, interval)) = self.announce.get() {
            let recent = self.seen.borrow().iter().filter(|seen| seen.at > now - interval as i64).count();
            if recent as u64 > max {
                return answer(429, json!({ "message": "Too many requests" }), Some(1));
            }
        }
        match self.take_fault(request) {
            None => {
                let (status, body) = self.apply(request);
                answer(status, body, None)
            }
            Some(Fault::Status(status, retry_after)) => {
                answer(status, json!({ "message": format!("scripted {status}") }), retry_after)
            }
            Some(Fault::Revoke) => {
                self.revoked.borrow_mut().insert(token.expose().to_owned());
                answer(401, json!({ "message": "Invalid JWT" }), None)
            }
            Some(Fault::AppliedLost) => {
                self.apply(request);
                Err("timed out".into())
            }
            Some(Fault::Lost) => Err("timed out".into()),
            Some(Fault::AppliedThen422) => {
                self.apply(request);
                answer(422, json!({ "message": "Unprocessable" }), None)
            }
            Some(Fault::AppliedHang) => {
                self.apply(request);
                std::future::pending().await
            }
        }
    }

    fn kept_custom_fields(&self) -> Option<Rc<Definitions>> {
        None
    }

    async fn read_custom_fields(&self) -> Result<Rc<Definitions>, ListError> {
        Err(ListError::Unavailable("the fake API defines no custom fields".into()))
    }
}

// ---- the outside ----

/// What left the location: log lines, alerts, remembered records, chart counts.
pub struct Recorder {
    pub infos: RefCell<Vec<Value>>,
    pub errors: RefCell<Vec<Value>>,
    pub alerts: RefCell<Vec<(AlertKind, String)>>,
    pub remembered: RefCell<Vec<(String, WebhookRecord)>>,
    pub chart: RefCell<Bucket>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        // Not `Bucket::default()`: its latency bins are empty (`applied_after` would panic).
        Recorder {
            infos: RefCell::default(),
            errors: RefCell::default(),
            alerts: RefCell::default(),
            remembered: RefCell::default(),
            chart: RefCell::new(Bucket::new(T0)),
        }
    }
}

impl Recorder {
    pub fn alerts_of(&self, kind: AlertKind) -> Vec<String> {
        self.alerts.borrow().iter().filter(|(k, _)| *k == kind).map(|(_, text)| text.clone()).collect()
    }
}

impl Outside for Recorder {
    fn info(&self, line: Value) {
        self.infos.borrow_mut().push(line);
    }

    fn error(&self, line: Value) {
        self.errors.borrow_mut().push(line);
    }

    async fn alert(&self, kind: AlertKind, text: &str) {
        self.alerts.borrow_mut().push((kind, text.to_owned()));
    }

    async fn remember(&self, id: &str, record: &WebhookRecord) {
        self.remembered.borrow_mut().push((id.to_owned(), record.clone()));
    }

    fn chart(&self, change: &dyn Fn(&mut Bucket)) {
        change(&mut self.chart.borrow_mut());
    }
}

// ---- a location under test ----

/// The deployment's settings with `pairs` over the defaults (location [`LOCATION`]).
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let lookup = |name: &str| {
        let base =
            [("GHL_LOCATION_ID", LOCATION), ("WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        pairs.iter().chain(base.iter()).find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    };
    Config::from_lookup(lookup).expect("a test config")
}

/// A location: its store, API, clock and outside, an engine, and its configuration.
pub struct Location {
    pub store: MemoryStore,
    pub api: FakeApi,
    pub clock: FakeClock,
    pub outside: Recorder,
    pub engine: Engine,
    pub config: Config,
}

impl Location {
    pub fn new(config: Config) -> Location {
        let clock = FakeClock::new(T0);
        Location {
            store: MemoryStore::default(),
            api: FakeApi::new(&clock),
            engine: Engine::new(config.cron.calls_per_10s),
            clock,
            outside: Recorder::default(),
            config,
        }
    }

    pub fn ports(&self) -> Ports<'_, MemoryStore, FakeApi, FakeClock, Recorder> {
        Ports { store: &self.store, api: &self.api, clock: &self.clock, outside: &self.outside }
    }

    pub fn now(&self) -> UnixMillis {
        self.clock.now.get()
    }

    /// Accepts webhook `id` with `body` now.
    pub fn accept(&self, id: &str, body: Value) {
        self.store.accept(id, &body, self.now());
    }

    /// One run to its end; checks the tallies against a recount after it.
    pub fn run(&self) -> Ended {
        let ended = self.try_run().expect("the run ends (no call hangs)");
        self.check_tallies();
        ended
    }

    /// One run, `None` if it got stuck on a call whose answer never comes (then dropped).
    pub fn try_run(&self) -> Option<Ended> {
        self.run_until(|_| false)
    }

    /// One run, dropped (`None`) as soon as it waits and `stop` says so (the writer restarts).
    pub fn run_until(&self, stop: impl Fn(&Location) -> bool) -> Option<Ended> {
        let store = &self.store;
        let figures = |now| store.tallies().figures(now);
        drive(&self.clock, self.engine.run(self.ports(), &self.config, figures), || stop(self))
    }

    /// The writer restarts: the rows survive, the engine's memory does not.
    pub fn restart(&mut self) {
        self.store.restart();
        self.engine = Engine::new(self.config.cron.calls_per_10s);
    }

    /// Moves time on by `ms`.
    pub fn wait(&self, ms: i64) {
        self.clock.advance(ms);
    }

    pub fn check_tallies(&self) {
        let (kept, counted) = (self.store.tallies(), self.store.recount());
        let now = self.now();
        assert_eq!(kept.figures(now), counted.figures(now), "the running tallies match a recount");
    }
}

/// A location whose SightMill contacts `sm_0`.. are in the API with the status tag `status:lead`.
pub fn with_tagged_contacts(count: usize, pairs: &[(&str, &str)]) -> Location {
    let mapping = (
        "CONTACT_MAPPING",
        r#"{"fields": [{"from": "email", "to": "email"}], "status": {"to": "tag", "prefix": "status:"}}"#,
    );
    let location = Location::new(config(&[pairs, &[mapping]].concat()));
    for n in 0..count {
        let id = location.api.add_contact(json!({"tags": ["status:lead"]}));
        let link = json!({"state": "live", "id": id, "updated_at": T0, "status_tag": "status:lead"});
        location.store.put_link(&contact_key(LOCATION, &format!("sm_{n}")), link);
    }
    location
}

// ---- events ----

/// `contact.updated` of SightMill contact `sm_{n}` to the status `customer`: against a link
/// whose status tag is `status:lead`, an update then the tag swap (three calls).
pub fn status_update(n: usize) -> Value {
    event("contact.updated", 1_000, json!({"id": format!("sm_{n}"), "email": "a@b.c", "status": "customer"}))
}

/// A SightMill event body of `kind` about `data`, changed at `updated_at` (ms after [`T0`]).
pub fn event(kind: &str, updated_at: i64, data: Value) -> Value {
    let mut data = data;
    data["updated_at"] = json!(format_rfc3339(T0 + updated_at));
    json!({ "type": kind, "timestamp": format_rfc3339(T0), "data": data })
}

/// `contact.created` (or `contact.updated`) of SightMill contact `id` with an email and a name.
pub fn contact(kind: &str, id: &str, updated_at: i64, name: &str) -> Value {
    let email = format!("{}@example.com", id.replace('_', "-"));
    event(kind, updated_at, json!({ "id": id, "email": email, "name": name }))
}

/// `note.created` for SightMill contact `contact`.
pub fn note(contact: &str, note_id: &str, updated_at: i64, body: &str) -> Value {
    event("note.created", updated_at, json!({ "contact_id": contact, "id": note_id, "body": body }))
}

/// `tag.added` for SightMill contact `contact`.
pub fn tag(contact: &str, tag: &str, updated_at: i64) -> Value {
    event("tag.added", updated_at, json!({ "contact_id": contact, "tag": tag }))
}
