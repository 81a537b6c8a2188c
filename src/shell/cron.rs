//! The cron trigger (every minute), the users' retry driver: wakes the default connection's
//! Durable Object (when the deployment has one), which works what is due within its own limits
//! and answers what it did, and asks the Directory to nudge the named connections whose work is
//! due by the work record their Locations keep current as their queues fill and empty (it fans
//! out 40 at a time and carries on with its alarm). An idle run costs two Durable Object
//! requests (the default location's and the Directory's), however many named connections there
//! are, and a few rows read; nothing is written or listed in KV. A deployment whose settings are
//! wrong touches nothing until they are fixed (the error is logged).

use serde_json::{json, Value};
use worker::{console_error, Env};

use crate::calls::{DirectoryCall, LocationCall};
use crate::shell::platform::connections::default_id;
use crate::shell::platform::object_stub::ObjectStub;
use crate::shell::platform::runtime::settings;

pub async fn run(env: Env) {
    if let Err(error) = settings(&env).check() {
        console_error!("{}", json!({"msg": "configuration error", "error": error.to_string()}));
        return;
    }
    if default_id(&env).is_some() {
        wake_default(&env).await;
    }
    let nudged: worker::Result<Value> = match ObjectStub::directory(&env) {
        Ok(stub) => stub.call(&DirectoryCall::Cron, &json!({})).await,
        Err(error) => Err(error),
    };
    if let Err(error) = nudged {
        console_error!(
            "{}",
            json!({"msg": "cron: the directory did not nudge the connections", "error": error.to_string()})
        );
    }
}

async fn wake_default(env: &Env) {
    let Some(id) = default_id(env) else {
        return;
    };
    let woken: worker::Result<Value> = match ObjectStub::open(env, id.as_str()) {
        Ok(stub) => stub.call(&LocationCall::Wake, &json!({})).await,
        Err(error) => Err(error),
    };
    if let Err(error) = woken {
        console_error!(
            "{}",
            json!({"msg": "cron: the location did not wake", "connection": id, "error": error.to_string()})
        );
    }
}
