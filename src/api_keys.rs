//! API keys for the operator API: parsed from a secret, compared in constant time. A request is
//! authorised when its `Authorization: Bearer <key>` matches any configured key.

use subtle::ConstantTimeEq;

use crate::intake::Refusal;
use crate::secret::Secret;

/// The keys one route accepts (several may be active during a rotation).
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<Secret>);

impl ApiKeys {
    /// Keys separated by spaces, commas or newlines; an unset secret gives no keys (every call is
    /// refused).
    pub fn parse(list: Option<&str>) -> ApiKeys {
        let keys = list
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|key| !key.is_empty())
            .map(Secret::new)
            .collect();
        ApiKeys(keys)
    }

    /// Checks an `Authorization` header: 401 when it is missing, 403 when no key matches.
    pub fn authorize(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let presented = authorization
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| Refusal::new(401, "missing_api_key", "send `Authorization: Bearer <key>`"))?;
        let mut matched = subtle::Choice::from(0);
        for key in &self.0 {
            matched |= key.expose().as_bytes().ct_eq(presented.as_bytes());
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Refusal::new(403, "invalid_api_key", "the key is not valid for this route"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_opens_and_nothing_else_does() {
        let keys = ApiKeys::parse(Some("old-key, new-key"));
        assert!(keys.authorize(Some("Bearer old-key")).is_ok());
        assert!(keys.authorize(Some("Bearer new-key")).is_ok());
        let table = [
            (None, 401, "missing_api_key"),
            (Some("Bearer "), 401, "missing_api_key"),
            (Some("Basic b2xkLWtleQ=="), 401, "missing_api_key"),
            (Some("Bearer new-ke"), 403, "invalid_api_key"),
            (Some("Bearer new-key-2"), 403, "invalid_api_key"),
        ];
        for (header, status, code) in table {
            let refusal = keys.authorize(header).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (status, code), "{header:?}");
        }
    }

    #[test]
    fn no_configured_key_refuses_everyone() {
        let keys = ApiKeys::parse(None);
        assert_eq!(keys.authorize(Some("Bearer anything")).unwrap_err().status, 403);
    }
}
