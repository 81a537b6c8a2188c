//! The Worker's way to a location's Durable Object (binding `LOCATIONS`, one object per location,
//! named by its id): JSON in, JSON out, on internal routes that only the Worker can reach.

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Headers, Method, Request, RequestInit, Response, Result, Stub};

/// The Durable Object binding name in wrangler.toml.
pub const BINDING: &str = "LOCATIONS";
/// The origin of the internal routes (any; the Durable Object reads only the path).
const ORIGIN: &str = "https://location.internal";
/// Who sent an operator request, as the Worker tells the Durable Object.
pub const OPERATOR_HEADER: &str = "X-Operator";

pub struct LocationStub {
    stub: Stub,
}

impl LocationStub {
    pub fn open(env: &Env, location_id: &str) -> Result<LocationStub> {
        let missing = |_| {
            worker::Error::RustError(format!(
                "no Durable Object namespace is bound as `{BINDING}` (wrangler.toml)"
            ))
        };
        let namespace = env.durable_object(BINDING).map_err(missing)?;
        Ok(LocationStub { stub: namespace.id_from_name(location_id)?.get_stub()? })
    }

    /// POSTs `body` as JSON to the internal route `path` and reads its JSON answer, which must
    /// be a 200. The answer is always read to its end: an unread body keeps the invocation open.
    pub async fn call<T: Serialize, R: DeserializeOwned>(&self, path: &str, body: &T) -> Result<R> {
        let text =
            serde_json::to_string(body).map_err(|error| worker::Error::RustError(error.to_string()))?;
        let mut response = self.send(Method::Post, path, Some(text)).await?;
        let answer = response.text().await?;
        if response.status_code() != 200 {
            let status = response.status_code();
            return Err(worker::Error::RustError(format!(
                "the location answered {path} with {status}: {answer}"
            )));
        }
        serde_json::from_slice(answer.as_bytes()).map_err(|error| worker::Error::RustError(error.to_string()))
    }

    /// Sends `method` to `path` (with its query) and an optional body.
    pub async fn send(&self, method: Method, path: &str, body: Option<String>) -> Result<Response> {
        self.send_with(method, path, body, Headers::new()).await
    }

    /// Sends an operator's request as they sent it, with who sent it ([`OPERATOR_HEADER`]: the
    /// key's fingerprint, never the key).
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        operator: &str,
    ) -> Result<Response> {
        let headers = Headers::new();
        headers.set(OPERATOR_HEADER, operator)?;
        self.send_with(method, path, body, headers).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: Headers,
    ) -> Result<Response> {
        headers.set("Content-Type", "application/json")?;
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers).with_body(body.map(Into::into));
        let request = Request::new_with_init(&format!("{ORIGIN}{path}"), &init)?;
        self.stub.fetch_with_request(request).await
    }
}
