//! Message templates: the text a template renders goes in the service's usual message.

use std::time::Duration;

use herald_testkit::{Recorder, assert_golden, fixture, notifier_and_alert, ready_catalog};

fn manifests(url: &str) -> String {
    format!(
        r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: slack
  namespace: flux-system
  annotations:
    herald.dev/template: "{{{{ obj | slack }}}} at `{{{{ short_revision }}}}`: {{{{ event.message | truncate(30) | slack }}}}"
spec:
  type: slack
  channel: general
  address: {url}/slack
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: telegram
  namespace: flux-system
spec:
  type: telegram
  channel: "-1001234567890"
  address: {url}
  secretRef:
    name: bot
---
apiVersion: v1
kind: Secret
metadata:
  name: bot
  namespace: flux-system
stringData:
  token: "123:abc"
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: to-slack
  namespace: flux-system
spec:
  providerRef:
    name: slack
  eventSources:
    - kind: Kustomization
      name: "*"
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: to-telegram
  namespace: flux-system
  annotations:
    herald.dev/template: |
      *{{{{ (alert.summary or obj) | telegram }}}}*
      {{{{ event.message | telegram }}}}
      {{% if revision %}}`{{{{ short_revision }}}}`{{% endif %}}
spec:
  summary: "Prod (EU)"
  providerRef:
    name: telegram
  eventSources:
    - kind: Kustomization
      name: "*"
"#
    )
}

/// Slack keeps its attachment (colour, author, fields) with the template's text; Telegram
/// sends the template's MarkdownV2 as written.
#[tokio::test]
async fn the_template_sets_the_message_text() {
    let rec = Recorder::start().await;
    let catalog = ready_catalog(&manifests(&rec.url()), herald_chat::register);
    let event = fixture("kustomization-revision.json");
    for (n, (provider, alert)) in [("slack", "to-slack"), ("telegram", "to-telegram")]
        .into_iter()
        .enumerate()
    {
        let (notifier, object) = notifier_and_alert(&catalog, "flux-system", provider, alert);
        notifier.post_for(&event, &object).await.unwrap();
        let got = rec.wait_for(n + 1, Duration::from_secs(5)).await.remove(n);
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(provider)
            .join("templated.json");
        assert_golden(
            &golden,
            &format!("{} {}\n{}\n", got.method, got.path, got.body_str()),
        );
    }
}

/// The same template on every chat type: the text lands where each puts the message
/// (`tests/golden/<type>/templated-text.json`; Slack's and Telegram's above cover Alerts).
#[tokio::test]
async fn every_type_takes_the_text() {
    use herald_core::template::{MessageTemplate, ProviderVars};
    let event = fixture("kustomization-revision.json");
    for ty in herald_chat::TYPES {
        let rec = Recorder::start().await;
        let mut cfg = crate::working_config(ty, &rec.url(), "tok-1234");
        let vars = ProviderVars {
            provider_type: ty.as_str().to_owned(),
            ..ProviderVars::default()
        };
        let template = MessageTemplate::compile(
            "{{ obj }} at {{ short_revision }} ({{ provider.type }})",
            ty,
            None,
            vars,
        )
        .unwrap();
        cfg.templates.set_provider(template);
        let got = crate::deliver(&cfg, &event, &rec).await;
        assert!(
            got.body_str().contains("69b5906"),
            "{ty}: {}",
            got.body_str()
        );
        assert_golden(
            &crate::golden(&format!("{ty}/templated-text.json")),
            got.body_str(),
        );
    }
}
