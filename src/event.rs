//! SightMill's webhook body, parsed into typed events: the step after the signature check and
//! before planning. Malformed JSON and a wrong shape are told apart, because they answer 400 and 422.

use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::timestamp::{parse_rfc3339, UnixMillis};

/// Longest SightMill id accepted: ids become parts of KV keys (512 bytes at most).
pub const MAX_SIGHTMILL_ID_LEN: usize = 128;
/// Deepest JSON nesting accepted before parsing (serde_json's own limit is 128).
const MAX_DEPTH: usize = 32;

/// Every event type in the SightMill catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ContactCreated,
    ContactUpdated,
    ContactDeleted,
    NoteCreated,
    NoteUpdated,
    NoteDeleted,
    TagAdded,
    TagRemoved,
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskDeleted,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::ContactCreated,
        EventType::ContactUpdated,
        EventType::ContactDeleted,
        EventType::NoteCreated,
        EventType::NoteUpdated,
        EventType::NoteDeleted,
        EventType::TagAdded,
        EventType::TagRemoved,
        EventType::TaskCreated,
        EventType::TaskUpdated,
        EventType::TaskCompleted,
        EventType::TaskDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ContactCreated => "contact.created",
            EventType::ContactUpdated => "contact.updated",
            EventType::ContactDeleted => "contact.deleted",
            EventType::NoteCreated => "note.created",
            EventType::NoteUpdated => "note.updated",
            EventType::NoteDeleted => "note.deleted",
            EventType::TagAdded => "tag.added",
            EventType::TagRemoved => "tag.removed",
            EventType::TaskCreated => "task.created",
            EventType::TaskUpdated => "task.updated",
            EventType::TaskCompleted => "task.completed",
            EventType::TaskDeleted => "task.deleted",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A string field of SightMill's data: left out (keep what the Contacts API has), `null` (clear
/// it), or a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field {
    #[default]
    Absent,
    Null,
    Value(String),
}

/// A SightMill contact as `contact.created` and `contact.updated` carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SightmillContact {
    pub id: String,
    pub email: Field,
    pub name: Field,
    pub phone: Field,
    pub status: Field,
    pub updated_at: UnixMillis,
}

/// A parsed, supported event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ContactUpsert {
        kind: EventType,
        contact: SightmillContact,
    },
}

impl Event {
    pub fn kind(&self) -> EventType {
        match self {
            Event::ContactUpsert { kind, .. } => *kind,
        }
    }

    /// SightMill's id of the contact the event is about.
    pub fn sightmill_contact_id(&self) -> &str {
        match self {
            Event::ContactUpsert { contact, .. } => &contact.id,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (or nested too deep to be one of ours): answered with 400.
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    /// JSON, but not a SightMill event we can apply: answered with 422.
    #[error("{0}")]
    Shape(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    data: Map<String, Value>,
}

/// Parses a raw webhook body into an [`Event`].
pub fn parse_event(body: &[u8]) -> Result<Event, ParseError> {
    if nesting_depth(body) > MAX_DEPTH {
        return Err(ParseError::Malformed(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let envelope: Envelope = serde_json::from_value(value).map_err(|e| {
        ParseError::Shape(format!(
            "the body must be {{\"type\", \"timestamp\", \"data\"}}: {e}"
        ))
    })?;
    if parse_rfc3339(&envelope.timestamp).is_none() {
        return Err(shape("`timestamp` must be an RFC 3339 date-time"));
    }
    let kind = EventType::from_name(&envelope.kind)
        .ok_or_else(|| shape(format!("unknown event type `{}`", truncate(&envelope.kind))))?;
    match kind {
        EventType::ContactCreated | EventType::ContactUpdated => Ok(Event::ContactUpsert {
            kind,
            contact: parse_contact(&envelope.data)?,
        }),
        other => Err(shape(format!(
            "event type `{}` is not handled by this version of sightmill-sync",
            other.as_str()
        ))),
    }
}

fn parse_contact(data: &Map<String, Value>) -> Result<SightmillContact, ParseError> {
    Ok(SightmillContact {
        id: sightmill_id(data, "id")?,
        email: optional_string(data, "email")?,
        name: optional_string(data, "name")?,
        phone: optional_string(data, "phone")?,
        status: optional_string(data, "status")?,
        updated_at: updated_at(data)?,
    })
}

/// A required SightMill id: 1-128 characters of A-Z a-z 0-9 . _ -  (no `/`, `:` or spaces, because
/// ids end up in KV keys and in Contacts API paths).
pub fn sightmill_id(data: &Map<String, Value>, key: &str) -> Result<String, ParseError> {
    let id = match data.get(key) {
        Some(Value::String(id)) => id,
        Some(_) => return Err(shape(format!("`data.{key}` must be a string"))),
        None => return Err(shape(format!("`data.{key}` is required"))),
    };
    if is_sightmill_id(id) {
        Ok(id.clone())
    } else {
        Err(shape(format!(
            "`data.{key}` must be 1-{MAX_SIGHTMILL_ID_LEN} characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Whether `id` is a usable SightMill id (see [`sightmill_id`]).
pub fn is_sightmill_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SIGHTMILL_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn optional_string(data: &Map<String, Value>, key: &str) -> Result<Field, ParseError> {
    match data.get(key) {
        None => Ok(Field::Absent),
        Some(Value::Null) => Ok(Field::Null),
        Some(Value::String(text)) => Ok(Field::Value(text.clone())),
        Some(_) => Err(shape(format!("`data.{key}` must be a string or null"))),
    }
}

fn updated_at(data: &Map<String, Value>) -> Result<UnixMillis, ParseError> {
    match data.get("updated_at") {
        Some(Value::String(text)) => parse_rfc3339(text)
            .ok_or_else(|| shape("`data.updated_at` must be an RFC 3339 date-time")),
        Some(_) => Err(shape(
            "`data.updated_at` must be an RFC 3339 date-time string",
        )),
        None => Err(shape("`data.updated_at` is required")),
    }
}

fn shape(message: impl Into<String>) -> ParseError {
    ParseError::Shape(message.into())
}

/// Echoes at most 64 characters of caller input inside an error message.
fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The deepest bracket nesting in a JSON text, counted without parsing (strings are skipped).
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, data: &str) -> Vec<u8> {
        format!(r#"{{"type":"{kind}","timestamp":"2026-11-27T10:00:00Z","data":{data}}}"#)
            .into_bytes()
    }

    #[test]
    fn a_full_contact_event_parses() {
        let data = r#"{"id":"sm_1","email":"ada@example.com","name":"Ada Lovelace","phone":null,"status":"active","updated_at":"2026-11-27T10:00:00Z","extra":1}"#;
        let event = parse_event(&body("contact.created", data)).unwrap();
        assert_eq!(
            event,
            Event::ContactUpsert {
                kind: EventType::ContactCreated,
                contact: SightmillContact {
                    id: "sm_1".into(),
                    email: Field::Value("ada@example.com".into()),
                    name: Field::Value("Ada Lovelace".into()),
                    phone: Field::Null,
                    status: Field::Value("active".into()),
                    updated_at: 1_795_773_600_000,
                },
            }
        );
        assert_eq!(event.sightmill_contact_id(), "sm_1");
        assert_eq!(event.kind().as_str(), "contact.created");
    }

    #[test]
    fn every_type_name_round_trips() {
        for kind in EventType::ALL {
            assert_eq!(EventType::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::from_name("contact.exploded"), None);
    }

    #[test]
    fn malformed_and_misshapen_bodies_are_told_apart() {
        let ok_data = r#"{"id":"sm_1","updated_at":"2026-11-27T10:00:00Z"}"#;
        let malformed: [&[u8]; 4] = [b"", b"{", b"\xff\xfe", b"{\"type\":}"];
        for input in malformed {
            assert!(
                matches!(parse_event(input), Err(ParseError::Malformed(_))),
                "{input:?}"
            );
        }
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(matches!(
            parse_event(deep.as_bytes()),
            Err(ParseError::Malformed(_))
        ));

        let misshapen: Vec<(Vec<u8>, &str)> = vec![
            (b"[]".to_vec(), "the body must be"),
            (b"{\"type\":\"contact.created\"}".to_vec(), "missing field"),
            (
                body("contact.exploded", ok_data),
                "unknown event type `contact.exploded`",
            ),
            (body("note.created", ok_data), "not handled by this version"),
            (body("contact.created", "{}"), "`data.id` is required"),
            (
                body(
                    "contact.created",
                    r#"{"id":7,"updated_at":"2026-11-27T10:00:00Z"}"#,
                ),
                "`data.id` must be a string",
            ),
            (
                body(
                    "contact.created",
                    r#"{"id":"a/b","updated_at":"2026-11-27T10:00:00Z"}"#,
                ),
                "must be 1-128 characters",
            ),
            (
                body("contact.created", r#"{"id":"sm_1"}"#),
                "`data.updated_at` is required",
            ),
            (
                body(
                    "contact.created",
                    r#"{"id":"sm_1","updated_at":"yesterday"}"#,
                ),
                "RFC 3339",
            ),
            (
                body(
                    "contact.created",
                    r#"{"id":"sm_1","updated_at":"2026-11-27T10:00:00Z","email":5}"#,
                ),
                "`data.email` must be a string or null",
            ),
            (
                br#"{"type":"contact.created","timestamp":"now","data":{}}"#.to_vec(),
                "`timestamp` must be",
            ),
            (
                br#"{"type":"contact.created","timestamp":"2026-11-27T10:00:00Z","data":{},"x":1}"#
                    .to_vec(),
                "unknown field",
            ),
        ];
        for (input, expected) in misshapen {
            match parse_event(&input) {
                Err(ParseError::Shape(message)) => {
                    assert!(
                        message.contains(expected),
                        "{message} should contain {expected}"
                    )
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(&input)),
            }
        }
    }

    #[test]
    fn depth_counting_ignores_brackets_inside_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[[[\"[[["}"#), 1);
        assert_eq!(nesting_depth(b"[[{}]]"), 3);
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused(input in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_event(&input);
        }

        #[test]
        fn any_contact_data_parses_or_is_refused(id in ".{0,10}", email in proptest::option::of(".{0,10}"), ts in ".{0,25}") {
            let data = serde_json::json!({"id": id, "email": email, "updated_at": ts});
            let _ = parse_event(&body("contact.updated", &data.to_string()));
        }
    }
}
