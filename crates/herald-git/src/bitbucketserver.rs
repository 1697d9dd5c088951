//! `bitbucketserver`: build statuses on Bitbucket Server / Data Center's REST API
//! (<https://developer.atlassian.com/server/bitbucket/rest/v906/api-group-builds-and-deployments/>).

use herald_core::{BuildError, DeliveryError, Event, ProviderConfig, text};
use herald_http::{HeaderName, HeaderValue, HttpClient, Method};
use serde::{Deserialize, Serialize};

use crate::bitbucket::key;
use crate::common::{self, Outcome, StatusInput};

/// A `bitbucketserver` notifier.
#[derive(Debug)]
pub(crate) struct BitbucketServer {
    /// `<scheme>://<host>[:port]<context>/rest/api/latest/projects/<P>/repos/<r>/commits`.
    commits_url: String,
    /// The clone URL (without credentials): the status's `url`.
    clone_url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    namespace: String,
    name: String,
}

/// The body of `POST …/commits/{commitId}/builds` (alphabetical, as Flux's struct).
#[derive(Serialize)]
struct BuildStatus<'a> {
    description: &'a str,
    key: &'a str,
    name: &'a str,
    state: &'a str,
    url: &'a str,
}

/// The answer of `GET …/commits/{commitId}/builds?key=…`.
#[derive(Deserialize)]
struct ExistingStatus {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// A status to post.
#[derive(Debug)]
pub(crate) struct Plan {
    input: StatusInput,
    key: String,
    name: String,
    state: &'static str,
    pub(crate) body: Vec<u8>,
}

/// The parts of an HTTP(S) clone URL `…[/context]/scm/<PROJECT>/<repo>.git`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CloneUrl {
    /// `<scheme>://<host>[:port]<context>`.
    pub(crate) base: String,
    pub(crate) project: String,
    pub(crate) repo: String,
    /// The clone URL without user info.
    pub(crate) url: String,
}

/// Parses a clone URL. Errors follow Flux's wording and never quote the address.
pub(crate) fn parse_clone_url(address: &str) -> Result<CloneUrl, String> {
    const PREFIX: &str = "could not parse git address";
    let a = address.trim();
    let Some((scheme, rest)) = a.split_once("://") else {
        return Err(format!(
            "{PREFIX}: supplied provider address is not http(s) git clone url"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "{PREFIX}: unsupported scheme type in address: {scheme}. Must be http or https"
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
    {
        return Err(format!("{PREFIX}: the address has no valid host"));
    }
    let path = rest[end..].split(['?', '#']).next().unwrap_or_default();
    let Some(at) = path.rfind("/scm/") else {
        return Err(format!(
            "{PREFIX}: supplied provider address is not http(s) git clone url"
        ));
    };
    let context = &path[..at];
    let id = path[at + "/scm/".len()..].trim_end_matches('/');
    let id = id.strip_suffix(".git").unwrap_or(id);
    let (project, repo) = match id.split('/').collect::<Vec<_>>().as_slice() {
        [p, r] if !p.is_empty() && !r.is_empty() => ((*p).to_owned(), (*r).to_owned()),
        _ => return Err(format!("{PREFIX}: invalid repository id {id:?}")),
    };
    Ok(CloneUrl {
        base: format!("{scheme}://{host}{context}"),
        project,
        repo,
        url: format!("{scheme}://{host}{path}"),
    })
}

impl BitbucketServer {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        let clone = parse_clone_url(config.address.expose())
            .map_err(|e| BuildError::invalid(common::address_field(config), e))?;
        let field = "secret key \"token\"";
        let token = config
            .token
            .as_ref()
            .map(|t| t.expose())
            .filter(|t| !t.is_empty());
        let password = config
            .password
            .as_ref()
            .map(|t| t.expose())
            .filter(|t| !t.is_empty());
        let auth = match (token, password) {
            (Some(token), _) => common::secret_header(&format!("Bearer {token}"), field)?,
            (None, Some(password)) if !config.username.is_empty() => {
                common::basic_auth(&config.username, password, "secret key \"password\"")?
            }
            _ => {
                return Err(BuildError::invalid(
                    field,
                    "invalid credentials, expected to be one of username/password or API Token \
                     (set the Secret's `token`, or `password` with `spec.username` or the \
                     Secret's `username`)",
                ));
            }
        };
        Ok(BitbucketServer {
            commits_url: format!(
                "{}/rest/api/latest/projects/{}/repos/{}/commits",
                clone.base, clone.project, clone.repo
            ),
            clone_url: clone.url,
            headers: vec![
                (HeaderName::from_static("authorization"), auth),
                (
                    HeaderName::from_static("x-atlassian-token"),
                    HeaderValue::from_static("no-check"),
                ),
                (
                    HeaderName::from_static("x-requested-with"),
                    HeaderValue::from_static("XMLHttpRequest"),
                ),
            ],
            namespace: config.namespace.clone(),
            name: config.name.clone(),
        })
    }

    pub(crate) fn plan(&self, event: &Event) -> Result<Option<Plan>, DeliveryError> {
        let Some(input) = common::status_input(
            event,
            &self.namespace,
            &self.name,
            "bitbucket server",
            false,
        )?
        else {
            return Ok(None);
        };
        let state = match input.outcome {
            Outcome::Success => "SUCCESSFUL",
            Outcome::Failure => "FAILED",
            Outcome::Pending => "INPROGRESS",
        };
        let key = key(&input.id);
        let name = format!("{} [{}]", text::name_lc(event), input.description);
        let body = common::to_json(&BuildStatus {
            description: &input.description,
            key: &key,
            name: &name,
            state,
            url: &self.clone_url,
        })?;
        Ok(Some(Plan {
            input,
            key,
            name,
            state,
            body,
        }))
    }

    pub(crate) async fn deliver(
        &self,
        client: &HttpClient,
        plan: Plan,
    ) -> Result<(), DeliveryError> {
        let endpoint = format!("{}/{}/builds", self.commits_url, plan.input.sha);
        let get = common::request(
            Method::GET,
            format!("{endpoint}?key={}", plan.key),
            &self.headers,
        );
        match client.send(get).await {
            Ok(found) => {
                let existing: ExistingStatus =
                    common::decode(&found.body, "could not get existing commit status")?;
                if existing.key.as_deref() == Some(plan.key.as_str())
                    && existing.state.as_deref() == Some(plan.state)
                    && existing.description.as_deref() == Some(plan.input.description.as_str())
                    && existing.name.as_deref() == Some(plan.name.as_str())
                {
                    return Ok(());
                }
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.context("could not get existing commit status")),
        }
        let post = common::post_json(endpoint, plan.body, &self.headers);
        client
            .send(post)
            .await
            .map_err(|e| e.context("could not post build status"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SHA: &str = "69b59063470310ebbd88a9156325322a124e55a3";

    #[test]
    fn clone_urls_like_flux() {
        // flux-compat.md section 8.3.
        let c = parse_clone_url(
            "https://example.com:7990/context1/context2/context3/scm/projectfoo/repobar.git",
        )
        .unwrap();
        assert_eq!(
            format!(
                "{}/rest/api/latest/projects/{}/repos/{}/commits/{SHA}/builds",
                c.base, c.project, c.repo
            ),
            format!(
                "https://example.com:7990/context1/context2/context3/rest/api/latest/projects/projectfoo/repos/repobar/commits/{SHA}/builds"
            )
        );
        let c = parse_clone_url("https://example.com:7990/scm/scm/projectfoo/repobar.git").unwrap();
        assert_eq!(c.base, "https://example.com:7990/scm");
        let c = parse_clone_url("http://user:pw@127.0.0.1:1/scm/P/r.git").unwrap();
        assert_eq!(
            (c.base.as_str(), c.url.as_str()),
            ("http://127.0.0.1:1", "http://127.0.0.1:1/scm/P/r.git")
        );
        assert_eq!(
            parse_clone_url("ssh://git@example.com:7999/projectfoo/repobar.git").unwrap_err(),
            "could not parse git address: unsupported scheme type in address: ssh. Must be http or https"
        );
        assert_eq!(
            parse_clone_url("https://example.com/projectfoo/repobar.git").unwrap_err(),
            "could not parse git address: supplied provider address is not http(s) git clone url"
        );
        assert_eq!(
            parse_clone_url("https://example.com/scm/projectfoo/sub/repobar.git").unwrap_err(),
            "could not parse git address: invalid repository id \"projectfoo/sub/repobar\""
        );
        assert!(parse_clone_url("git@example.com:p/r.git").is_err());
    }
}
