//! The Directory's SQLite database (Durable Object storage): its tables, and typed reads and
//! writes of them. Every method is synchronous; writes made with no `await` between them are
//! committed together.
//!
//! | table | holds |
//! | --- | --- |
//! | `connections` | one row per named connection: its record sealed ([`Envelope`] JSON, [`crate::connections::Connection::seal`]), `paused` and its `agency` (company id of an agency connection) in the clear so that the cron and the agencies' counts read no envelope, when it was created and last changed, and `removed_at` (a tombstone: the envelope is dropped) |
//! | `agencies` | one row per agency install: the company token record, sealed ([`crate::auth::tokens::seal_record`] under [`crate::connections::agency::company_key`]), and when it was installed |
//! | `work` | one row per named connection whose Location has reported its queue: when its earliest pending webhook is due (`NULL`: nothing pending) and the report's sequence number (a late, older report never overwrites a newer one); the cron nudges only the rows due |
//! | `meta` | small named values: where the cron's fan-out carries on, whether the records were published for the edge, whether the work record is complete |
//! | `spent_invites` | the install links used, until they expire (each works once) |

use worker::{SqlStorage, SqlStorageValue};

use crate::auth::envelope::Envelope;
use crate::connections::work::WorkReport;
use crate::shell::platform::sql::{Columns, FromRow, Sql, SqlError, TextRow};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections (
  id TEXT PRIMARY KEY,
  envelope TEXT,
  paused INTEGER NOT NULL,
  agency TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  removed_at INTEGER
);
CREATE TABLE IF NOT EXISTS agencies (
  company_id TEXT PRIMARY KEY,
  record TEXT NOT NULL,
  installed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS work (connection TEXT PRIMARY KEY, due_at INTEGER, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS work_by_due ON work (due_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spent_invites (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
";

pub type DbResult<T> = Result<T, String>;

pub struct Db {
    sql: Sql,
}

/// A live (not removed) connection's sealed record.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub id: String,
    pub envelope: Envelope,
}

/// What one connection row says about the connection being there.
#[derive(Debug, Clone)]
pub enum Presence {
    Live(Envelope),
    Removed,
    Absent,
}

/// One agency, as listed: `company_id, installed_at, connections`.
#[derive(Debug, Clone)]
pub struct AgencyRow {
    pub company_id: String,
    pub installed_at: i64,
    pub connections: i64,
}

impl FromRow for AgencyRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(AgencyRow {
            company_id: columns.text()?,
            installed_at: columns.not_null_integer()?,
            connections: columns.not_null_integer()?,
        })
    }
}

/// One row of the work record: a connection, when its work is due (`None`: none pending), the
/// sequence number of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkRow {
    pub connection: String,
    pub due_at: Option<i64>,
    pub seq: i64,
}

impl FromRow for WorkRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(WorkRow {
            connection: columns.text()?,
            due_at: columns.integer()?,
            seq: columns.not_null_integer()?,
        })
    }
}

/// `id, envelope` (`NULL`: removed).
struct ConnectionRow {
    id: String,
    envelope: Option<String>,
}

impl FromRow for ConnectionRow {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(ConnectionRow { id: columns.text()?, envelope: columns.optional_text()? })
    }
}

/// How a connection row is written: its sealed record and the columns kept in the clear.
pub struct Write<'a> {
    pub id: &'a str,
    pub envelope: &'a Envelope,
    pub paused: bool,
    pub agency: Option<&'a str>,
    pub now_ms: i64,
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

    // ---- connections ----

    /// Whether connection `id` is there, removed, or never was.
    pub fn connection(&self, id: &str) -> DbResult<Presence> {
        let rows: Vec<ConnectionRow> =
            self.rows("SELECT id, envelope FROM connections WHERE id = ?", vec![id.into()])?;
        match rows.into_iter().next() {
            None => Ok(Presence::Absent),
            Some(ConnectionRow { envelope: None, .. }) => Ok(Presence::Removed),
            Some(ConnectionRow { id, envelope: Some(text) }) => Ok(Presence::Live(envelope(&id, &text)?)),
        }
    }

    /// Every live connection's sealed record, by id.
    pub fn live(&self) -> DbResult<Vec<Sealed>> {
        let rows: Vec<ConnectionRow> =
            self.rows("SELECT id, envelope FROM connections WHERE removed_at IS NULL ORDER BY id", vec![])?;
        rows.into_iter()
            .filter_map(|row| Some((row.id, row.envelope?)))
            .map(|(id, text)| Ok(Sealed { envelope: envelope(&id, &text)?, id }))
            .collect()
    }

    /// Writes a connection's record (a new one, a change, or one that was removed coming back).
    pub fn put_connection(&self, write: &Write<'_>) -> DbResult<()> {
        let envelope = serde_json::to_string(write.envelope).map_err(|error| error.to_string())?;
        self.run(
            "INSERT INTO connections (id, envelope, paused, agency, created_at, updated_at, removed_at)
             VALUES (?, ?, ?, ?, ?, ?, NULL)
             ON CONFLICT (id) DO UPDATE SET envelope = excluded.envelope, paused = excluded.paused,
               agency = excluded.agency, updated_at = excluded.updated_at, removed_at = NULL",
            vec![
                write.id.into(),
                envelope.into(),
                i64::from(write.paused).into(),
                write.agency.into(),
                write.now_ms.into(),
                write.now_ms.into(),
            ],
        )
    }

    /// Leaves a tombstone: the record (its secrets and token) is dropped, the id kept.
    pub fn remove_connection(&self, id: &str, now_ms: i64) -> DbResult<()> {
        self.run(
            "UPDATE connections SET envelope = NULL, agency = NULL, updated_at = ?, removed_at = ? WHERE id = ?",
            vec![now_ms.into(), now_ms.into(), id.into()],
        )
    }

    /// Whether any connection was ever recorded (removed ones included).
    pub fn any_connection(&self) -> DbResult<bool> {
        let rows: Vec<TextRow> = self.rows("SELECT id FROM connections LIMIT 1", vec![])?;
        Ok(!rows.is_empty())
    }

    /// Up to `limit` ids of live, unpaused connections after `after`, in id order: whom the
    /// cron's one sweep nudges (no envelope is read).
    pub fn to_nudge(&self, after: &str, limit: usize) -> DbResult<Vec<String>> {
        let rows: Vec<TextRow> = self.rows(
            "SELECT id FROM connections WHERE removed_at IS NULL AND paused = 0 AND id > ? ORDER BY id LIMIT ?",
            vec![after.into(), (limit as i64).into()],
        )?;
        Ok(rows.into_iter().map(|TextRow(id)| id).collect())
    }

    // ---- work ----

    /// Keeps connection `id`'s report of its queue, unless a newer one is kept already: whether
    /// it was kept.
    pub fn record_work(&self, id: &str, report: &WorkReport) -> DbResult<bool> {
        let kept: Vec<TextRow> = self.rows(
            "INSERT INTO work (connection, due_at, seq) VALUES (?, ?, ?)
             ON CONFLICT (connection) DO UPDATE SET due_at = excluded.due_at, seq = excluded.seq
               WHERE excluded.seq > work.seq
             RETURNING connection",
            vec![id.into(), report.due_at.into(), report.seq.into()],
        )?;
        Ok(!kept.is_empty())
    }

    /// Forgets connection `id`'s work (it was removed).
    pub fn forget_work(&self, id: &str) -> DbResult<()> {
        self.run("DELETE FROM work WHERE connection = ?", vec![id.into()])
    }

    /// Up to `limit` ids after `after`, in id order, of live, unpaused connections whose work is
    /// due at `now`: whom the cron nudges. Only the due rows are read (the `due_at` index); an
    /// idle deployment reads none.
    pub fn due_work(&self, now: i64, after: &str, limit: usize) -> DbResult<Vec<String>> {
        let rows: Vec<TextRow> = self.rows(
            "SELECT w.connection FROM work w INDEXED BY work_by_due JOIN connections c ON c.id = w.connection
             WHERE w.due_at <= ? AND w.connection > ? AND c.removed_at IS NULL AND c.paused = 0
             ORDER BY w.connection LIMIT ?",
            vec![now.into(), after.into(), (limit as i64).into()],
        )?;
        Ok(rows.into_iter().map(|TextRow(id)| id).collect())
    }

    /// The whole record, by connection: `[id, due_at, seq]` each (`GET /internal/work`).
    pub fn work(&self) -> DbResult<Vec<WorkRow>> {
        self.rows("SELECT connection, due_at, seq FROM work ORDER BY connection", vec![])
    }

    // ---- agencies ----

    /// Agency `company_id`'s sealed company token record.
    pub fn agency(&self, company_id: &str) -> DbResult<Option<Envelope>> {
        let rows: Vec<TextRow> =
            self.rows("SELECT record FROM agencies WHERE company_id = ?", vec![company_id.into()])?;
        rows.into_iter().next().map(|TextRow(record)| envelope(company_id, &record)).transpose()
    }

    /// Stores an agency's company token record; `installed_at_ms` is set by an install and kept
    /// by a renewal (`None`).
    pub fn put_agency(
        &self,
        company_id: &str,
        record: &Envelope,
        installed_at_ms: Option<i64>,
        now_ms: i64,
    ) -> DbResult<()> {
        let record = serde_json::to_string(record).map_err(|error| error.to_string())?;
        let installed = installed_at_ms.unwrap_or(now_ms);
        let query = if installed_at_ms.is_some() {
            "INSERT INTO agencies (company_id, record, installed_at) VALUES (?, ?, ?)
             ON CONFLICT (company_id) DO UPDATE SET record = excluded.record, installed_at = excluded.installed_at"
        } else {
            "INSERT INTO agencies (company_id, record, installed_at) VALUES (?, ?, ?)
             ON CONFLICT (company_id) DO UPDATE SET record = excluded.record"
        };
        self.run(query, vec![company_id.into(), record.into(), installed.into()])
    }

    /// Every agency, with how many live connections it has.
    pub fn agencies(&self) -> DbResult<Vec<AgencyRow>> {
        self.rows(
            "SELECT a.company_id AS company_id, a.installed_at AS installed_at,
               (SELECT COUNT(*) FROM connections c WHERE c.agency = a.company_id AND c.removed_at IS NULL) AS connections
             FROM agencies a ORDER BY a.company_id",
            vec![],
        )
    }

    // ---- install links ----

    /// Spends install link `nonce` (valid until `expires_at_ms`): `false` when it was spent
    /// already. Links expired before `now_ms` are forgotten on the way.
    pub fn spend_invite(&self, nonce: &str, expires_at_ms: i64, now_ms: i64) -> DbResult<bool> {
        self.run("DELETE FROM spent_invites WHERE expires_at < ?", vec![now_ms.into()])?;
        let spent: Vec<TextRow> =
            self.rows("SELECT nonce FROM spent_invites WHERE nonce = ?", vec![nonce.into()])?;
        if !spent.is_empty() {
            return Ok(false);
        }
        self.run(
            "INSERT INTO spent_invites (nonce, expires_at) VALUES (?, ?)",
            vec![nonce.into(), expires_at_ms.into()],
        )?;
        Ok(true)
    }

    // ---- meta ----

    pub fn meta(&self, key: &str) -> DbResult<Option<String>> {
        let rows: Vec<TextRow> = self.rows("SELECT value FROM meta WHERE key = ?", vec![key.into()])?;
        Ok(rows.into_iter().next().map(|TextRow(value)| value))
    }

    pub fn put_meta(&self, key: &str, value: &str) -> DbResult<()> {
        self.run(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )
    }

    pub fn delete_meta(&self, key: &str) -> DbResult<()> {
        self.run("DELETE FROM meta WHERE key = ?", vec![key.into()])
    }
}

fn envelope(name: &str, text: &str) -> DbResult<Envelope> {
    serde_json::from_str(text).map_err(|error| format!("the stored record `{name}` is unreadable: {error}"))
}
