//! Message templates: `githubdispatch`'s whole body, and a commit status's description.

use std::time::Duration;

use herald_testkit::{Recorder, Reply, assert_golden, notifier_and_alert, ready_catalog};

use crate::harness::{TOKEN, fixture, golden, summary};

fn manifests(url: &str) -> String {
    format!(
        r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: dispatch
  namespace: flux-system
  annotations:
    herald.dev/template: |
      {{"event_type": "flux-{{{{ event.reason | lower }}}}",
       "client_payload": {{"object": {{{{ obj | json }}}}, "revision": {{{{ revision | json }}}}, "alert": {{{{ alert.name | json }}}}}}}}
spec:
  type: githubdispatch
  address: {url}/org/app
  secretRef:
    name: token
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: github
  namespace: flux-system
spec:
  type: github
  address: {url}/org/app.git
  secretRef:
    name: token
---
apiVersion: v1
kind: Secret
metadata:
  name: token
  namespace: flux-system
stringData:
  token: {TOKEN}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: deploy
  namespace: flux-system
spec:
  providerRef:
    name: dispatch
  eventSources:
    - kind: Kustomization
      name: "*"
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: status
  namespace: flux-system
  annotations:
    herald.dev/template: "{{{{ alert.summary }}}}: {{{{ event.message | truncate(40) }}}}"
spec:
  summary: Production
  providerRef:
    name: github
  eventSources:
    - kind: Kustomization
      name: "*"
"#
    )
}

#[tokio::test]
async fn dispatch_bodies_and_status_descriptions_are_templated() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(204));
    rec.push_reply(
        Reply::status(200)
            .header("content-type", "application/json")
            .body("[]"),
    );
    rec.push_reply(Reply::status(201).body(r#"{"id":4}"#));
    let catalog = ready_catalog(&manifests(&rec.url()), herald_git::register);
    let event = fixture("kustomization-revision.json");
    let (dispatch, deploy) = notifier_and_alert(&catalog, "flux-system", "dispatch", "deploy");
    dispatch.post_for(&event, &deploy).await.unwrap();
    let (github, status) = notifier_and_alert(&catalog, "flux-system", "github", "status");
    github.post_for(&event, &status).await.unwrap();
    let got = rec.wait_for(3, Duration::from_secs(5)).await;
    assert_golden(&golden("githubdispatch/templated.json"), got[0].body_str());
    assert_golden(&golden("github/templated.json"), got[2].body_str());
    assert_golden(&golden("github/templated.request.txt"), &summary(&got[1..]));
}
