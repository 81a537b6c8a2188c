//! The one settings object: every var and secret the worker reads, taken from the environment
//! once per isolate (the shell caches it, `shell::platform::runtime::settings`) and parsed here
//! into [`Config`], the token, read and key settings. Nothing else reads a setting by name.
//!
//! A setting that is wrong is kept as its error, not raised at once: each route refuses with it
//! only when it needs that setting (a bad `READ_API_KEYS` stops reads, not webhooks). Errors name
//! the setting, never its value.

use std::rc::Rc;

use crate::auth::api_keys::{admin_keys, ApiKeys, ADMIN_KEYS_SETTING};
use crate::auth::envelope::KeyRing;
use crate::auth::tokens::TokenConfig;
use crate::config::{invalid, Config, ConfigError};
use crate::connections::{ConnectionId, TokenSource};
use crate::read::budget::{ReadBudget, KEY_SHARE_SETTING, SHARE_SETTING};
use crate::read::{cache_ttl_secs, ReadConfig, READ_KEYS_SETTING};

/// The keys records and tokens are sealed under.
pub const ENCRYPTION_KEYS_SETTING: &str = "TOKEN_ENCRYPTION_KEYS";

/// Every var and secret the worker reads (docs/configuration.md describes each).
pub const NAMES: &[&str] = &[
    "GHL_LOCATION_ID",
    "WEBHOOK_SECRETS",
    "CONTACTS_API_BASE",
    "CONTACT_MAPPING",
    "MAX_BODY_BYTES",
    "API_TIMEOUT_MS",
    "RETRY_SCHEDULE",
    "MAX_WAIT_FOR_CONTACT",
    "CRON_MAX_API_CALLS",
    "CRON_TIME_BUDGET_MS",
    "RATE_LIMIT_PER_10S",
    "ALERT_WEBHOOK_URL",
    "ALERT_QUIET_PERIOD",
    "ALERT_PENDING_AGE",
    "READ_CACHE_TTL_SECS",
    SHARE_SETTING,
    KEY_SHARE_SETTING,
    "TOKEN_MODE",
    "CONTACTS_API_TOKEN",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "OAUTH_BASE",
    "OAUTH_INSTALL_URL",
    "OAUTH_SCOPES",
    "OAUTH_REDIRECT_URI",
    "OAUTH_INSTALL_ALLOW",
    ENCRYPTION_KEYS_SETTING,
    ADMIN_KEYS_SETTING,
    READ_KEYS_SETTING,
];

/// The deployment's settings, read once and parsed.
#[derive(Debug)]
pub struct Settings {
    /// Each set setting's value, trimmed (blank counts as unset).
    values: Vec<(&'static str, String)>,
    /// The default connection's config; `None`: the deployment has none.
    default: Result<Option<Config>, ConfigError>,
    /// What every connection shares (no location, no signing keys), behind the default pair's check.
    shared: Result<Config, ConfigError>,
    encryption_keys: Result<Rc<KeyRing>, ConfigError>,
    read: Result<ReadConfig, ConfigError>,
    read_cache_ttl_secs: u32,
    /// The operator and read keys that parse, for the check that no key is in a URL.
    url_keys: Vec<ApiKeys>,
}

impl Settings {
    /// Reads every setting in [`NAMES`] through `lookup` (a var or secret by name) and parses it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Settings {
        let values: Vec<(&'static str, String)> = NAMES
            .iter()
            .filter_map(|name| Some((*name, lookup(name)?.trim().to_owned())))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        let get = |name: &str| values.iter().find(|(key, _)| *key == name).map(|(_, value)| value.clone());
        let default = Config::default_connection(get);
        let shared = Config::shared_by_all(get);
        let encryption_keys = match get(ENCRYPTION_KEYS_SETTING) {
            None => Err(ConfigError::Missing(ENCRYPTION_KEYS_SETTING)),
            Some(text) => KeyRing::parse(&text)
                .map(Rc::new)
                .map_err(|error| invalid(ENCRYPTION_KEYS_SETTING, error.to_string())),
        };
        let read = ReadConfig::from_lookup(get);
        let read_cache_ttl_secs = cache_ttl_secs(get("READ_CACHE_TTL_SECS")).unwrap_or(0);
        let url_keys = [ADMIN_KEYS_SETTING, READ_KEYS_SETTING]
            .iter()
            .filter_map(|name| ApiKeys::parse(&get(name)?).ok())
            .collect();
        Settings { default, shared, encryption_keys, read, read_cache_ttl_secs, url_keys, values }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    /// The default connection's config, or why it is unusable (`GHL_LOCATION_ID` required).
    pub fn config(&self) -> Result<Config, &ConfigError> {
        match &self.default {
            Ok(Some(config)) => Ok(config.clone()),
            Ok(None) => Err(&ConfigError::Missing("GHL_LOCATION_ID")),
            Err(error) => Err(error),
        }
    }

    /// The default connection's config, `None` when the deployment has none.
    pub fn default_connection(&self) -> Result<Option<&Config>, &ConfigError> {
        self.default.as_ref().map(Option::as_ref)
    }

    /// A named connection's config: the shared settings with its location (its id) and no
    /// deployment signing keys (its own are in its record).
    pub fn config_for(&self, id: &ConnectionId) -> Result<Config, &ConfigError> {
        let mut config = self.shared.as_ref()?.clone();
        config.location_id = id.as_str().to_owned();
        Ok(config)
    }

    /// Whether the deployment's settings are usable at all (for the cron, which serves every
    /// connection).
    pub fn check(&self) -> Result<(), &ConfigError> {
        self.shared.as_ref().map(drop)
    }

    /// The default connection's id as set (`GHL_LOCATION_ID`), checked or not.
    pub fn default_location(&self) -> Option<&str> {
        self.get("GHL_LOCATION_ID")
    }

    /// The default connection's signing secrets as given (`WEBHOOK_SECRETS`).
    pub fn webhook_secrets(&self) -> &str {
        self.get("WEBHOOK_SECRETS").unwrap_or_default()
    }

    /// `TOKEN_MODE` as set (default `private_integration`).
    pub fn token_mode(&self) -> &str {
        self.get("TOKEN_MODE").unwrap_or("private_integration")
    }

    /// The default connection's token settings (`TOKEN_MODE`).
    pub fn tokens(&self) -> Result<TokenConfig, ConfigError> {
        TokenConfig::from_lookup(|name| self.get(name).map(str::to_owned))
    }

    /// A named connection's token settings, from its token source and the app's settings.
    pub fn tokens_for(&self, source: &TokenSource) -> Result<TokenConfig, ConfigError> {
        TokenConfig::for_connection(source, |name| self.get(name).map(str::to_owned))
    }

    /// `TOKEN_ENCRYPTION_KEYS`: the keys connection records and tokens are sealed under.
    pub fn encryption_keys(&self) -> Result<Rc<KeyRing>, &ConfigError> {
        self.encryption_keys.as_ref().map(Rc::clone)
    }

    /// The read API's settings (`READ_API_KEYS` missing: the read API is off).
    pub fn read(&self) -> Result<&ReadConfig, &ConfigError> {
        self.read.as_ref()
    }

    /// `READ_CACHE_TTL_SECS` (0 when unset or unusable: the read API refuses with the error).
    pub fn read_cache_ttl_secs(&self) -> u32 {
        self.read_cache_ttl_secs
    }

    /// The reads' share of the location's rate limit (`READ_SHARE_PERCENT`, `READ_KEY_SHARE_PERCENT`).
    pub fn read_budget(&self, calls_per_10s: u32) -> Result<ReadBudget, ConfigError> {
        let share = |name| self.get(name).map(str::to_owned);
        ReadBudget::from_settings(calls_per_10s, share(SHARE_SETTING), share(KEY_SHARE_SETTING))
    }

    /// `ADMIN_API_KEYS` as set.
    pub fn admin_keys(&self) -> Option<&str> {
        self.get(ADMIN_KEYS_SETTING)
    }

    /// The operator and read keys that parse: none may appear in a URL.
    pub fn url_keys(&self) -> &[ApiKeys] {
        &self.url_keys
    }

    /// The settings that stop some part of the deployment, by name (never by value), sorted:
    /// what `GET /health` answers. Empty: every part that is turned on can work. A setting that
    /// is unset because its part is off (`READ_API_KEYS`, `ADMIN_API_KEYS`) is not a problem;
    /// `TOKEN_ENCRYPTION_KEYS` is, when the deployment has no default connection (named
    /// connections cannot be made without it) or a token mode needs it.
    pub fn problems(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut note = |result: Result<(), &ConfigError>| {
            if let Err(error) = result {
                names.push(error.setting());
            }
        };
        note(self.default.as_ref().map(drop));
        note(self.shared.as_ref().map(drop));
        if let Ok(Some(_)) = &self.default {
            note(self.tokens().as_ref().map(drop));
        }
        let no_default = matches!(self.default, Ok(None));
        match &self.encryption_keys {
            Err(ConfigError::Missing(_)) if !no_default => {}
            other => note(other.as_ref().map(drop)),
        }
        match &self.read {
            Err(ConfigError::Missing(name)) if *name == READ_KEYS_SETTING => {}
            other => note(other.as_ref().map(drop)),
        }
        let calls_per_10s = self.shared.as_ref().map_or(100, |config| config.cron.calls_per_10s);
        note(self.read_budget(calls_per_10s).as_ref().map(drop));
        if matches!(admin_keys(self.admin_keys()), Err(refusal) if refusal.code == "misconfigured") {
            names.push(ADMIN_KEYS_SETTING);
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: (&str, &str) = ("WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    const LOCATION: (&str, &str) = ("GHL_LOCATION_ID", "loc-1");
    const KEYS: (&str, &str) = ("TOKEN_ENCRYPTION_KEYS", "k1:CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=");

    fn settings(pairs: &[(&'static str, &'static str)]) -> Settings {
        let pairs = pairs.to_vec();
        Settings::from_lookup(move |name| {
            pairs.iter().find(|(key, _)| *key == name).map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn each_setting_is_read_once() {
        let reads = std::cell::RefCell::new(Vec::new());
        let settings = Settings::from_lookup(|name| {
            reads.borrow_mut().push(name.to_owned());
            None
        });
        let mut read = reads.into_inner();
        assert_eq!(read.len(), NAMES.len());
        read.sort();
        read.dedup();
        assert_eq!(read.len(), NAMES.len(), "no setting is read twice");
        assert!(settings.default_connection().unwrap().is_none());
    }

    #[test]
    fn the_default_and_named_connections_share_the_parsed_settings() {
        let settings = settings(&[LOCATION, SECRET, ("MAX_BODY_BYTES", " 4096 "), KEYS]);
        let default = settings.config().unwrap();
        assert_eq!((default.location_id.as_str(), default.max_body_bytes), ("loc-1", 4096));
        assert_eq!(default.signing_keys.len(), 1);
        let named = settings.config_for(&ConnectionId::parse("loc-b").unwrap()).unwrap();
        assert_eq!((named.location_id.as_str(), named.max_body_bytes), ("loc-b", 4096));
        assert!(named.signing_keys.is_empty(), "a named connection's secrets are its record's");
        assert!(settings.encryption_keys().is_ok());
        assert_eq!(settings.default_location(), Some("loc-1"));
        assert_eq!(settings.token_mode(), "private_integration");
    }

    #[test]
    fn a_bad_setting_is_kept_as_its_error_and_names_the_setting_not_the_value() {
        let settings = settings(&[
            LOCATION,
            SECRET,
            ("TOKEN_ENCRYPTION_KEYS", "k1:hunter2"),
            ("READ_CACHE_TTL_SECS", "forever"),
        ]);
        assert!(settings.config().is_ok(), "webhooks do not need the encryption keys");
        let keys = settings.encryption_keys().unwrap_err().to_string();
        assert!(keys.contains("`TOKEN_ENCRYPTION_KEYS` is invalid") && !keys.contains("hunter2"), "{keys}");
        assert_eq!(settings.read_cache_ttl_secs(), 0);
        let unset = super::tests::settings(&[]);
        assert_eq!(unset.encryption_keys().unwrap_err(), &ConfigError::Missing("TOKEN_ENCRYPTION_KEYS"));
        assert_eq!(unset.config().unwrap_err(), &ConfigError::Missing("GHL_LOCATION_ID"));
        assert!(unset.check().is_ok(), "a deployment of named connections only");
        let half = super::tests::settings(&[LOCATION]);
        assert_eq!(half.check().unwrap_err(), &ConfigError::Missing("WEBHOOK_SECRETS"));
        assert!(
            half.config_for(&ConnectionId::parse("loc-b").unwrap()).is_err(),
            "half set misconfigures all"
        );
    }

    #[test]
    fn problems_name_each_broken_setting_once_and_never_a_value() {
        assert_eq!(
            settings(&[LOCATION, SECRET, ("CONTACTS_API_TOKEN", "pit-1")]).problems(),
            Vec::<&str>::new()
        );
        assert_eq!(settings(&[LOCATION, SECRET]).problems(), ["CONTACTS_API_TOKEN"]);
        assert_eq!(settings(&[KEYS]).problems(), Vec::<&str>::new(), "named connections only");
        assert_eq!(settings(&[]).problems(), ["TOKEN_ENCRYPTION_KEYS"], "nothing could ever be connected");
        let broken = settings(&[
            LOCATION,
            ("WEBHOOK_SECRETS", "whsec_c2hvcnQ="),
            ("CONTACTS_API_TOKEN", "pit-1"),
            ("TOKEN_ENCRYPTION_KEYS", "k1:hunter2"),
            ("READ_API_KEYS", "short"),
            ("READ_SHARE_PERCENT", "300"),
            ("ADMIN_API_KEYS", "tiny"),
            ("CONTACT_MAPPING", "{"),
        ]);
        assert_eq!(
            broken.problems(),
            [
                "ADMIN_API_KEYS",
                "READ_API_KEYS",
                "READ_SHARE_PERCENT",
                "TOKEN_ENCRYPTION_KEYS",
                "WEBHOOK_SECRETS"
            ]
        );
        let mapping =
            settings(&[LOCATION, SECRET, ("CONTACTS_API_TOKEN", "pit-1"), ("CONTACT_MAPPING", "{")]);
        assert_eq!(mapping.problems(), ["CONTACT_MAPPING"]);
        let oauth = settings(&[LOCATION, SECRET, ("TOKEN_MODE", "oauth")]);
        assert_eq!(oauth.problems(), ["OAUTH_CLIENT_ID"], "the first missing one of its mode");
        let scoped = settings(&[KEYS, ("ADMIN_API_KEYS", "admin-key-0123456789abcdefghij@loc-a")]);
        assert_eq!(scoped.problems(), ["ADMIN_API_KEYS"], "operator keys cannot be scoped");
    }

    #[test]
    fn read_settings_and_shares_come_from_the_same_object() {
        let settings = settings(&[
            ("READ_API_KEYS", "read-key-0123456789abcdefghij"),
            ("READ_CACHE_TTL_SECS", "60"),
            (SHARE_SETTING, "101"),
        ]);
        assert_eq!(settings.read().unwrap().cache_ttl_secs, 60);
        assert_eq!(settings.read_cache_ttl_secs(), 60);
        assert!(settings.read_budget(100).unwrap_err().to_string().contains(SHARE_SETTING));
        assert_eq!(settings.url_keys().len(), 1);
    }
}
