//! Importing an export of SightMill (issue 23), the core of it: the upload's chunks, streamed by
//! the shell, are read into rows ([`reader`]: webhook-shaped bodies, or bad rows with their line
//! and reason, or the whole file refused); each row is then applied as its event by the engine,
//! in the location's own queue, and its outcome folded into the import's figures ([`progress`]).
//! Re-sync costs only what changed because a contact's link keeps a digest of what it last sent
//! ([`crate::sync::plan::contact`]).

/// The largest export taken: larger is refused (413 `body_too_large`) with nothing stored.
pub const MAX_EXPORT_BYTES: usize = 50 * 1024 * 1024;

mod csv;
mod lines;
mod ndjson;
pub mod progress;
pub mod reader;
mod record;
