//! The metadata pipeline and alert matching: the input is Alert manifests and an event JSON,
//! separated by a `\n---event\n` line. The event goes through cleanup, token removal, the
//! Alert index and, per matching Alert, Flux's metadata combination.
#![no_main]

use std::path::Path;

use herald_core::Event;
use herald_core::matching::AlertIndex;
use herald_core::metadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (yaml, json) = text.split_once("\n---event\n").unwrap_or(("", text));
    let Ok(mut event) = serde_json::from_str::<Event>(json) else {
        return;
    };
    let (set, _) = herald_core::manifest::parse_str(Path::new("fuzz.yaml"), yaml);
    let index = AlertIndex::new(set.alerts);
    metadata::cleanup(&mut event);
    metadata::drop_token(&mut event);
    for alert in index.matching(&event) {
        let mut copy = event.clone();
        let _ = metadata::combine(
            &mut copy,
            &alert.spec.event_metadata,
            alert.spec.summary.as_deref(),
        );
        let _ = herald_core::json::to_vec(&copy).expect("a combined event encodes");
    }
    let mut plain = event;
    metadata::prepare_without_alert(&mut plain);
});
