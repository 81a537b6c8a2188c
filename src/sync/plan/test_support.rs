//! Test helpers that every job's tests share: events, ids, links, and the moves unwrapped.

use serde_json::{json, Value};

use super::{start, Applied, Job, Known, Next, Start};
use crate::contacts_api::{ApiId, ApiRequest};
use crate::intake::event::{parse_event, Event};
use crate::sync::mapping::Mapping;
use crate::sync::records::{CreateInDoubt, Link, Sent};
use crate::timestamp::UnixMillis;

pub(super) const LOC: &str = "loc-1";
pub(super) const T10: &str = "2026-11-27T10:00:00Z";
pub(super) const T11: &str = "2026-11-27T11:00:00Z";
pub(super) const MS10: UnixMillis = 1_795_773_600_000;

pub(super) fn event(kind: &str, data: Value) -> Event {
    let body = json!({"type": kind, "timestamp": T10, "data": data});
    parse_event(body.to_string().as_bytes()).unwrap()
}

pub(super) fn id(text: &str) -> ApiId {
    ApiId::parse(text).unwrap()
}

pub(super) fn live(text: &str, updated_at: UnixMillis) -> Link {
    Link::Live { id: id(text), updated_at, status_tag: None, completed_at: None, digest: None }
}

pub(super) fn known_contact(link: Link) -> Known {
    Known { contact: Some(link), ..Known::default() }
}

pub(super) fn send(start: Start) -> (Job, ApiRequest) {
    match start {
        Start::Send(job, request) => (job, request),
        other => panic!("expected a request, got {other:?}"),
    }
}

pub(super) fn applied(next: Next) -> Applied {
    match next {
        Next::Applied(applied) => applied,
        other => panic!("expected applied, got {other:?}"),
    }
}

pub(super) fn plan(event: &Event, known: &Known) -> Start {
    start(event, known, LOC, &Mapping::default())
}

/// The link a create at 10:00 left in doubt, sent at 10:00 with `sent`.
pub(super) fn in_doubt(sent: Sent) -> Link {
    Link::InDoubt(CreateInDoubt { updated_at: MS10, sent_at: MS10, sent: Box::new(sent) })
}

pub(super) fn note_sent(body: &str) -> Sent {
    Sent { body: Some(body.into()), ..Sent::default() }
}

pub(super) fn with_link(link: Link) -> Known {
    Known { contact: Some(live("c9", 0)), link: Some(link), ..Known::default() }
}

pub(super) fn note_created(body: &str) -> Event {
    event("note.created", json!({"id": "n1", "contact_id": "c", "body": body, "updated_at": T10}))
}
