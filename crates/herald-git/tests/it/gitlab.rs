//! `gitlab` commit statuses against a self-hosted GitLab stub on loopback.
//!
//! API reference: <https://docs.gitlab.com/api/commits/#list-the-statuses-of-a-commit> and
//! <https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit>
//! (`GET /projects/:id/repository/commits/:sha/statuses?name=…`, `POST /projects/:id/statuses/:sha`;
//! `:id` is the numeric id or the URL-encoded path; answers `200` with an array and `201`).

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::{Recorder, Reply};

use crate::harness::{self, Existing, Forge, SHA, TOKEN, build_error};

fn config(url: &str) -> ProviderConfig {
    // A project in a subgroup.
    let mut cfg = ProviderConfig::new(
        ProviderType::GitLab,
        "flux-system",
        "gitlab",
        format!("{url}/platform/clusters/fleet.git"),
    );
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

fn existing(e: &Existing) -> Reply {
    let body = serde_json::json!([
        {"id": 9, "sha": e.sha, "ref": "main", "status": e.state, "name": e.id,
         "description": e.description, "target_url": null, "allow_failure": false},
    ]);
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub(crate) const FORGE: Forge = Forge {
    dir: "gitlab",
    config,
    none: || {
        Reply::status(200)
            .header("content-type", "application/json")
            .body("[]")
    },
    existing,
    success_state: "success",
    failure_state: "failed",
    lookup_404_is_none: false,
    progressing_posts: false,
    created: || {
        Reply::status(201)
            .header("content-type", "application/json")
            .body(r#"{"id":10}"#)
    },
};

#[tokio::test]
async fn standard_cases() {
    harness::standard_cases(&FORGE).await;
}

#[tokio::test]
async fn numeric_project_ids_are_used_as_they_are() {
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(200).body("[]"));
    rec.push_reply(Reply::status(201));
    let mut cfg = config(&rec.url());
    cfg.address = SecretString::new(format!("{}/4711", rec.url()));
    herald_git::build(&cfg)
        .unwrap()
        .post(&harness::event("success"))
        .await
        .unwrap();
    let got = rec.requests();
    assert!(got[0].path.starts_with(&format!(
        "/api/v4/projects/4711/repository/commits/{SHA}/statuses?name="
    )));
    assert_eq!(got[1].path, format!("/api/v4/projects/4711/statuses/{SHA}"));
}

#[test]
fn bad_configurations() {
    let mut cfg = config("http://127.0.0.1:1");
    cfg.token = Some(SecretString::new(""));
    assert_eq!(
        build_error(&cfg),
        "secret key \"token\": gitlab token cannot be empty (set the Secret's `token`, or `password`)"
    );
    cfg.password = Some(SecretString::new("pw-fallback"));
    assert!(herald_git::build(&cfg).is_ok());
    for address in [
        "git@gitlab.com:group/sub/proj.git",
        "ssh://git@gitlab.example.com:2222/a/b",
    ] {
        let mut cfg = config("http://127.0.0.1:1");
        cfg.address = SecretString::new(address);
        assert!(herald_git::build(&cfg).is_ok(), "{address}");
    }
}
