//! The Worker's way to its Durable Objects: a location's (binding `LOCATIONS`, one object per
//! location, named by its id) and the directory of connections (binding `DIRECTORY`, one object).
//! A stub is typed by the calls its object answers ([`crate::calls`]: [`LocationCall`],
//! [`DirectoryCall`]); it sends a call's method to its path under [`INTERNAL`], with a JSON
//! body, and reads the JSON answer. The objects' routers read a request back into a call with
//! [`called`]. The public router never forwards an internal route: an operator's request reaches
//! an object only through [`ObjectStub::send_as`], under `/admin/`, so that no outside path can
//! name an internal route.

use std::future::Future;
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

/// The internal call `req` makes (its method and its path under [`INTERNAL`], query included);
/// `None` for any other request. The query is cut from the URL as the platform gives it, not
/// with `Request::url`, whose URL parser would weigh on the Wasm.
pub fn called<C: Call>(req: &Request) -> Option<C> {
    let verb = Verb::parse(req.method().as_ref())?;
    let path = req.path();
    let url = req.inner().url();
    let target = match url.split('#').next().and_then(|url| url.split_once('?')) {
        Some((_, query)) => format!("{path}?{query}"),
        None => path,
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
pub fn ask_directory<'a, T: Serialize>(
    env: &'a Env,
    call: &DirectoryCall,
    body: Option<&T>,
) -> impl Future<Output = std::result::Result<(u16, Value), Refusal>> + 'a {
    directory_answer(env, Outgoing::new(call, body))
}

async fn directory_answer(
    env: &Env,
    outgoing: Result<Outgoing>,
) -> std::result::Result<(u16, Value), Refusal> {
    let route = outgoing.as_ref().map(|outgoing| outgoing.route.clone()).unwrap_or_default();
    let unreachable = |error: worker::Error| {
        console_error!(
            "{}",
            serde_json::json!({"msg": "durable object not reached", "path": route, "error": error.to_string()})
        );
        Refusal::storage_unavailable("the directory of connections could not be reached; try again")
    };
    let directory = ObjectStub::directory(env).map_err(unreachable)?;
    ask(&directory.stub, outgoing).await.map_err(unreachable)
}

/// A call ready to go: its method, its route below [`INTERNAL`], its body as JSON. The generic
/// part of a call (the call's type, its body's) ends here, so that what awaits is compiled once.
struct Outgoing {
    method: Method,
    route: String,
    body: Option<String>,
}

impl Outgoing {
    fn new<C: Call, T: Serialize>(call: &C, body: Option<&T>) -> Result<Outgoing> {
        let body = match body {
            Some(body) => Some(
                serde_json::to_string(body).map_err(|error| worker::Error::RustError(error.to_string()))?,
            ),
            None => None,
        };
        Ok(Outgoing { method: method(call.method()), route: call.path(), body })
    }
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
        let answer = answered(&self.stub, Outgoing::new(call, Some(body))).await?;
        serde_json::from_slice(answer.as_bytes()).map_err(|error| worker::Error::RustError(error.to_string()))
    }

    /// Sends `call` with an optional JSON body, and reads the answer to its end: its status and
    /// JSON body (`null` when it is not JSON). The one way an internal answer is read whole; an
    /// unread body keeps the invocation open.
    pub fn ask<T: Serialize>(
        &self,
        call: &C,
        body: Option<&T>,
    ) -> impl Future<Output = Result<(u16, Value)>> + '_ {
        ask(&self.stub, Outgoing::new(call, body))
    }

    /// Sends `call` (its method, its path under [`INTERNAL`]) with an optional JSON body.
    pub fn send<T: Serialize>(
        &self,
        call: &C,
        body: Option<&T>,
    ) -> impl Future<Output = Result<Response>> + '_ {
        send(&self.stub, Outgoing::new(call, body))
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
        send_with(&self.stub, method, path, body, headers).await
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
}

/// The answer to `outgoing`, which must be a 200, read to its end.
async fn answered(stub: &Stub, outgoing: Result<Outgoing>) -> Result<String> {
    let outgoing = outgoing?;
    let route = outgoing.route.clone();
    let mut response = send(stub, Ok(outgoing)).await?;
    let answer = response.text().await?;
    if response.status_code() != 200 {
        let status = response.status_code();
        return Err(worker::Error::RustError(format!(
            "the Durable Object answered {route} with {status}: {answer}"
        )));
    }
    Ok(answer)
}

/// The status and JSON body (`null` when it is not JSON) of the answer to `outgoing`.
async fn ask(stub: &Stub, outgoing: Result<Outgoing>) -> Result<(u16, Value)> {
    let mut response = send(stub, outgoing).await?;
    let text = response.text().await?;
    Ok((response.status_code(), serde_json::from_str(&text).unwrap_or(Value::Null)))
}

async fn send(stub: &Stub, outgoing: Result<Outgoing>) -> Result<Response> {
    let Outgoing { method, route, body } = outgoing?;
    send_with(stub, method, &format!("{INTERNAL}{route}"), body, Headers::new()).await
}

async fn send_with(
    stub: &Stub,
    method: Method,
    path: &str,
    body: Option<String>,
    headers: Headers,
) -> Result<Response> {
    headers.set("Content-Type", "application/json")?;
    let request = http::request(method, &format!("{ORIGIN}{path}"), &headers, body.as_deref())?;
    stub.fetch_with_request(request).await
}
