//! One outbound HTTP call with a deadline: `Fetch` raced against a timer, and the request aborted
//! when the timer wins. Every call the worker makes to another service (the Contacts API, the
//! token endpoint, the alert receiver) goes through here.

use std::time::Duration;

use futures_util::future::{select, Either};
use wasm_bindgen::JsValue;
use worker::{web_sys, AbortController, Delay, Fetch, Headers, Method, Request, Response};

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

/// A request to send: `method` to `url` with `headers`, and a text body when given. Built on the
/// platform's own `Request`: worker's `RequestInit` would also link the conversion of its `cf`
/// options, which nothing here sets. The error is worker's own for a request it cannot build.
pub fn request(method: Method, url: &str, headers: &Headers, body: Option<&str>) -> worker::Result<Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    init.set_headers(&headers.0);
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(body));
    }
    web_sys::Request::new_with_str_and_init(url, &init).map(Request::from).map_err(|error| {
        let message = error.as_string();
        worker::Error::JsError(message.unwrap_or_else(|| "invalid URL or options for Request".to_owned()))
    })
}

/// A request whose body is `body`, streamed as it arrives.
pub fn streaming_request(
    method: Method,
    url: &str,
    headers: &Headers,
    body: &web_sys::ReadableStream,
) -> worker::Result<Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    init.set_headers(&headers.0);
    init.set_body(body);
    web_sys::Request::new_with_str_and_init(url, &init).map(Request::from).map_err(|error| {
        let message = error.as_string();
        worker::Error::JsError(message.unwrap_or_else(|| "invalid URL or options for Request".to_owned()))
    })
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
