//! `sentry`: goldens of the envelope, the envelope parsed back, the DSN key, config errors.

use std::time::{Duration, SystemTime};

use herald_core::{ProviderType, Timestamp};
use herald_testkit::{Recorded, Recorder, Reply, assert_golden, fixture_event};
use sentry_types::Auth;
use sentry_types::protocol::v7::{Context, Envelope, EnvelopeItem, Level, Value};

use crate::{build_err, cases, config, deliver, fixture, golden, request_summary};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// A DSN for the recorder at `url` with project 42.
pub(crate) fn dsn(url: &str, key: &str) -> String {
    format!("{}/42", url.replace("http://", &format!("http://{key}@")))
}

fn summary(r: &Recorded) -> String {
    // The client version changes with every release; the rest of the header must not.
    request_summary(r, &["content-type", "x-sentry-auth"]).replace(
        concat!("herald/", env!("CARGO_PKG_VERSION")),
        "herald/<version>",
    )
}

fn parse(r: &Recorded) -> Envelope {
    Envelope::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not an envelope ({e}): {}", r.body_str()))
}

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    for (case, event) in cases() {
        let mut cfg = config(ProviderType::Sentry, &dsn(&rec.url(), KEY));
        if case != "no-metadata" {
            cfg.channel = "production".into();
        }
        let got = deliver(&cfg, &event, &rec).await;
        assert_golden(&golden(&format!("sentry/{case}.envelope")), got.body_str());
        assert_golden(
            &golden(&format!("sentry/{case}.request.txt")),
            &summary(&got),
        );
    }
}

#[tokio::test]
async fn error_events_become_sentry_errors() {
    let rec = Recorder::start().await;
    let mut cfg = config(ProviderType::Sentry, &dsn(&rec.url(), KEY));
    cfg.channel = "production".into();
    let event = fixture("kustomization-error.json");
    let got = deliver(&cfg, &event, &rec).await;

    assert_eq!(got.path, "/api/42/envelope/");
    assert_eq!(
        got.header("content-type"),
        Some("application/x-sentry-envelope")
    );
    let auth: Auth = got.header("x-sentry-auth").unwrap().parse().unwrap();
    assert_eq!(auth.public_key(), KEY);
    assert_eq!(auth.version(), 7);
    assert!(auth.client_agent().unwrap().starts_with("herald/"));

    let envelope = parse(&got);
    let items: Vec<&EnvelopeItem> = envelope.items().collect();
    assert_eq!(items.len(), 1);
    let EnvelopeItem::Event(e) = items[0] else {
        panic!("not an event: {:?}", items[0])
    };
    assert_eq!(envelope.uuid(), Some(&e.event_id));
    assert_eq!(e.level, Level::Error);
    assert_eq!(e.message.as_deref(), Some(event.message.as_str()));
    assert_eq!(e.transaction.as_deref(), Some("Kustomization: apps/webapp"));
    assert_eq!(e.server_name.as_deref(), Some("kustomize-controller"));
    assert_eq!(e.environment.as_deref(), Some("production"));
    let ts = Timestamp::parse("2022-10-28T07:26:19Z").unwrap();
    assert_eq!(e.timestamp, SystemTime::from(ts.as_offset_date_time()));
    let Some(Context::Other(metadata)) = e.contexts.get("metadata") else {
        panic!("no metadata context: {:?}", e.contexts)
    };
    assert_eq!(
        metadata["revision"],
        Value::from("main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1")
    );
    assert_eq!(metadata["summary"], Value::from("Production cluster"));
    assert_eq!(e.tags["flux_reason"], "ValidationFailed");
    assert_eq!(e.tags["flux_involved_object_kind"], "Kustomization");

    // A retried delivery of the same event carries the same event id (Sentry drops the copy).
    let again = parse(&deliver(&cfg, &event, &rec).await);
    assert_eq!(again.uuid(), envelope.uuid());
}

#[tokio::test]
async fn info_events_become_transactions() {
    let rec = Recorder::start().await;
    let cfg = config(ProviderType::Sentry, &dsn(&rec.url(), KEY));
    let event = fixture_event();
    let envelope = parse(&deliver(&cfg, &event, &rec).await);
    let items: Vec<&EnvelopeItem> = envelope.items().collect();
    let EnvelopeItem::Transaction(t) = items[0] else {
        panic!("not a transaction: {:?}", items[0])
    };
    assert_eq!(
        t.name.as_deref(),
        Some("GitRepository: gitops-system/webapp")
    );
    assert_eq!(t.environment, None, "no channel, no environment");
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_664_520_029);
    assert_eq!((t.start_timestamp, t.timestamp), (at, Some(at)));
    for (k, v) in [
        ("flux_involved_object_kind", "GitRepository"),
        ("flux_involved_object_namespace", "gitops-system"),
        ("flux_involved_object_name", "webapp"),
        ("flux_reporting_controller", "source-controller"),
        ("flux_reporting_instance", "source-controller-xyz"),
        ("flux_reason", "reason"),
        ("test", "metadata"),
    ] {
        assert_eq!(t.tags.get(k).map(String::as_str), Some(v), "tag {k}");
    }
    let Some(Context::Trace(trace)) = t.contexts.get("trace") else {
        panic!("no trace context")
    };
    assert_eq!(trace.op.as_deref(), Some("event"));
    assert_eq!(trace.description.as_deref(), Some("message"));
    assert_eq!(t.extra["message"], Value::from("message"));
}

#[tokio::test]
async fn trace_events_send_nothing() {
    let rec = Recorder::start().await;
    let cfg = config(ProviderType::Sentry, &dsn(&rec.url(), KEY));
    let mut event = fixture_event();
    event.severity = herald_core::Severity::Trace;
    crate::build(&cfg).post(&event).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rec.requests().is_empty());
}

#[tokio::test]
async fn a_failed_send_is_a_failure() {
    // Flux's SDK transport swallows this; herald reports it.
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(403).body(format!(r#"{{"detail":"bad key {KEY}"}}"#)));
    let notifier = crate::build(&config(ProviderType::Sentry, &dsn(&rec.url(), KEY)));
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(!err.is_retryable());
    assert!(
        !format!("{err} {err:?} {notifier:?}").contains(KEY),
        "{err}"
    );

    // Nobody listening: a transient failure, not a silent success.
    let notifier = crate::build(&config(
        ProviderType::Sentry,
        &format!("http://{KEY}@127.0.0.1:1/42"),
    ));
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[test]
fn bad_dsns_are_build_errors() {
    let err = build_err(&config(ProviderType::Sentry, ""));
    assert_eq!(err, "spec.address: DSN cannot be empty");
    for (dsn, why) in [
        ("https://o1.ingest.sentry.io/42", "username is empty"),
        ("https://key@o1.ingest.sentry.io/", "empty path"),
        ("ftp://key@o1.ingest.sentry.io/42", "no valid scheme"),
        ("not a dsn", "no valid url"),
    ] {
        let mut cfg = config(ProviderType::Sentry, dsn);
        cfg.address_from_secret = true;
        let err = build_err(&cfg);
        assert!(
            err.starts_with("secret key \"address\": invalid Sentry DSN"),
            "{dsn}: {err}"
        );
        assert!(err.contains(why), "{dsn}: {err}");
        assert!(!err.contains("o1.ingest"), "{dsn}: {err}");
    }
}
