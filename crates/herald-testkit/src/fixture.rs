//! The event Flux's own notifier tests post.

use std::collections::BTreeMap;

use herald_core::{Event, ObjectReference, Severity, Timestamp};

/// The event of Flux's notifier tests (`testEvent()` in notification-controller):
/// `GitRepository` `gitops-system/webapp`, severity `info`, timestamp Unix 1664520029
/// (2022-09-30T06:40:29Z), message `message`, reason `reason`, metadata `{test: metadata}`,
/// reported by `source-controller` instance `source-controller-xyz`.
pub fn fixture_event() -> Event {
    Event {
        involved_object: ObjectReference {
            kind: "GitRepository".to_owned(),
            namespace: "gitops-system".to_owned(),
            name: "webapp".to_owned(),
            ..ObjectReference::default()
        },
        severity: Severity::Info,
        timestamp: Some(
            Timestamp::from_unix(1_664_520_029).expect("1664520029 is a valid Unix time"),
        ),
        message: "message".to_owned(),
        reason: "reason".to_owned(),
        metadata: BTreeMap::from([("test".to_owned(), "metadata".to_owned())]),
        reporting_controller: "source-controller".to_owned(),
        reporting_instance: "source-controller-xyz".to_owned(),
    }
}

/// A fixture event from `fixtures/events/<name>` as a provider sees it: parsed, then through
/// Flux's metadata cleanup and prefix stripping (what `herald send` and the daemon do).
pub fn fixture(name: &str) -> Event {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/events")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    let mut event: Event =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    herald_core::metadata::prepare_without_alert(&mut event);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_encodes_like_flux() {
        let json = String::from_utf8(herald_core::json::to_vec(&fixture_event()).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"involvedObject":{"kind":"GitRepository","namespace":"gitops-system","name":"webapp"},"severity":"info","timestamp":"2022-09-30T06:40:29Z","message":"message","reason":"reason","metadata":{"test":"metadata"},"reportingController":"source-controller","reportingInstance":"source-controller-xyz"}"#
        );
    }
}
