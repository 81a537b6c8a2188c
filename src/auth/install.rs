//! The OAuth install flow's pure half (`TOKEN_MODE=oauth`). Installs are the operator's: an
//! install starts with a single-use install link the operator minted ([`mint_invite`]; the
//! Directory spends it once) or, without one, only where the deployment's allow-list
//! (`OAUTH_INSTALL_ALLOW`) names the company or location that consents ([`allowed`]). The
//! consent URL that `GET /oauth/install` redirects to carries a signed, expiring `state` tied to
//! the browser by a cookie and recording what let the install start; `GET /oauth/callback` runs
//! these checks before it trades the code for tokens. The shell (`shell::routes::oauth`) adds
//! the clock, the randomness, the token endpoint and the Directory.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::envelope::KeyRing;
use crate::auth::token_endpoint::form_encode;
use crate::auth::tokens::InstallSettings;
use crate::refusal::Refusal;
use crate::secret::Secret;

/// How long an install may take from the redirect to the callback.
pub const STATE_TTL_SECS: i64 = 600;
/// How long an operator's install link can be used.
pub const INVITE_TTL_SECS: i64 = 7 * 24 * 3600;
/// The cookie that ties the callback to the browser that started the install.
pub const STATE_COOKIE: &str = "sightmill_sync_oauth";
/// Random bytes in each state's and each install link's nonce.
pub const NONCE_LEN: usize = 16;
/// The install route's query parameter that carries an install link's token.
pub const INVITE_PARAM: &str = "invite";
const STATE_PURPOSE: &str = "sightmill-sync oauth state v2";
const INVITE_PURPOSE: &str = "sightmill-sync install link v1";
const MAX_CODE_LEN: usize = 2048;
/// What a state records when no install link started the install.
const NO_INVITE: &str = "-";

/// What is being installed: the app on one location (sub-account), or agency-wide (its company
/// token then lists the locations it is installed on). The signed state records which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallKind {
    Location,
    Agency,
}

impl InstallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallKind::Location => "location",
            InstallKind::Agency => "agency",
        }
    }

    fn parse(text: &str) -> Option<InstallKind> {
        match text {
            "location" => Some(InstallKind::Location),
            "agency" => Some(InstallKind::Agency),
            _ => None,
        }
    }
}

/// What let an install start: an operator's install link (spent once, at the callback), or the
/// allow-list (checked at the callback against the ids the token names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    Invite(Invite),
    AllowList,
}

/// An install link's identity: its nonce (what the Directory spends) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub nonce: String,
    pub expires_at_secs: i64,
    pub kind: InstallKind,
}

/// A minted install link's token (the `invite` query value) and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedInvite {
    pub token: String,
    pub invite: Invite,
}

/// Mints an install link's token for an install of `kind`, valid for [`INVITE_TTL_SECS`].
pub fn mint_invite(keys: &KeyRing, kind: InstallKind, nonce: [u8; NONCE_LEN], now_secs: i64) -> MintedInvite {
    let invite = Invite { nonce: BASE64URL.encode(nonce), expires_at_secs: now_secs + INVITE_TTL_SECS, kind };
    let payload = format!("{}.{}.{}", invite.expires_at_secs, invite.nonce, kind.as_str());
    MintedInvite { token: signed(keys, INVITE_PURPOSE, &payload), invite }
}

/// Checks an install link's token: issued by this worker and unexpired (401
/// `invalid_install_link`). Whether it was used already is the Directory's to say.
pub fn check_invite(keys: &KeyRing, token: &str, now_secs: i64) -> Result<Invite, Refusal> {
    let invalid = |message: &str| Refusal::unauthorized("invalid_install_link", message);
    let payload = verified(keys, INVITE_PURPOSE, token)
        .ok_or_else(|| invalid("the install link was not issued by this worker; ask the operator for one"))?;
    let fields: Vec<&str> = payload.split('.').collect();
    let [expires, nonce, kind] = fields.as_slice() else {
        return Err(invalid("the install link is malformed"));
    };
    let expires_at_secs: i64 = expires.parse().map_err(|_| invalid("the install link is malformed"))?;
    let kind = InstallKind::parse(kind).ok_or_else(|| invalid("the install link is malformed"))?;
    if now_secs > expires_at_secs {
        return Err(invalid("the install link has expired; ask the operator for a new one"));
    }
    Ok(Invite { nonce: (*nonce).to_owned(), expires_at_secs, kind })
}

/// Whether the allow-list lets an install of `kind` proceed for the ids the token endpoint named:
/// an agency install needs its company listed; a location install its location or its company.
pub fn allowed(allow: &[String], kind: InstallKind, company: Option<&str>, location: Option<&str>) -> bool {
    let listed = |id: Option<&str>| id.is_some_and(|id| allow.iter().any(|allowed| allowed == id));
    match kind {
        InstallKind::Agency => listed(company),
        InstallKind::Location => listed(location) || listed(company),
    }
}

/// 403 `install_not_allowed`: the install was let start by the allow-list, which does not name
/// what consented. Nothing is created.
pub fn not_allowed(company: Option<&str>, location: Option<&str>) -> Refusal {
    let name = |id: Option<&str>| printable(id.unwrap_or("none"));
    Refusal::forbidden("install_not_allowed", format!(
            "neither the location `{}` nor the company `{}` is on the install allow-list `OAUTH_INSTALL_ALLOW`; nothing was connected: ask the operator for an install link",
            name(location),
            name(company)
        ),
    )
}

/// 403 `install_link_required`: no install link, and no allow-list to fall back on.
pub fn link_required() -> Refusal {
    Refusal::forbidden("install_link_required", "installs need an install link from the operator (POST /admin/installs) or the allow-list `OAUTH_INSTALL_ALLOW`",
    )
}

/// Where to send the browser, and the cookie to set on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallStart {
    pub redirect_url: String,
    pub set_cookie: String,
}

/// The install being started: which app, where its callback is, what it installs, and what let
/// it start.
#[derive(Debug, Clone)]
pub struct InstallRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub kind: InstallKind,
    pub permit: Permit,
}

/// Starts an install: a state valid for [`STATE_TTL_SECS`] (recording the install's kind and
/// permit) and the consent-page URL carrying it; an agency install asks for `user_type=Company`.
pub fn start_install(
    settings: &InstallSettings,
    request: InstallRequest<'_>,
    keys: &KeyRing,
    nonce: [u8; NONCE_LEN],
    now_secs: i64,
) -> InstallStart {
    let nonce = BASE64URL.encode(nonce);
    let expires = now_secs + STATE_TTL_SECS;
    let (invite, invite_expires) = match &request.permit {
        Permit::Invite(invite) => (invite.nonce.as_str(), invite.expires_at_secs),
        Permit::AllowList => (NO_INVITE, 0),
    };
    let payload = format!("{expires}.{nonce}.{}.{invite}.{invite_expires}", request.kind.as_str());
    let state = signed(keys, STATE_PURPOSE, &payload);
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

/// A callback that passed its checks: the code to trade, what the install was for, and what let
/// it start.
#[derive(Debug)]
pub struct Callback {
    pub code: Secret,
    pub kind: InstallKind,
    pub permit: Permit,
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
        return Err(Refusal::bad_request(
            "authorization_denied",
            format!(
                "the marketplace reported `{}` instead of a code; start again at /oauth/install",
                printable(error)
            ),
        ));
    }
    let state = verify_state(keys, query.state, now_secs)?;
    if cookie(cookie_header, STATE_COOKIE) != Some(state.nonce.as_str()) {
        return Err(invalid_state(
            "the install was started in another browser (or its cookie expired); start again at /oauth/install",
        ));
    }
    match query.code {
        Some(code) if !code.is_empty() && code.len() <= MAX_CODE_LEN => {
            Ok(Callback { code: Secret::new(code), kind: state.kind, permit: state.permit })
        }
        _ => Err(Refusal::bad_request("missing_code", "the callback carries no usable `code`")),
    }
}

/// What a verified state says.
struct State {
    nonce: String,
    kind: InstallKind,
    permit: Permit,
}

/// Verifies `{expires}.{nonce}.{kind}.{invite}.{invite_expires}.{signature}` under any listed key.
fn verify_state(keys: &KeyRing, state: Option<&str>, now_secs: i64) -> Result<State, Refusal> {
    let state =
        state.ok_or_else(|| invalid_state("the callback carries no `state`; start at /oauth/install"))?;
    let malformed = || invalid_state("the `state` is malformed");
    if state.split('.').count() != 6 {
        return Err(malformed());
    }
    let payload = verified(keys, STATE_PURPOSE, state)
        .ok_or_else(|| invalid_state("the `state` was not issued by this worker"))?;
    let fields: Vec<&str> = payload.split('.').collect();
    let [expires, nonce, kind, invite, invite_expires] = fields.as_slice() else {
        return Err(malformed());
    };
    let expires: i64 = expires.parse().map_err(|_| malformed())?;
    let kind = InstallKind::parse(kind).ok_or_else(malformed)?;
    if now_secs > expires {
        return Err(invalid_state("the install took too long; start again at /oauth/install"));
    }
    let permit = match *invite {
        NO_INVITE => Permit::AllowList,
        nonce => Permit::Invite(Invite {
            nonce: nonce.to_owned(),
            expires_at_secs: invite_expires.parse().map_err(|_| malformed())?,
            kind,
        }),
    };
    Ok(State { nonce: (*nonce).to_owned(), kind, permit })
}

/// `{payload}.{signature}`, signed for `purpose` with the newest key.
fn signed(keys: &KeyRing, purpose: &str, payload: &str) -> String {
    let signature = BASE64URL.encode(mac(&keys.derived_keys(purpose)[0], payload).finalize().into_bytes());
    format!("{payload}.{signature}")
}

/// The payload of `{payload}.{signature}` when any listed key signed it for `purpose`.
fn verified<'a>(keys: &KeyRing, purpose: &str, token: &'a str) -> Option<&'a str> {
    let (payload, signature) = token.rsplit_once('.')?;
    let signature = BASE64URL.decode(signature).ok()?;
    keys.derived_keys(purpose)
        .iter()
        .any(|key| mac(key, payload).verify_slice(&signature).is_ok())
        .then_some(payload)
}

fn mac(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(payload.as_bytes());
    mac
}

fn invalid_state(message: &str) -> Refusal {
    Refusal::unauthorized("invalid_state", message)
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
            allow: Vec::new(),
        }
    }

    fn request(kind: InstallKind) -> InstallRequest<'static> {
        InstallRequest {
            client_id: "client-1",
            redirect_uri: "https://sync.example/oauth/callback",
            kind,
            permit: Permit::AllowList,
        }
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
        let short = InstallRequest { client_id: "c", redirect_uri: "r", ..request(InstallKind::Location) };
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
    fn an_install_link_is_this_workers_unexpired_and_its_permit_survives_the_consent() {
        let minted = mint_invite(&ring(), InstallKind::Agency, [7; NONCE_LEN], NOW);
        assert_eq!(minted.invite.expires_at_secs, NOW + INVITE_TTL_SECS);
        let checked = check_invite(&ring(), &minted.token, NOW + INVITE_TTL_SECS).unwrap();
        assert_eq!(checked, minted.invite);
        let other_ring = keys("k1:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
        let longer = minted.token.replacen(
            &checked.expires_at_secs.to_string(),
            &(NOW + 10 * INVITE_TTL_SECS).to_string(),
            1,
        );
        let as_state = start_as(&ring(), InstallKind::Agency).redirect_url;
        let state_token = as_state.split("state=").nth(1).unwrap().split('&').next().unwrap();
        for (token, now, words) in [
            (minted.token.as_str(), NOW + INVITE_TTL_SECS + 1, "expired"),
            (longer.as_str(), NOW, "not issued"),
            ("garbage", NOW, "not issued"),
            (state_token, NOW, "not issued"),
        ] {
            let refused = check_invite(&ring(), token, now).unwrap_err();
            assert_eq!((refused.status, refused.code), (401, "invalid_install_link"), "{token}");
            assert!(refused.message.contains(words), "{}", refused.message);
        }
        assert!(check_invite(&other_ring, &minted.token, NOW).is_err());
        let request =
            InstallRequest { permit: Permit::Invite(checked.clone()), ..request(InstallKind::Agency) };
        let start = start_install(&settings("https://m.example/c"), request, &ring(), [9; NONCE_LEN], NOW);
        let (state, cookie) = state_and_cookie(&start);
        let state = state.split('&').next().unwrap();
        let callback = check_callback(&ring(), callback(state, Some("c")), Some(&cookie), NOW).unwrap();
        assert_eq!((callback.kind, callback.permit), (InstallKind::Agency, Permit::Invite(checked)));
    }

    #[test]
    fn the_allow_list_names_the_company_or_the_location() {
        let allow = vec!["comp-1".to_owned(), "loc-9".to_owned()];
        let location = InstallKind::Location;
        assert!(allowed(&allow, location, Some("comp-1"), Some("loc-1")), "its company is listed");
        assert!(allowed(&allow, location, Some("comp-2"), Some("loc-9")), "it is listed");
        assert!(!allowed(&allow, location, Some("comp-2"), Some("loc-1")));
        assert!(!allowed(&allow, location, None, None));
        assert!(allowed(&allow, InstallKind::Agency, Some("comp-1"), None));
        assert!(
            !allowed(&allow, InstallKind::Agency, Some("comp-2"), Some("loc-9")),
            "an agency needs its company"
        );
        assert!(!allowed(&[], location, Some("comp-1"), Some("loc-1")));
        let refusal = not_allowed(Some("comp-2"), Some("<loc>"));
        assert_eq!((refusal.status, refusal.code), (403, "install_not_allowed"));
        assert!(refusal.message.contains("OAUTH_INSTALL_ALLOW") && !refusal.message.contains('<'));
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
