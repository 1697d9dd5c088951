//! Every provider's render function fed arbitrary events (from JSON, so every field and
//! metadata entry is fuzzer-controlled): chat (Telegram's MarkdownV2 escaping and Webex's
//! Markdown builder especially), alerting, OTLP spans, and the git forges' status bodies.
#![no_main]

use herald_chat::{discord, googlechat, lark, matrix, msteams, rocket, slack, telegram, webex};
use herald_core::{Event, ProviderConfig};
use libfuzzer_sys::fuzz_target;

fn telegram_escape_is_complete(s: &str) {
    let escaped = telegram::escape(s);
    // Every MarkdownV2 special character is preceded by a backslash.
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            assert!(chars.next().is_some(), "dangling backslash in {escaped:?}");
        } else {
            assert!(
                !"_*[]()~`>#+-=|{}.!".contains(c),
                "unescaped {c:?} in {escaped:?} (from {s:?})"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Event>(data) else {
        if let Ok(s) = std::str::from_utf8(data) {
            telegram_escape_is_complete(s);
        }
        return;
    };
    telegram_escape_is_complete(&event.message);
    let _ = slack::render(&event, "#flux", "flux");
    let _ = discord::render(&event, "flux");
    let _ = rocket::render(&event, "#flux", "flux");
    let _ = msteams::render(&event, msteams::Schema::AdaptiveCard);
    let _ = msteams::render(&event, msteams::Schema::MessageCard);
    let _ = googlechat::render(&event);
    let _ = webex::render(&event, "room");
    let _ = webex::markdown(&event);
    let _ = telegram::render(&event, "-100123:7");
    let _ = lark::render(&event);
    let _ = matrix::render(&event);
    let _ = matrix::txn_id(&event);
    let _ = herald_alerting::alertmanager::render(&event);
    let _ = herald_alerting::grafana::render(&event);
    let _ = herald_alerting::opsgenie::render(&event, "apps/opsgenie");
    let _ = herald_alerting::sentry::render(&event, "production", "apps/sentry");
    let alert = herald_alerting::otel::AlertMeta {
        uid: "5f0c8a2e-4b1d-4c3a-9e7f-2a6b8c0d1e3f".to_owned(),
        namespace: "apps".to_owned(),
        name: "on-call".to_owned(),
    };
    let span = herald_alerting::otel::render(&event, &alert, std::time::SystemTime::UNIX_EPOCH);
    assert!(!span.is_empty(), "an OTLP export always holds its span");
    for ty in herald_git::TYPES {
        let address = match ty {
            herald_core::ProviderType::AzureDevOps => "https://dev.azure.com/org/project/_git/repo",
            herald_core::ProviderType::BitbucketServer => {
                "https://bitbucket.example.com/scm/acme/webapp.git"
            }
            _ => "https://forge.example.com/acme/webapp",
        };
        let mut config = ProviderConfig::new(ty, "apps", "forge", address);
        config.token = Some("user:token".into());
        config.username = "user".to_owned();
        config.password = Some("token".into());
        if let Ok(renderer) = herald_git::Renderer::new(&config) {
            let _ = renderer.render(&event);
        }
    }
});
