//! `herald validate`, `herald send`, `herald receive`, `herald healthcheck` and `--version`.

use std::time::Duration;

use herald_testkit::Recorder;

use crate::support::{herald, manifests, provider, repo_root};

#[test]
fn version_lists_the_compiled_families() {
    let out = herald().arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.starts_with(&format!(
            "herald {}\nfamilies: generic",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    for feature in [
        "chat",
        "git",
        "alerting",
        "eventhub",
        "nats",
        "googlepubsub",
    ] {
        let compiled = match feature {
            "chat" => cfg!(feature = "chat"),
            "git" => cfg!(feature = "git"),
            "alerting" => cfg!(feature = "alerting"),
            "eventhub" => cfg!(feature = "eventhub"),
            "nats" => cfg!(feature = "nats"),
            _ => cfg!(feature = "googlepubsub"),
        };
        assert_eq!(text.contains(feature), compiled, "{feature}: {text}");
    }
    let templates = if cfg!(feature = "templates") {
        "\nmessage templates: built in\n"
    } else {
        "\nmessage templates: not built in (cargo feature `templates`)\n"
    };
    assert!(text.contains(templates), "{text}");
    let patterns = if cfg!(feature = "unicode-regex") {
        "\nalert patterns: Unicode classes and case folding\n"
    } else {
        "\nalert patterns: ASCII only (cargo feature `unicode-regex`)\n"
    };
    assert!(text.ends_with(patterns), "{text}");
}

#[test]
fn validate_accepts_the_examples() {
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(repo_root().join("examples"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
}

#[test]
fn validate_lists_every_problem() {
    let text = [
        provider("a", "ns", "slak", "http://x"),
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: b, namespace: ns}\nspec:\n  type: generic-hmac\n  address: http://127.0.0.1:1/\n".to_owned(),
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {name: c, namespace: ns}\nspec:\n  providerRef: {name: missing}\n  eventSources: [{kind: Bucket, name: '*'}]\n".to_owned(),
    ]
    .concat();
    let dir = manifests(&text);
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("manifests.yaml:6 (document 1): Provider ns/a: spec.type: unknown provider type \"slak\""), "{err}");
    assert!(
        err.contains("Alert ns/c: spec.providerRef.name: Provider ns/missing not found"),
        "{err}"
    );
    // Reference errors are reported with load errors; build errors once those are fixed.
    let dir = manifests(&text.replace("slak", "generic").replace("missing", "a"));
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Provider ns/b: secret key \"token\": HMAC key is empty"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_delivers_one_event_and_reports_failures_without_secrets() {
    let rec = Recorder::start().await;
    let token = "tok-91c2d3e4f5-distinct";
    let text = format!(
        "{}---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: signed, namespace: flux-system}}\nspec:\n  type: generic-hmac\n  timeout: 1s\n  secretRef: {{name: s}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: flux-system}}\nstringData:\n  address: http://127.0.0.1:1/hook/{token}\n  token: {token}\n",
        provider(
            "hook",
            "flux-system",
            "generic",
            &format!("{}/flux", rec.url())
        )
    );
    let dir = manifests(&text);
    let event = repo_root().join("examples/events/kustomization-ready.json");
    let out = tokio::task::spawn_blocking({
        let (dir, event) = (dir.path().to_owned(), event.clone());
        move || {
            herald()
                .args(["send", "--provider", "flux-system/hook", "--event"])
                .arg(&event)
                .arg("--manifests")
                .arg(&dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("delivered to flux-system/hook (generic) in ")
    );
    let got = rec.wait_for(1, Duration::from_secs(5)).await;
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body["metadata"]["revision"], "main@sha1:69b59063470310ebbd88a9156325322a124e55a3",
        "prefix stripped"
    );

    let out = tokio::task::spawn_blocking({
        let (dir, event) = (dir.path().to_owned(), event.clone());
        move || {
            herald()
                .args(["send", "--provider", "flux-system/signed", "--event"])
                .arg(&event)
                .arg("--manifests")
                .arg(&dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("error: delivery to flux-system/signed (generic-hmac) failed"),
        "{all}"
    );
    assert!(!all.contains(token), "{all}");

    let out = herald()
        .args(["send", "--provider", "nope", "--event"])
        .arg(&event)
        .arg("--manifests")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Provider default/nope in the manifests (providers found: flux-system/hook, flux-system/signed)"), "{err}");
}

#[test]
fn types_herald_cannot_build_are_named_clearly() {
    let dir = manifests(
        &[
            provider("traces", "ns", "otel", "ftp://127.0.0.1:4318/v1/traces"),
            provider("team", "ns", "zulip", "https://z.example.com"),
        ]
        .concat(),
    );
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Compiled in, a type's own checks speak (Flux's words); left out, the feature is named.
    let otel = if cfg!(feature = "alerting") {
        "Provider ns/traces: spec.address: invalid OTLP traces URL"
    } else {
        "Provider ns/traces: spec.type: provider type `otel` needs the `alerting` feature"
    };
    assert!(err.contains(otel), "{err}");
    let zulip = if cfg!(feature = "chat") {
        "Provider ns/team: spec.channel: invalid Zulip channel format, expected <channel>/<topic>, got ''"
    } else {
        "Provider ns/team: spec.type: provider type `zulip` needs the `chat` feature"
    };
    assert!(err.contains(zulip), "{err}");

    // With --require-all-objects the daemon refuses to start on such a set, with the same words.
    let out = herald()
        .args(["serve", "--require-all-objects"])
        .args(crate::support::LOOPBACK_PORTS)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--manifests")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(zulip.trim_start_matches("Provider ns/team: ")),
        "{err}"
    );
}

/// The container image's health check: `herald healthcheck` against a real daemon's `/readyz`.
#[test]
fn healthcheck_reports_a_ready_daemon_and_a_missing_one() {
    let dir = manifests(&provider(
        "hook",
        "default",
        "generic",
        "http://127.0.0.1:1/",
    ));
    let daemon = crate::support::Daemon::start(dir.path(), &[]);
    let ready = herald()
        .args([
            "healthcheck",
            "--url",
            &format!("http://{}/readyz", daemon.health),
        ])
        .output()
        .unwrap();
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    assert!(String::from_utf8_lossy(&ready.stdout).contains("answered 200"));
    let missing = herald()
        .args(["healthcheck", "--timeout", "2s", "--url"])
        .arg(format!("http://{}/nothing-here", daemon.health))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("unhealthy"));
    drop(daemon);
}
