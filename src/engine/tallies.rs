//! The location's running counts, kept by its one writer beside every change of a webhook's
//! place in the queue, so that neither a run nor a status call reads the queue to count it:
//! pending, parked and unreadable webhooks, the pending ones by the minute they were accepted
//! (the oldest pending, within a minute) and by the minute they are due (due now, to the minute),
//! and the totals since the location's first webhook (accepted, applied, retried, ...).
//!
//! The store keeps them in memory and writes them as one row, marked unsettled while changes
//! are only in memory and settled at the end of each run: a writer that restarts with an
//! unsettled row counts its queue again ([`Tallies::recount`]), once. The totals of a run cut
//! short by a restart are lost; they are statistics, not records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sync::queue::{Place, QueueState};
use crate::timestamp::UnixMillis;

const MINUTE_MS: i64 = 60_000;

/// A total the location keeps (the operator status's `counters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counter {
    Accepted,
    Applied,
    StaleDropped,
    /// Contact updates that sent nothing: the fields were what the contact's link last sent.
    Unchanged,
    Skipped,
    Discarded,
    Retried,
    Waiting,
    Parked,
    RateLimited,
    ApiCalls,
    Api429,
}

impl Counter {
    pub const ALL: [Counter; 12] = [
        Counter::Accepted,
        Counter::Applied,
        Counter::StaleDropped,
        Counter::Unchanged,
        Counter::Skipped,
        Counter::Discarded,
        Counter::Retried,
        Counter::Waiting,
        Counter::Parked,
        Counter::RateLimited,
        Counter::ApiCalls,
        Counter::Api429,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Accepted => "accepted",
            Counter::Applied => "applied",
            Counter::StaleDropped => "stale_dropped",
            Counter::Unchanged => "unchanged",
            Counter::Skipped => "skipped",
            Counter::Discarded => "discarded",
            Counter::Retried => "retried",
            Counter::Waiting => "waiting",
            Counter::Parked => "parked",
            Counter::RateLimited => "rate_limited",
            Counter::ApiCalls => "api_calls",
            Counter::Api429 => "api_429",
        }
    }

    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|counter| counter.as_str() == name)
    }
}

/// The running counts and totals, as kept in memory and stored in one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tallies {
    pub pending: i64,
    pub parked: i64,
    pub unreadable: i64,
    /// Pending webhooks by the minute (start, ms) they were accepted in: how many, and the
    /// earliest acceptance among those that entered it (which may have left since: the oldest
    /// pending then reads less than a minute too old).
    accepted_minutes: BTreeMap<i64, (i64, UnixMillis)>,
    /// Pending webhooks by the minute (start, ms) they are due in.
    due_minutes: BTreeMap<i64, i64>,
    /// Totals by [`Counter::as_str`].
    totals: BTreeMap<String, i64>,
    /// The next webhook's place in arrival order.
    pub next_seq: i64,
    /// Whether the stored row is exact: `false` while changes are kept only in memory.
    pub settled: bool,
}

/// What the status shows of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueFigures {
    pub pending: i64,
    /// Pending and due by the end of the current minute.
    pub due_now: i64,
    pub parked: i64,
    pub unreadable: i64,
    /// When the oldest pending webhook was accepted (less than a minute too early at worst).
    pub oldest_accepted_at: Option<UnixMillis>,
}

fn minute(at: UnixMillis) -> i64 {
    at.div_euclid(MINUTE_MS) * MINUTE_MS
}

fn shift(minutes: &mut BTreeMap<i64, i64>, at: UnixMillis, by: i64) {
    let count = minutes.entry(minute(at)).or_default();
    *count += by;
    if *count <= 0 {
        minutes.remove(&minute(at));
    }
}

impl Tallies {
    /// Counts from every row of the queue: `(place, accepted_at)` of each webhook not forgotten.
    pub fn recount(rows: impl IntoIterator<Item = (Place, UnixMillis)>, totals: Tallies) -> Tallies {
        let mut tallies = Tallies { totals: totals.totals, next_seq: totals.next_seq, ..Tallies::default() };
        for (place, accepted_at) in rows {
            tallies.enter(place, accepted_at);
        }
        tallies
    }

    /// A webhook takes its first place (accepted) with arrival number [`Tallies::next_seq`].
    pub fn accept(&mut self, place: Place, accepted_at: UnixMillis) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.enter(place, accepted_at);
        self.add(Counter::Accepted, 1);
        self.settled = false;
        seq
    }

    /// A webhook moves from `before` to `after`.
    pub fn change(&mut self, before: Place, after: Place, accepted_at: UnixMillis) {
        if before != after {
            self.leave(before, accepted_at);
            self.enter(after, accepted_at);
            self.settled = false;
        }
    }

    fn enter(&mut self, place: Place, accepted_at: UnixMillis) {
        self.step(place, accepted_at, 1);
    }

    fn leave(&mut self, place: Place, accepted_at: UnixMillis) {
        self.step(place, accepted_at, -1);
    }

    fn step(&mut self, place: Place, accepted_at: UnixMillis, by: i64) {
        match place.state {
            QueueState::Pending => {
                self.pending += by;
                self.shift_accepted(accepted_at, by);
                shift(&mut self.due_minutes, place.at, by);
            }
            QueueState::Parked => self.parked += by,
            QueueState::Unreadable => self.unreadable += by,
            QueueState::Finished => {}
        }
    }

    fn shift_accepted(&mut self, accepted_at: UnixMillis, by: i64) {
        let (count, earliest) = self.accepted_minutes.entry(minute(accepted_at)).or_insert((0, accepted_at));
        *count += by;
        *earliest = (*earliest).min(accepted_at);
        if *count <= 0 {
            self.accepted_minutes.remove(&minute(accepted_at));
        }
    }

    pub fn add(&mut self, counter: Counter, by: i64) {
        if by != 0 {
            *self.totals.entry(counter.as_str().to_owned()).or_default() += by;
            self.settled = false;
        }
    }

    pub fn total(&self, counter: Counter) -> i64 {
        self.totals.get(counter.as_str()).copied().unwrap_or(0)
    }

    /// Every total, by name (the operator status's `counters`).
    pub fn totals(&self) -> serde_json::Map<String, serde_json::Value> {
        self.totals.iter().map(|(name, value)| (name.clone(), (*value).into())).collect()
    }

    pub fn figures(&self, now: UnixMillis) -> QueueFigures {
        QueueFigures {
            pending: self.pending,
            due_now: self.due_minutes.range(..=minute(now)).map(|(_, count)| count).sum(),
            parked: self.parked,
            unreadable: self.unreadable,
            oldest_accepted_at: self.accepted_minutes.values().next().map(|(_, earliest)| *earliest),
        }
    }

    /// The totals carried into a stored row written by an earlier version (its `counters` rows).
    pub fn with_totals(totals: impl IntoIterator<Item = (String, i64)>) -> Tallies {
        Tallies { totals: totals.into_iter().collect(), ..Tallies::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(at: UnixMillis) -> Place {
        Place { state: QueueState::Pending, at }
    }

    #[test]
    fn counts_follow_each_move_and_match_a_recount() {
        let mut tallies = Tallies::default();
        assert_eq!(tallies.accept(pending(1_000), 1_000), 0);
        assert_eq!(tallies.accept(pending(70_000), 70_000), 1);
        tallies.change(pending(1_000), pending(200_000), 1_000);
        tallies.change(pending(70_000), Place { state: QueueState::Parked, at: 80_000 }, 70_000);
        let figures = tallies.figures(90_000);
        assert_eq!((figures.pending, figures.parked, figures.due_now), (1, 1, 0));
        assert_eq!(figures.oldest_accepted_at, Some(1_000));
        assert_eq!(tallies.figures(200_000).due_now, 1);
        let rows = [(pending(200_000), 1_000), (Place { state: QueueState::Parked, at: 80_000 }, 70_000)];
        let again = Tallies::recount(rows, tallies.clone());
        assert_eq!(again.figures(90_000), tallies.figures(90_000));
        assert_eq!(again.total(Counter::Accepted), 2);
    }

    #[test]
    fn finishing_the_oldest_moves_the_oldest_on() {
        let mut tallies = Tallies::default();
        tallies.accept(pending(0), 0);
        tallies.accept(pending(130_000), 130_000);
        tallies.change(pending(0), Place { state: QueueState::Finished, at: 5 }, 0);
        assert_eq!(tallies.figures(130_000).oldest_accepted_at, Some(130_000));
        assert_eq!(tallies.pending, 1);
    }

    #[test]
    fn an_unreadable_record_leaves_the_pending_count_for_its_own() {
        let mut tallies = Tallies::default();
        tallies.accept(pending(0), 0);
        tallies.change(pending(0), Place { state: QueueState::Unreadable, at: 0 }, 0);
        assert_eq!((tallies.pending, tallies.unreadable, tallies.figures(0).due_now), (0, 1, 0));
    }

    #[test]
    fn totals_round_trip_through_the_stored_row() {
        let mut tallies = Tallies::default();
        tallies.add(Counter::ApiCalls, 3);
        tallies.settled = true;
        let stored: Tallies = serde_json::from_value(serde_json::to_value(&tallies).unwrap()).unwrap();
        assert_eq!(stored, tallies);
        assert_eq!(stored.totals()["api_calls"], 3);
        assert_eq!(Counter::from_name("api_429"), Some(Counter::Api429));
    }
}
