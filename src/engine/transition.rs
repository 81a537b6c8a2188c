//! The one step that records how an attempt left a webhook: the record the queue's rules say it
//! becomes ([`crate::sync::queue`]), written with the id-map writes that go with it, the running
//! counts, the totals and the charts, in one transaction (no `await` between the writes); then
//! its one log line, and what leaves the location after it (a parked event's alert, a finished
//! one's idempotency copy). Also the decisions that lead there: a failure retried or parked
//! ([`crate::sync::retry::decide`]), a wait rechecked or given up.

use super::ports::{AlertKind, Api, Clock, Lane, Outside, Store, StoreResult};
use super::tallies::Counter;
use super::{log_storage_error, Attempt, Ran, Run};
use crate::sync::metrics::Count;
use crate::sync::plan::{Applied, Failure, Write};
use crate::sync::queue::{self, Later};
use crate::sync::records::{Outcome, WebhookState};
use crate::sync::report::{log_line, Decision as LogDecision, LogEntry, Subject};
use crate::sync::retry::{decide, decide_wait, Decision};
use crate::timestamp::UnixMillis;

/// How an attempt leaves its webhook, with the id-map writes that go with it.
pub(super) enum Transition {
    /// Done: the outcome and the writes that record it.
    Finish(Applied),
    /// Due again later: a retry (`decision` [`LogDecision::Retry`]) or a wait; `kept` is what the
    /// id maps must still learn from the attempt (a link in doubt, say).
    Later { later: Later, decision: LogDecision, kept: Vec<Write> },
    /// A dead letter until an operator replays it.
    Park { reason: String, kept: Vec<Write> },
}

impl Transition {
    pub(super) fn park(reason: String) -> Transition {
        Transition::Park { reason, kept: vec![] }
    }
}

impl<S: Store, A: Api, C: Clock, O: Outside> Run<'_, S, A, C, O> {
    /// Records the transition: the writes, the row, the counts and the log line, once.
    pub(super) async fn record(&self, at: Attempt<'_>, transition: Transition) -> StoreResult<Ran> {
        let (store, now) = (self.ports.store, self.now());
        let attempted = at.calls > 0;
        let contact = at.record.sightmill_id.clone();
        let accepted_at = at.record.accepted_at;
        let (after, writes, ran) = match &transition {
            Transition::Finish(applied) => {
                let record = queue::finish(at.record.clone(), applied.outcome.clone(), now, attempted);
                (record, applied.writes.as_slice(), Ran::Finished)
            }
            Transition::Later { later, decision, kept } => {
                let ran = if *decision == LogDecision::Wait { Ran::Waiting } else { Ran::Retry };
                (queue::retry_later(at.record.clone(), later.clone(), attempted), kept.as_slice(), ran)
            }
            Transition::Park { reason, kept } => {
                (queue::park(at.record.clone(), reason.clone(), now, attempted), kept.as_slice(), Ran::Parked)
            }
        };
        for write in writes {
            store.write(write)?;
        }
        match at.lane {
            Lane::Live => {
                store.put_webhook(at.id, &at.record, &after)?;
                self.count_transition(&transition, now - accepted_at);
            }
            // An import row counts into its import's progress, not the live totals and charts.
            Lane::Import => store.put_import_row(at.id, &at.record, &after, at.calls)?,
        }
        if let Transition::Finish(Applied { outcome: Outcome::Applied { contact_id, .. }, .. }) = &transition
        {
            store.contact_changed(contact_id.as_str(), now)?;
            // A waiting event that cannot be read (taken out of the queue when it comes due) is
            // not woken; it must not keep the event just finished from its log line and its copy.
            if let Err(error) = self.wake_waiting(&contact, now) {
                log_storage_error(self.ports.outside, "wake the events waiting for the contact", &error);
            }
        }
        let (decision, outcome, error, due_at) = match &transition {
            Transition::Finish(applied) => (LogDecision::Finished, Some(&applied.outcome), None, None),
            Transition::Later { later, decision, .. } => {
                (*decision, None, Some(later.error.as_str()), Some(later.due_at))
            }
            Transition::Park { reason, .. } => (LogDecision::Parked, None, Some(reason.as_str()), None),
        };
        let entry = LogEntry {
            subject: Subject::of(at.id, &after),
            attempt: after.attempts,
            decision,
            outcome,
            error,
            api_calls: at.calls,
            latency_ms: now - at.started,
            due_at,
        };
        self.ports.outside.info(log_line(&entry));
        match &transition {
            _ if at.lane == Lane::Import => {}
            Transition::Finish(_) => self.ports.outside.remember(at.id, &after).await,
            Transition::Park { reason, .. } => {
                let text = format!("webhook {} ({}) was parked: {reason}", at.id, after.event_type);
                self.ports.outside.alert(AlertKind::Parked, &text).await;
            }
            Transition::Later { .. } => {}
        }
        Ok(ran)
    }

    /// Adds the transition to the totals and the charts.
    fn count_transition(&self, transition: &Transition, since_accepted_ms: i64) {
        let (counter, chart) = match transition {
            Transition::Finish(applied) => match &applied.outcome {
                Outcome::Applied { .. } => (Counter::Applied, Some(Count::Applied)),
                Outcome::Stale => (Counter::StaleDropped, Some(Count::Skipped)),
                Outcome::Unchanged { .. } => (Counter::Unchanged, Some(Count::Skipped)),
                Outcome::Skipped { .. } => (Counter::Skipped, Some(Count::Skipped)),
                Outcome::Discarded => (Counter::Discarded, None),
            },
            Transition::Later { decision: LogDecision::Wait, .. } => (Counter::Waiting, Some(Count::Waiting)),
            Transition::Later { .. } => (Counter::Retried, Some(Count::Retried)),
            Transition::Park { .. } => (Counter::Parked, Some(Count::Parked)),
        };
        self.ports.store.count(counter, 1);
        if let Some(chart) = chart {
            self.ports.outside.chart(&|bucket| {
                bucket.add(chart, 1);
                if chart == Count::Applied {
                    bucket.applied_after(since_accepted_ms);
                }
            });
        }
    }

    /// The contact's events that waited for it are due now: it was just created (or changed).
    fn wake_waiting(&self, contact: &str, now: UnixMillis) -> StoreResult<()> {
        for listed in self.ports.store.waiting_on(contact, now)? {
            let woken = queue::wake(listed.record.clone(), now);
            if woken != listed.record {
                self.ports.store.put_webhook(&listed.id, &listed.record, &woken)?;
            }
        }
        Ok(())
    }

    /// The event waits for its contact (or task) to exist: checked again later, or parked once it
    /// has waited as long as the settings allow.
    pub(super) async fn wait(&self, at: Attempt<'_>, reason: String) -> StoreResult<Ran> {
        let WebhookState::Pending { waiting_since, .. } = &at.record.state else {
            return Ok(Ran::Finished);
        };
        let since = waiting_since.unwrap_or(at.started);
        let retry = &self.config.retry;
        match decide_wait(&reason, since, at.started, retry.schedule.first_ms(), retry.max_wait_secs) {
            Decision::RetryAt { due_at, .. } => {
                let later = Later { due_at, counts: false, waiting_since: Some(since), error: reason };
                self.record(at, Transition::Later { later, decision: LogDecision::Wait, kept: vec![] }).await
            }
            Decision::Park { reason } => self.record(at, Transition::park(reason)).await,
        }
    }

    /// The attempt failed: `kept` is what the id maps must still learn from it.
    pub(super) async fn fail(
        &self,
        at: Attempt<'_>,
        failure: Failure,
        kept: Option<Write>,
    ) -> StoreResult<Ran> {
        self.decide(at, failure, kept.into_iter().collect()).await
    }

    /// Raises what a failure says about the location (a token that cannot be renewed, a spent
    /// rate limit), then retries the event along the schedule or parks it.
    pub(super) async fn decide(
        &self,
        at: Attempt<'_>,
        failure: Failure,
        kept: Vec<Write>,
    ) -> StoreResult<Ran> {
        let WebhookState::Pending { failures, .. } = &at.record.state else {
            return Ok(Ran::Finished);
        };
        let failures = *failures;
        if matches!(failure, Failure::TokenRejected | Failure::Misconfigured(_)) {
            let text = format!("calls for this location fail: {}", failure.describe());
            self.ports.outside.alert(AlertKind::TokenRenewal, &text).await;
        }
        if matches!(failure, Failure::RateLimited { .. }) {
            self.ports.store.count(Counter::RateLimited, 1);
        }
        let now = self.now();
        match decide(&failure, failures, &self.config.retry.schedule, now, self.ports.clock.random()) {
            Decision::RetryAt { due_at, counts } => {
                let later = Later { due_at, counts, waiting_since: None, error: failure.describe() };
                self.record(at, Transition::Later { later, decision: LogDecision::Retry, kept }).await
            }
            Decision::Park { reason } => self.record(at, Transition::Park { reason, kept }).await,
        }
    }
}
