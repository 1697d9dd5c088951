//! `zulip`: goldens of the form body, Flux's own assertions (path, Basic auth, form fields,
//! the exact Markdown post for info and error), config errors.

use herald_core::{Event, ObjectReference, ProviderConfig, ProviderType, Severity};
use herald_http::form;
use herald_testkit::{Recorder, assert_golden};

use crate::{build_err, cases, config, deliver, golden, request_summary};

fn zulip(url: &str, case: &str) -> ProviderConfig {
    let mut cfg = match case {
        // Any path of the address: the messages API replaces it, the query stays.
        "error" => config(ProviderType::Zulip, &format!("{url}/some/path?x=1")),
        // Basic auth from the address when the Secret has neither username nor password.
        "no-metadata" => config(
            ProviderType::Zulip,
            &format!("http://bot:k3y@{}", &url[7..]),
        ),
        _ => config(ProviderType::Zulip, url),
    };
    cfg.channel = "general/flux events".into();
    if case != "no-metadata" {
        cfg.username = "flux-bot@zulip.example.com".into();
        cfg.password = Some("zulip-api-key".into());
    }
    cfg
}

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    for (case, event) in cases() {
        let got = deliver(&zulip(&rec.url(), case), &event, &rec).await;
        assert_golden(&golden(&format!("zulip/{case}.form")), got.body_str());
        assert_golden(
            &golden(&format!("zulip/{case}.request.txt")),
            &request_summary(&got),
        );
    }
}

#[tokio::test]
async fn flux_zulip_post() {
    // Flux's TestZulip_Post, both severities, verbatim.
    let rec = Recorder::start().await;
    let mut cfg = config(ProviderType::Zulip, &rec.url());
    cfg.channel = "general/announcements".into();
    cfg.username = "user".into();
    cfg.password = Some("pass".into());
    for (severity, emoji) in [(Severity::Info, "ℹ️"), (Severity::Error, "⚠️")] {
        let event = Event {
            severity,
            message: "Test event message".into(),
            involved_object: ObjectReference {
                kind: "Kustomization".into(),
                name: "test-ks".into(),
                namespace: "default".into(),
                ..Default::default()
            },
            metadata: [("key1", "value1"), ("key2", "value2")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ..Default::default()
        };
        let got = deliver(&cfg, &event, &rec).await;
        assert_eq!(
            (got.method.as_str(), got.path.as_str()),
            ("POST", "/api/v1/messages")
        );
        assert_eq!(got.header("authorization"), Some("Basic dXNlcjpwYXNz"));
        assert_eq!(
            got.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let fields = form::decode(got.body_str());
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(field("type"), "stream");
        assert_eq!(field("to"), "general");
        assert_eq!(field("topic"), "announcements");
        assert_eq!(
            field("content"),
            format!(
                "## Flux Status\n\n{emoji} Kustomization/default/test-ks\n\nTest event message\n\nMetadata:\n* `key1`: value1\n* `key2`: value2\n"
            )
        );
    }
}

#[test]
fn the_channel_needs_a_stream_and_a_topic() {
    let mut cfg = config(
        ProviderType::Zulip,
        "https://zulip.example.com/api/v1/messages",
    );
    cfg.channel = "invalid_format".into();
    assert_eq!(
        build_err(&cfg),
        "spec.channel: invalid Zulip channel format, expected <channel>/<topic>, got 'invalid_format'"
    );
    cfg.channel = "general/announcements".into();
    cfg.address = "zulip.example.com".into();
    let err = build_err(&cfg);
    assert!(
        err.starts_with("spec.address: invalid Zulip endpoint URL: "),
        "{err}"
    );
}
