//! The eventhub family through `herald serve`, against the AMQP 1.0 Event Hubs stand-in
//! (`../shared/peers/eventhub-mock.sh`), whose log must hold the event JSON.

use std::time::{Duration, Instant};

use crate::support::{Daemon, alert, flux_event, manifests, request};

struct Peer {
    state: tempfile::TempDir,
    port: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        herald_testkit::stop_peer("eventhub-mock.sh", &self.port, self.state.path());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_reaches_the_hub_through_the_daemon() {
    let state = tempfile::tempdir().unwrap();
    let Some(facts) = herald_testkit::start_peer("eventhub-mock.sh", state.path()) else {
        return; // start_peer said SKIPPED, loudly: the peer could not be installed.
    };
    let log = facts["LOG"].clone();
    let _peer = Peer {
        port: facts["URL"].rsplit(':').next().unwrap().to_owned(),
        state,
    };
    let text = [
        format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: hub, namespace: apps}}\nspec:\n  type: azureeventhub\n  secretRef: {{name: hub}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: hub, namespace: apps}}\nstringData:\n  address: \"{}\"\n",
            facts["CONNECTION_STRING"]
        ),
        alert("to-hub", "apps", "hub", "  eventSources: [{kind: Kustomization, name: '*'}]"),
    ]
    .concat();
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &[]);
    let r = request(
        &d.events,
        "POST",
        "/",
        &[],
        flux_event("to the event hub").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                    v["kind"] == "event"
                        && serde_json::from_str::<serde_json::Value>(
                            v["body"].as_str().unwrap_or("{}"),
                        )
                        .is_ok_and(|e| {
                            e["message"] == "to the event hub"
                                && e["metadata"]["revision"].is_string()
                        })
                })
            });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no event in the broker log; herald logs:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
