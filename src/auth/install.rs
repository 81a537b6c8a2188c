//! The OAuth install flow's pure half (`TOKEN_MODE=oauth`): the marketplace consent URL that
//! `GET /oauth/install` redirects to, with a signed, expiring `state` tied to the browser by a
//! cookie, and the checks `GET /oauth/callback` runs before it trades the code for tokens. The
//! shell (`edge::oauth`) adds the clock, the randomness, the token endpoint and KV.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::envelope::KeyRing;
use crate::auth::token_endpoint::form_encode;
use crate::auth::tokens::InstallSettings;
use crate::intake::Refusal;
use crate::secret::Secret;

/// How long an install may take from the redirect to the callback.
pub const STATE_TTL_SECS: i64 = 600;
/// The cookie that ties the callback to the browser that started the install.
pub const STATE_COOKIE: &str = "sightmill_sync_oauth";
/// Random bytes in each state's nonce.
pub const NONCE_LEN: usize = 16;
const STATE_PURPOSE: &str = "sightmill-sync oauth state v1";
const MAX_CODE_LEN: usize = 2048;

/// What is being installed: the app on one location (sub-account), or agency-wide (its company
/// token then lists the locations it is installed on). The signed state records which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallKind {
    Location,
    Agency,
}

/// The state's mark of an agency install.
const AGENCY_MARK: &str = "agency";

/// Where to send the browser, and the cookie to set on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallStart {
    pub redirect_url: String,
    pub set_cookie: String,
}

/// The install being started: which app, where its callback is, and what it installs.
#[derive(Debug, Clone, Copy)]
pub struct InstallRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub kind: InstallKind,
}

/// Starts an install: a state valid for [`STATE_TTL_SECS`] (recording the install's kind) and the
/// consent-page URL carrying it; an agency install asks for `user_type=Company`.
pub fn start_install(
    settings: &InstallSettings,
    request: InstallRequest<'_>,
    keys: &KeyRing,
    nonce: [u8; NONCE_LEN],
    now_secs: i64,
) -> InstallStart {
    let nonce = BASE64URL.encode(nonce);
    let expires = now_secs + STATE_TTL_SECS;
    let payload = match request.kind {
        InstallKind::Location => format!("{expires}.{nonce}"),
        InstallKind::Agency => format!("{expires}.{nonce}.{AGENCY_MARK}"),
    };
    let signature =
        BASE64URL.encode(state_mac(&keys.derived_keys(STATE_PURPOSE)[0], &payload).finalize().into_bytes());
    let state = format!("{payload}.{signature}");
    let mut fields = vec![
        ("response_type", "code"),
        ("redirect_uri", request.redirect_uri),
        ("client_id", request.client_id),
        ("scope", &settings.scopes),
        ("state", &state),
    ];
    if request.kind == InstallKind::Agency {
        fields.push(("user_type", "Company"));
    }
    let query = form_encode(&fields);
    let separator = if settings.install_url.contains('?') { '&' } else { '?' };
    InstallStart {
        redirect_url: format!("{}{separator}{query}", settings.install_url),
        set_cookie: format!(
            "{STATE_COOKIE}={nonce}; Path=/oauth/callback; Max-Age={STATE_TTL_SECS}; HttpOnly; Secure; SameSite=Lax"
        ),
    }
}

/// The `Set-Cookie` value that removes the state cookie once the callback has used it.
pub fn clear_cookie() -> String {
    format!("{STATE_COOKIE}=; Path=/oauth/callback; Max-Age=0; HttpOnly; Secure; SameSite=Lax")
}

/// The callback's query parameters, as the shell found them.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallbackQuery<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// A callback that passed its checks: the code to trade, and what the install was for.
#[derive(Debug)]
pub struct Callback {
    pub code: Secret,
    pub kind: InstallKind,
}

/// Checks a callback: consent given, state signed by this worker, unexpired and started in this
/// browser (`cookie_header`), code present. Returns the code to trade for tokens.
pub fn check_callback(
    keys: &KeyRing,
    query: CallbackQuery<'_>,
    cookie_header: Option<&str>,
    now_secs: i64,
) -> Result<Callback, Refusal> {
    if let Some(error) = query.error {
        return Err(Refusal::new(
            400,
            "authorization_denied",
            format!(
                "the marketplace reported `{}` instead of a code; start again at /oauth/install",
                printable(error)
            ),
        ));
    }
    let (nonce, kind) = verify_state(keys, query.state, now_secs)?;
    if cookie(cookie_header, STATE_COOKIE) != Some(nonce) {
        return Err(invalid_state(
            "the install was started in another browser (or its cookie expired); start again at /oauth/install",
        ));
    }
    match query.code {
        Some(code) if !code.is_empty() && code.len() <= MAX_CODE_LEN => {
            Ok(Callback { code: Secret::new(code), kind })
        }
        _ => Err(Refusal::new(400, "missing_code", "the callback carries no usable `code`")),
    }
}

/// Verifies `{expires}.{nonce}[.agency].{signature}` under any listed key; returns the nonce and
/// the install's kind.
fn verify_state<'a>(
    keys: &KeyRing,
    state: Option<&'a str>,
    now_secs: i64,
) -> Result<(&'a str, InstallKind), Refusal> {
    let state =
        state.ok_or_else(|| invalid_state("the callback carries no `state`; start at /oauth/install"))?;
    let malformed = || invalid_state("the `state` is malformed");
    let (payload, signature) = state.rsplit_once('.').ok_or_else(malformed)?;
    let (expires, nonce) = payload.split_once('.').ok_or_else(malformed)?;
    let (nonce, kind) = match nonce.split_once('.') {
        None => (nonce, InstallKind::Location),
        Some((nonce, AGENCY_MARK)) => (nonce, InstallKind::Agency),
        Some(_) => return Err(malformed()),
    };
    let expires: i64 = expires.parse().map_err(|_| malformed())?;
    let signature = BASE64URL.decode(signature).map_err(|_| malformed())?;
    let signed = keys
        .derived_keys(STATE_PURPOSE)
        .iter()
        .any(|key| state_mac(key, payload).verify_slice(&signature).is_ok());
    if !signed {
        return Err(invalid_state("the `state` was not issued by this worker"));
    }
    if now_secs > expires {
        return Err(invalid_state("the install took too long; start again at /oauth/install"));
    }
    Ok((nonce, kind))
}

fn state_mac(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(payload.as_bytes());
    mac
}

fn invalid_state(message: &str) -> Refusal {
    Refusal::new(401, "invalid_state", message)
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `scheme://host[:port]` of an absolute URL (the whole text when it has no path).
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find(['/', '?', '#']).map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The first value of query parameter `name` in `url`, form-decoded (`+` a space, `%XX` a byte,
/// a stray `%` kept). The one way every route reads a query parameter.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split('#').next()?.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// A short, harmless rendering of text the caller sent.
fn printable(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn keys(text: &str) -> KeyRing {
        KeyRing::parse(text).unwrap()
    }

    fn ring() -> KeyRing {
        keys("k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
    }

    fn settings(install_url: &str) -> InstallSettings {
        InstallSettings {
            install_url: install_url.into(),
            redirect_uri: None,
            scopes: "contacts.readonly contacts.write".into(),
        }
    }

    fn request(kind: InstallKind) -> InstallRequest<'static> {
        InstallRequest { client_id: "client-1", redirect_uri: "https://sync.example/oauth/callback", kind }
    }

    fn start_as(keys: &KeyRing, kind: InstallKind) -> InstallStart {
        start_install(
            &settings("https://marketplace.example/oauth/chooselocation"),
            request(kind),
            keys,
            [9; NONCE_LEN],
            NOW,
        )
    }

    fn start(keys: &KeyRing) -> InstallStart {
        start_as(keys, InstallKind::Location)
    }

    /// The state from a redirect URL, and the browser's cookie header.
    fn state_and_cookie(start: &InstallStart) -> (String, String) {
        let state = start.redirect_url.split("state=").nth(1).unwrap().to_owned();
        let cookie = start.set_cookie.split(';').next().unwrap().to_owned();
        (state, cookie)
    }

    fn callback<'a>(state: &'a str, code: Option<&'a str>) -> CallbackQuery<'a> {
        CallbackQuery { code, state: Some(state), error: None }
    }

    #[test]
    fn the_install_redirect_carries_the_app_scopes_and_a_state() {
        let start = start(&ring());
        let nonce = BASE64URL.encode([9; NONCE_LEN]);
        assert!(start.redirect_url.starts_with(
            "https://marketplace.example/oauth/chooselocation?response_type=code&redirect_uri=https%3A%2F%2Fsync.example%2Foauth%2Fcallback&client_id=client-1&scope=contacts.readonly+contacts.write&state="
        ), "{}", start.redirect_url);
        let (state, _) = state_and_cookie(&start);
        assert!(state.starts_with(&format!("{}.{nonce}.", NOW + STATE_TTL_SECS)));
        assert_eq!(
            start.set_cookie,
            format!(
                "{STATE_COOKIE}={nonce}; Path=/oauth/callback; Max-Age=600; HttpOnly; Secure; SameSite=Lax"
            )
        );
        let short = InstallRequest { client_id: "c", redirect_uri: "r", kind: InstallKind::Location };
        let with_query =
            start_install(&settings("https://m.example/c?x=1"), short, &ring(), [0; NONCE_LEN], NOW);
        assert!(with_query.redirect_url.starts_with("https://m.example/c?x=1&response_type=code"));
    }

    #[test]
    fn a_callback_from_the_same_browser_in_time_yields_the_code() {
        let (state, cookie) = state_and_cookie(&start(&ring()));
        let header = format!("other=1; {cookie}");
        for now in [NOW, NOW + STATE_TTL_SECS] {
            let checked =
                check_callback(&ring(), callback(&state, Some("code-1")), Some(&header), now).unwrap();
            assert_eq!((checked.code.expose(), checked.kind), ("code-1", InstallKind::Location));
        }
    }

    #[test]
    fn an_agency_install_asks_for_a_company_and_its_state_says_so() {
        let start = start_as(&ring(), InstallKind::Agency);
        assert!(start.redirect_url.ends_with("&user_type=Company"), "{}", start.redirect_url);
        let state = start.redirect_url.split("state=").nth(1).unwrap().split('&').next().unwrap();
        let state = state.replace("%2E", ".");
        let (_, cookie) = state_and_cookie(&start);
        let checked = check_callback(&ring(), callback(&state, Some("c")), Some(&cookie), NOW).unwrap();
        assert_eq!(checked.kind, InstallKind::Agency);
        let forged = state.replacen(".agency.", ".other.", 1);
        let refused = check_callback(&ring(), callback(&forged, Some("c")), Some(&cookie), NOW).unwrap_err();
        assert_eq!(refused.code, "invalid_state");
    }

    #[test]
    fn a_state_signed_before_a_key_rotation_still_verifies() {
        let (state, cookie) = state_and_cookie(&start(&ring()));
        let rotated = keys(
            "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI= k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        );
        assert!(check_callback(&rotated, callback(&state, Some("c")), Some(&cookie), NOW).is_ok());
    }

    /// A callback, the browser's cookie header, the time, and the expected status, code and words.
    type Case<'a> = (CallbackQuery<'a>, Option<&'a str>, i64, u16, &'a str, &'a str);

    #[test]
    fn forged_expired_foreign_and_incomplete_callbacks_are_refused() {
        let (state, cookie) = state_and_cookie(&start(&ring()));
        let other_ring = keys("k1:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
        let (foreign_state, _) = state_and_cookie(&start(&other_ring));
        let later_expiry =
            state.replacen(&(NOW + STATE_TTL_SECS).to_string(), &(NOW + 99_999).to_string(), 1);
        let denied = CallbackQuery { error: Some("access_denied\n<script>"), ..callback(&state, Some("c")) };
        let cases: Vec<Case> = vec![
            (denied, Some(&cookie), NOW, 400, "authorization_denied", "`access_deniedscript`"),
            (
                CallbackQuery { state: None, ..callback("", Some("c")) },
                Some(&cookie),
                NOW,
                401,
                "invalid_state",
                "no `state`",
            ),
            (callback("garbage", Some("c")), Some(&cookie), NOW, 401, "invalid_state", "malformed"),
            (callback("x.y.!!", Some("c")), Some(&cookie), NOW, 401, "invalid_state", "malformed"),
            (
                callback(&foreign_state, Some("c")),
                Some(&cookie),
                NOW,
                401,
                "invalid_state",
                "not issued by this worker",
            ),
            (
                callback(&later_expiry, Some("c")),
                Some(&cookie),
                NOW,
                401,
                "invalid_state",
                "not issued by this worker",
            ),
            (
                callback(&state, Some("c")),
                Some(&cookie),
                NOW + STATE_TTL_SECS + 1,
                401,
                "invalid_state",
                "too long",
            ),
            (callback(&state, Some("c")), None, NOW, 401, "invalid_state", "another browser"),
            (
                callback(&state, Some("c")),
                Some("sightmill_sync_oauth=AAAA"),
                NOW,
                401,
                "invalid_state",
                "another browser",
            ),
            (callback(&state, None), Some(&cookie), NOW, 400, "missing_code", "no usable `code`"),
            (callback(&state, Some("")), Some(&cookie), NOW, 400, "missing_code", "no usable `code`"),
        ];
        for (query, cookie, now, status, code, message) in cases {
            let refusal = check_callback(&ring(), query, cookie, now).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (status, code), "{query:?}");
            assert!(refusal.message.contains(message), "{}", refusal.message);
        }
    }

    #[test]
    fn the_cleared_cookie_expires_at_once() {
        assert!(clear_cookie().starts_with("sightmill_sync_oauth=; Path=/oauth/callback; Max-Age=0"));
    }

    #[test]
    fn urls_yield_their_origin_and_decoded_query_parameters() {
        let url = "https://sync.example:8443/oauth/callback?code=a%2Fb+c&state=1.x.y&code=second#frag";
        assert_eq!(origin_of(url), "https://sync.example:8443");
        assert_eq!(origin_of("http://worker.test?x"), "http://worker.test");
        assert_eq!(query_param(url, "code").as_deref(), Some("a/b c"));
        assert_eq!(query_param(url, "state").as_deref(), Some("1.x.y"));
        assert_eq!(query_param(url, "error"), None);
        assert_eq!(query_param("http://w/?flag&bad=%zz%4", "flag").as_deref(), Some(""));
        assert_eq!(query_param("http://w/?bad=%zz%4", "bad").as_deref(), Some("%zz%4"));
        assert_eq!(query_param("http://w/?x=%C3%A9%FF", "x").as_deref(), Some("é\u{FFFD}"));
        assert_eq!(query_param("http://w/#?code=1", "code"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = Some("a=1; sightmill_sync_oauth_x=2; sightmill_sync_oauth=3");
        assert_eq!(cookie(header, STATE_COOKIE), Some("3"));
        assert_eq!(cookie(Some("novalue; a=1"), "novalue"), None);
        assert_eq!(cookie(None, "a"), None);
    }
}
