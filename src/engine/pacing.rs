//! The location's rate limit, as the one writer sees it: a pacer that keeps calls under the limit
//! the API announces (`X-RateLimit-Max` per `X-RateLimit-Interval-Milliseconds`, capped by
//! `RATE_LIMIT_PER_10S`), and the block a spent window or a 429 sets. Every Contacts API call of
//! the location, write or read, goes through here, so nothing else needs to know. Kept in memory:
//! a restarted Durable Object learns it again from the next answer.

use std::cell::RefCell;

use crate::sync::retry::{blocked_until, Pacer, RateHeaders};
use crate::timestamp::UnixMillis;

/// Room left between the pacer's window and the API's: requests arrive later than they are sent,
/// by a varying amount, and the API counts them by arrival.
const WINDOW_MARGIN_MS: i64 = 250;
const DEFAULT_WINDOW_MS: i64 = 10_000;

pub struct Pacing {
    cap: u32,
    state: RefCell<State>,
}

struct State {
    pacer: Pacer,
    /// What the API last announced: (max, window ms).
    announced: Option<(u32, i64)>,
    blocked_until: UnixMillis,
    /// The API's daily remaining as last announced, and when that was heard.
    daily: Option<(u64, UnixMillis)>,
}

/// Calls of the day an import leaves to live webhooks: below this, the import stops for the day.
pub const IMPORT_DAILY_RESERVE: u64 = 1_000;
/// Calls of each window an import leaves free, so that a live webhook never waits a window.
pub const IMPORT_WINDOW_RESERVE: u32 = crate::sync::plan::MAX_CALLS;
const DAY_MS: UnixMillis = 86_400_000;

impl Pacing {
    /// `cap`: the most calls per 10 s the operator allows (`RATE_LIMIT_PER_10S`).
    pub fn new(cap: u32) -> Pacing {
        let pacer = Pacer::new(cap, DEFAULT_WINDOW_MS + WINDOW_MARGIN_MS);
        Pacing { cap, state: RefCell::new(State { pacer, announced: None, blocked_until: 0, daily: None }) }
    }

    /// The calls per 10 s the location may send now: the API's announced limit, capped by the
    /// operator's.
    pub fn calls_per_10s(&self) -> u32 {
        match self.state.borrow().announced {
            Some((max, window)) => {
                ((u64::from(max) * 10_000) / window.max(1) as u64).min(u64::from(self.cap)) as u32
            }
            None => self.cap,
        }
    }

    /// Until when nothing may be sent, if that is now.
    pub fn blocked(&self, now: UnixMillis) -> Option<UnixMillis> {
        Some(self.state.borrow().blocked_until).filter(|until| *until > now)
    }

    /// Whether an import may start an attempt now: the window has room beyond what it leaves to
    /// live webhooks, and the day's calls are not down to their reserve.
    pub fn import_may_send(&self, now: UnixMillis) -> bool {
        self.import_stopped_until(now).is_none()
            && self.blocked(now).is_none()
            && self.state.borrow_mut().pacer.room(now) > IMPORT_WINDOW_RESERVE
    }

    /// Until when an import stops for the day: the day's remaining calls, as last announced, are
    /// down to [`IMPORT_DAILY_RESERVE`]; it tries again at the next UTC midnight (the API's day).
    pub fn import_stopped_until(&self, now: UnixMillis) -> Option<UnixMillis> {
        let (remaining, heard_at) = self.state.borrow().daily?;
        let next_day = (heard_at.div_euclid(DAY_MS) + 1) * DAY_MS;
        (remaining <= IMPORT_DAILY_RESERVE && now < next_day).then_some(next_day)
    }

    /// Takes the next slot for a call: when it may be sent (`now` or later).
    pub fn take_slot(&self, now: UnixMillis) -> UnixMillis {
        let mut state = self.state.borrow_mut();
        let slot = state.pacer.next_slot(now).max(now);
        state.pacer.record(slot);
        slot
    }

    /// Learns from an answer's headers: the announced limit, and a block when the window (or the
    /// day) is spent or the answer was a 429.
    pub fn heed(&self, rate: &RateHeaders, now: UnixMillis) {
        let mut state = self.state.borrow_mut();
        if let Some(remaining) = rate.daily_remaining {
            state.daily = Some((remaining, now));
        }
        if let (Some(max), Some(interval)) = (rate.max, rate.interval_ms) {
            let announced = (max.clamp(1, 10_000) as u32, interval.clamp(1_000, 60_000) as i64);
            if state.announced != Some(announced) {
                let (max, window) = announced;
                let cap = (u64::from(self.cap) * window as u64).div_ceil(10_000) as u32;
                state.pacer.set_limit(max.min(cap), window + WINDOW_MARGIN_MS);
                state.announced = Some(announced);
            }
        }
        // A window spent by this location's own calls is already waited out by the pacer (its
        // next slot is when the oldest of them leaves the window); blocking for a whole interval
        // from the last answer would leave most of a window unused. A window spent while the
        // pacer still has room was spent by someone else: block.
        let own_window_spent = rate.status != 429
            && rate.daily_remaining != Some(0)
            && rate.remaining == Some(0)
            && state.pacer.next_slot(now) > now;
        if let Some(until) = blocked_until(rate, now).filter(|_| !own_window_spent) {
            state.blocked_until = state.blocked_until.max(until);
        }
    }
}
