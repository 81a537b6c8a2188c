//! The record of which named connections have work (core): what a Location tells the Directory
//! about its queue ([`WorkReport`]: the earliest time work is due, or none), and the rule for
//! when it tells it ([`Reported::needs_report`]), so that the cron nudges only the connections
//! with work due, at a cost of about one report when a queue fills and one when it empties.

use serde::{Deserialize, Serialize};

use crate::timestamp::UnixMillis;

/// A Location's queue as it tells the Directory (`POST /internal/work/{id}`), and as it answers
/// a nudge: when its earliest pending webhook is due (`None`: nothing pending), and a sequence
/// number that grows with each report of the one Location, so that an older report arriving
/// late never overwrites a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkReport {
    pub due_at: Option<UnixMillis>,
    pub seq: i64,
}

/// What a Location last told the Directory about its queue, as far as this instance knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reported {
    /// Nothing since this instance started (a restart reports again: harmless).
    #[default]
    Unknown,
    /// Told that nothing is pending.
    Empty,
    /// Told that work is due at this time.
    DueAt(UnixMillis),
}

impl Reported {
    /// What a report of `due_at` leaves the Directory knowing.
    pub fn of(due_at: Option<UnixMillis>) -> Reported {
        due_at.map_or(Reported::Empty, Reported::DueAt)
    }

    /// Whether the queue, whose earliest pending webhook is due at `due_at` (`None`: none
    /// pending), must be told at `now`: when it fills or empties, when its work falls due earlier
    /// than told, or when it moves later into the future (a retry waits: the cron need not nudge
    /// it until then). Work that was due and is still due is not told again, however the earliest
    /// time moves while a backlog drains.
    pub fn needs_report(self, due_at: Option<UnixMillis>, now: UnixMillis) -> bool {
        match (self, due_at) {
            (Reported::Unknown, _) => true,
            (Reported::Empty, next) => next.is_some(),
            (Reported::DueAt(_), None) => true,
            (Reported::DueAt(told), Some(next)) => next < told || (next > told && next > now),
        }
    }
}

/// The next sequence number after `last` at `now`: the clock in milliseconds, kept strictly
/// growing within an instance (and, as the clock moves on, across restarts).
pub fn next_seq(last: i64, now: UnixMillis) -> i64 {
    now.max(last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_that_fills_or_empties_is_told_once() {
        assert!(Reported::Unknown.needs_report(None, 0));
        assert!(Reported::Unknown.needs_report(Some(5), 0));
        assert!(Reported::Empty.needs_report(Some(5), 5));
        assert!(!Reported::Empty.needs_report(None, 5));
        assert!(Reported::DueAt(5).needs_report(None, 5));
    }

    #[test]
    fn work_still_due_is_not_told_again_while_a_backlog_drains() {
        // Told due at 100; later runs find the earliest at 150, 900 (all past at 1,000).
        assert!(!Reported::DueAt(100).needs_report(Some(150), 1_000));
        assert!(!Reported::DueAt(100).needs_report(Some(900), 1_000));
        assert!(!Reported::DueAt(100).needs_report(Some(100), 1_000));
    }

    #[test]
    fn work_due_sooner_or_a_retry_in_the_future_is_told() {
        assert!(Reported::DueAt(5_000).needs_report(Some(2_000), 1_000), "earlier");
        assert!(Reported::DueAt(100).needs_report(Some(61_000), 1_000), "a retry a minute away");
        assert!(!Reported::DueAt(61_000).needs_report(Some(61_000), 1_000));
    }

    #[test]
    fn sequence_numbers_grow() {
        assert_eq!(next_seq(0, 1_000), 1_000);
        assert_eq!(next_seq(1_000, 1_000), 1_001);
        assert_eq!(next_seq(1_001, 900), 1_002);
    }

    #[test]
    fn the_report_reads_what_it_writes() {
        let report = WorkReport { due_at: Some(7), seq: 9 };
        let text = serde_json::to_string(&report).unwrap();
        assert_eq!(text, r#"{"due_at":7,"seq":9}"#);
        assert_eq!(serde_json::from_str::<WorkReport>(&text).unwrap(), report);
        let empty: WorkReport = serde_json::from_str(r#"{"due_at":null,"seq":1}"#).unwrap();
        assert_eq!(Reported::of(empty.due_at), Reported::Empty);
    }
}
