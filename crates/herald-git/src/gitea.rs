//! `gitea`: commit statuses on Gitea's (and Forgejo's) REST API v1
//! (<https://gitea.com/api/swagger#/repository/repoCreateStatus>).

use herald_core::{BuildError, DeliveryError, Event, ProviderConfig};
use herald_http::{HeaderName, HeaderValue, HttpClient, Method};
use serde::{Deserialize, Serialize};

use crate::common::{self, Outcome, StatusInput};

/// A `gitea` notifier.
#[derive(Debug)]
pub(crate) struct Gitea {
    /// `<scheme>://<host>/api/v1/repos/<owner>/<repo>`.
    repo_url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    namespace: String,
    name: String,
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

/// A status to post.
#[derive(Debug)]
pub(crate) struct Plan {
    input: StatusInput,
    state: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Gitea {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        let address = common::git_address(config)?;
        let (owner, repo) = address
            .owner_repo()
            .map_err(|e| BuildError::invalid(common::address_field(config), e))?;
        let token = common::token_or_password(config).ok_or_else(|| {
            BuildError::invalid(
                "secret key \"token\"",
                "gitea token cannot be empty (set the Secret's `token`, or `password`)",
            )
        })?;
        let auth = common::secret_header(&format!("token {token}"), "secret key \"token\"")?;
        Ok(Gitea {
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
                (HeaderName::from_static("authorization"), auth),
            ],
            namespace: config.namespace.clone(),
            name: config.name.clone(),
        })
    }

    pub(crate) fn plan(&self, event: &Event) -> Result<Option<Plan>, DeliveryError> {
        let Some(input) = common::status_input(event, &self.namespace, &self.name, "gitea", true)?
        else {
            return Ok(None);
        };
        let state = match input.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Pending => "pending",
        };
        let body = common::to_json(&CreateStatus {
            state,
            target_url: "",
            description: &input.description,
            context: &input.id,
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
            format!("{}/commits/{sha}/statuses?page=1&limit=50", self.repo_url),
            &self.headers,
        );
        let found = client
            .send(list)
            .await
            .map_err(|e| e.context("could not list commit statuses"))?;
        let existing: Vec<ExistingStatus> =
            common::decode(&found.body, "could not list commit statuses")?;
        let current = existing.iter().find(|s| {
            let state = s.status.as_deref().or(s.state.as_deref());
            s.context.as_deref() == Some(plan.input.id.as_str())
                && state.is_some_and(|v| !v.is_empty())
                && s.description.as_deref().is_some_and(|v| !v.is_empty())
        });
        if current.is_some_and(|s| {
            s.status.as_deref().or(s.state.as_deref()) == Some(plan.state)
                && s.description.as_deref() == Some(plan.input.description.as_str())
        }) {
            return Ok(());
        }
        let post = common::post_json(
            format!("{}/statuses/{sha}", self.repo_url),
            plan.body,
            &self.headers,
        );
        client
            .send(post)
            .await
            .map_err(|e| e.context("could not create commit status"))?;
        Ok(())
    }
}
