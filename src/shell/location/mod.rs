//! The location's Durable Object (`Location`, SQLite-backed, one per Contacts API location): the
//! one writer for its location. It accepts webhooks in one transaction, keeps the queue, the dead
//! letters, the id maps and the counters ([`db`]), applies events one per contact at a time in
//! SightMill's order ([`runner`]), paces every Contacts API call to the location's rate limit
//! ([`pacing`]), renews the token in one place ([`tokens`]), raises [`alerts`], answers the
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

mod actions;
mod alerts;
pub mod connection;
mod custom_fields;
mod db;
mod live_mapping;
mod log;
mod operator;
mod pacing;
mod pickers;
pub mod reads;
mod runner;
pub mod tokens;
mod work_report;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use worker::{console_error, durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use crate::auth::envelope::Envelope;
use crate::config::Config;
use crate::contacts_api::{classify, Answer, ApiRequest, ApiResponse};
use crate::secret::Secret;
use crate::shell::platform::contacts_client::{ContactsClient, TransportFailure};
use crate::shell::platform::object_stub::INTERNAL;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, setting};
use crate::sync::mapping::LiveMapping;
use crate::sync::metrics::{Bucket, Count, UnderWay};
use crate::sync::queue::{self, reply, Intake, FINISHED_TTL_MS};
use crate::sync::records::{webhook_key_of, CronRun};
use crate::sync::retry::RateHeaders;
use connection::{Identity, Row};
use db::{Db, DbError, Listed};
use live_mapping::Live;
use log::Log;
use pacing::Pacing;
use tokens::Tokens;

/// Finished webhooks forgotten per run, at most (a week after they finished).
const FORGET_PER_RUN: u32 = 500;
/// How often a second run looks whether the first has finished.
const RUN_POLL_MS: u64 = 25;
/// Candidates one scan of the queue finds at most.
const READY_BATCH: u32 = 64;
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

/// What the Durable Object keeps in memory beside its database: which contacts have an event
/// being applied, the pacing, the token renewal under way, and whether a run is going.
pub struct Writer {
    env: Env,
    /// The object's name: its connection's (and location's) id.
    name: String,
    identity: RefCell<Identity>,
    log: Log,
    storage: worker::Storage,
    db: Db,
    tokens: Tokens,
    pacing: Pacing,
    /// The reads sent in the last 10 s, by key: the reads' budget ([`reads`]).
    reads: RefCell<crate::read::budget::ReadWindow>,
    /// The contacts with an event being applied (a few at most: a list, not a set, whose
    /// hashing code would weigh on the Wasm).
    busy: RefCell<Vec<String>>,
    /// Candidates from the last scan of the queue, checked again when taken.
    ready: RefCell<VecDeque<String>>,
    running: Cell<bool>,
    /// When the alarm is set for, as far as this instance knows.
    alarm_at: Cell<Option<i64>>,
    requests: Cell<u64>,
    /// Contacts API calls (and 429s among them) not yet added to the counters.
    unflushed_calls: Cell<(i64, i64)>,
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
            pacing: Pacing::new(cap),
            reads: RefCell::new(Default::default()),
            busy: RefCell::new(Vec::new()),
            ready: RefCell::new(VecDeque::new()),
            running: Cell::new(false),
            alarm_at: Cell::new(None),
            requests: Cell::new(0),
            unflushed_calls: Cell::new((0, 0)),
            metrics: RefCell::new(UnderWay::resume(resumed)),
            live_mapping: RefCell::new(None),
            custom_fields: RefCell::new(None),
        };
        Location { writer, work: work_report::WorkReports::new(state.storage().sql()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.writer.requests.set(self.writer.requests.get() + 1);
        let path = req.path();
        // The Worker's internal routes (under `/internal`) and the operator's (under `/admin/`):
        // the public router forwards only the latter.
        let internal = path.strip_prefix(INTERNAL);
        match (req.method(), internal) {
            (Method::Put, Some("/connection")) => {
                return self.store_connection(json_body(&mut req).await?).await
            }
            (Method::Delete, Some("/connection")) => return self.remove_connection(&req).await,
            _ => {}
        }
        let identity = self.writer.identity();
        let mut config = match identity.config(&self.writer.env) {
            Ok(config) => config,
            Err(response) => return response,
        };
        let unusable = self.writer.use_live_mapping(&mut config).err();
        match (req.method(), internal) {
            // Accepting a webhook, installing a token and the operator API work whatever state
            // the live mapping is in (the operator mends it there; its status says why it is
            // unusable, and until then the deployed mapping stands in for dry runs).
            (Method::Post, Some("/accept")) => self.accept(&identity, json_body(&mut req).await?).await,
            (Method::Post, Some("/nudge")) => self.work.nudge(&self.writer, &identity).await,
            (Method::Post, Some("/token")) => self.install_token(json_body(&mut req).await?).await,
            (_, None) if path.starts_with("/admin/") => operator::handle(&self.writer, &config, req).await,
            _ if unusable.is_some() => {
                let problem = unusable.unwrap_or_default();
                log_unusable_mapping(&self.writer.log, &problem);
                respond::error(503, "mapping_unusable", problem)
            }
            (Method::Post, Some("/wake")) => respond::json(200, &json!(self.run(&config, true).await)),
            (_, Some(route)) if route.starts_with("/read/") => {
                let route = route.to_owned();
                reads::handle(&self.writer, &config, &route, req).await
            }
            _ => respond::error(404, "not_found", "no such route in the location"),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.writer.requests.set(self.writer.requests.get() + 1);
        self.writer.alarm_at.set(None);
        if let Ok(mut config) = self.writer.identity().config(&self.writer.env) {
            // With an unusable live mapping nothing is applied; the next wake tries again.
            match self.writer.use_live_mapping(&mut config) {
                Ok(()) => {
                    self.run(&config, false).await;
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
            return respond::error(
                401,
                "invalid_signature",
                "the secret this webhook was signed with is no longer valid for its connection",
            );
        }
        let answer = match db.webhook(&intake.webhook_id) {
            Ok(Some(existing)) => reply(&intake.webhook_id, &existing, &intake.body_sha256, false),
            Ok(None) => {
                let record = intake.accept(now);
                let stored = db
                    .insert_webhook(&intake.webhook_id, &intake.contact, intake.order_at, &record)
                    .and_then(|()| db.bump("accepted"));
                if let Err(error) = stored {
                    return storage_unavailable(&self.writer.log, &error);
                }
                self.writer.count(|bucket| bucket.add(Count::Accepted, 1));
                if !self.writer.running.get() && !identity.paused() {
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
    async fn store_connection(&self, pushed: Pushed) -> Result<Response> {
        let writer = &self.writer;
        if connection::is_default(&writer.env, &writer.name) {
            return respond::error(
                409,
                "default_connection",
                "the default connection has no record to store",
            );
        }
        let connection = match connection::open(&writer.env, &writer.name, &pushed.envelope) {
            Ok(connection) => connection,
            Err(error) => return respond::error(400, "invalid_envelope", error),
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
    async fn remove_connection(&self, req: &Request) -> Result<Response> {
        let writer = &self.writer;
        if connection::is_default(&writer.env, &writer.name) {
            return respond::error(409, "default_connection", "the default connection cannot be removed");
        }
        let discard =
            crate::auth::install::query_param(&req.inner().url(), "pending").as_deref() == Some("discard");
        let removed = writer.db.unfinished().and_then(|unfinished| {
            if !discard && !unfinished.is_empty() {
                return Ok(Err(unfinished.len()));
            }
            for id in &unfinished {
                if let Some(finished) =
                    writer.db.webhook(id)?.and_then(|record| queue::discard(record, now_ms()).ok())
                {
                    writer.db.put_webhook(id, &finished)?;
                }
            }
            writer.db.add("discarded", unfinished.len() as i64)?;
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
            Ok(Err(pending)) => respond::json(
                409,
                &json!({ "error": "pending_events", "pending": pending,
                         "message": format!("{pending} webhooks are not finished; remove with ?pending=discard to discard them") }),
            ),
            Err(error) => storage_unavailable(&writer.log, &error),
        }
    }

    async fn arm_if_pending(&self) -> Result<()> {
        let pending = self.writer.db.queue_figures(now_ms()).map(|figures| figures.pending).unwrap_or(1);
        if pending > 0 && !self.writer.running.get() {
            self.writer.arm(now_ms()).await?;
        }
        Ok(())
    }

    async fn install_token(&self, envelope: Envelope) -> Result<Response> {
        match self.writer.tokens.install(&self.writer.env, &self.writer.db, envelope).await {
            Ok(()) => respond::json(200, &json!({ "stored": true })),
            Err(error) => respond::error(503, "token_not_stored", error.to_string()),
        }
    }

    /// One run: waits for a run under way to end, works what is due, forgets webhooks finished
    /// a week ago, raises the pending-age alert, records the run if it did anything, and sets
    /// the alarm when work is left due now (budget spent) or a short block ends.
    async fn run(&self, config: &Config, woken_by_cron: bool) -> CronRun {
        if self.writer.identity().paused() {
            return CronRun::default();
        }
        while self.writer.running.get() {
            worker::Delay::from(Duration::from_millis(RUN_POLL_MS)).await;
        }
        self.writer.running.set(true);
        let now = now_ms();
        let figures = self.writer.db.queue_figures(now).unwrap_or_default();
        let mut tally = runner::Run::new(&self.writer, config, now).work().await;
        tally.pending = figures.pending as u32;
        tally.due = figures.due_now as u32;
        tally.oldest_pending_age_secs = figures.oldest_accepted_at.map(|at| (now - at) / 1_000);
        // Only webhooks that head their contact count: one behind a head that waits for a retry
        // is due but cannot be worked, and counting it re-armed the alarm at once, again and again.
        match self.writer.db.due_heads_count(now_ms()) {
            Ok(left) => tally.left_for_next_run = left as u32,
            Err(error) => runner::log_storage_error(&self.writer.log, "count what the run left due", &error),
        }
        self.writer.running.set(false);
        let tidied = self
            .writer
            .flush_calls()
            .and_then(|()| self.writer.db.forget_finished(now - FINISHED_TTL_MS, FORGET_PER_RUN));
        self.writer.flush_metrics();
        if let Err(error) = tidied {
            runner::log_storage_error(
                &self.writer.log,
                "flush the counters and forget finished webhooks",
                &error,
            );
        }
        self.after_run(config, &tally, woken_by_cron).await;
        self.work.settled(&self.writer).await;
        tally
    }

    async fn after_run(&self, config: &Config, tally: &CronRun, woken_by_cron: bool) {
        if let Some(age) =
            tally.oldest_pending_age_secs.filter(|age| *age as u64 > config.alerts.pending_age_secs)
        {
            let text = format!("{} webhooks pending; the oldest for {age} s", tally.pending);
            alerts::raise(
                &self.writer.db,
                &self.writer.log,
                &config.alerts,
                alerts::AlertKind::PendingAge,
                &text,
            )
            .await;
        }
        let did_something =
            tally.finished + tally.retried + tally.waiting + tally.parked + tally.api_calls > 0;
        if did_something {
            self.writer.log.info(json!({"msg": "run", "cron": woken_by_cron, "run": tally}));
            let mut row = json!(tally);
            row[CHARTS_MINUTE] = json!(self.writer.metrics.borrow().current());
            if let Err(error) = self.writer.db.put_meta(LAST_RUN_KEY, &row) {
                runner::log_storage_error(&self.writer.log, "record the run", &error);
            }
        }
        let now = now_ms();
        let resume = (tally.left_for_next_run > 0).then(|| self.writer.pacing.blocked(now).unwrap_or(now));
        if let Some(at) = resume {
            if let Err(error) = self.writer.arm(at).await {
                self.writer.log.error(json!({"msg": "alarm not set", "error": error.to_string()}));
            }
        }
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
        None => stored.or_else(|| setting(env, "GHL_LOCATION_ID")).unwrap_or_default(),
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

    /// Sets the alarm for `at` unless it is already set for then or sooner.
    async fn arm(&self, at: i64) -> Result<()> {
        if self.alarm_at.get().is_some_and(|set| set <= at) {
            return Ok(());
        }
        let delay = (at - now_ms()).max(0) as u64;
        self.storage.set_alarm(Duration::from_millis(delay)).await?;
        self.alarm_at.set(Some(at));
        Ok(())
    }

    /// The next due webhook that heads its contact's order and whose contact has no event being
    /// applied; its contact is then busy until [`Writer::release`]. Candidates come from one scan
    /// of the queue at a time ([`READY_BATCH`] of them, kept in memory), each checked again when
    /// taken, so that a burst costs a scan per batch rather than per event. A row that cannot be
    /// read is taken out of the queue (kept as `unreadable`) and reported.
    fn take_next(&self, now: i64) -> db::DbResult<Option<Listed>> {
        let mut scanned = false;
        loop {
            let candidate = self.ready.borrow_mut().pop_front();
            let Some(id) = candidate else {
                if scanned {
                    return Ok(None);
                }
                let heads = self.db.due_heads(now, READY_BATCH)?;
                if heads.is_empty() {
                    return Ok(None);
                }
                self.ready.borrow_mut().extend(heads);
                scanned = true;
                continue;
            };
            match self.db.due_head(&id, now) {
                Ok(Some(listed)) if !self.busy.borrow().contains(&listed.record.sightmill_id) => {
                    self.busy.borrow_mut().push(listed.record.sightmill_id.clone());
                    return Ok(Some(listed));
                }
                Ok(_) => {}
                Err(DbError::Unreadable(what, error)) => {
                    self.log.error(
                        json!({"msg": "unreadable webhook taken out of the queue", "alert": true, "record": what, "error": error}),
                    );
                    self.db.set_unreadable(&id)?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// What this instance has cost since it started: requests (alarms included) and rows.
    fn usage(&self) -> serde_json::Value {
        self.db.usage(self.requests.get())
    }

    fn release(&self, contact: &str) {
        self.busy.borrow_mut().retain(|busy| busy != contact);
    }

    fn any_busy(&self) -> bool {
        !self.busy.borrow().is_empty()
    }

    /// Sends one call of an event, paced, and reads its answer; the answer's rate-limit headers
    /// teach the pacing.
    async fn send(&self, config: &Config, token: &Secret, request: &ApiRequest) -> Answer {
        match self.send_raw(config, token, request, true).await {
            Ok(response) => classify(&response),
            Err(failure) => Answer::transport_failure(failure.to_string()),
        }
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
        let slot = self.pacing.take_slot(now);
        if paced && slot > now {
            worker::Delay::from(Duration::from_millis((slot - now) as u64)).await;
        }
        let client = ContactsClient { base_url: &config.api_base, token, timeout_ms: config.api_timeout_ms };
        let sent = client.send_raw(request).await;
        let rate = sent.as_ref().map(|(_, rate)| *rate).unwrap_or_else(|_| RateHeaders::default());
        self.pacing.heed(&rate, now_ms());
        let (calls, too_many) = self.unflushed_calls.get();
        self.unflushed_calls.set((calls + 1, too_many + i64::from(rate.status == 429)));
        self.count(|bucket| {
            bucket.add(Count::ApiCalls, 1);
            bucket.add(Count::Api429, u64::from(rate.status == 429));
        });
        sent.map(|(response, _)| response)
    }

    /// Adds the calls made since the last flush to the counters: one write per run rather than
    /// one per call (a restart loses at most a run's worth of this statistic).
    pub(super) fn flush_calls(&self) -> db::DbResult<()> {
        let (calls, too_many) = self.unflushed_calls.take();
        if calls > 0 {
            self.db.add("api_calls", calls)?;
        }
        if too_many > 0 {
            self.db.add("api_429", too_many)?;
        }
        Ok(())
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
            runner::log_storage_error(&self.log, "store the charts' last minute", &error);
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

/// The body of `PUT /connection`.
#[derive(serde::Deserialize)]
struct Pushed {
    envelope: Envelope,
}

/// The checked configuration, or the 500 that says which setting is wrong.
pub fn load_config(env: &Env) -> std::result::Result<Config, Result<Response>> {
    Config::from_lookup(|name| setting(env, name)).map_err(|error| {
        console_error!("{}", json!({"msg": "configuration error", "error": error.to_string()}));
        respond::error(500, "misconfigured", error.to_string())
    })
}

fn storage_unavailable(log: &Log, error: &DbError) -> Result<Response> {
    runner::log_storage_error(log, "accept a webhook", error);
    respond::error(503, "storage_unavailable", "the webhook could not be recorded; deliver it again")
}
