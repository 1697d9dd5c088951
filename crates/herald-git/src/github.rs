//! `github`: commit statuses on GitHub's REST API
//! (<https://docs.github.com/en/rest/commits/statuses>). [`Api`] is shared with
//! `githubdispatch`.

use herald_core::{BuildError, DeliveryError, Masker, SecretString};
use herald_http::provider::{self, AUTHORIZATION, Setup, TOKEN_FIELD, decode_json};
use herald_http::{HeaderName, HeaderValue, HttpClient, Method, Request, Response};
use serde::{Deserialize, Serialize};

use crate::common::{self, GitAddress};
use crate::githubapp::{self, App};
use crate::status::{Status, StatusForge, to_json};

/// The API endpoint and credentials shared by `github`, `githubdispatch` and
/// `githubpullrequestcomment`: a token from the Secret, or a GitHub App's installation tokens.
#[derive(Debug)]
pub(crate) struct Api {
    /// `https://api.github.com`, `https://<host>/api/v3`, or an `http://` host as given.
    base: String,
    owner: String,
    repo: String,
    /// The API headers, with `Authorization` when the Secret has a token.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The App whose installation tokens authorize each request, when the Secret has no token.
    app: Option<App>,
}

/// The headers of every GitHub API request but `Authorization`.
pub(crate) fn api_headers() -> [(HeaderName, HeaderValue); 2] {
    [
        (
            HeaderName::from_static("accept"),
            HeaderValue::from_static("application/vnd.github+json"),
        ),
        (
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static("2022-11-28"),
        ),
    ]
}

#[derive(Deserialize)]
struct User {
    login: String,
}

/// `err` with the installation tokens masked: they are not in the Provider's configuration, so
/// the Provider's masker does not know them, and a service may echo what it was sent.
fn hide(tokens: &[&SecretString], err: &DeliveryError) -> DeliveryError {
    let mut masker = Masker::new();
    for token in tokens {
        masker.add(token.expose());
    }
    provider::mask(&masker, err)
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

impl Api {
    /// The API of the Provider's repository, authorized by the Secret's `token` (or
    /// `password`), else by the GitHub App it describes; `want_slug` when the App's identity
    /// will be asked for ([`Api::identity`]).
    pub(crate) fn from_config(setup: &mut Setup<'_>, want_slug: bool) -> Result<Self, BuildError> {
        let config = setup.config();
        let (address, owner, repo) = common::owner_repo(config)?;
        // As Flux: custom TLS material is for GitHub Enterprise; github.com uses the system
        // roots, even when the Secret carries a `ca.crt` for another purpose.
        if matches!(address.hostname().as_str(), "github.com" | "www.github.com") {
            setup.use_system_roots();
        }
        let mut headers = api_headers().to_vec();
        let app = match setup.token_or_password() {
            Some(token) => {
                headers.push((
                    herald_http::provider::AUTHORIZATION,
                    setup.bearer(Some(&token))?,
                ));
                None
            }
            None if App::requested(config) => Some(App::from_config(config, want_slug)?),
            None => {
                return Err(BuildError::invalid(
                    TOKEN_FIELD,
                    "github token or github app details must be specified (set the Secret's \
                     `token` or `password`, or githubAppID, githubAppInstallationID or \
                     githubAppInstallationOwner, and githubAppPrivateKey)",
                ));
            }
        };
        Ok(Api {
            base: api_base(&address),
            owner,
            repo,
            headers,
            app,
        })
    }

    /// Sends `request` with the credentials: as built for a token; with the App's current
    /// installation token otherwise, fetched again once if GitHub answers `401` (revoked, or
    /// expired early).
    pub(crate) async fn send(
        &self,
        client: &HttpClient,
        request: Request,
    ) -> Result<Response, DeliveryError> {
        let Some(app) = &self.app else {
            return client.send(request).await;
        };
        let token = app.token(client).await?;
        let first = request
            .clone()
            .header(AUTHORIZATION, githubapp::bearer(token.expose())?);
        match client.send(first).await {
            Err(e) if e.status() == Some(401) => {
                app.invalidate(&token).await;
                let fresh = app.token(client).await?;
                let again = request.header(AUTHORIZATION, githubapp::bearer(fresh.expose())?);
                client
                    .send(again)
                    .await
                    .map_err(|e| hide(&[&token, &fresh], &e))
            }
            other => other.map_err(|e| hide(&[&token], &e)),
        }
    }

    /// `request` as [`Api::send`] would send it, for a preview: an App's installation token is
    /// not fetched, and its `Authorization` is shown masked.
    pub(crate) fn previewed(&self, request: Request) -> Request {
        if self.app.is_none() {
            return request;
        }
        let mut masked = HeaderValue::from_static(herald_core::REDACTED);
        masked.set_sensitive(true);
        request.header(AUTHORIZATION, masked)
    }

    /// Who the credentials act as, as comments name their author: the token's user login
    /// (`GET /user`), or `<app-slug>[bot]` for an App (`GET /app`).
    pub(crate) async fn identity(&self, client: &HttpClient) -> Result<String, DeliveryError> {
        if let Some(app) = &self.app {
            return app.bot_login(client).await;
        }
        let url = format!("{}/user", self.base);
        let answer = self
            .send(
                client,
                Request::new(Method::GET, url).headers(&self.headers),
            )
            .await?;
        let user: User = decode_json(&answer.body)?;
        Ok(user.login)
    }

    /// `<base>/repos/<owner>/<repo>/<tail>`.
    pub(crate) fn repo_url(&self, tail: &str) -> String {
        format!(
            "{}/repos/{}/{}/{tail}",
            self.base,
            common::escape(&self.owner),
            common::escape(&self.repo)
        )
    }

    /// A `GET` of `<repo>/<tail>` with the API's headers.
    pub(crate) fn get(&self, tail: &str) -> Request {
        Request::new(Method::GET, self.repo_url(tail)).headers(&self.headers)
    }

    /// A JSON `POST` of `body` to `<repo>/<tail>` with the API's headers.
    pub(crate) fn post_json(&self, tail: &str, body: Vec<u8>) -> Request {
        self.json(Method::POST, tail, body)
    }

    /// A JSON request of `body` to `<repo>/<tail>` with the API's headers.
    pub(crate) fn json(&self, method: Method, tail: &str, body: Vec<u8>) -> Request {
        let mut request = Request::post_json(self.repo_url(tail), body).headers(&self.headers);
        request.method = method;
        request
    }
}

/// A validated `github` Provider.
#[derive(Debug)]
pub(crate) struct GitHub {
    api: Api,
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

impl StatusForge for GitHub {
    const NAME: &'static str = "github";
    const LOOKUP_FAILED: &'static str = "could not list commit statuses";
    const POST_FAILED: &'static str = "could not create commit status";

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        Ok(GitHub {
            api: Api::from_config(setup, false)?,
        })
    }

    async fn send(&self, client: &HttpClient, request: Request) -> Result<Response, DeliveryError> {
        self.api.send(client, request).await
    }

    fn previewed(&self, request: Request) -> Request {
        self.api.previewed(request)
    }

    fn render(&self, status: &Status<'_>) -> Result<Vec<u8>, DeliveryError> {
        to_json(&CreateStatus {
            state: status.state,
            description: &status.description,
            context: &status.id,
        })
    }

    fn lookup(&self, status: &Status<'_>) -> Request {
        let tail = format!("commits/{}/statuses?per_page=50", status.sha);
        self.api.get(&tail)
    }

    fn shows(&self, status: &Status<'_>, answer: &[u8]) -> Result<bool, DeliveryError> {
        let existing: Vec<ExistingStatus> = decode_json(answer)?;
        // Newest first: the first status of our context is the current one.
        let current = existing
            .iter()
            .find(|s| s.context.as_deref() == Some(status.id.as_str()));
        Ok(current.is_some_and(|s| {
            s.state.as_deref() == Some(status.state)
                && s.description.as_deref() == Some(status.description.as_str())
        }))
    }

    fn post(&self, status: &Status<'_>, body: Vec<u8>) -> Request {
        self.api
            .post_json(&format!("statuses/{}", status.sha), body)
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
