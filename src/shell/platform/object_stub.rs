//! The Worker's way to its Durable Objects: a location's (binding `LOCATIONS`, one object per
//! location, named by its id) and the directory of connections (binding `DIRECTORY`, one object).
//! JSON in, JSON out. Internal routes live under [`INTERNAL`], which [`ObjectStub::send`] adds
//! and the public router never forwards: an operator's request reaches an object only through
//! [`ObjectStub::send_as`], under `/admin/`, so that no outside path can name an internal route.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use worker::{Env, Headers, Method, Response, Result, Stub};

use super::http;

/// The locations' Durable Object binding in wrangler.toml.
pub const LOCATIONS: &str = "LOCATIONS";
/// The directory's Durable Object binding in wrangler.toml, and the one object's name.
pub const DIRECTORY: &str = "DIRECTORY";
/// The origin of the internal routes (any; the Durable Object reads only the path).
const ORIGIN: &str = "https://location.internal";
/// The prefix of every internal route of both Durable Objects.
pub const INTERNAL: &str = "/internal";
/// Who sent an operator request, as the Worker tells the Durable Object.
pub const OPERATOR_HEADER: &str = "X-Operator";

/// An operator's request body forwarded as a stream, with its Content-Type.
pub struct Upload {
    pub body: worker::web_sys::ReadableStream,
    pub content_type: Option<String>,
}

/// Whether `path` is the operator API's (`/admin` and under it): the one rule for what may be
/// forwarded from outside.
pub fn is_operator_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

pub struct ObjectStub {
    stub: Stub,
}

impl ObjectStub {
    /// The Durable Object of the location (connection) `location_id`.
    pub fn open(env: &Env, location_id: &str) -> Result<ObjectStub> {
        ObjectStub::named(env, LOCATIONS, location_id)
    }

    /// The directory of connections.
    pub fn directory(env: &Env) -> Result<ObjectStub> {
        ObjectStub::named(env, DIRECTORY, "directory")
    }

    fn named(env: &Env, binding: &str, name: &str) -> Result<ObjectStub> {
        let missing = |_| {
            worker::Error::RustError(format!(
                "no Durable Object namespace is bound as `{binding}` (wrangler.toml)"
            ))
        };
        let namespace = env.durable_object(binding).map_err(missing)?;
        Ok(ObjectStub { stub: namespace.id_from_name(name)?.get_stub()? })
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
                "the Durable Object answered {path} with {status}: {answer}"
            )));
        }
        serde_json::from_slice(answer.as_bytes()).map_err(|error| worker::Error::RustError(error.to_string()))
    }

    /// Sends `method` to `path` with an optional body, and reads the answer to its end: its
    /// status and JSON body (`null` when it is not JSON). The one way an internal answer is read
    /// whole; an unread body keeps the invocation open.
    pub async fn ask(&self, method: Method, path: &str, body: Option<String>) -> Result<(u16, Value)> {
        let mut response = self.send(method, path, body).await?;
        let text = response.text().await?;
        Ok((response.status_code(), serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Sends `method` to the internal route `route` (with its query) and an optional body.
    pub async fn send(&self, method: Method, route: &str, body: Option<String>) -> Result<Response> {
        self.send_with(method, &format!("{INTERNAL}{route}"), body, Headers::new()).await
    }

    /// Sends an operator's request as they sent it (a path under `/admin/`, checked before
    /// routing: no dot segments), with who sent it ([`OPERATOR_HEADER`]: the key's fingerprint,
    /// never the key).
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        operator: &str,
    ) -> Result<Response> {
        if !is_operator_path(path.split('?').next().unwrap_or_default()) {
            return Err(worker::Error::RustError("only operator routes are forwarded from outside".into()));
        }
        let headers = Headers::new();
        headers.set(OPERATOR_HEADER, operator)?;
        self.send_with(method, path, body, headers).await
    }

    /// Forwards an operator's upload as it streams in (an import's file: no isolate holds it
    /// whole), with its Content-Type and who sent it.
    pub async fn stream_as(
        &self,
        method: Method,
        path: &str,
        upload: &Upload,
        operator: &str,
    ) -> Result<Response> {
        if !is_operator_path(path.split('?').next().unwrap_or_default()) {
            return Err(worker::Error::RustError("only operator routes are forwarded from outside".into()));
        }
        let headers = Headers::new();
        headers.set(OPERATOR_HEADER, operator)?;
        if let Some(content_type) = &upload.content_type {
            headers.set("Content-Type", content_type)?;
        }
        let request = http::streaming_request(method, &format!("{ORIGIN}{path}"), &headers, &upload.body)?;
        self.stub.fetch_with_request(request).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: Headers,
    ) -> Result<Response> {
        headers.set("Content-Type", "application/json")?;
        let request = http::request(method, &format!("{ORIGIN}{path}"), &headers, body.as_deref())?;
        self.stub.fetch_with_request(request).await
    }
}
