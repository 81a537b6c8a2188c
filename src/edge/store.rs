//! Typed access to the Workers KV namespace `SYNC_KV`: JSON records in and out, deletes, and
//! prefix listings. A record that no longer parses is reported and treated as absent rather than
//! wedging a webhook.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use worker::{console_warn, kv::KvStore, Env};

/// The KV binding name in wrangler.toml.
pub const BINDING: &str = "SYNC_KV";

#[derive(Debug, thiserror::Error)]
#[error("KV {operation} failed for `{key}`")]
pub struct StoreError {
    operation: &'static str,
    key: String,
}

/// One listed key with its metadata.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub metadata: Option<Value>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub keys: Vec<Listed>,
    /// Where the next page starts; `None` when this was the last.
    pub cursor: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    kv: KvStore,
}

impl Store {
    pub fn open(env: &Env) -> worker::Result<Store> {
        let missing =
            |_| worker::Error::RustError(format!("no KV namespace is bound as `{BINDING}` (wrangler.toml)"));
        Ok(Store { kv: env.kv(BINDING).map_err(missing)? })
    }

    /// The JSON record under `key`. The read itself is not generic (one async state machine
    /// for every record type); only the parse is.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        Ok(self.get_text(key).await?.and_then(|text| parse(key, &text)))
    }

    pub async fn get_text(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.kv.get(key).text().await.map_err(|_| StoreError::new("read", key))
    }

    /// Writes `record` under `key`, expiring after `ttl_secs` when given.
    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        record: &T,
        ttl_secs: Option<u64>,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(record).map_err(|_| StoreError::new("encode", key))?;
        self.put_raw(key, text, None, ttl_secs).await
    }

    /// Writes an index key: an empty value, optionally with metadata that listings return.
    pub async fn put_index(&self, key: &str, metadata: Option<Value>) -> Result<(), StoreError> {
        self.put_raw(key, String::new(), metadata, None).await
    }

    pub async fn put_raw(
        &self,
        key: &str,
        text: String,
        metadata: Option<Value>,
        ttl_secs: Option<u64>,
    ) -> Result<(), StoreError> {
        let fail = || StoreError::new("write", key);
        // As bytes: `put` with a `String` links serde_wasm_bindgen's generic value conversion and
        // f64 formatting for a value that is always text. KV stores the same bytes either way.
        let mut put = self.kv.put_bytes(key, text.as_bytes()).map_err(|_| fail())?;
        if let Some(metadata) = metadata {
            put = put.metadata(metadata).map_err(|_| fail())?;
        }
        if let Some(ttl) = ttl_secs {
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute().await.map_err(|_| fail())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv.delete(key).await.map_err(|_| StoreError::new("delete", key))
    }

    /// One page of keys under `prefix`, in key order.
    pub async fn list(&self, prefix: &str, limit: u64, cursor: Option<String>) -> Result<Page, StoreError> {
        let mut list = self.kv.list().prefix(prefix.to_owned()).limit(limit.clamp(1, 1_000));
        if let Some(cursor) = cursor {
            list = list.cursor(cursor);
        }
        let response = list.execute().await.map_err(|_| StoreError::new("list", prefix))?;
        let keys =
            response.keys.into_iter().map(|key| Listed { name: key.name, metadata: key.metadata }).collect();
        let cursor = if response.list_complete { None } else { response.cursor };
        Ok(Page { keys, cursor })
    }

    /// Every key under `prefix`, following the listing's pages.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list(prefix, 1_000, cursor).await?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Deletes every key under `prefix`.
    pub async fn clear_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        for key in self.list_all(prefix).await? {
            self.delete(&key.name).await?;
        }
        Ok(())
    }
}

/// A stored record, or `None` (reported) when it no longer parses.
///
/// JSON is parsed from bytes everywhere in the crate (`from_slice`, never `from_str`): each
/// reader type instantiates serde_json's whole parser again for every type it reads, and the
/// webhook body has to be read from bytes.
fn parse<T: DeserializeOwned>(key: &str, text: &str) -> Option<T> {
    match serde_json::from_slice(text.as_bytes()) {
        Ok(record) => Some(record),
        Err(error) => {
            let line =
                serde_json::json!({"msg": "unreadable KV record", "key": key, "error": error.to_string()});
            console_warn!("{line}");
            None
        }
    }
}

impl StoreError {
    fn new(operation: &'static str, key: &str) -> StoreError {
        StoreError { operation, key: key.to_owned() }
    }
}
