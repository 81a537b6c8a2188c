//! The location's SQLite database (Durable Object storage): its tables, and typed reads and
//! writes of them. Every method is synchronous; writes made with no `await` between them are
//! committed together (the Durable Object's implicit transaction), which is how one accepted
//! webhook, or one finished event with its id-map writes, lands as a whole or not at all.
//!
//! | table | holds |
//! | --- | --- |
//! | `webhooks` | one row per webhook: its record (JSON, [`WebhookRecord`]) and where it sits in the queue (`state`, `at`), its contact, its place in the contact's order (`order_at`, then arrival) and whether it holds the contact's later events back (`holds`) |
//! | `links` | the id maps: a [`Link`] or [`TagState`] (JSON) under the key [`crate::sync::records`] names |
//! | `meta` | small named values: the token record, the last run, alert quiet periods |
//! | `counters` | totals since the location's first webhook (accepted, applied, stale, …) |
//! | `metrics` | the charts' ring: 60 minute rows and 24 hour rows (a [`Bucket`] each), by slot |

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::shell::platform::sql::{Columns, FromRow, IntegerRow, Sql, SqlError, TextRow};

use crate::sync::metrics::{self, Bucket};
use crate::sync::plan::{Known, Reads, RecordKey, Write};
use crate::sync::queue::{holds_contact, place};
use crate::sync::records::WebhookRecord;
use crate::timestamp::UnixMillis;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhooks (
  id TEXT PRIMARY KEY,
  contact TEXT NOT NULL,
  order_at INTEGER NOT NULL,
  accepted_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  at INTEGER NOT NULL,
  holds INTEGER NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_by_place ON webhooks (state, at);
CREATE INDEX IF NOT EXISTS holding_by_contact ON webhooks (contact, order_at) WHERE holds = 1;
CREATE TABLE IF NOT EXISTS links (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (slot INTEGER PRIMARY KEY, bucket TEXT NOT NULL);
";

/// A stored row that no longer parses: an error that stops what needed it, never a fresh start.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("the stored record `{0}` is unreadable: {1}")]
    Unreadable(String, String),
}

impl From<worker::Error> for DbError {
    fn from(error: worker::Error) -> DbError {
        DbError::Storage(error.to_string())
    }
}

impl From<SqlError> for DbError {
    fn from(error: SqlError) -> DbError {
        DbError::Storage(error.0)
    }
}

pub type DbResult<T> = Result<T, DbError>;

pub struct Db {
    sql: Sql,
}

/// One webhook as listed: its id and record.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub record: WebhookRecord,
}

/// No earlier webhook of `w`'s contact holds it back.
const HEAD: &str = "NOT EXISTS (SELECT 1 FROM webhooks e WHERE e.holds = 1 AND e.contact = w.contact
    AND (e.order_at < w.order_at OR (e.order_at = w.order_at AND e.rowid < w.rowid)))";

/// `id, record`.
struct WebhookRow {
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

/// `name, value`.
struct CounterRow {
    name: String,
    value: i64,
}

impl FromRow for CounterRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(CounterRow { name: columns.text()?, value: columns.not_null_integer()? })
    }
}

/// Which webhooks a listing shows: their state, and optionally their event type, their
/// SightMill contact and a window of their place's time (when due, or when parked).
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub state: &'a str,
    pub event_type: Option<&'a str>,
    pub contact: Option<&'a str>,
    pub from: UnixMillis,
    pub to: UnixMillis,
}

/// Queue figures for the operator's status.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueFigures {
    pub pending: i64,
    pub due_now: i64,
    pub parked: i64,
    pub oldest_accepted_at: Option<UnixMillis>,
}

impl Db {
    pub fn open(sql: SqlStorage) -> DbResult<Db> {
        Ok(Db { sql: Sql::open(sql, SCHEMA)? })
    }

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
        let (state, at) = place(record);
        self.run(
            "INSERT INTO webhooks (id, contact, order_at, accepted_at, state, at, holds, record)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                id.into(),
                contact.into(),
                order_at.into(),
                record.accepted_at.into(),
                state.into(),
                at.into(),
                i64::from(holds_contact(record)).into(),
                to_json(record)?.into(),
            ],
        )
    }

    /// Writes a webhook's new record, and its place derived from it.
    pub fn put_webhook(&self, id: &str, record: &WebhookRecord) -> DbResult<()> {
        let (state, at) = place(record);
        self.run(
            "UPDATE webhooks SET state = ?, at = ?, holds = ?, record = ? WHERE id = ?",
            vec![
                state.into(),
                at.into(),
                i64::from(holds_contact(record)).into(),
                to_json(record)?.into(),
                id.into(),
            ],
        )
    }

    /// The ids of up to `limit` pending webhooks due at `now` that no earlier webhook of their
    /// contact holds back (in the contact's order), in due order.
    pub fn due_heads(&self, now: UnixMillis, limit: u32) -> DbResult<Vec<String>> {
        let rows: Vec<TextRow> = self.rows(
            &format!("SELECT w.id FROM webhooks w WHERE w.state = 'pending' AND w.at <= ? AND {HEAD} ORDER BY w.at, w.rowid LIMIT ?"),
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
        self.run("UPDATE webhooks SET state = 'unreadable', holds = 0 WHERE id = ?", vec![id.into()])
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
        let rows: Vec<WebhookRow> = self.rows(
            "SELECT id, record FROM webhooks WHERE state = ? AND (at > ? OR (at = ? AND id > ?))
               AND at >= ? AND at <= ? AND (? IS NULL OR contact = ?)
               AND (? IS NULL OR json_extract(record, '$.event_type') = ?)
             ORDER BY at, id LIMIT ?",
            vec![
                filter.state.into(),
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

    pub fn queue_figures(&self, now: UnixMillis) -> DbResult<QueueFigures> {
        let oldest: Vec<IntegerRow> =
            self.rows("SELECT min(accepted_at) AS oldest FROM webhooks WHERE state = 'pending'", vec![])?;
        Ok(QueueFigures {
            pending: self.count("SELECT count(*) AS n FROM webhooks WHERE state = 'pending'", vec![])?,
            due_now: self.due_count(now)?,
            parked: self.count("SELECT count(*) AS n FROM webhooks WHERE state = 'parked'", vec![])?,
            oldest_accepted_at: oldest.first().and_then(|IntegerRow(oldest)| *oldest),
        })
    }

    /// How many pending webhooks are due at `now`.
    pub fn due_count(&self, now: UnixMillis) -> DbResult<i64> {
        self.count("SELECT count(*) AS n FROM webhooks WHERE state = 'pending' AND at <= ?", vec![now.into()])
    }

    /// How many pending webhooks are due at `now` and head their contact's order: the work a run
    /// left that another run could do now (those behind a waiting head are not).
    pub fn due_heads_count(&self, now: UnixMillis) -> DbResult<i64> {
        self.count(
            &format!(
                "SELECT count(*) AS n FROM webhooks w WHERE w.state = 'pending' AND w.at <= ? AND {HEAD}"
            ),
            vec![now.into()],
        )
    }

    pub fn unreadable_count(&self) -> DbResult<i64> {
        self.count("SELECT count(*) AS n FROM webhooks WHERE state = 'unreadable'", vec![])
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

    /// A `count(*) AS n` query's count.
    fn count(&self, query: &str, bindings: Vec<SqlStorageValue>) -> DbResult<i64> {
        let rows: Vec<IntegerRow> = self.rows(query, bindings)?;
        Ok(rows.first().and_then(|IntegerRow(n)| *n).unwrap_or(0))
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
            "SELECT key, value FROM links WHERE substr(key, 1, ?) = ? ORDER BY key",
            vec![(prefix.len() as i64).into(), prefix.into()],
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
                "DELETE FROM links WHERE substr(key, 1, ?) = ?",
                vec![(prefix.len() as i64).into(), prefix.as_str().into()],
            ),
        }
    }

    // ---- meta and counters ----

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

    pub fn bump(&self, name: &str) -> DbResult<()> {
        self.add(name, 1)
    }

    pub fn add(&self, name: &str, by: i64) -> DbResult<()> {
        self.run(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            vec![name.into(), by.into()],
        )
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

    pub fn counters(&self) -> DbResult<serde_json::Map<String, serde_json::Value>> {
        let rows: Vec<CounterRow> = self.rows("SELECT name, value FROM counters ORDER BY name", vec![])?;
        Ok(rows.into_iter().map(|row| (row.name, row.value.into())).collect())
    }
}

fn listed(row: &WebhookRow) -> DbResult<Listed> {
    Ok(Listed { id: row.id.clone(), record: parse_record(row)? })
}

fn parse_record(row: &WebhookRow) -> DbResult<WebhookRecord> {
    parse(&format!("webhook {}", row.id), &row.record)
}

fn parse<T: DeserializeOwned>(what: &str, text: &str) -> DbResult<T> {
    serde_json::from_slice(text.as_bytes())
        .map_err(|error| DbError::Unreadable(what.to_owned(), error.to_string()))
}

fn to_json<T: Serialize>(value: &T) -> DbResult<String> {
    serde_json::to_string(value).map_err(|error| DbError::Storage(error.to_string()))
}
