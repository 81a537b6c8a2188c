//! AES-256-GCM envelopes for secrets kept in Workers KV: the key ring parsed from the
//! `TOKEN_ENCRYPTION_KEYS` secret, sealing under its current key and opening under any key it
//! lists (key rotation). Used by [`crate::auth::tokens`] before a token record is written to KV and after
//! it is read; the shell hands in the random nonce, so sealing stays deterministic.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

/// AES-GCM nonce length in bytes: 96 bits, fresh and random for every seal.
pub const NONCE_LEN: usize = 12;
/// AES-256 key length in bytes.
pub const KEY_LEN: usize = 32;
const MAX_KID_LEN: usize = 32;

/// One encryption key and its id. The key bytes never print.
struct EncryptionKey {
    kid: String,
    bytes: [u8; KEY_LEN],
}

/// The configured keys, newest first: the first seals, every one opens. Never empty.
pub struct KeyRing {
    keys: Vec<EncryptionKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|key| key.kid.as_str()).collect();
        f.debug_struct("KeyRing").field("kids", &kids).finish()
    }
}

/// Why `TOKEN_ENCRYPTION_KEYS` could not be used. Names entries by position and id, never a key.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyRingError {
    #[error("it lists no key; expected `kid:base64key` entries")]
    Empty,
    #[error("entry {0} is not of the form `kid:base64key`")]
    NotAPair(usize),
    #[error("entry {0} has a key id that is not 1-32 characters of A-Z a-z 0-9 _ . -")]
    BadKid(usize),
    #[error("entry {index} (`{kid}`) is not 32 bytes of standard base64 (`openssl rand -base64 32`)")]
    BadKey { index: usize, kid: String },
    #[error("the key id `{0}` is listed twice")]
    DuplicateKid(String),
}

/// A sealed secret as stored: `{"kid", "nonce", "ciphertext"}` (nonce and ciphertext in base64;
/// the ciphertext ends with the 16-byte GCM tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub kid: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// Why an envelope did not open.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("it is sealed under the key id `{0}`, which TOKEN_ENCRYPTION_KEYS does not list")]
    UnknownKey(String),
    #[error("it does not decrypt under the key `{0}` (altered, or sealed for another record)")]
    Corrupt(String),
}

impl KeyRing {
    /// Parses `kid:base64key` entries separated by spaces, commas or newlines; the first entry is
    /// the current key.
    pub fn parse(text: &str) -> Result<KeyRing, KeyRingError> {
        let mut keys: Vec<EncryptionKey> = Vec::new();
        let entries = text.split(|c: char| c == ',' || c.is_whitespace()).filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let key = parse_entry(entry, index + 1)?;
            if keys.iter().any(|known| known.kid == key.kid) {
                return Err(KeyRingError::DuplicateKid(key.kid));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(KeyRing { keys })
    }

    /// The id of the key new envelopes are sealed under.
    pub fn current_kid(&self) -> &str {
        &self.current().kid
    }

    /// Seals `plaintext` under the current key. `aad` (e.g. the KV key) is authenticated but not
    /// stored: the envelope opens only with the same `aad`, so it cannot be moved to another record.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8], nonce: [u8; NONCE_LEN]) -> Envelope {
        let key = self.current();
        let ciphertext = cipher(key)
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM seals any plaintext shorter than 64 GiB");
        Envelope { kid: key.kid.clone(), nonce: BASE64.encode(nonce), ciphertext: BASE64.encode(ciphertext) }
    }

    /// Opens an envelope sealed under any listed key, with the `aad` it was sealed with.
    pub fn open(&self, envelope: &Envelope, aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let key = self
            .keys
            .iter()
            .find(|key| key.kid == envelope.kid)
            .ok_or_else(|| EnvelopeError::UnknownKey(printable_kid(&envelope.kid)))?;
        let corrupt = || EnvelopeError::Corrupt(key.kid.clone());
        let nonce = BASE64.decode(&envelope.nonce).map_err(|_| corrupt())?;
        if nonce.len() != NONCE_LEN {
            return Err(corrupt());
        }
        let ciphertext = BASE64.decode(&envelope.ciphertext).map_err(|_| corrupt())?;
        cipher(key)
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad })
            .map_err(|_| corrupt())
    }

    /// Whether `envelope` is sealed under the current key (else the next write re-seals it).
    pub fn is_current(&self, envelope: &Envelope) -> bool {
        envelope.kid == self.current().kid
    }

    /// One HMAC-SHA256 key per listed key, derived for `purpose` (current first), so that other
    /// signatures (the OAuth `state`) rotate with the ring without reusing the AES keys themselves.
    pub fn derived_keys(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .map(|key| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.bytes)
                    .expect("HMAC accepts keys of any length");
                mac.update(purpose.as_bytes());
                mac.finalize().into_bytes().into()
            })
            .collect()
    }

    fn current(&self) -> &EncryptionKey {
        &self.keys[0]
    }
}

fn parse_entry(entry: &str, index: usize) -> Result<EncryptionKey, KeyRingError> {
    let (kid, encoded) = entry.split_once(':').ok_or(KeyRingError::NotAPair(index))?;
    if !valid_kid(kid) {
        return Err(KeyRingError::BadKid(index));
    }
    let bad_key = || KeyRingError::BadKey { index, kid: kid.to_owned() };
    let bytes = BASE64.decode(encoded).map_err(|_| bad_key())?;
    let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| bad_key())?;
    Ok(EncryptionKey { kid: kid.to_owned(), bytes })
}

fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A key id read back from KV, fit for an error message.
fn printable_kid(kid: &str) -> String {
    if valid_kid(kid) {
        kid.to_owned()
    } else {
        "(malformed)".to_owned()
    }
}

fn cipher(key: &EncryptionKey) -> Aes256Gcm {
    Aes256Gcm::new(&key.bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // base64 of 32 bytes 0x01.. and 0x02..
    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).unwrap()
    }

    #[test]
    fn the_first_key_is_current_and_seals() {
        let keys = ring(&format!("k2:{K2} k1:{K1}"));
        assert_eq!(keys.current_kid(), "k2");
        let envelope = keys.seal(b"secret", b"token:loc", NONCE);
        assert_eq!(envelope.kid, "k2");
        assert_eq!(envelope.nonce, BASE64.encode(NONCE));
        assert!(keys.is_current(&envelope));
        assert_eq!(keys.open(&envelope, b"token:loc").unwrap(), b"secret");
    }

    #[test]
    fn sealing_is_deterministic_for_a_given_nonce_and_differs_across_nonces() {
        let keys = ring(&format!("k1:{K1}"));
        assert_eq!(
            keys.seal(b"x", b"a", NONCE),
            keys.seal(b"x", b"a", NONCE),
            "the core is deterministic: same nonce, same envelope"
        );
        assert_ne!(keys.seal(b"x", b"a", NONCE).ciphertext, keys.seal(b"x", b"a", [8; NONCE_LEN]).ciphertext);
    }

    #[test]
    fn envelopes_under_an_older_listed_key_still_open() {
        let old = ring(&format!("k1:{K1}")).seal(b"refresh", b"token:loc", NONCE);
        let rotated = ring(&format!("k2:{K2},k1:{K1}"));
        assert!(!rotated.is_current(&old));
        assert_eq!(rotated.open(&old, b"token:loc").unwrap(), b"refresh");
    }

    #[test]
    fn envelopes_refuse_to_open_when_anything_is_off() {
        let keys = ring(&format!("k1:{K1}"));
        let good = keys.seal(b"secret", b"token:loc", NONCE);
        let flip = |text: &str| {
            let mut bytes = BASE64.decode(text).unwrap();
            bytes[0] ^= 1;
            BASE64.encode(bytes)
        };
        let corrupt = Err(EnvelopeError::Corrupt("k1".into()));
        let cases = [
            (good.clone(), b"token:other".as_slice(), corrupt.clone()),
            (Envelope { ciphertext: flip(&good.ciphertext), ..good.clone() }, b"token:loc", corrupt.clone()),
            (Envelope { nonce: flip(&good.nonce), ..good.clone() }, b"token:loc", corrupt.clone()),
            (Envelope { nonce: "AAAA".into(), ..good.clone() }, b"token:loc", corrupt.clone()),
            (Envelope { ciphertext: "not base64!".into(), ..good.clone() }, b"token:loc", corrupt),
            (
                Envelope { kid: "k9".into(), ..good.clone() },
                b"token:loc",
                Err(EnvelopeError::UnknownKey("k9".into())),
            ),
            (
                Envelope { kid: "bad kid\n".into(), ..good },
                b"token:loc",
                Err(EnvelopeError::UnknownKey("(malformed)".into())),
            ),
        ];
        for (envelope, aad, expected) in cases {
            assert_eq!(keys.open(&envelope, aad), expected, "{envelope:?}");
        }
    }

    #[test]
    fn the_envelope_is_json_with_kid_nonce_and_ciphertext() {
        let envelope = ring(&format!("k1:{K1}")).seal(b"{}", b"", NONCE);
        let json = serde_json::to_value(&envelope).unwrap();
        let mut fields: Vec<&String> = json.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["ciphertext", "kid", "nonce"]);
        // 2 bytes of plaintext + the 16-byte tag
        assert_eq!(BASE64.decode(&envelope.ciphertext).unwrap().len(), 18);
    }

    #[test]
    fn key_lists_are_checked_and_errors_never_show_a_key() {
        let cases = [
            ("", KeyRingError::Empty),
            (" , ", KeyRingError::Empty),
            (K1, KeyRingError::NotAPair(1)),
            (&format!("k1:{K1} :{K2}"), KeyRingError::BadKid(2)),
            (&format!("a/b:{K1}"), KeyRingError::BadKid(1)),
            ("k1:AQEBAQEB", KeyRingError::BadKey { index: 1, kid: "k1".into() }),
            ("k1:not-base64!", KeyRingError::BadKey { index: 1, kid: "k1".into() }),
            (&format!("k1:{K1} k1:{K2}"), KeyRingError::DuplicateKid("k1".into())),
        ];
        for (text, expected) in cases {
            let error = KeyRing::parse(text).unwrap_err();
            assert_eq!(error, expected, "{text}");
            let message = error.to_string();
            assert!(!message.contains("AQEB") && !message.contains("AgIC"));
        }
        let debug = format!("{:?}", ring(&format!("k2:{K2}\nk1:{K1}")));
        assert_eq!(debug, r#"KeyRing { kids: ["k2", "k1"] }"#);
    }

    #[test]
    fn derived_keys_follow_the_ring_and_differ_by_purpose() {
        let one = ring(&format!("k1:{K1}"));
        let both = ring(&format!("k2:{K2} k1:{K1}"));
        assert_eq!(both.derived_keys("state")[1], one.derived_keys("state")[0]);
        assert_ne!(one.derived_keys("state"), one.derived_keys("other"));
        assert_ne!(one.derived_keys("state")[0].as_slice(), &[1u8; 32]);
    }
}
