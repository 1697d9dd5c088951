//! Message templates: the text a template renders takes the place of the event's message.

use std::time::Duration;

use herald_core::ProviderType;
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

/// The same template on every alerting type that takes one (all but `otel`): the text lands
/// where each puts the message (`tests/golden/<type>/templated-text.json`).
#[tokio::test]
async fn every_type_takes_the_text() {
    use herald_core::template::{MessageTemplate, ProviderVars, TemplateUse};
    let event = fixture("kustomization-error.json");
    for ty in herald_alerting::TYPES {
        if let TemplateUse::Refused(_) = TemplateUse::of(ty) {
            assert_eq!(ty, ProviderType::Otel, "only otel refuses templates");
            continue;
        }
        let rec = Recorder::start().await;
        let mut cfg = crate::working_config(ty, &rec.url(), "tok-1234");
        let vars = ProviderVars {
            provider_type: ty.as_str().to_owned(),
            ..ProviderVars::default()
        };
        let template = MessageTemplate::compile(
            "{{ obj }}: {{ event.reason }} ({{ provider.type }})",
            ty,
            None,
            vars,
        )
        .unwrap();
        cfg.templates.set_provider(template);
        let notifier = crate::build(&cfg);
        notifier.post(&event).await.unwrap();
        let got = rec.wait_for(1, Duration::from_secs(5)).await;
        let body = got[0].body_str();
        assert!(body.contains("ValidationFailed ("), "{ty}: {body}");
        assert_golden(&golden(&format!("{ty}/templated-text.json")), body);
    }
}
