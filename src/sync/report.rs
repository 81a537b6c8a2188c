//! What the worker says about a webhook: the JSON answers SightMill gets and the one JSON log line
//! per outcome that operators read in `wrangler tail`. Neither ever carries a token or contact data.

use serde_json::{json, Value};

use crate::sync::records::{Outcome, WebhookRecord};

/// Who the webhook is: the fields every answer and log line starts with.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub webhook_id: &'a str,
    pub event_type: &'a str,
    pub sightmill_id: &'a str,
}

impl<'a> Subject<'a> {
    pub fn of(webhook_id: &'a str, record: &'a WebhookRecord) -> Subject<'a> {
        Subject { webhook_id, event_type: &record.event_type, sightmill_id: &record.sightmill_id }
    }

    fn base(&self) -> Value {
        json!({ "webhook_id": self.webhook_id, "event": self.event_type, "sightmill_id": self.sightmill_id })
    }
}

/// The 202 answer for an accepted (or already accepted, not yet finished) webhook.
pub fn accepted_body(subject: Subject<'_>, state: &str) -> Value {
    let mut body = subject.base();
    body["status"] = json!("accepted");
    body["state"] = json!(state);
    body
}

/// The answer for a finished webhook; a redelivery gets the very same body.
pub fn outcome_body(subject: Subject<'_>, outcome: &Outcome) -> Value {
    let mut body = subject.base();
    if let (Value::Object(body), Ok(Value::Object(fields))) = (&mut body, serde_json::to_value(outcome)) {
        body.extend(fields);
    }
    body
}

/// What one attempt decided, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Done for good (applied, stale, skipped).
    Finished,
    /// Failed; tried again later.
    Retry,
    /// Waiting for its contact or task to exist.
    Wait,
    /// Parked as a dead letter.
    Parked,
    /// Redelivery of a known webhook: answered from KV, nothing sent.
    Replayed,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Finished => "finished",
            Decision::Retry => "retry",
            Decision::Wait => "wait",
            Decision::Parked => "parked",
            Decision::Replayed => "replayed",
        }
    }
}

/// Everything one log line says.
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    pub subject: Subject<'a>,
    pub attempt: u32,
    pub decision: Decision,
    pub outcome: Option<&'a Outcome>,
    /// The failure or park reason (never a secret; at most the API's own message).
    pub error: Option<&'a str>,
    pub api_calls: u32,
    pub latency_ms: i64,
    /// When it will be tried again, for `retry` and `wait`.
    pub due_at: Option<i64>,
}

/// `{"msg":"webhook", ...}`, logged as one line.
pub fn log_line(entry: &LogEntry<'_>) -> Value {
    let mut line = entry.subject.base();
    line["msg"] = json!("webhook");
    line["attempt"] = json!(entry.attempt);
    line["decision"] = json!(entry.decision.as_str());
    line["api_calls"] = json!(entry.api_calls);
    line["latency_ms"] = json!(entry.latency_ms);
    if let Some(outcome) = entry.outcome.and_then(|o| serde_json::to_value(o).ok()) {
        for key in ["status", "action", "contact_id", "record_id"] {
            if let Some(value) = outcome.get(key) {
                line[key] = value.clone();
            }
        }
    }
    if let Some(error) = entry.error {
        line["error"] = json!(error);
    }
    if let Some(due_at) = entry.due_at {
        line["due_at"] = json!(due_at);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::ApiId;
    use crate::sync::records::Action;

    const SUBJECT: Subject<'static> =
        Subject { webhook_id: "msg_1", event_type: "contact.updated", sightmill_id: "sm_1" };

    fn applied() -> Outcome {
        Outcome::Applied { action: Action::Created, contact_id: ApiId::parse("c1").unwrap(), record_id: None }
    }

    #[test]
    fn answers_name_the_webhook_and_its_outcome() {
        assert_eq!(
            outcome_body(SUBJECT, &applied()),
            json!({"webhook_id": "msg_1", "event": "contact.updated", "sightmill_id": "sm_1",
                   "status": "applied", "contact_id": "c1", "action": "created"})
        );
        let unchanged = Outcome::Unchanged { contact_id: ApiId::parse("c1").unwrap() };
        assert_eq!(
            outcome_body(SUBJECT, &unchanged),
            json!({"webhook_id": "msg_1", "event": "contact.updated", "sightmill_id": "sm_1",
                   "status": "unchanged", "contact_id": "c1"})
        );
        assert_eq!(
            accepted_body(SUBJECT, "pending"),
            json!({"webhook_id": "msg_1", "event": "contact.updated", "sightmill_id": "sm_1",
                   "status": "accepted", "state": "pending"})
        );
    }

    #[test]
    fn the_log_line_is_one_json_object() {
        let outcome = applied();
        let line = log_line(&LogEntry {
            subject: SUBJECT,
            attempt: 2,
            decision: Decision::Finished,
            outcome: Some(&outcome),
            error: None,
            api_calls: 1,
            latency_ms: 12,
            due_at: None,
        });
        let text = line.to_string();
        assert!(!text.contains('\n'));
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["decision"], "finished");
        assert_eq!(parsed["status"], "applied");
        assert_eq!(parsed["contact_id"], "c1");
        assert_eq!(parsed["attempt"], 2);
        assert_eq!(parsed.get("due_at"), None);
    }
}
