//! The location's custom field definitions, inside its Durable Object: read from the Contacts API
//! (`GET /locations/{locationId}/customFields?model=contact`) when a mapping first needs them, kept
//! in `meta` and in memory, read again on demand (the console) and when the mapping names a field
//! the copy lacks ([`crate::engine::custom_fields`] resolves the mapping with them).

use std::rc::Rc;

use serde_json::{json, Value};

use super::Writer;
use crate::config::Config;
use crate::contacts_api::{ApiId, ApiRequest};
use crate::read::token_rejected;
use crate::shell::platform::runtime::now_ms;
use crate::sync::custom_fields::{list_request, read_list, refuses_scope, Definitions, ListError, SCOPE};

/// The `meta` row of the definitions as last read.
pub const META_KEY: &str = "custom_fields";

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
