//! Exact requests per provider and case: `tests/golden/<type>/<case>.json` (body bytes) and
//! `<case>.request.txt` (method, path and query, content type, authorization).

use herald_chat::msteams::{self, Schema};
use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::{Recorder, assert_golden};

use crate::{cases, config, deliver, golden, request_summary};

/// Delivers every case with the configuration `configure(url, case)` gives, and compares.
async fn check(ty: ProviderType, configure: impl Fn(&str, &str) -> ProviderConfig) {
    let rec = Recorder::start().await;
    for (case, event) in cases() {
        let cfg = configure(&rec.url(), case);
        let got = deliver(&cfg, &event, &rec).await;
        let dir = ty.as_str();
        assert_golden(&golden(&format!("{dir}/{case}.json")), got.body_str());
        assert_golden(
            &golden(&format!("{dir}/{case}.request.txt")),
            &request_summary(&got),
        );
        assert!(got.header("user-agent").unwrap().starts_with("herald/"));
        // Every body is JSON.
        let _: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    }
}

#[tokio::test]
async fn slack() {
    check(ProviderType::Slack, |url, case| match case {
        // The incoming-webhook form: no token, no channel, username defaults.
        "no-metadata" => config(ProviderType::Slack, &format!("{url}/services/T0/B0/XXXX")),
        _ => {
            let mut cfg = config(ProviderType::Slack, &format!("{url}/api/chat.postMessage"));
            cfg.token = Some(SecretString::new("xoxb-1234-5678-abcdef"));
            cfg.channel = "general".into();
            if case == "unicode" {
                cfg.username = "Flux 🤖".into();
            }
            cfg
        }
    })
    .await;
}

#[tokio::test]
async fn discord() {
    check(ProviderType::Discord, |url, case| {
        let address = match case {
            "error" => format!("{url}/api/webhooks/123/tok-en?wait=true"),
            "no-metadata" => format!("{url}/api/webhooks/123/tok-en/slack"),
            _ => format!("{url}/api/webhooks/123/tok-en"),
        };
        let mut cfg = config(ProviderType::Discord, &address);
        // Ignored, as in Flux: Discord takes the channel from the webhook.
        cfg.channel = "general".into();
        if case == "unicode" {
            cfg.username = "Flux 🤖".into();
        }
        cfg
    })
    .await;
}

#[tokio::test]
async fn rocket() {
    check(ProviderType::Rocket, |url, case| {
        let mut cfg = config(ProviderType::Rocket, &format!("{url}/hooks/abc/def"));
        if case == "info" || case == "error" {
            cfg.channel = "#flux".into();
            cfg.username = "flux-bot".into();
        }
        cfg
    })
    .await;
}

#[tokio::test]
async fn msteams_adaptive_card() {
    check(ProviderType::MsTeams, |url, _| {
        config(
            ProviderType::MsTeams,
            &format!("{url}/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sig=s1g"),
        )
    })
    .await;
}

/// The legacy connector's host cannot be served on loopback, so its bodies are compared as
/// rendered (the request itself is the same POST as for adaptive cards).
#[test]
fn msteams_message_card() {
    for (case, event) in cases() {
        let body = msteams::render(&event, Schema::MessageCard).unwrap();
        assert_golden(
            &golden(&format!("msteams-messagecard/{case}.json")),
            std::str::from_utf8(&body).unwrap(),
        );
    }
}

#[test]
fn msteams_adaptive_card_is_the_flux_golden() {
    // Contract section 5.6: the full card for the test event, byte for byte.
    let body = msteams::render(&herald_testkit::fixture_event(), Schema::AdaptiveCard).unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json","type":"AdaptiveCard","version":"1.4","body":[{"type":"Container","items":[{"type":"TextBlock","text":"gitrepository/webapp.gitops-system","size":"large","weight":"bolder","wrap":true},{"type":"TextBlock","text":"message","wrap":true},{"type":"FactSet","facts":[{"title":"test","value":"metadata"}]}]}],"msteams":{"width":"Full"}}}]}"#
    );
}

#[tokio::test]
async fn googlechat() {
    check(ProviderType::GoogleChat, |url, _| {
        config(
            ProviderType::GoogleChat,
            &format!("{url}/v1/spaces/AAAA/messages?key=k3y&token=t0k"),
        )
    })
    .await;
}

#[tokio::test]
async fn webex() {
    check(ProviderType::Webex, |url, case| {
        let mut cfg = config(ProviderType::Webex, &format!("{url}/v1/messages"));
        if case != "no-metadata" {
            cfg.token = Some(SecretString::new("webex-bot-token-123"));
            cfg.channel = "Y2lzY29zcGFyazovL3VzL1JPT00vYWJj".into();
        }
        cfg
    })
    .await;
}

#[tokio::test]
async fn telegram() {
    check(ProviderType::Telegram, |url, case| {
        let mut cfg = config(ProviderType::Telegram, url);
        cfg.token = Some(SecretString::new("123456789:AAH-test_token"));
        cfg.channel = match case {
            "info" => "-1001234567890",
            "error" => "-1001234567890:42",
            _ => "@fluxcd",
        }
        .into();
        cfg
    })
    .await;
}

#[tokio::test]
async fn lark() {
    check(ProviderType::Lark, |url, _| {
        config(
            ProviderType::Lark,
            &format!("{url}/open-apis/bot/v2/hook/xxxxxxxx"),
        )
    })
    .await;
}

#[tokio::test]
async fn matrix() {
    check(ProviderType::Matrix, |url, case| {
        let address = if case == "error" {
            format!("{url}/")
        } else {
            url.to_owned()
        };
        let mut cfg = config(ProviderType::Matrix, &address);
        cfg.token = Some(SecretString::new("syt_matrix_token"));
        cfg.channel = "!jezptmDwEeLapMLjOc:matrix.org".into();
        cfg
    })
    .await;
}

#[tokio::test]
async fn zoom() {
    check(ProviderType::Zoom, |url, case| {
        let address = match case {
            // A query of its own is re-encoded sorted, with `format=full` added.
            "error" => format!("{url}/v1/im/chat/webhooks/abc?z=1&a=b%20c"),
            // A format the address names is kept.
            "no-metadata" => format!("{url}/v1/im/chat/webhooks/abc?format=message"),
            _ => format!("{url}/v1/im/chat/webhooks/abc"),
        };
        let mut cfg = config(ProviderType::Zoom, &address);
        cfg.token = Some(SecretString::new("zoom-verification-token"));
        cfg
    })
    .await;
}
