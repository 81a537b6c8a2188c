//! Standard Webhooks signature verification: the first check a SightMill webhook meets, before its
//! body is parsed. Pure: it is handed the headers, the raw body, the configured keys and `now`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// How far `webhook-timestamp` may be from now, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// Signature entries considered in one header; more are ignored, so a header cannot buy CPU.
const MAX_SIGNATURES: usize = 8;
/// Longest `webhook-id` accepted; the id becomes part of a KV key (at most 512 bytes).
pub const MAX_WEBHOOK_ID_LEN: usize = 128;
/// Fewest bytes a signing secret given to the worker decodes to (`WEBHOOK_SECRETS`, an operator's
/// `signing_secret`): a guessable secret is refused where it is set, never where it is used.
pub const MIN_SECRET_BYTES: usize = 24;

/// One HMAC key, decoded from its `whsec_<base64>` form. Its bytes never print.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("signing secret number {0} does not start with `whsec_`")]
    MissingPrefix(usize),
    #[error("signing secret number {0} is not valid base64 after `whsec_`")]
    NotBase64(usize),
    #[error("no signing secret is configured")]
    NoneConfigured,
    #[error("signing secret number {0} is shorter than {MIN_SECRET_BYTES} bytes after `whsec_` (make one with `openssl rand -base64 32`)")]
    TooShort(usize),
}

impl SigningKey {
    /// Parses every `whsec_…` secret in `list` (separated by spaces, commas or newlines), so that
    /// several can be active during a rotation.
    pub fn parse_list(list: &str) -> Result<Vec<SigningKey>, KeyError> {
        let keys = SigningKey::split_list(list)
            .enumerate()
            .map(|(index, part)| SigningKey::parse(part, index + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::NoneConfigured);
        }
        Ok(keys)
    }

    /// [`SigningKey::parse_list`] for a list being set: each secret also at least
    /// [`MIN_SECRET_BYTES`] long.
    pub fn parse_strong_list(list: &str) -> Result<Vec<SigningKey>, KeyError> {
        let keys = SigningKey::parse_list(list)?;
        match keys.iter().position(|key| key.0.len() < MIN_SECRET_BYTES) {
            Some(index) => Err(KeyError::TooShort(index + 1)),
            None => Ok(keys),
        }
    }

    /// The entries of a list of secrets: separated by commas or whitespace.
    pub fn split_list(list: &str) -> impl Iterator<Item = &str> {
        list.split(|c: char| c == ',' || c.is_whitespace()).filter(|part| !part.is_empty())
    }

    fn parse(text: &str, number: usize) -> Result<SigningKey, KeyError> {
        let encoded = text.strip_prefix("whsec_").ok_or(KeyError::MissingPrefix(number))?;
        let bytes = BASE64.decode(encoded).map_err(|_| KeyError::NotBase64(number))?;
        Ok(SigningKey(bytes))
    }

    fn mac(&self, signed_content: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        for part in signed_content {
            mac.update(part);
        }
        mac
    }

    /// `v1,<base64>` for the given message: what SightMill puts in `webhook-signature`.
    /// Used by tests, the demo and the benchmark to sign what they send.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mac = self.mac(&[webhook_id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The three Standard Webhooks headers, as received (absent ones are `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the `webhook-id` header must be 1-{MAX_WEBHOOK_ID_LEN} characters of A-Z a-z 0-9 . _ : -")]
    BadId,
    #[error("the `webhook-timestamp` header is not a whole number of seconds")]
    BadTimestamp,
    #[error("the `webhook-timestamp` is more than 5 minutes away from now")]
    TimestampOutOfTolerance,
    #[error("no `v1` signature in `webhook-signature` matches the body")]
    NoMatch,
}

/// Verifies a delivery: the id is usable, the timestamp is within tolerance, and at least one `v1`
/// signature matches one of `keys`. Every comparison runs in constant time (`Mac::verify_slice`).
/// Returns the webhook id on success.
pub fn verify<'a>(
    keys: &[SigningKey],
    headers: SignatureHeaders<'a>,
    body: &[u8],
    now_secs: i64,
) -> Result<&'a str, SignatureError> {
    let id = headers.id.ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let timestamp = headers.timestamp.ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let signature = headers.signature.ok_or(SignatureError::MissingHeader("webhook-signature"))?;

    if !is_valid_id(id) {
        return Err(SignatureError::BadId);
    }
    let sent_at = parse_timestamp(timestamp)?;
    if now_secs.abs_diff(sent_at) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::TimestampOutOfTolerance);
    }

    let candidates: Vec<Vec<u8>> = v1_signatures(signature).collect();
    let matched = keys.iter().any(|key| {
        let mac = key.mac(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
        candidates.iter().any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    });
    if matched {
        Ok(id)
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// Webhook ids become KV keys and appear in logs: keep them to a safe alphabet and length.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_WEBHOOK_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    text.parse().map_err(|_| SignatureError::BadTimestamp)
}

/// The decoded `v1` entries of a `webhook-signature` header; other versions and undecodable
/// entries are skipped, and at most [`MAX_SIGNATURES`] entries are looked at.
fn v1_signatures(header: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    header
        .split(' ')
        .filter(|entry| !entry.is_empty())
        .take(MAX_SIGNATURES)
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference test vector (also used by svix's libraries).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn keys(list: &str) -> Vec<SigningKey> {
        SigningKey::parse_list(list).unwrap()
    }

    fn headers<'a>(signature: &'a str, timestamp: &'a str) -> SignatureHeaders<'a> {
        SignatureHeaders { id: Some(ID), timestamp: Some(timestamp), signature: Some(signature) }
    }

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        let keys = keys(SECRET);
        assert_eq!(keys[0].sign(ID, TIMESTAMP, BODY), SIGNATURE);
        let ts = TIMESTAMP.to_string();
        assert_eq!(verify(&keys, headers(SIGNATURE, &ts), BODY, TIMESTAMP), Ok(ID));
    }

    #[test]
    fn any_configured_key_and_any_listed_signature_may_match() {
        let keys = keys("whsec_AAAAAAAAAAAAAAAAAAAAAA==, whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let header = format!("v1a,abc v1,bm90IGl0 {SIGNATURE}");
        let ts = TIMESTAMP.to_string();
        assert_eq!(verify(&keys, headers(&header, &ts), BODY, TIMESTAMP + 299), Ok(ID));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let keys = keys(SECRET);
        let ts = TIMESTAMP.to_string();
        let cases: Vec<(SignatureHeaders, &[u8], i64, SignatureError)> = vec![
            (headers(SIGNATURE, &ts), b"{\"test\": 2432232315}", TIMESTAMP, SignatureError::NoMatch),
            (headers(SIGNATURE, &ts), BODY, TIMESTAMP + 301, SignatureError::TimestampOutOfTolerance),
            (headers(SIGNATURE, &ts), BODY, TIMESTAMP - 301, SignatureError::TimestampOutOfTolerance),
            (headers(SIGNATURE, "16142653x0"), BODY, TIMESTAMP, SignatureError::BadTimestamp),
            (headers(SIGNATURE, "-1"), BODY, TIMESTAMP, SignatureError::BadTimestamp),
            (
                headers("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", &ts),
                BODY,
                TIMESTAMP,
                SignatureError::NoMatch,
            ),
            (headers("v1,not base64!", &ts), BODY, TIMESTAMP, SignatureError::NoMatch),
            (
                SignatureHeaders { id: None, ..headers(SIGNATURE, &ts) },
                BODY,
                TIMESTAMP,
                SignatureError::MissingHeader("webhook-id"),
            ),
            (
                SignatureHeaders { timestamp: None, ..headers(SIGNATURE, &ts) },
                BODY,
                TIMESTAMP,
                SignatureError::MissingHeader("webhook-timestamp"),
            ),
            (
                SignatureHeaders { signature: None, ..headers(SIGNATURE, &ts) },
                BODY,
                TIMESTAMP,
                SignatureError::MissingHeader("webhook-signature"),
            ),
            (
                SignatureHeaders { id: Some("../etc/passwd"), ..headers(SIGNATURE, &ts) },
                BODY,
                TIMESTAMP,
                SignatureError::BadId,
            ),
        ];
        for (headers, body, now, expected) in cases {
            assert_eq!(verify(&keys, headers, body, now), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn a_clock_at_either_end_of_the_range_refuses_without_overflowing() {
        // Found by fuzzing (fuzz/fuzz_targets/signature.rs): `now - sent_at` overflowed.
        let keys = keys(SECRET);
        let ts = TIMESTAMP.to_string();
        for now in [i64::MIN, i64::MIN + 7, -1, i64::MAX] {
            let result = verify(&keys, headers(SIGNATURE, &ts), BODY, now);
            assert_eq!(result, Err(SignatureError::TimestampOutOfTolerance), "{now}");
        }
    }

    #[test]
    fn a_retired_key_no_longer_verifies() {
        let ts = TIMESTAMP.to_string();
        let only_new = keys("whsec_AAAAAAAAAAAAAAAAAAAAAA==");
        assert_eq!(verify(&only_new, headers(SIGNATURE, &ts), BODY, TIMESTAMP), Err(SignatureError::NoMatch));
    }

    #[test]
    fn secret_lists_are_checked_without_echoing_them() {
        assert_eq!(SigningKey::parse_list("  ").unwrap_err(), KeyError::NoneConfigured);
        for weak in ["whsec_", "whsec_AA==", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="] {
            assert!(SigningKey::parse_list(weak).is_ok(), "a stored secret still verifies: {weak}");
            let list = format!("{SECRET} {weak}");
            assert_eq!(SigningKey::parse_strong_list(&list).unwrap_err(), KeyError::TooShort(2), "{weak}");
        }
        assert_eq!(SigningKey::parse_strong_list("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap().len(), 1);
        assert_eq!(SigningKey::parse_list("whsec_AAAA,secret123").unwrap_err(), KeyError::MissingPrefix(2));
        let error = SigningKey::parse_list("whsec_%%%").unwrap_err();
        assert_eq!(error, KeyError::NotBase64(1));
        assert!(!error.to_string().contains("%%%"));
        assert_eq!(format!("{:?}", keys(SECRET)[0]), "SigningKey([redacted])");
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn arbitrary_headers_never_panic(id in ".{0,40}", ts in ".{0,14}", sig in ".{0,120}", body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let keys = keys(SECRET);
            let headers = SignatureHeaders { id: Some(&id), timestamp: Some(&ts), signature: Some(&sig) };
            let _ = verify(&keys, headers, &body, TIMESTAMP);
        }
    }
}
