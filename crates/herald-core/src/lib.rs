//! herald-core: the shared vocabulary of herald.
//!
//! It holds the Flux event in its exact wire format ([`Event`]), the `Provider`, `Alert` and
//! `Secret` manifests in every `notification.toolkit.fluxcd.io` version Flux users have
//! ([`manifest`]), the list of every upstream provider type with the family and cargo feature
//! that implements it ([`ProviderType`], [`Family`]), the resolved configuration a provider is
//! built from ([`ProviderConfig`]), the [`Notifier`] trait with its [`Registry`] of factories,
//! the typed errors ([`BuildError`], [`DeliveryError`]), the one retry policy ([`retry`]) and
//! the ordering key that says which deliveries must go out one after another ([`OrderingKey`]),
//! the message templates of Providers and Alerts, compiled and checked at load
//! ([`template`], on the engine of `herald-template` when the `templates` feature is on), and
//! the regular expressions of Alerts, with Go's meaning ([`pattern`]; Unicode classes with the
//! `unicode-regex` feature).
//!
//! It is *not* a client: it does no I/O at all, spawns nothing and knows no HTTP library.
//! Manifests are parsed from text that the caller reads ([`manifest::ManifestSet::add_file`]),
//! and checked object by object ([`manifest::Catalog`]). Provider families
//! (`herald-webhook`, `herald-chat`, ...) depend on it; it depends on none of them.
//!
//! ```
//! use herald_core::Event;
//! let raw = r#"{"involvedObject":{"kind":"GitRepository","namespace":"flux-system","name":"app"},
//!   "severity":"info","timestamp":"2022-09-30T06:40:29.123+02:00","message":"fetched",
//!   "reason":"Succeeded","reportingController":"source-controller","extra":"ignored"}"#;
//! let event: Event = serde_json::from_str(raw).unwrap();
//! assert_eq!(herald_core::text::obj_dot(&event), "gitrepository/app.flux-system");
//! // Re-emitted in Flux's own form: UTC, to the second, optional fields omitted.
//! assert_eq!(
//!     String::from_utf8(herald_core::json::to_vec(&event).unwrap()).unwrap(),
//!     r#"{"involvedObject":{"kind":"GitRepository","namespace":"flux-system","name":"app"},"severity":"info","timestamp":"2022-09-30T04:40:29Z","message":"fetched","reason":"Succeeded","reportingController":"source-controller"}"#
//! );
//! ```

mod config;
pub mod duration;
mod error;
mod event;
pub mod json;
pub mod manifest;
pub mod matching;
pub mod metadata;
mod notifier;
mod ordering;
pub mod pattern;
mod provider_type;
pub mod retry;
mod secret;
pub mod template;
pub mod text;

pub use config::{ProviderConfig, ProxyConfig, TlsMaterial};
pub use error::{BuildError, DeliveryError};
pub use event::{Event, ObjectReference, Severity, Timestamp};
pub use notifier::{Factory, Notifier, NotifyFuture, Preview, Registry};
pub use ordering::OrderingKey;
pub use provider_type::{Family, ProviderType};
pub use retry::RetryPolicy;
pub use secret::{Masker, REDACTED, SecretBytes, SecretString};
