//! The location's Durable Object (`Location`, SQLite-backed, one per Contacts API location): the
//! one writer for its location. It accepts webhooks in one transaction, keeps the queue, the dead
//! letters, the id maps and the counters ([`db`]), applies events one per contact at a time in
//! SightMill's order (the [`crate::engine`], through its [`ports`]), paces every Contacts API
//! call to the location's rate limit, renews the token in one place ([`tokens`]), raises [`alerts`], answers the
//! operator API ([`operator`]) and sends the read API's calls ([`reads`]). It works as one
//! [`connection`]: the default one, or the named one whose record the Directory pushed; every
//! line it logs names it ([`log`]).
//!
//! Only the Worker reaches it, through [`crate::shell::platform::object_stub`]; its routes are
//! internal. An alarm, set when a webhook is accepted, makes the first attempt; each cron run
//! wakes the default connection's (`/wake`) to work what is due (an idle wake reads a few rows
//! and writes nothing), and nudges a named one's (`/nudge`) only while the work record says its
//! work is due: a named connection tells the Directory when its queue fills and empties
//! ([`work_report`]).

mod alerts;
pub mod connection;
mod custom_fields;
mod db;
mod dry_run;
mod imports;
mod live_mapping;
mod log;
mod operator;
mod pickers;
mod ports;
pub mod reads;
pub mod tokens;
mod work_report;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::calls::{LocationCall, PendingPolicy, Sealed};
use crate::config::Config;
use crate::contacts_api::{ApiRequest, ApiResponse};
use crate::engine::tallies::Counter;
use crate::engine::{log_storage_error, Ended, Engine};
use crate::refusal::Refusal;
use crate::secret::Secret;
use crate::shell::platform::contacts_client::{ContactsClient, TransportFailure};
use crate::shell::platform::object_stub::called;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, settings};
use crate::sync::mapping::LiveMapping;
use crate::sync::metrics::{Bucket, Count, UnderWay};
use crate::sync::queue::{self, reply, Intake, FINISHED_TTL_MS};
use crate::sync::records::{webhook_key_of, CronRun};
use crate::sync::retry::RateHeaders;
use connection::{Identity, Row};
use db::{Db, DbError};
use live_mapping::Live;
use log::Log;
use tokens::Tokens;

/// Finished webhooks forgotten per run, at most (a week after they finished).
const FORGET_PER_RUN: u32 = 500;
/// The `meta` row of the last run that did something.
const LAST_RUN_KEY: &str = "last_run";
/// The key in the `last_run` row that keeps the charts' minute under way when the run ended: the
/// row is written anyway, so a restart or eviction loses no count and costs no extra row.
const CHARTS_MINUTE: &str = "charts_minute";

#[durable_object]
pub struct Location {
    writer: Writer,
    /// What the Location last told the Directory about its queue ([`work_report`]).
    work: work_report::WorkReports,
}

/// What the Durable Object keeps in memory beside its database: the engine (its pacing, the
/// contacts with an event being applied, the run under way), the token renewal under way, and
/// the copies of what it read.
pub struct Writer {
    env: Env,
    /// The object's name: its connection's (and location's) id.
    name: String,
    identity: RefCell<Identity>,
    log: Log,
    storage: worker::Storage,
    db: Db,
    tokens: Tokens,
    engine: Engine,
    /// The reads sent in the last 10 s, by key: the reads' budget ([`reads`]).
    reads: RefCell<crate::read::budget::ReadWindow>,
    /// When the alarm is set for, as far as this instance knows.
    alarm_at: Cell<Option<i64>>,
    requests: Cell<u64>,
    /// The charts' minute under way ([`crate::sync::metrics`]).
    metrics: RefCell<UnderWay>,
    /// The live mapping as last read or saved (`None`: not read yet; `Some(None)`: none saved).
    live_mapping: RefCell<Option<Option<Rc<Live>>>>,
    /// The location's custom fields as last read ([`custom_fields`]; `None`: not read yet).
    custom_fields: RefCell<Option<Rc<crate::sync::custom_fields::Definitions>>>,
}

impl DurableObject for Location {
    fn new(state: State, env: Env) -> Self {
        let db = Db::open(state.storage().sql())
            .unwrap_or_else(|error| panic!("the location's tables cannot be created: {error}"));
        let resumed = under_way(&db);
        let name = object_name(&state, &db, &env);
        let identity = Identity::read(&db, &env, &name);
        // A deployment whose settings are wrong answers every request with the error (see
        // `fetch`); until it is fixed these are never used.
        let cap = identity.config(&env).map_or(100, |config| config.cron.calls_per_10s);
        let log = Log::new(&name);
        let writer = Writer {
            tokens: Tokens::new(&name, log.clone(), identity.token_source()),
            env,
            name,
            identity: RefCell::new(identity),
            log,
            storage: state.storage(),
            db,
            engine: Engine::new(cap),
            reads: RefCell::new(Default::default()),
            alarm_at: Cell::new(None),
            requests: Cell::new(0),
            metrics: RefCell::new(UnderWay::resume(resumed)),
            live_mapping: RefCell::new(None),
            custom_fields: RefCell::new(None),
        };
        Location { writer, work: work_report::WorkReports::new(state.storage().sql()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.writer.requests.set(self.writer.requests.get() + 1);
        // The Worker's internal calls (under `/internal`) and the operator's routes (under
        // `/admin/`): the public router forwards only the latter.
        let call = called::<LocationCall>(&req);
        match call {
            Some(LocationCall::StoreConnection) => {
                return self.store_connection(json_body(&mut req).await?).await
            }
            Some(LocationCall::RemoveConnection { pending }) => return self.remove_connection(pending).await,
            _ => {}
        }
        let identity = self.writer.identity();
        let deployed = match identity.config(&self.writer.env) {
            Ok(config) => config,
            Err(refusal) => return refusal.response(),
        };
        let mut config = deployed.clone();
        let unusable = self.writer.use_live_mapping(&mut config).err();
        match call {
            // Accepting a webhook, installing a token and the operator API work whatever state
            // the live mapping is in (the operator mends it there; its status says why it is
            // unusable, and until then the deployed mapping stands in for dry runs).
            Some(LocationCall::Accept) => self.accept(&identity, json_body(&mut req).await?).await,
            Some(LocationCall::Nudge) => self.work.nudge(&self.writer, &identity).await,
            Some(LocationCall::InstallToken) => self.install_token(json_body(&mut req).await?).await,
            None if req.path().starts_with("/admin/") => operator::handle(&self.writer, &config, req).await,
            _ if unusable.is_some() => {
                let problem = unusable.unwrap_or_default();
                log_unusable_mapping(&self.writer.log, &problem);
                Refusal::unavailable("mapping_unusable", problem).response()
            }
            Some(LocationCall::Wake) => respond::json(200, &json!(self.run(&deployed, true).await)),
            Some(LocationCall::Read(read)) => reads::handle(&self.writer, &config, read, req).await,
            _ => Refusal::not_found("no such route in the location").response(),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.writer.requests.set(self.writer.requests.get() + 1);
        self.writer.alarm_at.set(None);
        if let Ok(deployed) = self.writer.identity().config(&self.writer.env) {
            // With an unusable live mapping nothing is applied; the next wake tries again.
            match self.writer.live_mapping() {
                Ok(_) => {
                    self.run(&deployed, false).await;
                }
                Err(problem) => log_unusable_mapping(&self.writer.log, &problem),
            }
        }
        Response::ok("")
    }
}

impl Location {
    /// Accepts a webhook in one transaction (its row, its counter) and makes sure the alarm will
    /// attempt it; a webhook already on record is answered from its record and changes nothing.
    async fn accept(&self, identity: &Identity, intake: Intake) -> Result<Response> {
        let db = &self.writer.db;
        let now = now_ms();
        if !still_admits(identity, &intake, now) {
            return Refusal::invalid_signature(
                "the secret this webhook was signed with is no longer valid for its connection",
            )
            .response();
        }
        let answer = match db.webhook(&intake.webhook_id) {
            Ok(Some(existing)) => reply(&intake.webhook_id, &existing, &intake.body_sha256, false),
            Ok(None) => {
                let record = intake.accept(now);
                let stored = db.insert_webhook(&intake.webhook_id, &intake.contact, intake.order_at, &record);
                if let Err(error) = stored {
                    return storage_unavailable(&self.writer.log, &error);
                }
                self.writer.count(|bucket| bucket.add(Count::Accepted, 1));
                if !self.writer.engine.running() && !identity.paused() {
                    self.writer.arm(now).await?;
                }
                self.work.filled(&self.writer, identity, now).await;
                reply(&intake.webhook_id, &record, &intake.body_sha256, true)
            }
            Err(error) => return storage_unavailable(&self.writer.log, &error),
        };
        respond::json(200, &json!(answer))
    }

    /// `PUT /connection` from the Directory: the named connection's record, sealed, kept as the
    /// `meta` row `connection`; from then on the object works as that connection. A change of
    /// token source drops the token kept for the old one; a resumed connection's alarm is armed.
    async fn store_connection(&self, pushed: Sealed) -> Result<Response> {
        let writer = &self.writer;
        if connection::is_default(&writer.env, &writer.name) {
            return Refusal::conflict("default_connection", "the default connection has no record to store")
                .response();
        }
        let connection = match connection::open(&writer.env, &writer.name, &pushed.envelope) {
            Ok(connection) => connection,
            Err(error) => return Refusal::bad_request("invalid_envelope", error).response(),
        };
        let before = writer.identity();
        if let Err(error) =
            writer.db.put_meta(connection::META_KEY, &Row::Sealed { envelope: pushed.envelope })
        {
            return storage_unavailable(&writer.log, &error);
        }
        if before.named().is_none_or(|old| old.token != connection.token) {
            writer.tokens.forget(&writer.db);
        }
        writer.tokens.set_source(Some(connection.token.clone()));
        let paused = connection.paused;
        writer
            .log
            .info(json!({"msg": "connection stored", "paused": paused, "token": connection.token.kind()}));
        *writer.identity.borrow_mut() = Identity::Named(Rc::new(connection));
        if !paused {
            self.arm_if_pending().await?;
        }
        respond::json(200, &json!({ "stored": true }))
    }

    /// `DELETE /connection?pending=discard|refuse` from the Directory: leaves a tombstone, so
    /// that later deliveries are refused, after discarding the webhooks not finished (refused
    /// with 409 `pending_events` when there are some and `refuse` was asked, the default).
    async fn remove_connection(&self, pending: PendingPolicy) -> Result<Response> {
        let writer = &self.writer;
        if connection::is_default(&writer.env, &writer.name) {
            return Refusal::conflict("default_connection", "the default connection cannot be removed")
                .response();
        }
        let discard = pending == PendingPolicy::Discard;
        let removed = writer.db.unfinished().and_then(|unfinished| {
            if !discard && !unfinished.is_empty() {
                return Ok(Err(unfinished.len()));
            }
            for id in &unfinished {
                if let Some(record) = writer.db.webhook(id)? {
                    if let Ok(finished) = queue::discard(record.clone(), now_ms()) {
                        writer.db.put_webhook(id, &record, &finished)?;
                    }
                }
            }
            writer.db.count(Counter::Discarded, unfinished.len() as i64);
            writer.db.settle()?;
            writer.db.put_meta(connection::META_KEY, &Row::Removed { removed_at_ms: now_ms() })?;
            Ok(Ok(unfinished.len()))
        });
        match removed {
            Ok(Ok(discarded)) => {
                writer.tokens.forget(&writer.db);
                *writer.identity.borrow_mut() = Identity::Removed;
                writer.log.info(json!({"msg": "connection removed", "discarded": discarded}));
                respond::json(200, &json!({ "removed": true, "discarded": discarded }))
            }
            Ok(Err(pending)) => Refusal::conflict(
                "pending_events",
                format!("{pending} webhooks are not finished; remove with ?pending=discard to discard them"),
            )
            .with("pending", pending)
            .response(),
            Err(error) => storage_unavailable(&writer.log, &error),
        }
    }

    async fn arm_if_pending(&self) -> Result<()> {
        let pending = self.writer.db.queue_figures(now_ms()).pending;
        if pending > 0 && !self.writer.engine.running() {
            self.writer.arm(now_ms()).await?;
        }
        Ok(())
    }

    async fn install_token(&self, envelope: crate::auth::envelope::Envelope) -> Result<Response> {
        match self.writer.tokens.install(&self.writer.env, &self.writer.db, envelope).await {
            Ok(()) => respond::json(200, &json!({ "stored": true })),
            Err(error) => Refusal::unavailable("token_not_stored", error.to_string()).response(),
        }
    }

    /// One run of the engine with the `deployed` configuration (the live mapping is asked for
    /// at each attempt), then the tidying: webhooks finished a week ago forgotten, the running
    /// counts settled, the charts' minute stored, the run recorded if it did anything, and the
    /// alarm set when the engine says to carry on.
    async fn run(&self, deployed: &Config, woken_by_cron: bool) -> CronRun {
        let writer = &self.writer;
        if writer.identity().paused() {
            return CronRun::default();
        }
        let adapter = ports::Adapter { writer, config: deployed };
        let Ended { tally, resume_at } = writer.engine.run(adapter.ports(), deployed).await;
        let now = now_ms();
        let tidied = writer
            .db
            .forget_finished(now - FINISHED_TTL_MS, FORGET_PER_RUN)
            .and_then(|()| writer.db.settle());
        if let Err(error) = tidied {
            log_storage_error(&adapter, "forget finished webhooks and settle the counts", &error);
        }
        writer.flush_metrics();
        let did_something =
            tally.finished + tally.retried + tally.waiting + tally.parked + tally.api_calls > 0;
        if did_something {
            writer.log.info(json!({"msg": "run", "cron": woken_by_cron, "run": tally}));
            let mut row = json!(tally);
            row[CHARTS_MINUTE] = json!(writer.metrics.borrow().current());
            if let Err(error) = writer.db.put_meta(LAST_RUN_KEY, &row) {
                log_storage_error(&adapter, "record the run", &error);
            }
        }
        if let Some(at) = resume_at {
            if let Err(error) = writer.arm(at).await {
                writer.log.error(json!({"msg": "alarm not set", "error": error.to_string()}));
            }
        }
        self.work.settled(writer).await;
        tally
    }
}

/// The `meta` row that remembers the object's name (its connection id).
const NAME_KEY: &str = "name";

/// The object's name: the one it was reached by, remembered, because an object that its alarm
/// wakes is not told its name (a named connection's object would otherwise take the default's
/// name and fail to open its own record). An object never reached by name yet (one created
/// before names were remembered, woken by its alarm) falls back to `GHL_LOCATION_ID`, until a
/// request names it.
fn object_name(state: &State, db: &Db, env: &Env) -> String {
    let stored = db.meta::<String>(NAME_KEY).ok().flatten();
    match state.id().name() {
        Some(name) => {
            if stored.as_deref() != Some(name.as_str()) {
                // Remembered for the next wake; should the write fail, this instance still knows it.
                let _ = db.put_meta(NAME_KEY, &name);
            }
            name
        }
        None => stored.or_else(|| settings(env).default_location().map(str::to_owned)).unwrap_or_default(),
    }
}

impl Writer {
    /// What this object is now; a record that could not be read is read again.
    fn identity(&self) -> Identity {
        if matches!(*self.identity.borrow(), Identity::Unreadable(_)) {
            let again = Identity::read(&self.db, &self.env, &self.name);
            self.tokens.set_source(again.token_source());
            *self.identity.borrow_mut() = again;
        }
        self.identity.borrow().clone()
    }

    /// The operator status's view of the connection: id, default or named, paused, token kind.
    fn connection_view(&self) -> serde_json::Value {
        let kind = self.tokens.kind(&self.env);
        self.identity().view(&self.name, kind)
    }

    /// The KV idempotency key of webhook `id` at this object's connection.
    pub(super) fn webhook_key(&self, id: &str) -> String {
        let named = self.identity.borrow().named().map(|connection| connection.id.to_string());
        webhook_key_of(named.as_deref(), id)
    }

    /// Sets the alarm for `at` unless it is already set for then or sooner, and still ahead. An
    /// alarm remembered as set for a time now past should have fired and cleared the memory; it
    /// is set again, because it may have been lost (seen when it was set at the end of a run
    /// inside an alarm's own handler), and trusting the memory would leave the queue waiting for
    /// a cron run.
    async fn arm(&self, at: i64) -> Result<()> {
        let now = now_ms();
        if self.alarm_at.get().is_some_and(|set| set <= at && set > now) {
            return Ok(());
        }
        let delay = (at - now).max(0) as u64;
        self.storage.set_alarm(Duration::from_millis(delay)).await?;
        self.alarm_at.set(Some(at));
        Ok(())
    }

    /// What this instance has cost since it started: requests (alarms included) and rows.
    fn usage(&self) -> serde_json::Value {
        self.db.usage(self.requests.get())
    }

    /// Sends one call (waiting for its slot when `paced`), and heeds its rate-limit headers.
    async fn send_raw(
        &self,
        config: &Config,
        token: &Secret,
        request: &ApiRequest,
        paced: bool,
    ) -> std::result::Result<ApiResponse, TransportFailure> {
        let now = now_ms();
        let slot = self.engine.pacing.take_slot(now);
        if paced && slot > now {
            worker::Delay::from(Duration::from_millis((slot - now) as u64)).await;
        }
        let client = ContactsClient { base_url: &config.api_base, token, timeout_ms: config.api_timeout_ms };
        let sent = client.send_raw(request).await;
        let rate = sent.as_ref().map(|(_, rate)| *rate).unwrap_or_else(|_| RateHeaders::default());
        self.engine.pacing.heed(&rate, now_ms());
        self.db.count(Counter::ApiCalls, 1);
        self.db.count(Counter::Api429, i64::from(rate.status == 429));
        self.count(|bucket| {
            bucket.add(Count::ApiCalls, 1);
            bucket.add(Count::Api429, u64::from(rate.status == 429));
        });
        sent.map(|(response, _)| response)
    }
}

impl Writer {
    /// Counts into the charts' minute under way; a minute that is over is folded into its
    /// stored rows first (two rows written, at most once a minute, never while idle).
    pub(super) fn count(&self, change: impl FnOnce(&mut Bucket)) {
        let done = self.metrics.borrow_mut().count(now_ms(), change);
        self.fold(done);
    }

    /// Folds the charts' minute counted if it is over (each run's end: the cron wakes the
    /// location every minute, so a minute is stored within about a minute of its end).
    fn flush_metrics(&self) {
        let done = self.metrics.borrow_mut().take_done(now_ms());
        self.fold(done);
    }

    /// A statistic that cannot be stored is logged and lost; it never stops what counted it.
    fn fold(&self, done: Option<Bucket>) {
        if let Some(Err(error)) = done.map(|done| self.db.fold_metrics(&done)) {
            self.log.error(json!({"msg": "storage error", "doing": "store the charts' last minute", "error": error.to_string()}));
        }
    }

    /// The charts at `now`: the stored rows and the minute under way (nothing is written).
    fn chart(&self, now: i64) -> db::DbResult<serde_json::Value> {
        let rows = self.db.metrics()?;
        Ok(crate::sync::metrics::chart(&rows, self.metrics.borrow().current(), now))
    }

    /// The one rule for which mapping applies: the live mapping when one is saved, else the
    /// deployed one, already in `config`. When the live mapping cannot be used, `config` keeps
    /// the deployed one and the answer says why; nothing may be applied then, since the deployed
    /// mapping would write other fields than the operator chose.
    fn use_live_mapping(&self, config: &mut Config) -> std::result::Result<(), String> {
        if let Some(live) = self.live_mapping()? {
            config.mapping = live.mapping.clone();
        }
        Ok(())
    }

    /// The live mapping (`None`: the deployed one applies), read once and kept until it is saved
    /// or removed. A row that cannot be read or no longer parses (a later deployment's parser,
    /// say) is an error, never taken for "no live mapping".
    fn live_mapping(&self) -> std::result::Result<Option<Rc<Live>>, String> {
        if let Some(known) = self.live_mapping.borrow().clone() {
            return Ok(known);
        }
        let saved = self
            .db
            .meta::<serde_json::Value>(live_mapping::META_KEY)
            .map_err(|error| format!("the live mapping could not be read: {error}"))?;
        let live = match saved {
            None => None,
            Some(value) => {
                let saved = LiveMapping::from_json(&value)
                    .ok_or_else(|| "the stored live mapping is not a saved mapping".to_owned())?;
                let mapping = saved
                    .mapping()
                    .map_err(|error| format!("the stored live mapping no longer parses: {error}"))?;
                Some(Rc::new(Live { saved, mapping }))
            }
        };
        *self.live_mapping.borrow_mut() = Some(live.clone());
        Ok(live)
    }

    fn set_live_mapping(&self, live: Option<Live>) {
        *self.live_mapping.borrow_mut() = Some(live.map(Rc::new));
    }
}

/// The charts' minute the last run left under way, unless it was stored in the ring already (a
/// minute is folded in once, when it is over).
fn under_way(db: &Db) -> Option<Bucket> {
    let row: Option<serde_json::Value> = db.meta(LAST_RUN_KEY).ok().flatten();
    let minute: Bucket = serde_json::from_value(row?.get(CHARTS_MINUTE)?.clone()).ok()?;
    let stored = db.metrics_row(crate::sync::metrics::minute_slot(minute.start)).ok()?;
    let folded = stored.is_some_and(|stored| stored.start == minute.start);
    (!folded).then_some(minute)
}

/// The JSON body of an internal route, which the Worker wrote with serde_json. Parsed with
/// serde_json too: `Request::json` goes through a JavaScript object and `serde_wasm_bindgen`,
/// a second deserialiser for every type read.
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T> {
    let body = req.bytes().await?;
    serde_json::from_slice(&body).map_err(|error| worker::Error::RustError(error.to_string()))
}

/// The alert line of a run or read that stopped because the live mapping is unusable.
fn log_unusable_mapping(log: &Log, problem: &str) {
    log.error(
        json!({"msg": "live mapping unusable; nothing is applied until it is saved again or removed", "alert": true, "error": problem}),
    );
}

/// Whether the delivery the edge admitted still stands here: a named connection's with a
/// secret its own copy still holds valid (a revoked one stops at once, whatever the edge's cache
/// held), the default connection's with none.
fn still_admits(identity: &Identity, intake: &Intake, now: i64) -> bool {
    match (identity, &intake.verified_with) {
        (Identity::Named(connection), Some(fingerprint)) => connection.accepts_fingerprint(fingerprint, now),
        (Identity::Default, None) => true,
        _ => false,
    }
}

/// The checked configuration, or the 500 that says which setting is wrong.
pub fn load_config(env: &Env) -> std::result::Result<Config, Refusal> {
    settings(env).config().map_err(Refusal::misconfigured)
}

fn storage_unavailable(log: &Log, error: &DbError) -> Result<Response> {
    log.error(json!({"msg": "storage error", "doing": "accept a webhook", "error": error.to_string()}));
    Refusal::storage_unavailable("the webhook could not be recorded; deliver it again").response()
}
