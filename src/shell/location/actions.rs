//! The mapping's actions beyond fields, inside the location's Durable Object: once an event is
//! applied, sends the calls its rules fire ([`crate::sync::actions`] says which, and how each is
//! kept to once), writing each rule's ledger row as it goes, so that a retry sends only what is
//! left. The runner calls it between applying an event and finishing it.

use super::tokens::token_failure;
use serde_json::{json, Value};

use super::Writer;
use crate::config::Config;
use crate::contacts_api::{classify, Answer, ApiId, ApiRequest};
use crate::intake::event::Event;
use crate::secret::Secret;
use crate::shell::platform::runtime::now_ms;
use crate::sync::actions::{
    answered, describe, fired_within_limit, last_status, ledger_key, remember_status, status_key, status_of,
    step, Before, Done, Heard, Ledger, Step,
};
use crate::sync::mapping::Mapping;
use crate::sync::plan::{Failure, Write};
use crate::sync::records::TagState;

/// The actions of one event, all sent (or done before).
#[derive(Default)]
pub struct Acted {
    /// What the operator should know (an add whose answer was lost).
    pub notes: Vec<String>,
    /// What the finished event writes besides: the status the rules compare with next time.
    pub writes: Vec<Write>,
}

/// Why the actions stopped: the event is tried again, or parked.
pub enum Stopped {
    Failed(Failure),
    Park(String),
}

/// The run's calls: whether one more fits, and counting one.
pub struct Budget<'a> {
    pub fits: &'a dyn Fn() -> bool,
    pub spend: &'a dyn Fn(),
}

/// Sends the actions `event` fires for contact `contact` (the API's id), given the tag's state
/// before the event (`tag`, for tag events).
pub async fn act(
    writer: &Writer,
    config: &Config,
    mapping: &Mapping,
    event: &Event,
    contact: &ApiId,
    tag: Option<TagState>,
    budget: Budget<'_>,
) -> Result<Acted, Stopped> {
    let location = &config.location_id;
    let key = status_key(location, &event.contact_id);
    let stored = writer.db.link::<Value>(&key).map_err(storage)?;
    let before = Before { status: stored.as_ref().and_then(last_status), tag };
    let mut acted = Acted::default();
    if let Some(status) = status_of(event) {
        acted.writes.push(remember_status(key, status));
    }
    let rules = fired_within_limit(mapping.actions(), event, &before).map_err(Stopped::Park)?;
    for rule in rules {
        let key = ledger_key(location, &event.contact_id, rule);
        let ledger = match writer.db.link::<Value>(&key).map_err(storage)? {
            None => None,
            Some(row) => Some(Ledger::from_json(&row).ok_or_else(|| unreadable(&key))?),
        };
        let sent_at = now_ms();
        let (request, intent) = match step(rule, contact, event.updated_at, &key, ledger.as_ref(), sent_at) {
            Step::Skip(note) => {
                acted.notes.extend(note);
                continue;
            }
            Step::Send { request, intent } => (request, intent),
        };
        if !(budget.fits)() {
            let detail = "the run's calls are spent; the actions left are sent on the next attempt".into();
            return Err(Stopped::Failed(Failure::Retryable { detail }));
        }
        let token = writer
            .tokens
            .access_token(&writer.env, &writer.db, None)
            .await
            .map_err(|error| Stopped::Failed(token_failure(error)))?;
        if let Some(intent) = &intent {
            writer.db.write(intent).map_err(storage)?;
        }
        let answer = send(writer, config, token, &request, &budget).await;
        match answered(rule, answer, event.updated_at, &key, ledger.as_ref(), sent_at) {
            Done::Recorded { ledger, note } => {
                writer.db.write(&ledger).map_err(storage)?;
                acted.notes.extend(note);
            }
            Done::Failed { restore, failure } => {
                writer.db.write(&restore).map_err(storage)?;
                return Err(Stopped::Failed(failure));
            }
        }
    }
    Ok(acted)
}

/// The dry run's view of the actions `event` would fire for `contact`: each rule with the call
/// it would send, or why it sends none (done for this version already); or why the event would
/// be parked. Sends and writes nothing.
pub fn planned(
    writer: &Writer,
    config: &Config,
    mapping: &Mapping,
    event: &Event,
    contact: &ApiId,
    tag: Option<TagState>,
) -> Result<Vec<serde_json::Value>, String> {
    let location = &config.location_id;
    let stored = writer.db.link::<Value>(&status_key(location, &event.contact_id)).ok().flatten();
    let before = Before { status: stored.as_ref().and_then(last_status), tag };
    let rules = fired_within_limit(mapping.actions(), event, &before)?;
    let plan = |rule| {
        let key = ledger_key(location, &event.contact_id, rule);
        let ledger = writer.db.link::<Value>(&key).ok().flatten().as_ref().and_then(Ledger::from_json);
        let action = describe(rule);
        match step(rule, contact, event.updated_at, &key, ledger.as_ref(), now_ms()) {
            Step::Send { request, .. } => json!({ "action": action, "request": request }),
            Step::Skip(note) => {
                json!({ "action": action, "skipped": note.unwrap_or_else(|| "done for this version".into()) })
            }
        }
    };
    Ok(rules.into_iter().map(plan).collect())
}

/// One action's call with `token`; a refused token is renewed once and the call sent again (a
/// 401 applied nothing). A renewal that fails leaves the refusal as the answer.
async fn send(
    writer: &Writer,
    config: &Config,
    token: Secret,
    request: &ApiRequest,
    budget: &Budget<'_>,
) -> Heard {
    let heard = send_once(writer, config, &token, request, budget).await;
    if heard != Heard::Answer(Answer::TokenRejected) {
        return heard;
    }
    match writer.tokens.access_token(&writer.env, &writer.db, Some(&token)).await {
        Ok(renewed) => send_once(writer, config, &renewed, request, budget).await,
        Err(_) => heard,
    }
}

/// The call sent once: its classified answer, or nothing heard.
async fn send_once(
    writer: &Writer,
    config: &Config,
    token: &Secret,
    request: &ApiRequest,
    budget: &Budget<'_>,
) -> Heard {
    (budget.spend)();
    match writer.send_raw(config, token, request, true).await {
        Ok(response) => Heard::Answer(classify(&response)),
        Err(failure) => Heard::Nothing(failure.to_string()),
    }
}

/// A ledger row that does not read: the event waits (a row taken for "not done" could send an add
/// twice).
fn unreadable(key: &str) -> Stopped {
    Stopped::Failed(Failure::Retryable { detail: format!("the actions' ledger row {key} is unreadable") })
}

fn storage(error: super::db::DbError) -> Stopped {
    Stopped::Failed(Failure::Retryable { detail: format!("the actions' ledger is unavailable: {error}") })
}
