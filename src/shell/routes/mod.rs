//! The Worker's fetch routes: one module per route family. Each reads the request, hands plain
//! values to the core, and reaches the location's Durable Object for anything that needs the
//! location's state.

pub mod connections;
pub mod oauth;
pub mod operator;
pub mod read_api;
pub mod webhook;
