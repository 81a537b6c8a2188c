//! The location's custom field definitions, inside its Durable Object: read from the Contacts API
//! (`GET /locations/{locationId}/customFields?model=contact`) when a mapping first needs them, kept
//! in `meta` and in memory, read again on demand (the console) and when the mapping names a field
//! the copy lacks; and the mapping resolved with them before an event is planned or dry-run.

use std::borrow::Cow;
use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::Writer;
use crate::config::Config;
use crate::contacts_api::{ApiId, ApiRequest};
use crate::read::token_rejected;
use crate::shell::platform::runtime::now_ms;
use crate::sync::custom_fields::{list_request, read_list, refuses_scope, Definitions, ListError, SCOPE};
use crate::sync::mapping::Mapping;
use crate::sync::plan::Failure;

/// The `meta` row of the definitions as last read.
pub const META_KEY: &str = "custom_fields";

/// The mapping an event is planned with, or why it cannot be had now.
pub enum Prepared<'a> {
    /// Resolved for this location (or needing nothing resolved); unresolved when the token may
    /// not list custom fields: ids are then sent unchecked, keys refused with the scope named.
    Ready(Cow<'a, Mapping>),
    /// The list could not be read: the event is tried again later.
    Retry(Failure),
    /// The mapping names a field this location does not define (after a fresh read).
    Park(String),
}

/// `mapping` for this location and the contact `data` it is applied to (`None`: a dry run's
/// view of it only). The kept copy of the custom fields is read again when
/// [`Mapping::needs_fresh_fields`] says so; when that read fails, the copy is used as it is.
pub async fn prepare<'a>(
    writer: &Writer,
    config: &Config,
    mapping: &'a Mapping,
    data: Option<&Map<String, Value>>,
) -> Prepared<'a> {
    if !mapping.names_custom_fields() {
        return Prepared::Ready(Cow::Borrowed(mapping));
    }
    let kept = writer.known_custom_fields();
    let usable = kept.clone().filter(|copy| !mapping.needs_fresh_fields(copy, data, now_ms()));
    let known = match usable {
        Some(copy) => copy,
        None => match (writer.read_custom_fields(config).await, kept) {
            (Ok(fresh), _) => fresh,
            (Err(error), None) => return unreadable(mapping, error),
            (Err(error), Some(kept)) => {
                let line = json!({"msg": "custom fields not read again; the kept copy is used", "error": error.describe()});
                writer.log.info(line);
                kept
            }
        },
    };
    match mapping.resolve(&known) {
        Ok(resolved) => Prepared::Ready(Cow::Owned(resolved)),
        Err(problem) => Prepared::Park(format!(
            "mapping refused the contact: {problem} (its custom fields as read from the Contacts API)"
        )),
    }
}

fn unreadable(mapping: &Mapping, error: ListError) -> Prepared<'_> {
    match error {
        ListError::MissingScope { .. } => Prepared::Ready(Cow::Borrowed(mapping)),
        ListError::Unavailable(detail) => Prepared::Retry(Failure::Retryable {
            detail: format!("the location's custom fields could not be read: {detail}"),
        }),
        ListError::Refused(detail) => Prepared::Retry(Failure::Misconfigured(format!(
            "the location's custom fields could not be read: {detail}"
        ))),
    }
}

impl Writer {
    /// The definitions as last read: memory, else the `meta` row (`None`: never read).
    pub(super) fn known_custom_fields(&self) -> Option<Rc<Definitions>> {
        if let Some(known) = self.custom_fields.borrow().clone() {
            return Some(known);
        }
        let stored: Value = self.db.meta(META_KEY).ok().flatten()?;
        let known = Rc::new(Definitions::from_json(&stored)?);
        *self.custom_fields.borrow_mut() = Some(known.clone());
        Some(known)
    }

    /// Reads the definitions from the Contacts API and keeps them.
    pub(super) async fn read_custom_fields(&self, config: &Config) -> Result<Rc<Definitions>, ListError> {
        let Some(location) = ApiId::parse(&config.location_id) else {
            return Err(ListError::Refused("the location id cannot be put in a path".into()));
        };
        let answer = self.list(config, &list_request(&location), SCOPE).await?;
        let read = Definitions::from_answer(&answer, now_ms()).map_err(ListError::Refused)?;
        if let Err(error) = self.db.put_meta(META_KEY, &read.to_json()) {
            let error = error.to_string();
            self.log
                .error(json!({"msg": "storage error", "doing": "keep the custom fields", "error": error}));
        }
        let read = Rc::new(read);
        *self.custom_fields.borrow_mut() = Some(read.clone());
        Ok(read)
    }

    /// One of the location's lists (custom fields, workflows, campaigns): its answer's body. A
    /// 401 that names a scope is the list's refusal, never the token's: no renewal, no alert.
    pub(super) async fn list(
        &self,
        config: &Config,
        request: &ApiRequest,
        scope: &'static str,
    ) -> Result<Value, ListError> {
        let mut rejected = None;
        loop {
            let token = self
                .tokens
                .access_token(&self.env, &self.db, rejected.as_ref())
                .await
                .map_err(|error| ListError::Unavailable(error.to_string()))?;
            let response = self
                .send_raw(config, &token, request, true)
                .await
                .map_err(|failure| ListError::Unavailable(failure.to_string()))?;
            if token_rejected(&response) && !refuses_scope(&response) && rejected.is_none() {
                rejected = Some(token);
                continue;
            }
            return read_list(&response, scope).cloned();
        }
    }
}
