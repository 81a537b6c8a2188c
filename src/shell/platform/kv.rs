//! Typed access to the Workers KV namespace `SYNC_KV`, which holds only what is read far more
//! than written: the finished webhooks' idempotency keys and the encrypted tokens. Nothing that
//! decides whether a call is sent is read from here (production KV answers from a per-location
//! cache up to 60 s old). A record that no longer parses is reported and read as absent: both
//! readers fall back to the Durable Object, which holds the truth.

use serde::{de::DeserializeOwned, Serialize};
use worker::{console_warn, kv::KvStore, Env};

/// The KV binding name in wrangler.toml.
pub const BINDING: &str = "SYNC_KV";

#[derive(Debug, thiserror::Error)]
#[error("KV {operation} failed for `{key}`")]
pub struct KvError {
    operation: &'static str,
    key: String,
}

#[derive(Clone)]
pub struct Kv {
    kv: KvStore,
}

impl Kv {
    pub fn open(env: &Env) -> worker::Result<Kv> {
        let missing =
            |_| worker::Error::RustError(format!("no KV namespace is bound as `{BINDING}` (wrangler.toml)"));
        Ok(Kv { kv: env.kv(BINDING).map_err(missing)? })
    }

    /// The JSON record under `key`. The read itself is not generic (one async state machine
    /// for every record type); only the parse is.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        Ok(self.get_text(key).await?.and_then(|text| parse(key, &text)))
    }

    async fn get_text(&self, key: &str) -> Result<Option<String>, KvError> {
        self.kv.get(key).text().await.map_err(|_| KvError::new("read", key))
    }

    /// Writes `record` under `key`, expiring after `ttl_secs` when given (KV's shortest is 60 s).
    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        record: &T,
        ttl_secs: Option<u64>,
    ) -> Result<(), KvError> {
        let fail = || KvError::new("write", key);
        let text = serde_json::to_string(record).map_err(|_| fail())?;
        // As bytes: `put` with a `String` links serde_wasm_bindgen's generic value conversion and
        // f64 formatting for a value that is always text. KV stores the same bytes either way.
        let mut put = self.kv.put_bytes(key, text.as_bytes()).map_err(|_| fail())?;
        if let Some(ttl) = ttl_secs {
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute().await.map_err(|_| fail())
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

impl KvError {
    fn new(operation: &'static str, key: &str) -> KvError {
        KvError { operation, key: key.to_owned() }
    }
}
