//! The resolved configuration a notifier is built from (Flux's "notifier options").

use std::collections::BTreeMap;
use std::time::Duration;

use crate::template::Templates;
use crate::{Masker, ProviderType, SecretBytes, SecretString};

/// Everything a provider needs, resolved from its `Provider` manifest and the `Secret`s it
/// references (see [`crate::manifest::ManifestSet::provider_config`]). Families turn it into
/// their own typed configuration and reject what they cannot use.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// The Provider's namespace.
    pub namespace: String,
    /// The Provider's name.
    pub name: String,
    /// The Provider's `metadata.uid`, when its manifest carries one (as `kubectl get -o yaml`
    /// exports do). Flux derives ids from it that must not change when moving to herald: the
    /// commit-status id ends with its first segment ([`ProviderConfig::uid_prefix`]). Without
    /// it, providers fall back to an id derived from the namespace and name.
    pub uid: Option<String>,
    /// `spec.type`.
    pub provider_type: ProviderType,
    /// `spec.address`, or the Secret's `address` (trimmed). Kept secret: webhook URLs carry
    /// tokens.
    pub address: SecretString,
    /// Whether the address came from a Secret (it is then masked in every message).
    pub address_from_secret: bool,
    /// `spec.channel`.
    pub channel: String,
    /// `spec.username`, or the Secret's `username`.
    pub username: String,
    /// The Secret's `password`.
    pub password: Option<SecretString>,
    /// The Secret's `token` (raw, not trimmed).
    pub token: Option<SecretString>,
    /// The Secret's `headers` (a YAML map), in order of name.
    pub headers: BTreeMap<String, SecretString>,
    /// The proxy, from `spec.proxySecretRef`, the Secret's `proxy` or `spec.proxy`.
    pub proxy: Option<ProxyConfig>,
    /// Custom CA and client certificate.
    pub tls: TlsMaterial,
    /// `spec.timeout`, default 15 s: bounds a whole delivery, retries included.
    pub timeout: Duration,
    /// The whole `spec.secretRef` Secret (GitHub App keys, for example).
    pub secret_data: BTreeMap<String, SecretBytes>,
    /// `spec.commitStatusExpr`, if set.
    pub commit_status_expr: Option<String>,
    /// The Provider's manifest object as written (`null` when not built from a manifest): the
    /// `provider` variable of `spec.commitStatusExpr`.
    pub object: serde_json::Value,
    /// `spec.serviceAccountName`, if set.
    pub service_account_name: Option<String>,
    /// The message templates of the Provider and of its Alerts, compiled and checked when the
    /// manifests were loaded (empty when none has one).
    pub templates: Templates,
}

impl ProviderConfig {
    /// The default `spec.timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

    /// A configuration with only a type, a name and an address; handy for tests and for
    /// library users who do not start from manifests.
    pub fn new(
        provider_type: ProviderType,
        namespace: impl Into<String>,
        name: impl Into<String>,
        address: impl Into<String>,
    ) -> Self {
        ProviderConfig {
            namespace: namespace.into(),
            name: name.into(),
            uid: None,
            provider_type,
            address: SecretString::new(address),
            address_from_secret: false,
            channel: String::new(),
            username: String::new(),
            password: None,
            token: None,
            headers: BTreeMap::new(),
            proxy: None,
            tls: TlsMaterial::default(),
            timeout: Self::DEFAULT_TIMEOUT,
            secret_data: BTreeMap::new(),
            commit_status_expr: None,
            object: serde_json::Value::Null,
            service_account_name: None,
            templates: Templates::default(),
        }
    }

    /// `namespace/name`, for messages.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The first dash-separated segment of the Provider's UID (`0c9c2e41` of
    /// `0c9c2e41-d2f5-4e4b-9c1a-2a6b1f0e7d3c`), which ends Flux's default commit-status id
    /// `<kind>/<name>/<segment>`; `None` when the manifest has no UID.
    pub fn uid_prefix(&self) -> Option<&str> {
        let uid = self.uid.as_deref()?;
        uid.split('-').next()
    }

    /// A masker that knows every secret value of this provider.
    pub fn masker(&self) -> Masker {
        let mut m = Masker::new();
        if self.address_from_secret {
            m.add_address(self.address.expose());
        }
        for v in [&self.password, &self.token].into_iter().flatten() {
            m.add(v.expose());
        }
        for v in self.headers.values() {
            m.add(v.expose());
        }
        if let Some(p) = &self.proxy {
            if let Some(pw) = &p.password {
                m.add(pw.expose());
            }
            if let Some(user) = &p.username {
                m.add(user);
            }
        }
        for v in self.secret_data.values() {
            if let Some(s) = v.to_secret_string() {
                m.add_address(s.expose().trim());
            }
        }
        m
    }
}

/// An outbound proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `http://host:port` (credentials removed).
    pub url: String,
    /// Basic-auth user, if any.
    pub username: Option<String>,
    /// Basic-auth password, if any.
    pub password: Option<SecretString>,
}

/// PEM material from `spec.certSecretRef` (`ca.crt`, `tls.crt`, `tls.key`, or the legacy
/// `caFile`, `certFile`, `keyFile`).
#[derive(Clone, Debug, Default)]
pub struct TlsMaterial {
    /// CA bundle that *replaces* the system roots.
    pub ca_pem: Option<SecretBytes>,
    /// Client certificate chain.
    pub cert_pem: Option<SecretBytes>,
    /// Client private key.
    pub key_pem: Option<SecretBytes>,
}

impl TlsMaterial {
    /// Whether there is no custom TLS material at all.
    pub fn is_empty(&self) -> bool {
        self.ca_pem.is_none() && self.cert_pem.is_none() && self.key_pem.is_none()
    }
}
