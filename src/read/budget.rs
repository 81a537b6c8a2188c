//! The read API's share of a location's rate limit: in any 10 s, reads may take at most
//! `READ_SHARE_PERCENT` of `RATE_LIMIT_PER_10S` at one location, and one read key at most
//! `READ_KEY_SHARE_PERCENT` of it, so that the rest is always there for webhook work. The
//! location's Durable Object keeps the [`ReadWindow`] and asks it before each read it sends; a
//! read over budget is answered 429 with `Retry-After` and sends nothing.

use crate::config::{self, ConfigError};

/// The window the budget counts over (the Contacts API's own).
pub const WINDOW_MS: i64 = 10_000;
pub const SHARE_SETTING: &str = "READ_SHARE_PERCENT";
pub const KEY_SHARE_SETTING: &str = "READ_KEY_SHARE_PERCENT";

/// Reads allowed per [`WINDOW_MS`]: at the location, and by one key there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    pub location: u32,
    pub per_key: u32,
}

impl ReadBudget {
    /// The budget out of `calls_per_10s` (`RATE_LIMIT_PER_10S`), from the two settings (percent,
    /// 1-100; defaults 50 and 25). At least one read each.
    pub fn from_settings(
        calls_per_10s: u32,
        share: Option<String>,
        key_share: Option<String>,
    ) -> Result<ReadBudget, ConfigError> {
        let share = config::number(share, SHARE_SETTING, 50, 1..=100)?;
        let key_share = config::number(key_share, KEY_SHARE_SETTING, 25, 1..=100)?;
        let of = |percent: u32| (calls_per_10s * percent / 100).max(1);
        Ok(ReadBudget { location: of(share), per_key: of(key_share).min(of(share)) })
    }
}

/// The reads sent in the last [`WINDOW_MS`], by key (its fingerprint), oldest first.
#[derive(Debug, Default)]
pub struct ReadWindow {
    sent: Vec<(String, i64)>,
}

impl ReadWindow {
    /// Takes one read for `key` at `now` when the budget allows it; otherwise when the next one
    /// would be allowed (nothing is taken).
    pub fn take(&mut self, budget: ReadBudget, key: &str, now: i64) -> Result<(), i64> {
        self.sent.retain(|(_, at)| now - at < WINDOW_MS);
        let by_key: Vec<i64> = self.sent.iter().filter(|(by, _)| by == key).map(|(_, at)| *at).collect();
        let full = |times: &[i64], cap: u32| (times.len() >= cap as usize).then(|| times[0] + WINDOW_MS);
        let all: Vec<i64> = self.sent.iter().map(|(_, at)| *at).collect();
        if let Some(until) = full(&by_key, budget.per_key).or_else(|| full(&all, budget.location)) {
            return Err(until);
        }
        self.sent.push((key.to_owned(), now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(share: &str, key_share: &str) -> ReadBudget {
        ReadBudget::from_settings(100, Some(share.into()), Some(key_share.into())).unwrap()
    }

    #[test]
    fn the_budget_is_a_share_of_the_rate_limit() {
        assert_eq!(
            ReadBudget::from_settings(100, None, None).unwrap(),
            ReadBudget { location: 50, per_key: 25 }
        );
        assert_eq!(
            budget("10", "100"),
            ReadBudget { location: 10, per_key: 10 },
            "a key never exceeds the location"
        );
        assert_eq!(ReadBudget::from_settings(1, None, None).unwrap(), ReadBudget { location: 1, per_key: 1 });
        for bad in ["0", "101", "half"] {
            let error = ReadBudget::from_settings(100, Some(bad.into()), None).unwrap_err();
            assert!(error.to_string().contains(SHARE_SETTING), "{error}");
        }
    }

    #[test]
    fn a_key_and_the_location_are_each_held_to_their_share_for_10_seconds() {
        let budget = ReadBudget { location: 3, per_key: 2 };
        let mut window = ReadWindow::default();
        assert_eq!(window.take(budget, "key:a", 0), Ok(()));
        assert_eq!(window.take(budget, "key:a", 100), Ok(()));
        assert_eq!(window.take(budget, "key:a", 200), Err(WINDOW_MS), "key a has had its two");
        assert_eq!(window.take(budget, "key:b", 300), Ok(()));
        assert_eq!(window.take(budget, "key:c", 400), Err(WINDOW_MS), "the location has had its three");
        assert_eq!(window.take(budget, "key:a", WINDOW_MS), Ok(()), "the first read left the window");
        assert_eq!(window.take(budget, "key:c", WINDOW_MS + 100), Ok(()));
    }
}
