//! The records the location's Durable Object keeps, and the decisions a stored webhook record
//! dictates when the same webhook id arrives again. The id-map records are kept under the keys
//! below (the Durable Object's `links` table); the webhook records in its `webhooks` table; a
//! finished webhook's record also under its KV idempotency key, so that the edge answers a
//! redelivery without waking the Durable Object.
//!
//! | key | value | where |
//! | --- | --- | --- |
//! | `webhook:{webhook-id}` | the finished [`WebhookRecord`] (7 days) | KV |
//! | `contact:{location}:{sightmill contact}` | [`Link`] to the Contacts API contact | Durable Object |
//! | `note:{location}:{sightmill contact}:{sightmill note}` | [`Link`] to the note | Durable Object |
//! | `task:{location}:{sightmill contact}:{sightmill task}` | [`Link`] to the task | Durable Object |
//! | `tag:{location}:{sightmill contact}:{base64url tag}` | [`TagState`] | Durable Object |

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contacts_api::ApiId;
use crate::timestamp::UnixMillis;

pub fn webhook_key(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

/// The idempotency key of a webhook at a connection: the default connection's is
/// [`webhook_key`] (as before connections), a named one's `webhook@{connection}:{id}`, so that
/// one connection's webhook ids never answer another's deliveries.
pub fn webhook_key_of(connection: Option<&str>, webhook_id: &str) -> String {
    match connection {
        None => webhook_key(webhook_id),
        Some(connection) => format!("webhook@{connection}:{webhook_id}"),
    }
}

pub fn contact_key(location_id: &str, contact: &str) -> String {
    format!("contact:{location_id}:{contact}")
}

pub fn note_key(location_id: &str, contact: &str, note: &str) -> String {
    format!("note:{location_id}:{contact}:{note}")
}

pub fn task_key(location_id: &str, contact: &str, task: &str) -> String {
    format!("task:{location_id}:{contact}:{task}")
}

pub fn tag_key(location_id: &str, contact: &str, tag: &str) -> String {
    format!("tag:{location_id}:{contact}:{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The prefixes of every record that hangs off a contact: cleared when the contact is deleted.
pub fn child_prefixes(location_id: &str, contact: &str) -> [String; 3] {
    ["note", "task", "tag"].map(|kind| format!("{kind}:{location_id}:{contact}:"))
}

/// One run's tally (a cron wake or an alarm), kept for the operator's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRun {
    pub started_at: UnixMillis,
    pub finished_at: UnixMillis,
    /// Pending webhooks in the queue when the run started.
    pub pending: u32,
    /// Of those, due now.
    pub due: u32,
    pub finished: u32,
    pub retried: u32,
    pub waiting: u32,
    pub parked: u32,
    /// Not attempted: the location's rate limit was spent for longer than the run could wait.
    pub deferred: u32,
    /// Due when the run ended: left for the alarm that carries on (its budget was spent, or a
    /// contact's next event became due as the run ended).
    pub left_for_next_run: u32,
    pub api_calls: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_secs: Option<i64>,
}

/// A fingerprint of a webhook body, so that a reused webhook id with another body is caught.
pub fn body_fingerprint(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// Where a SightMill record lives in the Contacts API, or that it was deleted, with the newest
/// `updated_at` applied to it: anything older is stale.
///
/// Stored through its wire form ([`crate::sync::wire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Live {
        id: ApiId,
        updated_at: UnixMillis,
        /// Contacts only: the status tag the contact carries (when status goes to a tag).
        status_tag: Option<String>,
        /// Tasks only: the `updated_at` of the newest `task.completed` applied. Kept apart from
        /// `updated_at` (the newest snapshot) because `task.completed` carries no snapshot: an
        /// older snapshot that arrives after it still brings newer titles and dates.
        completed_at: Option<UnixMillis>,
        /// Contacts only: the digest of the fields (and status tag) last sent
        /// ([`crate::sync::plan::contact::digest`]): an update that would send the same is not
        /// sent. `None` for links written before digests were kept.
        digest: Option<String>,
    },
    /// A create was sent for this version and got no definite answer (a timeout, a network
    /// error, a 5xx or a 422, or a restart of the writer while it was under way), so the API may
    /// have made the record. Every later event about it looks the record up first, and adopts
    /// what the create made (see [`crate::sync::plan`] and [`crate::sync::contact_lookup`]).
    InDoubt(CreateInDoubt),
    Deleted {
        updated_at: UnixMillis,
    },
}

/// A create in doubt: the version it was for, when it was sent, and what it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateInDoubt {
    /// The `updated_at` of the event whose create it was.
    pub updated_at: UnixMillis,
    /// No later than when the create was sent (its attempt's start).
    pub sent_at: UnixMillis,
    pub sent: Box<Sent>,
}

/// What a create sent that recognises the record it made: a note's body; a task's title, body
/// and due date; a contact's email, phone and names, the status tag it carried and the custom
/// field that holds its SightMill id (when the mapping has one). Fields the create did not send
/// are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, rename = "dueDate", skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, rename = "firstName", skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, rename = "lastName", skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The status tag the create carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The custom field (by id) the create set to the SightMill id.
    #[serde(default, rename = "idField", skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
}

impl Link {
    pub fn updated_at(&self) -> UnixMillis {
        match self {
            Link::Live { updated_at, .. } | Link::Deleted { updated_at } => *updated_at,
            Link::InDoubt(doubt) => doubt.updated_at,
        }
    }

    /// The newest change applied to the record, a completion included.
    pub fn last_change(&self) -> UnixMillis {
        match self {
            Link::Live { updated_at, completed_at, .. } => {
                completed_at.map_or(*updated_at, |at| at.max(*updated_at))
            }
            Link::Deleted { updated_at } => *updated_at,
            Link::InDoubt(doubt) => doubt.updated_at,
        }
    }

    /// When the task was last completed, if a `task.completed` was applied.
    pub fn completed_at(&self) -> Option<UnixMillis> {
        match self {
            Link::Live { completed_at, .. } => *completed_at,
            Link::InDoubt(_) | Link::Deleted { .. } => None,
        }
    }

    pub fn live_id(&self) -> Option<&ApiId> {
        match self {
            Link::Live { id, .. } => Some(id),
            Link::InDoubt(_) | Link::Deleted { .. } => None,
        }
    }
}

/// Whether a tag is on a contact, as of `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagState {
    pub present: bool,
    pub updated_at: UnixMillis,
}

/// The idempotency and queue record of one webhook, stored as one flat JSON object (the common
/// fields, `state`, and the state's fields; see [`crate::sync::wire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub body_sha256: String,
    pub event_type: String,
    pub sightmill_id: String,
    pub accepted_at: UnixMillis,
    /// Attempts made so far (every try that sent or tried to send something).
    pub attempts: u32,
    pub state: WebhookState,
    /// What the applied event left out, and why (custom field values the mapping says to omit
    /// when they cannot fit); empty for most.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookState {
    /// Accepted, to be attempted at `due_at`.
    Pending {
        body: String,
        due_at: UnixMillis,
        /// Retryable failures so far: the position in the retry schedule.
        failures: u32,
        last_error: Option<String>,
        /// Since when it has been waiting for its contact (or task) to exist.
        waiting_since: Option<UnixMillis>,
    },
    /// A dead letter: not retried until an operator replays it.
    Parked { body: String, parked_at: UnixMillis, reason: String },
    /// Done for good: a redelivery answers with the same outcome and sends nothing.
    Finished { finished_at: UnixMillis, outcome: Outcome },
}

/// How an event changed the Contacts API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    /// The API reported a duplicate contact, which was mapped and updated; or a note or task
    /// that an earlier, unanswered create had made was found and mapped.
    Adopted,
    Deleted,
    TagAdded,
    TagRemoved,
    Completed,
}

/// The final result of one webhook, stored and answered (redeliveries get the same).
///
/// Stored through its wire form ([`crate::sync::wire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        action: Action,
        /// The Contacts API contact.
        contact_id: ApiId,
        /// The Contacts API note or task, for note and task events.
        record_id: Option<ApiId>,
    },
    /// Older (by `updated_at`) than what was already applied: dropped, nothing sent.
    Stale,
    /// A contact update whose mapped fields (and status tag) are what its link says were last
    /// sent: nothing sent, the link moved on to the event's version.
    Unchanged {
        /// The Contacts API contact.
        contact_id: ApiId,
    },
    /// Nothing to do (e.g. a note for a contact that was deleted); `reason` says why.
    Skipped { reason: String },
    /// An operator discarded it.
    Discarded,
}

/// What to do when a webhook id that is already on record arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redelivery<'a> {
    /// Finished: answer the stored outcome, send nothing.
    Replay(&'a Outcome),
    /// Accepted and not finished (pending or parked): acknowledge again, change nothing.
    AlreadyAccepted(&'static str),
    /// The id was reused for a different body: refuse it.
    Conflict,
}

impl WebhookRecord {
    /// A freshly accepted webhook, due at `due_at` (the first attempt runs right away; `due_at`
    /// is when the cron takes over if that attempt never finishes).
    pub fn accepted(
        body: String,
        body_sha256: String,
        event_type: &str,
        sightmill_id: &str,
        now: UnixMillis,
        due_at: UnixMillis,
    ) -> Self {
        WebhookRecord {
            body_sha256,
            event_type: event_type.to_owned(),
            sightmill_id: sightmill_id.to_owned(),
            accepted_at: now,
            attempts: 0,
            state: WebhookState::Pending { body, due_at, failures: 0, last_error: None, waiting_since: None },
            notes: Vec::new(),
        }
    }

    pub fn redelivery(&self, body_sha256: &str) -> Redelivery<'_> {
        if self.body_sha256 != body_sha256 {
            return Redelivery::Conflict;
        }
        match &self.state {
            WebhookState::Finished { outcome, .. } => Redelivery::Replay(outcome),
            WebhookState::Pending { .. } => Redelivery::AlreadyAccepted("pending"),
            WebhookState::Parked { .. } => Redelivery::AlreadyAccepted("parked"),
        }
    }

    pub fn state_name(&self) -> &'static str {
        match &self.state {
            WebhookState::Pending { .. } => "pending",
            WebhookState::Parked { .. } => "parked",
            WebhookState::Finished { .. } => "finished",
        }
    }

    /// The stored body of a pending or parked webhook.
    pub fn body(&self) -> Option<&str> {
        match &self.state {
            WebhookState::Pending { body, .. } | WebhookState::Parked { body, .. } => Some(body),
            WebhookState::Finished { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(text: &str) -> ApiId {
        ApiId::parse(text).unwrap()
    }

    fn record(state: WebhookState) -> WebhookRecord {
        WebhookRecord {
            body_sha256: "h".into(),
            event_type: "contact.created".into(),
            sightmill_id: "sm_1".into(),
            accepted_at: 1,
            attempts: 1,
            state,
            notes: vec![],
        }
    }

    #[test]
    fn records_serialise_to_a_stable_flat_shape() {
        let finished = record(WebhookState::Finished {
            finished_at: 5,
            outcome: Outcome::Applied { action: Action::Adopted, contact_id: id("c1"), record_id: None },
        });
        let stored = serde_json::to_value(&finished).unwrap();
        assert_eq!(
            stored,
            json!({"body_sha256": "h", "event_type": "contact.created", "sightmill_id": "sm_1",
                   "accepted_at": 1, "attempts": 1, "state": "finished", "finished_at": 5,
                   "outcome": {"status": "applied", "action": "adopted", "contact_id": "c1"}})
        );
        assert_eq!(serde_json::from_value::<WebhookRecord>(stored).unwrap(), finished);

        let pending = record(WebhookState::Pending {
            body: "{}".into(),
            due_at: 9,
            failures: 0,
            last_error: None,
            waiting_since: None,
        });
        let stored = serde_json::to_value(&pending).unwrap();
        assert_eq!(stored["state"], "pending");
        assert_eq!(serde_json::from_value::<WebhookRecord>(stored).unwrap(), pending);
    }

    #[test]
    fn every_record_variant_reads_back_what_earlier_versions_wrote() {
        let stored = [
            json!({"body_sha256": "h", "event_type": "note.created", "sightmill_id": "sm_1", "accepted_at": 1,
                   "attempts": 2, "state": "pending", "body": "{}", "due_at": 9, "failures": 1,
                   "last_error": "HTTP 503", "waiting_since": 4}),
            json!({"body_sha256": "h", "event_type": "note.created", "sightmill_id": "sm_1", "accepted_at": 1,
                   "attempts": 0, "state": "pending", "body": "{}", "due_at": 9, "failures": 0}),
            json!({"body_sha256": "h", "event_type": "note.created", "sightmill_id": "sm_1", "accepted_at": 1,
                   "attempts": 3, "state": "parked", "body": "{}", "parked_at": 7, "reason": "HTTP 400: no"}),
            json!({"body_sha256": "h", "event_type": "task.deleted", "sightmill_id": "sm_1", "accepted_at": 1,
                   "attempts": 1, "state": "finished", "finished_at": 5,
                   "outcome": {"status": "applied", "action": "deleted", "contact_id": "c1", "record_id": "t1"}}),
            json!({"body_sha256": "h", "event_type": "note.created", "sightmill_id": "sm_1", "accepted_at": 1,
                   "attempts": 1, "state": "finished", "finished_at": 5,
                   "outcome": {"status": "skipped", "reason": "its contact was deleted"}}),
            json!({"body_sha256": "h", "event_type": "contact.updated", "sightmill_id": "sm_1", "accepted_at": 1,
                   "attempts": 1, "state": "finished", "finished_at": 5,
                   "outcome": {"status": "unchanged", "contact_id": "c1"}}),
            json!({"body_sha256": "h", "event_type": "note.created", "sightmill_id": "sm_1", "accepted_at": 1,
                   "attempts": 0, "state": "finished", "finished_at": 5, "outcome": {"status": "discarded"}}),
        ];
        for value in stored {
            let record: WebhookRecord =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(serde_json::to_value(&record).unwrap(), value);
        }
        let without_failures = json!({"body_sha256": "h", "event_type": "x", "sightmill_id": "s", "accepted_at": 1,
                                      "attempts": 0, "state": "pending", "body": "{}", "due_at": 9});
        let record: WebhookRecord = serde_json::from_value(without_failures).unwrap();
        assert!(matches!(record.state, WebhookState::Pending { failures: 0, .. }));
        // Written before a create in doubt was kept on the note's or task's link.
        let with_unanswered_create = json!({"body_sha256": "h", "event_type": "note.created", "sightmill_id": "sm_1",
            "accepted_at": 1, "attempts": 1, "state": "pending", "body": "{}", "due_at": 9, "failures": 1,
            "unanswered_create_at": 8});
        let record: WebhookRecord = serde_json::from_value(with_unanswered_create).unwrap();
        assert!(matches!(record.state, WebhookState::Pending { failures: 1, .. }));
        for broken in [
            json!({"body_sha256": "h", "event_type": "x", "sightmill_id": "s", "accepted_at": 1, "attempts": 0,
                   "state": "pending", "due_at": 9}),
            json!({"body_sha256": "h", "event_type": "x", "sightmill_id": "s", "accepted_at": 1, "attempts": 0,
                   "state": "finished", "finished_at": 5, "outcome": {"status": "applied", "action": "created"}}),
            json!({"body_sha256": "h", "event_type": "x", "sightmill_id": "s", "accepted_at": 1, "attempts": 0,
                   "state": "finished", "finished_at": 5, "outcome": {"status": "unchanged"}}),
            json!({"body_sha256": "h", "event_type": "x", "sightmill_id": "s", "accepted_at": 1, "attempts": 0,
                   "state": "gone"}),
        ] {
            assert!(serde_json::from_value::<WebhookRecord>(broken.clone()).is_err(), "{broken}");
        }
        let live = json!({"state": "live", "id": "K1", "updated_at": 5, "status_tag": "status:lead", "completed_at": 6});
        let link: Link = serde_json::from_value(live.clone()).unwrap();
        assert_eq!(serde_json::to_value(&link).unwrap(), live);
        assert!(serde_json::from_value::<Link>(json!({"state": "live", "updated_at": 5})).is_err());
        let in_doubt = json!({"state": "in_doubt", "updated_at": 5, "sent_at": 4,
                              "sent": {"title": "Call", "body": "About it", "dueDate": "2026-11-27T11:00:00Z"}});
        let link: Link = serde_json::from_value(in_doubt.clone()).unwrap();
        assert_eq!((link.updated_at(), link.live_id()), (5, None));
        assert_eq!(serde_json::to_value(&link).unwrap(), in_doubt);
        let note = json!({"state": "in_doubt", "updated_at": 5, "sent_at": 4, "sent": {"body": "hello"}});
        assert_eq!(
            serde_json::to_value(serde_json::from_value::<Link>(note.clone()).unwrap()).unwrap(),
            note
        );
        assert!(serde_json::from_value::<Link>(json!({"state": "in_doubt", "updated_at": 5, "sent_at": 4}))
            .is_err());
    }

    #[test]
    fn a_stored_record_decides_the_redelivery() {
        let outcome = Outcome::Stale;
        let finished = record(WebhookState::Finished { finished_at: 1, outcome: outcome.clone() });
        let pending = record(WebhookState::Pending {
            body: "{}".into(),
            due_at: 1,
            failures: 2,
            last_error: None,
            waiting_since: None,
        });
        let parked = record(WebhookState::Parked { body: "{}".into(), parked_at: 1, reason: "r".into() });
        assert_eq!(finished.redelivery("h"), Redelivery::Replay(&outcome));
        assert_eq!(pending.redelivery("h"), Redelivery::AlreadyAccepted("pending"));
        assert_eq!(parked.redelivery("h"), Redelivery::AlreadyAccepted("parked"));
        for record in [finished, pending, parked] {
            assert_eq!(record.redelivery("other"), Redelivery::Conflict);
        }
    }

    #[test]
    fn links_load_only_with_a_path_safe_id() {
        let bad = json!({"state": "live", "id": "../../admin", "updated_at": 1});
        assert!(serde_json::from_value::<Link>(bad).is_err());
        let good = json!({"state": "deleted", "updated_at": 3});
        assert_eq!(serde_json::from_value::<Link>(good).unwrap(), Link::Deleted { updated_at: 3 });
    }

    #[test]
    fn record_keys() {
        assert_eq!(webhook_key("msg_1"), "webhook:msg_1");
        assert_eq!(webhook_key_of(None, "msg_1"), "webhook:msg_1");
        assert_eq!(webhook_key_of(Some("loc-b"), "msg_1"), "webhook@loc-b:msg_1");
        assert_eq!(contact_key("loc", "sm_1"), "contact:loc:sm_1");
        assert_eq!(note_key("loc", "sm_1", "n1"), "note:loc:sm_1:n1");
        assert_eq!(task_key("loc", "sm_1", "t1"), "task:loc:sm_1:t1");
        assert_eq!(tag_key("loc", "sm_1", "vip/gold"), "tag:loc:sm_1:dmlwL2dvbGQ");
        assert_eq!(child_prefixes("loc", "sm_1")[0], "note:loc:sm_1:");
        assert_eq!(body_fingerprint(b"abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
