//! The location engine: what moves a webhook from one state to the next inside its location's
//! one writer. A run takes the next due webhook in its contact's order (one event per contact at
//! a time, in SightMill's order), attempts it ([`attempt`]: plan, paced calls, the token renewal
//! and its resend, the actions its rules fire), and records the transition the queue's rules say
//! it makes ([`transition`]: the writes, the row, the counts and the log line, once), within the
//! run's budget of time and calls. It works through four small [`ports`], so that the Durable
//! Object is an adapter and the engine is tested natively with ports in memory.

mod actions;
mod attempt;
pub mod custom_fields;
pub mod pacing;
pub mod ports;
pub mod tallies;
mod transition;

// The native tests (their executor is a native dev-dependency).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod memory;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use futures_util::lock::Mutex;
use serde_json::json;

pub use actions::planned as planned_actions;
use pacing::Pacing;
use ports::{AlertKind, Api, Clock, Lane, Listed, Outside, Ports, Store, StoreError, StoreResult};
use tallies::Counter;

use crate::config::Config;
use crate::sync::metrics::Count;
use crate::sync::plan::MAX_CALLS;
use crate::sync::records::{CronRun, WebhookRecord};
use crate::timestamp::UnixMillis;

/// Events applied at once (each about a different contact): enough to keep the location at its
/// rate limit while answers take a few hundred milliseconds.
const WORKERS: usize = 4;
/// Longest rate-limit block a run waits out; a longer one ends the run (an alarm resumes it).
const MAX_BLOCK_WAIT_MS: i64 = 15_000;
/// How often an idle worker looks again while others still apply events (the next event of
/// their contact may become due when they finish).
const IDLE_POLL_MS: u64 = 20;
/// Candidates one scan of the queue finds at most.
const READY_BATCH: u32 = 64;
/// How long a worker waits for room in the rate limit's window when only the import has work.
const IMPORT_POLL_MS: u64 = 250;

/// What the engine keeps in memory between runs: the pacing, the candidates of the last scan,
/// the contacts with an event being applied, and the lock that keeps runs one at a time.
pub struct Engine {
    pub pacing: Pacing,
    /// Candidates from the last scan of the queue, checked again when taken.
    ready: RefCell<VecDeque<String>>,
    /// Candidates from the last scan of the running import's rows.
    ready_import: RefCell<VecDeque<String>>,
    /// The contacts with an event being applied (a few at most: a list, not a set).
    busy: RefCell<Vec<String>>,
    run_lock: Mutex<()>,
    running: Cell<bool>,
}

/// The engine's `running` flag while a run is under way, cleared when the run ends or is
/// dropped (its request cancelled): a flag left set would stop acceptances arming the alarm.
struct Running<'a>(&'a Cell<bool>);

impl<'a> Running<'a> {
    fn set(flag: &'a Cell<bool>) -> Running<'a> {
        flag.set(true);
        Running(flag)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// How a run ended: its tally, and when the next run should start (`None`: nothing is left due;
/// the cron or an acceptance starts the next).
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub tally: CronRun,
    pub resume_at: Option<UnixMillis>,
}

impl Engine {
    /// `calls_per_10s`: the most calls per 10 s the operator allows (`RATE_LIMIT_PER_10S`).
    pub fn new(calls_per_10s: u32) -> Engine {
        Engine {
            pacing: Pacing::new(calls_per_10s),
            ready: RefCell::new(VecDeque::new()),
            ready_import: RefCell::new(VecDeque::new()),
            busy: RefCell::new(Vec::new()),
            run_lock: Mutex::new(()),
            running: Cell::new(false),
        }
    }

    /// Whether a run is under way (an acceptance then need not arm the alarm: the run takes it).
    pub fn running(&self) -> bool {
        self.running.get()
    }

    /// One run, after any run under way has ended: works what is due with the `deployed`
    /// configuration (the live mapping, when saved, is asked for at each attempt), raises the
    /// pending-age alert, and says when to carry on.
    pub async fn run<S: Store, A: Api, C: Clock, O: Outside>(
        &self,
        ports: Ports<'_, S, A, C, O>,
        deployed: &Config,
    ) -> Ended {
        let _one_at_a_time = self.run_lock.lock().await;
        let running = Running::set(&self.running);
        let now = ports.clock.now();
        let before = ports.store.queue_figures(now);
        let run = Run::new(self, ports, deployed, now);
        let mut tally = run.work().await;
        tally.pending = before.pending as u32;
        tally.due = before.due_now as u32;
        tally.oldest_pending_age_secs = before.oldest_accepted_at.map(|at| (now - at) / 1_000);
        let end = ports.clock.now();
        // Only webhooks that head their contact count: one behind a head that waits for a retry
        // is due but cannot be worked, and counting it would re-arm the alarm at once, again
        // and again. The candidates the run's last scan left are counted without a read; when
        // there are none, one row says whether any is due.
        let scanned = self.ready.borrow().len();
        tally.left_for_next_run = match scanned {
            0 => ports.store.due_heads(end, 1).map_or_else(
                |error| {
                    log_storage_error(ports.outside, "count what the run left due", &error);
                    0
                },
                |left| left.len() as u32,
            ),
            scanned => scanned as u32,
        };
        drop(running);
        if let Some(age) =
            tally.oldest_pending_age_secs.filter(|age| *age as u64 > deployed.alerts.pending_age_secs)
        {
            let text = format!("{} webhooks pending; the oldest for {age} s", tally.pending);
            ports.outside.alert(AlertKind::PendingAge, &text).await;
        }
        let live = (tally.left_for_next_run > 0).then(|| self.pacing.blocked(end).unwrap_or(end));
        Ended { tally, resume_at: live.or_else(|| self.import_resume(ports.store, end)) }
    }

    /// When the running import's rows should be worked again, if any are left due: at once, or
    /// when the location's block or the import's stop for the day ends.
    fn import_resume<S: Store>(&self, store: &S, now: UnixMillis) -> Option<UnixMillis> {
        let left = store.import_heads(now, 1).is_ok_and(|heads| !heads.is_empty());
        let waits = self.pacing.import_stopped_until(now).or(self.pacing.blocked(now));
        left.then(|| waits.unwrap_or(now))
    }
}

/// One run: its budget and tally, shared by its workers.
struct Run<'a, S, A, C, O> {
    engine: &'a Engine,
    ports: Ports<'a, S, A, C, O>,
    config: &'a Config,
    deadline: UnixMillis,
    tally: RefCell<CronRun>,
    /// Attempts under way: each may still make up to `MAX_CALLS` calls.
    in_flight: Cell<u32>,
}

/// An attempt under way: the webhook, its record as taken, and when it started.
struct Attempt<'r> {
    id: &'r str,
    lane: Lane,
    record: WebhookRecord,
    started: UnixMillis,
    /// Calls made so far for this event.
    calls: u32,
}

/// What a worker takes next.
enum Taken {
    Next(Lane, Box<Listed>),
    /// Nothing live is due and the import's rows wait for room in the rate limit's window.
    ImportWaitsForRoom,
    Nothing,
}

/// How a run left one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Finished,
    Retry,
    Waiting,
    Parked,
}

impl<'a, S: Store, A: Api, C: Clock, O: Outside> Run<'a, S, A, C, O> {
    fn new(engine: &'a Engine, ports: Ports<'a, S, A, C, O>, config: &'a Config, now: UnixMillis) -> Self {
        Run {
            engine,
            ports,
            config,
            deadline: now + i64::from(config.cron.time_budget_ms),
            tally: RefCell::new(CronRun { started_at: now, ..CronRun::default() }),
            in_flight: Cell::new(0),
        }
    }

    fn now(&self) -> UnixMillis {
        self.ports.clock.now()
    }

    /// Works what is due until nothing is, or the budget (time, calls) is spent; returns the tally.
    async fn work(self) -> CronRun {
        let workers = (0..WORKERS).map(|_| self.worker());
        futures_util::future::join_all(workers).await;
        let mut tally = self.tally.into_inner();
        tally.finished_at = self.ports.clock.now();
        tally
    }

    fn calls(&self) -> u32 {
        self.tally.borrow().api_calls
    }

    /// Whether another attempt fits: the calls made, those the attempts under way may still
    /// make, and its own stay within the run's calls (the platform's subrequests per invocation),
    /// and its time is not up.
    fn has_budget(&self) -> bool {
        let reserved = MAX_CALLS * (self.in_flight.get() + 1);
        self.calls() + reserved <= self.config.cron.max_api_calls && self.now() < self.deadline
    }

    /// One worker: takes the next eligible webhook (or, when no live one is due, the running
    /// import's next row), applies it, and again.
    async fn worker(&self) {
        while self.has_budget() {
            if !self.wait_out_block().await || !self.has_budget() {
                break;
            }
            let taken = match self.take_next(self.now()) {
                Ok(taken) => taken,
                Err(error) => return log_storage_error(self.ports.outside, "take the next webhook", &error),
            };
            let (lane, Listed { id, record }) = match taken {
                Taken::Next(lane, listed) => (lane, *listed),
                Taken::ImportWaitsForRoom => {
                    self.ports.clock.sleep(IMPORT_POLL_MS).await;
                    continue;
                }
                Taken::Nothing if !self.engine.busy.borrow().is_empty() => {
                    self.ports.clock.sleep(IDLE_POLL_MS).await;
                    continue;
                }
                Taken::Nothing => break,
            };
            let contact = record.sightmill_id.clone();
            self.in_flight.set(self.in_flight.get() + 1);
            let ran = self.attempt(&id, lane, record).await;
            self.in_flight.set(self.in_flight.get() - 1);
            self.engine.busy.borrow_mut().retain(|busy| *busy != contact);
            match ran {
                Ok(ran) => self.count(ran),
                Err(error) => {
                    return log_storage_error(self.ports.outside, &format!("record webhook {id}"), &error)
                }
            }
        }
    }

    /// The next record to attempt: a live webhook when one is due, else a row of the running
    /// import when the rate limit's window has room beyond what it leaves to live webhooks.
    fn take_next(&self, now: UnixMillis) -> StoreResult<Taken> {
        let store = self.ports.store;
        let live = |limit| store.due_heads(now, limit);
        if let Some(listed) = self.take_from(Lane::Live, live, |id| store.due_head(id, now))? {
            return Ok(Taken::Next(Lane::Live, Box::new(listed)));
        }
        if !self.engine.pacing.import_may_send(now) {
            let waiting = self.engine.pacing.import_stopped_until(now).is_none()
                && !self.engine.ready_import.borrow().is_empty();
            return Ok(if waiting { Taken::ImportWaitsForRoom } else { Taken::Nothing });
        }
        let import = |limit| store.import_heads(now, limit);
        let taken = self.take_from(Lane::Import, import, |id| store.import_head(id, now))?;
        Ok(taken.map_or(Taken::Nothing, |listed| Taken::Next(Lane::Import, Box::new(listed))))
    }

    /// The next candidate of the lane's ready list (refilled by one `scan` when empty) that `check` still
    /// finds eligible and whose contact has no event being applied; its contact is then busy
    /// until the attempt ends. Candidates come from one scan at a time ([`READY_BATCH`] of them,
    /// kept in memory), each checked again when taken, so that a burst costs a scan per batch
    /// rather than per event. A row that cannot be read is taken out (kept as `unreadable`).
    fn take_from(
        &self,
        lane: Lane,
        scan: impl Fn(u32) -> StoreResult<Vec<String>>,
        check: impl Fn(&str) -> StoreResult<Option<Listed>>,
    ) -> StoreResult<Option<Listed>> {
        let ready = match lane {
            Lane::Live => &self.engine.ready,
            Lane::Import => &self.engine.ready_import,
        };
        let mut scanned = false;
        loop {
            let candidate = ready.borrow_mut().pop_front();
            let Some(id) = candidate else {
                if scanned {
                    return Ok(None);
                }
                let heads = scan(READY_BATCH)?;
                if heads.is_empty() {
                    return Ok(None);
                }
                ready.borrow_mut().extend(heads);
                scanned = true;
                continue;
            };
            match check(&id) {
                Ok(Some(listed)) if !self.engine.busy.borrow().contains(&listed.record.sightmill_id) => {
                    self.engine.busy.borrow_mut().push(listed.record.sightmill_id.clone());
                    return Ok(Some(listed));
                }
                Ok(_) => {}
                Err(StoreError::Unreadable(what, error)) => {
                    self.ports.outside.error(
                        json!({"msg": "unreadable webhook taken out of the queue", "alert": true, "record": what, "error": error}),
                    );
                    self.ports.store.set_unreadable(lane, &id)?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Waits out a short rate-limit block; `false` when the block outlasts what a run waits for.
    async fn wait_out_block(&self) -> bool {
        let now = self.now();
        match self.engine.pacing.blocked(now) {
            None => true,
            Some(until) if until < self.deadline && until - now <= MAX_BLOCK_WAIT_MS => {
                self.ports.clock.sleep((until - now) as u64).await;
                true
            }
            Some(_) => {
                self.tally.borrow_mut().deferred += 1;
                false
            }
        }
    }

    fn count(&self, ran: Ran) {
        let mut tally = self.tally.borrow_mut();
        match ran {
            Ran::Finished => tally.finished += 1,
            Ran::Retry => tally.retried += 1,
            Ran::Waiting => tally.waiting += 1,
            Ran::Parked => tally.parked += 1,
        }
    }

    /// Sends one call, paced to the location's rate limit: waits out a short block and for its
    /// slot, sends it, lets its rate-limit headers teach the pacing, and counts it.
    async fn send(
        &self,
        token: &crate::secret::Secret,
        request: &crate::contacts_api::ApiRequest,
    ) -> Result<crate::contacts_api::ApiResponse, String> {
        // A block set while this event was under way (a 429 to another event's call) is waited
        // out when it is short; a longer one is left to the API to answer with its own 429.
        let now = self.now();
        if let Some(until) = self.engine.pacing.blocked(now).filter(|until| until - now <= MAX_BLOCK_WAIT_MS)
        {
            self.ports.clock.sleep((until - now) as u64).await;
        }
        let now = self.now();
        let slot = self.engine.pacing.take_slot(now);
        if slot > now {
            self.ports.clock.sleep((slot - now) as u64).await;
        }
        let sent = self.ports.api.send(token, request).await;
        let rate = sent.as_ref().map(|(_, rate)| *rate).unwrap_or_default();
        self.engine.pacing.heed(&rate, self.now());
        self.tally.borrow_mut().api_calls += 1;
        let too_many = i64::from(rate.status == 429);
        self.ports.store.count(Counter::ApiCalls, 1);
        self.ports.store.count(Counter::Api429, too_many);
        self.ports.outside.chart(&|bucket| {
            bucket.add(Count::ApiCalls, 1);
            bucket.add(Count::Api429, too_many as u64);
        });
        sent.map(|(response, _)| response)
    }
}

pub fn log_storage_error<O: Outside>(outside: &O, doing: &str, error: &StoreError) {
    outside.error(json!({"msg": "storage error", "doing": doing, "error": error.to_string()}));
}
