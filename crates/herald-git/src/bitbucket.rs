//! `bitbucket` (Cloud): build statuses on Bitbucket's REST API 2.0
//! (<https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/>).

use herald_core::{BuildError, DeliveryError, text};
use herald_http::provider::{Setup, TOKEN_FIELD, decode_json};
use herald_http::{HeaderName, HeaderValue, Method, Request};
use serde::{Deserialize, Serialize};
use sha1::{Digest as _, Sha1};

use crate::common;
use crate::status::{Outcome, Status, StatusForge, to_json};

/// The API of Bitbucket Cloud.
const CLOUD_API: &str = "https://api.bitbucket.org/2.0";

/// The hosts that mean Bitbucket Cloud itself.
const CLOUD_HOSTS: [&str; 3] = ["bitbucket.org", "www.bitbucket.org", "api.bitbucket.org"];

/// A validated `bitbucket` Provider.
#[derive(Debug)]
pub(crate) struct Bitbucket {
    /// `<api>/repositories/<owner>/<repo>/commit`.
    commit_url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The body of `POST …/commit/{commit}/statuses/build` (go-bitbucket's order).
#[derive(Serialize)]
struct BuildStatus<'a> {
    key: &'a str,
    url: &'a str,
    state: &'a str,
    name: &'a str,
    description: &'a str,
}

/// The answer of `GET …/commit/{commit}/statuses/build/{key}`.
#[derive(Deserialize)]
pub(crate) struct ExistingStatus {
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) key: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// The lowercase hex SHA-1 of a status id: Bitbucket keys are at most 40 characters.
pub(crate) fn key(status_id: &str) -> String {
    hex::encode(Sha1::digest(status_id.as_bytes()))
}

impl StatusForge for Bitbucket {
    const NAME: &'static str = "bitbucket";
    const LOOKUP_FAILED: &'static str = "could not get commit status";
    const POST_FAILED: &'static str = "could not set commit status";
    const NOT_FOUND_IS_NONE: bool = true;

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let (address, owner, repo) = common::owner_repo(setup.config())?;
        let token = setup.require_token(
            "bitbucket token cannot be empty (expected <username>:<app-password>)",
        )?;
        let auth = match token.expose().split(':').collect::<Vec<_>>().as_slice() {
            [user, password] => {
                // The whole token is masked already; a forge may echo the password alone.
                setup.secret(password);
                setup.basic(user, password, TOKEN_FIELD)?
            }
            _ => {
                return Err(BuildError::invalid(
                    TOKEN_FIELD,
                    "invalid token format, expected to be <user>:<password> (exactly one ':'; \
                     an app password containing ':' cannot be used)",
                ));
            }
        };
        let host = address.hostname();
        let api = if CLOUD_HOSTS.contains(&host.as_str()) {
            CLOUD_API.to_owned()
        } else {
            format!("{}/2.0", address.base())
        };
        Ok(Bitbucket {
            commit_url: format!(
                "{api}/repositories/{}/{}/commit",
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

    fn state(outcome: Outcome) -> &'static str {
        build_state(outcome)
    }

    fn render(&self, status: &Status<'_>) -> Result<Vec<u8>, DeliveryError> {
        to_json(&BuildStatus {
            key: &key(&status.id),
            url: "https://bitbucket.org",
            state: status.state,
            name: &text::name_lc(status.event),
            description: &status.description,
        })
    }

    fn lookup(&self, status: &Status<'_>) -> Request {
        let url = format!(
            "{}/{}/statuses/build/{}",
            self.commit_url,
            status.sha,
            key(&status.id)
        );
        Request::new(Method::GET, url).headers(&self.headers)
    }

    fn shows(&self, status: &Status<'_>, answer: &[u8]) -> Result<bool, DeliveryError> {
        let existing: ExistingStatus = decode_json(answer)?;
        Ok(existing.state.as_deref() == Some(status.state)
            && existing.description.as_deref() == Some(status.description.as_str()))
    }

    fn post(&self, status: &Status<'_>, body: Vec<u8>) -> Request {
        let url = format!("{}/{}/statuses/build", self.commit_url, status.sha);
        Request::post_json(url, body).headers(&self.headers)
    }
}

/// The build-status states of Bitbucket Cloud and Server.
pub(crate) fn build_state(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "SUCCESSFUL",
        Outcome::Failure => "FAILED",
        Outcome::Pending => "INPROGRESS",
    }
}
