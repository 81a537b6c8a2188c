//! What the console's mapping editor picks from, inside the location's Durable Object: the
//! location's custom fields (with each one's type and options, as kept by [`super::custom_fields`]
//! and read again with `?refresh=true`), workflows (`GET /workflows/`) and campaigns
//! (`GET /campaigns/`). A token without a list's scope gets 403 `missing_scope` naming it.

use serde_json::{json, Value};
use worker::{Response, Result};

use super::Writer;
use crate::config::Config;
use crate::contacts_api::ApiRequest;
use crate::refusal::Refusal;
use crate::shell::platform::respond;
use crate::sync::custom_fields::{ListError, CAMPAIGNS_SCOPE, WORKFLOWS_SCOPE};

/// `GET /admin/mapping/custom-fields[?refresh=true]`: `{read_at, customFields: [...]}`.
pub async fn custom_fields(writer: &Writer, config: &Config, refresh: bool) -> Result<Response> {
    let known = match writer.known_custom_fields() {
        Some(known) if !refresh => Ok(known),
        _ => writer.read_custom_fields(config).await,
    };
    match known {
        Ok(known) => respond::json(200, &known.to_json()),
        Err(error) => refused(&error),
    }
}

/// `GET /admin/mapping/workflows` or `/campaigns`: `{workflows | campaigns: [{id, name, status}]}`.
pub async fn list(writer: &Writer, config: &Config, what: &str) -> Result<Response> {
    let scope = if what == "workflows" { WORKFLOWS_SCOPE } else { CAMPAIGNS_SCOPE };
    let request =
        ApiRequest::get(format!("/{what}/")).with_query([("locationId", config.location_id.as_str())]);
    match writer.list(config, &request, scope).await {
        Ok(answer) => {
            let items: Vec<Value> = answer
                .get(what)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|item| json!({ "id": item.get("id"), "name": item.get("name"), "status": item.get("status") }))
                .collect();
            respond::json(200, &json!({ what: items }))
        }
        Err(error) => refused(&error),
    }
}

/// A list that could not be read: 403 `missing_scope` (with `scope`), 502 otherwise.
fn refused(error: &ListError) -> Result<Response> {
    let (refusal, scope) = match error {
        ListError::MissingScope { scope, .. } => {
            (Refusal::forbidden("missing_scope", error.describe()), Some(*scope))
        }
        ListError::Unavailable(_) => {
            (Refusal::bad_gateway("contacts_api_unavailable", error.describe()), None)
        }
        ListError::Refused(_) => (Refusal::bad_gateway("contacts_api_refused", error.describe()), None),
    };
    refusal.with("scope", scope).response()
}
