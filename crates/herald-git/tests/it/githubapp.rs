//! GitHub App authentication against a loopback stub of GitHub's App API:
//! <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app>
//! (RS256, `iss` = App id, `iat`/`exp` at most 10 minutes apart) and
//! <https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app>
//! (`POST /app/installations/{id}/access_tokens` → `201 {"token", "expires_at"}`),
//! `GET /orgs/{org}/installation`, `GET /users/{user}/installation`, `GET /app` (`slug`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_core::{ProviderConfig, ProviderType, SecretBytes, Timestamp};
use herald_testkit::{Recorded, Recorder, Reply};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

use crate::comments::{self, UID, json_reply};
use crate::harness::{self, SHA};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn app_config(ty: ProviderType, url: &str, installation: (&str, &str)) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(ty, "flux-system", "app", format!("{url}/org/app"));
    cfg.uid = Some(UID.into());
    for (k, v) in [
        ("githubAppID", "1234"),
        installation,
        ("githubAppPrivateKey", herald_testkit::RSA_PKCS1_PEM),
        ("githubAppBaseURL", &format!("{url}/")),
    ] {
        cfg.secret_data
            .insert(k.into(), SecretBytes::new(v.as_bytes().to_vec()));
    }
    cfg
}

/// An installation token answer expiring `ttl` seconds from now.
fn token(name: &str, ttl: u64) -> Reply {
    let expires = Timestamp::from_unix((now() + ttl) as i64).unwrap();
    Reply::status(201)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"token":"{name}","expires_at":"{}","permissions":{{"statuses":"write"}}}}"#,
            expires.to_rfc3339()
        ))
}

/// Checks the App JWT of a request: header, exact claims, and the signature with the test
/// key's public half.
fn assert_app_jwt(r: &Recorded) {
    let auth = r.header("authorization").unwrap();
    let jwt = auth.strip_prefix("Bearer ").unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let json = |s: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap()
    };
    assert_eq!(
        json(parts[0]),
        serde_json::json!({"alg": "RS256", "typ": "JWT"})
    );
    let claims = json(parts[1]);
    let iat = claims["iat"].as_u64().unwrap();
    // Issued 30 s in the past (clock drift), valid two minutes, issued by the App id.
    let drift = now() - iat;
    assert!((29..=35).contains(&drift), "iat {iat} is {drift}s ago");
    assert_eq!(
        claims,
        serde_json::json!({"iss": "1234", "exp": iat + 120, "iat": iat})
    );
    // Go's jwt writes iss, exp, iat in this order.
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        raw,
        format!(r#"{{"iss":"1234","exp":{},"iat":{iat}}}"#, iat + 120)
    );
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        herald_testkit::rsa_public_key_der(),
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
    .expect("the JWT is signed with the App's key");
}

fn empty_list() -> Reply {
    json_reply(&serde_json::json!([]))
}

fn created() -> Reply {
    Reply::status(201).body("{}")
}

#[tokio::test]
async fn commit_statuses_use_the_installation_token_reuse_it_and_refresh_it() {
    let rec = Recorder::start().await;
    let cfg = app_config(
        ProviderType::GitHub,
        &rec.url(),
        ("githubAppInstallationID", "77"),
    );
    let n = herald_git::build(&cfg).unwrap();
    let event = harness::event("success");

    rec.push_reply(token("ghs_first", 3600));
    rec.push_reply(empty_list());
    rec.push_reply(created());
    n.post(&event).await.unwrap();
    let got = rec.requests();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/app/installations/77/access_tokens")
    );
    assert_app_jwt(&got[0]);
    assert!(got[0].body.is_empty());
    assert_eq!(
        got[1].path,
        format!("/api/v3/repos/org/app/commits/{SHA}/statuses?per_page=50")
    );
    for r in &got[1..] {
        assert_eq!(r.header("authorization"), Some("Bearer ghs_first"));
    }

    // The token is reused: no App request.
    rec.push_reply(empty_list());
    rec.push_reply(created());
    n.post(&event).await.unwrap();
    let got = rec.requests();
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[3].header("authorization"), Some("Bearer ghs_first"));

    // Revoked: GitHub answers 401, a new token is fetched once and the request sent again.
    rec.push_reply(Reply::status(401).body(r#"{"message":"Bad credentials"}"#));
    rec.push_reply(token("ghs_second", 3600));
    rec.push_reply(empty_list());
    rec.push_reply(created());
    n.post(&event).await.unwrap();
    let got = rec.requests();
    assert_eq!(got.len(), 9, "{got:?}");
    assert_eq!(got[5].header("authorization"), Some("Bearer ghs_first"));
    assert_eq!(got[6].path, "/app/installations/77/access_tokens");
    assert_app_jwt(&got[6]);
    assert_eq!(got[7].header("authorization"), Some("Bearer ghs_second"));
    assert_eq!(got[8].header("authorization"), Some("Bearer ghs_second"));

    // A second 401 in a row is the answer: refreshed once, not in a loop.
    rec.push_reply(Reply::status(401).body(r#"{"message":"Bad credentials"}"#));
    rec.push_reply(token("ghs_third", 3600));
    // (A service that echoes the token it was sent: the token is masked.)
    rec.push_reply(Reply::status(401).body(r#"{"message":"Bad credentials: ghs_third"}"#));
    let err = n.post(&event).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let text = format!("{err} {err:?}");
    assert!(text.contains("Bad credentials"), "{text}");
    assert!(!text.contains("ghs_third"), "{text}");
    assert_eq!(rec.requests().len(), 12);
}

#[tokio::test]
async fn tokens_near_expiry_are_replaced_before_use() {
    let rec = Recorder::start().await;
    let cfg = app_config(
        ProviderType::GitHubDispatch,
        &rec.url(),
        ("githubAppInstallationID", "77"),
    );
    let n = herald_git::build(&cfg).unwrap();
    let event = harness::event("success");
    // A token with a minute left (less than the five-minute margin) serves one delivery.
    rec.push_reply(token("ghs_short", 60));
    rec.push_reply(Reply::status(204));
    rec.push_reply(token("ghs_long", 3600));
    rec.push_reply(Reply::status(204));
    n.post(&event).await.unwrap();
    n.post(&event).await.unwrap();
    let got = rec.requests();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/app/installations/77/access_tokens",
            "/api/v3/repos/org/app/dispatches",
            "/app/installations/77/access_tokens",
            "/api/v3/repos/org/app/dispatches",
        ]
    );
    assert_eq!(got[1].header("authorization"), Some("Bearer ghs_short"));
    assert_eq!(got[3].header("authorization"), Some("Bearer ghs_long"));
}

#[tokio::test]
async fn the_installation_is_found_from_its_owner_organization_then_user() {
    let rec = Recorder::start().await;
    let cfg = app_config(
        ProviderType::GitHubDispatch,
        &rec.url(),
        ("githubAppInstallationOwner", "octo-user"),
    );
    let n = herald_git::build(&cfg).unwrap();
    rec.push_reply(Reply::status(404).body(r#"{"message":"Not Found"}"#));
    rec.push_reply(json_reply(&serde_json::json!({"id": 88, "app_id": 1234})));
    rec.push_reply(token("ghs_user", 3600));
    rec.push_reply(Reply::status(204));
    n.post(&harness::event("success")).await.unwrap();
    let got = rec.requests();
    let calls: Vec<(&str, &str)> = got
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/orgs/octo-user/installation"),
            ("GET", "/users/octo-user/installation"),
            ("POST", "/app/installations/88/access_tokens"),
            ("POST", "/api/v3/repos/org/app/dispatches"),
        ]
    );
    for r in &got[..3] {
        assert_app_jwt(r);
    }

    // Neither: both failures are reported, and nothing is dispatched.
    let rec = Recorder::start().await;
    let cfg = app_config(
        ProviderType::GitHubDispatch,
        &rec.url(),
        ("githubAppInstallationOwner", "nobody"),
    );
    let n = herald_git::build(&cfg).unwrap();
    rec.set_default_reply(Reply::status(404).body(r#"{"message":"Not Found"}"#));
    let err = n.post(&harness::event("success")).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("failed to find organization installation")
            && text.contains("failed to find user installation"),
        "{text}"
    );
    assert_eq!(rec.requests().len(), 2);
}

#[tokio::test]
async fn app_comments_are_authored_by_the_app_bot() {
    let rec = Recorder::start().await;
    let cfg = app_config(
        ProviderType::GitHubPullRequestComment,
        &rec.url(),
        ("githubAppInstallationID", "77"),
    );
    let n = herald_git::build(&cfg).unwrap();
    let marker =
        format!("<!-- flux-pr-comment-key:{UID}/Kustomization/flux-system/gitops-system -->");
    rec.push_reply(json_reply(
        &serde_json::json!({"id": 1234, "slug": "flux-app", "name": "Flux App"}),
    ));
    rec.push_reply(token("ghs_app", 3600));
    // A user comment with our marker is not the App's.
    rec.push_reply(crate::githubpullrequestcomment::list(&[
        (5, "flux-bot", &marker),
        (6, "flux-app[bot]", &format!("{marker}\n\nold")),
    ]));
    rec.push_reply(Reply::status(200).body("{}"));
    n.post(&comments::event(false)).await.unwrap();
    let got = rec.requests();
    let calls: Vec<(&str, &str)> = got
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/app"),
            ("POST", "/app/installations/77/access_tokens"),
            (
                "GET",
                "/api/v3/repos/org/app/issues/42/comments?direction=asc&per_page=100&sort=created"
            ),
            ("PATCH", "/api/v3/repos/org/app/issues/comments/6"),
        ]
    );
    assert_app_jwt(&got[0]);
    assert_eq!(got[3].header("authorization"), Some("Bearer ghs_app"));
}

#[tokio::test]
async fn installation_tokens_never_show_in_errors() {
    let rec = Recorder::start().await;
    let cfg = app_config(
        ProviderType::GitHubDispatch,
        &rec.url(),
        ("githubAppInstallationID", "77"),
    );
    let n = herald_git::build(&cfg).unwrap();
    rec.push_reply(Reply::status(201).body(r#"{"token":"ghs_leak_me","expires_at":"not a time"}"#));
    let err = n.post(&harness::event("success")).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("expires_at"), "{text}");
    assert!(!text.contains("ghs_leak_me"), "{text}");
}
