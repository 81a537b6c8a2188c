//! The operator API's connections, agencies and install links, under `/admin/connections`,
//! `/admin/agencies` and `/admin/installs` (minted here, at the edge: [`oauth::mint`]):
//! the same door as [`super::operator`] (no key in the URL, a key from `ADMIN_API_KEYS`, who sent
//! it forwarded as the key's fingerprint), then the connection id's syntax, checked before
//! anything is read. The records' routes go to the Directory, which keeps them; anything else
//! under `/admin/connections/{id}/...` is that connection's own operator API, forwarded to its
//! location's Durable Object as `/admin/...` (the default connection's id too).

use serde_json::Value;
use worker::{Env, Method, Request, Response, Result};

use crate::connections::{unknown_connection, ConnectionId};
use crate::refusal::Refusal;
use crate::shell::platform::connections::default_id;
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::respond;
use crate::shell::routes::oauth;
use crate::shell::routes::operator::Caller;

const CONNECTIONS: &str = "/admin/connections";
const AGENCIES: &str = "/admin/agencies";
const INSTALLS: &str = "/admin/installs";

pub fn handles(path: &str) -> bool {
    path == INSTALLS
        || [CONNECTIONS, AGENCIES].iter().any(|base| path == *base || path.starts_with(&format!("{base}/")))
}

/// Where an operator request goes.
enum Target<'a> {
    /// `POST /admin/installs`: an install link, made here at the edge.
    Installs,
    /// The Directory: the records of connections and agencies.
    Directory,
    /// Connection `id`'s own operator API, as `/admin/{rest}`.
    Location { id: ConnectionId, rest: &'a str },
}

/// Which routes under `/admin/connections/{id}/` are the Directory's (the rest are the location's).
fn target(path: &str) -> std::result::Result<Target<'_>, Refusal> {
    if path == INSTALLS {
        return Ok(Target::Installs);
    }
    let Some(under) = path.strip_prefix(CONNECTIONS).and_then(|rest| rest.strip_prefix('/')) else {
        return Ok(Target::Directory);
    };
    let (id, rest) = under.split_once('/').unwrap_or((under, ""));
    let id = ConnectionId::parse(id)?;
    let directory_route = matches!(rest, "" | "secrets" | "pause" | "resume") || rest.starts_with("secrets/");
    Ok(if directory_route { Target::Directory } else { Target::Location { id, rest } })
}

pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let caller = match Caller::admit(&mut req, env).await? {
        Ok(caller) => caller,
        Err(refusal) => return refusal.response(),
    };
    let target = match target(&caller.path) {
        Ok(target) => target,
        Err(refusal) => return refusal.response(),
    };
    let (method, operator) = (req.method(), &caller.operator);
    match target {
        Target::Installs if method != Method::Post => {
            Refusal::method_not_allowed("POST makes an install link").response()
        }
        Target::Installs => {
            let origin = crate::auth::install::origin_of(&req.inner().url()).to_owned();
            match oauth::mint(env, &origin, caller.body.as_deref(), operator) {
                Ok(body) => respond::json(201, &body),
                Err(refusal) => refusal.response(),
            }
        }
        Target::Directory => {
            let path = caller.with_query(&caller.path);
            caller.forward(&ObjectStub::directory(env)?, method, &path).await
        }
        Target::Location { id, rest } => {
            if let Err(refusal) = known(env, &id).await {
                return refusal.response();
            }
            let path = caller.with_query(&format!("/admin/{rest}"));
            caller.forward(&ObjectStub::open(env, id.as_str())?, method, &path).await
        }
    }
}

/// The connection exists: the default one, or a named one the Directory knows (404
/// `unknown_connection`), so that no Durable Object is made for an id nobody connected.
async fn known(env: &Env, id: &ConnectionId) -> std::result::Result<(), Refusal> {
    if default_id(env).as_ref() == Some(id) {
        return Ok(());
    }
    let path = format!("/connections/{id}/verify");
    match ask(ObjectStub::directory(env), Method::Get, &path, None).await? {
        (200, _) => Ok(()),
        (404, _) => Err(unknown_connection()),
        (status, _) => Err(Refusal::storage_unavailable(format!(
            "the directory of connections answered HTTP {status}; try again"
        ))),
    }
}

/// One internal call to a Durable Object: its status and JSON body (read to its end); 503
/// `storage_unavailable` when it cannot be reached.
pub async fn ask(
    stub: Result<ObjectStub>,
    method: Method,
    path: &str,
    body: Option<String>,
) -> std::result::Result<(u16, Value), Refusal> {
    let unreachable = |error: worker::Error| {
        worker::console_error!(
            "{}",
            serde_json::json!({"msg": "durable object not reached", "path": path, "error": error.to_string()})
        );
        Refusal::storage_unavailable("the directory of connections could not be reached; try again")
    };
    stub.map_err(unreachable)?.ask(method, path, body).await.map_err(unreachable)
}
