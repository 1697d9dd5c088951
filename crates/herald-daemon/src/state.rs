//! A loaded configuration: every object's status, the Alert index, and the notifiers of the
//! ready Providers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use herald_core::manifest::{Alert, Catalog, Kind, ManifestSet, ObjectKey};
use herald_core::matching::AlertIndex;
use herald_core::{Masker, Notifier, ProviderType, Registry};

/// One Provider, ready to deliver.
#[derive(Debug)]
pub struct ProviderEntry {
    /// `namespace/name`.
    pub id: String,
    /// The Provider's namespace.
    pub namespace: String,
    /// The Provider's name.
    pub name: String,
    /// `spec.type`.
    pub provider_type: ProviderType,
    /// `spec.suspend`.
    pub suspended: bool,
    /// The notifier.
    pub notifier: Arc<dyn Notifier>,
    /// Masks this Provider's secrets.
    pub masker: Masker,
    /// `herald.dev/max-in-flight`: its window, when set.
    pub max_in_flight: Option<usize>,
}

/// An Alert that matches events but is not ready (its Provider is missing or broken): what it
/// matches is counted, and logged once per load.
#[derive(Debug)]
pub(crate) struct UnreadyAlert {
    /// Why it is not ready.
    pub(crate) reason: String,
    logged: AtomicBool,
}

impl UnreadyAlert {
    /// True the first time only: the match to log.
    pub(crate) fn first_match(&self) -> bool {
        !self.logged.swap(true, Ordering::Relaxed)
    }
}

/// Everything the daemon serves from; replaced whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    /// The manifests and every object's status.
    pub catalog: Catalog,
    /// The Alerts whose fields are valid, indexed (ready or not: see `unready`).
    pub index: AlertIndex,
    /// Ready Providers by (namespace, name).
    pub providers: HashMap<(String, String), Arc<ProviderEntry>>,
    /// Indexed Alerts that are not ready, by (namespace, name).
    unready: HashMap<(String, String), UnreadyAlert>,
}

impl Snapshot {
    /// An empty configuration (nothing matches).
    pub fn empty() -> Self {
        Snapshot::from_catalog(Catalog::new(ManifestSet::default(), &Registry::new()))
    }

    /// The manifests.
    pub fn set(&self) -> &ManifestSet {
        self.catalog.set()
    }

    /// A ready Provider by its `namespace/name`.
    pub fn provider(&self, id: &str) -> Option<&Arc<ProviderEntry>> {
        let (namespace, name) = id.split_once('/')?;
        self.providers.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The manifest object of the Alert `namespace/name` (`null` once a reload removed it).
    pub fn alert_object(&self, id: &str) -> &serde_json::Value {
        static GONE: serde_json::Value = serde_json::Value::Null;
        let (namespace, name) = id.split_once('/').unwrap_or(("", id));
        self.catalog
            .set()
            .alerts
            .iter()
            .find(|a| a.namespace == namespace && a.name == name)
            .map_or(&GONE, |a| &a.object)
    }

    /// Why the Provider `namespace/name` cannot deliver now (it has no entry).
    pub fn why_not_ready(&self, id: &str) -> String {
        let (namespace, name) = id.split_once('/').unwrap_or(("", id));
        match self
            .catalog
            .status(&ObjectKey::new(Kind::Provider, namespace, name))
        {
            Some(status) if !status.is_ready() => format!(
                "the Provider {id} is not ready: {}",
                status.reasons().join("; ")
            ),
            _ => format!("the Provider {id} is no longer configured"),
        }
    }

    /// The matched `alert`, when it is not ready.
    pub(crate) fn unready(&self, alert: &Alert) -> Option<&UnreadyAlert> {
        if self.unready.is_empty() {
            return None;
        }
        self.unready
            .get(&(alert.namespace.clone(), alert.name.clone()))
    }

    /// Reads the manifests under `paths` and checks them object by object, building every
    /// Provider that passes. A broken object never stops the others.
    pub fn load(paths: &[PathBuf], registry: &Registry) -> Snapshot {
        Snapshot::from_catalog(Catalog::new(crate::manifests::read(paths), registry))
    }

    fn from_catalog(catalog: Catalog) -> Snapshot {
        let providers = catalog
            .ready_providers()
            .map(|(p, ready)| {
                let entry = ProviderEntry {
                    id: format!("{}/{}", p.namespace, p.name),
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    provider_type: p.spec.provider_type,
                    suspended: p.spec.suspend,
                    notifier: ready.notifier.clone(),
                    masker: ready.masker.clone(),
                    max_in_flight: p.max_in_flight,
                };
                ((p.namespace.clone(), p.name.clone()), Arc::new(entry))
            })
            .collect();
        let unready = catalog
            .matchable_alerts()
            .filter_map(|a| {
                let status = catalog.status(&a.key())?;
                let alert = UnreadyAlert {
                    reason: status.reasons().join("; "),
                    logged: AtomicBool::new(false),
                };
                (!status.is_ready()).then(|| ((a.namespace.clone(), a.name.clone()), alert))
            })
            .collect();
        let index = AlertIndex::new(catalog.matchable_alerts().cloned());
        Snapshot {
            catalog,
            index,
            providers,
            unready,
        }
    }
}
