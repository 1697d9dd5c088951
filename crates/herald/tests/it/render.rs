//! `herald render` through the real binary: what it prints is what `herald send` sends (same
//! method, path, headers and body bytes, but for masked values), its text listing, and its
//! errors.

use std::path::Path;
use std::process::Output;

use herald_testkit::{Recorded, Recorder, Reply};

use crate::support::{herald, manifests, repo_root};

/// A Provider `apps/<name>` of `ty` with `spec` lines and, when `data` is not empty, a
/// Secret of that `stringData`.
fn provider(name: &str, ty: &str, spec: &str, data: &str) -> String {
    let mut text = format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  type: {ty}\n  timeout: 5s\n{spec}"
    );
    if !data.is_empty() {
        text.push_str(&format!(
            "  secretRef: {{name: {name}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: apps}}\nstringData:\n{data}"
        ));
    }
    text
}

fn alert(name: &str, provider: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  providerRef: {{name: {provider}}}\n  eventSources:\n    - kind: Kustomization\n      name: '*'\n      namespace: flux-system\n{extra}"
    )
}

fn run(dir: &Path, args: &[&str]) -> Output {
    herald()
        .args(args)
        .arg("--manifests")
        .arg(dir)
        .output()
        .unwrap()
}

fn event_file() -> String {
    repo_root()
        .join("examples/events/kustomization-ready.json")
        .to_str()
        .unwrap()
        .to_owned()
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether `sent` is `shown` with each `*****` of `shown` standing for a non-empty part.
fn same_but_masked(shown: &str, sent: &str) -> bool {
    let parts: Vec<&str> = shown.split("*****").collect();
    if parts.len() == 1 {
        return shown == sent;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    let Some(mut rest) = sent.strip_prefix(first) else {
        return false;
    };
    for middle in &parts[1..parts.len() - 1] {
        // Each mask stands for at least one byte.
        let Some(at) = rest.get(1..).and_then(|r| r.find(middle)) else {
            return false;
        };
        rest = &rest[1 + at + middle.len()..];
    }
    rest.len() > last.len() && rest.ends_with(last)
}

#[test]
fn masked_comparison_needs_every_visible_part() {
    assert!(same_but_masked("a", "a"));
    assert!(same_but_masked("/hook/*****", "/hook/tok"));
    assert!(same_but_masked("*****@h/*****/x", "u:p@h/tok/x"));
    assert!(!same_but_masked("/hook/*****", "/hook/"));
    assert!(!same_but_masked("/hook/*****", "/other/tok"));
    assert!(!same_but_masked("a*****b*****c", "abc"));
}

/// The JSON lines `herald render --format json` printed.
fn rendered(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", printed(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asserts that `shown` (one rendered request) is `sent` but for masked values: method, path
/// and query, every header sent (but those the HTTP library writes itself) and the body.
fn assert_same(what: &str, shown: &serde_json::Value, sent: &Recorded) {
    assert_eq!(shown["method"], sent.method.as_str(), "{what}: {shown}");
    let url = shown["url"].as_str().unwrap();
    let path = &url[url.find("://").unwrap() + 3..];
    let path = &path[path.find('/').unwrap_or(path.len())..];
    assert!(
        same_but_masked(path, &sent.path),
        "{what}: path {path} shown, {} sent",
        sent.path
    );
    let headers: Vec<(String, String)> = shown["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_ascii_lowercase(),
                h[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (name, value) in &sent.headers {
        let name = name.to_ascii_lowercase();
        if matches!(name.as_str(), "host" | "content-length") {
            continue;
        }
        let Some((_, shown_value)) = headers.iter().find(|(n, _)| *n == name) else {
            panic!("{what}: header {name} sent, not shown: {shown}");
        };
        assert!(
            same_but_masked(shown_value, value),
            "{what}: header {name}: {shown_value:?} shown, {value:?} sent"
        );
    }
    assert_eq!(
        headers.len(),
        sent.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host")
                && !n.eq_ignore_ascii_case("content-length"))
            .count(),
        "{what}: headers shown that were not sent: {shown}"
    );
    let body = shown["body"].as_str().unwrap();
    assert!(
        same_but_masked(body, sent.body_str()),
        "{what}: body {body} shown, {} sent",
        sent.body_str()
    );
}

/// One family's Provider: its manifests, the replies its service gives to `herald send`, the
/// secrets, and how many of the requests sent are the delivery's writes (the last ones).
struct Case {
    name: &'static str,
    manifests: String,
    replies: Vec<Reply>,
    secrets: Vec<&'static str>,
    writes: usize,
}

fn cases(rec: &Recorder) -> Vec<Case> {
    let url = rec.url();
    #[allow(unused_mut)]
    let mut cases = vec![Case {
        name: "signed",
        manifests: provider(
            "signed",
            "generic-hmac",
            &format!("  address: {url}/signed\n"),
            "  token: render-hmac-key-1a2b\n  headers: |\n    X-Api-Key: render-header-3c4d\n",
        ),
        replies: Vec::new(),
        secrets: vec!["render-hmac-key-1a2b", "render-header-3c4d"],
        writes: 1,
    }];
    #[cfg(feature = "chat")]
    cases.push(Case {
        name: "slack",
        manifests: provider(
            "slack",
            "slack",
            "",
            &format!("  address: {url}/services/T01/B02/render-slack-hook-5e6f\n"),
        ),
        replies: vec![Reply::status(200).body("ok")],
        secrets: vec!["render-slack-hook-5e6f"],
        writes: 1,
    });
    #[cfg(feature = "git")]
    cases.push(Case {
        name: "github",
        manifests: provider(
            "github",
            "github",
            &format!("  address: {url}/acme/webapp\n"),
            "  token: render-ghp-7a8b\n",
        ),
        // The lookup of the commit's statuses finds none.
        replies: vec![Reply::status(200).body("[]")],
        secrets: vec!["render-ghp-7a8b"],
        writes: 1,
    });
    #[cfg(feature = "alerting")]
    cases.push(Case {
        name: "pagerduty",
        manifests: provider(
            "pagerduty",
            "pagerduty",
            &format!("  address: {url}\n  channel: render-routing-key\n"),
            "",
        ),
        replies: Vec::new(),
        secrets: Vec::new(),
        // An `info` event: the event, then the change event.
        writes: 2,
    });
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn render_shows_what_send_sends() {
    let rec = Recorder::start().await;
    for c in cases(&rec) {
        let dir = manifests(&c.manifests);
        let provider = format!("apps/{}", c.name);
        let before = rec.requests().len();
        for reply in c.replies {
            rec.push_reply(reply);
        }
        let (send, render) = tokio::task::spawn_blocking({
            let dir = dir.path().to_owned();
            let provider = provider.clone();
            move || {
                let event = event_file();
                let args = ["--provider", &provider, "--event", &event];
                let send = run(&dir, &[&["send"][..], &args[..]].concat());
                let render = run(
                    &dir,
                    &[&["render", "--format", "json"][..], &args[..]].concat(),
                );
                (send, render)
            }
        })
        .await
        .unwrap();
        assert!(send.status.success(), "{}: {}", c.name, printed(&send));
        let sent = rec.requests()[before..].to_vec();
        let writes = &sent[sent.len() - c.writes..];
        let shown = rendered(&render);
        assert_eq!(shown.len(), c.writes, "{}: {}", c.name, printed(&render));
        for (shown, sent) in shown.iter().zip(writes) {
            assert_same(c.name, shown, sent);
        }
        for secret in &c.secrets {
            assert!(
                !printed(&render).contains(secret),
                "{}: {secret} printed:\n{}",
                c.name,
                printed(&render)
            );
        }
        assert_eq!(
            rec.requests().len(),
            before + sent.len(),
            "{}: render sent something",
            c.name
        );
    }
}

#[test]
fn the_text_listing_is_an_http_request() {
    let dir = manifests(&provider(
        "signed",
        "generic-hmac",
        "  address: https://user:render-pass-9c0d@hooks.example/flux\n",
        "  token: render-hmac-key-1a2b\n  headers: |\n    Authorization: Bearer render-bearer-2d3e\n",
    ));
    let out = run(
        dir.path(),
        &[
            "render",
            "--provider",
            "apps/signed",
            "--event",
            &event_file(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).replace(env!("CARGO_PKG_VERSION"), "<version>");
    assert!(out.status.success(), "{}", printed(&out));
    herald_testkit::assert_golden(
        &repo_root().join("crates/herald/tests/golden/render/generic-hmac.txt"),
        &text,
    );
    for secret in [
        "render-pass-9c0d",
        "render-hmac-key-1a2b",
        "render-bearer-2d3e",
    ] {
        assert!(!printed(&out).contains(secret), "{}", printed(&out));
    }
    assert!(
        printed(&out).contains("no Alert applied (0 Alerts name Provider apps/signed"),
        "{}",
        printed(&out)
    );
}

#[test]
fn the_alert_chosen_adds_its_summary_and_event_metadata() {
    let text = [
        provider(
            "hook",
            "generic",
            "  address: https://hooks.example/flux\n",
            "",
        ),
        alert(
            "one",
            "hook",
            "  summary: from-alert-one\n  eventMetadata: {cluster: prod-eu}\n",
        ),
    ]
    .concat();
    let event = event_file();
    let render = |dir: &Path, extra: &[&str]| {
        let mut args = vec!["render", "--format", "json", "--provider", "apps/hook"];
        args.extend_from_slice(&["--event", event.as_str()]);
        args.extend_from_slice(extra);
        run(dir, &args)
    };
    let dir = manifests(&text);
    let out = render(dir.path(), &[]);
    let shown = rendered(&out);
    let body = shown[0]["body"].as_str().unwrap();
    assert!(body.contains(r#""summary":"from-alert-one""#), "{body}");
    assert!(body.contains(r#""cluster":"prod-eu""#), "{body}");
    assert!(
        printed(&out).contains("using Alert apps/one, the one Alert of Provider apps/hook"),
        "{}",
        printed(&out)
    );
    // Two Alerts: none applies unless one is named.
    let dir = manifests(
        &[
            text.as_str(),
            &alert("two", "hook", "  summary: from-two\n"),
        ]
        .concat(),
    );
    let out = render(dir.path(), &[]);
    let body = rendered(&out)[0]["body"].as_str().unwrap().to_owned();
    assert!(!body.contains("from-"), "{body}");
    assert!(
        printed(&out).contains("no Alert applied (2 Alerts"),
        "{}",
        printed(&out)
    );
    let out = render(dir.path(), &["--alert", "apps/two"]);
    let body = rendered(&out)[0]["body"].as_str().unwrap().to_owned();
    assert!(body.contains(r#""summary":"from-two""#), "{body}");
    // --raw: the metadata as given.
    let out = render(dir.path(), &["--alert", "apps/two", "--raw"]);
    let body = rendered(&out)[0]["body"].as_str().unwrap().to_owned();
    assert!(
        body.contains("kustomize.toolkit.fluxcd.io/revision") && !body.contains("from-two"),
        "{body}"
    );
}

#[test]
fn errors_name_the_object_and_exit_1() {
    let text = [
        provider("hook", "generic", "  address: https://hooks.example/flux\n", ""),
        provider("other", "generic", "  address: https://hooks.example/other\n", ""),
        // Its Secret is missing.
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: broken, namespace: apps}\nspec:\n  type: generic\n  address: https://hooks.example/x\n  secretRef: {name: absent}\n".to_owned(),
        alert("to-other", "other", ""),
    ]
    .concat();
    let dir = manifests(&text);
    let render = |extra: &[&str]| {
        let event = event_file();
        let args = [&["render", "--event", event.as_str()][..], extra].concat();
        run(dir.path(), &args)
    };
    let out = render(&["--provider", "apps/nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains(
            "error: no Provider apps/nope in the manifests (providers found: apps/broken, apps/hook, apps/other); nothing rendered"
        ),
        "{}",
        printed(&out)
    );
    let out = render(&["--provider", "apps/broken"]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    let err = printed(&out);
    assert!(
        err.contains("Provider apps/broken") && err.contains("absent"),
        "{err}"
    );
    assert!(err.contains(".yaml:"), "the file and line: {err}");
    assert!(
        err.contains("error: Provider apps/broken is not ready; nothing rendered"),
        "{err}"
    );
    let out = render(&["--provider", "apps/hook", "--alert", "apps/to-other"]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains(
            "error: Alert apps/to-other sends to Provider apps/other, not apps/hook; nothing rendered"
        ),
        "{}",
        printed(&out)
    );
    let out = render(&["--provider", "apps/hook", "--alert", "apps/absent"]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("error: no Alert apps/absent in the manifests"),
        "{}",
        printed(&out)
    );
    assert!(out.stdout.is_empty());
}

#[cfg(feature = "alerting")]
#[test]
fn an_event_that_sends_nothing_says_so() {
    let dir = manifests(&provider(
        "pagerduty",
        "pagerduty",
        "  address: https://events.pagerduty.com\n  channel: key\n",
        "",
    ));
    let mut event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(event_file()).unwrap()).unwrap();
    event["reason"] = "Progressing".into();
    let file = dir.path().join("progressing.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let out = run(
        dir.path(),
        &[
            "render",
            "--format",
            "json",
            "--provider",
            "apps/pagerduty",
            "--event",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(out.stdout.is_empty(), "{}", printed(&out));
    assert!(
        printed(&out).contains(
            "nothing would be sent: Provider apps/pagerduty (pagerduty) sends nothing for this event"
        ),
        "{}",
        printed(&out)
    );
}

/// A message template shapes what render shows, as it shapes what is sent: the Alert's
/// template when render applies that Alert, else the Provider's.
#[cfg(feature = "templates")]
#[test]
fn render_shows_the_templated_request() {
    let provider = "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\n\
        metadata:\n  name: hook\n  namespace: apps\n  annotations:\n    herald.dev/template: \
        '{\"from\": \"provider\", \"object\": {{ obj | json }}}'\n\
        spec:\n  type: generic\n  address: https://hooks.example/flux\n";
    let templated_alert = "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\n\
        metadata:\n  name: templated\n  namespace: apps\n  annotations:\n    herald.dev/template: \
        '{\"from\": \"alert\", \"summary\": {{ alert.summary | json }}}'\n\
        spec:\n  summary: on-call\n  providerRef: {name: hook}\n  eventSources:\n    \
        - {kind: Kustomization, name: '*', namespace: flux-system}\n";
    let event = event_file();
    let args = [
        "render",
        "--format",
        "json",
        "--provider",
        "apps/hook",
        "--event",
        &event,
    ];

    let dir = manifests(&[provider, templated_alert].concat());
    let shown = rendered(&run(dir.path(), &args));
    assert_eq!(
        shown[0]["body"],
        r#"{"from": "alert", "summary": "on-call"}"#
    );
    assert_eq!(
        shown[0]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "Content-Type")
            .map(|h| h[1].clone()),
        Some(serde_json::Value::from("application/json")),
        "{shown:?}"
    );

    // Two Alerts name the Provider and none is chosen: the Provider's template.
    let dir = manifests(&[provider, templated_alert, &alert("plain", "hook", "")].concat());
    let shown = rendered(&run(dir.path(), &args));
    assert_eq!(
        shown[0]["body"],
        r#"{"from": "provider", "object": "Kustomization/flux-system/apps"}"#
    );
    let named = [&args[..], &["--alert", "apps/templated"]].concat();
    let shown = rendered(&run(dir.path(), &named));
    assert_eq!(
        shown[0]["body"],
        r#"{"from": "alert", "summary": "on-call"}"#
    );
}
