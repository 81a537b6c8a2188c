//! The read API's route: GET /contacts/... and /sightmill/contacts/... for SightMill's users,
//! the default connection's, and the same under `/connections/{id}/` for a named connection's.
//! Checks the connection id, the caller's key (and that it reaches the connection), that the
//! connection exists (the edge's copy of the records), resolves a SightMill id through the location's id map (its Durable
//! Object), serves the edge cache, or has the Durable Object send the Contacts API call with the
//! location's token and pacing, and passes the answer on. Cached answers are keyed by the
//! contact's read version, which the Durable Object bumps with every change it applies, so that
//! a contact's cached reads are never served after a change.

use serde_json::Value;
use worker::{console_error, console_log, console_warn, Cache, Env, Request, Response, Result};

use crate::calls::{LinkQuery, LocationCall, ReadCall, SendQuery, VersionQuery};
use crate::connections::{unknown_connection, ConnectionId};
use crate::contacts_api::ApiResponse;
use crate::read::{
    cacheable, config_refusal, split_connection, split_url, upstream_refusal, ApiRoute, ReadConfig, ReadRoute,
};
use crate::refusal::Refusal;
use crate::shell::location::reads::Sent;
use crate::shell::platform::connections;
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, settings};
use crate::sync::records::Link;
use crate::timestamp::UnixMillis;

/// The named edge cache that holds read answers (apart from the zone's own cache).
const CACHE_NAME: &str = "sightmill-sync-read";
/// Tells the caller whether the answer came from the edge cache (`hit`) or the API (`miss`).
const CACHE_HEADER: &str = "x-sightmill-sync-cache";

pub fn handles(path: &str) -> bool {
    crate::read::handles(path)
}

/// Answers one GET on a read route, and logs one JSON line about it (no key, token or data).
pub async fn handle(req: Request, env: &Env) -> Result<Response> {
    let mut log = ReadLog::new();
    let response = match answer(&req, env, &mut log).await {
        Ok(response) => Ok(response),
        Err(Stop::Refused(refusal)) => {
            log.error = Some(refusal.code);
            refusal_response(&refusal)
        }
        Err(Stop::RateLimited { until }) => {
            log.error = Some("rate_limited");
            rate_limited(until, now_ms(), RATE_LIMITED)
        }
        Err(Stop::OverBudget { until }) => {
            log.error = Some("read_budget_spent");
            rate_limited(until, now_ms(), OVER_BUDGET)
        }
        Err(Stop::Failed(error)) => {
            log.error = Some("internal_error");
            console_error!("{}", serde_json::json!({"msg": "read failed", "error": error.to_string()}));
            Refusal::internal("the read could not be answered").response()
        }
    }?;
    log.write(response.status_code());
    Ok(response)
}

async fn answer(req: &Request, env: &Env, log: &mut ReadLog) -> std::result::Result<Response, Stop> {
    let config = settings(env).read().map_err(config_refusal)?.clone();
    let authorization = req.headers().get("Authorization")?;
    let url = req.inner().url();
    let url = split_url(&url);
    let (named, path) = split_connection(url.path);
    let location_id = connection_of(env, &config, named, authorization.as_deref()).await?;
    let key = crate::auth::api_keys::fingerprint(authorization.as_deref()).unwrap_or_default();
    let route = ReadRoute::parse(path, url.query, &location_id)?;
    let location = ObjectStub::open(env, &location_id)?;
    let link: Option<Link> = match route.link_key(&location_id) {
        Some(key) => resolve(&location, key).await?,
        None => None,
    };
    let route = route.resolve(link)?;
    log.route = route.name();
    let reader = Reader { config: &config, location_id: &location_id, location: &location, key: &key };
    reader.read(&route, url.origin, log).await
}

/// The location a read is for, once the caller may read it: the id is checked first (400), then
/// the key and its connections (401, 403), then that a named connection exists (404).
async fn connection_of(
    env: &Env,
    config: &ReadConfig,
    named: Option<&str>,
    authorization: Option<&str>,
) -> std::result::Result<String, Stop> {
    let Some(raw) = named else {
        config.keys.check(authorization).map_err(|denied| denied.refusal())?;
        let default = config.default_location.clone().ok_or_else(|| {
            Refusal::missing(
                "no_default_connection",
                "this deployment has no default connection; read under /connections/{id}/",
            )
        })?;
        config.keys.check_for(authorization, &default).map_err(|denied| denied.refusal())?;
        return Ok(default);
    };
    let id = ConnectionId::parse(raw)?;
    config.keys.check_for(authorization, id.as_str()).map_err(|denied| denied.refusal())?;
    if config.default_location.as_deref() != Some(id.as_str())
        && connections::lookup(env, &id, now_ms()).await?.is_none()
    {
        return Err(unknown_connection().into());
    }
    Ok(id.to_string())
}

/// The id-map record under `key`, from the location's Durable Object.
async fn resolve(
    location: &ObjectStub<LocationCall>,
    key: String,
) -> std::result::Result<Option<Link>, Stop> {
    let answer: Value =
        location.call(&LocationCall::Read(ReadCall::Link), &LinkQuery { key }).await.map_err(|error| {
            console_error!(
                "{}",
                serde_json::json!({"msg": "id map unavailable", "error": error.to_string()})
            );
            Stop::Refused(Refusal::storage_unavailable("the id map could not be read; try again"))
        })?;
    Ok(serde_json::from_value(answer["link"].clone()).ok())
}

/// One read's collaborators, and who reads (the key's fingerprint).
struct Reader<'a> {
    config: &'a ReadConfig,
    location_id: &'a str,
    location: &'a ObjectStub<LocationCall>,
    key: &'a str,
}

impl Reader<'_> {
    /// Serves `route` from the cache when it may, otherwise from the API (caching a success).
    async fn read(
        &self,
        route: &ApiRoute,
        origin: &str,
        log: &mut ReadLog,
    ) -> std::result::Result<Response, Stop> {
        let cache_key = self.cache_key(route, origin).await?;
        let cache = match &cache_key {
            Some(_) => Some(Cache::open(CACHE_NAME.to_owned()).await),
            None => None,
        };
        if let (Some(cache), Some(key)) = (&cache, &cache_key) {
            if let Some(hit) = cached(cache, key).await {
                log.cache = "hit";
                return Ok(hit);
            }
            log.cache = "miss";
        }
        let response = self.send(route, log).await?;
        if let Some(refusal) = upstream_refusal(&response) {
            return Err(refusal.into());
        }
        if let (Some(cache), Some(key)) = (&cache, &cache_key) {
            if cacheable(&response) {
                self.store_in_cache(cache, key, &response).await;
            }
        }
        Ok(passthrough(&response, cache_key.as_ref().map(|_| "miss"))?)
    }

    /// The cache key at the contact's current read version, when caching is on and applies. The
    /// version comes from the location's Durable Object, the writer, so that a change is never
    /// followed by a cached answer from before it.
    async fn cache_key(&self, route: &ApiRoute, origin: &str) -> std::result::Result<Option<String>, Stop> {
        let Some(contact_id) = route.cached_contact().filter(|_| self.config.cache_ttl_secs > 0) else {
            return Ok(None);
        };
        let query = VersionQuery { contact_id: contact_id.as_str().to_owned() };
        let version: Value = match self.location.call(&LocationCall::Read(ReadCall::Version), &query).await {
            Ok(answer) => answer,
            Err(error) => {
                console_warn!(
                    "{}",
                    serde_json::json!({"msg": "read version unavailable", "error": error.to_string()})
                );
                return Ok(None);
            }
        };
        Ok(route.cache_key(origin, self.location_id, version["version"].as_u64().unwrap_or(0)))
    }

    /// Has the location's Durable Object check and send the call for `route` with the
    /// location's token (once more after a refused token), unless the reads' budget or the
    /// location's rate-limit window is spent.
    async fn send(&self, route: &ApiRoute, log: &mut ReadLog) -> std::result::Result<ApiResponse, Stop> {
        let query = SendQuery { path: route.request(self.location_id).path, key: self.key.to_owned() };
        match self.location.call::<_, Sent>(&LocationCall::Read(ReadCall::Send), &query).await? {
            Sent::Answered { response, api_calls } => {
                log.api_calls += api_calls;
                Ok(response)
            }
            Sent::RateLimited { until } => Err(Stop::RateLimited { until }),
            Sent::OverBudget { until } => Err(Stop::OverBudget { until }),
            Sent::Failed { failure, message, api_calls } => {
                log.api_calls += api_calls;
                let (status, code) = failure.answer();
                Err(Stop::Refused(Refusal::relayed(status, code, message)))
            }
        }
    }

    /// Stores a success for `READ_CACHE_TTL_SECS`. A failure only costs the next read an API call.
    async fn store_in_cache(&self, cache: &Cache, key: &str, response: &ApiResponse) {
        let stored = Response::from_json(&response.body).and_then(|stored| {
            let mut stored = stored.with_status(response.status);
            let max_age = format!("max-age={}", self.config.cache_ttl_secs);
            stored.headers_mut().set("Cache-Control", &max_age)?;
            Ok(stored)
        });
        let put = match stored {
            Ok(stored) => cache.put(key, stored).await,
            Err(error) => Err(error),
        };
        if let Err(error) = put {
            console_warn!("{}", serde_json::json!({"msg": "read not cached", "error": error.to_string()}));
        }
    }
}

/// A cached answer, rebuilt with the caller-facing headers; a cache error counts as a miss.
async fn cached(cache: &Cache, key: &str) -> Option<Response> {
    let mut hit = match cache.get(key, false).await {
        Ok(hit) => hit?,
        Err(error) => {
            console_warn!(
                "{}",
                serde_json::json!({"msg": "read cache unavailable", "error": error.to_string()})
            );
            return None;
        }
    };
    let status = hit.status_code();
    let body = hit.text().await.ok()?;
    let mut response = Response::from_bytes(body.into_bytes()).ok()?.with_status(status);
    let headers = response.headers_mut();
    for (name, value) in
        [("Content-Type", "application/json"), ("Cache-Control", "no-store"), (CACHE_HEADER, "hit")]
    {
        headers.set(name, value).ok()?;
    }
    Some(response)
}

/// The API's answer as the caller gets it: its status and JSON body, its `Retry-After` when it
/// sent one, and whether the cache was consulted.
fn passthrough(response: &ApiResponse, cache: Option<&str>) -> Result<Response> {
    let retry_after = response.retry_after_secs.map(|secs| secs.to_string());
    let mut headers = vec![("Cache-Control", "no-store")];
    headers.extend(retry_after.as_deref().map(|secs| ("Retry-After", secs)));
    headers.extend(cache.map(|state| (CACHE_HEADER, state)));
    respond::json_with_headers(response.status, &response.body, &headers)
}

/// The location is blocked by the Contacts API's rate limit.
const RATE_LIMITED: (&str, &str) = (
    "rate_limited",
    "the Contacts API's rate limit for this location is spent; try again after `Retry-After` seconds",
);
/// The reads' share of the location's rate limit (all reads', or this key's) is spent.
const OVER_BUDGET: (&str, &str) = (
    "read_budget_spent",
    "reads at this location (or with this key) have had their share of its rate limit (READ_SHARE_PERCENT, READ_KEY_SHARE_PERCENT); try again after `Retry-After` seconds",
);

/// 429 with the seconds until `until` as `Retry-After`, and why (`reason`: code and message).
fn rate_limited(until: UnixMillis, now: UnixMillis, reason: (&'static str, &str)) -> Result<Response> {
    let retry_after = ((until - now).max(0) as u64).div_ceil(1_000).max(1);
    let mut response = Refusal::too_many_requests(reason.0, reason.1, retry_after).response()?;
    response.headers_mut().set("Cache-Control", "no-store")?;
    Ok(response)
}

/// A refusal as JSON; a 401 also says how to authenticate.
fn refusal_response(refusal: &Refusal) -> Result<Response> {
    let mut response = refusal.response()?;
    if refusal.status == 401 {
        response.headers_mut().set("WWW-Authenticate", "Bearer")?;
    }
    Ok(response)
}

/// Why a read stopped before the API's answer could be passed on.
enum Stop {
    Refused(Refusal),
    /// The location's rate-limit window is spent until `until`: nothing was sent.
    RateLimited {
        until: UnixMillis,
    },
    /// The reads' budget is spent until `until`: nothing was sent.
    OverBudget {
        until: UnixMillis,
    },
    Failed(worker::Error),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Stop {
        Stop::Refused(refusal)
    }
}

impl From<worker::Error> for Stop {
    fn from(error: worker::Error) -> Stop {
        Stop::Failed(error)
    }
}

/// The one log line of a read: what was read, how, and how it ended.
struct ReadLog {
    started_at: i64,
    route: &'static str,
    cache: &'static str,
    api_calls: u32,
    error: Option<&'static str>,
}

impl ReadLog {
    fn new() -> ReadLog {
        ReadLog { started_at: now_ms(), route: "unrouted", cache: "off", api_calls: 0, error: None }
    }

    fn write(&self, status: u16) {
        console_log!(
            "{}",
            serde_json::json!({
                "msg": "read",
                "route": self.route,
                "status": status,
                "cache": self.cache,
                "api_calls": self.api_calls,
                "error": self.error,
                "latency_ms": now_ms() - self.started_at,
            })
        );
    }
}
