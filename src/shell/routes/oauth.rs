//! The OAuth install routes (`TOKEN_MODE=oauth`): `GET /oauth/install?invite=...` (an operator's
//! install link) or, where the allow-list `OAUTH_INSTALL_ALLOW` is set, `GET /oauth/install`
//! (`?agency=1`: agency-wide) sends the browser to the marketplace consent page with a signed
//! state; `GET /oauth/callback` checks that state (core: [`crate::auth::install`]), trades the
//! code, and then spends the install link in the Directory (single use) or checks the ids the
//! token names against the allow-list: a callback that neither admits creates nothing. A location's first
//! tokens are sealed and handed to the location's Durable Object, the one place that keeps and
//! renews them; a location other than the default one becomes (or stays) a named connection of
//! token kind `oauth` in the Directory first. An agency's company token is sealed and handed to
//! the Directory, which keeps it and connects the locations the app is installed on.

use serde_json::{json, Value};
use worker::{console_error, console_log, Env, Request, Response, Result};

use crate::auth::envelope::Envelope;
use crate::auth::install::{
    allowed, check_callback, check_invite, clear_cookie, link_required, mint_invite, not_allowed, origin_of,
    query_param, start_install, CallbackQuery, InstallKind, InstallRequest, InstallStart, Invite, Permit,
    INVITE_PARAM, NONCE_LEN,
};
use crate::auth::token_endpoint::{Grant, UserType};
use crate::auth::token_record::{safe_location_id, TokenError, TokenRecord};
use crate::auth::tokens::{seal_record, InstallSettings, Issuer, TokenConfig};
use crate::calls::{DirectoryCall, InviteSpend, LocationCall, Sealed};
use crate::connections::agency::company_key;
use crate::refusal::Refusal;
use crate::shell::location::tokens::{seal, token_config};
use crate::shell::platform::connections::default_id;
use crate::shell::platform::object_stub::{ask_directory, ObjectStub, NO_BODY};
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, settings};
use crate::shell::platform::token_endpoint::exchange_as;

pub const INSTALL_PATH: &str = "/oauth/install";
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// Redirects to the marketplace consent page, setting the cookie the callback checks.
pub fn install(req: &Request, env: &Env) -> Result<Response> {
    let url = req.inner().url();
    let agency = matches!(query_param(&url, "agency").as_deref(), Some("1" | "true"));
    let invite = query_param(&url, INVITE_PARAM);
    let start = match begin_install(env, origin_of(&url), invite.as_deref(), agency) {
        Ok(start) => start,
        Err(refusal) => return refusal.response(),
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

/// `POST /admin/installs` `{ "kind": "location" | "agency" }` (the operator's door was passed):
/// 201 with a single-use install link (`install_url`), valid for
/// [`crate::auth::install::INVITE_TTL_SECS`].
pub fn mint(
    env: &Env,
    origin: &str,
    body: Option<&str>,
    operator: &str,
) -> std::result::Result<Value, Refusal> {
    let kind =
        match serde_json::from_str::<Value>(body.unwrap_or("{}")).ok().as_ref().map(|body| &body["kind"]) {
            Some(Value::Null) => InstallKind::Location,
            Some(Value::String(kind)) if kind == "location" => InstallKind::Location,
            Some(Value::String(kind)) if kind == "agency" => InstallKind::Agency,
            _ => {
                return Err(Refusal::bad_request(
                    "invalid_body",
                    "expected { \"kind\": \"location\" | \"agency\" }",
                ))
            }
        };
    let settings = OAuthSettings::read(env)?;
    let (issuer, _) = settings.oauth()?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|_| Refusal::unavailable("unavailable", "no randomness for the install link; try again"))?;
    let minted = mint_invite(&issuer.keys, kind, nonce, now_ms() / 1000);
    let expires_at_ms = minted.invite.expires_at_secs * 1000;
    console_log!(
        "{}",
        json!({"msg": "install link minted", "kind": kind.as_str(), "expires_at_ms": expires_at_ms, "by": operator})
    );
    Ok(json!({
        "install_url": format!("{origin}{INSTALL_PATH}?{INVITE_PARAM}={}", minted.token),
        "kind": kind.as_str(),
        "expires_at_ms": expires_at_ms,
    }))
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

/// Starts an install let in by an install link (`invite`: its kind is the link's) or, without
/// one, by the allow-list (403 `install_link_required` when there is none).
fn begin_install(
    env: &Env,
    origin: &str,
    invite: Option<&str>,
    agency: bool,
) -> std::result::Result<InstallStart, Refusal> {
    let settings = OAuthSettings::read(env)?;
    let (issuer, install) = settings.oauth()?;
    let (kind, permit) = match invite {
        Some(token) => {
            let invite = check_invite(&issuer.keys, token, now_ms() / 1000)?;
            (invite.kind, Permit::Invite(invite))
        }
        None if install.allow.is_empty() => return Err(link_required()),
        None if agency => (InstallKind::Agency, Permit::AllowList),
        None => (InstallKind::Location, Permit::AllowList),
    };
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|_| Refusal::unavailable("unavailable", "no randomness for the install state; try again"))?;
    let redirect_uri = install.redirect_uri(origin);
    let request =
        InstallRequest { client_id: &issuer.client.client_id, redirect_uri: &redirect_uri, kind, permit };
    Ok(start_install(install, request, &issuer.keys, nonce, now_ms() / 1000))
}

async fn complete_install(
    env: &Env,
    origin: &str,
    query: CallbackQuery<'_>,
    cookie: Option<&str>,
) -> std::result::Result<Value, Refusal> {
    let settings = OAuthSettings::read(env)?;
    let (issuer, install) = settings.oauth()?;
    let callback = check_callback(&issuer.keys, query, cookie, now_ms() / 1000)?;
    let grant = Grant::AuthorizationCode { code: callback.code, redirect_uri: install.redirect_uri(origin) };
    let user_type = match callback.kind {
        InstallKind::Location => UserType::Location,
        InstallKind::Agency => UserType::Company,
    };
    let record = exchange_as(&issuer.client, &grant, user_type, now_ms()).await.map_err(exchange_refusal)?;
    if callback.kind == InstallKind::Location {
        installed_location(&record)?;
    }
    let (company, location) = (record.company_id.as_deref(), record.location_id.as_deref());
    match &callback.permit {
        Permit::Invite(invite) => spend(env, invite).await?,
        Permit::AllowList if allowed(&install.allow, callback.kind, company, location) => {}
        Permit::AllowList => {
            let refusal = not_allowed(company, location);
            console_error!("{}", json!({"msg": "install refused", "error": refusal.message}));
            return Err(refusal);
        }
    }
    match callback.kind {
        InstallKind::Location => install_location(env, issuer, &record).await,
        InstallKind::Agency => install_agency(env, issuer, &record).await,
    }
}

/// Spends the install link in the Directory: 409 `install_link_used` when it was used already.
async fn spend(env: &Env, invite: &Invite) -> std::result::Result<(), Refusal> {
    let body = InviteSpend { expires_at_ms: invite.expires_at_secs * 1000 };
    let call = DirectoryCall::SpendInvite { nonce: invite.nonce.clone() };
    let (status, answer) = ask_directory(env, &call, Some(&body)).await?;
    match status {
        200 => Ok(()),
        409 => Err(Refusal::conflict(
            "install_link_used",
            "this install link was used already; nothing was connected: ask the operator for a new one",
        )),
        status => Err(passed_on(status, &answer)),
    }
}

/// Hands a location's first tokens to its Durable Object; a location other than the default
/// one is made a named connection (token kind `oauth`, no signing secret) first.
async fn install_location(
    env: &Env,
    issuer: &Issuer,
    record: &TokenRecord,
) -> std::result::Result<Value, Refusal> {
    let location_id = installed_location(record)?;
    let named = default_id(env).is_none_or(|id| id.as_str() != location_id);
    if named {
        let call = DirectoryCall::EnsureOAuth { id: location_id.to_owned() };
        let (status, answer) = ask_directory(env, &call, NO_BODY).await?;
        if status != 200 {
            return Err(passed_on(status, &answer));
        }
    }
    let envelope = seal(issuer, location_id, record).map_err(|error| not_kept(error.to_string()))?;
    let stub = ObjectStub::open(env, location_id).map_err(|error| not_kept(error.to_string()))?;
    let _: Value = stub
        .call(&LocationCall::InstallToken, &envelope)
        .await
        .map_err(|error| not_kept(error.to_string()))?;
    console_log!(
        "{}",
        json!({"msg": "oauth installed", "location_id": location_id, "connection": location_id, "company_id": record.company_id,
               "scope": record.scope, "expires_at_ms": record.expires_at_ms})
    );
    let mut body = json!({
        "status": "installed",
        "location_id": location_id,
        "company_id": record.company_id,
        "scope": record.scope,
    });
    if named {
        body["connection"] = json!(location_id);
        body["next"] = json!(format!(
            "webhooks for this location go to /webhooks/sightmill/{location_id}; add its signing secret with POST /admin/connections/{location_id}/secrets"
        ));
    }
    Ok(body)
}

/// Hands an agency's company token, sealed, to the Directory, which keeps it and connects the
/// locations the app is installed on.
async fn install_agency(
    env: &Env,
    issuer: &Issuer,
    record: &TokenRecord,
) -> std::result::Result<Value, Refusal> {
    let company = record.company_id.as_deref().and_then(safe_location_id).ok_or_else(|| {
        Refusal::bad_gateway("no_company", "the token endpoint issued an agency token without a usable companyId; install the app for the agency again",
        )
    })?;
    let mut nonce = [0u8; crate::auth::envelope::NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| not_kept("no randomness for the token nonce".into()))?;
    let envelope: Envelope = seal_record(&issuer.keys, &company_key(company), record, nonce);
    let call = DirectoryCall::AgencyInstall { company: company.to_owned() };
    let (status, answer) = ask_directory(env, &call, Some(&Sealed { envelope })).await?;
    if status != 200 {
        return Err(passed_on(status, &answer));
    }
    Ok(answer)
}

/// 503 `storage_unavailable`: what was obtained could not be kept.
fn not_kept(error: String) -> Refusal {
    Refusal::storage_unavailable(format!("{error}; the tokens were not kept, start again at /oauth/install"))
}

/// The Directory's refusal, passed on (its code is one of the contract's).
fn passed_on(status: u16, answer: &Value) -> Refusal {
    let message = answer["message"].as_str().unwrap_or("the directory refused").to_owned();
    let code = match answer["error"].as_str() {
        Some("connection_exists") => "connection_exists",
        Some("misconfigured") => "misconfigured",
        Some("agency_token_refused") => "agency_token_refused",
        Some("token_unavailable") => "token_unavailable",
        _ => "storage_unavailable",
    };
    Refusal::relayed(status, code, message)
}

/// The settings both routes need (the others are checked too: a misconfigured deployment
/// installs nothing).
struct OAuthSettings {
    tokens: TokenConfig,
}

impl OAuthSettings {
    fn read(env: &Env) -> std::result::Result<OAuthSettings, Refusal> {
        settings(env).config().map_err(Refusal::misconfigured)?;
        let tokens = token_config(env).map_err(Refusal::misconfigured)?;
        Ok(OAuthSettings { tokens })
    }

    /// The OAuth settings, or 404 when the worker runs in another mode.
    fn oauth(&self) -> std::result::Result<(&Issuer, &InstallSettings), Refusal> {
        match &self.tokens {
            TokenConfig::OAuth { issuer, install } => Ok((issuer, install)),
            other => Err(Refusal::missing(
                "oauth_disabled",
                format!("the install flow is off: TOKEN_MODE is `{}`, not `oauth`", other.mode().as_str()),
            )),
        }
    }
}

/// The location the new tokens act for.
fn installed_location(record: &TokenRecord) -> std::result::Result<&str, Refusal> {
    record
        .location_id
        .as_deref()
        .and_then(safe_location_id)
        .ok_or_else(|| {
            Refusal::bad_gateway("no_location", "the token endpoint issued a token without a usable locationId; install the app on a sub-account (location)",
            )
        })
}

fn exchange_refusal(error: TokenError) -> Refusal {
    match error {
        TokenError::Refused(reason) => Refusal::bad_request(
            "authorization_code_rejected",
            format!("{reason}; start again at /oauth/install"),
        ),
        TokenError::Unavailable(reason) => {
            Refusal::unavailable("token_endpoint_unavailable", format!("{reason}; try again"))
        }
        TokenError::NotConfigured(reason) => Refusal::misconfigured(reason),
    }
}
