//! The operator API's door, under `/admin/`: checks the bearer key against `ADMIN_API_KEYS`
//! (never a read key, which is a different list) and forwards the request, as sent, to the
//! location's Durable Object, which holds everything the operator API shows and changes.

use worker::{Env, Request, Response, Result};

use crate::auth::api_keys::{admin_keys, Denied, ADMIN_KEYS_SETTING};
use crate::intake::Refusal;
use crate::read::split_url;
use crate::shell::location::load_config;
use crate::shell::platform::location_stub::LocationStub;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::setting;

/// The operator API lives under `/admin`.
pub fn handles(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    if let Err(refusal) = authorize(&req, env) {
        return respond::refusal(&refusal);
    }
    let config = match load_config(env) {
        Ok(config) => config,
        Err(response) => return response,
    };
    let raw_url = req.inner().url();
    let url = split_url(&raw_url);
    let path = match url.query {
        Some(query) => format!("{}?{query}", url.path),
        None => url.path.to_owned(),
    };
    let body = req.text().await?;
    let stub = LocationStub::open(env, &config.location_id)?;
    stub.send(req.method(), &path, Some(body).filter(|body| !body.is_empty())).await
}

/// A bearer key from `ADMIN_API_KEYS`, checked in constant time. Unset: the API is off;
/// unusable: misconfigured.
fn authorize(req: &Request, env: &Env) -> std::result::Result<(), Refusal> {
    let keys = admin_keys(setting(env, ADMIN_KEYS_SETTING).as_deref())?;
    let authorization = req.headers().get("Authorization").ok().flatten();
    keys.check(authorization.as_deref()).map_err(Denied::refusal)
}
