//! The record job: a note's or a task's event (upsert, completion, deletion) once its contact is
//! in the Contacts API. Planned by [`super::start`]; a create whose answer was lost leaves the
//! link in doubt, and the next event about the record looks the contact's notes or tasks up
//! first and adopts what that create made.

use serde_json::{json, Value};

use super::{
    finish, leaves_in_doubt, link_write, put, refused, tombstone, unanswered, Applied, Failure, Job, Next,
    Remember, SingleCall, Start, Write,
};
use crate::contacts_api::{Answer, ApiId, ApiRequest};
use crate::intake::event::{SightmillNote, SightmillTask};
use crate::sync::contact_lookup::CLOCK_SKEW_MS;
use crate::sync::records::{Action, CreateInDoubt, Link, Outcome, Sent};
use crate::timestamp::{parse_rfc3339, UnixMillis};

/// A note's or task's event, about to be planned: its contact in the Contacts API, its link's
/// key, what that link holds, and the event's `updated_at`.
pub(super) struct Target<'a> {
    pub(super) contact_id: ApiId,
    pub(super) key: String,
    pub(super) link: Option<&'a Link>,
    pub(super) at: UnixMillis,
}

impl Target<'_> {
    /// The job that does `then` to this record once it is known (or known to be missing).
    fn job(self, kind: RecordKind, completed_at: Option<UnixMillis>, then: Then) -> RecordJob {
        RecordJob {
            contact_id: self.contact_id,
            record: NewRecord { kind, key: self.key, updated_at: self.at, completed_at },
            then,
            stage: RecordStage::Planned,
            before: self.link.cloned(),
        }
    }
}

/// A note's snapshot: creates or updates the note, unless it is stale.
pub(super) fn upsert_note(note: &SightmillNote, target: Target) -> Start {
    let (link, at) = (target.link, target.at);
    if is_stale_snapshot(link, at) {
        return finish(Outcome::Stale, vec![]);
    }
    if is_applied_snapshot(link, at) {
        return finish(Outcome::Unchanged { contact_id: target.contact_id }, vec![]);
    }
    let body = json!({ "body": note.body });
    target.job(RecordKind::Note, None, upsert_then(link, at, body)).start(link)
}

/// A task's snapshot: creates or updates the task, unless it is stale.
pub(super) fn upsert_task(task: &SightmillTask, target: Target) -> Start {
    let (link, at) = (target.link, target.at);
    if is_stale_snapshot(link, at) {
        return finish(Outcome::Stale, vec![]);
    }
    if is_applied_snapshot(link, at) {
        return finish(Outcome::Unchanged { contact_id: target.contact_id }, vec![]);
    }
    let completed_at = link.and_then(Link::completed_at);
    let body = task_body(task, completed_at, at);
    target.job(RecordKind::Task, completed_at, upsert_then(link, at, body)).start(link)
}

/// A task's completion: sent when no newer snapshot nor a later completion is on record; waits
/// for a task that is not in the Contacts API yet.
pub(super) fn complete_task(target: Target) -> Start {
    let (link, at) = (target.link, target.at);
    match link {
        Some(Link::Live { updated_at, completed_at, .. })
            if *updated_at <= at && completed_at.is_none_or(|done| done < at) =>
        {
            target.job(RecordKind::Task, None, Then::Complete { snapshot_at: *updated_at }).start(link)
        }
        Some(Link::InDoubt(doubt)) if doubt.updated_at <= at => {
            target.job(RecordKind::Task, None, Then::Complete { snapshot_at: doubt.updated_at }).start(link)
        }
        None => Start::Wait(TASK_MISSING.into()),
        Some(_) => finish(Outcome::Stale, vec![]),
    }
}

/// A note's or task's deletion: unless a later change is on record, deletes the record (or what
/// its create in doubt made), or remembers the deletion of one that was never synced.
pub(super) fn delete(kind: RecordKind, target: Target) -> Start {
    let (link, at) = (target.link, target.at);
    match link {
        Some(link @ (Link::Live { .. } | Link::InDoubt(_))) if link.last_change() <= at => {
            target.job(kind, None, Then::Delete).start(Some(link))
        }
        Some(_) => finish(Outcome::Stale, vec![]),
        None => target.job(kind, None, Then::Delete).start(None),
    }
}

const TASK_MISSING: &str = "its task is not in the Contacts API yet";

/// A note or task snapshot is already applied when the record's live link is at its very version
/// (SightMill changes `updated_at` with every change): an export imported again sends nothing.
fn is_applied_snapshot(link: Option<&Link>, at: UnixMillis) -> bool {
    matches!(link, Some(Link::Live { updated_at, .. }) if *updated_at == at)
}

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
    pub(super) fn noun(self) -> &'static str {
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
    /// Built, before [`RecordJob::start`] chose its first request: nothing sent, nothing to keep.
    Planned,
    /// Looking the contact's notes or tasks up for what the create in doubt may have made.
    LookingUp(CreateInDoubt),
    /// The create is sent (or about to be), with what recognises the record it makes.
    Creating(Box<Sent>),
    /// The create got no definite answer: it may have been applied.
    Unanswered(Box<Sent>),
    /// The event's own call on the record; `adopted`: the link to the record the lookup found,
    /// at the version in doubt.
    Following { call: SingleCall, adopted: Option<Box<Link>> },
}

/// A record job's move that answers no request (its first, or the one after a lookup): it
/// sends, applies or waits, and never fails.
enum Step {
    Send(ApiRequest),
    Applied(Applied),
    Wait(String),
}

impl From<Step> for Next {
    fn from(step: Step) -> Next {
        match step {
            Step::Send(request) => Next::Send(request),
            Step::Applied(applied) => Next::Applied(applied),
            Step::Wait(reason) => Next::Wait(reason),
        }
    }
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
        let step = match link {
            Some(Link::InDoubt(doubt)) => {
                self.stage = RecordStage::LookingUp(doubt.clone());
                Step::Send(self.record.kind.list(&self.contact_id))
            }
            Some(Link::Live { id, .. }) => self.found(id.clone(), None),
            Some(Link::Deleted { .. }) | None => self.missing(),
        };
        match step {
            Step::Send(request) => Start::Send(Job::Record(Box::new(self)), request),
            Step::Applied(applied) => Start::Finish(applied),
            Step::Wait(reason) => Start::Wait(reason),
        }
    }

    /// The event's own call on the record `id`; `adopted_at`: the version in doubt, when the
    /// lookup found it.
    fn found(&mut self, id: ApiId, adopted_at: Option<UnixMillis>) -> Step {
        let (kind, contact_id) = (self.record.kind, &self.contact_id);
        let (request, action, remember) = match &self.then {
            Then::Upsert { adopt: true, .. } => return Step::Applied(self.applied(id, Action::Adopted)),
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
                    digest: None,
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
        let adopted = adopted_at.map(|updated_at| {
            Box::new(Link::Live { id, updated_at, status_tag: None, completed_at: None, digest: None })
        });
        self.stage = RecordStage::Following { call, adopted };
        Step::Send(request)
    }

    /// No record in the API: create it, remember its deletion, or wait for the task.
    fn missing(&mut self) -> Step {
        match &self.then {
            Then::Upsert { body, .. } => {
                let request = self.record.kind.upsert(&self.contact_id, None, body.clone());
                self.stage = RecordStage::Creating(Box::new(sent(body)));
                Step::Send(request)
            }
            Then::Delete => Step::Applied(Applied {
                outcome: Outcome::Skipped { reason: "it was never synced".into() },
                writes: vec![tombstone(self.record.key.clone(), self.record.updated_at)],
            }),
            Then::Complete { .. } => Step::Wait(TASK_MISSING.into()),
        }
    }

    pub(super) fn on_answer(&mut self, answer: Answer) -> Next {
        match (&mut self.stage, answer) {
            (RecordStage::Following { call, .. }, answer) => call.on_answer(answer),
            (RecordStage::LookingUp(doubt), Answer::Success(list)) => {
                let version = doubt.updated_at;
                match self.record.kind.find(&list, doubt) {
                    Ok(Some(id)) => self.found(id, Some(version)).into(),
                    Ok(None) => self.missing().into(),
                    Err(detail) => Next::Failed(Failure::Retryable { detail }),
                }
            }
            (RecordStage::Creating(sent), Answer::Success(answer)) => {
                let id_at = self.record.kind.id_at();
                match answer.pointer(id_at).and_then(Value::as_str).and_then(ApiId::parse) {
                    Some(id) => Next::Applied(self.applied(id, Action::Created)),
                    None => {
                        // Applied, but with no id to remember: the record stays in doubt.
                        self.stage = RecordStage::Unanswered(sent.clone());
                        let message = format!("the answer carried no usable id at {id_at}");
                        Next::Failed(Failure::Rejected { api_status: 200, message })
                    }
                }
            }
            (RecordStage::Creating(sent), answer) if leaves_in_doubt(&answer) => {
                self.stage = RecordStage::Unanswered(sent.clone());
                Next::Failed(unanswered(answer))
            }
            // Refused: nothing was created, and the link is what it was before the create.
            (RecordStage::Creating(_), answer) => match refused(answer, None) {
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

    fn applied(&self, id: ApiId, action: Action) -> Applied {
        let NewRecord { key, updated_at, completed_at, .. } = &self.record;
        let writes = vec![link_write(key, &id, *updated_at, *completed_at)];
        let outcome = Outcome::Applied { action, contact_id: self.contact_id.clone(), record_id: Some(id) };
        Applied { outcome, writes }
    }

    /// What the link must say after a failed attempt that started at `attempt_started`: in doubt
    /// when this attempt's create went unanswered; the adopted record when the call after the
    /// lookup failed (so that the retry needs no lookup).
    pub(super) fn kept_on_failure(&self, attempt_started: UnixMillis) -> Option<Write> {
        match &self.stage {
            RecordStage::Unanswered(sent) => Some(self.in_doubt(sent, attempt_started)),
            RecordStage::Following { adopted, .. } => {
                adopted.as_ref().map(|link| put(self.record.key.clone(), link))
            }
            RecordStage::Creating(_) => Some(self.restore()),
            RecordStage::Planned | RecordStage::LookingUp(_) => None,
        }
    }

    /// Before a request is sent: the create's link in doubt, written ahead of the create so that
    /// an answer lost even to a restart of the writer leaves the record known to be in doubt.
    pub(super) fn intent(&self, attempt_started: UnixMillis) -> Option<Write> {
        match &self.stage {
            RecordStage::Creating(sent) => Some(self.in_doubt(sent, attempt_started)),
            _ => None,
        }
    }

    /// The link in doubt after this event's create, which sent `sent`, was sent in an attempt
    /// begun at `attempt_started`.
    fn in_doubt(&self, sent: &Sent, attempt_started: UnixMillis) -> Write {
        let doubt = CreateInDoubt {
            updated_at: self.record.updated_at,
            sent_at: attempt_started,
            sent: Box::new(sent.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::Method;
    use crate::sync::plan::test_support::*;
    use crate::sync::plan::*;
    use serde_json::json;

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

    #[test]
    fn a_note_or_task_at_the_version_on_record_is_unchanged_and_sends_nothing() {
        let contact = Some(live("c9", 0));
        let note =
            event("note.updated", json!({"id": "n1", "contact_id": "c", "body": "hi", "updated_at": T10}));
        let known = Known { contact: contact.clone(), link: Some(live("N1", MS10)), tag: None };
        let done = match plan(&note, &known) {
            Start::Finish(done) => done,
            other => panic!("expected nothing to send: {other:?}"),
        };
        assert_eq!((done.outcome, done.writes), (Outcome::Unchanged { contact_id: id("c9") }, vec![]));
        let task = task_created();
        let known = Known { contact, link: Some(live("K1", MS10)), tag: None };
        assert!(matches!(
            plan(&task, &known),
            Start::Finish(Applied { outcome: Outcome::Unchanged { .. }, .. })
        ));
        let in_doubt = Known { link: Some(in_doubt(task_sent())), ..known };
        assert!(matches!(plan(&task, &in_doubt), Start::Send(..)), "a create in doubt is still looked up");
    }

    fn task_created() -> Event {
        event(
            "task.created",
            json!({"id": "k1", "contact_id": "c", "title": "Call", "body": "About it", "due_date": T11, "updated_at": T10}),
        )
    }

    fn task_sent() -> Sent {
        Sent {
            title: Some("Call".into()),
            body: Some("About it".into()),
            due_date: Some(T11.into()),
            ..Sent::default()
        }
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
            digest: None,
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
        let link = Link::Live {
            id: id("K1"),
            updated_at: 0,
            status_tag: None,
            completed_at: Some(MS10),
            digest: None,
        };
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
        let after_completion = Link::Live {
            id: id("K1"),
            updated_at: MS10,
            status_tag: None,
            completed_at: Some(MS11),
            digest: None,
        };
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
        let after_rename = Link::Live {
            id: id("K1"),
            updated_at: MS1030,
            status_tag: None,
            completed_at: Some(MS11),
            digest: None,
        };
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
}
