//! The cron trigger (every minute), the users' retry driver: wakes the location's Durable Object,
//! which works what is due within its own limits and answers what it did. An idle wake costs one
//! Durable Object request and a few rows read; nothing is written or listed in KV.

use serde_json::json;
use worker::{console_error, Env};

use crate::shell::location::load_config;
use crate::shell::platform::object_stub::ObjectStub;

pub async fn run(env: Env) {
    let Ok(config) = load_config(&env) else {
        return;
    };
    let woken: worker::Result<serde_json::Value> = match ObjectStub::open(&env, &config.location_id) {
        Ok(stub) => stub.call("/wake", &json!({})).await,
        Err(error) => Err(error),
    };
    if let Err(error) = woken {
        console_error!("{}", json!({"msg": "cron: the location did not wake", "error": error.to_string()}));
    }
}
