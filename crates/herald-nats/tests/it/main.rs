//! `nats` against a real `nats-server` on loopback (herald-testkit's `peers/nats.sh`), whose
//! JetStream stream `RECORDED` keeps what is published on `flux.>` for the tests to read back.

// Test helpers unwrap: a panic there is a test failure with a location.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_core::manifest::parse_str;
use herald_core::{Event, Notifier, ProviderConfig, json};
use herald_testkit::{fixture_event, run_peer, start_peer_with, stop_peer};

const SUBJECT: &str = "flux.events";

struct Peer {
    state: PathBuf,
    facts: HashMap<String, String>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop_peer("nats.sh", &self.facts["PORT"], &self.state);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Peer {
    /// A server with `auth` (none, user, nkey, creds) recording `flux.>`, in a state
    /// directory of its own (tests run in parallel).
    fn start(test: &str, auth: &str) -> Option<Peer> {
        let state =
            std::env::temp_dir().join(format!("herald-nats-it-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&state).unwrap();
        let facts = start_peer_with(
            "nats.sh",
            &state,
            "auto",
            &[("NATS_AUTH", auth), ("NATS_RECORD", "flux.>")],
        )?;
        Some(Peer { state, facts })
    }

    fn script(&self, args: &[&str]) -> String {
        run_peer("nats.sh", &self.state, args)
    }

    /// The payloads recorded on `flux.>`, oldest first.
    fn payloads(&self) -> Vec<Vec<u8>> {
        self.script(&["messages", "--port", &self.facts["PORT"]])
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["subject"], SUBJECT, "{v}");
                v["data"].as_str().unwrap().as_bytes().to_vec()
            })
            .collect()
    }

    /// Waits until `n` payloads are recorded (JetStream stores them right after the publish).
    async fn wait_payloads(&self, n: usize) -> Vec<Vec<u8>> {
        for _ in 0..50 {
            let got = self.payloads();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.payloads()
    }

    /// The server's client connections named as Flux names its publisher.
    fn publisher_connections(&self) -> usize {
        let url = self.facts["MONITOR_URL"].trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(url).unwrap();
        write!(stream, "GET /connz HTTP/1.0\r\nHost: {url}\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let connz: serde_json::Value = serde_json::from_str(body).unwrap();
        connz["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == herald_nats::CONNECTION_NAME)
            .count()
    }
}

/// A Provider through its manifests: `spec` lines and the Secret's `stringData` lines.
fn config(address: &str, spec: &str, secret: &str) -> ProviderConfig {
    let yaml = format!(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: bus, namespace: flux-system}}\nspec:\n  type: nats\n  address: {address}\n  channel: {SUBJECT}\n  timeout: 5s\n{spec}  secretRef: {{name: bus}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bus, namespace: flux-system}}\nstringData:\n  unused: x\n{secret}"
    );
    let (set, errors) = parse_str(Path::new("inline.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    set.provider_config(&set.providers[0]).unwrap()
}

/// `s` as a YAML block scalar under `key`, for multi-line Secret values.
fn block(key: &str, s: &str) -> String {
    let lines: String = s.lines().map(|l| format!("    {l}\n")).collect();
    format!("  {key}: |\n{lines}")
}

fn event(message: &str) -> Event {
    let mut e = fixture_event();
    e.message = message.into();
    e
}

async fn post_and_check(peer: &Peer, notifier: &dyn Notifier) {
    let (first, second) = (event("first"), event("second ✓ <&>"));
    notifier.post(&first).await.unwrap();
    notifier.post(&second).await.unwrap();
    let got = peer.wait_payloads(2).await;
    assert_eq!(
        got,
        [
            json::to_vec(&first).unwrap(),
            json::to_vec(&second).unwrap()
        ],
        "the payload is the event JSON, byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn user_and_password_publish_the_event_json_over_one_connection() {
    let Some(peer) = Peer::start("user", "user") else {
        return;
    };
    let secret = format!(
        "  username: {}\n  password: {}\n",
        peer.facts["USER"], peer.facts["PASSWORD"]
    );
    let notifier = herald_nats::build(&config(&peer.facts["URL"], "", &secret)).unwrap();
    post_and_check(&peer, notifier.as_ref()).await;
    assert_eq!(peer.publisher_connections(), 1, "one connection, kept");

    let wrong = config(
        &peer.facts["URL"],
        "",
        "  username: herald\n  password: Wr0ng-Passw0rd\n",
    );
    let err = herald_nats::build(&wrong)
        .unwrap()
        .post(&event("refused"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "provider flux-system/bus: error publishing event to subject flux.events: error connecting to server"
        ),
        "{text}"
    );
    assert!(!text.contains("Wr0ng-Passw0rd"), "{text}");
    assert_eq!(peer.payloads().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_nkey_seed_authenticates() {
    let Some(peer) = Peer::start("nkey", "nkey") else {
        return;
    };
    let secret = format!("  nkey: {}\n", peer.facts["NKEY_SEED"]);
    let notifier = herald_nats::build(&config(&peer.facts["URL"], "", &secret)).unwrap();
    post_and_check(&peer, notifier.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_creds_file_authenticates_and_wins_over_the_others() {
    let Some(peer) = Peer::start("creds", "creds") else {
        return;
    };
    let creds = std::fs::read_to_string(&peer.facts["CREDS_FILE"]).unwrap();
    // Flux's priority: creds first, so a wrong password beside them changes nothing.
    let secret = format!(
        "{}  username: herald\n  password: not-used\n",
        block("creds", &creds)
    );
    let notifier = herald_nats::build(&config(&peer.facts["URL"], "", &secret)).unwrap();
    post_and_check(&peer, notifier.as_ref()).await;
    assert!(!format!("{notifier:?}").contains("BEGIN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_is_re_established_after_the_server_restarts() {
    let Some(peer) = Peer::start("restart", "none") else {
        return;
    };
    let notifier = herald_nats::build(&config(&peer.facts["URL"], "", "")).unwrap();
    let before = event("before the restart");
    notifier.post(&before).await.unwrap();
    peer.script(&["restart", &peer.facts["PORT"]]);
    // The first publish may find the old connection dead (a retryable failure the daemon
    // retries); the one after it goes out on a new connection.
    let after = event("after the restart");
    if let Err(e) = notifier.post(&after).await {
        assert!(e.is_retryable(), "{e}");
        notifier.post(&after).await.unwrap();
    }
    let got = peer.wait_payloads(2).await;
    assert_eq!(got.first().unwrap(), &json::to_vec(&before).unwrap());
    assert_eq!(got.last().unwrap(), &json::to_vec(&after).unwrap());
    assert_eq!(peer.publisher_connections(), 1);

    peer.script(&["down", &peer.facts["PORT"]]);
    let err = notifier.post(&event("server down")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("error publishing event to subject flux.events"),
        "{err}"
    );
    peer.script(&["up", &peer.facts["PORT"]]);
    let back = event("server back");
    notifier.post(&back).await.unwrap();
    let got = peer.wait_payloads(3).await;
    assert_eq!(got.last().unwrap(), &json::to_vec(&back).unwrap());
}
