//! `gitea` commit statuses against a Gitea stub on loopback.
//!
//! API reference: <https://gitea.com/api/swagger#/repository/repoListStatuses> and
//! <https://gitea.com/api/swagger#/repository/repoCreateStatus>
//! (`GET /api/v1/repos/{owner}/{repo}/commits/{ref}/statuses`, `POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`;
//! statuses carry their state as `status` in answers; answers `200` and `201`).

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::Reply;

use crate::harness::{self, Existing, Forge, TOKEN, build_error};

fn config(url: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(
        ProviderType::Gitea,
        "flux-system",
        "gitea",
        format!("{url}/org/app.git"),
    );
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

fn existing(e: &Existing) -> Reply {
    let body = serde_json::json!([
        {"id": 2, "status": e.state, "target_url": "", "description": e.description,
         "url": "", "context": e.id, "creator": {"login": "flux"}},
    ]);
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub(crate) const FORGE: Forge = Forge {
    dir: "gitea",
    config,
    none: || {
        Reply::status(200)
            .header("content-type", "application/json")
            .body("[]")
    },
    existing,
    success_state: "success",
    failure_state: "failure",
    lookup_404_is_none: false,
    progressing_posts: true,
    created: || {
        Reply::status(201)
            .header("content-type", "application/json")
            .body(r#"{"id":3}"#)
    },
};

#[tokio::test]
async fn standard_cases() {
    harness::standard_cases(&FORGE).await;
}

#[test]
fn bad_configurations() {
    let mut cfg = config("http://127.0.0.1:1");
    cfg.token = None;
    assert_eq!(
        build_error(&cfg),
        "secret key \"token\": gitea token cannot be empty (set the Secret's `token`, or `password`)"
    );
    let mut cfg = config("http://127.0.0.1:1");
    cfg.address = SecretString::new("git@gitea.example.com:org/app.git");
    assert!(herald_git::build(&cfg).is_ok());
    cfg.address = SecretString::new("git@gitea.example.com:org/sub/app.git");
    assert!(build_error(&cfg).contains("invalid repository id \"org/sub/app\""));
}
