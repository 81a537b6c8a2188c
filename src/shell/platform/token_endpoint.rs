//! Sends one grant to the OAuth token endpoint with `Fetch` (form body, timeout) and hands the
//! answer to the core's [`interpret`]: the only place a client secret, code or refresh token goes
//! on the wire.

use serde_json::Value;
use worker::{Headers, Method, Request};

use super::http::{self, fetch_with_timeout, TransportFailure};

use crate::auth::token_endpoint::{interpret, token_request_as, Grant, OAuthClient, TokenAnswer, UserType};
use crate::auth::token_record::{TokenError, TokenRecord};

/// How long the token endpoint may take to answer.
const TIMEOUT_MS: u32 = 10_000;

/// Trades `grant` for a location's token record (`now_ms`: when it is sent; the lifetime counts
/// from then).
pub async fn exchange(client: &OAuthClient, grant: &Grant, now_ms: i64) -> Result<TokenRecord, TokenError> {
    exchange_as(client, grant, UserType::Location, now_ms).await
}

/// Trades `grant` for a token record acting as `user_type` (an agency's: `Company`).
pub async fn exchange_as(
    client: &OAuthClient,
    grant: &Grant,
    user_type: UserType,
    now_ms: i64,
) -> Result<TokenRecord, TokenError> {
    let request = token_request_as(client, grant, user_type);
    let answer = post(&request.url, request.form.expose()).await.map_err(|detail| {
        TokenError::Unavailable(format!(
            "the token endpoint did not answer the {} grant: {detail}",
            grant.name()
        ))
    })?;
    interpret(&answer, client, grant, now_ms)
}

/// POSTs the form; `Err` describes a failure to get any answer.
async fn post(url: &str, form: &str) -> Result<TokenAnswer, String> {
    let fetch_request = build(url, form).map_err(|_| "the request could not be built".to_owned())?;
    match fetch_with_timeout(fetch_request, TIMEOUT_MS).await {
        Ok((response, text)) => Ok(TokenAnswer {
            status: response.status_code(),
            body: serde_json::from_slice(text.as_bytes()).unwrap_or(Value::Null),
        }),
        Err(TransportFailure::Timeout(ms)) => Err(format!("no answer within {ms} ms")),
        Err(_) => Err("network error".to_owned()),
    }
}

fn build(url: &str, form: &str) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/x-www-form-urlencoded")?;
    headers.set("Accept", "application/json")?;
    http::request(Method::Post, url, &headers, Some(form))
}
