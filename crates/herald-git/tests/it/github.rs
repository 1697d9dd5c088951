//! `github` commit statuses against a GitHub Enterprise stub on loopback.
//!
//! API reference: <https://docs.github.com/en/rest/commits/statuses?apiVersion=2022-11-28>
//! (`GET /repos/{owner}/{repo}/commits/{ref}/statuses`, `POST /repos/{owner}/{repo}/statuses/{sha}`;
//! answers `200` with an array, newest first, and `201` with the created status).

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::Reply;

use crate::harness::{self, Existing, Forge, TOKEN, build_error};

fn config(url: &str) -> ProviderConfig {
    // Any host but github.com is GitHub Enterprise: `<host>/api/v3`; http:// is used as given.
    let mut cfg = ProviderConfig::new(
        ProviderType::GitHub,
        "flux-system",
        "github",
        format!("{url}/org/app.git"),
    );
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

fn existing(e: &Existing) -> Reply {
    let body = serde_json::json!([
        {"id": 3, "state": "pending", "description": "other", "context": "ci/build"},
        {"id": 2, "state": e.state, "description": e.description, "context": e.id,
         "target_url": null, "creator": {"login": "flux"}},
        // An older status of the same context is not the current one.
        {"id": 1, "state": "error", "description": "older", "context": e.id},
    ]);
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub(crate) const FORGE: Forge = Forge {
    dir: "github",
    config,
    none: || {
        Reply::status(200)
            .header("content-type", "application/json")
            .body("[]")
    },
    existing,
    success_state: "success",
    failure_state: "failure",
    lookup_404_is_none: false,
    progressing_posts: false,
    created: || {
        Reply::status(201)
            .header("content-type", "application/json")
            .body(r#"{"id":4}"#)
    },
};

#[tokio::test]
async fn standard_cases() {
    harness::standard_cases(&FORGE).await;
}

#[tokio::test]
async fn password_is_the_token_fallback() {
    let rec = herald_testkit::Recorder::start().await;
    rec.push_reply(Reply::status(200).body("[]"));
    rec.push_reply(Reply::status(201));
    let mut cfg = config(&rec.url());
    cfg.token = None;
    cfg.password = Some(SecretString::new("from-password"));
    let n = herald_git::build(&cfg).unwrap();
    n.post(&harness::event("success")).await.unwrap();
    assert_eq!(
        rec.requests()[1].header("authorization"),
        Some("Bearer from-password")
    );
}

#[test]
fn bad_configurations() {
    let mut cfg = config("http://127.0.0.1:1");
    cfg.token = None;
    assert_eq!(
        build_error(&cfg),
        "secret key \"token\": github token or github app details must be specified (set the Secret's `token` or `password`, or githubAppID, githubAppInstallationID or githubAppInstallationOwner, and githubAppPrivateKey)"
    );
    cfg.secret_data.insert(
        "githubAppID".into(),
        herald_core::SecretBytes::new(b"1".to_vec()),
    );
    assert_eq!(
        build_error(&cfg),
        "spec.secretRef (GitHub App): app installation owner or ID must be provided to use github \
         app authentication (githubAppInstallationID or githubAppInstallationOwner)"
    );

    let mut cfg = config("http://127.0.0.1:1");
    cfg.address = SecretString::new("https://github.com/org/app/extra");
    assert_eq!(
        build_error(&cfg),
        "spec.address: invalid repository id \"org/app/extra\": expected <owner>/<repository>"
    );
    cfg.address = SecretString::new("https://secret-host-x1/");
    cfg.address_from_secret = true;
    let err = build_error(&cfg);
    assert!(
        err.starts_with("secret key \"address\": invalid repository address"),
        "{err}"
    );
    assert!(!err.contains("secret-host-x1"), "{err}");

    let mut cfg = config("http://127.0.0.1:1");
    cfg.token = Some(SecretString::new("line\nhidden-part"));
    let err = build_error(&cfg);
    assert!(err.starts_with("secret key \"token\""), "{err}");
    assert!(!err.contains("hidden-part"), "{err}");

    let mut cfg = config("http://127.0.0.1:1");
    // cel-go types a bare field as `dyn`: Flux refuses it, and so does herald, at build time.
    cfg.commit_status_expr = Some("event.metadata.app".into());
    assert_eq!(
        build_error(&cfg),
        "spec.commitStatusExpr: failed to compile expression: CEL expression output type \
         mismatch: expected string, got dyn"
    );
    cfg.commit_status_expr = Some("string(event.metadata.app)".into());
    assert!(herald_git::build(&cfg).is_ok());
}

#[test]
fn ssh_and_public_addresses_build() {
    for address in [
        "git@github.com:org/app.git",
        "ssh://git@github.com/org/app",
        "https://github.com/org/app",
        "git@ghe.example.com:org/app.git",
    ] {
        let mut cfg = config("http://127.0.0.1:1");
        cfg.address = SecretString::new(address);
        assert!(herald_git::build(&cfg).is_ok(), "{address}");
    }
}

#[test]
fn custom_tls_applies_to_enterprise_only() {
    // As Flux: github.com keeps the system roots even if the Secret carries a CA.
    let mut cfg = config("http://127.0.0.1:1");
    cfg.tls.ca_pem = Some(herald_core::SecretBytes::new(b"not a certificate".to_vec()));
    cfg.address = SecretString::new("https://github.com/org/app");
    assert!(herald_git::build(&cfg).is_ok());
    cfg.address = SecretString::new("https://ghe.example.com/org/app");
    assert!(
        herald_git::build(&cfg).is_err(),
        "an Enterprise host uses (and checks) the CA"
    );
}

/// `spec.commitStatusExpr` names the status: the one the commit has is recognised by it, the
/// one posted carries it; `post_for` hands the expression the Alert.
#[tokio::test]
async fn commit_status_expressions_name_the_status() {
    use herald_testkit::Recorder;
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(200).body("[]"));
    rec.push_reply(Reply::status(201).body("{}"));
    let mut cfg = config(&rec.url());
    cfg.commit_status_expr = Some(
        "event.involvedObject.name + '/' + provider.spec.type + '/' + alert.metadata.name".into(),
    );
    cfg.object = serde_json::json!({"metadata": {"name": "github"}, "spec": {"type": "github"}});
    let notifier = herald_git::build(&cfg).unwrap();
    let event = harness::event("success");
    let alert = serde_json::json!({"metadata": {"name": "on-commit"}});
    notifier.post_for(&event, &alert).await.unwrap();
    let got = rec.requests();
    let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(body["context"], "gitops-system/github/on-commit");

    // Without an Alert (`post`), `alert` is an empty map: a missing key, not retried, and no
    // request.
    let err = notifier.post(&event).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "failed to create commit status: failed to evaluate the spec.commitStatusExpr CEL \
         expression for the event: failed to evaluate the CEL expression 'event.involvedObject.name \
         + '/' + provider.spec.type + '/' + alert.metadata.name': No such key: metadata"
    );
    assert_eq!(rec.requests().len(), 2);

    // An empty id is Flux's notifier error.
    cfg.commit_status_expr = Some("''".into());
    let err = herald_git::build(&cfg)
        .unwrap()
        .post(&event)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to initialize notifier for provider 'github': failed to initialize notifier: \
         commit status cannot be empty"
    );
    assert_eq!(rec.requests().len(), 2);
}
