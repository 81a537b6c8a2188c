//! Sends one grant to the OAuth token endpoint with `Fetch` (form body, timeout) and hands the
//! answer to the core's [`interpret`]: the only place a client secret, code or refresh token goes
//! on the wire.

use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{Headers, Method, Request, RequestInit};

use super::http::{fetch_with_timeout, TransportFailure};

use crate::auth::token_endpoint::{
    interpret, interpret_location_token, token_request_as, Grant, LocationTokenRequest, TokenAnswer, UserType,
};
use crate::auth::tokens::{OAuthClient, TokenError, TokenRecord};
use crate::connections::agency::API_VERSION;
use crate::secret::Secret;

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
    let answer = post(&request.url, request.form.expose(), None).await.map_err(|detail| {
        TokenError::Unavailable(format!(
            "the token endpoint did not answer the {} grant: {detail}",
            grant.name()
        ))
    })?;
    interpret(&answer, client, grant, now_ms)
}

/// Mints a location token with the agency's company token (`POST /oauth/locationToken`).
#[allow(dead_code)] // for the location's agency token source (the location's side of issue 16)
pub async fn mint_location_token(
    request: &LocationTokenRequest,
    location_id: &str,
    now_ms: i64,
) -> Result<TokenRecord, TokenError> {
    let answer = post(&request.url, &request.form, Some(&request.bearer)).await.map_err(|detail| {
        TokenError::Unavailable(format!("the location token endpoint did not answer: {detail}"))
    })?;
    interpret_location_token(&answer, location_id, now_ms)
}

/// POSTs a form (with a bearer token and the API version when `bearer` is given); `Err`
/// describes a failure to get any answer.
async fn post(url: &str, form: &str, bearer: Option<&Secret>) -> Result<TokenAnswer, String> {
    let fetch_request = build(url, form, bearer).map_err(|_| "the request could not be built".to_owned())?;
    match fetch_with_timeout(fetch_request, TIMEOUT_MS).await {
        Ok((response, text)) => Ok(TokenAnswer {
            status: response.status_code(),
            body: serde_json::from_slice(text.as_bytes()).unwrap_or(Value::Null),
        }),
        Err(TransportFailure::Timeout(ms)) => Err(format!("no answer within {ms} ms")),
        Err(_) => Err("network error".to_owned()),
    }
}

fn build(url: &str, form: &str, bearer: Option<&Secret>) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/x-www-form-urlencoded")?;
    headers.set("Accept", "application/json")?;
    if let Some(token) = bearer {
        headers.set("Authorization", &format!("Bearer {}", token.expose()))?;
        headers.set("Version", API_VERSION)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(JsValue::from_str(form)));
    Request::new_with_init(url, &init)
}
