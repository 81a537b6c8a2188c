//! Typed access to the Workers KV namespace `SYNC_KV`, which holds only what is read far more
//! than written: the finished webhooks' idempotency keys, the encrypted tokens, and the named
//! connections' sealed records that the Directory publishes for the edge. Nothing that
//! decides whether a call is sent is read from here (production KV answers from a per-location
//! cache up to 60 s old). A record that no longer parses is reported and read as absent: both
//! readers fall back to the Durable Object, which holds the truth.

use serde::{de::DeserializeOwned, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_warn, Env};

/// The KV binding name in wrangler.toml.
pub const BINDING: &str = "SYNC_KV";

#[derive(Debug, thiserror::Error)]
#[error("KV {operation} failed for `{key}`")]
pub struct KvError {
    operation: &'static str,
    key: String,
}

/// The namespace as the platform binds it, whose `get` and `put` are called directly: worker's
/// `KvStore` builds their options with `serde_wasm_bindgen`'s serialiser, needed for nothing else.
#[derive(Clone)]
pub struct Kv {
    kv: Object,
}

impl Kv {
    pub fn open(env: &Env) -> worker::Result<Kv> {
        match Reflect::get(env, &BINDING.into()) {
            Ok(kv) if !kv.is_undefined() => Ok(Kv { kv: kv.unchecked_into() }),
            _ => Err(worker::Error::RustError(format!(
                "no KV namespace is bound as `{BINDING}` (wrangler.toml)"
            ))),
        }
    }

    /// Calls the namespace's method `name` and waits for what its promise resolves to.
    async fn call(
        &self,
        name: &str,
        key: &str,
        value: Option<&JsValue>,
        options: &Object,
    ) -> Result<JsValue, JsValue> {
        let method: Function = Reflect::get(&self.kv, &name.into())?.dyn_into()?;
        let promise = match value {
            Some(value) => method.call3(&self.kv, &key.into(), value, options)?,
            None => method.call2(&self.kv, &key.into(), options)?,
        };
        JsFuture::from(promise.dyn_into::<Promise>()?).await
    }

    /// The JSON record under `key`. The read itself is not generic (one async state machine
    /// for every record type); only the parse is.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        Ok(self.get_text(key, None).await?.and_then(|text| parse(key, &text)))
    }

    /// The JSON record under `key`, which this location's KV cache keeps (a miss included) for
    /// `cache_ttl_secs` rather than KV's default 60 s.
    pub async fn get_cached<T: DeserializeOwned>(
        &self,
        key: &str,
        cache_ttl_secs: u32,
    ) -> Result<Option<T>, KvError> {
        Ok(self.get_text(key, Some(cache_ttl_secs)).await?.and_then(|text| parse(key, &text)))
    }

    async fn get_text(&self, key: &str, cache_ttl_secs: Option<u32>) -> Result<Option<String>, KvError> {
        let fail = || KvError::new("read", key);
        let options = options("type", &"text".into()).map_err(|_| fail())?;
        if let Some(ttl) = cache_ttl_secs {
            Reflect::set(&options, &"cacheTtl".into(), &f64::from(ttl).into()).map_err(|_| fail())?;
        }
        let value = self.call("get", key, None, &options).await.map_err(|_| fail())?;
        Ok(value.as_string())
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        let fail = || KvError::new("delete", key);
        let method: Function =
            Reflect::get(&self.kv, &"delete".into()).and_then(|m| m.dyn_into()).map_err(|_| fail())?;
        let promise = method.call1(&self.kv, &key.into()).map_err(|_| fail())?;
        JsFuture::from(promise.dyn_into::<Promise>().map_err(|_| fail())?).await.map_err(|_| fail())?;
        Ok(())
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
        // As bytes (an ArrayBuffer), as the records have always been written.
        let bytes = Uint8Array::new_with_length(text.len() as u32);
        bytes.copy_from(text.as_bytes());
        let options = match ttl_secs {
            Some(ttl) => options("expirationTtl", &(ttl.max(60) as f64).into()).map_err(|_| fail())?,
            None => Object::new(),
        };
        self.call("put", key, Some(&bytes.buffer().into()), &options).await.map_err(|_| fail())?;
        Ok(())
    }
}

/// A `get` or `put` options object with the one option `name`.
fn options(name: &str, value: &JsValue) -> Result<Object, JsValue> {
    let options = Object::new();
    Reflect::set(&options, &name.into(), value)?;
    Ok(options)
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
