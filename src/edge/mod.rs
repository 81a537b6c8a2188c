//! The imperative shell (wasm32 only): the Worker's entry points and routes. Everything here reads
//! the platform (request, env, clock, KV, Fetch) and hands plain values to the core.

mod authorized;
mod contacts_client;
mod oauth;
mod respond;
mod store;
mod token_endpoint;
mod tokens;
mod webhook;

use worker::{event, Context, Env, Method, Request, Response, Result};

/// The path SightMill posts its webhooks to.
pub const WEBHOOK_PATH: &str = "/webhooks/sightmill";

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Post, WEBHOOK_PATH) => webhook::handle(req, &env).await,
        (_, WEBHOOK_PATH) => respond::error(405, "method_not_allowed", "use POST for webhooks"),
        (Method::Get, oauth::INSTALL_PATH) => oauth::install(&req, &env),
        (Method::Get, oauth::CALLBACK_PATH) => oauth::callback(&req, &env).await,
        (_, oauth::INSTALL_PATH | oauth::CALLBACK_PATH) => {
            respond::error(405, "method_not_allowed", "use GET for the install flow")
        }
        (Method::Get, "/healthz") => respond::json(200, &serde_json::json!({ "ok": true })),
        _ => respond::error(404, "not_found", "no such route"),
    }
}
