//! The webhook queue's rules, stated once: how a record is accepted, retried, finished, parked,
//! replayed and discarded, each as a pure function from the record (and what happened) to the
//! record to write, and what a redelivery of a known webhook is answered. The location's Durable
//! Object writes what these return, in one transaction with the id-map writes of the plan; the
//! webhook route answers a redelivery found in KV with the same [`reply`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::intake::Admitted;
use crate::sync::records::{Outcome, Redelivery, WebhookRecord, WebhookState};
use crate::sync::report::{accepted_body, outcome_body, Subject};
use crate::timestamp::UnixMillis;

/// How long a finished webhook is remembered (by the Durable Object and under its KV key).
/// SightMill, like every Standard Webhooks sender, stops redelivering well within a week.
pub const FINISHED_TTL_MS: UnixMillis = 7 * 24 * 60 * 60 * 1_000;

/// What the webhook route hands the location's Durable Object for a delivery it admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intake {
    pub webhook_id: String,
    pub body: String,
    pub body_sha256: String,
    pub event_type: String,
    /// SightMill's id of the contact: events about one contact are applied one at a time.
    pub contact: String,
    /// SightMill's `updated_at`: the order in which a contact's events are applied.
    pub order_at: UnixMillis,
    /// The fingerprint of the named connection's secret the edge admitted it with (`None` for
    /// the default connection): the location checks it is still valid in its own copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_with: Option<String>,
}

impl Intake {
    pub fn of(admitted: &Admitted) -> Intake {
        let event = &admitted.event;
        Intake {
            webhook_id: admitted.webhook_id.clone(),
            body: admitted.body.clone(),
            body_sha256: admitted.body_sha256.clone(),
            event_type: event.kind().as_str().to_owned(),
            contact: event.sightmill_contact_id().to_owned(),
            order_at: event.updated_at,
            verified_with: None,
        }
    }

    /// The record of a webhook accepted at `now`: pending, due at once.
    pub fn accept(&self, now: UnixMillis) -> WebhookRecord {
        WebhookRecord::accepted(
            self.body.clone(),
            self.body_sha256.clone(),
            &self.event_type,
            &self.contact,
            now,
            now,
        )
    }
}

/// An answer to SightMill: status, JSON body, and whether it repeats an earlier answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
}

/// The answer to a delivery of `webhook_id` whose record is `record`: 202 for a webhook just
/// accepted; for one already on record, the stored outcome (200), a repeat of the acceptance
/// (202), or 409 when the id was reused for another body.
pub fn reply(webhook_id: &str, record: &WebhookRecord, body_sha256: &str, new: bool) -> Reply {
    let subject = Subject::of(webhook_id, record);
    if new {
        return Reply { status: 202, body: accepted_body(subject, "pending"), replayed: false };
    }
    match record.redelivery(body_sha256) {
        Redelivery::Replay(outcome) => {
            Reply { status: 200, body: outcome_body(subject, outcome), replayed: true }
        }
        Redelivery::AlreadyAccepted(state) => {
            Reply { status: 202, body: accepted_body(subject, state), replayed: true }
        }
        Redelivery::Conflict => Reply {
            status: 409,
            body: serde_json::json!({
                "error": "webhook_id_reused",
                "message": "this webhook-id was already used for a different body",
            }),
            replayed: false,
        },
    }
}

/// Why a webhook is not done yet, and when it is due again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Later {
    pub due_at: UnixMillis,
    /// Whether this counts as a failure (a step along the retry schedule).
    pub counts: bool,
    /// Since when it has been waiting for its contact or task, when it waits; `None` keeps what
    /// the record says (a failure or a deferral neither starts nor ends a wait).
    pub waiting_since: Option<UnixMillis>,
    pub error: String,
}

/// A pending record, attempted (`attempted`: it sent or tried to send something), due again
/// later. A record that is not pending is returned unchanged.
pub fn retry_later(mut record: WebhookRecord, later: Later, attempted: bool) -> WebhookRecord {
    let WebhookState::Pending { body, failures, waiting_since, .. } = record.state else {
        return record;
    };
    record.attempts += u32::from(attempted);
    record.state = WebhookState::Pending {
        body,
        due_at: later.due_at,
        failures: failures + u32::from(later.counts),
        last_error: Some(later.error),
        waiting_since: later.waiting_since.or(waiting_since),
    };
    record
}

/// A pending record that is waiting for its contact, due at `now` instead: the contact it waited
/// for was just created. Any other record is returned unchanged.
pub fn wake(mut record: WebhookRecord, now: UnixMillis) -> WebhookRecord {
    if let WebhookState::Pending { due_at, waiting_since: Some(_), .. } = &mut record.state {
        *due_at = (*due_at).min(now);
    }
    record
}

/// A pending record finished with `outcome`.
pub fn finish(
    mut record: WebhookRecord,
    outcome: Outcome,
    now: UnixMillis,
    attempted: bool,
) -> WebhookRecord {
    record.attempts += u32::from(attempted);
    record.state = WebhookState::Finished { finished_at: now, outcome };
    record
}

/// A pending record parked as a dead letter with `reason`. A record that is not pending is
/// returned unchanged.
pub fn park(mut record: WebhookRecord, reason: String, now: UnixMillis, attempted: bool) -> WebhookRecord {
    let WebhookState::Pending { body, .. } = record.state else {
        return record;
    };
    record.attempts += u32::from(attempted);
    record.state = WebhookState::Parked { body, parked_at: now, reason };
    record
}

/// Why an operator's action does not apply to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotApplicable {
    NotParked(&'static str),
    AlreadyFinished,
}

/// A parked record back in the queue, due at `now`, its failures forgotten.
pub fn replay(mut record: WebhookRecord, now: UnixMillis) -> Result<WebhookRecord, NotApplicable> {
    let WebhookState::Parked { body, .. } = record.state else {
        return Err(NotApplicable::NotParked(record.state_name()));
    };
    record.state =
        WebhookState::Pending { body, due_at: now, failures: 0, last_error: None, waiting_since: None };
    Ok(record)
}

/// A pending or parked record discarded by an operator: finished as `discarded`, so that a
/// redelivery changes nothing either.
pub fn discard(record: WebhookRecord, now: UnixMillis) -> Result<WebhookRecord, NotApplicable> {
    match record.state {
        WebhookState::Finished { .. } => Err(NotApplicable::AlreadyFinished),
        _ => Ok(finish(record, Outcome::Discarded, now, false)),
    }
}

/// Whether a record holds back its contact's later events: every pending record does, except
/// one waiting for its contact (or task) to exist, which would otherwise hold back the very
/// event that creates it. A woken record is ordered again when its contact is created.
pub fn holds_contact(record: &WebhookRecord) -> bool {
    matches!(record.state, WebhookState::Pending { waiting_since: None, .. })
}

/// A webhook's state in the queue, as its row keeps it: the record's own three, and
/// `unreadable`, a row whose record no longer parses, kept for an operator to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueueState {
    Pending,
    Parked,
    Finished,
    Unreadable,
}

impl QueueState {
    pub const ALL: [QueueState; 4] =
        [QueueState::Pending, QueueState::Parked, QueueState::Finished, QueueState::Unreadable];

    /// The name the `webhooks` table's `state` column holds.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueState::Pending => "pending",
            QueueState::Parked => "parked",
            QueueState::Finished => "finished",
            QueueState::Unreadable => "unreadable",
        }
    }

    pub fn from_name(name: &str) -> Option<QueueState> {
        QueueState::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

/// Where a record sits in the queue: its state and the time it is ordered by there (due, parked
/// or finished at). The Durable Object's `webhooks` table keeps these beside the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub state: QueueState,
    pub at: UnixMillis,
}

pub fn place(record: &WebhookRecord) -> Place {
    match &record.state {
        WebhookState::Pending { due_at, .. } => Place { state: QueueState::Pending, at: *due_at },
        WebhookState::Parked { parked_at, .. } => Place { state: QueueState::Parked, at: *parked_at },
        WebhookState::Finished { finished_at, .. } => Place { state: QueueState::Finished, at: *finished_at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::records::Action;

    fn intake() -> Intake {
        Intake {
            webhook_id: "msg_1".into(),
            body: "{}".into(),
            body_sha256: "h".into(),
            event_type: "note.created".into(),
            contact: "sm_1".into(),
            order_at: 5,
            verified_with: None,
        }
    }

    fn later(due_at: UnixMillis, counts: bool) -> Later {
        Later { due_at, counts, waiting_since: None, error: "HTTP 503".into() }
    }

    #[test]
    fn an_accepted_webhook_is_pending_and_due_at_once() {
        let record = intake().accept(100);
        assert_eq!(place(&record), Place { state: QueueState::Pending, at: 100 });
        assert_eq!((record.attempts, record.accepted_at, record.sightmill_id.as_str()), (0, 100, "sm_1"));
    }

    #[test]
    fn retries_count_failures_only_when_they_count() {
        let record = retry_later(intake().accept(0), later(10, true), true);
        let record = retry_later(record, later(20, false), true);
        let WebhookState::Pending { failures, due_at, last_error, .. } = &record.state else { panic!() };
        assert_eq!((*failures, *due_at, last_error.as_deref()), (1, 20, Some("HTTP 503")));
        assert_eq!(record.attempts, 2);
        let unattempted = retry_later(record.clone(), later(30, false), false);
        assert_eq!(unattempted.attempts, 2);
    }

    #[test]
    fn only_a_waiting_record_is_woken() {
        let waiting = Later { waiting_since: Some(1), ..later(60_000, false) };
        let record = wake(retry_later(intake().accept(0), waiting, true), 500);
        assert_eq!(place(&record), Place { state: QueueState::Pending, at: 500 });
        let failed_while_waiting = retry_later(record, later(9_000, true), true);
        assert!(
            matches!(failed_while_waiting.state, WebhookState::Pending { waiting_since: Some(1), .. }),
            "a failure keeps the wait"
        );
        let failed = wake(retry_later(intake().accept(0), later(60_000, true), true), 500);
        assert_eq!(place(&failed), Place { state: QueueState::Pending, at: 60_000 });
    }

    #[test]
    fn only_a_pending_record_that_is_not_waiting_holds_its_contact() {
        let pending = intake().accept(0);
        assert!(holds_contact(&pending));
        let waiting = Later { waiting_since: Some(1), ..later(60_000, false) };
        assert!(!holds_contact(&retry_later(pending.clone(), waiting, true)));
        assert!(holds_contact(&retry_later(pending.clone(), later(60_000, true), true)));
        assert!(!holds_contact(&park(pending, "no".into(), 1, true)));
    }

    #[test]
    fn park_replay_and_discard_move_between_states() {
        let parked = park(intake().accept(0), "HTTP 400: no".into(), 7, true);
        assert_eq!(place(&parked), Place { state: QueueState::Parked, at: 7 });
        assert_eq!(park(parked.clone(), "again".into(), 8, true), parked, "only a pending record parks");
        let replayed = replay(parked.clone(), 9).unwrap();
        assert_eq!(place(&replayed), Place { state: QueueState::Pending, at: 9 });
        assert_eq!(replay(replayed.clone(), 9), Err(NotApplicable::NotParked("pending")));
        let discarded = discard(parked, 11).unwrap();
        assert_eq!(place(&discarded), Place { state: QueueState::Finished, at: 11 });
        assert_eq!(discard(discarded, 12), Err(NotApplicable::AlreadyFinished));
    }

    #[test]
    fn a_redelivery_is_answered_from_the_record() {
        let pending = intake().accept(0);
        assert_eq!(reply("msg_1", &pending, "h", true).status, 202);
        let again = reply("msg_1", &pending, "h", false);
        assert_eq!(
            (again.status, again.replayed, again.body["state"].as_str()),
            (202, true, Some("pending"))
        );
        let outcome = Outcome::Applied {
            action: Action::Created,
            contact_id: crate::contacts_api::ApiId::parse("c1").unwrap(),
            record_id: None,
        };
        let finished = finish(pending, outcome, 3, true);
        let replayed = reply("msg_1", &finished, "h", false);
        assert_eq!((replayed.status, replayed.body["action"].as_str()), (200, Some("created")));
        let conflict = reply("msg_1", &finished, "other", false);
        assert_eq!((conflict.status, conflict.body["error"].as_str()), (409, Some("webhook_id_reused")));
    }
}
