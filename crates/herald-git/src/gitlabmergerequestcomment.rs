//! `gitlabmergerequestcomment`: one upserted note per object on a GitLab merge request
//! (<https://docs.gitlab.com/api/notes/#merge-requests>).

use herald_core::{BuildError, DeliveryError};
use herald_http::provider::{Setup, decode_json};
use herald_http::{HttpClient, Method, Request};
use serde::Deserialize;

use crate::comment::{Comment, CommentForge, PAGE};
use crate::gitlab::GitLab;
use crate::status::StatusForge as _;

/// A validated `gitlabmergerequestcomment` Provider: the `gitlab` API and credentials.
#[derive(Debug)]
pub(crate) struct GitLabMergeRequestComment {
    api: GitLab,
}

/// A user as GitLab shows it.
#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    username: String,
}

/// One note of `GET /projects/:id/merge_requests/:iid/notes`.
#[derive(Deserialize)]
struct Note {
    id: u64,
    #[serde(default)]
    body: String,
    #[serde(default)]
    author: Option<User>,
}

impl GitLabMergeRequestComment {
    fn notes_url(&self, number: i64) -> String {
        format!(
            "{}/projects/{}/merge_requests/{number}/notes",
            self.api.base, self.api.project
        )
    }
}

impl CommentForge for GitLabMergeRequestComment {
    const PREFIX: &'static str = "flux-mr-comment-key";
    const LIST_FAILED: &'static str = "failed to list merge request notes";
    const UPDATE_FAILED: &'static str = "failed to update merge request note";
    const CREATE_FAILED: &'static str = "failed to create merge request note";
    const PARSER: &'static str = "strconv.ParseInt";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        Ok(GitLabMergeRequestComment {
            api: GitLab::from_config(setup)?,
        })
    }

    async fn identity(&self, client: &HttpClient) -> Result<String, DeliveryError> {
        let url = format!("{}/user", self.api.base);
        let answer = client.send(self.api.request(Method::GET, &url)).await?;
        let user: User = decode_json(&answer.body)?;
        Ok(user.username)
    }

    fn list(&self, number: i64) -> Request {
        let url = format!(
            "{}?order_by=created_at&per_page={PAGE}&sort=asc",
            self.notes_url(number)
        );
        self.api.request(Method::GET, &url)
    }

    fn comments(&self, answer: &[u8]) -> Result<Vec<Comment>, DeliveryError> {
        let notes: Vec<Note> = decode_json(answer)?;
        Ok(notes
            .into_iter()
            .map(|n| Comment {
                id: n.id,
                author: n.author.unwrap_or_default().username,
                body: n.body,
            })
            .collect())
    }

    fn edit(&self, number: i64, id: u64, body: Vec<u8>) -> Request {
        let url = format!("{}/{id}", self.notes_url(number));
        self.api.json(Method::PUT, &url, body)
    }

    fn create(&self, number: i64, body: Vec<u8>) -> Request {
        self.api.json(Method::POST, &self.notes_url(number), body)
    }
}
