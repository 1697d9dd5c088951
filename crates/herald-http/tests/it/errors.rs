//! Permanent failures and what error messages show (and never show).

use herald_core::SecretString;
use herald_http::{HttpClient, Method, Request};
use herald_testkit::{Recorder, Reply};

use crate::{client, config, post};

#[tokio::test]
async fn client_errors_are_permanent_and_quote_the_body() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(400).body("{\"error\":\n  \"missing field\"}\n"));
    let cfg = config(&format!("{}/services/T0/B0", rec.url()));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}/…: HTTP 400 Bad Request: {{\"error\":   \"missing field\"}}",
            rec.url()
        )
    );
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(400));
    assert_eq!(rec.requests().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn long_bodies_are_cut_to_a_snippet() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(422).body("x".repeat(100_000)));
    let cfg = config(&rec.url());
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    let text = err.to_string();
    let (_, snippet) = text.split_once("HTTP 422 Unprocessable Entity: ").unwrap();
    assert_eq!(snippet, format!("{} …", "x".repeat(512)));
}

#[tokio::test]
async fn not_implemented_is_not_retried() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(501).body("no"));
    let cfg = config(&rec.url());
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        err.to_string().ends_with(": HTTP 501 Not Implemented: no"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(501));
    assert_eq!(rec.requests().len(), 1);
}

#[tokio::test]
async fn redirects_are_permanent_and_say_where() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(302).header("Location", "https://hooks.example.com/new/place"));
    let cfg = config(&format!("{}/old", rec.url()));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}/…: HTTP 302 Found: redirected to https://hooks.example.com/…; \
             herald does not follow redirects: set the provider address to the final URL",
            rec.url()
        )
    );
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(302));
    assert_eq!(
        rec.requests().len(),
        1,
        "redirects are neither followed nor retried"
    );
}

#[tokio::test]
async fn secrets_never_reach_messages() {
    let token = "tok-5f9a8e7d-distinct";
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(400).body(format!("bad token {token} for /hook/{token}")));
    for _ in 0..5 {
        rec.push_reply(Reply::status(500).body(format!("crashed handling /hook/{token}")));
    }
    let mut cfg = config(&format!("{}/hook/{token}", rec.url()));
    cfg.token = Some(SecretString::new(token));
    let client = client(&cfg);
    for _ in 0..2 {
        let err = post(&client, &cfg).await.unwrap_err();
        let text = format!("{err} {err:?} {client:?}");
        assert!(!text.contains(token), "{text}");
        assert!(!text.contains("/hook/tok"), "{text}");
        assert!(
            text.contains("*****"),
            "the echoed token is masked, not dropped: {text}"
        );
    }
    assert_eq!(rec.requests().len(), 6);
}

#[tokio::test]
async fn an_address_from_a_secret_is_masked_even_when_echoed_in_parts() {
    let rec = Recorder::start().await;
    let path = "/webhooks/7741/Xq9-secret-part";
    rec.push_reply(Reply::status(404).body(format!("no route for {path}")));
    let mut cfg = config(&format!("{}{path}", rec.url()));
    cfg.address_from_secret = true;
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}/…: HTTP 404 Not Found: no route for *****",
            rec.url()
        )
    );
}

#[tokio::test]
async fn bad_urls_are_permanent_and_not_echoed() {
    let cfg = config("ftp://user:secret-pass@files.example.com/drop");
    let client = client(&cfg);
    let err = client
        .send(Request::new(Method::PUT, cfg.address.expose()))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "provider test/hook: PUT ftp://files.example.com/…: unsupported URL scheme (use http:// or https://)"
    );
    assert!(!err.is_retryable());
    let err = client
        .send(Request::new(Method::POST, "not a url/secret-path"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "provider test/hook: POST <invalid URL>: invalid URL"
    );
    let err = HttpClient::from_config(&cfg)
        .unwrap()
        .send(Request::new(Method::POST, "/relative"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("not an absolute URL (use http:// or https://)"),
        "{err}"
    );
}
