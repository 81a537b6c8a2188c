//! The first check of every request, before any route sees it: the path has no `.` or `..`
//! segment (plain or percent-encoded), no backslash or encoded slash, and no empty segment (a
//! trailing slash aside), and no part of the URL (a path segment, consecutive segments, a query
//! name or value, or a word of one) carries an API key. The shell runs it on every request; a
//! route can then forward a path knowing it names what it says.

use crate::auth::api_keys::ApiKeys;
use crate::refusal::Refusal;

/// Query parameter names that carry a credential, whatever their value.
const CREDENTIAL_PARAMS: [&str; 6] = ["key", "api_key", "apikey", "token", "access_token", "authorization"];
/// Most path segments looked at together when looking for a key (a key may hold a `/`).
const MAX_JOINED_SEGMENTS: usize = 4;

/// Refuses a path that could climb out of where it points (400 `invalid_path`).
pub fn check_path(path: &str) -> Result<(), Refusal> {
    let rest = path.strip_prefix('/').ok_or_else(|| invalid_path("a path starts with `/`"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() && index != last {
            return Err(invalid_path("a path has no empty segment (`//`)"));
        }
        let decoded = percent_decoded(segment);
        if decoded == b"." || decoded == b".." {
            return Err(invalid_path("a path has no `.` or `..` segment, plain or percent-encoded"));
        }
        if decoded.iter().any(|byte| matches!(byte, b'/' | b'\\')) {
            return Err(invalid_path("a path segment holds no slash or backslash, plain or percent-encoded"));
        }
    }
    Ok(())
}

/// Refuses a URL that carries a key (400 `key_in_url`): a query parameter named like a
/// credential, or any path segment, run of up to [`MAX_JOINED_SEGMENTS`] segments, query name
/// or value, or whitespace-separated word of one, that is one of `keys`. URLs end up in logs,
/// histories and referrers; the answer never repeats what was found.
pub fn refuse_key_in_url(path: &str, query: Option<&str>, keys: &[&ApiKeys]) -> Result<(), Refusal> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let named = pairs.iter().any(|(name, _)| CREDENTIAL_PARAMS.contains(&name.to_ascii_lowercase().as_str()));
    let segments: Vec<String> = path
        .split('/')
        .map(|segment| String::from_utf8_lossy(&percent_decoded(segment)).into_owned())
        .collect();
    let mut candidates: Vec<String> = pairs.into_iter().flat_map(|(name, value)| [name, value]).collect();
    for start in 0..segments.len() {
        for end in start + 1..=segments.len().min(start + MAX_JOINED_SEGMENTS) {
            candidates.push(segments[start..end].join("/"));
        }
    }
    let carries_key = candidates.iter().any(|candidate| {
        let words = candidate.split(|c: char| c.is_whitespace() || c == ',' || c == ';');
        std::iter::once(candidate.as_str())
            .chain(words)
            .any(|word| keys.iter().any(|keys| keys.accepts(word)))
    });
    if named || carries_key {
        return Err(Refusal::bad_request(
            "key_in_url",
            "never put an API key in a URL: send it as `Authorization: Bearer <key>`",
        ));
    }
    Ok(())
}

/// `text` with its `%XX` escapes decoded (a stray `%` kept as it is).
fn percent_decoded(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(text).collect()
}

fn invalid_path(message: &str) -> Refusal {
    Refusal::bad_request("invalid_path", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "admin-key-0123456789abcdef-xyz";
    const SLASHED: &str = "read/key+0123456789abcdef/xyz=";

    #[test]
    fn dot_segments_slashes_backslashes_and_empty_segments_are_refused_however_spelt() {
        for path in [
            "/admin/../internal/accept",
            "/admin/./status",
            "/admin/%2e%2e/token",
            "/admin/%2E./token",
            "/admin/.%2e",
            "/admin/%2e",
            "/admin/events/..%2F..%2Fwebhook",
            "/admin/events/a%2fb",
            "/admin/events/a%5Cb",
            "/admin/events/a\\b",
            "/admin//status",
            "//admin",
            "admin/status",
            "",
        ] {
            let refusal = check_path(path).unwrap_err();
            assert_eq!((refusal.status, refusal.code), (400, "invalid_path"), "{path}");
        }
    }

    #[test]
    fn ordinary_paths_pass_a_trailing_slash_and_dots_inside_names_included() {
        for path in [
            "/",
            "/contacts/",
            "/webhooks/sightmill/",
            "/admin/events/msg.1",
            "/admin/events/..x",
            "/admin/connections/loc-a/secrets/whsec%3Aabcd1234",
            "/admin/events/%252e%252e",
            "/a/%zz",
        ] {
            assert!(check_path(path).is_ok(), "{path}");
        }
    }

    #[test]
    fn a_key_anywhere_in_the_url_is_refused() {
        let keys = ApiKeys::parse(&format!("{KEY} {SLASHED}")).unwrap();
        let refused = |path: &str, query: Option<&str>| {
            refuse_key_in_url(path, query, &[&keys]).err().map(|refusal| (refusal.status, refusal.code))
        };
        let key_in_url = Some((400, "key_in_url"));
        assert_eq!(refused(&format!("/admin/events/{KEY}"), None), key_in_url);
        assert_eq!(
            refused("/read/key+0123456789abcdef/xyz=/contacts", None),
            key_in_url,
            "a key with slashes"
        );
        assert_eq!(refused("/admin/status", Some(&format!("note=Bearer%20{KEY}"))), key_in_url);
        assert_eq!(refused("/admin/status", Some(&format!("note=Bearer+{KEY}"))), key_in_url);
        assert_eq!(refused("/admin/status", Some(&format!("{KEY}=1"))), key_in_url, "as a name");
        assert_eq!(refused("/admin/status", Some("Access_Token=x")), key_in_url, "named like a credential");
        assert_eq!(refused(&format!("/contacts/{}", KEY.replace('-', "%2D")), None), key_in_url, "encoded");
        assert_eq!(refused("/admin/events/msg_1", Some("state=parked&limit=5")), None);
        assert_eq!(refused(&format!("/admin/events/{}", &KEY[..KEY.len() - 1]), None), None);
        let refusal = refuse_key_in_url(&format!("/x/{KEY}"), None, &[&keys]).unwrap_err();
        assert!(!refusal.message.contains(KEY));
    }
}
