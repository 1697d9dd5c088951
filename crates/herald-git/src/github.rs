//! `github` (commit status) and `githubdispatch` (`repository_dispatch`), on GitHub's REST API
//! (<https://docs.github.com/en/rest/commits/statuses>,
//! <https://docs.github.com/en/rest/repos/repos#create-a-repository-dispatch-event>).

use herald_core::{BuildError, DeliveryError, Event, ProviderConfig, text};
use herald_http::{HeaderName, HeaderValue, HttpClient, Method};
use serde::{Deserialize, Serialize};

use crate::common::{self, GitAddress, Outcome, StatusInput};

/// The API endpoint and credentials shared by both types.
#[derive(Debug)]
pub(crate) struct Api {
    /// `https://api.github.com`, `https://<host>/api/v3`, or an `http://` host as given.
    base: String,
    owner: String,
    repo: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The REST API base of a repository address: `https://api.github.com` for github.com,
/// otherwise GitHub Enterprise Server at `<scheme>://<host>/api/v3` (go-github's rule: a host
/// that starts with `api.` or contains `.api.` is used as the base itself).
pub(crate) fn api_base(address: &GitAddress) -> String {
    let host = address.hostname();
    if host == "github.com" || host == "www.github.com" {
        "https://api.github.com".to_owned()
    } else if host.starts_with("api.") || host.contains(".api.") {
        address.base()
    } else {
        format!("{}/api/v3", address.base())
    }
}

/// Whether the address is github.com itself (where Flux ignores custom TLS material).
pub(crate) fn is_github_com(config: &ProviderConfig) -> bool {
    common::parse_git_address(config.address.expose())
        .is_ok_and(|a| matches!(a.hostname().as_str(), "github.com" | "www.github.com"))
}

impl Api {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        let address = common::git_address(config)?;
        let (owner, repo) = address
            .owner_repo()
            .map_err(|e| BuildError::invalid(common::address_field(config), e))?;
        let token = match common::token_or_password(config) {
            Some(t) => t,
            None if config.secret_data.contains_key("githubAppID") => {
                return Err(BuildError::invalid(
                    "spec.secretRef",
                    "GitHub App authentication (githubAppID, githubAppPrivateKey) is not \
                     supported by herald; put a token in the Secret's `token` key",
                ));
            }
            None => {
                return Err(BuildError::invalid(
                    "secret key \"token\"",
                    "github token or github app details must be specified (herald supports \
                     tokens: set the Secret's `token`, or `password`)",
                ));
            }
        };
        let auth = common::secret_header(&format!("Bearer {token}"), "secret key \"token\"")?;
        Ok(Api {
            base: api_base(&address),
            owner,
            repo,
            headers: vec![
                (
                    herald_http::HeaderName::from_static("accept"),
                    HeaderValue::from_static("application/vnd.github+json"),
                ),
                (
                    HeaderName::from_static("x-github-api-version"),
                    HeaderValue::from_static("2022-11-28"),
                ),
                (HeaderName::from_static("authorization"), auth),
            ],
        })
    }

    fn repo_url(&self, tail: &str) -> String {
        format!(
            "{}/repos/{}/{}/{tail}",
            self.base,
            common::escape(&self.owner),
            common::escape(&self.repo)
        )
    }
}

/// A `github` commit-status notifier.
#[derive(Debug)]
pub(crate) struct Status {
    api: Api,
    namespace: String,
    name: String,
}

/// The body of `POST /repos/{owner}/{repo}/statuses/{sha}` (go-github's `RepoStatus` order).
#[derive(Serialize)]
struct CreateStatus<'a> {
    state: &'a str,
    description: &'a str,
    context: &'a str,
}

/// One status of `GET /repos/{owner}/{repo}/commits/{ref}/statuses`.
#[derive(Deserialize)]
struct ExistingStatus {
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

impl Status {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        Ok(Status {
            api: Api::from_config(config)?,
            namespace: config.namespace.clone(),
            name: config.name.clone(),
        })
    }

    pub(crate) fn plan(&self, event: &Event) -> Result<Option<Plan>, DeliveryError> {
        let Some(input) =
            common::status_input(event, &self.namespace, &self.name, "github", false)?
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
            self.api
                .repo_url(&format!("commits/{sha}/statuses?per_page=50")),
            &self.api.headers,
        );
        let found = client
            .send(list)
            .await
            .map_err(|e| e.context("could not list commit statuses"))?;
        let existing: Vec<ExistingStatus> =
            common::decode(&found.body, "could not list commit statuses")?;
        // Newest first: the first status of our context is the current one.
        let current = existing
            .iter()
            .find(|s| s.context.as_deref() == Some(plan.input.id.as_str()));
        if current.is_some_and(|s| {
            s.state.as_deref() == Some(plan.state)
                && s.description.as_deref() == Some(plan.input.description.as_str())
        }) {
            return Ok(());
        }
        let post = common::post_json(
            self.api.repo_url(&format!("statuses/{sha}")),
            plan.body,
            &self.api.headers,
        );
        client
            .send(post)
            .await
            .map_err(|e| e.context("could not create commit status"))?;
        Ok(())
    }
}

/// A `githubdispatch` notifier.
#[derive(Debug)]
pub(crate) struct Dispatch {
    api: Api,
}

impl Dispatch {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        Ok(Dispatch {
            api: Api::from_config(config)?,
        })
    }

    /// `{"event_type":"<Kind>/<name>.<namespace>","client_payload":<the event>}`, every
    /// severity and reason.
    pub(crate) fn render(event: &Event) -> Result<Vec<u8>, DeliveryError> {
        let event_type = common::to_json(&text::kind_name_dot_namespace(event))?;
        let payload = common::to_json(event)?;
        let mut body = Vec::with_capacity(event_type.len() + payload.len() + 36);
        body.extend_from_slice(b"{\"event_type\":");
        body.extend_from_slice(&event_type);
        body.extend_from_slice(b",\"client_payload\":");
        body.extend_from_slice(&payload);
        body.push(b'}');
        Ok(body)
    }

    pub(crate) async fn deliver(
        &self,
        client: &HttpClient,
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let post = common::post_json(self.api.repo_url("dispatches"), body, &self.api.headers);
        client
            .send(post)
            .await
            .map_err(|e| e.context("could not send github repository dispatch webhook"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn api_bases_follow_go_github() {
        let base = |a: &str| api_base(&common::parse_git_address(a).unwrap());
        assert_eq!(base("https://github.com/o/r"), "https://api.github.com");
        assert_eq!(base("git@github.com:o/r.git"), "https://api.github.com");
        assert_eq!(base("ssh://git@GitHub.com/o/r"), "https://api.github.com");
        assert_eq!(
            base("https://ghe.example.com/o/r"),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            base("git@ghe.example.com:o/r.git"),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            base("https://ghe.example.com:8443/o/r"),
            "https://ghe.example.com:8443/api/v3"
        );
        assert_eq!(
            base("http://127.0.0.1:9999/o/r"),
            "http://127.0.0.1:9999/api/v3"
        );
        assert_eq!(
            base("https://api.ghe.example.com/o/r"),
            "https://api.ghe.example.com"
        );
    }
}
