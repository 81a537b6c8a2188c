//! The NDJSON side of the [`super::reader`]: one object per line, each exactly a webhook's body
//! (`type`, `data`, and `timestamp`, which may be left out: the row's `data.updated_at` stands in
//! for it), checked with [`parse_event`]. Blank lines are skipped; the first non-blank line must
//! be a JSON object, or the file is refused.

use serde_json::{Map, Value};

use super::lines::{capped, quoted};
use super::reader::{FileRefused, Record, MAX_RECORD_BYTES};
use crate::intake::event::parse_event;
use crate::timestamp::parse_rfc3339;

/// The reader's state: the line under way and its number.
#[derive(Debug, Default)]
pub(super) struct NdjsonReader {
    /// The line under way (its first bytes only, once it is too long).
    line: Vec<u8>,
    too_long: bool,
    /// Lines ended so far.
    ended: u64,
    /// Whether a non-blank line was read (the one that decides whether the file is NDJSON).
    begun: bool,
}

/// Why a line is not a row.
enum Rejected {
    /// Not a JSON object: the file is refused when this is its first line.
    NotObject(String),
    Bad(String),
}

impl NdjsonReader {
    pub(super) fn feed(&mut self, input: &[u8], records: &mut Vec<Record>) -> Result<(), FileRefused> {
        let mut rest = input;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.keep(&rest[..end]);
            self.end_line(records)?;
            rest = &rest[end + 1..];
        }
        self.keep(rest);
        Ok(())
    }

    pub(super) fn finish(&mut self, records: &mut Vec<Record>) -> Result<(), FileRefused> {
        self.end_line(records)?;
        match self.begun {
            true => Ok(()),
            false => Err(FileRefused("the file is empty: an NDJSON export has one event per line".into())),
        }
    }

    /// Keeps what still fits of the line under way.
    fn keep(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() <= MAX_RECORD_BYTES {
            self.line.extend_from_slice(bytes);
        } else if !self.too_long {
            self.too_long = true;
            let room = (super::reader::MAX_RAW_BYTES + 4).saturating_sub(self.line.len());
            self.line.truncate(super::reader::MAX_RAW_BYTES + 4);
            self.line.extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
    }

    fn end_line(&mut self, records: &mut Vec<Record>) -> Result<(), FileRefused> {
        self.ended += 1;
        let line_no = self.ended;
        let bytes = std::mem::take(&mut self.line);
        let too_long = std::mem::take(&mut self.too_long);
        let text = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
        if !too_long && text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let first = !std::mem::replace(&mut self.begun, true);
        let result = match too_long {
            true if first && text.trim_ascii_start().first() != Some(&b'{') => {
                Err(Rejected::NotObject("the first line is not a JSON object".into()))
            }
            true => Err(Rejected::Bad(format!("the line is longer than {} KB", MAX_RECORD_BYTES / 1024))),
            false => row(text),
        };
        let reason = match result {
            Ok((contact, order_at, event_type, body)) => {
                records.push(Record::Row { line: line_no, contact, order_at, event_type, body });
                return Ok(());
            }
            Err(Rejected::NotObject(reason)) if first => {
                return Err(FileRefused(format!("this is not NDJSON: {reason}")))
            }
            Err(Rejected::NotObject(reason) | Rejected::Bad(reason)) => reason,
        };
        let raw = capped(String::from_utf8_lossy(text).into_owned());
        records.push(Record::Bad { line: line_no, reason, raw });
        Ok(())
    }
}

type Row = (String, i64, crate::intake::event::EventType, String);

/// A line's event, and the body it is applied with.
fn row(text: &[u8]) -> Result<Row, Rejected> {
    let text = std::str::from_utf8(text).map_err(|_| Rejected::NotObject("the line is not UTF-8".into()))?;
    let mut object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(Rejected::NotObject("the line is not a JSON object".into())),
        Err(error) => return Err(Rejected::NotObject(format!("the line is not JSON: {error}"))),
    };
    let body = match object.contains_key("timestamp") {
        true => text.to_owned(),
        false => {
            object.insert("timestamp".into(), Value::String(stand_in_timestamp(&object)?));
            Value::Object(object).to_string()
        }
    };
    let event = parse_event(body.as_bytes()).map_err(|error| Rejected::Bad(error.to_string()))?;
    Ok((event.contact_id, event.updated_at, event.kind, body))
}

/// `data.updated_at`, for a line without the envelope's `timestamp`.
fn stand_in_timestamp(object: &Map<String, Value>) -> Result<String, Rejected> {
    match object.get("data").and_then(|data| data.get("updated_at")) {
        Some(Value::String(at)) if parse_rfc3339(at).is_some() => Ok(at.clone()),
        Some(Value::String(at)) => {
            Err(Rejected::Bad(format!("`data.updated_at` `{}` is not an RFC 3339 date-time", quoted(at))))
        }
        _ => Err(Rejected::Bad("`data.updated_at` is required (an RFC 3339 date-time string)".into())),
    }
}
