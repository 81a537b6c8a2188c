//! An import's figures, the last step of its flow: what the operator API, the console's progress
//! bar and the logs show. Each row's engine outcome is folded in ([`Progress::record`]), failed
//! rows counted ([`Progress::fail`]), calls added; the ETA comes from the rate the import may use;
//! the failed rows are downloaded as CSV ([`failed_rows_csv`]).

use serde::{Deserialize, Serialize};

use super::reader::Format;
use crate::sync::records::{Action, Outcome};
use crate::timestamp::UnixMillis;

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportState {
    /// The upload is still being read.
    Loading,
    Running,
    Paused,
    Cancelled,
    Done,
    /// The API's daily allowance ran low: it goes on tomorrow.
    StoppedForTheDay,
}

/// An import's figures, stored and shown as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub id: String,
    pub format: Format,
    pub state: ImportState,
    /// Rows read so far (all of them once loading is over), bad ones included.
    pub total: u64,
    /// Rows finished: created + updated + unchanged + skipped + failed.
    pub done: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Contacts API calls the import's rows spent.
    pub calls: u64,
    pub started_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
}

impl Progress {
    /// A new import, loading.
    pub fn new(id: impl Into<String>, format: Format, started_at: UnixMillis) -> Progress {
        Progress {
            id: id.into(),
            format,
            state: ImportState::Loading,
            total: 0,
            done: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            skipped: 0,
            failed: 0,
            calls: 0,
            started_at,
            finished_at: None,
        }
    }

    /// A row finished with `outcome`: created (made or adopted), updated (any other change),
    /// unchanged, or skipped (stale, skipped, discarded).
    pub fn record(&mut self, outcome: &Outcome) {
        let count = match outcome {
            Outcome::Applied { action: Action::Created | Action::Adopted, .. } => &mut self.created,
            Outcome::Applied { .. } => &mut self.updated,
            Outcome::Unchanged { .. } => &mut self.unchanged,
            Outcome::Stale | Outcome::Skipped { .. } | Outcome::Discarded => &mut self.skipped,
        };
        *count += 1;
        self.done += 1;
    }

    /// A row failed: bad when read, or parked.
    pub fn fail(&mut self) {
        self.failed += 1;
        self.done += 1;
    }

    pub fn add_calls(&mut self, calls: u64) {
        self.calls += calls;
    }

    /// Calls per finished row so far (`None` before the first).
    pub fn calls_per_row(&self) -> Option<f64> {
        (self.done > 0).then(|| self.calls as f64 / self.done as f64)
    }

    /// Seconds until the last row is done: rows left × `calls_per_row` ÷ the rate the import may
    /// use (`calls_per_10s`, what live traffic leaves of the rate limit). `None` when the rate
    /// or the calls per row are no usable number.
    pub fn eta_secs(&self, calls_per_10s: f64, calls_per_row: f64) -> Option<u64> {
        let left = self.total.saturating_sub(self.done);
        if left == 0 {
            return Some(0);
        }
        let usable = calls_per_10s.is_finite() && calls_per_10s > 0.0;
        if !usable || !calls_per_row.is_finite() || calls_per_row < 0.0 {
            return None;
        }
        let secs = (left as f64 * calls_per_row * 10.0 / calls_per_10s).ceil();
        secs.is_finite().then_some(secs as u64)
    }

    /// The import ended (`Done` or `Cancelled`) at `at`.
    pub fn end(&mut self, state: ImportState, at: UnixMillis) {
        self.state = state;
        self.finished_at = Some(at);
    }
}

/// A row that failed, as the failed-rows download lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRow {
    pub line: u64,
    pub reason: String,
    /// The row's original text (at most [`super::reader::MAX_RAW_BYTES`]).
    pub row: String,
}

/// The failed-rows CSV's header line.
pub const FAILED_ROWS_HEADER: &str = "line,reason,row\r\n";

/// Appends one failed row as an RFC 4180 line (CRLF-terminated).
pub fn write_failed_row(out: &mut String, failed: &FailedRow) {
    out.push_str(&failed.line.to_string());
    out.push(',');
    write_cell(out, &failed.reason);
    out.push(',');
    write_cell(out, &failed.row);
    out.push_str("\r\n");
}

/// The failed rows as a CSV file: the header, then a line each.
pub fn failed_rows_csv<'a>(rows: impl IntoIterator<Item = &'a FailedRow>) -> String {
    let mut out = FAILED_ROWS_HEADER.to_owned();
    for failed in rows {
        write_failed_row(&mut out, failed);
    }
    out
}

/// A cell, quoted (its quotes doubled) when it holds a comma, a quote or a line break.
fn write_cell(out: &mut String, cell: &str) {
    if cell.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts_api::ApiId;
    use serde_json::json;

    fn applied(action: Action) -> Outcome {
        Outcome::Applied { action, contact_id: ApiId::parse("c1").unwrap(), record_id: None }
    }

    #[test]
    fn outcomes_fold_into_the_counts() {
        let mut progress = Progress::new("imp_1", Format::Csv, 5);
        progress.total = 9;
        let unchanged = Outcome::Unchanged { contact_id: ApiId::parse("c1").unwrap() };
        for outcome in [
            applied(Action::Created),
            applied(Action::Adopted),
            applied(Action::Updated),
            applied(Action::TagAdded),
            unchanged,
            Outcome::Stale,
            Outcome::Skipped { reason: "r".into() },
        ] {
            progress.record(&outcome);
        }
        progress.fail();
        progress.add_calls(6);
        let counts =
            (progress.created, progress.updated, progress.unchanged, progress.skipped, progress.failed);
        assert_eq!(counts, (2, 2, 1, 2, 1));
        assert_eq!((progress.done, progress.calls), (8, 6));
        assert_eq!(progress.calls_per_row(), Some(0.75));
        progress.end(ImportState::Done, 99);
        assert_eq!(
            serde_json::to_value(&progress).unwrap(),
            json!({"id": "imp_1", "format": "csv", "state": "done", "total": 9, "done": 8, "created": 2,
                   "updated": 2, "unchanged": 1, "skipped": 2, "failed": 1, "calls": 6, "started_at": 5,
                   "finished_at": 99})
        );
        let stored: Progress = serde_json::from_value(serde_json::to_value(&progress).unwrap()).unwrap();
        assert_eq!(stored, progress);
        assert_eq!(serde_json::to_value(ImportState::StoppedForTheDay).unwrap(), "stopped_for_the_day");
    }

    #[test]
    fn the_eta_is_rows_left_times_calls_per_row_over_the_rate() {
        let mut progress = Progress::new("imp_1", Format::Ndjson, 0);
        assert_eq!(progress.calls_per_row(), None);
        progress.total = 1_000;
        progress.done = 400;
        // 600 rows × 1.5 calls at 90 calls per 10 s: 100 s.
        assert_eq!(progress.eta_secs(90.0, 1.5), Some(100));
        assert_eq!(progress.eta_secs(90.0, 1.51), Some(101), "rounded up");
        assert_eq!(progress.eta_secs(90.0, 0.0), Some(0), "unchanged rows cost nothing");
        for (rate, per_row) in [(0.0, 1.0), (-5.0, 1.0), (f64::NAN, 1.0), (90.0, f64::NAN), (90.0, -1.0)] {
            assert_eq!(progress.eta_secs(rate, per_row), None, "{rate} {per_row}");
        }
        progress.done = 1_000;
        assert_eq!(progress.eta_secs(0.0, 1.0), Some(0), "nothing left");
    }

    #[test]
    fn failed_rows_download_as_rfc_4180_csv() {
        let rows = [
            FailedRow { line: 3, reason: "the row has no `id`".into(), row: ",2026-11-27T10:00:00Z".into() },
            FailedRow { line: 7, reason: "HTTP 400: bad, \"email\"".into(), row: "a\nb".into() },
        ];
        let csv = failed_rows_csv(&rows);
        assert_eq!(
            csv,
            "line,reason,row\r\n3,the row has no `id`,\",2026-11-27T10:00:00Z\"\r\n\
             7,\"HTTP 400: bad, \"\"email\"\"\",\"a\nb\"\r\n"
        );
        // It reads back through the export reader's own CSV parser, cell for cell.
        let mut reader = csv_core::Reader::new();
        let (mut cells, mut ends) = (vec![0; 256], vec![0; 8]);
        let mut input = csv.as_bytes();
        let mut records = vec![];
        loop {
            let (result, read, written, ended) = reader.read_record(input, &mut cells, &mut ends);
            input = &input[read..];
            match result {
                csv_core::ReadRecordResult::Record => {
                    let text = std::str::from_utf8(&cells[..written]).unwrap();
                    let mut start = 0;
                    let record: Vec<String> = ends[..ended]
                        .iter()
                        .map(|&end| {
                            let cell = text[start..end].to_owned();
                            start = end;
                            cell
                        })
                        .collect();
                    records.push(record);
                }
                csv_core::ReadRecordResult::End => break,
                other => assert!(matches!(other, csv_core::ReadRecordResult::InputEmpty)),
            }
        }
        assert_eq!(records[2], ["7", "HTTP 400: bad, \"email\"", "a\nb"]);
        assert_eq!(records.len(), 3);
    }
}
