//! Agencies in the Directory: the company token of each agency install, kept sealed and renewed
//! here only (its refresh token rotates: one renewal at a time, so each is spent once), handed to
//! a Location that mints its location token (`POST /agencies/{company}/access`); the agency
//! install (`POST /agencies/{company}/install`) that keeps it and creates an `agency` connection
//! for each location the app is installed on; and the operator's `GET /admin/agencies` and
//! `GET /admin/agencies/{company}/locations` (the listing, [`crate::connections::agency`]).

use serde_json::{json, Value};
use worker::{console_error, console_log, Headers, Method, Request};

use super::{storage, Answer, Directory};
use crate::auth::envelope::{Envelope, NONCE_LEN};
use crate::auth::token_endpoint::{Grant, UserType};
use crate::auth::token_record::{TokenError, TokenRecord};
use crate::auth::tokens::{open_record, seal_record, Issuer};
use crate::connections::agency::{
    app_id, company_key, installed_locations_url, read_page, InstalledLocation, API_VERSION, MAX_PAGES,
};
use crate::connections::{Connection, ConnectionId, TokenSource};
use crate::refusal::Refusal;
use crate::secret::Secret;
use crate::shell::location::tokens::token_config;
use crate::shell::platform::connections::default_id;
use crate::shell::platform::http::{self, fetch_with_timeout};
use crate::shell::platform::runtime::now_ms;
use crate::shell::platform::token_endpoint::exchange_as;

/// How long the installed-locations listing may take to answer, per page.
const LISTING_TIMEOUT_MS: u32 = 10_000;
/// Connections one agency install creates at most (each is a request to its Location; the rest
/// are listed by `GET /admin/agencies/{company}/locations` and created there or by installing
/// again).
const MAX_CREATED_PER_INSTALL: usize = 40;

/// 404 `unknown_agency`.
pub fn unknown_agency() -> Refusal {
    Refusal::missing("unknown_agency", "no company token is stored for that agency; install the app for the agency with an install link (POST /admin/installs)",
    )
}

/// `GET /admin/agencies`.
pub fn list(directory: &Directory) -> Answer {
    let rows = directory.db.agencies().map_err(storage)?;
    let agencies: Vec<Value> = rows
        .iter()
        .map(|row| json!({ "company_id": row.company_id, "installed_at_ms": row.installed_at, "connections": row.connections }))
        .collect();
    Ok((200, json!({ "agencies": agencies })))
}

/// `GET /admin/agencies/{company}/locations`: where the app is installed under the agency, and
/// which of those locations are connected.
pub async fn locations(directory: &Directory, company: &str) -> Answer {
    let company = checked_company(company)?;
    let (token, _) = company_token(directory, &company).await?;
    let issuer = issuer(directory)?;
    let listed = installed(&issuer, &company, &token).await?;
    let default = default_id(&directory.env);
    let mut locations = Vec::with_capacity(listed.len());
    for location in &listed {
        let connected = default.as_ref().is_some_and(|id| id.as_str() == location.id)
            || directory.is_live(&location.id)?;
        locations.push(json!({ "id": location.id, "name": location.name, "connected": connected }));
    }
    Ok((200, json!({ "count": locations.len(), "locations": locations })))
}

/// `POST /agencies/{company}/access`: a company access token valid for at least 5 more minutes.
pub async fn access(directory: &Directory, company: &str) -> Answer {
    let company = checked_company(company)?;
    let (token, expires_at_ms) = company_token(directory, &company).await?;
    Ok((200, json!({ "access_token": token.expose(), "expires_at_ms": expires_at_ms })))
}

/// `POST /agencies/{company}/install` `{ "envelope" }` (the company token record the callback
/// obtained, sealed): keeps it, lists the locations the app is installed on, and creates an
/// `agency` connection (no signing secret) for each one not connected yet.
pub async fn install(directory: &Directory, company: &str, mut req: Request) -> Answer {
    let company = checked_company(company)?;
    let body: Value = serde_json::from_str(&req.text().await.unwrap_or_default())
        .map_err(|_| Refusal::bad_request("invalid_body", "expected { envelope }"))?;
    let envelope: Envelope = serde_json::from_value(body["envelope"].clone())
        .map_err(|_| Refusal::bad_request("invalid_body", "expected { envelope }"))?;
    let issuer = issuer(directory)?;
    let record = open_record(&issuer.keys, &company_key(&company), &envelope)
        .map_err(|error| Refusal::misconfigured(format!("the company token does not open: {error}")))?;
    {
        let _renewal = directory.renewing.lock().await;
        directory.db.put_agency(&company, &envelope, Some(now_ms()), now_ms()).map_err(storage)?;
    }
    let listed = installed(&issuer, &company, &record.access_token).await?;
    let created = connect(directory, &company, &listed).await?;
    console_log!(
        "{}",
        json!({"msg": "agency installed", "company_id": company, "installed_locations": listed.len(), "connections_created": created})
    );
    Ok((200, json!({ "status": "installed", "company_id": company, "connections": created })))
}

/// Creates an `agency` connection for each listed location not connected yet (not the default
/// one), [`MAX_CREATED_PER_INSTALL`] at most; answers the ids created.
async fn connect(
    directory: &Directory,
    company: &str,
    listed: &[InstalledLocation],
) -> Result<Vec<String>, Refusal> {
    let keys = directory.keys()?;
    let default = default_id(&directory.env);
    let _turn = directory.changing.lock().await;
    let mut created = Vec::new();
    for location in listed {
        let Ok(id) = ConnectionId::parse(&location.id) else {
            continue;
        };
        if default.as_ref() == Some(&id) || directory.is_live(id.as_str())? {
            continue;
        }
        if created.len() == MAX_CREATED_PER_INSTALL {
            console_log!(
                "{}",
                json!({"msg": "agency install: more locations than one install connects", "company_id": company,
                       "action": "see GET /admin/agencies/{company}/locations and create the rest with POST /admin/connections"})
            );
            break;
        }
        let connection = Connection {
            id,
            label: location.name.clone(),
            created_at_ms: now_ms(),
            paused: false,
            token: TokenSource::Agency { company_id: company.to_owned() },
            secrets: Vec::new(),
        };
        directory.commit(&keys, None, &connection).await?;
        created.push(connection.id.to_string());
    }
    Ok(created)
}

/// The agency's company access token and its expiry, renewed first when it is within 5 minutes
/// of expiring (one renewal at a time: a second caller waits, then finds the renewed token).
async fn company_token(directory: &Directory, company: &str) -> Result<(Secret, i64), Refusal> {
    let _renewal = directory.renewing.lock().await;
    let issuer = issuer(directory)?;
    let envelope = directory.db.agency(company).map_err(storage)?.ok_or_else(unknown_agency)?;
    let record = open_record(&issuer.keys, &company_key(company), &envelope)
        .map_err(|error| refused(company, &format!("the stored company token does not open ({error})")))?;
    let now = now_ms();
    if !record.is_due(now) {
        return Ok((record.access_token, record.expires_at_ms));
    }
    let refresh = record
        .refresh_token
        .clone()
        .ok_or_else(|| refused(company, "the stored company token has no refresh token"))?;
    let renewed = exchange_as(&issuer.client, &Grant::RefreshToken(refresh), UserType::Company, now)
        .await
        .map_err(|error| token_refusal(company, error))?;
    keep(directory, &issuer, company, &renewed)?;
    console_log!(
        "{}",
        json!({"msg": "company token renewed", "company_id": company, "expires_at_ms": renewed.expires_at_ms})
    );
    Ok((renewed.access_token, renewed.expires_at_ms))
}

/// Stores a renewed company token; a renewal that cannot be stored has spent the old refresh
/// token, so it is an alert (the next renewal will be refused: install the app again).
fn keep(directory: &Directory, issuer: &Issuer, company: &str, record: &TokenRecord) -> Result<(), Refusal> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| super::unavailable("no randomness for the token nonce"))?;
    let envelope = seal_record(&issuer.keys, &company_key(company), record, nonce);
    directory.db.put_agency(company, &envelope, None, now_ms()).map_err(|error| {
        console_error!(
            "{}",
            json!({"msg": "company token not stored", "alert": true, "company_id": company, "error": error,
                   "action": "if the next renewal is refused, install the app for the agency again"})
        );
        storage(error)
    })
}

/// Every location the app is installed on under the agency, page by page.
async fn installed(
    issuer: &Issuer,
    company: &str,
    token: &Secret,
) -> Result<Vec<InstalledLocation>, Refusal> {
    let base = issuer.client.token_url.trim_end_matches("/oauth/token");
    let app = app_id(&issuer.client.client_id);
    let mut locations = Vec::new();
    for page in 0..MAX_PAGES {
        let url = installed_locations_url(base, company, app, page);
        let (status, body) = get_json(&url, token).await.map_err(|error| token_refusal(company, error))?;
        let read = read_page(status, &body, page).map_err(|error| token_refusal(company, error))?;
        locations.extend(read.locations);
        if !read.more {
            break;
        }
    }
    Ok(locations)
}

/// A GET with the company token and the API version; its status and JSON body.
async fn get_json(url: &str, token: &Secret) -> Result<(u16, Value), TokenError> {
    let build = || {
        let headers = Headers::new();
        headers.set("Authorization", &format!("Bearer {}", token.expose()))?;
        headers.set("Version", API_VERSION)?;
        headers.set("Accept", "application/json")?;
        http::request(Method::Get, url, &headers, None)
    };
    let request =
        build().map_err(|_| TokenError::Unavailable("the listing request could not be built".into()))?;
    let (response, text) = fetch_with_timeout(request, LISTING_TIMEOUT_MS).await.map_err(|error| {
        TokenError::Unavailable(format!("the installed locations listing did not answer: {error}"))
    })?;
    Ok((response.status_code(), serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// The app's client (agencies need `TOKEN_MODE=oauth`: 500 `misconfigured` otherwise).
fn issuer(directory: &Directory) -> Result<Issuer, Refusal> {
    let config = token_config(&directory.env).map_err(|error| Refusal::misconfigured(error.to_string()))?;
    match config {
        crate::auth::tokens::TokenConfig::OAuth { issuer, .. } => Ok(issuer),
        other => Err(Refusal::misconfigured(format!(
            "agencies need TOKEN_MODE `oauth` (the app's client id and secret), not `{}`",
            other.mode().as_str()
        ))),
    }
}

fn checked_company(company: &str) -> Result<String, Refusal> {
    ConnectionId::parse(company).map(String::from).map_err(|_| {
        Refusal::bad_request("invalid_company_id", "a company id is 1-64 characters of A-Z a-z 0-9 _ -")
    })
}

fn token_refusal(company: &str, error: TokenError) -> Refusal {
    match error {
        TokenError::Refused(reason) => refused(company, &reason),
        TokenError::Unavailable(reason) => {
            Refusal::unavailable("token_unavailable", format!("{reason}; try again"))
        }
        TokenError::NotConfigured(reason) => Refusal::misconfigured(reason),
    }
}

fn refused(company: &str, reason: &str) -> Refusal {
    console_error!(
        "{}",
        json!({"msg": "agency token refused", "alert": true, "company_id": company, "error": reason})
    );
    Refusal::conflict("agency_token_refused", format!("{reason}; install the app for the agency `{company}` again with an agency install link (POST /admin/installs), or at /oauth/install?agency=1 where OAUTH_INSTALL_ALLOW lists the company"),
    )
}
