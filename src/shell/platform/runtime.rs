//! The platform's clock and settings, read one way everywhere in the shell: `now_ms` from the
//! Workers clock (the core never reads a clock), [`settings`] the one settings object.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{Date, Env};

use crate::settings::Settings;

use crate::timestamp::UnixMillis;

/// Milliseconds since the Unix epoch, from the Workers clock.
pub fn now_ms() -> UnixMillis {
    Date::now().as_millis() as i64
}

thread_local! {
    /// The settings as this isolate first read them. An isolate's vars and secrets never change:
    /// a deploy (or a test that reconfigures Miniflare) starts new isolates.
    static SETTINGS: RefCell<Option<Rc<Settings>>> = const { RefCell::new(None) };
}

/// The deployment's settings, read from `env` and parsed once per isolate.
pub fn settings(env: &Env) -> Rc<Settings> {
    SETTINGS.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| Rc::new(Settings::from_lookup(|name| setting(env, name))))
            .clone()
    })
}

/// A var or secret by name; `None` when neither is set.
fn setting(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|value| value.to_string())
        .or_else(|_| env.secret(name).map(|value| value.to_string()))
        .ok()
}
