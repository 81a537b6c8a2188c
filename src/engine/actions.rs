//! The mapping's actions beyond fields, in the engine: once an event is applied, sends the calls
//! its rules fire ([`crate::sync::actions`] says which, and how each is kept to once), writing
//! each rule's ledger row as it goes, so that a retry sends only what is left; and the dry run's
//! view of them. The attempt calls it between applying an event and finishing it.

use serde_json::{json, Value};

use super::ports::{Api, Clock, Outside, Store, StoreError};
use super::{Attempt, Run};
use crate::contacts_api::{classify, Answer, ApiId, ApiRequest};
use crate::intake::event::Event;
use crate::secret::Secret;
use crate::sync::actions::{
    answered, describe, fired_within_limit, last_status, ledger_key, remember_status, status_key, status_of,
    step, Before, Done, Heard, Ledger, Step,
};
use crate::sync::mapping::Mapping;
use crate::sync::plan::{Failure, Write};
use crate::sync::records::TagState;
use crate::timestamp::UnixMillis;

/// The actions of one event, all sent (or done before).
#[derive(Default)]
pub(super) struct Acted {
    /// What the operator should know (an add whose answer was lost).
    pub notes: Vec<String>,
    /// What the finished event writes besides: the status the rules compare with next time.
    pub writes: Vec<Write>,
}

/// Why the actions stopped: the event is tried again, or parked.
pub(super) enum Stopped {
    Failed(Failure),
    Park(String),
}

/// Sends the actions `event` fires for contact `contact` (the API's id), given the tag's state
/// before the event (`tag`, for tag events); the calls are counted into the attempt's.
pub(super) async fn act<S: Store, A: Api, C: Clock, O: Outside>(
    run: &Run<'_, S, A, C, O>,
    mapping: &Mapping,
    event: &Event,
    contact: &ApiId,
    tag: Option<TagState>,
    at: &mut Attempt<'_>,
) -> Result<Acted, Stopped> {
    let store = run.ports.store;
    let location = &run.config.location_id;
    let key = status_key(location, &event.contact_id);
    let stored = store.link(&key).map_err(storage)?;
    let before = Before { status: stored.as_ref().and_then(last_status), tag };
    let mut acted = Acted::default();
    if let Some(status) = status_of(event) {
        acted.writes.push(remember_status(key, status));
    }
    let rules = fired_within_limit(mapping.actions(), event, &before).map_err(Stopped::Park)?;
    for rule in rules {
        let key = ledger_key(location, &event.contact_id, rule);
        let ledger = match store.link(&key).map_err(storage)? {
            None => None,
            Some(row) => Some(Ledger::from_json(&row).ok_or_else(|| unreadable(&key))?),
        };
        let sent_at = run.now();
        let (request, intent) = match step(rule, contact, event.updated_at, &key, ledger.as_ref(), sent_at) {
            Step::Skip(note) => {
                acted.notes.extend(note);
                continue;
            }
            Step::Send { request, intent } => (request, intent),
        };
        if !run.action_fits() {
            let detail = "the run's calls are spent; the actions left are sent on the next attempt".into();
            return Err(Stopped::Failed(Failure::Retryable { detail }));
        }
        let token = run.ports.api.token(None).await.map_err(Stopped::Failed)?;
        if let Some(intent) = &intent {
            store.write(intent).map_err(storage)?;
        }
        let answer = send(run, token, &request, at).await;
        match answered(rule, answer, event.updated_at, &key, ledger.as_ref(), sent_at) {
            Done::Recorded { ledger, note } => {
                store.write(&ledger).map_err(storage)?;
                acted.notes.extend(note);
            }
            Done::Failed { restore, failure } => {
                store.write(&restore).map_err(storage)?;
                return Err(Stopped::Failed(failure));
            }
        }
    }
    Ok(acted)
}

/// The dry run's view of the actions `event` would fire for `contact`: each rule with the call
/// it would send, or why it sends none (done for this version already); or why the event would
/// be parked. Sends and writes nothing.
pub fn planned<S: Store>(
    store: &S,
    location: &str,
    mapping: &Mapping,
    event: &Event,
    contact: &ApiId,
    tag: Option<TagState>,
    now: UnixMillis,
) -> Result<Vec<Value>, String> {
    let stored = store.link(&status_key(location, &event.contact_id)).ok().flatten();
    let before = Before { status: stored.as_ref().and_then(last_status), tag };
    let rules = fired_within_limit(mapping.actions(), event, &before)?;
    let plan = |rule| {
        let key = ledger_key(location, &event.contact_id, rule);
        let ledger = store.link(&key).ok().flatten().as_ref().and_then(Ledger::from_json);
        let action = describe(rule);
        match step(rule, contact, event.updated_at, &key, ledger.as_ref(), now) {
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
async fn send<S: Store, A: Api, C: Clock, O: Outside>(
    run: &Run<'_, S, A, C, O>,
    token: Secret,
    request: &ApiRequest,
    at: &mut Attempt<'_>,
) -> Heard {
    let heard = send_once(run, &token, request, at).await;
    if heard != Heard::Answer(Answer::TokenRejected) {
        return heard;
    }
    match run.ports.api.token(Some(&token)).await {
        Ok(renewed) => send_once(run, &renewed, request, at).await,
        Err(_) => heard,
    }
}

/// The call sent once: its classified answer, or nothing heard.
async fn send_once<S: Store, A: Api, C: Clock, O: Outside>(
    run: &Run<'_, S, A, C, O>,
    token: &Secret,
    request: &ApiRequest,
    at: &mut Attempt<'_>,
) -> Heard {
    at.calls += 1;
    match run.send(token, request).await {
        Ok(response) => Heard::Answer(classify(&response)),
        Err(failure) => Heard::Nothing(failure),
    }
}

/// A ledger row that does not read: the event waits (a row taken for "not done" could send an add
/// twice).
fn unreadable(key: &str) -> Stopped {
    Stopped::Failed(Failure::Retryable { detail: format!("the actions' ledger row {key} is unreadable") })
}

fn storage(error: StoreError) -> Stopped {
    Stopped::Failed(Failure::Retryable { detail: format!("the actions' ledger is unavailable: {error}") })
}
