//! herald-webhook: the `generic` and `generic-hmac` providers, always compiled into herald.
//!
//! `generic` POSTs the Flux event itself, as JSON, to the Provider's address, with a
//! `Gotk-Component` header naming the reporting controller and any headers from the Secret's
//! `headers` key. `generic-hmac` does the same and signs the exact body bytes:
//! `X-Signature: sha256=<hex HMAC-SHA256(key = Secret token, body)>`, so a receiver can check
//! that the event came from whoever holds the key ([`verify`] is that check, for receivers).
//! Both are byte-compatible with Flux's notification-controller.
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

use hmac::{Hmac, Mac};
use sha2::Sha256;

use herald_core::{Event, Family, ProviderType, json};
use herald_http::provider::{Table, entry};

mod generic;
mod generic_hmac;

/// The providers of this crate: one line per type.
const PROVIDERS: Table<2> = Table::new(
    Family::Generic,
    [
        entry::<generic::Generic>(ProviderType::Generic),
        entry::<generic_hmac::GenericHmac>(ProviderType::GenericHmac),
    ],
);

herald_http::family_api!(PROVIDERS);

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

/// What the check of a received `X-Signature` found ([`verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// No key was configured: nothing checked.
    NotChecked,
    /// `X-Signature` matches the HMAC-SHA256 of the body.
    Valid,
    /// The header is missing.
    Missing,
    /// The header does not match (or is not `sha256=<hex>`).
    Invalid,
}

/// Checks a received `X-Signature: sha256=<hex>` (as [`sign`] makes it) against `body`, in
/// constant time: the receiving side of `generic-hmac`.
pub fn verify(key: &[u8], body: &[u8], header: Option<&str>) -> Signature {
    let Some(header) = header else {
        return Signature::Missing;
    };
    let Some(sig) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h.trim()).ok())
    else {
        return Signature::Invalid;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return Signature::Invalid;
    };
    mac.update(body);
    if mac.verify_slice(&sig).is_ok() {
        Signature::Valid
    } else {
        Signature::Invalid
    }
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
    fn verify_checks_the_flux_golden() {
        let body = br#"{"involvedObject":{"kind":"GitRepository","namespace":"gitops-system","name":"webapp"},"severity":"info","timestamp":"2022-09-30T06:40:29Z","message":"message","reason":"reason","metadata":{"test":"metadata"},"reportingController":"source-controller","reportingInstance":"source-controller-xyz"}"#;
        let key = b"7152fed34dd6149a7c75a276c510da27cb6f82b0";
        let good = "sha256=65b018549b1254e7226d1c08f9567ee45bc9de0fc4e7b1a40253f9a018b08be7";
        assert_eq!(verify(key, body, Some(good)), Signature::Valid);
        assert_eq!(verify(key, body, Some(&sign(key, body))), Signature::Valid);
        assert_eq!(verify(key, b"tampered", Some(good)), Signature::Invalid);
        assert_eq!(verify(key, body, None), Signature::Missing);
        assert_eq!(verify(key, body, Some("sha1=00")), Signature::Invalid);
        assert_eq!(verify(key, body, Some("sha256=zz")), Signature::Invalid);
    }
}
