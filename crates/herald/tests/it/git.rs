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
