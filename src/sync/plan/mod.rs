//! Planning, the core of the location's writer: turns one event, plus what KV knows about its
//! records, into the Contacts API calls that apply it, and interprets each answer until the event
//! is applied or has failed. The shell only reads the keys [`reads`] names, sends what this module
//! plans and writes what it returns. Here: what every job shares (the moves, the writes, the
//! failures, the single call); each kind of event has its job beside it: a contact's
//! ([`contact`]), a note's or task's ([`record`]), a tag's ([`tag`]).
//!
//! Order per contact comes from versions, not from arrival: every record remembers the newest
//! `updated_at` applied to it (deletions leave a tombstone), so an older event is stale whenever it
//! arrives, and an update whose create was lost creates the record. Events about a contact (or a
//! task) that is not in the Contacts API yet wait for it.
//!
//! No create takes an idempotency key, so a create whose answer was lost may have been applied:
//! its link is written in doubt before it is sent, and the next attempt at any event about the
//! record looks it up first and adopts what the create made: a contact through one search
//! ([`ContactJob`], [`crate::sync::contact_lookup`]), a note or task in its contact's list
//! ([`RecordJob`]).

pub mod contact;
pub mod record;
pub mod tag;
#[cfg(test)]
mod test_support;

use serde_json::Value;

use crate::case;
use crate::contacts_api::{Answer, ApiId, ApiRequest};
use crate::intake::event::{Change, Event, SightmillNote, SightmillTask};
use crate::sync::mapping::Mapping;
use crate::sync::records::{contact_key, note_key, tag_key, task_key, Action, Link, Outcome, TagState};
use crate::timestamp::UnixMillis;
use contact::{ContactJob, ContactTarget, DeleteInDoubt};
use record::{RecordJob, RecordKind};

/// Contacts API calls one event's plan may make (a contact: look up, create or update, then
/// remove and add a status tag; a note or task: look up, then create, update, complete or
/// delete). A call sent again after a token renewal is the same call of the plan, not another.
pub const MAX_CALLS: u32 = 4;

/// The KV keys planning needs for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    /// `contact:…`, holding a [`Link`].
    pub contact: String,
    /// The note or task [`Link`], or the [`TagState`], when the event is about one.
    pub record: Option<RecordKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Link(String),
    Tag(String),
}

/// What KV held under the keys of [`Reads`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub contact: Option<Link>,
    pub link: Option<Link>,
    pub tag: Option<TagState>,
}

/// A KV write that makes an applied event stick.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        key: String,
        value: Value,
    },
    /// Delete this key.
    Delete(String),
    /// Delete every key under this prefix.
    ClearPrefix(String),
}

/// An event that is done: its outcome and the KV writes that record it.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub outcome: Outcome,
    pub writes: Vec<Write>,
}

/// The first move for an event.
#[derive(Debug)]
pub enum Start {
    /// Nothing to send: stale, skipped, or only KV to write.
    Finish(Applied),
    /// Its contact (or task) is not in the Contacts API yet: try again later.
    Wait(String),
    /// It can never be applied as it is (the mapping refused it): park it with this reason.
    Park(String),
    /// Send the request, then feed its answer to the job.
    Send(Job, ApiRequest),
}

/// The move after an answer.
#[derive(Debug, PartialEq)]
pub enum Next {
    Send(ApiRequest),
    Applied(Applied),
    /// Its task is not in the Contacts API yet (a lookup found nothing): try again later.
    Wait(String),
    Failed(Failure),
}

/// Why an attempt did not apply the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 408, 425, 5xx, timeout or network: retrying may help.
    Retryable { detail: String },
    /// 429: wait, then retry.
    RateLimited { retry_after_secs: Option<u64> },
    /// The token was refused: refresh it, then retry.
    TokenRejected,
    /// A deployment problem no retry of this event fixes by itself (e.g. the Version header).
    Misconfigured(String),
    /// The API refused the change for good: park it with the API's message.
    Rejected { api_status: u16, message: String },
}

impl Failure {
    /// A short description for logs and the stored record (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Failure::Retryable { detail } => detail.clone(),
            Failure::RateLimited { .. } => "HTTP 429: rate limited".into(),
            Failure::TokenRejected => "the Contacts API refused the access token".into(),
            Failure::Misconfigured(detail) => detail.clone(),
            Failure::Rejected { api_status, message } => format!("HTTP {api_status}: {message}"),
        }
    }

    fn from_answer(answer: Answer) -> Failure {
        match answer {
            Answer::Unavailable { detail } => Failure::Retryable { detail },
            Answer::RateLimited { retry_after_secs } => Failure::RateLimited { retry_after_secs },
            Answer::TokenRejected => Failure::TokenRejected,
            Answer::VersionRejected => Failure::Misconfigured(
                "the Contacts API refused the Version header (expected 2021-07-28)".into(),
            ),
            Answer::Rejected { status, message } => Failure::Rejected { api_status: status, message },
            Answer::Duplicate(id) => Failure::Rejected {
                api_status: 400,
                message: format!("unexpected duplicate report for contact {id}"),
            },
            Answer::Success(_) => {
                Failure::Rejected { api_status: 200, message: "unexpected success answer".into() }
            }
        }
    }
}

/// How long after a create in doubt was sent its record may still appear in the API, beyond the
/// worker's own timeout for the call: the API may apply a create after the worker stopped waiting.
pub const DOUBT_SETTLE_MS: UnixMillis = 1_000;

/// When an event may look up the contact, note or task whose create is in doubt (`None`: it need
/// not wait). A lookup sooner could miss a create the API is still applying (sent just before the
/// writer restarted, say) and make it twice.
pub fn lookup_not_before(known: &Known, api_timeout_ms: u32) -> Option<UnixMillis> {
    [&known.contact, &known.link]
        .into_iter()
        .filter_map(|link| match link {
            Some(Link::InDoubt(doubt)) => Some(doubt.sent_at + i64::from(api_timeout_ms) + DOUBT_SETTLE_MS),
            _ => None,
        })
        .max()
}

/// The keys to read before planning `event`.
pub fn reads(event: &Event, location_id: &str) -> Reads {
    let contact = &event.contact_id;
    let record = match &event.change {
        Change::NoteUpsert(SightmillNote { id, .. }) | Change::NoteDeleted { note_id: id } => {
            Some(RecordKey::Link(note_key(location_id, contact, id)))
        }
        Change::TaskUpsert(SightmillTask { id, .. })
        | Change::TaskCompleted { task_id: id }
        | Change::TaskDeleted { task_id: id } => Some(RecordKey::Link(task_key(location_id, contact, id))),
        Change::TagAdded { tag } | Change::TagRemoved { tag } => {
            Some(RecordKey::Tag(tag_key(location_id, contact, tag)))
        }
        Change::ContactUpsert(_) | Change::ContactDeleted => None,
    };
    Reads { contact: contact_key(location_id, contact), record }
}

/// Plans the first move for `event`: a contact's own event is its [`contact`] job's; a note's,
/// task's or tag's waits for its contact, then is the [`record`] or [`tag`] job's.
pub fn start(event: &Event, known: &Known, location_id: &str, mapping: &Mapping) -> Start {
    let (sightmill_id, at) = (event.contact_id.as_str(), event.updated_at);
    let record = |key, contact_id| record::Target { contact_id, key, link: known.link.as_ref(), at };
    let note = |id: &str| note_key(location_id, sightmill_id, id);
    let task = |id: &str| task_key(location_id, sightmill_id, id);
    let tag = |name: &str, present, contact_id| {
        let key = tag_key(location_id, sightmill_id, name);
        tag::start(contact_id, name, present, key, known.tag.as_ref(), at)
    };
    match &event.change {
        Change::ContactUpsert(contact) => {
            let target =
                ContactTarget { key: contact_key(location_id, sightmill_id), location_id, sightmill_id };
            ContactJob::start(&contact.fields, at, known.contact.as_ref(), target, mapping)
        }
        Change::ContactDeleted => {
            let key = contact_key(location_id, sightmill_id);
            contact::delete(known.contact.as_ref(), at, key, location_id, sightmill_id)
        }
        Change::NoteUpsert(n) => with_contact(known, |id| record::upsert_note(n, record(note(&n.id), id))),
        Change::TaskUpsert(t) => with_contact(known, |id| record::upsert_task(t, record(task(&t.id), id))),
        Change::TaskCompleted { task_id } => {
            with_contact(known, |id| record::complete_task(record(task(task_id), id)))
        }
        Change::NoteDeleted { note_id } => {
            with_contact(known, |id| record::delete(RecordKind::Note, record(note(note_id), id)))
        }
        Change::TaskDeleted { task_id } => {
            with_contact(known, |id| record::delete(RecordKind::Task, record(task(task_id), id)))
        }
        Change::TagAdded { tag: name } => with_contact(known, |id| tag(name, true, id)),
        Change::TagRemoved { tag: name } => with_contact(known, |id| tag(name, false, id)),
    }
}

/// A note's, task's or tag's event, planned with its contact's id in the Contacts API; without
/// one it waits for the contact, or is skipped when the contact was deleted.
fn with_contact(known: &Known, plan: impl FnOnce(ApiId) -> Start) -> Start {
    match &known.contact {
        Some(Link::Live { id, .. }) => plan(id.clone()),
        Some(Link::Deleted { .. }) => {
            finish(Outcome::Skipped { reason: "its contact was deleted".into() }, vec![])
        }
        // The contact's own next event looks up what its create in doubt made (it comes first:
        // events about one contact are applied in SightMill's order).
        Some(Link::InDoubt(_)) => Start::Wait("its contact's create is in doubt".into()),
        None => Start::Wait("its contact is not in the Contacts API yet".into()),
    }
}

fn finish(outcome: Outcome, writes: Vec<Write>) -> Start {
    Start::Finish(Applied { outcome, writes })
}

fn put(key: String, value: &impl serde::Serialize) -> Write {
    Write::Put { key, value: serde_json::to_value(value).expect("records serialise") }
}

fn tombstone(key: String, updated_at: UnixMillis) -> Write {
    put(key, &Link::Deleted { updated_at })
}

/// One event in flight.
#[derive(Debug)]
pub enum Job {
    Contact(Box<ContactJob>),
    DeleteInDoubt(Box<DeleteInDoubt>),
    Single(SingleCall),
    Record(Box<RecordJob>),
}

impl Job {
    /// Interprets the answer to the last request sent.
    pub fn on_answer(&mut self, answer: Answer) -> Next {
        match self {
            Job::Contact(job) => job.on_answer(answer),
            Job::DeleteInDoubt(job) => job.on_answer(answer),
            Job::Single(call) => call.on_answer(answer),
            Job::Record(job) => job.on_answer(answer),
        }
    }

    /// After a failed attempt whose create was sent at `sent_at`: what the id maps must still
    /// learn from it, a link in doubt (its create may have been applied without the worker
    /// hearing of it) or adopted by a lookup, or the link as it was before a create that was
    /// refused (or never sent) after its intent was written.
    pub fn kept_on_failure(&self, sent_at: UnixMillis) -> Option<Write> {
        match self {
            Job::Record(job) => job.kept_on_failure(sent_at),
            Job::Contact(job) => job.kept_on_failure(sent_at),
            Job::DeleteInDoubt(_) | Job::Single(_) => None,
        }
    }

    /// What must be written before the next request is sent: a create's link in doubt
    /// ([`Link::InDoubt`]), so that a create whose answer is lost to a restart of the writer is
    /// looked up, not made again.
    pub fn intent(&self, sent_at: UnixMillis) -> Option<Write> {
        match self {
            Job::Record(job) => job.intent(sent_at),
            Job::Contact(job) => job.intent(sent_at),
            Job::DeleteInDoubt(_) | Job::Single(_) => None,
        }
    }
}

/// A note or task link at `updated_at`; a task keeps its `completed_at`.
fn link_write(key: &str, id: &ApiId, updated_at: UnixMillis, completed_at: Option<UnixMillis>) -> Write {
    put(
        key.to_owned(),
        &Link::Live { id: id.clone(), updated_at, status_tag: None, completed_at, digest: None },
    )
}

/// What a single call's success is recorded as.
#[derive(Debug, Clone)]
enum Remember {
    /// A note or task link to `id` at the event's `updated_at`; a task keeps its `completed_at`.
    Link { key: String, id: ApiId, completed_at: Option<UnixMillis> },
    /// Exactly this link (a task just completed).
    Put { key: String, link: Link },
    /// A tombstone for a deleted record; `clear` lists prefixes of records hanging off it.
    Tombstone { key: String, record: Option<ApiId>, clear: Vec<String> },
    /// A tag's presence.
    Tag { key: String, present: bool },
}

/// What a refusal means for an event. A 400 saying that the call's contact, or the note or task
/// it names (`record`), is not found says it is no longer in the API: a deletion of it was
/// applied but not answered (its retry leaves the tombstone), or made by hand. Nothing is left
/// to change, so the event is skipped. Anything else, a missing custom field, user or location
/// included, is a failure.
fn refused(answer: Answer, record: Option<RecordKind>) -> Next {
    match answer {
        Answer::Rejected { status: 400, message } if gone(&message, record) => {
            let reason = format!("it is no longer in the Contacts API (HTTP 400: {message})");
            Next::Applied(Applied { outcome: Outcome::Skipped { reason }, writes: vec![] })
        }
        other => Next::Failed(Failure::from_answer(other)),
    }
}

/// Whether `message` is the API's "Contact not found", or "Note not found" or "Task not found"
/// about the `record` the call names.
fn gone(message: &str, record: Option<RecordKind>) -> bool {
    let message = case::lowercase(message.trim().trim_end_matches('.'));
    match message.strip_suffix(" not found") {
        Some(what) => what == "contact" || record.is_some_and(|kind| what == kind.noun()),
        None => false,
    }
}

/// A note, task, tag or delete: one call.
#[derive(Debug)]
pub struct SingleCall {
    contact_id: ApiId,
    /// The note or task the call names besides its contact, if any.
    record: Option<RecordKind>,
    action: Action,
    updated_at: UnixMillis,
    remember: Remember,
}

impl SingleCall {
    fn on_answer(&mut self, answer: Answer) -> Next {
        let deleted = self.action == Action::Deleted
            && matches!(&answer, Answer::Rejected { status: 400 | 404, message } if gone(message, self.record));
        match answer {
            Answer::Success(_) => {}
            _ if deleted => {}
            other => return refused(other, self.record),
        }
        let at = self.updated_at;
        let (record_id, writes) = match &self.remember {
            Remember::Link { key, id, completed_at } => {
                (Some(id.clone()), vec![link_write(key, id, at, *completed_at)])
            }
            Remember::Put { key, link } => (link.live_id().cloned(), vec![put(key.clone(), link)]),
            Remember::Tombstone { key, record, clear } => {
                let mut writes = vec![tombstone(key.clone(), at)];
                writes.extend(clear.iter().cloned().map(Write::ClearPrefix));
                (record.clone(), writes)
            }
            Remember::Tag { key, present } => {
                (None, vec![put(key.clone(), &TagState { present: *present, updated_at: at })])
            }
        };
        let outcome =
            Outcome::Applied { action: self.action, contact_id: self.contact_id.clone(), record_id };
        Next::Applied(Applied { outcome, writes })
    }
}

/// Whether an answer to a create leaves it in doubt: no definite answer (a timeout, a network
/// error, a 5xx) or a 422, after which the API may still have made the record (the API docs'
/// issue #64).
fn leaves_in_doubt(answer: &Answer) -> bool {
    matches!(answer, Answer::Unavailable { .. } | Answer::Rejected { status: 422, .. })
}

/// The failure of a create left in doubt: retried, and looked up before it is sent again.
fn unanswered(answer: Answer) -> Failure {
    match answer {
        Answer::Rejected { status, message } => Failure::Retryable {
            detail: format!(
                "HTTP {status}: {message} (the create may still have been applied: it is looked up first)"
            ),
        },
        other => Failure::from_answer(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::plan::test_support::*;
    use serde_json::json;

    #[test]
    fn stale_events_send_nothing() {
        let newer = MS10 + 3_600_000;
        let table = vec![
            (
                event("contact.updated", json!({"id": "c", "updated_at": T10})),
                known_contact(live("c9", newer)),
            ),
            (
                event("contact.created", json!({"id": "c", "updated_at": T10})),
                known_contact(Link::Deleted { updated_at: MS10 }),
            ),
            (
                event("note.updated", json!({"id": "n", "contact_id": "c", "body": "b", "updated_at": T10})),
                Known { contact: Some(live("c9", 0)), link: Some(live("n9", newer)), tag: None },
            ),
            (
                event("note.created", json!({"id": "n", "contact_id": "c", "body": "b", "updated_at": T10})),
                Known {
                    contact: Some(live("c9", 0)),
                    link: Some(Link::Deleted { updated_at: MS10 }),
                    tag: None,
                },
            ),
            (
                event("tag.added", json!({"contact_id": "c", "tag": "vip", "updated_at": T10})),
                Known {
                    contact: Some(live("c9", 0)),
                    link: None,
                    tag: Some(TagState { present: false, updated_at: newer }),
                },
            ),
        ];
        for (event, known) in table {
            match plan(&event, &known) {
                Start::Finish(Applied { outcome: Outcome::Stale, writes }) => assert!(writes.is_empty()),
                other => panic!("{}: {other:?}", event.kind().as_str()),
            }
        }
    }

    #[test]
    fn records_of_a_missing_contact_wait_and_of_a_deleted_one_are_skipped() {
        let note =
            event("note.created", json!({"id": "n", "contact_id": "c", "body": "b", "updated_at": T10}));
        assert!(matches!(plan(&note, &Known::default()), Start::Wait(_)));
        let deleted = known_contact(Link::Deleted { updated_at: 1 });
        assert!(matches!(
            plan(&note, &deleted),
            Start::Finish(Applied { outcome: Outcome::Skipped { .. }, .. })
        ));
    }

    #[test]
    fn a_create_in_doubt_is_looked_up_only_once_it_could_have_been_applied() {
        let doubt = with_link(in_doubt(note_sent("hello")));
        let Some(Link::InDoubt(sent)) = &doubt.link else { panic!() };
        assert_eq!(lookup_not_before(&doubt, 500), Some(sent.sent_at + 500 + DOUBT_SETTLE_MS));
        assert_eq!(lookup_not_before(&with_link(live("N1", 0)), 500), None);
        assert_eq!(lookup_not_before(&Known::default(), 500), None);
    }

    #[test]
    fn a_400_not_found_skips_only_when_the_call_s_own_record_is_gone() {
        #[derive(Debug, PartialEq)]
        enum Then {
            Skipped,
            Deleted,
            Parked,
        }
        let on = |kind: &str, data: Value| event(kind, data);
        let contact_updated = on("contact.updated", json!({"id": "c", "email": "a@b.co", "updated_at": T10}));
        let contact_deleted = on("contact.deleted", json!({"id": "c", "updated_at": T11}));
        let tag_added = on("tag.added", json!({"contact_id": "c", "tag": "vip", "updated_at": T10}));
        let note_updated =
            on("note.updated", json!({"id": "n1", "contact_id": "c", "body": "bye", "updated_at": T11}));
        let note_deleted = on("note.deleted", json!({"id": "n1", "contact_id": "c", "updated_at": T11}));
        let task_updated = on(
            "task.updated",
            json!({"id": "k1", "contact_id": "c", "title": "Call", "due_date": T11, "assigned_to": "u1", "updated_at": T11}),
        );
        let task_completed = on("task.completed", json!({"id": "k1", "contact_id": "c", "updated_at": T11}));
        let contact = known_contact(live("c9", 0));
        let (note, task) = (with_link(live("N1", MS10)), with_link(live("K1", MS10)));
        let looking_up = with_link(in_doubt(note_sent("hello")));
        let table = [
            (&contact_updated, &contact, 400, "Contact not found", Then::Skipped),
            (&contact_updated, &contact, 400, "Custom field not found", Then::Parked),
            (&contact_updated, &contact, 400, "User not found", Then::Parked),
            (&contact_updated, &contact, 400, "Location not found.", Then::Parked),
            (&contact_updated, &contact, 400, "Note not found", Then::Parked),
            (&contact_updated, &contact, 400, "email must be an email", Then::Parked),
            (&contact_deleted, &contact, 400, "Contact not found", Then::Deleted),
            (&contact_deleted, &contact, 404, "Contact not found", Then::Deleted),
            (&contact_deleted, &contact, 400, "Location not found", Then::Parked),
            (&tag_added, &contact, 400, "Contact not found", Then::Skipped),
            (&tag_added, &contact, 400, "Location not found", Then::Parked),
            (&note_created("hello"), &contact, 400, "Contact not found", Then::Skipped),
            (&note_created("hello"), &contact, 400, "Note not found", Then::Parked),
            (&note_created("hello"), &contact, 400, "User not found", Then::Parked),
            (&note_created("hello"), &looking_up, 400, "Contact not found", Then::Skipped),
            (&note_updated, &note, 400, "Note not found", Then::Skipped),
            (&note_updated, &note, 400, "Contact not found", Then::Skipped),
            (&note_updated, &note, 400, "Task not found", Then::Parked),
            (&note_updated, &note, 422, "Note not found", Then::Parked),
            (&note_deleted, &note, 400, "Note not found", Then::Deleted),
            (&note_deleted, &note, 404, "note not found", Then::Deleted),
            (&note_deleted, &note, 400, "Task not found", Then::Parked),
            (&task_updated, &task, 400, "Task not found", Then::Skipped),
            (&task_updated, &task, 400, "User not found", Then::Parked),
            (&task_updated, &task, 400, "assignedTo not found", Then::Parked),
            (&task_updated, &task, 400, "Note not found", Then::Parked),
            (&task_completed, &task, 400, "Task not found", Then::Skipped),
            (&task_completed, &task, 400, "Custom field not found", Then::Parked),
        ];
        for (event, known, status, message, expected) in table {
            let (mut job, _) = send(plan(event, known));
            let answer = Answer::Rejected { status, message: message.into() };
            let then = match job.on_answer(answer) {
                Next::Applied(Applied { outcome: Outcome::Skipped { .. }, writes }) => {
                    // A refused create puts back the link as it was (none here): the intent written
                    // before it goes. Nothing else is written: a pending deletion leaves the tombstone.
                    assert!(writes.iter().all(|w| matches!(w, Write::Delete(_))), "{writes:?}");
                    Then::Skipped
                }
                Next::Applied(Applied {
                    outcome: Outcome::Applied { action: Action::Deleted, .. }, ..
                }) => Then::Deleted,
                Next::Failed(Failure::Rejected { api_status, message: kept }) => {
                    assert_eq!(
                        (api_status, kept.as_str()),
                        (status, message),
                        "parked with the API's message"
                    );
                    Then::Parked
                }
                other => panic!("{other:?}"),
            };
            assert_eq!(then, expected, "{} answered {status} {message:?}", event.kind().as_str());
        }
    }

    #[test]
    fn update_and_delete_answers_may_spell_succeeded_either_way() {
        let updated = event("contact.updated", json!({"id": "c", "email": "a@b.co", "updated_at": T10}));
        let deleted = event("contact.deleted", json!({"id": "c", "updated_at": T11}));
        let note_deleted = event("note.deleted", json!({"id": "n1", "contact_id": "c", "updated_at": T11}));
        let contact = known_contact(live("c9", 0));
        let note = with_link(live("N1", MS10));
        for flag in ["succeeded", "succeded"] {
            let table = [
                (&updated, &contact, json!({flag: true, "contact": {"id": "c9"}}), Action::Updated),
                (&deleted, &contact, json!({flag: true}), Action::Deleted),
                (&note_deleted, &note, json!({flag: true}), Action::Deleted),
            ];
            for (event, known, answer, action) in table {
                let (mut job, _) = send(plan(event, known));
                let done = applied(job.on_answer(Answer::Success(answer)));
                assert!(
                    matches!(done.outcome, Outcome::Applied { action: a, .. } if a == action),
                    "{flag}: {:?}",
                    done.outcome
                );
            }
        }
    }

    #[test]
    fn answers_become_failures_for_the_retry_policy() {
        let event = event("contact.created", json!({"id": "c", "updated_at": T10}));
        let table = vec![
            (
                Answer::transport_failure("no answer within 10000 ms"),
                Failure::Retryable { detail: "no answer within 10000 ms".into() },
            ),
            (
                Answer::RateLimited { retry_after_secs: Some(3) },
                Failure::RateLimited { retry_after_secs: Some(3) },
            ),
            (Answer::TokenRejected, Failure::TokenRejected),
            (
                Answer::Rejected { status: 400, message: "bad email".into() },
                Failure::Rejected { api_status: 400, message: "bad email".into() },
            ),
            (
                Answer::Rejected { status: 422, message: "property x should not exist".into() },
                Failure::Retryable {
                    detail: "HTTP 422: property x should not exist (the create may still have been applied: \
                             it is looked up first)"
                        .into(),
                },
            ),
            (
                Answer::Success(json!({"contact": {"id": "a/b"}})),
                Failure::Rejected {
                    api_status: 201,
                    message: "the create answer carried no usable contact.id".into(),
                },
            ),
        ];
        for (answer, expected) in table {
            let (mut job, _) = send(plan(&event, &Known::default()));
            assert_eq!(job.on_answer(answer), Next::Failed(expected));
        }
        let (mut job, _) = send(plan(&event, &Known::default()));
        assert!(matches!(job.on_answer(Answer::VersionRejected), Next::Failed(Failure::Misconfigured(_))));
    }
}
