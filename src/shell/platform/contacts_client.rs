//! Sends one planned [`ApiRequest`] to the Contacts API with `Fetch` (bearer token, `Version`
//! header, timeout) and returns the answer with its rate-limit headers. Only the location's
//! Durable Object calls it, for writes and reads alike.

use serde_json::Value;
use worker::{Headers, Method, Request, Response};

pub use super::http::TransportFailure;
use super::http::{self, fetch_with_timeout};

use crate::contacts_api::{ApiRequest, ApiResponse, Method as ApiMethod, API_VERSION};
use crate::secret::Secret;
use crate::sync::retry::RateHeaders;

pub struct ContactsClient<'a> {
    pub base_url: &'a str,
    pub token: &'a Secret,
    pub timeout_ms: u32,
}

impl ContactsClient<'_> {
    /// The API's answer (status, JSON body, `Retry-After`) and its rate-limit headers, or why
    /// there was none.
    pub async fn send_raw(
        &self,
        request: &ApiRequest,
    ) -> Result<(ApiResponse, RateHeaders), TransportFailure> {
        let fetch_request =
            self.build(request).map_err(|error| TransportFailure::Build(error.to_string()))?;
        let (response, text) = fetch_with_timeout(fetch_request, self.timeout_ms).await?;
        Ok((api_response(&response, &text), rate_headers(&response)))
    }

    fn build(&self, request: &ApiRequest) -> worker::Result<Request> {
        let headers = Headers::new();
        headers.set("Authorization", &format!("Bearer {}", self.token.expose()))?;
        headers.set("Version", API_VERSION)?;
        headers.set("Accept", "application/json")?;
        if request.body.is_some() {
            headers.set("Content-Type", "application/json")?;
        }
        let url = request.url(self.base_url).map_err(worker::Error::RustError)?;
        let body = request.body.as_ref().map(|body| body.to_string());
        http::request(method(request.method), &url, &headers, body.as_deref())
    }
}

fn method(method: ApiMethod) -> Method {
    match method {
        ApiMethod::Get => Method::Get,
        ApiMethod::Post => Method::Post,
        ApiMethod::Put => Method::Put,
        ApiMethod::Delete => Method::Delete,
    }
}

fn header_number(response: &Response, name: &str) -> Option<u64> {
    response.headers().get(name).ok().flatten().and_then(|value| value.trim().parse().ok())
}

fn api_response(response: &Response, text: &str) -> ApiResponse {
    ApiResponse {
        status: response.status_code(),
        body: serde_json::from_slice(text.as_bytes()).unwrap_or(Value::Null),
        retry_after_secs: header_number(response, "Retry-After"),
    }
}

fn rate_headers(response: &Response) -> RateHeaders {
    RateHeaders {
        status: response.status_code(),
        max: header_number(response, "X-RateLimit-Max"),
        remaining: header_number(response, "X-RateLimit-Remaining"),
        interval_ms: header_number(response, "X-RateLimit-Interval-Milliseconds"),
        daily_remaining: header_number(response, "X-RateLimit-Daily-Remaining"),
        retry_after_secs: header_number(response, "Retry-After"),
    }
}
