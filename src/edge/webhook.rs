//! The webhook route: admit the delivery (core), consult its idempotency record, apply the contact
//! change through the Contacts API, record the outcome, answer SightMill.

use worker::{console_error, console_log, Date, Env, Request, Response, Result};

use super::authorized::AuthorizedClient;
use super::respond;
use super::store::{Store, StoreError};
use super::tokens::TokenError;
use crate::config::Config;
use crate::event::Event;
use crate::intake::{admit, check_declared_length, Admitted, Delivery};
use crate::records::{
    contact_link_key, webhook_key, ContactLink, Outcome, Redelivery, WebhookRecord,
    FINISHED_TTL_SECS,
};
use crate::report::{log_line, outcome_body, Decision, LogEntry};
use crate::signature::SignatureHeaders;
use crate::sync::{ContactSync, Failure, Next, Start};

/// Contacts API calls one contact event may make (create, then update of a reported duplicate).
const MAX_CALLS: u32 = 3;

pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let started_at = now_ms();
    let config = match Config::from_lookup(|name| setting(env, name)) {
        Ok(config) => config,
        Err(error) => {
            console_error!(
                "{}",
                serde_json::json!({"msg": "configuration error", "error": error.to_string()})
            );
            return respond::error(500, "misconfigured", error.to_string());
        }
    };
    let headers = req.headers().clone();
    let header = |name: &str| headers.get(name).ok().flatten();
    if let Err(refusal) =
        check_declared_length(header("content-length").as_deref(), config.max_body_bytes)
    {
        return respond::refusal(&refusal);
    }
    let body = req.bytes().await?;
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
    let admitted = match admit(
        delivery,
        &config.signing_keys,
        config.max_body_bytes,
        started_at / 1000,
    ) {
        Ok(admitted) => admitted,
        Err(refusal) => return respond::refusal(&refusal),
    };
    let store = Store::open(env)?;
    match Attempt::run(env, &store, &config, &admitted, started_at).await {
        Ok(response) => response,
        Err(error) => {
            console_error!(
                "{}",
                serde_json::json!({"msg": "storage error", "webhook_id": admitted.webhook_id, "error": error.to_string()})
            );
            respond::error(
                503,
                "storage_unavailable",
                "the webhook could not be recorded; deliver it again",
            )
        }
    }
}

/// One attempt at one admitted webhook.
struct Attempt<'a> {
    store: &'a Store,
    admitted: &'a Admitted,
    started_at: i64,
    accepted_at: i64,
    attempt: u32,
    api_calls: u32,
}

impl<'a> Attempt<'a> {
    async fn run(
        env: &Env,
        store: &'a Store,
        config: &Config,
        admitted: &'a Admitted,
        started_at: i64,
    ) -> std::result::Result<Result<Response>, StoreError> {
        let key = webhook_key(&admitted.webhook_id);
        let existing: Option<WebhookRecord> = store.get(&key).await?;
        let (previous_attempts, accepted_at) = match existing
            .as_ref()
            .map(|r| r.redelivery(&admitted.body_sha256))
        {
            Some(Redelivery::Replay(outcome)) => {
                let attempt = Attempt {
                    store,
                    admitted,
                    started_at,
                    accepted_at: started_at,
                    attempt: 0,
                    api_calls: 0,
                };
                attempt.log(Decision::Replayed, Some(outcome), None);
                return Ok(replay_response(admitted, outcome));
            }
            Some(Redelivery::Conflict) => {
                return Ok(respond::error(
                    409,
                    "webhook_id_reused",
                    "this webhook-id was already used for a different body",
                ));
            }
            Some(Redelivery::Resume {
                attempts,
                accepted_at,
            }) => (attempts, accepted_at),
            None => (0, started_at),
        };
        let mut attempt = Attempt {
            store,
            admitted,
            started_at,
            accepted_at,
            attempt: previous_attempts + 1,
            api_calls: 0,
        };
        attempt.record_pending(None).await?;
        let Event::ContactUpsert { contact, .. } = &admitted.event;
        let link_key = contact_link_key(&config.location_id, &contact.id);
        let link: Option<ContactLink> = store.get(&link_key).await?;

        let (mut sync, mut request) = match ContactSync::start(
            contact,
            link.as_ref(),
            &config.location_id,
            &config.mapping,
        ) {
            Start::Stale(contact_id) => return attempt.finish(Outcome::Stale { contact_id }).await,
            Start::Send(sync, request) => (sync, request),
        };
        let mut client = match AuthorizedClient::open(env, store, config).await {
            Ok(client) => client,
            Err(error) => return attempt.retry_later(token_failure(error)).await,
        };
        loop {
            attempt.api_calls += 1;
            let answer = match client.send(&request).await {
                Ok(answer) => answer,
                Err(error) => return attempt.retry_later(token_failure(error)).await,
            };
            match sync.on_answer(answer) {
                Next::Send(next) if attempt.api_calls < MAX_CALLS => request = next,
                Next::Send(_) => {
                    let failure = Failure::Retryable {
                        detail: "too many Contacts API calls for one event".into(),
                        retry_after_secs: None,
                    };
                    return attempt.retry_later(failure).await;
                }
                Next::Applied { link, action } => {
                    store.put(&link_key, &link, None).await?;
                    let contact_id = link.contact_id;
                    return attempt
                        .finish(Outcome::Applied { contact_id, action })
                        .await;
                }
                Next::Failed(failure) => match failure.final_outcome() {
                    Some(outcome) => return attempt.finish(outcome).await,
                    None => return attempt.retry_later(failure).await,
                },
            }
        }
    }

    async fn record_pending(
        &self,
        last_error: Option<String>,
    ) -> std::result::Result<(), StoreError> {
        let record = WebhookRecord::Pending {
            body_sha256: self.admitted.body_sha256.clone(),
            accepted_at: self.accepted_at,
            attempts: self.attempt,
            last_error,
        };
        self.store
            .put(&webhook_key(&self.admitted.webhook_id), &record, None)
            .await
    }

    async fn finish(&self, outcome: Outcome) -> std::result::Result<Result<Response>, StoreError> {
        let record = WebhookRecord::Finished {
            body_sha256: self.admitted.body_sha256.clone(),
            finished_at: now_ms(),
            outcome: outcome.clone(),
        };
        self.store
            .put(
                &webhook_key(&self.admitted.webhook_id),
                &record,
                Some(FINISHED_TTL_SECS),
            )
            .await?;
        self.log(Decision::Finished, Some(&outcome), None);
        Ok(respond::json(
            outcome.http_status(),
            &outcome_body(self.admitted, &outcome),
        ))
    }

    /// Leaves the webhook pending and answers 503, so that SightMill delivers it again.
    async fn retry_later(
        &self,
        failure: Failure,
    ) -> std::result::Result<Result<Response>, StoreError> {
        let detail = failure.describe();
        self.record_pending(Some(detail.clone())).await?;
        self.log(Decision::RetryLater, None, Some(&detail));
        let (code, retry_after) = match &failure {
            Failure::Retryable {
                retry_after_secs, ..
            } => ("contacts_api_unavailable", *retry_after_secs),
            Failure::TokenRejected => ("contacts_api_token_rejected", None),
            Failure::Misconfigured(_) | Failure::Rejected { .. } => ("misconfigured", None),
        };
        let body = serde_json::json!({"error": code, "message": detail, "webhook_id": self.admitted.webhook_id, "retryable": true});
        let retry_after = retry_after.map(|secs| secs.to_string());
        let headers: Vec<(&str, &str)> = retry_after
            .iter()
            .map(|secs| ("Retry-After", secs.as_str()))
            .collect();
        let response = respond::json_with_headers(503, &body, &headers);
        Ok(response)
    }

    fn log(&self, decision: Decision, outcome: Option<&Outcome>, error: Option<&str>) {
        console_log!(
            "{}",
            log_line(&LogEntry {
                admitted: self.admitted,
                attempt: self.attempt,
                decision,
                outcome,
                error,
                api_calls: self.api_calls,
                latency_ms: now_ms() - self.started_at,
            })
        );
    }
}

/// Why no token could be had, as an attempt failure: the webhook stays pending in every case.
fn token_failure(error: TokenError) -> Failure {
    match error {
        TokenError::NotConfigured(detail) => Failure::Misconfigured(detail),
        TokenError::Unavailable(detail) => Failure::Retryable {
            detail,
            retry_after_secs: None,
        },
        TokenError::Refused(_) => Failure::TokenRejected,
    }
}

fn replay_response(admitted: &Admitted, outcome: &Outcome) -> Result<Response> {
    let body = outcome_body(admitted, outcome);
    respond::json_with_headers(
        outcome.http_status(),
        &body,
        &[("x-sightmill-sync-replayed", "true")],
    )
}

/// A var or secret by name.
fn setting(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|value| value.to_string())
        .or_else(|_| env.secret(name).map(|value| value.to_string()))
        .ok()
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}
