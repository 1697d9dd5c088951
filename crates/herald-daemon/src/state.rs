//! A loaded, validated configuration: manifests, the Alert index, and built notifiers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use herald_core::manifest::{self, ManifestError, ManifestSet};
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
}

/// Everything the daemon serves from; replaced whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    /// The manifests.
    pub set: ManifestSet,
    /// The Alerts, indexed.
    pub index: AlertIndex,
    /// Providers by (namespace, name).
    pub providers: HashMap<(String, String), Arc<ProviderEntry>>,
}

impl Snapshot {
    /// An empty configuration (nothing matches).
    pub fn empty() -> Self {
        Snapshot {
            set: ManifestSet::default(),
            index: AlertIndex::default(),
            providers: HashMap::new(),
        }
    }

    /// A Provider by its `namespace/name`.
    pub fn provider(&self, id: &str) -> Option<&Arc<ProviderEntry>> {
        let (namespace, name) = id.split_once('/')?;
        self.providers.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Loads and validates the manifests under `paths`, building every Provider. Any problem
    /// rejects the whole set: the caller keeps serving the previous one.
    pub fn load(paths: &[PathBuf], registry: &Registry) -> Result<Snapshot, Vec<ManifestError>> {
        let set = manifest::load_paths(paths).map_err(|e| e.0)?;
        let mut errors = Vec::new();
        let mut providers = HashMap::new();
        for p in &set.providers {
            let built = set.provider_config(p).and_then(|config| {
                let masker = config.masker();
                registry
                    .build(&config)
                    .map(|notifier| (notifier, masker.clone()))
                    .map_err(|e| {
                        ManifestError::at(&p.origin, &["spec", "type"])
                            .object("Provider", &p.namespace, &p.name)
                            .message(masker.mask(&e.to_string()))
                    })
            });
            match built {
                Ok((notifier, masker)) => {
                    providers.insert(
                        (p.namespace.clone(), p.name.clone()),
                        Arc::new(ProviderEntry {
                            id: format!("{}/{}", p.namespace, p.name),
                            namespace: p.namespace.clone(),
                            name: p.name.clone(),
                            provider_type: p.spec.provider_type,
                            suspended: p.spec.suspend,
                            notifier,
                            masker,
                        }),
                    );
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let index = AlertIndex::new(set.alerts.iter().cloned());
        Ok(Snapshot {
            set,
            index,
            providers,
        })
    }
}
