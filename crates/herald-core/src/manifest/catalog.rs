//! A manifest set checked object by object, as Flux takes objects: each one is ready or has
//! its own problems, and only the objects that depend on a broken one suffer with it.
//!
//! The checks run in stages, each adding problems to the objects it finds wrong: reading (the
//! problems of [`ManifestSet::problems`]), duplicates, Providers (their Secrets, resolving them
//! into a [`ProviderConfig`], compiling and checking their message templates and those of
//! their Alerts, building their notifier through the [`Registry`]), then Alerts (their Provider
//! must exist and be ready). A bad Alert template makes only that Alert not ready. A later
//! check adds its own with [`Catalog::fail`], which also makes the Alerts of a failed Provider
//! not ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::load::duplicates;
use super::{
    Alert, Kind, ManifestError, ManifestSet, ObjectKey, Origin, Provider, TemplateSource,
    TemplateText,
};
use crate::template::{MessageTemplate, ProviderVars, Templates};
use crate::{BuildError, Masker, Notifier, ProviderConfig, Registry};

/// One object's status: ready when it has no problems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectStatus {
    /// Which object.
    pub key: ObjectKey,
    /// Why it is not ready; empty when it is.
    pub problems: Vec<ManifestError>,
    /// What may not behave as a Flux user expects, though the object works.
    pub warnings: Vec<ManifestError>,
}

impl ObjectStatus {
    fn new(key: ObjectKey) -> Self {
        ObjectStatus {
            key,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether the object is usable.
    pub fn is_ready(&self) -> bool {
        self.problems.is_empty()
    }

    /// Its problems, each as [`ManifestError::reason`] gives it (where, field, what).
    pub fn reasons(&self) -> Vec<String> {
        self.problems.iter().map(ManifestError::reason).collect()
    }

    /// Its first problem without location (`field: what`), and how many more there are: what
    /// an object that depends on this one says about it.
    fn summary(&self) -> String {
        let Some(first) = self.problems.first() else {
            return "ready".to_owned();
        };
        let mut out = match &first.field {
            Some(field) => format!("{field}: {}", first.message),
            None => first.message.clone(),
        };
        match self.problems.len() {
            1 => {}
            2 => out.push_str(" (and 1 more problem)"),
            n => out.push_str(&format!(" (and {} more problems)", n - 1)),
        }
        out
    }
}

/// A Provider that passed every check: its configuration and its notifier.
#[derive(Debug)]
pub struct ReadyProvider {
    /// The resolved configuration.
    pub config: ProviderConfig,
    /// The notifier built from it.
    pub notifier: Arc<dyn Notifier>,
    /// Masks the Provider's secrets.
    pub masker: Masker,
}

/// A manifest set with the status of every object and a notifier for every ready Provider
/// (see the module documentation).
#[derive(Debug)]
pub struct Catalog {
    set: ManifestSet,
    statuses: BTreeMap<ObjectKey, ObjectStatus>,
    providers: HashMap<ObjectKey, ReadyProvider>,
    /// Alerts whose own fields were read without a problem: they can be matched against
    /// events even when they are not ready (to count what they would have delivered).
    matchable: HashSet<ObjectKey>,
    /// Alerts already not ready because of their Provider.
    blocked: HashSet<ObjectKey>,
}

impl Catalog {
    /// Runs every check on `set`, building the notifier of each Provider that passes the
    /// others with `registry`.
    pub fn new(set: ManifestSet, registry: &Registry) -> Catalog {
        let mut catalog = Catalog {
            statuses: BTreeMap::new(),
            providers: HashMap::new(),
            matchable: HashSet::new(),
            blocked: HashSet::new(),
            set,
        };
        catalog.read_stage();
        catalog.provider_stage(registry);
        catalog.alert_stage();
        catalog
    }

    /// The manifests.
    pub fn set(&self) -> &ManifestSet {
        &self.set
    }

    /// Every object's status, by kind (Provider, Alert, Secret, File), namespace and name.
    pub fn statuses(&self) -> impl Iterator<Item = &ObjectStatus> {
        self.statuses.values()
    }

    /// The status of `key`, if there is such an object.
    pub fn status(&self, key: &ObjectKey) -> Option<&ObjectStatus> {
        self.statuses.get(key)
    }

    /// The objects that are not ready.
    pub fn not_ready(&self) -> impl Iterator<Item = &ObjectStatus> {
        self.statuses().filter(|s| !s.is_ready())
    }

    /// Whether every object is ready.
    pub fn all_ready(&self) -> bool {
        self.not_ready().next().is_none()
    }

    /// Every problem of every object, by file and line.
    pub fn problems(&self) -> Vec<&ManifestError> {
        let mut all: Vec<&ManifestError> =
            self.statuses().flat_map(|s| s.problems.iter()).collect();
        all.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        all
    }

    /// Every warning, by file and line.
    pub fn warnings(&self) -> Vec<&ManifestError> {
        let mut all: Vec<&ManifestError> =
            self.statuses().flat_map(|s| s.warnings.iter()).collect();
        all.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        all
    }

    /// The ready Provider `namespace/name`.
    pub fn provider(&self, namespace: &str, name: &str) -> Option<&ReadyProvider> {
        self.providers
            .get(&ObjectKey::new(Kind::Provider, namespace, name))
    }

    /// Every ready Provider, in manifest order.
    pub fn ready_providers(&self) -> impl Iterator<Item = (&Provider, &ReadyProvider)> {
        self.set
            .providers
            .iter()
            .filter_map(|p| Some((p, self.providers.get(&p.key())?)))
    }

    /// The Alerts whose own fields are valid, ready or not, in manifest order: those an event
    /// can be matched against. Only the ready ones deliver; see [`Catalog::status`].
    pub fn matchable_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.set
            .alerts
            .iter()
            .filter(|a| self.matchable.contains(&a.key()))
    }

    /// Makes `key` not ready with `problem` (for checks run after loading). A Provider that
    /// fails loses its notifier, and its Alerts become not ready too.
    pub fn fail(&mut self, key: &ObjectKey, problem: ManifestError) {
        self.statuses
            .entry(key.clone())
            .or_insert_with(|| ObjectStatus::new(key.clone()))
            .problems
            .push(problem);
        if key.kind == Kind::Provider {
            self.providers.remove(key);
            self.alert_stage();
        }
    }

    fn is_ready(&self, key: &ObjectKey) -> bool {
        self.statuses.get(key).is_some_and(ObjectStatus::is_ready)
    }

    /// Every object read, every file read, and the problems and warnings of reading them.
    fn read_stage(&mut self) {
        let set = &self.set;
        let keys = set
            .providers
            .iter()
            .map(Provider::key)
            .chain(set.alerts.iter().map(Alert::key))
            .chain(set.secrets.iter().map(|s| s.key()))
            .chain(set.config_maps.iter().map(|c| c.key()))
            .chain(set.files.iter().map(|f| ObjectKey::file(f)));
        for key in keys {
            self.statuses
                .entry(key.clone())
                .or_insert_with(|| ObjectStatus::new(key));
        }
        let problems: Vec<ManifestError> = set
            .problems
            .iter()
            .cloned()
            .chain(duplicates(set))
            .collect();
        for problem in problems {
            let key = problem.owner();
            self.statuses
                .entry(key.clone())
                .or_insert_with(|| ObjectStatus::new(key))
                .problems
                .push(problem);
        }
        for warning in &self.set.warnings {
            let key = warning.owner();
            self.statuses
                .entry(key.clone())
                .or_insert_with(|| ObjectStatus::new(key))
                .warnings
                .push(warning.clone());
        }
        self.matchable = self
            .set
            .alerts
            .iter()
            .map(Alert::key)
            .filter(|k| self.is_ready(k))
            .collect();
    }

    /// Each Provider still ready: its Secrets ready, resolved, and its notifier built.
    fn provider_stage(&mut self, registry: &Registry) {
        let mut failed = Vec::new();
        for provider in &self.set.providers {
            let key = provider.key();
            if !self.is_ready(&key) {
                continue;
            }
            match self.ready_provider(provider, registry, &mut failed) {
                Ok(ready) => {
                    self.providers.insert(key, ready);
                }
                Err(problems) => failed.extend(problems.into_iter().map(|p| (key.clone(), p))),
            }
        }
        for (key, problem) in failed {
            if let Some(status) = self.statuses.get_mut(&key) {
                status.problems.push(problem);
            }
        }
    }

    /// The Provider ready to deliver, or its problems; the problems of its Alerts' templates
    /// go to `alert_problems` (an Alert with a bad template is left out, the Provider is not).
    fn ready_provider(
        &self,
        provider: &Provider,
        registry: &Registry,
        alert_problems: &mut Vec<(ObjectKey, ManifestError)>,
    ) -> Result<ReadyProvider, Vec<ManifestError>> {
        let err = |path: &[&str]| {
            ManifestError::at(&provider.origin, path)
                .object(Kind::Provider, &provider.namespace, &provider.name)
                .field(path.join("."))
        };
        let spec = &provider.spec;
        let mut problems = Vec::new();
        for (field, secret) in [
            ("secretRef", &spec.secret_ref),
            ("proxySecretRef", &spec.proxy_secret_ref),
            ("certSecretRef", &spec.cert_secret_ref),
        ] {
            let Some(name) = secret else { continue };
            let secret_key = ObjectKey::new(Kind::Secret, &provider.namespace, name);
            if let Some(status) = self.statuses.get(&secret_key)
                && !status.is_ready()
            {
                problems.push(err(&["spec", field, "name"]).message(format!(
                    "Secret {}/{name} is not ready: {}",
                    provider.namespace,
                    status.summary()
                )));
            }
        }
        if spec.service_account_name.is_some() {
            problems.push(err(&["spec", "serviceAccountName"]).message(
                "workload identity through a Kubernetes ServiceAccount is not available to \
                 herald, which runs outside the cluster; remove the field and give the \
                 credentials in the Secret of spec.secretRef",
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut config = self.set.provider_config(provider).map_err(|e| vec![e])?;
        config.templates = self.templates(provider, alert_problems)?;
        let masker = config.masker();
        match registry.build(&config) {
            Ok(notifier) => Ok(ReadyProvider {
                config,
                notifier,
                masker,
            }),
            Err(e) => Err(vec![build_problem(provider, &e, &masker)]),
        }
    }

    /// The compiled templates of `provider` and of its ready Alerts. A bad Provider template is
    /// the Provider's problem; a bad Alert template goes to `alert_problems`.
    fn templates(
        &self,
        provider: &Provider,
        alert_problems: &mut Vec<(ObjectKey, ManifestError)>,
    ) -> Result<Templates, Vec<ManifestError>> {
        let vars = ProviderVars {
            namespace: provider.namespace.clone(),
            name: provider.name.clone(),
            provider_type: provider.spec.provider_type.as_str().to_owned(),
            channel: provider.spec.channel.clone(),
        };
        let compile = |source: &TemplateSource, origin: &Origin, key: &ObjectKey| {
            self.compile_template(source, origin, key, provider, &vars)
        };
        let mut templates = Templates::default();
        if let Some(source) = &provider.template {
            let template =
                compile(source, &provider.origin, &provider.key()).map_err(|e| vec![e])?;
            templates.set_provider(template);
        }
        let alerts = self.set.alerts.iter().filter(|a| {
            a.namespace == provider.namespace
                && a.spec.provider_ref == provider.name
                && self.is_ready(&a.key())
        });
        for alert in alerts {
            let Some(source) = &alert.template else {
                continue;
            };
            match compile(source, &alert.origin, &alert.key()) {
                Ok(template) => templates.add_alert(&alert.namespace, &alert.name, template),
                Err(problem) => alert_problems.push((alert.key(), problem)),
            }
        }
        Ok(templates)
    }

    /// Resolves (`template-from`), compiles and checks the template of the object `key`
    /// read at `origin`, for `provider`.
    fn compile_template(
        &self,
        source: &TemplateSource,
        origin: &Origin,
        key: &ObjectKey,
        provider: &Provider,
        vars: &ProviderVars,
    ) -> Result<MessageTemplate, ManifestError> {
        let annotation = source.annotation();
        let problem = |message: String| {
            ManifestError::at(origin, &["metadata", "annotations", annotation])
                .object(key.kind, &key.namespace, &key.name)
                .field(format!("metadata.annotations.{annotation}"))
                .message(message)
        };
        let (text, what) = match &source.text {
            TemplateText::Inline(text) => (text.as_str(), "template".to_owned()),
            TemplateText::From {
                config_map,
                key: data_key,
            } => {
                let Some(map) = self.set.config_map(&key.namespace, config_map) else {
                    return Err(problem(format!(
                        "ConfigMap {}/{config_map} not found in the manifests (a template's \
                         ConfigMap must be in the same namespace)",
                        key.namespace
                    )));
                };
                let Some(text) = map.data.get(data_key) else {
                    return Err(problem(format!(
                        "ConfigMap {}/{config_map} has no key {data_key:?} in its data",
                        key.namespace
                    )));
                };
                let what = format!(
                    "template {data_key:?} of ConfigMap {}/{config_map} ({}:{})",
                    key.namespace,
                    map.origin.file.display(),
                    map.origin.line_of(&["data", data_key])
                );
                (text.as_str(), what)
            }
        };
        MessageTemplate::compile(
            text,
            provider.spec.provider_type,
            source.content_type.as_deref(),
            vars.clone(),
        )
        .map_err(|p| problem(format!("{what}: {}", p.message)))
    }

    /// Each Alert whose Provider is missing or not ready is not ready either (once).
    fn alert_stage(&mut self) {
        let mut blocked = Vec::new();
        for alert in &self.set.alerts {
            let key = alert.key();
            if alert.spec.provider_ref.is_empty() || self.blocked.contains(&key) {
                continue;
            }
            let provider =
                ObjectKey::new(Kind::Provider, &alert.namespace, &alert.spec.provider_ref);
            let message = match self.statuses.get(&provider) {
                None => format!(
                    "Provider {}/{} not found in the manifests (an Alert's Provider must be in \
                     the Alert's namespace)",
                    alert.namespace, alert.spec.provider_ref
                ),
                Some(status) if !status.is_ready() => format!(
                    "Provider {}/{} is not ready: {}",
                    alert.namespace,
                    alert.spec.provider_ref,
                    status.summary()
                ),
                Some(_) => continue,
            };
            blocked.push((key, alert.provider_ref_error(message)));
        }
        for (key, problem) in blocked {
            if let Some(status) = self.statuses.get_mut(&key) {
                status.problems.push(problem);
            }
            self.blocked.insert(key);
        }
    }
}

/// A build error as a problem of `provider`, at the field it names when it names one.
fn build_problem(provider: &Provider, e: &BuildError, masker: &Masker) -> ManifestError {
    let base = |path: &[&str]| {
        ManifestError::at(&provider.origin, path).object(
            Kind::Provider,
            &provider.namespace,
            &provider.name,
        )
    };
    match e {
        BuildError::Invalid { field, message } => {
            let path: Vec<&str> = match field.strip_prefix("spec.") {
                Some(rest) => std::iter::once("spec").chain(rest.split('.')).collect(),
                // A Secret key (`secret key "token"`): the Secret is named at spec.secretRef.
                None => vec!["spec", "secretRef"],
            };
            base(&path)
                .field(field.clone())
                .message(masker.mask(message))
        }
        other => base(&["spec", "type"])
            .field("spec.type")
            .message(masker.mask(&other.to_string())),
    }
}

#[cfg(test)]
mod tests;
