//! The CSV side of the [`super::reader`]: RFC 4180 records (quoted cells, quoted line breaks,
//! CRLF or LF) read with `csv-core` as the bytes stream in. The header names SightMill contact
//! fields as a webhook's `data` has them (`id` and `updated_at` required); each row becomes the
//! body of a `contact.updated`, its non-empty cells the fields of `data` (as strings).

use csv_core::ReadRecordResult;
use serde_json::{json, Map, Value};

use super::lines::{quoted, Lines, Raw};
use super::reader::{FileRefused, Record, MAX_RECORD_BYTES};
use crate::intake::event::{is_sightmill_id, EventType, MAX_SIGHTMILL_ID_LEN};
use crate::timestamp::parse_rfc3339;

/// Most columns a header may name.
pub const MAX_COLUMNS: usize = 1_000;

/// The reader's state: `csv-core`'s, the header once read, and the one record under way.
#[derive(Debug)]
pub(super) struct CsvReader {
    core: csv_core::Reader,
    header: Option<Header>,
    /// The record's unescaped cells, one after another, and where each ends.
    cells: Vec<u8>,
    cells_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    lines: Lines,
    /// The line the record under way started on (`None` between records).
    started: Option<u64>,
    raw: Raw,
    /// Why the record under way is bad before it ends (too long); its cells are dropped.
    overflow: Option<String>,
}

impl Default for CsvReader {
    fn default() -> Self {
        CsvReader {
            core: csv_core::Reader::new(),
            header: None,
            cells: vec![0; MAX_RECORD_BYTES],
            cells_len: 0,
            ends: vec![0; MAX_COLUMNS],
            ends_len: 0,
            lines: Lines::default(),
            started: None,
            raw: Raw::default(),
            overflow: None,
        }
    }
}

impl CsvReader {
    pub(super) fn feed(&mut self, mut input: &[u8], records: &mut Vec<Record>) -> Result<(), FileRefused> {
        // `csv-core` takes empty input for the end of the file: never hand it one before then.
        while !input.is_empty() {
            let (result, read) = self.step(input);
            input = &input[read..];
            if !self.settle(result, records)? {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn finish(&mut self, records: &mut Vec<Record>) -> Result<(), FileRefused> {
        loop {
            let (result, _) = self.step(&[]);
            if !self.settle(result, records)? {
                break;
            }
        }
        match self.header {
            Some(_) => Ok(()),
            None => Err(FileRefused("the file is empty: a CSV export starts with its header".into())),
        }
    }

    /// One call to `csv-core`: what it says, and how much of `input` it read.
    fn step(&mut self, input: &[u8]) -> (ReadRecordResult, usize) {
        let (result, read, written, ended) =
            self.core.read_record(input, &mut self.cells[self.cells_len..], &mut self.ends[self.ends_len..]);
        self.consumed(&input[..read]);
        self.cells_len += written;
        self.ends_len += ended;
        (result, read)
    }

    /// Whether to go on reading, after handling what `csv-core` said.
    fn settle(&mut self, result: ReadRecordResult, records: &mut Vec<Record>) -> Result<bool, FileRefused> {
        match result {
            ReadRecordResult::InputEmpty | ReadRecordResult::End => return Ok(false),
            ReadRecordResult::OutputFull => {
                self.drop_cells(format!("the row is longer than {} KB", MAX_RECORD_BYTES / 1024))
            }
            ReadRecordResult::OutputEndsFull => {
                let columns = self.header.as_ref().map_or(MAX_COLUMNS, |header| header.names.len());
                self.drop_cells(format!("the row has more cells than the header's {columns}"))
            }
            ReadRecordResult::Record => self.record(records)?,
        }
        Ok(true)
    }

    /// Counts lines, and keeps the record's text from its first byte (line breaks before a
    /// record are blank lines, skipped).
    fn consumed(&mut self, bytes: &[u8]) {
        let mut from = 0;
        for (at, &byte) in bytes.iter().enumerate() {
            if self.started.is_none() {
                if matches!(byte, b'\r' | b'\n') {
                    from = at + 1;
                } else {
                    self.started = Some(self.lines.current());
                }
            }
            self.lines.step(byte);
        }
        if self.started.is_some() {
            self.raw.keep(&bytes[from..]);
        }
    }

    /// The record under way is too long: its cells so far are dropped, the rest are read over.
    fn drop_cells(&mut self, reason: String) {
        self.overflow.get_or_insert(reason);
        self.cells_len = 0;
        self.ends_len = 0;
    }

    /// A whole record: the header, or a row.
    fn record(&mut self, records: &mut Vec<Record>) -> Result<(), FileRefused> {
        let line = self.started.take().unwrap_or_else(|| self.lines.current());
        let raw = self.raw.take();
        let overflow = self.overflow.take();
        let cells = cells(&self.cells[..self.cells_len], &self.ends[..self.ends_len]);
        (self.cells_len, self.ends_len) = (0, 0);
        let Some(header) = &self.header else {
            let header = match overflow {
                Some(_) => Err(refuse(format!(
                    "the CSV header is longer than {} KB or names more than {MAX_COLUMNS} columns",
                    MAX_RECORD_BYTES / 1024
                ))),
                None => cells.ok_or_else(|| refuse("the header is not UTF-8")).and_then(Header::parse),
            }?;
            self.ends.truncate(header.names.len());
            self.header = Some(header);
            return Ok(());
        };
        let row = match (overflow, cells) {
            (Some(reason), _) => Err(reason),
            (None, None) => Err("the row is not UTF-8".into()),
            (None, Some(cells)) => header.row(&cells),
        };
        records.push(match row {
            Ok((contact, order_at, body)) => {
                Record::Row { line, contact, order_at, event_type: EventType::ContactUpdated, body }
            }
            Err(reason) => Record::Bad { line, reason, raw },
        });
        Ok(())
    }
}

/// The record's cells as text, or `None` when one is not UTF-8.
fn cells<'a>(bytes: &'a [u8], ends: &[usize]) -> Option<Vec<&'a str>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let cell = text.get(start..end);
            start = end;
            cell
        })
        .collect()
}

fn refuse(reason: impl Into<String>) -> FileRefused {
    FileRefused(reason.into())
}

/// The header: the column names, and where `id` and `updated_at` are.
#[derive(Debug)]
struct Header {
    names: Vec<String>,
    id: usize,
    updated_at: usize,
}

impl Header {
    fn parse(cells: Vec<&str>) -> Result<Header, FileRefused> {
        let names: Vec<String> = cells.iter().map(|name| name.trim().to_owned()).collect();
        if names.iter().all(String::is_empty) {
            return Err(refuse("the CSV header is empty"));
        }
        for (at, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(refuse(format!("column {} of the CSV header has no name", at + 1)));
            }
            if let Some(twice) = names[at + 1..].iter().position(|other| other == name) {
                return Err(refuse(format!(
                    "the CSV header names `{}` twice (columns {} and {})",
                    quoted(name),
                    at + 1,
                    at + twice + 2
                )));
            }
        }
        let column = |wanted: &str| {
            names.iter().position(|name| name == wanted).ok_or_else(|| {
                refuse(format!("the CSV header has no `{wanted}` column (it needs `id` and `updated_at`)"))
            })
        };
        let (id, updated_at) = (column("id")?, column("updated_at")?);
        Ok(Header { names, id, updated_at })
    }

    /// A row's contact id, `updated_at` and `contact.updated` body; or why it is bad.
    fn row(&self, cells: &[&str]) -> Result<(String, i64, String), String> {
        if cells.len() != self.names.len() {
            return Err(format!("the row has {} cells, the header {}", cells.len(), self.names.len()));
        }
        let (id, updated_at) = (cells[self.id], cells[self.updated_at]);
        if id.is_empty() {
            return Err("the row has no `id`".into());
        }
        if !is_sightmill_id(id) {
            return Err(format!("`id` must be 1-{MAX_SIGHTMILL_ID_LEN} characters of A-Z a-z 0-9 . _ -"));
        }
        let order_at = parse_rfc3339(updated_at)
            .ok_or_else(|| format!("`updated_at` `{}` is not an RFC 3339 date-time", quoted(updated_at)))?;
        let data: Map<String, Value> = self
            .names
            .iter()
            .zip(cells)
            .filter(|(_, cell)| !cell.is_empty())
            .map(|(name, cell)| (name.clone(), Value::String((*cell).to_owned())))
            .collect();
        let body = json!({"type": EventType::ContactUpdated.as_str(), "timestamp": updated_at, "data": data});
        Ok((id.to_owned(), order_at, body.to_string()))
    }
}
