//! The imports' tables in the location's database: one row per import (its [`Progress`]), and
//! the rows of the import under way, each a webhook-shaped record in the engine's import lane
//! ([`crate::engine::ports::Lane::Import`]), due in the file's order. A row that finishes
//! leaves the table at once; a row that fails for good (a bad line, or parked) stays, with its
//! reason and its text, for the operator's list of failed rows until the next import begins. The
//! progress is stored with every row that ends (in the same transaction), and while the file is
//! stored, at its end.

use super::{listed, parse, to_json, Db, DbResult, WebhookRow};
use crate::engine::ports::Listed;
use crate::import::progress::{FailedRow, ImportState, Progress};
use crate::shell::platform::sql::{Columns, FromRow, SqlError, TextRow};
use crate::sync::records::{WebhookRecord, WebhookState};
use crate::timestamp::UnixMillis;

/// Imports kept (their progress rows), newest first.
const KEPT: i64 = 20;

/// The import under way and its progress; `stored` says whether the row holds this progress.
pub(crate) struct UnderWay {
    pub progress: Progress,
    stored: bool,
}

/// `line, reason, raw`: a failed row as the operator's list shows it.
struct FailedRowColumns(FailedRow);

impl FromRow for FailedRowColumns {
    fn from_row(columns: &mut Columns) -> Result<Self, SqlError> {
        Ok(FailedRowColumns(FailedRow {
            line: columns.not_null_integer()?.max(0) as u64,
            reason: columns.optional_text()?.unwrap_or_default(),
            row: columns.optional_text()?.unwrap_or_default(),
        }))
    }
}

/// The id of line `line` of import `import`: zero-padded, so that ids sort in the file's order.
pub fn row_id(import: &str, line: u64) -> String {
    format!("{import}:{line:010}")
}

/// No live webhook of `r`'s contact is pending: live webhooks go first.
const NO_LIVE: &str =
    "NOT EXISTS (SELECT 1 FROM webhooks e WHERE e.state = 'pending' AND e.contact = r.contact)";

impl Db {
    /// At open: the import under way, if any. One cut off while its file was being stored is
    /// cancelled (its rows are incomplete: the operator uploads it again).
    pub(super) fn resume_import(&self) -> DbResult<()> {
        let rows: Vec<TextRow> =
            self.rows("SELECT progress FROM imports ORDER BY id DESC LIMIT 1", vec![])?;
        let Some(TextRow(text)) = rows.into_iter().next() else {
            return Ok(());
        };
        let mut progress: Progress = parse("the import's progress", &text)?;
        match progress.state {
            ImportState::Running | ImportState::Paused | ImportState::StoppedForTheDay => {
                *self.import.borrow_mut() = Some(UnderWay { progress, stored: true });
            }
            ImportState::Loading => {
                progress.state = ImportState::Cancelled;
                self.delete_pending_rows(&progress.id)?;
                self.put_progress(&progress)?;
            }
            ImportState::Cancelled | ImportState::Done => {}
        }
        Ok(())
    }

    /// The import under way's progress, if any.
    pub fn import_under_way(&self) -> Option<Progress> {
        self.import.borrow().as_ref().map(|under_way| under_way.progress.clone())
    }

    /// The progress of every import kept, newest first.
    pub fn imports(&self) -> DbResult<Vec<Progress>> {
        let rows: Vec<TextRow> =
            self.rows("SELECT progress FROM imports ORDER BY id DESC LIMIT ?", vec![KEPT.into()])?;
        let stored: DbResult<Vec<Progress>> =
            rows.into_iter().map(|TextRow(text)| parse("an import's progress", &text)).collect();
        let under_way = self.import_under_way();
        Ok(stored?
            .into_iter()
            .map(|progress| match &under_way {
                Some(live) if live.id == progress.id => live.clone(),
                _ => progress,
            })
            .collect())
    }

    /// One import's progress.
    pub fn import(&self, id: &str) -> DbResult<Option<Progress>> {
        if let Some(live) = self.import_under_way().filter(|live| live.id == id) {
            return Ok(Some(live));
        }
        let rows: Vec<TextRow> = self.rows("SELECT progress FROM imports WHERE id = ?", vec![id.into()])?;
        rows.into_iter().next().map(|TextRow(text)| parse("an import's progress", &text)).transpose()
    }

    /// Begins an import (its file is then stored row by row): the failed rows of the one before
    /// are forgotten, and imports beyond the [`KEPT`] newest.
    pub fn begin_import(&self, progress: Progress) -> DbResult<()> {
        self.run("DELETE FROM import_rows", vec![])?;
        self.run(
            "DELETE FROM imports WHERE id NOT IN (SELECT id FROM imports ORDER BY id DESC LIMIT ?)",
            vec![(KEPT - 1).into()],
        )?;
        self.put_progress(&progress)?;
        *self.import.borrow_mut() = Some(UnderWay { progress, stored: true });
        Ok(())
    }

    /// Stores one row of the import under way, pending.
    pub fn add_import_row(&self, line: u64, contact: &str, record: &WebhookRecord) -> DbResult<()> {
        let (import, at) = self.with_import(|progress| {
            progress.total += 1;
            (progress.id.clone(), record.accepted_at)
        });
        self.run(
            "INSERT INTO import_rows (id, import, line, contact, state, at, record) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            vec![
                row_id(&import, line).into(),
                import.as_str().into(),
                (line as i64).into(),
                contact.into(),
                at.into(),
                to_json(record)?.into(),
            ],
        )
    }

    /// Stores a line that is not a row (a bad line) as failed, with its reason and text.
    pub fn add_bad_row(&self, line: u64, reason: &str, raw: &str) -> DbResult<()> {
        let import = self.with_import(|progress| {
            progress.total += 1;
            progress.fail();
            progress.id.clone()
        });
        self.run(
            "INSERT INTO import_rows (id, import, line, contact, state, at, record, raw, reason) VALUES (?, ?, ?, '', 'failed', 0, '', ?, ?)",
            vec![
                row_id(&import, line).into(),
                import.as_str().into(),
                (line as i64).into(),
                raw.into(),
                reason.into(),
            ],
        )
    }

    /// Changes the import under way's progress in memory (stored at the next [`Db::settle`]).
    fn with_import<T: Default>(&self, change: impl FnOnce(&mut Progress) -> T) -> T {
        match self.import.borrow_mut().as_mut() {
            Some(under_way) => {
                under_way.stored = false;
                change(&mut under_way.progress)
            }
            None => T::default(),
        }
    }

    /// Changes the import under way's state (and stores it at once); `Done` and `Cancelled`
    /// end it. `None` when no import is under way or `id` is not it.
    pub fn set_import_state(
        &self,
        id: &str,
        state: ImportState,
        now: UnixMillis,
    ) -> DbResult<Option<Progress>> {
        let progress = {
            let mut slot = self.import.borrow_mut();
            let Some(under_way) = slot.as_mut().filter(|under_way| under_way.progress.id == id) else {
                return Ok(None);
            };
            match state {
                ImportState::Done | ImportState::Cancelled => under_way.progress.end(state, now),
                _ => under_way.progress.state = state,
            }
            under_way.stored = true;
            under_way.progress.clone()
        };
        if state == ImportState::Cancelled {
            self.delete_pending_rows(id)?;
        }
        if matches!(state, ImportState::Done | ImportState::Cancelled) {
            *self.import.borrow_mut() = None;
        }
        self.put_progress(&progress)?;
        Ok(Some(progress))
    }

    /// Forgets an import whose file was refused part way (too large): its rows and its record,
    /// as if it had never begun.
    pub fn discard_import(&self, id: &str) -> DbResult<()> {
        self.run("DELETE FROM import_rows WHERE import = ?", vec![id.into()])?;
        self.run("DELETE FROM imports WHERE id = ?", vec![id.into()])?;
        if self.import_under_way().is_some_and(|under_way| under_way.id == id) {
            *self.import.borrow_mut() = None;
        }
        Ok(())
    }

    fn delete_pending_rows(&self, import: &str) -> DbResult<()> {
        self.run("DELETE FROM import_rows WHERE import = ? AND state = 'pending'", vec![import.into()])
    }

    fn put_progress(&self, progress: &Progress) -> DbResult<()> {
        self.run(
            "INSERT INTO imports (id, progress) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET progress = excluded.progress",
            vec![progress.id.as_str().into(), to_json(progress)?.into()],
        )
    }

    /// Ends the import under way when every row is done; otherwise stores its progress if it
    /// changed since last stored (a run's end).
    pub(super) fn store_import_progress(&self) -> DbResult<()> {
        let (progress, done) = {
            let mut slot = self.import.borrow_mut();
            let Some(under_way) = slot.as_mut() else {
                return Ok(());
            };
            let progress = &under_way.progress;
            let done = progress.state == ImportState::Running && progress.done >= progress.total;
            if !done && under_way.stored {
                return Ok(());
            }
            under_way.stored = true;
            (progress.clone(), done)
        };
        if done {
            let finished_at = crate::shell::platform::runtime::now_ms();
            self.set_import_state(&progress.id, ImportState::Done, finished_at)?;
            return Ok(());
        }
        self.put_progress(&progress)
    }

    /// The failed rows of import `id`, in the file's order.
    pub fn failed_rows(&self, id: &str) -> DbResult<Vec<FailedRow>> {
        let rows: Vec<FailedRowColumns> = self.rows(
            "SELECT line, reason, raw FROM import_rows WHERE import = ? AND state = 'failed' ORDER BY id",
            vec![id.into()],
        )?;
        Ok(rows.into_iter().map(|FailedRowColumns(row)| row).collect())
    }

    /// The running import's rows due at `now` whose contact has no live webhook pending.
    pub fn import_heads(&self, now: UnixMillis, limit: u32) -> DbResult<Vec<String>> {
        let Some(import) = self.running_import() else {
            return Ok(vec![]);
        };
        let rows: Vec<TextRow> = self.rows(
            &format!(
                "SELECT r.id FROM import_rows r WHERE r.state = 'pending' AND r.at <= ? AND r.import = ? AND {NO_LIVE}
                 ORDER BY r.at, r.id LIMIT ?"
            ),
            vec![now.into(), import.into(), i64::from(limit).into()],
        )?;
        Ok(rows.into_iter().map(|TextRow(id)| id).collect())
    }

    /// Import row `id`, if it is still pending, due, and no live webhook of its contact is pending.
    pub fn import_head(&self, id: &str, now: UnixMillis) -> DbResult<Option<Listed>> {
        if self.running_import().is_none() {
            return Ok(None);
        }
        let rows: Vec<WebhookRow> = self.rows(
            &format!(
                "SELECT r.id, r.record FROM import_rows r WHERE r.id = ? AND r.state = 'pending' AND r.at <= ? AND {NO_LIVE}"
            ),
            vec![id.into(), now.into()],
        )?;
        rows.first().map(listed).transpose()
    }

    fn running_import(&self) -> Option<String> {
        let slot = self.import.borrow();
        let under_way = slot.as_ref()?;
        (under_way.progress.state == ImportState::Running).then(|| under_way.progress.id.clone())
    }

    /// Writes an import row's new record and the progress, in the same transaction (exact across
    /// restarts): a finished row leaves, a parked one is failed for good (kept with its reason),
    /// a pending one waits for its time. A row of an import cancelled while it was under way
    /// still counts into that import's progress.
    pub fn put_import_row(&self, id: &str, after: &WebhookRecord, calls: u32) -> DbResult<()> {
        match &after.state {
            WebhookState::Finished { outcome, .. } => {
                self.run("DELETE FROM import_rows WHERE id = ?", vec![id.into()])?;
                self.count_row(id, |progress| progress.record(outcome), calls)
            }
            WebhookState::Parked { reason, .. } => {
                self.run(
                    "UPDATE import_rows SET state = 'failed', reason = ?, record = ? WHERE id = ?",
                    vec![reason.as_str().into(), to_json(after)?.into(), id.into()],
                )?;
                self.count_row(id, Progress::fail, calls)
            }
            WebhookState::Pending { due_at, .. } => {
                self.run(
                    "UPDATE import_rows SET at = ?, record = ? WHERE id = ?",
                    vec![(*due_at).into(), to_json(after)?.into(), id.into()],
                )?;
                self.count_row(id, |_| {}, calls)
            }
        }
    }

    /// Folds a row's end (`change`) and its calls into its import's progress, and stores it.
    fn count_row(&self, row: &str, change: impl FnOnce(&mut Progress), calls: u32) -> DbResult<()> {
        let import = row.rsplit_once(':').map_or(row, |(import, _)| import);
        let under_way = self.import_under_way().filter(|under_way| under_way.id == import);
        let Some(mut progress) = under_way.map_or_else(|| self.import(import), |live| Ok(Some(live)))? else {
            return Ok(());
        };
        change(&mut progress);
        progress.add_calls(u64::from(calls));
        if let Some(slot) = self.import.borrow_mut().as_mut().filter(|slot| slot.progress.id == import) {
            slot.progress = progress.clone();
            slot.stored = true;
        }
        self.put_progress(&progress)
    }

    /// An import row whose record cannot be read: failed for good.
    pub fn set_import_row_unreadable(&self, id: &str) -> DbResult<()> {
        self.run(
            "UPDATE import_rows SET state = 'failed', reason = 'the stored row is unreadable' WHERE id = ?",
            vec![id.into()],
        )?;
        self.count_row(id, Progress::fail, 0)
    }
}
