//! Fuzz target: the operator's mapping (`mapping::Mapping::parse`, then `apply` for a create and an
//! update). The input is a mapping document and a contact's `data`, separated by a NUL byte.
//! Besides never panicking: a create body carries no nulls, and an update body no create-only field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sightmill_sync::sync::mapping::{Mapping, Purpose};

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(2, |byte| *byte == 0);
    let (Some(document), Some(data)) = (parts.next(), parts.next()) else {
        return;
    };
    let Ok(document) = std::str::from_utf8(document) else {
        return;
    };
    let Ok(mapping) = Mapping::parse(document) else {
        return;
    };
    let Ok(Value::Object(data)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(created) = mapping.apply(&data, Purpose::Create) {
        assert!(created.fields.values().all(|value| !value.is_null()), "no nulls in a create");
    }
    if let Ok(updated) = mapping.apply(&data, Purpose::Update) {
        for field in ["companyName", "gender", "tags", "locationId"] {
            assert!(!updated.fields.contains_key(field), "{field} is not sent in an update");
        }
    }
});
