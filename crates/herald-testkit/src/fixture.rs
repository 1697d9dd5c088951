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

/// The realistic event the render benchmarks use: a Kustomization with a two-line message
/// and three metadata keys (revision, summary, env).
pub fn bench_event(severity: Severity) -> Event {
    Event {
        involved_object: ObjectReference {
            kind: "Kustomization".into(),
            namespace: "flux-system".into(),
            name: "apps".into(),
            uid: "7d0cdc51-ddcf-4743-b223-83ca5c699632".into(),
            api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
            ..Default::default()
        },
        severity,
        timestamp: Timestamp::from_unix(1_764_324_000),
        message: "Deployment/apps/podinfo configured\nService/apps/podinfo unchanged".into(),
        reason: "ReconciliationSucceeded".into(),
        metadata: [
            (
                "revision",
                "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
            ),
            ("summary", "Production cluster"),
            ("env", "prod"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        reporting_controller: "kustomize-controller".into(),
        reporting_instance: "kustomize-controller-7c7b47f5f-8bhrp".into(),
    }
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
