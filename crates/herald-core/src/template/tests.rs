use serde_json::json;

use super::*;

fn vars() -> ProviderVars {
    ProviderVars {
        namespace: "flux-system".into(),
        name: "slack".into(),
        provider_type: "slack".into(),
        channel: "general".into(),
    }
}

fn compile(source: &str, ty: ProviderType) -> Result<MessageTemplate, TemplateProblem> {
    MessageTemplate::compile(source, ty, None, vars())
}

fn event() -> Event {
    let [_, _, _, (_, error)] = engine::sample_events();
    error
}

#[test]
fn the_context_has_the_event_alert_provider_and_helpers() {
    let alert =
        json!({"metadata": {"name": "prod"}, "spec": {"eventMetadata": {"summary": "Prod"}}});
    let cases = [
        ("{{ event.involvedObject.kind }}", "Kustomization"),
        (
            "{{ event.severity }} {{ event.reason }}",
            "error HealthCheckFailed",
        ),
        ("{{ event.reportingController }}", "kustomize-controller"),
        ("{{ event.timestamp }}", "2026-11-28T10:00:00Z"),
        (
            "{{ event.metadata.summary | default('-') }}",
            "sample summary",
        ),
        ("{{ obj }}", "Kustomization/flux-system/apps"),
        (
            "{{ revision }}",
            "main@sha1:69b59063470310ebbd88a9156325322a124e55a3",
        ),
        ("{{ short_revision }}", "69b5906"),
        ("{{ is_error }} {{ is_error | json }}", "True true"),
        (
            "{{ alert.namespace }}/{{ alert.name }}: {{ alert.summary }}",
            "default/prod: Prod",
        ),
        (
            "{{ provider.namespace }} {{ provider.name }} {{ provider.type }} {{ provider.channel }}",
            "flux-system slack slack general",
        ),
    ];
    for (source, want) in cases {
        let t = compile(source, ProviderType::Slack).unwrap();
        assert_eq!(t.render(&event(), &alert).unwrap(), want, "{source}");
    }
    let t = compile("[{{ alert.name }}]", ProviderType::Slack).unwrap();
    assert_eq!(t.render(&event(), &serde_json::Value::Null).unwrap(), "[]");
}

#[test]
fn short_revisions() {
    for (revision, want) in [
        (
            "main@sha1:69b59063470310ebbd88a9156325322a124e55a3",
            "69b5906",
        ),
        ("sha256:2f9fba7a", "2f9fba7"),
        ("v1.2.3", "v1.2.3"),
        ("main@sha1:abc", "abc"),
        ("", ""),
    ] {
        assert_eq!(short_revision(revision), want, "{revision}");
    }
}

#[test]
fn every_type_says_what_a_template_sets() {
    use ProviderType as T;
    let cases = [
        (T::Generic, TemplateUse::Body),
        (T::GenericHmac, TemplateUse::Body),
        (T::GitHubDispatch, TemplateUse::Dispatch),
        (T::Slack, TemplateUse::Message),
        (T::Telegram, TemplateUse::Message),
        (T::Alertmanager, TemplateUse::Message),
        (T::GitHub, TemplateUse::Message),
    ];
    for (ty, want) in cases {
        assert_eq!(TemplateUse::of(ty), want, "{ty}");
    }
    for ty in [
        T::Nats,
        T::GooglePubSub,
        T::GitHubPullRequestComment,
        T::AzureEventHub,
    ] {
        let err = compile("x", ty).unwrap_err().message;
        assert!(
            err.starts_with(&format!("provider type `{ty}` takes no template: ")),
            "{err}"
        );
    }
}

#[test]
fn load_time_checks_find_what_would_fail_later() {
    use ProviderType as T;
    let cases = [
        (
            "{{ event.message }",
            T::Slack,
            "line 1, column 18: syntax error",
        ),
        (
            "{{ event.metadata.revision }}",
            T::Slack,
            "line 1, column 4: undefined value: `event.metadata.revision` is undefined (rendering \
             the sample info event)",
        ),
        ("{{ nope }}", T::Slack, "line 1, column 4: undefined value"),
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            T::Slack,
            "ran out of fuel",
        ),
        (
            "{% for a in range(99999) %}{{ event.message }}{% endfor %}",
            T::Slack,
            "the output is larger than the limit",
        ),
        (
            "text: {{ event.message }}",
            T::Generic,
            "the body is not valid JSON",
        ),
        (
            r#"{"client_payload": {}}"#,
            T::GitHubDispatch,
            "needs \"event_type\"",
        ),
        (
            r#"{"event_type": "x", "client_payload": 1}"#,
            T::GitHubDispatch,
            "must be an object",
        ),
    ];
    for (source, ty, want) in cases {
        let err = compile(source, ty).unwrap_err().message;
        assert!(err.contains(want), "{source}: {err}");
    }
    assert!(compile("{{ event.metadata.revision | default('') }}", T::Slack).is_ok());
    assert!(compile("{% if revision %}{{ short_revision }}{% endif %}", T::Slack).is_ok());
    assert!(compile(r#"{"text": {{ event.message | json }}}"#, T::Generic).is_ok());
    assert!(compile(r#"{"event_type": "{{ obj }}"}"#, T::GitHubDispatch).is_ok());
    let plain = MessageTemplate::compile("text: {{ obj }}", T::Generic, Some("text/plain"), vars());
    assert_eq!(plain.unwrap().content_type(), Some("text/plain"));
    let err =
        MessageTemplate::compile("x", T::Generic, Some("text/plain\nX: y"), vars()).unwrap_err();
    assert!(
        err.message.contains("is not a header value"),
        "{}",
        err.message
    );
    let err = MessageTemplate::compile("x", T::Slack, Some("text/plain"), vars()).unwrap_err();
    assert!(
        err.message
            .contains("applies to generic and generic-hmac only"),
        "{}",
        err.message
    );
}

#[test]
fn the_alerts_template_wins_over_the_providers() {
    let mut templates = Templates::default();
    assert!(templates.is_empty());
    assert!(templates.for_alert(&serde_json::Value::Null).is_none());
    templates.set_provider(compile("provider", ProviderType::Slack).unwrap());
    templates.add_alert(
        "default",
        "a",
        compile("alert a", ProviderType::Slack).unwrap(),
    );
    let render = |alert: serde_json::Value| {
        templates
            .for_alert(&alert)
            .unwrap()
            .render(&event(), &alert)
            .unwrap()
    };
    assert_eq!(render(json!({"metadata": {"name": "a"}})), "alert a");
    assert_eq!(
        render(json!({"metadata": {"name": "a", "namespace": "other"}})),
        "provider"
    );
    assert_eq!(render(json!({"metadata": {"name": "b"}})), "provider");
    assert_eq!(render(serde_json::Value::Null), "provider");
}
