//! Custom CA, the real authenticated proxy (herald-testkit's `peers/proxy.sh`), timeouts, and the
//! manifest path, for every chat type (the issue asks for at least Slack, Discord and Teams).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use herald_core::manifest::parse_str;
use herald_core::{ProxyConfig, Registry, SecretBytes, SecretString};
use herald_testkit::{Recorder, Reply, ServerTls, TestCa, fixture_event, start_peer, stop_peer};

use crate::{build, fixture, working_config};

#[tokio::test]
async fn every_type_trusts_the_custom_ca_and_only_it() {
    let ca = TestCa::new();
    let rec = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    assert!(rec.url().starts_with("https://"));
    for ty in herald_chat::TYPES {
        let mut cfg = working_config(ty, &rec.url(), "tok-tls-abcdef");
        cfg.tls.ca_pem = Some(SecretBytes::new(ca.ca_pem().into_bytes()));
        build(&cfg).post(&fixture_event()).await.unwrap();

        // Without the CA the server is not trusted: a permanent certificate error.
        let cfg = working_config(ty, &rec.url(), "tok-tls-abcdef");
        let err = build(&cfg).post(&fixture_event()).await.unwrap_err();
        assert!(!err.is_retryable(), "{ty}: {err}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{ty}: {err}"
        );
    }
    assert_eq!(rec.requests().len(), herald_chat::TYPES.len());
}

#[tokio::test]
async fn every_type_honours_the_timeout() {
    for ty in herald_chat::TYPES {
        let rec = Recorder::start().await;
        rec.push_reply(Reply::status(200).delay(Duration::from_secs(5)));
        let mut cfg = working_config(ty, &rec.url(), "tok-timeout-abc");
        cfg.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let err = build(&cfg).post(&fixture_event()).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{ty}");
        assert!(err.is_retryable(), "{ty}: {err}");
        assert!(
            err.to_string().contains("timed out after 300ms"),
            "{ty}: {err}"
        );
    }
}

/// Stops the proxy peer even when an assertion fails first.
struct Peer {
    port: String,
    state: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop_peer("proxy.sh", &self.port, &self.state);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_goes_through_the_authenticated_proxy_with_a_custom_ca() {
    let state = std::env::temp_dir().join(format!("herald-chat-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let facts = tokio::task::spawn_blocking({
        let state = state.clone();
        move || start_peer("proxy.sh", &state)
    })
    .await
    .unwrap();
    let Some(facts) = facts else {
        eprintln!(
            "SKIPPED every_type_goes_through_the_authenticated_proxy_with_a_custom_ca: peer \
             proxy.sh could not be installed (it exited 3); the proxy check did NOT run"
        );
        return;
    };
    let peer = Peer {
        port: facts["PROXY_URL"].rsplit(':').next().unwrap().to_owned(),
        state,
    };
    let log = || std::fs::read_to_string(&facts["LOG"]).unwrap();
    let proxy = ProxyConfig {
        url: facts["PROXY_URL"].clone(),
        username: Some(facts["PROXY_USER"].clone()),
        password: Some(SecretString::new(facts["PROXY_PASS"].clone())),
    };

    let ca = TestCa::new();
    for ty in herald_chat::TYPES {
        // A server of its own per type, so that the proxy log line proves this type used it.
        let rec = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
        let mut cfg = working_config(ty, &rec.url(), "tok-proxy-abcdef");
        cfg.tls.ca_pem = Some(SecretBytes::new(ca.ca_pem().into_bytes()));
        cfg.proxy = Some(proxy.clone());
        build(&cfg)
            .post(&fixture("kustomization-error.json"))
            .await
            .unwrap();
        let got = rec.requests();
        assert_eq!(got.len(), 1, "{ty}");
        assert!(got[0].header("proxy-authorization").is_none(), "{ty}");
        let line = format!("CONNECT 127.0.0.1:{}", rec.addr().port());
        assert!(
            log().contains(&line),
            "{ty}: {line:?} not in the proxy log:\n{}",
            log()
        );

        // Wrong proxy password: refused by the proxy, permanent, password not shown.
        let mut cfg = cfg.clone();
        cfg.proxy = Some(ProxyConfig {
            password: Some(SecretString::new("wrong-proxy-password")),
            ..proxy.clone()
        });
        let err = build(&cfg).post(&fixture_event()).await.unwrap_err();
        assert!(!err.is_retryable(), "{ty}: {err}");
        assert!(err.to_string().contains("HTTP 401"), "{ty}: {err}");
        assert!(
            !err.to_string().contains("wrong-proxy-password"),
            "{ty}: {err}"
        );
        assert_eq!(
            rec.requests().len(),
            1,
            "{ty}: refused deliveries never arrive"
        );
    }
    drop(peer);
}

#[tokio::test]
async fn every_type_builds_from_manifests() {
    let rec = Recorder::start().await;
    let url = rec.url();
    let yaml = format!(
        r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: slack, namespace: flux-system}}
spec: {{type: slack, channel: general, address: "{url}/api/chat.postMessage", secretRef: {{name: slack}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: slack, namespace: flux-system}}
stringData: {{token: xoxb-from-secret}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: discord, namespace: flux-system}}
spec: {{type: discord, secretRef: {{name: discord}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: discord, namespace: flux-system}}
stringData: {{address: "{url}/api/webhooks/1/discord-token"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta2
kind: Provider
metadata: {{name: rocket, namespace: flux-system}}
spec: {{type: rocket, address: "{url}/hooks/rocket"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: teams, namespace: flux-system}}
spec: {{type: msteams, address: "{url}/workflows/teams"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: google, namespace: flux-system}}
spec: {{type: googlechat, address: "{url}/v1/spaces/x"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: webex, namespace: flux-system}}
spec: {{type: webex, channel: room-1, address: "{url}/v1/messages", secretRef: {{name: webex}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: webex, namespace: flux-system}}
stringData: {{token: webex-from-secret}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: telegram, namespace: flux-system}}
spec: {{type: telegram, channel: "-100200:3", address: "{url}", secretRef: {{name: telegram}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: telegram, namespace: flux-system}}
stringData: {{token: "42:telegram-from-secret"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: lark, namespace: flux-system}}
spec: {{type: lark, address: "{url}/open-apis/bot/v2/hook/x"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: matrix, namespace: flux-system}}
spec: {{type: matrix, channel: "!room:localhost", address: "{url}", secretRef: {{name: matrix}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: matrix, namespace: flux-system}}
stringData: {{token: matrix-from-secret}}
"#
    );
    let (set, errors) = parse_str(Path::new("inline.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.providers.len(), 9);
    let mut registry = Registry::new();
    herald_chat::register(&mut registry);
    let event = fixture_event();
    for provider in &set.providers {
        let cfg = set.provider_config(provider).unwrap();
        registry.build(&cfg).unwrap().post(&event).await.unwrap();
    }
    let got = rec.wait_for(9, Duration::from_secs(5)).await;
    let txn = herald_chat::matrix::txn_id(&event).unwrap();
    let summary: Vec<String> = got
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.method,
                r.path,
                r.header("authorization").unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "POST /api/chat.postMessage Bearer xoxb-from-secret".to_owned(),
            "POST /api/webhooks/1/discord-token/slack -".to_owned(),
            "POST /hooks/rocket -".to_owned(),
            "POST /workflows/teams -".to_owned(),
            "POST /v1/spaces/x -".to_owned(),
            "POST /v1/messages Bearer webex-from-secret".to_owned(),
            "POST /bot42:telegram-from-secret/sendMessage -".to_owned(),
            "POST /open-apis/bot/v2/hook/x -".to_owned(),
            format!(
                "PUT /_matrix/client/r0/rooms/!room:localhost/send/m.room.message/{txn} Bearer matrix-from-secret"
            ),
        ]
    );
    assert!(
        got[6]
            .body_str()
            .contains(r#""chat_id":"-100200","message_thread_id":"3""#)
    );
}
