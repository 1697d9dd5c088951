//! Matrix against a real homeserver: Synapse from herald-testkit's `peers/matrix-synapse.sh`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_core::manifest::parse_str;
use herald_core::{Event, Timestamp};
use herald_testkit::{run_peer, start_peer, stop_peer};

use crate::fixture;

/// Stops Synapse even when an assertion fails first.
struct Peer {
    port: String,
    state: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop_peer("matrix-synapse.sh", &self.port, &self.state);
    }
}

/// The last `n` `m.room.message` events of the peer's room, oldest first.
fn messages(peer: &Peer, n: usize) -> Vec<serde_json::Value> {
    run_peer(
        "matrix-synapse.sh",
        &peer.state,
        &["messages", &n.to_string(), "--port", &peer.port],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_synapse_stores_the_message_once() {
    let state = std::env::temp_dir().join(format!("herald-chat-synapse-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let facts = tokio::task::spawn_blocking({
        let state = state.clone();
        move || start_peer("matrix-synapse.sh", &state)
    })
    .await
    .unwrap();
    let Some(facts) = facts else {
        eprintln!(
            "SKIPPED real_synapse_stores_the_message_once: peer matrix-synapse.sh could not be \
             installed (it exited 3); the Matrix end-to-end check against Synapse did NOT run"
        );
        return;
    };
    let peer = Peer {
        port: facts["URL"].rsplit(':').next().unwrap().to_owned(),
        state,
    };
    tokio::time::timeout(Duration::from_secs(90), check(&facts, &peer))
        .await
        .expect("the Synapse check timed out");
}

async fn check(facts: &HashMap<String, String>, peer: &Peer) {
    let yaml = format!(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: matrix\n  namespace: flux-system\nspec:\n  type: matrix\n  address: {}\n  channel: \"{}\"\n  secretRef:\n    name: matrix-token\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: matrix-token\n  namespace: flux-system\nstringData:\n  token: {}\n",
        facts["URL"], facts["ROOM"], facts["TOKEN"]
    );
    let (set, errors) = parse_str(Path::new("matrix.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let cfg = set.provider_config(&set.providers[0]).unwrap();
    let notifier = herald_chat::build(&cfg).unwrap();

    let mut event: Event = fixture("unicode.json");
    // A fresh event per run, so an old room could not make the check pass.
    event.timestamp = Some(Timestamp::now());
    let before = messages(peer, 50).len();
    notifier.post(&event).await.unwrap();
    // A redelivery of the same event (same transaction id) is stored once.
    notifier.post(&event).await.unwrap();
    herald_chat::build(&cfg)
        .unwrap()
        .post(&event)
        .await
        .unwrap();

    let after = messages(peer, 50);
    assert_eq!(
        after.len(),
        before + 1,
        "one message for three deliveries: {after:#?}"
    );
    let message = after.last().unwrap();
    let content = &message["content"];
    assert_eq!(content["msgtype"], "m.text");
    assert_eq!(
        content["body"].as_str().unwrap(),
        herald_chat::matrix::body(&event),
        "{message}"
    );
    assert_eq!(
        content["body"].as_str().unwrap(),
        "💫 helmrelease/ünïcode-app.équipe\nHelm upgrade succeeded for <release> \"app\" & chart 1.2.3 🚀\nsecond line\u{2028}with separator\n- env: prod 🌍\n- revision: 1.2.3\n"
    );
    assert_eq!(message["sender"], facts["USER"].as_str());

    // Another event is another message.
    let error = fixture("kustomization-error.json");
    notifier.post(&error).await.unwrap();
    let last = messages(peer, 1).pop().unwrap();
    assert!(
        last["content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("🚨 kustomization/webapp.apps\n"),
        "{last}"
    );

    // A wrong token is a permanent 401 that does not show the token.
    let mut bad = cfg.clone();
    bad.token = Some("syt_wrong_token_value".into());
    let err = herald_chat::build(&bad)
        .unwrap()
        .post(&error)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.status(), Some(401));
    assert!(!err.to_string().contains("syt_wrong_token_value"), "{err}");
}
