//! One outbound HTTP call with a deadline: `Fetch` raced against a timer, and the request aborted
//! when the timer wins. Every call the worker makes to another service (the Contacts API, the
//! token endpoint, the alert receiver) goes through here.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{AbortController, Delay, Fetch, Request, Response};

/// A call that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportFailure {
    #[error("could not build the request: {0}")]
    Build(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("no answer within {0} ms")]
    Timeout(u32),
}

/// Sends `request` and reads the whole answer, or gives up after `timeout_ms`.
pub async fn fetch_with_timeout(
    request: Request,
    timeout_ms: u32,
) -> Result<(Response, String), TransportFailure> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(async {
        let mut response = fetch.send_with_signal(&signal).await?;
        let text = response.text().await?;
        Ok::<_, worker::Error>((response, text))
    });
    let timeout = Box::pin(Delay::from(Duration::from_millis(u64::from(timeout_ms))));
    let raced = select(sending, timeout).await;
    match raced {
        Either::Left((Ok(answer), _)) => Ok(answer),
        Either::Left((Err(error), _)) => Err(TransportFailure::Network(error.to_string())),
        Either::Right(((), _)) => {
            controller.abort();
            Err(TransportFailure::Timeout(timeout_ms))
        }
    }
}
