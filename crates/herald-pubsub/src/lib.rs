//! herald-pubsub: the `googlepubsub` provider, over Pub/Sub's REST API and herald-http.
//!
//! Each event is published as one message to `projects/<address>/topics/<channel>`: its data
//! is the event JSON (Flux's bytes), its attributes the Secret's `headers` (none when empty),
//! as Flux's gRPC client sends it; herald posts the same message to
//! `POST /v1/projects/<project>/topics/<topic>:publish`. The Secret's `token` is a
//! service-account JSON key: herald signs an RS256 JWT with its `private_key` (through
//! [`herald_http::jwt`]), trades it at the key's `token_uri` for an OAuth2 access token, keeps
//! that token until shortly before it expires, and fetches a new one when the service refuses
//! it (`401`). With `PUBSUB_EMULATOR_HOST` set (read when the notifier is built, as Google's
//! clients read it) messages go over plain HTTP to that host, unauthenticated.
//!
//! It does not do workload identity (herald runs outside the cluster): a Provider with
//! `spec.serviceAccountName`, or without a key and without the emulator, is refused at load.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_core::{Event, ProviderConfig, ProviderType};
//! # let emulator = herald_testkit::Recorder::start().await;
//! # emulator.set_default_reply(herald_testkit::Reply::status(200).body(r#"{"messageIds":["1"]}"#));
//! # let host = emulator.url().trim_start_matches("http://").to_owned();
//!
//! let mut config = ProviderConfig::new(ProviderType::GooglePubSub, "flux-system", "pubsub", "my-project");
//! config.channel = "flux-events".into();
//! // What `build` does with PUBSUB_EMULATOR_HOST=<host> in the environment.
//! let notifier = herald_pubsub::build_for_emulator(&config, &host)?;
//! notifier.post(&Event::default()).await?;
//! # assert_eq!(emulator.requests()[0].path, "/v1/projects/my-project/topics/flux-events:publish");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use herald_core::{
    BuildError, DeliveryError, Event, Family, Masker, Notifier, NotifyFuture, Preview,
    ProviderConfig, ProviderType, Registry, SecretString, json,
};
use herald_http::jwt::{AccessToken, RsaKey, TokenCache};
use herald_http::provider::{Setup, TOKEN_FIELD, decode_json, encode_error, path_segment};
use herald_http::{HeaderValue, HttpClient, Request, Response};
use serde::{Deserialize, Serialize};

/// Pub/Sub's public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://pubsub.googleapis.com";

/// The environment variable Google's clients read for the emulator's `host:port`.
pub const EMULATOR_HOST_VAR: &str = "PUBSUB_EMULATOR_HOST";

/// The OAuth2 scopes Google's Pub/Sub client asks for.
pub const SCOPES: &str =
    "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/pubsub";

/// The token endpoint of a key that names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long a signed assertion is valid (Google accepts at most an hour).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// A token with less than this left is replaced, so that no publish carries an expired one.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Registers `googlepubsub`.
pub fn register(registry: &mut Registry) {
    registry.add_family(Family::PubSub);
    registry.register(ProviderType::GooglePubSub, build);
}

/// Builds a `googlepubsub` notifier: for the emulator when `PUBSUB_EMULATOR_HOST` is set,
/// else for [`DEFAULT_ENDPOINT`] with the service-account key of the Secret's `token`.
pub fn build(config: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
    match std::env::var(EMULATOR_HOST_VAR) {
        Ok(host) if !host.trim().is_empty() => build_for_emulator(config, host.trim()),
        _ => build_with_endpoint(config, DEFAULT_ENDPOINT),
    }
}

/// Builds a notifier publishing to `endpoint` (a regional or private endpoint, such as
/// `https://europe-west1-pubsub.googleapis.com`), authenticated with the service-account key.
pub fn build_with_endpoint(
    config: &ProviderConfig,
    endpoint: &str,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let mut setup = Setup::new(config);
    let topic = Topic::from_config(&setup)?;
    let account = ServiceAccount::from_setup(&mut setup)?;
    PubSub::notifier(&setup, topic, endpoint, Some(account))
}

/// Builds a notifier for the emulator at `host` (`host:port`): plain HTTP, no credentials.
pub fn build_for_emulator(
    config: &ProviderConfig,
    host: &str,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let setup = Setup::new(config);
    let topic = Topic::from_config(&setup)?;
    PubSub::notifier(&setup, topic, &format!("http://{host}"), None)
}

/// The project and topic of a Provider, and the message attributes.
#[derive(Debug, Clone)]
struct Topic {
    project: String,
    topic: String,
    attributes: BTreeMap<String, String>,
}

impl Topic {
    fn from_config(setup: &Setup<'_>) -> Result<Self, BuildError> {
        let config = setup.config();
        if config.service_account_name.is_some() {
            return Err(BuildError::invalid(
                "spec.serviceAccountName",
                "workload identity is not available to herald, which runs outside the cluster; put a service-account JSON key in the Secret's `token`",
            ));
        }
        let project = config.address.expose().trim();
        if project.is_empty() {
            return Err(BuildError::invalid(
                setup.address_field(),
                "GCP project ID cannot be empty",
            ));
        }
        let topic = config.channel.trim();
        if topic.is_empty() {
            return Err(BuildError::invalid(
                "spec.channel",
                "GCP Pub/Sub topic ID cannot be empty",
            ));
        }
        let attributes = config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect();
        Ok(Topic {
            project: project.to_owned(),
            topic: topic.to_owned(),
            attributes,
        })
    }

    /// `projects/<project>/topics/<topic>`, as Flux names it in messages.
    fn name(&self) -> String {
        format!("projects/{}/topics/{}", self.project, self.topic)
    }

    fn publish_url(&self, endpoint: &str) -> String {
        format!(
            "{}/v1/projects/{}/topics/{}:publish",
            endpoint.trim_end_matches('/'),
            path_segment(&self.project),
            path_segment(&self.topic)
        )
    }
}

/// The fields of a service-account JSON key that herald uses.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// A service account: who it is, its key and where it trades assertions for tokens.
#[derive(Debug)]
struct ServiceAccount {
    email: String,
    key_id: Option<String>,
    key: RsaKey,
    token_uri: String,
}

impl ServiceAccount {
    /// The key in the Secret's `token`. Errors never quote it.
    fn from_setup(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let json = setup.require_token(
            "a service-account JSON key is required (herald runs outside the cluster, so workload identity is not available)",
        )?;
        let file: KeyFile = serde_json::from_str(json.expose()).map_err(|e| {
            BuildError::invalid(
                TOKEN_FIELD,
                format!(
                    "not a service-account JSON key (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            other => {
                return Err(BuildError::invalid(
                    TOKEN_FIELD,
                    format!(
                        "only service-account keys (\"type\": \"service_account\") are supported, not {}",
                        other.map_or_else(
                            || "a key without a type".to_owned(),
                            |t| format!("{t:?}")
                        )
                    ),
                ));
            }
        }
        let email = file
            .client_email
            .filter(|e| !e.is_empty())
            .ok_or_else(|| BuildError::invalid(TOKEN_FIELD, "the key has no client_email"))?;
        let pem = file
            .private_key
            .ok_or_else(|| BuildError::invalid(TOKEN_FIELD, "the key has no private_key"))?;
        setup.secret(&pem);
        let key = RsaKey::from_pem(&pem)
            .map_err(|e| BuildError::invalid(TOKEN_FIELD, format!("private_key: {e}")))?;
        Ok(ServiceAccount {
            email,
            key_id: file.private_key_id.filter(|k| !k.is_empty()),
            key,
            token_uri: file
                .token_uri
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
        })
    }

    /// The signed assertion for a token, issued at `now`.
    fn assertion(&self, now: SystemTime) -> Result<String, DeliveryError> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = Claims {
            iss: &self.email,
            scope: SCOPES,
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        self.key
            .sign_jwt(self.key_id.as_deref(), &claims)
            .map_err(|e| DeliveryError::permanent(e.to_string()))
    }

    /// The token request: Google's JWT-bearer grant.
    fn token_request(&self, assertion: &str) -> Request {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", assertion)
            .finish();
        Request::new(herald_http::Method::POST, &self.token_uri)
            .header(
                http_content_type(),
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(form)
    }
}

fn http_content_type() -> herald_http::HeaderName {
    herald_http::HeaderName::from_static("content-type")
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The body that publishes `event` with `attributes`: Flux's message, in the REST API's
/// form (`data` is the base64 of the event JSON; no `attributes` when there are none).
pub fn render(
    event: &Event,
    attributes: &BTreeMap<String, String>,
) -> Result<Vec<u8>, DeliveryError> {
    #[derive(Serialize)]
    struct Message<'a> {
        data: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        attributes: &'a BTreeMap<String, String>,
    }
    #[derive(Serialize)]
    struct Publish<'a> {
        messages: [Message<'a>; 1],
    }
    let data = json::to_vec(event).map_err(|e| encode_error(&e))?;
    let body = Publish {
        messages: [Message {
            data: STANDARD.encode(data),
            attributes,
        }],
    };
    serde_json::to_vec(&body).map_err(|e| encode_error(&e))
}

/// Checks a publish answer: the service names the message it stored.
fn check(response: &Response) -> Result<(), DeliveryError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Published {
        #[serde(default)]
        message_ids: Vec<String>,
    }
    let published: Published = decode_json(&response.body)?;
    if published.message_ids.is_empty() {
        return Err(DeliveryError::permanent(
            "the answer names no published message (no messageIds)",
        ));
    }
    Ok(())
}

/// The `googlepubsub` notifier.
struct PubSub {
    topic: Topic,
    url: String,
    account: Option<ServiceAccount>,
    tokens: TokenCache,
    client: HttpClient,
    masker: Masker,
    id: String,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("provider", &self.id)
            .field("topic", &self.topic.name())
            .field("account", &self.account.as_ref().map(|a| a.email.as_str()))
            .finish()
    }
}

impl PubSub {
    /// The notifier of `topic` at `endpoint`, with the client and masker of `setup`.
    fn notifier(
        setup: &Setup<'_>,
        topic: Topic,
        endpoint: &str,
        account: Option<ServiceAccount>,
    ) -> Result<Arc<dyn Notifier>, BuildError> {
        let client = setup.client(None)?;
        let mut masker = setup.masker().clone();
        masker.extend(client.masker());
        Ok(Arc::new(PubSub {
            url: topic.publish_url(endpoint),
            topic,
            account,
            tokens: TokenCache::new(TOKEN_MARGIN),
            client,
            masker,
            id: setup.config().id(),
        }))
    }

    /// A new access token from the account's token endpoint.
    async fn fetch_token(&self, account: &ServiceAccount) -> Result<AccessToken, DeliveryError> {
        let now = SystemTime::now();
        let request = account.token_request(&account.assertion(now)?);
        let response = self.client.send(request).await?;
        let answer: TokenAnswer = decode_json(&response.body)?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        Ok(AccessToken {
            token: SecretString::new(answer.access_token),
            expires_at: now + lifetime,
        })
    }

    /// The cached token, or a new one.
    async fn token(&self, account: &ServiceAccount) -> Result<SecretString, DeliveryError> {
        self.tokens
            .get(|| self.fetch_token(account))
            .await
            .map_err(|e| {
                e.context(format!(
                    "fetching an access token for {} from {}",
                    account.email,
                    herald_http::redact_url(&account.token_uri)
                ))
            })
    }

    /// One publish with `token` (none for the emulator).
    async fn publish(
        &self,
        body: Vec<u8>,
        token: Option<&SecretString>,
    ) -> Result<(), DeliveryError> {
        let authorization = match token {
            Some(token) => Some(
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    DeliveryError::permanent("the access token is not a header value")
                })?,
            ),
            None => None,
        };
        let request = self.publish_request(body, authorization);
        let result = match self.client.send(request).await {
            Ok(response) => check(&response),
            Err(e) => Err(e),
        };
        // The access token is not in the Provider's configuration, so the Provider's masker
        // does not know it, and a service may echo what it was sent.
        match token {
            Some(token) => result.map_err(|e| {
                let mut masker = Masker::new();
                masker.add(token.expose());
                herald_http::provider::mask(&masker, &e)
            }),
            None => result,
        }
    }

    /// The publish request of `body`, authorized with `authorization` (marked sensitive).
    fn publish_request(&self, body: Vec<u8>, authorization: Option<HeaderValue>) -> Request {
        let request = Request::post_json(&self.url, body);
        match authorization {
            Some(mut value) => {
                value.set_sensitive(true);
                request.header(herald_http::provider::AUTHORIZATION, value)
            }
            None => request,
        }
    }

    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let body = render(event, &self.topic.attributes)?;
        let Some(account) = &self.account else {
            return self.publish(body, None).await;
        };
        let token = self.token(account).await?;
        match self.publish(body.clone(), Some(&token)).await {
            // A revoked or expired token: forget it and publish once more with a new one.
            Err(e) if e.status() == Some(401) => {
                self.tokens.invalidate(&token).await;
                let token = self.token(account).await?;
                self.publish(body, Some(&token)).await
            }
            other => other,
        }
    }
}

impl Notifier for PubSub {
    /// The publish request; with a service account its access token is not fetched, and
    /// `Authorization` is shown masked.
    fn preview(
        &self,
        event: &Event,
        _alert: &serde_json::Value,
    ) -> Result<Vec<Preview>, DeliveryError> {
        let body = render(event, &self.topic.attributes)
            .map_err(|e| herald_http::provider::mask(&self.masker, &e))?;
        let authorization = self
            .account
            .as_ref()
            .map(|_| HeaderValue::from_static(herald_core::REDACTED));
        let request = self.publish_request(body, authorization);
        Ok(vec![herald_http::preview::of(&request, &self.masker)])
    }

    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        Box::pin(async move {
            self.deliver(event).await.map_err(|e| {
                let e = e.context(format!(
                    "provider {}: error publishing to GCP Pub/Sub topic {}",
                    self.id,
                    self.topic.name()
                ));
                herald_http::provider::mask(&self.masker, &e)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(project: &str, topic: &str) -> ProviderConfig {
        let mut c = ProviderConfig::new(ProviderType::GooglePubSub, "ns", "ps", project);
        c.channel = topic.into();
        c
    }

    fn err(c: &ProviderConfig) -> String {
        build_with_endpoint(c, DEFAULT_ENDPOINT)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_project_and_topic_fail_as_flux_words_them() {
        assert_eq!(
            err(&cfg(" ", "t")),
            "spec.address: GCP project ID cannot be empty"
        );
        assert_eq!(
            err(&cfg("p", "")),
            "spec.channel: GCP Pub/Sub topic ID cannot be empty"
        );
        let mut c = cfg("p", "t");
        c.service_account_name = Some("sa".into());
        assert!(err(&c).starts_with("spec.serviceAccountName: workload identity"));
    }

    #[test]
    fn keys_are_checked_at_load_without_being_quoted() {
        let mut c = cfg("p", "t");
        assert!(
            err(&c).starts_with("secret key \"token\": a service-account JSON key is required")
        );
        c.token = Some("{not json s3cret".into());
        let e = err(&c);
        assert!(
            e.contains("not a service-account JSON key") && !e.contains("s3cret"),
            "{e}"
        );
        c.token = Some(r#"{"type":"authorized_user","client_secret":"s3cret"}"#.into());
        let e = err(&c);
        assert!(
            e.contains("not \"authorized_user\"") && !e.contains("s3cret"),
            "{e}"
        );
        c.token = Some(
            r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nMIIs3cret\n-----END PRIVATE KEY-----\n"}"#.into(),
        );
        let e = err(&c);
        assert!(e.starts_with("secret key \"token\": private_key: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        // The emulator needs no key.
        assert!(build_for_emulator(&cfg("p", "t"), "127.0.0.1:8085").is_ok());
    }

    #[test]
    fn names_are_path_segments() {
        let setup_cfg = cfg("my-project", "flux events/x");
        let topic = Topic::from_config(&Setup::new(&setup_cfg)).unwrap();
        assert_eq!(
            topic.publish_url("http://127.0.0.1:8085/"),
            "http://127.0.0.1:8085/v1/projects/my-project/topics/flux%20events%2Fx:publish"
        );
        assert_eq!(topic.name(), "projects/my-project/topics/flux events/x");
    }

    #[test]
    fn attributes_are_left_out_when_there_are_none() {
        let body = render(&Event::default(), &BTreeMap::new()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["messages"][0].get("attributes").is_none(), "{v}");
    }
}
