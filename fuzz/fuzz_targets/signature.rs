//! Fuzz target: the Standard Webhooks signature check (`signature::verify`) on arbitrary secret
//! lists, headers, bodies and clocks. Besides never panicking: a delivery signed with a configured
//! key verifies, and the same delivery with one body byte changed does not.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sightmill_sync::intake::signature::{is_valid_id, verify, SignatureError, SignatureHeaders, SigningKey};

/// A key that always parses, for when the fuzzed secret list does not.
const FALLBACK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// `webhook-timestamp` takes at most 12 digits.
const MAX_TIMESTAMP: i64 = 999_999_999_999;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secrets: &'a str,
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    body: &'a [u8],
    now: i64,
}

fuzz_target!(|input: Input| {
    let keys = SigningKey::parse_list(input.secrets)
        .unwrap_or_else(|_| SigningKey::parse_list(FALLBACK_SECRET).expect("the fallback parses"));
    let headers = SignatureHeaders { id: input.id, timestamp: input.timestamp, signature: input.signature };
    let _ = verify(&keys, headers, input.body, input.now);

    let Some(id) = input.id.filter(|id| is_valid_id(id)) else {
        return;
    };
    let sent_at = input.now.rem_euclid(MAX_TIMESTAMP + 1);
    let timestamp = sent_at.to_string();
    let signature = keys[keys.len() - 1].sign(id, sent_at, input.body);
    let signed = SignatureHeaders { id: Some(id), timestamp: Some(&timestamp), signature: Some(&signature) };
    assert_eq!(verify(&keys, signed, input.body, sent_at), Ok(id), "a signed delivery verifies");
    if let Some((first, rest)) = input.body.split_first() {
        let tampered: Vec<u8> = std::iter::once(first ^ 1).chain(rest.iter().copied()).collect();
        assert_eq!(
            verify(&keys, signed, &tampered, sent_at),
            Err(SignatureError::NoMatch),
            "a changed body does not"
        );
    }
});
