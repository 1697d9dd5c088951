//! herald-webhook: the `generic` and `generic-hmac` providers, always compiled into herald.
//!
//! `generic` POSTs the Flux event itself, as JSON, to the Provider's address, with a
//! `Gotk-Component` header naming the reporting controller and any headers from the Secret's
//! `headers` key. `generic-hmac` does the same and signs the exact body bytes:
//! `X-Signature: sha256=<hex HMAC-SHA256(key = Secret token, body)>`, so a receiver can check
//! that the event came from whoever holds the key. Both are byte-compatible with Flux's
//! notification-controller.
//!
//! This crate is not an HTTP client (it uses [`herald_http`]) and does no event matching.
//!
//! Build a notifier from a Provider manifest and send one event (here to a recording server on
//! loopback, from `herald-testkit`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use herald_core::{Event, Registry, manifest};
//!
//! let receiver = herald_testkit::Recorder::start().await;
//! let yaml = format!(r#"
//! apiVersion: notification.toolkit.fluxcd.io/v1beta3
//! kind: Provider
//! metadata: {{name: signed, namespace: flux-system}}
//! spec:
//!   type: generic-hmac
//!   address: {}/flux
//!   secretRef: {{name: signed-key}}
//! ---
//! apiVersion: v1
//! kind: Secret
//! metadata: {{name: signed-key, namespace: flux-system}}
//! stringData: {{token: my-hmac-key}}
//! "#, receiver.url());
//! let (set, errors) = manifest::parse_str(Path::new("inline.yaml"), &yaml);
//! assert!(errors.is_empty());
//! let config = set.provider_config(&set.providers[0])?;
//!
//! let mut registry = Registry::new();
//! herald_webhook::register(&mut registry);
//! let notifier = registry.build(&config)?;
//!
//! let event: Event = serde_json::from_str(r#"{"involvedObject":{"kind":"Kustomization",
//!     "namespace":"flux-system","name":"apps"},"severity":"info",
//!     "timestamp":"2026-11-28T10:00:00Z","message":"Reconciliation finished",
//!     "reason":"ReconciliationSucceeded","reportingController":"kustomize-controller"}"#)?;
//! notifier.post(&event).await?;
//!
//! let got = receiver.wait_for(1, std::time::Duration::from_secs(5)).await;
//! let body = &got[0].body;
//! assert_eq!(got[0].header("x-signature"), Some(herald_webhook::sign(b"my-hmac-key", body).as_str()));
//! # Ok(()) }
//! ```

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use herald_core::{
    BuildError, DeliveryError, Event, Family, Notifier, NotifyFuture, ProviderConfig, ProviderType,
    Registry, SecretString, json,
};
use herald_http::{HeaderName, HeaderValue, HttpClient, Request};

/// Registers `generic` and `generic-hmac`.
pub fn register(registry: &mut Registry) {
    registry.add_family(Family::Generic);
    registry.register(ProviderType::Generic, build);
    registry.register(ProviderType::GenericHmac, build);
}

/// Builds a `generic` or `generic-hmac` notifier from its configuration.
pub fn build(config: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
    Ok(Arc::new(Webhook::new(config)?))
}

/// The request body: the event as Flux encodes it (see [`herald_core::json`]).
pub fn render_body(event: &Event) -> Vec<u8> {
    json::to_vec(event).expect("an Event always serializes: it holds only strings and string maps")
}

/// The `X-Signature` value for `body`: `sha256=<lowercase hex HMAC-SHA256>`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where a configuration value came from, for error messages.
fn address_field(config: &ProviderConfig) -> &'static str {
    if config.address_from_secret {
        "secret key \"address\""
    } else {
        "spec.address"
    }
}

/// A `generic` or `generic-hmac` webhook.
#[derive(Debug)]
struct Webhook {
    client: HttpClient,
    url: SecretString,
    headers: Vec<(HeaderName, HeaderValue)>,
    hmac_key: Option<SecretString>,
}

impl Webhook {
    fn new(config: &ProviderConfig) -> Result<Self, BuildError> {
        let url = config.address.expose().trim();
        check_url(url).map_err(|why| {
            BuildError::invalid(address_field(config), format!("invalid hook URL: {why}"))
        })?;
        let mut headers = Vec::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let header = herald_http::parse_header(name, value.expose())
                .map_err(|e| BuildError::invalid("secret key \"headers\"", e))?;
            headers.push(header);
        }
        let hmac_key = match config.provider_type {
            ProviderType::GenericHmac => match &config.token {
                Some(token) if !token.is_empty() => Some(token.clone()),
                _ => {
                    return Err(BuildError::invalid(
                        "secret key \"token\"",
                        "HMAC key is empty",
                    ));
                }
            },
            _ => None,
        };
        Ok(Webhook {
            client: HttpClient::from_config(config)?,
            url: SecretString::new(url),
            headers,
            hmac_key,
        })
    }

    fn request(&self, event: &Event) -> Result<Request, DeliveryError> {
        let body = render_body(event);
        let component = HeaderValue::from_str(&event.reporting_controller).map_err(|_| {
            DeliveryError::permanent("reportingController is not a valid HTTP header value")
        })?;
        let mut req = Request::post_json(self.url.expose(), Vec::new())
            .header(HeaderName::from_static("gotk-component"), component);
        for (name, value) in &self.headers {
            req = req.header(name.clone(), value.clone());
        }
        if let Some(key) = &self.hmac_key {
            let signature = sign(key.expose().as_bytes(), &body);
            let value = HeaderValue::from_str(&signature)
                .map_err(|_| DeliveryError::permanent("bad signature header"))?;
            req = req.header(HeaderName::from_static("x-signature"), value);
        }
        Ok(req.body(body))
    }
}

impl Notifier for Webhook {
    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        Box::pin(async move {
            let req = self.request(event)?;
            self.client.send(req).await.map(|_| ())
        })
    }
}

/// An absolute `http` or `https` URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("the address is empty".to_owned());
    }
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("scheme {other:?} is not http or https")),
        None => return Err("not an absolute URL (expected http:// or https://)".to_owned()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_flux_golden() {
        let body = br#"{"involvedObject":{"kind":"GitRepository","namespace":"gitops-system","name":"webapp"},"severity":"info","timestamp":"2022-09-30T06:40:29Z","message":"message","reason":"reason","metadata":{"test":"metadata"},"reportingController":"source-controller","reportingInstance":"source-controller-xyz"}"#;
        assert_eq!(
            sign(b"7152fed34dd6149a7c75a276c510da27cb6f82b0", body),
            "sha256=65b018549b1254e7226d1c08f9567ee45bc9de0fc4e7b1a40253f9a018b08be7"
        );
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://example.com/hook?x=1").is_ok());
        assert!(check_url("http://127.0.0.1:9/").is_ok());
        assert_eq!(check_url("").unwrap_err(), "the address is empty");
        assert!(
            check_url("/relative")
                .unwrap_err()
                .contains("not an absolute URL")
        );
        assert!(
            check_url("ftp://x/")
                .unwrap_err()
                .contains("scheme \"ftp\"")
        );
        assert!(check_url("http:// bad").is_err());
    }
}
