//! The contact job: a contact's own event, planned by [`super::start`]. A create or update
//! ([`ContactJob`]) with the follow-up calls that swap its status tag; a deletion, of a contact
//! whose create is in doubt too ([`DeleteInDoubt`]). A contact whose create is in doubt is
//! searched for first ([`crate::sync::contact_lookup`]) and adopted when found. An update whose
//! fields are what the contact's link says were last sent ([`digest`]) sends nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{
    finish, leaves_in_doubt, put, refused, tombstone, unanswered, Applied, Failure, Job, Next, Remember,
    SingleCall, Start, Write,
};
use crate::contacts_api::{Answer, ApiId, ApiRequest};
use crate::sync::contact_lookup::{self, Found};
use crate::sync::mapping::{ExistingContacts, Mapping, Purpose};
use crate::sync::records::{child_prefixes, Action, CreateInDoubt, Link, Outcome};
use crate::timestamp::UnixMillis;

/// Where a contact event's contact is remembered, and in which location.
pub struct ContactTarget<'a> {
    /// Its link's key.
    pub key: String,
    pub location_id: &'a str,
    pub sightmill_id: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Built, before [`ContactJob::start`] chose its first request: nothing sent, nothing to keep.
    Planned,
    /// Searching for what the create in doubt made; `create`: the fields to create it with when
    /// it made nothing.
    LookingUp {
        doubt: CreateInDoubt,
        create: serde_json::Map<String, Value>,
    },
    /// Asking the location for a contact with the same email or phone (`existing_contacts: adopt`),
    /// before creating one with these fields.
    Matching(serde_json::Map<String, Value>),
    /// The create, with these fields, is sent (or about to be).
    Creating(serde_json::Map<String, Value>),
    /// The create with these fields got no definite answer: it may have been applied.
    Unanswered(serde_json::Map<String, Value>),
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
    /// The [`digest`] of what this event sends: kept on the link it writes.
    digest: String,
}

impl ContactJob {
    pub(super) fn start(
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
        let old_tag = match link {
            Some(Link::Live { status_tag, .. }) => status_tag.clone(),
            // What the create in doubt carried, if it was applied.
            Some(Link::InDoubt(doubt)) => doubt.sent.tag.clone(),
            _ => None,
        };
        let new_tag = update.status_tag.after(old_tag.clone());
        let digest = digest(&update.fields, new_tag.as_deref());
        if let Some(unchanged) = unchanged(link, &digest, &new_tag, at, &target.key) {
            return unchanged;
        }
        let mut job = ContactJob {
            key: target.key,
            sightmill_id: target.sightmill_id.to_owned(),
            location_id: target.location_id.to_owned(),
            update_fields: update.fields,
            id_field: mapping.sightmill_id_field().map(str::to_owned),
            updated_at: at,
            new_tag,
            old_tag,
            stage: Stage::Planned,
            follow_ups: vec![],
            before: link.cloned(),
            adopted: None,
            created: false,
            digest,
        };
        let request = match link {
            Some(Link::Live { id, .. }) => job.update(id.clone(), false),
            _ => match mapped(Purpose::Create) {
                Ok(create) => {
                    let create = create_fields(create.fields, target.sightmill_id, mapping);
                    job.begin_create(link, create, mapping)
                }
                Err(reason) => return Start::Park(reason),
            },
        };
        Start::Send(Job::Contact(Box::new(job)), request)
    }

    /// The first request for a contact that is not linked live, and may be created with `create`:
    /// the search for what its create in doubt made, the location's search for a duplicate
    /// (`existing_contacts: adopt`), or the create.
    fn begin_create(
        &mut self,
        link: Option<&Link>,
        create: serde_json::Map<String, Value>,
        mapping: &Mapping,
    ) -> ApiRequest {
        if let Some(Link::InDoubt(doubt)) = link {
            let search = contact_lookup::search(&self.location_id, &self.sightmill_id, doubt);
            self.stage = Stage::LookingUp { doubt: doubt.clone(), create };
            return search;
        }
        let duplicate = match mapping.existing_contacts() {
            ExistingContacts::Adopt => contact_lookup::duplicate_search(&self.location_id, &create),
            ExistingContacts::Create => None,
        };
        match duplicate {
            Some(search) => {
                self.stage = Stage::Matching(create);
                search
            }
            None => self.send_create(create),
        }
    }

    pub(super) fn on_answer(&mut self, answer: Answer) -> Next {
        match (self.stage.clone(), answer) {
            (Stage::LookingUp { doubt, create }, Answer::Success(list)) => {
                match contact_lookup::find(&list, &self.sightmill_id, &doubt) {
                    Ok(Found::One(id)) => self.adopt(id, &doubt),
                    Ok(Found::Nothing) => Next::Send(self.send_create(create)),
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
            (Stage::Matching(create), Answer::Success(answer)) => {
                match contact_lookup::duplicate_found(&answer) {
                    Ok(Some(id)) => Next::Send(self.update(id, true)),
                    Ok(None) => Next::Send(self.send_create(create)),
                    Err(detail) => Next::Failed(Failure::Retryable { detail }),
                }
            }
            (Stage::Creating(create), Answer::Success(body)) => {
                match body.pointer("/contact/id").and_then(Value::as_str).and_then(ApiId::parse) {
                    // The create carried the status tag in its body: nothing to swap.
                    Some(id) => self.applied(id, Action::Created),
                    None => {
                        // Applied, but with no id to remember: the contact stays in doubt.
                        self.stage = Stage::Unanswered(create);
                        let message = "the create answer carried no usable contact.id".into();
                        Next::Failed(Failure::Rejected { api_status: 201, message })
                    }
                }
            }
            (Stage::Creating(_), Answer::Duplicate(contact_id)) => {
                // The location refuses duplicates and names the contact it holds: the create made
                // nothing, so the old tag is the one that contact has from before, if any.
                self.old_tag = None;
                Next::Send(self.update(contact_id, true))
            }
            (Stage::Creating(create), answer) if leaves_in_doubt(&answer) => {
                self.stage = Stage::Unanswered(create);
                Next::Failed(unanswered(answer))
            }
            (Stage::Updating { contact_id, adopted }, Answer::Success(_)) => {
                let action = if adopted { Action::Adopted } else { Action::Updated };
                self.queue_tag_swap(&contact_id);
                self.stage = Stage::Tagging { contact_id: contact_id.clone(), action };
                self.next_follow_up(contact_id, action)
            }
            (Stage::Tagging { contact_id, action }, Answer::Success(_)) => {
                self.next_follow_up(contact_id, action)
            }
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
        self.adopted =
            Some(Link::Live { id: id.clone(), updated_at, status_tag, completed_at: None, digest: None });
        Next::Send(self.update(id, true))
    }

    fn update(&mut self, contact_id: ApiId, adopted: bool) -> ApiRequest {
        let request = ApiRequest::update_contact(&contact_id, self.update_fields.clone());
        self.stage = Stage::Updating { contact_id, adopted };
        request
    }

    fn send_create(&mut self, create: serde_json::Map<String, Value>) -> ApiRequest {
        let request = ApiRequest::create_contact(&self.location_id, create.clone());
        self.stage = Stage::Creating(create);
        self.created = true;
        request
    }

    /// Before the create is sent: the contact's link in doubt.
    pub(super) fn intent(&self, sent_at: UnixMillis) -> Option<Write> {
        match &self.stage {
            Stage::Creating(create) => Some(self.in_doubt(create, sent_at)),
            _ => None,
        }
    }

    /// What the link must say after a failed attempt: in doubt when its create went unanswered;
    /// the contact a search adopted; else, when this attempt wrote a create's intent, the link as
    /// it was (the create was refused, or the contact it named as a duplicate was not updated).
    pub(super) fn kept_on_failure(&self, sent_at: UnixMillis) -> Option<Write> {
        match (&self.stage, &self.adopted) {
            (Stage::Unanswered(create), _) => Some(self.in_doubt(create, sent_at)),
            (_, Some(link)) => Some(put(self.key.clone(), link)),
            _ if self.created => Some(self.restore()),
            _ => None,
        }
    }

    /// The link in doubt after a create with `create` was sent at `sent_at`.
    fn in_doubt(&self, create: &serde_json::Map<String, Value>, sent_at: UnixMillis) -> Write {
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

    /// The next tag call for `contact_id`, or, when none is left, the event applied as `action`.
    fn next_follow_up(&mut self, contact_id: ApiId, action: Action) -> Next {
        match self.follow_ups.pop() {
            Some(request) => Next::Send(request),
            None => self.applied(contact_id, action),
        }
    }

    fn applied(&self, contact_id: ApiId, action: Action) -> Next {
        let link = Link::Live {
            id: contact_id.clone(),
            updated_at: self.updated_at,
            status_tag: self.new_tag.clone(),
            completed_at: None,
            digest: Some(self.digest.clone()),
        };
        Next::Applied(Applied {
            outcome: Outcome::Applied { action, contact_id, record_id: None },
            writes: vec![put(self.key.clone(), &link)],
        })
    }
}

/// An update of a live contact whose [`digest`] is the one its link keeps (and whose status tag
/// stays): nothing to send, the link moved on to `at` (so that older events stay stale).
fn unchanged(
    link: Option<&Link>,
    digest: &str,
    new_tag: &Option<String>,
    at: UnixMillis,
    key: &str,
) -> Option<Start> {
    let Some(Link::Live { id, status_tag, digest: Some(kept), .. }) = link else { return None };
    if kept != digest || status_tag != new_tag {
        return None;
    }
    let link = Link::Live {
        id: id.clone(),
        updated_at: at,
        status_tag: status_tag.clone(),
        completed_at: None,
        digest: Some(kept.clone()),
    };
    Some(finish(Outcome::Unchanged { contact_id: id.clone() }, vec![put(key.to_owned(), &link)]))
}

/// What a contact's link remembers of what was sent: SHA-256 (base64url) of the canonical JSON
/// (keys sorted, no spaces) of the fields an update with the same data sends, and of the status
/// tag the contact carries afterwards. A create stores the digest of the update form of its
/// data, so that a create and a later update of the same values digest alike.
pub fn digest(fields: &Map<String, Value>, status_tag: Option<&str>) -> String {
    let mut text = String::new();
    canonical(&json!({"fields": fields, "tag": status_tag}), &mut text);
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

/// `value` as JSON with every object's keys in order, whatever order the map keeps them in.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (at, (key, value)) in entries.into_iter().enumerate() {
                if at > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
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

/// A contact's deletion: the contact deleted (or, when its create is in doubt, what that create
/// made) and its records' links cleared, unless a later change is on record.
pub(super) fn delete(
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
    pub(super) fn on_answer(&mut self, answer: Answer) -> Next {
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
    use crate::sync::plan::test_support::*;
    use crate::sync::plan::*;
    use serde_json::json;

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
        let sent = sent_digest(json!({"email": "a@b.co"}), None);
        assert_eq!(done.writes, vec![put(contact_key(LOC, "sm_1"), &with_digest(live("new1", MS10), &sent))]);
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
            digest: None,
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
                completed_at: None,
                digest: Some(digest(&Map::new(), Some("status:customer"))),
            }
        );
    }

    #[test]
    fn an_update_without_a_status_keeps_the_status_tag() {
        let mapping =
            Mapping::parse(r#"{"fields": [], "status": {"to": "tag", "prefix": "status:"}}"#).unwrap();
        let event = event("contact.updated", json!({"id": "sm_1", "email": "a@b.co", "updated_at": T10}));
        let tagged = Some("status:lead".to_owned());
        let link = Link::Live {
            id: id("c9"),
            updated_at: 0,
            status_tag: tagged.clone(),
            completed_at: None,
            digest: None,
        };
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

    /// The digest of an update that sends `fields` and leaves the contact with `tag`.
    fn sent_digest(fields: Value, tag: Option<&str>) -> String {
        let Value::Object(fields) = fields else { panic!("fields are an object") };
        digest(&fields, tag)
    }

    fn with_digest(link: Link, sent: &str) -> Link {
        match link {
            Link::Live { id, updated_at, status_tag, completed_at, .. } => {
                Link::Live { id, updated_at, status_tag, completed_at, digest: Some(sent.to_owned()) }
            }
            other => other,
        }
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
            digest: Some(sent_digest(
                json!({"firstName": "Ada", "lastName": "Byron", "email": "a@b.co"}),
                Some("status:lead"),
            )),
        };
        assert_eq!(done.writes, vec![put(contact_key(LOC, "sm_1"), &link)], "the digest of what was sent");

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
            digest: None,
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

    /// The link an applied attempt wrote.
    fn written(done: &Applied) -> Link {
        let Some(Write::Put { value, .. }) = done.writes.first() else { panic!("{:?}", done.writes) };
        serde_json::from_value(value.clone()).unwrap()
    }

    fn unchanged(start: Start) -> Link {
        match start {
            Start::Finish(done @ Applied { outcome: Outcome::Unchanged { .. }, .. }) => {
                assert_eq!(done.writes.len(), 1, "only the link");
                written(&done)
            }
            other => panic!("expected unchanged, got {other:?}"),
        }
    }

    #[test]
    fn the_same_values_again_send_nothing_and_move_the_link_on() {
        let mapping = tagged();
        let (mut job, _) =
            send(start(&contact_event("contact.created", T10), &Known::default(), LOC, &mapping));
        let created = written(&applied(job.on_answer(Answer::Success(json!({"contact": {"id": "c1"}})))));
        let again = contact_event("contact.updated", T11);
        let moved = unchanged(start(&again, &known_contact(created.clone()), LOC, &mapping));
        assert_eq!(moved.updated_at(), MS11, "written at the new version");
        assert_eq!((moved.live_id(), &moved), (Some(&id("c1")), &with_digest_of(&created, MS11)));
        let Start::Finish(done) = start(&again, &known_contact(created), LOC, &mapping) else { panic!() };
        assert_eq!(done.outcome, Outcome::Unchanged { contact_id: id("c1") });
        // Staleness still works against the version the unchanged event left.
        let older = contact_event("contact.updated", "2026-11-27T10:30:00Z");
        assert!(matches!(
            start(&older, &known_contact(moved), LOC, &mapping),
            Start::Finish(Applied { outcome: Outcome::Stale, .. })
        ));
    }

    /// `link` at `updated_at`, everything else kept.
    fn with_digest_of(link: &Link, updated_at: UnixMillis) -> Link {
        let Link::Live { id, status_tag, digest, .. } = link.clone() else { panic!("{link:?}") };
        Link::Live { id, updated_at, status_tag, completed_at: None, digest }
    }

    #[test]
    fn one_changed_field_or_status_sends_the_update() {
        let mapping = tagged();
        let (mut job, _) =
            send(start(&contact_event("contact.created", T10), &Known::default(), LOC, &mapping));
        let created = written(&applied(job.on_answer(Answer::Success(json!({"contact": {"id": "c1"}})))));
        let renamed = event(
            "contact.updated",
            json!({"id": "sm_1", "name": "Ada Lovelace", "email": "a@b.co", "status": "lead", "updated_at": T11}),
        );
        let (mut job, update) = send(start(&renamed, &known_contact(created.clone()), LOC, &mapping));
        assert_eq!((update.method, update.path.as_str()), (Method::Put, "/contacts/c1"));
        let updated = written(&applied(job.on_answer(Answer::Success(json!({})))));
        let sent = sent_digest(
            json!({"firstName": "Ada", "lastName": "Lovelace", "email": "a@b.co"}),
            Some("status:lead"),
        );
        assert_eq!(updated, with_digest(live_tagged("c1", MS11, "status:lead"), &sent));
        let Link::Live { digest: before, .. } = &created else { panic!() };
        assert_ne!(before.as_deref(), Some(sent.as_str()));

        let promoted = event(
            "contact.updated",
            json!({"id": "sm_1", "name": "Ada Byron", "email": "a@b.co", "status": "customer", "updated_at": T11}),
        );
        let (_, update) = send(start(&promoted, &known_contact(created), LOC, &mapping));
        assert_eq!(update.method, Method::Put, "a new status tag is sent");
    }

    fn live_tagged(text: &str, updated_at: UnixMillis, tag: &str) -> Link {
        Link::Live {
            id: id(text),
            updated_at,
            status_tag: Some(tag.into()),
            completed_at: None,
            digest: None,
        }
    }

    #[test]
    fn a_link_stored_without_a_digest_is_updated_once_then_keeps_one() {
        let old: Link =
            serde_json::from_value(json!({"state": "live", "id": "c9", "updated_at": MS10})).unwrap();
        assert_eq!(old, live("c9", MS10), "a link written before digests reads as one without");
        let update =
            |at: &str| event("contact.updated", json!({"id": "sm_1", "email": "a@b.co", "updated_at": at}));
        let (mut job, request) = send(plan(&update(T11), &known_contact(old)));
        assert_eq!(request.method, Method::Put);
        let kept = written(&applied(job.on_answer(Answer::Success(json!({})))));
        assert_eq!(kept, with_digest(live("c9", MS11), &sent_digest(json!({"email": "a@b.co"}), None)));
        let stored = serde_json::to_value(&kept).unwrap();
        assert_eq!(stored["digest"], json!(sent_digest(json!({"email": "a@b.co"}), None)));
        assert_eq!(serde_json::from_value::<Link>(stored).unwrap(), kept);
        unchanged(plan(&update("2026-11-27T12:00:00Z"), &known_contact(kept)));
    }

    #[test]
    fn an_adopted_duplicate_keeps_the_digest_of_its_update() {
        let created = contact_event("contact.created", T10);
        let (mut job, _) = send(plan(&created, &Known::default()));
        let Next::Send(_) = job.on_answer(Answer::Duplicate(id("old7"))) else { panic!() };
        let adopted = written(&applied(job.on_answer(Answer::Success(json!({})))));
        let fields = json!({"firstName": "Ada", "lastName": "Byron", "email": "a@b.co"});
        assert_eq!(adopted, with_digest(live("old7", MS10), &sent_digest(fields, None)));
        unchanged(plan(&contact_event("contact.updated", T11), &known_contact(adopted)));
    }

    #[test]
    fn the_digest_is_of_canonical_json() {
        let one = sent_digest(json!({"b": 1, "a": [{"y": null, "x": "é"}]}), Some("t"));
        let mut reordered = Map::new();
        reordered.insert("a".into(), json!([{"x": "é", "y": null}]));
        reordered.insert("b".into(), json!(1));
        assert_eq!(digest(&reordered, Some("t")), one);
        assert_ne!(digest(&reordered, None), one, "the tag counts");
        assert_eq!(one.len(), 43, "sha256, base64url without padding");
        let mut text = String::new();
        canonical(&json!({"b": [1, {"d": true, "c": "\"q\""}], "a": null}), &mut text);
        assert_eq!(text, r#"{"a":null,"b":[1,{"c":"\"q\"","d":true}]}"#);
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
