//! The one place where provider families are wired in, each behind its cargo feature.
//!
//! Every `cfg(feature = ...)` for a family lives in this file and nowhere else: adding a
//! family is one line here and one in `Cargo.toml`.

use herald_core::{Family, Registry};

/// The registry of every provider this build can construct.
pub(crate) fn registry() -> Registry {
    let mut registry = Registry::new();
    herald_webhook::register(&mut registry);
    // A family whose crate has not landed yet compiles in no types: `add_family` records it,
    // so its types are reported as "not implemented", not as "needs feature".
    #[cfg(feature = "chat")]
    registry.add_family(Family::Chat);
    #[cfg(feature = "git")]
    registry.add_family(Family::Git);
    #[cfg(feature = "alerting")]
    herald_alerting::register(&mut registry);
    #[cfg(feature = "eventhub")]
    registry.add_family(Family::EventHub);
    registry
}

/// The compiled families, for `--version` and the start-up log.
pub(crate) fn families() -> Vec<Family> {
    registry().families().collect()
}
