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
        EventType::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A SightMill contact as `contact.created` and `contact.updated` carry it: its id, its
/// `updated_at`, and every field SightMill sent, for the operator's mapping to pick from.
#[derive(Debug, Clone, PartialEq)]
pub struct SightmillContact {
    pub id: String,
    pub updated_at: UnixMillis,
    pub fields: Map<String, Value>,
}

/// A SightMill note (`note.created`, `note.updated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SightmillNote {
    pub id: String,
    pub body: String,
}

/// A SightMill task (`task.created`, `task.updated`): a full snapshot, so that an update whose
/// create was lost can still create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SightmillTask {
    pub id: String,
    pub title: String,
    pub body: Option<String>,
    /// RFC 3339, passed on as the Contacts API `dueDate`.
    pub due_date: String,
    pub completed: bool,
    pub assigned_to: Option<String>,
}

/// Which record an event changes, and to what.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    ContactUpsert(SightmillContact),
    ContactDeleted,
    NoteUpsert(SightmillNote),
    NoteDeleted { note_id: String },
    TagAdded { tag: String },
    TagRemoved { tag: String },
    TaskUpsert(SightmillTask),
    TaskCompleted { task_id: String },
    TaskDeleted { task_id: String },
}

/// A parsed event of any type in the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    /// SightMill's id of the contact the event is about (every event has one).
    pub contact_id: String,
    pub updated_at: UnixMillis,
    pub change: Change,
}

impl Event {
    pub fn kind(&self) -> EventType {
        self.kind
    }

    /// SightMill's id of the contact the event is about.
    pub fn sightmill_contact_id(&self) -> &str {
        &self.contact_id
    }

    /// SightMill's id of the note or task the event is about, if any.
    pub fn record_id(&self) -> Option<&str> {
        match &self.change {
            Change::NoteUpsert(note) => Some(&note.id),
            Change::TaskUpsert(task) => Some(&task.id),
            Change::NoteDeleted { note_id } => Some(note_id),
            Change::TaskCompleted { task_id } | Change::TaskDeleted { task_id } => Some(task_id),
            _ => None,
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
        return Err(ParseError::Malformed(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    let envelope: Envelope = serde_json::from_value(value).map_err(|e| {
        ParseError::Shape(format!("the body must be {{\"type\", \"timestamp\", \"data\"}}: {e}"))
    })?;
    if parse_rfc3339(&envelope.timestamp).is_none() {
        return Err(shape("`timestamp` must be an RFC 3339 date-time"));
    }
    let kind = EventType::from_name(&envelope.kind)
        .ok_or_else(|| shape(format!("unknown event type `{}`", truncate(&envelope.kind))))?;
    parse_data(kind, &Data(&envelope.data))
}

fn parse_data(kind: EventType, data: &Data) -> Result<Event, ParseError> {
    let contact_key = match kind {
        EventType::ContactCreated | EventType::ContactUpdated | EventType::ContactDeleted => "id",
        _ => "contact_id",
    };
    let contact_id = data.id(contact_key)?;
    let updated_at = data.time("updated_at")?;
    let change = match kind {
        EventType::ContactCreated | EventType::ContactUpdated => Change::ContactUpsert(SightmillContact {
            id: contact_id.clone(),
            updated_at,
            fields: data.0.clone(),
        }),
        EventType::ContactDeleted => Change::ContactDeleted,
        EventType::NoteCreated | EventType::NoteUpdated => {
            Change::NoteUpsert(SightmillNote { id: data.id("id")?, body: data.text("body", MAX_TEXT_LEN)? })
        }
        EventType::NoteDeleted => Change::NoteDeleted { note_id: data.id("id")? },
        EventType::TagAdded => Change::TagAdded { tag: data.text("tag", MAX_TAG_LEN)? },
        EventType::TagRemoved => Change::TagRemoved { tag: data.text("tag", MAX_TAG_LEN)? },
        EventType::TaskCreated | EventType::TaskUpdated => Change::TaskUpsert(SightmillTask {
            id: data.id("id")?,
            title: data.text("title", MAX_TITLE_LEN)?,
            body: data.optional_text("body", MAX_TEXT_LEN)?,
            due_date: data.date_time_text("due_date")?,
            completed: data.flag("completed")?,
            assigned_to: data.optional_text("assigned_to", MAX_SIGHTMILL_ID_LEN)?,
        }),
        EventType::TaskCompleted => Change::TaskCompleted { task_id: data.id("id")? },
        EventType::TaskDeleted => Change::TaskDeleted { task_id: data.id("id")? },
    };
    Ok(Event { kind, contact_id, updated_at, change })
}

/// Longest note or task body accepted.
const MAX_TEXT_LEN: usize = 64 * 1024;
/// Longest tag accepted (tags also become parts of KV keys).
const MAX_TAG_LEN: usize = 100;
const MAX_TITLE_LEN: usize = 1024;

/// The `data` object of an event, with typed getters whose errors name the field.
struct Data<'a>(&'a Map<String, Value>);

impl Data<'_> {
    fn id(&self, key: &str) -> Result<String, ParseError> {
        sightmill_id(self.0, key)
    }

    fn time(&self, key: &str) -> Result<UnixMillis, ParseError> {
        match self.0.get(key) {
            Some(Value::String(text)) => parse_rfc3339(text)
                .ok_or_else(|| shape(format!("`data.{key}` must be an RFC 3339 date-time"))),
            Some(_) => Err(shape(format!("`data.{key}` must be an RFC 3339 date-time string"))),
            None => Err(shape(format!("`data.{key}` is required"))),
        }
    }

    fn date_time_text(&self, key: &str) -> Result<String, ParseError> {
        self.time(key)?;
        self.text(key, 64)
    }

    fn text(&self, key: &str, max_len: usize) -> Result<String, ParseError> {
        self.optional_text(key, max_len)?.ok_or_else(|| shape(format!("`data.{key}` is required")))
    }

    fn optional_text(&self, key: &str, max_len: usize) -> Result<Option<String>, ParseError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) if text.len() > max_len => {
                Err(shape(format!("`data.{key}` is longer than {max_len} bytes")))
            }
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(shape(format!("`data.{key}` must be a string"))),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, ParseError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(_) => Err(shape(format!("`data.{key}` must be true or false"))),
        }
    }
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
        Err(shape(format!("`data.{key}` must be 1-{MAX_SIGHTMILL_ID_LEN} characters of A-Z a-z 0-9 . _ -")))
    }
}

/// Whether `id` is a usable SightMill id (see [`sightmill_id`]).
pub fn is_sightmill_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SIGHTMILL_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
        format!(r#"{{"type":"{kind}","timestamp":"2026-11-27T10:00:00Z","data":{data}}}"#).into_bytes()
    }

    #[test]
    fn a_contact_event_keeps_every_field_for_the_mapping() {
        let data = r#"{"id":"sm_1","email":"ada@example.com","phone":null,"plan":"pro","updated_at":"2026-11-27T10:00:00Z"}"#;
        let event = parse_event(&body("contact.created", data)).unwrap();
        assert_eq!(event.kind(), EventType::ContactCreated);
        assert_eq!(event.sightmill_contact_id(), "sm_1");
        assert_eq!(event.updated_at, 1_795_773_600_000);
        let Change::ContactUpsert(contact) = &event.change else { panic!("{event:?}") };
        assert_eq!(contact.fields["plan"], "pro");
        assert_eq!(contact.fields["phone"], Value::Null);
    }

    #[test]
    fn every_type_parses_into_its_change() {
        let t = r#""updated_at":"2026-11-27T10:00:00Z""#;
        let table = vec![
            ("contact.deleted", format!(r#"{{"id":"c1",{t}}}"#), Change::ContactDeleted, None),
            (
                "note.created",
                format!(r#"{{"id":"n1","contact_id":"c1","body":"hi",{t}}}"#),
                Change::NoteUpsert(SightmillNote { id: "n1".into(), body: "hi".into() }),
                Some("n1"),
            ),
            (
                "note.deleted",
                format!(r#"{{"id":"n1","contact_id":"c1",{t}}}"#),
                Change::NoteDeleted { note_id: "n1".into() },
                Some("n1"),
            ),
            (
                "tag.added",
                format!(r#"{{"contact_id":"c1","tag":"vip",{t}}}"#),
                Change::TagAdded { tag: "vip".into() },
                None,
            ),
            (
                "tag.removed",
                format!(r#"{{"contact_id":"c1","tag":"vip",{t}}}"#),
                Change::TagRemoved { tag: "vip".into() },
                None,
            ),
            (
                "task.updated",
                format!(
                    r#"{{"id":"k1","contact_id":"c1","title":"Call","due_date":"2026-12-01T09:00:00Z","completed":false,"assigned_to":"u1",{t}}}"#
                ),
                Change::TaskUpsert(SightmillTask {
                    id: "k1".into(),
                    title: "Call".into(),
                    body: None,
                    due_date: "2026-12-01T09:00:00Z".into(),
                    completed: false,
                    assigned_to: Some("u1".into()),
                }),
                Some("k1"),
            ),
            (
                "task.completed",
                format!(r#"{{"id":"k1","contact_id":"c1",{t}}}"#),
                Change::TaskCompleted { task_id: "k1".into() },
                Some("k1"),
            ),
            (
                "task.deleted",
                format!(r#"{{"id":"k1","contact_id":"c1",{t}}}"#),
                Change::TaskDeleted { task_id: "k1".into() },
                Some("k1"),
            ),
        ];
        for (kind, data, change, record) in table {
            let event = parse_event(&body(kind, &data)).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(event.kind().as_str(), kind);
            assert_eq!(event.sightmill_contact_id(), "c1");
            assert_eq!(event.change, change, "{kind}");
            assert_eq!(event.record_id(), record, "{kind}");
        }
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
            assert!(matches!(parse_event(input), Err(ParseError::Malformed(_))), "{input:?}");
        }
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(matches!(parse_event(deep.as_bytes()), Err(ParseError::Malformed(_))));

        let misshapen: Vec<(Vec<u8>, &str)> = vec![
            (b"[]".to_vec(), "the body must be"),
            (b"{\"type\":\"contact.created\"}".to_vec(), "missing field"),
            (body("contact.exploded", ok_data), "unknown event type `contact.exploded`"),
            (
                body("note.created", r#"{"id":"n1","contact_id":"c1","updated_at":"2026-11-27T10:00:00Z"}"#),
                "`data.body` is required",
            ),
            (
                body("note.created", r#"{"id":"n1","updated_at":"2026-11-27T10:00:00Z","body":"x"}"#),
                "`data.contact_id` is required",
            ),
            (
                body("tag.added", r#"{"contact_id":"c1","tag":["a"],"updated_at":"2026-11-27T10:00:00Z"}"#),
                "`data.tag` must be a string",
            ),
            (
                body(
                    "task.created",
                    r#"{"id":"k","contact_id":"c1","title":"t","due_date":"soon","updated_at":"2026-11-27T10:00:00Z"}"#,
                ),
                "`data.due_date` must be an RFC 3339",
            ),
            (
                body(
                    "task.created",
                    r#"{"id":"k","contact_id":"c1","title":"t","due_date":"2026-11-27T10:00:00Z","completed":"yes","updated_at":"2026-11-27T10:00:00Z"}"#,
                ),
                "`data.completed` must be true or false",
            ),
            (body("contact.created", "{}"), "`data.id` is required"),
            (
                body("contact.created", r#"{"id":7,"updated_at":"2026-11-27T10:00:00Z"}"#),
                "`data.id` must be a string",
            ),
            (
                body("contact.created", r#"{"id":"a/b","updated_at":"2026-11-27T10:00:00Z"}"#),
                "must be 1-128 characters",
            ),
            (body("contact.created", r#"{"id":"sm_1"}"#), "`data.updated_at` is required"),
            (body("contact.created", r#"{"id":"sm_1","updated_at":"yesterday"}"#), "RFC 3339"),
            (br#"{"type":"contact.created","timestamp":"now","data":{}}"#.to_vec(), "`timestamp` must be"),
            (
                br#"{"type":"contact.created","timestamp":"2026-11-27T10:00:00Z","data":{},"x":1}"#.to_vec(),
                "unknown field",
            ),
        ];
        for (input, expected) in misshapen {
            match parse_event(&input) {
                Err(ParseError::Shape(message)) => {
                    assert!(message.contains(expected), "{message} should contain {expected}")
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
