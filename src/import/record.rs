//! What reading an export yields, shared by the readers of each format and the [`super::reader`]
//! that drives them: a record (a row to apply, or a bad one to report), the refusal of a whole
//! file, and the bounds on a record's size.

use thiserror::Error;

use crate::intake::event::EventType;
use crate::timestamp::UnixMillis;

/// Longest record (a CSV row, an NDJSON line): a longer one is [`Record::Bad`] and skipped to
/// its end.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Most of a bad record's original text kept in [`Record::Bad::raw`].
pub const MAX_RAW_BYTES: usize = 2 * 1024;
/// One record of the file: a row to apply, or a bad one to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Row {
        /// The line (1-based, of the file) the record starts on.
        line: u64,
        /// SightMill's id of the contact the event is about.
        contact: String,
        /// Its `updated_at`: what orders it against the contact's other events.
        order_at: UnixMillis,
        event_type: EventType,
        /// A webhook-shaped body (`type`, `timestamp`, `data`) that
        /// [`crate::intake::event::parse_event`] accepts.
        body: String,
    },
    Bad {
        line: u64,
        reason: String,
        /// The record's original text, its line break dropped, at most [`MAX_RAW_BYTES`].
        raw: String,
    },
}

impl Record {
    pub fn line(&self) -> u64 {
        match self {
            Record::Row { line, .. } | Record::Bad { line, .. } => *line,
        }
    }
}

/// The file is not what it claims: refused whole, nothing of it to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct FileRefused(pub String);
