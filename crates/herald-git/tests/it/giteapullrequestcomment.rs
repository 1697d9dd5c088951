//! `giteapullrequestcomment` against a Gitea stub on loopback.
//!
//! API reference: <https://gitea.com/api/swagger#/issue> (`GET /repos/{owner}/{repo}/issues/{index}/comments`,
//! `PATCH /repos/{owner}/{repo}/issues/comments/{id}`, `POST /repos/{owner}/{repo}/issues/{index}/comments`;
//! comments carry `user.login`) and `GET /user`.

use herald_core::{ProviderConfig, ProviderType, SecretString};

use crate::comments::{self, CommentStub, ME, UID, json_reply};
use crate::githubpullrequestcomment::list;
use crate::harness::TOKEN;

fn config(url: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(
        ProviderType::GiteaPullRequestComment,
        "flux-system",
        "pr-comments",
        format!("{url}/org/app.git"),
    );
    cfg.uid = Some(UID.into());
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

const STUB: CommentStub = CommentStub {
    dir: "giteapullrequestcomment",
    config,
    identity: || json_reply(&serde_json::json!({"id": 5, "login": ME})),
    list,
    prefix: "flux-pr-comment-key",
};

#[tokio::test]
async fn creates_then_edits_its_own_comment() {
    comments::upserts(&STUB).await;
}

#[tokio::test]
async fn refuses_what_flux_refuses() {
    comments::refusals(&STUB).await;
}
