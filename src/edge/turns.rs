//! Turns within this isolate: events about one contact that reach the same isolate take turns
//! here, in memory, before any of them tries the contact's lock in KV ([`super::locks`]). Without
//! this, a burst of events about one contact would contend for the KV lock, and the losers would
//! be written back to the queue for the cron. The isolate is single-threaded, so a set of busy
//! keys is all it takes. A waiter looks again after a short timer rather than being woken by the
//! holder: the holder runs for another request, and workerd does not resume one request's work
//! from another's.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use worker::Delay;

/// How often a waiter looks whether the turn is free.
const POLL_MS: u64 = 40;

thread_local! {
    /// The keys whose turn is taken.
    static BUSY: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// A taken turn; dropping it frees it.
pub struct Turn {
    key: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        BUSY.with_borrow_mut(|busy| busy.remove(&self.key));
    }
}

/// Waits for `key`'s turn in this isolate, for at most about `wait_ms`.
pub async fn take_within(key: &str, wait_ms: u64) -> Option<Turn> {
    let mut waited = 0;
    loop {
        if BUSY.with_borrow_mut(|busy| busy.insert(key.to_owned())) {
            return Some(Turn { key: key.to_owned() });
        }
        if waited >= wait_ms {
            return None;
        }
        Delay::from(Duration::from_millis(POLL_MS)).await;
        waited += POLL_MS;
    }
}
