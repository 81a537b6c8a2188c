//! Actions beyond fields, applied: which of the mapping's rules ([`crate::sync::action_rules`]) an
//! event fires (its contact's status becomes or leaves a value, a tag is added or removed), and
//! how each is sent once. Planning applies the event itself first ([`crate::sync::plan`]); the
//! writer then sends the actions this module says fired.
//!
//! Once, with no idempotency key in the API: every rule that fired for an event version has a
//! ledger row (`action:{location}:{contact}:{rule}`) saying it was done for that version, so a
//! retry of the event sends only what is left. Removals and followers are sets: sending one again
//! changes nothing, so one whose answer was lost is simply sent again. An add to a workflow or a
//! campaign is not (a workflow that allows re-entry enrols the contact again, and no call tells
//! whether the contact is in one): its row is written "in doubt" before it is sent, so an add
//! whose answer was lost (no answer: a timeout or a network error) is never sent again; the event
//! finishes with a note saying so. An add the API answered with a failure (a 5xx, 408, 425 or
//! 429: sent again later; any other 4xx or a refused token: parked or retried as usual) is taken
//! as not applied: its row goes back to what it was.

use serde_json::{json, Value};

use crate::contacts_api::{Answer, ApiId, ApiRequest};
use crate::intake::event::{Change, Event};
pub use crate::sync::action_rules::describe;
use crate::sync::action_rules::{ActionRule, Trigger};
use crate::sync::plan::{Failure, Write};
use crate::sync::records::TagState;
use crate::timestamp::UnixMillis;

/// Most actions one event sends (each one call): they share the run's call budget.
pub const MAX_FIRED: usize = 4;

/// The ledger row of `rule` for one contact.
pub fn ledger_key(location_id: &str, contact: &str, rule: &ActionRule) -> String {
    format!("action:{location_id}:{contact}:{}", rule.digest())
}

/// The row holding the status the contact's last applied event left (what `status_leaves` and
/// `status_becomes` compare with).
pub fn status_key(location_id: &str, contact: &str) -> String {
    format!("action:{location_id}:{contact}:status")
}

/// The status the contact's last applied event left, as the rules compare with it: stored as
/// `{"status": "..." | null}` (built by hand, like the ledger: derived serde pairs cost the Wasm
/// more).
pub fn last_status(stored: &Value) -> Option<String> {
    stored.get("status").and_then(Value::as_str).map(str::to_owned)
}

/// The row that remembers `status` as the last one applied, under `key`.
pub fn remember_status(key: String, status: Option<String>) -> Write {
    Write::Put { key, value: json!({ "status": status }) }
}

/// What the ledger holds for a rule: the event version it fired for, and whether it was applied
/// or its answer lost. Stored as `{"version", "in_doubt_since"?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub version: UnixMillis,
    /// `None`: applied. `Some`: sent at that time, its answer lost.
    pub in_doubt_since: Option<UnixMillis>,
}

impl Ledger {
    pub fn to_json(&self) -> Value {
        let mut row = json!({ "version": self.version });
        if let Some(since) = self.in_doubt_since {
            row["in_doubt_since"] = json!(since);
        }
        row
    }

    pub fn from_json(row: &Value) -> Option<Ledger> {
        let since = row.get("in_doubt_since").and_then(Value::as_i64);
        Some(Ledger { version: row.get("version")?.as_i64()?, in_doubt_since: since })
    }
}

/// The contact's state before the event, as far as the rules look at it.
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub status: Option<String>,
    pub tag: Option<TagState>,
}

/// The status a contact event sets (`Some(None)`: cleared), `None` when it does not say.
pub fn status_of(event: &Event) -> Option<Option<String>> {
    let Change::ContactUpsert(contact) = &event.change else {
        return None;
    };
    let status = contact.fields.get("status")?;
    let text = match status {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    Some(Some(text).filter(|t| !t.is_empty()))
}

/// The rules `event` fires, or why it may not: more than [`MAX_FIRED`] (the event is parked).
pub fn fired_within_limit<'a>(
    rules: &'a [ActionRule],
    event: &Event,
    before: &Before,
) -> Result<Vec<&'a ActionRule>, String> {
    let rules = fired(rules, event, before);
    if rules.len() > MAX_FIRED {
        return Err(format!(
            "the mapping's actions fire {} rules for this event; at most {MAX_FIRED} may",
            rules.len()
        ));
    }
    Ok(rules)
}

/// The rules `event` fires.
fn fired<'a>(rules: &'a [ActionRule], event: &Event, before: &Before) -> Vec<&'a ActionRule> {
    let status = status_of(event);
    let fires = |rule: &&ActionRule| match (&rule.trigger, &event.change, &status) {
        (Trigger::StatusBecomes(value), _, Some(after)) => {
            after.as_ref() == Some(value) && before.status.as_ref() != Some(value)
        }
        (Trigger::StatusLeaves(value), _, Some(after)) => {
            before.status.as_ref() == Some(value) && after.as_ref() != Some(value)
        }
        (Trigger::TagAdded(value), Change::TagAdded { tag }, _) => {
            tag.trim() == value && !before.tag.as_ref().is_some_and(|state| state.present)
        }
        (Trigger::TagRemoved(value), Change::TagRemoved { tag }, _) => {
            tag.trim() == value && before.tag.as_ref().is_none_or(|state| state.present)
        }
        _ => false,
    };
    rules.iter().filter(fires).collect()
}

/// The move for one fired rule, given its ledger row.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Done for this version already: nothing to send (`note`: its answer was lost).
    Skip(Option<String>),
    /// Send `request`, after writing `intent` when there is one.
    Send { request: ApiRequest, intent: Option<Write> },
}

/// What to do for `rule` on event version `version` for contact `contact` (ledger row `key`).
pub fn step(
    rule: &ActionRule,
    contact: &ApiId,
    version: UnixMillis,
    key: &str,
    ledger: Option<&Ledger>,
    now: UnixMillis,
) -> Step {
    match ledger.filter(|row| row.version == version) {
        Some(Ledger { in_doubt_since: None, .. }) => Step::Skip(None),
        Some(Ledger { in_doubt_since: Some(_), .. }) => Step::Skip(Some(lost_note(rule))),
        None => {
            let intent = (!rule.effect.resend_safe())
                .then(|| put(key, &Ledger { version, in_doubt_since: Some(now) }));
            Step::Send { request: rule.effect.request(contact), intent }
        }
    }
}

/// How one action's answer ends.
#[derive(Debug, PartialEq)]
pub enum Done {
    /// Applied (or, for an add whose answer was lost, never to be sent again): write `ledger`;
    /// `note` says what the operator should know.
    Recorded { ledger: Write, note: Option<String> },
    /// Not applied: put the ledger row back as it was (`restore`) and fail the event this way.
    Failed { restore: Write, failure: Failure },
}

/// What came back from an action's call.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// An HTTP answer, classified.
    Answer(Answer),
    /// No answer at all (a timeout or a network error, with its detail): it may have been applied.
    Nothing(String),
}

/// The end of `rule`'s call on version `version`, given its `answer` and the row `before` it.
pub fn answered(
    rule: &ActionRule,
    heard: Heard,
    version: UnixMillis,
    key: &str,
    before: Option<&Ledger>,
    sent_at: UnixMillis,
) -> Done {
    let done = || put(key, &Ledger { version, in_doubt_since: None });
    let restore = || match before {
        Some(row) => put(key, row),
        None => Write::Delete(key.to_owned()),
    };
    let failed = |failure| Done::Failed { restore: restore(), failure };
    let answer = match heard {
        Heard::Nothing(detail) if !rule.effect.resend_safe() => {
            let ledger = put(key, &Ledger { version, in_doubt_since: Some(sent_at) });
            return Done::Recorded { ledger, note: Some(format!("{} ({detail})", lost_note(rule))) };
        }
        Heard::Nothing(detail) => return failed(Failure::Retryable { detail }),
        Heard::Answer(answer) => answer,
    };
    match answer {
        Answer::Success(_) => Done::Recorded { ledger: done(), note: None },
        Answer::Unavailable { detail } => failed(Failure::Retryable { detail }),
        Answer::RateLimited { retry_after_secs } => failed(Failure::RateLimited { retry_after_secs }),
        Answer::TokenRejected => failed(Failure::TokenRejected),
        Answer::VersionRejected => failed(Failure::Misconfigured(
            "the Contacts API refused the Version header (expected 2021-07-28)".into(),
        )),
        Answer::Rejected { status, message } => failed(Failure::Rejected {
            api_status: status,
            message: format!("{} refused: {message}", describe(rule)),
        }),
        Answer::Duplicate(id) => failed(Failure::Rejected {
            api_status: 400,
            message: format!("{} answered a duplicate report for {id}", describe(rule)),
        }),
    }
}

fn lost_note(rule: &ActionRule) -> String {
    format!(
        "{}: sent once and its answer was lost; not sent again (the API cannot tell whether it was applied, and a second add may enrol the contact twice)",
        describe(rule)
    )
}

fn put(key: &str, ledger: &Ledger) -> Write {
    Write::Put { key: key.to_owned(), value: ledger.to_json() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::event::parse_event;
    use serde_json::json;

    fn rule(entry: Value) -> ActionRule {
        ActionRule::parse(entry).unwrap()
    }

    fn event(kind: &str, data: Value) -> Event {
        let body = json!({"type": kind, "timestamp": "2026-12-07T10:00:00Z", "data": data});
        parse_event(body.to_string().as_bytes()).unwrap()
    }

    fn contact(status: Value) -> Event {
        event(
            "contact.updated",
            json!({"id": "sm_1", "status": status, "updated_at": "2026-12-07T10:00:00Z"}),
        )
    }

    fn rules() -> Vec<ActionRule> {
        vec![
            rule(
                json!({"when": "status_becomes", "value": "customer", "do": "add_to_workflow", "id": "wf1", "name": "Onboarding"}),
            ),
            rule(
                json!({"when": "status_leaves", "value": "customer", "do": "remove_from_workflow", "id": "wf1"}),
            ),
            rule(json!({"when": "tag_added", "value": "vip", "do": "add_followers", "followers": ["u1"]})),
            rule(json!({"when": "tag_removed", "value": "vip", "do": "remove_from_campaign", "id": "c1"})),
        ]
    }

    fn names(fired: Vec<&ActionRule>) -> Vec<&'static str> {
        fired.into_iter().map(|rule| rule.effect.name()).collect()
    }

    #[test]
    fn rules_fire_when_the_status_or_a_tag_changes() {
        let rules = rules();
        let was = |status: &str| Before { status: Some(status.into()), tag: None };
        let table = [
            (contact(json!("customer")), Before::default(), vec!["add_to_workflow"]),
            (contact(json!(" customer ")), was("lead"), vec!["add_to_workflow"]),
            (contact(json!("customer")), was("customer"), vec![]),
            (contact(json!("churned")), was("customer"), vec!["remove_from_workflow"]),
            (contact(Value::Null), was("customer"), vec!["remove_from_workflow"]),
            (
                event("contact.updated", json!({"id": "sm_1", "updated_at": "2026-12-07T10:00:00Z"})),
                was("customer"),
                vec![],
            ),
            (
                event(
                    "tag.added",
                    json!({"contact_id": "sm_1", "tag": "vip", "updated_at": "2026-12-07T10:00:00Z"}),
                ),
                Before::default(),
                vec!["add_followers"],
            ),
            (
                event(
                    "tag.added",
                    json!({"contact_id": "sm_1", "tag": "vip", "updated_at": "2026-12-07T10:00:00Z"}),
                ),
                Before { status: None, tag: Some(TagState { present: true, updated_at: 0 }) },
                vec![],
            ),
            (
                event(
                    "tag.removed",
                    json!({"contact_id": "sm_1", "tag": "vip", "updated_at": "2026-12-07T10:00:00Z"}),
                ),
                Before::default(),
                vec!["remove_from_campaign"],
            ),
            (
                event(
                    "tag.removed",
                    json!({"contact_id": "sm_1", "tag": "other", "updated_at": "2026-12-07T10:00:00Z"}),
                ),
                Before::default(),
                vec![],
            ),
        ];
        for (event, before, expected) in table {
            assert_eq!(
                names(fired(&rules, &event, &before)),
                expected,
                "{:?} after {before:?}",
                event.change
            );
        }
    }

    #[test]
    fn a_rule_keeps_its_ledger_row_whatever_its_name() {
        assert_ne!(ledger_key("l", "s", &rules()[0]), ledger_key("l", "s", &rules()[1]));
        let renamed = ActionRule { name: Some("Renamed".into()), ..rules()[0].clone() };
        assert_eq!(
            ledger_key("l", "s", &renamed),
            ledger_key("l", "s", &rules()[0]),
            "a name is not part of the rule"
        );
    }

    #[test]
    fn ledger_and_status_rows_read_back_as_written() {
        for ledger in
            [Ledger { version: 7, in_doubt_since: None }, Ledger { version: 7, in_doubt_since: Some(9) }]
        {
            assert_eq!(Ledger::from_json(&ledger.to_json()), Some(ledger));
        }
        assert_eq!(Ledger::from_json(&json!({"state": "done"})), None);
        for status in [Some("lead".to_owned()), None] {
            let Write::Put { value, .. } = remember_status("k".into(), status.clone()) else { panic!() };
            assert_eq!(last_status(&value), status);
        }
    }

    #[test]
    fn an_add_is_sent_once_even_when_its_answer_is_lost() {
        let add = &rules()[0];
        let contact = ApiId::parse("c9").unwrap();
        let Step::Send { intent: Some(intent), .. } = step(add, &contact, 10, "k", None, 100) else {
            panic!()
        };
        assert_eq!(
            intent,
            put("k", &Ledger { version: 10, in_doubt_since: Some(100) }),
            "written before it is sent"
        );
        let lost = answered(add, Heard::Nothing("timed out".into()), 10, "k", None, 100);
        let Done::Recorded { ledger, note: Some(note) } = lost else { panic!("{lost:?}") };
        assert_eq!(ledger, put("k", &Ledger { version: 10, in_doubt_since: Some(100) }));
        assert!(
            note.contains(
                "add_to_workflow wf1 (\"Onboarding\"): sent once and its answer was lost; not sent again"
            ),
            "{note}"
        );
        let again =
            step(add, &contact, 10, "k", Some(&Ledger { version: 10, in_doubt_since: Some(100) }), 200);
        assert!(matches!(again, Step::Skip(Some(_))), "a retry of the same version does not send it again");
        assert!(
            matches!(
                step(add, &contact, 11, "k", Some(&Ledger { version: 10, in_doubt_since: None }), 200),
                Step::Send { .. }
            ),
            "a later version does"
        );
        assert_eq!(
            step(add, &contact, 10, "k", Some(&Ledger { version: 10, in_doubt_since: None }), 200),
            Step::Skip(None)
        );
    }

    #[test]
    fn a_refused_action_applied_nothing_and_a_lost_removal_is_sent_again() {
        let (add, remove) = (&rules()[0], &rules()[1]);
        let before = Ledger { version: 5, in_doubt_since: None };
        let answered_503 = answered(
            add,
            Heard::Answer(Answer::Unavailable { detail: "HTTP 503".into() }),
            10,
            "k",
            None,
            100,
        );
        assert!(
            matches!(
                answered_503,
                Done::Failed { restore: Write::Delete(_), failure: Failure::Retryable { .. } }
            ),
            "an answered 5xx applied nothing: sent again later"
        );
        let refused = answered(
            add,
            Heard::Answer(Answer::Rejected { status: 400, message: "Workflow not found".into() }),
            10,
            "k",
            Some(&before),
            100,
        );
        let Done::Failed { restore, failure: Failure::Rejected { api_status: 400, message } } = refused
        else {
            panic!("{refused:?}")
        };
        assert_eq!(restore, put("k", &before));
        assert_eq!(message, "add_to_workflow wf1 (\"Onboarding\") refused: Workflow not found");
        let limited = answered(
            add,
            Heard::Answer(Answer::RateLimited { retry_after_secs: Some(3) }),
            10,
            "k",
            None,
            100,
        );
        assert!(matches!(
            limited,
            Done::Failed { restore: Write::Delete(_), failure: Failure::RateLimited { .. } }
        ));
        let contact = ApiId::parse("c9").unwrap();
        assert!(
            matches!(step(remove, &contact, 10, "k", None, 100), Step::Send { intent: None, .. }),
            "no intent: it may be sent again"
        );
        let lost = answered(remove, Heard::Nothing("timed out".into()), 10, "k", None, 100);
        assert!(matches!(lost, Done::Failed { failure: Failure::Retryable { .. }, .. }));
        assert_eq!(
            answered(remove, Heard::Answer(Answer::Success(json!({}))), 10, "k", None, 100),
            Done::Recorded { ledger: put("k", &Ledger { version: 10, in_doubt_since: None }), note: None }
        );
    }
}
