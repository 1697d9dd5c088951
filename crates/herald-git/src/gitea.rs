//! `gitea`: commit statuses on Gitea's (and Forgejo's) REST API v1
//! (<https://gitea.com/api/swagger#/repository/repoCreateStatus>).

use herald_core::{BuildError, DeliveryError};
use herald_http::provider::{Setup, TOKEN_FIELD, decode_json};
use herald_http::{HeaderName, HeaderValue, Method, Request};
use serde::{Deserialize, Serialize};

use crate::common;
use crate::status::{Status, StatusForge, to_json};

/// A validated `gitea` Provider.
#[derive(Debug)]
pub(crate) struct Gitea {
    /// `<scheme>://<host>`.
    pub(crate) base: String,
    /// `<scheme>://<host>/api/v1/repos/<owner>/<repo>`.
    pub(crate) repo_url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Gitea {
    /// A request to `url` with the API's headers.
    pub(crate) fn request(&self, method: Method, url: &str) -> Request {
        Request::new(method, url).headers(&self.headers)
    }

    /// A JSON request of `body` to `url` with the API's headers.
    pub(crate) fn json(&self, method: Method, url: &str, body: Vec<u8>) -> Request {
        let mut request = Request::post_json(url, body).headers(&self.headers);
        request.method = method;
        request
    }
}

/// The body of `POST /repos/{owner}/{repo}/statuses/{sha}` (the SDK's `CreateStatusOption`).
#[derive(Serialize)]
struct CreateStatus<'a> {
    state: &'a str,
    target_url: &'a str,
    description: &'a str,
    context: &'a str,
}

/// One status of `GET /repos/{owner}/{repo}/commits/{ref}/statuses`. Gitea names the state
/// `status` in answers (and `state` in requests); both are read.
#[derive(Deserialize)]
struct ExistingStatus {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    context: Option<String>,
}

impl ExistingStatus {
    fn state(&self) -> Option<&str> {
        self.status.as_deref().or(self.state.as_deref())
    }
}

impl StatusForge for Gitea {
    const NAME: &'static str = "gitea";
    const LOOKUP_FAILED: &'static str = "could not list commit statuses";
    const POST_FAILED: &'static str = "could not create commit status";
    const PENDING_ON_PROGRESSING: bool = true;

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let (address, owner, repo) = common::owner_repo(setup.config())?;
        let token = setup.require_token_or_password(
            "gitea token cannot be empty (set the Secret's `token`, or `password`)",
        )?;
        let auth = setup.header(&format!("token {}", token.expose()), TOKEN_FIELD)?;
        Ok(Gitea {
            base: address.base(),
            repo_url: format!(
                "{}/api/v1/repos/{}/{}",
                address.base(),
                common::escape(&owner),
                common::escape(&repo)
            ),
            headers: vec![
                (
                    HeaderName::from_static("accept"),
                    HeaderValue::from_static("application/json"),
                ),
                (herald_http::provider::AUTHORIZATION, auth),
            ],
        })
    }

    fn render(&self, status: &Status<'_>) -> Result<Vec<u8>, DeliveryError> {
        to_json(&CreateStatus {
            state: status.state,
            target_url: "",
            description: &status.description,
            context: &status.id,
        })
    }

    fn lookup(&self, status: &Status<'_>) -> Request {
        let url = format!(
            "{}/commits/{}/statuses?page=1&limit=50",
            self.repo_url, status.sha
        );
        Request::new(Method::GET, url).headers(&self.headers)
    }

    fn shows(&self, status: &Status<'_>, answer: &[u8]) -> Result<bool, DeliveryError> {
        let existing: Vec<ExistingStatus> = decode_json(answer)?;
        let current = existing.iter().find(|s| {
            s.context.as_deref() == Some(status.id.as_str())
                && s.state().is_some_and(|v| !v.is_empty())
                && s.description.as_deref().is_some_and(|v| !v.is_empty())
        });
        Ok(current.is_some_and(|s| {
            s.state() == Some(status.state)
                && s.description.as_deref() == Some(status.description.as_str())
        }))
    }

    fn post(&self, status: &Status<'_>, body: Vec<u8>) -> Request {
        let url = format!("{}/statuses/{}", self.repo_url, status.sha);
        Request::post_json(url, body).headers(&self.headers)
    }
}
