//! The edge's copy of the named connections' records, kept in the isolate: the webhook route
//! verifies a delivery with a connection's secrets and the read API checks that a connection
//! exists, without asking the Directory each time. A record is fetched from the Directory
//! (`GET /connections/{id}/verify`, sealed) at most once a minute per id and isolate; an unknown
//! id is remembered for a few seconds; after a signature mismatch the record is fetched again,
//! at most once per [`REFETCH_GAP_MS`] per id (a secret rotated a moment ago). Revocation does
//! not wait for this copy: the location's Durable Object checks the secret again at accept.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{Env, Method, Result};

use super::object_stub::ObjectStub;
use super::runtime::setting;
use crate::auth::envelope::{Envelope, KeyRing};
use crate::connections::{Connection, ConnectionId};

/// How long a fetched record is used.
const FRESH_MS: i64 = 60_000;
/// How long an unknown id is believed unknown, and the least gap between two fetches of one id.
pub const REFETCH_GAP_MS: i64 = 5_000;
/// Most ids kept; past it the copy starts again empty (a flood of made-up ids cannot grow it).
const MAX_ENTRIES: usize = 1_000;

struct Entry {
    id: ConnectionId,
    record: Option<Rc<Connection>>,
    fetched_at: i64,
}

thread_local! {
    /// A list, not a map: a few hundred ids are scanned in microseconds, and a map's code for
    /// one more key type weighs on the Wasm.
    static KEPT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

fn kept<T>(id: &ConnectionId, read: impl FnOnce(Option<&Entry>) -> T) -> T {
    KEPT.with(|kept| read(kept.borrow().iter().find(|entry| &entry.id == id)))
}

/// The record of connection `id` (`None`: unknown or removed), from the copy while it is fresh.
pub async fn lookup(env: &Env, id: &ConnectionId, now: i64) -> Result<Option<Rc<Connection>>> {
    let kept = kept(id, |entry| {
        entry.and_then(|entry| {
            let ttl = if entry.record.is_some() { FRESH_MS } else { REFETCH_GAP_MS };
            (now - entry.fetched_at < ttl).then(|| entry.record.clone())
        })
    });
    match kept {
        Some(record) => Ok(record),
        None => fetch(env, id, now).await,
    }
}

/// The record fetched again after a signature mismatch, unless it was fetched less than
/// [`REFETCH_GAP_MS`] ago (`None` then, or when the Directory no longer knows it).
pub async fn refetch(env: &Env, id: &ConnectionId, now: i64) -> Result<Option<Rc<Connection>>> {
    let recent = kept(id, |entry| entry.is_some_and(|entry| now - entry.fetched_at < REFETCH_GAP_MS));
    if recent {
        return Ok(None);
    }
    fetch(env, id, now).await
}

/// Drops the copy of `id` (its location said it is removed).
pub fn forget(id: &ConnectionId) {
    KEPT.with(|kept| kept.borrow_mut().retain(|entry| &entry.id != id));
}

/// Asks the Directory. A deployment without one (no `DIRECTORY` binding) has no named
/// connections.
async fn fetch(env: &Env, id: &ConnectionId, now: i64) -> Result<Option<Rc<Connection>>> {
    let Ok(directory) = ObjectStub::directory(env) else {
        return Ok(None);
    };
    let (status, mut answer) = directory.ask(Method::Get, &format!("/connections/{id}/verify"), None).await?;
    let record = match status {
        200 => {
            let envelope: Envelope = serde_json::from_value(answer["envelope"].take()).map_err(rust_error)?;
            Some(Rc::new(open(env, id, &envelope)?))
        }
        404 => None,
        status => {
            return Err(worker::Error::RustError(format!("the Directory answered the verify with {status}")))
        }
    };
    let line =
        serde_json::json!({"msg": "connection record fetched", "connection": id, "found": record.is_some()});
    worker::console_log!("{line}");
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        kept.retain(|entry| &entry.id != id);
        if kept.len() >= MAX_ENTRIES {
            kept.clear();
        }
        kept.push(Entry { id: id.clone(), record: record.clone(), fetched_at: now });
    });
    Ok(record)
}

fn open(env: &Env, id: &ConnectionId, envelope: &Envelope) -> Result<Connection> {
    Connection::open(&keys(env).map_err(rust_error)?, id, envelope).map_err(rust_error)
}

/// The keys connection records are sealed under (`TOKEN_ENCRYPTION_KEYS`).
pub fn keys(env: &Env) -> std::result::Result<KeyRing, String> {
    let keys = setting(env, "TOKEN_ENCRYPTION_KEYS").ok_or("`TOKEN_ENCRYPTION_KEYS` is not set")?;
    KeyRing::parse(&keys).map_err(|error| format!("`TOKEN_ENCRYPTION_KEYS`: {error}"))
}

fn rust_error(error: impl ToString) -> worker::Error {
    worker::Error::RustError(error.to_string())
}
