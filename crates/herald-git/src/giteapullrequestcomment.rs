//! `giteapullrequestcomment`: one upserted comment per object on a Gitea (or Forgejo) pull
//! request (<https://gitea.com/api/swagger#/issue/issueGetComments>).

use herald_core::{BuildError, DeliveryError};
use herald_http::provider::{Setup, decode_json};
use herald_http::{HttpClient, Method, Request};

use crate::comment::{Comment, CommentForge, PAGE};
use crate::gitea::Gitea;
use crate::githubpullrequestcomment::{Login, issue_comments};
use crate::status::StatusForge as _;

/// A validated `giteapullrequestcomment` Provider: the `gitea` API and credentials.
#[derive(Debug)]
pub(crate) struct GiteaPullRequestComment {
    api: Gitea,
}

impl CommentForge for GiteaPullRequestComment {
    const PREFIX: &'static str = "flux-pr-comment-key";
    const LIST_FAILED: &'static str = "failed to list pull request comments";
    const UPDATE_FAILED: &'static str = "failed to update pull request comment";
    const CREATE_FAILED: &'static str = "failed to create pull request comment";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        Ok(GiteaPullRequestComment {
            api: Gitea::from_config(setup)?,
        })
    }

    async fn identity(&self, client: &HttpClient) -> Result<String, DeliveryError> {
        let answer = client
            .send(
                self.api
                    .request(Method::GET, &format!("{}/api/v1/user", self.api.base)),
            )
            .await?;
        let user: Login = decode_json(&answer.body)?;
        Ok(user.login)
    }

    fn list(&self, number: i64) -> Request {
        let url = format!(
            "{}/issues/{number}/comments?page=1&limit={PAGE}",
            self.api.repo_url
        );
        self.api.request(Method::GET, &url)
    }

    fn comments(&self, answer: &[u8]) -> Result<Vec<Comment>, DeliveryError> {
        issue_comments(answer)
    }

    fn edit(&self, _number: i64, id: u64, body: Vec<u8>) -> Request {
        let url = format!("{}/issues/comments/{id}", self.api.repo_url);
        self.api.json(Method::PATCH, &url, body)
    }

    fn create(&self, number: i64, body: Vec<u8>) -> Request {
        let url = format!("{}/issues/{number}/comments", self.api.repo_url);
        self.api.json(Method::POST, &url, body)
    }
}
