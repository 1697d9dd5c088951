//! The git family through `herald serve`: a Kustomization event with a revision becomes a
//! GitHub commit status (GitHub Enterprise API shape, on a loopback stub).
//! API reference: <https://docs.github.com/en/rest/commits/statuses>.

use std::time::Duration;

use herald_testkit::{Recorder, Reply};
use sha2::Digest;

use crate::support::{Daemon, alert, manifests, request};

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_status_update_becomes_a_github_status() {
    let forge = Recorder::start().await;
    // The existing statuses: none.
    forge.push_reply(
        Reply::status(200)
            .header("Content-Type", "application/json")
            .body("[]"),
    );
    forge.push_reply(
        Reply::status(201)
            .header("Content-Type", "application/json")
            .body("{}"),
    );
    let text = [
        format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: github, namespace: apps}}\nspec:\n  type: github\n  address: {}/acme/webapp.git\n  secretRef: {{name: github-token}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: github-token, namespace: apps}}\nstringData:\n  token: ghp_e2e_distinct_token\n",
            forge.url()
        ),
        alert("status", "apps", "github", "  eventSources: [{kind: Kustomization, name: '*'}]"),
    ]
    .concat();
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &[]);
    let sha = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1";
    let event = serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": "webapp", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "info", "timestamp": "2022-10-28T07:26:19Z", "message": "Reconciliation finished", "reason": "ReconciliationSucceeded",
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": format!("main@sha1:{sha}"), "kustomize.toolkit.fluxcd.io/commit_status": "update"},
        "reportingController": "kustomize-controller"
    });
    assert_eq!(
        request(&d.events, "POST", "/", &[], event.to_string().as_bytes())
            .await
            .status,
        202
    );
    let got = forge.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].method, "GET");
    assert_eq!(
        got[0].path,
        format!("/api/v3/repos/acme/webapp/commits/{sha}/statuses?per_page=50")
    );
    assert_eq!(got[1].method, "POST");
    assert_eq!(
        got[1].path,
        format!("/api/v3/repos/acme/webapp/statuses/{sha}")
    );
    assert_eq!(
        got[1].header("authorization"),
        Some("Bearer ghp_e2e_distinct_token")
    );
    let id = &hex::encode(sha2::Sha256::digest(b"apps/github"))[..8];
    let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"state": "success", "description": "reconciliation succeeded", "context": format!("kustomization/webapp/{id}")})
    );

    // An info event without commit metadata is not for commit-status providers.
    let plain = event
        .to_string()
        .replace("commit_status", "other")
        .replace("Reconciliation finished", "other message");
    assert_eq!(
        request(&d.events, "POST", "/", &[], plain.as_bytes())
            .await
            .status,
        202
    );
    d.wait_log(
        "event dropped for commit status providers",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(forge.requests().len(), 2);
}

/// `githubpullrequestcomment` with a GitHub App, through `herald serve`: the App's JWT buys an
/// installation token, the comment is created on the first event and edited on the second, and
/// an event without `change_request` never reaches the provider.
/// API references: <https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app>,
/// <https://docs.github.com/en/rest/issues/comments>.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_request_event_becomes_a_pull_request_comment_by_a_github_app() {
    let forge = Recorder::start().await;
    let json = |body: String| {
        Reply::status(200)
            .header("Content-Type", "application/json")
            .body(body)
    };
    forge.push_reply(json(r#"{"id":1234,"slug":"flux-app"}"#.into()));
    forge.push_reply(
        Reply::status(201)
            .header("Content-Type", "application/json")
            .body(r#"{"token":"ghs_e2e_installation","expires_at":"2099-01-01T00:00:00Z"}"#),
    );
    forge.push_reply(json("[]".into()));
    forge.push_reply(Reply::status(201).body(r#"{"id":900}"#));
    let key: String = herald_testkit::RSA_PKCS1_PEM
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let uid = "5f0e7d3c-2a6b-4e4b-9c1a-0c9c2e41d2f5";
    let text = [
        format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: pr, namespace: apps, uid: {uid}}}\nspec:\n  type: githubpullrequestcomment\n  address: {url}/acme/webapp.git\n  secretRef: {{name: github-app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: github-app, namespace: apps}}\nstringData:\n  githubAppID: '1234'\n  githubAppInstallationID: '77'\n  githubAppBaseURL: {url}\n  githubAppPrivateKey: |\n{key}",
            url = forge.url()
        ),
        alert("pr", "apps", "pr", "  eventSources: [{kind: Kustomization, name: '*'}]"),
    ]
    .concat();
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &[]);
    let event = |message: &str, change_request: bool| {
        let mut metadata = serde_json::json!({"kustomize.toolkit.fluxcd.io/revision": "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"});
        if change_request {
            metadata["event.toolkit.fluxcd.io/change_request"] = "42".into();
        }
        serde_json::json!({
            "involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": "webapp", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
            "severity": "info", "timestamp": "2022-10-28T07:26:19Z", "message": message,
            "reason": "ReconciliationSucceeded", "metadata": metadata,
            "reportingController": "kustomize-controller"
        })
        .to_string()
    };
    let accepted = request(&d.events, "POST", "/", &[], event("first", true).as_bytes()).await;
    assert_eq!(accepted.status, 202);
    let got = forge.wait_for(4, Duration::from_secs(10)).await;
    let calls: Vec<(&str, &str)> = got
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/app"),
            ("POST", "/app/installations/77/access_tokens"),
            (
                "GET",
                "/api/v3/repos/acme/webapp/issues/42/comments?direction=asc&per_page=100&sort=created"
            ),
            ("POST", "/api/v3/repos/acme/webapp/issues/42/comments"),
        ]
    );
    assert!(
        got[0]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ey")
    );
    assert_eq!(
        got[3].header("authorization"),
        Some("Bearer ghs_e2e_installation")
    );
    let body: serde_json::Value = serde_json::from_slice(&got[3].body).unwrap();
    let comment = body["body"].as_str().unwrap().to_owned();
    assert_eq!(
        comment,
        format!(
            "<!-- flux-pr-comment-key:{uid}/Kustomization/apps/webapp -->\n\n## Flux Status\n\n\u{2139}\u{fe0f} Kustomization/apps/webapp\n\nfirst\n\nMetadata:\n* `revision`: main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1\n"
        )
    );

    // The second event edits the App's comment; the token is reused.
    forge.push_reply(json(
        serde_json::json!([{"id": 900, "body": comment, "user": {"login": "flux-app[bot]"}}])
            .to_string(),
    ));
    forge.push_reply(json("{}".into()));
    let accepted = request(
        &d.events,
        "POST",
        "/",
        &[],
        event("second", true).as_bytes(),
    )
    .await;
    assert_eq!(accepted.status, 202);
    let got = forge.wait_for(6, Duration::from_secs(10)).await;
    assert_eq!(got[5].method, "PATCH");
    assert_eq!(got[5].path, "/api/v3/repos/acme/webapp/issues/comments/900");
    assert!(got[5].body_str().contains("second"));

    // No change_request: dropped before the provider.
    let accepted = request(
        &d.events,
        "POST",
        "/",
        &[],
        event("third", false).as_bytes(),
    )
    .await;
    assert_eq!(accepted.status, 202);
    d.wait_log(
        "event dropped for change request providers",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(forge.requests().len(), 6);
}

/// A GitHub Provider as `kubectl get -o yaml` exports it (with its `metadata.uid`), with
/// `extra` lines in its spec, on the stub at `url`, and its token.
fn exported_github(name: &str, url: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: {name}\n  namespace: apps\n  uid: 0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a\nspec:\n  type: github\n  address: {url}/acme/webapp.git\n  secretRef: {{name: github-token}}\n{extra}\n"
    )
}

const TOKEN_SECRET: &str = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: github-token, namespace: apps}\nstringData:\n  token: ghp_e2e_distinct_token\n";

fn status_event(sha: &str) -> String {
    serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": "webapp", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "info", "timestamp": "2022-10-28T07:26:19Z", "message": "Reconciliation finished", "reason": "ReconciliationSucceeded",
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": format!("main@sha1:{sha}"), "kustomize.toolkit.fluxcd.io/commit_status": "update"},
        "reportingController": "kustomize-controller"
    })
    .to_string()
}

/// The `context` of the status posted after the lookup.
async fn posted_context(forge: &Recorder) -> String {
    let got = forge.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        (got[0].method.as_str(), got[1].method.as_str()),
        ("GET", "POST")
    );
    let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    body["context"].as_str().unwrap().to_owned()
}

fn empty_then_created(forge: &Recorder) {
    forge.push_reply(Reply::status(200).body("[]"));
    forge.push_reply(Reply::status(201).body("{}"));
}

/// Flux's status context for the same UID: `<kind>/<name>/<first UID segment>`.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_with_a_uid_posts_fluxs_status_context() {
    let forge = Recorder::start().await;
    empty_then_created(&forge);
    let text = [
        exported_github("github", &forge.url(), ""),
        TOKEN_SECRET.to_owned(),
        alert(
            "status",
            "apps",
            "github",
            "  eventSources: [{kind: Kustomization, name: '*'}]",
        ),
    ]
    .concat();
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &[]);
    let event = status_event("731f7eaddfb6af01cb2173e18f0f75b0ba780ef1");
    let answer = request(&d.events, "POST", "/", &[], event.as_bytes()).await;
    assert_eq!(answer.status, 202);
    assert_eq!(
        posted_context(&forge).await,
        "kustomization/webapp/0c9c2e41"
    );
}

/// `spec.commitStatusExpr` with Flux's variables: the event (metadata combined with the
/// Alert's `eventMetadata`), the Provider and the Alert that matched. A Provider whose
/// expression does not compile is not ready, with the CEL message, and the others work.
#[tokio::test(flavor = "multi_thread")]
async fn commit_status_expressions_make_the_status_context() {
    let forge = Recorder::start().await;
    empty_then_created(&forge);
    let expr = "  commitStatusExpr: \"(event.involvedObject.kind + '/' + event.involvedObject.name + '/' + event.metadata.environment + '/' + provider.metadata.uid + '/' + alert.metadata.name).lowerAscii()\"";
    let broken =
        "  commitStatusExpr: \"event.involvedObject.name + '/' + notification.metadata.name\"";
    let sources = "  eventSources: [{kind: Kustomization, name: '*'}]";
    let text = [
        exported_github("github", &forge.url(), expr),
        exported_github("broken", &forge.url(), broken),
        TOKEN_SECRET.to_owned(),
        alert(
            "status",
            "apps",
            "github",
            &format!("{sources}\n  eventMetadata: {{environment: production}}"),
        ),
        alert("other", "apps", "broken", sources),
    ]
    .concat();
    let dir = manifests(&text);
    let d = Daemon::start(dir.path(), &[]);

    let objects = request(&d.api, "GET", "/api/v1/objects", &[], b"").await;
    let objects: serde_json::Value = serde_json::from_slice(&objects.body).unwrap();
    let broken = objects
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Provider" && o["name"] == "broken")
        .unwrap();
    assert_eq!(broken["ready"], false);
    let reason = broken["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains(
            "spec.commitStatusExpr: failed to compile expression: failed to parse the CEL expression \
             'event.involvedObject.name + '/' + notification.metadata.name': ERROR: <input>:1:35: \
             undeclared reference to 'notification' (in container '')"
        ),
        "{reason}"
    );

    let event = status_event("731f7eaddfb6af01cb2173e18f0f75b0ba780ef1");
    let answer = request(&d.events, "POST", "/", &[], event.as_bytes()).await;
    assert_eq!(answer.status, 202);
    assert_eq!(
        posted_context(&forge).await,
        "kustomization/webapp/production/0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a/status"
    );
}
