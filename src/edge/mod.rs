//! The imperative shell (wasm32 only): the Worker's entry points and routes. Everything here reads
//! the platform (request, env, clock, KV, Fetch) and hands plain values to the core.

mod admin;
mod alerts;
mod contacts_client;
mod cron;
mod http;
mod locks;
mod oauth;
mod queue;
mod rate_block;
mod read_api;
mod respond;
mod runtime;
mod store;
mod token_endpoint;
mod tokens;
mod turns;
mod webhook;

use worker::{
    console_error, event, Context, Env, Method, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

/// The path SightMill posts its webhooks to.
pub const WEBHOOK_PATH: &str = "/webhooks/sightmill";

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    route(req, &env, &ctx).await.or_else(|error| failed(&error))
}

/// A route that could not answer (a missing binding, a body that could not be read) still answers
/// JSON; why is in the log, not in the answer.
fn failed(error: &worker::Error) -> Result<Response> {
    console_error!("{}", serde_json::json!({ "msg": "request failed", "error": error.to_string() }));
    respond::error(500, "internal_error", "the worker could not answer this request; its log says why")
}

async fn route(req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Post, WEBHOOK_PATH) => webhook::handle(req, env, ctx).await,
        (_, WEBHOOK_PATH) => respond::error(405, "method_not_allowed", "use POST for webhooks"),
        (Method::Get, oauth::INSTALL_PATH) => oauth::install(&req, env),
        (Method::Get, oauth::CALLBACK_PATH) => oauth::callback(&req, env).await,
        (_, oauth::INSTALL_PATH | oauth::CALLBACK_PATH) => {
            respond::error(405, "method_not_allowed", "use GET for the install flow")
        }
        (Method::Get, "/healthz") => respond::json(200, &serde_json::json!({ "ok": true })),
        (_, p) if admin::handles(p) => admin::handle(req, env).await,
        (Method::Get, p) if read_api::handles(p) => read_api::handle(req, env).await,
        (_, p) if read_api::handles(p) => {
            respond::error(405, "method_not_allowed", "the read API answers GET only")
        }
        _ => respond::error(404, "not_found", "no such route"),
    }
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    cron::run(env).await;
}
