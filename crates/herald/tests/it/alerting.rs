//! The alerting family through `herald serve`: against the real Prometheus Alertmanager
//! (herald-testkit's `peers/alertmanager.sh`), and PagerDuty on a recording server.

use std::time::{Duration, Instant, SystemTime};

use crate::support::{Daemon, alert, flux_event, manifests, provider, request};

struct Peer {
    state: tempfile::TempDir,
    port: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        herald_testkit::stop_peer("alertmanager.sh", &self.port, self.state.path());
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
