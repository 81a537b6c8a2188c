//! Best-effort exclusive holds in KV: a cron run's leases on the webhooks it works, and the lock on
//! a contact while one event about it is applied. A taker writes its random token under each free
//! key, waits for a concurrent taker's writes to land, and holds the keys that still carry its
//! token. KV has no compare-and-swap, so this narrows races to what KV's consistency allows
//! (README, "Operating it"); the versions in the id maps keep a late event from undoing a newer
//! one either way. A KV error while taking counts as "not held": nothing is attempted then.

use std::time::Duration;

use worker::{console_warn, Delay};

use super::runtime::now_ms;
use super::store::Store;
use crate::sync::records::surely_held;
use crate::timestamp::UnixMillis;

/// How long a taker waits for a concurrent taker's write to land before reading its keys back.
const SETTLE_MS: u64 = 50;

/// The keys a taker holds, all under one token, since `taken_at` for `ttl_secs`.
pub struct Held {
    token: String,
    keys: Vec<String>,
    taken_at: UnixMillis,
    ttl_secs: u64,
}

impl Held {
    pub fn holds(&self, key: &str) -> bool {
        self.keys.iter().any(|held| held == key)
    }

    /// Whether these keys surely still hold at `now`: less than half their lifetime has passed,
    /// so none can have expired and been taken by another taker, and a step begun now has the
    /// other half.
    pub fn surely_held(&self, now: UnixMillis) -> bool {
        surely_held(self.taken_at, self.ttl_secs, now)
    }
}

/// Takes every free key of `keys` (duplicates count once) for `ttl_secs`.
pub async fn take(store: &Store, keys: &[String], ttl_secs: u64) -> Held {
    let (token, taken_at) = (random_token(), now_ms());
    let mut written: Vec<&String> = Vec::with_capacity(keys.len());
    for key in keys {
        if written.contains(&key) || !matches!(store.get_text(key).await, Ok(None)) {
            continue;
        }
        if store.put_raw(key, token.clone(), None, Some(ttl_secs)).await.is_ok() {
            written.push(key);
        }
    }
    if !written.is_empty() {
        Delay::from(Duration::from_millis(SETTLE_MS)).await;
    }
    let mut held = Vec::with_capacity(written.len());
    for key in written {
        if matches!(store.get_text(key).await, Ok(Some(found)) if found == token) {
            held.push(key.clone());
        }
    }
    Held { token, keys: held, taken_at, ttl_secs }
}

/// Takes `key`, trying `tries` times `pause_ms` apart while another holder finishes.
pub async fn take_one(store: &Store, key: &str, ttl_secs: u64, tries: u32, pause_ms: u64) -> Option<Held> {
    let keys = [key.to_owned()];
    for round in 0..tries {
        if round > 0 {
            Delay::from(Duration::from_millis(pause_ms)).await;
        }
        let held = take(store, &keys, ttl_secs).await;
        if held.holds(key) {
            return Some(held);
        }
    }
    None
}

/// Releases what `held` holds. Keys held for less than half their lifetime cannot have expired
/// and are deleted at once (one read less per release; a concurrent taker that KV let through
/// goes unnoticed, as it would have until then). Older ones are read back first, leaving any that
/// expired and was taken by someone else (that is logged: two takers may have held it at once).
/// A failed release only keeps the key until it expires.
pub async fn release(store: &Store, held: &Held) {
    let surely_ours = held.surely_held(now_ms());
    for key in &held.keys {
        let ours = surely_ours
            || match store.get_text(key).await {
                Ok(found) => found.as_deref() == Some(held.token.as_str()),
                Err(_) => continue,
            };
        if ours {
            let _ = store.delete(key).await;
        } else {
            console_warn!("{}", serde_json::json!({"msg": "lock lost", "key": key}));
        }
    }
}

/// A random token: 16 bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
