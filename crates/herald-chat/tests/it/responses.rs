//! How answers are handled (Slack's `ok:false`, 4xx, 5xx, 429), secrets in errors, and
//! configuration errors.

use herald_core::{ProviderType, ProxyConfig, SecretString};
use herald_testkit::{Recorder, Reply, fixture_event};

use crate::{FAMILY, build, build_err, config, deliver, fixture, working_config};

#[tokio::test]
async fn slack_ok_false_is_a_failure_naming_slacks_error() {
    let rec = Recorder::start().await;
    // Any address: herald checks every JSON answer, not only the exact chat.postMessage URL.
    let mut cfg = config(
        ProviderType::Slack,
        &format!("{}/api/chat.postMessage", rec.url()),
    );
    cfg.token = Some(SecretString::new("xoxb-0ok-false-token"));
    let notifier = build(&cfg);

    rec.push_reply(Reply::status(200).body(r#"{"ok":false,"error":"channel_not_found"}"#));
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider flux-system/slack: POST {}/…: Slack responded with error: channel_not_found",
            rec.url()
        )
    );
    assert!(!err.is_retryable());
    assert_eq!(rec.requests().len(), 1, "not retried");

    rec.push_reply(Reply::status(200).body(r#"{"ok":false,"error":"ratelimited"}"#));
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .ends_with("Slack responded with error: ratelimited")
    );

    rec.push_reply(Reply::status(200).body(r#"{"ok":true,"channel":"C0","ts":"1.2"}"#));
    notifier.post(&fixture_event()).await.unwrap();
    // An incoming webhook answers `ok` in plain text.
    rec.push_reply(Reply::status(200).body("ok"));
    notifier.post(&fixture_event()).await.unwrap();
    assert_eq!(rec.requests().len(), 4);

    // Discord and Rocket.Chat answers are not Slack's.
    for ty in [ProviderType::Discord, ProviderType::Rocket] {
        rec.push_reply(Reply::status(200).body(r#"{"ok":false}"#));
        deliver(&config(ty, &rec.url()), &fixture_event(), &rec).await;
    }
}

#[tokio::test]
async fn client_errors_are_permanent_and_not_retried() {
    FAMILY.client_errors_are_permanent_and_not_retried().await;
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    FAMILY.server_errors_and_rate_limits_are_retried().await;
}

#[tokio::test]
async fn failures_never_show_a_secret() {
    FAMILY
        .failures_never_show_a_secret("9876543:e0c1d2b3a4f5-distinctive")
        .await;
    // Slack's own error text is masked too.
    let rec = Recorder::start().await;
    let token = "xoxb-echoed-in-the-error";
    rec.push_reply(Reply::status(200).body(format!(r#"{{"ok":false,"error":"bad {token}"}}"#)));
    let err = build(&working_config(ProviderType::Slack, &rec.url(), token))
        .post(&fixture_event())
        .await
        .unwrap_err();
    assert!(!err.to_string().contains(token), "{err}");
    assert!(
        err.to_string()
            .ends_with("Slack responded with error: bad *****"),
        "{err}"
    );
}

#[tokio::test]
async fn telegram_defaults_to_the_bot_api_and_keeps_the_token_out_of_errors() {
    // No address: the request goes to api.telegram.org. A recorder standing in as the proxy
    // sees the CONNECT (and refuses it), so nothing leaves the machine.
    let proxy = Recorder::start().await;
    proxy.push_reply(Reply::status(403).body("no"));
    let token = "123456:secret-bot-token";
    let mut cfg = config(ProviderType::Telegram, "");
    cfg.token = Some(token.into());
    cfg.channel = "@fluxcd".into();
    cfg.proxy = Some(ProxyConfig {
        url: proxy.url(),
        username: None,
        password: None,
    });
    let err = build(&cfg).post(&fixture_event()).await.unwrap_err();
    let got = proxy.requests();
    assert_eq!(got[0].method, "CONNECT");
    assert_eq!(got[0].path, "api.telegram.org:443");
    assert!(
        err.to_string()
            .starts_with("provider flux-system/telegram: POST https://api.telegram.org/…: "),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("secret-bot-token"), "{err:?}");
}

#[tokio::test]
async fn matrix_escapes_the_room_and_uses_the_event_as_transaction_id() {
    let rec = Recorder::start().await;
    let mut cfg = config(ProviderType::Matrix, &format!("{}/prefix/", rec.url()));
    cfg.token = Some(" syt_token\n".into());
    cfg.channel = "#alias:example.org/x?y".into();
    let event = fixture_event();
    let got = deliver(&cfg, &event, &rec).await;
    let txn = herald_chat::matrix::txn_id(&event).unwrap();
    assert_eq!(
        got.path,
        format!(
            "/prefix/_matrix/client/r0/rooms/%23alias:example.org%2Fx%3Fy/send/m.room.message/{txn}"
        )
    );
    assert_eq!(got.method, "PUT");
    assert_eq!(got.header("authorization"), Some("Bearer syt_token"));
    // The same event, the same transaction; another event, another one.
    let again = deliver(&cfg, &event, &rec).await;
    assert_eq!(again.path, got.path);
    let other = deliver(&cfg, &fixture("kustomization-error.json"), &rec).await;
    assert_ne!(other.path, got.path);
}

#[test]
fn bad_configurations_are_build_errors() {
    let ok = "http://127.0.0.1:1/";
    for ty in herald_chat::TYPES {
        if ty == ProviderType::Telegram {
            continue;
        }
        let mut cfg = working_config(ty, ok, "tok-abcdef");
        cfg.address = "".into();
        let err = build_err(&cfg);
        assert!(err.starts_with("spec.address: invalid "), "{ty}: {err}");
        assert!(err.ends_with("the address is empty"), "{ty}: {err}");
        cfg.address = "ftp://secret-in-address/x".into();
        cfg.address_from_secret = true;
        let err = build_err(&cfg);
        assert!(
            err.starts_with("secret key \"address\": invalid "),
            "{ty}: {err}"
        );
        assert!(!err.contains("secret-in-address"), "{ty}: {err}");
    }

    // Telegram: channel and token are required; the address is optional but must be a URL.
    let mut cfg = config(ProviderType::Telegram, "");
    cfg.token = Some("123:abc".into());
    let err = build_err(&cfg);
    assert!(
        err.starts_with("spec.channel: empty Telegram channel"),
        "{err}"
    );
    cfg.channel = "@fluxcd".into();
    cfg.token = Some("  \n".into());
    let err = build_err(&cfg);
    assert!(
        err.starts_with("secret key \"token\": empty Telegram token"),
        "{err}"
    );
    cfg.token = None;
    assert!(build_err(&cfg).contains("empty Telegram token"));
    cfg.token = Some("123:abc".into());
    assert!(herald_chat::build(&cfg).is_ok());
    cfg.address = "telegram://bot@x".into();
    let err = build_err(&cfg);
    assert!(
        err.starts_with("spec.address: invalid Telegram Bot API base URL"),
        "{err}"
    );
    cfg.address = "https://api.telegram.org/?x=1".into();
    assert!(build_err(&cfg).contains("must not have a query"));

    // Matrix: room id and token are required.
    let mut cfg = working_config(ProviderType::Matrix, ok, "tok-abcdef");
    cfg.channel = " ".into();
    let err = build_err(&cfg);
    assert!(
        err.starts_with("spec.channel: empty Matrix room id"),
        "{err}"
    );
    let mut cfg = working_config(ProviderType::Matrix, ok, "tok-abcdef");
    cfg.token = None;
    let err = build_err(&cfg);
    assert!(
        err.starts_with("secret key \"token\": empty Matrix access token"),
        "{err}"
    );

    // A token that cannot be a header value is named, not shown.
    for ty in [
        ProviderType::Slack,
        ProviderType::Webex,
        ProviderType::Matrix,
    ] {
        let mut cfg = working_config(ty, ok, "x");
        cfg.token = Some("bad\u{7}token-value".into());
        let err = build_err(&cfg);
        assert!(err.starts_with("secret key \"token\": "), "{ty}: {err}");
        assert!(!err.contains("token-value"), "{ty}: {err}");
    }
}

#[tokio::test]
async fn userinfo_in_the_address_becomes_basic_auth() {
    let rec = Recorder::start().await;
    let host = rec.url().trim_start_matches("http://").to_owned();
    let cfg = config(
        ProviderType::Rocket,
        &format!("http://bot:p%40ss@{host}/hooks/x"),
    );
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.path, "/hooks/x");
    assert_eq!(got.header("authorization"), Some("Basic Ym90OnBAc3M="));
    // A bearer token wins, as in Go.
    let mut cfg = config(ProviderType::Slack, &format!("http://bot:pass@{host}/api"));
    cfg.token = Some("xoxb-wins".into());
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.header("authorization"), Some("Bearer xoxb-wins"));
}

#[test]
fn zoom_needs_its_verification_token() {
    let mut cfg = config(
        ProviderType::Zoom,
        "https://integrations.zoom.us/chat/webhooks/incomingwebhook/abc",
    );
    assert_eq!(
        build_err(&cfg),
        "secret key \"token\": empty Zoom verification token"
    );
    cfg.token = Some("tok".into());
    cfg.address = "not-a-url".into();
    let err = build_err(&cfg);
    assert!(
        err.starts_with("spec.address: invalid Zoom incoming webhook URL: "),
        "{err}"
    );
}
