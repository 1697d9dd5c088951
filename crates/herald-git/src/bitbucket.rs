//! `bitbucket` (Cloud): build statuses on Bitbucket's REST API 2.0
//! (<https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/>).

use herald_core::{BuildError, DeliveryError, Event, Masker, ProviderConfig, text};
use herald_http::{HeaderName, HeaderValue, HttpClient, Method};
use serde::{Deserialize, Serialize};
use sha1::{Digest as _, Sha1};

use crate::common::{self, Outcome, StatusInput};

/// The API of Bitbucket Cloud.
const CLOUD_API: &str = "https://api.bitbucket.org/2.0";

/// The hosts that mean Bitbucket Cloud itself.
const CLOUD_HOSTS: [&str; 3] = ["bitbucket.org", "www.bitbucket.org", "api.bitbucket.org"];

/// A `bitbucket` notifier.
#[derive(Debug)]
pub(crate) struct Bitbucket {
    /// `<api>/repositories/<owner>/<repo>/commit`.
    commit_url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The app password alone: the HTTP client masks the whole token, a forge may echo a part.
    masker: Masker,
    namespace: String,
    name: String,
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
struct ExistingStatus {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// A status to post.
#[derive(Debug)]
pub(crate) struct Plan {
    input: StatusInput,
    key: String,
    state: &'static str,
    pub(crate) body: Vec<u8>,
}

/// The lowercase hex SHA-1 of a status id: Bitbucket keys are at most 40 characters.
pub(crate) fn key(status_id: &str) -> String {
    hex::encode(Sha1::digest(status_id.as_bytes()))
}

impl Bitbucket {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        let address = common::git_address(config)?;
        let (owner, repo) = address
            .owner_repo()
            .map_err(|e| BuildError::invalid(common::address_field(config), e))?;
        let field = "secret key \"token\"";
        let token = config
            .token
            .as_ref()
            .map(|t| t.expose())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                BuildError::invalid(
                    field,
                    "bitbucket token cannot be empty (expected <username>:<app-password>)",
                )
            })?;
        let mut masker = Masker::new();
        let auth = match token.split(':').collect::<Vec<_>>().as_slice() {
            [user, password] => {
                masker.add(password);
                common::basic_auth(user, password, field)?
            }
            _ => {
                return Err(BuildError::invalid(
                    field,
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
                (HeaderName::from_static("authorization"), auth),
            ],
            masker,
            namespace: config.namespace.clone(),
            name: config.name.clone(),
        })
    }

    pub(crate) fn plan(&self, event: &Event) -> Result<Option<Plan>, DeliveryError> {
        let Some(input) =
            common::status_input(event, &self.namespace, &self.name, "bitbucket", false)?
        else {
            return Ok(None);
        };
        let state = match input.outcome {
            Outcome::Success => "SUCCESSFUL",
            Outcome::Failure => "FAILED",
            Outcome::Pending => "INPROGRESS",
        };
        let key = key(&input.id);
        let body = common::to_json(&BuildStatus {
            key: &key,
            url: "https://bitbucket.org",
            state,
            name: &text::name_lc(event),
            description: &input.description,
        })?;
        Ok(Some(Plan {
            input,
            key,
            state,
            body,
        }))
    }

    pub(crate) async fn deliver(
        &self,
        client: &HttpClient,
        plan: Plan,
    ) -> Result<(), DeliveryError> {
        self.send(client, plan)
            .await
            .map_err(|e| common::remask(&e, &self.masker))
    }

    async fn send(&self, client: &HttpClient, plan: Plan) -> Result<(), DeliveryError> {
        let sha = &plan.input.sha;
        let get = common::request(
            Method::GET,
            format!("{}/{sha}/statuses/build/{}", self.commit_url, plan.key),
            &self.headers,
        );
        match client.send(get).await {
            Ok(found) => {
                let existing: ExistingStatus =
                    common::decode(&found.body, "could not get commit status")?;
                if existing.state.as_deref() == Some(plan.state)
                    && existing.description.as_deref() == Some(plan.input.description.as_str())
                {
                    return Ok(());
                }
            }
            // No status with this key yet.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.context("could not get commit status")),
        }
        let post = common::post_json(
            format!("{}/{sha}/statuses/build", self.commit_url),
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
