//! `googlepubsub` against a recording server on loopback standing for both Google's token
//! endpoint (the key's `token_uri`) and the Pub/Sub REST endpoint.

// Test helpers unwrap: a panic there is a test failure with a location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use herald_core::{Event, ProviderConfig, ProviderType, SecretString, json};
use herald_testkit::{
    Recorded, Recorder, Reply, assert_golden, fixture_event, golden_path, rsa_public_key_der,
};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

const EMAIL: &str = "flux@my-project.iam.gserviceaccount.com";

fn key_json(token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "key-1",
        "private_key": herald_testkit::RSA_PKCS8_PEM,
        "client_email": EMAIL,
        "token_uri": token_uri,
    })
    .to_string()
}

fn config(rec: &Recorder) -> ProviderConfig {
    let mut c = ProviderConfig::new(
        ProviderType::GooglePubSub,
        "flux-system",
        "pubsub",
        "my-project",
    );
    c.channel = "flux-events".into();
    c.token = Some(SecretString::new(key_json(&format!("{}/token", rec.url()))));
    c.headers
        .insert("cluster".into(), SecretString::new("prod-eu"));
    c
}

fn token_reply(token: &str) -> Reply {
    Reply::status(200).body(format!(
        r#"{{"access_token":"{token}","expires_in":3599,"token_type":"Bearer"}}"#
    ))
}

fn published() -> Reply {
    Reply::status(200).body(r#"{"messageIds":["4242"]}"#)
}

/// The claims of the token request's assertion, after checking its signature with the test
/// key's public half and its header.
fn verified_claims(request: &Recorded) -> serde_json::Value {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/token");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: BTreeMap<String, String> = form_pairs(request.body_str());
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let jwt = &form["assertion"];
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_public_key_der())
        .verify(
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .expect("the assertion is signed with the service account's key");
    let (header, claims) = signed.split_once('.').unwrap();
    let decode = |s: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
    };
    assert_eq!(
        decode(header),
        serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"})
    );
    decode(claims)
}

fn form_pairs(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                let bytes = s.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// Checks a publish request and returns the event JSON it carries.
fn published_data(request: &Recorded, token: Option<&str>) -> Vec<u8> {
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/v1/projects/my-project/topics/flux-events:publish"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("authorization"),
        token.map(|t| format!("Bearer {t}")).as_deref()
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    STANDARD
        .decode(body["messages"][0]["data"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn a_signed_assertion_buys_a_token_that_is_kept_and_publishes_the_event() {
    let rec = Recorder::start().await;
    rec.push_reply(token_reply("ya29.first-token"));
    rec.push_reply(published());
    rec.push_reply(published());
    let notifier = herald_pubsub::build_with_endpoint(&config(&rec), &rec.url()).unwrap();
    let event = fixture_event();
    notifier.post(&event).await.unwrap();
    notifier.post(&event).await.unwrap();

    let got = rec.requests();
    assert_eq!(got.len(), 3, "one token for both publishes: {got:?}");
    let claims = verified_claims(&got[0]);
    assert_eq!(claims["iss"], EMAIL);
    assert_eq!(claims["aud"], format!("{}/token", rec.url()));
    assert_eq!(claims["scope"], herald_pubsub::SCOPES);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    for publish in &got[1..] {
        assert_eq!(
            published_data(publish, Some("ya29.first-token")),
            json::to_vec(&event).unwrap(),
            "data is the event JSON, byte for byte"
        );
    }
    assert_golden(
        &golden_path(
            env!("CARGO_MANIFEST_DIR"),
            "googlepubsub/fixture-event.json",
        ),
        got[1].body_str(),
    );
}

#[tokio::test]
async fn a_refused_token_is_replaced_and_the_publish_repeated_once() {
    let rec = Recorder::start().await;
    rec.push_reply(token_reply("ya29.revoked"));
    rec.push_reply(Reply::status(401).body(r#"{"error":{"code":401}}"#));
    rec.push_reply(token_reply("ya29.fresh"));
    rec.push_reply(published());
    let notifier = herald_pubsub::build_with_endpoint(&config(&rec), &rec.url()).unwrap();
    notifier.post(&fixture_event()).await.unwrap();
    let got = rec.requests();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/token",
            "/v1/projects/my-project/topics/flux-events:publish",
            "/token",
            "/v1/projects/my-project/topics/flux-events:publish"
        ]
    );
    published_data(&got[1], Some("ya29.revoked"));
    published_data(&got[3], Some("ya29.fresh"));
}

#[tokio::test]
async fn failures_are_classified_and_never_show_the_key_or_token() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(503).body("token service down"));
    let notifier = herald_pubsub::build_with_endpoint(&config(&rec), &rec.url()).unwrap();
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "provider flux-system/pubsub: error publishing to GCP Pub/Sub topic projects/my-project/topics/flux-events: fetching an access token for flux@my-project.iam.gserviceaccount.com from"
        ),
        "{text}"
    );

    rec.push_reply(token_reply("ya29.secret-token"));
    rec.push_reply(Reply::status(404).body("Resource not found (resource=flux-events)."));
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.status(), Some(404));
    let shown = format!("{err} {notifier:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");

    // A service that echoes the access token it was sent: the error masks it.
    rec.push_reply(Reply::status(400).body("bad request with Bearer ya29.secret-token"));
    let err = notifier.post(&fixture_event()).await.unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("bad request with Bearer"), "{shown}");
    assert!(!shown.contains("ya29.secret-token"), "{shown}");
}

#[tokio::test]
async fn the_emulator_takes_unauthenticated_publishes_with_flux_zero_event() {
    let rec = Recorder::start().await;
    rec.push_reply(published());
    let mut c = ProviderConfig::new(
        ProviderType::GooglePubSub,
        "flux-system",
        "pubsub",
        "my-project",
    );
    c.channel = "flux-events".into();
    c.headers.insert("foo".into(), SecretString::new("bar"));
    let host = rec.url().trim_start_matches("http://").to_owned();
    let notifier = herald_pubsub::build_for_emulator(&c, &host).unwrap();
    // Flux's own fixture: the zero event with metadata {"foo":"bar"}.
    let mut event = Event::default();
    event.metadata.insert("foo".into(), "bar".into());
    notifier.post(&event).await.unwrap();
    let got = rec.requests();
    assert_eq!(
        String::from_utf8(published_data(&got[0], None)).unwrap(),
        r#"{"involvedObject":{},"severity":"","timestamp":null,"message":"","reason":"","metadata":{"foo":"bar"},"reportingController":""}"#
    );
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body["messages"][0]["attributes"],
        serde_json::json!({"foo": "bar"})
    );
    assert_golden(
        &golden_path(env!("CARGO_MANIFEST_DIR"), "googlepubsub/zero-event.json"),
        got[0].body_str(),
    );
}
