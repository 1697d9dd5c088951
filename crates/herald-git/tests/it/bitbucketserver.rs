//! `bitbucketserver` build statuses against a Bitbucket Data Center stub on loopback.
//!
//! API reference: <https://developer.atlassian.com/server/bitbucket/rest/v906/api-group-builds-and-deployments/#api-api-latest-projects-projectkey-repos-repositoryslug-commits-commitid-builds-get>
//! (`GET /rest/api/latest/projects/{projectKey}/repos/{repositorySlug}/commits/{commitId}/builds?key=…`
//! answers `200` with the status or `404`; `POST` of the same path answers `204`).

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::{Recorder, Reply};

use crate::harness::{self, Existing, Forge, SHA, TOKEN, build_error};

fn config(url: &str) -> ProviderConfig {
    // A context path before /scm/, as Bitbucket behind a reverse proxy has.
    let mut cfg = ProviderConfig::new(
        ProviderType::BitbucketServer,
        "flux-system",
        "bitbucket-server",
        format!("{url}/bitbucket/scm/PLATFORM/fleet.git"),
    );
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

fn existing(e: &Existing) -> Reply {
    use sha1::Digest as _;
    let key = hex::encode(sha1::Sha1::digest(e.id.as_bytes()));
    let body = serde_json::json!({
        "key": key, "state": e.state, "name": format!("{} [{}]", e.name_lc, e.description),
        "description": e.description, "url": "http://example/scm/PLATFORM/fleet.git",
        "dateAdded": 1764324000000u64,
    });
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub(crate) const FORGE: Forge = Forge {
    dir: "bitbucketserver",
    config,
    none: || {
        Reply::status(404)
            .header("content-type", "application/json")
            .body(r#"{"errors":[{"message":"No build status"}]}"#)
    },
    existing,
    success_state: "SUCCESSFUL",
    failure_state: "FAILED",
    lookup_404_is_none: true,
    progressing_posts: false,
    created: || Reply::status(204),
};

#[tokio::test]
async fn standard_cases() {
    harness::standard_cases(&FORGE).await;
}

#[tokio::test]
async fn username_and_password_use_basic_auth() {
    let rec = Recorder::start().await;
    rec.push_reply((FORGE.none)());
    rec.push_reply(Reply::status(204));
    let mut cfg = config(&rec.url());
    cfg.token = None;
    cfg.username = "user".into();
    cfg.password = Some(SecretString::new("password"));
    herald_git::build(&cfg)
        .unwrap()
        .post(&harness::event("success"))
        .await
        .unwrap();
    let got = rec.requests();
    assert_eq!(
        got[1].header("authorization"),
        Some("Basic dXNlcjpwYXNzd29yZA==")
    );
    assert_eq!(
        got[1].path,
        format!("/bitbucket/rest/api/latest/projects/PLATFORM/repos/fleet/commits/{SHA}/builds")
    );
}

#[test]
fn bad_configurations() {
    let mut cfg = config("http://127.0.0.1:1");
    cfg.token = None;
    let err = build_error(&cfg);
    assert!(err.starts_with("secret key \"token\": invalid credentials, expected to be one of username/password or API Token"), "{err}");
    cfg.password = Some(SecretString::new("pw"));
    assert!(
        build_error(&cfg).contains("invalid credentials"),
        "a password needs a username"
    );
    cfg.username = "u".into();
    assert!(herald_git::build(&cfg).is_ok());

    let mut cfg = config("http://127.0.0.1:1");
    cfg.address = SecretString::new("ssh://git@bitbucket.example.com:7999/platform/fleet.git");
    assert_eq!(
        build_error(&cfg),
        "spec.address: could not parse git address: unsupported scheme type in address: ssh. Must be http or https"
    );
    cfg.address = SecretString::new("https://bitbucket.example.com/platform/fleet.git");
    assert!(build_error(&cfg).ends_with("supplied provider address is not http(s) git clone url"));
}
