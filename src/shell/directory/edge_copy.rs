//! The Directory's copy of each live connection's sealed record in KV (`connection:{id}`), which
//! the edge reads to verify webhooks ([`crate::shell::platform::connections`]) so that it never
//! asks the Directory about an id: published when a connection is created or changed, withdrawn
//! when it is removed, and published once for every live connection by the first cron run of a
//! deployment that kept its records before this copy existed.

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use worker::{console_error, console_log, Env};

use super::{storage, Directory};
use crate::auth::envelope::Envelope;
use crate::connections::{record_key, ConnectionId};
use crate::refusal::Refusal;
use crate::shell::platform::kv::{Kv, KvError};

/// How long a second write of one key waits (KV: one write per key per second).
const KV_WRITE_GAP_MS: u64 = 1_100;
/// The `meta` row that says every live record has been published once.
const PUBLISHED: &str = "edge_copy_published";

/// Publishes `id`'s sealed record (503 `storage_unavailable` when KV does not take it).
pub async fn publish(env: &Env, id: &ConnectionId, envelope: &Envelope) -> Result<(), Refusal> {
    let kv = Kv::open(env).map_err(|error| unavailable(id, &error.to_string()))?;
    let key = record_key(id);
    retried(|| kv.put(&key, envelope, None)).await.map_err(|error| unavailable(id, &error.to_string()))
}

/// Withdraws `id`'s record from KV; the edge then answers its webhooks as it answers made-up ids.
pub async fn withdraw(env: &Env, id: &ConnectionId) -> Result<(), Refusal> {
    let kv = Kv::open(env).map_err(|error| unavailable(id, &error.to_string()))?;
    let key = record_key(id);
    retried(|| kv.delete(&key)).await.map_err(|error| unavailable(id, &error.to_string()))
}

/// One KV write, made again once [`KV_WRITE_GAP_MS`] is over when refused: KV takes one write
/// per key per second, and an operator may change a connection twice within one.
async fn retried<F: Future<Output = Result<(), KvError>>>(write: impl Fn() -> F) -> Result<(), KvError> {
    if write().await.is_ok() {
        return Ok(());
    }
    worker::Delay::from(Duration::from_millis(KV_WRITE_GAP_MS)).await;
    write().await
}

/// Publishes every live record once per deployment (the `meta` row [`PUBLISHED`] remembers it).
pub async fn publish_all_once(directory: &Directory) -> Result<(), Refusal> {
    if directory.db.meta(PUBLISHED).map_err(storage)?.is_some() {
        return Ok(());
    }
    let live = directory.db.live().map_err(storage)?;
    for sealed in &live {
        let id = ConnectionId::parse(&sealed.id)?;
        publish(&directory.env, &id, &sealed.envelope).await?;
    }
    directory.db.put_meta(PUBLISHED, "1").map_err(storage)?;
    console_log!("{}", json!({"msg": "connection records published for the edge", "count": live.len()}));
    Ok(())
}

fn unavailable(id: &ConnectionId, error: &str) -> Refusal {
    console_error!(
        "{}",
        json!({"msg": "connection record not published in KV", "connection": id, "error": error})
    );
    Refusal::storage_unavailable(format!(
        "the record of connection `{id}` could not be published for the edge; nothing was changed, try again"
    ))
}
