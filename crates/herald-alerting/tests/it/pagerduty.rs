//! `pagerduty`: goldens of both requests, the trigger/resolve pair, Progressing, config errors.

use std::time::Duration;

use herald_core::{Event, ProviderConfig, ProviderType, Severity, Timestamp};
use herald_testkit::{Recorded, Recorder, Reply, assert_golden, fixture_event};

use crate::{build, build_err, cases, config, golden, request_summary};

const HEADERS: &[&str] = &["content-type", "authorization"];

fn pagerduty(url: &str) -> ProviderConfig {
    let mut cfg = config(ProviderType::PagerDuty, &format!("{url}/v2/enqueue"));
    cfg.channel = "notARealRoutingKey".into();
    cfg
}

/// Flux's `TestToPagerDutyV2Event` error case: GitRepository `flux-system/test-app`, UID 1234.
fn flux_failed() -> Event {
    let mut e = fixture_event();
    e.involved_object.namespace = "flux-system".into();
    e.involved_object.name = "test-app".into();
    e.involved_object.uid = "1234".into();
    e.severity = Severity::Error;
    e.timestamp = Timestamp::parse("2020-01-01T00:00:00Z").ok();
    e.reason = "Failed".into();
    e.metadata = [("key1", "val1"), ("key2", "val2")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    e
}

/// Posts `event` and returns every request it made.
async fn post(cfg: &ProviderConfig, event: &Event, rec: &Recorder) -> Vec<Recorded> {
    let before = rec.requests().len();
    build(cfg).post(event).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    rec.requests().split_off(before)
}

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    let mut all = cases();
    all.push(("flux-failed", flux_failed()));
    for (case, event) in all {
        let got = post(&pagerduty(&rec.url()), &event, &rec).await;
        let info = event.severity == Severity::Info;
        assert_eq!(got.len(), if info { 2 } else { 1 }, "{case}");
        assert_golden(
            &golden(&format!("pagerduty/{case}.json")),
            got[0].body_str(),
        );
        if info {
            assert_golden(
                &golden(&format!("pagerduty/{case}.change.json")),
                got[1].body_str(),
            );
        }
        let summary: String = got.iter().map(|r| request_summary(r, HEADERS)).collect();
        assert_golden(&golden(&format!("pagerduty/{case}.request.txt")), &summary);
    }
}

#[tokio::test]
async fn a_recovery_resolves_what_the_failure_triggered() {
    let rec = Recorder::start().await;
    let cfg = pagerduty(&rec.url());
    let mut event = flux_failed();
    let trigger = post(&cfg, &event, &rec).await;
    event.severity = Severity::Info;
    event.reason = "Succeeded".into();
    let resolve = post(&cfg, &event, &rec).await;
    let body = |r: &Recorded| -> serde_json::Value { serde_json::from_slice(&r.body).unwrap() };
    assert_eq!(body(&trigger[0])["event_action"], "trigger");
    assert_eq!(body(&resolve[0])["event_action"], "resolve");
    assert_eq!(body(&trigger[0])["dedup_key"], "1234");
    assert_eq!(body(&resolve[0])["dedup_key"], "1234");
    assert_eq!(resolve[1].path, "/v2/change/enqueue");
    assert_eq!(
        body(&resolve[1])["payload"]["summary"],
        "succeeded: gitrepository/test-app"
    );
}

#[tokio::test]
async fn progressing_and_trace_events() {
    let rec = Recorder::start().await;
    let cfg = pagerduty(&rec.url());
    let mut event = fixture_event();
    event.reason = "Progressing".into();
    assert!(
        post(&cfg, &event, &rec).await.is_empty(),
        "Progressing sends nothing"
    );
    event.reason = "Other".into();
    event.severity = Severity::Trace;
    let got = post(&cfg, &event, &rec).await;
    assert_eq!(got.len(), 1, "a trace resolves, without a change event");
    assert!(got[0].body_str().contains(r#""event_action":"resolve""#));
}

#[tokio::test]
async fn a_failed_change_event_is_a_failure_of_the_delivery() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(202));
    rec.push_reply(Reply::status(400).body("invalid change event"));
    let err = build(&pagerduty(&rec.url()))
        .post(&fixture_event())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("failed sending change event: "),
        "{err}"
    );
    assert_eq!(err.status(), Some(400));
    rec.push_reply(Reply::status(400).body("invalid event"));
    let err = build(&pagerduty(&rec.url()))
        .post(&fixture_event())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("failed sending event: "),
        "{err}"
    );
    assert_eq!(
        rec.requests().len(),
        3,
        "no change event after a failed event"
    );
}

#[test]
fn the_routing_key_and_a_url_are_required() {
    let mut cfg = config(
        ProviderType::PagerDuty,
        "https://events.pagerduty.com/v2/enqueue",
    );
    assert!(
        build_err(&cfg).starts_with("spec.channel: the PagerDuty routing key is empty"),
        "{}",
        build_err(&cfg)
    );
    cfg.channel = "key".into();
    cfg.address = "not a url".into();
    assert_eq!(
        build_err(&cfg),
        "spec.address: invalid PagerDuty endpoint URL: not an absolute URL (expected http:// or https://)"
    );
}
