//! The cron trigger (every minute): lists the queue in due order, takes a lease on each due
//! webhook so that overlapping runs never work the same one and a lock on its contact so that no
//! two events about one contact are applied at once, attempts it within the run's budget
//! (waiting out a short rate-limit block, stopping at a longer one),
//! alerts when the oldest pending webhook is too old, and records what the run did.

use worker::{console_error, console_log, Env};

use super::alerts::{self, AlertKind};
use super::locks;
use super::queue::{scan_queue, Ran, Runner, LOCK_TTL_SECS};
use super::runtime::now_ms;
use super::store::{Store, StoreError};
use super::webhook::load_config;
use crate::sync::records::{
    contact_lock_key, index_key_stale, lease_key, webhook_key, CronRun, WebhookRecord, CRON_LAST_KEY,
};
use crate::timestamp::UnixMillis;

/// How long a lease holds; KV's shortest expiry.
const LEASE_TTL_SECS: u64 = 60;
/// Webhooks leased (and their contacts locked) at once.
const LEASE_BATCH: usize = 25;
/// Due webhooks one run looks at, at most.
const MAX_DUE_PER_RUN: usize = 1_000;

pub async fn run(env: Env) {
    let Ok(config) = load_config(&env) else {
        return;
    };
    let store = match Store::open(&env) {
        Ok(store) => store,
        Err(error) => {
            return console_error!(
                "{}",
                serde_json::json!({"msg": "cron: no KV", "error": error.to_string()})
            )
        }
    };
    let started = now_ms();
    let mut tally = CronRun { started_at: started, ..CronRun::default() };
    let mut runner = Runner::new(
        env,
        store.clone(),
        config.clone(),
        config.cron.max_api_calls,
        config.cron.time_budget_ms,
    );
    if let Err(error) = work(&store, &mut runner, &mut tally, started).await {
        console_error!("{}", serde_json::json!({"msg": "cron: storage error", "error": error.to_string()}));
    }
    tally.api_calls = runner.calls;
    tally.finished_at = now_ms();
    if let Some(age) =
        tally.oldest_pending_age_secs.filter(|age| *age as u64 > config.alerts.pending_age_secs)
    {
        let text = format!("{} webhooks pending; the oldest for {age} s", tally.pending);
        alerts::raise(&store, &config.alerts, AlertKind::PendingAge, &config.location_id, &text).await;
    }
    console_log!("{}", serde_json::json!({"msg": "cron run", "run": &tally}));
    if let Err(error) = store.put(CRON_LAST_KEY, &tally, None).await {
        console_error!(
            "{}",
            serde_json::json!({"msg": "cron: could not record the run", "error": error.to_string()})
        );
    }
}

async fn work(
    store: &Store,
    runner: &mut Runner,
    tally: &mut CronRun,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let scan = scan_queue(store, now, MAX_DUE_PER_RUN).await?;
    tally.pending = scan.pending;
    tally.due = scan.due.len() as u32;
    tally.oldest_pending_age_secs = scan.oldest_accepted_at.map(|at| (now - at) / 1_000);
    let mut due = scan.due.into_iter().peekable();
    while due.peek().is_some() {
        if !runner.ready_for_next().await? {
            tally.left_for_next_run += due.count() as u32;
            break;
        }
        let batch: Vec<_> = due.by_ref().take(LEASE_BATCH).collect();
        work_batch(store, runner, tally, batch).await?;
    }
    Ok(())
}

/// Works one batch of due webhooks (`(due key, webhook id)`, in due order): leases them, reads
/// their records, locks their contacts, and attempts each whose lease and contact lock this run
/// holds. A webhook whose contact is busy (another run or a first attempt is applying an event
/// about it), or reached after its lease and lock have run half their lifetime, stays due for
/// the next run. Releases what it took, even after a storage error.
async fn work_batch(
    store: &Store,
    runner: &mut Runner,
    tally: &mut CronRun,
    batch: Vec<(String, String)>,
) -> Result<(), StoreError> {
    let lease_keys: Vec<String> = batch.iter().map(|(_, id)| lease_key(id)).collect();
    let leases = locks::take(store, &lease_keys, LEASE_TTL_SECS).await;
    let mut listed = Vec::with_capacity(batch.len());
    for (key, webhook_id) in batch {
        let record = match leases.holds(&lease_key(&webhook_id)) {
            true => still_due(store, &key, &webhook_id).await,
            false => Ok(None),
        };
        match record {
            Ok(Some(record)) => listed.push((webhook_id, record)),
            Ok(None) => tally.skipped += 1,
            Err(error) => {
                locks::release(store, &leases).await;
                return Err(error);
            }
        }
    }
    let location = runner.config.location_id.clone();
    let lock_keys: Vec<String> =
        listed.iter().map(|(_, record)| contact_lock_key(&location, &record.sightmill_id)).collect();
    let contacts = locks::take(store, &lock_keys, LOCK_TTL_SECS).await;
    let mut result = Ok(());
    for ((webhook_id, record), lock) in listed.into_iter().zip(&lock_keys) {
        let ran = match contacts.holds(lock) {
            false => Ok(Ran::Skipped),
            true => match runner.ready_for_next().await {
                Ok(true) if still_held(&leases, &contacts) => {
                    runner.attempt_locked(&webhook_id, record).await
                }
                Ok(_) => Ok(Ran::Left),
                Err(error) => Err(error),
            },
        };
        match ran {
            Ok(ran) => count(tally, ran),
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    locks::release(store, &contacts).await;
    locks::release(store, &leases).await;
    result
}

/// Whether the batch's leases and contact locks surely hold for one more attempt. A long batch
/// (slow answers, rate-limit waits, a large `CRON_TIME_BUDGET_MS`) can outlive them; a webhook
/// whose lease may expire mid-attempt is left for the next run rather than attempted twice.
fn still_held(leases: &locks::Held, contacts: &locks::Held) -> bool {
    let now = now_ms();
    leases.surely_held(now) && contacts.surely_held(now)
}

fn count(tally: &mut CronRun, ran: Ran) {
    match ran {
        Ran::Finished => tally.finished += 1,
        Ran::Retry => tally.retried += 1,
        Ran::Waiting => tally.waiting += 1,
        Ran::Parked => tally.parked += 1,
        Ran::Deferred => tally.deferred += 1,
        Ran::Skipped => tally.skipped += 1,
        Ran::Left => tally.left_for_next_run += 1,
    }
}

/// The record of the webhook behind a listed `due:` key, if it still says it is due there. A key
/// its record does not name is skipped, and dropped once it is surely stale ([`index_key_stale`]):
/// until then it may be a new key whose record is still being written.
async fn still_due(store: &Store, key: &str, webhook_id: &str) -> Result<Option<WebhookRecord>, StoreError> {
    let record: Option<WebhookRecord> = store.get(&webhook_key(webhook_id)).await?;
    match record {
        Some(record) if record.due_key(webhook_id).as_deref() == Some(key) => Ok(Some(record)),
        record if index_key_stale(key, record.as_ref(), now_ms()) => store.delete(key).await.map(|()| None),
        _ => Ok(None),
    }
}
