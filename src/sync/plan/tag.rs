//! The tag job: a `tag.added` or `tag.removed` on a contact already in the Contacts API, planned
//! by [`super::start`]. One call to the contact's tags endpoint, remembered as the tag's presence
//! ([`TagState`]) at the event's `updated_at`, so that an older event about the tag is stale.

use super::{finish, Job, Remember, SingleCall, Start};
use crate::contacts_api::{ApiId, ApiRequest};
use crate::sync::records::{Action, Outcome, TagState};
use crate::timestamp::UnixMillis;

/// Adds the tag `name` to the contact `contact_id` (`present`), or removes it, unless the tag's
/// state on record (`on_record`, under `key`) is newer than the event's `at`.
pub(super) fn start(
    contact_id: ApiId,
    name: &str,
    present: bool,
    key: String,
    on_record: Option<&TagState>,
    at: UnixMillis,
) -> Start {
    if on_record.is_some_and(|state| state.updated_at > at) {
        return finish(Outcome::Stale, vec![]);
    }
    // The same change on record already (an export imported again): nothing to send.
    if on_record.is_some_and(|state| state.updated_at == at && state.present == present) {
        return finish(Outcome::Unchanged { contact_id }, vec![]);
    }
    let tags = [name.to_owned()];
    let (request, action) = if present {
        (ApiRequest::add_tags(&contact_id, &tags), Action::TagAdded)
    } else {
        (ApiRequest::remove_tags(&contact_id, &tags), Action::TagRemoved)
    };
    let remember = Remember::Tag { key, present };
    let call = SingleCall { contact_id, record: None, action, updated_at: at, remember };
    Start::Send(Job::Single(call), request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::Method;
    use crate::sync::plan::test_support::*;
    use crate::sync::plan::*;
    use serde_json::json;

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
    fn the_same_tag_change_on_record_sends_nothing() {
        for (kind, present) in [("tag.added", true), ("tag.removed", false)] {
            let tag = event(kind, json!({"contact_id": "c", "tag": "vip", "updated_at": T10}));
            let mut known = known_contact(live("c9", 0));
            known.tag = Some(TagState { present, updated_at: MS10 });
            let done = match plan(&tag, &known) {
                Start::Finish(done) => done,
                other => panic!("expected nothing to send: {other:?}"),
            };
            assert_eq!(
                done.outcome,
                Outcome::Unchanged { contact_id: crate::contacts_api::ApiId::parse("c9").unwrap() }
            );
            known.tag = Some(TagState { present: !present, updated_at: MS10 });
            assert!(
                matches!(plan(&tag, &known), Start::Send(..)),
                "the other change at that version is sent"
            );
        }
    }
}
