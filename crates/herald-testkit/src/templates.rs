//! Loading manifests with message templates the way the daemon does, for the templated
//! goldens of each family.

use std::path::Path;
use std::sync::Arc;

use herald_core::manifest::{Catalog, ManifestSet};
use herald_core::{Notifier, Registry};

/// The manifests of `yaml` (one file, `templates.yaml`) checked by a [`Catalog`] with the
/// families `register` adds; panics unless every object is ready.
pub fn ready_catalog(yaml: &str, register: fn(&mut Registry)) -> Catalog {
    let mut set = ManifestSet::default();
    set.add_file(Path::new("templates.yaml"), yaml);
    let mut registry = Registry::new();
    register(&mut registry);
    let catalog = Catalog::new(set, &registry);
    let problems: Vec<String> = catalog.problems().iter().map(|p| p.to_string()).collect();
    assert!(
        problems.is_empty(),
        "the manifests do not load: {problems:#?}"
    );
    catalog
}

/// The notifier of the ready Provider `namespace/name`, and the manifest object of the Alert
/// `alert` (in the same namespace), as the engine passes it to [`Notifier::post_for`].
pub fn notifier_and_alert(
    catalog: &Catalog,
    namespace: &str,
    provider: &str,
    alert: &str,
) -> (Arc<dyn Notifier>, serde_json::Value) {
    let notifier = catalog
        .provider(namespace, provider)
        .unwrap_or_else(|| panic!("no ready Provider {namespace}/{provider}"))
        .notifier
        .clone();
    let object = catalog
        .set()
        .alerts
        .iter()
        .find(|a| a.namespace == namespace && a.name == alert)
        .unwrap_or_else(|| panic!("no Alert {namespace}/{alert}"))
        .object
        .clone();
    (notifier, object)
}
