//! The eventhub family through `herald serve`, against the AMQP 1.0 Event Hubs stand-in
//! (herald-testkit's `peers/eventhub-mock.sh`), whose log must hold the event JSON.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Daemon, alert, flux_event, manifests, request};

/// The broker log's records of `kind` (`event`, `cbs`, ...).
fn records(log: &str, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// The events (Flux JSON) the broker received, in order.
fn events(log: &str) -> Vec<Value> {
    records(log, "event")
        .iter()
        .filter_map(|v| serde_json::from_str::<Value>(v["body"].as_str()?).ok())
        .collect()
}

/// Their messages.
fn messages(log: &str) -> Vec<String> {
    events(log)
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the broker has received at least `n` events.
async fn wait_events(log: &str, n: usize, d: &Daemon) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = events(log);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} events in the broker log; herald logs:\n{}",
            got.len(),
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn hub_provider(secret: &str) -> String {
    [
        format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: hub, namespace: apps}}\n{secret}"
        ),
        alert("to-hub", "apps", "hub", "  eventSources: [{kind: Kustomization, name: '*'}]"),
    ]
    .concat()
}

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
    let events = wait_events(&log, 1, &d).await;
    assert_eq!(events[0]["message"], "to the event hub", "{events:?}");
    assert!(events[0]["metadata"]["revision"].is_string(), "{events:?}");

    // `herald render` shows the message body the broker got, byte for byte, and its target
    // without the key.
    let event = dir.path().join("event.json");
    std::fs::write(&event, flux_event("to the event hub")).unwrap();
    let out = crate::support::herald()
        .args([
            "render",
            "--format",
            "json",
            "--provider",
            "apps/hub",
            "--event",
        ])
        .arg(&event)
        .arg("--manifests")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["method"], "PUBLISH", "{stdout}");
    let hub = facts["CONNECTION_STRING"]
        .split(';')
        .find_map(|p| p.strip_prefix("EntityPath="))
        .unwrap();
    let port = facts["URL"].rsplit(':').next().unwrap();
    let url = shown["url"].as_str().unwrap();
    assert!(
        url.starts_with("amqp") && url.ends_with(&format!(":{port}/{hub}")),
        "{stdout}"
    );
    assert_eq!(
        shown["body"],
        records(&log, "event")[0]["body"],
        "the same bytes"
    );
    let key = facts["CONNECTION_STRING"]
        .split(';')
        .find_map(|p| p.strip_prefix("SharedAccessKey="))
        .unwrap();
    assert!(!stdout.contains(key), "{stdout}");
    assert_eq!(records(&log, "event").len(), 1, "render sends nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_mode_sends_the_token_as_a_jwt_cbs_token() {
    let state = tempfile::tempdir().unwrap();
    let Some(facts) = herald_testkit::start_peer_with(
        "eventhub-mock.sh",
        state.path(),
        "auto",
        &[("EVENTHUB_AUTH", "none")],
    ) else {
        return; // start_peer said SKIPPED, loudly: the peer could not be installed.
    };
    let log = facts["LOG"].clone();
    let _peer = Peer {
        port: facts["URL"].rsplit(':').next().unwrap().to_owned(),
        state,
    };
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.herald-test-jwt.c2lnbmF0dXJl";
    let text = hub_provider(&format!(
        "spec:\n  type: azureeventhub\n  channel: {}\n  address: {}\n  secretRef: {{name: hub}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: hub, namespace: apps}}\nstringData:\n  token: {TOKEN}\n",
        facts["URL"], facts["HUB"]
    ));
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &[]);
    let r = request(
        &d.events,
        "POST",
        "/",
        &[],
        flux_event("jwt mode").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_events(&log, 1, &d).await;
    assert_eq!(messages(&log), ["jwt mode"]);
    let cbs = records(&log, "cbs");
    assert!(!cbs.is_empty(), "no CBS put-token recorded");
    assert!(
        cbs.iter().all(|c| c["type"] == "jwt"),
        "CBS token types: {cbs:?}"
    );
    assert!(!d.logs().contains(TOKEN), "the token was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_is_down_gets_every_event_once_it_is_up() {
    // A free port for the broker, which is not started yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = hub_provider(&format!(
        "spec:\n  type: azureeventhub\n  timeout: 3s\n  secretRef: {{name: hub}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: hub, namespace: apps}}\nstringData:\n  address: \"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;EntityPath=hub1;UseDevelopmentEmulator=true\"\n"
    ));
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &["--retry-backoff-max", "2s"]);
    for i in 0..3 {
        let r = request(
            &d.events,
            "POST",
            "/",
            &[],
            flux_event(&format!("while down {i}")).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 202);
    }
    // The failure is clear, masked, and the deliveries wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let r = request(&d.api, "GET", "/api/v1/providers", &[], b"").await;
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let hub = v["providers"][0].clone();
        if hub["consecutive_failures"].as_u64().unwrap_or(0) >= 1 {
            break hub;
        }
        assert!(Instant::now() < deadline, "no failure reported: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["pending"], 3, "{status}");
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("could not connect"), "{error}");
    assert!(!error.contains("SAS_KEY_VALUE") && !d.logs().contains("SAS_KEY_VALUE"));

    let state = tempfile::tempdir().unwrap();
    let Some(facts) =
        herald_testkit::start_peer_with("eventhub-mock.sh", state.path(), &port.to_string(), &[])
    else {
        return; // start_peer said SKIPPED, loudly: the peer could not be installed.
    };
    let log = facts["LOG"].clone();
    let _peer = Peer {
        port: port.to_string(),
        state,
    };
    wait_events(&log, 3, &d).await;
    let got = messages(&log);
    // In order, each once.
    assert_eq!(got, ["while down 0", "while down 1", "while down 2"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(messages(&log).len(), 3);
}
