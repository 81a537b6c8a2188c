//! The operator API's answers, inside the location's Durable Object (the Worker checked the
//! operator key and forwarded the request): queue status and counters, listing and inspecting
//! pending and parked webhooks, replaying and discarding them, a contact's id maps, and a dry run
//! of the mapping that shows the exact Contacts API requests an event would produce
//! ([`super::dry_run`]).

use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Array, Number, Object, JSON};
use worker::{Method, Request, Response, Result};

use super::db::{DbError, DbResult, Filter};
use super::dry_run;
use super::live_mapping;
use super::ports::remember;
use super::{Writer, CHARTS_MINUTE, LAST_RUN_KEY};
use crate::config::Config;
use crate::engine::ports::Listed;
use crate::engine::tallies::Counter;
use crate::intake::event::{is_sightmill_id, EventType};
use crate::intake::signature::is_valid_id;
use crate::read::split_url;
use crate::refusal::Refusal;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::now_ms;
use crate::sync::queue::{self, NotApplicable, QueueState};
use crate::sync::records::{child_prefixes, contact_key, WebhookRecord};
use crate::timestamp::parse_rfc3339;

/// Webhooks one replay request moves at most: bounded, so that no request does unbounded work;
/// the answer says whether more are left for the next request.
const REPLAY_PAGE: u32 = 100;

pub async fn handle(writer: &Writer, config: &Config, mut req: Request) -> Result<Response> {
    let raw_url = req.inner().url();
    let query = split_url(&raw_url).query.unwrap_or_default().to_owned();
    let path = req.path().trim_start_matches("/admin/").to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let answered = match (req.method(), segments.as_slice()) {
        (Method::Get, ["status"]) => status(writer, config).await,
        (Method::Get, ["events"]) => list(writer, &query),
        (Method::Get, ["events", id]) => inspect(writer, id),
        (Method::Post, ["events", id, "replay"]) => replay_one(writer, id),
        (Method::Delete, ["events", id]) => discard(writer, id).await,
        (Method::Post, ["replay"]) => replay_many(writer, &replay_body(&mut req).await),
        (Method::Get, ["contacts", id]) => contact_links(writer, config, id),
        (Method::Post, ["dry-run"]) => {
            return dry_run::answer(writer, config, &config.mapping, &req.bytes().await?).await
        }
        (Method::Get, ["metrics"]) => writer.chart(now_ms()).map(|chart| respond::json(200, &chart)),
        (_, ["imports", rest @ ..]) => {
            let rest = rest.to_vec();
            let answer = super::imports::handle(writer, config, &mut req, &query, &rest).await;
            return answer.unwrap_or_else(|| Refusal::not_found("no such operator route").response());
        }
        (_, ["mapping", rest @ ..]) => {
            let rest = rest.to_vec();
            let answer = live_mapping::handle(writer, config, &mut req, &rest).await;
            return answer.unwrap_or_else(|| Refusal::not_found("no such operator route").response());
        }
        _ => return Refusal::not_found("no such operator route").response(),
    };
    if matches!(req.method(), Method::Post | Method::Delete) {
        // What an operator changed is counted exactly from now on (a restart need not recount).
        if let Err(error) = writer.db.settle() {
            return Refusal::storage_unavailable(error.to_string()).response();
        }
    }
    if req.method() == Method::Post {
        // A replay makes webhooks due now: the alarm applies them.
        writer.arm(now_ms()).await?;
    }
    answered.unwrap_or_else(|error| Refusal::storage_unavailable(error.to_string()).response())
}

type Answered = DbResult<Result<Response>>;

async fn status(writer: &Writer, config: &Config) -> Answered {
    let now = now_ms();
    let figures = writer.db.queue_figures(now);
    let mut last_run: Option<Value> = writer.db.meta(LAST_RUN_KEY)?;
    if let Some(Value::Object(run)) = &mut last_run {
        run.remove(CHARTS_MINUTE);
    }
    let counters = writer.db.counters();
    let tokens = writer.tokens.status(&writer.env, &writer.db).await;
    let body = json!({
        "location_id": config.location_id,
        "pending": figures.pending,
        "due_now": figures.due_now,
        "oldest_pending_age_secs": figures.oldest_accepted_at.map(|at| (now - at) / 1_000),
        "parked": figures.parked,
        "unreadable": figures.unreadable,
        "stale_dropped": counters.get("stale_dropped").cloned().unwrap_or(json!(0)),
        "last_cron_run": last_run,
        "rate_limited_until": writer.engine.pacing.blocked(now),
        "connection": writer.connection_view(),
        "paused": writer.identity().paused(),
        "tokens": [tokens],
        "counters": counters,
        "durable_object": writer.usage(),
        "schema_version": super::db::Db::VERSION,
        "alert_pending_age_secs": config.alerts.pending_age_secs,
        "mapping": match writer.live_mapping() {
            Ok(None) => json!({"effective": "deployed"}),
            Ok(Some(live)) => {
                json!({"effective": "live", "saved_by": live.saved.saved_by, "saved_at": live.saved.saved_at})
            }
            Err(problem) => json!({"effective": "unusable", "problem": problem}),
        },
    });
    Ok(respond::json(200, &body))
}

/// `GET /admin/events?state=pending|parked&limit=N&cursor=C`, filtered by `type` (an event type),
/// `sightmill_id` and a window `from`/`to` (RFC 3339; when due, or when parked): summaries in
/// due or parking order.
fn list(writer: &Writer, query_string: &str) -> Answered {
    let query = |name: &str| query_param(query_string, name);
    let state = match query("state").as_deref() {
        None | Some("pending") => QueueState::Pending,
        Some("parked") => QueueState::Parked,
        Some(_) => return Ok(Refusal::bad_request("bad_query", "state must be pending or parked").response()),
    };
    let event_type = query("type").filter(|kind| !kind.is_empty());
    if event_type.as_deref().is_some_and(|kind| EventType::from_name(kind).is_none()) {
        return Ok(
            Refusal::bad_request("bad_query", "type must be an event type, e.g. contact.created").response()
        );
    }
    let contact = query("sightmill_id").filter(|id| !id.is_empty());
    if contact.as_deref().is_some_and(|id| !is_sightmill_id(id)) {
        return Ok(Refusal::bad_request("bad_query", "sightmill_id must be a SightMill id").response());
    }
    let bound = |name: &str, default: i64| match query(name).filter(|at| !at.is_empty()) {
        None => Ok(default),
        Some(at) => parse_rfc3339(&at).ok_or(()),
    };
    let (Ok(from), Ok(to)) = (bound("from", i64::MIN), bound("to", i64::MAX)) else {
        return Ok(Refusal::bad_request("bad_query", "from and to must be RFC 3339 times").response());
    };
    let filter = Filter { state, event_type: event_type.as_deref(), contact: contact.as_deref(), from, to };
    let limit = query("limit").and_then(|l| l.parse().ok()).unwrap_or(50u32).clamp(1, 100);
    let Ok(after) = query("cursor").map(|cursor| parse_cursor(&cursor)).transpose() else {
        return Ok(Refusal::bad_request("bad_query", "the cursor is not one this API gave").response());
    };
    let page = writer.db.page(&filter, after, limit)?;
    let full = page.len() as u32 == limit;
    let mut events = Vec::with_capacity(page.len());
    let mut last = None;
    for listed in page {
        let Listed { id, record } = listed?;
        last = Some(cursor_of(&id, &record));
        events.push(summary(&id, &record));
    }
    let cursor = last.filter(|_| full);
    Ok(respond::json(200, &json!({ "events": events, "cursor": cursor })))
}

/// A page's cursor: where its last webhook sits (`{at}:{id}`).
fn cursor_of(id: &str, record: &WebhookRecord) -> String {
    format!("{}:{id}", queue::place(record).at)
}

fn parse_cursor(cursor: &str) -> std::result::Result<(i64, String), ()> {
    let (at, id) = cursor.split_once(':').ok_or(())?;
    Ok((at.parse().map_err(|_| ())?, id.to_owned()))
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

fn inspect(writer: &Writer, id: &str) -> Answered {
    let Some(record) = load(writer, id)? else {
        return Ok(not_found());
    };
    let mut body = summary(id, &record);
    let event = record.body().and_then(|text| serde_json::from_slice::<Value>(text.as_bytes()).ok());
    if let Some(event) = event {
        body["body"] = event;
    }
    Ok(respond::json(200, &body))
}

fn load(writer: &Writer, id: &str) -> DbResult<Option<WebhookRecord>> {
    if !is_valid_id(id) {
        return Ok(None);
    }
    writer.db.webhook(id)
}

/// 404 `unknown_webhook`; the id is not repeated (a path segment could be a key sent by mistake).
fn not_found() -> Result<Response> {
    Refusal::missing("unknown_webhook", "no webhook with the id in the path is on record").response()
}

fn replay_one(writer: &Writer, id: &str) -> Answered {
    let Some(record) = load(writer, id)? else {
        return Ok(not_found());
    };
    match requeue(writer, id, record, now_ms())? {
        Ok(()) => Ok(respond::json(202, &json!({ "replayed": [id] }))),
        Err(NotApplicable::NotParked(state)) => Ok(Refusal::conflict(
            "not_parked",
            format!("the webhook is {state}; only parked webhooks are replayed"),
        )
        .response()),
        Err(NotApplicable::AlreadyFinished) => {
            Ok(Refusal::conflict("not_parked", "the webhook is finished").response())
        }
    }
}

/// `POST /admin/replay` with `{"all": true}` or `{"from": RFC 3339, "to": RFC 3339}` (parking
/// time): moves up to [`REPLAY_PAGE`] parked webhooks back into the queue; `more` says whether
/// another request is needed.
/// A replay request's body as the platform's `JSON.parse` reads it, `Null` when it does not
/// parse. Converted by hand exactly as `serde_wasm_bindgen` did (a safe integer is an integer,
/// any other number a float, a non-finite one null), whose deserialiser, needed for nothing else,
/// cost 10 KiB gzip of Wasm.
async fn replay_body(req: &mut Request) -> Value {
    match req.text().await.map(|text| JSON::parse(&text)) {
        Ok(Ok(parsed)) => from_js(&parsed),
        _ => Value::Null,
    }
}

fn from_js(value: &JsValue) -> Value {
    if let Some(flag) = value.as_bool() {
        Value::Bool(flag)
    } else if let Some(number) = value.as_f64() {
        if Number::is_safe_integer(value) {
            Value::from(number as i64)
        } else {
            serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        }
    } else if let Some(text) = value.as_string() {
        Value::String(text)
    } else if let Some(items) = value.dyn_ref::<Array>() {
        Value::Array(items.iter().map(|item| from_js(&item)).collect())
    } else if let Some(object) = value.dyn_ref::<Object>() {
        let entry = |entry: JsValue| {
            let pair = Array::from(&entry);
            (pair.get(0).as_string().unwrap_or_default(), from_js(&pair.get(1)))
        };
        Value::Object(Object::entries(object).iter().map(entry).collect())
    } else {
        Value::Null
    }
}

fn replay_many(writer: &Writer, body: &Value) -> Answered {
    let bound = |name: &str| body.get(name).and_then(Value::as_str).map(parse_rfc3339);
    if let Some(ids) = body.get("ids") {
        return replay_ids(writer, ids);
    }
    let (from, to) = match (body.get("all"), bound("from"), bound("to")) {
        (Some(Value::Bool(true)), None, None) => (i64::MIN, i64::MAX),
        (None, Some(Some(from)), Some(Some(to))) if from <= to => (from, to),
        _ => return Ok(Refusal::bad_request("bad_replay_request", REPLAY_SHAPES).response()),
    };
    let now = now_ms();
    let page = writer.db.parked_between(from, to, REPLAY_PAGE + 1)?;
    let mut replayed = Vec::new();
    let mut more = false;
    for listed in page {
        let Listed { id, record } = match listed {
            Ok(listed) => listed,
            Err(DbError::Unreadable(..)) => continue,
            Err(error) => return Err(error),
        };
        if replayed.len() as u32 == REPLAY_PAGE {
            more = true;
            break;
        }
        if requeue(writer, &id, record, now)?.is_ok() {
            replayed.push(id);
        }
    }
    Ok(respond::json(202, &json!({ "replayed": replayed, "more": more })))
}

/// Puts a parked webhook back into the queue, due at `now`; what stands in the way when it is not
/// parked. Every replay (one, a selection, a window) goes through here.
fn requeue(
    writer: &Writer,
    id: &str,
    record: WebhookRecord,
    now: i64,
) -> DbResult<std::result::Result<(), NotApplicable>> {
    match queue::replay(record.clone(), now) {
        Ok(pending) => writer.db.put_webhook(id, &record, &pending).map(Ok),
        Err(not_applicable) => Ok(Err(not_applicable)),
    }
}

const REPLAY_SHAPES: &str = "send {\"all\": true}, {\"from\": \"<RFC 3339>\", \"to\": \"<RFC 3339>\"} or {\"ids\": [\"<webhook id>\", ...]}";

/// `POST /admin/replay` with `{"ids": [...]}` (a selection, up to [`REPLAY_PAGE`]): replays the
/// parked ones among them; `skipped` lists the others (unknown, or not parked).
fn replay_ids(writer: &Writer, ids: &Value) -> Answered {
    let ids: Option<Vec<&str>> = ids.as_array().map(|ids| ids.iter().filter_map(Value::as_str).collect());
    let Some(ids) = ids.filter(|ids| !ids.is_empty() && ids.len() <= REPLAY_PAGE as usize) else {
        let message = format!("`ids` must list 1 to {REPLAY_PAGE} webhook ids");
        return Ok(Refusal::bad_request("bad_replay_request", message).response());
    };
    let now = now_ms();
    let (mut replayed, mut skipped) = (Vec::new(), Vec::new());
    for id in ids {
        let requeued = match load(writer, id)? {
            Some(record) => requeue(writer, id, record, now)?.is_ok(),
            None => false,
        };
        if requeued {
            replayed.push(id)
        } else {
            skipped.push(id)
        }
    }
    Ok(respond::json(202, &json!({ "replayed": replayed, "skipped": skipped, "more": false })))
}

/// Discards a pending or parked webhook: it is finished as `discarded`, so that a redelivery
/// changes nothing either.
async fn discard(writer: &Writer, id: &str) -> Answered {
    let Some(record) = load(writer, id)? else {
        return Ok(not_found());
    };
    match queue::discard(record.clone(), now_ms()) {
        Ok(finished) => {
            writer.db.put_webhook(id, &record, &finished)?;
            writer.db.count(Counter::Discarded, 1);
            remember(writer, id, &finished).await;
            Ok(respond::json(200, &json!({ "discarded": id })))
        }
        Err(_) => {
            Ok(Refusal::conflict("already_finished", "the webhook is finished; there is nothing to discard")
                .response())
        }
    }
}

/// `GET /admin/contacts/{sightmill id}`: where the contact, its notes, tasks and tags live in
/// the Contacts API, as the id maps have them.
fn contact_links(writer: &Writer, config: &Config, id: &str) -> Answered {
    if !is_sightmill_id(id) {
        return Ok(Refusal::bad_request(
            "bad_sightmill_id",
            "a SightMill id is 1 to 128 of A-Z a-z 0-9 _ - . : @",
        )
        .response());
    }
    let location = &config.location_id;
    let contact: Option<Value> = writer.db.link(&contact_key(location, id))?;
    let mut body = json!({ "contact": contact, "notes": {}, "tasks": {}, "tags": {} });
    for (kind, prefix) in ["notes", "tasks", "tags"].into_iter().zip(child_prefixes(location, id)) {
        for (key, value) in writer.db.links_under(&prefix)? {
            let name = &key[prefix.len()..];
            let name = match kind {
                "tags" => tag_name(name),
                _ => name.to_owned(),
            };
            body[kind][name] = value;
        }
    }
    Ok(respond::json(200, &body))
}

/// A tag's name from its key (base64url, so that any tag makes a key).
fn tag_name(encoded: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| encoded.to_owned())
}
