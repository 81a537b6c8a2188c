//! The webhook route: admit the delivery (core), then accept it durably (its record and its place
//! in the queue are in KV before the answer), answer 202, and make the first attempt after the
//! answer. A redelivery of a known webhook changes nothing and is answered from KV.

use futures_util::StreamExt;
use worker::{console_error, Context, Env, Request, Response, Result};

use super::queue::Runner;
use super::respond;
use super::runtime::{now_ms, setting};
use super::store::{Store, StoreError};
use crate::config::Config;
use crate::intake::signature::SignatureHeaders;
use crate::intake::{admit, check_declared_length, too_large, Admitted, Delivery};
use crate::sync::plan::MAX_CALLS;
use crate::sync::records::{due_key, webhook_key, DueMeta, Redelivery, WebhookRecord};
use crate::sync::report::{accepted_body, outcome_body, Subject};

/// How long the first attempt has before the cron may take the webhook over.
const FIRST_ATTEMPT_LEASE_MS: i64 = 2 * 60 * 1_000;

pub async fn handle(mut req: Request, env: &Env, ctx: &Context) -> Result<Response> {
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
    let store = Store::open(env)?;
    match accept(&store, &admitted, now).await {
        Ok(Accepted::New(record)) => {
            let answer =
                respond::json(202, &accepted_body(Subject::of(&admitted.webhook_id, &record), "pending"));
            let mut runner = Runner::new(env.clone(), store, config, MAX_CALLS, 30_000);
            let webhook_id = admitted.webhook_id.clone();
            ctx.wait_until(async move {
                if let Err(error) = runner.attempt(&webhook_id, record).await {
                    log_storage_error(&webhook_id, &error);
                }
            });
            answer
        }
        Ok(Accepted::Known(response)) => response,
        Err(error) => {
            log_storage_error(&admitted.webhook_id, &error);
            respond::error(503, "storage_unavailable", "the webhook could not be recorded; deliver it again")
        }
    }
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

/// The checked configuration, or the 500 that says which setting is wrong.
pub fn load_config(env: &Env) -> std::result::Result<Config, Result<Response>> {
    Config::from_lookup(|name| setting(env, name)).map_err(|error| {
        console_error!("{}", serde_json::json!({"msg": "configuration error", "error": error.to_string()}));
        respond::error(500, "misconfigured", error.to_string())
    })
}

enum Accepted {
    /// Newly recorded: to be attempted.
    New(WebhookRecord),
    /// Already on record: the answer to give.
    Known(Result<Response>),
}

/// Records a new webhook or answers a known one. Its place in the queue is written before its
/// record: a record on file is what makes a redelivery answer 202 without writing, so a record
/// written without its `due:` key would never be attempted. A key without a record (its write
/// failed, the sender redelivers) is dropped by the cron.
async fn accept(store: &Store, admitted: &Admitted, now: i64) -> std::result::Result<Accepted, StoreError> {
    let key = webhook_key(&admitted.webhook_id);
    if let Some(existing) = store.get::<WebhookRecord>(&key).await? {
        let subject = Subject::of(&admitted.webhook_id, &existing);
        let response = match existing.redelivery(&admitted.body_sha256) {
            Redelivery::Replay(outcome) => respond::json_with_headers(
                200,
                &outcome_body(subject, outcome),
                &[("x-sightmill-sync-replayed", "true")],
            ),
            Redelivery::AlreadyAccepted(state) => respond::json_with_headers(
                202,
                &accepted_body(subject, state),
                &[("x-sightmill-sync-replayed", "true")],
            ),
            Redelivery::Conflict => respond::error(
                409,
                "webhook_id_reused",
                "this webhook-id was already used for a different body",
            ),
        };
        return Ok(Accepted::Known(response));
    }
    let event = &admitted.event;
    let due_at = now + FIRST_ATTEMPT_LEASE_MS;
    let record = WebhookRecord::accepted(
        admitted.body.clone(),
        admitted.body_sha256.clone(),
        event.kind().as_str(),
        event.sightmill_contact_id(),
        now,
        due_at,
    );
    let meta = serde_json::json!(DueMeta { accepted_at: now });
    store.put_index(&due_key(due_at, &admitted.webhook_id), Some(meta)).await?;
    store.put(&key, &record, None).await?;
    Ok(Accepted::New(record))
}

fn log_storage_error(webhook_id: &str, error: &StoreError) {
    console_error!(
        "{}",
        serde_json::json!({"msg": "storage error", "webhook_id": webhook_id, "error": error.to_string()})
    );
}
