//! What every entry point shares: the clock and settings ([`runtime`]), JSON answers
//! ([`respond`]), outbound calls with a deadline ([`http`]) to the Contacts API
//! ([`contacts_client`]) and the token endpoint ([`token_endpoint`]), KV ([`kv`]), and the
//! way to the Durable Objects ([`object_stub`]), with the edge's copy of the named
//! [`connections`].

pub mod connections;
pub mod contacts_client;
pub mod http;
pub mod kv;
pub mod object_stub;
pub mod respond;
pub mod runtime;
pub mod sql;
pub mod token_endpoint;
