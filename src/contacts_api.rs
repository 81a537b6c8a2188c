//! The Contacts API v2 as data: the requests the core plans and the classification of each answer.
//! The shell only turns an [`ApiRequest`] into a `Fetch` and a response back into an [`ApiResponse`].

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Production base URL; `CONTACTS_API_BASE` overrides it (the simulator in tests and dev).
pub const DEFAULT_BASE_URL: &str = "https://services.leadconnectorhq.com";
/// Every call carries `Version: 2021-07-28`; without it the API answers 401.
pub const API_VERSION: &str = "2021-07-28";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One planned call: method, path below the base URL (with its `?query` when it has one), and
/// JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl ApiRequest {
    /// POST /contacts/ with `locationId` added to `fields`.
    pub fn create_contact(location_id: &str, mut fields: Map<String, Value>) -> ApiRequest {
        fields.insert("locationId".into(), Value::String(location_id.to_owned()));
        ApiRequest { method: Method::Post, path: "/contacts/".into(), body: Some(Value::Object(fields)) }
    }

    /// PUT /contacts/{contactId}.
    pub fn update_contact(contact_id: &ApiId, fields: Map<String, Value>) -> ApiRequest {
        Self::put(format!("/contacts/{contact_id}"), Value::Object(fields))
    }

    /// DELETE /contacts/{contactId}.
    pub fn delete_contact(contact_id: &ApiId) -> ApiRequest {
        Self::delete(format!("/contacts/{contact_id}"), None)
    }

    /// POST /contacts/{contactId}/tags (adds; never PUT tags, that overwrites them all).
    pub fn add_tags(contact_id: &ApiId, tags: &[String]) -> ApiRequest {
        Self::post(format!("/contacts/{contact_id}/tags"), json!({ "tags": tags }))
    }

    /// DELETE /contacts/{contactId}/tags.
    pub fn remove_tags(contact_id: &ApiId, tags: &[String]) -> ApiRequest {
        Self::delete(format!("/contacts/{contact_id}/tags"), Some(json!({ "tags": tags })))
    }

    /// POST /contacts/{contactId}/notes, or PUT /contacts/{contactId}/notes/{id} when it exists.
    pub fn upsert_note(contact_id: &ApiId, note_id: Option<&ApiId>, body: Value) -> ApiRequest {
        match note_id {
            Some(id) => Self::put(format!("/contacts/{contact_id}/notes/{id}"), body),
            None => Self::post(format!("/contacts/{contact_id}/notes"), body),
        }
    }

    /// DELETE /contacts/{contactId}/notes/{id}.
    pub fn delete_note(contact_id: &ApiId, note_id: &ApiId) -> ApiRequest {
        Self::delete(format!("/contacts/{contact_id}/notes/{note_id}"), None)
    }

    /// POST /contacts/{contactId}/tasks, or PUT /contacts/{contactId}/tasks/{taskId} when it exists.
    /// The PUT carries a whole snapshot: a body the task no longer has is sent empty, to clear it.
    pub fn upsert_task(contact_id: &ApiId, task_id: Option<&ApiId>, mut body: Value) -> ApiRequest {
        match task_id {
            Some(id) => {
                if let Some(fields) = body.as_object_mut() {
                    fields.entry("body").or_insert_with(|| json!(""));
                }
                Self::put(format!("/contacts/{contact_id}/tasks/{id}"), body)
            }
            None => Self::post(format!("/contacts/{contact_id}/tasks"), body),
        }
    }

    /// PUT /contacts/{contactId}/tasks/{taskId}/completed.
    pub fn complete_task(contact_id: &ApiId, task_id: &ApiId) -> ApiRequest {
        let path = format!("/contacts/{contact_id}/tasks/{task_id}/completed");
        Self::put(path, json!({ "completed": true }))
    }

    /// DELETE /contacts/{contactId}/tasks/{taskId}.
    pub fn delete_task(contact_id: &ApiId, task_id: &ApiId) -> ApiRequest {
        Self::delete(format!("/contacts/{contact_id}/tasks/{task_id}"), None)
    }

    /// The full URL of this call below `base` (a checked `http(s)://` setting): its path is the
    /// core's own building (`/` and then segments of `A-Z a-z 0-9 _ -`, no empty one but a
    /// trailing slash, a form-encoded query), so that joining cannot leave `base`'s host (a path
    /// such as `@host/...` or `//host/...` is refused, never sent).
    pub fn url(&self, base: &str) -> Result<String, String> {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let segments: Vec<&str> =
            path.strip_prefix('/').map(|rest| rest.split('/').collect()).unwrap_or_default();
        let last = segments.len().saturating_sub(1);
        let segment_ok = |(index, segment): (usize, &&str)| {
            (!segment.is_empty() || index == last)
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let query_ok = query.bytes().all(|b| b.is_ascii_alphanumeric() || b"%+=&*-._".contains(&b));
        if segments.is_empty() || !segments.iter().enumerate().all(segment_ok) || !query_ok {
            return Err("the call's path is not one the worker builds".to_owned());
        }
        Ok(format!("{base}{}", self.path))
    }

    /// GET `path` (no body).
    pub fn get(path: impl Into<String>) -> ApiRequest {
        ApiRequest { method: Method::Get, path: path.into(), body: None }
    }

    /// Appends `pairs` to the path as a URL-encoded query string (`?name=value&...`).
    pub fn with_query<'a>(mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut pairs = pairs.into_iter().peekable();
        if pairs.peek().is_some() {
            let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            self.path = format!("{}?{query}", self.path);
        }
        self
    }

    /// POST `path` with a JSON body.
    pub fn post(path: impl Into<String>, body: Value) -> ApiRequest {
        let path = path.into();
        ApiRequest { method: Method::Post, path, body: Some(body) }
    }

    fn put(path: String, body: Value) -> ApiRequest {
        ApiRequest { method: Method::Put, path, body: Some(body) }
    }

    fn delete(path: String, body: Option<Value>) -> ApiRequest {
        ApiRequest { method: Method::Delete, path, body }
    }
}

/// A Contacts API record id (contact, note, task), checked to be safe inside a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiId(String);

impl ApiId {
    pub fn parse(text: &str) -> Option<ApiId> {
        let safe = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        safe.then(|| ApiId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ApiId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ApiId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        ApiId::parse(&text).ok_or_else(|| "not a usable contact id".to_owned())
    }
}

impl From<ApiId> for String {
    fn from(id: ApiId) -> String {
        id.0
    }
}

/// What came back, reduced to what the core needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiResponse {
    pub status: u16,
    /// The parsed JSON body, or `Null` when it was empty or not JSON.
    pub body: Value,
    /// `Retry-After` in seconds, when present and numeric.
    pub retry_after_secs: Option<u64>,
}

/// The meaning of an answer (or of a failure to get one).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx, with the body.
    Success(Value),
    /// 400 from POST /contacts/ naming an existing contact (`meta.contactId`).
    Duplicate(ApiId),
    /// 401 about the token: a refresh may fix it.
    TokenRejected,
    /// 401 about the `Version` header: a configuration error no retry fixes.
    VersionRejected,
    /// 429: try again after this many seconds (when the API said).
    RateLimited { retry_after_secs: Option<u64> },
    /// 408, 425, 5xx, a timeout or a network failure: retrying may help.
    Unavailable { detail: String },
    /// Any other 4xx: retrying will not help; the API's own message is kept.
    Rejected { status: u16, message: String },
}

impl Answer {
    /// A request that never got an answer (timeout, connection refused).
    pub fn transport_failure(detail: impl Into<String>) -> Answer {
        Answer::Unavailable { detail: detail.into() }
    }
}

/// Classifies one response.
pub fn classify(response: &ApiResponse) -> Answer {
    let message = api_message(&response.body);
    match response.status {
        200..=299 => Answer::Success(response.body.clone()),
        400 => match duplicate_of(&response.body) {
            Some(id) => Answer::Duplicate(id),
            None => rejected(400, message),
        },
        401 if message.to_ascii_lowercase().contains("version header") => Answer::VersionRejected,
        401 => Answer::TokenRejected,
        429 => Answer::RateLimited { retry_after_secs: response.retry_after_secs },
        status @ (408 | 425 | 500..=599) => {
            Answer::Unavailable { detail: format!("HTTP {status}: {message}") }
        }
        status => rejected(status, message),
    }
}

fn rejected(status: u16, message: String) -> Answer {
    Answer::Rejected { status, message }
}

fn duplicate_of(body: &Value) -> Option<ApiId> {
    body.pointer("/meta/contactId").and_then(Value::as_str).and_then(ApiId::parse)
}

/// The API's `message` (a string or a list of strings), cut to 300 characters.
pub fn api_message(body: &Value) -> String {
    let text = match body.get("message") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "),
        _ => String::from("(no message)"),
    };
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: Value) -> ApiResponse {
        ApiResponse { status, body, retry_after_secs: None }
    }

    #[test]
    fn answers_are_classified_by_status_and_body() {
        let id = ApiId::parse("abc123").unwrap();
        let table = vec![
            (response(201, json!({"contact": {}})), Answer::Success(json!({"contact": {}}))),
            (
                response(
                    400,
                    json!({"message": "This location does not allow duplicated contacts.", "meta": {"contactId": "abc123"}}),
                ),
                Answer::Duplicate(id),
            ),
            (
                response(400, json!({"message": "dup", "meta": {"contactId": "../x"}})),
                Answer::Rejected { status: 400, message: "dup".into() },
            ),
            (response(401, json!({"message": "version header was not found."})), Answer::VersionRejected),
            (response(401, json!({"message": "Invalid JWT"})), Answer::TokenRejected),
            (
                ApiResponse { status: 429, body: Value::Null, retry_after_secs: Some(7) },
                Answer::RateLimited { retry_after_secs: Some(7) },
            ),
            (response(503, Value::Null), Answer::Unavailable { detail: "HTTP 503: (no message)".into() }),
            (
                response(408, json!({"message": "Request Timeout"})),
                Answer::Unavailable { detail: "HTTP 408: Request Timeout".into() },
            ),
            (response(425, Value::Null), Answer::Unavailable { detail: "HTTP 425: (no message)".into() }),
            (
                response(
                    422,
                    json!({"message": ["property foo should not exist", "email must be an email"]}),
                ),
                Answer::Rejected {
                    status: 422,
                    message: "property foo should not exist; email must be an email".into(),
                },
            ),
            (
                response(403, json!({"message": "no access"})),
                Answer::Rejected { status: 403, message: "no access".into() },
            ),
        ];
        for (input, expected) in table {
            assert_eq!(classify(&input), expected, "{input:?}");
        }
    }

    #[test]
    fn requests_are_shaped_as_the_api_expects() {
        let mut fields = Map::new();
        fields.insert("email".into(), json!("a@b.c"));
        let create = ApiRequest::create_contact("loc-1", fields.clone());
        assert_eq!(create.method, Method::Post);
        assert_eq!(create.path, "/contacts/");
        assert_eq!(create.body, Some(json!({"email": "a@b.c", "locationId": "loc-1"})));

        let update = ApiRequest::update_contact(&ApiId::parse("c1").unwrap(), fields);
        assert_eq!((update.method, update.path.as_str()), (Method::Put, "/contacts/c1"));
        assert_eq!(update.body, Some(json!({"email": "a@b.c"})));
    }

    #[test]
    fn a_get_may_carry_an_encoded_query() {
        let plain = ApiRequest::get("/contacts/c1/tasks");
        assert_eq!(
            (plain.method, plain.path.as_str(), plain.body),
            (Method::Get, "/contacts/c1/tasks", None)
        );
        let base = "https://services.example";
        let tasks = ApiRequest::get("/contacts/c1/tasks");
        assert_eq!(tasks.url(base).unwrap(), "https://services.example/contacts/c1/tasks");
        for path in
            ["@evil.example/x", "//evil.example/x", "/contacts/../x", "/contacts//x", "/c/a b", "/c?x=<"]
        {
            assert!(ApiRequest::get(path).url(base).is_err(), "{path}");
        }
        let empty = ApiRequest::get("/contacts/").with_query([]);
        assert_eq!(empty.path, "/contacts/");
        let listed =
            ApiRequest::get("/contacts/").with_query([("locationId", "loc-1"), ("query", "Ada L&x=1")]);
        assert_eq!(listed.path, "/contacts/?locationId=loc-1&query=Ada+L%26x%3D1");
        assert!(listed.url(base).is_ok());
    }

    #[test]
    fn contact_ids_must_be_path_safe() {
        for bad in ["", "a/b", "a?b", "a b", "..", &"x".repeat(65)] {
            assert_eq!(ApiId::parse(bad), None, "{bad}");
        }
        assert!(ApiId::parse("seD4PfOuKoVMLkEZqohJ").is_some());
    }
}
