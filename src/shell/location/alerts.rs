//! Operator alerts: a JSON message (Slack-compatible `text`) posted to `ALERT_WEBHOOK_URL` when an
//! event is parked, a location's token cannot be renewed, or the queue grows old; at most one per
//! kind per quiet period, counted from the last post that was delivered (a `meta` row of the
//! location's Durable Object), so that a failed post never silences the next alert. Every alert
//! is also logged.

use serde_json::json;
use worker::{Headers, Method, Request};

use super::db::Db;
use super::log::Log;
use crate::config::AlertConfig;
pub use crate::engine::ports::AlertKind;
use crate::shell::platform::http::{self, fetch_with_timeout};
use crate::shell::platform::runtime::now_ms;

/// Raises an alert unless one of the same kind for the location was delivered within the quiet
/// period. Failures to deliver are logged, never propagated: an alert must not stop the queue.
pub async fn raise(db: &Db, log: &Log, config: &AlertConfig, kind: AlertKind, text: &str) {
    let location_id = log.connection();
    log.error(json!({"msg": "alert", "kind": kind.as_str(), "location_id": location_id, "text": text}));
    let Some(url) = &config.webhook_url else {
        return;
    };
    let quiet_key = format!("alert:{}", kind.as_str());
    let quiet_until: Option<i64> = db.meta(&quiet_key).ok().flatten();
    if quiet_until.is_some_and(|until| until > now_ms()) {
        return;
    }
    let body = json!({
        "text": format!("sightmill-sync [{}] {}: {text}", location_id, kind.as_str()),
        "kind": kind.as_str(),
        "location_id": location_id,
        "connection": location_id,
    });
    match post(url, &body.to_string()).await {
        Ok(()) => {
            let until = now_ms() + config.quiet_secs as i64 * 1_000;
            if let Err(error) = db.put_meta(&quiet_key, &until) {
                log.error(json!({"msg": "alert quiet period not kept", "error": error.to_string()}));
            }
        }
        Err(error) => {
            log.error(json!({"msg": "alert delivery failed", "kind": kind.as_str(), "error": error}));
        }
    }
}

/// How long the alert receiver may take to answer.
const TIMEOUT_MS: u32 = 5_000;

async fn post(url: &str, body: &str) -> Result<(), String> {
    let request = build(url, body).map_err(|error| format!("could not build the request: {error}"))?;
    let (response, _) =
        fetch_with_timeout(request, TIMEOUT_MS).await.map_err(|failure| failure.to_string())?;
    match response.status_code() {
        200..=299 => Ok(()),
        status => Err(format!("the alert receiver answered {status}")),
    }
}

fn build(url: &str, body: &str) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    http::request(Method::Post, url, &headers, Some(body))
}
