//! Message templates through the real binary: `herald validate` names the file, the object,
//! the annotation and the line and column inside the template; `herald serve` delivers
//! templated bodies while the objects with bad templates are not ready, and re-checks them
//! on reload.

use std::path::Path;
use std::time::Duration;

use herald_testkit::Recorder;
use serde_json::Value;

use crate::support::{Daemon, flux_event, herald, request};

const WAIT: Duration = Duration::from_secs(20);

/// A Provider or Alert in namespace `apps` with `annotations` (block style, indented four).
fn object(kind: &str, name: &str, annotations: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: apps\n  annotations:\n{annotations}\nspec:\n{spec}\n"
    )
}

fn generic(url: &str) -> String {
    format!("  type: generic\n  address: {url}/hook")
}

fn alert_spec(provider: &str) -> String {
    format!(
        "  providerRef:\n    name: {provider}\n  eventSources:\n    - kind: Kustomization\n      name: \"*\""
    )
}

const GOOD: &str = "    herald.dev/template: |\n      {\"text\": {{ (obj ~ ' ' ~ event.message) | json }}, \"rev\": {{ short_revision | json }}}";

/// Every kind of bad template, next to a good Provider and Alert.
fn write_set(dir: &Path, good: &Recorder, plain: &Recorder) {
    let providers = [
        object("Provider", "good", GOOD, &generic(&good.url())),
        object(
            "Provider",
            "syntax",
            "    herald.dev/template: |\n      {\"a\": 1,\n       \"b\": {{ event.message }",
            &generic("http://127.0.0.1:1"),
        ),
        object(
            "Provider",
            "forever",
            "    herald.dev/template: \"{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\"",
            &generic("http://127.0.0.1:1"),
        ),
        object(
            "Provider",
            "huge",
            "    herald.dev/template: \"[{% for a in range(99999) %}{{ event.message | json }},{% endfor %}0]\"",
            &generic("http://127.0.0.1:1"),
        ),
        format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: plain, namespace: apps}}\nspec:\n{}\n",
            generic(&plain.url())
        ),
    ]
    .concat();
    std::fs::write(dir.join("providers.yaml"), providers).unwrap();
    let alerts = [
        object(
            "Alert",
            "good",
            "    example.com/note: free",
            &alert_spec("good"),
        ),
        object(
            "Alert",
            "unknown",
            "    herald.dev/template-from: messages/unknown",
            &alert_spec("good"),
        ),
        object(
            "Alert",
            "plain",
            "    example.com/note: free",
            &alert_spec("plain"),
        ),
        object(
            "Alert",
            "to-syntax",
            "    example.com/note: free",
            &alert_spec("syntax"),
        ),
    ]
    .concat();
    std::fs::write(dir.join("alerts.yaml"), alerts).unwrap();
    std::fs::write(
        dir.join("messages.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: messages\n  namespace: apps\ndata:\n  unknown: |\n    {\"text\": \"fine\",\n     \"who\": {{ alert.owner }}}\n",
    )
    .unwrap();
}

/// Where each bad template is, as `herald validate` says it.
const EXPECTED: [&str; 4] = [
    "providers.yaml:20 (document 2): Provider apps/syntax: metadata.annotations.herald.dev/template: template: line 2, column 24: syntax error: unexpected `}`, expected end of variable block",
    "providers.yaml:33 (document 3): Provider apps/forever: metadata.annotations.herald.dev/template: template: line 1: the template ran out of fuel (a loop that does not end, or one that does too much work) (rendering the sample info event)",
    "providers.yaml:44 (document 4): Provider apps/huge: metadata.annotations.herald.dev/template: template: the output is larger than the limit (rendering the sample info event)",
    "alerts.yaml:22 (document 2): Alert apps/unknown: metadata.annotations.herald.dev/template-from: template \"unknown\" of ConfigMap apps/messages (",
];

#[tokio::test(flavor = "multi_thread")]
async fn validate_names_the_file_object_annotation_line_and_column() {
    let (good, plain) = (Recorder::start().await, Recorder::start().await);
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &good, &plain);
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for want in EXPECTED {
        assert!(err.contains(want), "{want}\nnot in:\n{err}");
    }
    assert!(
        err.contains("messages.yaml:7): line 2, column 12: undefined value: `alert.owner` is undefined (rendering the sample info event)"),
        "{err}"
    );
    assert!(
        err.contains("5 object(s) not ready: Provider apps/forever, Provider apps/huge, Provider apps/syntax, Alert apps/to-syntax, Alert apps/unknown;"),
        "{err}"
    );
}

/// `(kind, namespace/name)` → ready, from the status API.
async fn readiness(d: &Daemon) -> Vec<(String, String, bool)> {
    let r = request(&d.api, "GET", "/api/v1/objects", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] != "File")
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_owned(),
                format!(
                    "{}/{}",
                    o["namespace"].as_str().unwrap(),
                    o["name"].as_str().unwrap()
                ),
                o["ready"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_delivers_templated_bodies_while_bad_templates_are_not_ready() {
    let (good, plain) = (Recorder::start().await, Recorder::start().await);
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &good, &plain);
    let d = Daemon::start(dir.path(), &[]);
    let not_ready: Vec<String> = readiness(&d)
        .await
        .into_iter()
        .filter(|(_, _, ready)| !ready)
        .map(|(kind, name, _)| format!("{kind} {name}"))
        .collect();
    assert_eq!(
        not_ready,
        [
            "Provider apps/forever",
            "Provider apps/huge",
            "Provider apps/syntax",
            "Alert apps/to-syntax",
            "Alert apps/unknown",
        ]
    );

    let r = request(&d.events, "POST", "/", &[], flux_event("boom").as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.body_str());
    let got = good.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].body_str(),
        r#"{"text": "Kustomization/apps/webapp boom", "rev": "731f7ea"}"#
    );
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let flux = plain.wait_for(1, WAIT).await;
    assert!(
        flux[0]
            .body_str()
            .starts_with(r#"{"involvedObject":{"kind":"Kustomization""#),
        "the untemplated Provider posts the event as Flux does: {}",
        flux[0].body_str()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(good.requests().len(), 1, "only the ready Alert delivered");

    // Fixing the ConfigMap heals its Alert on reload; the check runs again.
    std::fs::write(
        dir.path().join("messages.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: messages\n  namespace: apps\ndata:\n  unknown: |\n    {\"who\": {{ alert.name | json }}}\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let list = readiness(&d).await;
        if list.contains(&("Alert".to_owned(), "apps/unknown".to_owned(), true)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not healed: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = request(&d.events, "POST", "/", &[], flux_event("again").as_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.body_str());
    let got = good.wait_for(3, WAIT).await;
    let mut bodies: Vec<String> = got[1..].iter().map(|r| r.body_str().to_owned()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            r#"{"text": "Kustomization/apps/webapp again", "rev": "731f7ea"}"#,
            r#"{"who": "unknown"}"#,
        ]
    );
}

#[test]
fn validate_counts_the_configmaps_of_a_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        object(
            "Provider",
            "hook",
            "    herald.dev/template-from: messages/body",
            &generic("http://127.0.0.1:1"),
        ),
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: messages\n  namespace: apps\ndata:\n  body: '{\"text\": {{ event.message | json }}}'\n".to_owned(),
    ]
    .concat();
    std::fs::write(dir.path().join("set.yaml"), text).unwrap();
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "ok: 1 provider(s), 0 alert(s), 0 secret(s), 1 ConfigMap(s) in 1 file(s); 0 other document(s) skipped"
    );
}

/// Whether `key` is a Kubernetes annotation key: an optional DNS subdomain prefix and `/`, then
/// a name of at most 63 characters, alphanumerics with `-`, `_` or `.` inside.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let prefix_ok = prefix.is_empty()
        || (prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    name_ok && prefix_ok
}

/// The documents of `text` that are Flux notification objects.
fn flux_objects(text: &str) -> Vec<serde_yaml_ng::Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .filter(|v| {
            v["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("notification.toolkit.fluxcd.io/"))
        })
        .collect()
}

/// The templated manifests herald ships (the example set and every YAML block of
/// docs/templates.md) are Flux objects a cluster accepts unchanged: herald's extensions are
/// only annotations, with keys Kubernetes accepts and string values, under `herald.dev/`; the
/// objects have nothing but `apiVersion`, `kind`, `metadata` and `spec`, and their spec fields
/// are upstream's (herald's strict per-version check, which `herald validate` runs, refuses
/// any other field).
#[test]
fn templated_manifests_are_flux_objects_with_annotations_only() {
    let root = crate::support::repo_root();
    let docs = std::fs::read_to_string(root.join("docs/templates.md")).unwrap();
    let mut sets =
        vec![std::fs::read_to_string(root.join("examples/manifests/templates.yaml")).unwrap()];
    sets.extend(
        docs.split("```yaml\n")
            .skip(1)
            .map(|block| block.split("```").next().unwrap().to_owned()),
    );
    assert!(sets.len() >= 5, "the example set and the docs' YAML blocks");
    let mut annotated = 0;
    for text in &sets {
        for object in flux_objects(text) {
            let top: Vec<&str> = object
                .as_mapping()
                .unwrap()
                .keys()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert!(
                top.iter()
                    .all(|k| ["apiVersion", "kind", "metadata", "spec"].contains(k)),
                "{top:?}"
            );
            let Some(annotations) = object["metadata"]["annotations"].as_mapping() else {
                continue;
            };
            for (key, value) in annotations {
                let key = key.as_str().unwrap();
                assert!(is_qualified_name(key), "{key} is not an annotation key");
                assert!(value.is_string(), "{key}: annotation values are strings");
                if key.starts_with("herald.dev/") {
                    annotated += 1;
                }
            }
        }
        // The objects the docs' blocks name but do not show (a block is one excerpt).
        let shown_elsewhere = "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\n\
            kind: Provider\nmetadata: {name: slack, namespace: flux-system}\n\
            spec: {type: slack, address: 'https://hooks.slack.com/services/T0/B0/x'}\n---\n\
            apiVersion: v1\nkind: Secret\nmetadata: {name: github-token, namespace: flux-system}\n\
            stringData: {token: ghp-example}\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("set.yaml"),
            format!("{text}{shown_elsewhere}"),
        )
        .unwrap();
        let out = herald()
            .args(["validate", "--manifests"])
            .arg(dir.path())
            .output()
            .unwrap();
        // Every object ready: its fields are upstream's and its template compiles and renders.
        assert!(
            out.status.success(),
            "{}{}\nin\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(annotated >= 6, "{annotated} herald annotations checked");
    assert!(is_qualified_name("herald.dev/template-content-type"));
    assert!(!is_qualified_name("herald.dev/-template"));
    assert!(!is_qualified_name("Herald.dev/template"));
    assert!(!is_qualified_name(&format!(
        "herald.dev/{}",
        "x".repeat(64)
    )));
}
