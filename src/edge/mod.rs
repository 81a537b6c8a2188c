//! The imperative shell (wasm32 only): the Worker's entry points and routes. Everything here reads
//! the platform (request, env, clock, KV, Fetch) and hands plain values to the core.

mod contacts_client;
mod read_api;
mod respond;
mod store;
mod tokens;
mod webhook;

use worker::{event, Context, Env, Method, Request, Response, Result};

use crate::api_keys::{ApiKeys, ADMIN_KEYS_SETTING};

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
        (Method::Get, "/healthz") => respond::json(200, &serde_json::json!({ "ok": true })),
        (_, p) if is_admin(p) && !admin_authorized(&req, &env) => respond::error(
            401,
            "unauthorized",
            "the operator API needs `Authorization: Bearer <ADMIN_API_KEYS key>`",
        ),
        (Method::Get, p) if read_api::handles(p) => read_api::handle(req, &env).await,
        (_, p) if read_api::handles(p) => {
            respond::error(405, "method_not_allowed", "the read API answers GET only")
        }
        _ => respond::error(404, "not_found", "no such route"),
    }
}

/// The operator API lives under `/admin`.
fn is_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// The operator API's door: a bearer key from `ADMIN_API_KEYS` (never a read key, which is a
/// different list), checked in constant time. Unset or unusable: nobody gets in.
fn admin_authorized(req: &Request, env: &Env) -> bool {
    let keys =
        webhook::setting(env, ADMIN_KEYS_SETTING).and_then(|list| ApiKeys::parse(&list).ok());
    let authorization = req.headers().get("Authorization").ok().flatten();
    keys.is_some_and(|keys| keys.check(authorization.as_deref()).is_ok())
}
