//! Settings and secrets, read from the worker's environment through a lookup function, checked,
//! and turned into a typed [`Config`]. Errors name the setting, never its value. A bad setting
//! stops every webhook and cron run before anything is processed with it.

use thiserror::Error;

use crate::connections::ConnectionId;
use crate::contacts_api::DEFAULT_BASE_URL;
use crate::intake::signature::{KeyError, SigningKey};
use crate::sync::mapping::{Mapping, MappingError};
use crate::sync::retry::{parse_duration, Schedule, DEFAULT_MAX_WAIT_SECS};

pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
pub const DEFAULT_API_TIMEOUT_MS: u32 = 10_000;

/// Everything the worker needs besides tokens and API keys.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Contacts API location (sub-account) that SightMill's contacts go to.
    pub location_id: String,
    /// Contacts API base URL, without a trailing slash.
    pub api_base: String,
    pub signing_keys: Vec<SigningKey>,
    pub max_body_bytes: usize,
    pub api_timeout_ms: u32,
    pub mapping: Mapping,
    pub retry: RetryConfig,
    pub cron: CronConfig,
    pub alerts: AlertConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    pub schedule: Schedule,
    /// How long an event may wait for its contact or task before it is parked.
    pub max_wait_secs: u64,
}

/// Bounds on one Durable Object invocation's work (a cron wake or an alarm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronConfig {
    /// Contacts API calls one invocation may make (the platform's subrequest limit: 50 on the free plan).
    pub max_api_calls: u32,
    /// Wall-clock time one run may spend, in milliseconds.
    pub time_budget_ms: u32,
    /// Most calls per 10 s sent to the location. The API allows 100 and announces its limit in
    /// every answer, which the pacing also keeps under; a larger cap only lets it follow an API
    /// (or a test's simulator) that announces more.
    pub calls_per_10s: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// Where alerts are posted (`{"text": ...}`, Slack-compatible); `None`: alerts are only logged.
    pub webhook_url: Option<String>,
    /// At most one alert per kind and location in this many seconds.
    pub quiet_secs: u64,
    /// Alert when the oldest pending event is older than this.
    pub pending_age_secs: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("the setting `{0}` is required but not set")]
    Missing(&'static str),
    #[error("the setting `{name}` is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("the secret `WEBHOOK_SECRETS` is invalid: {0}")]
    SigningKeys(#[from] KeyError),
    #[error("the setting `CONTACT_MAPPING` is invalid: {0}")]
    Mapping(#[from] MappingError),
}

impl ConfigError {
    /// The setting this error is about (never its value): what `GET /health` names.
    pub fn setting(&self) -> &'static str {
        match self {
            ConfigError::Missing(name) | ConfigError::Invalid { name, .. } => name,
            ConfigError::SigningKeys(_) => "WEBHOOK_SECRETS",
            ConfigError::Mapping(_) => "CONTACT_MAPPING",
        }
    }
}

impl Config {
    /// The default connection's config from `lookup` (a var or secret by name; `None` or blank
    /// when unset): `GHL_LOCATION_ID` and `WEBHOOK_SECRETS` are required.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::default_connection(lookup)?.ok_or(ConfigError::Missing("GHL_LOCATION_ID"))
    }

    /// The default connection's config, or `None` when the deployment has none (neither
    /// `GHL_LOCATION_ID` nor `WEBHOOK_SECRETS` set; one without the other is an error).
    pub fn default_connection(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Config>, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let Some((location_id, signing_keys)) = default_pair(&get)? else {
            return Ok(None);
        };
        shared(&get, location_id, signing_keys).map(Some)
    }

    /// A named connection's config: the deployment's shared settings, with the connection's
    /// location (its id) and no deployment signing keys (its own secrets are in its record). The
    /// default connection's pair is still checked: a half-set pair misconfigures everything.
    pub fn for_connection(
        lookup: impl Fn(&str) -> Option<String>,
        id: &ConnectionId,
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        default_pair(&get)?;
        shared(&get, id.as_str().to_owned(), Vec::new())
    }

    /// What every connection shares, with no location and no signing keys, once the default
    /// pair is checked: whether the deployment's settings are usable at all, and the base of a
    /// named connection's config.
    pub fn shared_by_all(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        default_pair(&get)?;
        shared(&get, String::new(), Vec::new())
    }
}

/// `GHL_LOCATION_ID` and `WEBHOOK_SECRETS`, set together or not at all.
fn default_pair(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(String, Vec<SigningKey>)>, ConfigError> {
    match (get("GHL_LOCATION_ID"), get("WEBHOOK_SECRETS")) {
        (None, None) => Ok(None),
        (location, secrets) => {
            let location_id = location_id(location)?;
            let secrets = secrets.ok_or(ConfigError::Missing("WEBHOOK_SECRETS"))?;
            Ok(Some((location_id, SigningKey::parse_strong_list(&secrets)?)))
        }
    }
}

/// The settings every connection shares, around one connection's location and signing keys.
fn shared(
    get: &impl Fn(&str) -> Option<String>,
    location_id: String,
    signing_keys: Vec<SigningKey>,
) -> Result<Config, ConfigError> {
    let mapping = match get("CONTACT_MAPPING") {
        Some(document) => Mapping::parse(&document)?,
        None => Mapping::default(),
    };
    let schedule = match get("RETRY_SCHEDULE") {
        Some(text) => Schedule::parse(&text).map_err(|e| invalid("RETRY_SCHEDULE", e.to_string()))?,
        None => Schedule::default(),
    };
    Ok(Config {
        location_id,
        api_base: api_base(get("CONTACTS_API_BASE"))?,
        signing_keys,
        max_body_bytes: number(get("MAX_BODY_BYTES"), "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1..=1 << 20)?,
        api_timeout_ms: api_timeout_ms(get("API_TIMEOUT_MS"))?,
        mapping,
        retry: RetryConfig {
            schedule,
            max_wait_secs: duration(
                get("MAX_WAIT_FOR_CONTACT"),
                "MAX_WAIT_FOR_CONTACT",
                DEFAULT_MAX_WAIT_SECS,
            )?,
        },
        cron: CronConfig {
            max_api_calls: number(get("CRON_MAX_API_CALLS"), "CRON_MAX_API_CALLS", 40, 1..=1_000)?,
            time_budget_ms: number(
                get("CRON_TIME_BUDGET_MS"),
                "CRON_TIME_BUDGET_MS",
                25_000,
                1_000..=600_000,
            )?,
            calls_per_10s: number(get("RATE_LIMIT_PER_10S"), "RATE_LIMIT_PER_10S", 100, 1..=1_000)?,
        },
        alerts: AlertConfig {
            webhook_url: url(get("ALERT_WEBHOOK_URL"), "ALERT_WEBHOOK_URL")?,
            quiet_secs: duration(get("ALERT_QUIET_PERIOD"), "ALERT_QUIET_PERIOD", 3_600)?.max(60),
            pending_age_secs: duration(get("ALERT_PENDING_AGE"), "ALERT_PENDING_AGE", 3_600)?,
        },
    })
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.into() }
}

/// `GHL_LOCATION_ID`: required, and only characters that are safe in KV keys and URLs.
pub(crate) fn location_id(value: Option<String>) -> Result<String, ConfigError> {
    let location_id = value.ok_or(ConfigError::Missing("GHL_LOCATION_ID"))?;
    if !location_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(invalid("GHL_LOCATION_ID", "use only A-Z a-z 0-9 _ -"));
    }
    Ok(location_id)
}

/// `CONTACTS_API_BASE`, default production, without a trailing slash.
pub(crate) fn api_base(value: Option<String>) -> Result<String, ConfigError> {
    Ok(url(value, "CONTACTS_API_BASE")?.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()))
}

/// `API_TIMEOUT_MS`: 100 to 60000, default [`DEFAULT_API_TIMEOUT_MS`].
pub(crate) fn api_timeout_ms(value: Option<String>) -> Result<u32, ConfigError> {
    number(value, "API_TIMEOUT_MS", DEFAULT_API_TIMEOUT_MS, 100..=60_000)
}

fn url(value: Option<String>, name: &'static str) -> Result<Option<String>, ConfigError> {
    match value {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(Some(url.trim_end_matches('/').to_owned()))
        }
        Some(_) => Err(invalid(name, "must start with https:// or http://")),
        None => Ok(None),
    }
}

fn duration(value: Option<String>, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match value {
        Some(text) => {
            parse_duration(&text).ok_or_else(|| invalid(name, "must be a duration like 90s, 30m, 2h or 1d"))
        }
        None => Ok(default),
    }
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
        _ => Err(invalid(name, format!("must be a whole number from {} to {}", range.start(), range.end()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const SECRET: (&str, &str) = ("WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    const LOCATION: (&str, &str) = ("GHL_LOCATION_ID", "loc-1");

    #[test]
    fn defaults_fill_what_is_unset() {
        let config = config(&[LOCATION, SECRET]).unwrap();
        assert_eq!(config.api_base, DEFAULT_BASE_URL);
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.api_timeout_ms, DEFAULT_API_TIMEOUT_MS);
        assert_eq!(config.mapping, Mapping::default());
        assert_eq!(config.retry, RetryConfig { schedule: Schedule::default(), max_wait_secs: 86_400 });
        assert_eq!(config.cron, CronConfig { max_api_calls: 40, time_budget_ms: 25_000, calls_per_10s: 100 });
        assert_eq!(
            config.alerts,
            AlertConfig { webhook_url: None, quiet_secs: 3_600, pending_age_secs: 3_600 }
        );
    }

    #[test]
    fn settings_are_read_and_checked() {
        let config = config(&[
            LOCATION,
            SECRET,
            ("CONTACTS_API_BASE", "http://127.0.0.1:8788/"),
            ("MAX_BODY_BYTES", "4096"),
            ("CONTACT_MAPPING", r#"{"fields": [{"from": "mail", "to": "email"}]}"#),
            ("RETRY_SCHEDULE", "10s,1m"),
            ("MAX_WAIT_FOR_CONTACT", "2h"),
            ("ALERT_WEBHOOK_URL", "https://hooks.example.com/x"),
            ("ALERT_QUIET_PERIOD", "5s"),
        ])
        .unwrap();
        assert_eq!(config.api_base, "http://127.0.0.1:8788");
        assert_eq!(config.max_body_bytes, 4096);
        assert_eq!(config.retry.schedule, Schedule::parse("10s,1m").unwrap());
        assert_eq!(config.retry.max_wait_secs, 7_200);
        assert_eq!(config.alerts.webhook_url.as_deref(), Some("https://hooks.example.com/x"));
        assert_eq!(config.alerts.quiet_secs, 60, "KV cannot expire a key sooner");
    }

    #[test]
    fn the_default_connection_is_optional_but_never_half_set() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, v)| v.to_string())
        };
        assert!(Config::default_connection(lookup(&[])).unwrap().is_none());
        assert_eq!(config(&[]).unwrap_err(), ConfigError::Missing("GHL_LOCATION_ID"));
        let named = ConnectionId::parse("loc-b").unwrap();
        let config = Config::for_connection(lookup(&[("MAX_BODY_BYTES", "4096")]), &named).unwrap();
        assert_eq!((config.location_id.as_str(), config.max_body_bytes), ("loc-b", 4096));
        assert!(config.signing_keys.is_empty(), "a named connection's secrets are its record's");
        let shared = Config::for_connection(lookup(&[LOCATION, SECRET]), &named).unwrap();
        assert_eq!(shared.location_id, "loc-b");
        for half in [&[LOCATION][..], &[SECRET][..]] {
            let pairs: &'static [(&str, &str)] = half;
            assert!(Config::default_connection(lookup(pairs)).is_err());
            assert!(Config::for_connection(lookup(pairs), &named).is_err(), "half set misconfigures all");
        }
    }

    #[test]
    fn errors_name_the_setting_and_never_the_secret() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![SECRET], "`GHL_LOCATION_ID` is required"),
            (vec![LOCATION], "`WEBHOOK_SECRETS` is required"),
            (vec![("GHL_LOCATION_ID", "loc/1"), SECRET], "`GHL_LOCATION_ID` is invalid"),
            (vec![LOCATION, ("WEBHOOK_SECRETS", "hunter2")], "does not start with `whsec_`"),
            (vec![LOCATION, SECRET, ("MAX_BODY_BYTES", "-1")], "`MAX_BODY_BYTES` is invalid"),
            (vec![LOCATION, SECRET, ("CONTACTS_API_BASE", "ftp://x")], "`CONTACTS_API_BASE` is invalid"),
            (vec![LOCATION, SECRET, ("RETRY_SCHEDULE", "1m,soon")], "`RETRY_SCHEDULE` is invalid: `soon`"),
            (
                vec![LOCATION, SECRET, ("CONTACT_MAPPING", r#"{"fields": [{"from": "a", "to": "nick"}]}"#)],
                "`CONTACT_MAPPING` is invalid: mapping entry `fields[0]`: unknown target `nick`",
            ),
            (vec![LOCATION, SECRET, ("CRON_MAX_API_CALLS", "0")], "`CRON_MAX_API_CALLS` is invalid"),
        ];
        for (pairs, expected) in cases {
            let message = config(&pairs).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("hunter2") && !message.contains("MfKQ9r8"), "{message}");
        }
    }

    #[test]
    fn the_deployment_is_checked_whole_even_without_a_default_connection() {
        assert!(Config::shared_by_all(|_| None).is_ok());
        let bad_mapping = |name: &str| (name == "CONTACT_MAPPING").then(|| "{".to_owned());
        assert!(matches!(Config::shared_by_all(bad_mapping), Err(ConfigError::Mapping(_))));
        let half_pair = |name: &str| (name == "GHL_LOCATION_ID").then(|| "loc-1".to_owned());
        assert_eq!(Config::shared_by_all(half_pair).unwrap_err(), ConfigError::Missing("WEBHOOK_SECRETS"));
    }
}
