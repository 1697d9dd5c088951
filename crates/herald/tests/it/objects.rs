//! Manifests object by object, through the real binary: a set with one good Provider and Alert
//! and one of each kind of broken object runs, shows every object's status (API, metric,
//! `/readyz`, logs), heals on reload, and `herald validate` names every problem in one run.
//! Also the status API on its own address, behind its token.

use std::path::Path;
use std::time::Duration;

use herald_testkit::Recorder;
use serde_json::Value;

use crate::support::{Daemon, alert, flux_event, herald, provider, request};

const WAIT: Duration = Duration::from_secs(20);

const SOURCES: &str = "  eventSources: [{kind: Kustomization, name: '*', namespace: apps}]";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// One good Provider and Alert, and one broken object of each kind, each in its own file.
fn broken_set(dir: &Path, good: &Recorder) {
    write(
        dir,
        "good.yaml",
        &[
            provider("good", "apps", "generic", &good.url()),
            alert("good", "apps", "good", SOURCES),
        ]
        .concat(),
    );
    // A Provider of an unknown type, and an Alert that sends to it.
    write(
        dir,
        "typo.yaml",
        &[
            provider("typo", "apps", "slak", "http://127.0.0.1:1/"),
            alert("to-typo", "apps", "typo", SOURCES),
        ]
        .concat(),
    );
    // A misspelt field.
    write(
        dir,
        "field.yaml",
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: misspelt, namespace: apps}\nspec:\n  type: generic\n  adress: http://127.0.0.1:1/\n",
    );
    // A missing Secret, and a Secret that is broken.
    write(
        dir,
        "secrets.yaml",
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: no-secret, namespace: apps}\nspec:\n  type: generic\n  secretRef: {name: missing}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: garbled, namespace: apps}\ndata:\n  address: '!!!'\n",
    );
    // Workload identity, which needs the cluster.
    write(
        dir,
        "identity.yaml",
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: identity, namespace: apps}\nspec:\n  type: generic\n  address: http://127.0.0.1:1/\n  serviceAccountName: notifier\n",
    );
    // An Alert with a misspelt severity and no Provider.
    write(
        dir,
        "alert.yaml",
        &alert(
            "severity",
            "apps",
            "nowhere",
            &format!("{SOURCES}\n  eventSeverity: warnings"),
        ),
    );
    // A document that is not YAML.
    write(dir, "syntax.yaml", "apiVersion: [\n");
}

/// `(kind, name)` → (ready, reasons) from `GET /api/v1/objects`.
async fn objects(d: &Daemon) -> Vec<(String, String, bool, Vec<String>)> {
    let r = request(&d.api, "GET", "/api/v1/objects", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let name = match o["kind"].as_str().unwrap() {
                "File" => Path::new(o["name"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                _ => format!(
                    "{}/{}",
                    o["namespace"].as_str().unwrap(),
                    o["name"].as_str().unwrap()
                ),
            };
            let reasons = o["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            (
                o["kind"].as_str().unwrap().to_owned(),
                name,
                o["ready"].as_bool().unwrap(),
                reasons,
            )
        })
        .collect()
}

fn reasons_of<'a>(
    list: &'a [(String, String, bool, Vec<String>)],
    kind: &str,
    name: &str,
) -> &'a [String] {
    &list
        .iter()
        .find(|(k, n, _, _)| k == kind && n == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {list:#?}"))
        .3
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_objects_fail_alone_are_shown_and_heal_on_reload() {
    let good = Recorder::start().await;
    let healed = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    broken_set(dir.path(), &good);
    let d = Daemon::start(dir.path(), &[]);

    // The good pair delivers.
    let r = request(&d.events, "POST", "/", &[], flux_event("one").as_bytes()).await;
    assert_eq!(r.status, 202);
    let got = good.wait_for(1, WAIT).await;
    assert!(got[0].body_str().contains("\"one\""));

    // Every object, with its status and reasons.
    let list = objects(&d).await;
    let summary: Vec<(&str, &str, bool)> = list
        .iter()
        .map(|(k, n, r, _)| (k.as_str(), n.as_str(), *r))
        .collect();
    assert_eq!(
        summary,
        [
            ("Provider", "apps/good", true),
            ("Provider", "apps/identity", false),
            ("Provider", "apps/misspelt", false),
            ("Provider", "apps/no-secret", false),
            ("Provider", "apps/typo", false),
            ("Alert", "apps/good", true),
            ("Alert", "apps/severity", false),
            ("Alert", "apps/to-typo", false),
            ("Secret", "apps/garbled", false),
            ("File", "alert.yaml", true),
            ("File", "field.yaml", true),
            ("File", "good.yaml", true),
            ("File", "identity.yaml", true),
            ("File", "secrets.yaml", true),
            ("File", "syntax.yaml", false),
            ("File", "typo.yaml", true),
        ]
    );
    let has = |kind: &str, name: &str, needle: &str| {
        let reasons = reasons_of(&list, kind, name);
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{kind} {name}: {needle:?} not in {reasons:?}"
        );
    };
    has(
        "Provider",
        "apps/typo",
        "typo.yaml:6 (document 1): spec.type: unknown provider type \"slak\"",
    );
    has(
        "Alert",
        "apps/to-typo",
        "spec.providerRef.name: Provider apps/typo is not ready: spec.type: unknown provider type",
    );
    has(
        "Provider",
        "apps/misspelt",
        "field.yaml:6 (document 1): spec: unknown field `adress`",
    );
    has(
        "Provider",
        "apps/no-secret",
        "spec.secretRef.name: Secret apps/missing not found in the manifests",
    );
    has("Secret", "apps/garbled", "data.address: not valid base64");
    has(
        "Provider",
        "apps/identity",
        "spec.serviceAccountName: workload identity through a Kubernetes ServiceAccount is not available to herald",
    );
    has(
        "Alert",
        "apps/severity",
        "spec.eventSeverity: \"warnings\" is not one of \"info\", \"error\"",
    );
    has(
        "Alert",
        "apps/severity",
        "Provider apps/nowhere not found in the manifests",
    );
    has("File", "syntax.yaml", "syntax.yaml:");
    assert_eq!(reasons_of(&list, "Alert", "apps/severity").len(), 2);

    // The metric, one series per object.
    for (kind, name, ready) in [
        ("Provider", "good", 1.0),
        ("Provider", "typo", 0.0),
        ("Alert", "to-typo", 0.0),
        ("Secret", "garbled", 0.0),
    ] {
        assert_eq!(
            d.metric(&format!(
                "herald_object_ready{{kind=\"{kind}\",namespace=\"apps\",name=\"{name}\"}}"
            ))
            .await,
            Some(ready),
            "{kind} {name}"
        );
    }
    // A warning per broken object.
    for object in [
        "Provider apps/typo is not ready",
        "Alert apps/to-typo is not ready",
        "Secret apps/garbled is not ready",
        "syntax.yaml is not ready",
    ] {
        assert!(d.logs().contains(object), "{object}:\n{}", d.logs());
    }
    // /readyz stays 200 and says what is not ready.
    let r = request(&d.health, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-herald-health"], "degraded");
    let body = r.body_str();
    assert!(body.starts_with("not ready: 8 object(s) of the manifests (the others work; GET /api/v1/objects for all)\n"), "{body}");
    assert!(body.contains("\n- Provider apps/typo: "), "{body}");
    // The event matched the Alert of the broken Provider too: counted, not lost silently.
    d.wait_log("event not delivered: the Alert is not ready", WAIT)
        .await;
    assert_eq!(
        d.metric("herald_alert_events_dropped_total{namespace=\"apps\",name=\"to-typo\"}")
            .await,
        Some(1.0)
    );

    // Fixing the file on disk makes the Provider and its Alert ready at the next reload.
    write(
        dir.path(),
        "typo.yaml",
        &[
            provider("typo", "apps", "generic", &healed.url()),
            alert("to-typo", "apps", "typo", SOURCES),
        ]
        .concat(),
    );
    d.wait_log("Provider apps/typo is ready", WAIT).await;
    let list = objects(&d).await;
    assert!(reasons_of(&list, "Provider", "apps/typo").is_empty());
    assert!(reasons_of(&list, "Alert", "apps/to-typo").is_empty());
    let r = request(&d.events, "POST", "/", &[], flux_event("two").as_bytes()).await;
    assert_eq!(r.status, 202);
    let got = healed.wait_for(1, WAIT).await;
    assert!(got[0].body_str().contains("\"two\""));
    good.wait_for(2, WAIT).await;
    assert_eq!(
        d.metric("herald_object_ready{kind=\"Provider\",namespace=\"apps\",name=\"typo\"}")
            .await,
        Some(1.0)
    );

    // `herald validate` on the same (still broken) set names every problem in one run.
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "7 problems in the manifests:",
        "Alert apps/severity: spec.eventSeverity: \"warnings\" is not one of",
        "Alert apps/severity: spec.providerRef.name: Provider apps/nowhere not found",
        "Provider apps/misspelt: spec: unknown field `adress`",
        "Provider apps/identity: spec.serviceAccountName:",
        "Provider apps/no-secret: spec.secretRef.name: Secret apps/missing not found",
        "Secret apps/garbled: data.address: not valid base64",
        "syntax.yaml:",
        "6 object(s) not ready: Provider apps/identity, Provider apps/misspelt, Provider apps/no-secret, Alert apps/severity, Secret apps/garbled, File ",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    assert!(!err.contains("!!!"), "a Secret's value in:\n{err}");
}

#[test]
fn validate_names_every_problem_of_every_stage_at_once() {
    // The example: a misspelt severity, an Alert whose Provider does not exist, and a
    // Provider whose Secret is missing, in one file; and a Provider that cannot be built.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        &[
            alert("a", "ns", "p", &format!("{SOURCES}\n  eventSeverity: eror")),
            alert("b", "ns", "ghost", SOURCES),
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: p, namespace: ns}\nspec:\n  type: generic\n  secretRef: {name: nope}\n".to_owned(),
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: hmac, namespace: ns}\nspec:\n  type: generic-hmac\n  address: http://127.0.0.1:1/\n".to_owned(),
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
    let lines: Vec<&str> = err.lines().collect();
    let file = dir.path().join("m.yaml").display().to_string();
    assert_eq!(
        lines[..6],
        [
            "5 problems in the manifests:".to_owned(),
            format!(
                "  {file}:6 (document 1): Alert ns/a: spec.providerRef.name: Provider ns/p is not ready: spec.secretRef.name: Secret ns/nope not found in the manifests (a Provider's Secrets must be in its namespace)"
            ),
            format!(
                "  {file}:8 (document 1): Alert ns/a: spec.eventSeverity: \"eror\" is not one of \"info\", \"error\""
            ),
            format!(
                "  {file}:14 (document 2): Alert ns/b: spec.providerRef.name: Provider ns/ghost not found in the manifests (an Alert's Provider must be in the Alert's namespace)"
            ),
            format!(
                "  {file}:22 (document 3): Provider ns/p: spec.secretRef.name: Secret ns/nope not found in the manifests (a Provider's Secrets must be in its namespace)"
            ),
            format!(
                "  {file}:27 (document 4): Provider ns/hmac: secret key \"token\": HMAC key is empty"
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_api_has_its_own_address_and_token() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        &[
            provider("hook", "flux-system", "generic", &rec.url()),
            alert("all", "flux-system", "hook", SOURCES),
        ]
        .concat(),
    );
    let token_file = dir.path().join("api-token");
    std::fs::write(&token_file, "api-7c1d-secret\n").unwrap();
    let d = Daemon::start(
        &dir.path().join("m.yaml"),
        &["--api-token-file", token_file.to_str().unwrap()],
    );

    // The health address serves health only.
    let r = request(&d.health, "GET", "/api/v1/providers", &[], b"").await;
    assert_eq!(r.status, 404);
    assert!(r.body_str().contains("--api-addr"), "{}", r.body_str());
    assert_eq!(
        request(&d.health, "GET", "/readyz", &[], b"").await.status,
        200
    );

    // The API wants the token.
    for auth in [None, Some("Bearer wrong"), Some("Basic api-7c1d-secret")] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let r = request(&d.api, "GET", "/api/v1/deliveries", &headers, b"").await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert!(!r.body_str().contains("api-7c1d"));
    }
    let ok = [("Authorization", "Bearer api-7c1d-secret")];
    let r = request(&d.api, "GET", "/api/v1/objects", &ok, b"").await;
    assert_eq!(r.status, 200, "{}", r.body_str());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v[0],
        serde_json::json!({"kind": "Provider", "namespace": "flux-system", "name": "hook", "ready": true, "reasons": [], "warnings": []})
    );
    assert_eq!(
        request(&d.api, "GET", "/elsewhere", &ok, b"").await.status,
        404
    );

    // `herald outbox` goes through the API with the token, and says so when it lacks it.
    let outbox = |args: &[&str]| {
        let out = herald()
            .args(["outbox", "--api", &d.api])
            .args(args)
            .arg("list")
            .env_remove("HERALD_API_TOKEN_FILE")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = outbox(&[]);
    assert!(!ok);
    assert!(
        err.contains("answered 401: it requires a token (--api-token-file or HERALD_API_TOKEN_FILE), and this one is missing"),
        "{err}"
    );
    let (ok, _, err) = outbox(&["--api-token-file", token_file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("no deliveries match"), "{err}");

    // The token file is re-read on reload.
    std::fs::write(&token_file, "rotated-token").unwrap();
    d.signal("HUP");
    d.wait_log("SIGHUP", WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = request(
            &d.api,
            "GET",
            "/api/v1/objects",
            &[("Authorization", "Bearer rotated-token")],
            b"",
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new token is never accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `herald send` needs only its own Provider to be ready: other broken objects do not stop it,
/// and a broken Provider is refused with its problems.
#[tokio::test(flavor = "multi_thread")]
async fn send_needs_only_its_own_provider() {
    let good = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    broken_set(dir.path(), &good);
    let event = crate::support::repo_root().join("examples/events/kustomization-ready.json");
    let send = |provider: &str| {
        let (dir, event, provider) = (dir.path().to_owned(), event.clone(), provider.to_owned());
        tokio::task::spawn_blocking(move || {
            herald()
                .args(["send", "--provider", &provider, "--event"])
                .arg(&event)
                .arg("--manifests")
                .arg(&dir)
                .output()
                .unwrap()
        })
    };
    let out = send("apps/good").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    good.wait_for(1, WAIT).await;
    let out = send("apps/identity").await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Provider apps/identity: spec.serviceAccountName: workload identity"),
        "{err}"
    );
    assert!(
        err.contains("error: Provider apps/identity is not ready; nothing sent"),
        "{err}"
    );
}

/// Every field upstream's API types give each version (but the two that herald cannot honour
/// outside a cluster, `serviceAccountName` and `commitStatusExpr`, which core's tests cover)
/// loads, and a v1beta2 Alert's `eventMetadata` reaches the provider.
#[tokio::test(flavor = "multi_thread")]
async fn every_version_loads_with_every_field() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let status = "status:\n  observedGeneration: 2\n  conditions: [{type: Ready, status: 'True', reason: Succeeded, message: ok, lastTransitionTime: '2024-01-01T00:00:00Z'}]\n";
    let meta = |name: &str| {
        format!(
            "metadata:\n  name: {name}\n  namespace: apps\n  uid: 0c9c2e41-d2f5-4e4b-9c1a-2a6b1f0e7d3c\n  labels: {{app: web}}\n  annotations: {{kustomize.toolkit.fluxcd.io/prune: disabled}}\n"
        )
    };
    let mut text = String::new();
    for version in ["v1beta1", "v1beta2", "v1beta3"] {
        let interval = if version == "v1beta1" {
            ""
        } else {
            "  interval: 10m\n"
        };
        let proxy_ref = if version == "v1beta3" {
            "  proxySecretRef: {name: proxy}\n"
        } else {
            ""
        };
        text.push_str(&format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/{version}\nkind: Provider\n{}spec:\n  type: generic\n{interval}  channel: general\n  username: flux\n  address: {}\n  timeout: 5s\n  proxy: http://127.0.0.1:1/\n{proxy_ref}  secretRef: {{name: headers}}\n  certSecretRef: {{name: ca}}\n  suspend: false\n{}",
            meta(&format!("p-{version}")),
            rec.url(),
            if version == "v1beta3" { "" } else { status }
        ));
        let later = if version == "v1beta1" {
            ""
        } else {
            "  inclusionList: ['.*']\n  eventMetadata: {cluster: eu-1}\n"
        };
        text.push_str(&format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/{version}\nkind: Alert\n{}spec:\n  providerRef: {{name: p-{version}}}\n  eventSeverity: info\n  eventSources: [{{apiVersion: kustomize.toolkit.fluxcd.io/v1, kind: Kustomization, name: '*', namespace: apps}}]\n{later}  exclusionList: ['^never$']\n  summary: from {version}\n  suspend: false\n{}",
            meta(&format!("a-{version}")),
            if version == "v1beta3" { "" } else { status }
        ));
    }
    text.push_str(&format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: headers, namespace: apps}}\nstringData:\n  headers: 'X-From: herald'\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: proxy, namespace: apps}}\nstringData:\n  address: http://127.0.0.1:1/\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: ca, namespace: apps}}\nstringData:\n  ca.crt: |\n{}",
        herald_testkit::TestCa::new()
            .ca_pem()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    ));
    write(dir.path(), "all.yaml", &text);
    let out = herald()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("ok: 3 provider(s), 3 alert(s), 3 secret(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A v1beta2 Alert's eventMetadata, delivered (it was refused as "not a field of v1beta2").
    let served = tempfile::tempdir().unwrap();
    write(
        served.path(),
        "m.yaml",
        &format!(
            "apiVersion: notification.toolkit.fluxcd.io/v1beta2\nkind: Provider\nmetadata: {{name: hook, namespace: apps}}\nspec: {{type: generic, address: '{}'}}\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta2\nkind: Alert\nmetadata: {{name: all, namespace: apps}}\nspec:\n  providerRef: {{name: hook}}\n  eventSources: [{{kind: Kustomization, name: '*'}}]\n  eventMetadata: {{cluster: eu-1}}\n",
            rec.url()
        ),
    );
    let d = Daemon::start(served.path(), &[]);
    let r = request(
        &d.events,
        "POST",
        "/",
        &[],
        flux_event("v1beta2").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 202);
    let got = rec.wait_for(1, WAIT).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["metadata"]["cluster"], "eu-1", "{body}");
}
