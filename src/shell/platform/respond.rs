//! JSON answers: every response the worker gives, success or refusal, is built here.

use serde_json::Value;
use worker::{Response, Result};

use crate::intake::Refusal;

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

/// `{"error": code, "message": message}` with `status`.
pub fn error(status: u16, code: &'static str, message: impl Into<String>) -> Result<Response> {
    refusal(&Refusal::new(status, code, message))
}

pub fn refusal(refusal: &Refusal) -> Result<Response> {
    json(refusal.status, &refusal.body())
}
