//! The ports the location engine works through, each small: the location's rows ([`Store`]),
//! the Contacts API as the location reaches it ([`Api`]), time and chance ([`Clock`]), and what
//! leaves the location besides its calls ([`Outside`]: log lines, alerts, the idempotency copies,
//! the charts). The location's Durable Object implements them over SQLite, `Fetch`, KV and the
//! runtime's clock; the engine's native tests implement them in memory.
//!
//! The traits use `async fn` without `Send` bounds on purpose: the Worker's runtime is
//! single-threaded, and the engine is only ever driven there or by a test's own executor.
#![allow(async_fn_in_trait)]

use std::rc::Rc;

use serde_json::Value;

use super::tallies::Counter;
use crate::contacts_api::{ApiRequest, ApiResponse};
use crate::secret::Secret;
use crate::sync::custom_fields::{Definitions, ListError};
use crate::sync::mapping::Mapping;
use crate::sync::metrics::Bucket;
use crate::sync::plan::{Failure, Known, Reads, Write};
use crate::sync::records::WebhookRecord;
use crate::sync::retry::RateHeaders;
use crate::timestamp::UnixMillis;

/// Why the rows could not be read or written. A stored row that no longer parses is an error
/// that stops what needed it, never a fresh start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("the stored record `{0}` is unreadable: {1}")]
    Unreadable(String, String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One webhook as listed: its id and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: String,
    pub record: WebhookRecord,
}

/// Where a webhook-shaped record waits: the live queue (webhooks, always first) or the running
/// import's rows (a lower-priority lane that takes what is left of the rate limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Live,
    Import,
}

/// The location's rows. Every method is synchronous: what the engine writes with no `await`
/// between is committed together (the Durable Object's implicit transaction).
pub trait Store {
    /// The ids of up to `limit` pending webhooks due at `now` that no earlier webhook of their
    /// contact holds back (in the contact's order), in due order.
    fn due_heads(&self, now: UnixMillis, limit: u32) -> StoreResult<Vec<String>>;
    /// Webhook `id`, if it is still pending, due at `now` and heads its contact's order.
    fn due_head(&self, id: &str, now: UnixMillis) -> StoreResult<Option<Listed>>;
    /// Takes a webhook (or import row) whose record cannot be read out of its lane, kept as
    /// `unreadable` (an import row: failed).
    fn set_unreadable(&self, lane: Lane, id: &str) -> StoreResult<()>;
    /// The pending webhooks about `contact` due later than `now`.
    fn waiting_on(&self, contact: &str, now: UnixMillis) -> StoreResult<Vec<Listed>>;
    /// Writes webhook `id`'s new record (`before` is the one it replaces), with its place and the
    /// running counts.
    fn put_webhook(&self, id: &str, before: &WebhookRecord, after: &WebhookRecord) -> StoreResult<()>;
    /// The ids of up to `limit` rows of the running import due at `now`, in the file's order,
    /// whose contact has no live webhook pending (none when no import is running).
    fn import_heads(&self, now: UnixMillis, limit: u32) -> StoreResult<Vec<String>>;
    /// Import row `id`, if it is still pending, due at `now`, and its contact has no live
    /// webhook pending.
    fn import_head(&self, id: &str, now: UnixMillis) -> StoreResult<Option<Listed>>;
    /// Writes an import row's new record (`before`: the one it replaces) and the import's
    /// progress (`calls`: the Contacts API calls the attempt made): a finished row leaves the
    /// table, a parked one is kept as failed.
    fn put_import_row(
        &self,
        id: &str,
        before: &WebhookRecord,
        after: &WebhookRecord,
        calls: u32,
    ) -> StoreResult<()>;
    /// Adds to a total (kept in memory, stored with the running counts).
    fn count(&self, counter: Counter, by: i64);
    /// What the id maps hold under the keys planning reads.
    fn known(&self, reads: &Reads) -> StoreResult<Known>;
    /// The id-map record under `key`, as JSON.
    fn link(&self, key: &str) -> StoreResult<Option<Value>>;
    /// Carries out one id-map write.
    fn write(&self, write: &Write) -> StoreResult<()>;
    /// A change was applied to the API's contact `contact_id`: its cached reads are stale.
    fn contact_changed(&self, contact_id: &str, now: UnixMillis) -> StoreResult<()>;
    /// The operator's live mapping (`None`: the deployed one applies); `Err` when the saved one
    /// cannot be used (nothing is applied with another).
    fn live_mapping(&self) -> Result<Option<Mapping>, String>;
}

/// The Contacts API as the location reaches it: an access token, one call (not paced: the
/// engine paces), and the location's custom fields as last read.
pub trait Api {
    /// The token to use; `rejected` is one the API just refused, to be renewed.
    async fn token(&self, rejected: Option<&Secret>) -> Result<Secret, Failure>;
    /// Sends one call: the answer and its rate-limit headers, or why nothing was heard.
    async fn send(&self, token: &Secret, request: &ApiRequest) -> Result<(ApiResponse, RateHeaders), String>;
    /// The custom field definitions as last read, if ever.
    fn kept_custom_fields(&self) -> Option<Rc<Definitions>>;
    /// Reads the definitions again (a paced call) and keeps them.
    async fn read_custom_fields(&self) -> Result<Rc<Definitions>, ListError>;
}

/// Time and chance.
pub trait Clock {
    fn now(&self) -> UnixMillis;
    async fn sleep(&self, ms: u64);
    /// A number in [0, 1), for retry jitter.
    fn random(&self) -> f64;
}

/// An operator alert's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Parked,
    TokenRenewal,
    PendingAge,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Parked => "parked",
            AlertKind::TokenRenewal => "token_renewal",
            AlertKind::PendingAge => "pending_age",
        }
    }
}

/// What leaves the location besides its calls. None of it may stop the queue: failures are the
/// port's to log.
pub trait Outside {
    fn info(&self, line: Value);
    fn error(&self, line: Value);
    async fn alert(&self, kind: AlertKind, text: &str);
    /// Copies a finished webhook's record to its idempotency key at the edge.
    async fn remember(&self, id: &str, record: &WebhookRecord);
    /// Counts into the charts' minute under way.
    fn chart(&self, change: &dyn Fn(&mut Bucket));
}

/// The four ports one run works through.
pub struct Ports<'a, S, A, C, O> {
    pub store: &'a S,
    pub api: &'a A,
    pub clock: &'a C,
    pub outside: &'a O,
}

impl<S, A, C, O> Clone for Ports<'_, S, A, C, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, A, C, O> Copy for Ports<'_, S, A, C, O> {}
