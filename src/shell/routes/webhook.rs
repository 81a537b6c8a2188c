//! The webhook route: admit the delivery (core), answer a redelivery of a finished webhook from
//! its KV idempotency key, and otherwise hand it to the location's Durable Object, which accepts
//! it in one transaction (or answers from its record) before the route answers. A KV miss or a
//! stale KV answer costs only that trip: the Durable Object dedupes exactly.

use futures_util::StreamExt;
use serde_json::json;
use worker::{console_error, Env, Request, Response, Result};

use crate::intake::signature::SignatureHeaders;
use crate::intake::{admit, check_declared_length, too_large, Admitted, Delivery};
use crate::shell::location::load_config;
use crate::shell::platform::kv::Kv;
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::now_ms;
use crate::sync::queue::{reply, Intake, Reply};
use crate::sync::records::{webhook_key, WebhookRecord, WebhookState};

pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let now = now_ms();
    let config = match load_config(env) {
        Ok(config) => config,
        Err(response) => return response,
    };
    let headers = req.headers().clone();
    let header = |name: &str| headers.get(name).ok().flatten();
    if let Err(refusal) = check_declared_length(header("content-length").as_deref(), config.max_body_bytes) {
        return respond::refusal(&refusal);
    }
    let Some(body) = read_body(&mut req, config.max_body_bytes).await? else {
        return respond::refusal(&too_large(config.max_body_bytes));
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
    let admitted = match admit(delivery, &config.signing_keys, config.max_body_bytes, now / 1000) {
        Ok(admitted) => admitted,
        Err(refusal) => return respond::refusal(&refusal),
    };
    if let Some(known) = finished_in_kv(env, &admitted).await {
        return answer(&known);
    }
    match accept(env, &config.location_id, &admitted).await {
        Ok(reply) => answer(&reply),
        Err(error) => {
            console_error!(
                "{}",
                json!({"msg": "webhook not accepted", "webhook_id": admitted.webhook_id, "error": error.to_string()})
            );
            respond::error(503, "storage_unavailable", "the webhook could not be recorded; deliver it again")
        }
    }
}

/// The answer to a redelivery of a finished webhook, from its KV idempotency key; `None` (ask
/// the Durable Object) when KV has no finished record of it or cannot be read.
async fn finished_in_kv(env: &Env, admitted: &Admitted) -> Option<Reply> {
    let record: WebhookRecord = Kv::open(env).ok()?.get(&webhook_key(&admitted.webhook_id)).await.ok()??;
    matches!(record.state, WebhookState::Finished { .. })
        .then(|| reply(&admitted.webhook_id, &record, &admitted.body_sha256, false))
}

/// Hands the webhook to its location's Durable Object, which accepts it or answers from its record.
async fn accept(env: &Env, location_id: &str, admitted: &Admitted) -> Result<Reply> {
    ObjectStub::open(env, location_id)?.call("/accept", &Intake::of(admitted)).await
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
