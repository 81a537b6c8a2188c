//! The cron trigger (every minute): lists the queue in due order, takes a lease on each due
//! webhook so that overlapping runs never work the same one, attempts it within the run's budget,
//! alerts when the oldest pending webhook is too old, and records what the run did.

use std::time::Duration;

use worker::{console_error, console_log, Delay, Env};

use super::alerts::{self, AlertKind};
use super::queue::{random_token, scan_queue, Ran, Runner};
use super::runtime::now_ms;
use super::store::{Store, StoreError};
use super::webhook::load_config;
use crate::records::{lease_key, webhook_key, CronRun, WebhookRecord, CRON_LAST_KEY};
use crate::timestamp::UnixMillis;

/// How long a lease holds; KV's shortest expiry.
const LEASE_TTL_SECS: u64 = 60;
/// Webhooks leased at once.
const LEASE_BATCH: usize = 25;
/// How long a run waits after writing its leases before it reads them back.
const LEASE_SETTLE_MS: u64 = 50;
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
        if !runner.has_budget() {
            tally.left_for_next_run += due.count() as u32;
            break;
        }
        let batch: Vec<_> = due.by_ref().take(LEASE_BATCH).collect();
        let held = take_leases(store, &batch).await?;
        tally.skipped += (batch.len() - held.len()) as u32;
        for (key, webhook_id) in held {
            let result = if runner.has_budget() {
                attempt_listed(store, runner, &key, &webhook_id).await
            } else {
                Ok(Ran::Left)
            };
            store.delete(&lease_key(&webhook_id)).await?;
            match result? {
                Ran::Finished => tally.finished += 1,
                Ran::Retry => tally.retried += 1,
                Ran::Waiting => tally.waiting += 1,
                Ran::Parked => tally.parked += 1,
                Ran::Deferred => tally.deferred += 1,
                Ran::Skipped => tally.skipped += 1,
                Ran::Left => tally.left_for_next_run += 1,
            }
        }
    }
    Ok(())
}

/// Leases a batch of webhooks: writes a random token under each free `lease:` key, waits for
/// a concurrent run's writes to land, then keeps those whose key still holds its own token.
/// Best effort, as KV allows; a finished webhook's record stops any later attempt anyway.
async fn take_leases(store: &Store, batch: &[(String, String)]) -> Result<Vec<(String, String)>, StoreError> {
    let mut written = Vec::with_capacity(batch.len());
    for (key, webhook_id) in batch {
        let lease = lease_key(webhook_id);
        if store.get_text(&lease).await?.is_none() {
            let token = random_token();
            store.put_raw(&lease, token.clone(), None, Some(LEASE_TTL_SECS)).await?;
            written.push((key.clone(), webhook_id.clone(), token));
        }
    }
    Delay::from(Duration::from_millis(LEASE_SETTLE_MS)).await;
    let mut held = Vec::with_capacity(written.len());
    for (key, webhook_id, token) in written {
        if store.get_text(&lease_key(&webhook_id)).await?.as_deref() == Some(token.as_str()) {
            held.push((key, webhook_id));
        }
    }
    Ok(held)
}

/// Attempts the webhook behind a listed `due:` key, if its record still says it is due there.
async fn attempt_listed(
    store: &Store,
    runner: &mut Runner,
    key: &str,
    webhook_id: &str,
) -> Result<Ran, StoreError> {
    let record: Option<WebhookRecord> = store.get(&webhook_key(webhook_id)).await?;
    match record {
        Some(record) if record.due_key(webhook_id).as_deref() == Some(key) => {
            runner.attempt(webhook_id, record).await
        }
        _ => {
            // Finished, parked, rescheduled or gone since it was listed: drop the stale index key.
            store.delete(key).await?;
            Ok(Ran::Skipped)
        }
    }
}
