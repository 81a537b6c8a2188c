//! The location's SQLite database (Durable Object storage): its tables, their migrations, and
//! typed reads and writes of them, with the running counts ([`Tallies`]) kept beside every change
//! of a webhook's place. Every method is synchronous: writes made with no `await` between them
//! are committed together (the Durable Object's implicit transaction), which is how one accepted
//! webhook, or one finished event with its id-map writes, lands as a whole or not at all. The
//! engine reaches it through [`crate::engine::ports::Store`] (`super::ports`).
//!
//! | table | holds |
//! | --- | --- |
//! | `webhooks` | one row per webhook: its record (JSON, [`WebhookRecord`]) and where it sits in the queue ([`QueueState`], `at`), its contact, its place in the contact's order (`order_at`, then arrival `seq`) and whether it holds the contact's later events back (`holds`) |
//! | `links` | the id maps: a [`crate::sync::records::Link`] or tag state (JSON) under the key [`crate::sync::records`] names |
//! | `meta` | small named values: the schema version, the running counts, the token record, the last run, alert quiet periods |
//! | `metrics` | the charts' ring: 60 minute rows and 24 hour rows (a [`Bucket`] each), by slot |
//! | `imports`, `import_rows` | the imports and the rows of the one under way ([`imports`]) |
//!
//! Rows written per webhook, as the platform counts them (a row and each index entry it adds; an
//! update or delete once more when it moves an index): accepted 3, finished 2, forgotten 1, plus
//! the plan's id-map writes; the running counts are written twice per run, not per webhook.

pub mod imports;

use std::cell::{Cell, RefCell};

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::shell::platform::sql::{Columns, FromRow, IntegerRow, Sql, SqlError, TextRow};

use crate::engine::ports::{Listed, StoreError};
use crate::engine::tallies::{Counter, QueueFigures, Tallies};
use crate::sync::metrics::{self, Bucket};
use crate::sync::plan::{Known, Reads, RecordKey, Write};
use crate::sync::queue::{holds_contact, place, Place, QueueState};
use crate::sync::records::WebhookRecord;
use crate::timestamp::UnixMillis;

/// The schema, as ordered migrations: `MIGRATIONS[n]` takes a database at version `n` to `n + 1`.
/// A new database runs them all; one written by an earlier deployment runs those it lacks. The
/// first is the schema before versions were kept (`IF NOT EXISTS`: it is a no-op on such a
/// database).
const MIGRATIONS: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS webhooks (
       id TEXT PRIMARY KEY, contact TEXT NOT NULL, order_at INTEGER NOT NULL, accepted_at INTEGER NOT NULL,
       state TEXT NOT NULL, at INTEGER NOT NULL, holds INTEGER NOT NULL, record TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS webhooks_by_place ON webhooks (state, at);
     CREATE INDEX IF NOT EXISTS holding_by_contact ON webhooks (contact, order_at) WHERE holds = 1;
     CREATE TABLE IF NOT EXISTS links (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS metrics (slot INTEGER PRIMARY KEY, bucket TEXT NOT NULL);",
    // Version 2: tables keyed by their text key alone (no second copy of the key in a rowid
    // index), arrival order kept as `seq`, the queue's indexes only over the rows each query
    // needs (partial, one state each: SQLite uses a partial index only for a query that names
    // its state), and the counters moved into the running counts (`meta` row `tallies`).
    "CREATE TABLE webhooks_v2 (
       id TEXT PRIMARY KEY, contact TEXT NOT NULL, order_at INTEGER NOT NULL, seq INTEGER NOT NULL,
       accepted_at INTEGER NOT NULL, state TEXT NOT NULL, at INTEGER NOT NULL, holds INTEGER NOT NULL,
       record TEXT NOT NULL) WITHOUT ROWID;
     INSERT INTO webhooks_v2 SELECT id, contact, order_at, rowid, accepted_at, state, at, holds, record FROM webhooks;
     DROP TABLE webhooks;
     ALTER TABLE webhooks_v2 RENAME TO webhooks;
     CREATE INDEX pending_by_due ON webhooks (at, seq) WHERE state = 'pending';
     CREATE INDEX pending_by_contact ON webhooks (contact, order_at, seq) WHERE state = 'pending';
     CREATE INDEX parked_by_at ON webhooks (at, id) WHERE state = 'parked';
     CREATE INDEX finished_by_at ON webhooks (at) WHERE state = 'finished';
     CREATE TABLE links_v2 (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
     INSERT INTO links_v2 SELECT key, value FROM links;
     DROP TABLE links;
     ALTER TABLE links_v2 RENAME TO links;
     CREATE TABLE meta_v2 (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
     INSERT INTO meta_v2 SELECT key, value FROM meta;
     DROP TABLE meta;
     ALTER TABLE meta_v2 RENAME TO meta;
     INSERT INTO meta (key, value) SELECT 'tallies', json_object('totals', json_group_object(name, value), 'next_seq', (SELECT coalesce(max(seq), 0) + 1 FROM webhooks)) FROM counters;
     DROP TABLE counters;",
    // Version 3: imports (their progress) and the rows of the one under way, due in the file's
    // order; a finished row leaves, a failed one stays for the operator's list of failed rows.
    "CREATE TABLE imports (id TEXT PRIMARY KEY, progress TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE import_rows (
       id TEXT PRIMARY KEY, import TEXT NOT NULL, line INTEGER NOT NULL, contact TEXT NOT NULL,
       state TEXT NOT NULL, at INTEGER NOT NULL, record TEXT NOT NULL, raw TEXT, reason TEXT) WITHOUT ROWID;
     CREATE INDEX import_rows_due ON import_rows (at, id) WHERE state = 'pending';",
];

/// The table that holds the schema's version (one row; none before versions were kept).
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)";
/// The `meta` row of the running counts.
const TALLIES_KEY: &str = "tallies";

pub type DbError = StoreError;

impl From<worker::Error> for StoreError {
    fn from(error: worker::Error) -> StoreError {
        StoreError::Storage(error.to_string())
    }
}

impl From<SqlError> for StoreError {
    fn from(error: SqlError) -> StoreError {
        StoreError::Storage(error.0)
    }
}

pub type DbResult<T> = Result<T, DbError>;

pub struct Db {
    sql: Sql,
    /// The running counts, as they are now.
    tallies: RefCell<Tallies>,
    /// Whether the stored `tallies` row says it is exact (`settled`).
    stored_settled: Cell<bool>,
    /// The import under way (running, paused or stopped for the day), with its progress.
    import: RefCell<Option<imports::UnderWay>>,
}

/// No earlier pending webhook of `w`'s contact holds it back.
const HEAD: &str = "NOT EXISTS (SELECT 1 FROM webhooks e WHERE e.state = 'pending' AND e.contact = w.contact
    AND (e.order_at < w.order_at OR (e.order_at = w.order_at AND e.seq < w.seq)) AND e.holds = 1)";

/// `state, at, accepted_at`: a row's place, for a recount.
struct PlaceRow {
    place: Option<Place>,
    accepted_at: i64,
}

impl FromRow for PlaceRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        let state = QueueState::from_name(&columns.text()?);
        let at = columns.not_null_integer()?;
        let accepted_at = columns.not_null_integer()?;
        Ok(PlaceRow { place: state.map(|state| Place { state, at }), accepted_at })
    }
}

/// `id, record`.
pub(super) struct WebhookRow {
    id: String,
    record: String,
}

impl FromRow for WebhookRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(WebhookRow { id: columns.text()?, record: columns.text()? })
    }
}

/// `key, value`.
struct KeyValueRow {
    key: String,
    value: String,
}

impl FromRow for KeyValueRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(KeyValueRow { key: columns.text()?, value: columns.text()? })
    }
}

/// `slot, bucket`.
struct MetricsRow {
    slot: i64,
    bucket: String,
}

impl FromRow for MetricsRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(MetricsRow { slot: columns.not_null_integer()?, bucket: columns.text()? })
    }
}

/// Which webhooks a listing shows: their state, and optionally their event type, their
/// SightMill contact and a window of their place's time (when due, or when parked).
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub state: QueueState,
    pub event_type: Option<&'a str>,
    pub contact: Option<&'a str>,
    pub from: UnixMillis,
    pub to: UnixMillis,
}

impl Db {
    /// The database, migrated to the current schema, with its running counts (counted again
    /// from the queue when the stored ones are not exact: a run cut short, or a new schema).
    pub fn open(sql: SqlStorage) -> DbResult<Db> {
        let db = Db {
            sql: Sql::open(sql, VERSION_TABLE)?,
            tallies: Default::default(),
            stored_settled: Cell::new(false),
            import: Default::default(),
        };
        db.migrate()?;
        let stored: Option<Tallies> = db.meta(TALLIES_KEY).ok().flatten();
        match stored {
            Some(tallies) if tallies.settled => {
                db.stored_settled.set(true);
                *db.tallies.borrow_mut() = tallies;
            }
            stored => {
                let rows: Vec<PlaceRow> =
                    db.rows("SELECT state, at, accepted_at FROM webhooks WHERE state <> 'finished'", vec![])?;
                let places = rows.into_iter().filter_map(|row| Some((row.place?, row.accepted_at)));
                *db.tallies.borrow_mut() = Tallies::recount(places, stored.unwrap_or_default());
                db.settle()?;
            }
        }
        db.resume_import()?;
        Ok(db)
    }

    /// Runs the migrations the database lacks, each with its new version in one transaction.
    fn migrate(&self) -> DbResult<()> {
        let rows: Vec<IntegerRow> = self.rows("SELECT version FROM schema_version", vec![])?;
        let version = rows.first().and_then(|IntegerRow(version)| *version).unwrap_or(0);
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            self.run(migration, vec![])?;
            self.run("DELETE FROM schema_version", vec![])?;
            self.run("INSERT INTO schema_version (version) VALUES (?)", vec![(index as i64 + 1).into()])?;
        }
        Ok(())
    }

    /// The schema version this code writes.
    pub const VERSION: usize = MIGRATIONS.len();

    /// What the object has cost since this instance started (its `requests` and the rows).
    pub fn usage(&self, requests: u64) -> serde_json::Value {
        self.sql.usage(requests)
    }

    fn rows<T: FromRow>(&self, query: &str, bindings: Vec<SqlStorageValue>) -> DbResult<Vec<T>> {
        Ok(self.sql.rows(query, bindings)?)
    }

    fn run(&self, query: &str, bindings: Vec<SqlStorageValue>) -> DbResult<()> {
        Ok(self.sql.run(query, bindings)?)
    }

    // ---- the running counts ----

    /// The running counts changed in memory: the stored row is marked inexact (once), so that a
    /// restart before [`Db::settle`] counts again.
    fn unsettle(&self) -> DbResult<()> {
        if self.stored_settled.get() {
            self.put_tallies(false)?;
        }
        Ok(())
    }

    /// Stores the running counts as exact (the end of a run, or of an operator's change).
    pub fn settle(&self) -> DbResult<()> {
        if !self.stored_settled.get() {
            self.put_tallies(true)?;
        }
        self.store_import_progress()
    }

    fn put_tallies(&self, settled: bool) -> DbResult<()> {
        let mut tallies = self.tallies.borrow().clone();
        tallies.settled = settled;
        self.put_meta(TALLIES_KEY, &tallies)?;
        self.stored_settled.set(settled);
        Ok(())
    }

    /// Adds to a total: in memory until the counts are settled.
    pub fn count(&self, counter: Counter, by: i64) {
        if by != 0 {
            self.tallies.borrow_mut().add(counter, by);
            // A total is a statistic: failing to mark the row costs at most the run's totals.
            let _ = self.unsettle();
        }
    }

    pub fn queue_figures(&self, now: UnixMillis) -> QueueFigures {
        self.tallies.borrow().figures(now)
    }

    pub fn counters(&self) -> serde_json::Map<String, serde_json::Value> {
        self.tallies.borrow().totals()
    }

    // ---- webhooks ----

    /// The record of webhook `id`, if on record.
    pub fn webhook(&self, id: &str) -> DbResult<Option<WebhookRecord>> {
        let rows: Vec<WebhookRow> =
            self.rows("SELECT id, record FROM webhooks WHERE id = ?", vec![id.into()])?;
        rows.into_iter().next().map(|row| parse_record(&row)).transpose()
    }

    /// Adds a newly accepted webhook about `contact`, in the contact's order at `order_at`.
    pub fn insert_webhook(
        &self,
        id: &str,
        contact: &str,
        order_at: UnixMillis,
        record: &WebhookRecord,
    ) -> DbResult<()> {
        let Place { state, at } = place(record);
        let seq = self.tallies.borrow().next_seq;
        self.run(
            "INSERT INTO webhooks (id, contact, order_at, seq, accepted_at, state, at, holds, record)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                id.into(),
                contact.into(),
                order_at.into(),
                seq.into(),
                record.accepted_at.into(),
                state.as_str().into(),
                at.into(),
                i64::from(holds_contact(record)).into(),
                to_json(record)?.into(),
            ],
        )?;
        self.tallies.borrow_mut().accept(place(record), record.accepted_at);
        self.unsettle()
    }

    /// Writes a webhook's new record (`before`: the one it replaces), its place derived from it,
    /// and the running counts.
    pub fn put_webhook(&self, id: &str, before: &WebhookRecord, after: &WebhookRecord) -> DbResult<()> {
        let Place { state, at } = place(after);
        self.run(
            "UPDATE webhooks SET state = ?, at = ?, holds = ?, record = ? WHERE id = ?",
            vec![
                state.as_str().into(),
                at.into(),
                i64::from(holds_contact(after)).into(),
                to_json(after)?.into(),
                id.into(),
            ],
        )?;
        self.tallies.borrow_mut().change(place(before), place(after), before.accepted_at);
        self.unsettle()
    }

    /// The ids of up to `limit` pending webhooks due at `now` that no earlier webhook of their
    /// contact holds back (in the contact's order), in due order.
    pub fn due_heads(&self, now: UnixMillis, limit: u32) -> DbResult<Vec<String>> {
        let rows: Vec<TextRow> = self.rows(
            &format!("SELECT w.id FROM webhooks w WHERE w.state = 'pending' AND w.at <= ? AND {HEAD} ORDER BY w.at, w.seq LIMIT ?"),
            vec![now.into(), i64::from(limit).into()],
        )?;
        Ok(rows.into_iter().map(|TextRow(id)| id).collect())
    }

    /// The ids of every webhook not finished yet (pending or parked), for a connection's removal.
    pub fn unfinished(&self) -> DbResult<Vec<String>> {
        let rows: Vec<TextRow> =
            self.rows("SELECT id FROM webhooks WHERE state IN ('pending', 'parked')", vec![])?;
        Ok(rows.into_iter().map(|TextRow(id)| id).collect())
    }

    /// Webhook `id`, if it is still pending, due at `now` and not held back by an earlier webhook
    /// of its contact.
    pub fn due_head(&self, id: &str, now: UnixMillis) -> DbResult<Option<Listed>> {
        let rows: Vec<WebhookRow> = self.rows(
            &format!("SELECT w.id, w.record FROM webhooks w WHERE w.id = ? AND w.state = 'pending' AND w.at <= ? AND {HEAD}"),
            vec![id.into(), now.into()],
        )?;
        rows.first().map(listed).transpose()
    }

    /// The pending webhooks about `contact` that wait for it, due later than `now`.
    pub fn waiting_on(&self, contact: &str, now: UnixMillis) -> DbResult<Vec<Listed>> {
        let rows: Vec<WebhookRow> = self.rows(
            "SELECT id, record FROM webhooks WHERE state = 'pending' AND contact = ? AND at > ?",
            vec![contact.into(), now.into()],
        )?;
        rows.iter().map(listed).collect()
    }

    /// Takes a webhook whose record cannot be read out of the queue: it is kept, as it is, under
    /// the state `unreadable` for an operator to look at.
    pub fn set_unreadable(&self, id: &str) -> DbResult<()> {
        let rows: Vec<PlaceRow> =
            self.rows("SELECT state, at, accepted_at FROM webhooks WHERE id = ?", vec![id.into()])?;
        let Some(PlaceRow { place: Some(before), accepted_at }) = rows.into_iter().next() else {
            return Ok(());
        };
        self.run("UPDATE webhooks SET state = 'unreadable', holds = 0 WHERE id = ?", vec![id.into()])?;
        let after = Place { state: QueueState::Unreadable, ..before };
        self.tallies.borrow_mut().change(before, after, accepted_at);
        self.unsettle()
    }

    /// One page of the webhooks `filter` picks (pending: in due order; parked: in parking
    /// order), after the cursor `(at, id)` when given.
    pub fn page(
        &self,
        filter: &Filter,
        after: Option<(UnixMillis, String)>,
        limit: u32,
    ) -> DbResult<Vec<DbResult<Listed>>> {
        let (at, id) = after.unwrap_or((i64::MIN, String::new()));
        let optional = |value: Option<&str>| value.map_or(SqlStorageValue::Null, Into::into);
        // The state is written into the statement (it is one of four names), so that SQLite may
        // use the index over that state's rows only.
        let rows: Vec<WebhookRow> = self.rows(
            &format!(
                "SELECT id, record FROM webhooks WHERE state = '{}' AND (at > ? OR (at = ? AND id > ?))
                   AND at >= ? AND at <= ? AND (? IS NULL OR contact = ?)
                   AND (? IS NULL OR json_extract(record, '$.event_type') = ?)
                 ORDER BY at, id LIMIT ?",
                filter.state.as_str()
            ),
            vec![
                at.into(),
                at.into(),
                id.into(),
                filter.from.into(),
                filter.to.into(),
                optional(filter.contact),
                optional(filter.contact),
                optional(filter.event_type),
                optional(filter.event_type),
                i64::from(limit).into(),
            ],
        )?;
        Ok(rows.into_iter().map(|row| listed(&row)).collect())
    }

    /// Up to `limit` parked webhooks parked between `from` and `to` (inclusive), in parking order.
    pub fn parked_between(
        &self,
        from: UnixMillis,
        to: UnixMillis,
        limit: u32,
    ) -> DbResult<Vec<DbResult<Listed>>> {
        let rows: Vec<WebhookRow> = self.rows(
            "SELECT id, record FROM webhooks WHERE state = 'parked' AND at >= ? AND at <= ? ORDER BY at, id LIMIT ?",
            vec![from.into(), to.into(), i64::from(limit).into()],
        )?;
        Ok(rows.into_iter().map(|row| listed(&row)).collect())
    }

    /// Forgets up to `limit` webhooks finished before `before` (their redeliveries have stopped).
    pub fn forget_finished(&self, before: UnixMillis, limit: u32) -> DbResult<()> {
        self.run(
            "DELETE FROM webhooks WHERE id IN
               (SELECT id FROM webhooks WHERE state = 'finished' AND at < ? LIMIT ?)",
            vec![before.into(), i64::from(limit).into()],
        )
    }

    // ---- links (the id maps) ----

    /// What the id maps hold under the keys planning reads.
    pub fn known(&self, reads: &Reads) -> DbResult<Known> {
        let mut known = Known { contact: self.link(&reads.contact)?, ..Known::default() };
        match &reads.record {
            Some(RecordKey::Link(key)) => known.link = self.link(key)?,
            Some(RecordKey::Tag(key)) => known.tag = self.link(key)?,
            None => {}
        }
        Ok(known)
    }

    /// The id-map record under `key`.
    pub fn link<T: DeserializeOwned>(&self, key: &str) -> DbResult<Option<T>> {
        let rows: Vec<TextRow> = self.rows("SELECT value FROM links WHERE key = ?", vec![key.into()])?;
        rows.into_iter().next().map(|TextRow(value)| parse(key, &value)).transpose()
    }

    /// Every id-map record whose key starts with `prefix`, as (key, JSON).
    pub fn links_under(&self, prefix: &str) -> DbResult<Vec<(String, serde_json::Value)>> {
        let rows: Vec<KeyValueRow> = self.rows(
            "SELECT key, value FROM links WHERE key >= ? AND key < ? ORDER BY key",
            vec![prefix.into(), past_prefix(prefix).into()],
        )?;
        rows.into_iter().map(|row| parse(&row.key, &row.value).map(|value| (row.key, value))).collect()
    }

    /// Carries out one id-map write the plan asked for.
    pub fn write(&self, write: &Write) -> DbResult<()> {
        match write {
            Write::Put { key, value } => self.run(
                "INSERT INTO links (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                vec![key.as_str().into(), value.to_string().into()],
            ),
            Write::Delete(key) => self.run("DELETE FROM links WHERE key = ?", vec![key.as_str().into()]),
            Write::ClearPrefix(prefix) => self.run(
                "DELETE FROM links WHERE key >= ? AND key < ?",
                vec![prefix.as_str().into(), past_prefix(prefix).into()],
            ),
        }
    }

    // ---- meta ----

    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> DbResult<Option<T>> {
        let rows: Vec<TextRow> = self.rows("SELECT value FROM meta WHERE key = ?", vec![key.into()])?;
        rows.into_iter().next().map(|TextRow(value)| parse(key, &value)).transpose()
    }

    pub fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> DbResult<()> {
        self.run(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), to_json(value)?.into()],
        )
    }

    pub fn delete_meta(&self, key: &str) -> DbResult<()> {
        self.run("DELETE FROM meta WHERE key = ?", vec![key.into()])
    }

    /// Every row of the charts' ring, as (slot, bucket).
    pub fn metrics(&self) -> DbResult<Vec<(i64, Bucket)>> {
        let rows: Vec<MetricsRow> = self.rows("SELECT slot, bucket FROM metrics", vec![])?;
        rows.iter()
            .map(|row| Ok((row.slot, parse(&format!("metrics slot {}", row.slot), &row.bucket)?)))
            .collect()
    }

    /// The ring's row in `slot`. A row that no longer parses reads as none (and is replaced when
    /// its slot is next written): it is a statistic, not a record.
    pub fn metrics_row(&self, slot: i64) -> DbResult<Option<Bucket>> {
        let rows: Vec<MetricsRow> =
            self.rows("SELECT slot, bucket FROM metrics WHERE slot = ?", vec![slot.into()])?;
        Ok(rows.first().and_then(|row| serde_json::from_str(&row.bucket).ok()))
    }

    /// Adds a finished minute to its minute row and its hour row: two rows written.
    pub fn fold_metrics(&self, done: &Bucket) -> DbResult<()> {
        let slots = [metrics::minute_slot(done.start), metrics::hour_slot(done.start)];
        let (minute, hour) = metrics::fold(done, self.metrics_row(slots[0])?, self.metrics_row(slots[1])?);
        for (slot, bucket) in slots.into_iter().zip([minute, hour]) {
            self.run(
                "INSERT INTO metrics (slot, bucket) VALUES (?, ?) ON CONFLICT (slot) DO UPDATE SET bucket = excluded.bucket",
                vec![slot.into(), to_json(&bucket)?.into()],
            )?;
        }
        Ok(())
    }
}

/// The least key greater than every key that starts with `prefix` (keys are text below
/// U+10FFFF), so that a prefix is read as a range of the primary key.
fn past_prefix(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

pub(super) fn listed(row: &WebhookRow) -> DbResult<Listed> {
    Ok(Listed { id: row.id.clone(), record: parse_record(row)? })
}

fn parse_record(row: &WebhookRow) -> DbResult<WebhookRecord> {
    parse(&format!("webhook {}", row.id), &row.record)
}

pub(super) fn parse<T: DeserializeOwned>(what: &str, text: &str) -> DbResult<T> {
    serde_json::from_slice(text.as_bytes())
        .map_err(|error| DbError::Unreadable(what.to_owned(), error.to_string()))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> DbResult<String> {
    serde_json::to_string(value).map_err(|error| DbError::Storage(error.to_string()))
}
