//! Typed access to the Workers KV namespace `SYNC_KV`: JSON records in, JSON records out.
//! A record that no longer parses is reported and treated as absent rather than wedging a webhook.

use serde::{de::DeserializeOwned, Serialize};
use worker::{console_warn, kv::KvStore, Env};

/// The KV binding name in wrangler.toml.
pub const BINDING: &str = "SYNC_KV";

#[derive(Debug, thiserror::Error)]
#[error("KV {operation} failed for `{key}`")]
pub struct StoreError {
    operation: &'static str,
    key: String,
}

pub struct Store {
    kv: KvStore,
}

impl Store {
    pub fn open(env: &Env) -> worker::Result<Store> {
        Ok(Store {
            kv: env.kv(BINDING)?,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let text = self
            .kv
            .get(key)
            .text()
            .await
            .map_err(|_| StoreError::new("read", key))?;
        Ok(text.and_then(|text| match serde_json::from_str(&text) {
            Ok(record) => Some(record),
            Err(error) => {
                console_warn!(
                    "{{\"msg\":\"unreadable KV record\",\"key\":\"{key}\",\"error\":\"{error}\"}}"
                );
                None
            }
        }))
    }

    /// Writes `record` under `key`, expiring after `ttl_secs` when given.
    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        record: &T,
        ttl_secs: Option<u64>,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(record).map_err(|_| StoreError::new("encode", key))?;
        let mut put = self
            .kv
            .put(key, text)
            .map_err(|_| StoreError::new("write", key))?;
        if let Some(ttl) = ttl_secs {
            put = put.expiration_ttl(ttl);
        }
        put.execute()
            .await
            .map_err(|_| StoreError::new("write", key))
    }
}

impl StoreError {
    fn new(operation: &'static str, key: &str) -> StoreError {
        StoreError {
            operation,
            key: key.to_owned(),
        }
    }
}
