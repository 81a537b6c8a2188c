//! The operator API's door, under `/admin/`: checks the bearer key
//! against `ADMIN_API_KEYS` (never a read key, which is a different list) and forwards the
//! request, as sent, with the key's fingerprint as who sent it, to the location's Durable Object,
//! which holds everything the operator API shows and changes.

use worker::{Env, Method, Request, Response, Result};

use crate::auth::api_keys::{admin_keys, fingerprint, Denied};
use crate::calls::Call;
use crate::import::MAX_EXPORT_BYTES;
use crate::read::split_url;
use crate::refusal::Refusal;
use crate::shell::location::load_config;
use crate::shell::platform::object_stub::{ObjectStub, Upload};
use crate::shell::platform::runtime::settings;

/// The operator API lives under `/admin`.
pub fn handles(path: &str) -> bool {
    crate::shell::platform::object_stub::is_operator_path(path)
}

pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let caller = match Caller::admit(&mut req, env).await? {
        Ok(caller) => caller,
        Err(refusal) => return refusal.response(),
    };
    let config = match load_config(env) {
        Ok(config) => config,
        Err(refusal) => return refusal.response(),
    };
    let stub = ObjectStub::open(env, &config.location_id)?;
    let path = caller.with_query(&caller.path);
    caller.forward(&stub, req.method(), &path).await
}

/// An operator request let in through the door: its path and query, its body (none when empty),
/// and who sent it (the key's fingerprint, never the key). The connections' routes use it too.
pub(super) struct Caller {
    pub path: String,
    query: Option<String>,
    pub body: Option<String>,
    /// An import's file, forwarded as it streams in rather than read here.
    upload: Option<Upload>,
    pub operator: String,
}

impl Caller {
    /// Lets the request in ([`authorize`]) and reads it, or answers the refusal.
    pub async fn admit(req: &mut Request, env: &Env) -> Result<std::result::Result<Caller, Refusal>> {
        let raw_url = req.inner().url();
        let url = split_url(&raw_url);
        let authorization = req.headers().get("Authorization").ok().flatten();
        if let Err(refusal) = authorize(authorization.as_deref(), env) {
            return Ok(Err(refusal));
        }
        let (path, query) = (url.path.to_owned(), url.query.map(str::to_owned));
        let upload = match (req.method(), req.inner().body()) {
            (Method::Post, Some(body)) if path.ends_with("/imports") => {
                let declared = req.headers().get("Content-Length").ok().flatten();
                if declared
                    .and_then(|length| length.trim().parse::<usize>().ok())
                    .is_some_and(|n| n > MAX_EXPORT_BYTES)
                {
                    let message = format!("an export is at most {MAX_EXPORT_BYTES} bytes");
                    return Ok(Err(Refusal::too_large("body_too_large", message)));
                }
                Some(Upload { body, content_type: req.headers().get("Content-Type").ok().flatten() })
            }
            _ => None,
        };
        let body = match upload {
            Some(_) => None,
            None => Some(req.text().await?).filter(|body| !body.is_empty()),
        };
        Ok(Ok(Caller {
            path,
            query,
            body,
            upload,
            operator: fingerprint(authorization.as_deref()).unwrap_or_default(),
        }))
    }

    /// Forwards the request to `stub` at `path`: its body, or its upload as it streams in.
    pub async fn forward<C: Call>(
        self,
        stub: &ObjectStub<C>,
        method: Method,
        path: &str,
    ) -> Result<Response> {
        match &self.upload {
            Some(upload) => stub.stream_as(method, path, upload, &self.operator).await,
            None => stub.send_as(method, path, self.body, &self.operator).await,
        }
    }

    /// `path` with the request's query, as forwarded.
    pub fn with_query(&self, path: &str) -> String {
        match &self.query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        }
    }
}

/// A bearer key from `ADMIN_API_KEYS`, checked in constant time (no key in the URL was checked
/// before routing). Unset: the API is off; unusable: misconfigured. (The connections' routes use
/// the same door.)
fn authorize(authorization: Option<&str>, env: &Env) -> std::result::Result<(), Refusal> {
    admin_keys(settings(env).admin_keys())?.check(authorization).map_err(Denied::refusal)
}
