//! Agencies (companies): the marketplace app installed agency-wide. Its company token, kept and
//! renewed by the shell's `Directory`, lists the locations the app is installed on
//! (`GET /oauth/installedLocations`), each of which becomes an `agency` connection whose Location
//! mints its own location token. This module is that listing as data (the request's URL and the
//! answer read into locations), the app id behind a client id, and the key the company token is
//! sealed under.

use serde_json::Value;

use crate::auth::token_endpoint::form_encode;
use crate::auth::token_record::{safe_location_id, TokenError};

pub use crate::contacts_api::API_VERSION;

/// Locations asked for per page of the listing.
pub const PAGE_SIZE: usize = 100;
/// Pages read at most by one listing (so one invocation stays within its subrequests).
pub const MAX_PAGES: usize = 5;

/// The marketplace app's id: GoHighLevel's client ids are `{appId}-{suffix}`, so the client id
/// up to its first `-` (the whole id when it has none).
pub fn app_id(client_id: &str) -> &str {
    client_id.split('-').next().unwrap_or(client_id)
}

/// What a company's token record is sealed under (the AAD of its envelope): it can never stand in
/// for a location's token, whose key is the location id (which has no `:`).
pub fn company_key(company_id: &str) -> String {
    format!("company:{company_id}")
}

/// One page of `GET {base}/oauth/installedLocations`: the locations the app is installed on.
pub fn installed_locations_url(base: &str, company_id: &str, app_id: &str, page: usize) -> String {
    let skip = (page * PAGE_SIZE).to_string();
    let limit = PAGE_SIZE.to_string();
    let query = form_encode(&[
        ("companyId", company_id),
        ("appId", app_id),
        ("isInstalled", "true"),
        ("skip", &skip),
        ("limit", &limit),
    ]);
    format!("{}/oauth/installedLocations?{query}", base.trim_end_matches('/'))
}

/// A location the app is installed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledLocation {
    pub id: String,
    pub name: Option<String>,
}

/// One page read: its locations, and whether another page may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub locations: Vec<InstalledLocation>,
    pub more: bool,
}

/// Reads one page's answer. A location whose id is unusable as a connection id is left out; one
/// the answer says is not installed too. 401 and 403: the company token is refused; 429 and 5xx:
/// try again later.
pub fn read_page(status: u16, body: &Value, page: usize) -> Result<Page, TokenError> {
    match status {
        200..=299 => {}
        401 | 403 => {
            return Err(TokenError::Refused(format!(
                "the installed locations listing refused the agency's token (HTTP {status})"
            )))
        }
        408 | 425 | 429 | 500..=599 => {
            return Err(TokenError::Unavailable(format!(
                "the installed locations listing answered HTTP {status}"
            )))
        }
        _ => {
            return Err(TokenError::Refused(format!(
                "the installed locations listing answered HTTP {status}"
            )))
        }
    }
    let listed = body.get("locations").and_then(Value::as_array).ok_or_else(|| {
        TokenError::Unavailable("the installed locations listing has no `locations`".into())
    })?;
    let locations: Vec<InstalledLocation> = listed
        .iter()
        .filter(|location| location.get("isInstalled").and_then(Value::as_bool) != Some(false))
        .filter_map(|location| {
            let id = location.get("_id").and_then(Value::as_str).and_then(safe_location_id)?;
            let name =
                location.get("name").and_then(Value::as_str).map(|name| name.chars().take(100).collect());
            Some(InstalledLocation { id: id.to_owned(), name })
        })
        .collect();
    let count = body.get("count").and_then(Value::as_u64).map(|count| count as usize);
    let seen = page * PAGE_SIZE + listed.len();
    let more = listed.len() == PAGE_SIZE && count.is_none_or(|count| seen < count);
    Ok(Page { locations, more })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_app_id_is_the_client_id_up_to_its_first_dash() {
        assert_eq!(app_id("6650f1a2b3c4d5e6f7a8b9c0-lx2k9q8z"), "6650f1a2b3c4d5e6f7a8b9c0");
        assert_eq!(app_id("client1"), "client1");
        assert_eq!(app_id("a-b-c"), "a");
    }

    #[test]
    fn the_listing_asks_for_installed_locations_page_by_page() {
        assert_eq!(
            installed_locations_url("http://sim/", "co 1", "app", 2),
            "http://sim/oauth/installedLocations?companyId=co+1&appId=app&isInstalled=true&skip=200&limit=100"
        );
        assert_eq!(company_key("co-1"), "company:co-1");
    }

    #[test]
    fn a_page_yields_its_installed_locations_with_usable_ids() {
        let body = json!({ "count": 4, "locations": [
            { "_id": "loc-a", "name": "A", "isInstalled": true },
            { "_id": "loc/b", "name": "bad id" },
            { "_id": "loc-c", "isInstalled": false },
            { "_id": "loc-d" },
        ]});
        let page = read_page(200, &body, 0).unwrap();
        assert_eq!(
            page.locations,
            vec![
                InstalledLocation { id: "loc-a".into(), name: Some("A".into()) },
                InstalledLocation { id: "loc-d".into(), name: None },
            ]
        );
        assert!(!page.more);
        let full: Vec<Value> = (0..PAGE_SIZE).map(|n| json!({ "_id": format!("l{n}") })).collect();
        assert!(read_page(200, &json!({ "locations": full, "count": 150 }), 0).unwrap().more);
        assert!(!read_page(200, &json!({ "locations": full, "count": 100 }), 0).unwrap().more);
    }

    #[test]
    fn refusals_and_outages_are_told_apart() {
        assert!(matches!(read_page(401, &Value::Null, 0), Err(TokenError::Refused(_))));
        assert!(matches!(read_page(503, &Value::Null, 0), Err(TokenError::Unavailable(_))));
        assert!(matches!(read_page(200, &json!({}), 0), Err(TokenError::Unavailable(_))));
    }
}
