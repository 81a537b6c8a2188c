//! The Directory's half of the operator API: `/admin/connections` (list, create, read, change,
//! remove, rotate and remove secrets, pause, resume) and `/admin/agencies`, arriving as the
//! operator sent them once the Worker checked the key (`X-Operator` names who). The rules are the
//! core's ([`crate::connections`]); this module reads the records, applies them, and commits the
//! change through [`Directory::commit`].

use serde_json::{json, Value};
use worker::{console_log, Env, Method, Request};

use super::{agencies, location_call, storage, unavailable, Answer, Directory};
use crate::connections::{
    apply_patch, check_secret_free, connection_exists, default_connection, default_view, deployment_secrets,
    new_secret, unknown_connection, Connection, ConnectionId, NewConnection, Rotation, TokenSource,
};
use crate::refusal::Refusal;
use crate::secret::Secret;
use crate::shell::platform::connections::default_id;
use crate::shell::platform::object_stub::OPERATOR_HEADER;
use crate::shell::platform::runtime::{now_ms, settings};

pub async fn handle(directory: &Directory, mut req: Request) -> Answer {
    let path = req.path();
    let segments: Vec<&str> = path.trim_start_matches("/admin/").split('/').collect();
    let operator = req.headers().get(OPERATOR_HEADER).ok().flatten().unwrap_or_default();
    let pending = crate::auth::install::query_param(&req.inner().url(), "pending");
    let body = req.text().await.unwrap_or_default();
    let by = Operator { name: &operator };
    match (req.method(), segments.as_slice()) {
        (Method::Get, ["connections"]) => list(directory),
        (Method::Post, ["connections"]) => create(directory, &body, by).await,
        (Method::Get, ["connections", id]) => get(directory, id),
        (Method::Patch, ["connections", id]) => patch(directory, id, &body, by).await,
        (Method::Delete, ["connections", id]) => remove(directory, id, pending.as_deref(), by).await,
        (Method::Post, ["connections", id, "secrets"]) => rotate(directory, id, &body, by).await,
        (Method::Delete, ["connections", id, "secrets", fingerprint]) => {
            remove_secret(directory, id, &decoded(fingerprint), by).await
        }
        (Method::Post, ["connections", id, "pause"]) => set_paused(directory, id, true, by).await,
        (Method::Post, ["connections", id, "resume"]) => set_paused(directory, id, false, by).await,
        (Method::Get, ["agencies"]) => agencies::list(directory),
        (Method::Get, ["agencies", company, "locations"]) => agencies::locations(directory, company).await,
        (_, ["connections" | "agencies", ..]) => {
            Err(Refusal::method_not_allowed("that method is not used on this route"))
        }
        _ => Err(Refusal::not_found("no such operator route")),
    }
}

/// Who made a change (the key's fingerprint), for the log line every change writes.
#[derive(Clone, Copy)]
struct Operator<'a> {
    name: &'a str,
}

impl Operator<'_> {
    fn log(self, action: &str, id: &ConnectionId) {
        console_log!(
            "{}",
            json!({"msg": "connection changed", "action": action, "connection": id, "by": self.name})
        );
    }
}

/// The deployment's own signing secrets (`WEBHOOK_SECRETS`): no named connection may use them.
fn deployment(env: &Env) -> Vec<Secret> {
    deployment_secrets(settings(env).webhook_secrets())
}

fn default_connection_view(env: &Env, id: &ConnectionId) -> Value {
    default_view(id, &deployment(env), settings(env).token_mode())
}

/// Refuses a change of the default connection (409 `default_connection`).
fn named(env: &Env, id: &str) -> Result<ConnectionId, Refusal> {
    let id = ConnectionId::parse(id)?;
    if default_id(env).as_ref() == Some(&id) {
        return Err(default_connection(&id));
    }
    Ok(id)
}

/// `GET /admin/connections`: the default connection first (when configured), then every named one.
fn list(directory: &Directory) -> Answer {
    let now = now_ms();
    let mut views: Vec<Value> = default_id(&directory.env)
        .map(|id| default_connection_view(&directory.env, &id))
        .into_iter()
        .collect();
    if !directory.db.live().map_err(storage)?.is_empty() {
        let keys = directory.keys()?;
        views.extend(directory.all_live(&keys)?.iter().map(|connection| connection.view(now)));
    }
    Ok((200, json!({ "connections": views })))
}

fn get(directory: &Directory, id: &str) -> Answer {
    let id = ConnectionId::parse(id)?;
    if default_id(&directory.env).as_ref() == Some(&id) {
        return Ok((200, json!({ "connection": default_connection_view(&directory.env, &id) })));
    }
    let connection = directory.live(&*directory.keys()?, &id)?;
    Ok((200, json!({ "connection": connection.view(now_ms()) })))
}

/// `POST /admin/connections`: 201 with the record and its first signing secret (shown once).
async fn create(directory: &Directory, body: &str, by: Operator<'_>) -> Answer {
    let new = NewConnection::parse(body)?;
    if default_id(&directory.env).as_ref() == Some(&new.id) {
        return Err(connection_exists(&new.id));
    }
    let keys = directory.keys()?;
    let _turn = directory.changing.lock().await;
    if directory.is_live(new.id.as_str())? {
        return Err(connection_exists(&new.id));
    }
    check_agency(directory, &new.token)?;
    let secret = match &new.signing_secret {
        Some(secret) => secret.clone(),
        None => fresh_secret()?,
    };
    let others = directory.all_live(&keys)?;
    check_secret_free(&secret, &deployment(&directory.env), others.iter())?;
    let connection = new.into_connection(secret.clone(), now_ms());
    directory.commit(&keys, None, &connection).await?;
    by.log("created", &connection.id);
    Ok((201, json!({ "connection": connection.view(now_ms()), "signing_secret": secret.expose() })))
}

/// `PATCH /admin/connections/{id}`: a new label and/or token source.
async fn patch(directory: &Directory, id: &str, body: &str, by: Operator<'_>) -> Answer {
    change(directory, id, by, "changed", |directory, connection| {
        apply_patch(connection, body)?;
        check_agency(directory, &connection.token)
    })
    .await
}

async fn set_paused(directory: &Directory, id: &str, paused: bool, by: Operator<'_>) -> Answer {
    let action = if paused { "paused" } else { "resumed" };
    change(directory, id, by, action, |_, connection| {
        connection.paused = paused;
        Ok(())
    })
    .await
}

async fn remove_secret(directory: &Directory, id: &str, fingerprint: &str, by: Operator<'_>) -> Answer {
    change(directory, id, by, "secret removed", |_, connection| connection.remove_secret(fingerprint)).await
}

/// One change of a named connection's record: read it, apply `edit`, commit it (unless the
/// edit changed nothing), answer `{ "connection" }`.
async fn change(
    directory: &Directory,
    id: &str,
    by: Operator<'_>,
    action: &str,
    edit: impl FnOnce(&Directory, &mut Connection) -> Result<(), Refusal>,
) -> Answer {
    let id = named(&directory.env, id)?;
    let keys = directory.keys()?;
    let _turn = directory.changing.lock().await;
    let previous = directory.live(&keys, &id)?;
    let mut next = previous.clone();
    edit(directory, &mut next)?;
    if next != previous {
        directory.commit(&keys, Some(&previous), &next).await?;
        by.log(action, &id);
    }
    Ok((200, json!({ "connection": next.view(now_ms()) })))
}

/// `POST /admin/connections/{id}/secrets`: 201 with the new secret (shown once); the old ones
/// stop after `keep_old_for`.
async fn rotate(directory: &Directory, id: &str, body: &str, by: Operator<'_>) -> Answer {
    let id = named(&directory.env, id)?;
    let rotation = Rotation::parse(body)?;
    let keys = directory.keys()?;
    let _turn = directory.changing.lock().await;
    let previous = directory.live(&keys, &id)?;
    let secret = match rotation.signing_secret {
        Some(secret) => secret,
        None => fresh_secret()?,
    };
    let all = directory.all_live(&keys)?;
    check_secret_free(&secret, &deployment(&directory.env), all.iter().filter(|other| other.id != id))?;
    let mut next = previous.clone();
    let now = now_ms();
    next.rotate(secret.clone(), rotation.keep_old_ms, now)?;
    directory.commit(&keys, Some(&previous), &next).await?;
    by.log("secret rotated", &id);
    let fingerprint = crate::connections::fingerprint(&secret);
    Ok((
        201,
        json!({ "signing_secret": secret.expose(), "fingerprint": fingerprint, "connection": next.view(now) }),
    ))
}

/// `DELETE /admin/connections/{id}[?pending=discard]`: the Location removes the connection first
/// (refusing with 409 `pending_events` while events are pending, unless they are to be
/// discarded); the Directory then keeps a tombstone.
async fn remove(directory: &Directory, id: &str, pending: Option<&str>, by: Operator<'_>) -> Answer {
    let id = named(&directory.env, id)?;
    let pending = match pending {
        None | Some("refuse") => "refuse",
        Some("discard") => "discard",
        Some(_) => {
            return Err(Refusal::bad_request(
                "invalid_query",
                "`pending` is `discard` (or `refuse`, the default)",
            ))
        }
    };
    let _turn = directory.changing.lock().await;
    if !directory.is_live(id.as_str())? {
        return Err(unknown_connection());
    }
    let path = format!("/connection?pending={pending}");
    let (status, answer) = location_call(&directory.env, id.as_str(), Method::Delete, &path, None).await?;
    match status {
        200 => {}
        409 if answer["error"] == "pending_events" => return Ok((409, answer)),
        status => return Err(super::not_taken(id.as_str(), status)),
    }
    // The Location's tombstone already refuses its webhooks; a record left in KV only delays
    // the edge's 401 for them, so a failure here is reported, not undone.
    let _ = super::edge_copy::withdraw(&directory.env, &id).await;
    directory.db.remove_connection(id.as_str(), now_ms()).map_err(storage)?;
    directory.db.forget_work(id.as_str()).map_err(storage)?;
    by.log("removed", &id);
    let discarded = answer["discarded"].as_u64().unwrap_or(0);
    Ok((200, json!({ "removed": id, "discarded": discarded })))
}

/// An agency connection needs its agency's company token (404 `unknown_agency`).
fn check_agency(directory: &Directory, token: &TokenSource) -> Result<(), Refusal> {
    let TokenSource::Agency { company_id } = token else {
        return Ok(());
    };
    match directory.db.agency(company_id).map_err(storage)? {
        Some(_) => Ok(()),
        None => Err(agencies::unknown_agency()),
    }
}

/// A path segment percent-decoded (a fingerprint's `:` arrives as `%3A`).
fn decoded(segment: &str) -> String {
    let pair = format!("v={}", segment.replace('+', "%2B"));
    form_urlencoded::parse(pair.as_bytes()).next().map(|(_, value)| value.into_owned()).unwrap_or_default()
}

fn fresh_secret() -> Result<Secret, Refusal> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|_| unavailable("no randomness for a new signing secret"))?;
    Ok(new_secret(random))
}
