//! What the worker says about a webhook: the JSON answer SightMill gets and the one JSON log line
//! per outcome that operators read in `wrangler tail`. Neither ever carries a token or a contact body.

use serde_json::{json, Value};

use crate::intake::Admitted;
use crate::records::Outcome;

/// The answer body for a finished webhook; a redelivery gets the very same body.
pub fn outcome_body(admitted: &Admitted, outcome: &Outcome) -> Value {
    let mut body = json!({
        "webhook_id": admitted.webhook_id,
        "event": admitted.event.kind().as_str(),
        "sightmill_id": admitted.event.sightmill_contact_id(),
    });
    if let (Value::Object(body), Ok(Value::Object(fields))) =
        (&mut body, serde_json::to_value(outcome))
    {
        body.extend(fields);
    }
    body
}

/// One attempt's result, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Finished (applied, stale or rejected); see the outcome.
    Finished,
    /// Redelivery of a finished webhook: answered from KV, nothing sent.
    Replayed,
    /// Not applied this time; the webhook stays pending and SightMill's redelivery retries it.
    RetryLater,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Finished => "finished",
            Decision::Replayed => "replayed",
            Decision::RetryLater => "retry_later",
        }
    }
}

/// Everything one log line says.
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    pub admitted: &'a Admitted,
    pub attempt: u32,
    pub decision: Decision,
    pub outcome: Option<&'a Outcome>,
    pub error: Option<&'a str>,
    pub api_calls: u32,
    pub latency_ms: i64,
}

/// `{"msg":"webhook", ...}` as one line.
pub fn log_line(entry: &LogEntry<'_>) -> String {
    let mut line = json!({
        "msg": "webhook",
        "webhook_id": entry.admitted.webhook_id,
        "type": entry.admitted.event.kind().as_str(),
        "sightmill_id": entry.admitted.event.sightmill_contact_id(),
        "attempt": entry.attempt,
        "decision": entry.decision.as_str(),
        "api_calls": entry.api_calls,
        "latency_ms": entry.latency_ms,
    });
    if let Some(outcome) = entry.outcome {
        let outcome = serde_json::to_value(outcome).unwrap_or(Value::Null);
        for key in ["status", "contact_id", "action", "api_status"] {
            if let Some(value) = outcome.get(key) {
                line[key] = value.clone();
            }
        }
    }
    if let Some(error) = entry.error {
        line["error"] = Value::String(error.to_owned());
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::ContactId;
    use crate::event::{Event, EventType, Field, SightmillContact};
    use crate::records::Action;

    fn admitted() -> Admitted {
        Admitted {
            webhook_id: "msg_1".into(),
            event: Event::ContactUpsert {
                kind: EventType::ContactUpdated,
                contact: SightmillContact {
                    id: "sm_1".into(),
                    email: Field::Value("secret-person@example.com".into()),
                    name: Field::Absent,
                    phone: Field::Absent,
                    status: Field::Absent,
                    updated_at: 0,
                },
            },
            body_sha256: "h".into(),
        }
    }

    fn applied() -> Outcome {
        Outcome::Applied {
            contact_id: ContactId::parse("c1").unwrap(),
            action: Action::Created,
        }
    }

    #[test]
    fn the_answer_names_the_webhook_and_its_outcome() {
        assert_eq!(
            outcome_body(&admitted(), &applied()),
            json!({"webhook_id": "msg_1", "event": "contact.updated", "sightmill_id": "sm_1",
                   "status": "applied", "contact_id": "c1", "action": "created"})
        );
    }

    #[test]
    fn the_log_line_is_one_json_object_without_contact_data() {
        let admitted = admitted();
        let outcome = applied();
        let line = log_line(&LogEntry {
            admitted: &admitted,
            attempt: 2,
            decision: Decision::Finished,
            outcome: Some(&outcome),
            error: None,
            api_calls: 1,
            latency_ms: 12,
        });
        assert!(!line.contains('\n') && !line.contains("secret-person"));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["decision"], "finished");
        assert_eq!(parsed["status"], "applied");
        assert_eq!(parsed["contact_id"], "c1");
        assert_eq!(parsed["attempt"], 2);
    }
}
