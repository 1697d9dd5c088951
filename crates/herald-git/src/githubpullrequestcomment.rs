//! `githubpullrequestcomment`: one upserted comment per object on a GitHub pull request
//! (<https://docs.github.com/en/rest/issues/comments>), with a token or a GitHub App.

use herald_core::{BuildError, DeliveryError};
use herald_http::provider::{Setup, decode_json};
use herald_http::{HttpClient, Method, Request, Response};
use serde::Deserialize;

use crate::comment::{Comment, CommentForge, PAGE};
use crate::github::Api;

/// A validated `githubpullrequestcomment` Provider.
#[derive(Debug)]
pub(crate) struct GitHubPullRequestComment {
    api: Api,
}

/// A user as GitHub and Gitea show a comment's author.
#[derive(Deserialize, Default)]
pub(crate) struct Login {
    #[serde(default)]
    pub(crate) login: String,
}

/// One comment of `GET …/issues/{n}/comments` (GitHub's and Gitea's shape).
#[derive(Deserialize)]
pub(crate) struct IssueComment {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) body: String,
    #[serde(default)]
    pub(crate) user: Option<Login>,
}

/// The comments of a GitHub or Gitea list answer.
pub(crate) fn issue_comments(answer: &[u8]) -> Result<Vec<Comment>, DeliveryError> {
    let listed: Vec<IssueComment> = decode_json(answer)?;
    Ok(listed
        .into_iter()
        .map(|c| Comment {
            id: c.id,
            author: c.user.unwrap_or_default().login,
            body: c.body,
        })
        .collect())
}

impl CommentForge for GitHubPullRequestComment {
    const PREFIX: &'static str = "flux-pr-comment-key";
    const LIST_FAILED: &'static str = "failed to list pull request comments";
    const UPDATE_FAILED: &'static str = "failed to update pull request comment";
    const CREATE_FAILED: &'static str = "failed to create pull request comment";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        Ok(GitHubPullRequestComment {
            api: Api::from_config(setup, true)?,
        })
    }

    async fn identity(&self, client: &HttpClient) -> Result<String, DeliveryError> {
        self.api.identity(client).await
    }

    fn list(&self, number: i64) -> Request {
        self.api.get(&format!(
            "issues/{number}/comments?direction=asc&per_page={PAGE}&sort=created"
        ))
    }

    fn comments(&self, answer: &[u8]) -> Result<Vec<Comment>, DeliveryError> {
        issue_comments(answer)
    }

    fn edit(&self, _number: i64, id: u64, body: Vec<u8>) -> Request {
        self.api
            .json(Method::PATCH, &format!("issues/comments/{id}"), body)
    }

    fn create(&self, number: i64, body: Vec<u8>) -> Request {
        self.api
            .post_json(&format!("issues/{number}/comments"), body)
    }

    async fn send(&self, client: &HttpClient, request: Request) -> Result<Response, DeliveryError> {
        self.api.send(client, request).await
    }

    fn previewed(&self, request: Request) -> Request {
        self.api.previewed(request)
    }
}
