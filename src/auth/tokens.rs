//! Contacts API access tokens: the token settings (`TOKEN_MODE` and friends), the token record
//! kept encrypted in KV under `token:{locationId}`, expiry arithmetic with a refresh margin, and
//! the decision the shell acts on before each attempt: use the token it has, or obtain one with a
//! grant from the token endpoint ([`crate::auth::token_endpoint`]), or mint a location token
//! from an agency's company token (`POST /oauth/locationToken`, as data here). A named
//! connection's token source ([`TokenConfig::for_connection`]) is planned the same way. Sits
//! before the Contacts API calls of every webhook; the shell reads and writes KV and talks to
//! the token endpoint and the Directory.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::envelope::{Envelope, EnvelopeError, KeyRing, NONCE_LEN};
use crate::auth::token_endpoint::{form_encode, Grant, OAuthClient};
use crate::auth::token_record::{safe_location_id, TokenError, TokenRecord};
use crate::config::ConfigError;
use crate::connections::TokenSource;
use crate::contacts_api::{API_VERSION, DEFAULT_BASE_URL};
use crate::secret::Secret;

/// The marketplace page where an agency user picks the location to install the app on.
pub const DEFAULT_INSTALL_URL: &str = "https://marketplace.gohighlevel.com/oauth/chooselocation";
/// The scopes the worker asks for at install: contacts, read and write (the workflow, campaign and
/// follower actions are contact writes too); the location's custom fields (the mapping's fields
/// by key and the type checks); its workflows and campaigns (the console's pickers).
pub const DEFAULT_SCOPES: &str =
    "contacts.readonly contacts.write locations/customFields.readonly workflows.readonly campaigns.readonly";

/// `token:{locationId}`: the encrypted token record of one location.
pub fn token_key(location_id: &str) -> String {
    format!("token:{location_id}")
}

/// How the worker gets its access token (`TOKEN_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    PrivateIntegration,
    ClientCredentials,
    OAuth,
    /// A named connection's location token, minted from its agency's company token.
    Agency,
}

impl TokenMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenMode::PrivateIntegration => "private_integration",
            TokenMode::ClientCredentials => "client_credentials",
            TokenMode::OAuth => "oauth",
            TokenMode::Agency => "agency",
        }
    }
}

/// The modes `TOKEN_MODE` may name: the agency mode is a named connection's alone.
#[derive(Debug, Clone, Copy)]
enum SettingMode {
    PrivateIntegration,
    ClientCredentials,
    OAuth,
}

impl SettingMode {
    fn parse(text: &str) -> Option<SettingMode> {
        [SettingMode::PrivateIntegration, SettingMode::ClientCredentials, SettingMode::OAuth]
            .into_iter()
            .find(|mode| mode.token_mode().as_str() == text)
    }

    fn token_mode(self) -> TokenMode {
        match self {
            SettingMode::PrivateIntegration => TokenMode::PrivateIntegration,
            SettingMode::ClientCredentials => TokenMode::ClientCredentials,
            SettingMode::OAuth => TokenMode::OAuth,
        }
    }
}

/// The token settings, one variant per mode, each holding exactly what that mode needs.
#[derive(Debug)]
pub enum TokenConfig {
    /// A static Private Integration Token: `CONTACTS_API_TOKEN`, or a named connection's own
    /// (`named`), which the operator replaces through the connection's record.
    PrivateIntegration { token: Secret, named: bool },
    /// Tokens from the client credentials grant, cached encrypted in KV.
    ClientCredentials(Issuer),
    /// Tokens from the marketplace install (authorization code), refreshed with rotating refresh
    /// tokens, kept encrypted in KV.
    OAuth { issuer: Issuer, install: InstallSettings },
    /// A named connection's location tokens, minted from its agency's company token.
    Agency(AgencySource),
}

/// Where an agency connection's location token comes from, and the keys it is kept under.
#[derive(Debug)]
pub struct AgencySource {
    pub company_id: String,
    /// `{OAUTH_BASE}/oauth/locationToken`.
    pub location_token_url: String,
    pub keys: KeyRing,
}

/// The app's credentials at the token endpoint, and the keys its tokens are stored under.
#[derive(Debug)]
pub struct Issuer {
    pub client: OAuthClient,
    pub keys: KeyRing,
}

/// What the install route needs.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// The marketplace consent page (`OAUTH_INSTALL_URL`).
    pub install_url: String,
    /// `OAUTH_REDIRECT_URI`; unset: `{worker origin}/oauth/callback`.
    pub redirect_uri: Option<String>,
    /// Space-separated scopes (`OAUTH_SCOPES`).
    pub scopes: String,
    /// Company and location ids that may install without an operator's install link
    /// (`OAUTH_INSTALL_ALLOW`; empty: every install needs a link).
    pub allow: Vec<String>,
}

impl InstallSettings {
    /// The callback URL registered with the marketplace app.
    pub fn redirect_uri(&self, worker_origin: &str) -> String {
        self.redirect_uri.clone().unwrap_or_else(|| format!("{worker_origin}/oauth/callback"))
    }
}

impl TokenConfig {
    /// Reads the token settings through `lookup` (a var or secret by name; `None` when unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<TokenConfig, ConfigError> {
        let get =
            |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let mode = match get("TOKEN_MODE") {
            None => SettingMode::PrivateIntegration,
            Some(text) => SettingMode::parse(&text).ok_or_else(|| {
                invalid("TOKEN_MODE", "use private_integration, client_credentials or oauth")
            })?,
        };
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        Ok(match mode {
            SettingMode::PrivateIntegration => TokenConfig::PrivateIntegration {
                token: Secret::new(required("CONTACTS_API_TOKEN")?),
                named: false,
            },
            SettingMode::ClientCredentials => TokenConfig::ClientCredentials(read_issuer(&required, &get)?),
            SettingMode::OAuth => oauth(&required, &get)?,
        })
    }

    /// A named connection's token settings: its own Private Integration Token, the app's OAuth
    /// install on its location, or its agency's; the app's settings are the deployment's
    /// (`OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET`, `TOKEN_ENCRYPTION_KEYS`, `OAUTH_BASE`),
    /// whatever `TOKEN_MODE` the default connection uses.
    pub fn for_connection(
        source: &TokenSource,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<TokenConfig, ConfigError> {
        let get =
            |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        Ok(match source {
            TokenSource::PrivateIntegration(token) => {
                TokenConfig::PrivateIntegration { token: token.clone(), named: true }
            }
            TokenSource::OAuth => oauth(&required, &get)?,
            TokenSource::Agency { company_id } => TokenConfig::Agency(AgencySource {
                company_id: company_id.clone(),
                location_token_url: format!("{}/oauth/locationToken", oauth_base(&get)?),
                keys: read_keys(&required)?,
            }),
        })
    }

    pub fn mode(&self) -> TokenMode {
        match self {
            TokenConfig::PrivateIntegration { .. } => TokenMode::PrivateIntegration,
            TokenConfig::ClientCredentials(_) => TokenMode::ClientCredentials,
            TokenConfig::OAuth { .. } => TokenMode::OAuth,
            TokenConfig::Agency(_) => TokenMode::Agency,
        }
    }

    /// The issuer, in the modes that obtain tokens from the token endpoint.
    pub fn issuer(&self) -> Option<&Issuer> {
        match self {
            TokenConfig::PrivateIntegration { .. } | TokenConfig::Agency(_) => None,
            TokenConfig::ClientCredentials(issuer) | TokenConfig::OAuth { issuer, .. } => Some(issuer),
        }
    }

    /// The keys a stored token record is sealed under, in the modes that store one.
    pub fn keys(&self) -> Option<&KeyRing> {
        match self {
            TokenConfig::Agency(agency) => Some(&agency.keys),
            other => other.issuer().map(|issuer| &issuer.keys),
        }
    }
}

type Required<'a> = dyn Fn(&'static str) -> Result<String, ConfigError> + 'a;

fn oauth(required: &Required<'_>, get: &impl Fn(&str) -> Option<String>) -> Result<TokenConfig, ConfigError> {
    Ok(TokenConfig::OAuth {
        issuer: read_issuer(required, get)?,
        install: InstallSettings {
            install_url: url_setting(get("OAUTH_INSTALL_URL"), "OAUTH_INSTALL_URL")?
                .unwrap_or_else(|| DEFAULT_INSTALL_URL.to_owned()),
            redirect_uri: url_setting(get("OAUTH_REDIRECT_URI"), "OAUTH_REDIRECT_URI")?,
            scopes: get("OAUTH_SCOPES").unwrap_or_else(|| DEFAULT_SCOPES.to_owned()),
            allow: install_allow(get("OAUTH_INSTALL_ALLOW"))?,
        },
    })
}

/// `OAUTH_INSTALL_ALLOW`: company and location ids separated by spaces or commas.
fn install_allow(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let text = value.unwrap_or_default();
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|id| !id.is_empty())
        .map(|id| {
            safe_location_id(id).map(str::to_owned).ok_or_else(|| {
                invalid(
                    "OAUTH_INSTALL_ALLOW",
                    "list company and location ids (A-Z a-z 0-9 _ -), separated by spaces",
                )
            })
        })
        .collect()
}

fn read_issuer(
    required: &Required<'_>,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Issuer, ConfigError> {
    Ok(Issuer {
        client: OAuthClient {
            client_id: required("OAUTH_CLIENT_ID")?,
            client_secret: Secret::new(required("OAUTH_CLIENT_SECRET")?),
            token_url: format!("{}/oauth/token", oauth_base(get)?),
        },
        keys: read_keys(required)?,
    })
}

/// `OAUTH_BASE`, default production, without a trailing slash.
fn oauth_base(get: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let base = url_setting(get("OAUTH_BASE"), "OAUTH_BASE")?.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    Ok(base.trim_end_matches('/').to_owned())
}

fn read_keys(required: &Required<'_>) -> Result<KeyRing, ConfigError> {
    KeyRing::parse(&required("TOKEN_ENCRYPTION_KEYS")?)
        .map_err(|error| invalid("TOKEN_ENCRYPTION_KEYS", error.to_string()))
}

/// An optional http(s) URL setting.
fn url_setting(value: Option<String>, name: &'static str) -> Result<Option<String>, ConfigError> {
    match value {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            Err(invalid(name, "must start with https:// or http://"))
        }
        other => Ok(other),
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.into() }
}

/// The plaintext inside the envelope. Private: it exists only between `seal_record` and
/// `open_record`, so token values never meet serde anywhere else.
#[derive(Serialize, Deserialize)]
struct PlainRecord {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    obtained_at: i64,
    expires_at: i64,
    #[serde(default)]
    location_id: Option<String>,
    #[serde(default)]
    company_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Encrypts `record` for `token:{location_id}` under the current key (the KV key is the AAD, so
/// the envelope cannot be moved to another location).
pub fn seal_record(
    keys: &KeyRing,
    location_id: &str,
    record: &TokenRecord,
    nonce: [u8; NONCE_LEN],
) -> Envelope {
    let plain = PlainRecord {
        access_token: record.access_token.expose().to_owned(),
        refresh_token: record.refresh_token.as_ref().map(|token| token.expose().to_owned()),
        obtained_at: record.obtained_at_ms,
        expires_at: record.expires_at_ms,
        location_id: record.location_id.clone(),
        company_id: record.company_id.clone(),
        scope: record.scope.clone(),
    };
    let json = serde_json::to_vec(&plain).expect("a token record always serialises");
    keys.seal(&json, token_key(location_id).as_bytes(), nonce)
}

/// Decrypts the record stored for `location_id`, under whichever listed key sealed it.
pub fn open_record(
    keys: &KeyRing,
    location_id: &str,
    envelope: &Envelope,
) -> Result<TokenRecord, EnvelopeError> {
    let json = keys.open(envelope, token_key(location_id).as_bytes())?;
    let plain: PlainRecord =
        serde_json::from_slice(&json).map_err(|_| EnvelopeError::Corrupt(envelope.kid.clone()))?;
    Ok(TokenRecord {
        access_token: Secret::new(plain.access_token),
        refresh_token: plain.refresh_token.map(Secret::new),
        obtained_at_ms: plain.obtained_at,
        expires_at_ms: plain.expires_at,
        location_id: plain.location_id,
        company_id: plain.company_id,
        scope: plain.scope,
    })
}

/// What KV held for a location, once opened.
#[derive(Debug)]
pub enum Stored {
    Absent,
    Readable(TokenRecord),
    /// Present but not decryptable with the listed keys.
    Unreadable(EnvelopeError),
}

impl Stored {
    pub fn open(keys: &KeyRing, location_id: &str, envelope: Option<&Envelope>) -> Stored {
        match envelope.map(|envelope| open_record(keys, location_id, envelope)) {
            None => Stored::Absent,
            Some(Ok(record)) => Stored::Readable(record),
            Some(Err(error)) => Stored::Unreadable(error),
        }
    }

    pub fn record(&self) -> Option<&TokenRecord> {
        match self {
            Stored::Readable(record) => Some(record),
            _ => None,
        }
    }
}

/// The shell's next move for a token.
#[derive(Debug)]
pub enum Plan<'a> {
    /// Send this token.
    Use(Secret),
    /// Ask `issuer`'s token endpoint with `grant`, store the answer, send its token.
    Obtain { issuer: &'a Issuer, grant: Grant },
    /// Mint a location token from the agency's company token, store it, send it.
    Mint(&'a AgencySource),
}

/// Decides how to get a token for `location_id` at `now_ms`. `rejected` is the token the
/// Contacts API just refused (answered 401): it is not used again.
pub fn plan<'a>(
    config: &'a TokenConfig,
    location_id: &str,
    stored: &Stored,
    now_ms: i64,
    rejected: Option<&Secret>,
) -> Result<Plan<'a>, TokenError> {
    let usable = stored
        .record()
        .filter(|record| !record.is_due(now_ms) && Some(&record.access_token) != rejected)
        .map(|record| Plan::Use(record.access_token.clone()));
    match config {
        TokenConfig::PrivateIntegration { token, named: false } if Some(token) == rejected => {
            Err(TokenError::Refused(
                "the Contacts API refused the Private Integration Token in `CONTACTS_API_TOKEN`; \
                 create a new one and set it with `wrangler secret put CONTACTS_API_TOKEN`"
                    .into(),
            ))
        }
        TokenConfig::PrivateIntegration { token, named: true } if Some(token) == rejected => {
            Err(TokenError::Refused(format!(
                "the Contacts API refused the connection's Private Integration Token; create a new one \
                 and set it with PATCH /admin/connections/{location_id}"
            )))
        }
        TokenConfig::PrivateIntegration { token, .. } => Ok(Plan::Use(token.clone())),
        TokenConfig::Agency(agency) => Ok(usable.unwrap_or(Plan::Mint(agency))),
        TokenConfig::ClientCredentials(issuer) => {
            Ok(usable.unwrap_or(Plan::Obtain { issuer, grant: Grant::ClientCredentials }))
        }
        TokenConfig::OAuth { issuer, .. } => match usable {
            Some(plan) => Ok(plan),
            None => refresh_grant(location_id, stored).map(|grant| Plan::Obtain { issuer, grant }),
        },
    }
}

/// `POST {OAUTH_BASE}/oauth/locationToken` for one location, as data: the form and the company
/// token it is sent with (both secret-free in `Debug`).
#[derive(Debug)]
pub struct LocationTokenRequest {
    pub url: String,
    /// `application/x-www-form-urlencoded`: `companyId`, `locationId`.
    pub form: String,
    pub bearer: Secret,
    /// The `Version` header the endpoint requires.
    pub version: &'static str,
}

pub fn location_token_request(
    agency: &AgencySource,
    location_id: &str,
    company_token: Secret,
) -> LocationTokenRequest {
    LocationTokenRequest {
        url: agency.location_token_url.clone(),
        form: form_encode(&[("companyId", &agency.company_id), ("locationId", location_id)]),
        bearer: company_token,
        version: API_VERSION,
    }
}

/// Reads the answer to a location-token request sent at `sent_at_ms`: the location token (it
/// has no refresh token: a new one is minted when it is due), or why not. A refusal (400, 401,
/// 403) needs the agency's install again; 408, 429 and 5xx are for later.
pub fn location_token(status: u16, body: &Value, sent_at_ms: i64) -> Result<TokenRecord, TokenError> {
    let text =
        |name: &str| body.get(name).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    match status {
        200..=299 => {
            let unusable = || TokenError::Unavailable("the location token answer has no usable token".into());
            let access_token = text("access_token").ok_or_else(unusable)?;
            let lifetime_secs =
                body.get("expires_in").and_then(Value::as_u64).filter(|s| *s > 0).ok_or_else(unusable)?;
            Ok(TokenRecord {
                access_token: Secret::new(access_token),
                refresh_token: None,
                obtained_at_ms: sent_at_ms,
                expires_at_ms: sent_at_ms.saturating_add(lifetime_secs.min(MAX_MINTED_SECS) as i64 * 1000),
                location_id: text("locationId"),
                company_id: None,
                scope: text("scope"),
            })
        }
        408 | 425 | 429 | 500..=599 => {
            Err(TokenError::Unavailable(format!("the location token endpoint answered HTTP {status}")))
        }
        _ => Err(TokenError::Refused(format!(
            "the location token endpoint refused the agency's token (HTTP {status}); install the app \
             for the agency again with an agency install link (POST /admin/installs), or at /oauth/install?agency=1 where OAUTH_INSTALL_ALLOW lists the company"
        ))),
    }
}

/// Longest location-token lifetime believed (they last about a day).
const MAX_MINTED_SECS: u64 = 7 * 24 * 3600;

fn refresh_grant(location_id: &str, stored: &Stored) -> Result<Grant, TokenError> {
    let reinstall = "install the app for it with an install link (POST /admin/installs), or at /oauth/install where OAUTH_INSTALL_ALLOW lists it";
    match stored {
        Stored::Readable(TokenRecord { refresh_token: Some(refresh_token), .. }) => {
            Ok(Grant::RefreshToken(refresh_token.clone()))
        }
        Stored::Readable(_) => Err(TokenError::NotConfigured(format!(
            "the stored token for location `{location_id}` has no refresh token; {reinstall}"
        ))),
        Stored::Absent => Err(TokenError::NotConfigured(format!(
            "no OAuth installation for location `{location_id}`; {reinstall}"
        ))),
        Stored::Unreadable(error) => Err(TokenError::NotConfigured(format!(
            "the stored token for location `{location_id}` is unreadable: {error}; list its key \
             again in TOKEN_ENCRYPTION_KEYS, or {reinstall}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token_record::REFRESH_MARGIN_MS;
    use std::collections::HashMap;

    const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    const HOUR: i64 = 3_600_000;

    fn config(pairs: &[(&str, &str)]) -> Result<TokenConfig, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TokenConfig::from_lookup(|name| map.get(name).cloned())
    }

    fn issuer_settings(mode: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("TOKEN_MODE", mode),
            ("OAUTH_CLIENT_ID", "client-1"),
            ("OAUTH_CLIENT_SECRET", "very-secret-client"),
            ("TOKEN_ENCRYPTION_KEYS", K1),
        ]
    }

    /// A plan, reduced to what tests compare.
    #[derive(Debug, PartialEq)]
    enum Move {
        Use(String),
        Obtain(Grant),
        Mint(String),
    }

    fn decide(
        config: &TokenConfig,
        stored: &Stored,
        now_ms: i64,
        rejected: Option<&str>,
    ) -> Result<Move, TokenError> {
        let rejected = rejected.map(Secret::new);
        plan(config, "loc-1", stored, now_ms, rejected.as_ref()).map(|plan| match plan {
            Plan::Use(token) => Move::Use(token.expose().to_owned()),
            Plan::Obtain { grant, .. } => Move::Obtain(grant),
            Plan::Mint(agency) => Move::Mint(agency.company_id.clone()),
        })
    }

    fn record(access: &str, refresh: Option<&str>, expires_at_ms: i64) -> TokenRecord {
        TokenRecord {
            access_token: Secret::new(access),
            refresh_token: refresh.map(Secret::new),
            obtained_at_ms: expires_at_ms.saturating_sub(24 * HOUR),
            expires_at_ms,
            location_id: Some("loc-1".into()),
            company_id: Some("co-1".into()),
            scope: Some("contacts.write".into()),
        }
    }

    #[test]
    fn the_default_mode_is_the_private_integration_token() {
        let config = config(&[("CONTACTS_API_TOKEN", " pit-1 ")]).unwrap();
        assert_eq!(config.mode(), TokenMode::PrivateIntegration);
        assert!(config.issuer().is_none());
        let TokenConfig::PrivateIntegration { token, named: false } = config else { panic!("wrong mode") };
        assert_eq!(token.expose(), "pit-1");
    }

    #[test]
    fn issuer_modes_read_the_client_the_keys_and_the_endpoint() {
        let config = config(&issuer_settings("client_credentials")).unwrap();
        assert_eq!(config.mode(), TokenMode::ClientCredentials);
        let issuer = config.issuer().unwrap();
        assert_eq!(issuer.client.token_url, "https://services.leadconnectorhq.com/oauth/token");
        assert_eq!(issuer.keys.current_kid(), "k1");

        let mut settings = issuer_settings("oauth");
        settings.push(("OAUTH_BASE", "http://127.0.0.1:8788/"));
        settings.push(("OAUTH_REDIRECT_URI", "https://sync.example/oauth/callback"));
        let TokenConfig::OAuth { issuer, install } = config_of(&settings) else { panic!("wrong mode") };
        assert_eq!(issuer.client.token_url, "http://127.0.0.1:8788/oauth/token");
        assert_eq!(install.install_url, DEFAULT_INSTALL_URL);
        assert_eq!(install.scopes, DEFAULT_SCOPES);
        use crate::sync::custom_fields::{CAMPAIGNS_SCOPE, SCOPE, WORKFLOWS_SCOPE};
        for scope in ["contacts.readonly", "contacts.write", SCOPE, WORKFLOWS_SCOPE, CAMPAIGNS_SCOPE] {
            assert!(DEFAULT_SCOPES.split(' ').any(|asked| asked == scope), "an install asks for {scope}");
        }
        assert_eq!(install.redirect_uri("https://other.example"), "https://sync.example/oauth/callback");
    }

    fn config_of(settings: &[(&str, &str)]) -> TokenConfig {
        config(settings).unwrap()
    }

    #[test]
    fn the_redirect_uri_defaults_to_the_worker_callback() {
        let TokenConfig::OAuth { install, .. } = config_of(&issuer_settings("oauth")) else {
            panic!("wrong mode")
        };
        assert_eq!(install.redirect_uri("https://sync.example"), "https://sync.example/oauth/callback");
    }

    #[test]
    fn setting_errors_name_the_setting_and_never_a_secret() {
        let without = |name: &str| {
            let mut settings = issuer_settings("oauth");
            settings.retain(|(key, _)| *key != name);
            settings
        };
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "`CONTACTS_API_TOKEN` is required"),
            (vec![("TOKEN_MODE", "magic")], "`TOKEN_MODE` is invalid"),
            (without("OAUTH_CLIENT_ID"), "`OAUTH_CLIENT_ID` is required"),
            (without("OAUTH_CLIENT_SECRET"), "`OAUTH_CLIENT_SECRET` is required"),
            (without("TOKEN_ENCRYPTION_KEYS"), "`TOKEN_ENCRYPTION_KEYS` is required"),
            (
                [without("TOKEN_ENCRYPTION_KEYS"), vec![("TOKEN_ENCRYPTION_KEYS", "k1:AQEBAQ")]].concat(),
                "`TOKEN_ENCRYPTION_KEYS` is invalid: entry 1 (`k1`)",
            ),
            ([issuer_settings("oauth"), vec![("OAUTH_BASE", "ftp://x")]].concat(), "`OAUTH_BASE` is invalid"),
            (
                [issuer_settings("oauth"), vec![("OAUTH_INSTALL_URL", "marketplace")]].concat(),
                "`OAUTH_INSTALL_URL` is invalid",
            ),
            (
                [issuer_settings("oauth"), vec![("OAUTH_INSTALL_ALLOW", "co-1 loc/../x")]].concat(),
                "`OAUTH_INSTALL_ALLOW` is invalid",
            ),
        ];
        for (settings, expected) in cases {
            let message = config(&settings).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("very-secret") && !message.contains("AQEBAQ"), "{message}");
        }
    }

    #[test]
    fn the_install_allow_list_is_a_list_of_ids() {
        let allow = |value: &'static str| match config(
            &[issuer_settings("oauth"), vec![("OAUTH_INSTALL_ALLOW", value)]].concat(),
        ) {
            Ok(TokenConfig::OAuth { install, .. }) => install.allow,
            other => panic!("{other:?}"),
        };
        assert_eq!(allow("co-1, loc-2\nloc-3"), ["co-1", "loc-2", "loc-3"]);
        assert!(allow("  ").is_empty(), "blank: every install needs a link");
    }

    #[test]
    fn expiry_arithmetic_renews_within_the_margin() {
        let expires_at = 10 * HOUR;
        let token = record("a", None, expires_at);
        assert_eq!(token.renew_at_ms(), expires_at - REFRESH_MARGIN_MS);
        let table = [
            (0, false),
            (expires_at - REFRESH_MARGIN_MS - 1, false),
            (expires_at - REFRESH_MARGIN_MS, true),
            (expires_at - 1, true),
            (expires_at, true),
            (expires_at + HOUR, true),
        ];
        for (now, due) in table {
            assert_eq!(token.is_due(now), due, "now = {now}");
        }
        assert_eq!(record("a", None, i64::MIN).renew_at_ms(), i64::MIN);
    }

    #[test]
    fn records_round_trip_through_the_envelope_bound_to_their_location() {
        let keys = KeyRing::parse(K1).unwrap();
        let token = record("at-123", Some("rt-456"), 5 * HOUR);
        let envelope = seal_record(&keys, "loc-1", &token, [3; NONCE_LEN]);
        let stored = serde_json::to_string(&envelope).unwrap();
        assert!(!stored.contains("at-123") && !stored.contains("rt-456"));
        assert_eq!(open_record(&keys, "loc-1", &envelope).unwrap(), token);
        assert_eq!(
            open_record(&keys, "loc-2", &envelope),
            Err(EnvelopeError::Corrupt("k1".into())),
            "a record copied to another location's key does not open"
        );
    }

    #[test]
    fn after_a_key_rotation_old_records_open_and_new_ones_use_the_new_key() {
        let old_ring = KeyRing::parse(K1).unwrap();
        let new_ring = KeyRing::parse(&format!("{K2} {K1}")).unwrap();
        let token = record("at", Some("rt"), HOUR);
        let old = seal_record(&old_ring, "loc-1", &token, [1; NONCE_LEN]);
        let Stored::Readable(opened) = Stored::open(&new_ring, "loc-1", Some(&old)) else {
            panic!("the old record must still open")
        };
        assert_eq!(opened, token);
        assert!(!new_ring.is_current(&old));
        let rewritten = seal_record(&new_ring, "loc-1", &opened, [2; NONCE_LEN]);
        assert_eq!(rewritten.kid, "k2");
        let retired = KeyRing::parse(K2).unwrap();
        assert!(matches!(
            Stored::open(&retired, "loc-1", Some(&old)),
            Stored::Unreadable(EnvelopeError::UnknownKey(kid)) if kid == "k1"
        ));
    }

    #[test]
    fn the_private_integration_token_is_used_until_refused() {
        let config = config(&[("CONTACTS_API_TOKEN", "pit-1")]).unwrap();
        let use_pit = Ok(Move::Use("pit-1".into()));
        assert_eq!(decide(&config, &Stored::Absent, 0, None), use_pit);
        let refused = decide(&config, &Stored::Absent, 0, Some("pit-1")).unwrap_err();
        assert!(matches!(&refused, TokenError::Refused(m) if m.contains("CONTACTS_API_TOKEN")));
        assert!(!refused.to_string().contains("pit-1"));
        assert_eq!(
            decide(&config, &Stored::Absent, 0, Some("older-pit")),
            use_pit,
            "a token replaced since the refusal is used"
        );
    }

    #[test]
    fn client_credentials_reuse_a_fresh_token_and_obtain_otherwise() {
        let config = config_of(&issuer_settings("client_credentials"));
        let fresh = Stored::Readable(record("at-1", None, 10 * HOUR));
        let now = HOUR;
        let obtain = Ok(Move::Obtain(Grant::ClientCredentials));
        let use_it = Ok(Move::Use("at-1".into()));
        assert_eq!(decide(&config, &fresh, now, None), use_it);
        assert_eq!(decide(&config, &Stored::Absent, now, None), obtain);
        assert_eq!(decide(&config, &fresh, 10 * HOUR, None), obtain);
        assert_eq!(decide(&config, &fresh, now, Some("at-1")), obtain);
        assert_eq!(
            decide(&config, &fresh, now, Some("at-0")),
            use_it,
            "another isolate renewed it already: use that one"
        );
        let unreadable = Stored::Unreadable(EnvelopeError::UnknownKey("k0".into()));
        assert_eq!(decide(&config, &unreadable, now, None), obtain);
    }

    #[test]
    fn oauth_refreshes_with_the_stored_refresh_token_when_due_or_rejected() {
        let config = config_of(&issuer_settings("oauth"));
        let stored = Stored::Readable(record("at-1", Some("rt-1"), 10 * HOUR));
        let refresh = Ok(Move::Obtain(Grant::RefreshToken(Secret::new("rt-1"))));
        assert_eq!(decide(&config, &stored, HOUR, None), Ok(Move::Use("at-1".into())));
        assert_eq!(decide(&config, &stored, 10 * HOUR, None), refresh);
        assert_eq!(decide(&config, &stored, HOUR, Some("at-1")), refresh);
    }

    #[test]
    fn oauth_without_a_usable_installation_is_not_configured() {
        let config = config_of(&issuer_settings("oauth"));
        let cases = [
            (Stored::Absent, "no OAuth installation for location `loc-1`"),
            (Stored::Readable(record("at-1", None, 0)), "has no refresh token"),
            (Stored::Unreadable(EnvelopeError::UnknownKey("k0".into())), "key id `k0`"),
        ];
        for (stored, expected) in cases {
            match decide(&config, &stored, HOUR, None) {
                Err(TokenError::NotConfigured(message)) => {
                    assert!(message.contains(expected), "{message}");
                    assert!(message.contains("/oauth/install"), "{message}");
                }
                other => panic!("expected NotConfigured, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_token_for_another_location_is_refused() {
        let mut token = record("at", None, HOUR);
        assert_eq!(token.check_location("loc-1"), Ok(()));
        token.location_id = Some("loc-2".into());
        assert!(matches!(
            token.check_location("loc-1"),
            Err(TokenError::Refused(m)) if m.contains("`loc-2`, not `loc-1`")
        ));
        token.location_id = None;
        assert_eq!(token.check_location("loc-1"), Ok(()));
        assert_eq!(safe_location_id("a/b"), None);
        assert_eq!(safe_location_id("loc_1-A"), Some("loc_1-A"));
    }

    fn named(source: TokenSource, extra: &[(&str, &str)]) -> Result<TokenConfig, ConfigError> {
        let mut settings = vec![("TOKEN_ENCRYPTION_KEYS", K1), ("OAUTH_BASE", "http://sim/")];
        settings.extend_from_slice(extra);
        let map: HashMap<String, String> =
            settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TokenConfig::for_connection(&source, |name| map.get(name).cloned())
    }

    #[test]
    fn a_named_connection_plans_its_own_token_source() {
        let pit = named(TokenSource::PrivateIntegration(Secret::new("pit-b")), &[]).unwrap();
        assert_eq!(decide(&pit, &Stored::Absent, 0, None), Ok(Move::Use("pit-b".into())));
        let refused = decide(&pit, &Stored::Absent, 0, Some("pit-b")).unwrap_err();
        assert!(matches!(&refused, TokenError::Refused(m) if m.contains("PATCH /admin/connections/loc-1")));
        assert!(
            !refused.to_string().contains("pit-b") && !refused.to_string().contains("CONTACTS_API_TOKEN")
        );

        let missing = named(TokenSource::OAuth, &[]).unwrap_err();
        assert_eq!(
            missing,
            ConfigError::Missing("OAUTH_CLIENT_ID"),
            "oauth needs the app whatever TOKEN_MODE says"
        );
        let oauth =
            named(TokenSource::OAuth, &[("OAUTH_CLIENT_ID", "c"), ("OAUTH_CLIENT_SECRET", "s")]).unwrap();
        assert_eq!(oauth.mode(), TokenMode::OAuth);
        assert_eq!(oauth.issuer().unwrap().client.token_url, "http://sim/oauth/token");

        let agency = named(TokenSource::Agency { company_id: "co-1".into() }, &[]).unwrap();
        assert_eq!(agency.mode().as_str(), "agency");
        assert!(agency.issuer().is_none() && agency.keys().is_some());
        let fresh = Stored::Readable(record("lt-1", None, 10 * HOUR));
        assert_eq!(decide(&agency, &fresh, HOUR, None), Ok(Move::Use("lt-1".into())));
        for (stored, now, rejected) in
            [(&fresh, 10 * HOUR, None), (&fresh, HOUR, Some("lt-1")), (&Stored::Absent, HOUR, None)]
        {
            let rejected = rejected.map(Secret::new);
            let plan = plan(&agency, "loc-1", stored, now, rejected.as_ref()).unwrap();
            assert!(matches!(plan, Plan::Mint(source) if source.company_id == "co-1"));
        }
    }

    #[test]
    fn a_location_token_is_minted_with_the_company_token_and_read_from_its_answer() {
        let Ok(TokenConfig::Agency(agency)) = named(TokenSource::Agency { company_id: "co 1".into() }, &[])
        else {
            panic!("wrong mode")
        };
        let request = location_token_request(&agency, "loc-1", Secret::new("company-at"));
        assert_eq!(request.url, "http://sim/oauth/locationToken");
        assert_eq!(request.form, "companyId=co+1&locationId=loc-1");
        assert_eq!((request.bearer.expose(), request.version), ("company-at", API_VERSION));
        assert!(!format!("{request:?}").contains("company-at"));

        let body = serde_json::json!({"access_token": "lt-1", "expires_in": 86399, "locationId": "loc-1"});
        let record = location_token(200, &body, 1_000).unwrap();
        assert_eq!((record.access_token.expose(), record.expires_at_ms), ("lt-1", 1_000 + 86_399_000));
        assert!(record.refresh_token.is_none());
        assert!(record.check_location("loc-2").is_err());
        assert!(matches!(location_token(200, &serde_json::json!({}), 0), Err(TokenError::Unavailable(_))));
        assert!(matches!(location_token(503, &Value::Null, 0), Err(TokenError::Unavailable(_))));
        assert!(
            matches!(location_token(401, &Value::Null, 0), Err(TokenError::Refused(m)) if m.contains("agency=1"))
        );
    }

    #[test]
    fn token_keys_are_per_location() {
        assert_eq!(token_key("loc-1"), "token:loc-1");
    }
}
