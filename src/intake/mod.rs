//! Webhook intake: decides whether a delivery is admitted (size, content type, signature, JSON,
//! shape) or refused with a status and a JSON error. Runs before anything is read from or written to
//! KV, so a refused delivery costs nothing and leaves no trace.

pub mod event;
pub mod signature;

use crate::intake::event::{parse_event, Event, ParseError};
use crate::intake::signature::{verify, SignatureHeaders, SigningKey};
use crate::refusal::Refusal;
use crate::sync::records::body_fingerprint;

/// One delivery as the shell received it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub content_type: Option<&'a str>,
    pub signature: SignatureHeaders<'a>,
    pub body: &'a [u8],
}

/// An admitted delivery: verified and parsed, with the raw body kept for the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub webhook_id: String,
    pub event: Event,
    pub body: String,
    pub body_sha256: String,
}

/// Refuses a declared `Content-Length` over the limit before the body is read.
pub fn check_declared_length(content_length: Option<&str>, max_body_bytes: usize) -> Result<(), Refusal> {
    match content_length.and_then(|text| text.trim().parse::<u64>().ok()) {
        Some(length) if length > max_body_bytes as u64 => Err(too_large(max_body_bytes)),
        _ => Ok(()),
    }
}

/// Admits or refuses a delivery, checking in this order: size (413), content type (415),
/// signature (401), JSON (400), event shape (422).
pub fn admit(
    delivery: Delivery<'_>,
    keys: &[SigningKey],
    max_body_bytes: usize,
    now_secs: i64,
) -> Result<Admitted, Refusal> {
    if delivery.body.len() > max_body_bytes {
        return Err(too_large(max_body_bytes));
    }
    check_content_type(delivery.content_type)?;
    let webhook_id = verify(keys, delivery.signature, delivery.body, now_secs)
        .map_err(|e| Refusal::invalid_signature(e.to_string()))?;
    let event = parse_event(delivery.body).map_err(|e| match e {
        ParseError::Malformed(_) => Refusal::bad_request("malformed_json", e.to_string()),
        ParseError::Shape(_) => Refusal::unprocessable("unprocessable_event", e.to_string()),
    })?;
    let body = String::from_utf8(delivery.body.to_vec())
        .map_err(|_| Refusal::bad_request("malformed_json", "the body is not UTF-8"))?;
    Ok(Admitted {
        webhook_id: webhook_id.to_owned(),
        event,
        body_sha256: body_fingerprint(delivery.body),
        body,
    })
}

/// The 413 for a body over `max_body_bytes`.
pub fn too_large(max_body_bytes: usize) -> Refusal {
    Refusal::too_large("body_too_large", format!("the body is larger than {max_body_bytes} bytes"))
}

/// `application/json`, optionally with `charset=utf-8`.
fn check_content_type(content_type: Option<&str>) -> Result<(), Refusal> {
    let refuse =
        || Refusal::unsupported_media_type("the Content-Type must be application/json (charset utf-8)");
    let mut parts = content_type.ok_or_else(refuse)?.split(';').map(str::trim);
    if !parts.next().is_some_and(|media| media.eq_ignore_ascii_case("application/json")) {
        return Err(refuse());
    }
    for parameter in parts.filter(|p| !p.is_empty()) {
        let (name, value) = parameter.split_once('=').ok_or_else(refuse)?;
        let value = value.trim().trim_matches('"');
        if !name.trim().eq_ignore_ascii_case("charset") || !value.eq_ignore_ascii_case("utf-8") {
            return Err(refuse());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_795_773_600;
    const BODY: &[u8] = br#"{"type":"contact.created","timestamp":"2026-11-27T10:00:00Z","data":{"id":"sm_1","updated_at":"2026-11-27T10:00:00Z"}}"#;

    fn keys() -> Vec<SigningKey> {
        SigningKey::parse_list(SECRET).unwrap()
    }

    fn admit_with(content_type: Option<&str>, body: &[u8], sign_body: &[u8]) -> Result<Admitted, Refusal> {
        let signature = keys()[0].sign("msg_1", NOW, sign_body);
        let timestamp = NOW.to_string();
        let delivery = Delivery {
            content_type,
            signature: SignatureHeaders {
                id: Some("msg_1"),
                timestamp: Some(&timestamp),
                signature: Some(&signature),
            },
            body,
        };
        admit(delivery, &keys(), 1024, NOW)
    }

    fn status(result: Result<Admitted, Refusal>) -> u16 {
        result.map_or_else(|refusal| refusal.status, |_| 200)
    }

    #[test]
    fn a_good_delivery_is_admitted() {
        let admitted = admit_with(Some("application/json; charset=UTF-8"), BODY, BODY).unwrap();
        assert_eq!(admitted.webhook_id, "msg_1");
        assert_eq!(admitted.event.sightmill_contact_id(), "sm_1");
    }

    #[test]
    fn each_refusal_has_its_status_and_code() {
        let big = vec![b' '; 2048];
        type Case<'a> = (Option<&'a str>, &'a [u8], &'a [u8], u16, &'a str);
        let table: Vec<Case> = vec![
            (Some("application/json"), &big, &big, 413, "body_too_large"),
            (None, BODY, BODY, 415, "unsupported_media_type"),
            (Some("text/plain"), BODY, BODY, 415, "unsupported_media_type"),
            (Some("application/json; charset=latin1"), BODY, BODY, 415, "unsupported_media_type"),
            (Some("application/jsonx"), BODY, BODY, 415, "unsupported_media_type"),
            (Some("application/json"), BODY, b"other", 401, "invalid_signature"),
            (Some("application/json"), b"{nope", b"{nope", 400, "malformed_json"),
            (Some("application/json"), b"{\"type\":1}", b"{\"type\":1}", 422, "unprocessable_event"),
        ];
        for (content_type, body, signed, expected_status, expected_code) in table {
            let refusal = admit_with(content_type, body, signed).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (expected_status, expected_code), "{content_type:?}");
            assert_eq!(refusal.body()["error"], expected_code);
        }
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_early() {
        assert_eq!(check_declared_length(Some("1025"), 1024).unwrap_err().status, 413);
        assert!(check_declared_length(Some("1024"), 1024).is_ok());
        assert!(check_declared_length(None, 1024).is_ok());
        assert_eq!(status(admit_with(Some("application/json"), BODY, BODY)), 200);
    }
}
