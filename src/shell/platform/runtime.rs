//! The platform's clock and settings, read one way everywhere in the shell: `now_ms` from the
//! Workers clock (the core never reads a clock), `setting` from vars or secrets by name.

use worker::{Date, Env};

use crate::timestamp::UnixMillis;

/// Milliseconds since the Unix epoch, from the Workers clock.
pub fn now_ms() -> UnixMillis {
    Date::now().as_millis() as i64
}

/// A var or secret by name; `None` when neither is set.
pub fn setting(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|value| value.to_string())
        .or_else(|_| env.secret(name).map(|value| value.to_string()))
        .ok()
}
