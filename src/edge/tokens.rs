//! Where the Contacts API access token comes from: the shell half of [`crate::auth::tokens`]. Reads the
//! token settings, opens the encrypted record in KV, trades a grant at the token endpoint when the
//! core says so, stores what comes back, and tells the operator when a token is refused for good.
//! The webhook path calls [`access_token`] before its first Contacts API call and
//! [`refresh_after_rejection`] after a token 401 (`super::authorized` wraps both).

use std::time::Duration;

use serde_json::json;
use worker::{console_error, console_log, console_warn, Delay, Env};

use super::runtime::setting;
use super::store::Store;
use super::token_endpoint::exchange;
use crate::auth::envelope::{Envelope, NONCE_LEN};
use crate::auth::token_endpoint::Grant;
use crate::auth::tokens::{
    plan, seal_record, token_key, Issuer, Plan, Stored, TokenConfig, TokenMode, TokenRecord,
};
use crate::secret::Secret;

pub use crate::auth::tokens::TokenError;

/// After a refresh token turned out to be spent, KV is read again after each of these waits (ms)
/// for the record that the isolate which spent it is writing.
const WINNER_WAITS_MS: [u64; 4] = [0, 100, 400, 1000];
/// Attempts at writing a freshly issued record (its refresh token exists nowhere else).
const SAVE_ATTEMPTS: u32 = 3;

/// The bearer token to use for `location_id` at `now_ms`: the static one, the cached one, or a
/// new one from the token endpoint when none is stored or it is within the margin of expiry.
pub async fn access_token(
    env: &Env,
    store: &Store,
    location_id: &str,
    now_ms: i64,
) -> Result<Secret, TokenError> {
    obtain(env, store, location_id, now_ms, None).await
}

/// A replacement for `rejected`, which the Contacts API just refused with a token 401: another
/// isolate's newer token when KV has one, otherwise a renewal at the token endpoint.
pub async fn refresh_after_rejection(
    env: &Env,
    store: &Store,
    location_id: &str,
    rejected: &Secret,
    now_ms: i64,
) -> Result<Secret, TokenError> {
    obtain(env, store, location_id, now_ms, Some(rejected)).await
}

async fn obtain(
    env: &Env,
    store: &Store,
    location_id: &str,
    now_ms: i64,
    rejected: Option<&Secret>,
) -> Result<Secret, TokenError> {
    let config = token_config(env)?;
    let stored = match config.issuer() {
        Some(issuer) => load(store, issuer, location_id).await?,
        None => Stored::Absent,
    };
    let outcome = match plan(&config, location_id, &stored, now_ms, rejected) {
        Ok(Plan::Use(token)) => Ok(token),
        Ok(Plan::Obtain { issuer, grant }) => {
            renew(store, issuer, config.mode(), location_id, grant, now_ms).await
        }
        Err(error) => Err(error),
    };
    if let Err(TokenError::Refused(reason)) = &outcome {
        tell_operator(config.mode(), location_id, reason);
    }
    outcome
}

/// The token settings, or why they are unusable.
pub(super) fn token_config(env: &Env) -> Result<TokenConfig, TokenError> {
    TokenConfig::from_lookup(|name| setting(env, name))
        .map_err(|error| TokenError::NotConfigured(error.to_string()))
}

/// What the operator status shows about a location's token: the mode and, for a stored token,
/// its state and expiry (never the token itself).
pub async fn token_status(env: &Env, store: &Store, location_id: &str) -> serde_json::Value {
    let config = match token_config(env) {
        Ok(config) => config,
        Err(error) => return json!({ "location_id": location_id, "error": error.to_string() }),
    };
    let mut status = json!({ "location_id": location_id, "mode": config.mode().as_str() });
    let Some(issuer) = config.issuer() else {
        status["state"] = json!("static");
        return status;
    };
    match load(store, issuer, location_id).await {
        Ok(Stored::Readable(record)) => {
            status["state"] = json!("stored");
            status["expires_at_ms"] = json!(record.expires_at_ms);
            status["renew_at_ms"] = json!(record.renew_at_ms());
        }
        Ok(Stored::Absent) => status["state"] = json!("none"),
        Ok(Stored::Unreadable(_)) => status["state"] = json!("unreadable"),
        Err(error) => status["error"] = json!(error.to_string()),
    }
    status
}

/// Reads and opens `token:{location_id}`.
async fn load(store: &Store, issuer: &Issuer, location_id: &str) -> Result<Stored, TokenError> {
    let envelope: Option<Envelope> = store
        .get(&token_key(location_id))
        .await
        .map_err(|error| TokenError::Unavailable(error.to_string()))?;
    let stored = Stored::open(&issuer.keys, location_id, envelope.as_ref());
    if let Stored::Unreadable(error) = &stored {
        console_warn!(
            "{}",
            json!({"msg": "token record unreadable", "location_id": location_id, "error": error.to_string()})
        );
    }
    Ok(stored)
}

/// Trades `grant` for a new record, stores it, and returns its access token. A refresh token
/// found spent is most likely another isolate's win: its record is adopted instead.
async fn renew(
    store: &Store,
    issuer: &Issuer,
    mode: TokenMode,
    location_id: &str,
    grant: Grant,
    now_ms: i64,
) -> Result<Secret, TokenError> {
    let issued = exchange(&issuer.client, &grant, now_ms)
        .await
        .and_then(|record| record.check_location(location_id).map(|()| record));
    match (issued, grant) {
        (Ok(record), grant) => {
            keep(store, issuer, location_id, &record).await;
            log_renewal(mode, location_id, grant.name(), &record);
            Ok(record.access_token)
        }
        (Err(TokenError::Refused(reason)), Grant::RefreshToken(spent)) => {
            adopt_winner(store, issuer, location_id, &spent).await.ok_or(TokenError::Refused(reason))
        }
        (Err(error), _) => Err(error),
    }
}

/// Writes a freshly issued record; if KV keeps failing the token still serves this request, and
/// the operator is told that the stored one is stale.
async fn keep(store: &Store, issuer: &Issuer, location_id: &str, record: &TokenRecord) {
    let mut failure = None;
    for _ in 0..SAVE_ATTEMPTS {
        match save(store, issuer, location_id, record).await {
            Ok(()) => return,
            Err(error) => failure = Some(error),
        }
    }
    if let Some(error) = failure {
        console_error!(
            "{}",
            json!({"msg": "token not stored", "alert": true, "location_id": location_id, "error": error.to_string(),
                   "action": "the renewed token could not be written to KV; if the next renewal is refused, install the app again"})
        );
    }
}

/// Encrypts `record` under the current key with a fresh nonce and writes it to KV.
pub(super) async fn save(
    store: &Store,
    issuer: &Issuer,
    location_id: &str,
    record: &TokenRecord,
) -> Result<(), TokenError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|_| TokenError::Unavailable("no randomness for the token nonce".into()))?;
    let envelope = seal_record(&issuer.keys, location_id, record, nonce);
    store
        .put(&token_key(location_id), &envelope, None)
        .await
        .map_err(|error| TokenError::Unavailable(error.to_string()))
}

/// Reads KV again, a few times, for a record whose refresh token is no longer `spent`.
async fn adopt_winner(store: &Store, issuer: &Issuer, location_id: &str, spent: &Secret) -> Option<Secret> {
    for wait_ms in WINNER_WAITS_MS {
        if wait_ms > 0 {
            Delay::from(Duration::from_millis(wait_ms)).await;
        }
        if let Ok(Stored::Readable(record)) = load(store, issuer, location_id).await {
            if record.refresh_token.as_ref() != Some(spent) {
                console_log!(
                    "{}",
                    json!({"msg": "token adopted", "location_id": location_id,
                           "detail": "another request renewed the token first; its token is used"})
                );
                return Some(record.access_token);
            }
        }
    }
    None
}

fn log_renewal(mode: TokenMode, location_id: &str, grant: &str, record: &TokenRecord) {
    console_log!(
        "{}",
        json!({"msg": "token renewed", "location_id": location_id, "mode": mode.as_str(),
               "grant": grant, "expires_at_ms": record.expires_at_ms})
    );
}

/// The operator's log line for a refusal that needs a person: events wait in the meantime.
fn tell_operator(mode: TokenMode, location_id: &str, reason: &str) {
    let action = match mode {
        TokenMode::PrivateIntegration => {
            "set a valid Private Integration Token with `wrangler secret put CONTACTS_API_TOKEN`"
        }
        TokenMode::ClientCredentials => {
            "check OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET and the app's access to the location"
        }
        TokenMode::OAuth => "install the app again for the location at /oauth/install",
    };
    console_error!(
        "{}",
        json!({"msg": "token refused", "alert": true, "location_id": location_id, "mode": mode.as_str(),
               "error": reason, "action": action, "webhooks": "kept pending; they are applied once a token works"})
    );
}
