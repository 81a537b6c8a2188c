//! Connections: one SightMill workspace joined to one Contacts API location, so that one
//! deployment serves many locations. A connection's id is its location's id (each location's
//! Durable Object keeps its name). The default connection is the deployment's own settings
//! (`GHL_LOCATION_ID`, `WEBHOOK_SECRETS`, `TOKEN_MODE`); named ones are [`Connection`] records,
//! written only by the shell's `Directory` Durable Object and copied to their location's Durable
//! Object. This module is their core: the id rule, the record and its JSON views, the signing
//! secrets and their rotation, which secret admits a delivery, and the record sealed at rest.
//! The shell's webhook route asks [`Connection::admit`]; the operator routes parse their bodies
//! here ([`NewConnection`], [`Rotation`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::envelope::{Envelope, KeyRing, NONCE_LEN};
use crate::intake::signature::{SignatureError, SigningKey, MIN_SECRET_BYTES};
use crate::intake::{admit, Admitted, Delivery};
use crate::refusal::Refusal;
use crate::secret::Secret;
use crate::sync::retry::parse_duration;

pub mod agency;
pub mod recent;
pub mod work;

/// Longest connection id (a location id is 20 characters today).
pub const MAX_ID_LEN: usize = 64;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 100;
/// How long the old secrets of a rotation keep working unless the operator says otherwise.
pub const DEFAULT_KEEP_OLD_MS: i64 = 24 * 3600 * 1000;
/// The path SightMill posts a named connection's webhooks under (`{WEBHOOK_BASE}/{id}`).
pub const WEBHOOK_BASE: &str = "/webhooks/sightmill";

/// A checked connection id: 1-64 characters of `A-Z a-z 0-9 _ -`, so that it is safe in a URL
/// path, a KV key and a Durable Object name alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

impl ConnectionId {
    /// Checks `text` (400 `invalid_connection_id` when it breaks the rule).
    pub fn parse(text: &str) -> Result<ConnectionId, Refusal> {
        let safe = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if text.is_empty() || text.len() > MAX_ID_LEN || !text.bytes().all(safe) {
            return Err(Refusal::bad_request(
                "invalid_connection_id",
                format!("a connection id is 1-{MAX_ID_LEN} characters of A-Z a-z 0-9 _ - (its location id)"),
            ));
        }
        Ok(ConnectionId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConnectionId {
    type Error = String;
    fn try_from(text: String) -> Result<ConnectionId, String> {
        ConnectionId::parse(&text).map_err(|refusal| refusal.message)
    }
}

impl From<ConnectionId> for String {
    fn from(id: ConnectionId) -> String {
        id.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a named connection's Contacts API token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A Private Integration Token of the location, kept sealed with the record.
    PrivateIntegration(Secret),
    /// The marketplace app installed on the location (`/oauth/install`): its tokens are the
    /// location's Durable Object's, renewed with the app's client credentials.
    OAuth,
    /// A location token minted with `POST /oauth/locationToken` from the agency's company token.
    Agency { company_id: String },
}

impl TokenSource {
    pub fn kind(&self) -> &'static str {
        match self {
            TokenSource::PrivateIntegration(_) => "private_integration",
            TokenSource::OAuth => "oauth",
            TokenSource::Agency { .. } => "agency",
        }
    }

    /// The operator's view: the kind (and agency), never the token.
    pub fn view(&self) -> Value {
        match self {
            TokenSource::Agency { company_id } => json!({ "kind": self.kind(), "company_id": company_id }),
            _ => json!({ "kind": self.kind() }),
        }
    }

    /// Reads `{"kind": ..., "token"?: ..., "company_id"?: ...}` (400 `invalid_body` otherwise).
    pub fn from_json(value: &Value) -> Result<TokenSource, Refusal> {
        let text =
            |name: &str| value.get(name).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
        match value.get("kind").and_then(Value::as_str) {
            Some("private_integration") => text("token")
                .map(|token| TokenSource::PrivateIntegration(Secret::new(token)))
                .ok_or_else(|| invalid_body("`token.token`: the Private Integration Token is required")),
            Some("oauth") => Ok(TokenSource::OAuth),
            Some("agency") => text("company_id")
                .filter(|id| ConnectionId::parse(id).is_ok())
                .map(|company_id| TokenSource::Agency { company_id: company_id.to_owned() })
                .ok_or_else(|| invalid_body("`token.company_id`: the agency's company id is required")),
            _ => Err(invalid_body("`token.kind` is one of private_integration, oauth, agency")),
        }
    }
}

/// One signing secret of a connection; `expires_at_ms` is set once a rotation replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecret {
    pub secret: Secret,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

impl SigningSecret {
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.secret)
    }

    fn valid_at(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
}

/// What names a signing secret in the operator API and the logs: `whsec:` and the first 8 hex
/// digits of its SHA-256. The secret cannot be learned from it.
pub fn fingerprint(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    format!("whsec:{}", digest[..4].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A named connection, as the Directory keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub label: Option<String>,
    pub created_at_ms: i64,
    pub paused: bool,
    pub token: TokenSource,
    pub secrets: Vec<SigningSecret>,
}

impl Connection {
    /// The signing keys that admit a delivery at `now`, each with its fingerprint.
    pub fn signing_keys(&self, now_ms: i64) -> Vec<(String, SigningKey)> {
        self.secrets
            .iter()
            .filter(|secret| secret.valid_at(now_ms))
            .filter_map(|secret| {
                let key = SigningKey::parse_list(secret.secret.expose()).ok()?.pop()?;
                Some((secret.fingerprint(), key))
            })
            .collect()
    }

    /// Whether the secret named `fingerprint` still admits deliveries at `now`.
    pub fn accepts_fingerprint(&self, fingerprint: &str, now_ms: i64) -> bool {
        self.secrets.iter().any(|secret| secret.valid_at(now_ms) && secret.fingerprint() == fingerprint)
    }

    /// Admits a delivery with one of the connection's valid secrets, and says which one: the
    /// location's Durable Object checks again that it is still valid when it accepts. With no
    /// valid secret the refusal is the one for a signature that matches none
    /// ([`refuse_unknown`]), so that a stranger cannot tell this connection from no connection.
    pub fn admit(
        &self,
        delivery: Delivery<'_>,
        max_body_bytes: usize,
        now_ms: i64,
    ) -> Result<(Admitted, String), Refusal> {
        let mut refusal = None;
        for (fingerprint, key) in self.signing_keys(now_ms) {
            match admit(delivery, std::slice::from_ref(&key), max_body_bytes, now_ms / 1000) {
                Ok(admitted) => return Ok((admitted, fingerprint)),
                Err(error) if error.code == "invalid_signature" => refusal = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(refusal.unwrap_or_else(|| refuse_unknown(delivery, max_body_bytes, now_ms)))
    }

    /// Adds `secret` as the newest; the secrets valid now stop `keep_old_ms` from now (0: at once).
    /// 409 `secret_in_use` when the connection has it already.
    pub fn rotate(&mut self, secret: Secret, keep_old_ms: i64, now_ms: i64) -> Result<(), Refusal> {
        if self.secrets.iter().any(|known| known.secret == secret) {
            return Err(secret_in_use());
        }
        for old in self.secrets.iter_mut().filter(|old| old.valid_at(now_ms)) {
            let until = now_ms + keep_old_ms;
            old.expires_at_ms = Some(old.expires_at_ms.map_or(until, |at| at.min(until)));
        }
        self.secrets.retain(|old| old.valid_at(now_ms));
        self.secrets.push(SigningSecret { secret, created_at_ms: now_ms, expires_at_ms: None });
        Ok(())
    }

    /// Removes the secret named `fingerprint` (404 `unknown_secret`).
    pub fn remove_secret(&mut self, fingerprint: &str) -> Result<(), Refusal> {
        let before = self.secrets.len();
        self.secrets.retain(|secret| secret.fingerprint() != fingerprint);
        if self.secrets.len() == before {
            return Err(Refusal::missing(
                "unknown_secret",
                "the connection has no secret with the fingerprint in the path",
            ));
        }
        Ok(())
    }

    /// Whether any of the connection's secrets is `secret` (a secret belongs to one connection).
    pub fn uses_secret(&self, secret: &Secret) -> bool {
        self.secrets.iter().any(|known| &known.secret == secret)
    }

    /// The operator's view: everything but secret material.
    pub fn view(&self, now_ms: i64) -> Value {
        let secrets: Vec<Value> = self
            .secrets
            .iter()
            .filter(|secret| secret.valid_at(now_ms))
            .map(|secret| {
                json!({ "fingerprint": secret.fingerprint(), "created_at_ms": secret.created_at_ms,
                        "expires_at_ms": secret.expires_at_ms })
            })
            .collect();
        json!({
            "id": self.id, "default": false, "label": self.label, "paused": self.paused,
            "token": self.token.view(), "secrets": secrets,
            "webhook_path": format!("{WEBHOOK_BASE}/{}", self.id), "created_at_ms": self.created_at_ms,
        })
    }

    /// Seals the whole record (secrets and token included) under the current key; the AAD binds
    /// it to its id, so that one connection's envelope cannot stand in for another's.
    pub fn seal(&self, keys: &KeyRing, nonce: [u8; NONCE_LEN]) -> Envelope {
        let json = serde_json::to_vec(&Plain::of(self)).expect("a connection always serialises");
        keys.seal(&json, aad(&self.id).as_bytes(), nonce)
    }

    /// Opens a record sealed by [`Connection::seal`] for `id`.
    pub fn open(keys: &KeyRing, id: &ConnectionId, envelope: &Envelope) -> Result<Connection, String> {
        let json = keys.open(envelope, aad(id).as_bytes()).map_err(|error| error.to_string())?;
        let plain: Plain = serde_json::from_slice(&json).map_err(|error| error.to_string())?;
        Ok(plain.into_connection(id.clone()))
    }
}

fn aad(id: &ConnectionId) -> String {
    format!("connection:{id}")
}

/// The record as sealed: plain strings, so that `Secret` never gains a `Serialize`.
#[derive(Serialize, Deserialize)]
struct Plain {
    label: Option<String>,
    created_at_ms: i64,
    paused: bool,
    token_kind: String,
    token: Option<String>,
    company_id: Option<String>,
    secrets: Vec<(String, i64, Option<i64>)>,
}

impl Plain {
    fn of(connection: &Connection) -> Plain {
        let (token, company_id) = match &connection.token {
            TokenSource::PrivateIntegration(token) => (Some(token.expose().to_owned()), None),
            TokenSource::OAuth => (None, None),
            TokenSource::Agency { company_id } => (None, Some(company_id.clone())),
        };
        Plain {
            label: connection.label.clone(),
            created_at_ms: connection.created_at_ms,
            paused: connection.paused,
            token_kind: connection.token.kind().to_owned(),
            token,
            company_id,
            secrets: connection
                .secrets
                .iter()
                .map(|s| (s.secret.expose().to_owned(), s.created_at_ms, s.expires_at_ms))
                .collect(),
        }
    }

    fn into_connection(self, id: ConnectionId) -> Connection {
        let token = match (self.token_kind.as_str(), self.token, self.company_id) {
            ("private_integration", Some(token), _) => TokenSource::PrivateIntegration(Secret::new(token)),
            ("agency", _, Some(company_id)) => TokenSource::Agency { company_id },
            _ => TokenSource::OAuth,
        };
        let secrets = self
            .secrets
            .into_iter()
            .map(|(secret, created_at_ms, expires_at_ms)| SigningSecret {
                secret: Secret::new(secret),
                created_at_ms,
                expires_at_ms,
            })
            .collect();
        Connection {
            id,
            label: self.label,
            created_at_ms: self.created_at_ms,
            paused: self.paused,
            token,
            secrets,
        }
    }
}

/// The body of `POST /admin/connections`, checked.
#[derive(Debug)]
pub struct NewConnection {
    pub id: ConnectionId,
    pub label: Option<String>,
    pub token: TokenSource,
    /// The operator's own secret; `None`: the Directory generates one.
    pub signing_secret: Option<Secret>,
}

impl NewConnection {
    pub fn parse(body: &str) -> Result<NewConnection, Refusal> {
        let value: Value =
            serde_json::from_str(body).map_err(|_| invalid_body("the body is not a JSON object"))?;
        let id = value.get("id").and_then(Value::as_str).ok_or_else(|| invalid_body("`id` is required"))?;
        let token = value.get("token").ok_or_else(|| invalid_body("`token` is required"))?;
        Ok(NewConnection {
            id: ConnectionId::parse(id)?,
            label: label(&value)?,
            token: TokenSource::from_json(token)?,
            signing_secret: signing_secret(&value)?,
        })
    }

    /// The record, with its first secret.
    pub fn into_connection(self, secret: Secret, now_ms: i64) -> Connection {
        Connection {
            id: self.id,
            label: self.label,
            created_at_ms: now_ms,
            paused: false,
            token: self.token,
            secrets: vec![SigningSecret { secret, created_at_ms: now_ms, expires_at_ms: None }],
        }
    }
}

/// The body of `PATCH /admin/connections/{id}`: a new label and/or token source.
pub fn apply_patch(connection: &mut Connection, body: &str) -> Result<(), Refusal> {
    let value: Value =
        serde_json::from_str(body).map_err(|_| invalid_body("the body is not a JSON object"))?;
    if value.get("label").is_some() {
        connection.label = label(&value)?;
    }
    if let Some(token) = value.get("token") {
        connection.token = TokenSource::from_json(token)?;
    }
    Ok(())
}

/// The body of `POST /admin/connections/{id}/secrets`, checked.
#[derive(Debug)]
pub struct Rotation {
    pub signing_secret: Option<Secret>,
    pub keep_old_ms: i64,
}

impl Rotation {
    pub fn parse(body: &str) -> Result<Rotation, Refusal> {
        let value: Value = if body.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(body).map_err(|_| invalid_body("the body is not a JSON object"))?
        };
        let keep_old_ms = match value.get("keep_old_for") {
            None => DEFAULT_KEEP_OLD_MS,
            Some(text) => text
                .as_str()
                .and_then(|text| if matches!(text, "0" | "0s") { Some(0) } else { parse_duration(text) })
                .map(|secs| secs as i64 * 1000)
                .ok_or_else(|| {
                    invalid_body("`keep_old_for` is a duration like 90s, 30m, 2h or 1d (0s: at once)")
                })?,
        };
        Ok(Rotation { signing_secret: signing_secret(&value)?, keep_old_ms })
    }
}

/// A fresh `whsec_` secret from 32 random bytes.
pub fn new_secret(random: [u8; 32]) -> Secret {
    use base64::Engine;
    Secret::new(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(random)))
}

/// The answer to a delivery for a connection id nobody connected (or one with no valid secret):
/// exactly what a delivery signed with the wrong secret gets (413, 415, or 401
/// `invalid_signature` with the same words), so that ids cannot be probed.
pub fn refuse_unknown(delivery: Delivery<'_>, max_body_bytes: usize, now_ms: i64) -> Refusal {
    // With no key nothing verifies: the answer is the first check that fails, as for a wrong key.
    admit(delivery, &[], max_body_bytes, now_ms / 1000)
        .err()
        .unwrap_or_else(|| Refusal::invalid_signature(SignatureError::NoMatch.to_string()))
}

/// The KV key under which the Directory publishes connection `id`'s sealed record for the edge.
pub fn record_key(id: &ConnectionId) -> String {
    format!("connection:{id}")
}

/// 409 `secret_in_use`.
pub fn secret_in_use() -> Refusal {
    Refusal::conflict("secret_in_use", "that signing secret is already in use; each connection needs its own")
}

/// The secrets of a `WEBHOOK_SECRETS` list (the default connection's), as given.
pub fn deployment_secrets(list: &str) -> Vec<Secret> {
    SigningKey::split_list(list).map(Secret::new).collect()
}

/// A secret belongs to one connection only: 409 `secret_in_use` when the deployment's own
/// secrets or any of `others` (every named connection but the one receiving it) has it.
pub fn check_secret_free<'a>(
    secret: &Secret,
    deployment: &[Secret],
    mut others: impl Iterator<Item = &'a Connection>,
) -> Result<(), Refusal> {
    if deployment.contains(secret) || others.any(|other| other.uses_secret(secret)) {
        return Err(secret_in_use());
    }
    Ok(())
}

/// The default connection as the operator API shows it: synthesized from the deployment's
/// settings (`GHL_LOCATION_ID`, `WEBHOOK_SECRETS`, `TOKEN_MODE`), never stored, never a secret.
pub fn default_view(id: &ConnectionId, secrets: &[Secret], token_mode: &str) -> Value {
    let secrets: Vec<Value> = secrets
        .iter()
        .map(|secret| json!({ "fingerprint": fingerprint(secret), "created_at_ms": null, "expires_at_ms": null }))
        .collect();
    json!({
        "id": id, "default": true, "label": null, "paused": false, "token": { "kind": token_mode },
        "secrets": secrets, "webhook_path": WEBHOOK_BASE, "created_at_ms": null,
    })
}

/// 409 `default_connection`: the default connection is the deployment's settings.
pub fn default_connection(id: &ConnectionId) -> Refusal {
    Refusal::conflict("default_connection", format!(
            "`{id}` is the default connection: it is the deployment's settings (GHL_LOCATION_ID, WEBHOOK_SECRETS, TOKEN_MODE), changed with wrangler, not here"
        ),
    )
}

/// 409 `connection_exists`.
pub fn connection_exists(id: &ConnectionId) -> Refusal {
    Refusal::conflict("connection_exists", format!("a connection `{id}` exists already"))
}

/// 404 `unknown_connection`.
pub fn unknown_connection() -> Refusal {
    Refusal::missing("unknown_connection", "there is no connection with the id in the path")
}

fn label(value: &Value) -> Result<Option<String>, Refusal> {
    match value.get("label") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= MAX_LABEL_LEN => {
            Ok(Some(text.trim().to_owned()).filter(|text| !text.is_empty()))
        }
        Some(_) => Err(invalid_body(format!("`label` is a string of at most {MAX_LABEL_LEN} characters"))),
    }
}

fn signing_secret(value: &Value) -> Result<Option<Secret>, Refusal> {
    let Some(given) = value.get("signing_secret") else {
        return Ok(None);
    };
    let text = given.as_str().map(str::trim).unwrap_or_default();
    match SigningKey::parse_strong_list(text) {
        Ok(keys) if keys.len() == 1 => Ok(Some(Secret::new(text))),
        _ => Err(invalid_body(format!(
            "`signing_secret` is one `whsec_` followed by standard base64 of at least {MIN_SECRET_BYTES} random bytes"
        ))),
    }
}

fn invalid_body(message: impl Into<String>) -> Refusal {
    Refusal::bad_request("invalid_body", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn secret(n: u8) -> Secret {
        new_secret([n; 32])
    }

    fn connection() -> Connection {
        NewConnection::parse(
            r#"{"id": "loc-b", "label": "B", "token": {"kind": "private_integration", "token": "pit-b"}}"#,
        )
        .unwrap()
        .into_connection(secret(1), NOW)
    }

    fn delivery<'a>(body: &'a [u8], signature: &'a str, timestamp: &'a str) -> Delivery<'a> {
        Delivery {
            content_type: Some("application/json"),
            signature: crate::intake::signature::SignatureHeaders {
                id: Some("msg_1"),
                timestamp: Some(timestamp),
                signature: Some(signature),
            },
            body,
        }
    }

    const BODY: &[u8] = br#"{"type":"contact.created","timestamp":"2023-11-14T22:13:20Z","data":{"id":"c1","updated_at":"2023-11-14T22:13:20Z","email":"a@b.c"}}"#;

    fn signed_with(secret: &Secret) -> String {
        SigningKey::parse_list(secret.expose()).unwrap()[0].sign("msg_1", NOW / 1000, BODY)
    }

    #[test]
    fn ids_are_location_ids_and_nothing_else() {
        for good in ["loc-b", "A1_b-C", &"x".repeat(64)] {
            assert!(ConnectionId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "..", "a/b", "a%2Fb", "a b", "loc.1", &"x".repeat(65), "é"] {
            assert_eq!(ConnectionId::parse(bad).unwrap_err().code, "invalid_connection_id", "{bad}");
        }
    }

    #[test]
    fn a_delivery_is_admitted_only_with_the_connections_own_secret() {
        let connection = connection();
        let timestamp = (NOW / 1000).to_string();
        let own = signed_with(&secret(1));
        let (admitted, by) = connection.admit(delivery(BODY, &own, &timestamp), 1 << 16, NOW).unwrap();
        assert_eq!(admitted.webhook_id, "msg_1");
        assert_eq!(by, fingerprint(&secret(1)));
        let other = signed_with(&secret(2));
        let refused = connection.admit(delivery(BODY, &other, &timestamp), 1 << 16, NOW).unwrap_err();
        assert_eq!((refused.status, refused.code), (401, "invalid_signature"));
    }

    #[test]
    fn a_connection_without_a_valid_secret_answers_as_no_connection_does() {
        let mut connection = connection();
        connection.secrets.clear();
        let timestamp = (NOW / 1000).to_string();
        let signed = signed_with(&secret(1));
        let refused = connection.admit(delivery(BODY, &signed, &timestamp), 1 << 16, NOW).unwrap_err();
        let unknown = refuse_unknown(delivery(BODY, &signed, &timestamp), 1 << 16, NOW);
        let wrong =
            self::connection().admit(delivery(BODY, &signed_with(&secret(2)), &timestamp), 1 << 16, NOW);
        assert_eq!((refused.status, refused.code), (401, "invalid_signature"));
        assert_eq!(refused.body(), unknown.body());
        assert_eq!(wrong.unwrap_err().body(), unknown.body(), "the same words as a wrong secret");
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_for_its_grace_and_then_drops_it() {
        let mut connection = connection();
        connection.rotate(secret(2), 60_000, NOW).unwrap();
        assert!(connection.accepts_fingerprint(&fingerprint(&secret(1)), NOW + 59_999));
        assert!(!connection.accepts_fingerprint(&fingerprint(&secret(1)), NOW + 60_000));
        assert!(connection.accepts_fingerprint(&fingerprint(&secret(2)), NOW + 10 * DEFAULT_KEEP_OLD_MS));
        assert_eq!(connection.rotate(secret(2), 0, NOW).unwrap_err().code, "secret_in_use");
        connection.rotate(secret(3), 0, NOW + 1).unwrap();
        assert_eq!(connection.signing_keys(NOW + 1).len(), 1, "0 ends the old ones at once");
        assert_eq!(connection.secrets.len(), 1, "expired secrets are dropped");
        assert_eq!(connection.remove_secret("whsec:00000000").unwrap_err().code, "unknown_secret");
        connection.remove_secret(&fingerprint(&secret(3))).unwrap();
        assert!(connection.signing_keys(NOW + 1).is_empty());
    }

    #[test]
    fn the_view_shows_no_secret_material() {
        let view = connection().view(NOW).to_string();
        assert!(!view.contains("pit-b") && !view.contains(secret(1).expose()), "{view}");
        assert!(
            view.contains(&fingerprint(&secret(1))) && view.contains("/webhooks/sightmill/loc-b"),
            "{view}"
        );
    }

    #[test]
    fn a_sealed_record_opens_only_under_its_own_id() {
        let keys = KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let mut original = connection();
        original.token = TokenSource::Agency { company_id: "co-1".into() };
        let envelope = original.seal(&keys, [7; NONCE_LEN]);
        assert_eq!(Connection::open(&keys, &original.id, &envelope).unwrap(), original);
        assert!(Connection::open(&keys, &ConnectionId::parse("loc-c").unwrap(), &envelope).is_err());
        let pit = connection();
        let envelope = pit.seal(&keys, [8; NONCE_LEN]);
        assert_eq!(Connection::open(&keys, &pit.id, &envelope).unwrap(), pit);
    }

    #[test]
    fn a_secret_is_free_only_when_no_other_connection_and_not_the_deployment_has_it() {
        let other = connection();
        let deployment = deployment_secrets(&format!("{}, {}", secret(5).expose(), secret(6).expose()));
        assert_eq!(deployment, vec![secret(5), secret(6)]);
        assert!(check_secret_free(&secret(2), &deployment, [&other].into_iter()).is_ok());
        for taken in [secret(1), secret(6)] {
            let refused = check_secret_free(&taken, &deployment, [&other].into_iter()).unwrap_err();
            assert_eq!((refused.status, refused.code), (409, "secret_in_use"));
        }
    }

    #[test]
    fn the_default_view_shows_fingerprints_only() {
        let id = ConnectionId::parse("loc-a").unwrap();
        let view = default_view(&id, &[secret(5)], "oauth");
        assert_eq!(view["default"], true);
        assert_eq!(view["token"]["kind"], "oauth");
        assert_eq!(view["webhook_path"], WEBHOOK_BASE);
        assert_eq!(view["secrets"][0]["fingerprint"], fingerprint(&secret(5)));
        assert!(!view.to_string().contains(secret(5).expose()));
    }

    #[test]
    fn bodies_are_checked_and_say_what_is_wrong() {
        let cases = [
            ("not json", "invalid_body"),
            (r#"{"token": {"kind": "oauth"}}"#, "invalid_body"),
            (r#"{"id": "a/b", "token": {"kind": "oauth"}}"#, "invalid_connection_id"),
            (r#"{"id": "a", "token": {"kind": "pit"}}"#, "invalid_body"),
            (r#"{"id": "a", "token": {"kind": "private_integration"}}"#, "invalid_body"),
            (r#"{"id": "a", "token": {"kind": "agency"}}"#, "invalid_body"),
            (r#"{"id": "a", "token": {"kind": "oauth"}, "signing_secret": "hunter2"}"#, "invalid_body"),
            (r#"{"id": "a", "token": {"kind": "oauth"}, "label": 7}"#, "invalid_body"),
        ];
        for (body, code) in cases {
            let refusal = NewConnection::parse(body).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (400, code), "{body}");
            assert!(!refusal.message.contains("hunter2"));
        }
        let rotation = Rotation::parse(r#"{"keep_old_for": "2h"}"#).unwrap();
        assert_eq!(rotation.keep_old_ms, 7_200_000);
        assert_eq!(Rotation::parse("").unwrap().keep_old_ms, DEFAULT_KEEP_OLD_MS);
        assert_eq!(Rotation::parse(r#"{"keep_old_for": "0s"}"#).unwrap().keep_old_ms, 0);
        assert_eq!(Rotation::parse(r#"{"keep_old_for": "soon"}"#).unwrap_err().code, "invalid_body");
        let mut patched = connection();
        apply_patch(&mut patched, r#"{"label": "Sales", "token": {"kind": "oauth"}}"#).unwrap();
        assert_eq!((patched.label.as_deref(), patched.token.kind()), (Some("Sales"), "oauth"));
    }
}
