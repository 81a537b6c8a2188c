//! The location's activity over the last 24 hours, for the operator console's charts: counts per
//! minute for the last hour and per hour for the last day, with the webhook-to-applied latency as
//! a small histogram per bucket (percentiles from it, never from a list of samples).
//!
//! Pure: the Durable Object counts into one [`Bucket`] in memory (the minute under way), and once
//! that minute is over writes it into two rows of a ring ([`minute_slot`], [`hour_slot`]): at
//! most 60 minute rows and 24 hour rows, each slot overwritten when its time comes round again,
//! so nothing is ever deleted and an idle location writes nothing. [`chart`] reads the rows (and
//! the minute under way) back into the series the operator API serves.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::timestamp::UnixMillis;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Minute buckets kept (the last hour) and hour buckets kept (the last day).
pub const MINUTES: i64 = 60;
pub const HOURS: i64 = 24;

/// What is counted, in the order the counts are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Accepted,
    Applied,
    Retried,
    Waiting,
    Parked,
    /// Finished without a change: skipped, unchanged, or dropped as stale.
    Skipped,
    ApiCalls,
    Api429,
}

/// The series' names, in [`Count`] order.
pub const SERIES: [&str; 8] =
    ["accepted", "applied", "retried", "waiting", "parked", "skipped", "api_calls", "api_429"];

/// Upper edges (ms) of the latency histogram's bins; one more bin holds everything above.
const LATENCY_EDGES_MS: [i64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000, 7_200_000,
    21_600_000, 43_200_000, 86_400_000,
];

/// One minute's or one hour's counts, from `start` (ms). Stored as one flat JSON array of
/// integers: the start, the counts in [`SERIES`] order, then the latency bins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    pub start: UnixMillis,
    counts: [u64; SERIES.len()],
    /// Webhook-to-applied latencies, one bin per [`LATENCY_EDGES_MS`] edge and one above.
    latency: Vec<u64>,
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let counts = self.counts.iter().chain(&self.latency).map(|n| *n as i64);
        let flat: Vec<i64> = std::iter::once(self.start).chain(counts).collect();
        flat.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Bucket {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Bucket, D::Error> {
        let flat = Vec::<i64>::deserialize(deserializer)?;
        let bins = LATENCY_EDGES_MS.len() + 1;
        if flat.len() != 1 + SERIES.len() + bins || flat[1..].iter().any(|n| *n < 0) {
            return Err(serde::de::Error::custom("not a metrics bucket"));
        }
        let mut bucket = Bucket::new(flat[0]);
        for (to, from) in bucket.counts.iter_mut().chain(bucket.latency.iter_mut()).zip(&flat[1..]) {
            *to = *from as u64;
        }
        Ok(bucket)
    }
}

impl Bucket {
    pub fn new(start: UnixMillis) -> Bucket {
        Bucket { start, counts: [0; SERIES.len()], latency: vec![0; LATENCY_EDGES_MS.len() + 1] }
    }

    pub fn add(&mut self, count: Count, by: u64) {
        self.counts[count as usize] += by;
    }

    /// One applied webhook, `latency_ms` after it was accepted.
    pub fn applied_after(&mut self, latency_ms: i64) {
        let bin =
            LATENCY_EDGES_MS.iter().position(|edge| latency_ms <= *edge).unwrap_or(LATENCY_EDGES_MS.len());
        self.latency[bin] += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|n| *n == 0) && self.latency.iter().all(|n| *n == 0)
    }

    /// Adds `other`'s counts to this bucket's (keeping this bucket's start).
    pub fn merge(&mut self, other: &Bucket) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.latency.resize(LATENCY_EDGES_MS.len() + 1, 0);
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            *mine += theirs;
        }
    }

    /// The latency (ms) under which a share `q` of the applied webhooks fell: the upper edge of
    /// the bin it falls in (above the last edge: that edge). `None` when nothing was applied.
    pub fn percentile(&self, q: f64) -> Option<i64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bin, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_EDGES_MS[bin.min(LATENCY_EDGES_MS.len() - 1)]);
            }
        }
        None
    }
}

/// The minute under way, counted in memory until it is over.
#[derive(Debug, Default)]
pub struct UnderWay {
    bucket: Option<Bucket>,
}

impl UnderWay {
    /// Carries on with a minute counted before a restart (over or not: counting folds it).
    pub fn resume(bucket: Option<Bucket>) -> UnderWay {
        UnderWay { bucket }
    }

    /// Counts into the minute of `now`; returns the earlier minute when it is over, to be folded
    /// into the stored rows.
    pub fn count(&mut self, now: UnixMillis, change: impl FnOnce(&mut Bucket)) -> Option<Bucket> {
        let done = self.take_done(now);
        change(self.bucket.get_or_insert_with(|| Bucket::new(minute_of(now))));
        done
    }

    /// The minute counted, if it is over at `now`.
    pub fn take_done(&mut self, now: UnixMillis) -> Option<Bucket> {
        let over = self.bucket.as_ref().is_some_and(|bucket| bucket.start < minute_of(now));
        over.then(|| self.bucket.take()).flatten()
    }

    pub fn current(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }
}

pub fn minute_of(at: UnixMillis) -> UnixMillis {
    at.div_euclid(MINUTE_MS) * MINUTE_MS
}

pub fn hour_of(at: UnixMillis) -> UnixMillis {
    at.div_euclid(HOUR_MS) * HOUR_MS
}

/// The stored row a minute bucket goes to: 0-59, its minute of the hour.
pub fn minute_slot(start: UnixMillis) -> i64 {
    start.div_euclid(MINUTE_MS).rem_euclid(MINUTES)
}

/// The stored row an hour bucket goes to: 60-83, after the minutes.
pub fn hour_slot(start: UnixMillis) -> i64 {
    MINUTES + start.div_euclid(HOUR_MS).rem_euclid(HOURS)
}

/// What a finished minute `done` makes of the two rows it is added to (each as stored, if any):
/// a row from an earlier round of the ring is replaced, one of the same bucket is added to.
pub fn fold(done: &Bucket, minute_row: Option<Bucket>, hour_row: Option<Bucket>) -> (Bucket, Bucket) {
    let into = |row: Option<Bucket>, start: UnixMillis| {
        let mut bucket = row.filter(|row| row.start == start).unwrap_or_else(|| Bucket::new(start));
        bucket.merge(done);
        bucket
    };
    (into(minute_row, done.start), into(hour_row, hour_of(done.start)))
}

/// Whether a stored row's slot holds a minute (else an hour).
pub fn is_minute_slot(slot: i64) -> bool {
    (0..MINUTES).contains(&slot)
}

/// The charts' data at `now` from the stored rows (by slot) and the minute under way: `minutes`
/// (the last 60, oldest first) and `hours` (the last 24, oldest first), each as `{"start": [ms...],
/// "<series>": [n...], "p50_ms": [ms|null...], "p99_ms": [...]}`. Rows of an earlier round of the
/// ring are left out.
pub fn chart(rows: &[(i64, Bucket)], under_way: Option<&Bucket>, now: UnixMillis) -> Value {
    let ring = |last: UnixMillis, step: i64, len: i64| -> Vec<Bucket> {
        (0..len).rev().map(|back| Bucket::new(last - back * step)).collect()
    };
    let mut minutes = ring(minute_of(now), MINUTE_MS, MINUTES);
    let mut hours = ring(hour_of(now), HOUR_MS, HOURS);
    let add = |buckets: &mut [Bucket], start: UnixMillis, row: &Bucket| {
        if let Some(bucket) = buckets.iter_mut().find(|bucket| bucket.start == start) {
            bucket.merge(row);
        }
    };
    for (slot, row) in rows {
        let buckets = if is_minute_slot(*slot) { &mut minutes } else { &mut hours };
        add(buckets, row.start, row);
    }
    if let Some(pending) = under_way {
        add(&mut minutes, pending.start, pending);
        add(&mut hours, hour_of(pending.start), pending);
    }
    json!({ "minutes": series(&minutes), "hours": series(&hours) })
}

fn series(buckets: &[Bucket]) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("start".into(), buckets.iter().map(|b| b.start).collect());
    for (index, name) in SERIES.iter().enumerate() {
        out.insert((*name).into(), buckets.iter().map(|b| b.counts[index]).collect());
    }
    out.insert("p50_ms".into(), buckets.iter().map(|b| b.percentile(0.5)).collect());
    out.insert("p99_ms".into(), buckets.iter().map(|b| b.percentile(0.99)).collect());
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // on the hour
    const MIN: i64 = MINUTE_MS;

    fn counted(start: i64, accepted: u64) -> Bucket {
        let mut bucket = Bucket::new(start);
        bucket.add(Count::Accepted, accepted);
        bucket
    }

    #[test]
    fn a_minute_is_handed_over_only_once_it_is_over() {
        let mut under_way = UnderWay::default();
        assert_eq!(under_way.count(T0 + 1_000, |b| b.add(Count::Accepted, 1)), None);
        assert_eq!(under_way.count(T0 + 59_999, |b| b.add(Count::Accepted, 1)), None);
        assert_eq!(under_way.take_done(T0 + 59_999), None);
        let done = under_way.count(T0 + MIN, |b| b.add(Count::Applied, 1)).unwrap();
        assert_eq!(done, counted(T0, 2));
        assert_eq!(under_way.current().unwrap().start, T0 + MIN);
        assert!(under_way.take_done(T0 + 2 * MIN).is_some());
        assert_eq!(under_way.take_done(T0 + 3 * MIN), None, "idle: nothing to write");
    }

    #[test]
    fn a_bucket_is_stored_as_one_flat_array() {
        let mut bucket = counted(T0, 3);
        bucket.applied_after(80);
        let text = serde_json::to_string(&bucket).unwrap();
        assert!(text.starts_with(&format!("[{T0},3,0,0,0,0,0,0,0,1,")), "{text}");
        assert_eq!(serde_json::from_str::<Bucket>(&text).unwrap(), bucket);
        assert!(serde_json::from_str::<Bucket>("[1,2,3]").is_err());
        assert!(serde_json::from_str::<Bucket>(&text.replace(",3,", ",-3,")).is_err());
    }

    #[test]
    fn slots_form_a_ring_of_sixty_minutes_and_twenty_four_hours() {
        assert_eq!(minute_slot(T0), minute_slot(T0 + 60 * MIN));
        assert_ne!(minute_slot(T0), minute_slot(T0 + MIN));
        assert_eq!(hour_slot(T0), hour_slot(T0 + 24 * HOUR_MS));
        assert!(is_minute_slot(minute_slot(T0 + 59 * MIN)) && !is_minute_slot(hour_slot(T0)));
        let slots: std::collections::HashSet<i64> = (0..MINUTES)
            .map(|m| minute_slot(T0 + m * MIN))
            .chain((0..HOURS).map(|h| hour_slot(T0 + h * HOUR_MS)))
            .collect();
        assert_eq!(slots.len(), 84);
    }

    #[test]
    fn folding_adds_to_the_same_bucket_and_replaces_an_old_round() {
        let done = counted(T0 + 5 * MIN, 3);
        let (minute, hour) = fold(&done, Some(counted(T0 + 5 * MIN, 2)), Some(counted(T0, 10)));
        assert_eq!((minute, hour), (counted(T0 + 5 * MIN, 5), counted(T0, 13)));
        let (minute, hour) =
            fold(&done, Some(counted(T0 - 55 * MIN, 7)), Some(counted(T0 - 24 * HOUR_MS, 9)));
        assert_eq!((minute, hour), (counted(T0 + 5 * MIN, 3), counted(T0, 3)));
    }

    #[test]
    fn percentiles_are_the_upper_edge_of_their_bin() {
        let mut bucket = Bucket::new(T0);
        assert_eq!(bucket.percentile(0.5), None);
        for _ in 0..98 {
            bucket.applied_after(80);
        }
        bucket.applied_after(4_000);
        bucket.applied_after(100_000_000);
        assert_eq!(bucket.percentile(0.5), Some(100));
        assert_eq!(bucket.percentile(0.99), Some(5_000));
        assert_eq!(bucket.percentile(1.0), Some(86_400_000));
    }

    #[test]
    fn the_chart_shows_the_last_hour_by_minute_and_the_last_day_by_hour() {
        let now = T0 + 90 * MIN + 30_000;
        let rows = vec![
            (minute_slot(T0 + 89 * MIN), counted(T0 + 89 * MIN, 4)),
            (minute_slot(T0 + 20 * MIN), counted(T0 + 20 * MIN, 6)), // older than an hour
            (hour_slot(T0), counted(T0, 6)),
            (hour_slot(T0 + HOUR_MS), counted(T0 + HOUR_MS, 4)),
            (hour_slot(T0 - 30 * HOUR_MS), counted(T0 - 30 * HOUR_MS, 1)), // a day ago
        ];
        let under_way = counted(T0 + 90 * MIN, 1);
        let chart = chart(&rows, Some(&under_way), now);
        let minutes = &chart["minutes"]["accepted"];
        assert_eq!(minutes.as_array().unwrap().len(), 60);
        assert_eq!(minutes[59], 1);
        assert_eq!(minutes[58], 4);
        assert_eq!(minutes.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum::<u64>(), 5);
        assert_eq!(chart["minutes"]["start"][59], T0 + 90 * MIN);
        let hours = &chart["hours"]["accepted"];
        assert_eq!(hours.as_array().unwrap().len(), 24);
        assert_eq!((hours[22].as_u64(), hours[23].as_u64()), (Some(6), Some(5)));
        assert_eq!(hours.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum::<u64>(), 11);
        assert_eq!(chart["hours"]["p50_ms"][23], Value::Null);
    }
}
