//! Event JSON parsing: any bytes either fail to parse or give an event that re-encodes (Go's
//! encoding) to JSON that parses again.
#![no_main]

use herald_core::{Event, json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut event) = serde_json::from_slice::<Event>(data) else {
        return;
    };
    let bytes = json::to_vec(&event).expect("a parsed event encodes");
    let again: Event = serde_json::from_slice(&bytes).expect("an encoded event parses");
    assert_eq!(
        json::to_vec(&again).expect("encodes"),
        bytes,
        "encoding is stable"
    );
    herald_core::metadata::cleanup(&mut event);
});
