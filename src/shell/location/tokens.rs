//! The location's access token: the shell half of [`crate::auth::tokens`], run only in the
//! location's Durable Object, so that renewal happens in one place and a refresh token is spent
//! at most once whatever KV answers. The encrypted record's truth is the Durable Object's `meta`
//! row `token`; KV's `token:{location}` is its copy (the users asked that tokens live in KV), read
//! only when the Durable Object has none yet (a deployment upgraded from KV-only storage).
//! Concurrent attempts share one renewal: while one is under way, the others wait for it and take
//! its outcome. A named connection's token comes from its record's source: its own Private
//! Integration Token, the app's OAuth install on its location, or a location token minted from
//! its agency's company token (which the Directory keeps and hands out), kept like an OAuth one.

use std::cell::RefCell;

use futures_util::lock::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use worker::{Delay, Env, Headers, Method, Request};

use super::db::Db;
use super::log::Log;
use crate::auth::envelope::{Envelope, KeyRing, NONCE_LEN};
use crate::auth::token_endpoint::Grant;
use crate::auth::token_record::TokenRecord;
use crate::auth::tokens::{
    location_token, location_token_request, plan, seal_record, token_key, AgencySource, Issuer, Plan, Stored,
    TokenConfig, TokenMode,
};
use crate::connections::TokenSource;
use crate::secret::Secret;
use crate::shell::platform::http::{self, fetch_with_timeout};
use crate::shell::platform::kv::Kv;
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::runtime::{now_ms, settings};
use crate::shell::platform::token_endpoint::exchange;
use crate::sync::plan::Failure;

pub use crate::auth::token_record::TokenError;

/// The `meta` row that holds the encrypted token record.
const META_KEY: &str = "token";
/// KV's gap between two writes of one key, and a little more.
const KV_WRITE_GAP_MS: u64 = 1_100;

/// How long the location-token endpoint may take to answer.
const MINT_TIMEOUT_MS: u32 = 10_000;

/// One location's tokens.
pub struct Tokens {
    location_id: String,
    log: Log,
    /// A named connection's token source; `None`: the deployment's (`TOKEN_MODE`).
    source: RefCell<Option<TokenSource>>,
    /// Held while a renewal is under way: one at a time, the others wait for its outcome.
    renewal: Mutex<()>,
    /// The outcome of the last renewal, for the attempts that waited for it.
    renewed: RefCell<Option<Result<Secret, TokenError>>>,
    /// The stored record, opened: this Durable Object is its only writer, so it stays right
    /// until [`Tokens::keep`] writes another (which drops it).
    opened: RefCell<Option<TokenRecord>>,
}

impl Tokens {
    pub fn new(location_id: &str, log: Log, source: Option<TokenSource>) -> Tokens {
        Tokens {
            location_id: location_id.to_owned(),
            log,
            source: RefCell::new(source),
            renewal: Mutex::new(()),
            renewed: RefCell::new(None),
            opened: RefCell::new(None),
        }
    }

    /// The bearer token to use now; after a token 401, pass the refused token as `rejected` to
    /// get its replacement.
    pub async fn access_token(
        &self,
        env: &Env,
        db: &Db,
        rejected: Option<&Secret>,
    ) -> Result<Secret, TokenError> {
        let config = self.config(env)?;
        let stored = match config.keys() {
            Some(keys) => self.load(env, db, keys).await?,
            None => Stored::Absent,
        };
        let outcome = match plan(&config, &self.location_id, &stored, now_ms(), rejected) {
            Ok(Plan::Use(token)) => Ok(token),
            Ok(Plan::Obtain { .. } | Plan::Mint(_)) if self.renewing() => self.await_renewal().await,
            Ok(Plan::Obtain { issuer, grant }) => {
                self.renew(env, db, &issuer.keys, config.mode(), Obtain::Grant(issuer, grant)).await
            }
            Ok(Plan::Mint(agency)) => {
                self.renew(env, db, &agency.keys, config.mode(), Obtain::Mint(agency)).await
            }
            Err(error) => Err(error),
        };
        if let Err(TokenError::Refused(reason)) = &outcome {
            self.tell_operator(config.mode(), reason);
        }
        outcome
    }

    /// The token settings of this location's connection.
    fn config(&self, env: &Env) -> Result<TokenConfig, TokenError> {
        match &*self.source.borrow() {
            None => token_config(env),
            Some(source) => {
                settings(env).tokens_for(source).map_err(|error| TokenError::NotConfigured(error.to_string()))
            }
        }
    }

    /// Uses `source` from now on (a named connection's record was stored or read).
    pub fn set_source(&self, source: Option<TokenSource>) {
        *self.source.borrow_mut() = source;
    }

    /// Drops the kept token (the connection's token source changed, or it was removed).
    pub fn forget(&self, db: &Db) {
        if let Err(error) = db.delete_meta(META_KEY) {
            self.log.error(json!({"msg": "kept token not dropped", "error": error.to_string()}));
        }
        self.opened.borrow_mut().take();
    }

    /// The kind of token this location uses (the status's `connection.token.kind`).
    pub fn kind(&self, env: &Env) -> &'static str {
        self.config(env).map_or("unconfigured", |config| config.mode().as_str())
    }

    /// Waits for the renewal under way and takes its outcome.
    fn renewing(&self) -> bool {
        self.renewal.try_lock().is_none()
    }

    async fn await_renewal(&self) -> Result<Secret, TokenError> {
        drop(self.renewal.lock().await);
        self.renewed.borrow().clone().unwrap_or_else(|| {
            Err(TokenError::Unavailable("the token renewal ended without an outcome".into()))
        })
    }

    /// Stores a record the install flow obtained (sealed by the route), after checking that it
    /// opens with the deployment's keys.
    pub async fn install(&self, env: &Env, db: &Db, envelope: Envelope) -> Result<(), TokenError> {
        let config = self.config(env)?;
        let keys = config
            .issuer()
            .map(|issuer| &issuer.keys)
            .ok_or_else(|| TokenError::NotConfigured("no token issuer is configured".into()))?;
        if let Stored::Unreadable(error) = Stored::open(keys, &self.location_id, Some(&envelope)) {
            return Err(TokenError::NotConfigured(format!("the installed token does not open: {error}")));
        }
        self.keep(env, db, &envelope).await
    }

    /// What the operator status shows about the token: mode, state and expiry, never the token.
    pub async fn status(&self, env: &Env, db: &Db) -> serde_json::Value {
        let location_id = &self.location_id;
        let config = match self.config(env) {
            Ok(config) => config,
            Err(error) => return json!({ "location_id": location_id, "error": error.to_string() }),
        };
        let mut status = json!({ "location_id": location_id, "mode": config.mode().as_str() });
        let Some(keys) = config.keys() else {
            status["state"] = json!("static");
            return status;
        };
        match self.load(env, db, keys).await {
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

    /// The stored record, opened: the Durable Object's copy, or (the default connection's, from
    /// before the Durable Object) KV's when it has none; opened once and then kept in memory.
    async fn load(&self, env: &Env, db: &Db, keys: &KeyRing) -> Result<Stored, TokenError> {
        if let Some(record) = self.opened.borrow().clone() {
            return Ok(Stored::Readable(record));
        }
        let unavailable = |error: String| TokenError::Unavailable(error);
        let mut envelope: Option<Envelope> = db.meta(META_KEY).map_err(|e| unavailable(e.to_string()))?;
        if envelope.is_none() && self.source.borrow().is_none() {
            let kv = Kv::open(env).map_err(|e| unavailable(e.to_string()))?;
            envelope = kv.get(&token_key(&self.location_id)).await.map_err(|e| unavailable(e.to_string()))?;
        }
        let stored = Stored::open(keys, &self.location_id, envelope.as_ref());
        if let Stored::Readable(record) = &stored {
            *self.opened.borrow_mut() = Some(record.clone());
        }
        if let Stored::Unreadable(error) = &stored {
            self.log.warn(
                json!({"msg": "token record unreadable", "location_id": self.location_id, "error": error.to_string()}),
            );
        }
        Ok(stored)
    }

    /// Obtains a new record (`how`), stores it under `keys`, and returns its access token.
    async fn renew(
        &self,
        env: &Env,
        db: &Db,
        keys: &KeyRing,
        mode: TokenMode,
        how: Obtain<'_>,
    ) -> Result<Secret, TokenError> {
        let under_way = self.renewal.lock().await;
        let (issued, grant) = match &how {
            Obtain::Grant(issuer, grant) => (exchange(&issuer.client, grant, now_ms()).await, grant.name()),
            Obtain::Mint(agency) => (mint(env, agency, &self.location_id).await, "location_token"),
        };
        let issued = issued.and_then(|record| record.check_location(&self.location_id).map(|()| record));
        let kept = match &issued {
            Ok(record) => self.seal_and_keep(env, db, keys, record).await,
            Err(_) => Ok(()),
        };
        let outcome = issued.as_ref().map(|record| record.access_token.clone()).map_err(Clone::clone);
        *self.renewed.borrow_mut() = Some(outcome);
        drop(under_way);
        let record = issued?;
        if let Err(error) = kept {
            self.log.error(
                json!({"msg": "token not stored", "alert": true, "location_id": self.location_id, "error": error.to_string(),
                       "action": "the renewed token is used but could not be stored; if the next renewal is refused, install the app again"}),
            );
        }
        self.log.info(json!({"msg": "token renewed", "location_id": self.location_id, "mode": mode.as_str(),
                   "grant": grant, "expires_at_ms": record.expires_at_ms}));
        Ok(record.access_token)
    }

    async fn seal_and_keep(
        &self,
        env: &Env,
        db: &Db,
        keys: &KeyRing,
        record: &TokenRecord,
    ) -> Result<(), TokenError> {
        let envelope = seal_with(keys, &self.location_id, record)?;
        self.keep(env, db, &envelope).await
    }

    /// Writes the record to the Durable Object (the truth), then its copy to KV (best effort:
    /// the copy is only read by a Durable Object that has no record of its own). KV takes one
    /// write per key per second, so a copy refused right after another (an install, then its
    /// first renewal) is tried once more a second later.
    async fn keep(&self, env: &Env, db: &Db, envelope: &Envelope) -> Result<(), TokenError> {
        db.put_meta(META_KEY, envelope).map_err(|e| TokenError::Unavailable(e.to_string()))?;
        self.opened.borrow_mut().take();
        let mut copied = Ok(());
        for attempt in 0..2 {
            if attempt > 0 {
                Delay::from(Duration::from_millis(KV_WRITE_GAP_MS)).await;
            }
            copied = match Kv::open(env) {
                Ok(kv) => {
                    kv.put(&token_key(&self.location_id), envelope, None).await.map_err(|e| e.to_string())
                }
                Err(error) => Err(error.to_string()),
            };
            if copied.is_ok() {
                break;
            }
        }
        if let Err(error) = copied {
            self.log.warn(json!({"msg": "token copy not written to KV", "location_id": self.location_id, "error": error}));
        }
        Ok(())
    }
}

/// Encrypts `record` under the current key with a fresh nonce.
pub fn seal(issuer: &Issuer, location_id: &str, record: &TokenRecord) -> Result<Envelope, TokenError> {
    seal_with(&issuer.keys, location_id, record)
}

fn seal_with(keys: &KeyRing, location_id: &str, record: &TokenRecord) -> Result<Envelope, TokenError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|_| TokenError::Unavailable("no randomness for the token nonce".into()))?;
    Ok(seal_record(keys, location_id, record, nonce))
}

/// How a renewal obtains its record.
enum Obtain<'a> {
    Grant(&'a Issuer, Grant),
    Mint(&'a AgencySource),
}

/// Mints a location token: a company access token from the Directory (which renews the
/// agency's tokens, one writer), then `POST /oauth/locationToken` with it.
async fn mint(env: &Env, agency: &AgencySource, location_id: &str) -> Result<TokenRecord, TokenError> {
    let company_token = company_access_token(env, &agency.company_id).await?;
    let request = location_token_request(agency, location_id, company_token);
    let sent_at = now_ms();
    let unavailable =
        |detail: String| TokenError::Unavailable(format!("the location token endpoint: {detail}"));
    let fetch = build_mint(&request).map_err(|error| unavailable(error.to_string()))?;
    let (response, text) = fetch_with_timeout(fetch, MINT_TIMEOUT_MS)
        .await
        .map_err(|failure| unavailable(failure.to_string()))?;
    let body: Value = serde_json::from_slice(text.as_bytes()).unwrap_or(Value::Null);
    location_token(response.status_code(), &body, sent_at)
}

fn build_mint(request: &crate::auth::tokens::LocationTokenRequest) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/x-www-form-urlencoded")?;
    headers.set("Accept", "application/json")?;
    headers.set("Version", request.version)?;
    headers.set("Authorization", &format!("Bearer {}", request.bearer.expose()))?;
    http::request(Method::Post, &request.url, &headers, Some(&request.form))
}

/// `POST /agencies/{company}/access` at the Directory: a company access token valid a while yet.
async fn company_access_token(env: &Env, company_id: &str) -> Result<Secret, TokenError> {
    let unavailable = |detail: String| TokenError::Unavailable(format!("the Directory: {detail}"));
    let directory = ObjectStub::directory(env).map_err(|error| unavailable(error.to_string()))?;
    let path = format!("/agencies/{company_id}/access");
    let (status, body) =
        directory.ask(Method::Post, &path, None).await.map_err(|error| unavailable(error.to_string()))?;
    let token = body.get("access_token").and_then(Value::as_str).filter(|token| !token.is_empty());
    match (status, token) {
        (200, Some(token)) => Ok(Secret::new(token)),
        (404, _) => Err(TokenError::NotConfigured(format!(
            "no agency token for company `{company_id}`; install the app for the agency with an agency install link (POST /admin/installs), or at /oauth/install?agency=1 where OAUTH_INSTALL_ALLOW lists the company"
        ))),
        (409, _) => Err(TokenError::Refused(format!(
            "the agency token for company `{company_id}` was refused; install the app for the agency again with an agency install link (POST /admin/installs), or at /oauth/install?agency=1 where OAUTH_INSTALL_ALLOW lists the company"
        ))),
        (status, _) => Err(unavailable(format!("no company token (HTTP {status})"))),
    }
}

/// The token settings, or why they are unusable.
pub fn token_config(env: &Env) -> Result<TokenConfig, TokenError> {
    settings(env).tokens().map_err(|error| TokenError::NotConfigured(error.to_string()))
}

impl Tokens {
    /// The operator's log line for a refusal that needs a person: events wait in the meantime.
    fn tell_operator(&self, mode: TokenMode, reason: &str) {
        let named = self.source.borrow().is_some();
        let action = match mode {
            TokenMode::PrivateIntegration if named => {
                "set a valid Private Integration Token with PATCH /admin/connections/{id}"
            }
            TokenMode::PrivateIntegration => {
                "set a valid Private Integration Token with `wrangler secret put CONTACTS_API_TOKEN`"
            }
            TokenMode::ClientCredentials => {
                "check OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET and the app's access to the location"
            }
            TokenMode::OAuth => "install the app again for the location with an install link (POST /admin/installs), or at /oauth/install where OAUTH_INSTALL_ALLOW lists it",
            TokenMode::Agency => "install the app again for the agency with an agency install link (POST /admin/installs), or at /oauth/install?agency=1 where OAUTH_INSTALL_ALLOW lists the company",
        };
        self.log.error(json!({"msg": "token refused", "alert": true, "location_id": self.location_id, "mode": mode.as_str(),
               "error": reason, "action": action, "webhooks": "kept pending; they are applied once a token works"}));
    }
}

/// Why no token could be had, as an attempt failure: the webhook stays pending in every case, and
/// the operator hears of it (`token_renewal` alert) unless the token endpoint was only unavailable.
pub fn token_failure(error: TokenError) -> Failure {
    match error {
        TokenError::Unavailable(detail) => Failure::Retryable { detail },
        TokenError::NotConfigured(detail) => Failure::Misconfigured(detail),
        TokenError::Refused(detail) => Failure::Misconfigured(format!("token renewal refused: {detail}")),
    }
}
