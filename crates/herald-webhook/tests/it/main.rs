//! The generic and generic-hmac providers against a recording server on loopback.

// Test helpers unwrap: a panic there is a test failure with a location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use herald_core::manifest::parse_str;
use herald_core::{Event, ProviderConfig, ProviderType, SecretString};
use herald_testkit::fixture;
use herald_testkit::{Recorded, Recorder, Reply, assert_golden, fixture_event};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn config(ty: ProviderType, url: &str) -> ProviderConfig {
    ProviderConfig::new(ty, "flux-system", "hook", url)
}

/// Checks the signature with Python's hmac module: a verifier that shares no code with ours.
fn python_verifies(key: &str, body: &[u8], signature: &str) -> bool {
    let dir = tempfile_dir();
    let body_path = dir.join("body");
    std::fs::write(&body_path, body).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys; b=open(sys.argv[2],'rb').read(); \
             print('sha256='+hmac.new(sys.argv[1].encode(), b, hashlib.sha256).hexdigest())",
            key,
            body_path.to_str().unwrap(),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == signature
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-webhook-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn request_summary(r: &Recorded) -> String {
    let mut out = format!("{} {}\n", r.method, r.path);
    for name in [
        "content-type",
        "gotk-component",
        "x-signature",
        "authorization",
        "x-custom",
    ] {
        if let Some(v) = r.header(name) {
            out.push_str(&format!("{name}: {v}\n"));
        }
    }
    out
}

async fn deliver(cfg: &ProviderConfig, event: &Event, rec: &Recorder) -> Recorded {
    let notifier = herald_webhook::build(cfg).unwrap();
    notifier.post(event).await.unwrap();
    rec.wait_for(1, std::time::Duration::from_secs(5))
        .await
        .pop()
        .unwrap()
}

#[tokio::test]
async fn generic_posts_the_event_exactly() {
    let rec = Recorder::start().await;
    for (case, event) in [
        ("info", fixture_event()),
        ("error", fixture("kustomization-error.json")),
        ("unicode", fixture("unicode.json")),
    ] {
        let cfg = config(
            ProviderType::Generic,
            &format!("{}/hook/{case}?q=1", rec.url()),
        );
        let notifier = herald_webhook::build(&cfg).unwrap();
        notifier.post(&event).await.unwrap();
        let got = rec.requests().pop().unwrap();
        assert_golden(&golden(&format!("generic/{case}.json")), got.body_str());
        assert_golden(
            &golden(&format!("generic/{case}.request.txt")),
            &request_summary(&got),
        );
        assert!(got.header("user-agent").unwrap().starts_with("herald/"));
    }
}

#[tokio::test]
async fn generic_hmac_signs_the_exact_body() {
    let rec = Recorder::start().await;
    let key = "7152fed34dd6149a7c75a276c510da27cb6f82b0";
    let mut cfg = config(ProviderType::GenericHmac, &rec.url());
    cfg.token = Some(SecretString::new(key));
    // A user X-Signature is overridden; other custom headers are kept.
    cfg.headers
        .insert("X-Signature".into(), SecretString::new("forged"));
    cfg.headers
        .insert("X-Custom".into(), SecretString::new("kept"));
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    // The Flux golden vector (flux-compat.md section 8.3).
    assert_eq!(
        got.header("x-signature"),
        Some("sha256=65b018549b1254e7226d1c08f9567ee45bc9de0fc4e7b1a40253f9a018b08be7")
    );
    assert_eq!(got.header("x-custom"), Some("kept"));
    assert_eq!(
        got.headers
            .iter()
            .filter(|(k, _)| k == "x-signature")
            .count(),
        1
    );
    assert!(python_verifies(
        key,
        &got.body,
        got.header("x-signature").unwrap()
    ));
    assert_golden(
        &golden("generic-hmac/info.request.txt"),
        &request_summary(&got),
    );

    for case in ["kustomization-error.json", "unicode.json"] {
        let rec = Recorder::start().await;
        let mut cfg = config(ProviderType::GenericHmac, &rec.url());
        cfg.token = Some(SecretString::new(key));
        let got = deliver(&cfg, &fixture(case), &rec).await;
        assert!(
            python_verifies(key, &got.body, got.header("x-signature").unwrap()),
            "{case}"
        );
    }
    let rec2 = Recorder::start().await;
    let mut cfg2 = config(ProviderType::GenericHmac, &rec2.url());
    cfg2.token = Some(SecretString::new("ключ-🔑"));
    let got = deliver(&cfg2, &fixture("unicode.json"), &rec2).await;
    assert!(python_verifies(
        "ключ-🔑",
        &got.body,
        got.header("x-signature").unwrap()
    ));
}

#[tokio::test]
async fn custom_headers_override_the_defaults() {
    let rec = Recorder::start().await;
    let mut cfg = config(ProviderType::Generic, &rec.url());
    cfg.headers
        .insert("Gotk-Component".into(), SecretString::new("custom"));
    cfg.headers
        .insert("Authorization".into(), SecretString::new("Bearer abc"));
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.header("gotk-component"), Some("custom"));
    assert_eq!(got.header("authorization"), Some("Bearer abc"));
}

#[tokio::test]
async fn built_from_manifests() {
    let rec = Recorder::start().await;
    let yaml = format!(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: signed\n  namespace: flux-system\nspec:\n  type: generic-hmac\n  secretRef:\n    name: hook\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: hook\n  namespace: flux-system\nstringData:\n  address: {}/from-secret\n  token: manifest-key\n  headers: |\n    X-Custom: from-manifest\n",
        rec.url()
    );
    let (set, errors) = parse_str(Path::new("inline.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let cfg = set.provider_config(&set.providers[0]).unwrap();
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.path, "/from-secret");
    assert_eq!(got.header("x-custom"), Some("from-manifest"));
    assert!(python_verifies(
        "manifest-key",
        &got.body,
        got.header("x-signature").unwrap()
    ));
}

#[test]
fn bad_configurations_are_build_errors() {
    let mut cfg = config(ProviderType::GenericHmac, "http://127.0.0.1:1/");
    let err = herald_webhook::build(&cfg).unwrap_err().to_string();
    assert_eq!(err, "secret key \"token\": HMAC key is empty");
    cfg.token = Some(SecretString::new(""));
    assert!(herald_webhook::build(&cfg).is_err());

    let cfg = config(ProviderType::Generic, "not a url");
    let err = herald_webhook::build(&cfg).unwrap_err().to_string();
    assert!(err.starts_with("spec.address: invalid hook URL"), "{err}");

    let mut cfg = config(ProviderType::Generic, "ftp://secret-host-token/x");
    cfg.address_from_secret = true;
    let err = herald_webhook::build(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("secret key \"address\": invalid hook URL"),
        "{err}"
    );
    assert!(!err.contains("secret-host-token"), "{err}");

    let mut cfg = config(ProviderType::Generic, "http://127.0.0.1:1/");
    cfg.headers
        .insert("Bad Header".into(), SecretString::new("v"));
    let err = herald_webhook::build(&cfg).unwrap_err().to_string();
    assert!(err.starts_with("secret key \"headers\""), "{err}");
}

#[tokio::test]
async fn failures_never_print_the_secret() {
    let rec = Recorder::start().await;
    let token = "hmac-7e1d2c3b4a5f-distinctive";
    rec.push_reply(
        Reply::status(400).body(format!("bad signature for key {token} at /hook/{token}")),
    );
    let mut cfg = config(
        ProviderType::GenericHmac,
        &format!("{}/hook/{token}", rec.url()),
    );
    cfg.token = Some(SecretString::new(token));
    let notifier = herald_webhook::build(&cfg).unwrap();
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    let text = format!("{err} {err:?} {notifier:?}");
    assert!(!text.contains(token), "{text}");
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("HTTP 400"), "{err}");
}

#[tokio::test]
async fn userinfo_becomes_basic_auth_unless_a_header_sets_one() {
    // As Go's client does for Flux: `user:password@` is sent as Basic auth, not in the URL.
    let rec = Recorder::start().await;
    let host = rec.url().trim_start_matches("http://").to_owned();
    let cfg = config(
        ProviderType::Generic,
        &format!("http://hook:p%40ss@{host}/a path/é?q=a b"),
    );
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.path, "/a%20path/%C3%A9?q=a%20b");
    assert_eq!(got.header("authorization"), Some("Basic aG9vazpwQHNz"));
    assert_eq!(got.header("host"), Some(host.as_str()));

    let rec = Recorder::start().await;
    let host = rec.url().trim_start_matches("http://").to_owned();
    let mut cfg = config(ProviderType::Generic, &format!("http://hook:pass@{host}/x"));
    cfg.headers.insert(
        "Authorization".into(),
        SecretString::new("Bearer from-headers"),
    );
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.header("authorization"), Some("Bearer from-headers"));
}

#[test]
fn tidy_every_type_has_a_module_goldens_and_a_readme_section() {
    herald_testkit::assert_family_layout(env!("CARGO_MANIFEST_DIR"), &herald_webhook::TYPES);
}

/// A Provider with a JSON template, an Alert of it without one, and an Alert with its own
/// plain-text template, on `generic` or `generic-hmac`.
fn templated_manifests(ty: &str, url: &str) -> String {
    format!(
        r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: hook
  namespace: flux-system
  annotations:
    herald.dev/template: |
      {{"text": {{{{ (obj ~ ": " ~ event.message) | json }}}}, "revision": {{{{ short_revision | json }}}}, "alert": {{{{ alert.name | json }}}}, "error": {{{{ is_error | json }}}}}}
spec:
  type: {ty}
  address: {url}/hook
  secretRef:
    name: hook-key
---
apiVersion: v1
kind: Secret
metadata:
  name: hook-key
  namespace: flux-system
stringData:
  token: 7152fed34dd6149a7c75a276c510da27cb6f82b0
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: json
  namespace: flux-system
spec:
  providerRef:
    name: hook
  eventSources:
    - kind: Kustomization
      name: "*"
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: plain
  namespace: flux-system
  annotations:
    herald.dev/template-from: messages/plain
    herald.dev/template-content-type: text/plain; charset=utf-8
spec:
  providerRef:
    name: hook
  eventSources:
    - kind: Kustomization
      name: "*"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: messages
  namespace: flux-system
data:
  plain: "{{{{ event.severity | upper }}}} {{{{ obj }}}}\n{{{{ event.message }}}}\n"
"#
    )
}

/// The Provider's template renders the whole body, the Alert's wins over it (with its content
/// type), and `generic-hmac` signs the bytes as rendered.
#[tokio::test]
async fn templates_render_the_whole_body() {
    let event = fixture("kustomization-revision.json");
    for ty in ["generic", "generic-hmac"] {
        let rec = Recorder::start().await;
        let catalog = herald_testkit::ready_catalog(
            &templated_manifests(ty, &rec.url()),
            herald_webhook::register,
        );
        for (n, alert) in ["json", "plain"].into_iter().enumerate() {
            let (notifier, object) =
                herald_testkit::notifier_and_alert(&catalog, "flux-system", "hook", alert);
            notifier.post_for(&event, &object).await.unwrap();
            let got = rec
                .wait_for(n + 1, std::time::Duration::from_secs(5))
                .await
                .remove(n);
            let dir = golden(ty);
            assert_golden(&dir.join(format!("templated-{alert}.body")), got.body_str());
            let mut summary = request_summary(&got);
            summary.retain(|c| c != '\r');
            if ty == "generic-hmac" {
                assert!(python_verifies(
                    "7152fed34dd6149a7c75a276c510da27cb6f82b0",
                    &got.body,
                    got.header("x-signature").unwrap()
                ));
            }
            assert_golden(
                &dir.join(format!("templated-{alert}.request.txt")),
                &summary,
            );
        }
    }
}
