//! `azuredevops`: commit statuses on the Azure DevOps Services / Server REST API
//! (<https://learn.microsoft.com/en-us/rest/api/azure/devops/git/statuses/create?view=azure-devops-rest-6.0>).

use herald_core::{BuildError, DeliveryError, Event};
use herald_http::provider::{Setup, TOKEN_FIELD, decode_json};
use herald_http::{HeaderName, HeaderValue, Method, Request};
use serde::{Deserialize, Serialize};

use crate::common::{self, GitAddress};
use crate::status::{Outcome, Status, StatusForge, to_json};

/// The API version herald speaks (Flux's SDK, azure-devops-go-api v6, uses 6.0).
const ACCEPT: &str = "application/json;api-version=6.0";

/// A validated `azuredevops` Provider.
#[derive(Debug)]
pub(crate) struct AzureDevOps {
    /// `<org URL>/<project>/_apis/git/repositories/<repo>/commits`.
    commits_url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize, Deserialize)]
struct Context {
    #[serde(default)]
    genre: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The body of `POST …/commits/{commitId}/statuses` (the SDK's `GitStatus` order).
#[derive(Serialize)]
struct CreateStatus<'a> {
    context: CreateContext<'a>,
    description: &'a str,
    state: &'a str,
}

#[derive(Serialize)]
struct CreateContext<'a> {
    genre: &'a str,
    name: &'a str,
}

/// The answer of `GET …/commits/{commitId}/statuses`.
#[derive(Deserialize)]
struct StatusList {
    #[serde(default)]
    value: Vec<ExistingStatus>,
}

#[derive(Deserialize)]
struct ExistingStatus {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    context: Option<Context>,
}

/// Where a repository lives: the organization (or collection) URL, the project, the repo.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Repository {
    pub(crate) org_url: String,
    pub(crate) project: String,
    pub(crate) repo: String,
}

/// Accepts `https://dev.azure.com/<org>/<project>/_git/<repo>`, the legacy
/// `https://<org>.visualstudio.com/<project>/_git/<repo>`, Azure DevOps Server's
/// `https://<host>[/<prefix>…]/<collection>/<project>/_git/<repo>`, and the ssh forms
/// `git@ssh.dev.azure.com:v3/<org>/<project>/<repo>`.
pub(crate) fn repository(address: &GitAddress) -> Result<Repository, String> {
    let segs = &address.segments;
    let host = address.hostname();
    if (host == "ssh.dev.azure.com" || host == "vs-ssh.visualstudio.com")
        && let [v3, org, project, repo] = segs.as_slice()
        && v3 == "v3"
    {
        return Ok(Repository {
            org_url: format!("https://dev.azure.com/{}", common::escape(org)),
            project: project.clone(),
            repo: repo.clone(),
        });
    }
    let invalid = || {
        format!(
            "invalid repository id {:?}: expected <organization>/<project>/_git/<repository>",
            address.repo_id()
        )
    };
    let git = segs.iter().rposition(|s| s == "_git").ok_or_else(invalid)?;
    if git == 0 || git + 2 != segs.len() {
        return Err(invalid());
    }
    let org_path: String = segs[..git - 1]
        .iter()
        .map(|s| format!("/{}", common::escape(s)))
        .collect();
    Ok(Repository {
        org_url: format!("{}{org_path}", address.base()),
        project: segs[git - 1].clone(),
        repo: segs[git + 1].clone(),
    })
}

/// The status context's genre: `fluxcd`, with the event's `summary` metadata if it has one.
fn genre(event: &Event) -> String {
    match event.metadata.get("summary") {
        Some(summary) => format!("fluxcd:{summary}"),
        None => "fluxcd".to_owned(),
    }
}

impl StatusForge for AzureDevOps {
    const NAME: &'static str = "azure devops";
    const LOOKUP_FAILED: &'static str = "could not list commit statuses";
    const POST_FAILED: &'static str = "could not create commit status";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let address = common::git_address(setup.config())?;
        let repo =
            repository(&address).map_err(|e| BuildError::invalid(setup.address_field(), e))?;
        let pat = setup.require_token(
            "an Azure DevOps personal access token is required (workload identity is not \
             supported by herald)",
        )?;
        Ok(AzureDevOps {
            commits_url: format!(
                "{}/{}/_apis/git/repositories/{}/commits",
                repo.org_url,
                common::escape(&repo.project),
                common::escape(&repo.repo)
            ),
            headers: vec![
                (
                    HeaderName::from_static("accept"),
                    HeaderValue::from_static(ACCEPT),
                ),
                (
                    herald_http::provider::AUTHORIZATION,
                    setup.basic("", pat.expose(), TOKEN_FIELD)?,
                ),
            ],
        })
    }

    fn state(outcome: Outcome) -> &'static str {
        match outcome {
            Outcome::Success => "succeeded",
            Outcome::Failure => "error",
            Outcome::Pending => "pending",
        }
    }

    fn render(&self, status: &Status<'_>) -> Result<Vec<u8>, DeliveryError> {
        to_json(&CreateStatus {
            context: CreateContext {
                genre: &genre(status.event),
                name: &status.id,
            },
            description: &status.description,
            state: status.state,
        })
    }

    fn lookup(&self, status: &Status<'_>) -> Request {
        Request::new(Method::GET, self.statuses_url(status)).headers(&self.headers)
    }

    fn shows(&self, status: &Status<'_>, answer: &[u8]) -> Result<bool, DeliveryError> {
        let existing: StatusList = decode_json(answer)?;
        let genre = genre(status.event);
        let current = existing.value.iter().find(|s| {
            s.state.is_some()
                && s.description.is_some()
                && s.context.as_ref().is_some_and(|c| {
                    c.name.as_deref() == Some(status.id.as_str())
                        && c.genre.as_deref() == Some(genre.as_str())
                })
        });
        Ok(current.is_some_and(|s| {
            s.state.as_deref() == Some(status.state)
                && s.description.as_deref() == Some(status.description.as_str())
        }))
    }

    fn post(&self, status: &Status<'_>, body: Vec<u8>) -> Request {
        Request::post_json(self.statuses_url(status), body).headers(&self.headers)
    }
}

impl AzureDevOps {
    /// `…/commits/{commitId}/statuses`: read and posted alike.
    fn statuses_url(&self, status: &Status<'_>) -> String {
        format!("{}/{}/statuses", self.commits_url, status.sha)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn repo(a: &str) -> Result<Repository, String> {
        repository(&common::parse_git_address(a).unwrap())
    }

    #[test]
    fn addresses_in_every_form() {
        let want = |org_url: &str, project: &str, repo: &str| Repository {
            org_url: org_url.into(),
            project: project.into(),
            repo: repo.into(),
        };
        assert_eq!(
            repo("https://dev.azure.com/org/proj/_git/repo").unwrap(),
            want("https://dev.azure.com/org", "proj", "repo")
        );
        assert_eq!(
            repo("https://org@dev.azure.com/org/My%20Project/_git/repo").unwrap(),
            want("https://dev.azure.com/org", "My Project", "repo")
        );
        assert_eq!(
            repo("git@ssh.dev.azure.com:v3/org/proj/repo").unwrap(),
            want("https://dev.azure.com/org", "proj", "repo")
        );
        assert_eq!(
            repo("https://org.visualstudio.com/proj/_git/repo").unwrap(),
            want("https://org.visualstudio.com", "proj", "repo")
        );
        assert_eq!(
            repo("https://ado.example.com/tfs/DefaultCollection/proj/_git/repo").unwrap(),
            want(
                "https://ado.example.com/tfs/DefaultCollection",
                "proj",
                "repo"
            )
        );
        for bad in [
            "https://dev.azure.com/org/proj/repo",
            "https://dev.azure.com/_git/repo",
            "https://dev.azure.com/org/proj/_git/repo/extra",
            "https://dev.azure.com/org/proj/_git",
        ] {
            assert!(repo(bad).is_err(), "{bad}");
        }
    }
}
