//! `bitbucket` (Cloud) build statuses against a Bitbucket Cloud stub on loopback (a host other
//! than bitbucket.org is used as the API base, `<host>/2.0`).
//!
//! API reference: <https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/>
//! (`GET /2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build/{key}` answers
//! `200` with the status or `404`; `POST …/commit/{commit}/statuses/build` answers `201`).

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::Reply;

use crate::harness::{self, Existing, Forge, TOKEN, build_error};

fn config(url: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(
        ProviderType::Bitbucket,
        "flux-system",
        "bitbucket",
        format!("{url}/workspace/app.git"),
    );
    cfg.token = Some(SecretString::new(format!("flux-bot:{TOKEN}")));
    cfg
}

fn existing(e: &Existing) -> Reply {
    use sha1::Digest as _;
    let key = hex::encode(sha1::Sha1::digest(e.id.as_bytes()));
    let body = serde_json::json!({
        "type": "build", "key": key, "state": e.state, "name": e.name_lc,
        "description": e.description, "url": "https://bitbucket.org",
        "commit": {"hash": e.sha},
    });
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub(crate) const FORGE: Forge = Forge {
    dir: "bitbucket",
    config,
    none: || {
        Reply::status(404)
            .header("content-type", "application/json")
            .body(r#"{"type":"error","error":{"message":"Resource not found"}}"#)
    },
    existing,
    success_state: "SUCCESSFUL",
    failure_state: "FAILED",
    lookup_404_is_none: true,
    progressing_posts: false,
    created: || {
        Reply::status(201)
            .header("content-type", "application/json")
            .body(r#"{"type":"build"}"#)
    },
};

#[tokio::test]
async fn standard_cases() {
    harness::standard_cases(&FORGE).await;
}

#[test]
fn tokens_must_be_user_colon_app_password() {
    let mut cfg = config("http://127.0.0.1:1");
    for bad in ["no-colon-s3cr3t", "a:b:c-s3cr3t"] {
        cfg.token = Some(SecretString::new(bad));
        let err = build_error(&cfg);
        assert!(
            err.starts_with(
                "secret key \"token\": invalid token format, expected to be <user>:<password>"
            ),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    cfg.token = None;
    assert!(build_error(&cfg).contains("bitbucket token cannot be empty"));
    // The password key is not a fallback for Bitbucket Cloud (as in Flux).
    cfg.password = Some(SecretString::new("user:pw"));
    assert!(build_error(&cfg).contains("bitbucket token cannot be empty"));
}

#[test]
fn cloud_addresses_build() {
    for address in [
        "https://bitbucket.org/ws/app.git",
        "git@bitbucket.org:ws/app.git",
    ] {
        let mut cfg = config("http://127.0.0.1:1");
        cfg.address = SecretString::new(address);
        assert!(herald_git::build(&cfg).is_ok(), "{address}");
    }
}
