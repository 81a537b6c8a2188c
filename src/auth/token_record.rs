//! An access token as the worker holds it ([`TokenRecord`], with its renewal margin), and why
//! none could be had ([`TokenError`]). The token endpoint's answers become these
//! ([`crate::auth::token_endpoint`]); [`crate::auth::tokens`] stores them and plans with them.

use thiserror::Error;

use crate::secret::Secret;

/// A stored token is renewed once it is this close to its expiry (tokens live about 24 hours).
pub const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;

/// Why no token could be had. The shell maps each kind to a retry decision (and the operator
/// alert); the message never carries a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// A setting is missing or invalid, or the location has no usable installation: the operator
    /// must fix the configuration (or install the app) before anything can be sent.
    #[error("{0}")]
    NotConfigured(String),
    /// The token endpoint or KV failed for now (5xx, 429, timeout, network): retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Refused for good: the token endpoint refused the grant or the client (`invalid_grant`,
    /// `invalid_client`, location not active), or the API refused a static token. Retry later and
    /// tell the operator.
    #[error("{0}")]
    Refused(String),
}

/// What the token endpoint issued, as kept (encrypted) in KV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub access_token: Secret,
    /// Present for OAuth installs; each refresh replaces it (the old one is spent).
    pub refresh_token: Option<Secret>,
    /// When the grant was sent (the lifetime is counted from there, to err on the early side).
    pub obtained_at_ms: i64,
    pub expires_at_ms: i64,
    pub location_id: Option<String>,
    pub company_id: Option<String>,
    pub scope: Option<String>,
}

impl TokenRecord {
    /// The instant from which the token is renewed before use.
    pub fn renew_at_ms(&self) -> i64 {
        self.expires_at_ms.saturating_sub(REFRESH_MARGIN_MS)
    }

    /// Whether the token is within the refresh margin of its expiry (or past it) at `now_ms`.
    pub fn is_due(&self, now_ms: i64) -> bool {
        now_ms >= self.renew_at_ms()
    }

    /// Refuses a token issued for another location than the one it is meant for.
    pub fn check_location(&self, location_id: &str) -> Result<(), TokenError> {
        match &self.location_id {
            Some(issued_for) if issued_for != location_id => Err(TokenError::Refused(format!(
                "the token endpoint issued a token for location `{}`, not `{location_id}`",
                printable_id(issued_for)
            ))),
            _ => Ok(()),
        }
    }
}

/// A location id from the token endpoint, fit for a message or a KV key; `None` when it is not.
pub fn safe_location_id(text: &str) -> Option<&str> {
    let safe = (1..=64).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    safe.then_some(text)
}

fn printable_id(text: &str) -> &str {
    safe_location_id(text).unwrap_or("(malformed)")
}
