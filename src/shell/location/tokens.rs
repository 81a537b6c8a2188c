//! The location's access token: the shell half of [`crate::auth::tokens`], run only in the
//! location's Durable Object, so that renewal happens in one place and a refresh token is spent
//! at most once whatever KV answers. The encrypted record's truth is the Durable Object's `meta`
//! row `token`; KV's `token:{location}` is its copy (the users asked that tokens live in KV), read
//! only when the Durable Object has none yet (a deployment upgraded from KV-only storage).
//! Concurrent attempts share one renewal: while one is under way, the others wait for it and take
//! its outcome.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use serde_json::json;
use worker::{console_error, console_log, console_warn, Delay, Env};

use super::db::Db;
use crate::auth::envelope::{Envelope, NONCE_LEN};
use crate::auth::token_endpoint::Grant;
use crate::auth::tokens::{
    plan, seal_record, token_key, Issuer, Plan, Stored, TokenConfig, TokenMode, TokenRecord,
};
use crate::secret::Secret;
use crate::shell::platform::kv::Kv;
use crate::shell::platform::runtime::{now_ms, setting};
use crate::shell::platform::token_endpoint::exchange;

pub use crate::auth::tokens::TokenError;

/// The `meta` row that holds the encrypted token record.
const META_KEY: &str = "token";
/// KV's gap between two writes of one key, and a little more.
const KV_WRITE_GAP_MS: u64 = 1_100;
/// How often a waiting attempt looks whether the renewal under way has finished.
const RENEWAL_POLL_MS: u64 = 25;

/// One location's tokens.
pub struct Tokens {
    location_id: String,
    renewing: Cell<bool>,
    /// The outcome of the last renewal, for the attempts that waited for it.
    renewed: RefCell<Option<Result<Secret, TokenError>>>,
    /// The stored record, opened: this Durable Object is its only writer, so it stays right
    /// until [`Tokens::keep`] writes another (which drops it).
    opened: RefCell<Option<TokenRecord>>,
}

impl Tokens {
    pub fn new(location_id: &str) -> Tokens {
        Tokens {
            location_id: location_id.to_owned(),
            renewing: Cell::new(false),
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
        let config = token_config(env)?;
        let stored = match config.issuer() {
            Some(issuer) => self.load(env, db, issuer).await?,
            None => Stored::Absent,
        };
        let outcome = match plan(&config, &self.location_id, &stored, now_ms(), rejected) {
            Ok(Plan::Use(token)) => Ok(token),
            Ok(Plan::Obtain { .. }) if self.renewing.get() => self.await_renewal().await,
            Ok(Plan::Obtain { issuer, grant }) => self.renew(env, db, issuer, config.mode(), grant).await,
            Err(error) => Err(error),
        };
        if let Err(TokenError::Refused(reason)) = &outcome {
            tell_operator(config.mode(), &self.location_id, reason);
        }
        outcome
    }

    /// Waits for the renewal under way and takes its outcome.
    async fn await_renewal(&self) -> Result<Secret, TokenError> {
        while self.renewing.get() {
            Delay::from(Duration::from_millis(RENEWAL_POLL_MS)).await;
        }
        self.renewed.borrow().clone().unwrap_or_else(|| {
            Err(TokenError::Unavailable("the token renewal ended without an outcome".into()))
        })
    }

    /// Stores a record the install flow obtained (sealed by the route), after checking that it
    /// opens with the deployment's keys.
    pub async fn install(&self, env: &Env, db: &Db, envelope: Envelope) -> Result<(), TokenError> {
        let config = token_config(env)?;
        let issuer = config
            .issuer()
            .ok_or_else(|| TokenError::NotConfigured("no token issuer is configured".into()))?;
        if let Stored::Unreadable(error) = Stored::open(&issuer.keys, &self.location_id, Some(&envelope)) {
            return Err(TokenError::NotConfigured(format!("the installed token does not open: {error}")));
        }
        self.keep(env, db, &envelope).await
    }

    /// What the operator status shows about the token: mode, state and expiry, never the token.
    pub async fn status(&self, env: &Env, db: &Db) -> serde_json::Value {
        let location_id = &self.location_id;
        let config = match token_config(env) {
            Ok(config) => config,
            Err(error) => return json!({ "location_id": location_id, "error": error.to_string() }),
        };
        let mut status = json!({ "location_id": location_id, "mode": config.mode().as_str() });
        let Some(issuer) = config.issuer() else {
            status["state"] = json!("static");
            return status;
        };
        match self.load(env, db, issuer).await {
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

    /// The stored record, opened: the Durable Object's copy, or KV's when it has none; opened
    /// once and then kept in memory.
    async fn load(&self, env: &Env, db: &Db, issuer: &Issuer) -> Result<Stored, TokenError> {
        if let Some(record) = self.opened.borrow().clone() {
            return Ok(Stored::Readable(record));
        }
        let unavailable = |error: String| TokenError::Unavailable(error);
        let mut envelope: Option<Envelope> = db.meta(META_KEY).map_err(|e| unavailable(e.to_string()))?;
        if envelope.is_none() {
            let kv = Kv::open(env).map_err(|e| unavailable(e.to_string()))?;
            envelope = kv.get(&token_key(&self.location_id)).await.map_err(|e| unavailable(e.to_string()))?;
        }
        let stored = Stored::open(&issuer.keys, &self.location_id, envelope.as_ref());
        if let Stored::Readable(record) = &stored {
            *self.opened.borrow_mut() = Some(record.clone());
        }
        if let Stored::Unreadable(error) = &stored {
            console_warn!(
                "{}",
                json!({"msg": "token record unreadable", "location_id": self.location_id, "error": error.to_string()})
            );
        }
        Ok(stored)
    }

    /// Trades `grant` for a new record, stores it, and returns its access token.
    async fn renew(
        &self,
        env: &Env,
        db: &Db,
        issuer: &Issuer,
        mode: TokenMode,
        grant: Grant,
    ) -> Result<Secret, TokenError> {
        self.renewing.set(true);
        let issued = exchange(&issuer.client, &grant, now_ms())
            .await
            .and_then(|record| record.check_location(&self.location_id).map(|()| record));
        let kept = match &issued {
            Ok(record) => self.seal_and_keep(env, db, issuer, record).await,
            Err(_) => Ok(()),
        };
        let outcome = issued.as_ref().map(|record| record.access_token.clone()).map_err(Clone::clone);
        *self.renewed.borrow_mut() = Some(outcome);
        self.renewing.set(false);
        let record = issued?;
        if let Err(error) = kept {
            console_error!(
                "{}",
                json!({"msg": "token not stored", "alert": true, "location_id": self.location_id, "error": error.to_string(),
                       "action": "the renewed token is used but could not be stored; if the next renewal is refused, install the app again"})
            );
        }
        console_log!(
            "{}",
            json!({"msg": "token renewed", "location_id": self.location_id, "mode": mode.as_str(),
                   "grant": grant.name(), "expires_at_ms": record.expires_at_ms})
        );
        Ok(record.access_token)
    }

    async fn seal_and_keep(
        &self,
        env: &Env,
        db: &Db,
        issuer: &Issuer,
        record: &TokenRecord,
    ) -> Result<(), TokenError> {
        let envelope = seal(issuer, &self.location_id, record)?;
        self.keep(env, db, &envelope).await
    }

    /// Writes the record to the Durable Object (the truth), then its copy to KV (best effort:
    /// the copy is only read by a Durable Object that has no record of its own). KV takes one
    /// write per key per second, so a copy refused right after another (an install, then its
    /// first renewal) is tried once more a second later.
    async fn keep(&self, env: &Env, db: &Db, envelope: &Envelope) -> Result<(), TokenError> {
        db.put_meta(META_KEY, envelope).map_err(|e| TokenError::Unavailable(e.to_string()))?;
        self.opened.borrow_mut().take();
        let copy = || async {
            match Kv::open(env) {
                Ok(kv) => {
                    kv.put(&token_key(&self.location_id), envelope, None).await.map_err(|e| e.to_string())
                }
                Err(error) => Err(error.to_string()),
            }
        };
        let mut copied = copy().await;
        if copied.is_err() {
            Delay::from(Duration::from_millis(KV_WRITE_GAP_MS)).await;
            copied = copy().await;
        }
        if let Err(error) = copied {
            console_warn!(
                "{}",
                json!({"msg": "token copy not written to KV", "location_id": self.location_id, "error": error})
            );
        }
        Ok(())
    }
}

/// Encrypts `record` under the current key with a fresh nonce.
pub fn seal(issuer: &Issuer, location_id: &str, record: &TokenRecord) -> Result<Envelope, TokenError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|_| TokenError::Unavailable("no randomness for the token nonce".into()))?;
    Ok(seal_record(&issuer.keys, location_id, record, nonce))
}

/// The token settings, or why they are unusable.
pub fn token_config(env: &Env) -> Result<TokenConfig, TokenError> {
    TokenConfig::from_lookup(|name| setting(env, name))
        .map_err(|error| TokenError::NotConfigured(error.to_string()))
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
