//! The message-bus families through `herald serve`: `nats` against a real `nats-server`
//! (herald-testkit's `peers/nats.sh`, recording `flux.>` in JetStream), and `googlepubsub`
//! against a recording server standing for the emulator of `PUBSUB_EMULATOR_HOST`.

use std::time::Duration;

use crate::support::{Daemon, alert, flux_event, manifests, request};

fn manifest(provider_spec: &str) -> String {
    [
        format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: bus, namespace: apps}}\nspec:\n{provider_spec}"
        ),
        alert("to-bus", "apps", "bus", "  eventSources: [{kind: Kustomization, name: '*'}]"),
    ]
    .concat()
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;

    struct Peer {
        state: tempfile::TempDir,
        port: String,
    }

    impl Peer {
        fn script(&self, args: &[&str]) -> String {
            herald_testkit::run_peer("nats.sh", self.state.path(), args)
        }

        /// The payloads recorded on `flux.>`, as sent.
        fn payloads(&self) -> Vec<String> {
            self.script(&["messages", "--port", &self.port])
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["data"].as_str().unwrap().to_owned()
                })
                .collect()
        }

        /// The messages recorded on `flux.>`, as JSON values of their payloads.
        fn events(&self) -> Vec<serde_json::Value> {
            self.payloads()
                .iter()
                .map(|p| serde_json::from_str(p).unwrap())
                .collect()
        }

        async fn wait_events(&self, n: usize, d: &Daemon) -> Vec<serde_json::Value> {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let got = self.events();
                if got.len() >= n {
                    return got;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} of {n} events on the subject; herald logs:\n{}",
                    got.len(),
                    d.logs()
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    impl Drop for Peer {
        fn drop(&mut self) {
            herald_testkit::stop_peer("nats.sh", &self.port, self.state.path());
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn events_reach_the_subject_and_survive_a_server_restart() {
        let state = tempfile::tempdir().unwrap();
        let Some(facts) = herald_testkit::start_peer_with(
            "nats.sh",
            state.path(),
            "auto",
            &[("NATS_AUTH", "user"), ("NATS_RECORD", "flux.>")],
        ) else {
            return; // start_peer said SKIPPED, loudly: the peer could not be installed.
        };
        let peer = Peer {
            port: facts["PORT"].clone(),
            state,
        };
        let text = [
            manifest(&format!(
                "  type: nats\n  address: {}\n  channel: flux.events\n  timeout: 3s\n  secretRef: {{name: bus}}\n",
                facts["URL"]
            )),
            format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bus, namespace: apps}}\nstringData:\n  username: {}\n  password: {}\n",
                facts["USER"], facts["PASSWORD"]
            ),
        ]
        .concat();
        let dir = manifests(&text);
        let d = Daemon::start(dir.path(), &[]);
        let r = request(
            &d.events,
            "POST",
            "/",
            &[],
            flux_event("on the bus").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 202);
        let events = peer.wait_events(1, &d).await;
        assert_eq!(events[0]["message"], "on the bus", "{events:?}");

        // `herald render` shows the payload the server got, and the target without credentials.
        let event = dir.path().join("event.json");
        std::fs::write(&event, flux_event("on the bus")).unwrap();
        let out = crate::support::herald()
            .args([
                "render",
                "--format",
                "json",
                "--provider",
                "apps/bus",
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
        let shown: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(shown["method"], "PUBLISH");
        let host_port = facts["URL"]
            .rsplit('@')
            .next()
            .unwrap()
            .trim_start_matches("nats://");
        assert_eq!(
            shown["url"],
            format!("nats://{host_port} subject=flux.events"),
            "{stdout}"
        );
        assert_eq!(shown["headers"], serde_json::json!([]));
        assert_eq!(shown["body"], peer.payloads()[0].as_str(), "the same bytes");
        assert!(!stdout.contains(&facts["PASSWORD"]), "{stdout}");

        // Accepted while the server is down: kept in the outbox and delivered once it is back.
        peer.script(&["down", &peer.port]);
        let r = request(
            &d.events,
            "POST",
            "/",
            &[],
            flux_event("while down").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 202);
        tokio::time::sleep(Duration::from_secs(4)).await;
        peer.script(&["up", &peer.port]);
        let events = peer.wait_events(2, &d).await;
        let messages: Vec<&str> = events
            .iter()
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert_eq!(
            messages,
            ["on the bus", "while down"],
            "nothing lost, nothing twice"
        );
    }
}

#[cfg(feature = "googlepubsub")]
#[tokio::test(flavor = "multi_thread")]
async fn events_reach_the_pubsub_emulator() {
    use base64::Engine as _;

    let emulator = herald_testkit::Recorder::start().await;
    emulator.set_default_reply(herald_testkit::Reply::status(200).body(r#"{"messageIds":["1"]}"#));
    let text = [
        manifest("  type: googlepubsub\n  address: my-project\n  channel: flux-events\n  secretRef: {name: bus}\n"),
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: bus, namespace: apps}\nstringData:\n  headers: |\n    cluster: prod-eu\n".to_owned(),
    ]
    .concat();
    let dir = manifests(&text);
    let mut cmd = crate::support::herald();
    cmd.env(
        "PUBSUB_EMULATOR_HOST",
        emulator.url().trim_start_matches("http://"),
    );
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(cmd, dir.path(), data.path(), &[]);
    let r = request(
        &d.events,
        "POST",
        "/",
        &[],
        flux_event("to pubsub").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202);
    let got = emulator.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "herald logs:\n{}", d.logs());
    assert_eq!(
        got[0].path,
        "/v1/projects/my-project/topics/flux-events:publish"
    );
    assert_eq!(got[0].header("authorization"), None);
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body["messages"][0]["attributes"],
        serde_json::json!({"cluster": "prod-eu"})
    );
    let data = base64::engine::general_purpose::STANDARD
        .decode(body["messages"][0]["data"].as_str().unwrap())
        .unwrap();
    let event: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(event["message"], "to pubsub");

    // `herald render` shows the publish request the emulator got, byte for byte.
    let event = dir.path().join("event.json");
    std::fs::write(&event, flux_event("to pubsub")).unwrap();
    let out = crate::support::herald()
        .env(
            "PUBSUB_EMULATOR_HOST",
            emulator.url().trim_start_matches("http://"),
        )
        .args([
            "render",
            "--format",
            "json",
            "--provider",
            "apps/bus",
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
    let shown: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["method"], "POST");
    assert_eq!(
        shown["url"],
        format!("{}{}", emulator.url(), got[0].path),
        "{stdout}"
    );
    // The same bytes, but for the Secret's header value, which render masks.
    assert_eq!(
        shown["body"].as_str().unwrap(),
        String::from_utf8_lossy(&got[0].body).replace(r#""prod-eu""#, r#""*****""#),
    );
    assert_eq!(emulator.requests().len(), 1, "render sends nothing");
}
