//! The chat providers against a recording server on loopback (and Matrix against a real
//! Synapse): exact bodies, paths and auth headers, response handling, retries, secrets,
//! proxy and custom CA.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod goldens;
mod matrix;
mod responses;
mod templates;
mod transport;
mod zulip;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{Event, Family, Notifier, ProviderConfig, ProviderType, Registry};
use herald_http::RetryPolicy;
pub(crate) use herald_testkit::fixture;
use herald_testkit::{Recorded, Recorder};

/// The chat family as the shared checks of herald-testkit see it.
pub(crate) const FAMILY: herald_testkit::Family = herald_testkit::Family {
    types: &herald_chat::TYPES,
    working_config,
    build,
};

/// The golden cases every provider renders: the standard ones of herald-testkit, and an error
/// whose message, names and metadata are full of Markdown-special characters.
pub(crate) fn cases() -> Vec<(&'static str, Event)> {
    let mut cases = herald_testkit::golden_cases();
    cases.push(("markdown", fixture("markdown-special.json")));
    cases
}

pub(crate) fn golden(name: &str) -> PathBuf {
    herald_testkit::golden_path(env!("CARGO_MANIFEST_DIR"), name)
}

pub(crate) fn config(ty: ProviderType, address: &str) -> ProviderConfig {
    herald_testkit::provider_config(ty, address)
}

/// Method, path and query, and the content-type and authorization headers, one a line.
pub(crate) fn request_summary(r: &Recorded) -> String {
    herald_testkit::request_summary(r, &["content-type", "authorization"])
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
    FAMILY.deliver(cfg, event, rec).await
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
        ProviderType::Zulip => "general/announcements".into(),
        _ => "-100123".into(),
    };
    if ty == ProviderType::Zulip {
        // The bot's email and API key.
        cfg.username = "flux-bot@zulip.example.com".into();
        cfg.password = Some(token.into());
    }
    cfg
}

#[test]
fn tidy_every_type_has_a_module_goldens_and_a_readme_section() {
    herald_testkit::assert_family_layout(env!("CARGO_MANIFEST_DIR"), &herald_chat::TYPES);
}

#[test]
fn register_adds_the_family_and_its_types() {
    let mut registry = Registry::new();
    herald_chat::register(&mut registry);
    assert_eq!(registry.families().collect::<Vec<_>>(), [Family::Chat]);
    let mut types: Vec<_> = registry.types().collect();
    types.sort();
    let mut want = herald_chat::TYPES.to_vec();
    want.sort();
    assert_eq!(types, want);
    let mut upstream: Vec<_> = Family::Chat.types().collect();
    upstream.sort();
    assert_eq!(
        want, upstream,
        "every chat type upstream has is implemented"
    );
    let err = build_err(&config(ProviderType::Grafana, "https://example.com"));
    assert_eq!(err, "spec.type: `grafana` is not a chat provider type");
}
