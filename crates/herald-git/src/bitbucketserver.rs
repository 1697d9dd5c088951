//! `bitbucketserver`: build statuses on Bitbucket Server / Data Center's REST API
//! (<https://developer.atlassian.com/server/bitbucket/rest/v906/api-group-builds-and-deployments/>).

use herald_core::{BuildError, DeliveryError, text};
use herald_http::provider::{Setup, TOKEN_FIELD, decode_json};
use herald_http::{HeaderName, HeaderValue, Method, Request};
use serde::Serialize;

use crate::bitbucket::{ExistingStatus, build_state, key};
use crate::status::{Outcome, Status, StatusForge, to_json};

/// A validated `bitbucketserver` Provider.
#[derive(Debug)]
pub(crate) struct BitbucketServer {
    /// `<scheme>://<host>[:port]<context>/rest/api/latest/projects/<P>/repos/<r>/commits`.
    commits_url: String,
    /// The clone URL (without credentials): the status's `url`.
    clone_url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
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

/// The status's `name`: `<kind>/<name> [<description>]`, lower-case object.
fn name(status: &Status<'_>) -> String {
    format!("{} [{}]", text::name_lc(status.event), status.description)
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

impl StatusForge for BitbucketServer {
    const NAME: &'static str = "bitbucket server";
    const LOOKUP_FAILED: &'static str = "could not get existing commit status";
    const POST_FAILED: &'static str = "could not post build status";
    const NOT_FOUND_IS_NONE: bool = true;

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let config = setup.config();
        let clone = parse_clone_url(config.address.expose())
            .map_err(|e| BuildError::invalid(setup.address_field(), e))?;
        let auth = match (setup.token(), setup.user_password()) {
            (Some(token), _) => setup.bearer(Some(&token))?,
            (None, Some((user, password))) => {
                setup.basic(user, password.expose(), "secret key \"password\"")?
            }
            (None, None) => {
                return Err(BuildError::invalid(
                    TOKEN_FIELD,
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
                (herald_http::provider::AUTHORIZATION, auth),
                (
                    HeaderName::from_static("x-atlassian-token"),
                    HeaderValue::from_static("no-check"),
                ),
                (
                    HeaderName::from_static("x-requested-with"),
                    HeaderValue::from_static("XMLHttpRequest"),
                ),
            ],
        })
    }

    fn state(outcome: Outcome) -> &'static str {
        build_state(outcome)
    }

    fn render(&self, status: &Status<'_>) -> Result<Vec<u8>, DeliveryError> {
        to_json(&BuildStatus {
            description: &status.description,
            key: &key(&status.id),
            name: &name(status),
            state: status.state,
            url: &self.clone_url,
        })
    }

    fn lookup(&self, status: &Status<'_>) -> Request {
        let url = format!(
            "{}/{}/builds?key={}",
            self.commits_url,
            status.sha,
            key(&status.id)
        );
        Request::new(Method::GET, url).headers(&self.headers)
    }

    fn shows(&self, status: &Status<'_>, answer: &[u8]) -> Result<bool, DeliveryError> {
        let existing: ExistingStatus = decode_json(answer)?;
        Ok(existing.key.as_deref() == Some(key(&status.id).as_str())
            && existing.state.as_deref() == Some(status.state)
            && existing.description.as_deref() == Some(status.description.as_str())
            && existing.name.as_deref() == Some(name(status).as_str()))
    }

    fn post(&self, status: &Status<'_>, body: Vec<u8>) -> Request {
        let url = format!("{}/{}/builds", self.commits_url, status.sha);
        Request::post_json(url, body).headers(&self.headers)
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
