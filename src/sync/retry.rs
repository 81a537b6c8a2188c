//! Retry policy, as pure functions of the failure, the attempt count and `now`: when a failed
//! event is tried again, when it is parked as a dead letter, and how fast a run may send to a
//! location without spending its rate limit.

use thiserror::Error;

use crate::sync::plan::Failure;
use crate::timestamp::UnixMillis;

/// 1 min, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 24 h (in seconds): then the event is parked.
const DEFAULT_DELAYS_SECS: [u64; 8] = [60, 300, 1_800, 7_200, 18_000, 36_000, 36_000, 86_400];
/// How long an event may wait for its contact (or task) before it is parked.
pub const DEFAULT_MAX_WAIT_SECS: u64 = 24 * 60 * 60;
/// Longest pause a `Retry-After` may impose.
const MAX_RETRY_AFTER_SECS: u64 = 60 * 60;

/// Delays between retryable failures, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(Vec<u64>);

#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not a duration like 90s, 5m, 2h or 1d")]
pub struct ScheduleError(String);

impl Schedule {
    /// Parses `1m,5m,30m,…` (units s, m, h, d).
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let delays = text
            .split(',')
            .map(str::trim)
            .map(|part| parse_duration(part).ok_or_else(|| ScheduleError(part.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err(ScheduleError(text.to_owned()));
        }
        Ok(Schedule(delays))
    }

    /// The first delay, in milliseconds: also how soon a waiting event looks again.
    pub fn first_ms(&self) -> i64 {
        self.0[0] as i64 * 1_000
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule(DEFAULT_DELAYS_SECS.to_vec())
    }
}

/// Seconds in `90s`, `5m`, `2h`, `1d` (at least one second, at most 7 days).
pub fn parse_duration(text: &str) -> Option<u64> {
    // The unit is the last character, which need not be one byte long.
    let (split, _) = text.char_indices().last()?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    let seconds = number.parse::<u64>().ok()?.checked_mul(scale)?;
    (1..=7 * 86_400).contains(&seconds).then_some(seconds)
}

/// What happens to an event after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again at `due_at`; `counts` says whether it moves along the schedule.
    RetryAt { due_at: UnixMillis, counts: bool },
    /// Give up until an operator replays it.
    Park { reason: String },
}

/// Decides after `failure`, the event having failed `failures` times before: a refusal parks at
/// once; a retryable failure moves along `schedule` and parks at its end. A 429 and a token or
/// deployment failure never count and never park: the event looks again after the `Retry-After`
/// (a minute when none) or after the schedule's first delay, however long the fix takes (the
/// `token_renewal` and `pending_age` alerts tell the operator). `jitter` is a random number in
/// [0, 1): the schedule's delays are spread by ±20% so that a burst does not retry in step.
pub fn decide(
    failure: &Failure,
    failures: u32,
    schedule: &Schedule,
    now: UnixMillis,
    jitter: f64,
) -> Decision {
    match failure {
        Failure::Rejected { .. } => Decision::Park { reason: failure.describe() },
        Failure::RateLimited { retry_after_secs } => {
            let secs = retry_after_secs.unwrap_or(60).clamp(1, MAX_RETRY_AFTER_SECS);
            Decision::RetryAt { due_at: now + secs as i64 * 1_000, counts: false }
        }
        Failure::TokenRejected | Failure::Misconfigured(_) => {
            Decision::RetryAt { due_at: now + schedule.first_ms(), counts: false }
        }
        Failure::Retryable { .. } => match schedule.0.get(failures as usize) {
            Some(delay) => Decision::RetryAt { due_at: now + jittered_ms(*delay, jitter), counts: true },
            None => Decision::Park {
                reason: format!(
                    "gave up after {} failed attempts; last: {}",
                    failures + 1,
                    failure.describe()
                ),
            },
        },
    }
}

/// What happens to an event waiting (since `since`) for its contact or task: it looks again
/// after `recheck_ms`, until it has waited `max_wait_secs`.
pub fn decide_wait(
    reason: &str,
    since: UnixMillis,
    now: UnixMillis,
    recheck_ms: i64,
    max_wait_secs: u64,
) -> Decision {
    if now - since >= max_wait_secs as i64 * 1_000 {
        return Decision::Park { reason: format!("waited {} s: {reason}", (now - since) / 1_000) };
    }
    Decision::RetryAt { due_at: now + recheck_ms, counts: false }
}

fn jittered_ms(delay_secs: u64, jitter: f64) -> i64 {
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    (delay_secs as f64 * 1_000.0 * factor).round() as i64
}

/// What the API's `X-RateLimit-*` and `Retry-After` headers said about a location.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub status: u16,
    /// `X-RateLimit-Max`: calls allowed per interval.
    pub max: Option<u64>,
    pub remaining: Option<u64>,
    pub interval_ms: Option<u64>,
    pub daily_remaining: Option<u64>,
    pub retry_after_secs: Option<u64>,
}

/// Until when a location must not be sent to, if the headers say its window is spent.
pub fn blocked_until(headers: &RateHeaders, now: UnixMillis) -> Option<UnixMillis> {
    let interval = headers.interval_ms.unwrap_or(10_000).min(60_000) as i64;
    if headers.daily_remaining == Some(0) {
        return Some(now + 3_600_000);
    }
    if headers.status == 429 {
        let wait =
            headers.retry_after_secs.map_or(interval, |secs| secs.min(MAX_RETRY_AFTER_SECS) as i64 * 1_000);
        return Some(now + wait.max(1_000));
    }
    (headers.remaining == Some(0)).then_some(now + interval)
}

/// Spreads one run's calls to a location so that at most `limit` go in any `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacer {
    limit: u32,
    window_ms: i64,
    sent: std::collections::VecDeque<UnixMillis>,
}

impl Pacer {
    pub fn new(limit: u32, window_ms: i64) -> Pacer {
        Pacer { limit: limit.max(1), window_ms, sent: Default::default() }
    }

    /// When the next call may go (`now` or later); the caller waits until then and then calls
    /// [`Pacer::record`].
    pub fn next_slot(&mut self, now: UnixMillis) -> UnixMillis {
        while self.sent.front().is_some_and(|at| *at + self.window_ms <= now) {
            self.sent.pop_front();
        }
        if (self.sent.len() as u32) < self.limit {
            return now;
        }
        self.sent[self.sent.len() - self.limit as usize] + self.window_ms
    }

    pub fn record(&mut self, at: UnixMillis) {
        self.sent.push_back(at);
    }

    /// Calls that may still go in the window that ends at `now`.
    pub fn room(&mut self, now: UnixMillis) -> u32 {
        self.next_slot(now);
        self.limit.saturating_sub(self.sent.len() as u32)
    }

    /// Changes the limit (the API announced another), keeping the calls already sent.
    pub fn set_limit(&mut self, limit: u32, window_ms: i64) {
        (self.limit, self.window_ms) = (limit.max(1), window_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    #[test]
    fn schedules_parse_and_refuse_nonsense() {
        assert_eq!(Schedule::default().0, vec![60, 300, 1_800, 7_200, 18_000, 36_000, 36_000, 86_400]);
        assert_eq!(
            Schedule::parse("1m,5m,30m,2h,5h,10h,10h,24h"),
            Ok(Schedule::default()),
            "as docs/configuration.md says"
        );
        assert_eq!(Schedule::parse("90s, 1d").unwrap().0, vec![90, 86_400]);
        for bad in ["", "5", "5x", "m", "0s", "8d", "-1m", "1m,,2m", "1m,5µ", "é", "5мs"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_retry_decision_follows_the_table() {
        let schedule = Schedule::parse("1m,5m").unwrap();
        let retryable = Failure::Retryable { detail: "HTTP 503: down".into() };
        let table = vec![
            (retryable.clone(), 0, 0.5, Decision::RetryAt { due_at: NOW + 60_000, counts: true }),
            (retryable.clone(), 0, 0.0, Decision::RetryAt { due_at: NOW + 48_000, counts: true }),
            (retryable.clone(), 0, 1.0, Decision::RetryAt { due_at: NOW + 72_000, counts: true }),
            (retryable.clone(), 1, 0.5, Decision::RetryAt { due_at: NOW + 300_000, counts: true }),
            (
                retryable,
                2,
                0.5,
                Decision::Park { reason: "gave up after 3 failed attempts; last: HTTP 503: down".into() },
            ),
            (Failure::TokenRejected, 0, 0.0, Decision::RetryAt { due_at: NOW + 60_000, counts: false }),
            (Failure::TokenRejected, 2, 0.5, Decision::RetryAt { due_at: NOW + 60_000, counts: false }),
            (
                Failure::Misconfigured("the Contacts API refused the Version header".into()),
                99,
                1.0,
                Decision::RetryAt { due_at: NOW + 60_000, counts: false },
            ),
            (
                Failure::RateLimited { retry_after_secs: Some(7) },
                5,
                0.5,
                Decision::RetryAt { due_at: NOW + 7_000, counts: false },
            ),
            (
                Failure::RateLimited { retry_after_secs: None },
                0,
                0.5,
                Decision::RetryAt { due_at: NOW + 60_000, counts: false },
            ),
            (
                Failure::RateLimited { retry_after_secs: Some(999_999) },
                0,
                0.5,
                Decision::RetryAt { due_at: NOW + 3_600_000, counts: false },
            ),
            (
                Failure::Rejected { api_status: 400, message: "bad".into() },
                0,
                0.5,
                Decision::Park { reason: "HTTP 400: bad".into() },
            ),
        ];
        for (failure, failures, jitter, expected) in table {
            assert_eq!(
                decide(&failure, failures, &schedule, NOW, jitter),
                expected,
                "{failure:?} after {failures}"
            );
        }
    }

    #[test]
    fn waiting_rechecks_then_parks() {
        assert_eq!(
            decide_wait("no contact", NOW - 1_000, NOW, 60_000, 60),
            Decision::RetryAt { due_at: NOW + 60_000, counts: false }
        );
        assert_eq!(
            decide_wait("no contact", NOW - 60_000, NOW, 60_000, 60),
            Decision::Park { reason: "waited 60 s: no contact".into() }
        );
    }

    #[test]
    fn rate_headers_block_a_location_until_its_window_resets() {
        let spent =
            RateHeaders { status: 200, remaining: Some(0), interval_ms: Some(10_000), ..Default::default() };
        assert_eq!(blocked_until(&spent, NOW), Some(NOW + 10_000));
        let fine = RateHeaders { status: 200, remaining: Some(5), ..Default::default() };
        assert_eq!(blocked_until(&fine, NOW), None);
        let told = RateHeaders { status: 429, retry_after_secs: Some(3), ..Default::default() };
        assert_eq!(blocked_until(&told, NOW), Some(NOW + 3_000));
        let untold = RateHeaders { status: 429, interval_ms: Some(10_000), ..Default::default() };
        assert_eq!(blocked_until(&untold, NOW), Some(NOW + 10_000));
        let daily =
            RateHeaders { status: 200, remaining: Some(50), daily_remaining: Some(0), ..Default::default() };
        assert_eq!(blocked_until(&daily, NOW), Some(NOW + 3_600_000));
    }

    #[test]
    fn the_pacer_keeps_every_window_under_its_limit() {
        let mut pacer = Pacer::new(3, 10_000);
        let mut sent = vec![];
        let mut now = 0;
        for _ in 0..10 {
            now = pacer.next_slot(now);
            pacer.record(now);
            sent.push(now);
        }
        assert_eq!(sent, vec![0, 0, 0, 10_000, 10_000, 10_000, 20_000, 20_000, 20_000, 30_000]);
        for (i, at) in sent.iter().enumerate() {
            let in_window = sent.iter().filter(|t| **t >= *at && **t < at + 10_000).count();
            assert!(in_window <= 3, "window at {i}");
        }
    }
}
