//! The location's log: every line (and every alert, which is a line too) the Durable Object
//! writes goes through here, so that each names its connection (`"connection": id`) without
//! the call sites saying it.

use std::rc::Rc;

use serde_json::{json, Value};
use worker::{console_error, console_log, console_warn};

/// One Durable Object's logger, made once with its connection id.
#[derive(Clone)]
pub struct Log {
    connection: Rc<str>,
}

impl Log {
    pub fn new(connection: &str) -> Log {
        Log { connection: connection.into() }
    }

    pub fn connection(&self) -> &str {
        &self.connection
    }

    pub fn info(&self, line: Value) {
        console_log!("{}", self.stamp(line));
    }

    pub fn warn(&self, line: Value) {
        console_warn!("{}", self.stamp(line));
    }

    pub fn error(&self, line: Value) {
        console_error!("{}", self.stamp(line));
    }

    fn stamp(&self, mut line: Value) -> Value {
        line["connection"] = json!(&*self.connection);
        line
    }
}
