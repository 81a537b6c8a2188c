//! The read path's core: SightMill's users read contacts, tasks, notes, appointments and contact
//! lists back through the worker, which holds the Contacts API credentials. Turns a worker path
//! and query into a typed [`ReadRoute`], builds the Contacts API [`ApiRequest`] for it, and decides
//! what the caller gets back and what may be cached.
//!
//! One read's way through: `edge::read_api` reads the settings ([`ReadConfig`]) and checks the
//! caller's key ([`crate::auth::api_keys`]) -> [`ReadRoute::parse`] -> the shell reads the id map in KV
//! for a SightMill id ([`ReadRoute::link_key`], [`ReadRoute::resolve`]) -> [`ApiRoute::request`] -> the shell sends it (with the token and the
//! `Version` header) -> [`upstream_refusal`] or the API's answer passed through, cached when
//! [`ApiRoute::cache_key`] allows.

use std::borrow::Cow;

use crate::auth::api_keys::ApiKeys;
use crate::config::{self, ConfigError};
use crate::contacts_api::{classify, Answer, ApiId, ApiRequest, ApiResponse};
use crate::intake::event::is_sightmill_id;
use crate::refusal::Refusal;
use crate::sync::records::{contact_key, Link};

pub mod budget;

/// The secret holding the read API's keys; unset turns the read API off.
pub const READ_KEYS_SETTING: &str = "READ_API_KEYS";
/// The var that turns edge caching of contact reads on (seconds; 0 = off).
pub const CACHE_TTL_SETTING: &str = "READ_CACHE_TTL_SECS";
/// Longest cache lifetime allowed: reads are cached briefly or not at all.
pub const MAX_CACHE_TTL_SECS: u32 = 3600;
/// Where the routes keyed by SightMill's own contact id live.
pub const SIGHTMILL_PREFIX: &str = "/sightmill/contacts/";
/// Path of the synthetic cache keys, below the worker's own origin.
const CACHE_KEY_PATH: &str = "/__sightmill-sync/read-cache/";

/// Query parameters of GET /contacts/ passed on to the API (`locationId` is the worker's).
const LIST_PARAMS: &[&str] = &["query", "limit", "startAfterId", "startAfter"];
/// Query parameters of GET /contacts/business/{businessId} passed on to the API.
const BUSINESS_PARAMS: &[&str] = &["query", "limit", "skip"];

/// Where a named connection's read routes live: `/connections/{id}/contacts/...`.
pub const CONNECTIONS_PREFIX: &str = "/connections/";

/// Whether `path` belongs to the read API (whatever the method), for the default connection or
/// under a connection's prefix.
pub fn handles(path: &str) -> bool {
    let (_, path) = split_connection(path);
    path == "/contacts" || path.starts_with("/contacts/") || path.starts_with(SIGHTMILL_PREFIX)
}

/// Splits `/connections/{id}/rest` into the raw id and `/rest`; other paths have no id.
pub fn split_connection(path: &str) -> (Option<&str>, &str) {
    let Some(rest) = path.strip_prefix(CONNECTIONS_PREFIX) else {
        return (None, path);
    };
    match rest.find('/') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (Some(rest), ""),
    }
}

/// The parts of a request URL the read API uses, split without parsing the host (a full URL
/// parser brings IDNA tables into the Wasm): `origin` is `scheme://host[:port]`, `path` is as
/// sent (still percent-encoded, `/` when empty), `query` is what follows `?` (no fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub origin: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

pub fn split_url(url: &str) -> UrlParts<'_> {
    let url = url.split('#').next().unwrap_or_default();
    let host_start = url.find("://").map_or(0, |at| at + 3);
    let path_start = url[host_start..].find(['/', '?']).map_or(url.len(), |at| host_start + at);
    let (path, query) = match url[path_start..].split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (&url[path_start..], None),
    };
    UrlParts { origin: &url[..path_start], path: if path.is_empty() { "/" } else { path }, query }
}

/// What the read API needs from the settings.
#[derive(Debug, Clone)]
pub struct ReadConfig {
    /// The default connection's location (`GHL_LOCATION_ID`), when the deployment has one.
    pub default_location: Option<String>,
    pub api_base: String,
    pub api_timeout_ms: u32,
    pub keys: ApiKeys,
    /// Seconds a contact's answers may be served from the edge cache; 0 = caching off.
    pub cache_ttl_secs: u32,
}

impl ReadConfig {
    /// Builds the read settings from `lookup` (a var or secret by name).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ReadConfig, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let keys = get(READ_KEYS_SETTING).ok_or(ConfigError::Missing(READ_KEYS_SETTING))?;
        Ok(ReadConfig {
            default_location: get("GHL_LOCATION_ID").map(|id| config::location_id(Some(id))).transpose()?,
            api_base: config::api_base(get("CONTACTS_API_BASE"))?,
            api_timeout_ms: config::api_timeout_ms(get("API_TIMEOUT_MS"))?,
            keys: ApiKeys::parse(&keys)
                .map_err(|error| config::invalid(READ_KEYS_SETTING, error.to_string()))?,
            cache_ttl_secs: cache_ttl_secs(get(CACHE_TTL_SETTING))?,
        })
    }
}

/// `READ_CACHE_TTL_SECS`: 0 (off, the default) to [`MAX_CACHE_TTL_SECS`].
pub fn cache_ttl_secs(value: Option<String>) -> Result<u32, ConfigError> {
    config::number(value, CACHE_TTL_SETTING, 0, 0..=MAX_CACHE_TTL_SECS)
}

/// The answer to a read when the settings are not usable: 404 `read_api_disabled` when no key is
/// configured, 500 `misconfigured` naming the setting (never its value) otherwise.
pub fn config_refusal(error: &ConfigError) -> Refusal {
    match error {
        ConfigError::Missing(name) if *name == READ_KEYS_SETTING => Refusal::missing(
            "read_api_disabled",
            "the read API is off: set the secret `READ_API_KEYS` to turn it on",
        ),
        other => Refusal::misconfigured(other.to_string()),
    }
}

/// What of a contact is read. Task and note ids are Contacts API record ids, checked like
/// contact ids (path-safe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Contact,
    Tasks,
    Task(ApiId),
    Notes,
    Note(ApiId),
    Appointments,
}

/// A read the Contacts API can answer as it is. The location's Durable Object sends only the
/// call of one: it parses the path the Worker hands it again ([`ApiRoute::of_request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRoute {
    /// GET /contacts/{contactId}[/tasks[/{taskId}] | /notes[/{id}] | /appointments].
    Contact { contact_id: ApiId, item: Item },
    /// GET /contacts/ with the caller's query parameters.
    List { query: Vec<(String, String)> },
    /// GET /contacts/business/{businessId} with the caller's query parameters.
    Business { business_id: ApiId, query: Vec<(String, String)> },
}

/// A parsed read: either ready for the API, or keyed by a SightMill id to resolve first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRoute {
    Api(ApiRoute),
    SightMill { sightmill_id: String, item: Item },
}

impl ReadRoute {
    /// Parses a worker path (percent-encoded, as received) and its query string.
    pub fn parse(path: &str, query: Option<&str>, location_id: &str) -> Result<ReadRoute, Refusal> {
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return Err(not_found());
        }
        let query = Query::parse(query, location_id);
        match segments.as_slice() {
            ["contacts"] => Ok(ReadRoute::Api(ApiRoute::List { query: query.keep(LIST_PARAMS)? })),
            ["contacts", "business", business_id] => Ok(ReadRoute::Api(ApiRoute::Business {
                business_id: record_id(business_id)?,
                query: query.keep(BUSINESS_PARAMS)?,
            })),
            ["contacts", contact_id, rest @ ..] => {
                let item = Item::parse(rest)?;
                query.keep(&[])?;
                Ok(ReadRoute::Api(ApiRoute::Contact { contact_id: record_id(contact_id)?, item }))
            }
            ["sightmill", "contacts", sightmill_id, rest @ ..] => {
                let item = Item::parse(rest)?;
                query.keep(&[])?;
                if !is_sightmill_id(sightmill_id) {
                    return Err(invalid_id());
                }
                Ok(ReadRoute::SightMill { sightmill_id: (*sightmill_id).to_owned(), item })
            }
            _ => Err(not_found()),
        }
    }
}

impl ReadRoute {
    /// The id-map key to read before this route can be sent: SightMill routes only.
    pub fn link_key(&self, location_id: &str) -> Option<String> {
        match self {
            ReadRoute::SightMill { sightmill_id, .. } => Some(contact_key(location_id, sightmill_id)),
            ReadRoute::Api(_) => None,
        }
    }

    /// The route for the API, given the id-map record read under [`ReadRoute::link_key`]:
    /// 404 `not_mapped` when a SightMill id has none (or its contact was deleted).
    pub fn resolve(self, link: Option<Link>) -> Result<ApiRoute, Refusal> {
        match self {
            ReadRoute::Api(route) => Ok(route),
            ReadRoute::SightMill { item, .. } => match link {
                Some(Link::Live { id, .. }) => Ok(ApiRoute::Contact { contact_id: id, item }),
                Some(Link::InDoubt(_) | Link::Deleted { .. }) | None => Err(not_mapped()),
            },
        }
    }
}

impl Item {
    fn parse(rest: &[&str]) -> Result<Item, Refusal> {
        match rest {
            [] => Ok(Item::Contact),
            ["tasks"] => Ok(Item::Tasks),
            ["tasks", id] => Ok(Item::Task(record_id(id)?)),
            ["notes"] => Ok(Item::Notes),
            ["notes", id] => Ok(Item::Note(record_id(id)?)),
            ["appointments"] => Ok(Item::Appointments),
            _ => Err(not_found()),
        }
    }

    /// The path below /contacts/{contactId}.
    fn suffix(&self) -> String {
        match self {
            Item::Contact => String::new(),
            Item::Tasks => "/tasks".into(),
            Item::Task(id) => format!("/tasks/{}", id.as_str()),
            Item::Notes => "/notes".into(),
            Item::Note(id) => format!("/notes/{}", id.as_str()),
            Item::Appointments => "/appointments".into(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Item::Contact => "contact",
            Item::Tasks => "contact.tasks",
            Item::Task(_) => "contact.task",
            Item::Notes => "contact.notes",
            Item::Note(_) => "contact.note",
            Item::Appointments => "contact.appointments",
        }
    }
}

impl ApiRoute {
    /// The Contacts API call: a GET of the same resource, lists with the worker's `locationId`.
    pub fn request(&self, location_id: &str) -> ApiRequest {
        let with_location = |path: String, query: &[(String, String)]| {
            let pairs = query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            ApiRequest::get(path).with_query(std::iter::once(("locationId", location_id)).chain(pairs))
        };
        match self {
            ApiRoute::Contact { contact_id, item } => {
                ApiRequest::get(format!("/contacts/{}{}", contact_id.as_str(), item.suffix()))
            }
            ApiRoute::List { query } => with_location("/contacts/".into(), query),
            ApiRoute::Business { business_id, query } => {
                with_location(format!("/contacts/business/{}", business_id.as_str()), query)
            }
        }
    }

    /// The route of a call's path as [`ApiRoute::request`] built it for `location_id`, parsed
    /// again by the read API's own parser (checked ids, the routes and parameters it offers):
    /// what a Durable Object is handed is sent only if the read API could have built it.
    pub fn of_request(path: &str, location_id: &str) -> Result<ApiRoute, Refusal> {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        if !path.starts_with('/') {
            return Err(not_found());
        }
        match ReadRoute::parse(path, query, location_id)? {
            ReadRoute::Api(route) => Ok(route),
            ReadRoute::SightMill { .. } => Err(not_found()),
        }
    }

    /// A short name for logs (`contact.tasks`, `contacts`, ...): no ids, no query.
    pub fn name(&self) -> &'static str {
        match self {
            ApiRoute::Contact { item, .. } => item.name(),
            ApiRoute::List { .. } => "contacts",
            ApiRoute::Business { .. } => "business.contacts",
        }
    }

    /// The contact whose read version governs cached copies of this answer. Lists have none and
    /// are never cached: any write may change them and no single version covers that.
    pub fn cached_contact(&self) -> Option<&ApiId> {
        match self {
            ApiRoute::Contact { contact_id, .. } => Some(contact_id),
            ApiRoute::List { .. } | ApiRoute::Business { .. } => None,
        }
    }

    /// The synthetic Cache API key of this answer at `version` of its contact, below the worker's
    /// own `origin`; `None` for answers that are never cached. A new version makes every older
    /// key unreachable.
    pub fn cache_key(&self, origin: &str, location_id: &str, version: u64) -> Option<String> {
        let ApiRoute::Contact { contact_id, item } = self else {
            return None;
        };
        Some(format!(
            "{origin}{CACHE_KEY_PATH}{location_id}/{}/v{version}{}",
            contact_id.as_str(),
            item.suffix()
        ))
    }
}

/// Whether an answer may be stored in the cache (given a cache key): successes only.
pub fn cacheable(response: &ApiResponse) -> bool {
    (200..300).contains(&response.status)
}

/// `readver:{contactId}`: the contact's read version in KV (a number; absent reads as 0). The
/// write path sets it to a new value after it changes the contact.
pub fn read_version_key(contact_id: &str) -> String {
    format!("readver:{contact_id}")
}

/// Whether the API refused the token (not the `Version` header): worth one retry after a refresh.
pub fn token_rejected(response: &ApiResponse) -> bool {
    response.status == 401 && classify(response) == Answer::TokenRejected
}

/// The answers the caller does not get as they are: a 401 is about the worker's credentials
/// (token or `Version`), not the caller's, so it becomes 502 `contacts_api_unauthorized` and a 401
/// from the worker always means the caller's key. Everything else passes through.
pub fn upstream_refusal(response: &ApiResponse) -> Option<Refusal> {
    (response.status == 401).then(|| {
        Refusal::bad_gateway(
            "contacts_api_unauthorized",
            format!(
                "the Contacts API refused the worker's credentials: {}",
                crate::contacts_api::api_message(&response.body)
            ),
        )
    })
}

/// 404 `not_mapped`: no Contacts API contact is known for this SightMill id. Like every answer
/// to a path, it does not repeat the path's ids (one could be a key sent by mistake).
fn not_mapped() -> Refusal {
    Refusal::missing(
        "not_mapped",
        "the SightMill contact in the path is not mapped to a Contacts API contact",
    )
}

fn not_found() -> Refusal {
    Refusal::not_found("no such route")
}

fn invalid_id() -> Refusal {
    Refusal::bad_request(
        "invalid_id",
        "an id in the path is not a valid id (1-64 characters of A-Z a-z 0-9 _ -)",
    )
}

fn record_id(text: &str) -> Result<ApiId, Refusal> {
    ApiId::parse(text).ok_or_else(invalid_id)
}

/// Echoed input is cut to 64 characters.
fn shorten(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(64) {
        Some((at, _)) => Cow::Owned(format!("{}...", &text[..at])),
        None => Cow::Borrowed(text),
    }
}

/// The caller's query parameters, decoded, minus a `locationId` equal to the worker's (the API's
/// own `nextPageUrl` carries one); a different `locationId` is remembered as an error.
struct Query {
    pairs: Vec<(String, String)>,
    foreign_location: bool,
}

impl Query {
    fn parse(query: Option<&str>, location_id: &str) -> Query {
        let mut pairs = Vec::new();
        let mut foreign_location = false;
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if name == "locationId" {
                foreign_location |= value != location_id;
            } else {
                pairs.push((name.into_owned(), value.into_owned()));
            }
        }
        Query { pairs, foreign_location }
    }

    /// The pairs, when every name is in `allowed`; 400 `invalid_query` otherwise.
    fn keep(self, allowed: &[&str]) -> Result<Vec<(String, String)>, Refusal> {
        if self.foreign_location {
            return Err(invalid_query("`locationId` is the worker's own location; leave it out".into()));
        }
        if let Some((name, _)) = self.pairs.iter().find(|(name, _)| !allowed.contains(&name.as_str())) {
            let expected = if allowed.is_empty() {
                "this route takes none".to_owned()
            } else {
                format!("expected: {}", allowed.join(", "))
            };
            return Err(invalid_query(format!(
                "`{}` is not a query parameter of this route ({expected})",
                shorten(name)
            )));
        }
        Ok(self.pairs)
    }
}

fn invalid_query(message: String) -> Refusal {
    Refusal::bad_request("invalid_query", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::HashMap;

    const LOC: &str = "loc-1";

    fn id(text: &str) -> ApiId {
        ApiId::parse(text).unwrap()
    }

    fn parse(path_and_query: &str) -> Result<ReadRoute, Refusal> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        ReadRoute::parse(path, query, LOC)
    }

    fn api_path(path_and_query: &str) -> String {
        match parse(path_and_query).unwrap() {
            ReadRoute::Api(route) => route.request(LOC).path,
            other => panic!("{other:?}"),
        }
    }

    fn refused(path_and_query: &str) -> (u16, &'static str) {
        let refusal = parse(path_and_query).unwrap_err();
        (refusal.status, refusal.code)
    }

    #[test]
    fn urls_split_into_origin_path_and_query() {
        let table = [
            ("https://w.example/contacts/", ("https://w.example", "/contacts/", None)),
            (
                "https://w.example:8443/contacts/?limit=2&a=/b#frag?x",
                ("https://w.example:8443", "/contacts/", Some("limit=2&a=/b")),
            ),
            ("http://w.test/a%3F%23%2Fb?", ("http://w.test", "/a%3F%23%2Fb", Some(""))),
            ("https://w.example?q=1", ("https://w.example", "/", Some("q=1"))),
            ("https://w.example#top", ("https://w.example", "/", None)),
            ("https://w.example", ("https://w.example", "/", None)),
        ];
        for (url, (origin, path, query)) in table {
            assert_eq!(split_url(url), UrlParts { origin, path, query }, "{url}");
        }
    }

    #[test]
    fn the_read_api_owns_the_contacts_paths() {
        for path in ["/contacts", "/contacts/", "/contacts/c1/notes", "/sightmill/contacts/x"] {
            assert!(handles(path), "{path}");
        }
        for path in ["/", "/contactsx", "/webhooks/sightmill", "/admin/status", "/sightmill/x"] {
            assert!(!handles(path), "{path}");
        }
    }

    #[test]
    fn each_route_becomes_a_get_of_the_same_resource() {
        let table = [
            ("/contacts/c1", "/contacts/c1"),
            ("/contacts/c1/", "/contacts/c1"),
            ("/contacts/c1/tasks", "/contacts/c1/tasks"),
            ("/contacts/c1/tasks/t-1", "/contacts/c1/tasks/t-1"),
            ("/contacts/c1/notes", "/contacts/c1/notes"),
            ("/contacts/c1/notes/n_1", "/contacts/c1/notes/n_1"),
            ("/contacts/c1/appointments", "/contacts/c1/appointments"),
            ("/contacts/", "/contacts/?locationId=loc-1"),
            ("/contacts", "/contacts/?locationId=loc-1"),
            (
                "/contacts/?limit=2&startAfterId=c9&startAfter=1700&query=Ada%20L",
                "/contacts/?locationId=loc-1&limit=2&startAfterId=c9&startAfter=1700&query=Ada+L",
            ),
            ("/contacts/?locationId=loc-1&query=a%26b", "/contacts/?locationId=loc-1&query=a%26b"),
            (
                "/contacts/business/b1?skip=5&limit=5&query=x",
                "/contacts/business/b1?locationId=loc-1&skip=5&limit=5&query=x",
            ),
        ];
        for (worker, api) in table {
            assert_eq!(api_path(worker), api, "{worker}");
            let ReadRoute::Api(route) = parse(worker).unwrap() else { panic!() };
            let request = route.request(LOC);
            assert_eq!((request.method.as_str(), request.body), ("GET", None));
        }
    }

    #[test]
    fn sightmill_routes_wait_for_their_id_to_be_resolved() {
        assert_eq!(
            parse("/sightmill/contacts/sm.1_a-b/tasks/t1").unwrap(),
            ReadRoute::SightMill { sightmill_id: "sm.1_a-b".into(), item: Item::Task(id("t1")) }
        );
        assert_eq!(
            parse("/sightmill/contacts/sm_1").unwrap(),
            ReadRoute::SightMill { sightmill_id: "sm_1".into(), item: Item::Contact }
        );
    }

    #[test]
    fn unusable_paths_and_queries_are_refused() {
        let table = [
            ("/contacts/c1/emails", (404, "not_found")),
            ("/contacts/c1/tasks/t1/completed", (404, "not_found")),
            ("/contacts//tasks", (404, "not_found")),
            ("/sightmill/contacts/", (404, "not_found")),
            ("/sightmill/contacts/sm_1/tags", (404, "not_found")),
            ("/contacts/a.b", (400, "invalid_id")),
            ("/contacts/a%2Fb/notes", (400, "invalid_id")),
            ("/contacts/c1/notes/..", (400, "invalid_id")),
            ("/contacts/business/b%20c", (400, "invalid_id")),
            ("/sightmill/contacts/sm%3A1", (400, "invalid_id")),
            ("/contacts/c1?fields=all", (400, "invalid_query")),
            ("/contacts/?sort=asc", (400, "invalid_query")),
            ("/contacts/?locationId=loc-2", (400, "invalid_query")),
            ("/contacts/business/b1?startAfter=1", (400, "invalid_query")),
            ("/sightmill/contacts/sm_1/notes?x=1", (400, "invalid_query")),
        ];
        for (path, expected) in table {
            assert_eq!(refused(path), expected, "{path}");
        }
    }

    #[test]
    fn refusals_echo_at_most_64_characters() {
        let long = "x".repeat(500);
        let refusal = parse(&format!("/contacts/?{long}=1")).unwrap_err();
        assert!(refusal.message.len() < 200, "{}", refusal.message);
    }

    #[test]
    fn only_contact_reads_have_a_cache_key_and_it_carries_the_version() {
        let ReadRoute::Api(task) = parse("/contacts/c1/tasks/t1").unwrap() else { panic!() };
        assert_eq!(task.cached_contact(), Some(&id("c1")));
        assert_eq!(
            task.cache_key("https://w.example", LOC, 7).as_deref(),
            Some("https://w.example/__sightmill-sync/read-cache/loc-1/c1/v7/tasks/t1")
        );
        assert_ne!(task.cache_key("https://w.example", LOC, 8), task.cache_key("https://w.example", LOC, 7));
        for list in ["/contacts/", "/contacts/business/b1"] {
            let ReadRoute::Api(route) = parse(list).unwrap() else { panic!() };
            assert_eq!(route.cached_contact(), None);
            assert_eq!(route.cache_key("https://w.example", LOC, 1), None);
        }
        assert_eq!(read_version_key("c1"), "readver:c1");
    }

    fn response(status: u16, body: Value) -> ApiResponse {
        ApiResponse { status, body, retry_after_secs: None }
    }

    #[test]
    fn answers_pass_through_except_a_401() {
        for status in [200, 400, 404, 422, 429, 500, 503] {
            assert_eq!(upstream_refusal(&response(status, Value::Null)), None);
        }
        let token = response(401, json!({"message": "Invalid JWT"}));
        let refusal = upstream_refusal(&token).unwrap();
        assert_eq!((refusal.status, refusal.code), (502, "contacts_api_unauthorized"));
        assert!(refusal.message.contains("Invalid JWT"));
        assert!(token_rejected(&token));
        let version = response(401, json!({"message": "version header was not found."}));
        assert!(!token_rejected(&version), "a Version problem is not retried");
        assert!(upstream_refusal(&version).is_some());
        assert!(cacheable(&response(200, Value::Null)));
        assert!(!cacheable(&response(404, Value::Null)));
    }

    fn config(pairs: &[(&str, &str)]) -> Result<ReadConfig, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ReadConfig::from_lookup(|name| map.get(name).cloned())
    }

    const KEYS: (&str, &str) = ("READ_API_KEYS", "read-key-0123456789abcdef");

    #[test]
    fn settings_default_to_no_cache_and_refuse_clearly() {
        let read = config(&[("GHL_LOCATION_ID", LOC), KEYS]).unwrap();
        assert_eq!(read.cache_ttl_secs, 0);
        assert_eq!(read.api_timeout_ms, config::DEFAULT_API_TIMEOUT_MS);
        assert!(read.keys.accepts(KEYS.1));
        let cached = config(&[("GHL_LOCATION_ID", LOC), KEYS, (CACHE_TTL_SETTING, "30")]);
        assert_eq!(cached.unwrap().cache_ttl_secs, 30);

        let disabled = config_refusal(&config(&[("GHL_LOCATION_ID", LOC)]).unwrap_err());
        assert_eq!((disabled.status, disabled.code), (404, "read_api_disabled"));
        assert_eq!(config(&[KEYS]).unwrap().default_location, None, "named connections only");
        let cases = [
            vec![("GHL_LOCATION_ID", "loc/1"), KEYS],
            vec![("GHL_LOCATION_ID", LOC), ("READ_API_KEYS", "hunter2")],
            vec![("GHL_LOCATION_ID", LOC), KEYS, (CACHE_TTL_SETTING, "3601")],
        ];
        for pairs in cases {
            let refusal = config_refusal(&config(&pairs).unwrap_err());
            assert_eq!((refusal.status, refusal.code), (500, "misconfigured"));
            assert!(!refusal.message.contains("hunter2"), "{}", refusal.message);
        }
    }

    #[test]
    fn a_connection_prefix_carries_the_same_routes() {
        assert!(
            handles("/connections/loc-b/contacts/c1")
                && handles("/connections/loc-b/sightmill/contacts/sm_1")
        );
        assert!(!handles("/connections/loc-b") && !handles("/connections/loc-b/admin"));
        assert_eq!(split_connection("/connections/loc-b/contacts/c1"), (Some("loc-b"), "/contacts/c1"));
        assert_eq!(split_connection("/connections/a%2Fb/contacts"), (Some("a%2Fb"), "/contacts"));
        assert_eq!(split_connection("/contacts/c1"), (None, "/contacts/c1"));
    }

    #[test]
    fn a_durable_object_sends_only_calls_the_read_api_could_have_built() {
        for path in [
            "/contacts/c1",
            "/contacts/c1/notes/n1",
            "/contacts/c1/appointments",
            "/contacts/?query=Ada+L%26x&limit=5",
            "/contacts/business/b1?skip=10",
        ] {
            let ReadRoute::Api(route) = parse(path).unwrap() else { panic!("{path}") };
            let built = route.request(LOC).path;
            assert_eq!(ApiRoute::of_request(&built, LOC).unwrap(), route, "{built}");
        }
        for path in [
            "@evil.example/contacts/c1",
            "//evil.example/contacts/c1",
            "/contacts/../admin",
            "/contacts/c1/tags",
            "/contacts/?locationId=loc-2",
            "/sightmill/contacts/sm_1",
            "/contacts/c1?x=1",
        ] {
            assert!(ApiRoute::of_request(path, LOC).is_err(), "{path}");
        }
    }

    #[test]
    fn a_sightmill_id_resolves_through_the_id_map() {
        let route = parse("/sightmill/contacts/sm_1/notes/n1").unwrap();
        assert_eq!(route.link_key(LOC).as_deref(), Some("contact:loc-1:sm_1"));
        let link =
            Link::Live { id: id("c9"), updated_at: 1, status_tag: None, completed_at: None, digest: None };
        let resolved = route.clone().resolve(Some(link.clone())).unwrap();
        assert_eq!(resolved.request(LOC).path, "/contacts/c9/notes/n1");

        let deleted = route.clone().resolve(Some(Link::Deleted { updated_at: 2 })).unwrap_err();
        assert_eq!((deleted.status, deleted.code), (404, "not_mapped"));
        let refusal = route.resolve(None).unwrap_err();
        assert_eq!((refusal.status, refusal.code), (404, "not_mapped"));
        assert!(!refusal.message.contains("sm_1"), "the path is not repeated");

        let direct = parse("/contacts/c1").unwrap();
        assert_eq!(direct.link_key(LOC), None);
        let resolved = direct.resolve(Some(link)).unwrap();
        assert_eq!(resolved.request(LOC).path, "/contacts/c1", "a link never redirects");
    }
}
