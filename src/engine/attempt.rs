//! One attempt at one webhook: reads what the id maps know, waits while a create in doubt may
//! still be applied, takes the mapping in force now (the live one, else the deployed one) with
//! the location's custom fields, plans the event, sends the plan's calls (writing a create's
//! intent before it goes, renewing a refused token once and sending again), sends the actions its
//! rules fire, and hands the outcome to [`super::transition`].

use std::borrow::Cow;

use super::actions::{self, Stopped};
use super::custom_fields::{self, Prepared};
use super::ports::{Api, Clock, Lane, Outside, Store, StoreError, StoreResult};
use super::transition::Transition;
use super::{Attempt, Ran, Run};
use crate::contacts_api::{classify, Answer, ApiRequest};
use crate::intake::event::{parse_event, Change, Event};
use crate::sync::mapping::Mapping;
use crate::sync::plan::{self, Applied, Failure, Job, Next, Start, Write, MAX_CALLS};
use crate::sync::queue::Later;
use crate::sync::records::{Outcome, TagState, WebhookRecord, WebhookState};
use crate::sync::report::Decision as LogDecision;

/// How driving a job ended; a failure keeps what the id maps must still learn (a link in doubt
/// or adopted).
enum Driven {
    Applied(Applied),
    Wait(String),
    Failed(Failure, Option<Write>),
}

impl<S: Store, A: Api, C: Clock, O: Outside> Run<'_, S, A, C, O> {
    /// Attempts one pending webhook (or import row: the same record, from its own lane); its
    /// contact is this worker's until it returns.
    pub(super) async fn attempt(&self, id: &str, lane: Lane, record: WebhookRecord) -> StoreResult<Ran> {
        let started = self.now();
        let WebhookState::Pending { body, .. } = &record.state else {
            return Ok(Ran::Finished);
        };
        let event = parse_event(body.as_bytes());
        let mut at = Attempt { id, lane, record, started, calls: 0 };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                return self
                    .record(at, Transition::park(format!("the stored body no longer parses: {error}")))
                    .await
            }
        };
        let location = &self.config.location_id;
        let known = match self.ports.store.known(&plan::reads(&event, location)) {
            Ok(known) => known,
            Err(StoreError::Unreadable(what, error)) => {
                let detail = format!("the stored record {what} is unreadable: {error}");
                return self.fail(at, Failure::Retryable { detail }, None).await;
            }
            Err(error) => return Err(error),
        };
        if let Some(due_at) =
            plan::lookup_not_before(&known, self.config.api_timeout_ms).filter(|at| *at > started)
        {
            let error =
                "a create in doubt may still be applied by the API; it is looked up once it could have been";
            let later = Later { due_at, counts: false, waiting_since: None, error: error.to_owned() };
            return self
                .record(at, Transition::Later { later, decision: LogDecision::Retry, kept: vec![] })
                .await;
        }
        let current = match self.mapping_now() {
            Ok(current) => current,
            Err(problem) => {
                let failure = Failure::Misconfigured(format!("the mapping cannot be used: {problem}"));
                return self.fail(at, failure, None).await;
            }
        };
        let mapping = match &event.change {
            Change::ContactUpsert(contact) => {
                custom_fields::prepare(self.ports, &current, Some(&contact.fields), self.now()).await
            }
            _ => Prepared::Ready(Cow::Borrowed(&*current)),
        };
        let mapping = match mapping {
            Prepared::Ready(mapping) => mapping,
            Prepared::Retry(failure) => return self.fail(at, failure, None).await,
            Prepared::Park(reason) => return self.record(at, Transition::park(reason)).await,
        };
        if let Change::ContactUpsert(contact) = &event.change {
            at.record.notes = mapping.left_out(&contact.fields);
        }
        match plan::start(&event, &known, location, &mapping) {
            // An unchanged contact sends nothing, but its status may still fire the rules.
            Start::Finish(applied) => {
                self.act_then_finish(at, &event, &mapping, applied, known.tag.clone()).await
            }
            Start::Park(reason) => self.record(at, Transition::park(reason)).await,
            Start::Wait(reason) => self.wait(at, reason).await,
            Start::Send(job, request) => {
                let driven = self.drive(job, request, &mut at).await;
                match driven {
                    Driven::Applied(applied) => {
                        self.act_then_finish(at, &event, &mapping, applied, known.tag.clone()).await
                    }
                    Driven::Wait(reason) => self.wait(at, reason).await,
                    Driven::Failed(failure, kept) => self.fail(at, failure, kept).await,
                }
            }
        }
    }

    /// The mapping in force for an attempt starting now: the live mapping when one is saved
    /// (saved or removed while a run is under way, it applies to the next event at once), else
    /// the deployed one. `Err`: the live mapping cannot be used, and nothing is applied with
    /// another.
    fn mapping_now(&self) -> Result<Cow<'_, Mapping>, String> {
        Ok(match self.ports.store.live_mapping()? {
            Some(live) => Cow::Owned(live),
            None => Cow::Borrowed(&self.config.mapping),
        })
    }

    /// Sends the job's requests until it is applied or has failed. A resend after a renewed
    /// token is not one of the event's own calls.
    async fn drive(&self, mut job: Job, mut request: ApiRequest, at: &mut Attempt<'_>) -> Driven {
        let mut own_calls = 0;
        let mut rejected = None;
        // When the last intent was written: the create it announces was sent right after.
        let mut sent_at = at.started;
        let failed = |failure, job: &Job, sent_at| Driven::Failed(failure, job.kept_on_failure(sent_at));
        loop {
            let token = match self.ports.api.token(rejected.as_ref()).await {
                Ok(token) => token,
                Err(failure) => return failed(failure, &job, sent_at),
            };
            let now = self.now();
            if let Some(intent) = job.intent(now) {
                sent_at = now;
                if let Err(error) = self.ports.store.write(&intent) {
                    let detail = format!("the create's intent could not be recorded: {error}");
                    return failed(Failure::Retryable { detail }, &job, sent_at);
                }
            }
            let answer = match self.send(&token, &request).await {
                Ok(response) => classify(&response),
                Err(failure) => Answer::transport_failure(failure),
            };
            at.calls += 1;
            if answer == Answer::TokenRejected && rejected.is_none() {
                rejected = Some(token);
                continue;
            }
            own_calls += 1;
            match job.on_answer(answer) {
                Next::Send(next) if own_calls < MAX_CALLS => request = next,
                Next::Send(_) => {
                    let detail = "too many Contacts API calls for one event".into();
                    return failed(Failure::Retryable { detail }, &job, sent_at);
                }
                Next::Applied(applied) => return Driven::Applied(applied),
                Next::Wait(reason) => return Driven::Wait(reason),
                Next::Failed(failure) => return failed(failure, &job, sent_at),
            }
        }
    }

    /// Sends the actions the event's rules fire ([`actions`]), then finishes it; when one cannot
    /// be sent the event is retried or parked, keeping a contact's link (a retry must update the
    /// contact it made, not make another) but not the status or tag the rules compare with, so
    /// that the retry fires them again and the ledger sends only what is left.
    async fn act_then_finish(
        &self,
        mut at: Attempt<'_>,
        event: &Event,
        mapping: &Mapping,
        mut applied: Applied,
        tag: Option<TagState>,
    ) -> StoreResult<Ran> {
        let watched = matches!(
            event.change,
            Change::ContactUpsert(_) | Change::TagAdded { .. } | Change::TagRemoved { .. }
        );
        let contact = match &applied.outcome {
            Outcome::Applied { contact_id, .. } | Outcome::Unchanged { contact_id }
                if watched && !mapping.actions().is_empty() =>
            {
                contact_id.clone()
            }
            _ => return self.record(at, Transition::Finish(applied)).await,
        };
        match actions::act(self, mapping, event, &contact, tag, &mut at).await {
            Ok(acted) => {
                at.record.notes.extend(acted.notes);
                applied.writes.extend(acted.writes);
                self.record(at, Transition::Finish(applied)).await
            }
            Err(stopped) => {
                let kept =
                    if matches!(event.change, Change::ContactUpsert(_)) { applied.writes } else { vec![] };
                match stopped {
                    Stopped::Failed(failure) => self.decide(at, failure, kept).await,
                    Stopped::Park(reason) => self.record(at, Transition::Park { reason, kept }).await,
                }
            }
        }
    }

    /// Whether one more action call fits the run's calls, beside what the other attempts under
    /// way may still make.
    pub(super) fn action_fits(&self) -> bool {
        let others = MAX_CALLS * self.in_flight.get().saturating_sub(1);
        self.calls() + others < self.config.cron.max_api_calls
    }
}
