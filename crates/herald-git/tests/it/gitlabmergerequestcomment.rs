//! `gitlabmergerequestcomment` against a GitLab stub on loopback.
//!
//! API reference: <https://docs.gitlab.com/api/notes/#merge-requests>
//! (`GET /projects/:id/merge_requests/:iid/notes`, `PUT …/notes/:note_id`, `POST …/notes`;
//! notes carry `author.username`) and <https://docs.gitlab.com/api/users/#get-the-current-user>.

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::Reply;

use crate::comments::{self, CommentStub, ME, UID, json_reply};
use crate::harness::TOKEN;

fn config(url: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(
        ProviderType::GitLabMergeRequestComment,
        "flux-system",
        "mr-comments",
        format!("{url}/group/sub/app"),
    );
    cfg.uid = Some(UID.into());
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

fn list(notes: &[(u64, &str, &str)]) -> Reply {
    json_reply(&serde_json::Value::Array(
        notes
            .iter()
            .map(|(id, username, body)| {
                serde_json::json!({"id": id, "body": body, "system": false,
                    "author": {"id": 1, "username": username, "name": "Flux"}})
            })
            .collect(),
    ))
}

const STUB: CommentStub = CommentStub {
    dir: "gitlabmergerequestcomment",
    config,
    identity: || json_reply(&serde_json::json!({"id": 5, "username": ME})),
    list,
    prefix: "flux-mr-comment-key",
};

#[tokio::test]
async fn creates_then_edits_its_own_note() {
    comments::upserts(&STUB).await;
}

#[tokio::test]
async fn refuses_what_flux_refuses() {
    comments::refusals(&STUB).await;
}
