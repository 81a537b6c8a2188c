//! Settings and secrets, read once per request from the worker's environment through a lookup
//! function, checked, and turned into a typed [`Config`]. Errors name the setting, never its value.

use thiserror::Error;

use crate::contacts_api::DEFAULT_BASE_URL;
use crate::mapping::ContactMapping;
use crate::signature::{KeyError, SigningKey};

pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
pub const DEFAULT_API_TIMEOUT_MS: u32 = 10_000;

/// Everything the webhook path needs besides the token.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Contacts API location (sub-account) that SightMill's contacts go to.
    pub location_id: String,
    /// Contacts API base URL, without a trailing slash.
    pub api_base: String,
    pub signing_keys: Vec<SigningKey>,
    pub max_body_bytes: usize,
    pub api_timeout_ms: u32,
    pub mapping: ContactMapping,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("the setting `{0}` is required but not set")]
    Missing(&'static str),
    #[error("the setting `{name}` is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("the secret `WEBHOOK_SECRETS` is invalid: {0}")]
    SigningKeys(#[from] KeyError),
}

impl Config {
    /// Builds the config from `lookup` (a var or secret by name; `None` or blank when unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let location_id = location_id(get("GHL_LOCATION_ID"))?;
        let secrets = get("WEBHOOK_SECRETS").ok_or(ConfigError::Missing("WEBHOOK_SECRETS"))?;
        Ok(Config {
            location_id,
            api_base: api_base(get("CONTACTS_API_BASE"))?,
            signing_keys: SigningKey::parse_list(&secrets)?,
            max_body_bytes: number(
                get("MAX_BODY_BYTES"),
                "MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                1..=1 << 20,
            )?,
            api_timeout_ms: api_timeout_ms(get("API_TIMEOUT_MS"))?,
            mapping: ContactMapping {
                status_field_id: get("STATUS_CUSTOM_FIELD_ID"),
            },
        })
    }
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// `GHL_LOCATION_ID`: required, and only characters that are safe in KV keys and URLs.
pub(crate) fn location_id(value: Option<String>) -> Result<String, ConfigError> {
    let location_id = value.ok_or(ConfigError::Missing("GHL_LOCATION_ID"))?;
    if !location_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid("GHL_LOCATION_ID", "use only A-Z a-z 0-9 _ -"));
    }
    Ok(location_id)
}

pub(crate) fn api_base(value: Option<String>) -> Result<String, ConfigError> {
    let base = value.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(invalid(
            "CONTACTS_API_BASE",
            "must start with https:// or http://",
        ));
    }
    Ok(base.trim_end_matches('/').to_owned())
}

/// `API_TIMEOUT_MS`: 100 to 60000, default [`DEFAULT_API_TIMEOUT_MS`].
pub(crate) fn api_timeout_ms(value: Option<String>) -> Result<u32, ConfigError> {
    number(
        value,
        "API_TIMEOUT_MS",
        DEFAULT_API_TIMEOUT_MS,
        100..=60_000,
    )
}

pub(crate) fn number<T>(
    value: Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = value else {
        return Ok(default);
    };
    match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(
            name,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const SECRET: (&str, &str) = ("WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

    #[test]
    fn defaults_fill_what_is_unset() {
        let config = config(&[("GHL_LOCATION_ID", "loc-1"), SECRET]).unwrap();
        assert_eq!(config.api_base, DEFAULT_BASE_URL);
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.api_timeout_ms, DEFAULT_API_TIMEOUT_MS);
        assert_eq!(config.mapping.status_field_id, None);
    }

    #[test]
    fn settings_are_read_and_checked() {
        let config = config(&[
            ("GHL_LOCATION_ID", "loc-1"),
            SECRET,
            ("CONTACTS_API_BASE", "http://127.0.0.1:8788/"),
            ("MAX_BODY_BYTES", "4096"),
            ("STATUS_CUSTOM_FIELD_ID", "cf1"),
        ])
        .unwrap();
        assert_eq!(config.api_base, "http://127.0.0.1:8788");
        assert_eq!(config.max_body_bytes, 4096);
        assert_eq!(config.mapping.status_field_id.as_deref(), Some("cf1"));
    }

    #[test]
    fn errors_name_the_setting_and_never_the_secret() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![SECRET], "`GHL_LOCATION_ID` is required"),
            (
                vec![("GHL_LOCATION_ID", "loc")],
                "`WEBHOOK_SECRETS` is required",
            ),
            (
                vec![("GHL_LOCATION_ID", "loc/1"), SECRET],
                "`GHL_LOCATION_ID` is invalid",
            ),
            (
                vec![("GHL_LOCATION_ID", "loc"), ("WEBHOOK_SECRETS", "hunter2")],
                "does not start with `whsec_`",
            ),
            (
                vec![("GHL_LOCATION_ID", "loc"), SECRET, ("MAX_BODY_BYTES", "-1")],
                "`MAX_BODY_BYTES` is invalid",
            ),
            (
                vec![
                    ("GHL_LOCATION_ID", "loc"),
                    SECRET,
                    ("CONTACTS_API_BASE", "ftp://x"),
                ],
                "`CONTACTS_API_BASE` is invalid",
            ),
        ];
        for (pairs, expected) in cases {
            let message = config(&pairs).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(
                !message.contains("hunter2") && !message.contains("MfKQ9r8"),
                "{message}"
            );
        }
    }
}
