//! Works the location's queue inside its Durable Object: takes the due webhooks that head their
//! contact's order (one event per contact at a time, in SightMill's order), plans each (core),
//! sends its calls paced to the location's rate limit, interprets the answers, and writes what
//! [`crate::sync::queue`] says the record becomes, with the plan's id-map writes, in one
//! transaction. A finished webhook's record is then copied to its KV idempotency key. The
//! Durable Object's alarm (right after a webhook is accepted) and each cron wake drive this.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::json;
use worker::Delay;

use super::actions::{self, Budget, Stopped};
use super::alerts::{self, AlertKind};
use super::custom_fields::{self, Prepared};
use super::db::{DbError, DbResult, Listed};
use super::log::Log;
use super::reads::{caching_enabled, mark_contact_changed};
use super::tokens::token_failure;
use super::Writer;
use crate::config::Config;
use crate::contacts_api::{Answer, ApiRequest};
use crate::intake::event::{parse_event, Change, Event};
use crate::shell::platform::kv::Kv;
use crate::shell::platform::runtime::now_ms;
use crate::sync::mapping::Mapping;
use crate::sync::metrics::Count;
use crate::sync::plan::{self, Applied, Failure, Job, Next, Start, Write, MAX_CALLS};
use crate::sync::queue::{self, Later, FINISHED_TTL_MS};
use crate::sync::records::{CronRun, Outcome, TagState, WebhookRecord, WebhookState};
use crate::sync::report::{log_line, Decision as LogDecision, LogEntry, Subject};
use crate::sync::retry::{decide, decide_wait, Decision};
use crate::timestamp::UnixMillis;

/// Events applied at once (each about a different contact): enough to keep the location at its
/// rate limit while answers take a few hundred milliseconds.
const WORKERS: usize = 4;
/// Longest rate-limit block a run waits out; a longer one ends the run (an alarm resumes it).
const MAX_BLOCK_WAIT_MS: i64 = 15_000;
/// How often an idle worker looks again while others still apply events (the next event of
/// their contact may become due when they finish).
const IDLE_POLL_MS: u64 = 20;

/// An event the plan applied: what it wrote, its calls, and its tag's state before (tag events).
struct Done {
    applied: Applied,
    calls: u32,
    tag: Option<TagState>,
}

/// How a run left one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Finished,
    Retry,
    Waiting,
    Parked,
}

/// How driving a job ended; a failure keeps what the id maps must still learn (a note's or
/// task's link in doubt or adopted).
enum Driven {
    Applied(Applied),
    Wait(String),
    Failed(Failure, Option<Write>),
}

/// One run: its budget and tally, shared by its workers.
pub struct Run<'a> {
    writer: &'a Writer,
    config: &'a Config,
    deadline: UnixMillis,
    tally: std::cell::RefCell<CronRun>,
    /// Attempts under way: each may still make up to `MAX_CALLS` calls.
    in_flight: std::cell::Cell<u32>,
    /// Whether `config.mapping` is the live mapping (saved when the run began).
    live_at_start: bool,
}

impl<'a> Run<'a> {
    pub fn new(writer: &'a Writer, config: &'a Config, now: UnixMillis) -> Run<'a> {
        let deadline = now + i64::from(config.cron.time_budget_ms);
        Run {
            writer,
            config,
            deadline,
            tally: std::cell::RefCell::new(CronRun { started_at: now, ..CronRun::default() }),
            in_flight: std::cell::Cell::new(0),
            live_at_start: matches!(writer.live_mapping(), Ok(Some(_))),
        }
    }

    /// The mapping in force for an attempt starting now: a live mapping saved (or removed) while
    /// the run was under way applies to the next event at once, not from the next run. `Err`: the
    /// live mapping cannot be used (nothing is applied with another).
    fn mapping_now(&self) -> std::result::Result<Cow<'a, Mapping>, String> {
        match self.writer.live_mapping()? {
            Some(live) => Ok(Cow::Owned(live.mapping.clone())),
            None if !self.live_at_start => Ok(Cow::Borrowed(&self.config.mapping)),
            None => {
                let deployed = self.writer.identity().config(&self.writer.env).map(|config| config.mapping);
                deployed.map(Cow::Owned).map_err(|_| "the deployed mapping could not be read".to_owned())
            }
        }
    }

    /// Works what is due until nothing is, or the budget (time, calls) is spent; returns the tally.
    pub async fn work(self) -> CronRun {
        let workers = (0..WORKERS).map(|_| self.worker());
        futures_util::future::join_all(workers).await;
        let mut tally = self.tally.into_inner();
        tally.finished_at = now_ms();
        tally
    }

    fn calls(&self) -> u32 {
        self.tally.borrow().api_calls
    }

    /// Whether another attempt fits: the calls made, those the attempts under way may still
    /// make, and its own stay within the run's calls (the platform's subrequests per invocation),
    /// and its time is not up.
    fn has_budget(&self) -> bool {
        let reserved = MAX_CALLS * (self.in_flight.get() + 1);
        self.calls() + reserved <= self.config.cron.max_api_calls && now_ms() < self.deadline
    }

    /// One worker: takes the next eligible webhook, applies it, and again.
    async fn worker(&self) {
        while self.has_budget() {
            if !self.wait_out_block().await {
                break;
            }
            let next = match self.writer.take_next(now_ms()) {
                Ok(next) => next,
                Err(error) => return log_storage_error(&self.writer.log, "take the next webhook", &error),
            };
            let Some(Listed { id, record }) = next else {
                if self.writer.any_busy() {
                    Delay::from(Duration::from_millis(IDLE_POLL_MS)).await;
                    continue;
                }
                break;
            };
            let contact = record.sightmill_id.clone();
            self.in_flight.set(self.in_flight.get() + 1);
            let ran = self.attempt(&id, record).await;
            self.in_flight.set(self.in_flight.get() - 1);
            self.writer.release(&contact);
            match ran {
                Ok(ran) => self.count(ran),
                Err(error) => {
                    return log_storage_error(&self.writer.log, &format!("record webhook {id}"), &error)
                }
            }
        }
    }

    /// Waits out a short rate-limit block; `false` when the block outlasts what a run waits for.
    async fn wait_out_block(&self) -> bool {
        let now = now_ms();
        match self.writer.pacing.blocked(now) {
            None => true,
            Some(until) if until < self.deadline && until - now <= MAX_BLOCK_WAIT_MS => {
                Delay::from(Duration::from_millis((until - now) as u64)).await;
                true
            }
            Some(_) => {
                self.tally.borrow_mut().deferred += 1;
                false
            }
        }
    }

    fn count(&self, ran: Ran) {
        let mut tally = self.tally.borrow_mut();
        match ran {
            Ran::Finished => tally.finished += 1,
            Ran::Retry => tally.retried += 1,
            Ran::Waiting => tally.waiting += 1,
            Ran::Parked => tally.parked += 1,
        }
    }

    /// Attempts one pending webhook; its contact is this worker's until it returns.
    async fn attempt(&self, id: &str, record: WebhookRecord) -> DbResult<Ran> {
        let started = now_ms();
        let WebhookState::Pending { body, .. } = &record.state else {
            return Ok(Ran::Finished);
        };
        let event = match parse_event(body.as_bytes()) {
            Ok(event) => event,
            Err(error) => {
                let reason = format!("the stored body no longer parses: {error}");
                return self.park(id, record, reason, 0, started, vec![]).await;
            }
        };
        let location = &self.config.location_id;
        let known = match self.writer.db.known(&plan::reads(&event, location)) {
            Ok(known) => known,
            Err(DbError::Unreadable(what, error)) => {
                let failure =
                    Failure::Retryable { detail: format!("the stored record {what} is unreadable: {error}") };
                return self.failed(id, record, failure, 0, started, None).await;
            }
            Err(error) => return Err(error),
        };
        if let Some(at) =
            plan::lookup_not_before(&known, self.config.api_timeout_ms).filter(|at| *at > started)
        {
            let error =
                "a create in doubt may still be applied by the API; it is looked up once it could have been"
                    .to_owned();
            let later = Later { due_at: at, counts: false, waiting_since: None, error };
            return self
                .reschedule(id, record, later, 0, started, LogDecision::Retry, None)
                .await
                .map(|_| Ran::Retry);
        }
        let current = match self.mapping_now() {
            Ok(current) => current,
            Err(problem) => {
                let failure = Failure::Misconfigured(format!("the mapping cannot be used: {problem}"));
                return self.failed(id, record, failure, 0, started, None).await;
            }
        };
        let mapping = match &event.change {
            Change::ContactUpsert(contact) => {
                custom_fields::prepare(self.writer, self.config, &current, Some(&contact.fields)).await
            }
            _ => Prepared::Ready(Cow::Borrowed(&*current)),
        };
        let mapping = match mapping {
            Prepared::Ready(mapping) => mapping,
            Prepared::Retry(failure) => return self.failed(id, record, failure, 0, started, None).await,
            Prepared::Park(reason) => return self.park(id, record, reason, 0, started, vec![]).await,
        };
        let mut record = record;
        if let Change::ContactUpsert(contact) = &event.change {
            record.notes = mapping.left_out(&contact.fields);
        }
        match plan::start(&event, &known, location, &mapping) {
            Start::Finish(applied) => self.finish(id, record, applied, 0, started).await,
            Start::Park(reason) => self.park(id, record, reason, 0, started, vec![]).await,
            Start::Wait(reason) => self.wait(id, record, reason, 0, started).await,
            Start::Send(job, request) => {
                let (driven, calls) = self.drive(job, request, started).await;
                match driven {
                    Driven::Applied(applied) => {
                        let done = Done { applied, calls, tag: known.tag.clone() };
                        self.act_then_finish(id, record, &event, &mapping, done, started).await
                    }
                    Driven::Wait(reason) => self.wait(id, record, reason, calls, started).await,
                    Driven::Failed(failure, kept) => {
                        self.failed(id, record, failure, calls, started, kept).await
                    }
                }
            }
        }
    }

    /// Sends the job's requests until it is applied or has failed; returns how it ended and the
    /// calls it made. A resend after a renewed token is not one of the event's own calls.
    async fn drive(&self, mut job: Job, mut request: ApiRequest, started: UnixMillis) -> (Driven, u32) {
        let (mut calls, mut sent_total) = (0, 0);
        let mut rejected = None;
        // When the last intent was written: the create it announces was sent right after.
        let mut sent_at = started;
        let failed = |failure, job: &Job, sent_at| Driven::Failed(failure, job.kept_on_failure(sent_at));
        loop {
            let token = match self
                .writer
                .tokens
                .access_token(&self.writer.env, &self.writer.db, rejected.as_ref())
                .await
            {
                Ok(token) => token,
                Err(error) => return (failed(token_failure(error), &job, sent_at), sent_total),
            };
            let now = now_ms();
            if let Some(intent) = job.intent(now) {
                sent_at = now;
                if let Err(error) = self.writer.db.write(&intent) {
                    let detail = format!("the create's intent could not be recorded: {error}");
                    return (failed(Failure::Retryable { detail }, &job, sent_at), sent_total);
                }
            }
            let answer = self.writer.send(self.config, &token, &request).await;
            self.tally.borrow_mut().api_calls += 1;
            sent_total += 1;
            if answer == Answer::TokenRejected && rejected.is_none() {
                rejected = Some(token);
                continue;
            }
            calls += 1;
            match job.on_answer(answer) {
                Next::Send(next) if calls < MAX_CALLS => request = next,
                Next::Send(_) => {
                    let detail = "too many Contacts API calls for one event".into();
                    return (failed(Failure::Retryable { detail }, &job, sent_at), sent_total);
                }
                Next::Applied(applied) => return (Driven::Applied(applied), sent_total),
                Next::Wait(reason) => return (Driven::Wait(reason), sent_total),
                Next::Failed(failure) => return (failed(failure, &job, sent_at), sent_total),
            }
        }
    }

    /// Sends the actions the event's rules fire ([`actions`]), then finishes it; when one cannot
    /// be sent the event is retried or parked, keeping a contact's link (a retry must update the
    /// contact it made, not make another) but not the status or tag the rules compare with, so
    /// that the retry fires them again and the ledger sends only what is left.
    async fn act_then_finish(
        &self,
        id: &str,
        mut record: WebhookRecord,
        event: &Event,
        mapping: &Mapping,
        done: Done,
        started: UnixMillis,
    ) -> DbResult<Ran> {
        let Done { mut applied, calls, tag } = done;
        let watched = matches!(
            event.change,
            Change::ContactUpsert(_) | Change::TagAdded { .. } | Change::TagRemoved { .. }
        );
        let contact = match &applied.outcome {
            Outcome::Applied { contact_id, .. } if watched && !mapping.actions().is_empty() => {
                contact_id.clone()
            }
            _ => return self.finish(id, record, applied, calls, started).await,
        };
        let spent = std::cell::Cell::new(0);
        let fits = || {
            let others = MAX_CALLS * self.in_flight.get().saturating_sub(1);
            self.calls() + others < self.config.cron.max_api_calls
        };
        let spend = || {
            spent.set(spent.get() + 1);
            self.tally.borrow_mut().api_calls += 1;
        };
        let budget = Budget { fits: &fits, spend: &spend };
        let acted = actions::act(self.writer, self.config, mapping, event, &contact, tag, budget).await;
        let calls = calls + spent.get();
        match acted {
            Ok(acted) => {
                record.notes.extend(acted.notes);
                applied.writes.extend(acted.writes);
                self.finish(id, record, applied, calls, started).await
            }
            Err(stopped) => {
                if matches!(event.change, Change::ContactUpsert(_)) {
                    for write in &applied.writes {
                        self.writer.db.write(write)?;
                    }
                }
                match stopped {
                    Stopped::Failed(failure) => self.failed(id, record, failure, calls, started, None).await,
                    Stopped::Park(reason) => self.park(id, record, reason, calls, started, vec![]).await,
                }
            }
        }
    }

    async fn finish(
        &self,
        id: &str,
        record: WebhookRecord,
        applied: Applied,
        calls: u32,
        started: UnixMillis,
    ) -> DbResult<Ran> {
        let now = now_ms();
        let contact = record.sightmill_id.clone();
        let record = queue::finish(record, applied.outcome.clone(), now, calls > 0);
        let db = &self.writer.db;
        for write in &applied.writes {
            db.write(write)?;
        }
        db.put_webhook(id, &record)?;
        db.bump(counter_of(&applied.outcome))?;
        let accepted_at = record.accepted_at;
        self.writer.count(|bucket| match &applied.outcome {
            Outcome::Applied { .. } => {
                bucket.add(Count::Applied, 1);
                bucket.applied_after(now - accepted_at);
            }
            Outcome::Stale | Outcome::Skipped { .. } => bucket.add(Count::Skipped, 1),
            Outcome::Discarded => {}
        });
        if let Outcome::Applied { contact_id, .. } = &applied.outcome {
            self.wake_waiting(&contact, now)?;
            if caching_enabled(&self.writer.env) {
                mark_contact_changed(db, contact_id.as_str(), now)?;
            }
        }
        log_webhook(
            &self.writer.log,
            id,
            &record,
            LogDecision::Finished,
            Some(&applied.outcome),
            None,
            calls,
            started,
            None,
        );
        remember(self.writer, id, &record).await;
        Ok(Ran::Finished)
    }

    /// The contact's events that waited for it are due now: it was just created (or changed).
    fn wake_waiting(&self, contact: &str, now: UnixMillis) -> DbResult<()> {
        for Listed { id, record } in self.writer.db.waiting_on(contact, now)? {
            let woken = queue::wake(record.clone(), now);
            if woken != record {
                self.writer.db.put_webhook(&id, &woken)?;
            }
        }
        Ok(())
    }

    async fn wait(
        &self,
        id: &str,
        record: WebhookRecord,
        reason: String,
        calls: u32,
        started: UnixMillis,
    ) -> DbResult<Ran> {
        let WebhookState::Pending { waiting_since, .. } = &record.state else {
            return Ok(Ran::Finished);
        };
        let since = waiting_since.unwrap_or(started);
        let retry = &self.config.retry;
        match decide_wait(&reason, since, started, retry.schedule.first_ms(), retry.max_wait_secs) {
            Decision::RetryAt { due_at, .. } => {
                let later = Later { due_at, counts: false, waiting_since: Some(since), error: reason };
                self.reschedule(id, record, later, calls, started, LogDecision::Wait, None)
                    .await
                    .map(|_| Ran::Waiting)
            }
            Decision::Park { reason } => self.park(id, record, reason, calls, started, vec![]).await,
        }
    }

    async fn failed(
        &self,
        id: &str,
        record: WebhookRecord,
        failure: Failure,
        calls: u32,
        started: UnixMillis,
        kept: Option<Write>,
    ) -> DbResult<Ran> {
        let WebhookState::Pending { failures, .. } = &record.state else {
            return Ok(Ran::Finished);
        };
        let failures = *failures;
        if matches!(failure, Failure::TokenRejected | Failure::Misconfigured(_)) {
            let text = format!("calls for this location fail: {}", failure.describe());
            alerts::raise(
                &self.writer.db,
                &self.writer.log,
                &self.config.alerts,
                AlertKind::TokenRenewal,
                &text,
            )
            .await;
        }
        if matches!(failure, Failure::RateLimited { .. }) {
            self.writer.db.bump("rate_limited")?;
        }
        let kept: Vec<Write> = kept.into_iter().collect();
        match decide(&failure, failures, &self.config.retry.schedule, now_ms(), jitter()) {
            Decision::RetryAt { due_at, counts } => {
                let later = Later { due_at, counts, waiting_since: None, error: failure.describe() };
                self.reschedule(id, record, later, calls, started, LogDecision::Retry, Some(kept))
                    .await
                    .map(|_| Ran::Retry)
            }
            Decision::Park { reason } => self.park(id, record, reason, calls, started, kept).await,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn reschedule(
        &self,
        id: &str,
        record: WebhookRecord,
        later: Later,
        calls: u32,
        started: UnixMillis,
        decision: LogDecision,
        kept: Option<Vec<Write>>,
    ) -> DbResult<()> {
        let (due_at, error) = (later.due_at, later.error.clone());
        let record = queue::retry_later(record, later, calls > 0);
        let db = &self.writer.db;
        for write in kept.iter().flatten() {
            db.write(write)?;
        }
        db.put_webhook(id, &record)?;
        let (counter, count) = match decision {
            LogDecision::Wait => ("waiting", Count::Waiting),
            _ => ("retried", Count::Retried),
        };
        db.bump(counter)?;
        self.writer.count(|bucket| bucket.add(count, 1));
        log_webhook(
            &self.writer.log,
            id,
            &record,
            decision,
            None,
            Some(&error),
            calls,
            started,
            Some(due_at),
        );
        Ok(())
    }

    async fn park(
        &self,
        id: &str,
        record: WebhookRecord,
        reason: String,
        calls: u32,
        started: UnixMillis,
        kept: Vec<Write>,
    ) -> DbResult<Ran> {
        let record = queue::park(record, reason.clone(), now_ms(), calls > 0);
        let db = &self.writer.db;
        for write in &kept {
            db.write(write)?;
        }
        db.put_webhook(id, &record)?;
        db.bump("parked")?;
        self.writer.count(|bucket| bucket.add(Count::Parked, 1));
        log_webhook(
            &self.writer.log,
            id,
            &record,
            LogDecision::Parked,
            None,
            Some(&reason),
            calls,
            started,
            None,
        );
        let text = format!("webhook {id} ({}) was parked: {reason}", record.event_type);
        alerts::raise(db, &self.writer.log, &self.config.alerts, AlertKind::Parked, &text).await;
        Ok(Ran::Parked)
    }
}

/// The counter a finished outcome adds to.
fn counter_of(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Applied { .. } => "applied",
        Outcome::Stale => "stale_dropped",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Discarded => "discarded",
    }
}

/// Copies a finished webhook's record to its KV idempotency key, so that a redelivery is
/// answered at the edge. Best effort: without it a redelivery costs a trip to the Durable
/// Object, which answers the same.
pub async fn remember(writer: &Writer, id: &str, record: &WebhookRecord) {
    let ttl_secs = (FINISHED_TTL_MS / 1_000) as u64;
    let written = match Kv::open(&writer.env) {
        Ok(kv) => kv.put(&writer.webhook_key(id), record, Some(ttl_secs)).await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = written {
        writer.log.info(json!({"msg": "idempotency key not written", "webhook_id": id, "error": error}));
    }
}

pub fn log_storage_error(log: &Log, doing: &str, error: &DbError) {
    log.error(json!({"msg": "storage error", "doing": doing, "error": error.to_string()}));
}

#[allow(clippy::too_many_arguments)]
fn log_webhook(
    log: &Log,
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
    log.info(log_line(&entry));
}

/// A random number in [0, 1) for retry jitter.
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
