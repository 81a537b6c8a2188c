//! Works queued webhooks: plans each one (core), sends its calls within the run's budget and the
//! location's rate limit, interprets the answers, and records the result: finished, retried later,
//! waiting for its contact, or parked. The first attempt right after a webhook is acknowledged,
//! every cron run and nothing else drive this.

use std::time::Duration;

use serde_json::json;
use worker::{console_log, Delay, Env};

use super::alerts::{self, AlertKind};
use super::contacts_client::ContactsClient;
use super::locks;
use super::rate_block;
use super::read_api::{caching_enabled, mark_contact_changed};
use super::runtime::now_ms;
use super::store::{Store, StoreError};
use super::tokens::{access_token, refresh_after_rejection, TokenError};
use super::turns;
use crate::config::Config;
use crate::contacts_api::{Answer, ApiRequest};
use crate::intake::event::{parse_event, Event};
use crate::secret::Secret;
use crate::sync::plan::{self, Applied, Failure, Job, Known, Next, RecordKey, Start, Write, MAX_CALLS};
use crate::sync::records::{
    contact_lock_key, due_key, parked_key, parse_index_key, webhook_key, DueMeta, Outcome, WebhookRecord,
    WebhookState, DUE_PREFIX, FINISHED_TTL_SECS, STALE_COUNT_KEY,
};
use crate::sync::report::{log_line, Decision as LogDecision, LogEntry, Subject};
use crate::sync::retry::{decide, decide_wait, Decision, Pacer};
use crate::timestamp::UnixMillis;

/// How long a contact lock holds at most (KV's shortest expiry); an attempt takes far less.
pub const LOCK_TTL_SECS: u64 = 60;
/// Tries of a first attempt to take a busy contact lock, and the pause between them.
const LOCK_TRIES: u32 = 4;
const LOCK_RETRY_MS: u64 = 250;
/// Longest rate-limit block a run waits out (well within a lock's lifetime); a longer one ends
/// the run.
const MAX_BLOCK_WAIT_MS: i64 = 15_000;
/// How long a first attempt waits for its contact's turn in this isolate (the events ahead of it
/// take one or two calls each; `waitUntil` allows 30 s after the answer).
const TURN_WAIT_MS: u64 = 10_000;
/// When an event whose contact stayed busy is due again.
const BUSY_RETRY_MS: i64 = 1_000;

/// How a run left one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Finished,
    Retry,
    Waiting,
    Parked,
    /// Not attempted now (its location is rate limited, or another event about its contact is
    /// being applied): due soon.
    Deferred,
    /// Not pending any more (another run finished it).
    Skipped,
    /// Leased but left for the next run: this run's budget ran out.
    Left,
}

/// One run's worker: config, budget, token and pacing shared by every webhook it attempts.
pub struct Runner {
    env: Env,
    pub store: Store,
    pub config: Config,
    token: Option<Secret>,
    pacer: Pacer,
    /// Contacts API calls made in this run.
    pub calls: u32,
    max_calls: u32,
    deadline: UnixMillis,
}

/// How driving a job ended; a failure keeps what KV must still learn (a note's or task's link in
/// doubt or adopted).
enum Driven {
    Applied(Applied),
    Wait(String),
    Failed(Failure, Option<Write>),
}

/// What to write for a webhook that is not done yet.
struct Reschedule {
    due_at: UnixMillis,
    counts: bool,
    waiting_since: Option<UnixMillis>,
    error: String,
    decision: LogDecision,
    /// What the run reports for it.
    ran: Ran,
}

impl Runner {
    pub fn new(env: Env, store: Store, config: Config, max_calls: u32, budget_ms: u32) -> Runner {
        let calls_per_10s = config.cron.calls_per_10s;
        Runner {
            env,
            store,
            config,
            token: None,
            pacer: Pacer::new(calls_per_10s, 10_000),
            calls: 0,
            max_calls,
            deadline: now_ms() + i64::from(budget_ms),
        }
    }

    /// Whether the run can afford another event (it may need up to `MAX_CALLS` calls).
    pub fn has_budget(&self) -> bool {
        self.calls + MAX_CALLS <= self.max_calls && now_ms() < self.deadline
    }

    /// Whether the run should attempt another event: it has the budget, and the location is not
    /// rate limited for long. A block that ends within [`MAX_BLOCK_WAIT_MS`] and the run's
    /// deadline is waited out here, so that a run does not rewrite every due webhook it could not
    /// send.
    pub async fn ready_for_next(&mut self) -> Result<bool, StoreError> {
        if !self.has_budget() {
            return Ok(false);
        }
        let now = now_ms();
        match self.location_blocked(now).await? {
            None => Ok(true),
            Some(until) if until < self.deadline && until - now <= MAX_BLOCK_WAIT_MS => {
                Delay::from(Duration::from_millis((until - now) as u64)).await;
                Ok(self.has_budget())
            }
            Some(_) => Ok(false),
        }
    }

    /// Attempts one pending webhook whose record is `record` (its first attempt, right after it
    /// was accepted): waits for the contact's turn in this isolate, then takes its lock in KV,
    /// waiting a little while another isolate applies an event about the contact, and leaves it
    /// due soon if the contact stays busy.
    pub async fn attempt(&mut self, webhook_id: &str, record: WebhookRecord) -> Result<Ran, StoreError> {
        let busy = "another event about this contact is being applied";
        let lock = contact_lock_key(&self.config.location_id, &record.sightmill_id);
        let Some(_turn) = turns::take_within(&lock, TURN_WAIT_MS).await else {
            return self.defer(webhook_id, record, now_ms() + BUSY_RETRY_MS, busy).await;
        };
        match locks::take_one(&self.store, &lock, LOCK_TTL_SECS, LOCK_TRIES, LOCK_RETRY_MS).await {
            Some(held) => {
                let ran = self.attempt_locked(webhook_id, record).await;
                locks::release(&self.store, &held).await;
                ran
            }
            None => self.defer(webhook_id, record, now_ms() + BUSY_RETRY_MS, busy).await,
        }
    }

    /// Attempts one pending webhook while the caller holds its contact's lock
    /// ([`contact_lock_key`]), so that no other event about the contact is applied meanwhile.
    pub async fn attempt_locked(
        &mut self,
        webhook_id: &str,
        record: WebhookRecord,
    ) -> Result<Ran, StoreError> {
        let started = now_ms();
        let WebhookState::Pending { body, due_at, .. } = &record.state else {
            return Ok(Ran::Skipped);
        };
        let old_due = due_key(*due_at, webhook_id);
        let event = match parse_event(body.as_bytes()) {
            Ok(event) => event,
            Err(error) => {
                let reason = format!("the stored body no longer parses: {error}");
                return self.park(webhook_id, record, &old_due, reason, 0, started).await;
            }
        };
        if let Some(until) = self.location_blocked(started).await? {
            return self.defer(webhook_id, record, until, "the location's rate limit is spent").await;
        }
        self.apply(webhook_id, record, &old_due, &event, started).await
    }

    /// Leaves a webhook unattempted until `due_at`, without counting a failure.
    async fn defer(
        &mut self,
        webhook_id: &str,
        record: WebhookRecord,
        due_at: UnixMillis,
        why: &str,
    ) -> Result<Ran, StoreError> {
        let WebhookState::Pending { due_at: old, waiting_since, .. } = &record.state else {
            return Ok(Ran::Skipped);
        };
        let (old_due, waiting_since) = (due_key(*old, webhook_id), *waiting_since);
        let later = Reschedule {
            due_at,
            counts: false,
            waiting_since,
            error: why.into(),
            decision: LogDecision::Retry,
            ran: Ran::Deferred,
        };
        self.reschedule(webhook_id, record, &old_due, later, 0, now_ms()).await
    }

    /// Plans the event against what KV knows and carries the plan out.
    async fn apply(
        &mut self,
        webhook_id: &str,
        record: WebhookRecord,
        old_due: &str,
        event: &Event,
        started: UnixMillis,
    ) -> Result<Ran, StoreError> {
        let location = self.config.location_id.clone();
        let known = read_known(&self.store, &plan::reads(event, &location)).await?;
        match plan::start(event, &known, &location, &self.config.mapping) {
            Start::Finish(applied) => self.finish(webhook_id, record, old_due, applied, 0, started).await,
            Start::Park(reason) => self.park(webhook_id, record, old_due, reason, 0, started).await,
            Start::Wait(reason) => self.wait(webhook_id, record, old_due, reason, 0, started).await,
            Start::Send(job, request) => {
                let calls_before = self.calls;
                let driven = self.drive(job, request, started).await?;
                let calls = self.calls - calls_before;
                match driven {
                    Driven::Applied(applied) => {
                        self.finish(webhook_id, record, old_due, applied, calls, started).await
                    }
                    Driven::Wait(reason) => {
                        self.wait(webhook_id, record, old_due, reason, calls, started).await
                    }
                    Driven::Failed(failure, kept) => {
                        if let Some(write) = &kept {
                            self.write(write).await?;
                        }
                        self.failed(webhook_id, record, old_due, failure, calls, started).await
                    }
                }
            }
        }
    }

    /// The event's contact (or task) is not in the Contacts API yet: look again soon, or park it
    /// once it has waited too long.
    async fn wait(
        &mut self,
        webhook_id: &str,
        record: WebhookRecord,
        old_due: &str,
        reason: String,
        calls: u32,
        started: UnixMillis,
    ) -> Result<Ran, StoreError> {
        let WebhookState::Pending { waiting_since, .. } = &record.state else {
            return Ok(Ran::Skipped);
        };
        let since = waiting_since.unwrap_or(started);
        let retry = &self.config.retry;
        match decide_wait(&reason, since, started, retry.schedule.first_ms(), retry.max_wait_secs) {
            Decision::RetryAt { due_at, .. } => {
                let later = Reschedule {
                    due_at,
                    counts: false,
                    waiting_since: Some(since),
                    error: reason,
                    decision: LogDecision::Wait,
                    ran: Ran::Waiting,
                };
                self.reschedule(webhook_id, record, old_due, later, calls, started).await
            }
            Decision::Park { reason } => self.park(webhook_id, record, old_due, reason, calls, started).await,
        }
    }

    /// Sends the job's requests until it is applied or has failed (the attempt began at `started`).
    async fn drive(
        &mut self,
        mut job: Job,
        mut request: ApiRequest,
        started: UnixMillis,
    ) -> Result<Driven, StoreError> {
        let mut calls = 0;
        let (mut refreshed, mut renew) = (false, false);
        let failed = |failure, job: &Job| Ok(Driven::Failed(failure, job.kept_on_failure(started)));
        loop {
            let token = match self.token(std::mem::take(&mut renew)).await {
                Ok(token) => token,
                Err(failure) => return failed(failure, &job),
            };
            self.pace().await;
            let client = ContactsClient {
                base_url: &self.config.api_base,
                token: &token,
                timeout_ms: self.config.api_timeout_ms,
            };
            let sent = client.send(&request).await;
            self.calls += 1;
            calls += 1;
            rate_block::heed(&self.store, &self.config.location_id, &sent.rate).await;
            if sent.answer == Answer::TokenRejected && !refreshed {
                (refreshed, renew) = (true, true);
                continue;
            }
            match job.on_answer(sent.answer) {
                Next::Send(next) if calls < MAX_CALLS => request = next,
                Next::Send(_) => {
                    let detail = "too many Contacts API calls for one event".into();
                    return failed(Failure::Retryable { detail }, &job);
                }
                Next::Applied(applied) => return Ok(Driven::Applied(applied)),
                Next::Wait(reason) => return Ok(Driven::Wait(reason)),
                Next::Failed(failure) => return failed(failure, &job),
            }
        }
    }

    /// The access token for the location, kept for the run; after a token 401, its replacement.
    async fn token(&mut self, renew: bool) -> Result<Secret, Failure> {
        let location = &self.config.location_id;
        let token = match (self.token.take(), renew) {
            (Some(token), false) => Ok(token),
            (Some(rejected), true) => {
                refresh_after_rejection(&self.env, &self.store, location, &rejected, now_ms()).await
            }
            (None, _) => access_token(&self.env, &self.store, location, now_ms()).await,
        };
        let token = token.map_err(token_failure)?;
        self.token = Some(token.clone());
        Ok(token)
    }

    /// Waits until the pacer allows the next call to the location.
    async fn pace(&mut self) {
        let now = now_ms();
        let slot = self.pacer.next_slot(now);
        if slot > now {
            Delay::from(Duration::from_millis((slot - now) as u64)).await;
        }
        self.pacer.record(slot.max(now));
    }

    /// When the location's rate-limit window is spent, until when.
    async fn location_blocked(&self, now: UnixMillis) -> Result<Option<UnixMillis>, StoreError> {
        rate_block::blocked(&self.store, &self.config.location_id, now).await
    }

    async fn failed(
        &mut self,
        id: &str,
        record: WebhookRecord,
        old_due: &str,
        failure: Failure,
        calls: u32,
        started: UnixMillis,
    ) -> Result<Ran, StoreError> {
        let WebhookState::Pending { failures, waiting_since, .. } = &record.state else {
            return Ok(Ran::Skipped);
        };
        let (failures, waiting_since) = (*failures, *waiting_since);
        if matches!(failure, Failure::TokenRejected | Failure::Misconfigured(_)) {
            let text = format!("calls for this location fail: {}", failure.describe());
            alerts::raise(
                &self.store,
                &self.config.alerts,
                AlertKind::TokenRenewal,
                &self.config.location_id,
                &text,
            )
            .await;
        }
        match decide(&failure, failures, &self.config.retry.schedule, now_ms(), jitter()) {
            Decision::RetryAt { due_at, counts } => {
                let later = Reschedule {
                    due_at,
                    counts,
                    waiting_since,
                    error: failure.describe(),
                    decision: LogDecision::Retry,
                    ran: Ran::Retry,
                };
                self.reschedule(id, record, old_due, later, calls, started).await
            }
            Decision::Park { reason } => self.park(id, record, old_due, reason, calls, started).await,
        }
    }

    /// Writes the webhook's new due time: its new `due:` key first, then the record, then drops
    /// the old key. A failure on the way leaves the record listed under a key it names (the old
    /// one), never a record the cron cannot find.
    async fn reschedule(
        &mut self,
        id: &str,
        mut record: WebhookRecord,
        old_due: &str,
        later: Reschedule,
        calls: u32,
        started: UnixMillis,
    ) -> Result<Ran, StoreError> {
        let WebhookState::Pending { body, failures, .. } = record.state else {
            return Ok(Ran::Skipped);
        };
        record.attempts += u32::from(calls > 0);
        record.state = WebhookState::Pending {
            body,
            due_at: later.due_at,
            failures: failures + u32::from(later.counts),
            last_error: Some(later.error.clone()),
            waiting_since: later.waiting_since,
        };
        let new_due = due_key(later.due_at, id);
        self.store.put_index(&new_due, Some(json!(DueMeta { accepted_at: record.accepted_at }))).await?;
        self.store.put(&webhook_key(id), &record, None).await?;
        if new_due != old_due {
            self.store.delete(old_due).await?;
        }
        let ran = later.ran;
        log(id, &record, later.decision, None, Some(&later.error), calls, started, Some(later.due_at));
        Ok(ran)
    }

    async fn finish(
        &mut self,
        id: &str,
        mut record: WebhookRecord,
        old_due: &str,
        applied: Applied,
        calls: u32,
        started: UnixMillis,
    ) -> Result<Ran, StoreError> {
        for write in &applied.writes {
            self.write(write).await?;
        }
        record.attempts += u32::from(calls > 0);
        record.state = WebhookState::Finished { finished_at: now_ms(), outcome: applied.outcome.clone() };
        self.store.put(&webhook_key(id), &record, Some(FINISHED_TTL_SECS)).await?;
        self.store.delete(old_due).await?;
        match &applied.outcome {
            Outcome::Stale => self.count_stale().await,
            Outcome::Applied { contact_id, .. } if caching_enabled(&self.env) => {
                mark_contact_changed(&self.store, contact_id.as_str()).await
            }
            _ => {}
        }
        log(id, &record, LogDecision::Finished, Some(&applied.outcome), None, calls, started, None);
        Ok(Ran::Finished)
    }

    /// Carries out one KV write the plan asked for.
    async fn write(&self, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::Put { key, value } => self.store.put(key, value, None).await,
            Write::ClearPrefix(prefix) => self.store.clear_prefix(prefix).await,
        }
    }

    /// Counts a dropped stale event; a lost increment is only a statistic, so errors are ignored.
    async fn count_stale(&self) {
        let count: u64 = self.store.get(STALE_COUNT_KEY).await.ok().flatten().unwrap_or(0);
        let _ = self.store.put(STALE_COUNT_KEY, &(count + 1), None).await;
    }

    /// Parks the webhook: its `parked:` key first, then the record, then drops its `due:` key, so
    /// that a dead letter is always listed; a `parked:` key whose record did not follow is skipped
    /// by the operator API, and the webhook stays due.
    async fn park(
        &mut self,
        id: &str,
        mut record: WebhookRecord,
        old_due: &str,
        reason: String,
        calls: u32,
        started: UnixMillis,
    ) -> Result<Ran, StoreError> {
        let WebhookState::Pending { body, .. } = record.state else {
            return Ok(Ran::Skipped);
        };
        let parked_at = now_ms();
        record.attempts += u32::from(calls > 0);
        record.state = WebhookState::Parked { body, parked_at, reason: reason.clone() };
        self.store.put_index(&parked_key(parked_at, id), None).await?;
        self.store.put(&webhook_key(id), &record, None).await?;
        self.store.delete(old_due).await?;
        log(id, &record, LogDecision::Parked, None, Some(&reason), calls, started, None);
        let text = format!("webhook {id} ({}) was parked: {reason}", record.event_type);
        alerts::raise(&self.store, &self.config.alerts, AlertKind::Parked, &self.config.location_id, &text)
            .await;
        Ok(Ran::Parked)
    }
}

/// Why no token could be had, as an attempt failure: the webhook stays pending in every case, and
/// the operator hears of it (`token_renewal` alert) unless the token endpoint was only unavailable.
fn token_failure(error: TokenError) -> Failure {
    match error {
        TokenError::Unavailable(detail) => Failure::Retryable { detail },
        TokenError::NotConfigured(detail) => Failure::Misconfigured(detail),
        TokenError::Refused(detail) => Failure::Misconfigured(format!("token renewal refused: {detail}")),
    }
}

/// What KV holds under the keys planning needs.
pub async fn read_known(store: &Store, reads: &plan::Reads) -> Result<Known, StoreError> {
    let mut known = Known { contact: store.get(&reads.contact).await?, ..Known::default() };
    match &reads.record {
        Some(RecordKey::Link(key)) => known.link = store.get(key).await?,
        Some(RecordKey::Tag(key)) => known.tag = store.get(key).await?,
        None => {}
    }
    Ok(known)
}

/// The queue as listed: how many are pending, which are due, and when the oldest was accepted.
pub struct QueueScan {
    pub pending: u32,
    /// `(due key, webhook id)` of the due ones, in due order.
    pub due: Vec<(String, String)>,
    pub oldest_accepted_at: Option<UnixMillis>,
}

/// Lists the whole queue; keeps at most `max_due` of the due entries.
pub async fn scan_queue(store: &Store, now: UnixMillis, max_due: usize) -> Result<QueueScan, StoreError> {
    let mut scan = QueueScan { pending: 0, due: Vec::new(), oldest_accepted_at: None };
    for key in store.list_all(DUE_PREFIX).await? {
        let Some((due_at, webhook_id)) = parse_index_key(&key.name) else {
            continue;
        };
        scan.pending += 1;
        let meta = key.metadata.and_then(|m| serde_json::from_value::<DueMeta>(m).ok());
        if let Some(at) = meta.map(|m| m.accepted_at) {
            scan.oldest_accepted_at = Some(scan.oldest_accepted_at.map_or(at, |oldest| oldest.min(at)));
        }
        if due_at <= now && scan.due.len() < max_due {
            let webhook_id = webhook_id.to_owned();
            scan.due.push((key.name, webhook_id));
        }
    }
    Ok(scan)
}

#[allow(clippy::too_many_arguments)]
fn log(
    id: &str,
    record: &WebhookRecord,
    decision: LogDecision,
    outcome: Option<&Outcome>,
    error: Option<&str>,
    calls: u32,
    started: UnixMillis,
    due_at: Option<UnixMillis>,
) {
    let entry = LogEntry {
        subject: Subject::of(id, record),
        attempt: record.attempts,
        decision,
        outcome,
        error,
        api_calls: calls,
        latency_ms: now_ms() - started,
        due_at,
    };
    console_log!("{}", log_line(&entry));
}

/// A random number in [0, 1) for retry jitter.
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
