//! The cron's fan-out over the named connections: each cron run (`POST /cron`) nudges every
//! live, unpaused connection's Location (`POST /nudge`: it arms its own alarm and answers at
//! once), [`BATCH`] at a time, concurrently, so that one invocation stays within its subrequests;
//! the Directory's alarm carries on with the rest at once, from where the last batch stopped
//! (the `meta` row [`CURSOR`], written only when there is a rest).

use futures_util::future::join_all;
use serde_json::json;
use worker::{console_error, Method};

use super::{location_call, storage, Answer, Directory};
use crate::refusal::Refusal;

/// Locations nudged per invocation (the Free plan allows 50 subrequests).
pub const BATCH: usize = 40;
/// The `meta` row holding the last id nudged while a fan-out carries on.
const CURSOR: &str = "cron_after";

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
    let mut ids = directory.db.to_nudge(after, BATCH + 1).map_err(storage)?;
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
    Ok((ids.len(), more))
}

/// One nudge; a Location that does not answer is logged, and the next cron run tries again.
async fn nudge(directory: &Directory, id: &str) {
    match location_call(&directory.env, id, Method::Post, "/nudge", None).await {
        Ok((200, _)) => {}
        Ok((status, body)) => console_error!(
            "{}",
            json!({"msg": "cron: the location did not take the nudge", "connection": id, "status": status, "answer": body})
        ),
        Err(_) => {}
    }
}
