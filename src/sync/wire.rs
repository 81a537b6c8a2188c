//! How the records of [`crate::sync::records`] are written in KV: flat JSON objects whose tag field
//! (`state` for webhook records and links, `status` for outcomes) says which variant they are.
//! Each record goes through a flat "wire" struct and a conversion, rather than serde's `flatten`
//! and internally tagged enums: those buffer every field through serde's generic `Content` tree,
//! which costs the Wasm upload several KiB. The JSON is the same either way.
//! The records' own `Serialize` and `Deserialize` are written here, through the wire form, so
//! the records know nothing of how they are stored.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::contacts_api::ApiId;
use crate::sync::records::{Action, CreateInDoubt, Link, Outcome, Sent, WebhookRecord, WebhookState};
use crate::timestamp::UnixMillis;

/// A webhook record as stored: the common fields, the state's name and the state's fields.
#[derive(Serialize, Deserialize)]
pub struct WireRecord {
    body_sha256: String,
    event_type: String,
    sightmill_id: String,
    accepted_at: UnixMillis,
    attempts: u32,
    state: StateName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waiting_since: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parked_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateName {
    Pending,
    Parked,
    Finished,
}

/// A field a stored record must have for its state (or tag).
fn required<T>(value: Option<T>, field: &str, of: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("a {of} has no `{field}`"))
}

impl From<WebhookRecord> for WireRecord {
    fn from(record: WebhookRecord) -> WireRecord {
        let mut wire = WireRecord {
            body_sha256: record.body_sha256,
            event_type: record.event_type,
            sightmill_id: record.sightmill_id,
            accepted_at: record.accepted_at,
            attempts: record.attempts,
            state: StateName::Pending,
            body: None,
            due_at: None,
            failures: None,
            last_error: None,
            waiting_since: None,
            parked_at: None,
            reason: None,
            finished_at: None,
            outcome: None,
            notes: record.notes,
        };
        match record.state {
            WebhookState::Pending { body, due_at, failures, last_error, waiting_since } => {
                (wire.body, wire.due_at, wire.failures) = (Some(body), Some(due_at), Some(failures));
                (wire.last_error, wire.waiting_since) = (last_error, waiting_since);
            }
            WebhookState::Parked { body, parked_at, reason } => {
                wire.state = StateName::Parked;
                (wire.body, wire.parked_at, wire.reason) = (Some(body), Some(parked_at), Some(reason));
            }
            WebhookState::Finished { finished_at, outcome } => {
                wire.state = StateName::Finished;
                (wire.finished_at, wire.outcome) = (Some(finished_at), Some(outcome));
            }
        }
        wire
    }
}

impl TryFrom<WireRecord> for WebhookRecord {
    type Error = String;

    fn try_from(wire: WireRecord) -> Result<WebhookRecord, String> {
        let state = match wire.state {
            StateName::Pending => WebhookState::Pending {
                body: required(wire.body, "body", "pending record")?,
                due_at: required(wire.due_at, "due_at", "pending record")?,
                failures: wire.failures.unwrap_or(0),
                last_error: wire.last_error,
                waiting_since: wire.waiting_since,
            },
            StateName::Parked => WebhookState::Parked {
                body: required(wire.body, "body", "parked record")?,
                parked_at: required(wire.parked_at, "parked_at", "parked record")?,
                reason: required(wire.reason, "reason", "parked record")?,
            },
            StateName::Finished => WebhookState::Finished {
                finished_at: required(wire.finished_at, "finished_at", "finished record")?,
                outcome: required(wire.outcome, "outcome", "finished record")?,
            },
        };
        Ok(WebhookRecord {
            body_sha256: wire.body_sha256,
            event_type: wire.event_type,
            sightmill_id: wire.sightmill_id,
            accepted_at: wire.accepted_at,
            attempts: wire.attempts,
            state,
            notes: wire.notes,
        })
    }
}

/// An outcome as stored and answered: its `status` and the fields of that status.
#[derive(Serialize, Deserialize)]
pub struct WireOutcome {
    status: OutcomeName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact_id: Option<ApiId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record_id: Option<ApiId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeName {
    Applied,
    Stale,
    Unchanged,
    Skipped,
    Discarded,
}

impl From<Outcome> for WireOutcome {
    fn from(outcome: Outcome) -> WireOutcome {
        let bare =
            |status| WireOutcome { status, action: None, contact_id: None, record_id: None, reason: None };
        match outcome {
            Outcome::Applied { action, contact_id, record_id } => WireOutcome {
                action: Some(action),
                contact_id: Some(contact_id),
                record_id,
                ..bare(OutcomeName::Applied)
            },
            Outcome::Stale => bare(OutcomeName::Stale),
            Outcome::Unchanged { contact_id } => {
                WireOutcome { contact_id: Some(contact_id), ..bare(OutcomeName::Unchanged) }
            }
            Outcome::Skipped { reason } => WireOutcome { reason: Some(reason), ..bare(OutcomeName::Skipped) },
            Outcome::Discarded => bare(OutcomeName::Discarded),
        }
    }
}

impl TryFrom<WireOutcome> for Outcome {
    type Error = String;

    fn try_from(wire: WireOutcome) -> Result<Outcome, String> {
        Ok(match wire.status {
            OutcomeName::Applied => Outcome::Applied {
                action: required(wire.action, "action", "applied outcome")?,
                contact_id: required(wire.contact_id, "contact_id", "applied outcome")?,
                record_id: wire.record_id,
            },
            OutcomeName::Stale => Outcome::Stale,
            OutcomeName::Unchanged => Outcome::Unchanged {
                contact_id: required(wire.contact_id, "contact_id", "unchanged outcome")?,
            },
            OutcomeName::Skipped => {
                Outcome::Skipped { reason: required(wire.reason, "reason", "skipped outcome")? }
            }
            OutcomeName::Discarded => Outcome::Discarded,
        })
    }
}

/// A link as stored: `state` (`live`, `in_doubt` or `deleted`) and its fields.
#[derive(Serialize, Deserialize)]
pub struct WireLink {
    state: LinkName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<ApiId>,
    updated_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent: Option<Box<Sent>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LinkName {
    Live,
    InDoubt,
    Deleted,
}

impl From<Link> for WireLink {
    fn from(link: Link) -> WireLink {
        let bare = |state, updated_at| WireLink {
            state,
            id: None,
            updated_at,
            status_tag: None,
            completed_at: None,
            digest: None,
            sent_at: None,
            sent: None,
        };
        match link {
            Link::Live { id, updated_at, status_tag, completed_at, digest } => WireLink {
                id: Some(id),
                status_tag,
                completed_at,
                digest,
                ..bare(LinkName::Live, updated_at)
            },
            Link::InDoubt(CreateInDoubt { updated_at, sent_at, sent }) => {
                WireLink { sent_at: Some(sent_at), sent: Some(sent), ..bare(LinkName::InDoubt, updated_at) }
            }
            Link::Deleted { updated_at } => bare(LinkName::Deleted, updated_at),
        }
    }
}

impl TryFrom<WireLink> for Link {
    type Error = String;

    fn try_from(wire: WireLink) -> Result<Link, String> {
        Ok(match wire.state {
            LinkName::Live => Link::Live {
                id: required(wire.id, "id", "live link")?,
                updated_at: wire.updated_at,
                status_tag: wire.status_tag,
                completed_at: wire.completed_at,
                digest: wire.digest,
            },
            LinkName::InDoubt => Link::InDoubt(CreateInDoubt {
                updated_at: wire.updated_at,
                sent_at: required(wire.sent_at, "sent_at", "link in doubt")?,
                sent: required(wire.sent, "sent", "link in doubt")?,
            }),
            LinkName::Deleted => Link::Deleted { updated_at: wire.updated_at },
        })
    }
}

/// Serialises `value` as its wire form `W`.
fn serialize_as<W, T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    W: Serialize + From<T>,
    T: Clone,
    S: Serializer,
{
    W::from(value.clone()).serialize(serializer)
}

/// Reads the wire form `W`, then converts it (a failed conversion is a serde error).
fn deserialize_as<'de, W, T, D>(deserializer: D) -> Result<T, D::Error>
where
    W: Deserialize<'de>,
    T: TryFrom<W, Error = String>,
    D: Deserializer<'de>,
{
    T::try_from(W::deserialize(deserializer)?).map_err(D::Error::custom)
}

impl Serialize for WebhookRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_as::<WireRecord, _, _>(self, serializer)
    }
}

impl<'de> Deserialize<'de> for WebhookRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WebhookRecord, D::Error> {
        deserialize_as::<WireRecord, _, _>(deserializer)
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_as::<WireOutcome, _, _>(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Outcome, D::Error> {
        deserialize_as::<WireOutcome, _, _>(deserializer)
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_as::<WireLink, _, _>(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Link, D::Error> {
        deserialize_as::<WireLink, _, _>(deserializer)
    }
}
