//! The OAuth token endpoint (`POST {OAUTH_BASE}/oauth/token`) as data: the form-encoded request
//! for each grant, and the interpretation of its answer into a [`TokenRecord`] or a
//! [`TokenError`]. [`crate::auth::tokens`] decides which grant to send; the shell only sends it.

use serde_json::Value;

use crate::auth::token_record::{TokenError, TokenRecord};
use crate::secret::Secret;

/// The app's credentials at the token endpoint.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: Secret,
    /// `{OAUTH_BASE}/oauth/token`.
    pub token_url: String,
}

/// Whom a token acts for: one location (sub-account), or the agency (company), whose token
/// mints location tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    Location,
    Company,
}

impl UserType {
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Location => "Location",
            UserType::Company => "Company",
        }
    }
}
/// Longest lifetime believed, so that a wild `expires_in` cannot make a token live for ever.
const MAX_LIFETIME_SECS: u64 = 366 * 24 * 3600;
/// Longest piece of the endpoint's own error text kept in a message.
const MAX_DETAIL_CHARS: usize = 200;

/// What the worker trades for an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    /// The code the marketplace handed to the install callback.
    AuthorizationCode {
        code: Secret,
        redirect_uri: String,
    },
    /// The stored refresh token; a successful refresh spends it.
    RefreshToken(Secret),
}

impl Grant {
    /// Its `grant_type`.
    pub fn name(&self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode { .. } => "authorization_code",
            Grant::RefreshToken(_) => "refresh_token",
        }
    }

    fn secret(&self) -> Option<&Secret> {
        match self {
            Grant::ClientCredentials => None,
            Grant::AuthorizationCode { code, .. } => Some(code),
            Grant::RefreshToken(token) => Some(token),
        }
    }
}

/// One POST to the token endpoint. The form carries the client secret, so it is a [`Secret`].
#[derive(Debug)]
pub struct TokenRequest {
    pub url: String,
    /// `application/x-www-form-urlencoded` body.
    pub form: Secret,
}

/// Builds the request for `grant`, for a location's token.
pub fn token_request(client: &OAuthClient, grant: &Grant) -> TokenRequest {
    token_request_as(client, grant, UserType::Location)
}

/// Builds the request for `grant`, for a token acting as `user_type`.
pub fn token_request_as(client: &OAuthClient, grant: &Grant, user_type: UserType) -> TokenRequest {
    let mut fields: Vec<(&str, &str)> = vec![
        ("client_id", &client.client_id),
        ("client_secret", client.client_secret.expose()),
        ("grant_type", grant.name()),
        ("user_type", user_type.as_str()),
    ];
    match grant {
        Grant::ClientCredentials => {}
        Grant::AuthorizationCode { code, redirect_uri } => {
            fields.push(("code", code.expose()));
            fields.push(("redirect_uri", redirect_uri));
        }
        Grant::RefreshToken(token) => fields.push(("refresh_token", token.expose())),
    }
    TokenRequest { url: client.token_url.clone(), form: Secret::new(form_encode(&fields)) }
}

/// `application/x-www-form-urlencoded` (also right for a URL query): unreserved characters kept,
/// spaces as `+`, everything else percent-encoded.
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The endpoint's answer as the shell received it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenAnswer {
    pub status: u16,
    /// The parsed JSON body, or `Null`.
    pub body: Value,
}

/// Interprets the answer to `grant`, sent at `sent_at_ms` by `client`.
pub fn interpret(
    answer: &TokenAnswer,
    client: &OAuthClient,
    grant: &Grant,
    sent_at_ms: i64,
) -> Result<TokenRecord, TokenError> {
    match answer.status {
        200..=299 => {
            let needs_refresh = *grant != Grant::ClientCredentials;
            issued(&answer.body, &format!("{} grant", grant.name()), needs_refresh, sent_at_ms)
        }
        status @ (408 | 425 | 429 | 500..=599) => Err(TokenError::Unavailable(format!(
            "the token endpoint answered HTTP {status} to the {} grant",
            grant.name()
        ))),
        status => {
            let secrets = [Some(&client.client_secret), grant.secret()];
            let detail = scrub(&endpoint_error(&answer.body), &secrets);
            Err(TokenError::Refused(format!(
                "the token endpoint refused the {} grant (HTTP {status}: {detail})",
                grant.name()
            )))
        }
    }
}

/// An issued token read into a record; `asked` names what was asked (the grant) in messages.
fn issued(
    body: &Value,
    asked: &str,
    needs_refresh: bool,
    sent_at_ms: i64,
) -> Result<TokenRecord, TokenError> {
    let text = |name: &str| {
        body.get(name).and_then(Value::as_str).filter(|value| !value.is_empty()).map(str::to_owned)
    };
    let missing = |what: &str| {
        TokenError::Unavailable(format!("the token endpoint's answer to the {asked} has no usable {what}"))
    };
    let access_token = text("access_token").ok_or_else(|| missing("access_token"))?;
    let lifetime_secs = lifetime_secs(body.get("expires_in")).ok_or_else(|| missing("expires_in"))?;
    let refresh_token = text("refresh_token").map(Secret::new);
    if refresh_token.is_none() && needs_refresh {
        return Err(missing("refresh_token"));
    }
    Ok(TokenRecord {
        access_token: Secret::new(access_token),
        refresh_token,
        obtained_at_ms: sent_at_ms,
        expires_at_ms: sent_at_ms.saturating_add(lifetime_secs as i64 * 1000),
        location_id: text("locationId"),
        company_id: text("companyId"),
        scope: text("scope"),
    })
}

/// `expires_in` in whole seconds: a positive number (or numeric string), capped.
fn lifetime_secs(value: Option<&Value>) -> Option<u64> {
    let secs = match value? {
        Value::Number(number) => {
            number.as_u64().or_else(|| number.as_f64().filter(|secs| *secs >= 1.0).map(|secs| secs as u64))?
        }
        Value::String(text) => text.trim().parse().ok()?,
        _ => return None,
    };
    (secs > 0).then(|| secs.min(MAX_LIFETIME_SECS))
}

/// `error: error_description` (OAuth style) or `message` (the API's style), shortened.
fn endpoint_error(body: &Value) -> String {
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let message = match (field("error"), field("error_description"), field("message")) {
        (Some(error), Some(description), _) => format!("{error}: {description}"),
        (Some(error), None, Some(message)) => format!("{error}: {message}"),
        (None, Some(text), _) | (None, None, Some(text)) | (Some(text), None, None) => text.to_owned(),
        (None, None, None) => "no error given".to_owned(),
    };
    message.chars().filter(|c| !c.is_control()).take(MAX_DETAIL_CHARS).collect()
}

/// Replaces any of `secrets` that an error text echoes.
fn scrub(text: &str, secrets: &[Option<&Secret>]) -> String {
    secrets
        .iter()
        .flatten()
        .filter(|secret| !secret.expose().is_empty())
        .fold(text.to_owned(), |text, secret| text.replace(secret.expose(), "[redacted]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client() -> OAuthClient {
        OAuthClient {
            client_id: "client 1".into(),
            client_secret: Secret::new("s3cret&=+"),
            token_url: "http://sim/oauth/token".into(),
        }
    }

    fn answer(status: u16, body: Value) -> TokenAnswer {
        TokenAnswer { status, body }
    }

    #[test]
    fn each_grant_is_a_form_with_the_client_and_its_own_fields() {
        let code = Grant::AuthorizationCode {
            code: Secret::new("code/1"),
            redirect_uri: "https://sync.example/oauth/callback".into(),
        };
        let table = [
            (
                Grant::ClientCredentials,
                "client_id=client+1&client_secret=s3cret%26%3D%2B&grant_type=client_credentials&user_type=Location",
            ),
            (
                code,
                "client_id=client+1&client_secret=s3cret%26%3D%2B&grant_type=authorization_code&user_type=Location&code=code%2F1&redirect_uri=https%3A%2F%2Fsync.example%2Foauth%2Fcallback",
            ),
            (
                Grant::RefreshToken(Secret::new("rt-1")),
                "client_id=client+1&client_secret=s3cret%26%3D%2B&grant_type=refresh_token&user_type=Location&refresh_token=rt-1",
            ),
        ];
        for (grant, form) in table {
            let request = token_request(&client(), &grant);
            assert_eq!(request.url, "http://sim/oauth/token");
            assert_eq!(request.form.expose(), form);
            assert!(!format!("{request:?}").contains("s3cret"));
        }
    }

    #[test]
    fn an_issued_token_becomes_a_record_expiring_from_when_it_was_asked() {
        let body = json!({
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 86399,
            "refresh_token": "rt-1", "scope": "contacts.write", "userType": "Location",
            "locationId": "loc-1", "companyId": "co-1"
        });
        let grant = Grant::RefreshToken(Secret::new("rt-0"));
        let record = interpret(&answer(200, body), &client(), &grant, 1_000).unwrap();
        assert_eq!(record.access_token.expose(), "at-1");
        assert_eq!(record.refresh_token, Some(Secret::new("rt-1")));
        assert_eq!(record.obtained_at_ms, 1_000);
        assert_eq!(record.expires_at_ms, 1_000 + 86_399_000);
        assert_eq!(record.location_id.as_deref(), Some("loc-1"));
        assert_eq!(record.company_id.as_deref(), Some("co-1"));
        assert_eq!(record.scope.as_deref(), Some("contacts.write"));
    }

    #[test]
    fn company_grants_say_so() {
        let grant = Grant::RefreshToken(Secret::new("rt-co"));
        let form = token_request_as(&client(), &grant, UserType::Company).form;
        assert!(form.expose().contains("&user_type=Company&refresh_token=rt-co"), "{}", form.expose());
    }

    #[test]
    fn client_credentials_need_no_refresh_token() {
        let body = json!({"access_token": "at", "expires_in": "3600"});
        let fractional = json!({"access_token": "at", "expires_in": 59.9});
        let record = interpret(&answer(200, fractional), &client(), &Grant::ClientCredentials, 0);
        assert_eq!(record.unwrap().expires_at_ms, 59_000, "fractions are cut, to renew early");
        let record = interpret(&answer(200, body), &client(), &Grant::ClientCredentials, 0).unwrap();
        assert_eq!(record.refresh_token, None);
        assert_eq!(record.expires_at_ms, 3_600_000);
    }

    #[test]
    fn unusable_success_answers_are_temporary_failures() {
        let refresh = Grant::RefreshToken(Secret::new("rt"));
        let table = [
            (json!({"expires_in": 10, "refresh_token": "r"}), "access_token"),
            (json!({"access_token": "", "expires_in": 10}), "access_token"),
            (json!({"access_token": "a", "refresh_token": "r"}), "expires_in"),
            (json!({"access_token": "a", "expires_in": 0, "refresh_token": "r"}), "expires_in"),
            (json!({"access_token": "a", "expires_in": -5, "refresh_token": "r"}), "expires_in"),
            (json!({"access_token": "a", "expires_in": true, "refresh_token": "r"}), "expires_in"),
            (json!({"access_token": "a", "expires_in": 10}), "refresh_token"),
            (Value::Null, "access_token"),
        ];
        for (body, field) in table {
            match interpret(&answer(200, body.clone()), &client(), &refresh, 0) {
                Err(TokenError::Unavailable(message)) => {
                    assert!(message.contains(field), "{body}: {message}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn lifetimes_are_capped() {
        let body = json!({"access_token": "a", "expires_in": 1e300});
        let record = interpret(&answer(200, body), &client(), &Grant::ClientCredentials, 0).unwrap();
        assert_eq!(record.expires_at_ms, MAX_LIFETIME_SECS as i64 * 1000);
    }

    #[test]
    fn server_trouble_is_temporary_and_refusals_are_for_good() {
        let grant = Grant::RefreshToken(Secret::new("rt-spent"));
        for status in [408, 429, 500, 502, 503] {
            assert!(
                matches!(
                    interpret(&answer(status, Value::Null), &client(), &grant, 0),
                    Err(TokenError::Unavailable(m)) if m.contains(&status.to_string())
                ),
                "{status}"
            );
        }
        let table = [
            (
                answer(
                    400,
                    json!({"error": "invalid_grant", "error_description": "refresh token rt-spent was used"}),
                ),
                "refresh_token grant (HTTP 400: invalid_grant: refresh token [redacted] was used)",
            ),
            (
                answer(401, json!({"error": "invalid_client", "message": "bad secret s3cret&=+"})),
                "(HTTP 401: invalid_client: bad secret [redacted])",
            ),
            (
                answer(400, json!({"statusCode": 400, "message": "Location is not active"})),
                "(HTTP 400: Location is not active)",
            ),
            (answer(403, Value::Null), "(HTTP 403: no error given)"),
        ];
        for (input, expected) in table {
            match interpret(&input, &client(), &grant, 0) {
                Err(TokenError::Refused(message)) => {
                    assert!(message.ends_with(expected), "{message}")
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_texts_are_shortened_and_cleaned() {
        let long = "x".repeat(1000);
        let body = json!({"error": "invalid_grant", "error_description": format!("a\nb{long}")});
        let Err(TokenError::Refused(message)) =
            interpret(&answer(400, body), &client(), &Grant::ClientCredentials, 0)
        else {
            panic!("expected a refusal")
        };
        assert!(!message.contains('\n'));
        assert!(message.len() < 300, "{}", message.len());
    }
}
