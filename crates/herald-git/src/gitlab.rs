//! `gitlab`: commit statuses on GitLab's REST API v4
//! (<https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit>).

use herald_core::{BuildError, DeliveryError};
use herald_http::provider::{Setup, TOKEN_FIELD, decode_json};
use herald_http::{HeaderName, HeaderValue, Method, Request};
use serde::{Deserialize, Serialize};

use crate::common;
use crate::status::{Outcome, Status, StatusForge, to_json};

/// A validated `gitlab` Provider.
#[derive(Debug)]
pub(crate) struct GitLab {
    /// `<scheme>://<host>/api/v4`.
    pub(crate) base: String,
    /// The project: its full path, URL-escaped (`group%2Fsub%2Fproj`), or its numeric id.
    pub(crate) project: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl GitLab {
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

/// The body of `POST /projects/:id/statuses/:sha` (go-gitlab's `SetCommitStatusOptions` order).
#[derive(Serialize)]
struct SetStatus<'a> {
    state: &'a str,
    name: &'a str,
    description: &'a str,
}

/// One status of `GET /projects/:id/repository/commits/:sha/statuses`.
#[derive(Deserialize)]
struct ExistingStatus {
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

impl StatusForge for GitLab {
    const NAME: &'static str = "gitlab";
    const LOOKUP_FAILED: &'static str = "could not list commit statuses";
    const POST_FAILED: &'static str = "could not set commit status";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let address = common::git_address(setup.config())?;
        let id = address.repo_id();
        let project = match address.segments.as_slice() {
            [one] if one.bytes().all(|b| b.is_ascii_digit()) => one.clone(),
            [_] => {
                return Err(BuildError::invalid(
                    setup.address_field(),
                    format!(
                        "invalid project id {id:?}: expected <group>[/<subgroup>...]/<project> \
                         or a numeric project id"
                    ),
                ));
            }
            _ => common::escape(&id),
        };
        let token = setup.require_token_or_password(
            "gitlab token cannot be empty (set the Secret's `token`, or `password`)",
        )?;
        let token = setup.header(token.expose(), TOKEN_FIELD)?;
        Ok(GitLab {
            base: format!("{}/api/v4", address.base()),
            project,
            headers: vec![(HeaderName::from_static("private-token"), token)],
        })
    }

    fn state(outcome: Outcome) -> &'static str {
        match outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failed",
            Outcome::Pending => "pending",
        }
    }

    fn render(&self, status: &Status<'_>) -> Result<Vec<u8>, DeliveryError> {
        to_json(&SetStatus {
            state: status.state,
            name: &status.id,
            description: &status.description,
        })
    }

    fn lookup(&self, status: &Status<'_>) -> Request {
        let url = format!(
            "{}/projects/{}/repository/commits/{}/statuses?name={}",
            self.base,
            self.project,
            status.sha,
            common::escape(&status.id)
        );
        Request::new(Method::GET, url).headers(&self.headers)
    }

    fn shows(&self, status: &Status<'_>, answer: &[u8]) -> Result<bool, DeliveryError> {
        let existing: Vec<ExistingStatus> = decode_json(answer)?;
        Ok(existing.iter().any(|s| {
            s.sha.as_deref() == Some(status.sha)
                && s.status.as_deref() == Some(status.state)
                && s.description.as_deref() == Some(status.description.as_str())
                && s.name.as_deref() == Some(status.id.as_str())
        }))
    }

    fn post(&self, status: &Status<'_>, body: Vec<u8>) -> Request {
        let url = format!(
            "{}/projects/{}/statuses/{}",
            self.base, self.project, status.sha
        );
        Request::post_json(url, body).headers(&self.headers)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use herald_core::{ProviderConfig, ProviderType};

    fn project(address: &str) -> Result<(String, String), String> {
        let mut cfg = ProviderConfig::new(ProviderType::GitLab, "ns", "gl", address);
        cfg.token = Some("t0ken".into());
        GitLab::from_config(&mut Setup::new(&cfg))
            .map(|g| (g.base, g.project))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn projects_and_hosts() {
        assert_eq!(
            project("https://gitlab.com/group/proj.git").unwrap(),
            ("https://gitlab.com/api/v4".into(), "group%2Fproj".into())
        );
        assert_eq!(
            project("git@gitlab.example.com:group/sub/subsub/proj.git").unwrap(),
            (
                "https://gitlab.example.com/api/v4".into(),
                "group%2Fsub%2Fsubsub%2Fproj".into()
            )
        );
        assert_eq!(
            project("https://gitlab.example.com/4711").unwrap().1,
            "4711"
        );
        let err = project("https://gitlab.example.com/lonely").unwrap_err();
        assert!(err.contains("invalid project id \"lonely\""), "{err}");
    }
}
