//! The cron's fan-out over the named connections: each cron run (`POST /cron`) nudges the live,
//! unpaused connections whose work is due by the work record ([`super::work`]: due now, or due
//! earlier and not yet reported done, which covers a Location whose alarm was lost), and no
//! other. A nudged Location (`POST /nudge`) arms its alarm when work is due and answers with its
//! queue, which is kept in the record (an empty queue leaves the record). [`BATCH`] are nudged
//! at a time, concurrently, so that one invocation stays within its subrequests; the Directory's
//! alarm carries on with the rest at once, from where the last batch stopped (the `meta` row
//! [`CURSOR`], written only when there is a rest). An idle run reads no row of the record and
//! nudges nobody. Until one sweep has nudged every connection once ([`SWEPT`]), the record may
//! miss connections whose work predates it, so the cron nudges them all, as it did before.

use futures_util::future::join_all;
use serde_json::json;
use worker::console_error;

use super::{location_call, storage, Answer, Directory};
use crate::calls::LocationCall;
use crate::connections::work::WorkReport;
use crate::refusal::Refusal;
use crate::shell::platform::runtime::now_ms;

/// Locations nudged per invocation (the Free plan allows 50 subrequests).
pub const BATCH: usize = 40;
/// The `meta` row holding the last id nudged while a fan-out carries on.
const CURSOR: &str = "cron_after";
/// The `meta` row set once every connection was nudged and answered into the work record.
const SWEPT: &str = "work_swept_at";

/// A Directory that has never had a connection has no work to sweep for: its record is
/// complete from the start (one row read when the object starts).
pub fn swept_when_new(db: &super::db::Db) {
    if db.meta(SWEPT).ok().flatten().is_none() && db.any_connection().ok() == Some(false) {
        // Should the write fail, the first cron run sweeps the connections (there are none yet).
        let _ = db.put_meta(SWEPT, &now_ms().to_string());
    }
}

/// `POST /cron`: nudges the first batch; `{ "nudged": n, "more": bool }`. The first run also
/// publishes the records for the edge ([`super::edge_copy::publish_all_once`]).
pub async fn start(directory: &Directory) -> Answer {
    // A failure is logged, and the next run tries again: it never holds up the nudges.
    let _ = super::edge_copy::publish_all_once(directory).await;
    let (nudged, more) = batch(directory, "").await?;
    Ok((200, json!({ "nudged": nudged, "more": more })))
}

/// The alarm: the next batch after the stored cursor.
pub async fn carry_on(directory: &Directory) -> Result<(), Refusal> {
    let after = directory.db.meta(CURSOR).map_err(storage)?.unwrap_or_default();
    if after.is_empty() {
        return Ok(());
    }
    batch(directory, &after).await.map(|_| ())
}

/// Nudges the batch after `after`, and arms the alarm for the rest.
async fn batch(directory: &Directory, after: &str) -> Result<(usize, bool), Refusal> {
    let sweep = directory.db.meta(SWEPT).map_err(storage)?.is_none();
    let mut ids = if sweep {
        directory.db.to_nudge(after, BATCH + 1)
    } else {
        directory.db.due_work(now_ms(), after, BATCH + 1)
    }
    .map_err(storage)?;
    let more = ids.len() > BATCH;
    ids.truncate(BATCH);
    let nudges = ids.iter().map(|id| nudge(directory, id));
    join_all(nudges).await;
    match (more, ids.last()) {
        (true, Some(last)) => {
            directory.db.put_meta(CURSOR, last).map_err(storage)?;
            directory
                .storage
                .set_alarm(std::time::Duration::from_millis(0))
                .await
                .map_err(|error| Refusal::storage_unavailable(error.to_string()))?;
        }
        _ if !after.is_empty() => directory.db.delete_meta(CURSOR).map_err(storage)?,
        _ => {}
    }
    if sweep && !more {
        directory.db.put_meta(SWEPT, &now_ms().to_string()).map_err(storage)?;
    }
    Ok((ids.len(), more))
}

/// One nudge; its answer (the Location's queue) is kept in the work record. A Location that
/// does not answer is logged, and the next cron run tries again (its row stays due).
async fn nudge(directory: &Directory, id: &str) {
    match location_call(&directory.env, id, LocationCall::Nudge, None).await {
        // A paused Location answers without its queue: its row stays as it was.
        Ok((200, body)) => {
            if let Ok(report) = serde_json::from_value::<WorkReport>(body) {
                let _ = super::work::keep(directory, id, &report);
            }
        }
        Ok((status, body)) => console_error!(
            "{}",
            json!({"msg": "cron: the location did not take the nudge", "connection": id, "status": status, "answer": body})
        ),
        Err(_) => {}
    }
}
