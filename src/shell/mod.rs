//! The imperative shell (wasm32 only), grouped by entry point: the Worker's fetch [`routes`], the
//! [`cron`] trigger, and the location's Durable Object ([`location`]), on what they share
//! ([`platform`]). Everything here reads the platform (request, env, clock, KV, SQLite, Fetch)
//! and hands plain values to the core.

mod cron;
pub mod directory;
pub mod location;
mod platform;
mod routes;

use serde_json::json;
use worker::{
    console_error, event, Context, Env, Method, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

use crate::auth::api_keys::ApiKeys;
use crate::auth::request_url;
use crate::refusal::Refusal;
use platform::respond;
use routes::{connections, oauth, operator, read_api, webhook};

/// The path SightMill posts its webhooks to.
pub const WEBHOOK_PATH: &str = "/webhooks/sightmill";

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    route(req, &env).await.or_else(|error| failed(&error))
}

/// A route that could not answer (a missing binding, a body that could not be read) still answers
/// JSON; why is in the log, not in the answer.
fn failed(error: &worker::Error) -> Result<Response> {
    console_error!("{}", json!({ "msg": "request failed", "error": error.to_string() }));
    Refusal::internal("the worker could not answer this request; its log says why").response()
}

async fn route(req: Request, env: &Env) -> Result<Response> {
    if let Err(refusal) = check_url(&req, env) {
        return refusal.response();
    }
    let path = req.path();
    let connection_webhook = path.strip_prefix(WEBHOOK_PATH).and_then(|rest| rest.strip_prefix('/'));
    let reaches_location = path == WEBHOOK_PATH
        || connection_webhook.is_some()
        || operator::handles(&path)
        || read_api::handles(&path);
    if reaches_location {
        // A deployment without its KV namespace is broken even where a route would not read it
        // (the idempotency keys and the token copy could not be written): refuse, and say why.
        platform::kv::Kv::open(env)?;
    }
    match (req.method(), path.as_str()) {
        (Method::Post, WEBHOOK_PATH) => webhook::handle(req, env).await,
        (Method::Post, _) if connection_webhook.is_some() => {
            webhook::handle_connection(req, env, connection_webhook.unwrap_or_default()).await
        }
        (_, WEBHOOK_PATH) => Refusal::method_not_allowed("use POST for webhooks").response(),
        (_, _) if connection_webhook.is_some() => {
            Refusal::method_not_allowed("use POST for webhooks").response()
        }
        (Method::Get, oauth::INSTALL_PATH) => oauth::install(&req, env),
        (Method::Get, oauth::CALLBACK_PATH) => oauth::callback(&req, env).await,
        (_, oauth::INSTALL_PATH | oauth::CALLBACK_PATH) => {
            Refusal::method_not_allowed("use GET for the install flow").response()
        }
        (Method::Get, "/healthz") => respond::json(200, &json!({ "ok": true })),
        (Method::Get, "/health") => health(env),
        (_, p) if connections::handles(p) => connections::handle(req, env).await,
        (_, p) if operator::handles(p) => operator::handle(req, env).await,
        (Method::Get, p) if read_api::handles(p) => read_api::handle(req, env).await,
        (_, p) if read_api::handles(p) => {
            Refusal::method_not_allowed("the read API answers GET only").response()
        }
        _ => Refusal::not_found("no such route").response(),
    }
}

/// `GET /health`: whether the settings let every part that is turned on work. 200 `{"ok": true}`,
/// or 503 with the broken settings by name (never a value). It reads only the settings object
/// (no KV, no Durable Object); `/healthz` answers 200 whenever the worker runs at all.
fn health(env: &Env) -> Result<Response> {
    let problems = platform::runtime::settings(env).problems();
    if problems.is_empty() {
        return respond::json(200, &json!({ "ok": true }));
    }
    respond::json(
        503,
        &json!({
            "ok": false,
            "misconfigured": problems,
            "message": "these settings are missing or invalid (docs/configuration.md describes each)",
        }),
    )
}

/// Every request's URL, before routing ([`crate::auth::request_url`]): no climbing path, and no
/// operator or read key anywhere in it.
fn check_url(req: &Request, env: &Env) -> std::result::Result<(), crate::refusal::Refusal> {
    let url = req.inner().url();
    let parts = crate::read::split_url(&url);
    request_url::check_path(parts.path)?;
    let settings = platform::runtime::settings(env);
    let keys: Vec<&ApiKeys> = settings.url_keys().iter().collect();
    request_url::refuse_key_in_url(parts.path, parts.query, &keys)
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    cron::run(env).await;
}
