//! Operator alerts: a JSON message (Slack-compatible `text`) posted to `ALERT_WEBHOOK_URL` when an
//! event is parked, a location's token cannot be renewed, or the queue grows old; at most one per
//! kind and location per quiet period (a KV key with that TTL). Every alert is also logged.

use serde_json::json;
use worker::{console_error, Headers, Method, Request, RequestInit};

use super::http::fetch_with_timeout;

use super::store::Store;
use crate::config::AlertConfig;

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

/// Raises an alert unless one of the same kind for the same location went out within the quiet
/// period. Failures to deliver are logged, never propagated: an alert must not stop the queue.
pub async fn raise(store: &Store, config: &AlertConfig, kind: AlertKind, location_id: &str, text: &str) {
    let line = json!({"msg": "alert", "kind": kind.as_str(), "location_id": location_id, "text": text});
    console_error!("{line}");
    let Some(url) = &config.webhook_url else {
        return;
    };
    let quiet_key = format!("alert:{}:{location_id}", kind.as_str());
    if matches!(store.get_text(&quiet_key).await, Ok(Some(_))) {
        return;
    }
    if store.put_raw(&quiet_key, "sent".into(), None, Some(config.quiet_secs)).await.is_err() {
        return;
    }
    let body = json!({
        "text": format!("sightmill-sync [{}] {}: {text}", location_id, kind.as_str()),
        "kind": kind.as_str(),
        "location_id": location_id,
    });
    if let Err(error) = post(url, &body.to_string()).await {
        console_error!("{}", json!({"msg": "alert delivery failed", "kind": kind.as_str(), "error": error}));
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
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    Request::new_with_init(url, &init)
}
