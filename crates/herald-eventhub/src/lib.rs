//! herald-eventhub: the `azureeventhub` provider, on `azure_messaging_eventhubs` (AMQP 1.0).
//!
//! One Event Hubs message per event, whose body is the event JSON (Flux's bytes). Two ways to
//! authenticate, as in Flux:
//!
//! - **SAS**: the address (usually from the Secret's `address`) is a connection string with
//!   `Endpoint`, `SharedAccessKeyName`, `SharedAccessKey` and `EntityPath`. With
//!   `UseDevelopmentEmulator=true` (the Event Hubs emulator's convention) herald connects over
//!   plain AMQP to the endpoint's host and port.
//! - **JWT**: `channel` is the Event Hubs namespace (`.servicebus.windows.net` is appended
//!   unless it already has a `.servicebus.` suffix; `.servicebus.chinacloudapi.cn` or
//!   `.servicebus.usgovcloudapi.net` when `AZURE_AUTHORITY_HOST` names the China or US
//!   Government cloud, as in Flux), the address is the hub name, and the
//!   Secret's `token` is sent as a bearer token (CBS token type `jwt`). `channel` may also be an
//!   endpoint URL, `amqps://host:port` (or `amqp://` for a local broker, which sends the token
//!   in clear), for the emulator or a private endpoint.
//!
//! The Azure crates build their TLS configuration from rustls' process-wide crypto provider:
//! install one before the first event (herald installs *ring*, for example with
//! `herald_http::install_crypto_provider()`), or rustls panics when more than one is compiled in.
//!
//! The producer (one AMQP connection) is opened on the first event and reused; it is dropped
//! and opened again after a failed send, and rebuilt with the notifier when the configuration
//! changes. This crate is not an HTTP provider: the proxy and custom-CA settings of the
//! Provider do not apply to AMQP (Flux ignores them too).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_core::{Event, ProviderConfig, ProviderType};
//!
//! let config = ProviderConfig::new(
//!     ProviderType::AzureEventHub, "flux-system", "hub",
//!     "Endpoint=sb://my-ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=KEY;EntityPath=flux",
//! );
//! let notifier = herald_eventhub::build(&config)?;
//! notifier.post(&Event::default()).await?;
//! # Ok(()) }
//! ```
//!
//! The `tests/it` suite runs the same against a real AMQP 1.0 broker on loopback.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_messaging_eventhubs::{ProducerClient, RetryOptions};
use tokio::sync::Mutex;

use herald_core::{
    BuildError, DeliveryError, Event, Family, Masker, Notifier, NotifyFuture, Preview,
    ProviderConfig, ProviderType, Registry, SecretString, json,
};

/// Registers `azureeventhub`.
pub fn register(registry: &mut Registry) {
    registry.add_family(Family::EventHub);
    registry.register(ProviderType::AzureEventHub, build);
}

/// Builds an `azureeventhub` notifier. No connection is opened until the first event.
/// `AZURE_AUTHORITY_HOST` (read now) picks the sovereign cloud of a JWT namespace.
pub fn build(config: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
    let authority_host = std::env::var("AZURE_AUTHORITY_HOST").ok();
    Ok(Arc::new(EventHub::new(config, authority_host.as_deref())?))
}

/// The body of an event's message: the event JSON, Flux's bytes.
pub fn render(event: &Event) -> Result<Vec<u8>, DeliveryError> {
    json::to_vec(event).map_err(|e| DeliveryError::permanent(e.to_string()))
}

/// The domain a bare Event Hubs namespace gets, from the Azure authority host the way Flux
/// maps it: `.servicebus.chinacloudapi.cn` for an authority host in `chinacloudapi.cn`,
/// `.servicebus.usgovcloudapi.net` for one in `microsoftonline.us`, otherwise (and without
/// one) the public cloud's `.servicebus.windows.net`.
pub fn namespace_suffix(authority_host: Option<&str>) -> &'static str {
    match authority_host.unwrap_or_default() {
        host if host.contains("chinacloudapi.cn") => ".servicebus.chinacloudapi.cn",
        host if host.contains("microsoftonline.us") => ".servicebus.usgovcloudapi.net",
        _ => ".servicebus.windows.net",
    }
}

/// How the producer authenticates and where it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    /// A SAS connection string; `endpoint` is set for the emulator (plain AMQP).
    Sas {
        connection_string: SecretString,
        endpoint: Option<String>,
    },
    /// A bearer token for `namespace`/`hub`; `endpoint` is set when `channel` is a URL.
    Jwt {
        namespace: String,
        endpoint: Option<String>,
        hub: String,
        token: SecretString,
    },
}

/// A parsed connection string: its keys, case-insensitively.
fn connection_string_value<'a>(cs: &'a str, key: &str) -> Option<&'a str> {
    cs.split(';')
        .filter_map(|part| part.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
        .map(|(_, v)| v.trim())
}

/// How `config` authenticates; `authority_host` is `AZURE_AUTHORITY_HOST`.
fn auth(config: &ProviderConfig, authority_host: Option<&str>) -> Result<Auth, BuildError> {
    let field = if config.address_from_secret {
        "secret key \"address\""
    } else {
        "spec.address"
    };
    let address = config.address.expose().trim();
    if address.is_empty() {
        return Err(BuildError::invalid(
            field,
            "invalid authentication options: endpoint URL cannot be empty",
        ));
    }
    if config.service_account_name.is_some() {
        return Err(BuildError::invalid(
            "spec.serviceAccountName",
            "workload identity is not available to herald, which runs outside the cluster; use a SAS connection string",
        ));
    }
    let token = config
        .token
        .as_ref()
        .filter(|t| !t.expose().trim().is_empty());
    if address.contains("SharedAccessKey") {
        if token.is_some() {
            return Err(BuildError::invalid(
                "secret key \"token\"",
                "invalid authentication options: a token and a SAS connection string cannot be used together",
            ));
        }
        let entity = connection_string_value(address, "EntityPath").unwrap_or_default();
        if entity.is_empty() {
            return Err(BuildError::invalid(
                field,
                "connection string does not contain an EntityPath; add EntityPath=<event hub name>",
            ));
        }
        let endpoint = connection_string_value(address, "Endpoint").unwrap_or_default();
        if endpoint.is_empty() {
            return Err(BuildError::invalid(
                field,
                "connection string does not contain an Endpoint",
            ));
        }
        let emulator = connection_string_value(address, "UseDevelopmentEmulator")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = if emulator {
            let host = endpoint
                .split_once("://")
                .map_or(endpoint, |(_, rest)| rest)
                .trim_end_matches('/');
            Some(format!("amqp://{host}"))
        } else {
            None
        };
        return Ok(Auth::Sas {
            connection_string: SecretString::new(address),
            endpoint,
        });
    }
    let Some(token) = token else {
        return Err(BuildError::invalid(
            "secret key \"token\"",
            "invalid authentication options: no SAS connection string in the address, and no token",
        ));
    };
    let channel = config.channel.trim();
    if channel.is_empty() {
        return Err(BuildError::invalid(
            "spec.channel",
            "the Event Hubs namespace is empty",
        ));
    }
    // An AMQP URL names the endpoint itself (the emulator, a private endpoint, a test broker);
    // Flux would append the domain to it, which can never have worked.
    let (namespace, endpoint) = if let Some((scheme, rest)) = channel.split_once("://") {
        if !matches!(scheme, "amqp" | "amqps") {
            return Err(BuildError::invalid(
                "spec.channel",
                format!(
                    "an endpoint URL must start with amqps:// (or amqp:// for a local broker), not {scheme}://"
                ),
            ));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(BuildError::invalid(
                "spec.channel",
                "the endpoint URL has no host",
            ));
        }
        (
            authority.to_owned(),
            Some(format!("{scheme}://{authority}")),
        )
    } else if channel.contains(".servicebus.") {
        (channel.to_owned(), None)
    } else {
        (
            format!("{channel}{}", namespace_suffix(authority_host)),
            None,
        )
    };
    Ok(Auth::Jwt {
        namespace,
        endpoint,
        hub: address.to_owned(),
        token: SecretString::new(token.expose().trim()),
    })
}

/// A static bearer token as an Azure credential (the deprecated JWT mode of Flux).
#[derive(Debug)]
struct StaticToken(SecretString);

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let expires = azure_core::time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
        Ok(AccessToken::new(self.0.expose().to_owned(), expires))
    }
}

/// The `azureeventhub` notifier.
struct EventHub {
    auth: Auth,
    timeout: Duration,
    masker: Masker,
    id: String,
    producer: Mutex<Option<Arc<ProducerClient>>>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.auth {
            Auth::Sas {
                endpoint: Some(_), ..
            } => "sas (emulator)",
            Auth::Sas { .. } => "sas",
            Auth::Jwt { .. } => "jwt",
        };
        f.debug_struct("EventHub")
            .field("provider", &self.id)
            .field("auth", &mode)
            .finish()
    }
}

impl EventHub {
    fn new(config: &ProviderConfig, authority_host: Option<&str>) -> Result<Self, BuildError> {
        let auth = auth(config, authority_host)?;
        let mut masker = config.masker();
        if let Auth::Sas {
            connection_string, ..
        } = &auth
            && let Some(key) =
                connection_string_value(connection_string.expose(), "SharedAccessKey")
        {
            masker.add(key);
        }
        Ok(EventHub {
            auth,
            timeout: config.timeout,
            masker,
            id: config.id(),
            producer: Mutex::new(None),
        })
    }

    async fn open(&self) -> Result<ProducerClient, String> {
        // The SDK's own retries (200 ms doubling to 30 s, up to a minute) would outlast the
        // provider timeout that bounds a delivery: retry quickly, within that timeout.
        let retry = RetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(100),
            max_delay: azure_core::time::Duration::seconds(2),
            max_retries: 5,
            max_total_elapsed: azure_core::time::Duration::try_from(self.timeout)
                .unwrap_or(azure_core::time::Duration::seconds(15)),
        };
        let mut builder = ProducerClient::builder()
            .with_application_id("herald".to_owned())
            .with_retry_options(retry);
        let (Auth::Sas { endpoint, .. } | Auth::Jwt { endpoint, .. }) = &self.auth;
        if let Some(e) = endpoint {
            builder = builder.with_custom_endpoint(e.clone());
        }
        let opened = match &self.auth {
            Auth::Sas {
                connection_string, ..
            } => {
                builder
                    .open_with_connection_string(connection_string.expose(), None)
                    .await
            }
            Auth::Jwt {
                namespace,
                hub,
                token,
                ..
            } => {
                builder
                    .open(namespace, hub, Arc::new(StaticToken(token.clone())))
                    .await
            }
        };
        opened.map_err(|e| format!("could not connect: {e}"))
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), String> {
        let mut slot = self.producer.lock().await;
        let producer = match slot.as_ref() {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(self.open().await?);
                *slot = Some(p.clone());
                p
            }
        };
        match producer.send_event(body, None).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Open a fresh connection for the next event.
                *slot = None;
                Err(format!("could not send the event: {e}"))
            }
        }
    }
}

impl Auth {
    /// The AMQP address the producer sends to: `amqps://<namespace host>/<hub>`, or the
    /// endpoint the Provider names (the emulator's `amqp://host:port`) with the hub.
    fn target(&self) -> String {
        match self {
            Auth::Sas {
                connection_string,
                endpoint,
            } => {
                let cs = connection_string.expose();
                let hub = connection_string_value(cs, "EntityPath").unwrap_or_default();
                let base = endpoint.clone().unwrap_or_else(|| {
                    let host = connection_string_value(cs, "Endpoint")
                        .unwrap_or_default()
                        .split_once("://")
                        .map_or("", |(_, rest)| rest)
                        .trim_end_matches('/');
                    format!("amqps://{host}")
                });
                format!("{}/{hub}", base.trim_end_matches('/'))
            }
            Auth::Jwt {
                namespace,
                endpoint,
                hub,
                ..
            } => {
                let base = endpoint
                    .clone()
                    .unwrap_or_else(|| format!("amqps://{namespace}"));
                format!("{}/{hub}", base.trim_end_matches('/'))
            }
        }
    }
}

impl Notifier for EventHub {
    /// One message to the hub: no properties, the event JSON as its body (the credentials
    /// travel in the AMQP connection's authorization, not in the message).
    fn preview(
        &self,
        event: &Event,
        _alert: &serde_json::Value,
    ) -> Result<Vec<Preview>, DeliveryError> {
        let body = render(event)?;
        Ok(vec![Preview {
            method: "PUBLISH".to_owned(),
            url: self.masker.mask(&self.auth.target()),
            headers: Vec::new(),
            body: self
                .masker
                .mask(&String::from_utf8_lossy(&body))
                .into_bytes(),
        }])
    }

    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        Box::pin(async move {
            let body = render(event)?;
            let outcome = tokio::time::timeout(self.timeout, self.send(body)).await;
            let message = match outcome {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => {
                    *self.producer.lock().await = None;
                    format!(
                        "timed out after {}",
                        herald_core::duration::format(self.timeout)
                    )
                }
            };
            Err(DeliveryError::transient(
                self.masker
                    .mask(&format!("provider {}: {message}", self.id)),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(address: &str) -> ProviderConfig {
        ProviderConfig::new(ProviderType::AzureEventHub, "ns", "hub", address)
    }

    /// [`auth`] in the public cloud (no `AZURE_AUTHORITY_HOST`).
    fn auth_in(config: &ProviderConfig) -> Result<Auth, BuildError> {
        auth(config, None)
    }

    #[test]
    fn previews_name_the_hub_without_the_key() {
        let target = |c: &ProviderConfig| auth_in(c).unwrap().target();
        let sas = cfg(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=k3y-secret=;EntityPath=hub1",
        );
        assert_eq!(target(&sas), "amqps://ns.servicebus.windows.net/hub1");
        let emulator = cfg(
            "Endpoint=sb://localhost:5672;SharedAccessKeyName=send;SharedAccessKey=k3y-secret=;EntityPath=hub1;UseDevelopmentEmulator=true",
        );
        assert_eq!(target(&emulator), "amqp://localhost:5672/hub1");
        let mut jwt = cfg("hub2");
        jwt.token = Some(SecretString::new("jwt"));
        jwt.channel = "my-ns".into();
        assert_eq!(target(&jwt), "amqps://my-ns.servicebus.windows.net/hub2");
        jwt.channel = "amqp://127.0.0.1:5672".into();
        assert_eq!(target(&jwt), "amqp://127.0.0.1:5672/hub2");
    }

    #[test]
    fn sovereign_clouds_follow_the_authority_host_as_in_flux() {
        for (host, suffix) in [
            (None, ".servicebus.windows.net"),
            (Some(""), ".servicebus.windows.net"),
            (
                Some("https://login.microsoftonline.com/"),
                ".servicebus.windows.net",
            ),
            (
                Some("https://login.chinacloudapi.cn/"),
                ".servicebus.chinacloudapi.cn",
            ),
            (
                Some("https://login.microsoftonline.us/"),
                ".servicebus.usgovcloudapi.net",
            ),
        ] {
            assert_eq!(namespace_suffix(host), suffix, "{host:?}");
        }
        let mut jwt = cfg("hub1");
        jwt.token = Some(SecretString::new("jwt"));
        jwt.channel = "my-ns".into();
        let namespace = |jwt: &ProviderConfig, host| match auth(jwt, host).unwrap() {
            Auth::Jwt { namespace, .. } => namespace,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            namespace(&jwt, Some("https://login.chinacloudapi.cn/")),
            "my-ns.servicebus.chinacloudapi.cn"
        );
        assert_eq!(
            namespace(&jwt, Some("https://login.microsoftonline.us/")),
            "my-ns.servicebus.usgovcloudapi.net"
        );
        // A namespace that names its domain keeps it, whatever the authority host.
        jwt.channel = "my-ns.servicebus.windows.net".into();
        assert_eq!(
            namespace(&jwt, Some("https://login.chinacloudapi.cn/")),
            "my-ns.servicebus.windows.net"
        );
    }

    #[test]
    fn sas_and_emulator() {
        let a = auth_in(&cfg("Endpoint=sb://127.0.0.1:17672;SharedAccessKeyName=Root;SharedAccessKey=K3Y;EntityPath=hub1;UseDevelopmentEmulator=true")).unwrap();
        assert!(
            matches!(a, Auth::Sas { endpoint: Some(ref e), .. } if e == "amqp://127.0.0.1:17672")
        );
        let a = auth_in(&cfg("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=R;SharedAccessKey=K;EntityPath=h")).unwrap();
        assert!(matches!(a, Auth::Sas { endpoint: None, .. }));
    }

    #[test]
    fn errors_as_flux_words_them() {
        let e = auth_in(&cfg("")).unwrap_err().to_string();
        assert_eq!(
            e,
            "spec.address: invalid authentication options: endpoint URL cannot be empty"
        );
        let e = auth_in(&cfg(
            "Endpoint=sb://x/;SharedAccessKeyName=R;SharedAccessKey=SECRETKEY",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("connection string does not contain an EntityPath"),
            "{e}"
        );
        assert!(!e.contains("SECRETKEY"));
        let mut both = cfg("Endpoint=sb://x/;SharedAccessKeyName=R;SharedAccessKey=K;EntityPath=h");
        both.token = Some(SecretString::new("jwt"));
        assert!(
            auth_in(&both)
                .unwrap_err()
                .to_string()
                .contains("cannot be used together")
        );
        let mut jwt = cfg("hub1");
        jwt.token = Some(SecretString::new("jwt"));
        assert!(
            auth_in(&jwt)
                .unwrap_err()
                .to_string()
                .contains("namespace is empty")
        );
        jwt.channel = "my-ns".into();
        assert_eq!(
            auth_in(&jwt).unwrap(),
            Auth::Jwt {
                namespace: "my-ns.servicebus.windows.net".into(),
                endpoint: None,
                hub: "hub1".into(),
                token: SecretString::new("jwt")
            }
        );
        jwt.channel = "amqp://127.0.0.1:5672/".into();
        assert_eq!(
            auth_in(&jwt).unwrap(),
            Auth::Jwt {
                namespace: "127.0.0.1:5672".into(),
                endpoint: Some("amqp://127.0.0.1:5672".into()),
                hub: "hub1".into(),
                token: SecretString::new("jwt")
            }
        );
        jwt.channel = "https://my-ns.servicebus.windows.net".into();
        let e = auth_in(&jwt).unwrap_err().to_string();
        assert!(
            e.starts_with("spec.channel: an endpoint URL must start with amqps://"),
            "{e}"
        );
        jwt.channel = "amqps://".into();
        assert!(
            auth_in(&jwt)
                .unwrap_err()
                .to_string()
                .contains("has no host")
        );
        jwt.channel = "my-ns.servicebus.chinacloudapi.cn".into();
        assert!(
            matches!(auth_in(&jwt).unwrap(), Auth::Jwt { ref namespace, .. } if namespace == "my-ns.servicebus.chinacloudapi.cn")
        );
        let mut wi = cfg("hub1");
        wi.service_account_name = Some("sa".into());
        assert!(
            auth_in(&wi)
                .unwrap_err()
                .to_string()
                .starts_with("spec.serviceAccountName")
        );
    }
}
