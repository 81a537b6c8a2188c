//! sightmill-sync: a Cloudflare Worker that verifies SightMill's signed webhooks, records them in
//! Workers KV and applies them to the GoHighLevel (LeadConnector) Contacts API v2.
//!
//! The crate is a functional core with an imperative shell. Every module below except `edge` is
//! the core: deterministic, handed `now`, config and stored records, returning plain values, and
//! tested natively. `edge` (wasm32 only) is the shell: the Worker entry points, KV and `Fetch`.
//!
//! One webhook's way through: `edge` reads the body and headers -> [`intake`] verifies the
//! [`signature`] and parses the [`event`] -> `edge` reads the [`records`] from KV -> [`sync`] plans
//! the [`contacts_api`] calls using [`mapping`] -> `edge` sends them and feeds each answer back ->
//! `edge` writes the outcome to KV and answers SightMill.

pub mod config;
pub mod contacts_api;
pub mod envelope;
pub mod event;
pub mod install;
pub mod intake;
pub mod mapping;
pub mod records;
pub mod report;
pub mod secret;
pub mod signature;
pub mod sync;
pub mod timestamp;
pub mod token_endpoint;
pub mod tokens;

#[cfg(target_arch = "wasm32")]
mod edge;
