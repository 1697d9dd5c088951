//! `otel`: goldens of the exact protobuf body and headers, the body decoded by the official
//! OpenTelemetry definitions (Python's `opentelemetry-proto`, in the `otlp-collector.sh`
//! peer) and checked field by field against Flux's rules, the skipped kind, the Alert that
//! must be there, the answer check and configuration errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use herald_alerting::otel::proto;
use herald_core::{Event, ProviderConfig, ProviderType, Severity};
use herald_testkit::{
    Recorded, Recorder, Reply, assert_golden, fixture_event, run_peer, start_peer, stop_peer,
};
use prost::Message as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{build, build_err, cases, config, golden, request_summary};

const HEADERS: &[&str] = &["content-type", "authorization", "x-scope-orgid"];

/// The Alert of Flux's `TestOTEL_Post`, as a manifest object.
pub(crate) fn flux_alert() -> Value {
    json!({
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Alert",
        "metadata": {"name": "test-alert", "namespace": "test-namespace", "uid": "test-alert-uid"},
        "spec": {"providerRef": {"name": "otel"}}
    })
}

/// Flux's `TestOTEL_Post` event: `testEvent()` with the metadata an Alert's `eventMetadata`
/// adds.
fn flux_event() -> Event {
    let mut e = fixture_event();
    for (k, v) in [
        ("cluster", "my-cluster"),
        ("region", "us-east-2"),
        ("env", "prod"),
    ] {
        e.metadata.insert(k.into(), v.into());
    }
    e
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, herald_core::SecretString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect()
}

/// The configuration of each golden case, exercising Flux's authorization rules.
fn case_config(case: &str, url: &str) -> ProviderConfig {
    let host = url.trim_start_matches("http://");
    let mut cfg = config(ProviderType::Otel, &format!("{url}/v1/traces"));
    match case {
        // No `headers`: no Authorization, whatever the Secret holds; the address's userinfo
        // and query are dropped.
        "info" => {
            cfg.address = format!("http://user:pass@{host}/v1/traces?tenant=a").into();
            cfg.token = Some("tok-not-sent".into());
        }
        // `headers` and a token: Bearer.
        "error" | "flux" => {
            cfg.headers = headers(&[("X-Scope-OrgID", "tenant-1")]);
            cfg.token = Some("tok-123".into());
        }
        // `headers`, a username and a password: Basic.
        "no-metadata" => {
            cfg.headers = headers(&[("X-Scope-OrgID", "tenant-1")]);
            cfg.username = "flux".into();
            cfg.password = Some("s3cret".into());
        }
        // The Secret's own Authorization wins; its Content-Type does not.
        "unicode" => {
            cfg.headers = headers(&[
                ("Authorization", "Api-Key k-1"),
                ("Content-Type", "application/json"),
            ]);
            cfg.token = Some("tok-123".into());
        }
        other => panic!("no configuration for case {other}"),
    }
    cfg
}

fn all_cases() -> Vec<(&'static str, Event)> {
    let mut all = cases();
    all.push(("flux", flux_event()));
    all
}

/// The body in hex, 32 bytes a line: the `<case>.pb.hex` goldens.
fn hex_lines(body: &[u8]) -> String {
    body.chunks(32)
        .map(|chunk| {
            let mut line: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            line.push('\n');
            line
        })
        .collect()
}

/// Posts `event` for `alert` and returns every request it made.
async fn post(cfg: &ProviderConfig, event: &Event, alert: &Value, rec: &Recorder) -> Vec<Recorded> {
    let before = rec.requests().len();
    build(cfg).post_for(event, alert).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    rec.requests().split_off(before)
}

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    for (case, event) in all_cases() {
        let got = post(&case_config(case, &rec.url()), &event, &flux_alert(), &rec).await;
        assert_eq!(got.len(), 1, "{case}");
        assert_golden(
            &golden(&format!("otel/{case}.pb.hex")),
            &hex_lines(&got[0].body),
        );
        assert_golden(
            &golden(&format!("otel/{case}.request.txt")),
            &request_summary(&got[0], HEADERS),
        );
    }
}

/// What Flux's rules make of `event` for `alert`, in protobuf's JSON mapping with the
/// `.proto` field names (what the peer prints); the span ID is the one the body carries
/// (Flux's is random, herald's derived from the span).
fn expected(event: &Event, alert: &Value, span_id: &Value) -> Value {
    let meta = &alert["metadata"];
    let (uid, namespace, name) = (
        meta["uid"].as_str().unwrap(),
        meta["namespace"].as_str().unwrap(),
        meta["name"].as_str().unwrap(),
    );
    let revision = match (
        event.metadata.get("app-version"),
        event.metadata.get("oci-digest"),
    ) {
        (Some(a), Some(d)) => format!("{a}@{d}"),
        _ => event
            .metadata
            .get("revision")
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
    };
    let hash = Sha256::digest(format!("{uid}:{revision}"));
    let trace_id = base64::engine::general_purpose::STANDARD.encode(&hash[..16]);
    let string = |k: &str, v: &str| json!({"key": k, "value": {"string_value": v}});
    let o = &event.involved_object;
    let mut attributes = vec![
        string("object.uid", &o.uid),
        string("object.kind", &o.kind),
        string("object.name", &o.name),
        string("object.namespace", &o.namespace),
    ];
    attributes.extend(event.metadata.iter().map(|(k, v)| string(k, v)));
    // A oneof member is present even when empty (as Go's encoder writes it too): an event
    // without UID has `object.uid` with `string_value: ""`.
    let status = if event.severity == Severity::Error {
        json!({"code": "STATUS_CODE_ERROR", "message": event.message})
    } else {
        json!({"code": "STATUS_CODE_OK"})
    };
    let start = event
        .timestamp
        .unwrap()
        .as_offset_date_time()
        .unix_timestamp_nanos()
        .to_string();
    json!({"resource_spans": [{
        "resource": {"attributes": [
            string("service.instance.id", uid),
            string("service.name", &format!("{namespace}/{name}")),
            string("service.namespace", namespace),
        ]},
        "scope_spans": [{
            "scope": {"name": "flux:notification-controller"},
            "spans": [{
                "trace_id": trace_id,
                "span_id": span_id,
                "name": format!("{}: {}/{}", o.kind, o.namespace, o.name),
                "kind": "SPAN_KIND_INTERNAL",
                "start_time_unix_nano": start,
                "end_time_unix_nano": start,
                "attributes": attributes,
                "status": status,
                "flags": 0x301,
            }]
        }],
        "schema_url": "https://opentelemetry.io/schemas/1.34.0"
    }]})
}

/// Stops the peer and removes its state when the test ends, passed or panicked.
struct Peer {
    port: String,
    state: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop_peer("otlp-collector.sh", &self.port, &self.state);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Every golden case through a receiver that decodes with Python's `opentelemetry-proto`:
/// the bytes are the golden's, and the decoded request is what Flux's rules make of the
/// event. Skipped, loudly, only when the peer cannot be installed (never under `CI=true`).
#[tokio::test]
async fn the_official_definitions_decode_what_flux_would_send() {
    let state = std::env::temp_dir().join(format!("herald-alerting-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let Some(facts) = start_peer("otlp-collector.sh", &state) else {
        eprintln!(
            "SKIPPED the_official_definitions_decode_what_flux_would_send: peer \
             otlp-collector.sh could not be installed (it exited 3); the OTLP decode check did \
             NOT run"
        );
        let _ = std::fs::remove_dir_all(&state);
        return;
    };
    let collector = facts["URL"].clone();
    let peer = Peer {
        port: collector.rsplit(':').next().unwrap().to_owned(),
        state,
    };
    let rec = Recorder::start().await;
    for (case, event) in all_cases() {
        let alert = flux_alert();
        build(&case_config(case, &collector))
            .post_for(&event, &alert)
            .await
            .unwrap();
        let recorded = post(&case_config(case, &rec.url()), &event, &alert, &rec).await;
        let out = run_peer(
            "otlp-collector.sh",
            &peer.state,
            &["messages", "1", "--port", &peer.port],
        );
        let record: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(record["path"], "/v1/traces", "{case}");
        assert_eq!(record["headers"]["content-type"], "application/x-protobuf");
        assert_eq!(
            record["headers"].get("authorization"),
            recorded[0]
                .header("authorization")
                .map(Value::from)
                .as_ref(),
            "{case}"
        );
        assert!(record.get("error").is_none(), "{case}: {record}");
        let hex: String = recorded[0]
            .body
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            record["body_hex"], hex,
            "{case}: the same bytes as the golden's"
        );
        let span = &record["request"]["resource_spans"][0]["scope_spans"][0]["spans"][0];
        let span_id = &span["span_id"];
        let id = base64::engine::general_purpose::STANDARD
            .decode(span_id.as_str().unwrap())
            .unwrap();
        assert_eq!(id.len(), 8, "{case}");
        assert_eq!(
            record["request"],
            expected(&event, &alert, span_id),
            "{case}"
        );
    }
}

/// The trace ID of the one span of an export body.
fn trace_id(body: &[u8]) -> Vec<u8> {
    let mut request = proto::ExportTraceServiceRequest::decode(body).unwrap();
    let mut scope = request.resource_spans.remove(0).scope_spans.remove(0);
    scope.spans.remove(0).trace_id
}

#[tokio::test]
async fn one_trace_per_alert_and_revision() {
    let rec = Recorder::start().await;
    let cfg = case_config("error", &rec.url());
    let mut event = flux_event();
    event
        .metadata
        .insert("revision".into(), "main@sha1:1".into());
    let a = post(&cfg, &event, &flux_alert(), &rec).await;
    event.severity = Severity::Error;
    event.reason = "Failed".into();
    let b = post(&cfg, &event, &flux_alert(), &rec).await;
    let mut other = flux_alert();
    other["metadata"]["uid"] = "another-uid".into();
    let c = post(&cfg, &event, &other, &rec).await;
    assert_eq!(
        trace_id(&a[0].body),
        trace_id(&b[0].body),
        "same Alert, same revision"
    );
    assert_ne!(trace_id(&a[0].body), trace_id(&c[0].body), "another Alert");
    let want = Sha256::digest("test-alert-uid:main@sha1:1");
    assert_eq!(trace_id(&a[0].body), want[..16]);
}

#[tokio::test]
async fn helm_repository_events_send_nothing() {
    let rec = Recorder::start().await;
    let mut event = fixture_event();
    event.involved_object.kind = "HelmRepository".into();
    let got = post(
        &case_config("error", &rec.url()),
        &event,
        &flux_alert(),
        &rec,
    )
    .await;
    assert!(got.is_empty());
    event.involved_object.kind = "HelmChart".into();
    let got = post(
        &case_config("error", &rec.url()),
        &event,
        &flux_alert(),
        &rec,
    )
    .await;
    assert_eq!(got.len(), 1, "HelmChart is traced");
}

#[tokio::test]
async fn without_an_alert_nothing_is_sent_and_the_error_says_why() {
    let rec = Recorder::start().await;
    let err = build(&case_config("error", &rec.url()))
        .post(&fixture_event())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "provider flux-system/otel: an otel delivery needs the Alert that matched the event \
         (its UID and name make the trace); `herald send` takes it with --alert"
    );
    assert!(!err.is_retryable());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rec.requests().is_empty());
}

#[tokio::test]
async fn a_rejected_span_fails_the_delivery() {
    let rec = Recorder::start().await;
    // ExportTraceServiceResponse { partial_success { rejected_spans: 1, error_message: "old" } }
    rec.push_reply(
        Reply::status(200)
            .header("content-type", "application/x-protobuf")
            .body(vec![0x0a, 0x07, 0x08, 0x01, 0x12, 0x03, b'o', b'l', b'd']),
    );
    let err = build(&case_config("error", &rec.url()))
        .post_for(&fixture_event(), &flux_alert())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the collector rejected the span: old"),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[test]
fn configuration_errors_name_the_field() {
    let err = build_err(&config(
        ProviderType::Otel,
        "ftp://collector:4318/v1/traces",
    ));
    assert_eq!(
        err,
        "spec.address: invalid OTLP traces URL: scheme \"ftp\" is not http or https"
    );
    let mut cfg = config(ProviderType::Otel, "http://collector:4318/v1/traces");
    cfg.headers = headers(&[("X-Bad", "a\u{1}b")]);
    let err = build_err(&cfg);
    assert!(err.starts_with("secret key \"headers\": "), "{err}");
    assert!(!err.contains("a\u{1}b"), "{err}");
}

/// From manifests: the Secret's `headers` is a YAML map, the token authorizes as Bearer, and
/// the Alert's manifest object names the trace's service.
#[tokio::test]
async fn builds_from_manifests_with_the_secret_headers() {
    let rec = Recorder::start().await;
    let yaml = format!(
        r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: traces, namespace: flux-system}}
spec: {{type: otel, address: "{}/v1/traces", secretRef: {{name: otlp}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: otlp, namespace: flux-system}}
stringData:
  token: otlp-token
  headers: |
    X-Scope-OrgID: tenant-7
"#,
        rec.url()
    );
    let (set, errors) = herald_core::manifest::parse_str(std::path::Path::new("otel.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let cfg = set.provider_config(&set.providers[0]).unwrap();
    let mut registry = herald_core::Registry::new();
    herald_alerting::register(&mut registry);
    let alert = json!({"metadata": {"name": "on-call", "namespace": "flux-system"}});
    registry
        .build(&cfg)
        .unwrap()
        .post_for(&fixture_event(), &alert)
        .await
        .unwrap();
    let got = rec.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(
        request_summary(&got, HEADERS),
        "POST /v1/traces\ncontent-type: application/x-protobuf\nauthorization: Bearer otlp-token\n\
         x-scope-orgid: tenant-7\n"
    );
    let request = proto::ExportTraceServiceRequest::decode(got.body.as_slice()).unwrap();
    let resource = request.resource_spans[0].resource.clone().unwrap();
    let service: Vec<String> = resource
        .attributes
        .iter()
        .map(|kv| {
            format!(
                "{}={:?}",
                kv.key,
                kv.value.as_ref().and_then(|v| v.value.clone())
            )
        })
        .collect();
    assert_eq!(
        service,
        [
            r#"service.instance.id=Some(StringValue("flux-system/on-call"))"#,
            r#"service.name=Some(StringValue("flux-system/on-call"))"#,
            r#"service.namespace=Some(StringValue("flux-system"))"#,
        ],
        "an Alert without metadata.uid stands in with <namespace>/<name>"
    );
}
