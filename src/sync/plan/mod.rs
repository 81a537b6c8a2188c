//! Planning: turns one event, plus what KV knows about its records, into the Contacts API calls
//! that apply it, and interprets each answer until the event is applied or has failed. The shell
//! only reads the keys [`reads`] names, sends what this module plans and writes what it returns.
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

use serde_json::{json, Value};

use crate::case;
use crate::contacts_api::{Answer, ApiId, ApiRequest};
use crate::intake::event::{Change, Event, SightmillNote, SightmillTask};
use crate::sync::contact_lookup::{self, Found, CLOCK_SKEW_MS};
use crate::sync::mapping::{ExistingContacts, Mapping, Purpose};
use crate::sync::records::{
    child_prefixes, contact_key, note_key, tag_key, task_key, Action, CreateInDoubt, Link, Outcome, Sent,
    TagState,
};
use crate::timestamp::{parse_rfc3339, UnixMillis};

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

/// Plans the first move for `event`.
pub fn start(event: &Event, known: &Known, location_id: &str, mapping: &Mapping) -> Start {
    let keys = reads(event, location_id);
    let at = event.updated_at;
    if let Change::ContactUpsert(contact) = &event.change {
        let target = ContactTarget { key: keys.contact, location_id, sightmill_id: &event.contact_id };
        return ContactJob::start(&contact.fields, at, known.contact.as_ref(), target, mapping);
    }
    if let Change::ContactDeleted = &event.change {
        return delete_contact(known.contact.as_ref(), at, keys.contact, location_id, &event.contact_id);
    }
    let contact_id = match &known.contact {
        Some(Link::Live { id, .. }) => id.clone(),
        Some(Link::Deleted { .. }) => {
            return finish(Outcome::Skipped { reason: "its contact was deleted".into() }, vec![])
        }
        // The contact's own next event looks up what its create in doubt made (it comes first:
        // events about one contact are applied in SightMill's order).
        Some(Link::InDoubt(_)) => return Start::Wait("its contact's create is in doubt".into()),
        None => return Start::Wait("its contact is not in the Contacts API yet".into()),
    };
    let record_key = match keys.record {
        Some(RecordKey::Link(key) | RecordKey::Tag(key)) => key,
        None => unreachable!("every note, task and tag event has a record key"),
    };
    let link = known.link.as_ref();
    let record =
        |kind, completed_at| NewRecord { kind, key: record_key.clone(), updated_at: at, completed_at };
    let job = |kind, completed_at, then| RecordJob {
        contact_id: contact_id.clone(),
        record: record(kind, completed_at),
        then,
        stage: RecordStage::Creating,
        before: link.cloned(),
    };
    match &event.change {
        Change::NoteUpsert(note) if !is_stale_snapshot(link, at) => {
            let body = json!({ "body": note.body });
            job(RecordKind::Note, None, upsert_then(link, at, body)).start(link)
        }
        Change::TaskUpsert(task) if !is_stale_snapshot(link, at) => {
            let completed_at = link.and_then(Link::completed_at);
            let body = task_body(task, completed_at, at);
            job(RecordKind::Task, completed_at, upsert_then(link, at, body)).start(link)
        }
        Change::TaskCompleted { .. } => match link {
            Some(Link::Live { updated_at, completed_at, .. })
                if *updated_at <= at && completed_at.is_none_or(|done| done < at) =>
            {
                job(RecordKind::Task, None, Then::Complete { snapshot_at: *updated_at }).start(link)
            }
            Some(Link::InDoubt(doubt)) if doubt.updated_at <= at => {
                job(RecordKind::Task, None, Then::Complete { snapshot_at: doubt.updated_at }).start(link)
            }
            None => Start::Wait(TASK_MISSING.into()),
            Some(_) => finish(Outcome::Stale, vec![]),
        },
        Change::NoteDeleted { .. } | Change::TaskDeleted { .. } => {
            let kind = match &event.change {
                Change::NoteDeleted { .. } => RecordKind::Note,
                _ => RecordKind::Task,
            };
            match link {
                Some(link @ (Link::Live { .. } | Link::InDoubt(_))) if link.last_change() <= at => {
                    job(kind, None, Then::Delete).start(Some(link))
                }
                Some(_) => finish(Outcome::Stale, vec![]),
                None => job(kind, None, Then::Delete).start(None),
            }
        }
        Change::NoteUpsert(_) | Change::TaskUpsert(_) => finish(Outcome::Stale, vec![]),
        Change::TagAdded { tag } | Change::TagRemoved { tag } => {
            if known.tag.as_ref().is_some_and(|state| state.updated_at > at) {
                return finish(Outcome::Stale, vec![]);
            }
            let present = matches!(event.change, Change::TagAdded { .. });
            let tags = [tag.clone()];
            let (request, action) = if present {
                (ApiRequest::add_tags(&contact_id, &tags), Action::TagAdded)
            } else {
                (ApiRequest::remove_tags(&contact_id, &tags), Action::TagRemoved)
            };
            let remember = Remember::Tag { key: record_key, present };
            let call = SingleCall { contact_id, record: None, action, updated_at: at, remember };
            Start::Send(Job::Single(call), request)
        }
        Change::ContactUpsert(_) | Change::ContactDeleted => unreachable!("handled above"),
    }
}

const TASK_MISSING: &str = "its task is not in the Contacts API yet";

/// A note or task snapshot is stale when a newer version, or a deletion of the same one, is on
/// record.
fn is_stale_snapshot(link: Option<&Link>, at: UnixMillis) -> bool {
    match link {
        Some(Link::Deleted { updated_at }) => *updated_at >= at,
        Some(link) => link.updated_at() > at,
        None => false,
    }
}

/// A snapshot creates or updates; the create in doubt's own version only adopts what it made.
fn upsert_then(link: Option<&Link>, at: UnixMillis, body: Value) -> Then {
    let adopt = matches!(link, Some(Link::InDoubt(doubt)) if doubt.updated_at == at);
    Then::Upsert { body, adopt }
}

/// The task as the API takes it. A completion newer than the snapshot (`completed_at` > `at`)
/// keeps the task completed: the snapshot predates it.
fn task_body(task: &SightmillTask, completed_at: Option<UnixMillis>, at: UnixMillis) -> Value {
    let completed = task.completed || completed_at.is_some_and(|done| done > at);
    let mut body = json!({ "title": task.title, "dueDate": task.due_date, "completed": completed });
    if let Some(text) = &task.body {
        body["body"] = json!(text);
    }
    if let Some(user) = &task.assigned_to {
        body["assignedTo"] = json!(user);
    }
    body
}

fn delete_contact(
    link: Option<&Link>,
    at: UnixMillis,
    key: String,
    location_id: &str,
    sightmill_id: &str,
) -> Start {
    let clear = child_prefixes(location_id, sightmill_id).to_vec();
    match link {
        Some(link) if link.updated_at() > at => finish(Outcome::Stale, vec![]),
        Some(Link::Live { id, .. }) => {
            let job = Job::Single(SingleCall {
                contact_id: id.clone(),
                record: None,
                action: Action::Deleted,
                updated_at: at,
                remember: Remember::Tombstone { key, record: None, clear },
            });
            Start::Send(job, ApiRequest::delete_contact(id))
        }
        Some(Link::InDoubt(doubt)) => {
            let request = contact_lookup::search(location_id, sightmill_id, doubt);
            let job = DeleteInDoubt {
                sightmill_id: sightmill_id.to_owned(),
                doubt: doubt.clone(),
                key,
                clear,
                updated_at: at,
                call: None,
            };
            Start::Send(Job::DeleteInDoubt(Box::new(job)), request)
        }
        Some(Link::Deleted { .. }) => finish(Outcome::Stale, vec![]),
        None => finish(
            Outcome::Skipped { reason: "the contact was never synced".into() },
            vec![tombstone(key, at)],
        ),
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
    put(key.to_owned(), &Link::Live { id: id.clone(), updated_at, status_tag: None, completed_at })
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

/// Notes or tasks: where the API keeps them and how a created one is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Note,
    Task,
}

impl RecordKind {
    /// The create (no `id`) or the update of `id`.
    fn upsert(self, contact_id: &ApiId, id: Option<&ApiId>, body: Value) -> ApiRequest {
        match self {
            RecordKind::Note => ApiRequest::upsert_note(contact_id, id, body),
            RecordKind::Task => ApiRequest::upsert_task(contact_id, id, body),
        }
    }

    fn delete(self, contact_id: &ApiId, id: &ApiId) -> ApiRequest {
        match self {
            RecordKind::Note => ApiRequest::delete_note(contact_id, id),
            RecordKind::Task => ApiRequest::delete_task(contact_id, id),
        }
    }

    /// GET /contacts/{contactId}/notes or /tasks: every one the contact has.
    fn list(self, contact_id: &ApiId) -> ApiRequest {
        ApiRequest::get(format!("/contacts/{contact_id}/{}", self.plural()))
    }

    fn plural(self) -> &'static str {
        match self {
            RecordKind::Note => "notes",
            RecordKind::Task => "tasks",
        }
    }

    /// As the API's messages name it ("Note not found").
    fn noun(self) -> &'static str {
        match self {
            RecordKind::Note => "note",
            RecordKind::Task => "task",
        }
    }

    /// Where a create's answer carries the new id.
    fn id_at(self) -> &'static str {
        match self {
            RecordKind::Note => "/note/id",
            RecordKind::Task => "/task/id",
        }
    }

    /// Whether `found` (from the list) is what a create that sent `sent` makes: a note by its
    /// body, a task by its title, body and due date (as an instant: the API may reformat it).
    fn made_by(self, found: &Value, sent: &Sent) -> bool {
        let same = |field, sent: &Option<String>| text(found, field) == sent.as_deref();
        match self {
            RecordKind::Note => same("body", &sent.body),
            RecordKind::Task => {
                let (due, sent_due) = (text(found, "dueDate"), sent.due_date.as_deref());
                let same_due = due == sent_due
                    || due
                        .and_then(parse_rfc3339)
                        .is_some_and(|at| sent_due.and_then(parse_rfc3339) == Some(at));
                same("title", &sent.title) && same("body", &sent.body) && same_due
            }
        }
    }

    /// The id of the newest record in a list answer that the create in doubt could have made;
    /// `Err` when the answer has no list.
    fn find(self, answer: &Value, doubt: &CreateInDoubt) -> Result<Option<ApiId>, String> {
        let Some(records) = answer.get(self.plural()).and_then(Value::as_array) else {
            return Err(format!("the lookup's answer carried no `{}` list", self.plural()));
        };
        // A note says when it was added; one added well before the create was sent is another.
        let added = |record: &Value| record.get("dateAdded").and_then(Value::as_str).and_then(parse_rfc3339);
        let recent = |record: &&Value| added(record).is_none_or(|at| at >= doubt.sent_at - CLOCK_SKEW_MS);
        let found = records
            .iter()
            .filter(|record| self.made_by(record, &doubt.sent))
            .filter(recent)
            .filter_map(|record| {
                let id = record.get("id").and_then(Value::as_str).and_then(ApiId::parse)?;
                Some((added(record).unwrap_or(UnixMillis::MIN), id))
            })
            .max_by_key(|(added, _)| *added);
        Ok(found.map(|(_, id)| id))
    }
}

/// What a create with `body` sent that recognises what it made.
fn sent(body: &Value) -> Sent {
    let field = |name| text(body, name).map(str::to_owned);
    Sent { title: field("title"), body: field("body"), due_date: field("dueDate"), ..Sent::default() }
}

/// A text field of a record, absent when missing, null or empty.
fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str).filter(|text| !text.is_empty())
}

/// Where a note or task is remembered, and as of when.
#[derive(Debug)]
struct NewRecord {
    kind: RecordKind,
    /// Its link's KV key.
    key: String,
    /// The event's `updated_at`.
    updated_at: UnixMillis,
    /// A task's completion on record (kept on the link).
    completed_at: Option<UnixMillis>,
}

/// What a note or task event does once its record's id is known, or known to be missing.
#[derive(Debug)]
enum Then {
    /// Update the record with `body`, or create it. `adopt`: the event is the version of the
    /// create in doubt, so the record that create made is already what it would send.
    Upsert {
        body: Value,
        adopt: bool,
    },
    Delete,
    /// Complete the task, whose link is at `snapshot_at`.
    Complete {
        snapshot_at: UnixMillis,
    },
}

#[derive(Debug)]
enum RecordStage {
    /// Looking the contact's notes or tasks up for what the create in doubt may have made.
    LookingUp(CreateInDoubt),
    /// The create is sent (or about to be).
    Creating,
    /// The create got no definite answer: it may have been applied.
    Unanswered,
    /// The event's own call on the record; `adopted`: the link to the record the lookup found,
    /// at the version in doubt.
    Following { call: SingleCall, adopted: Option<Link> },
}

/// A note or task event. Creates take no idempotency key, so a create that got no definite answer
/// leaves the record's link in doubt ([`Link::InDoubt`]); every later event about the record
/// first looks the contact's notes or tasks up, adopts the one that create made, and then does its
/// own part: updates, deletes or completes it, or creates it when nothing matched.
#[derive(Debug)]
pub struct RecordJob {
    contact_id: ApiId,
    record: NewRecord,
    then: Then,
    stage: RecordStage,
    /// The record's link when the event was planned: what it is again when a create is refused.
    before: Option<Link>,
}

impl RecordJob {
    /// The first move, given the record's link (already checked not to make the event stale).
    fn start(mut self, link: Option<&Link>) -> Start {
        let next = match link {
            Some(Link::InDoubt(doubt)) => {
                self.stage = RecordStage::LookingUp(doubt.clone());
                Next::Send(self.record.kind.list(&self.contact_id))
            }
            Some(Link::Live { id, .. }) => self.found(id.clone(), None),
            Some(Link::Deleted { .. }) | None => self.missing(),
        };
        match next {
            Next::Send(request) => Start::Send(Job::Record(Box::new(self)), request),
            Next::Applied(applied) => Start::Finish(applied),
            Next::Wait(reason) => Start::Wait(reason),
            Next::Failed(_) => unreachable!("nothing was sent, so nothing failed"),
        }
    }

    /// The event's own call on the record `id`; `adopted_at`: the version in doubt, when the
    /// lookup found it.
    fn found(&mut self, id: ApiId, adopted_at: Option<UnixMillis>) -> Next {
        let (kind, contact_id) = (self.record.kind, &self.contact_id);
        let (request, action, remember) = match &self.then {
            Then::Upsert { adopt: true, .. } => return self.applied(id, Action::Adopted),
            Then::Upsert { body, .. } => {
                let remember = Remember::Link {
                    key: self.record.key.clone(),
                    id: id.clone(),
                    completed_at: self.record.completed_at,
                };
                (kind.upsert(contact_id, Some(&id), body.clone()), Action::Updated, remember)
            }
            Then::Delete => {
                let remember = Remember::Tombstone {
                    key: self.record.key.clone(),
                    record: Some(id.clone()),
                    clear: vec![],
                };
                (kind.delete(contact_id, &id), Action::Deleted, remember)
            }
            Then::Complete { snapshot_at } => {
                let link = Link::Live {
                    id: id.clone(),
                    updated_at: *snapshot_at,
                    status_tag: None,
                    completed_at: Some(self.record.updated_at),
                };
                let remember = Remember::Put { key: self.record.key.clone(), link };
                (ApiRequest::complete_task(contact_id, &id), Action::Completed, remember)
            }
        };
        let call = SingleCall {
            contact_id: contact_id.clone(),
            record: Some(kind),
            action,
            updated_at: self.record.updated_at,
            remember,
        };
        let adopted =
            adopted_at.map(|updated_at| Link::Live { id, updated_at, status_tag: None, completed_at: None });
        self.stage = RecordStage::Following { call, adopted };
        Next::Send(request)
    }

    /// No record in the API: create it, remember its deletion, or wait for the task.
    fn missing(&mut self) -> Next {
        match &self.then {
            Then::Upsert { body, .. } => {
                self.stage = RecordStage::Creating;
                Next::Send(self.record.kind.upsert(&self.contact_id, None, body.clone()))
            }
            Then::Delete => Next::Applied(Applied {
                outcome: Outcome::Skipped { reason: "it was never synced".into() },
                writes: vec![tombstone(self.record.key.clone(), self.record.updated_at)],
            }),
            Then::Complete { .. } => Next::Wait(TASK_MISSING.into()),
        }
    }

    fn on_answer(&mut self, answer: Answer) -> Next {
        match (&mut self.stage, answer) {
            (RecordStage::Following { call, .. }, answer) => call.on_answer(answer),
            (RecordStage::LookingUp(doubt), Answer::Success(list)) => {
                let version = doubt.updated_at;
                match self.record.kind.find(&list, doubt) {
                    Ok(Some(id)) => self.found(id, Some(version)),
                    Ok(None) => self.missing(),
                    Err(detail) => Next::Failed(Failure::Retryable { detail }),
                }
            }
            (RecordStage::Creating, Answer::Success(answer)) => {
                let id_at = self.record.kind.id_at();
                match answer.pointer(id_at).and_then(Value::as_str).and_then(ApiId::parse) {
                    Some(id) => self.applied(id, Action::Created),
                    None => {
                        // Applied, but with no id to remember: the record stays in doubt.
                        self.stage = RecordStage::Unanswered;
                        let message = format!("the answer carried no usable id at {id_at}");
                        Next::Failed(Failure::Rejected { api_status: 200, message })
                    }
                }
            }
            (stage @ RecordStage::Creating, answer) if leaves_in_doubt(&answer) => {
                *stage = RecordStage::Unanswered;
                Next::Failed(unanswered(answer))
            }
            // Refused: nothing was created, and the link is what it was before the create.
            (RecordStage::Creating, answer) => match refused(answer, None) {
                Next::Applied(mut skipped) => {
                    skipped.writes.push(self.restore());
                    Next::Applied(skipped)
                }
                other => other,
            },
            // A lookup or a create names only the contact.
            (_, answer) => refused(answer, None),
        }
    }

    fn applied(&self, id: ApiId, action: Action) -> Next {
        let NewRecord { key, updated_at, completed_at, .. } = &self.record;
        let writes = vec![link_write(key, &id, *updated_at, *completed_at)];
        let outcome = Outcome::Applied { action, contact_id: self.contact_id.clone(), record_id: Some(id) };
        Next::Applied(Applied { outcome, writes })
    }

    /// What the link must say after a failed attempt that started at `attempt_started`: in doubt
    /// when this attempt's create went unanswered; the adopted record when the call after the
    /// lookup failed (so that the retry needs no lookup).
    fn kept_on_failure(&self, attempt_started: UnixMillis) -> Option<Write> {
        match &self.stage {
            RecordStage::Unanswered => Some(self.in_doubt(attempt_started)),
            RecordStage::Following { adopted, .. } => {
                adopted.as_ref().map(|link| put(self.record.key.clone(), link))
            }
            RecordStage::Creating => Some(self.restore()),
            RecordStage::LookingUp(_) => None,
        }
    }

    /// Before a request is sent: the create's link in doubt, written ahead of the create so that
    /// an answer lost even to a restart of the writer leaves the record known to be in doubt.
    fn intent(&self, attempt_started: UnixMillis) -> Option<Write> {
        matches!(self.stage, RecordStage::Creating).then(|| self.in_doubt(attempt_started))
    }

    /// The link in doubt after this event's create was sent in an attempt begun at `attempt_started`.
    fn in_doubt(&self, attempt_started: UnixMillis) -> Write {
        let Then::Upsert { body, .. } = &self.then else { unreachable!("only an upsert creates") };
        let doubt = CreateInDoubt {
            updated_at: self.record.updated_at,
            sent_at: attempt_started,
            sent: Box::new(sent(body)),
        };
        put(self.record.key.clone(), &Link::InDoubt(doubt))
    }

    /// The link as it was when the event was planned.
    fn restore(&self) -> Write {
        let key = self.record.key.clone();
        match &self.before {
            Some(link) => put(key, link),
            None => Write::Delete(key),
        }
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

/// Where a contact event's contact is remembered, and in which location.
pub struct ContactTarget<'a> {
    /// Its link's key.
    pub key: String,
    pub location_id: &'a str,
    pub sightmill_id: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Searching for what the create in doubt made.
    LookingUp(CreateInDoubt),
    /// Asking the location for a contact with the same email or phone (`existing_contacts: adopt`).
    Matching,
    /// The create is sent (or about to be).
    Creating,
    /// The create got no definite answer: it may have been applied.
    Unanswered,
    Updating {
        contact_id: ApiId,
        adopted: bool,
    },
    /// Swapping the status tag after the contact was written.
    Tagging {
        contact_id: ApiId,
        action: Action,
    },
}

/// A contact create or update, with the follow-up calls that swap its status tag. A contact whose
/// create is in doubt is searched for first ([`contact_lookup`]) and adopted when found.
#[derive(Debug)]
pub struct ContactJob {
    key: String,
    sightmill_id: String,
    location_id: String,
    update_fields: serde_json::Map<String, Value>,
    /// The create's fields, when the contact may have to be created.
    create: Option<serde_json::Map<String, Value>>,
    /// The custom field that carries the SightMill id on create.
    id_field: Option<String>,
    updated_at: UnixMillis,
    old_tag: Option<String>,
    new_tag: Option<String>,
    stage: Stage,
    follow_ups: Vec<ApiRequest>,
    /// The contact's link when the event was planned: what it is again when a create is refused.
    before: Option<Link>,
    /// The link to the contact a search adopted, at the version in doubt: kept if a later call
    /// of this attempt fails, so that the retry needs no search.
    adopted: Option<Link>,
    /// Whether this attempt sent (or is about to send) a create.
    created: bool,
}

impl ContactJob {
    fn start(
        fields: &serde_json::Map<String, Value>,
        at: UnixMillis,
        link: Option<&Link>,
        target: ContactTarget,
        mapping: &Mapping,
    ) -> Start {
        if link.is_some_and(|link| {
            link.updated_at() > at || matches!(link, Link::Deleted { updated_at } if *updated_at == at)
        }) {
            return finish(Outcome::Stale, vec![]);
        }
        let mapped =
            |purpose| mapping.apply(fields, purpose).map_err(|e| format!("mapping refused the contact: {e}"));
        let update = match mapped(Purpose::Update) {
            Ok(update) => update,
            Err(reason) => return Start::Park(reason),
        };
        let create = match link {
            Some(Link::Live { .. }) => None,
            _ => match mapped(Purpose::Create) {
                Ok(create) => Some(create_fields(create.fields, target.sightmill_id, mapping)),
                Err(reason) => return Start::Park(reason),
            },
        };
        let old_tag = match link {
            Some(Link::Live { status_tag, .. }) => status_tag.clone(),
            // What the create in doubt carried, if it was applied.
            Some(Link::InDoubt(doubt)) => doubt.sent.tag.clone(),
            _ => None,
        };
        let mut job = ContactJob {
            key: target.key,
            sightmill_id: target.sightmill_id.to_owned(),
            location_id: target.location_id.to_owned(),
            update_fields: update.fields,
            create,
            id_field: mapping.sightmill_id_field().map(str::to_owned),
            updated_at: at,
            new_tag: update.status_tag.after(old_tag.clone()),
            old_tag,
            stage: Stage::Creating,
            follow_ups: vec![],
            before: link.cloned(),
            adopted: None,
            created: false,
        };
        let request = match link {
            Some(Link::Live { id, .. }) => job.update(id.clone(), false),
            Some(Link::InDoubt(doubt)) => {
                job.stage = Stage::LookingUp(doubt.clone());
                contact_lookup::search(target.location_id, target.sightmill_id, doubt)
            }
            _ => match job.create.as_ref().and_then(|create| match mapping.existing_contacts() {
                ExistingContacts::Adopt => contact_lookup::duplicate_search(target.location_id, create),
                ExistingContacts::Create => None,
            }) {
                Some(search) => {
                    job.stage = Stage::Matching;
                    search
                }
                None => job.send_create(),
            },
        };
        Start::Send(Job::Contact(Box::new(job)), request)
    }

    fn on_answer(&mut self, answer: Answer) -> Next {
        match (self.stage.clone(), answer) {
            (Stage::LookingUp(doubt), Answer::Success(list)) => {
                match contact_lookup::find(&list, &self.sightmill_id, &doubt) {
                    Ok(Found::One(id)) => self.adopt(id, &doubt),
                    Ok(Found::Nothing) => Next::Send(self.send_create()),
                    Ok(Found::Ambiguous(first, second)) => Next::Failed(Failure::Rejected {
                        api_status: 200,
                        message: format!(
                            "contacts {first} and {second} both match what its create in doubt sent; \
                             delete the one it should not be and replay the event"
                        ),
                    }),
                    Err(detail) => Next::Failed(Failure::Retryable { detail }),
                }
            }
            (Stage::Matching, Answer::Success(answer)) => match contact_lookup::duplicate_found(&answer) {
                Ok(Some(id)) => Next::Send(self.update(id, true)),
                Ok(None) => Next::Send(self.send_create()),
                Err(detail) => Next::Failed(Failure::Retryable { detail }),
            },
            (Stage::Creating, Answer::Success(body)) => {
                match body.pointer("/contact/id").and_then(Value::as_str).and_then(ApiId::parse) {
                    // The create carried the status tag in its body: nothing to swap.
                    Some(id) => self.applied(id, Action::Created),
                    None => {
                        // Applied, but with no id to remember: the contact stays in doubt.
                        self.stage = Stage::Unanswered;
                        let message = "the create answer carried no usable contact.id".into();
                        Next::Failed(Failure::Rejected { api_status: 201, message })
                    }
                }
            }
            (Stage::Creating, Answer::Duplicate(contact_id)) => {
                // The location refuses duplicates and names the contact it holds: the create made
                // nothing, so the old tag is the one that contact has from before, if any.
                self.old_tag = None;
                Next::Send(self.update(contact_id, true))
            }
            (Stage::Creating, answer) if leaves_in_doubt(&answer) => {
                self.stage = Stage::Unanswered;
                Next::Failed(unanswered(answer))
            }
            (Stage::Updating { contact_id, adopted }, Answer::Success(_)) => {
                let action = if adopted { Action::Adopted } else { Action::Updated };
                self.queue_tag_swap(&contact_id);
                self.stage = Stage::Tagging { contact_id, action };
                self.next_follow_up()
            }
            (Stage::Tagging { .. }, Answer::Success(_)) => self.next_follow_up(),
            (_, answer) => refused(answer, None),
        }
    }

    /// The contact a search found for the create in doubt: adopted as it is when the event is
    /// that create's own version, updated when the event is newer.
    fn adopt(&mut self, id: ApiId, doubt: &CreateInDoubt) -> Next {
        if doubt.updated_at == self.updated_at {
            return self.applied(id, Action::Adopted);
        }
        let (updated_at, status_tag) = (doubt.updated_at, doubt.sent.tag.clone());
        self.adopted = Some(Link::Live { id: id.clone(), updated_at, status_tag, completed_at: None });
        Next::Send(self.update(id, true))
    }

    fn update(&mut self, contact_id: ApiId, adopted: bool) -> ApiRequest {
        let request = ApiRequest::update_contact(&contact_id, self.update_fields.clone());
        self.stage = Stage::Updating { contact_id, adopted };
        request
    }

    fn send_create(&mut self) -> ApiRequest {
        self.stage = Stage::Creating;
        self.created = true;
        let fields = self.create.clone().expect("a contact that may be created has its create planned");
        ApiRequest::create_contact(&self.location_id, fields)
    }

    /// Before the create is sent: the contact's link in doubt.
    fn intent(&self, sent_at: UnixMillis) -> Option<Write> {
        matches!(self.stage, Stage::Creating).then(|| self.in_doubt(sent_at))
    }

    /// What the link must say after a failed attempt: in doubt when its create went unanswered;
    /// the contact a search adopted; else, when this attempt wrote a create's intent, the link as
    /// it was (the create was refused, or the contact it named as a duplicate was not updated).
    fn kept_on_failure(&self, sent_at: UnixMillis) -> Option<Write> {
        match (&self.stage, &self.adopted) {
            (Stage::Unanswered, _) => Some(self.in_doubt(sent_at)),
            (_, Some(link)) => Some(put(self.key.clone(), link)),
            _ if self.created => Some(self.restore()),
            _ => None,
        }
    }

    fn in_doubt(&self, sent_at: UnixMillis) -> Write {
        let create = self.create.as_ref().expect("only a planned create is in doubt");
        let sent = Box::new(contact_lookup::sent(create, self.id_field.as_deref()));
        put(self.key.clone(), &Link::InDoubt(CreateInDoubt { updated_at: self.updated_at, sent_at, sent }))
    }

    fn restore(&self) -> Write {
        match &self.before {
            Some(link) => put(self.key.clone(), link),
            None => Write::Delete(self.key.clone()),
        }
    }

    fn queue_tag_swap(&mut self, contact_id: &ApiId) {
        if self.old_tag == self.new_tag {
            return;
        }
        // Sent in reverse: the old tag goes first, then the new one arrives.
        if let Some(tag) = &self.new_tag {
            self.follow_ups.push(ApiRequest::add_tags(contact_id, std::slice::from_ref(tag)));
        }
        if let Some(tag) = &self.old_tag {
            self.follow_ups.push(ApiRequest::remove_tags(contact_id, std::slice::from_ref(tag)));
        }
    }

    fn next_follow_up(&mut self) -> Next {
        match (self.follow_ups.pop(), &self.stage) {
            (Some(request), _) => Next::Send(request),
            (None, Stage::Tagging { contact_id, action }) => self.applied(contact_id.clone(), *action),
            (None, _) => unreachable!("follow-ups run only in the tagging stage"),
        }
    }

    fn applied(&self, contact_id: ApiId, action: Action) -> Next {
        let link = Link::Live {
            id: contact_id.clone(),
            updated_at: self.updated_at,
            status_tag: self.new_tag.clone(),
            completed_at: None,
        };
        Next::Applied(Applied {
            outcome: Outcome::Applied { action, contact_id, record_id: None },
            writes: vec![put(self.key.clone(), &link)],
        })
    }
}

/// A create's mapped `fields`, with the SightMill id in its custom field when the mapping has one.
fn create_fields(
    mut fields: serde_json::Map<String, Value>,
    sightmill_id: &str,
    mapping: &Mapping,
) -> serde_json::Map<String, Value> {
    if let Some(entry) = mapping.sightmill_id_entry(sightmill_id) {
        let custom = fields.entry("customFields").or_insert_with(|| Value::Array(vec![]));
        if let Some(list) = custom.as_array_mut() {
            list.push(entry);
        }
    }
    fields
}

/// A `contact.deleted` for a contact whose create is in doubt: the search finds what the create
/// made and deletes it, or remembers the deletion when it made nothing.
#[derive(Debug)]
pub struct DeleteInDoubt {
    sightmill_id: String,
    doubt: CreateInDoubt,
    /// The contact's link key, and the prefixes of the records hanging off it.
    key: String,
    clear: Vec<String>,
    updated_at: UnixMillis,
    /// The delete, once the search found the contact.
    call: Option<SingleCall>,
}

impl DeleteInDoubt {
    fn on_answer(&mut self, answer: Answer) -> Next {
        if let Some(call) = &mut self.call {
            return call.on_answer(answer);
        }
        let list = match answer {
            Answer::Success(list) => list,
            other => return refused(other, None),
        };
        match contact_lookup::find(&list, &self.sightmill_id, &self.doubt) {
            Ok(Found::One(id)) => {
                let request = ApiRequest::delete_contact(&id);
                self.call = Some(SingleCall {
                    contact_id: id,
                    record: None,
                    action: Action::Deleted,
                    updated_at: self.updated_at,
                    remember: Remember::Tombstone {
                        key: self.key.clone(),
                        record: None,
                        clear: self.clear.clone(),
                    },
                });
                Next::Send(request)
            }
            Ok(Found::Nothing) => {
                let mut writes = vec![tombstone(self.key.clone(), self.updated_at)];
                writes.extend(self.clear.iter().cloned().map(Write::ClearPrefix));
                let reason = "its create in doubt was never applied".into();
                Next::Applied(Applied { outcome: Outcome::Skipped { reason }, writes })
            }
            Ok(Found::Ambiguous(first, second)) => Next::Failed(Failure::Rejected {
                api_status: 200,
                message: format!("contacts {first} and {second} both match what its create in doubt sent"),
            }),
            Err(detail) => Next::Failed(Failure::Retryable { detail }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::Method;
    use crate::intake::event::parse_event;

    const LOC: &str = "loc-1";
    const T10: &str = "2026-11-27T10:00:00Z";
    const T11: &str = "2026-11-27T11:00:00Z";
    const MS10: UnixMillis = 1_795_773_600_000;

    fn event(kind: &str, data: Value) -> Event {
        let body = json!({"type": kind, "timestamp": T10, "data": data});
        parse_event(body.to_string().as_bytes()).unwrap()
    }

    fn id(text: &str) -> ApiId {
        ApiId::parse(text).unwrap()
    }

    fn live(text: &str, updated_at: UnixMillis) -> Link {
        Link::Live { id: id(text), updated_at, status_tag: None, completed_at: None }
    }

    fn known_contact(link: Link) -> Known {
        Known { contact: Some(link), ..Known::default() }
    }

    fn send(start: Start) -> (Job, ApiRequest) {
        match start {
            Start::Send(job, request) => (job, request),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn applied(next: Next) -> Applied {
        match next {
            Next::Applied(applied) => applied,
            other => panic!("expected applied, got {other:?}"),
        }
    }

    fn plan(event: &Event, known: &Known) -> Start {
        start(event, known, LOC, &Mapping::default())
    }

    #[test]
    fn an_unmapped_contact_is_created_and_linked() {
        let event = event("contact.created", json!({"id": "sm_1", "email": "A@b.co", "updated_at": T10}));
        let (mut job, request) = send(plan(&event, &Known::default()));
        assert_eq!((request.method, request.path.as_str()), (Method::Post, "/contacts/"));
        assert_eq!(request.body, Some(json!({"email": "a@b.co", "locationId": LOC})));
        let done = applied(job.on_answer(Answer::Success(json!({"contact": {"id": "new1"}}))));
        assert_eq!(
            done.outcome,
            Outcome::Applied { action: Action::Created, contact_id: id("new1"), record_id: None }
        );
        assert_eq!(done.writes, vec![put(contact_key(LOC, "sm_1"), &live("new1", MS10))]);
    }

    #[test]
    fn a_mapped_contact_is_updated_and_a_reported_duplicate_adopted() {
        let event = event("contact.updated", json!({"id": "sm_1", "phone": null, "updated_at": T10}));
        let (mut job, request) = send(plan(&event, &known_contact(live("c9", MS10))));
        assert_eq!((request.method, request.path.as_str()), (Method::Put, "/contacts/c9"));
        assert_eq!(request.body, Some(json!({"phone": null})));
        assert!(matches!(
            applied(job.on_answer(Answer::Success(json!({})))).outcome,
            Outcome::Applied { action: Action::Updated, .. }
        ));

        let (mut job, _) = send(plan(&event, &Known::default()));
        let Next::Send(update) = job.on_answer(Answer::Duplicate(id("old7"))) else { panic!() };
        assert_eq!(update.path, "/contacts/old7");
        let done = applied(job.on_answer(Answer::Success(json!({}))));
        assert!(
            matches!(done.outcome, Outcome::Applied { action: Action::Adopted, ref contact_id, .. } if *contact_id == id("old7"))
        );
    }

    #[test]
    fn a_status_tag_is_swapped_through_the_tags_endpoints() {
        let mapping =
            Mapping::parse(r#"{"fields": [], "status": {"to": "tag", "prefix": "status:"}}"#).unwrap();
        let event = event("contact.updated", json!({"id": "sm_1", "status": "customer", "updated_at": T10}));
        let link = Link::Live {
            id: id("c9"),
            updated_at: MS10,
            status_tag: Some("status:lead".into()),
            completed_at: None,
        };
        let (mut job, put_request) = send(start(&event, &known_contact(link), LOC, &mapping));
        assert_eq!(put_request.body, Some(json!({})), "tags never go into a PUT");
        let Next::Send(remove) = job.on_answer(Answer::Success(json!({}))) else { panic!() };
        assert_eq!(
            (remove.method, remove.body.clone()),
            (Method::Delete, Some(json!({"tags": ["status:lead"]})))
        );
        let Next::Send(add) = job.on_answer(Answer::Success(json!({}))) else { panic!() };
        assert_eq!(
            (add.method, add.body.clone()),
            (Method::Post, Some(json!({"tags": ["status:customer"]})))
        );
        let done = applied(job.on_answer(Answer::Success(json!({}))));
        let stored: Link = match &done.writes[0] {
            Write::Put { value, .. } => serde_json::from_value(value.clone()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            stored,
            Link::Live {
                id: id("c9"),
                updated_at: MS10,
                status_tag: Some("status:customer".into()),
                completed_at: None
            }
        );
    }

    #[test]
    fn an_update_without_a_status_keeps_the_status_tag() {
        let mapping =
            Mapping::parse(r#"{"fields": [], "status": {"to": "tag", "prefix": "status:"}}"#).unwrap();
        let event = event("contact.updated", json!({"id": "sm_1", "email": "a@b.co", "updated_at": T10}));
        let tagged = Some("status:lead".to_owned());
        let link = Link::Live { id: id("c9"), updated_at: 0, status_tag: tagged.clone(), completed_at: None };
        let (mut job, _) = send(start(&event, &known_contact(link), LOC, &mapping));
        let done = applied(job.on_answer(Answer::Success(json!({}))));
        let Write::Put { value, .. } = &done.writes[0] else { panic!("{:?}", done.writes) };
        let stored: Link = serde_json::from_value(value.clone()).unwrap();
        assert!(
            matches!(stored, Link::Live { status_tag, .. } if status_tag == tagged),
            "no tag call, the tag kept"
        );
    }

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
    fn a_contact_the_mapping_refuses_is_parked() {
        let mapping = Mapping::parse(r#"{"fields": [{"from": "phone", "to": "phone", "transforms": ["e164"]}], "default_country_code": "1"}"#).unwrap();
        let event = event("contact.created", json!({"id": "c", "phone": "call me", "updated_at": T10}));
        assert!(
            matches!(start(&event, &Known::default(), LOC, &mapping), Start::Park(reason) if reason.contains("field `phone`"))
        );
    }

    #[test]
    fn deleting_a_contact_leaves_a_tombstone_and_clears_its_records() {
        let event = event("contact.deleted", json!({"id": "sm_1", "updated_at": T11}));
        let (mut job, request) = send(plan(&event, &known_contact(live("c9", MS10))));
        assert_eq!((request.method, request.path.as_str()), (Method::Delete, "/contacts/c9"));
        let gone = Answer::Rejected { status: 400, message: "Contact not found".into() };
        let done = applied(job.on_answer(gone));
        assert!(matches!(done.outcome, Outcome::Applied { action: Action::Deleted, .. }));
        assert_eq!(done.writes.len(), 4);
        assert_eq!(done.writes[0], tombstone(contact_key(LOC, "sm_1"), MS10 + 3_600_000));
        assert_eq!(done.writes[1], Write::ClearPrefix("note:loc-1:sm_1:".into()));

        match plan(&event, &Known::default()) {
            Start::Finish(Applied { outcome: Outcome::Skipped { .. }, writes }) => {
                assert_eq!(writes.len(), 1)
            }
            other => panic!("{other:?}"),
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
    fn notes_are_created_then_updated_then_deleted() {
        let contact = Some(live("c9", 0));
        let created =
            event("note.created", json!({"id": "n1", "contact_id": "c", "body": "hello", "updated_at": T10}));
        let (mut job, request) =
            send(plan(&created, &Known { contact: contact.clone(), ..Known::default() }));
        assert_eq!((request.method, request.path.as_str()), (Method::Post, "/contacts/c9/notes"));
        assert_eq!(request.body, Some(json!({"body": "hello"})));
        let done = applied(job.on_answer(Answer::Success(json!({"note": {"id": "N1"}}))));
        assert_eq!(
            done.outcome,
            Outcome::Applied { action: Action::Created, contact_id: id("c9"), record_id: Some(id("N1")) }
        );
        assert_eq!(done.writes, vec![put(note_key(LOC, "c", "n1"), &live("N1", MS10))]);

        let known = Known { contact: contact.clone(), link: Some(live("N1", MS10)), tag: None };
        let updated =
            event("note.updated", json!({"id": "n1", "contact_id": "c", "body": "bye", "updated_at": T11}));
        let (_, request) = send(plan(&updated, &known));
        assert_eq!((request.method, request.path.as_str()), (Method::Put, "/contacts/c9/notes/N1"));

        let deleted = event("note.deleted", json!({"id": "n1", "contact_id": "c", "updated_at": T11}));
        let (mut job, request) = send(plan(&deleted, &known));
        assert_eq!((request.method, request.path.as_str()), (Method::Delete, "/contacts/c9/notes/N1"));
        let done = applied(job.on_answer(Answer::Success(json!({"succeded": true}))));
        assert_eq!(done.writes, vec![tombstone(note_key(LOC, "c", "n1"), MS10 + 3_600_000)]);
    }

    fn note_created(body: &str) -> Event {
        event("note.created", json!({"id": "n1", "contact_id": "c", "body": body, "updated_at": T10}))
    }

    fn task_created() -> Event {
        event(
            "task.created",
            json!({"id": "k1", "contact_id": "c", "title": "Call", "body": "About it", "due_date": T11, "updated_at": T10}),
        )
    }

    /// The link a create at 10:00 left in doubt, sent at 10:00 with `sent`.
    fn in_doubt(sent: Sent) -> Link {
        Link::InDoubt(CreateInDoubt { updated_at: MS10, sent_at: MS10, sent: Box::new(sent) })
    }

    fn note_sent(body: &str) -> Sent {
        Sent { body: Some(body.into()), ..Sent::default() }
    }

    fn task_sent() -> Sent {
        Sent {
            title: Some("Call".into()),
            body: Some("About it".into()),
            due_date: Some(T11.into()),
            ..Sent::default()
        }
    }

    fn with_link(link: Link) -> Known {
        Known { contact: Some(live("c9", 0)), link: Some(link), ..Known::default() }
    }

    /// Plans `event` against `link`, checks the lookup it starts with, and answers it with `list`.
    fn after_lookup(event: &Event, link: Link, list: Value) -> (Job, Next) {
        let (mut job, request) = send(plan(event, &with_link(link)));
        assert_eq!((request.method, request.body.is_none()), (Method::Get, true));
        let next = job.on_answer(Answer::Success(list));
        (job, next)
    }

    fn notes(body: &str) -> Value {
        json!({"notes": [{"id": "N1", "body": body, "dateAdded": "2026-11-27T10:00:01.000Z"}]})
    }

    #[test]
    fn a_create_after_an_unanswered_one_adopts_what_it_made() {
        let (mut job, request) = send(plan(&note_created("hello"), &with_link(in_doubt(note_sent("hello")))));
        assert_eq!(
            (request.method, request.path.as_str(), request.body),
            (Method::Get, "/contacts/c9/notes", None)
        );
        let notes = json!({"notes": [
            {"id": "OLD", "body": "hello", "dateAdded": "2026-11-27T09:00:00.000Z"},
            {"id": "N7", "body": "other", "dateAdded": "2026-11-27T10:00:01.000Z"},
            {"id": "N1", "body": "hello", "dateAdded": "2026-11-27T10:00:01.000Z"},
        ]});
        let adopted = applied(job.on_answer(Answer::Success(notes)));
        assert_eq!(
            adopted.outcome,
            Outcome::Applied { action: Action::Adopted, contact_id: id("c9"), record_id: Some(id("N1")) },
            "the note added long before the create was sent is another one"
        );
        let (mut job, _) = send(plan(&note_created("hello"), &known_contact(live("c9", 0))));
        let created = applied(job.on_answer(Answer::Success(json!({"note": {"id": "N1"}}))));
        assert_eq!(adopted.writes, created.writes, "the id map is written as a create's answer would");
    }

    #[test]
    fn a_task_is_recognised_by_title_body_and_due_date() {
        let task =
            |title: &str, due: &str| json!({"id": "K1", "title": title, "body": "About it", "dueDate": due});
        let table = [
            (task("Call", "2026-11-27T11:00:00.000Z"), true),
            (task("Call", "2026-11-27T12:00:00+01:00"), true),
            (task("Call", "2026-11-27T11:00:01Z"), false),
            (task("Write", "2026-11-27T11:00:00Z"), false),
            (json!({"id": "K1", "title": "Call", "dueDate": T11}), false),
        ];
        for (found, adopted) in table {
            let list = json!({"tasks": [found.clone()]});
            match after_lookup(&task_created(), in_doubt(task_sent()), list).1 {
                Next::Applied(done) if adopted => {
                    assert_eq!(done.writes, vec![put(task_key(LOC, "c", "k1"), &live("K1", MS10))])
                }
                Next::Send(create) if !adopted => {
                    assert_eq!((create.method, create.path.as_str()), (Method::Post, "/contacts/c9/tasks"));
                    let body =
                        json!({"title": "Call", "body": "About it", "dueDate": T11, "completed": false});
                    assert_eq!(create.body, Some(body));
                }
                other => panic!("{found}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_create_whose_answer_was_lost_leaves_its_link_in_doubt() {
        let answers = [
            (Answer::transport_failure("no answer within 1000 ms"), true),
            (Answer::Unavailable { detail: "HTTP 502: bad gateway".into() }, true),
            (Answer::RateLimited { retry_after_secs: Some(1) }, false),
            (Answer::TokenRejected, false),
        ];
        let doubt = Link::InDoubt(CreateInDoubt {
            updated_at: MS10,
            sent_at: 77,
            sent: Box::new(note_sent("hello")),
        });
        let in_doubt_write = put(note_key(LOC, "c", "n1"), &doubt);
        let earlier = in_doubt(note_sent("hello"));
        for (answer, unanswered) in answers {
            let (mut job, next) = after_lookup(&note_created("hello"), earlier.clone(), notes("other"));
            let Next::Send(create) = next else { panic!("{next:?}") };
            assert_eq!(create.method, Method::Post);
            assert_eq!(job.intent(77), Some(in_doubt_write.clone()), "written before the create is sent");
            assert!(matches!(job.on_answer(answer.clone()), Next::Failed(_)));
            let restored = put(note_key(LOC, "c", "n1"), &earlier);
            let kept = if unanswered { in_doubt_write.clone() } else { restored };
            assert_eq!(job.kept_on_failure(77), Some(kept), "{answer:?}");
        }
        let (mut job, _) = send(plan(&note_created("hello"), &known_contact(live("c9", 0))));
        assert_eq!(
            job.kept_on_failure(77),
            Some(Write::Delete(note_key(LOC, "c", "n1"))),
            "refused before it was sent: no link, as before"
        );
        assert_eq!(job.intent(77), Some(in_doubt_write.clone()));
        assert!(matches!(job.on_answer(Answer::transport_failure("reset")), Next::Failed(_)));
        assert_eq!(job.kept_on_failure(77), Some(in_doubt_write));
        assert_eq!(job.intent(77), None, "nothing more to write ahead");
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
    fn a_lookup_that_fails_leaves_the_link_in_doubt() {
        for answer in [
            Answer::transport_failure("no answer within 1000 ms"),
            Answer::RateLimited { retry_after_secs: None },
            Answer::Success(json!({"message": "no list"})),
        ] {
            let (mut job, _) = send(plan(&note_created("hello"), &with_link(in_doubt(note_sent("hello")))));
            assert!(matches!(
                job.on_answer(answer),
                Next::Failed(Failure::Retryable { .. } | Failure::RateLimited { .. })
            ));
            assert_eq!(job.kept_on_failure(77), None, "KV already says in doubt");
        }
    }

    #[test]
    fn an_update_meeting_a_link_in_doubt_updates_what_the_create_made() {
        let updated =
            event("note.updated", json!({"id": "n1", "contact_id": "c", "body": "bye", "updated_at": T11}));
        let (mut job, next) = after_lookup(&updated, in_doubt(note_sent("hello")), notes("hello"));
        let Next::Send(put_request) = next else { panic!("{next:?}") };
        assert_eq!((put_request.method, put_request.path.as_str()), (Method::Put, "/contacts/c9/notes/N1"));
        assert_eq!(put_request.body, Some(json!({"body": "bye"})));
        let adopted = put(note_key(LOC, "c", "n1"), &live("N1", MS10));
        assert_eq!(job.kept_on_failure(77), Some(adopted), "a failed update keeps the adopted link");
        let done = applied(job.on_answer(Answer::Success(json!({"note": {}}))));
        assert_eq!(
            done.outcome,
            Outcome::Applied { action: Action::Updated, contact_id: id("c9"), record_id: Some(id("N1")) }
        );
        assert_eq!(done.writes, vec![put(note_key(LOC, "c", "n1"), &live("N1", MS10 + 3_600_000))]);

        let (_, next) = after_lookup(&updated, in_doubt(note_sent("hello")), notes("other"));
        let Next::Send(create) = next else { panic!("{next:?}") };
        assert_eq!((create.method, create.path.as_str()), (Method::Post, "/contacts/c9/notes"));
        assert_eq!(create.body, Some(json!({"body": "bye"})));
    }

    #[test]
    fn a_deletion_meeting_a_link_in_doubt_deletes_what_the_create_made() {
        let deleted = event("note.deleted", json!({"id": "n1", "contact_id": "c", "updated_at": T11}));
        let (mut job, next) = after_lookup(&deleted, in_doubt(note_sent("hello")), notes("hello"));
        let Next::Send(delete) = next else { panic!("{next:?}") };
        assert_eq!((delete.method, delete.path.as_str()), (Method::Delete, "/contacts/c9/notes/N1"));
        let done = applied(job.on_answer(Answer::Success(json!({"succeded": true}))));
        assert_eq!(done.writes, vec![tombstone(note_key(LOC, "c", "n1"), MS10 + 3_600_000)]);

        let (_, next) = after_lookup(&deleted, in_doubt(note_sent("hello")), notes("other"));
        let done = applied(next);
        assert!(matches!(done.outcome, Outcome::Skipped { .. }), "nothing was made: only the tombstone");
        assert_eq!(done.writes, vec![tombstone(note_key(LOC, "c", "n1"), MS10 + 3_600_000)]);
    }

    #[test]
    fn a_completion_meeting_a_link_in_doubt_completes_what_the_create_made_or_waits() {
        let completed = event("task.completed", json!({"id": "k1", "contact_id": "c", "updated_at": T11}));
        let found = json!({"tasks": [{"id": "K1", "title": "Call", "body": "About it", "dueDate": T11}]});
        let (mut job, next) = after_lookup(&completed, in_doubt(task_sent()), found);
        let Next::Send(complete) = next else { panic!("{next:?}") };
        assert_eq!(complete.path, "/contacts/c9/tasks/K1/completed");
        let done = applied(job.on_answer(Answer::Success(json!({"task": {}}))));
        let link = Link::Live {
            id: id("K1"),
            updated_at: MS10,
            status_tag: None,
            completed_at: Some(MS10 + 3_600_000),
        };
        assert_eq!(done.writes, vec![put(task_key(LOC, "c", "k1"), &link)]);

        let (_, next) = after_lookup(&completed, in_doubt(task_sent()), json!({"tasks": []}));
        assert!(matches!(next, Next::Wait(_)), "{next:?}");
    }

    #[test]
    fn an_event_older_than_the_create_in_doubt_is_stale_without_a_lookup() {
        let older = |kind: &str| {
            event(
                kind,
                json!({"id": "n1", "contact_id": "c", "body": "b", "updated_at": "2026-11-27T09:00:00Z"}),
            )
        };
        for kind in ["note.updated", "note.deleted"] {
            let start = plan(&older(kind), &with_link(in_doubt(note_sent("hello"))));
            assert!(matches!(start, Start::Finish(Applied { outcome: Outcome::Stale, .. })), "{kind}");
        }
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
    fn an_update_of_a_linked_record_needs_no_lookup() {
        let (job, request) = send(plan(&note_created("hello"), &with_link(live("N1", 0))));
        assert_eq!((request.method, request.path.as_str()), (Method::Put, "/contacts/c9/notes/N1"));
        assert_eq!(job.kept_on_failure(77), None);
    }

    #[test]
    fn an_update_whose_create_was_lost_creates() {
        let updated = event(
            "task.updated",
            json!({"id": "k", "contact_id": "c", "title": "Call", "due_date": T11, "updated_at": T10}),
        );
        let (_, request) = send(plan(&updated, &known_contact(live("c9", 0))));
        assert_eq!((request.method, request.path.as_str()), (Method::Post, "/contacts/c9/tasks"));
        assert_eq!(request.body, Some(json!({"title": "Call", "dueDate": T11, "completed": false})));
    }

    #[test]
    fn completing_a_task_waits_for_the_task() {
        let completed = event("task.completed", json!({"id": "k", "contact_id": "c", "updated_at": T10}));
        assert!(matches!(plan(&completed, &known_contact(live("c9", 0))), Start::Wait(_)));
        let known = Known { contact: Some(live("c9", 0)), link: Some(live("K1", 0)), tag: None };
        let (mut job, request) = send(plan(&completed, &known));
        assert_eq!(request.path, "/contacts/c9/tasks/K1/completed");
        assert_eq!(request.body, Some(json!({"completed": true})));
        let done = applied(job.on_answer(Answer::Success(json!({"task": {}}))));
        let link = Link::Live { id: id("K1"), updated_at: 0, status_tag: None, completed_at: Some(MS10) };
        assert_eq!(done.writes, vec![put(task_key(LOC, "c", "k"), &link)]);
    }

    #[test]
    fn a_snapshot_older_than_a_completion_still_applies_and_stays_completed() {
        // SightMill: created at 10:00, renamed at 10:30, completed at 11:00. The rename arrives last.
        const T1030: &str = "2026-11-27T10:30:00Z";
        const MS1030: UnixMillis = MS10 + 1_800_000;
        const MS11: UnixMillis = MS10 + 3_600_000;
        let contact = Some(live("c9", 0));
        let completed = event("task.completed", json!({"id": "k", "contact_id": "c", "updated_at": T11}));
        let known = Known { contact: contact.clone(), link: Some(live("K1", MS10)), tag: None };
        let (mut job, _) = send(plan(&completed, &known));
        let done = applied(job.on_answer(Answer::Success(json!({"task": {}}))));
        let after_completion =
            Link::Live { id: id("K1"), updated_at: MS10, status_tag: None, completed_at: Some(MS11) };
        assert_eq!(done.writes, vec![put(task_key(LOC, "c", "k"), &after_completion)]);

        let renamed = event(
            "task.updated",
            json!({"id": "k", "contact_id": "c", "title": "Call", "due_date": T11, "completed": false, "updated_at": T1030}),
        );
        let known = Known { contact: contact.clone(), link: Some(after_completion.clone()), tag: None };
        let (mut job, request) = send(plan(&renamed, &known));
        assert_eq!((request.method, request.path.as_str()), (Method::Put, "/contacts/c9/tasks/K1"));
        assert_eq!(
            request.body,
            Some(json!({"title": "Call", "body": "", "dueDate": T11, "completed": true})),
            "the snapshot has no body: the PUT clears it"
        );
        let done = applied(job.on_answer(Answer::Success(json!({"task": {}}))));
        let after_rename =
            Link::Live { id: id("K1"), updated_at: MS1030, status_tag: None, completed_at: Some(MS11) };
        assert_eq!(done.writes, vec![put(task_key(LOC, "c", "k"), &after_rename)]);

        let known = Known { contact: contact.clone(), link: Some(after_rename), tag: None };
        assert!(matches!(plan(&completed, &known), Start::Finish(Applied { outcome: Outcome::Stale, .. })));
        let deleted_before =
            event("task.deleted", json!({"id": "k", "contact_id": "c", "updated_at": T1030}));
        let known = Known { contact, link: Some(after_completion), tag: None };
        assert!(
            matches!(plan(&deleted_before, &known), Start::Finish(Applied { outcome: Outcome::Stale, .. })),
            "a deletion older than the completion is stale"
        );
    }

    #[test]
    fn a_link_without_completed_at_reads_as_before() {
        let stored = r#"{"state":"live","id":"K1","updated_at":5}"#;
        let link: Link = serde_json::from_str(stored).unwrap();
        assert_eq!(link, live("K1", 5));
        assert_eq!((link.completed_at(), link.last_change()), (None, 5));
        assert_eq!(serde_json::to_string(&link).unwrap(), stored);
    }

    #[test]
    fn tags_go_through_the_tags_endpoints() {
        let known = known_contact(live("c9", 0));
        for (kind, method, present) in
            [("tag.added", Method::Post, true), ("tag.removed", Method::Delete, false)]
        {
            let tag = event(kind, json!({"contact_id": "c", "tag": "vip", "updated_at": T10}));
            let (mut job, request) = send(plan(&tag, &known));
            assert_eq!((request.method, request.path.as_str()), (method, "/contacts/c9/tags"));
            assert_eq!(request.body, Some(json!({"tags": ["vip"]})));
            let done = applied(job.on_answer(Answer::Success(json!({"tags": []}))));
            assert_eq!(
                done.writes,
                vec![put(tag_key(LOC, "c", "vip"), &TagState { present, updated_at: MS10 })]
            );
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

    fn doubt_of(start: Start, sent_at: UnixMillis) -> Link {
        let (job, _) = send(start);
        let Some(Write::Put { value, .. }) = job.intent(sent_at) else {
            panic!("a create writes its intent")
        };
        serde_json::from_value(value).unwrap()
    }

    fn contact_event(kind: &str, at: &str) -> Event {
        event(
            kind,
            json!({"id": "sm_1", "name": "Ada Byron", "email": "a@b.co", "status": "lead", "updated_at": at}),
        )
    }

    fn tagged() -> Mapping {
        Mapping::parse(
            r#"{"fields": [{"from": "name", "to": "firstName+lastName"}, {"from": "email", "to": "email"}],
            "status": {"to": "tag", "prefix": "status:"}}"#,
        )
        .unwrap()
    }

    fn found(contacts: Value) -> Answer {
        Answer::Success(json!({ "contacts": contacts }))
    }

    const MS11: UnixMillis = MS10 + 3_600_000;
    const ADDED: &str = "2026-11-27T10:00:01.000Z";

    #[test]
    fn a_contact_create_is_in_doubt_from_its_send_until_its_answer() {
        let created = contact_event("contact.created", T10);
        let mapping = tagged();
        let (mut job, _) = send(start(&created, &Known::default(), LOC, &mapping));
        let Some(Write::Put { key, value }) = job.intent(MS10) else { panic!("the intent is written first") };
        assert_eq!(key, contact_key(LOC, "sm_1"));
        let Link::InDoubt(doubt) = serde_json::from_value(value).unwrap() else { panic!() };
        assert_eq!((doubt.updated_at, doubt.sent_at), (MS10, MS10));
        assert_eq!(doubt.sent.email.as_deref(), Some("a@b.co"));
        assert_eq!(
            (doubt.sent.first_name.as_deref(), doubt.sent.last_name.as_deref()),
            (Some("Ada"), Some("Byron"))
        );
        assert_eq!(doubt.sent.tag.as_deref(), Some("status:lead"));
        for unanswered in [
            Answer::transport_failure("no answer within 2000 ms"),
            Answer::Unavailable { detail: "HTTP 503: down".into() },
            Answer::Rejected { status: 422, message: "odd".into() },
        ] {
            let (mut job, _) = send(start(&created, &Known::default(), LOC, &mapping));
            assert!(matches!(job.on_answer(unanswered), Next::Failed(Failure::Retryable { .. })));
            let kept = job.kept_on_failure(MS10).expect("the doubt is kept");
            assert_eq!(kept, put(contact_key(LOC, "sm_1"), &Link::InDoubt(doubt.clone())));
        }
        // Refused for good: nothing was created, and the link is what it was.
        assert!(matches!(
            job.on_answer(Answer::Rejected { status: 400, message: "bad".into() }),
            Next::Failed(Failure::Rejected { .. })
        ));
        assert_eq!(job.kept_on_failure(MS10), Some(Write::Delete(contact_key(LOC, "sm_1"))));
    }

    #[test]
    fn a_retry_of_the_create_in_doubt_searches_and_adopts_what_it_made() {
        let created = contact_event("contact.created", T10);
        let mapping = tagged();
        let doubt = doubt_of(start(&created, &Known::default(), LOC, &mapping), MS10);
        let known = known_contact(doubt);
        assert_eq!(lookup_not_before(&known, 2_000), Some(MS10 + 2_000 + DOUBT_SETTLE_MS));
        let (mut job, search) = send(start(&created, &known, LOC, &mapping));
        assert_eq!((search.method, search.path.as_str()), (Method::Post, "/contacts/search"));
        assert_eq!(job.intent(MS10 + 5_000), None, "a search is no create");
        let mine = json!({"id": "c1", "email": "a@b.co", "firstName": "Ada", "lastName": "Byron", "dateAdded": ADDED});
        let done = applied(job.on_answer(found(json!([mine]))));
        assert_eq!(
            done.outcome,
            Outcome::Applied { action: Action::Adopted, contact_id: id("c1"), record_id: None }
        );
        let link = Link::Live {
            id: id("c1"),
            updated_at: MS10,
            status_tag: Some("status:lead".into()),
            completed_at: None,
        };
        assert_eq!(done.writes, vec![put(contact_key(LOC, "sm_1"), &link)]);

        // Nothing found: the create was not applied, and is sent again (in doubt again).
        let (mut job, _) = send(start(&created, &known, LOC, &mapping));
        let Next::Send(create) = job.on_answer(found(json!([]))) else { panic!("creates") };
        assert_eq!((create.method, create.path.as_str()), (Method::Post, "/contacts/"));
        assert!(job.intent(MS10 + 5_000).is_some());

        // Two candidates: parked, naming both.
        let (mut job, _) = send(start(&created, &known, LOC, &mapping));
        let twin = json!({"id": "c2", "email": "a@b.co", "firstName": "Ada", "lastName": "Byron", "dateAdded": ADDED});
        let Next::Failed(Failure::Rejected { message, .. }) = job.on_answer(found(json!([twin, mine])))
        else {
            panic!("parks")
        };
        assert!(message.contains("c2") && message.contains("c1"), "{message}");
        assert_eq!(job.kept_on_failure(MS10), None, "the doubt stays");
    }

    #[test]
    fn a_newer_event_updates_the_contact_the_create_in_doubt_made() {
        let mapping = tagged();
        let doubt =
            doubt_of(start(&contact_event("contact.created", T10), &Known::default(), LOC, &mapping), MS10);
        let updated = event(
            "contact.updated",
            json!({"id": "sm_1", "name": "Ada Lovelace", "email": "a@b.co", "status": "customer", "updated_at": T11}),
        );
        let (mut job, _) = send(start(&updated, &known_contact(doubt), LOC, &mapping));
        let mine = json!({"id": "c1", "email": "a@b.co", "firstName": "Ada", "lastName": "Byron", "dateAdded": ADDED});
        let Next::Send(update) = job.on_answer(found(json!([mine]))) else { panic!("updates") };
        assert_eq!((update.method, update.path.as_str()), (Method::Put, "/contacts/c1"));
        // The update failed: the adopted contact is remembered at the version in doubt.
        let adopted = Link::Live {
            id: id("c1"),
            updated_at: MS10,
            status_tag: Some("status:lead".into()),
            completed_at: None,
        };
        assert_eq!(job.kept_on_failure(MS11), Some(put(contact_key(LOC, "sm_1"), &adopted)));
        let Next::Send(remove) = job.on_answer(Answer::Success(json!({}))) else { panic!("swaps the tag") };
        assert_eq!((remove.method, remove.body), (Method::Delete, Some(json!({"tags": ["status:lead"]}))));
        let Next::Send(add) = job.on_answer(Answer::Success(json!({}))) else { panic!() };
        assert_eq!(add.body, Some(json!({"tags": ["status:customer"]})));
        let done = applied(job.on_answer(Answer::Success(json!({}))));
        assert_eq!(
            done.outcome,
            Outcome::Applied { action: Action::Adopted, contact_id: id("c1"), record_id: None }
        );
    }

    #[test]
    fn a_reported_duplicate_whose_update_fails_leaves_the_link_as_it_was() {
        let created = contact_event("contact.created", T10);
        let (mut job, _) = send(plan(&created, &Known::default()));
        let Next::Send(_) = job.on_answer(Answer::Duplicate(id("old7"))) else { panic!() };
        assert!(matches!(job.on_answer(Answer::transport_failure("x")), Next::Failed(_)));
        assert_eq!(job.kept_on_failure(MS10), Some(Write::Delete(contact_key(LOC, "sm_1"))));
    }

    #[test]
    fn existing_contacts_adopt_asks_the_location_before_creating() {
        let mapping =
            Mapping::parse(r#"{"fields": [{"from": "email", "to": "email"}], "existing_contacts": "adopt"}"#)
                .unwrap();
        let created = contact_event("contact.created", T10);
        let (mut job, search) = send(start(&created, &Known::default(), LOC, &mapping));
        assert_eq!(search.path, "/contacts/search/duplicate?locationId=loc-1&email=a%40b.co");
        assert_eq!(job.intent(MS10), None);
        let Next::Send(update) = job.on_answer(Answer::Success(json!({"contact": {"id": "old7"}}))) else {
            panic!()
        };
        assert_eq!(update.path, "/contacts/old7");
        let done = applied(job.on_answer(Answer::Success(json!({}))));
        assert!(matches!(done.outcome, Outcome::Applied { action: Action::Adopted, .. }));

        let (mut job, _) = send(start(&created, &Known::default(), LOC, &mapping));
        let Next::Send(create) = job.on_answer(Answer::Success(json!({"contact": null}))) else { panic!() };
        assert_eq!(create.path, "/contacts/");
        // Without email or phone there is nothing to match: it creates.
        let bare = event("contact.created", json!({"id": "sm_2", "name": "X", "updated_at": T10}));
        let (_, request) = send(start(&bare, &Known::default(), LOC, &mapping));
        assert_eq!(request.path, "/contacts/");
    }

    #[test]
    fn the_sightmill_id_field_goes_on_the_create_and_keys_the_search() {
        let mapping = Mapping::parse(
            r#"{"fields": [{"from": "email", "to": "email"}], "sightmill_id_field": "cf_sm"}"#,
        )
        .unwrap();
        let created = contact_event("contact.created", T10);
        let (_, create) = send(start(&created, &Known::default(), LOC, &mapping));
        assert_eq!(create.body.unwrap()["customFields"], json!([{"id": "cf_sm", "fieldValue": "sm_1"}]));
        let doubt = doubt_of(start(&created, &Known::default(), LOC, &mapping), MS10);
        let (_, search) = send(start(&created, &known_contact(doubt), LOC, &mapping));
        assert_eq!(
            search.body.unwrap()["filters"][1],
            json!({"field": "customFields.cf_sm", "operator": "eq", "value": "sm_1"})
        );
    }

    #[test]
    fn deleting_a_contact_in_doubt_deletes_what_its_create_made() {
        let doubt = doubt_of(plan(&contact_event("contact.created", T10), &Known::default()), MS10);
        let deleted = event("contact.deleted", json!({"id": "sm_1", "updated_at": T11}));
        let known = known_contact(doubt);
        let (mut job, _) = send(plan(&deleted, &known));
        let mine = json!({"id": "c1", "email": "a@b.co", "firstName": "Ada", "lastName": "Byron", "dateAdded": ADDED});
        let Next::Send(delete) = job.on_answer(found(json!([mine]))) else { panic!() };
        assert_eq!((delete.method, delete.path.as_str()), (Method::Delete, "/contacts/c1"));
        let done = applied(job.on_answer(Answer::Success(json!({"succeded": true}))));
        assert!(matches!(done.outcome, Outcome::Applied { action: Action::Deleted, .. }));

        let (mut job, _) = send(plan(&deleted, &known));
        let done = applied(job.on_answer(found(json!([]))));
        assert!(matches!(done.outcome, Outcome::Skipped { .. }));
        assert_eq!(done.writes[0], tombstone(contact_key(LOC, "sm_1"), MS11));
    }
}
