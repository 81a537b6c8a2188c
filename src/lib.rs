//! sightmill-sync: a Cloudflare Worker that verifies SightMill's signed webhooks, records them in
//! Workers KV and applies them to the GoHighLevel (LeadConnector) Contacts API v2.
//!
//! The crate is a functional core with an imperative shell. Every module below except `edge` is
//! the core: deterministic, handed `now`, config and stored records, returning plain values, and
//! tested natively. `edge` (wasm32 only) is the shell: the Worker entry points, KV and `Fetch`.
//!
//! One webhook's way through: `edge` reads the body and headers -> [`intake`] verifies the
//! [`signature`] and parses the [`event`] -> `edge` records it in KV (the [`records`] queue) and
//! answers 202 -> [`plan`] turns the event and the id maps into [`contacts_api`] calls, with the
//! operator's [`mapping`] -> `edge` sends them and feeds each answer back -> [`retry`] decides
//! what a failure means -> `edge` writes the outcome and logs it ([`report`]). The cron run and
//! the operator API (guarded by [`api_keys`]) go through the same queue.
//!
//! One read (the read API): `edge` checks the caller's [`api_keys`] -> [`read_path`] parses the
//! route and plans the [`contacts_api`] GET -> `edge` resolves a SightMill id through the
//! [`records`] id map, sends the call (or serves the edge cache) and passes the answer on.

pub mod api_keys;
pub mod config;
pub mod contacts_api;
pub mod envelope;
pub mod event;
pub mod install;
pub mod intake;
pub mod mapping;
pub mod plan;
pub mod read_path;
pub mod records;
pub mod report;
pub mod retry;
pub mod secret;
pub mod signature;
pub mod timestamp;
pub mod token_endpoint;
pub mod tokens;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod edge;
