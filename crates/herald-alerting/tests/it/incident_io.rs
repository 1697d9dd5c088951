//! `incident.io`: goldens, Flux's own assertions, the firing/resolved pair, Progressing,
//! config errors.

use std::time::Duration;

use herald_core::{ProviderConfig, ProviderType, Severity};
use herald_testkit::{Recorder, assert_golden, fixture_event};

use crate::{build, build_err, cases, config, deliver, golden, request_summary};

const HEADERS: &[&str] = &["content-type", "authorization"];

fn incident_io(url: &str) -> ProviderConfig {
    let mut cfg = config(
        ProviderType::IncidentIo,
        &format!("{url}/v2/alert_events/http/01HXYZ"),
    );
    cfg.token = Some("inc-api-key-1234".into());
    cfg
}

fn body(r: &herald_testkit::Recorded) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    for (case, event) in cases() {
        let got = deliver(&incident_io(&rec.url()), &event, &rec).await;
        assert_golden(&golden(&format!("incident.io/{case}.json")), got.body_str());
        assert_golden(
            &golden(&format!("incident.io/{case}.request.txt")),
            &request_summary(&got, HEADERS),
        );
    }
}

#[tokio::test]
async fn flux_test_event_then_its_recovery() {
    // Flux's TestIncidentio_Post and TestIncidentio_PostErrorSeverity, as one object's
    // failure and recovery: the same key fires and resolves.
    let rec = Recorder::start().await;
    let cfg = incident_io(&rec.url());
    let mut event = fixture_event();
    event.involved_object.uid = "2f5c9d21-b62c-4a35-9b17-1b0f4c8e2d3a".into();
    event.severity = Severity::Error;
    let fired = body(&deliver(&cfg, &event, &rec).await);
    event.severity = Severity::Info;
    let got = deliver(&cfg, &event, &rec).await;
    assert_eq!(got.header("authorization"), Some("Bearer inc-api-key-1234"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let resolved = body(&got);
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["metadata"]["severity"], "error");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved,
        serde_json::json!({
            "title": "gitrepository/webapp.gitops-system: reason",
            "status": "resolved",
            "deduplication_key": "2f5c9d21-b62c-4a35-9b17-1b0f4c8e2d3a",
            "description": "message",
            "metadata": {"test": "metadata", "severity": "info", "reason": "reason",
                         "reportingController": "source-controller"}
        })
    );
    assert_eq!(fired["deduplication_key"], resolved["deduplication_key"]);
}

#[tokio::test]
async fn progressing_sends_nothing() {
    let rec = Recorder::start().await;
    let mut event = fixture_event();
    event.reason = "Progressing".into();
    build(&incident_io(&rec.url())).post(&event).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rec.requests().is_empty());
}

#[test]
fn the_token_and_a_url_are_required() {
    let mut cfg = config(
        ProviderType::IncidentIo,
        "https://api.incident.io/v2/alert_events/http/some-id",
    );
    assert_eq!(
        build_err(&cfg),
        "secret key \"token\": empty incident.io API token"
    );
    cfg.token = Some("key".into());
    cfg.address = "invalid-url".into();
    let err = build_err(&cfg);
    assert!(
        err.starts_with("spec.address: invalid incident.io alert source URL: "),
        "{err}"
    );
}
