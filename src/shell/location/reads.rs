//! The read API's calls, sent by the location's Durable Object: the Worker checked the read key,
//! parsed the route and serves the edge cache; what needs the location's state comes here.
//! `/read/link` resolves a SightMill id through the id map; `/read/version` answers a contact's
//! read version (bumped with every change the writer applies while caching is on, so that a
//! cached answer keyed by an older one is never served again); `/read/send` parses the call's
//! path again with the read API's own parser ([`ApiRoute::of_request`]: nothing it could not
//! have built is sent), builds the GET for this location from it, and sends it with the
//! location's token (once more with a renewed token after a refused one), unless the reads'
//! budget ([`crate::read::budget`]: a share of the rate limit per location and per key) or the
//! location's rate-limit window is spent, and answers what came back. Reads share the location's
//! pacing with the writes, so neither pushes the other into 429s.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Request, Response, Result};

use super::db::{Db, DbResult};
use super::tokens::TokenError;
use super::{json_body, Writer};
use crate::calls::{LinkQuery, ReadCall, SendQuery, VersionQuery};
use crate::config::Config;
use crate::contacts_api::{ApiRequest, ApiResponse};
use crate::read::{read_version_key, token_rejected, ApiRoute};
use crate::refusal::Refusal;
use crate::shell::platform::contacts_client::TransportFailure;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, settings};

/// Whether read caching is on (`READ_CACHE_TTL_SECS` > 0): the writer bumps read versions only
/// then, which saves a row written per change when nothing is cached.
pub fn caching_enabled(env: &worker::Env) -> bool {
    settings(env).read_cache_ttl_secs() > 0
}

/// After the writer applied a change to `contact_id` (in the same transaction): a new read
/// version for the contact, so that its cached reads, keyed by the old one, are never served again.
pub fn mark_contact_changed(db: &Db, contact_id: &str, now: i64) -> DbResult<()> {
    db.put_meta(&read_version_key(contact_id), &now)
}

/// `/read/send`'s answer: the API's answer, or why nothing came back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sent {
    Answered {
        response: ApiResponse,
        api_calls: u32,
    },
    /// The location's rate-limit window is spent until then: nothing was sent.
    RateLimited {
        until: i64,
    },
    /// The reads' share of the rate limit (the location's or the key's) is spent until then.
    OverBudget {
        until: i64,
    },
    Failed {
        failure: ReadFailure,
        message: String,
        api_calls: u32,
    },
}

/// Why a read got no answer from the Contacts API.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFailure {
    Misconfigured,
    TokenUnavailable,
    ContactsApiUnauthorized,
    ContactsApiTimeout,
    ContactsApiUnavailable,
}

impl ReadFailure {
    /// The status and error code the read API answers with.
    pub fn answer(self) -> (u16, &'static str) {
        match self {
            ReadFailure::Misconfigured => (503, "misconfigured"),
            ReadFailure::TokenUnavailable => (503, "token_unavailable"),
            ReadFailure::ContactsApiUnauthorized => (502, "contacts_api_unauthorized"),
            ReadFailure::ContactsApiTimeout => (504, "contacts_api_timeout"),
            ReadFailure::ContactsApiUnavailable => (502, "contacts_api_unavailable"),
        }
    }
}

/// Answers the read call `call`.
pub async fn handle(writer: &Writer, config: &Config, call: ReadCall, mut req: Request) -> Result<Response> {
    match call {
        ReadCall::Link => {
            let query: LinkQuery = json_body(&mut req).await?;
            match writer.db.link::<Value>(&query.key) {
                Ok(link) => respond::json(200, &json!({ "link": link })),
                Err(error) => Refusal::storage_unavailable(error.to_string()).response(),
            }
        }
        ReadCall::Version => {
            let query: VersionQuery = json_body(&mut req).await?;
            match writer.db.meta::<i64>(&read_version_key(&query.contact_id)) {
                Ok(version) => respond::json(200, &json!({ "version": version.unwrap_or(0) })),
                Err(error) => Refusal::storage_unavailable(error.to_string()).response(),
            }
        }
        ReadCall::Send => {
            let query: SendQuery = json_body(&mut req).await?;
            let route = match ApiRoute::of_request(&query.path, &writer.name) {
                Ok(route) => route,
                Err(refusal) => return refusal.response(),
            };
            let budget = match settings(&writer.env).read_budget(config.cron.calls_per_10s) {
                Ok(budget) => budget,
                Err(error) => return Refusal::misconfigured(error.to_string()).response(),
            };
            if let Err(until) = writer.reads.borrow_mut().take(budget, &query.key, now_ms()) {
                return respond::json(200, &json!(Sent::OverBudget { until }));
            }
            let request = route.request(&writer.name);
            respond::json(200, &json!(send(writer, config, &request).await))
        }
    }
}

async fn send(writer: &Writer, config: &Config, request: &ApiRequest) -> Sent {
    let mut rejected = None;
    let mut api_calls = 0;
    loop {
        if let Some(until) = writer.engine.pacing.blocked(now_ms()) {
            return Sent::RateLimited { until };
        }
        let token = match writer.tokens.access_token(&writer.env, &writer.db, rejected.as_ref()).await {
            Ok(token) => token,
            Err(error) => return token_failure(&error, api_calls),
        };
        api_calls += 1;
        let response = match writer.send_raw(config, &token, request, false).await {
            Ok(response) => response,
            Err(failure) => return transport_failure(&failure, api_calls),
        };
        if token_rejected(&response) && rejected.is_none() {
            rejected = Some(token);
            continue;
        }
        return Sent::Answered { response, api_calls };
    }
}

fn token_failure(error: &TokenError, api_calls: u32) -> Sent {
    let failure = match error {
        TokenError::NotConfigured(_) => ReadFailure::Misconfigured,
        TokenError::Unavailable(_) => ReadFailure::TokenUnavailable,
        TokenError::Refused(_) => ReadFailure::ContactsApiUnauthorized,
    };
    Sent::Failed { failure, message: error.to_string(), api_calls }
}

fn transport_failure(failure: &TransportFailure, api_calls: u32) -> Sent {
    let kind = match failure {
        TransportFailure::Timeout(_) => ReadFailure::ContactsApiTimeout,
        TransportFailure::Build(_) | TransportFailure::Network(_) => ReadFailure::ContactsApiUnavailable,
    };
    Sent::Failed { failure: kind, message: failure.to_string(), api_calls }
}
