//! The operator API under `/admin/`, behind `ADMIN_API_KEYS`: queue status, listing and
//! inspecting pending and parked webhooks, replaying and discarding them, and a dry run of the
//! mapping that shows the exact Contacts API requests an event would produce.

use serde_json::{json, Value};
use worker::{Env, Method, Request, Response, Result};

use super::queue::{read_known, scan_queue};
use super::rate_block;
use super::respond;
use super::runtime::{now_ms, setting};
use super::store::{Store, StoreError};
use super::tokens::token_status;
use super::webhook::load_config;
use crate::auth::api_keys::{admin_keys, Denied, ADMIN_KEYS_SETTING};
use crate::config::Config;
use crate::contacts_api::Answer;
use crate::intake::event::parse_event;
use crate::intake::signature::is_valid_id;
use crate::intake::Refusal;
use crate::read::split_url;
use crate::sync::plan::{self, Next, Start};
use crate::sync::records::{
    due_key, parked_key, parse_index_key, webhook_key, CronRun, DueMeta, Outcome, WebhookRecord,
    WebhookState, CRON_LAST_KEY, DUE_PREFIX, FINISHED_TTL_SECS, PARKED_PREFIX, STALE_COUNT_KEY,
};
use crate::timestamp::parse_rfc3339;

const PREFIX: &str = "/admin/";

/// The operator API lives under `/admin`.
pub fn handles(path: &str) -> bool {
    path == "/admin" || path.starts_with(PREFIX)
}

pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    if let Err(refusal) = authorize(&req, env) {
        return respond::refusal(&refusal);
    }
    let config = match load_config(env) {
        Ok(config) => config,
        Err(response) => return response,
    };
    let store = Store::open(env)?;
    // The raw URL, not `req.url()`: parsing with the `url` crate links its IDNA tables (~100 KiB).
    let raw_url = req.inner().url();
    let query = split_url(&raw_url).query.unwrap_or_default().to_owned();
    let path = req.path().trim_start_matches(PREFIX).to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let result = match (req.method(), segments.as_slice()) {
        (Method::Get, ["status"]) => status(env, &store, &config).await,
        (Method::Get, ["events"]) => list(&store, &query).await,
        (Method::Get, ["events", id]) => inspect(&store, id).await,
        (Method::Post, ["events", id, "replay"]) => replay_one(&store, id).await,
        (Method::Delete, ["events", id]) => discard(&store, id).await,
        (Method::Post, ["replay"]) => replay_many(&store, &body_json(&mut req).await).await,
        (Method::Post, ["dry-run"]) => return dry_run(&store, &config, &req.bytes().await?).await,
        _ => return respond::error(404, "not_found", "no such operator route"),
    };
    result.unwrap_or_else(|error| respond::error(503, "storage_unavailable", error.to_string()))
}

/// The operator API's door: a bearer key from `ADMIN_API_KEYS` (never a read key, which is a
/// different list), checked in constant time. Unset: the API is off; unusable: misconfigured.
fn authorize(req: &Request, env: &Env) -> std::result::Result<(), Refusal> {
    let keys = admin_keys(setting(env, ADMIN_KEYS_SETTING).as_deref())?;
    let authorization = req.headers().get("Authorization").ok().flatten();
    keys.check(authorization.as_deref()).map_err(Denied::refusal)
}

type Answered = std::result::Result<Result<Response>, StoreError>;

async fn status(env: &Env, store: &Store, config: &Config) -> Answered {
    let now = now_ms();
    let scan = scan_queue(store, now, usize::MAX).await?;
    let parked = count(store, PARKED_PREFIX).await?;
    let last_cron: Option<CronRun> = store.get(CRON_LAST_KEY).await?;
    let stale_dropped: Option<u64> = store.get(STALE_COUNT_KEY).await?;
    let blocked_until: Option<i64> = store.get(&rate_block::key(&config.location_id)).await?;
    let body = json!({
        "location_id": config.location_id,
        "pending": scan.pending,
        "due_now": scan.due.len(),
        "oldest_pending_age_secs": scan.oldest_accepted_at.map(|at| (now - at) / 1_000),
        "parked": parked,
        "stale_dropped": stale_dropped.unwrap_or(0),
        "last_cron_run": last_cron,
        "rate_limited_until": blocked_until.filter(|until| *until > now),
        "tokens": [token_status(env, store, &config.location_id).await],
    });
    Ok(respond::json(200, &body))
}

async fn count(store: &Store, prefix: &str) -> std::result::Result<usize, StoreError> {
    Ok(store.list_all(prefix).await?.len())
}

/// `GET /admin/events?state=pending|parked&limit=N&cursor=C`: summaries in due or parking order.
/// A listed key its record does not name (stale, or written before a record write that failed)
/// is skipped, so that a webhook shows once and under its own state.
async fn list(store: &Store, query_string: &str) -> Answered {
    let query = |name: &str| query_param(query_string, name);
    let prefix = match query("state").as_deref() {
        None | Some("pending") => DUE_PREFIX,
        Some("parked") => PARKED_PREFIX,
        Some(_) => return Ok(respond::error(400, "bad_query", "state must be pending or parked")),
    };
    let limit = query("limit").and_then(|l| l.parse().ok()).unwrap_or(50u64).clamp(1, 100);
    let page = store.list(prefix, limit, query("cursor")).await?;
    let mut events = Vec::with_capacity(page.keys.len());
    for key in &page.keys {
        let Some((_, id)) = parse_index_key(&key.name) else {
            continue;
        };
        let record = store.get::<WebhookRecord>(&webhook_key(id)).await?;
        if let Some(record) = record.filter(|record| record.index_key(id).as_deref() == Some(&key.name)) {
            events.push(summary(id, &record));
        }
    }
    Ok(respond::json(200, &json!({ "events": events, "cursor": page.cursor })))
}

/// One decoded parameter of a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// The record as stored, without its body, with its id. Read back from its stored JSON rather
/// than `to_value`: one serialiser for records in the Wasm instead of two.
fn summary(id: &str, record: &WebhookRecord) -> Value {
    let stored = serde_json::to_vec(record).unwrap_or_default();
    let mut value = serde_json::from_slice(&stored).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.remove("body");
        fields.insert("webhook_id".into(), json!(id));
    }
    value
}

async fn inspect(store: &Store, id: &str) -> Answered {
    let Some(record) = load(store, id).await? else {
        return Ok(not_found(id));
    };
    let mut body = summary(id, &record);
    let event = record.body().and_then(|text| serde_json::from_slice::<Value>(text.as_bytes()).ok());
    if let Some(event) = event {
        body["body"] = event;
    }
    Ok(respond::json(200, &body))
}

async fn load(store: &Store, id: &str) -> std::result::Result<Option<WebhookRecord>, StoreError> {
    if !is_valid_id(id) {
        return Ok(None);
    }
    store.get(&webhook_key(id)).await
}

fn not_found(id: &str) -> Result<Response> {
    let id: String = id.chars().take(64).collect();
    respond::error(404, "unknown_webhook", format!("no webhook `{id}` on record"))
}

/// Moves a parked webhook back into the queue, due now; the next cron run applies it. The `due:`
/// key is written before the record, as everywhere: a record made pending without its key could
/// be neither attempted nor replayed again.
async fn requeue(
    store: &Store,
    id: &str,
    mut record: WebhookRecord,
) -> std::result::Result<bool, StoreError> {
    let WebhookState::Parked { body, parked_at, .. } = record.state else {
        return Ok(false);
    };
    let now = now_ms();
    record.state =
        WebhookState::Pending { body, due_at: now, failures: 0, last_error: None, waiting_since: None };
    store.put_index(&due_key(now, id), Some(json!(DueMeta { accepted_at: record.accepted_at }))).await?;
    store.put(&webhook_key(id), &record, None).await?;
    store.delete(&parked_key(parked_at, id)).await?;
    Ok(true)
}

async fn replay_one(store: &Store, id: &str) -> Answered {
    let Some(record) = load(store, id).await? else {
        return Ok(not_found(id));
    };
    let state = record.state_name();
    if !requeue(store, id, record).await? {
        return Ok(respond::error(
            409,
            "not_parked",
            format!("the webhook is {state}; only parked webhooks are replayed"),
        ));
    }
    Ok(respond::json(202, &json!({ "replayed": [id] })))
}

/// `POST /admin/replay` with `{"all": true}` or `{"from": RFC 3339, "to": RFC 3339}` (parking time).
async fn replay_many(store: &Store, body: &Value) -> Answered {
    let bound = |name: &str| body.get(name).and_then(Value::as_str).map(parse_rfc3339);
    let window = match (body.get("all"), bound("from"), bound("to")) {
        (Some(Value::Bool(true)), None, None) => (i64::MIN, i64::MAX),
        (None, Some(Some(from)), Some(Some(to))) if from <= to => (from, to),
        _ => {
            let message = "send {\"all\": true} or {\"from\": \"<RFC 3339>\", \"to\": \"<RFC 3339>\"}";
            return Ok(respond::error(400, "bad_replay_request", message));
        }
    };
    let mut replayed = Vec::new();
    for key in store.list_all(PARKED_PREFIX).await? {
        let Some((parked_at, id)) = parse_index_key(&key.name) else {
            continue;
        };
        if parked_at < window.0 || parked_at > window.1 {
            continue;
        }
        if let Some(record) = load(store, id).await? {
            if requeue(store, id, record).await? {
                replayed.push(id.to_owned());
            }
        }
    }
    Ok(respond::json(202, &json!({ "replayed": replayed })))
}

/// Discards a pending or parked webhook: it is finished as `discarded`, so that a redelivery
/// changes nothing either.
async fn discard(store: &Store, id: &str) -> Answered {
    let Some(mut record) = load(store, id).await? else {
        return Ok(not_found(id));
    };
    let index = match &record.state {
        WebhookState::Pending { due_at, .. } => due_key(*due_at, id),
        WebhookState::Parked { parked_at, .. } => parked_key(*parked_at, id),
        WebhookState::Finished { .. } => {
            return Ok(respond::error(
                409,
                "already_finished",
                "the webhook is finished; there is nothing to discard",
            ))
        }
    };
    record.state = WebhookState::Finished { finished_at: now_ms(), outcome: Outcome::Discarded };
    store.put(&webhook_key(id), &record, Some(FINISHED_TTL_SECS)).await?;
    store.delete(&index).await?;
    Ok(respond::json(200, &json!({ "discarded": id })))
}

async fn body_json(req: &mut Request) -> Value {
    req.json::<Value>().await.unwrap_or(Value::Null)
}

/// `POST /admin/dry-run` with a SightMill event body: the requests it would send now, given what
/// KV holds, assuming each call succeeds. Sends nothing and writes nothing.
async fn dry_run(store: &Store, config: &Config, body: &[u8]) -> Result<Response> {
    if body.len() > config.max_body_bytes {
        let message = format!("the body is larger than {} bytes", config.max_body_bytes);
        return respond::error(413, "body_too_large", message);
    }
    let event = match parse_event(body) {
        Ok(event) => event,
        Err(error) => return respond::error(422, "unprocessable_event", error.to_string()),
    };
    let reads = plan::reads(&event, &config.location_id);
    let known = match read_known(store, &reads).await {
        Ok(known) => known,
        Err(error) => return respond::error(503, "storage_unavailable", error.to_string()),
    };
    let answer = match plan::start(&event, &known, &config.location_id, &config.mapping) {
        Start::Finish(applied) => {
            json!({ "decision": "finish", "requests": [], "outcome": applied.outcome })
        }
        Start::Wait(reason) => json!({ "decision": "wait", "requests": [], "reason": reason }),
        Start::Park(reason) => json!({ "decision": "park", "requests": [], "reason": reason }),
        Start::Send(mut job, first) => {
            let mut requests = vec![first];
            let success = json!({"contact": {"id": "NEW_CONTACT_ID"}, "note": {"id": "NEW_NOTE_ID"}, "task": {"id": "NEW_TASK_ID"}});
            while let Next::Send(next) = job.on_answer(Answer::Success(success.clone())) {
                requests.push(next);
            }
            json!({ "decision": "send", "requests": requests })
        }
    };
    respond::json(200, &answer)
}
