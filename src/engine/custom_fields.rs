//! The mapping resolved with the location's custom fields before an event is planned or
//! dry-run: the kept copy of the definitions is read again (through the [`Api`] port) when
//! [`Mapping::needs_fresh_fields`] says so; when that read fails, the copy is used as it is.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::ports::{Api, Outside, Ports};
use crate::sync::custom_fields::ListError;
use crate::sync::mapping::Mapping;
use crate::sync::plan::Failure;
use crate::timestamp::UnixMillis;

/// The mapping an event is planned with, or why it cannot be had now.
// Returned once per attempt and matched at once: not worth a box.
#[allow(clippy::large_enum_variant)]
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
/// view of it only).
pub async fn prepare<'a, S, A: Api, C, O: Outside>(
    ports: Ports<'_, S, A, C, O>,
    mapping: &'a Mapping,
    data: Option<&Map<String, Value>>,
    now: UnixMillis,
) -> Prepared<'a> {
    if !mapping.names_custom_fields() {
        return Prepared::Ready(Cow::Borrowed(mapping));
    }
    let kept = ports.api.kept_custom_fields();
    let usable = kept.clone().filter(|copy| !mapping.needs_fresh_fields(copy, data, now));
    let known = match usable {
        Some(copy) => copy,
        None => match (ports.api.read_custom_fields().await, kept) {
            (Ok(fresh), _) => fresh,
            (Err(error), None) => return unreadable(mapping, error),
            (Err(error), Some(kept)) => {
                let line = json!({"msg": "custom fields not read again; the kept copy is used", "error": error.describe()});
                ports.outside.info(line);
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
