//! The webhook route: find the delivery's connection (the default one at `/webhooks/sightmill`,
//! a named one at `/webhooks/sightmill/{id}`, its secrets from the edge's copy of its record; an
//! id nobody connected is answered as a wrong signature is, without asking any Durable Object),
//! admit the delivery (core), then at once read its KV idempotency key and hand it to the
//! connection's Durable Object, which accepts it in one transaction (or answers from its record);
//! a redelivery of a finished webhook is answered from KV, anything else from the object. A KV
//! miss or a stale KV answer costs nothing: the Durable Object dedupes exactly, and checks again
//! that the secret the edge admitted with is still valid.

use std::rc::Rc;

use futures_util::StreamExt;
use serde_json::{json, Value};
use worker::{console_error, Env, Request, Response, Result};

use crate::calls::{Call, LocationCall};
use crate::config::Config;
use crate::connections::{refuse_unknown, Connection, ConnectionId};
use crate::intake::signature::SignatureHeaders;
use crate::intake::{admit, check_declared_length, too_large, Admitted, Delivery};
use crate::refusal::Refusal;
use crate::shell::location::connection::is_default;
use crate::shell::platform::connections;
use crate::shell::platform::kv::Kv;
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::{now_ms, settings};
use crate::sync::queue::{reply, Intake, Reply};
use crate::sync::records::{webhook_key_of, WebhookRecord, WebhookState};

/// Who a delivery is for.
enum Target {
    Default(Config),
    Named(Config, Rc<Connection>),
    /// An id no live connection has: refused as a wrong signature is.
    Unknown(Config),
}

impl Target {
    fn config(&self) -> &Config {
        match self {
            Target::Default(config) | Target::Named(config, _) | Target::Unknown(config) => config,
        }
    }

    fn named_id(&self) -> Option<&str> {
        match self {
            Target::Default(_) | Target::Unknown(_) => None,
            Target::Named(_, connection) => Some(connection.id.as_str()),
        }
    }
}

/// `POST /webhooks/sightmill`: the default connection's (404 `no_default_connection` when the
/// deployment has none).
pub async fn handle(req: Request, env: &Env) -> Result<Response> {
    match settings(env).default_connection() {
        Ok(Some(config)) => receive(req, env, Target::Default(config.clone())).await,
        Ok(None) => Refusal::missing(
            "no_default_connection",
            "this deployment has no default connection; post to /webhooks/sightmill/{connection}",
        )
        .response(),
        Err(error) => Refusal::misconfigured(error).response(),
    }
}

/// `POST /webhooks/sightmill/{id}`: the id is checked before anything else (400
/// `invalid_connection_id`); the default connection's id is the default connection; an id the
/// edge's copy of the records does not know gets what a wrong signature gets (401
/// `invalid_signature`), so that connected ids cannot be told from others.
pub async fn handle_connection(req: Request, env: &Env, raw_id: &str) -> Result<Response> {
    let id = match ConnectionId::parse(raw_id) {
        Ok(id) => id,
        Err(refusal) => return refusal.response(),
    };
    if is_default(env, id.as_str()) {
        return handle(req, env).await;
    }
    let config = match settings(env).config_for(&id) {
        Ok(config) => config,
        Err(error) => return Refusal::misconfigured(error).response(),
    };
    match connections::lookup(env, &id, now_ms()).await? {
        Some(connection) => receive(req, env, Target::Named(config, connection)).await,
        None => receive(req, env, Target::Unknown(config)).await,
    }
}

async fn receive(mut req: Request, env: &Env, target: Target) -> Result<Response> {
    let now = now_ms();
    let config = target.config();
    let headers = req.headers().clone();
    let header = |name: &str| headers.get(name).ok().flatten();
    if let Err(refusal) = check_declared_length(header("content-length").as_deref(), config.max_body_bytes) {
        return refusal.response();
    }
    let Some(body) = read_body(&mut req, config.max_body_bytes).await? else {
        return too_large(config.max_body_bytes).response();
    };
    let (content_type, id, timestamp, signature) = (
        header("content-type"),
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let delivery = Delivery {
        content_type: content_type.as_deref(),
        signature: SignatureHeaders {
            id: id.as_deref(),
            timestamp: timestamp.as_deref(),
            signature: signature.as_deref(),
        },
        body: &body,
    };
    let (admitted, verified_with) = match admit_for(env, &target, delivery, now).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.response(),
    };
    let key = webhook_key_of(target.named_id(), &admitted.webhook_id);
    let intake = Intake { verified_with, ..Intake::of(&admitted) };
    // KV and the Durable Object are asked at once: a first delivery (nearly all of them) waits
    // for the slower of the two, not both; a redelivery of a finished webhook is answered from
    // KV, and the object, which still holds its record, only answers from it too.
    let (known, accepted) = futures_util::future::join(
        finished_in_kv(env, &key, &admitted),
        accept(env, &config.location_id, &intake),
    )
    .await;
    if let Some(known) = known {
        return answer(&known);
    }
    match accepted {
        Ok(Accepted::Reply(reply)) => answer(&reply),
        Ok(Accepted::Refused(status, body)) => {
            if let (404, Target::Named(_, connection)) = (status, &target) {
                connections::forget(&connection.id);
            }
            respond::json(status, &body)
        }
        Err(error) => {
            console_error!(
                "{}",
                json!({"msg": "webhook not accepted", "webhook_id": admitted.webhook_id, "error": error.to_string()})
            );
            Refusal::storage_unavailable("the webhook could not be recorded; deliver it again").response()
        }
    }
}

/// Admits the delivery with the target's secrets, and says which of a named connection's
/// secrets admitted it. A named connection's mismatch is tried once more with its record fetched
/// again (a secret rotated since the edge's copy), at most once per few seconds per id.
async fn admit_for(
    env: &Env,
    target: &Target,
    delivery: Delivery<'_>,
    now: i64,
) -> std::result::Result<(Admitted, Option<String>), Refusal> {
    let max = target.config().max_body_bytes;
    let connection = match target {
        Target::Default(config) => {
            return admit(delivery, &config.signing_keys, max, now / 1000).map(|admitted| (admitted, None))
        }
        Target::Named(_, connection) => connection,
        Target::Unknown(_) => return Err(refuse_unknown(delivery, max, now)),
    };
    if connection.signing_keys(now).is_empty() {
        let line = json!({"msg": "webhook for a connection with no valid signing secret", "connection": connection.id});
        worker::console_warn!("{line}");
    }
    let named = |connection: &Connection| {
        connection.admit(delivery, max, now).map(|(admitted, fingerprint)| (admitted, Some(fingerprint)))
    };
    match named(connection) {
        Err(refusal) if refusal.code == "invalid_signature" => {
            match connections::refetch(env, &connection.id, now).await {
                Ok(Some(fresh)) => named(&fresh),
                _ => Err(refusal),
            }
        }
        admitted => admitted,
    }
}

/// The answer to a redelivery of a finished webhook, from its KV idempotency key `key`; `None`
/// (ask the Durable Object) when KV has no finished record of it or cannot be read.
async fn finished_in_kv(env: &Env, key: &str, admitted: &Admitted) -> Option<Reply> {
    let record: WebhookRecord = Kv::open(env).ok()?.get(key).await.ok()??;
    matches!(record.state, WebhookState::Finished { .. })
        .then(|| reply(&admitted.webhook_id, &record, &admitted.body_sha256, false))
}

/// What the Durable Object said: its reply, or its refusal (the connection removed, the secret
/// revoked), passed on as it is.
enum Accepted {
    Reply(Reply),
    Refused(u16, Value),
}

/// Hands the webhook to its location's Durable Object, which accepts it or answers from its record.
async fn accept(env: &Env, location_id: &str, intake: &Intake) -> Result<Accepted> {
    let mut response = ObjectStub::open(env, location_id)?.send(&LocationCall::Accept, Some(intake)).await?;
    let text = response.text().await?;
    match response.status_code() {
        200 => Ok(Accepted::Reply(parsed(&text)?)),
        status @ (401 | 404) => Ok(Accepted::Refused(status, parsed(&text)?)),
        status => Err(worker::Error::RustError(format!(
            "the Durable Object answered {} with {status}: {text}",
            LocationCall::Accept.path()
        ))),
    }
}

fn answer(reply: &Reply) -> Result<Response> {
    let replayed: &[(&str, &str)] =
        if reply.replayed { &[("x-sightmill-sync-replayed", "true")] } else { &[] };
    respond::json_with_headers(reply.status, &reply.body, replayed)
}

/// The body, read chunk by chunk and no longer kept once it passes `max` bytes, so that a body
/// sent without a `Content-Length` is never held whole; `None` when it is too large. The rest is
/// still read (and dropped), so that the sender gets its 413 instead of a broken connection.
async fn read_body(req: &mut Request, max: usize) -> Result<Option<Vec<u8>>> {
    if req.inner().body().is_none() {
        return Ok(Some(Vec::new()));
    }
    let mut stream = req.stream()?;
    let mut body = Some(Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.as_ref().is_some_and(|kept| kept.len() + chunk.len() > max) {
            body = None;
        }
        if let Some(kept) = body.as_mut() {
            kept.extend_from_slice(&chunk);
        }
    }
    Ok(body)
}

fn parsed<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_slice(text.as_bytes()).map_err(|error| worker::Error::RustError(error.to_string()))
}
