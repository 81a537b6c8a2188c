//! Where the Contacts API access token comes from: the one seam that the OAuth and client
//! credentials flows will slot into. Today: a Private Integration Token from a wrangler secret.

use worker::Env;

use crate::secret::Secret;

/// The secret that holds the Private Integration Token.
const TOKEN_SECRET: &str = "CONTACTS_API_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no access token: the secret `{TOKEN_SECRET}` is not set")]
    NotConfigured,
}

/// The bearer token to use for `location_id`.
pub async fn access_token(env: &Env, _location_id: &str) -> Result<Secret, TokenError> {
    env.secret(TOKEN_SECRET)
        .ok()
        .map(|value| value.to_string())
        .filter(|value| !value.trim().is_empty())
        .map(|value| Secret::new(value.trim()))
        .ok_or(TokenError::NotConfigured)
}
