//! Reading an export, streamed: the first step of an import. The shell feeds the upload's bytes
//! in chunks of any size to a [`Reader`]; it answers each chunk with the records completed so
//! far, each a [`Record::Row`] (a webhook-shaped body for the queue) or a [`Record::Bad`] (its
//! line and reason, for the failed rows), or refuses the whole file ([`FileRefused`]) before any
//! row is yielded. It keeps at most the first [`SNIFF_BYTES`] and one partial record.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::csv::CsvReader;
use super::ndjson::NdjsonReader;
use crate::intake::event::EventType;
use crate::timestamp::UnixMillis;

/// Longest record (a CSV row, an NDJSON line): a longer one is [`Record::Bad`] and skipped to
/// its end.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Most of a bad record's original text kept in [`Record::Bad::raw`].
pub const MAX_RAW_BYTES: usize = 2 * 1024;
/// The start of the file checked to be UTF-8 before anything is read: a file that is not (an
/// export saved as Latin-1 or UTF-16, say) is refused whole. Past it, a line that is not UTF-8
/// is one bad row.
pub const SNIFF_BYTES: usize = 4 * 1024;

/// What an export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Contacts, one per row, under a header naming SightMill contact fields.
    Csv,
    /// One webhook-shaped object (`type`, `data`) per line, of any event type.
    Ndjson,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    /// From a `format` query value: `csv`, `ndjson` or `jsonl` (any case).
    pub fn from_query(value: &str) -> Option<Format> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("csv") {
            Some(Format::Csv)
        } else if value.eq_ignore_ascii_case("ndjson") || value.eq_ignore_ascii_case("jsonl") {
            Some(Format::Ndjson)
        } else {
            None
        }
    }

    /// From a Content-Type: `text/csv`, or `application/x-ndjson` or `application/jsonl`
    /// (any case, parameters such as `charset` ignored).
    pub fn from_content_type(value: &str) -> Option<Format> {
        let media = value.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("text/csv") {
            Some(Format::Csv)
        } else if ["application/x-ndjson", "application/jsonl"].iter().any(|m| media.eq_ignore_ascii_case(m))
        {
            Some(Format::Ndjson)
        } else {
            None
        }
    }
}

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

/// An export read as it streams in: [`Reader::feed`] each chunk, then [`Reader::finish`].
#[derive(Debug)]
pub struct Reader {
    format: FormatReader,
    state: State,
}

#[derive(Debug)]
enum FormatReader {
    Csv(Box<CsvReader>),
    Ndjson(NdjsonReader),
}

#[derive(Debug)]
enum State {
    /// The file's first bytes, held until [`SNIFF_BYTES`] are in (or the file ends).
    Sniffing(Vec<u8>),
    Reading,
    Refused(FileRefused),
}

impl Reader {
    pub fn new(format: Format) -> Reader {
        let format = match format {
            Format::Csv => FormatReader::Csv(Box::default()),
            Format::Ndjson => FormatReader::Ndjson(NdjsonReader::default()),
        };
        Reader { format, state: State::Sniffing(Vec::new()) }
    }

    /// Reads the next chunk: the records it completes, in file order. Once refused, every call
    /// answers the same refusal.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Record>, FileRefused> {
        let mut records = Vec::new();
        let rest = match &mut self.state {
            State::Refused(refused) => return Err(refused.clone()),
            State::Reading => chunk,
            State::Sniffing(start) => {
                let take = (SNIFF_BYTES - start.len()).min(chunk.len());
                start.extend_from_slice(&chunk[..take]);
                if start.len() < SNIFF_BYTES {
                    return Ok(records);
                }
                let start = std::mem::take(start);
                self.begin(&start, false, &mut records)?;
                &chunk[take..]
            }
        };
        let read = self.read(rest, &mut records);
        self.settle(read)?;
        Ok(records)
    }

    /// The end of the file: the records left, or the refusal (an empty file is refused).
    pub fn finish(mut self) -> Result<Vec<Record>, FileRefused> {
        let mut records = Vec::new();
        match std::mem::replace(&mut self.state, State::Reading) {
            State::Refused(refused) => return Err(refused),
            State::Sniffing(start) => self.begin(&start, true, &mut records)?,
            State::Reading => {}
        }
        match &mut self.format {
            FormatReader::Csv(csv) => csv.finish(&mut records)?,
            FormatReader::Ndjson(ndjson) => ndjson.finish(&mut records)?,
        }
        Ok(records)
    }

    /// The file's start is in: checks it, then reads it (without a UTF-8 byte order mark).
    fn begin(&mut self, start: &[u8], whole: bool, records: &mut Vec<Record>) -> Result<(), FileRefused> {
        self.state = State::Reading;
        let checked = check_utf8(start, whole);
        self.settle(checked)?;
        let read = self.read(start.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(start), records);
        self.settle(read)
    }

    fn read(&mut self, bytes: &[u8], records: &mut Vec<Record>) -> Result<(), FileRefused> {
        match &mut self.format {
            FormatReader::Csv(csv) => csv.feed(bytes, records),
            FormatReader::Ndjson(ndjson) => ndjson.feed(bytes, records),
        }
    }

    /// Remembers a refusal, so that later calls answer it too.
    fn settle(&mut self, result: Result<(), FileRefused>) -> Result<(), FileRefused> {
        if let Err(refused) = &result {
            self.state = State::Refused(refused.clone());
        }
        result
    }
}

/// The file's start must be UTF-8 (a character cut by the end of the window is fine unless the
/// file ends there).
fn check_utf8(start: &[u8], whole: bool) -> Result<(), FileRefused> {
    if start.starts_with(b"\xFF\xFE") || start.starts_with(b"\xFE\xFF") {
        return Err(FileRefused("the file is UTF-16: export it as UTF-8".into()));
    }
    match std::str::from_utf8(start) {
        Ok(_) => Ok(()),
        Err(error) if error.error_len().is_none() && !whole => Ok(()),
        Err(error) => Err(FileRefused(format!(
            "the file is not UTF-8 (byte {} is not): export it as UTF-8",
            error.valid_up_to() + 1
        ))),
    }
}

#[cfg(test)]
mod tests;
