//! The operator API's mapping routes, inside the location's Durable Object: what the mapping
//! form may choose from, validation with the worker's own parser, the live mapping (saved in
//! `meta`, with who saved it and when; removing it goes back to the deployed `CONTACT_MAPPING`),
//! a dry run of a sample event with a mapping being edited, and what the editor picks from (the
//! location's custom fields, workflows and campaigns: [`super::pickers`]).

use serde_json::{json, Value};
use worker::{Method, Request, Response, Result};

use super::{load_config, pickers, Writer};
use crate::config::Config;
use crate::intake::event::EventType;
use crate::refusal::Refusal;
use crate::shell::platform::object_stub::OPERATOR_HEADER;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::now_ms;
use crate::sync::mapping::{catalogue, LiveMapping, Mapping, MAX_DOCUMENT_BYTES};

/// The live mapping as saved, and parsed.
pub struct Live {
    pub saved: LiveMapping,
    pub mapping: Mapping,
}

/// The `meta` row of the live mapping.
pub const META_KEY: &str = "live_mapping";

/// Answers `/admin/mapping...` (`segments` after `mapping`); `None` for a route not here.
pub async fn handle(
    writer: &Writer,
    config: &Config,
    req: &mut Request,
    rest: &[&str],
) -> Option<Result<Response>> {
    let answer = match (req.method(), rest) {
        (Method::Get, []) => show(writer),
        (Method::Put, []) => save(writer, req).await,
        (Method::Delete, []) => remove(writer),
        (Method::Get, ["catalogue"]) => respond::json(200, &with_event_types(catalogue())),
        (Method::Post, ["validate"]) => match req.text().await.map(|text| checked(&text)) {
            Ok(Ok(mapping)) => respond::json(200, &json!({ "valid": true, "document": mapping.document() })),
            Ok(Err(refusal)) => refusal.response(),
            Err(error) => Err(error),
        },
        (Method::Post, ["dry-run"]) => dry_run(writer, config, req).await,
        (Method::Get, ["custom-fields"]) => {
            // Not `Request::url`: its URL parser would weigh on the Wasm.
            let url = req.inner().url();
            let query = crate::read::split_url(&url).query.unwrap_or_default();
            let refresh =
                form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "refresh" && v == "true");
            pickers::custom_fields(writer, config, refresh).await
        }
        (Method::Get, [what @ ("workflows" | "campaigns")]) => pickers::list(writer, config, what).await,
        _ => return None,
    };
    Some(answer)
}

/// `GET /admin/mapping`: the live mapping (or null), the deployed one as a document, and which applies.
fn show(writer: &Writer) -> Result<Response> {
    let deployed = match load_config(&writer.env) {
        Ok(config) => config.mapping,
        Err(refusal) => return refusal.response(),
    };
    let body = match writer.live_mapping() {
        Ok(live) => json!({
            "effective": if live.is_some() { "live" } else { "deployed" },
            "live": live.as_ref().map(|live| live.saved.to_json()),
            "deployed": deployed.document(),
        }),
        Err(problem) => {
            json!({ "effective": "unusable", "problem": problem, "live": null, "deployed": deployed.document() })
        }
    };
    respond::json(200, &body)
}

/// `PUT /admin/mapping` with a mapping document: checked, then the location's live mapping.
async fn save(writer: &Writer, req: &mut Request) -> Result<Response> {
    let mapping = match checked(&req.text().await?) {
        Ok(mapping) => mapping,
        Err(refusal) => return refusal.response(),
    };
    let saved_by = req.headers().get(OPERATOR_HEADER).ok().flatten().unwrap_or_default();
    let live = LiveMapping { document: mapping.document(), saved_by, saved_at: now_ms() };
    if let Err(error) = writer.db.put_meta(META_KEY, &live.to_json()) {
        return Refusal::storage_unavailable(error.to_string()).response();
    }
    let body = json!({ "effective": "live", "live": live.to_json() });
    writer.set_live_mapping(Some(Live { saved: live, mapping }));
    respond::json(200, &body)
}

/// `DELETE /admin/mapping`: the deployed `CONTACT_MAPPING` applies again.
fn remove(writer: &Writer) -> Result<Response> {
    if let Err(error) = writer.db.delete_meta(META_KEY) {
        return Refusal::storage_unavailable(error.to_string()).response();
    }
    writer.set_live_mapping(None);
    respond::json(200, &json!({ "effective": "deployed", "live": null }))
}

/// `POST /admin/mapping/dry-run` with `{"event": {...}, "mapping": {...}}`: the requests the event
/// would make with that mapping (without one: the effective mapping). Sends and writes nothing.
async fn dry_run(writer: &Writer, config: &Config, req: &mut Request) -> Result<Response> {
    let body = req.bytes().await?;
    if body.len() > config.max_body_bytes + MAX_DOCUMENT_BYTES {
        return Refusal::too_large("body_too_large", "the event and mapping are too large").response();
    }
    let Ok(Value::Object(mut parts)) = serde_json::from_slice::<Value>(&body) else {
        return Refusal::bad_request("bad_dry_run_request", "send {\"event\": {...}, \"mapping\": {...}}")
            .response();
    };
    let mapping = match parts.remove("mapping") {
        None | Some(Value::Null) => config.mapping.clone(),
        Some(document) => match checked(&document.to_string()) {
            Ok(mapping) => mapping,
            Err(refusal) => return refusal.response(),
        },
    };
    let event = parts.remove("event").unwrap_or(Value::Null).to_string();
    super::dry_run::answer(writer, config, &mapping, event.as_bytes()).await
}

/// A mapping document as a checked mapping, or the refusal: 413 above [`MAX_DOCUMENT_BYTES`],
/// 422 with the parser's message (the entry and the problem) otherwise.
fn checked(text: &str) -> std::result::Result<Mapping, Refusal> {
    if text.len() > MAX_DOCUMENT_BYTES {
        let message = format!("a mapping document is at most {MAX_DOCUMENT_BYTES} bytes");
        return Err(Refusal::too_large("mapping_too_large", message));
    }
    Mapping::parse(text).map_err(|error| {
        Refusal::unprocessable("invalid_mapping", error.to_string())
            .with("entry", json!(error.entry))
            .with("problem", json!(error.problem))
    })
}

fn with_event_types(mut catalogue: Value) -> Value {
    catalogue["event_types"] = EventType::ALL.map(EventType::as_str).into_iter().collect();
    catalogue
}
