//! The notifier trait and the registry that builds notifiers from configurations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{BuildError, DeliveryError, Event, Family, ProviderConfig, ProviderType};

/// One message a delivery would send, as [`Notifier::preview`] shows it: secrets already
/// masked.
///
/// For an HTTP request, `method` and `url` are the request's and `headers` are in the order
/// they are sent. A provider that does not speak HTTP says what it would publish in the same
/// shape: `method` is `PUBLISH` and `url` names the target (an Event Hubs
/// `amqps://<namespace>/<hub>`, NATS servers and subject).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// `POST`, `PUT`, `PATCH`, or `PUBLISH` for a message bus.
    pub method: String,
    /// The URL, or the bus target, with its secret parts masked.
    pub url: String,
    /// The headers (or message properties), secret values masked.
    pub headers: Vec<(String, String)>,
    /// The body as it would be sent, with secret values masked.
    pub body: Vec<u8>,
}

/// The future [`Notifier::post`] returns.
pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A destination built from one Provider: posts events to it.
///
/// `post` receives the event as the provider should see it (metadata already combined and
/// stripped) and makes one attempt, bounded by the provider timeout (unless the notifier was
/// built with a retry policy of its own). Its [`DeliveryError`] says whether a later attempt is
/// worth it and, when the service said so, after how long (`Retry-After`): retrying is the
/// caller's job, with [`crate::RetryPolicy`].
pub trait Notifier: Send + Sync + fmt::Debug {
    /// Delivers one event.
    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a>;

    /// Delivers one event that `alert` matched: the Alert's manifest object as written, which
    /// some providers read (the `alert` of a git provider's `spec.commitStatusExpr`). Every
    /// other provider delivers exactly as [`Notifier::post`] does.
    fn post_for<'a>(&'a self, event: &'a Event, alert: &'a serde_json::Value) -> NotifyFuture<'a> {
        let _ = alert;
        self.post(event)
    }

    /// What [`Notifier::post_for`] would send for `event` matched by `alert` (`null` for no
    /// Alert), in order, without sending anything or opening a connection; secrets masked. An
    /// empty list means the event sends nothing. Errors are those the delivery would return
    /// before its first request. A type that cannot say returns an error naming itself; every
    /// type herald registers implements it (the binary's tests check them all).
    fn preview(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Vec<Preview>, DeliveryError> {
        let _ = (event, alert);
        Err(DeliveryError::permanent(
            "this provider type cannot show what it would send",
        ))
    }
}

/// Builds a notifier from a resolved configuration. Validation is done here, once.
pub type Factory = fn(&ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError>;

/// The provider types this build can construct, and the families compiled in.
#[derive(Default)]
pub struct Registry {
    factories: BTreeMap<ProviderType, Factory>,
    families: BTreeSet<Family>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Records that `family` is compiled in (called by each family's `register`).
    pub fn add_family(&mut self, family: Family) {
        self.families.insert(family);
    }

    /// Registers the factory of one type. A second registration of the same type replaces the
    /// first.
    pub fn register(&mut self, ty: ProviderType, factory: Factory) {
        self.factories.insert(ty, factory);
    }

    /// The compiled families, in order.
    pub fn families(&self) -> impl Iterator<Item = Family> + '_ {
        self.families.iter().copied()
    }

    /// The registered types, in order.
    pub fn types(&self) -> impl Iterator<Item = ProviderType> + '_ {
        self.factories.keys().copied()
    }

    /// Whether `ty` can be built.
    pub fn supports(&self, ty: ProviderType) -> bool {
        self.factories.contains_key(&ty)
    }

    /// Builds the notifier of `config`, or says precisely why this build cannot.
    pub fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
        let ty = config.provider_type;
        if let Some(factory) = self.factories.get(&ty) {
            return factory(config);
        }
        Err(self.missing(ty))
    }

    /// The error for a type that has no factory here.
    pub fn missing(&self, ty: ProviderType) -> BuildError {
        match ty.family() {
            family if self.families.contains(&family) => BuildError::NotImplemented { ty, family },
            family => BuildError::NotCompiledIn {
                ty,
                feature: family.feature().unwrap_or("generic"),
                compiled: self
                    .families()
                    .map(Family::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.families)
            .field("types", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Nop;
    impl Notifier for Nop {
        fn post<'a>(&'a self, _event: &'a Event) -> NotifyFuture<'a> {
            Box::pin(async { Ok(()) })
        }
    }
    fn nop(_: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
        Ok(Arc::new(Nop))
    }

    #[test]
    fn missing_types_say_why() {
        let mut r = Registry::new();
        r.add_family(Family::Generic);
        r.register(ProviderType::Generic, nop);
        r.add_family(Family::Git);
        let cfg = |ty| ProviderConfig::new(ty, "ns", "p", "http://x");
        assert!(r.build(&cfg(ProviderType::Generic)).is_ok());
        let e = r.build(&cfg(ProviderType::Slack)).unwrap_err().to_string();
        assert_eq!(
            e,
            "provider type `slack` needs the `chat` feature, which this build of herald does not \
             include (compiled families: generic, git); rebuild with `--features chat`"
        );
        let e = r.build(&cfg(ProviderType::GitHub)).unwrap_err().to_string();
        assert_eq!(
            e,
            "provider type `github` is not implemented by herald's `git` family"
        );
    }
}
