//! Which connection this location's Durable Object works as, read from its `meta` row
//! `connection`: the default connection (no row, and the object is named by `GHL_LOCATION_ID`),
//! a named connection (the record the Directory pushed with `PUT /connection`, sealed with
//! `TOKEN_ENCRYPTION_KEYS`), a removed one (a tombstone), or none at all. Every route and alarm
//! of the object asks here first; the Directory's internal routes (`PUT /connection`,
//! `DELETE /connection`, `POST /nudge`) change it.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::Env;

use super::db::Db;
use crate::auth::envelope::Envelope;
use crate::config::Config;
use crate::connections::{Connection, ConnectionId, TokenSource};
use crate::refusal::Refusal;
use crate::shell::platform::runtime::settings;

/// The `meta` row that holds the connection's record (or its tombstone).
pub const META_KEY: &str = "connection";

/// The `meta` row as written: the sealed record, or the tombstone.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Row {
    Sealed { envelope: Envelope },
    Removed { removed_at_ms: i64 },
}

/// The `meta` row as read (a plain struct: an untagged enum's reader buffers every field and
/// weighs on the Wasm).
#[derive(Deserialize)]
struct Stored {
    envelope: Option<Envelope>,
    removed_at_ms: Option<i64>,
}

/// What this object is.
#[derive(Clone)]
pub enum Identity {
    /// The deployment's own settings (`GHL_LOCATION_ID`, `WEBHOOK_SECRETS`, `TOKEN_MODE`).
    Default,
    Named(Rc<Connection>),
    /// Removed by the operator: it accepts nothing more.
    Removed,
    /// Neither the default connection nor a record the Directory pushed.
    Unknown,
    /// The record is there but cannot be read now (a key no longer listed, storage failing).
    Unreadable(String),
}

impl Identity {
    /// Reads the identity of the object named `name` (its connection id).
    pub fn read(db: &Db, env: &Env, name: &str) -> Identity {
        match db.meta::<Stored>(META_KEY) {
            Err(error) => Identity::Unreadable(error.to_string()),
            Ok(Some(Stored { removed_at_ms: Some(_), .. })) => Identity::Removed,
            Ok(Some(Stored { envelope: Some(envelope), .. })) => match open(env, name, &envelope) {
                Ok(connection) => Identity::Named(Rc::new(connection)),
                Err(error) => Identity::Unreadable(error),
            },
            Ok(Some(_)) => {
                Identity::Unreadable("the connection row is neither a record nor a tombstone".into())
            }
            Ok(None) if is_default(env, name) => Identity::Default,
            Ok(None) => Identity::Unknown,
        }
    }

    pub fn named(&self) -> Option<&Connection> {
        match self {
            Identity::Named(connection) => Some(connection),
            _ => None,
        }
    }

    pub fn paused(&self) -> bool {
        self.named().is_some_and(|connection| connection.paused)
    }

    /// A named connection's token source; `None`: the deployment's (`TOKEN_MODE`).
    pub fn token_source(&self) -> Option<TokenSource> {
        self.named().map(|connection| connection.token.clone())
    }

    /// The config this object works with, or the answer that says why it cannot work: 404
    /// `unknown_connection` (removed or never created), 503 `connection_unreadable`, 500
    /// `misconfigured`.
    pub fn config(&self, env: &Env) -> Result<Config, Refusal> {
        match self {
            Identity::Default => super::load_config(env),
            Identity::Named(connection) => {
                settings(env).config_for(&connection.id).map_err(Refusal::misconfigured)
            }
            Identity::Removed | Identity::Unknown => Err(unknown()),
            Identity::Unreadable(error) => Err(Refusal::unavailable(
                "connection_unreadable",
                format!("the connection's record cannot be read: {error}"),
            )),
        }
    }

    /// What the operator status shows: id, default or named, paused, token kind.
    pub fn view(&self, id: &str, token_kind: &str) -> Value {
        json!({
            "id": id, "default": matches!(self, Identity::Default), "paused": self.paused(),
            "token": self.named().map_or(json!({ "kind": token_kind }), |c| c.token.view()),
        })
    }
}

/// 404 `unknown_connection`.
pub fn unknown() -> Refusal {
    Refusal::missing("unknown_connection", "no such connection (or it was removed)")
}

/// Whether the object named `name` is the default connection's.
pub fn is_default(env: &Env, name: &str) -> bool {
    settings(env).default_location() == Some(name)
}

/// Opens a record pushed for the object named `name`: sealed for that id, under the
/// deployment's keys.
pub fn open(env: &Env, name: &str, envelope: &Envelope) -> std::result::Result<Connection, String> {
    let id = ConnectionId::parse(name).map_err(|refusal| refusal.message)?;
    Connection::open(&*crate::shell::platform::connections::keys(&settings(env))?, &id, envelope)
}
