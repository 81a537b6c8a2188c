//! Fuzz target: the event parser (`event::parse_event`) on arbitrary bodies, and planning of every
//! event it accepts. Besides never panicking: an accepted event's ids are path-safe and its type
//! names itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightmill_sync::intake::event::{is_sightmill_id, parse_event, EventType};
use sightmill_sync::sync::mapping::Mapping;
use sightmill_sync::sync::plan::{self, Known};

fuzz_target!(|body: &[u8]| {
    let Ok(event) = parse_event(body) else {
        return;
    };
    assert!(is_sightmill_id(event.sightmill_contact_id()), "contact ids are path-safe");
    if let Some(record) = event.record_id() {
        assert!(is_sightmill_id(record), "record ids are path-safe");
    }
    assert_eq!(EventType::from_name(event.kind().as_str()), Some(event.kind()));
    let reads = plan::reads(&event, "loc-fuzz");
    assert!(reads.contact.len() <= 512, "KV keys stay within 512 bytes");
    let _ = plan::start(&event, &Known::default(), "loc-fuzz", &Mapping::default());
});
