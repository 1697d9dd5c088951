//! Secret hygiene through the real binary: every provider type gets distinctive secrets (tokens,
//! passwords, `headers` values, proxy credentials, a Sentry DSN key, an Event Hubs
//! connection-string key, tokens inside webhook URLs and Matrix paths), its deliveries fail
//! against a service that echoes those secrets back, and nothing herald prints — `herald send`
//! and `herald render` output, `herald serve` logs at debug level, `/metrics`, `herald
//! validate` — contains one.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use herald_testkit::{Recorder, Reply};

use crate::support::{Daemon, herald, manifests, repo_root, request};

/// One Provider under test: its type, the lines of its `spec`, its Secret's `stringData`, and
/// the secret values that must never be printed.
struct Case {
    name: &'static str,
    ty: &'static str,
    spec: String,
    data: String,
    secrets: Vec<String>,
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// Every provider type herald builds, each pointed at its own `rec`.
fn cases(recs: &[Recorder]) -> Vec<Case> {
    let mut n = 0;
    let mut url = || {
        n += 1;
        recs[n - 1].url()
    };
    // Extended below per compiled family (unused `mut` in a generic-only build).
    #[allow(unused_mut)]
    let mut cases = vec![
        Case {
            name: "generic",
            ty: "generic",
            spec: String::new(),
            data: format!(
                "  address: {}/hook/gen-addr-tok-1a2b\n  headers: |\n    X-Api-Key: gen-header-val-3c4d\n",
                url()
            ),
            secrets: vec![s("gen-addr-tok-1a2b"), s("gen-header-val-3c4d")],
        },
        Case {
            name: "generic-proxied",
            ty: "generic",
            spec: String::new(),
            data: {
                let u = url();
                let hostport = u.trim_start_matches("http://").to_owned();
                format!(
                    "  address: http://example.invalid/hook\n  proxy: http://proxyuser-5e6f:proxypass-7a8b@{hostport}\n"
                )
            },
            secrets: vec![s("proxyuser-5e6f"), s("proxypass-7a8b")],
        },
        Case {
            name: "generic-hmac",
            ty: "generic-hmac",
            spec: format!("  address: {}/signed\n", url()),
            data: s("  token: hmac-key-9c0d\n"),
            secrets: vec![s("hmac-key-9c0d")],
        },
    ];
    #[cfg(feature = "chat")]
    cases.extend([
        Case {
            name: "slack",
            ty: "slack",
            spec: String::new(),
            data: format!(
                "  address: {}/services/T01/B02/slack-hook-secret-1e2f\n  token: xoxb-slack-token-3a4b\n",
                url()
            ),
            secrets: vec![s("slack-hook-secret-1e2f"), s("xoxb-slack-token-3a4b")],
        },
        Case {
            name: "discord",
            ty: "discord",
            spec: String::new(),
            data: format!(
                "  address: {}/api/webhooks/1234/discord-hook-secret-5c6d\n",
                url()
            ),
            secrets: vec![s("discord-hook-secret-5c6d")],
        },
        Case {
            name: "msteams",
            ty: "msteams",
            spec: String::new(),
            data: format!("  address: {}/webhookb2/msteams-secret-7e8f\n", url()),
            secrets: vec![s("msteams-secret-7e8f")],
        },
        Case {
            name: "rocket",
            ty: "rocket",
            spec: String::new(),
            data: format!("  address: {}/hooks/rocket-secret-9a0b\n", url()),
            secrets: vec![s("rocket-secret-9a0b")],
        },
        Case {
            name: "googlechat",
            ty: "googlechat",
            spec: String::new(),
            data: format!(
                "  address: \"{}/v1/spaces/AAA/messages?key=gchat-key-1c2d&token=gchat-token-3e4f\"\n",
                url()
            ),
            secrets: vec![s("gchat-key-1c2d"), s("gchat-token-3e4f")],
        },
        Case {
            name: "webex",
            ty: "webex",
            spec: format!("  address: {}/v1/messages\n  channel: room-1\n", url()),
            data: s("  token: webex-token-5a6b\n"),
            secrets: vec![s("webex-token-5a6b")],
        },
        Case {
            name: "telegram",
            ty: "telegram",
            spec: format!("  address: {}\n  channel: \"@herald\"\n", url()),
            data: s("  token: \"123456:telegram-token-7c8d\"\n"),
            secrets: vec![s("telegram-token-7c8d")],
        },
        Case {
            name: "lark",
            ty: "lark",
            spec: String::new(),
            data: format!(
                "  address: {}/open-apis/bot/v2/hook/lark-secret-9e0f\n",
                url()
            ),
            secrets: vec![s("lark-secret-9e0f")],
        },
        Case {
            name: "matrix",
            ty: "matrix",
            spec: format!("  address: {}\n  channel: \"!room:example.org\"\n", url()),
            data: s("  token: matrix-token-1a3c\n"),
            secrets: vec![s("matrix-token-1a3c")],
        },
    ]);
    #[cfg(feature = "git")]
    cases.extend([
        Case {
            name: "github",
            ty: "github",
            spec: format!("  address: {}/acme/webapp\n", url()),
            data: s("  token: ghp-token-2b4d\n"),
            secrets: vec![s("ghp-token-2b4d")],
        },
        Case {
            name: "gitlab",
            ty: "gitlab",
            spec: format!("  address: {}/acme/webapp\n", url()),
            data: s("  token: glpat-token-3c5e\n"),
            secrets: vec![s("glpat-token-3c5e")],
        },
        Case {
            name: "gitea",
            ty: "gitea",
            spec: format!("  address: {}/acme/webapp\n", url()),
            data: s("  token: gitea-token-4d6f\n"),
            secrets: vec![s("gitea-token-4d6f")],
        },
        Case {
            name: "bitbucket",
            ty: "bitbucket",
            spec: format!("  address: {}/acme/webapp\n", url()),
            data: s("  token: \"bbuser:bb-app-pass-5e7a\"\n"),
            secrets: vec![s("bb-app-pass-5e7a")],
        },
        Case {
            name: "bitbucketserver",
            ty: "bitbucketserver",
            spec: format!("  address: {}/scm/acme/webapp.git\n", url()),
            data: s("  username: bbs-user\n  password: bbs-pass-6f8b\n"),
            secrets: vec![s("bbs-pass-6f8b")],
        },
        Case {
            name: "azuredevops",
            ty: "azuredevops",
            spec: format!("  address: {}/org/project/_git/repo\n", url()),
            data: s("  token: ado-pat-7a9c\n"),
            secrets: vec![s("ado-pat-7a9c")],
        },
        Case {
            name: "githubdispatch",
            ty: "githubdispatch",
            spec: format!("  address: {}/acme/webapp\n", url()),
            data: s("  token: ghd-token-8b0d\n"),
            secrets: vec![s("ghd-token-8b0d")],
        },
    ]);
    #[cfg(feature = "alerting")]
    cases.extend([
        Case {
            name: "alertmanager",
            ty: "alertmanager",
            spec: format!("  address: {}/api/v2/alerts\n", url()),
            data: s("  username: am-user\n  password: am-pass-9c1e\n"),
            secrets: vec![s("am-pass-9c1e")],
        },
        Case {
            name: "opsgenie",
            ty: "opsgenie",
            spec: format!("  address: {}/v2/alerts\n", url()),
            data: s("  token: opsgenie-key-0d2f\n"),
            secrets: vec![s("opsgenie-key-0d2f")],
        },
        Case {
            name: "grafana",
            ty: "grafana",
            spec: format!("  address: {}/api/annotations\n", url()),
            data: s("  token: grafana-token-1e3a\n"),
            secrets: vec![s("grafana-token-1e3a")],
        },
        Case {
            name: "sentry",
            ty: "sentry",
            spec: String::new(),
            data: {
                let u = url();
                let hostport = u.trim_start_matches("http://").to_owned();
                format!("  address: http://sentry-dsn-key-2f4b@{hostport}/42\n")
            },
            secrets: vec![s("sentry-dsn-key-2f4b")],
        },
        Case {
            name: "otel",
            ty: "otel",
            spec: format!("  address: {}/v1/traces\n", url()),
            data: s(
                "  token: otlp-token-4a6c\n  headers: |\n    X-Scope-OrgID: otlp-tenant-5b7d\n",
            ),
            secrets: vec![s("otlp-token-4a6c"), s("otlp-tenant-5b7d")],
        },
    ]);
    #[cfg(feature = "eventhub")]
    cases.push(Case {
        name: "azureeventhub",
        ty: "azureeventhub",
        spec: String::new(),
        data: {
            let u = url();
            let hostport = u.trim_start_matches("http://").to_owned();
            format!(
                "  address: \"Endpoint=sb://{hostport}/;SharedAccessKeyName=send;SharedAccessKey=eh-sas-key-3a5c;EntityPath=hub\"\n"
            )
        },
        secrets: vec![s("eh-sas-key-3a5c")],
    });
    cases
}

fn manifest_text(cases: &[Case]) -> String {
    let mut text = String::new();
    for c in cases {
        text.push_str(&format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  type: {ty}\n  timeout: 2s\n  secretRef: {{name: {name}}}\n{spec}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: apps}}\nstringData:\n{data}---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  providerRef: {{name: {name}}}\n  eventSources:\n    - kind: Kustomization\n      name: '*'\n      namespace: flux-system\n",
            name = c.name,
            ty = c.ty,
            spec = c.spec,
            data = c.data,
        ));
    }
    text
}

fn printed(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_clean(what: &str, text: &str, cases: &[Case]) {
    for c in cases {
        for secret in &c.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} printed the secret {secret:?} of {}:\n{text}",
                c.name
            );
        }
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    herald()
        .args(["--log-level", "debug"])
        .args(args)
        .arg("--manifests")
        .arg(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_deliveries_print_no_secret() {
    let mut recs = Vec::new();
    for _ in 0..32 {
        recs.push(Recorder::start().await);
    }
    let cases = cases(&recs);
    // Each service refuses, echoing the credentials it was sent.
    for (rec, c) in recs.iter().zip(&cases) {
        for _ in 0..40 {
            rec.push_reply(
                Reply::status(401)
                    .header("content-type", "text/plain")
                    .body(format!("unauthorized: {}", c.secrets.join(" "))),
            );
        }
    }
    let dir = manifests(&manifest_text(&cases));
    let event = repo_root().join("examples/events/kustomization-ready.json");
    let event = event.to_str().unwrap().to_owned();

    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || run(&dir, &["validate"])
    })
    .await
    .unwrap();
    let text = printed(&out);
    assert!(out.status.success(), "{text}");
    assert_clean("herald validate", &text, &cases);

    for c in &cases {
        let provider = format!("apps/{}", c.name);
        let out = tokio::task::spawn_blocking({
            let dir = dir.path().to_owned();
            let event = event.clone();
            move || run(&dir, &["send", "--provider", &provider, "--event", &event])
        })
        .await
        .unwrap();
        let text = printed(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {text}", c.name);
        assert!(text.contains("failed"), "{}: {text}", c.name);
        assert_clean(&format!("herald send to {}", c.name), &text, &cases);

        // What render prints, in both formats (the event has a revision: the git types show
        // their post).
        for format in ["text", "json"] {
            let provider = format!("apps/{}", c.name);
            let out = tokio::task::spawn_blocking({
                let dir = dir.path().to_owned();
                let event = event.clone();
                move || {
                    let args = ["render", "--format", format, "--provider", &provider];
                    run(&dir, &[&args[..], &["--event", event.as_str()]].concat())
                }
            })
            .await
            .unwrap();
            let text = printed(&out);
            assert!(out.status.success(), "{}: {text}", c.name);
            assert!(!out.stdout.is_empty(), "{}: {text}", c.name);
            assert_clean(&format!("herald render of {}", c.name), &text, &cases);
        }
    }

    // A broken Secret: the error names the field, never the value.
    let broken = manifests(&manifest_text(&cases).replace(
        "  token: hmac-key-9c0d\n",
        "  token: hmac-key-9c0d\n  headers: \"not: [a map\"\n",
    ));
    let out = tokio::task::spawn_blocking({
        let dir = broken.path().to_owned();
        move || run(&dir, &["validate"])
    })
    .await
    .unwrap();
    let text = printed(&out);
    assert!(!out.status.success(), "{text}");
    assert_clean("herald validate of a broken Secret", &text, &cases);
    // The daemon reports that Secret's Provider as not ready, without the values either.
    let d = Daemon::start(broken.path(), &[]);
    let objects = request(&d.api, "GET", "/api/v1/objects", &[], b"").await;
    assert!(
        objects.body_str().contains("\"ready\":false"),
        "{}",
        objects.body_str()
    );
    assert_clean("/api/v1/objects", &objects.body_str(), &cases);
    let ready = request(&d.health, "GET", "/readyz", &[], b"").await;
    assert!(
        ready.body_str().contains("not ready"),
        "{}",
        ready.body_str()
    );
    assert_clean("/readyz", &ready.body_str(), &cases);
    assert_clean("herald serve logs of a broken Secret", &d.logs(), &cases);
    drop(d);

    // Failing deliveries are given up quickly, so that every one ends in the outbox as dead.
    let d = Daemon::start(
        dir.path(),
        &["--delivery-max-age", "1s", "--retry-backoff-max", "1s"],
    );
    let body = std::fs::read(&event).unwrap();
    let resp = request(&d.events, "POST", "/", &[], &body).await;
    assert_eq!(resp.status, 202);
    // The commit-status providers get only events marked as such.
    let mut commit: serde_json::Value = serde_json::from_slice(&body).unwrap();
    commit["metadata"]["kustomize.toolkit.fluxcd.io/commit_status"] = "update".into();
    commit["message"] = "commit status".into();
    let resp = request(&d.events, "POST", "/", &[], commit.to_string().as_bytes()).await;
    assert_eq!(resp.status, 202);
    // Every Provider's delivery fails and is logged.
    for c in &cases {
        d.wait_log(
            &format!("\"provider\":\"apps/{}\"", c.name),
            Duration::from_secs(30),
        )
        .await;
    }
    // Every delivery has ended (failed) before the scan.
    d.wait_metric("herald_queue_depth", 0.0, Duration::from_secs(60))
        .await;
    let metrics = request(&d.metrics, "GET", "/metrics", &[], b"").await;
    assert_clean("/metrics", &metrics.body_str(), &cases);
    // The status API and the outbox hold every last error.
    let providers = request(&d.api, "GET", "/api/v1/providers", &[], b"").await;
    assert_eq!(providers.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&providers.body).unwrap();
    let with_errors = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["last_error"].is_string())
        .count();
    assert!(with_errors >= cases.len() / 2, "{v}");
    assert_clean("/api/v1/providers", &providers.body_str(), &cases);
    let deliveries = request(&d.api, "GET", "/api/v1/deliveries?limit=10000", &[], b"").await;
    assert_eq!(deliveries.status, 200);
    assert_clean("/api/v1/deliveries", &deliveries.body_str(), &cases);
    let out = herald()
        .args([
            "outbox", "--json", "--api", &d.api, "list", "--state", "dead",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_clean("herald outbox list", &printed(&out), &cases);
    assert_clean("herald serve logs", &d.logs(), &cases);
}
