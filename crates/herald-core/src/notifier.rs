//! The notifier trait and the registry that builds notifiers from configurations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{BuildError, DeliveryError, Event, Family, ProviderConfig, ProviderType};

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
