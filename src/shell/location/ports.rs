//! The engine's four ports over the location's Durable Object ([`crate::engine::ports`]): its
//! rows are the SQLite database ([`super::db`]), its Contacts API is `Fetch` with the token
//! [`super::tokens`] keeps, its clock is the runtime's, and what leaves it is the log, the alert
//! webhook, the KV idempotency copies and the charts. One [`Adapter`] serves all four for a run
//! or a dry run.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};
use worker::Delay;

use super::alerts;
use super::reads::{caching_enabled, mark_contact_changed};
use super::tokens::token_failure;
use super::Writer;
use crate::config::Config;
use crate::contacts_api::{ApiRequest, ApiResponse};
use crate::engine::ports::{AlertKind, Api, Clock, Lane, Listed, Outside, Ports, Store, StoreResult};
use crate::engine::tallies::Counter;
use crate::secret::Secret;
use crate::shell::platform::contacts_client::ContactsClient;
use crate::shell::platform::kv::Kv;
use crate::shell::platform::runtime::now_ms;
use crate::sync::custom_fields::{Definitions, ListError};
use crate::sync::mapping::Mapping;
use crate::sync::metrics::Bucket;
use crate::sync::plan::{Failure, Known, Reads, Write};
use crate::sync::queue::FINISHED_TTL_MS;
use crate::sync::records::WebhookRecord;
use crate::sync::retry::RateHeaders;
use crate::timestamp::UnixMillis;

/// The location's Durable Object as the engine's ports, with the deployed configuration.
pub struct Adapter<'a> {
    pub writer: &'a Writer,
    pub config: &'a Config,
}

impl Adapter<'_> {
    pub fn ports(&self) -> Ports<'_, Self, Self, Self, Self> {
        Ports { store: self, api: self, clock: self, outside: self }
    }
}

impl Store for Adapter<'_> {
    fn due_heads(&self, now: UnixMillis, limit: u32) -> StoreResult<Vec<String>> {
        self.writer.db.due_heads(now, limit)
    }

    fn due_head(&self, id: &str, now: UnixMillis) -> StoreResult<Option<Listed>> {
        self.writer.db.due_head(id, now)
    }

    fn set_unreadable(&self, lane: Lane, id: &str) -> StoreResult<()> {
        match lane {
            Lane::Live => self.writer.db.set_unreadable(id),
            Lane::Import => self.writer.db.set_import_row_unreadable(id),
        }
    }

    fn import_heads(&self, now: UnixMillis, limit: u32) -> StoreResult<Vec<String>> {
        self.writer.db.import_heads(now, limit)
    }

    fn import_head(&self, id: &str, now: UnixMillis) -> StoreResult<Option<Listed>> {
        self.writer.db.import_head(id, now)
    }

    fn put_import_row(
        &self,
        id: &str,
        _before: &WebhookRecord,
        after: &WebhookRecord,
        calls: u32,
    ) -> StoreResult<()> {
        self.writer.db.put_import_row(id, after, calls)
    }

    fn waiting_on(&self, contact: &str, now: UnixMillis) -> StoreResult<Vec<Listed>> {
        self.writer.db.waiting_on(contact, now)
    }

    fn put_webhook(&self, id: &str, before: &WebhookRecord, after: &WebhookRecord) -> StoreResult<()> {
        self.writer.db.put_webhook(id, before, after)
    }

    fn count(&self, counter: Counter, by: i64) {
        self.writer.db.count(counter, by)
    }

    fn known(&self, reads: &Reads) -> StoreResult<Known> {
        self.writer.db.known(reads)
    }

    fn link(&self, key: &str) -> StoreResult<Option<Value>> {
        self.writer.db.link(key)
    }

    fn write(&self, write: &Write) -> StoreResult<()> {
        self.writer.db.write(write)
    }

    fn contact_changed(&self, contact_id: &str, now: UnixMillis) -> StoreResult<()> {
        if caching_enabled(&self.writer.env) {
            mark_contact_changed(&self.writer.db, contact_id, now)?;
        }
        Ok(())
    }

    fn live_mapping(&self) -> Result<Option<Mapping>, String> {
        Ok(self.writer.live_mapping()?.map(|live| live.mapping.clone()))
    }
}

impl Api for Adapter<'_> {
    async fn token(&self, rejected: Option<&Secret>) -> Result<Secret, Failure> {
        let writer = self.writer;
        writer.tokens.access_token(&writer.env, &writer.db, rejected).await.map_err(token_failure)
    }

    async fn send(&self, token: &Secret, request: &ApiRequest) -> Result<(ApiResponse, RateHeaders), String> {
        let config = self.config;
        let client = ContactsClient { base_url: &config.api_base, token, timeout_ms: config.api_timeout_ms };
        client.send_raw(request).await.map_err(|failure| failure.to_string())
    }

    fn kept_custom_fields(&self) -> Option<Rc<Definitions>> {
        self.writer.known_custom_fields()
    }

    async fn read_custom_fields(&self) -> Result<Rc<Definitions>, ListError> {
        self.writer.read_custom_fields(self.config).await
    }
}

impl Clock for Adapter<'_> {
    fn now(&self) -> UnixMillis {
        now_ms()
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await
    }

    fn random(&self) -> f64 {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            return 0.5;
        }
        (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Outside for Adapter<'_> {
    fn info(&self, line: Value) {
        self.writer.log.info(line)
    }

    fn error(&self, line: Value) {
        self.writer.log.error(line)
    }

    async fn alert(&self, kind: AlertKind, text: &str) {
        let writer = self.writer;
        alerts::raise(&writer.db, &writer.log, &self.config.alerts, kind, text).await
    }

    async fn remember(&self, id: &str, record: &WebhookRecord) {
        remember(self.writer, id, record).await
    }

    fn chart(&self, change: &dyn Fn(&mut Bucket)) {
        self.writer.count(change)
    }
}

/// Copies a finished webhook's record to its KV idempotency key, so that a redelivery is
/// answered at the edge. Best effort: without it a redelivery costs a trip to the Durable
/// Object, which answers the same.
pub async fn remember(writer: &Writer, id: &str, record: &WebhookRecord) {
    let ttl_secs = (FINISHED_TTL_MS / 1_000) as u64;
    let written = match Kv::open(&writer.env) {
        Ok(kv) => kv.put(&writer.webhook_key(id), record, Some(ttl_secs)).await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = written {
        writer.log.info(json!({"msg": "idempotency key not written", "webhook_id": id, "error": error}));
    }
}
