//! GitHub App authentication for `github`, `githubdispatch` and `githubpullrequestcomment`,
//! as Flux does it (fluxcd/pkg `auth/githubapp`): an RS256 JWT signed with the App's private
//! key (`iss` = the App id, issued 30 s in the past for clock drift, valid 2 minutes) buys an
//! installation token (`POST /app/installations/{id}/access_tokens`), which is cached until
//! shortly before it expires and fetched afresh after the forge refuses it (`401`). The
//! installation is named by its id, or found from its owner (organization, then user).
//!
//! The App endpoints are at the Secret's `githubAppBaseURL` exactly as given (GitHub
//! Enterprise: `https://<host>/api/v3`), `https://api.github.com` without it; the repository
//! calls keep the API of the Provider's address.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::{BuildError, DeliveryError, ProviderConfig, SecretString, Timestamp};
use herald_http::jwt::{AccessToken, RsaKey, TokenCache};
use herald_http::provider::decode_json;
use herald_http::{HeaderValue, HttpClient, Method, Request, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::common;

/// The Secret keys of a GitHub App, as Flux names them.
pub(crate) const KEY_APP_ID: &str = "githubAppID";
const KEY_INSTALLATION_ID: &str = "githubAppInstallationID";
const KEY_INSTALLATION_OWNER: &str = "githubAppInstallationOwner";
const KEY_PRIVATE_KEY: &str = "githubAppPrivateKey";
const KEY_BASE_URL: &str = "githubAppBaseURL";

/// The App API when the Secret names none.
const DEFAULT_BASE: &str = "https://api.github.com";
/// A token with less than this left is replaced before use (GitHub's last one hour).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Backdating of `iat`, for clocks slightly ahead of GitHub's.
const CLOCK_DRIFT: u64 = 30;
/// The JWT's lifetime: it is only used to buy an installation token.
const JWT_LIFETIME: u64 = 120;

/// The Secret field every App error names.
const FIELD: &str = "spec.secretRef (GitHub App)";

/// Which installation the tokens are for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Installation {
    Id(i64),
    Owner(String),
}

/// A configured GitHub App.
#[derive(Debug)]
pub(crate) struct App {
    app_id: i64,
    installation: Installation,
    key: RsaKey,
    /// The App API, without a trailing `/`.
    base: String,
    /// Whether the App's slug is needed (the comment type's identity is `<slug>[bot]`).
    want_slug: bool,
    slug: OnceCell<String>,
    tokens: TokenCache,
}

/// The claims of the App JWT, in the order Go's `jwt.RegisteredClaims` writes them.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
}

/// The claims of a JWT signed at `now` (Unix seconds).
pub(crate) fn claims(app_id: i64, now: u64) -> Claims {
    let iat = now.saturating_sub(CLOCK_DRIFT);
    Claims {
        iss: app_id.to_string(),
        exp: iat + JWT_LIFETIME,
        iat,
    }
}

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct Installed {
    id: i64,
}

#[derive(Deserialize)]
struct AppInfo {
    #[serde(default)]
    slug: String,
}

fn secret_text(config: &ProviderConfig, key: &str) -> Option<String> {
    config
        .secret_data
        .get(key)
        .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
}

/// Go's `strconv.ParseInt` as fluxcd/pkg uses it: a malformed number counts as absent (0).
fn number(config: &ProviderConfig, key: &str) -> i64 {
    secret_text(config, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl App {
    /// Whether the Secret asks for App authentication (it has `githubAppID`, as Flux checks).
    pub(crate) fn requested(config: &ProviderConfig) -> bool {
        config.secret_data.contains_key(KEY_APP_ID)
    }

    /// Reads the App from the Secret, with fluxcd/pkg's errors for an incomplete one.
    pub(crate) fn from_config(config: &ProviderConfig, want_slug: bool) -> Result<App, BuildError> {
        let invalid = |message: &str| BuildError::invalid(FIELD, message);
        let app_id = number(config, KEY_APP_ID);
        if app_id == 0 {
            return Err(invalid(
                "app ID must be provided to use github app authentication (githubAppID must be \
                 a number)",
            ));
        }
        let owner = secret_text(config, KEY_INSTALLATION_OWNER).unwrap_or_default();
        let id = number(config, KEY_INSTALLATION_ID);
        let installation = match (owner.is_empty(), id) {
            (true, 0) => {
                return Err(invalid(
                    "app installation owner or ID must be provided to use github app \
                     authentication (githubAppInstallationID or githubAppInstallationOwner)",
                ));
            }
            (false, 0) => Installation::Owner(owner),
            (true, id) => Installation::Id(id),
            (false, _) => {
                return Err(invalid(
                    "only one of app installation owner or ID must be provided to use github app \
                     authentication",
                ));
            }
        };
        let pem = secret_text(config, KEY_PRIVATE_KEY).unwrap_or_default();
        if pem.trim().is_empty() {
            return Err(invalid(
                "private key must be provided to use github app authentication \
                 (githubAppPrivateKey)",
            ));
        }
        let key = RsaKey::from_pem(&pem)
            .map_err(|e| invalid(&format!("could not parse private key: {e}")))?;
        Ok(App {
            app_id,
            installation,
            key,
            base: base_url(config)?,
            want_slug,
            slug: OnceCell::new(),
            tokens: TokenCache::new(REFRESH_MARGIN),
        })
    }

    /// The installation token to send, fetched when none is cached or it is near expiry.
    pub(crate) async fn token(&self, client: &HttpClient) -> Result<SecretString, DeliveryError> {
        self.tokens.get(|| self.fetch(client)).await
    }

    /// Forgets a token the forge refused.
    pub(crate) async fn invalidate(&self, refused: &SecretString) {
        self.tokens.invalidate(refused).await;
    }

    /// `<slug>[bot]`: how the App's comments name their author. Fetches a token first, so
    /// that the slug is read as Flux reads it (before the installation token).
    pub(crate) async fn bot_login(&self, client: &HttpClient) -> Result<String, DeliveryError> {
        self.token(client).await?;
        let slug = self.slug(client, &self.jwt()?).await?;
        Ok(format!("{slug}[bot]"))
    }

    fn jwt(&self) -> Result<HeaderValue, DeliveryError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let jwt = self
            .key
            .sign_jwt(None, &claims(self.app_id, now))
            .map_err(|e| DeliveryError::permanent(format!("could not sign the App JWT: {e}")))?;
        bearer(&jwt)
    }

    fn request(&self, method: Method, tail: &str, jwt: &HeaderValue) -> Request {
        Request::new(method, format!("{}/{tail}", self.base))
            .headers(&crate::github::api_headers())
            .header(herald_http::provider::AUTHORIZATION, jwt.clone())
    }

    async fn slug(&self, client: &HttpClient, jwt: &HeaderValue) -> Result<&String, DeliveryError> {
        self.slug
            .get_or_try_init(|| async {
                let answer = client
                    .send(self.request(Method::GET, "app", jwt))
                    .await
                    .map_err(|e| e.context("failed to get app information"))?;
                let info: AppInfo = decode_json(&answer.body)
                    .map_err(|e| e.context("failed to get app information"))?;
                Ok(info.slug)
            })
            .await
    }

    async fn fetch(&self, client: &HttpClient) -> Result<AccessToken, DeliveryError> {
        let jwt = self.jwt()?;
        if self.want_slug {
            self.slug(client, &jwt).await?;
        }
        let id = self.installation_id(client, &jwt).await?;
        let answer = client
            .send(self.request(
                Method::POST,
                &format!("app/installations/{id}/access_tokens"),
                &jwt,
            ))
            .await
            .map_err(|e| e.context("failed to create the GitHub App installation token"))?;
        access_token(&answer)
    }

    async fn installation_id(
        &self,
        client: &HttpClient,
        jwt: &HeaderValue,
    ) -> Result<i64, DeliveryError> {
        let owner = match &self.installation {
            Installation::Id(id) => return Ok(*id),
            Installation::Owner(owner) => common::escape(owner),
        };
        let mut failures = Vec::new();
        for (kind, tail) in [
            ("organization", format!("orgs/{owner}/installation")),
            ("user", format!("users/{owner}/installation")),
        ] {
            let found = match client.send(self.request(Method::GET, &tail, jwt)).await {
                Ok(answer) => decode_json::<Installed>(&answer.body).map(|i| i.id),
                Err(e) => Err(e),
            };
            match found {
                Ok(id) => return Ok(id),
                Err(e) => failures.push(format!("failed to find {kind} installation: {e}")),
            }
        }
        Err(DeliveryError::permanent(failures.join("\n")))
    }
}

/// The App API base: `githubAppBaseURL` without its trailing `/`, or `https://api.github.com`.
fn base_url(config: &ProviderConfig) -> Result<String, BuildError> {
    let Some(raw) = secret_text(config, KEY_BASE_URL).filter(|v| !v.trim().is_empty()) else {
        return Ok(DEFAULT_BASE.to_owned());
    };
    let raw = raw.trim();
    if !(raw.starts_with("https://") || raw.starts_with("http://")) {
        return Err(BuildError::invalid(
            FIELD,
            "invalid API URL: githubAppBaseURL must be an http:// or https:// URL",
        ));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// `Bearer <token>`, marked sensitive.
pub(crate) fn bearer(token: &str) -> Result<HeaderValue, DeliveryError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        DeliveryError::permanent("the GitHub App token is not a valid header value")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The token and expiry of `POST /app/installations/{id}/access_tokens`. Errors never quote
/// the answer: it holds the token.
fn access_token(answer: &Response) -> Result<AccessToken, DeliveryError> {
    let parsed: InstallationToken = serde_json::from_slice(&answer.body).map_err(|_| {
        DeliveryError::permanent(
            "the installation token answer is not the JSON GitHub documents (token, expires_at)",
        )
    })?;
    let expires = Timestamp::parse(&parsed.expires_at).map_err(|_| {
        DeliveryError::permanent("the installation token's expires_at is not an RFC 3339 time")
    })?;
    let expires_at = u64::try_from(expires.unix())
        .map_or(UNIX_EPOCH, |secs| UNIX_EPOCH + Duration::from_secs(secs));
    Ok(AccessToken {
        token: SecretString::new(parsed.token),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use herald_core::{ProviderType, SecretBytes};

    fn config(pairs: &[(&str, &str)]) -> ProviderConfig {
        let mut cfg =
            ProviderConfig::new(ProviderType::GitHub, "ns", "p", "https://github.com/o/r");
        for (k, v) in pairs {
            cfg.secret_data
                .insert((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec()));
        }
        cfg
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        App::from_config(&config(pairs), false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn jwt_claims_are_backdated_and_short_lived() {
        assert_eq!(
            claims(12345, 1_000_000),
            Claims {
                iss: "12345".into(),
                iat: 999_970,
                exp: 1_000_090
            }
        );
    }

    #[test]
    fn incomplete_apps_say_what_is_missing() {
        let key = herald_testkit::RSA_PKCS1_PEM;
        assert!(error(&[("githubAppID", "x")]).contains("app ID must be provided"));
        assert!(
            error(&[("githubAppID", "1")])
                .contains("app installation owner or ID must be provided")
        );
        assert!(
            error(&[
                ("githubAppID", "1"),
                ("githubAppInstallationID", "2"),
                ("githubAppInstallationOwner", "o")
            ])
            .contains("only one of app installation owner or ID")
        );
        assert!(
            error(&[("githubAppID", "1"), ("githubAppInstallationID", "2")])
                .contains("private key must be provided")
        );
        let bad = error(&[
            ("githubAppID", "1"),
            ("githubAppInstallationID", "2"),
            ("githubAppPrivateKey", "ghp_not_a_key"),
        ]);
        assert!(bad.contains("could not parse private key"), "{bad}");
        assert!(!bad.contains("ghp_not_a_key"), "{bad}");
        let base = error(&[
            ("githubAppID", "1"),
            ("githubAppInstallationID", "2"),
            ("githubAppPrivateKey", key),
            ("githubAppBaseURL", "ghe.example.com"),
        ]);
        assert!(base.contains("invalid API URL"), "{base}");
        let app = App::from_config(
            &config(&[
                ("githubAppID", "1"),
                ("githubAppInstallationOwner", "my org"),
                ("githubAppPrivateKey", key),
                ("githubAppBaseURL", "https://ghe.example.com/api/v3/"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(app.base, "https://ghe.example.com/api/v3");
        assert_eq!(app.installation, Installation::Owner("my org".into()));
        assert_eq!(
            App::from_config(
                &config(&[
                    ("githubAppID", "1"),
                    ("githubAppInstallationID", "2"),
                    ("githubAppPrivateKey", key)
                ]),
                false
            )
            .unwrap()
            .base,
            DEFAULT_BASE
        );
    }
}
