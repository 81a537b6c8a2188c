//! Unicode case conversion, for the mapping's `lowercase` and `uppercase` transforms and for
//! reading the Contacts API's "not found" messages. In the Worker it is the platform's
//! (JavaScript's `toLowerCase` and `toUpperCase`), so that the Wasm does not carry Rust's case
//! tables (17 KiB gzip); natively (tests, fuzzing) it is Rust's. Both are Unicode's default full
//! case mapping, final sigma included, and agree wherever their Unicode versions do.

#[cfg(target_arch = "wasm32")]
pub fn lowercase(text: &str) -> String {
    js_sys::JsString::from(text).to_lower_case().into()
}

#[cfg(target_arch = "wasm32")]
pub fn uppercase(text: &str) -> String {
    js_sys::JsString::from(text).to_upper_case().into()
}

#[cfg(not(target_arch = "wasm32"))]
pub fn lowercase(text: &str) -> String {
    text.to_lowercase()
}

#[cfg(not(target_arch = "wasm32"))]
pub fn uppercase(text: &str) -> String {
    text.to_uppercase()
}
