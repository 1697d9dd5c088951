//! `gitlab`: commit statuses on GitLab's REST API v4
//! (<https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit>).

use herald_core::{BuildError, DeliveryError, Event, ProviderConfig};
use herald_http::{HeaderName, HeaderValue, HttpClient, Method};
use serde::{Deserialize, Serialize};

use crate::common::{self, Outcome, StatusInput};

/// A `gitlab` notifier.
#[derive(Debug)]
pub(crate) struct GitLab {
    /// `<scheme>://<host>/api/v4`.
    base: String,
    /// The project: its full path, URL-escaped (`group%2Fsub%2Fproj`), or its numeric id.
    project: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    namespace: String,
    name: String,
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

/// A status to post.
#[derive(Debug)]
pub(crate) struct Plan {
    input: StatusInput,
    state: &'static str,
    pub(crate) body: Vec<u8>,
}

impl GitLab {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        let address = common::git_address(config)?;
        let id = address.repo_id();
        let project = match address.segments.as_slice() {
            [one] if one.bytes().all(|b| b.is_ascii_digit()) => one.clone(),
            [_] => {
                return Err(BuildError::invalid(
                    common::address_field(config),
                    format!(
                        "invalid project id {id:?}: expected <group>[/<subgroup>...]/<project> \
                         or a numeric project id"
                    ),
                ));
            }
            _ => common::escape(&id),
        };
        let token = common::token_or_password(config).ok_or_else(|| {
            BuildError::invalid(
                "secret key \"token\"",
                "gitlab token cannot be empty (set the Secret's `token`, or `password`)",
            )
        })?;
        let token = common::secret_header(token, "secret key \"token\"")?;
        Ok(GitLab {
            base: format!("{}/api/v4", address.base()),
            project,
            headers: vec![(HeaderName::from_static("private-token"), token)],
            namespace: config.namespace.clone(),
            name: config.name.clone(),
        })
    }

    pub(crate) fn plan(&self, event: &Event) -> Result<Option<Plan>, DeliveryError> {
        let Some(input) =
            common::status_input(event, &self.namespace, &self.name, "gitlab", false)?
        else {
            return Ok(None);
        };
        let state = match input.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failed",
            Outcome::Pending => "pending",
        };
        let body = common::to_json(&SetStatus {
            state,
            name: &input.id,
            description: &input.description,
        })?;
        Ok(Some(Plan { input, state, body }))
    }

    pub(crate) async fn deliver(
        &self,
        client: &HttpClient,
        plan: Plan,
    ) -> Result<(), DeliveryError> {
        let sha = &plan.input.sha;
        let list = common::request(
            Method::GET,
            format!(
                "{}/projects/{}/repository/commits/{sha}/statuses?name={}",
                self.base,
                self.project,
                common::escape(&plan.input.id)
            ),
            &self.headers,
        );
        let found = client
            .send(list)
            .await
            .map_err(|e| e.context("could not list commit statuses"))?;
        let existing: Vec<ExistingStatus> =
            common::decode(&found.body, "could not list commit statuses")?;
        let duplicate = existing.iter().any(|s| {
            s.sha.as_deref() == Some(sha.as_str())
                && s.status.as_deref() == Some(plan.state)
                && s.description.as_deref() == Some(plan.input.description.as_str())
                && s.name.as_deref() == Some(plan.input.id.as_str())
        });
        if duplicate {
            return Ok(());
        }
        let post = common::post_json(
            format!("{}/projects/{}/statuses/{sha}", self.base, self.project),
            plan.body,
            &self.headers,
        );
        client
            .send(post)
            .await
            .map_err(|e| e.context("could not set commit status"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use herald_core::ProviderType;

    fn project(address: &str) -> Result<(String, String), String> {
        let mut cfg = ProviderConfig::new(ProviderType::GitLab, "ns", "gl", address);
        cfg.token = Some("t0ken".into());
        GitLab::from_config(&cfg)
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
