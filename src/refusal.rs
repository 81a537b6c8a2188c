//! The one error type for HTTP answers: every refusal the worker gives (webhook intake, operator,
//! read and install routes, the Durable Objects' internal routes) is a [`Refusal`] made by one of
//! the named constructors below, and becomes a response in one place
//! (`shell::platform::respond`, the only part that knows `worker::Response`).
//!
//! The body is always `{"error": code, "message": ...}`, with any [`Refusal::with`] fields beside.

use std::fmt::Display;

use serde_json::{json, Map, Value};

/// A refusal: the status the caller gets and a JSON body saying what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Fields of the body beside `error` and `message` (e.g. `pending`, `scope`, `entry`).
    pub fields: Vec<(&'static str, Value)>,
    /// Seconds the caller should wait before trying again (`Retry-After`).
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status, code, message: message.into(), fields: Vec::new(), retry_after_secs: None }
    }

    /// An answer with a status another part of the worker decided (a Durable Object's answer,
    /// an API failure's mapping), passed on unchanged.
    pub fn relayed(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(status, code, message)
    }

    /// 400: the request is malformed in the way `code` names.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(400, code, message)
    }

    /// 401: who sent it could not be established (`code`: missing key, invalid key, state, link).
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(401, code, message)
    }

    /// 401 `invalid_signature`: the webhook's signature does not verify (or no longer counts).
    pub fn invalid_signature(message: impl Into<String>) -> Refusal {
        Refusal::unauthorized("invalid_signature", message)
    }

    /// 403: known, but not allowed this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(403, code, message)
    }

    /// 404 `not_found`: no such route.
    pub fn not_found(message: impl Into<String>) -> Refusal {
        Refusal::new(404, "not_found", message)
    }

    /// 404 with a code saying what is missing (`unknown_connection`, `read_api_disabled`, ...).
    pub fn missing(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(404, code, message)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> Refusal {
        Refusal::new(405, "method_not_allowed", message)
    }

    /// 409: the request conflicts with what is on record.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(409, code, message)
    }

    /// 413: too large (`body_too_large`, `mapping_too_large`).
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(413, code, message)
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(message: impl Into<String>) -> Refusal {
        Refusal::new(415, "unsupported_media_type", message)
    }

    /// 422: well-formed but not something the worker can use.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(422, code, message)
    }

    /// 429: over a rate limit or budget; try again after `retry_after_secs`.
    pub fn too_many_requests(
        code: &'static str,
        message: impl Into<String>,
        retry_after_secs: u64,
    ) -> Refusal {
        Refusal { retry_after_secs: Some(retry_after_secs), ..Refusal::new(429, code, message) }
    }

    /// 500 `misconfigured`: a setting is missing or invalid. The message is the setting error's,
    /// which names the setting and never its value.
    pub fn misconfigured(error: impl Display) -> Refusal {
        Refusal::new(500, "misconfigured", error.to_string())
    }

    /// 500 `internal_error`: the worker could not answer; its log says why.
    pub fn internal(message: impl Into<String>) -> Refusal {
        Refusal::new(500, "internal_error", message)
    }

    /// 502: the Contacts API or the token endpoint answered something unusable.
    pub fn bad_gateway(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(502, code, message)
    }

    /// 503 `storage_unavailable`: SQLite, KV or the Directory could not be read or written.
    pub fn storage_unavailable(message: impl Into<String>) -> Refusal {
        Refusal::new(503, "storage_unavailable", message)
    }

    /// 503 with a code saying what is unavailable (`token_unavailable`, `mapping_unusable`, ...).
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(503, code, message)
    }

    /// Adds a field to the body beside `error` and `message`.
    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> Refusal {
        self.fields.push((name, value.into()));
        self
    }

    /// `{"error": code, "message": message, ...fields}`.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        for (name, value) in &self.fields {
            body.insert((*name).into(), value.clone());
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    #[test]
    fn each_constructor_keeps_its_status_and_code() {
        let cases = [
            (Refusal::bad_request("malformed_json", "m"), 400, "malformed_json"),
            (Refusal::invalid_signature("m"), 401, "invalid_signature"),
            (Refusal::unauthorized("invalid_api_key", "m"), 401, "invalid_api_key"),
            (Refusal::forbidden("install_not_allowed", "m"), 403, "install_not_allowed"),
            (Refusal::not_found("m"), 404, "not_found"),
            (Refusal::missing("unknown_connection", "m"), 404, "unknown_connection"),
            (Refusal::method_not_allowed("m"), 405, "method_not_allowed"),
            (Refusal::conflict("not_parked", "m"), 409, "not_parked"),
            (Refusal::too_large("body_too_large", "m"), 413, "body_too_large"),
            (Refusal::unsupported_media_type("m"), 415, "unsupported_media_type"),
            (Refusal::unprocessable("unprocessable_event", "m"), 422, "unprocessable_event"),
            (Refusal::too_many_requests("rate_limited", "m", 3), 429, "rate_limited"),
            (Refusal::misconfigured("m"), 500, "misconfigured"),
            (Refusal::internal("m"), 500, "internal_error"),
            (Refusal::bad_gateway("no_location", "m"), 502, "no_location"),
            (Refusal::storage_unavailable("m"), 503, "storage_unavailable"),
            (Refusal::unavailable("token_unavailable", "m"), 503, "token_unavailable"),
            (Refusal::relayed(418, "teapot", "m"), 418, "teapot"),
        ];
        for (refusal, status, code) in cases {
            assert_eq!((refusal.status, refusal.code), (status, code));
            assert_eq!(refusal.body(), json!({ "error": code, "message": "m" }));
        }
        assert_eq!(Refusal::too_many_requests("rate_limited", "m", 3).retry_after_secs, Some(3));
    }

    #[test]
    fn extra_fields_sit_beside_error_and_message() {
        let refusal = Refusal::conflict("pending_events", "2 webhooks are not finished").with("pending", 2);
        assert_eq!(
            refusal.body(),
            json!({ "error": "pending_events", "message": "2 webhooks are not finished", "pending": 2 })
        );
        let scoped = Refusal::forbidden("missing_scope", "m").with("scope", Value::Null);
        assert_eq!(scoped.body()["scope"], Value::Null, "a field set to null is still written");
    }

    #[test]
    fn misconfigured_names_the_setting_never_its_value() {
        let error = ConfigError::Invalid { name: "TOKEN_ENCRYPTION_KEYS", reason: "bad key id".into() };
        let refusal = Refusal::misconfigured(&error);
        assert_eq!((refusal.status, refusal.code), (500, "misconfigured"));
        assert_eq!(refusal.message, "the setting `TOKEN_ENCRYPTION_KEYS` is invalid: bad key id");
    }
}
