//! `azureeventhub` against a real AMQP 1.0 broker on loopback (herald-testkit's
//! `peers/eventhub-mock.sh`: Event Hubs' CBS and management handshakes, SAS tokens verified,
//! every message logged).

// Test helpers unwrap: a panic there is a test failure with a location.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use herald_core::manifest::parse_str;
use herald_core::{ProviderConfig, json};
use herald_testkit::{fixture_event, start_peer, stop_peer};

struct Peer {
    state: tempfile_dir::Dir,
    port: String,
    log: String,
    connection_string: String,
}

mod tempfile_dir {
    /// A private state directory for the peer, removed at the end.
    pub(crate) struct Dir(pub(crate) std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop_peer("eventhub-mock.sh", &self.port, &self.state.0);
    }
}

/// Starts a broker in a state directory of its own (tests run in parallel).
fn start(test: &str) -> Option<Peer> {
    let dir =
        std::env::temp_dir().join(format!("herald-eventhub-it-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let facts = start_peer("eventhub-mock.sh", &dir)?;
    let port = facts["URL"].rsplit(':').next().unwrap().to_owned();
    Some(Peer {
        state: tempfile_dir::Dir(dir),
        port,
        log: facts["LOG"].clone(),
        connection_string: facts["CONNECTION_STRING"].clone(),
    })
}

fn records(log: &str, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

fn config(connection_string: &str) -> ProviderConfig {
    let yaml = format!(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: hub, namespace: flux-system}}\nspec:\n  type: azureeventhub\n  timeout: 30s\n  secretRef: {{name: hub}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: hub, namespace: flux-system}}\nstringData:\n  address: \"{connection_string}\"\n"
    );
    let (set, errors) = parse_str(Path::new("inline.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    set.provider_config(&set.providers[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_arrive_as_event_hubs_messages_over_one_connection() {
    herald_http::install_crypto_provider();
    let Some(peer) = start("events") else { return };
    let notifier = herald_eventhub::build(&config(&peer.connection_string)).unwrap();
    let mut first = fixture_event();
    first.message = "first".into();
    let mut second = fixture_event();
    second.message = "second ✓ <&>".into();
    notifier.post(&first).await.unwrap();
    notifier.post(&second).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = records(&peer.log, "event");
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        events.len(),
        2,
        "{events:?}\n{}",
        std::fs::read_to_string(&peer.log).unwrap_or_default()
    );
    for (got, sent) in events.iter().zip([&first, &second]) {
        assert_eq!(got["hub"], "hub1");
        let body = got["body"].as_str().unwrap();
        assert_eq!(
            body.as_bytes(),
            json::to_vec(sent).unwrap(),
            "the body is the event JSON, byte for byte"
        );
    }
    let connections = records(&peer.log, "connection").len();
    assert!(
        connections <= 2,
        "the producer is reused: {connections} connection records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_fails_without_showing_it() {
    herald_http::install_crypto_provider();
    let Some(peer) = start("wrong-key") else {
        return;
    };
    let key = "d1stinct-Wrong-K3y-Value";
    let bad = peer
        .connection_string
        .split(';')
        .map(|p| {
            if p.starts_with("SharedAccessKey=") {
                format!("SharedAccessKey={key}")
            } else {
                p.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(";");
    let notifier = herald_eventhub::build(&config(&bad)).unwrap();
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    let text = format!("{err} {err:?} {notifier:?}");
    assert!(!text.contains(key), "{text}");
    assert!(
        err.to_string().starts_with("provider flux-system/hub: "),
        "{err}"
    );
    assert!(records(&peer.log, "event").is_empty());
}
