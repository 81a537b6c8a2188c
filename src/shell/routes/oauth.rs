//! The OAuth install routes (`TOKEN_MODE=oauth`): `GET /oauth/install` sends the browser to the
//! marketplace consent page with a signed state; `GET /oauth/callback` checks that state (core:
//! [`crate::auth::install`]), trades the code for the location's first tokens, seals them, and
//! hands them to the location's Durable Object, the one place that keeps and renews them.

use serde_json::{json, Value};
use worker::{console_error, console_log, Env, Request, Response, Result};

use crate::auth::install::{
    check_callback, clear_cookie, origin_of, query_param, start_install, CallbackQuery, InstallStart,
    NONCE_LEN,
};
use crate::auth::token_endpoint::Grant;
use crate::auth::tokens::{safe_location_id, InstallSettings, Issuer, TokenConfig, TokenError, TokenRecord};
use crate::config::Config;
use crate::intake::Refusal;
use crate::shell::location::tokens::{seal, token_config};
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, setting};
use crate::shell::platform::token_endpoint::exchange;

pub const INSTALL_PATH: &str = "/oauth/install";
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// Redirects to the marketplace consent page, setting the cookie the callback checks.
pub fn install(req: &Request, env: &Env) -> Result<Response> {
    let url = req.inner().url();
    let start = match begin_install(env, origin_of(&url)) {
        Ok(start) => start,
        Err(refusal) => return respond::refusal(&refusal),
    };
    respond::json_with_headers(
        302,
        &json!({"redirect_to": start.redirect_url}),
        &[
            ("Location", start.redirect_url.as_str()),
            ("Set-Cookie", start.set_cookie.as_str()),
            ("Cache-Control", "no-store"),
        ],
    )
}

/// Checks the callback, trades the code, and stores the location's tokens.
pub async fn callback(req: &Request, env: &Env) -> Result<Response> {
    let url = req.inner().url();
    let param = |name: &str| query_param(&url, name);
    let (code, state, error) = (param("code"), param("state"), param("error"));
    let query = CallbackQuery { code: code.as_deref(), state: state.as_deref(), error: error.as_deref() };
    let cookie = req.headers().get("Cookie")?;
    let outcome = complete_install(env, origin_of(&url), query, cookie.as_deref()).await;
    let (status, body) = match outcome {
        Ok(body) => (200, body),
        Err(refusal) => (refusal.status, refusal.body()),
    };
    respond::json_with_headers(
        status,
        &body,
        &[("Set-Cookie", &clear_cookie()), ("Cache-Control", "no-store")],
    )
}

fn begin_install(env: &Env, origin: &str) -> std::result::Result<InstallStart, Refusal> {
    let settings = OAuthSettings::read(env)?;
    let (issuer, install) = settings.oauth()?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|_| Refusal::new(503, "unavailable", "no randomness for the install state; try again"))?;
    Ok(start_install(
        install,
        &issuer.client.client_id,
        &install.redirect_uri(origin),
        &issuer.keys,
        nonce,
        now_ms() / 1000,
    ))
}

async fn complete_install(
    env: &Env,
    origin: &str,
    query: CallbackQuery<'_>,
    cookie: Option<&str>,
) -> std::result::Result<Value, Refusal> {
    let settings = OAuthSettings::read(env)?;
    let (issuer, install) = settings.oauth()?;
    let code = check_callback(&issuer.keys, query, cookie, now_ms() / 1000)?;
    let grant = Grant::AuthorizationCode { code, redirect_uri: install.redirect_uri(origin) };
    let record = exchange(&issuer.client, &grant, now_ms()).await.map_err(exchange_refusal)?;
    let location_id = installed_location(&record, &settings.config)?;
    let unavailable = |error: String| {
        Refusal::new(
            503,
            "storage_unavailable",
            format!("{error}; the tokens were not kept, start again at /oauth/install"),
        )
    };
    let envelope = seal(issuer, location_id, &record).map_err(|error| unavailable(error.to_string()))?;
    let stub = ObjectStub::open(env, location_id).map_err(|error| unavailable(error.to_string()))?;
    let _: Value = stub.call("/token", &envelope).await.map_err(|error| unavailable(error.to_string()))?;
    console_log!(
        "{}",
        json!({"msg": "oauth installed", "location_id": location_id, "company_id": record.company_id,
               "scope": record.scope, "expires_at_ms": record.expires_at_ms})
    );
    Ok(json!({
        "status": "installed",
        "location_id": location_id,
        "company_id": record.company_id,
        "scope": record.scope,
    }))
}

/// The settings both routes need.
struct OAuthSettings {
    config: Config,
    tokens: TokenConfig,
}

impl OAuthSettings {
    fn read(env: &Env) -> std::result::Result<OAuthSettings, Refusal> {
        let misconfigured = |message: String| {
            console_error!("{}", json!({"msg": "configuration error", "error": message}));
            Refusal::new(500, "misconfigured", message)
        };
        let config = Config::from_lookup(|name| setting(env, name))
            .map_err(|error| misconfigured(error.to_string()))?;
        let tokens = token_config(env).map_err(|error| misconfigured(error.to_string()))?;
        Ok(OAuthSettings { config, tokens })
    }

    /// The OAuth settings, or 404 when the worker runs in another mode.
    fn oauth(&self) -> std::result::Result<(&Issuer, &InstallSettings), Refusal> {
        match &self.tokens {
            TokenConfig::OAuth { issuer, install } => Ok((issuer, install)),
            other => Err(Refusal::new(
                404,
                "oauth_disabled",
                format!("the install flow is off: TOKEN_MODE is `{}`, not `oauth`", other.mode().as_str()),
            )),
        }
    }
}

/// The location the new tokens act for; it must be the one this worker syncs into.
fn installed_location<'a>(record: &'a TokenRecord, config: &Config) -> std::result::Result<&'a str, Refusal> {
    let location_id = record
        .location_id
        .as_deref()
        .and_then(safe_location_id)
        .ok_or_else(|| {
            Refusal::new(
                502,
                "no_location",
                "the token endpoint issued a token without a usable locationId; install the app on a sub-account (location)",
            )
        })?;
    if location_id != config.location_id {
        return Err(Refusal::new(
            409,
            "location_mismatch",
            format!(
                "the app was installed for location `{location_id}`, but this worker syncs into `{}` (GHL_LOCATION_ID); install it for that location",
                config.location_id
            ),
        ));
    }
    Ok(location_id)
}

fn exchange_refusal(error: TokenError) -> Refusal {
    match error {
        TokenError::Refused(reason) => Refusal::new(
            400,
            "authorization_code_rejected",
            format!("{reason}; start again at /oauth/install"),
        ),
        TokenError::Unavailable(reason) => {
            Refusal::new(503, "token_endpoint_unavailable", format!("{reason}; try again"))
        }
        TokenError::NotConfigured(reason) => Refusal::new(500, "misconfigured", reason),
    }
}
