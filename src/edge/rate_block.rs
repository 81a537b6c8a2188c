//! The location's rate-limit block: until when nothing may be sent to it. Kept in KV
//! (`ratelimit:{location}`) for every isolate, and remembered in this isolate for
//! [`RECHECK_MS`], so that each first attempt does not read KV again. A block written by another
//! isolate is therefore seen up to that much later; a call sent meanwhile at worst meets a 429,
//! which the queue retries without counting it. Every Contacts API answer, to a write or a read,
//! goes through [`heed`].

use std::cell::RefCell;

use worker::console_warn;

use super::runtime::now_ms;
use super::store::{Store, StoreError};
use crate::sync::retry::{blocked_until, RateHeaders};
use crate::timestamp::UnixMillis;

/// How long this isolate trusts what it last read or wrote.
const RECHECK_MS: i64 = 2_000;

/// What this isolate last knew: the location, until when it is blocked (0: not), and when it
/// learnt that.
struct Known {
    location: String,
    until: UnixMillis,
    learnt_at: UnixMillis,
}

thread_local! {
    static KNOWN: RefCell<Option<Known>> = const { RefCell::new(None) };
}

/// Until when `location` is blocked, if it is at `now`.
pub async fn blocked(
    store: &Store,
    location: &str,
    now: UnixMillis,
) -> Result<Option<UnixMillis>, StoreError> {
    let until = match remembered(location, now) {
        Some(until) => until,
        None => {
            let stored: Option<UnixMillis> = store.get(&key(location)).await?;
            let until = stored.unwrap_or(0);
            remember(location, until, now);
            until
        }
    };
    Ok(Some(until).filter(|until| *until > now))
}

/// Blocks `location` until `until`, for every isolate.
async fn block(store: &Store, location: &str, until: UnixMillis, now: UnixMillis) -> Result<(), StoreError> {
    remember(location, until, now);
    let ttl = ((until - now) / 1_000).max(60) as u64;
    store.put(&key(location), &until, Some(ttl)).await
}

/// After an answer: blocks `location` when its `X-RateLimit-*` headers (or a 429) say the window
/// is spent. Best effort: the answer is already here and must still be used (a create's new id
/// recorded), and a block that could not be kept only costs a 429 later.
pub async fn heed(store: &Store, location: &str, rate: &RateHeaders) {
    let now = now_ms();
    let Some(until) = blocked_until(rate, now) else {
        return;
    };
    if let Err(error) = block(store, location, until, now).await {
        console_warn!(
            "{}",
            serde_json::json!({"msg": "rate-limit block not kept", "error": error.to_string()})
        );
    }
}

/// The KV key of `location`'s block.
pub fn key(location: &str) -> String {
    format!("ratelimit:{location}")
}

fn remembered(location: &str, now: UnixMillis) -> Option<UnixMillis> {
    KNOWN.with_borrow(|known| {
        known
            .as_ref()
            .filter(|known| known.location == location && now - known.learnt_at < RECHECK_MS)
            .map(|known| known.until)
    })
}

fn remember(location: &str, until: UnixMillis, now: UnixMillis) {
    KNOWN.set(Some(Known { location: location.to_owned(), until, learnt_at: now }));
}
