//! The Directory's side of the work record (the `work` table, [`super::db`]): each named
//! connection's Location reports when its queue fills, empties or its work falls due at another
//! time (`POST /internal/work/{id}`, [`crate::connections::work::WorkReport`]), and answers each
//! nudge the same way; the cron's fan-out ([`super::fan_out`]) reads the record to nudge only the
//! connections with work due. `GET /internal/work` shows the record (tests, diagnosis).

use serde_json::json;
use worker::Request;

use super::{storage, Answer, Directory};
use crate::connections::work::WorkReport;
use crate::connections::{unknown_connection, ConnectionId};
use crate::refusal::Refusal;

/// `POST /work/{id}` `{ "due_at": ms | null, "seq": n }`: keeps the report unless a newer one is
/// kept already; `{ "recorded": bool }`. 400 `invalid_connection_id`, 400 `invalid_body`, 404
/// `unknown_connection` (removed or never created: nothing is kept).
pub async fn report(directory: &Directory, id: &str, mut req: Request) -> Answer {
    let id = ConnectionId::parse(id)?;
    let text = req.text().await.unwrap_or_default();
    let report: WorkReport = serde_json::from_str(&text).map_err(|_| {
        Refusal::bad_request("invalid_body", "expected { due_at: milliseconds or null, seq: integer }")
    })?;
    if !directory.is_live(id.as_str())? {
        return Err(unknown_connection());
    }
    let recorded = keep(directory, id.as_str(), &report)?;
    Ok((200, json!({ "recorded": recorded })))
}

/// Keeps connection `id`'s report (the nudge's answer or its own report): whether it was newer.
pub fn keep(directory: &Directory, id: &str, report: &WorkReport) -> Result<bool, Refusal> {
    directory.db.record_work(id, report).map_err(storage)
}

/// `GET /work`: `{ "work": [{ connection, due_at, seq }] }`.
pub fn record(directory: &Directory) -> Answer {
    let rows = directory.db.work().map_err(storage)?;
    Ok((200, json!({ "work": rows })))
}
