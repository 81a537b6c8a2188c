//! JSON answers: every response the worker gives, success or refusal, is built here; a
//! [`Refusal`] (the core's one error type) becomes a response only through [`Refusal::response`].

use serde_json::Value;
use worker::{Response, Result};

use crate::refusal::Refusal;

pub fn json(status: u16, body: &Value) -> Result<Response> {
    json_with_headers(status, body, &[])
}

/// A JSON answer with extra headers (`Retry-After`, the replay marker).
pub fn json_with_headers(status: u16, body: &Value, headers: &[(&str, &str)]) -> Result<Response> {
    let mut response = Response::from_json(body)?.with_status(status);
    for (name, value) in headers {
        response.headers_mut().set(name, value)?;
    }
    Ok(response)
}

impl Refusal {
    /// The one conversion of a refusal to an answer: its status, its body, and `Retry-After`
    /// when it carries one.
    /// A `misconfigured` refusal is logged here too, once, naming the setting (never its value).
    pub fn response(&self) -> Result<Response> {
        if self.code == "misconfigured" {
            worker::console_error!(
                "{}",
                serde_json::json!({"msg": "configuration error", "error": self.message})
            );
        }
        let retry_after = self.retry_after_secs.map(|secs| secs.to_string());
        let headers: Vec<(&str, &str)> =
            retry_after.iter().map(|secs| ("Retry-After", secs.as_str())).collect();
        json_with_headers(self.status, &self.body(), &headers)
    }
}
