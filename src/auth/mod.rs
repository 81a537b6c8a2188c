//! Who may do what, and with which credentials: the operator and read [`api_keys`], the Contacts
//! API [`tokens`] (three modes; renewal planned here, carried out by the location's writer), the
//! [`token_endpoint`]'s requests and answers, the OAuth [`install`] flow, the
//! [`request_url`] check every request passes first, and the [`envelope`]
//! that encrypts tokens at rest in KV.

pub mod api_keys;
pub mod envelope;
pub mod install;
pub mod request_url;
pub mod token_endpoint;
pub mod token_record;
pub mod tokens;
