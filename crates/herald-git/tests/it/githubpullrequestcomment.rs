//! `githubpullrequestcomment` against a GitHub Enterprise stub on loopback, with a token and
//! with a GitHub App.
//!
//! API reference: <https://docs.github.com/en/rest/issues/comments?apiVersion=2022-11-28>
//! (`GET /repos/{owner}/{repo}/issues/{n}/comments`, `PATCH /repos/{owner}/{repo}/issues/comments/{id}`,
//! `POST /repos/{owner}/{repo}/issues/{n}/comments`; comments carry `user.login`) and
//! <https://docs.github.com/en/rest/users/users#get-the-authenticated-user> (`GET /user`).

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::Reply;

use crate::comments::{self, CommentStub, ME, UID, json_reply};
use crate::harness::TOKEN;

fn config(url: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(
        ProviderType::GitHubPullRequestComment,
        "flux-system",
        "pr-comments",
        format!("{url}/org/app"),
    );
    cfg.uid = Some(UID.into());
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

pub(crate) fn list(comments: &[(u64, &str, &str)]) -> Reply {
    json_reply(&serde_json::Value::Array(
        comments
            .iter()
            .map(|(id, login, body)| {
                serde_json::json!({"id": id, "body": body, "user": {"login": login, "id": 1}})
            })
            .collect(),
    ))
}

const STUB: CommentStub = CommentStub {
    dir: "githubpullrequestcomment",
    config,
    identity: || json_reply(&serde_json::json!({"login": ME, "id": 5})),
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
