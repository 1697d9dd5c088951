//! herald-nats: the `nats` provider, on `async-nats` (core NATS publish, rustls with *ring*).
//!
//! Each event is published on the subject named by the Provider's `channel`, with the event
//! JSON as payload (Flux's bytes), to the server (or comma-separated servers) of its
//! `address`. Authentication follows Flux's priority: the Secret's `creds` (the content of a
//! `.creds` file: user JWT and nkey seed), else its `nkey` (an nkey seed), else `username` and
//! `password`, else none.
//!
//! Unlike Flux, which connects for every event, a notifier keeps one connection: opened on the
//! first event, reconnected by the client after a loss, and opened afresh when it is found
//! disconnected or a publish fails. Every publish is flushed before the delivery counts as
//! done, so an accepted event has really been handed to the server. It is not a JetStream
//! publisher (no acknowledgement from a stream), and the proxy and custom-CA settings of the
//! Provider do not apply (Flux ignores them too); `tls://` addresses verify the server against
//! the system roots.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_core::{Event, ProviderConfig, ProviderType};
//!
//! let mut config = ProviderConfig::new(
//!     ProviderType::Nats, "flux-system", "bus", "nats://127.0.0.1:4222",
//! );
//! config.channel = "flux.events".into();
//! let notifier = herald_nats::build(&config)?;
//! notifier.post(&Event::default()).await?;
//! # Ok(()) }
//! ```
//!
//! The `tests/it` suite runs the same against a real `nats-server` on loopback.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, ServerAddr, connection::State};
use tokio::sync::Mutex;

use herald_core::{
    BuildError, DeliveryError, Event, Family, Masker, Notifier, NotifyFuture, Preview,
    ProviderConfig, ProviderType, Registry, SecretString, json,
};

/// The connection name Flux's publisher announces (the server shows it in `connz`).
pub const CONNECTION_NAME: &str = "NATS Provider Publisher";

/// How often an abandoned connection's client keeps trying to reconnect before it gives up:
/// a connection is replaced as soon as it is found disconnected, so the old one must stop.
const MAX_RECONNECTS: usize = 3;

/// Registers `nats`.
pub fn register(registry: &mut Registry) {
    registry.add_family(Family::Nats);
    registry.register(ProviderType::Nats, build);
}

/// Builds a `nats` notifier, checking the address, subject and credentials now. No
/// connection is opened until the first event.
pub fn build(config: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
    Ok(Arc::new(NatsNotifier::new(config)?))
}

/// The payload of an event's message: the event JSON, Flux's bytes.
pub fn render(event: &Event) -> Result<Vec<u8>, DeliveryError> {
    json::to_vec(event).map_err(|e| DeliveryError::permanent(e.to_string()))
}

/// How the connection authenticates, in Flux's priority order.
#[derive(Clone, PartialEq, Eq)]
enum Auth {
    /// The content of a `.creds` file (user JWT and nkey seed).
    Creds(SecretString),
    /// An nkey seed.
    Nkey(SecretString),
    /// A username and password.
    UserPassword {
        user: String,
        password: SecretString,
    },
    /// No credentials.
    None,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Creds(_) => "creds",
            Auth::Nkey(_) => "nkey",
            Auth::UserPassword { .. } => "user/password",
            Auth::None => "none",
        })
    }
}

/// The typed configuration of a `nats` Provider.
#[derive(Debug, Clone)]
struct Settings {
    servers: Vec<ServerAddr>,
    subject: String,
    auth: Auth,
    timeout: Duration,
}

/// A Secret key's value as text, when it is set and not blank.
fn secret_text(config: &ProviderConfig, key: &str) -> Result<Option<SecretString>, BuildError> {
    let Some(value) = config.secret_data.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = value
        .to_secret_string()
        .ok_or_else(|| BuildError::invalid(format!("secret key \"{key}\""), "is not UTF-8 text"))?;
    Ok(Some(text))
}

/// The credentials of `config`, checked: a `.creds` content must hold a JWT and a seed, an
/// nkey seed must be one (Flux finds out only when it connects).
fn auth(config: &ProviderConfig) -> Result<Auth, BuildError> {
    if let Some(creds) = secret_text(config, "creds")? {
        ConnectOptions::new()
            .credentials(creds.expose())
            .map_err(|e| BuildError::invalid("secret key \"creds\"", e.to_string()))?;
        return Ok(Auth::Creds(creds));
    }
    if let Some(seed) = secret_text(config, "nkey")? {
        let seed = SecretString::new(seed.expose().trim());
        nkeys::KeyPair::from_seed(seed.expose()).map_err(|_| {
            BuildError::invalid(
                "secret key \"nkey\"",
                "error parsing nkey seed: not a valid nkey seed (it starts with S and is 58 characters long)",
            )
        })?;
        return Ok(Auth::Nkey(seed));
    }
    match &config.password {
        Some(password) if !config.username.is_empty() && !password.is_empty() => {
            Ok(Auth::UserPassword {
                user: config.username.clone(),
                password: password.clone(),
            })
        }
        _ => Ok(Auth::None),
    }
}

/// The address field, for messages.
fn address_field(config: &ProviderConfig) -> &'static str {
    if config.address_from_secret {
        "secret key \"address\""
    } else {
        "spec.address"
    }
}

/// The servers of the address (`nats://host:port`, comma-separated for several, as Flux's
/// client takes them). Errors never show the address: it may carry a password.
fn servers(config: &ProviderConfig) -> Result<Vec<ServerAddr>, BuildError> {
    let field = address_field(config);
    let address = config.address.expose().trim();
    if address.is_empty() {
        return Err(BuildError::invalid(
            field,
            "NATS server (address) cannot be empty",
        ));
    }
    address
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, server)| {
            server.parse::<ServerAddr>().map_err(|_| {
                BuildError::invalid(
                    field,
                    format!(
                        "server {} of the address is not a NATS URL (nats://host:port or tls://host:port)",
                        i + 1
                    ),
                )
            })
        })
        .collect()
}

impl Settings {
    fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        let servers = servers(config)?;
        let subject = config.channel.trim();
        if subject.is_empty() {
            return Err(BuildError::invalid(
                "spec.channel",
                "NATS subject (channel) cannot be empty",
            ));
        }
        if subject.contains([' ', '\t', '\r', '\n']) || subject.contains("..") {
            return Err(BuildError::invalid(
                "spec.channel",
                format!("{subject:?} is not a valid NATS subject (no whitespace, no empty tokens)"),
            ));
        }
        Ok(Settings {
            servers,
            subject: subject.to_owned(),
            auth: auth(config)?,
            timeout: config.timeout,
        })
    }

    /// The client options: Flux's connection name, the credentials, the timeout.
    fn options(&self) -> Result<ConnectOptions, String> {
        let options = ConnectOptions::new()
            .name(CONNECTION_NAME)
            .connection_timeout(self.timeout)
            .max_reconnects(MAX_RECONNECTS);
        match &self.auth {
            Auth::Creds(creds) => options
                .credentials(creds.expose())
                .map_err(|e| format!("invalid creds: {e}")),
            Auth::Nkey(seed) => Ok(options.nkey(seed.expose().to_owned())),
            Auth::UserPassword { user, password } => {
                Ok(options.user_and_password(user.clone(), password.expose().to_owned()))
            }
            Auth::None => Ok(options),
        }
    }
}

/// The `nats` notifier: one connection, kept.
struct NatsNotifier {
    settings: Settings,
    masker: Masker,
    id: String,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for NatsNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsNotifier")
            .field("provider", &self.id)
            .field("subject", &self.settings.subject)
            .field("auth", &self.settings.auth)
            .finish()
    }
}

impl NatsNotifier {
    fn new(config: &ProviderConfig) -> Result<Self, BuildError> {
        let settings = Settings::from_config(config)?;
        let mut masker = config.masker();
        if let Auth::Creds(creds) = &settings.auth {
            // The lines of a creds file (JWT, seed) may be quoted one by one.
            for line in creds.expose().lines().map(str::trim) {
                if line.len() > 20 && !line.starts_with("-----") {
                    masker.add(line);
                }
            }
        }
        Ok(NatsNotifier {
            settings,
            masker,
            id: config.id(),
            client: Mutex::new(None),
        })
    }

    /// The kept client if it is connected; else a new connection, kept for the next events.
    async fn client(&self) -> Result<Client, String> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref()
            && client.connection_state() == State::Connected
        {
            return Ok(client.clone());
        }
        // A client that is reconnecting is abandoned, not waited for: nothing was published on
        // it since it lost its server, and it stops after MAX_RECONNECTS.
        *slot = None;
        let client = self
            .settings
            .options()?
            .connect(self.settings.servers.as_slice())
            .await
            .map_err(|e| format!("error connecting to server: {e}"))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Publishes and flushes, so that the server has the message when this returns.
    async fn publish(&self, payload: Vec<u8>) -> Result<(), String> {
        let client = self.client().await?;
        let sent = async {
            client
                .publish(self.settings.subject.clone(), payload.into())
                .await
                .map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())
        }
        .await;
        sent.map_err(|e| format!("error publishing message to server: {e}"))
    }

    async fn forget_client(&self) {
        *self.client.lock().await = None;
    }
}

impl Settings {
    /// The servers (scheme, host and port: never credentials) and the subject, as a preview
    /// names the target: `nats://h:4222,nats://h2:4222 subject=flux.events`.
    fn target(&self) -> String {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("{}://{}:{}", s.scheme(), s.host(), s.port()))
            .collect();
        format!("{} subject={}", servers.join(","), self.subject)
    }
}

impl Notifier for NatsNotifier {
    /// One core NATS message on the subject, without headers, the event JSON as payload.
    fn preview(
        &self,
        event: &Event,
        _alert: &serde_json::Value,
    ) -> Result<Vec<Preview>, DeliveryError> {
        let payload = render(event)?;
        Ok(vec![Preview {
            method: "PUBLISH".to_owned(),
            url: self.masker.mask(&self.settings.target()),
            headers: Vec::new(),
            body: self
                .masker
                .mask(&String::from_utf8_lossy(&payload))
                .into_bytes(),
        }])
    }

    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        Box::pin(async move {
            let payload = render(event)?;
            let outcome = tokio::time::timeout(self.settings.timeout, self.publish(payload)).await;
            let message = match outcome {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => format!(
                    "timed out after {}",
                    herald_core::duration::format(self.settings.timeout)
                ),
            };
            // The next event starts on a fresh connection.
            self.forget_client().await;
            Err(DeliveryError::transient(self.masker.mask(&format!(
                "provider {}: error publishing event to subject {}: {message}",
                self.id, self.settings.subject
            ))))
        })
    }
}

#[cfg(test)]
mod tests {
    use herald_core::SecretBytes;

    use super::*;

    fn cfg(address: &str, channel: &str) -> ProviderConfig {
        let mut c = ProviderConfig::new(ProviderType::Nats, "ns", "bus", address);
        c.channel = channel.into();
        c
    }

    fn build_err(c: &ProviderConfig) -> String {
        Settings::from_config(c).unwrap_err().to_string()
    }

    #[test]
    fn empty_address_and_subject_fail_as_flux_words_them() {
        assert_eq!(
            build_err(&cfg(" ", "flux")),
            "spec.address: NATS server (address) cannot be empty"
        );
        assert_eq!(
            build_err(&cfg("nats://127.0.0.1:4222", "")),
            "spec.channel: NATS subject (channel) cannot be empty"
        );
        let mut from_secret = cfg("", "flux");
        from_secret.address_from_secret = true;
        assert_eq!(
            build_err(&from_secret),
            "secret key \"address\": NATS server (address) cannot be empty"
        );
        assert!(
            build_err(&cfg("nats://127.0.0.1:4222", "a b")).contains("not a valid NATS subject")
        );
    }

    #[test]
    fn addresses_may_list_servers_and_never_show_up_in_errors() {
        let s = Settings::from_config(&cfg("nats://127.0.0.1:4222, nats://127.0.0.1:4223", "flux"))
            .unwrap();
        assert_eq!(s.servers.len(), 2);
        let err = build_err(&cfg("http://user:pa55word@[::1", "flux"));
        assert!(err.starts_with("spec.address: server 1 "), "{err}");
        assert!(!err.contains("pa55word"), "{err}");
    }

    #[test]
    fn previews_name_servers_and_subject_without_credentials() {
        let s = Settings::from_config(&cfg(
            "nats://user:pa55word@127.0.0.1:4222,nats://127.0.0.1:4223",
            "flux.events",
        ))
        .unwrap();
        assert_eq!(
            s.target(),
            "nats://127.0.0.1:4222,nats://127.0.0.1:4223 subject=flux.events"
        );
    }

    #[test]
    fn credentials_follow_flux_priority() {
        let mut c = cfg("nats://127.0.0.1:4222", "flux");
        assert_eq!(auth(&c).unwrap(), Auth::None);
        c.username = "herald".into();
        assert_eq!(
            auth(&c).unwrap(),
            Auth::None,
            "a username alone is not auth"
        );
        c.password = Some("herald-secret".into());
        assert!(
            matches!(auth(&c).unwrap(), Auth::UserPassword { ref user, .. } if user == "herald")
        );
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        c.secret_data
            .insert("nkey".into(), SecretBytes::new(format!("{seed}\n")));
        assert_eq!(auth(&c).unwrap(), Auth::Nkey(SecretString::new(seed)));
        c.secret_data
            .insert("creds".into(), SecretBytes::new("not a creds file"));
        let err = auth(&c).unwrap_err().to_string();
        assert!(
            err.starts_with("secret key \"creds\": cannot parse user JWT"),
            "{err}"
        );
        c.secret_data.remove("creds");
        c.secret_data
            .insert("nkey".into(), SecretBytes::new("SUAnotaseed-s3cret"));
        let err = auth(&c).unwrap_err().to_string();
        assert!(
            err.starts_with("secret key \"nkey\": error parsing nkey seed"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
        assert_eq!(format!("{:?}", auth(&cfg("x", "y")).unwrap()), "none");
    }

    #[test]
    fn the_payload_is_the_event_json() {
        let event = Event::default();
        assert_eq!(render(&event).unwrap(), json::to_vec(&event).unwrap());
    }
}
