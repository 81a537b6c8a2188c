//! What sightmill-sync keeps in Workers KV: key names and record types, and the decision a stored
//! webhook record dictates when the same webhook id arrives again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contacts_api::ContactId;
use crate::timestamp::UnixMillis;

/// How long a finished webhook id is remembered. SightMill (like every Standard Webhooks sender)
/// stops redelivering well within a week.
pub const FINISHED_TTL_SECS: u64 = 7 * 24 * 60 * 60;

/// `webhook:{webhook-id}`: the idempotency record of one delivery.
pub fn webhook_key(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

/// `contact:{locationId}:{sightmill id}`: the SightMill id -> Contacts API id map.
pub fn contact_link_key(location_id: &str, sightmill_id: &str) -> String {
    format!("contact:{location_id}:{sightmill_id}")
}

/// A fingerprint of a webhook body, so that a reused webhook id with another body is caught.
pub fn body_fingerprint(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// Where a SightMill contact lives in the Contacts API, and the newest `updated_at` applied to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactLink {
    pub contact_id: ContactId,
    pub updated_at: UnixMillis,
}

/// The idempotency record of one webhook id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WebhookRecord {
    /// Accepted, not yet applied (or the last attempt failed in a way a retry may fix).
    Pending {
        body_sha256: String,
        accepted_at: UnixMillis,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_error: Option<String>,
    },
    /// Done for good: a redelivery answers with the same outcome and sends nothing.
    Finished {
        body_sha256: String,
        finished_at: UnixMillis,
        outcome: Outcome,
    },
}

/// How a contact event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// POST /contacts/ made a new contact.
    Created,
    /// PUT /contacts/{id} on the mapped contact.
    Updated,
    /// The API reported a duplicate; that contact was mapped and updated.
    Adopted,
}

/// The final result of one webhook, stored and answered (redeliveries get the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Applied {
        contact_id: ContactId,
        action: Action,
    },
    /// Older (by `updated_at`) than what was already applied: dropped, nothing sent.
    Stale { contact_id: ContactId },
    /// The Contacts API refused the change for a reason no retry fixes.
    Rejected { api_status: u16, message: String },
}

impl Outcome {
    /// The HTTP status SightMill gets: 200 for done, 422 when the API refused the change for good.
    pub fn http_status(&self) -> u16 {
        match self {
            Outcome::Applied { .. } | Outcome::Stale { .. } => 200,
            Outcome::Rejected { .. } => 422,
        }
    }
}

/// What to do when a webhook id that is already on record arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redelivery<'a> {
    /// Finished: answer the stored outcome, send nothing.
    Replay(&'a Outcome),
    /// Accepted but not finished: try again; this will be attempt `attempts + 1`.
    Resume {
        attempts: u32,
        accepted_at: UnixMillis,
    },
    /// The id was reused for a different body: refuse it.
    Conflict,
}

impl WebhookRecord {
    pub fn redelivery(&self, body_sha256: &str) -> Redelivery<'_> {
        match self {
            WebhookRecord::Pending {
                body_sha256: stored,
                ..
            }
            | WebhookRecord::Finished {
                body_sha256: stored,
                ..
            } if stored != body_sha256 => Redelivery::Conflict,
            WebhookRecord::Pending {
                attempts,
                accepted_at,
                ..
            } => Redelivery::Resume {
                attempts: *attempts,
                accepted_at: *accepted_at,
            },
            WebhookRecord::Finished { outcome, .. } => Redelivery::Replay(outcome),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact_id() -> ContactId {
        ContactId::parse("c1").unwrap()
    }

    #[test]
    fn records_serialise_to_a_stable_shape() {
        let record = WebhookRecord::Finished {
            body_sha256: "h".into(),
            finished_at: 5,
            outcome: Outcome::Applied {
                contact_id: contact_id(),
                action: Action::Adopted,
            },
        };
        let stored = serde_json::to_value(&record).unwrap();
        assert_eq!(
            stored,
            json!({"state": "finished", "body_sha256": "h", "finished_at": 5,
                   "outcome": {"status": "applied", "contact_id": "c1", "action": "adopted"}})
        );
        assert_eq!(
            serde_json::from_value::<WebhookRecord>(stored).unwrap(),
            record
        );
    }

    #[test]
    fn a_stored_record_decides_the_redelivery() {
        let outcome = Outcome::Stale {
            contact_id: contact_id(),
        };
        let finished = WebhookRecord::Finished {
            body_sha256: "h".into(),
            finished_at: 1,
            outcome: outcome.clone(),
        };
        let pending = WebhookRecord::Pending {
            body_sha256: "h".into(),
            accepted_at: 1,
            attempts: 2,
            last_error: Some("HTTP 503".into()),
        };
        assert_eq!(finished.redelivery("h"), Redelivery::Replay(&outcome));
        assert_eq!(finished.redelivery("other"), Redelivery::Conflict);
        assert_eq!(
            pending.redelivery("h"),
            Redelivery::Resume {
                attempts: 2,
                accepted_at: 1
            }
        );
        assert_eq!(pending.redelivery("other"), Redelivery::Conflict);
    }

    #[test]
    fn a_tampered_contact_id_does_not_load() {
        let bad = json!({"contact_id": "../../admin", "updated_at": 1});
        assert!(serde_json::from_value::<ContactLink>(bad).is_err());
    }

    #[test]
    fn keys_and_fingerprints() {
        assert_eq!(webhook_key("msg_1"), "webhook:msg_1");
        assert_eq!(contact_link_key("loc", "sm_1"), "contact:loc:sm_1");
        assert_eq!(
            body_fingerprint(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}
