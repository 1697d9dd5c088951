//! The alerting family through `herald serve`: against the real Prometheus Alertmanager
//! (herald-testkit's `peers/alertmanager.sh`), PagerDuty on a recording server, and `otel`
//! spans, through `herald serve` and `herald send`, to an OTLP receiver that decodes them with
//! the official OpenTelemetry definitions (`peers/otlp-collector.sh`).

use std::time::{Duration, Instant, SystemTime};

use crate::support::{Daemon, alert, flux_event, manifests, provider, request};

struct Peer {
    script: &'static str,
    state: tempfile::TempDir,
    port: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        herald_testkit::stop_peer(self.script, &self.port, self.state.path());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_receives_the_alert_through_the_daemon() {
    let state = tempfile::tempdir().unwrap();
    let Some(facts) = herald_testkit::start_peer("alertmanager.sh", state.path()) else {
        return; // start_peer said SKIPPED, loudly: the peer could not be installed.
    };
    let url = facts["URL"].clone();
    let host = url.trim_start_matches("http://").to_owned();
    let _peer = Peer {
        script: "alertmanager.sh",
        state,
        port: host.rsplit(':').next().unwrap().to_owned(),
    };

    let dir = manifests(
        &[
            provider(
                "am",
                "apps",
                "alertmanager",
                &format!("{url}/api/v2/alerts"),
            ),
            alert(
                "to-am",
                "apps",
                "am",
                "  eventSources: [{kind: Kustomization, name: '*'}]\n  eventMetadata: {env: e2e}",
            ),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);
    let r = request(
        &d.events,
        "POST",
        "/",
        &[],
        flux_event("validation error from the e2e test").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202);

    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let resp = request(&host, "GET", "/api/v2/alerts", &[], b"").await;
        assert_eq!(resp.status, 200, "{}", resp.body_str());
        let alerts: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let hit = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == "FluxKustomizationValidationfailed")
            .cloned();
        if let Some(hit) = hit {
            break hit;
        }
        assert!(
            Instant::now() < deadline,
            "no alert in Alertmanager; herald logs:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let labels = &found["labels"];
    assert_eq!(labels["namespace"], "apps");
    assert_eq!(labels["name"], "webapp");
    assert_eq!(labels["kind"], "Kustomization");
    assert_eq!(labels["severity"], "error");
    assert_eq!(labels["reason"], "ValidationFailed");
    assert_eq!(labels["env"], "e2e");
    assert_eq!(
        labels["revision"],
        "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
    );
    assert_eq!(
        found["annotations"]["message"],
        "validation error from the e2e test"
    );
    assert_eq!(found["status"]["state"], "active");
    // Still active a minute from now: Alertmanager's endsAt lies beyond that.
    let ends = herald_core::Timestamp::parse(found["endsAt"].as_str().unwrap()).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        ends.unix() > now + 60,
        "endsAt {ends} is not beyond a minute from now"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pagerduty_triggers_then_resolves_through_the_daemon() {
    let pd = herald_testkit::Recorder::start().await;
    let dir = manifests(
        &[
            provider(
                "pd",
                "apps",
                "pagerduty",
                &format!("{}/v2/enqueue", pd.url()),
            ) + "  channel: e2e-routing-key\n",
            alert(
                "to-pd",
                "apps",
                "pd",
                "  eventSources: [{kind: Kustomization, name: '*'}]",
            ),
        ]
        .concat(),
    );
    let d = Daemon::start(dir.path(), &[]);
    let failed = flux_event("validation error from the e2e test");
    let recovered = failed
        .replace(r#""severity":"error""#, r#""severity":"info""#)
        .replace("ValidationFailed", "ReconciliationSucceeded")
        .replace("validation error from the e2e test", "applied");
    for event in [failed, recovered] {
        let r = request(&d.events, "POST", "/", &[], event.as_bytes()).await;
        assert_eq!(r.status, 202);
    }
    let got = pd.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "herald logs:\n{}", d.logs());
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v2/enqueue", "/v2/enqueue", "/v2/change/enqueue"]);
    let body = |i: usize| -> serde_json::Value { serde_json::from_slice(&got[i].body).unwrap() };
    let uid = "7d0cdc51-ddcf-4743-b223-83ca5c699632";
    assert_eq!(body(0)["event_action"], "trigger");
    assert_eq!(body(0)["dedup_key"], uid);
    assert_eq!(body(0)["routing_key"], "e2e-routing-key");
    assert_eq!(
        body(0)["payload"]["summary"],
        "validation failed: kustomization/webapp"
    );
    assert_eq!(
        body(0)["payload"]["custom_details"]["metadata"]["revision"],
        "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
    );
    assert_eq!(
        got[1].body_str(),
        format!(
            r#"{{"routing_key":"e2e-routing-key","event_action":"resolve","dedup_key":"{uid}"}}"#
        )
    );
    assert_eq!(
        body(2)["payload"]["summary"],
        "reconciliation succeeded: kustomization/webapp"
    );
}

/// The records of the OTLP receiver, once it has `n` (or after 20 s, whatever it has).
async fn otlp_records(peer: &Peer, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = herald_testkit::run_peer(
            peer.script,
            peer.state.path(),
            &["messages", "--port", &peer.port],
        );
        let records: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn otel_spans_reach_a_collector_through_serve_and_send() {
    use base64::Engine as _;
    use sha2::Digest as _;

    let state = tempfile::tempdir().unwrap();
    let Some(facts) = herald_testkit::start_peer("otlp-collector.sh", state.path()) else {
        return; // start_peer said SKIPPED, loudly: the peer could not be installed.
    };
    let peer = Peer {
        script: "otlp-collector.sh",
        state,
        port: facts["URL"].rsplit(':').next().unwrap().to_owned(),
    };
    let dir = manifests(
        &[
            provider("otel", "apps", "otel", &facts["TRACES_URL"]) + "  secretRef: {name: otlp}\n",
            "---\napiVersion: v1\nkind: Secret\nmetadata: {name: otlp, namespace: apps}\n\
             stringData:\n  token: e2e-otlp-token\n  headers: |\n    X-Scope-OrgID: e2e\n"
                .to_owned(),
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\n\
             metadata: {name: to-otel, namespace: apps, uid: e2e-alert-uid}\n\
             spec:\n  providerRef: {name: otel}\n  eventMetadata: {env: e2e}\n  \
             eventSources: [{kind: Kustomization, name: '*'}]\n"
                .to_owned(),
        ]
        .concat(),
    );
    let event = flux_event("validation error from the e2e test");
    let d = Daemon::start(dir.path(), &[]);
    let r = request(&d.events, "POST", "/", &[], event.as_bytes()).await;
    assert_eq!(r.status, 202);
    let records = otlp_records(&peer, 1).await;
    assert_eq!(records.len(), 1, "herald logs:\n{}", d.logs());
    let served = &records[0];
    assert!(served.get("error").is_none(), "{served}");
    assert_eq!(served["headers"]["authorization"], "Bearer e2e-otlp-token");
    assert_eq!(served["headers"]["x-scope-orgid"], "e2e");
    let rs = &served["request"]["resource_spans"][0];
    assert_eq!(
        rs["resource"]["attributes"][1],
        serde_json::json!({"key": "service.name", "value": {"string_value": "apps/to-otel"}})
    );
    let span = &rs["scope_spans"][0]["spans"][0];
    let hash =
        sha2::Sha256::digest("e2e-alert-uid:main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1");
    assert_eq!(
        span["trace_id"],
        base64::engine::general_purpose::STANDARD.encode(&hash[..16])
    );
    assert_eq!(span["name"], "Kustomization: apps/webapp");
    assert_eq!(
        span["status"],
        serde_json::json!({"code": "STATUS_CODE_ERROR", "message": "validation error from the e2e test"})
    );
    let attributes: Vec<String> = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}={}",
                a["key"].as_str().unwrap(),
                a["value"]["string_value"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        attributes,
        [
            "object.uid=7d0cdc51-ddcf-4743-b223-83ca5c699632",
            "object.kind=Kustomization",
            "object.name=webapp",
            "object.namespace=apps",
            "env=e2e",
            "revision=main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
        ]
    );
    drop(d);

    // `herald send` for the same Alert sends the same span, byte for byte; without the Alert
    // it sends nothing and says what is missing.
    let file = dir.path().join("event.json");
    std::fs::write(&file, &event).unwrap();
    let send = |extra: &[&str]| {
        crate::support::herald()
            .args(["send", "--provider", "apps/otel", "--event"])
            .arg(&file)
            .arg("--manifests")
            .arg(dir.path().join("manifests.yaml"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = send(&["--alert", "to-otel"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("delivered to apps/otel (otel)"), "{stdout}");
    let records = otlp_records(&peer, 2).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["body_hex"], served["body_hex"]);

    let out = send(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("an otel delivery needs the Alert that matched the event"),
        "{stderr}"
    );
    let out = send(&["--alert", "apps/nope"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no Alert apps/nope in the manifests (alerts found: apps/to-otel)"),
        "{stderr}"
    );
    assert_eq!(
        otlp_records(&peer, 2).await.len(),
        2,
        "nothing more was sent"
    );
}
