//! Turns within this isolate: events about one contact that reach the same isolate take turns
//! here, in memory, before any of them tries the contact's lock in KV ([`super::locks`]). Without
//! this, a burst of events about one contact would contend for the KV lock, and the losers would
//! be written back to the queue for the cron. The isolate is single-threaded, so a set of busy
//! keys and the wakers of those waiting for them are all it takes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::Delay;

thread_local! {
    /// The keys whose turn is taken, with the wakers of the futures waiting for them.
    static BUSY: RefCell<HashMap<String, Vec<Waker>>> = RefCell::new(HashMap::new());
}

/// A taken turn; dropping it hands the turn on.
pub struct Turn {
    key: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let waiting = BUSY.with_borrow_mut(|busy| busy.remove(&self.key)).unwrap_or_default();
        waiting.into_iter().for_each(Waker::wake);
    }
}

/// Waits for `key`'s turn in this isolate, for at most `wait_ms`.
pub async fn take_within(key: &str, wait_ms: u64) -> Option<Turn> {
    let waiting = pin!(Waiting { key });
    match select(waiting, Delay::from(Duration::from_millis(wait_ms))).await {
        Either::Left((turn, _)) => Some(turn),
        Either::Right(_) => None,
    }
}

struct Waiting<'a> {
    key: &'a str,
}

impl Future for Waiting<'_> {
    type Output = Turn;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        BUSY.with_borrow_mut(|busy| match busy.get_mut(self.key) {
            Some(waiting) => {
                waiting.push(cx.waker().clone());
                Poll::Pending
            }
            None => {
                busy.insert(self.key.to_owned(), Vec::new());
                Poll::Ready(Turn { key: self.key.to_owned() })
            }
        })
    }
}
