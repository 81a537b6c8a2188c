//! sightmill-sync: a Cloudflare Worker that verifies SightMill's signed webhooks, accepts them
//! into one SQLite-backed Durable Object per Contacts API location, and applies them to the
//! GoHighLevel (LeadConnector) Contacts API v2.
//!
//! The crate is a functional core under a thin imperative shell. Every module below except
//! `shell` is the core: deterministic, handed `now`, config and stored records, returning plain
//! values, and tested natively. `shell` (wasm32 only) is the platform: the Worker's entry points,
//! the Durable Object, KV and `Fetch`.
//!
//! One webhook's way through: the shell's webhook route reads the body and headers -> [`intake`]
//! verifies the signature and parses the event -> KV's idempotency key answers a redelivery ->
//! the location's Durable Object accepts it in one transaction ([`sync::queue`]) and the route
//! answers 202 -> the Durable Object plans it ([`sync::plan`], with the operator's
//! [`sync::mapping`]), sends the [`contacts_api`] calls with the token [`auth::tokens`] says to
//! use, reads each answer, lets [`sync::retry`] decide what a failure means, and writes the
//! transition [`sync::queue`] returns. The cron trigger wakes each location's Durable Object to
//! work what is due.
//!
//! One read: the shell checks the caller's key ([`auth::api_keys`]) -> [`read`] parses the route
//! -> the location's Durable Object resolves a SightMill id through its id map and sends the
//! [`contacts_api`] GET -> the answer is passed on (or served from the edge cache).
//!
//! The operator console (static files from `console/`, served by the platform, not this crate)
//! speaks only the operator API: its charts are [`sync::metrics`], counted by the Durable Object;
//! its mapping form is checked by [`sync::mapping`]'s own parser and saved as the location's
//! [`sync::mapping::LiveMapping`], which then applies instead of the deployed one.

pub mod auth;
pub mod case;
pub mod config;
pub mod connections;
pub mod contacts_api;
pub mod engine;
pub mod import;
pub mod intake;
pub mod read;
pub mod refusal;
pub mod secret;
pub mod settings;
pub mod sync;
pub mod timestamp;

#[cfg(target_arch = "wasm32")]
mod shell;
