//! Message templates: the text a template renders takes the place of the event's message.

use std::time::Duration;

use herald_testkit::{Recorder, assert_golden, fixture, notifier_and_alert, ready_catalog};

use crate::golden;

fn manifests(url: &str) -> String {
    format!(
        r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: alertmanager
  namespace: flux-system
  annotations:
    herald.dev/template: "[{{{{ alert.name }}}}] {{{{ obj }}}}: {{{{ event.message }}}}"
spec:
  type: alertmanager
  address: {url}/api/v2/alerts
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: oncall
  namespace: flux-system
spec:
  providerRef:
    name: alertmanager
  eventSources:
    - kind: Kustomization
      name: "*"
"#
    )
}

#[tokio::test]
async fn the_template_sets_the_message() {
    let rec = Recorder::start().await;
    let catalog = ready_catalog(&manifests(&rec.url()), herald_alerting::register);
    let (notifier, alert) = notifier_and_alert(&catalog, "flux-system", "alertmanager", "oncall");
    notifier
        .post_for(&fixture("kustomization-error.json"), &alert)
        .await
        .unwrap();
    let got = rec.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert_golden(&golden("alertmanager/templated.json"), got.body_str());
}
