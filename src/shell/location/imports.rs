//! The operator API's imports, inside the location's Durable Object: an export of SightMill
//! (NDJSON of webhook-shaped lines, or CSV of contacts) streamed in chunk by chunk, read by
//! [`crate::import::reader`] and stored as rows of the engine's import lane
//! ([`super::db`]'s `import_rows`); its progress; pausing, resuming and cancelling it; its
//! failed rows as CSV; and a dry run of its first rows that sends and stores nothing.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /admin/imports?format=csv\|ndjson[&dry_run=N]` | 201 `{import}`, or the dry run's decisions |
//! | `GET /admin/imports` | `{imports: [...]}`, newest first |
//! | `GET /admin/imports/{id}` | `{import}` |
//! | `POST /admin/imports/{id}/pause\|resume\|cancel` | `{import}`; 409 `not_applicable` |
//! | `GET /admin/imports/{id}/failed.csv` | `line,reason,row` |

use futures_util::StreamExt;
use serde_json::{json, Value};
use worker::{Method, Request, Response, Result};

use super::dry_run;
use super::Writer;
use crate::config::Config;
use crate::import::progress::{failed_rows_csv, ImportState, Progress};
use crate::import::reader::{Format, Reader, Record};
use crate::intake::event::parse_event;
use crate::refusal::Refusal;
use crate::shell::platform::respond;
use crate::shell::platform::runtime::now_ms;
use crate::sync::records::WebhookRecord;
use crate::timestamp::{format_rfc3339, UnixMillis};

/// The largest export taken (it is streamed: no isolate holds it whole).
use crate::import::MAX_EXPORT_BYTES as MAX_BYTES;
/// Rows a dry run shows at most.
const MAX_DRY_RUN: usize = 20;

/// Answers an import route (`segments` after `imports`), or `None` when it is not one.
pub async fn handle(
    writer: &Writer,
    config: &Config,
    req: &mut Request,
    query: &str,
    segments: &[&str],
) -> Option<Result<Response>> {
    let now = now_ms();
    let answer = match (req.method(), segments) {
        (Method::Post, []) => upload(writer, config, req, query).await,
        (Method::Get, []) => list(writer, now),
        (Method::Get, [id]) => show(writer, id, now),
        (Method::Post, [id, action]) => change(writer, id, action, now).await,
        (Method::Get, [id, "failed.csv"]) => failed(writer, id),
        _ => return None,
    };
    Some(answer.unwrap_or_else(|refusal| refusal.response()))
}

type Answer = std::result::Result<Result<Response>, Refusal>;

/// `POST /admin/imports`: reads the body as it arrives, refusing a file that is not what it
/// claims before anything is stored.
async fn upload(writer: &Writer, config: &Config, req: &mut Request, query: &str) -> Answer {
    if declared_length(req).is_some_and(|length| length > MAX_BYTES) {
        return Err(too_large());
    }
    let content_type = req.headers().get("Content-Type").ok().flatten();
    let named = query_param(query, "format");
    let format = match named {
        Some(named) => Format::from_query(&named),
        None => content_type.as_deref().and_then(Format::from_content_type),
    };
    let Some(format) = format else {
        return Err(Refusal::relayed(
            415,
            "unsupported_format",
            "send CSV (format=csv, text/csv) or NDJSON (format=ndjson, application/x-ndjson)",
        ));
    };
    let dry_run = query_param(query, "dry_run").and_then(|n| n.parse::<usize>().ok());
    if let Some(rows) = dry_run {
        return dry_run_rows(writer, config, req, format, rows.clamp(1, MAX_DRY_RUN)).await;
    }
    if let Some(under_way) = writer.db.import_under_way() {
        let message = format!("import {} is under way; cancel it or wait for it to end", under_way.id);
        return Err(Refusal::conflict("import_under_way", message));
    }
    let now = now_ms();
    let progress = Progress::new(import_id(now), format, now);
    let id = progress.id.clone();
    let mut loader = Loader { writer, progress: Some(progress), now };
    if let Err(refusal) = loader.load(req, format).await {
        // A file refused part way (too large, cut off) leaves nothing behind.
        if loader.progress.is_none() {
            writer.db.discard_import(&id).map_err(storage)?;
        }
        return Err(refusal);
    }
    if loader.progress.is_some() {
        return Err(Refusal::bad_request("invalid_import", "the file holds no rows"));
    }
    let progress = writer.db.set_import_state(&id, ImportState::Running, now_ms()).map_err(storage)?;
    writer.db.settle().map_err(storage)?;
    writer
        .log
        .info(json!({"msg": "import stored", "import": id, "rows": progress.as_ref().map(|p| p.total)}));
    if let Err(error) = writer.arm(now_ms()).await {
        writer.log.error(json!({"msg": "alarm not set", "error": error.to_string()}));
    }
    Ok(respond::json(201, &json!({ "import": view(writer, progress.as_ref(), now_ms()) })))
}

/// Stores an upload's rows as they are read; the import begins with its first row (`progress`
/// is then taken), so a file refused at its start stores nothing.
struct Loader<'a> {
    writer: &'a Writer,
    progress: Option<Progress>,
    now: UnixMillis,
}

impl Loader<'_> {
    async fn load(&mut self, req: &mut Request, format: Format) -> std::result::Result<(), Refusal> {
        let mut reader = Reader::new(format);
        let mut stream =
            req.stream().map_err(|error| Refusal::bad_request("invalid_import", error.to_string()))?;
        let mut bytes = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| Refusal::bad_request("invalid_import", error.to_string()))?;
            bytes += chunk.len();
            if bytes > MAX_BYTES {
                return Err(too_large());
            }
            let items = reader.feed(&chunk).map_err(refused)?;
            self.store(items)?;
        }
        let items = reader.finish().map_err(refused)?;
        self.store(items)
    }

    fn store(&mut self, items: Vec<Record>) -> std::result::Result<(), Refusal> {
        let db = &self.writer.db;
        for item in items {
            if let Some(progress) = self.progress.take() {
                db.begin_import(progress).map_err(storage)?;
            }
            match item {
                Record::Row { line, contact, event_type, body, .. } => {
                    let kind = event_type.as_str();
                    let record =
                        WebhookRecord::accepted(body, String::new(), kind, &contact, self.now, self.now);
                    db.add_import_row(line, &contact, &record).map_err(storage)?;
                }
                Record::Bad { line, reason, raw } => db.add_bad_row(line, &reason, &raw).map_err(storage)?,
            }
        }
        Ok(())
    }
}

/// The dry run of an upload's first `rows` rows: what the writer would do with each now.
async fn dry_run_rows(
    writer: &Writer,
    config: &Config,
    req: &mut Request,
    format: Format,
    rows: usize,
) -> Answer {
    let mut reader = Reader::new(format);
    let mut stream =
        req.stream().map_err(|error| Refusal::bad_request("invalid_import", error.to_string()))?;
    let mut items = Vec::new();
    while items.len() < rows {
        match stream.next().await {
            Some(chunk) => {
                let chunk =
                    chunk.map_err(|error| Refusal::bad_request("invalid_import", error.to_string()))?;
                items.extend(reader.feed(&chunk).map_err(refused)?);
            }
            None => {
                items.extend(reader.finish().map_err(refused)?);
                break;
            }
        }
    }
    let (mut decided, mut bad) = (Vec::new(), Vec::new());
    for item in items.into_iter().take(rows) {
        match item {
            Record::Row { line, body, .. } => {
                let Ok(event) = parse_event(body.as_bytes()) else { continue };
                let mut answer = dry_run::decide(writer, config, &config.mapping, &event).await?;
                answer["line"] = json!(line);
                decided.push(answer);
            }
            Record::Bad { line, reason, .. } => bad.push(json!({ "line": line, "reason": reason })),
        }
    }
    let body = json!({ "dry_run": true, "format": format.as_str(), "rows": decided, "bad": bad });
    Ok(respond::json(200, &body))
}

fn list(writer: &Writer, now: UnixMillis) -> Answer {
    let imports = writer.db.imports().map_err(storage)?;
    let views: Vec<Value> = imports.iter().map(|progress| view(writer, Some(progress), now)).collect();
    Ok(respond::json(200, &json!({ "imports": views })))
}

fn show(writer: &Writer, id: &str, now: UnixMillis) -> Answer {
    let progress = writer.db.import(id).map_err(storage)?.ok_or_else(unknown)?;
    Ok(respond::json(200, &json!({ "import": view(writer, Some(&progress), now) })))
}

/// Pause, resume or cancel: only what the import's state allows.
async fn change(writer: &Writer, id: &str, action: &str, now: UnixMillis) -> Answer {
    let progress = writer.db.import(id).map_err(storage)?.ok_or_else(unknown)?;
    let next = match (action, progress.state) {
        ("pause", ImportState::Running | ImportState::StoppedForTheDay) => ImportState::Paused,
        ("resume", ImportState::Paused) => ImportState::Running,
        ("cancel", ImportState::Running | ImportState::Paused | ImportState::StoppedForTheDay) => {
            ImportState::Cancelled
        }
        ("pause" | "resume" | "cancel", state) => {
            let message = format!("the import is {}: it cannot be {action}d", state_name(state));
            return Err(Refusal::conflict("not_applicable", message));
        }
        _ => return Err(Refusal::not_found("no such import route")),
    };
    let changed = writer.db.set_import_state(id, next, now).map_err(storage)?.ok_or_else(unknown)?;
    writer.log.info(json!({"msg": "import changed", "import": id, "state": state_name(next)}));
    if next == ImportState::Running {
        if let Err(error) = writer.arm(now).await {
            writer.log.error(json!({"msg": "alarm not set", "error": error.to_string()}));
        }
    }
    Ok(respond::json(200, &json!({ "import": view(writer, Some(&changed), now) })))
}

fn failed(writer: &Writer, id: &str) -> Answer {
    writer.db.import(id).map_err(storage)?.ok_or_else(unknown)?;
    let rows = writer.db.failed_rows(id).map_err(storage)?;
    let headers = worker::Headers::new();
    let csv = failed_rows_csv(&rows);
    let response = Response::ok(csv).map(|response| {
        let _ = headers.set("Content-Type", "text/csv; charset=utf-8");
        let _ = headers.set("Content-Disposition", &format!("attachment; filename=\"{id}-failed.csv\""));
        response.with_headers(headers)
    });
    Ok(response)
}

/// An import as the API shows it: its progress, its state as it is now (a running import whose
/// day's calls are spent shows `stopped_for_the_day`), times in RFC 3339 and its ETA.
fn view(writer: &Writer, progress: Option<&Progress>, now: UnixMillis) -> Value {
    let Some(progress) = progress else {
        return Value::Null;
    };
    let mut view = json!(progress);
    let stopped = writer.engine.pacing.import_stopped_until(now).is_some();
    if progress.state == ImportState::Running && stopped {
        view["state"] = json!("stopped_for_the_day");
    }
    view["started_at"] = json!(format_rfc3339(progress.started_at));
    view["finished_at"] = json!(progress.finished_at.map(format_rfc3339));
    let rate = f64::from(writer.engine.pacing.calls_per_10s());
    let eta = progress.eta_secs(rate, progress.calls_per_row().unwrap_or(1.0));
    view["eta_secs"] =
        json!(eta.filter(|_| matches!(progress.state, ImportState::Running | ImportState::Loading)));
    view
}

/// The state's name in the API (its serde name).
fn state_name(state: ImportState) -> String {
    serde_json::to_value(state).ok().and_then(|name| name.as_str().map(str::to_owned)).unwrap_or_default()
}

/// An import's id: its start time, so that ids sort in the order imports began.
fn import_id(now: UnixMillis) -> String {
    format!("imp_{now:013}")
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// The upload's declared length, when it declares one.
fn declared_length(req: &Request) -> Option<usize> {
    req.headers().get("Content-Length").ok().flatten()?.trim().parse().ok()
}

fn too_large() -> Refusal {
    Refusal::too_large("body_too_large", format!("an export is at most {MAX_BYTES} bytes"))
}

fn refused(reason: impl std::fmt::Display) -> Refusal {
    Refusal::bad_request("invalid_import", reason.to_string())
}

fn unknown() -> Refusal {
    Refusal::missing("unknown_import", "no import with the id in the path is on record")
}

fn storage(error: super::db::DbError) -> Refusal {
    Refusal::storage_unavailable(error.to_string())
}
