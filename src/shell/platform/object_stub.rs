//! The Worker's way to its Durable Objects: a location's (binding `LOCATIONS`, one object per
//! location, named by its id) and the directory of connections (binding `DIRECTORY`, one object).
//! A stub is typed by the calls its object answers ([`crate::calls`]: [`LocationCall`],
//! [`DirectoryCall`]); it sends a call's method to its path under [`INTERNAL`], with a JSON
//! body, and reads the JSON answer. The objects' routers read a request back into a call with
//! [`called`]. The public router never forwards an internal route: an operator's request reaches
//! an object only through [`ObjectStub::send_as`], under `/admin/`, so that no outside path can
//! name an internal route.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use worker::{console_error, Env, Headers, Method, Request, Response, Result, Stub};

use super::http;
use crate::calls::{below_internal, Call, DirectoryCall, LocationCall, Verb, INTERNAL};
use crate::refusal::Refusal;

/// The locations' Durable Object binding in wrangler.toml.
pub const LOCATIONS: &str = "LOCATIONS";
/// The directory's Durable Object binding in wrangler.toml, and the one object's name.
pub const DIRECTORY: &str = "DIRECTORY";
/// The origin of the internal routes (any; the Durable Object reads only the path).
const ORIGIN: &str = "https://location.internal";
/// Who sent an operator request, as the Worker tells the Durable Object.
pub const OPERATOR_HEADER: &str = "X-Operator";
/// The body of a call sent without one.
pub const NO_BODY: Option<&()> = None;

/// Whether `path` is the operator API's (`/admin` and under it): the one rule for what may be
/// forwarded from outside.
pub fn is_operator_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// The internal call `req` makes (its method and its path under [`INTERNAL`], query included);
/// `None` for any other request.
pub fn called<C: Call>(req: &Request) -> Option<C> {
    let verb = Verb::parse(req.method().as_ref())?;
    let url = req.url().ok()?;
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    C::route(verb, below_internal(&target)?)
}

fn method(verb: Verb) -> Method {
    match verb {
        Verb::Get => Method::Get,
        Verb::Post => Method::Post,
        Verb::Put => Method::Put,
        Verb::Delete => Method::Delete,
    }
}

/// A Durable Object, and the calls (`C`) it answers.
pub struct ObjectStub<C> {
    stub: Stub,
    calls: PhantomData<C>,
}

impl ObjectStub<LocationCall> {
    /// The Durable Object of the location (connection) `location_id`.
    pub fn open(env: &Env, location_id: &str) -> Result<ObjectStub<LocationCall>> {
        ObjectStub::named(env, LOCATIONS, location_id)
    }
}

impl ObjectStub<DirectoryCall> {
    /// The directory of connections.
    pub fn directory(env: &Env) -> Result<ObjectStub<DirectoryCall>> {
        ObjectStub::named(env, DIRECTORY, "directory")
    }
}

/// One call to the directory of connections: its status and JSON body (read to its end); 503
/// `storage_unavailable` when it cannot be reached.
pub async fn ask_directory<T: Serialize>(
    env: &Env,
    call: &DirectoryCall,
    body: Option<&T>,
) -> std::result::Result<(u16, Value), Refusal> {
    let unreachable = |error: worker::Error| {
        console_error!(
            "{}",
            serde_json::json!({"msg": "durable object not reached", "path": call.path(), "error": error.to_string()})
        );
        Refusal::storage_unavailable("the directory of connections could not be reached; try again")
    };
    let directory = ObjectStub::directory(env).map_err(unreachable)?;
    directory.ask(call, body).await.map_err(unreachable)
}

impl<C: Call> ObjectStub<C> {
    fn named(env: &Env, binding: &str, name: &str) -> Result<ObjectStub<C>> {
        let missing = |_| {
            worker::Error::RustError(format!(
                "no Durable Object namespace is bound as `{binding}` (wrangler.toml)"
            ))
        };
        let namespace = env.durable_object(binding).map_err(missing)?;
        Ok(ObjectStub { stub: namespace.id_from_name(name)?.get_stub()?, calls: PhantomData })
    }

    /// Sends `call` with `body` as JSON and reads its JSON answer, which must be a 200. The
    /// answer is always read to its end: an unread body keeps the invocation open.
    pub async fn call<T: Serialize, R: DeserializeOwned>(&self, call: &C, body: &T) -> Result<R> {
        let mut response = self.send(call, Some(body)).await?;
        let answer = response.text().await?;
        if response.status_code() != 200 {
            let status = response.status_code();
            let path = call.path();
            return Err(worker::Error::RustError(format!(
                "the Durable Object answered {path} with {status}: {answer}"
            )));
        }
        serde_json::from_slice(answer.as_bytes()).map_err(|error| worker::Error::RustError(error.to_string()))
    }

    /// Sends `call` with an optional JSON body, and reads the answer to its end: its status and
    /// JSON body (`null` when it is not JSON). The one way an internal answer is read whole; an
    /// unread body keeps the invocation open.
    pub async fn ask<T: Serialize>(&self, call: &C, body: Option<&T>) -> Result<(u16, Value)> {
        let mut response = self.send(call, body).await?;
        let text = response.text().await?;
        Ok((response.status_code(), serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Sends `call` (its method, its path under [`INTERNAL`]) with an optional JSON body.
    pub async fn send<T: Serialize>(&self, call: &C, body: Option<&T>) -> Result<Response> {
        let body = match body {
            Some(body) => Some(
                serde_json::to_string(body).map_err(|error| worker::Error::RustError(error.to_string()))?,
            ),
            None => None,
        };
        let path = format!("{INTERNAL}{}", call.path());
        self.send_with(method(call.method()), &path, body, Headers::new()).await
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
