//! Planning: turns one event, plus what KV knows about its records, into the Contacts API calls
//! that apply it, and interprets each answer until the event is applied or has failed. The shell
//! only reads the keys [`reads`] names, sends what this module plans and writes what it returns.
//!
//! Order per contact comes from versions, not from arrival: every record remembers the newest
//! `updated_at` applied to it (deletions leave a tombstone), so an older event is stale whenever it
//! arrives, and an update whose create was lost creates the record. Events about a contact (or a
//! task) that is not in the Contacts API yet wait for it.
//!
//! Note and task creates take no idempotency key, so a create whose answer was lost may have been
//! applied: the next attempt of that webhook looks the contact's notes or tasks up first and
//! adopts the one the create made ([`CreateJob`]).

use serde_json::{json, Value};

use crate::contacts_api::{Answer, ApiId, ApiRequest};
use crate::event::{Change, Event, SightmillNote, SightmillTask};
use crate::mapping::{Mapping, Purpose};
use crate::records::{
    child_prefixes, contact_key, note_key, tag_key, task_key, Action, Link, Outcome, TagState,
    UnansweredCreate,
};
use crate::timestamp::{parse_rfc3339, UnixMillis};

/// Contacts API calls one event may make (a contact: create, adopt, swap a status tag; a note or
/// task: look up, create).
pub const MAX_CALLS: u32 = 4;

/// How far the API's clock may be behind the worker's: a note added earlier than this before an
/// unanswered create was sent is not the one it made.
const CLOCK_SKEW_MS: UnixMillis = 10 * 60 * 1_000;

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

/// What KV held under the keys of [`Reads`], and what the webhook's record says of its earlier
/// attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub contact: Option<Link>,
    pub link: Option<Link>,
    pub tag: Option<TagState>,
    /// An earlier attempt's note or task create that got no definite answer.
    pub unanswered_create: Option<UnansweredCreate>,
}

/// A KV write that makes an applied event stick.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        key: String,
        value: Value,
    },
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
    Failed(Failure),
}

/// Why an attempt did not apply the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 5xx, timeout or network: retrying may help.
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
        return ContactJob::start(
            &contact.fields,
            at,
            known.contact.as_ref(),
            keys.contact,
            location_id,
            mapping,
        );
    }
    if let Change::ContactDeleted = &event.change {
        return delete_contact(known.contact.as_ref(), at, keys.contact, location_id, &event.contact_id);
    }
    let contact_id = match &known.contact {
        Some(Link::Live { id, .. }) => id.clone(),
        Some(Link::Deleted { .. }) => {
            return finish(Outcome::Skipped { reason: "its contact was deleted".into() }, vec![])
        }
        None => return Start::Wait("its contact is not in the Contacts API yet".into()),
    };
    let record_key = match keys.record {
        Some(RecordKey::Link(key) | RecordKey::Tag(key)) => key,
        None => unreachable!("every note, task and tag event has a record key"),
    };
    let call = |request, action, remember| {
        let job =
            Job::Single(SingleCall { contact_id: contact_id.clone(), action, updated_at: at, remember });
        Start::Send(job, request)
    };
    // A note or task update, remembered under its link; or its create (see [`CreateJob`]).
    let upsert_call = |kind: RecordKind, existing: Option<&ApiId>, body: Value, completed_at| match existing {
        Some(id) => {
            let remember = Remember::Link { key: record_key.clone(), id: id.clone(), completed_at };
            call(kind.update(&contact_id, id, body), Action::Updated, remember)
        }
        None => {
            let record = NewRecord { kind, key: record_key.clone(), updated_at: at, completed_at };
            CreateJob::start(contact_id.clone(), record, body, known.unanswered_create)
        }
    };
    match &event.change {
        Change::NoteUpsert(note) => upsert(known.link.as_ref(), at, |existing| {
            upsert_call(RecordKind::Note, existing, json!({ "body": note.body }), None)
        }),
        Change::TaskUpsert(task) => upsert(known.link.as_ref(), at, |existing| {
            let completed_at = known.link.as_ref().and_then(Link::completed_at);
            upsert_call(RecordKind::Task, existing, task_body(task, completed_at, at), completed_at)
        }),
        Change::TaskCompleted { .. } => match known.link.as_ref() {
            None => Start::Wait("its task is not in the Contacts API yet".into()),
            Some(Link::Live { id, updated_at, completed_at, .. })
                if *updated_at <= at && completed_at.is_none_or(|done| done < at) =>
            {
                let link = Link::Live {
                    id: id.clone(),
                    updated_at: *updated_at,
                    status_tag: None,
                    completed_at: Some(at),
                };
                let request = ApiRequest::complete_task(&contact_id, id);
                call(request, Action::Completed, Remember::Put { key: record_key, link })
            }
            Some(_) => finish(Outcome::Stale, vec![]),
        },
        Change::NoteDeleted { .. } | Change::TaskDeleted { .. } => match known.link.as_ref() {
            Some(link @ Link::Live { id, .. }) if link.last_change() <= at => {
                let request = match &event.change {
                    Change::NoteDeleted { .. } => ApiRequest::delete_note(&contact_id, id),
                    _ => ApiRequest::delete_task(&contact_id, id),
                };
                call(
                    request,
                    Action::Deleted,
                    Remember::Tombstone { key: record_key, record: Some(id.clone()), clear: vec![] },
                )
            }
            Some(_) => finish(Outcome::Stale, vec![]),
            None => finish(
                Outcome::Skipped { reason: "it was never synced".into() },
                vec![tombstone(record_key, at)],
            ),
        },
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
            call(request, action, Remember::Tag { key: record_key, present })
        }
        Change::ContactUpsert(_) | Change::ContactDeleted => unreachable!("handled above"),
    }
}

/// Create-or-update of a note or task: stale when a newer version (or deletion) is on record.
fn upsert(link: Option<&Link>, at: UnixMillis, plan: impl FnOnce(Option<&ApiId>) -> Start) -> Start {
    match link {
        Some(link) if link.updated_at() > at => finish(Outcome::Stale, vec![]),
        Some(Link::Deleted { updated_at }) if *updated_at == at => finish(Outcome::Stale, vec![]),
        Some(link) => plan(link.live_id()),
        None => plan(None),
    }
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
                action: Action::Deleted,
                updated_at: at,
                remember: Remember::Tombstone { key, record: None, clear },
            });
            Start::Send(job, ApiRequest::delete_contact(id))
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
    Contact(ContactJob),
    Single(SingleCall),
    Create(CreateJob),
}

impl Job {
    /// Interprets the answer to the last request sent.
    pub fn on_answer(&mut self, answer: Answer) -> Next {
        match self {
            Job::Contact(job) => job.on_answer(answer),
            Job::Single(call) => call.on_answer(answer),
            Job::Create(job) => job.on_answer(answer),
        }
    }

    /// After a failed attempt that started at `attempt_started`: the note or task create that may
    /// have been applied without the worker hearing of it, for the record to remember.
    pub fn unanswered_create(&self, attempt_started: UnixMillis) -> Option<UnansweredCreate> {
        match self {
            Job::Create(job) => job.unanswered(attempt_started),
            Job::Contact(_) | Job::Single(_) => None,
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

/// A note, task, tag or delete: one call.
#[derive(Debug)]
pub struct SingleCall {
    contact_id: ApiId,
    action: Action,
    updated_at: UnixMillis,
    remember: Remember,
}

impl SingleCall {
    fn on_answer(&mut self, answer: Answer) -> Next {
        let gone = matches!(&answer, Answer::Rejected { status: 400 | 404, message } if message.to_lowercase().contains("not found"));
        match answer {
            Answer::Success(_) => {}
            _ if gone && self.action == Action::Deleted => {}
            other => return Next::Failed(Failure::from_answer(other)),
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
    fn create(self, contact_id: &ApiId, body: Value) -> ApiRequest {
        match self {
            RecordKind::Note => ApiRequest::upsert_note(contact_id, None, body),
            RecordKind::Task => ApiRequest::upsert_task(contact_id, None, body),
        }
    }

    fn update(self, contact_id: &ApiId, id: &ApiId, body: Value) -> ApiRequest {
        match self {
            RecordKind::Note => ApiRequest::upsert_note(contact_id, Some(id), body),
            RecordKind::Task => ApiRequest::upsert_task(contact_id, Some(id), body),
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

    /// Where a create's answer carries the new id.
    fn id_at(self) -> &'static str {
        match self {
            RecordKind::Note => "/note/id",
            RecordKind::Task => "/task/id",
        }
    }

    /// Whether `found` (from the list) is what a create with body `sent` makes: a note by its
    /// body, a task by its title, body and due date (as an instant: the API may reformat it).
    fn made_by(self, found: &Value, sent: &Value) -> bool {
        let same = |field| text(found, field) == text(sent, field);
        match self {
            RecordKind::Note => same("body"),
            RecordKind::Task => {
                let (due, sent_due) = (text(found, "dueDate"), text(sent, "dueDate"));
                let same_due = due == sent_due
                    || due
                        .and_then(parse_rfc3339)
                        .is_some_and(|at| sent_due.and_then(parse_rfc3339) == Some(at));
                same("title") && same("body") && same_due
            }
        }
    }

    /// The id of the newest record in a list answer that a create with body `sent`, sent no
    /// earlier than `unanswered.sent_at`, could have made; `Err` when the answer has no list.
    fn find(
        self,
        answer: &Value,
        sent: &Value,
        unanswered: UnansweredCreate,
    ) -> Result<Option<ApiId>, String> {
        let Some(records) = answer.get(self.plural()).and_then(Value::as_array) else {
            return Err(format!("the lookup's answer carried no `{}` list", self.plural()));
        };
        // A note says when it was added; one added well before the create was sent is another.
        let added = |record: &Value| record.get("dateAdded").and_then(Value::as_str).and_then(parse_rfc3339);
        let recent =
            |record: &&Value| added(record).is_none_or(|at| at >= unanswered.sent_at - CLOCK_SKEW_MS);
        let found = records
            .iter()
            .filter(|record| self.made_by(record, sent))
            .filter(recent)
            .filter_map(|record| {
                let id = record.get("id").and_then(Value::as_str).and_then(ApiId::parse)?;
                Some((added(record).unwrap_or(UnixMillis::MIN), id))
            })
            .max_by_key(|(added, _)| *added);
        Ok(found.map(|(_, id)| id))
    }
}

/// A text field of a record, absent when missing, null or empty.
fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str).filter(|text| !text.is_empty())
}

/// Where a note or task create is remembered, and as of when.
#[derive(Debug)]
struct NewRecord {
    kind: RecordKind,
    /// Its link's KV key.
    key: String,
    updated_at: UnixMillis,
    /// A task's completion on record (kept on the link).
    completed_at: Option<UnixMillis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateStage {
    /// Looking the contact's notes or tasks up for what an earlier attempt's unanswered create
    /// may have made.
    LookingUp(UnansweredCreate),
    /// The create is sent (or about to be); no earlier create is in doubt.
    Creating,
    /// The create got no definite answer: it may have been applied.
    Unanswered,
}

/// A note or task create. The API takes no idempotency key for it, so when an earlier attempt's
/// create got no definite answer, the contact's notes or tasks are looked up first and the one it
/// made is adopted (the link written as the create's answer would have); only if none matches is
/// the create sent.
#[derive(Debug)]
pub struct CreateJob {
    contact_id: ApiId,
    record: NewRecord,
    /// The create's body: also what the lookup matches against.
    body: Value,
    stage: CreateStage,
}

impl CreateJob {
    fn start(contact_id: ApiId, record: NewRecord, body: Value, earlier: Option<UnansweredCreate>) -> Start {
        let (stage, request) = match earlier {
            Some(unanswered) => (CreateStage::LookingUp(unanswered), record.kind.list(&contact_id)),
            None => (CreateStage::Creating, record.kind.create(&contact_id, body.clone())),
        };
        Start::Send(Job::Create(CreateJob { contact_id, record, body, stage }), request)
    }

    fn on_answer(&mut self, answer: Answer) -> Next {
        match (self.stage, answer) {
            (CreateStage::LookingUp(unanswered), Answer::Success(list)) => {
                match self.record.kind.find(&list, &self.body, unanswered) {
                    Ok(Some(id)) => self.applied(id, Action::Adopted),
                    Ok(None) => {
                        self.stage = CreateStage::Creating;
                        Next::Send(self.record.kind.create(&self.contact_id, self.body.clone()))
                    }
                    Err(detail) => Next::Failed(Failure::Retryable { detail }),
                }
            }
            (CreateStage::Creating, Answer::Success(answer)) => {
                let id_at = self.record.kind.id_at();
                match answer.pointer(id_at).and_then(Value::as_str).and_then(ApiId::parse) {
                    Some(id) => self.applied(id, Action::Created),
                    None => {
                        let message = format!("the answer carried no usable id at {id_at}");
                        Next::Failed(Failure::Rejected { api_status: 200, message })
                    }
                }
            }
            (CreateStage::Creating, answer @ Answer::Unavailable { .. }) => {
                self.stage = CreateStage::Unanswered;
                Next::Failed(Failure::from_answer(answer))
            }
            (_, answer) => Next::Failed(Failure::from_answer(answer)),
        }
    }

    fn applied(&self, id: ApiId, action: Action) -> Next {
        let NewRecord { key, updated_at, completed_at, .. } = &self.record;
        let writes = vec![link_write(key, &id, *updated_at, *completed_at)];
        let outcome = Outcome::Applied { action, contact_id: self.contact_id.clone(), record_id: Some(id) };
        Next::Applied(Applied { outcome, writes })
    }

    /// The create in doubt after this attempt: the earlier one if the lookup never answered, or
    /// this attempt's own if it went unanswered.
    fn unanswered(&self, attempt_started: UnixMillis) -> Option<UnansweredCreate> {
        match self.stage {
            CreateStage::LookingUp(earlier) => Some(earlier),
            CreateStage::Unanswered => Some(UnansweredCreate { sent_at: attempt_started }),
            CreateStage::Creating => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Creating,
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

/// A contact create or update, with the follow-up calls that swap its status tag.
#[derive(Debug)]
pub struct ContactJob {
    key: String,
    update_fields: serde_json::Map<String, Value>,
    updated_at: UnixMillis,
    old_tag: Option<String>,
    new_tag: Option<String>,
    stage: Stage,
    follow_ups: Vec<ApiRequest>,
}

impl ContactJob {
    fn start(
        fields: &serde_json::Map<String, Value>,
        at: UnixMillis,
        link: Option<&Link>,
        key: String,
        location_id: &str,
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
        let mut job = ContactJob {
            key,
            update_fields: update.fields,
            updated_at: at,
            old_tag: None,
            new_tag: update.status_tag,
            stage: Stage::Creating,
            follow_ups: vec![],
        };
        let request = match link {
            Some(Link::Live { id, status_tag, .. }) => {
                job.old_tag = status_tag.clone();
                job.stage = Stage::Updating { contact_id: id.clone(), adopted: false };
                ApiRequest::update_contact(id, job.update_fields.clone())
            }
            _ => match mapped(Purpose::Create) {
                Ok(create) => ApiRequest::create_contact(location_id, create.fields),
                Err(reason) => return Start::Park(reason),
            },
        };
        Start::Send(Job::Contact(job), request)
    }

    fn on_answer(&mut self, answer: Answer) -> Next {
        match (self.stage.clone(), answer) {
            (Stage::Creating, Answer::Success(body)) => {
                match body.pointer("/contact/id").and_then(Value::as_str).and_then(ApiId::parse) {
                    // The create carried the status tag in its body: nothing to swap.
                    Some(id) => self.applied(id, Action::Created),
                    None => Next::Failed(Failure::Rejected {
                        api_status: 201,
                        message: "the create answer carried no usable contact.id".into(),
                    }),
                }
            }
            (Stage::Creating, Answer::Duplicate(contact_id)) => {
                let request = ApiRequest::update_contact(&contact_id, self.update_fields.clone());
                self.stage = Stage::Updating { contact_id, adopted: true };
                Next::Send(request)
            }
            (Stage::Updating { contact_id, adopted }, Answer::Success(_)) => {
                let action = if adopted { Action::Adopted } else { Action::Updated };
                self.queue_tag_swap(&contact_id);
                self.stage = Stage::Tagging { contact_id, action };
                self.next_follow_up()
            }
            (Stage::Tagging { .. }, Answer::Success(_)) => self.next_follow_up(),
            (_, answer) => Next::Failed(Failure::from_answer(answer)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::Method;
    use crate::event::parse_event;

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
                Known {
                    contact: Some(live("c9", 0)),
                    link: Some(live("n9", newer)),
                    tag: None,
                    ..Known::default()
                },
            ),
            (
                event("note.created", json!({"id": "n", "contact_id": "c", "body": "b", "updated_at": T10})),
                Known {
                    contact: Some(live("c9", 0)),
                    link: Some(Link::Deleted { updated_at: MS10 }),
                    tag: None,
                    ..Known::default()
                },
            ),
            (
                event("tag.added", json!({"contact_id": "c", "tag": "vip", "updated_at": T10})),
                Known {
                    contact: Some(live("c9", 0)),
                    link: None,
                    tag: Some(TagState { present: false, updated_at: newer }),
                    ..Known::default()
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

        let known =
            Known { contact: contact.clone(), link: Some(live("N1", MS10)), tag: None, ..Known::default() };
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

    const EARLIER: UnansweredCreate = UnansweredCreate { sent_at: MS10 };

    fn note_created(body: &str) -> Event {
        event("note.created", json!({"id": "n1", "contact_id": "c", "body": body, "updated_at": T10}))
    }

    fn task_created() -> Event {
        event(
            "task.created",
            json!({"id": "k1", "contact_id": "c", "title": "Call", "body": "About it", "due_date": T11, "updated_at": T10}),
        )
    }

    fn after_unanswered_create() -> Known {
        Known { contact: Some(live("c9", 0)), unanswered_create: Some(EARLIER), ..Known::default() }
    }

    #[test]
    fn a_create_after_an_unanswered_one_adopts_what_it_made() {
        let (mut job, request) = send(plan(&note_created("hello"), &after_unanswered_create()));
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
        assert_eq!(job.unanswered_create(MS10), None);
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
            let (mut job, request) = send(plan(&task_created(), &after_unanswered_create()));
            assert_eq!(request.path, "/contacts/c9/tasks");
            match job.on_answer(Answer::Success(json!({"tasks": [found.clone()]}))) {
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
    fn without_a_match_the_create_is_sent_and_its_answer_decides_what_stays_in_doubt() {
        let answers = [
            (Answer::transport_failure("no answer within 1000 ms"), Some(UnansweredCreate { sent_at: 77 })),
            (
                Answer::Unavailable { detail: "HTTP 502: bad gateway".into() },
                Some(UnansweredCreate { sent_at: 77 }),
            ),
            (Answer::RateLimited { retry_after_secs: Some(1) }, None),
            (Answer::TokenRejected, None),
        ];
        for (answer, in_doubt) in answers {
            let (mut job, _) = send(plan(&note_created("hello"), &after_unanswered_create()));
            let Next::Send(create) = job.on_answer(Answer::Success(json!({"notes": []}))) else { panic!() };
            assert_eq!(create.method, Method::Post);
            assert!(matches!(job.on_answer(answer.clone()), Next::Failed(_)));
            assert_eq!(job.unanswered_create(77), in_doubt, "{answer:?}");
        }
        let (mut job, _) = send(plan(&note_created("hello"), &known_contact(live("c9", 0))));
        assert_eq!(job.unanswered_create(77), None, "nothing sent yet");
        assert!(matches!(job.on_answer(Answer::transport_failure("reset")), Next::Failed(_)));
        assert_eq!(job.unanswered_create(77), Some(UnansweredCreate { sent_at: 77 }));
    }

    #[test]
    fn a_lookup_that_fails_keeps_the_earlier_create_in_doubt() {
        for answer in [
            Answer::transport_failure("no answer within 1000 ms"),
            Answer::RateLimited { retry_after_secs: None },
            Answer::Success(json!({"message": "no list"})),
        ] {
            let (mut job, _) = send(plan(&note_created("hello"), &after_unanswered_create()));
            assert_eq!(job.unanswered_create(77), Some(EARLIER), "before anything is sent");
            assert!(matches!(
                job.on_answer(answer),
                Next::Failed(Failure::Retryable { .. } | Failure::RateLimited { .. })
            ));
            assert_eq!(job.unanswered_create(77), Some(EARLIER));
        }
    }

    #[test]
    fn an_update_of_a_linked_record_needs_no_lookup() {
        let mut known = after_unanswered_create();
        known.link = Some(live("N1", 0));
        let (job, request) = send(plan(&note_created("hello"), &known));
        assert_eq!((request.method, request.path.as_str()), (Method::Put, "/contacts/c9/notes/N1"));
        assert_eq!(job.unanswered_create(77), None);
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
        let known =
            Known { contact: Some(live("c9", 0)), link: Some(live("K1", 0)), tag: None, ..Known::default() };
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
        let known =
            Known { contact: contact.clone(), link: Some(live("K1", MS10)), tag: None, ..Known::default() };
        let (mut job, _) = send(plan(&completed, &known));
        let done = applied(job.on_answer(Answer::Success(json!({"task": {}}))));
        let after_completion =
            Link::Live { id: id("K1"), updated_at: MS10, status_tag: None, completed_at: Some(MS11) };
        assert_eq!(done.writes, vec![put(task_key(LOC, "c", "k"), &after_completion)]);

        let renamed = event(
            "task.updated",
            json!({"id": "k", "contact_id": "c", "title": "Call", "due_date": T11, "completed": false, "updated_at": T1030}),
        );
        let known = Known {
            contact: contact.clone(),
            link: Some(after_completion.clone()),
            tag: None,
            ..Known::default()
        };
        let (mut job, request) = send(plan(&renamed, &known));
        assert_eq!((request.method, request.path.as_str()), (Method::Put, "/contacts/c9/tasks/K1"));
        assert_eq!(request.body, Some(json!({"title": "Call", "dueDate": T11, "completed": true})));
        let done = applied(job.on_answer(Answer::Success(json!({"task": {}}))));
        let after_rename =
            Link::Live { id: id("K1"), updated_at: MS1030, status_tag: None, completed_at: Some(MS11) };
        assert_eq!(done.writes, vec![put(task_key(LOC, "c", "k"), &after_rename)]);

        let known =
            Known { contact: contact.clone(), link: Some(after_rename), tag: None, ..Known::default() };
        assert!(matches!(plan(&completed, &known), Start::Finish(Applied { outcome: Outcome::Stale, .. })));
        let deleted_before =
            event("task.deleted", json!({"id": "k", "contact_id": "c", "updated_at": T1030}));
        let known = Known { contact, link: Some(after_completion), tag: None, ..Known::default() };
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
                Answer::Rejected { status: 422, message: "property x should not exist".into() },
                Failure::Rejected { api_status: 422, message: "property x should not exist".into() },
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
