//! The dry run, inside the location's Durable Object: the Contacts API requests an event would
//! produce with a mapping, planned as the writer would plan them but sent and kept nowhere. The
//! operator's `/admin/dry-run` ([`super::operator`]) asks it with the effective mapping, the
//! mapping editor's `/admin/mapping/dry-run` ([`super::live_mapping`]) with the one being edited.

use std::borrow::Cow;

use serde_json::json;
use worker::{Response, Result};

use super::ports::Adapter;
use super::Writer;
use crate::config::Config;
use crate::contacts_api::Answer;
use crate::engine::custom_fields::{self, Prepared};
use crate::engine::planned_actions;
use crate::intake::event::{parse_event, Change, Event};
use crate::refusal::Refusal;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::now_ms;
use crate::sync::mapping::Mapping;
use crate::sync::plan::{self, Next, Start};
use crate::sync::records::Outcome;

/// `POST /admin/dry-run` with a SightMill event body: the requests it would send now with
/// `mapping` (its custom fields resolved for the location, values converted by their types),
/// given what the id maps hold, assuming each call succeeds, and the values it would leave out.
/// Sends nothing to the contact and writes nothing but the custom fields' list when it is read.
pub(super) async fn answer(
    writer: &Writer,
    config: &Config,
    mapping: &Mapping,
    body: &[u8],
) -> Result<Response> {
    if body.len() > config.max_body_bytes {
        let message = format!("the body is larger than {} bytes", config.max_body_bytes);
        return Refusal::too_large("body_too_large", message).response();
    }
    let event = match parse_event(body) {
        Ok(event) => event,
        Err(error) => return Refusal::unprocessable("unprocessable_event", error.to_string()).response(),
    };
    match decide(writer, config, mapping, &event).await {
        Ok(answer) => respond::json(200, &answer),
        Err(refusal) => refusal.response(),
    }
}

/// What the writer would do with `event` now with `mapping`: `{decision, requests, ...}`.
pub(super) async fn decide(
    writer: &Writer,
    config: &Config,
    mapping: &Mapping,
    event: &Event,
) -> std::result::Result<serde_json::Value, Refusal> {
    let known = match writer.db.known(&plan::reads(event, &config.location_id)) {
        Ok(known) => known,
        Err(error) => return Err(Refusal::storage_unavailable(error.to_string())),
    };
    let mapping = match &event.change {
        Change::ContactUpsert(contact) => {
            let adapter = Adapter { writer, config };
            custom_fields::prepare(adapter.ports(), mapping, Some(&contact.fields), now_ms()).await
        }
        _ => Prepared::Ready(Cow::Borrowed(mapping)),
    };
    let mapping = match mapping {
        Prepared::Ready(mapping) => mapping,
        Prepared::Retry(failure) => {
            return Ok(json!({ "decision": "retry", "requests": [], "reason": failure.describe() }));
        }
        Prepared::Park(reason) => return Ok(json!({ "decision": "park", "requests": [], "reason": reason })),
    };
    let left_out = match &event.change {
        Change::ContactUpsert(contact) => mapping.left_out(&contact.fields),
        _ => vec![],
    };
    let mut answer = match plan::start(event, &known, &config.location_id, &mapping) {
        Start::Finish(applied) => json!({ "decision": "finish", "requests": [], "outcome": applied.outcome }),
        Start::Wait(reason) => json!({ "decision": "wait", "requests": [], "reason": reason }),
        Start::Park(reason) => json!({ "decision": "park", "requests": [], "reason": reason }),
        Start::Send(mut job, first) => {
            let mut requests = vec![first];
            let success = json!({"contact": {"id": "NEW_CONTACT_ID"}, "note": {"id": "NEW_NOTE_ID"}, "task": {"id": "NEW_TASK_ID"}});
            let applied = loop {
                match job.on_answer(Answer::Success(success.clone())) {
                    Next::Send(next) => requests.push(next),
                    Next::Applied(applied) => break Some(applied),
                    _ => break None,
                }
            };
            let mut answer = json!({ "decision": "send", "requests": requests });
            if let Some(Outcome::Applied { contact_id, .. }) = applied.map(|applied| applied.outcome) {
                let tag = known.tag.clone();
                let adapter = Adapter { writer, config };
                let location = &config.location_id;
                match planned_actions(&adapter, location, &mapping, event, &contact_id, tag, now_ms()) {
                    Ok(planned) if planned.is_empty() => {}
                    Ok(planned) => answer["actions"] = json!(planned),
                    Err(reason) => {
                        return Ok(json!({ "decision": "park", "requests": [], "reason": reason }))
                    }
                }
            }
            answer
        }
    };
    if !left_out.is_empty() {
        answer["left_out"] = json!(left_out);
    }
    Ok(answer)
}
