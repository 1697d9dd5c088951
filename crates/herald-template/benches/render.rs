//! Rendering a typical chat template per event (`cargo xtask bench`): the template compiled
//! once, as a load does, then the context built and rendered for every event.

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_core::template::{MessageTemplate, ProviderVars};
use herald_core::{Event, ProviderType};
use herald_testkit::measure;

const EVENT: &str = r#"{"involvedObject":{"kind":"Kustomization","namespace":"flux-system","name":"apps","uid":"0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a","apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-11-28T10:00:00Z","message":"Reconciliation finished in 1.2s, next run in 10m0s; applied revision main@sha1:69b59063470310ebbd88a9156325322a124e55a3 to 42 objects in 3 namespaces","reason":"ReconciliationSucceeded","metadata":{"revision":"main@sha1:69b59063470310ebbd88a9156325322a124e55a3","summary":"Production cluster","env":"prod"},"reportingController":"kustomize-controller","reportingInstance":"kustomize-controller-7c7b47f5f-8bhrp"}"#;

/// A typical chat template: a heading with an emoji by severity, the object and short
/// revision, the escaped message cut to a limit, and the metadata as a list.
const CHAT: &str = "{% if is_error %}:red_circle:{% else %}:large_green_circle:{% endif %} *{{ obj | slack }}* `{{ short_revision }}`\n{{ event.message | truncate(300) | slack }}\n{% for key, value in event.metadata | items %}• {{ key }}: {{ value | slack }}\n{% endfor %}";

fn main() {
    let event: Event = serde_json::from_str(EVENT).unwrap();
    let provider = ProviderVars {
        namespace: "flux-system".into(),
        name: "slack".into(),
        provider_type: "slack".into(),
        channel: "general".into(),
    };
    let template = MessageTemplate::compile(CHAT, ProviderType::Slack, None, provider).unwrap();
    let alert = serde_json::json!({"metadata": {"name": "apps", "namespace": "flux-system"}});
    let ns = measure(|| {
        black_box(
            template
                .render(black_box(&event), black_box(&alert))
                .unwrap(),
        );
    });
    println!("chat template render: {ns:.0} ns/event");
}
