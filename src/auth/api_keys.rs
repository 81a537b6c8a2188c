//! Bearer API keys for the worker's own HTTP APIs (`READ_API_KEYS` for the read API,
//! `ADMIN_API_KEYS` for the operator API): parses a configured list and checks a request's
//! `Authorization` header against it in constant time. A read key may be limited to the
//! connections it names (`key@loc-a+loc-b`; unscoped keys reach every connection). The shell
//! calls it before anything else on those routes; the webhook path never accepts a key (it is
//! signed instead).

use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use thiserror::Error;

use crate::connections::ConnectionId;
use crate::refusal::Refusal;

/// The secret holding the operator API's keys (the read API's are `READ_API_KEYS`).
pub const ADMIN_KEYS_SETTING: &str = "ADMIN_API_KEYS";

/// Shortest key accepted in a configured list: a guessable key is a configuration error. 24
/// characters (`openssl rand -base64 24` prints 32 from 24 random bytes).
pub const MIN_KEY_LEN: usize = 24;

/// A configured list of keys. Only their SHA-256 digests are kept, so that every comparison has
/// the same length and the keys themselves do not stay in memory; `Debug` shows the count only.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
    /// Each key's connections (`None`: all of them), beside its digest.
    scopes: Vec<Option<Vec<ConnectionId>>>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApiKeysError {
    #[error("no key given")]
    Empty,
    #[error("key {position} is shorter than {MIN_KEY_LEN} characters")]
    TooShort { position: usize },
    #[error("key {position} names a connection that is not a valid connection id (`key@loc-a+loc-b`)")]
    BadScope { position: usize },
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer <key>` header.
    Missing,
    /// A bearer key that is not on the list.
    Invalid,
    /// A key on the list, limited to other connections.
    NotAllowed,
}

impl ApiKeys {
    /// Parses keys separated by spaces or commas (several at once allow rotation), each
    /// optionally limited to connections: `key@loc-a+loc-b`.
    pub fn parse(list: &str) -> Result<ApiKeys, ApiKeysError> {
        let entries: Vec<&str> =
            list.split(|c: char| c == ',' || c.is_whitespace()).filter(|key| !key.is_empty()).collect();
        if entries.is_empty() {
            return Err(ApiKeysError::Empty);
        }
        let mut keys = ApiKeys { digests: Vec::new(), scopes: Vec::new() };
        for (index, entry) in entries.iter().enumerate() {
            let position = index + 1;
            let (key, scope) = match entry.rsplit_once('@') {
                Some((key, scope)) => {
                    let ids: Result<Vec<_>, _> = scope.split('+').map(ConnectionId::parse).collect();
                    (key, Some(ids.map_err(|_| ApiKeysError::BadScope { position })?))
                }
                None => (*entry, None),
            };
            if key.len() < MIN_KEY_LEN {
                return Err(ApiKeysError::TooShort { position });
            }
            keys.digests.push(digest(key));
            keys.scopes.push(scope);
        }
        Ok(keys)
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), Denied> {
        self.matched(authorization).map(|_| ())
    }

    /// Checks an `Authorization` header value for a request on `connection` (the default
    /// connection is named by its id): 403 for a key limited to other connections.
    pub fn check_for(&self, authorization: Option<&str>, connection: &str) -> Result<(), Denied> {
        match &self.scopes[self.matched(authorization)?] {
            Some(ids) if !ids.iter().any(|id| id.as_str() == connection) => Err(Denied::NotAllowed),
            _ => Ok(()),
        }
    }

    /// Whether any key is limited to some connections.
    pub fn scoped(&self) -> bool {
        self.scopes.iter().any(Option::is_some)
    }

    /// The index of the key presented in `authorization`.
    fn matched(&self, authorization: Option<&str>) -> Result<usize, Denied> {
        let presented = authorization.and_then(bearer).ok_or(Denied::Missing)?;
        self.position(presented).ok_or(Denied::Invalid)
    }

    /// Whether `presented` is one of the keys. Compares against every key, each in constant
    /// time, without stopping at a match.
    pub fn accepts(&self, presented: &str) -> bool {
        self.position(presented).is_some()
    }

    /// Which key `presented` is: compared against every key in constant time (keys are distinct
    /// digests, so at most one matches).
    fn position(&self, presented: &str) -> Option<usize> {
        let presented = digest(presented);
        let (found, at) =
            self.digests.iter().enumerate().fold((Choice::from(0), 0u64), |(found, at), (i, key)| {
                let hit = key.ct_eq(&presented);
                (found | hit, u64::conditional_select(&at, &(i as u64), hit))
            });
        bool::from(found).then_some(at as usize)
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys, [redacted])", self.digests.len())
    }
}

impl Denied {
    /// 401 `missing_api_key` or 401 `invalid_api_key`: both say "authenticate", and a wrong key
    /// is not told apart from a revoked one.
    pub fn refusal(self) -> Refusal {
        match self {
            Denied::Missing => {
                Refusal::unauthorized("missing_api_key", "send the API key as `Authorization: Bearer <key>`")
            }
            Denied::Invalid => Refusal::unauthorized("invalid_api_key", "the API key is not valid"),
            Denied::NotAllowed => Refusal::forbidden(
                "connection_not_allowed",
                "the API key is limited to other connections than this one",
            ),
        }
    }
}

/// The operator API's keys from the `ADMIN_API_KEYS` setting: unset or blank turns the API off
/// (404), a list that does not parse is a misconfiguration (500, naming the setting, never a key).
pub fn admin_keys(setting: Option<&str>) -> Result<ApiKeys, Refusal> {
    match setting.map(ApiKeys::parse) {
        Some(Ok(keys)) if keys.scoped() => Err(Refusal::misconfigured(format!(
            "`{ADMIN_KEYS_SETTING}`: operator keys reach every connection; `key@connection` is for read keys"
        ))),
        Some(Ok(keys)) => Ok(keys),
        None | Some(Err(ApiKeysError::Empty)) => Err(Refusal::missing(
            "admin_api_disabled",
            format!("the operator API is off: set the secret `{ADMIN_KEYS_SETTING}` to turn it on"),
        )),
        Some(Err(error)) => Err(Refusal::misconfigured(format!("`{ADMIN_KEYS_SETTING}`: {error}"))),
    }
}

/// Who made a change, as the operator API records it: `key:` and the first 8 hex digits of the
/// key's SHA-256 (`printf %s "$KEY" | sha256sum | cut -c1-8` tells which key it was). The key
/// itself cannot be learned from it.
pub fn fingerprint(authorization: Option<&str>) -> Option<String> {
    let key = authorization.and_then(bearer)?;
    let digest = digest(key);
    Some(format!("key:{}", digest[..4].iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// The credential of an `Authorization: Bearer <credential>` header (scheme case-insensitive).
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, credential) = authorization.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "read-key-0123456789abcdef-xyz";
    const TWO: &str = "read-key-fedcba9876543210-xyz";

    #[test]
    fn several_keys_separated_by_spaces_or_commas() {
        let keys = ApiKeys::parse(&format!(" {ONE}, {TWO}\n")).unwrap();
        assert!(keys.accepts(ONE));
        assert!(keys.accepts(TWO));
        assert!(!keys.accepts("read-key-0123456789abcdef-xyZ"));
        assert!(!keys.accepts(&ONE[..ONE.len() - 1]));
        assert!(!keys.accepts(""));
    }

    #[test]
    fn a_list_without_usable_keys_is_refused_without_showing_them() {
        assert_eq!(ApiKeys::parse(" , ").unwrap_err(), ApiKeysError::Empty);
        let short = ApiKeys::parse(&format!("{ONE} hunter2")).unwrap_err();
        assert_eq!(short, ApiKeysError::TooShort { position: 2 });
        assert!(!short.to_string().contains("hunter2"));
    }

    #[test]
    fn the_header_decides_missing_or_invalid() {
        let keys = ApiKeys::parse(ONE).unwrap();
        let table = [
            (None, Err(Denied::Missing)),
            (Some(""), Err(Denied::Missing)),
            (Some("Bearer"), Err(Denied::Missing)),
            (Some("Bearer   "), Err(Denied::Missing)),
            (Some("Basic cmVhZDprZXk="), Err(Denied::Missing)),
            (Some(ONE), Err(Denied::Missing)),
            (Some("Bearer wrong-key-0123456789"), Err(Denied::Invalid)),
            (Some("Bearer read-key-0123456789abcdef-xyz "), Ok(())),
            (Some("bearer read-key-0123456789abcdef-xyz"), Ok(())),
        ];
        for (header, expected) in table {
            assert_eq!(keys.check(header), expected, "{header:?}");
        }
    }

    #[test]
    fn the_operator_api_is_off_without_keys_and_misconfigured_with_unusable_ones() {
        let refused = |setting| admin_keys(setting).err().map(|refusal| (refusal.status, refusal.code));
        assert_eq!(refused(None), Some((404, "admin_api_disabled")));
        assert_eq!(refused(Some(" , ")), Some((404, "admin_api_disabled")));
        let short = admin_keys(Some("tiny-key")).unwrap_err();
        assert_eq!((short.status, short.code), (500, "misconfigured"));
        assert!(short.message.contains(ADMIN_KEYS_SETTING) && !short.message.contains("tiny-key"));
        assert_eq!(refused(Some(ONE)), None);
    }

    #[test]
    fn a_fingerprint_names_the_key_without_showing_it() {
        let one = fingerprint(Some(&format!("Bearer {ONE}"))).unwrap();
        assert_eq!(one.len(), "key:".len() + 8);
        assert!(one.starts_with("key:") && !one.contains(&ONE[..8]));
        assert_ne!(Some(one), fingerprint(Some(&format!("Bearer {TWO}"))));
        assert_eq!(fingerprint(None), None);
    }

    #[test]
    fn a_scoped_key_reaches_only_the_connections_it_names() {
        let keys = ApiKeys::parse(&format!("{ONE}@loc-a+loc-b {TWO}")).unwrap();
        assert!(keys.scoped());
        let one = format!("Bearer {ONE}");
        let two = format!("Bearer {TWO}");
        assert_eq!(keys.check_for(Some(&one), "loc-a"), Ok(()));
        assert_eq!(keys.check_for(Some(&one), "loc-b"), Ok(()));
        assert_eq!(keys.check_for(Some(&one), "loc-c"), Err(Denied::NotAllowed));
        assert_eq!(keys.check_for(Some(&two), "loc-c"), Ok(()), "an unscoped key reaches every connection");
        assert_eq!(keys.check_for(Some("Bearer nobody-0123456789abcdef"), "loc-a"), Err(Denied::Invalid));
        assert_eq!(keys.check_for(None, "loc-a"), Err(Denied::Missing));
        assert_eq!(keys.check(Some(&one)), Ok(()), "any connection's key is a key");
        assert!(!keys.accepts(&format!("{ONE}@loc-a+loc-b")), "the scope is not part of the key");
        let refusal = Denied::NotAllowed.refusal();
        assert_eq!((refusal.status, refusal.code), (403, "connection_not_allowed"));
    }

    #[test]
    fn a_scope_must_name_valid_connections_and_the_key_must_still_be_long() {
        assert_eq!(
            ApiKeys::parse(&format!("{ONE}@loc/a")).unwrap_err(),
            ApiKeysError::BadScope { position: 1 }
        );
        assert_eq!(
            ApiKeys::parse(&format!("{TWO} {ONE}@")).unwrap_err(),
            ApiKeysError::BadScope { position: 2 }
        );
        assert_eq!(
            ApiKeys::parse(&format!("{ONE}@a++b")).unwrap_err(),
            ApiKeysError::BadScope { position: 1 }
        );
        assert_eq!(ApiKeys::parse("short@loc-a").unwrap_err(), ApiKeysError::TooShort { position: 1 });
        let admin = admin_keys(Some(&format!("{ONE}@loc-a"))).unwrap_err();
        assert_eq!((admin.status, admin.code), (500, "misconfigured"));
        assert!(!admin.message.contains(ONE));
    }

    #[test]
    fn refusals_are_401_with_a_code_and_never_echo_the_key() {
        let missing = Denied::Missing.refusal();
        assert_eq!((missing.status, missing.code), (401, "missing_api_key"));
        let invalid = Denied::Invalid.refusal();
        assert_eq!((invalid.status, invalid.code), (401, "invalid_api_key"));
        let debug = format!("{:?}", ApiKeys::parse(ONE).unwrap());
        assert!(!debug.contains(ONE), "{debug}");
    }
}
