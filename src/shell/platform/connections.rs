//! The edge's copy of the named connections' records, kept in the isolate: the webhook route
//! verifies a delivery with a connection's secrets and the read API checks that a connection
//! exists, without asking the Directory. The Directory publishes each live connection's sealed
//! record in KV (`connection:{id}`, [`record_key`]) when it creates, changes or removes one; the
//! edge reads it from there (never from the Directory, so that a made-up id costs no Durable
//! Object request) and keeps it for a minute in a bounded copy that evicts the least recently
//! used ([`Recent`]); ids KV does not know are kept apart for a few seconds, so that a flood of
//! them pushes no live record out. After a signature mismatch on a known connection the record
//! is fetched again from the Directory (a secret rotated a moment ago), at most once per
//! [`REFETCH_GAP_MS`] per id. Revocation does not wait for this copy: the location's Durable
//! Object checks the secret again at accept. The default connection's id (`GHL_LOCATION_ID`,
//! [`default_id`]) is read here too: the cron, the routes and the Directory tell it from the named ones.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{Env, Result};

use super::kv::Kv;
use super::object_stub::{ObjectStub, NO_BODY};
use super::runtime::settings;
use crate::auth::envelope::{Envelope, KeyRing};
use crate::calls::DirectoryCall;
use crate::connections::recent::Recent;
use crate::connections::{record_key, Connection, ConnectionId};

/// How long a fetched record is used.
const FRESH_MS: i64 = 60_000;
/// How long an id KV does not know is believed unknown, and the least gap between two
/// refetches of one id from the Directory.
pub const REFETCH_GAP_MS: i64 = 5_000;
/// Records kept at most.
const MAX_LIVE: usize = 1_000;
/// Unknown ids kept at most.
const MAX_UNKNOWN: usize = 256;
/// KV's own cache of a record read here (its shortest): a location that read an id before the
/// Directory published it sees it within this long.
pub const RECORD_CACHE_TTL_SECS: u32 = 30;

/// The default connection's id, when the deployment has one (`GHL_LOCATION_ID`).
pub fn default_id(env: &Env) -> Option<ConnectionId> {
    settings(env).default_location().and_then(|text| ConnectionId::parse(text).ok())
}

thread_local! {
    static LIVE: RefCell<Recent<Rc<Connection>>> = const { RefCell::new(Recent::new(MAX_LIVE)) };
    static UNKNOWN: RefCell<Recent<()>> = const { RefCell::new(Recent::new(MAX_UNKNOWN)) };
}

/// The record of connection `id` (`None`: unknown or removed), from the copy while it is fresh,
/// else from KV.
pub async fn lookup(env: &Env, id: &ConnectionId, now: i64) -> Result<Option<Rc<Connection>>> {
    if let Some(record) = LIVE.with(|live| live.borrow_mut().get(id, now, FRESH_MS)) {
        return Ok(Some(record));
    }
    if UNKNOWN.with(|unknown| unknown.borrow_mut().get(id, now, REFETCH_GAP_MS)).is_some() {
        return Ok(None);
    }
    let envelope: Option<Envelope> = Kv::open(env)?
        .get_cached(&record_key(id), RECORD_CACHE_TTL_SECS)
        .await
        .map_err(|error| worker::Error::RustError(error.to_string()))?;
    keep(env, id, envelope, now, "kv")
}

/// The record fetched again from the Directory after a signature mismatch, unless it was
/// fetched less than [`REFETCH_GAP_MS`] ago (`None` then, or when the Directory no longer knows
/// it).
pub async fn refetch(env: &Env, id: &ConnectionId, now: i64) -> Result<Option<Rc<Connection>>> {
    let recent = LIVE.with(|live| live.borrow().fetched_at(id)).is_some_and(|at| now - at < REFETCH_GAP_MS);
    if recent {
        return Ok(None);
    }
    let (status, mut answer) =
        ObjectStub::directory(env)?.ask(&DirectoryCall::Verify { id: id.to_string() }, NO_BODY).await?;
    let envelope = match status {
        200 => Some(serde_json::from_value(answer["envelope"].take()).map_err(rust_error)?),
        404 => None,
        status => {
            return Err(worker::Error::RustError(format!("the Directory answered the verify with {status}")))
        }
    };
    keep(env, id, envelope, now, "directory")
}

/// Drops the copy of `id` (its location said it is removed).
pub fn forget(id: &ConnectionId) {
    LIVE.with(|live| live.borrow_mut().remove(id));
}

/// Opens and keeps what was fetched from `source`.
fn keep(
    env: &Env,
    id: &ConnectionId,
    envelope: Option<Envelope>,
    now: i64,
    source: &str,
) -> Result<Option<Rc<Connection>>> {
    let record = match envelope {
        Some(envelope) => Some(Rc::new(open(env, id, &envelope)?)),
        None => None,
    };
    let line = serde_json::json!({"msg": "connection record fetched", "connection": id, "found": record.is_some(), "from": source});
    worker::console_log!("{line}");
    match &record {
        Some(record) => {
            UNKNOWN.with(|unknown| unknown.borrow_mut().remove(id));
            LIVE.with(|live| live.borrow_mut().put(id.clone(), record.clone(), now));
        }
        None => {
            LIVE.with(|live| live.borrow_mut().remove(id));
            UNKNOWN.with(|unknown| unknown.borrow_mut().put(id.clone(), (), now));
        }
    }
    Ok(record)
}

fn open(env: &Env, id: &ConnectionId, envelope: &Envelope) -> Result<Connection> {
    Connection::open(&*keys(&settings(env)).map_err(rust_error)?, id, envelope).map_err(rust_error)
}

/// The keys connection records are sealed under (`TOKEN_ENCRYPTION_KEYS`).
pub fn keys(settings: &crate::settings::Settings) -> std::result::Result<std::rc::Rc<KeyRing>, String> {
    settings.encryption_keys().map_err(|error| error.to_string())
}

fn rust_error(error: impl ToString) -> worker::Error {
    worker::Error::RustError(error.to_string())
}
