//! The chat providers against a recording server on loopback (and Matrix against a real
//! Synapse): exact bodies, paths and auth headers, response handling, retries, secrets,
//! proxy and custom CA.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod goldens;
mod matrix;
mod responses;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herald_core::{BuildError, Event, Family, Notifier, ProviderConfig, ProviderType, Registry};
use herald_http::RetryPolicy;
pub(crate) use herald_testkit::fixture;
use herald_testkit::{Recorded, Recorder, fixture_event};

/// The golden cases every provider renders: Flux's test event (info, one metadata entry), an
/// error with revision and summary metadata, the test event without metadata, unicode with
/// HTML-special characters (`<`, `>`, `&`, `"`, U+2028, emoji), and an error whose message,
/// names and metadata are full of Markdown-special characters.
pub(crate) fn cases() -> Vec<(&'static str, Event)> {
    let mut bare = fixture_event();
    bare.metadata.clear();
    vec![
        ("info", fixture_event()),
        ("error", fixture("kustomization-error.json")),
        ("no-metadata", bare),
        ("unicode", fixture("unicode.json")),
        ("markdown", fixture("markdown-special.json")),
    ]
}

pub(crate) fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

pub(crate) fn config(ty: ProviderType, address: &str) -> ProviderConfig {
    ProviderConfig::new(ty, "flux-system", ty.as_str(), address)
}

/// Method, path and query, and the content-type and authorization headers, one a line.
pub(crate) fn request_summary(r: &Recorded) -> String {
    let mut out = format!("{} {}\n", r.method, r.path);
    for name in ["content-type", "authorization"] {
        if let Some(v) = r.header(name) {
            out.push_str(&format!("{name}: {v}\n"));
        }
    }
    out
}

/// Retries in milliseconds, so that retry tests are quick.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

pub(crate) fn build(cfg: &ProviderConfig) -> Arc<dyn Notifier> {
    herald_chat::build_with_retry_policy(cfg, fast_retry()).unwrap()
}

pub(crate) fn build_err(cfg: &ProviderConfig) -> String {
    herald_chat::build(cfg).unwrap_err().to_string()
}

/// Posts `event` and returns the one request the recorder got.
pub(crate) async fn deliver(cfg: &ProviderConfig, event: &Event, rec: &Recorder) -> Recorded {
    let before = rec.requests().len();
    build(cfg).post(event).await.unwrap();
    let mut got = rec.wait_for(before + 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), before + 1, "exactly one request");
    got.pop().unwrap()
}

/// A working configuration of `ty` against the recorder at `url`, with `token` wherever the
/// type takes one.
pub(crate) fn working_config(ty: ProviderType, url: &str, token: &str) -> ProviderConfig {
    let mut cfg = match ty {
        ProviderType::Slack => config(ty, &format!("{url}/api/chat.postMessage")),
        ProviderType::Discord => config(ty, &format!("{url}/api/webhooks/1/{token}")),
        ProviderType::Telegram | ProviderType::Matrix => config(ty, url),
        _ => config(ty, &format!("{url}/hook/{token}")),
    };
    cfg.token = Some(token.into());
    cfg.channel = match ty {
        ProviderType::Matrix => "!room:localhost".into(),
        _ => "-100123".into(),
    };
    cfg
}

#[test]
fn register_adds_the_family_and_its_nine_types() {
    let mut registry = Registry::new();
    herald_chat::register(&mut registry);
    assert_eq!(registry.families().collect::<Vec<_>>(), [Family::Chat]);
    let mut types: Vec<_> = registry.types().collect();
    types.sort();
    let mut want = herald_chat::TYPES.to_vec();
    want.sort();
    assert_eq!(types, want);
    // Every chat type but Zulip and Zoom.
    let rest: Vec<_> = Family::Chat
        .types()
        .filter(|t| !herald_chat::TYPES.contains(t))
        .collect();
    assert_eq!(rest, [ProviderType::Zulip, ProviderType::Zoom]);
    for ty in rest {
        let err = registry
            .build(&config(ty, "https://example.com"))
            .unwrap_err();
        assert!(
            matches!(err, BuildError::NotImplemented { .. }),
            "{ty}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("provider type `{ty}` is not implemented by herald's `chat` family")
        );
    }
    let err = build_err(&config(ProviderType::Grafana, "https://example.com"));
    assert_eq!(err, "spec.type: `grafana` is not a chat provider type");
}
