//! A named connection's side of the work record that the cron reads ([`crate::connections::work`]):
//! the Location tells the Directory (`POST /internal/work/{id}`) when its queue fills (from
//! [`super::Location::accept`]), and at the end of a run when it has emptied or its earliest
//! pending webhook falls due at another time (a retry waits); it answers each cron nudge with its
//! queue likewise. What it last told is remembered in memory, so a burst of webhooks costs one
//! report, not one each; a restarted instance tells again (harmless). The default connection
//! reports nothing: the cron wakes it every run.

use std::cell::Cell;

use serde_json::json;
use worker::{Response, Result, SqlStorage};

use super::connection::Identity;
use super::Writer;
use crate::calls::DirectoryCall;
use crate::connections::work::{next_seq, Reported, WorkReport};
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::now_ms;
use crate::shell::platform::sql::{IntegerRow, Sql, SqlError};
use crate::timestamp::UnixMillis;

/// What the Location last told the Directory, and how to read its queue for it.
pub struct WorkReports {
    sql: Sql,
    reported: Cell<Reported>,
    seq: Cell<i64>,
}

impl WorkReports {
    pub fn new(sql: SqlStorage) -> WorkReports {
        WorkReports { sql: Sql::over(sql), reported: Cell::new(Reported::Unknown), seq: Cell::new(0) }
    }

    /// When the earliest pending webhook is due (`None`: none pending): one row of the
    /// `(state, at)` index read.
    fn earliest_due(&self) -> std::result::Result<Option<UnixMillis>, SqlError> {
        let rows: Vec<IntegerRow> =
            self.sql.rows("SELECT min(at) FROM webhooks WHERE state = 'pending'", vec![])?;
        Ok(rows.into_iter().next().and_then(|IntegerRow(at)| at))
    }

    /// A webhook due at `at` was accepted: told when the queue was empty (or unknown) or its
    /// work was due later than `at`.
    pub async fn filled(&self, writer: &Writer, identity: &Identity, at: UnixMillis) {
        if identity.named().is_some() && self.reported.get().needs_report(Some(at), now_ms()) {
            self.tell(writer, Some(at)).await;
        }
    }

    /// A run ended: told when the queue emptied, or its work falls due at another time than told.
    pub async fn settled(&self, writer: &Writer) {
        if writer.identity().named().is_none() {
            return;
        }
        match self.earliest_due() {
            Ok(due) if self.reported.get().needs_report(due, now_ms()) => self.tell(writer, due).await,
            Ok(_) => {}
            Err(error) => writer
                .log
                .error(json!({"msg": "the queue could not be read for the work record", "error": error.0})),
        }
    }

    /// `POST /nudge` from the Directory's cron: arms the alarm for now when work is due, and
    /// answers at once with the queue (`{ armed, due_at, seq }`, kept in the work record); a
    /// paused connection is left alone (`{ armed: false, paused: true }`).
    pub async fn nudge(&self, writer: &Writer, identity: &Identity) -> Result<Response> {
        if identity.paused() {
            return respond::json(200, &json!({ "armed": false, "paused": true }));
        }
        let now = now_ms();
        // A queue that cannot be read is worked anyway; the record keeps what it had.
        let Ok(due) = self.earliest_due() else {
            if !writer.engine.running() {
                writer.arm(now).await?;
            }
            return respond::json(200, &json!({ "armed": true }));
        };
        let armed = due.is_some_and(|at| at <= now);
        if armed && !writer.engine.running() {
            writer.arm(now).await?;
        }
        // Read again after the await: a run may have emptied the queue meanwhile.
        let due = if armed { self.earliest_due().unwrap_or(due) } else { due };
        if identity.named().is_none() {
            return respond::json(200, &json!({ "armed": armed }));
        }
        let report = self.stamp(due);
        respond::json(200, &json!({ "armed": armed, "due_at": report.due_at, "seq": report.seq }))
    }

    /// The next report of `due_at`, remembered as told.
    fn stamp(&self, due_at: Option<UnixMillis>) -> WorkReport {
        let seq = next_seq(self.seq.get(), now_ms());
        self.seq.set(seq);
        self.reported.set(Reported::of(due_at));
        WorkReport { due_at, seq }
    }

    /// Tells the Directory; one that did not hear it is told at the next chance (the record is
    /// remembered as unknown, unless a newer report went out meanwhile).
    async fn tell(&self, writer: &Writer, due_at: Option<UnixMillis>) {
        let report = self.stamp(due_at);
        let call = DirectoryCall::ReportWork { id: writer.name.clone() };
        let sent = async { ObjectStub::directory(&writer.env)?.ask(&call, Some(&report)).await };
        let failure = match sent.await {
            Ok((200, _)) => return,
            Ok((status, answer)) => json!({ "status": status, "answer": answer }),
            Err(error) => json!({ "error": error.to_string() }),
        };
        if self.seq.get() == report.seq {
            self.reported.set(Reported::Unknown);
        }
        writer.log.warn(json!({"msg": "the directory did not take the work report", "report": report, "failure": failure}));
    }
}
