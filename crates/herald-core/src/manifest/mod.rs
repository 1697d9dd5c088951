//! `Provider`, `Alert`, `Secret` and `ConfigMap` manifests: their types, parsing them from text, resolving
//! a Provider and its Secrets into a [`ProviderConfig`](crate::ProviderConfig), and checking a
//! whole set object by object ([`Catalog`]).
//!
//! herald reads the manifests Flux users already have: `notification.toolkit.fluxcd.io`
//! `v1beta1`, `v1beta2` and `v1beta3` Providers and Alerts, and `v1` Secrets (`data` in
//! base64, `stringData` in clear), and `v1` ConfigMaps (the templates of
//! `herald.dev/template-from`). Files hold any number of YAML documents; documents of other
//! kinds are skipped. Every problem names the file, the line, the document, the object and the
//! field, and says what is wrong.
//!
//! As in Flux, a problem makes only its own object unusable: a [`Catalog`] gives every object a
//! status (ready, or its problems), a notifier for every ready Provider, and makes an Alert whose
//! Provider is missing or not ready itself not ready. This module parses text only; reading
//! files and folders is the caller's job.

mod catalog;
mod load;
mod locate;
mod raw;
mod resolve;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::pattern::Pattern;
use crate::{ProviderType, SecretBytes};

pub use catalog::{Catalog, ObjectStatus, ReadyProvider};
pub use load::parse_str;

/// The notification API group.
pub const NOTIFICATION_GROUP: &str = "notification.toolkit.fluxcd.io";

/// The API versions of `Provider` and `Alert` herald reads.
pub const NOTIFICATION_VERSIONS: [&str; 3] = ["v1beta1", "v1beta2", "v1beta3"];

/// The prefix of every herald extension of a Flux manifest: an annotation, so that the same
/// manifests still apply to a cluster unchanged.
pub const HERALD_ANNOTATION_PREFIX: &str = "herald.dev/";

/// A Provider annotation: how many of its deliveries herald attempts at once (with different
/// ordering keys), a whole number of at least 1.
pub const MAX_IN_FLIGHT_ANNOTATION: &str = "herald.dev/max-in-flight";

/// The namespace of an object whose manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where a manifest came from.
#[derive(Clone)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// The 1-based index of the document within the file.
    pub document: usize,
    /// The 1-based line where the document starts.
    pub line: usize,
    text: Arc<str>,
}

impl Origin {
    pub(crate) fn new(file: &Path, document: usize, line: usize, text: &str) -> Self {
        Origin {
            file: file.to_owned(),
            document,
            line,
            text: Arc::from(text),
        }
    }

    /// The 1-based line in the file of the field at `path`, or of its closest present parent,
    /// or of the document start.
    pub fn line_of(&self, path: &[&str]) -> usize {
        locate::line_of(&self.text, path).map_or(self.line, |l| self.line + l - 1)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} (document {})",
            self.file.display(),
            self.line,
            self.document
        )
    }
}

/// The kinds of object a status is about: the three herald reads, and `File` for problems
/// that belong to no object (a file that cannot be read, a YAML syntax error, a document
/// without a name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A `Provider`.
    Provider,
    /// An `Alert`.
    Alert,
    /// A `Secret`.
    Secret,
    /// A `ConfigMap` (read for the templates it holds).
    ConfigMap,
    /// A manifest file (or a path given to read).
    File,
}

impl Kind {
    /// `Provider`, `Alert`, `Secret` or `File`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Provider => "Provider",
            Kind::Alert => "Alert",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::File => "File",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which object: kind, namespace and name. A `File`'s name is its path and its namespace is
/// empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace (empty for a `File`).
    pub namespace: String,
    /// The name (the path for a `File`).
    pub name: String,
}

impl ObjectKey {
    /// The object `kind namespace/name`.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The manifest file (or path) `path`.
    pub fn file(path: &Path) -> Self {
        ObjectKey::new(Kind::File, "", path.display().to_string())
    }
}

/// `Provider flux-system/slack`, or `File /etc/herald/a.yaml`.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::File => write!(f, "File {}", self.name),
            kind => write!(f, "{kind} {}/{}", self.namespace, self.name),
        }
    }
}

/// A `Provider`.
#[derive(Clone, Debug)]
pub struct Provider {
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, when the manifest carries one (as `kubectl get -o yaml` exports do).
    pub uid: Option<String>,
    /// `apiVersion`, as written.
    pub api_version: String,
    /// The spec, normalized across versions.
    pub spec: ProviderSpec,
    /// `herald.dev/max-in-flight`: its deliveries attempted at once, when set.
    pub max_in_flight: Option<usize>,
    /// Its message template (`herald.dev/template` or `herald.dev/template-from`), when set.
    pub template: Option<TemplateSource>,
    /// The document as written (`apiVersion`, `kind`, `metadata`, `spec`, ...): the `provider`
    /// of a `spec.commitStatusExpr` expression.
    pub object: serde_json::Value,
    /// Where it was read.
    pub origin: Origin,
}

/// A Provider's spec, with the union of the fields of every version.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    /// `type`.
    pub provider_type: ProviderType,
    /// `interval` (deprecated, unused).
    pub interval: Option<String>,
    /// `channel`.
    pub channel: String,
    /// `username`.
    pub username: String,
    /// `address`.
    pub address: String,
    /// `timeout`, parsed.
    pub timeout: Option<Duration>,
    /// `proxy` (deprecated in favour of `proxySecretRef`).
    pub proxy: Option<String>,
    /// `proxySecretRef.name` (v1beta3).
    pub proxy_secret_ref: Option<String>,
    /// `secretRef.name`.
    pub secret_ref: Option<String>,
    /// `certSecretRef.name`.
    pub cert_secret_ref: Option<String>,
    /// `suspend`.
    pub suspend: bool,
    /// `commitStatusExpr` (v1beta3).
    pub commit_status_expr: Option<String>,
    /// `serviceAccountName` (v1beta3).
    pub service_account_name: Option<String>,
}

/// An `Alert`.
#[derive(Clone, Debug)]
pub struct Alert {
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `apiVersion`, as written.
    pub api_version: String,
    /// The spec, normalized across versions.
    pub spec: AlertSpec,
    /// Its message template, which wins over its Provider's, when set.
    pub template: Option<TemplateSource>,
    /// The document as written (`apiVersion`, `kind`, `metadata`, `spec`, ...): the `alert` of
    /// a `spec.commitStatusExpr` expression.
    pub object: serde_json::Value,
    /// Where it was read.
    pub origin: Origin,
}

/// An Alert's spec, with the union of the fields of every version.
#[derive(Clone, Debug)]
pub struct AlertSpec {
    /// `providerRef.name` (a Provider in the Alert's namespace).
    pub provider_ref: String,
    /// `eventSeverity`: `info` (the default, accepts every severity) or `error`.
    pub event_severity: String,
    /// `eventSources`.
    pub event_sources: Vec<EventSource>,
    /// `inclusionList` (v1beta2+), compiled.
    pub inclusion_list: Vec<Pattern>,
    /// `exclusionList`, compiled.
    pub exclusion_list: Vec<Pattern>,
    /// `eventMetadata` (v1beta2+).
    pub event_metadata: BTreeMap<String, String>,
    /// `summary` (deprecated).
    pub summary: Option<String>,
    /// `suspend`.
    pub suspend: bool,
}

/// One entry of an Alert's `eventSources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSource {
    /// `apiVersion` (ignored by matching, as in Flux).
    pub api_version: Option<String>,
    /// `kind`.
    pub kind: String,
    /// `name`; `*` matches every name.
    pub name: String,
    /// `namespace`; the Alert's own when absent.
    pub namespace: Option<String>,
    /// `matchLabels`.
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// A `v1` `Secret`, with `data` decoded and `stringData` merged over it.
#[derive(Clone, Debug)]
pub struct Secret {
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The decoded values.
    pub data: BTreeMap<String, SecretBytes>,
    /// Where it was read.
    pub origin: Origin,
}

/// A `v1` `ConfigMap`: its `data` (templates referred to by `herald.dev/template-from`).
#[derive(Clone, Debug)]
pub struct ConfigMap {
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `data`.
    pub data: BTreeMap<String, String>,
    /// Where it was read.
    pub origin: Origin,
}

impl ConfigMap {
    /// Which object this is.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(Kind::ConfigMap, &self.namespace, &self.name)
    }
}

/// Where a Provider's or an Alert's template is, as its annotations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSource {
    /// The template text, or where it is.
    pub text: TemplateText,
    /// `herald.dev/template-content-type`, when set.
    pub content_type: Option<String>,
}

/// A template given inline, or the ConfigMap key that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateText {
    /// `herald.dev/template`: the text itself.
    Inline(String),
    /// `herald.dev/template-from: <configmap>/<key>`, in the object's namespace.
    From {
        /// The ConfigMap's name.
        config_map: String,
        /// The key of its `data`.
        key: String,
    },
}

impl TemplateSource {
    /// The annotation that gives the template.
    pub fn annotation(&self) -> &'static str {
        match self.text {
            TemplateText::Inline(_) => crate::template::TEMPLATE_ANNOTATION,
            TemplateText::From { .. } => crate::template::TEMPLATE_FROM_ANNOTATION,
        }
    }
}

/// Everything read from a set of manifest files: the objects, and the problems found while
/// reading them.
///
/// Providers and Secrets with a problem are left out (their problems say why); an Alert is kept
/// when its problems are in its fields, so that its reference to a Provider can still be
/// checked (a [`Catalog`] never matches events with it). Objects defined twice are kept twice;
/// a [`Catalog`] makes them not ready.
#[derive(Clone, Debug, Default)]
pub struct ManifestSet {
    /// The Providers, in reading order.
    pub providers: Vec<Provider>,
    /// The Alerts, in reading order.
    pub alerts: Vec<Alert>,
    /// The Secrets, in reading order.
    pub secrets: Vec<Secret>,
    /// The ConfigMaps, in reading order.
    pub config_maps: Vec<ConfigMap>,
    /// Every problem found while reading, each naming its object when it belongs to one. A
    /// caller that reads files adds its own (a file that cannot be read) with
    /// [`ManifestError::file`].
    pub problems: Vec<ManifestError>,
    /// Things that load but will not behave as a Flux user may expect (for example an event
    /// source with `matchLabels`, which never matches here).
    pub warnings: Vec<ManifestError>,
    /// Documents of other kinds that were skipped: where, and `apiVersion kind`.
    pub skipped: Vec<(Origin, String)>,
    /// The files that were read.
    pub files: Vec<PathBuf>,
}

impl ManifestSet {
    /// Parses the text of one manifest file (named `file` in messages) into this set: its
    /// objects, its skipped documents and its problems. Duplicates and references across files
    /// are checked by a [`Catalog`].
    pub fn add_file(&mut self, file: &Path, text: &str) {
        load::parse_into(file, text, self);
        self.files.push(file.to_owned());
    }

    /// The Provider `namespace/name`.
    pub fn provider(&self, namespace: &str, name: &str) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The Secret `namespace/name`.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// The ConfigMap `namespace/name`.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .find(|c| c.namespace == namespace && c.name == name)
    }

    /// Checks what reading one file cannot: that every Alert's Provider is in the set.
    pub fn check_references(&self) -> Vec<ManifestError> {
        self.alerts
            .iter()
            .filter(|a| !a.spec.provider_ref.is_empty())
            .filter(|a| self.provider(&a.namespace, &a.spec.provider_ref).is_none())
            .map(|a| {
                a.provider_ref_error(format!(
                    "Provider {}/{} not found in the manifests (an Alert's Provider must be \
                     in the Alert's namespace)",
                    a.namespace, a.spec.provider_ref
                ))
            })
            .collect()
    }
}

impl Alert {
    /// Which object this is.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(Kind::Alert, &self.namespace, &self.name)
    }

    /// A problem with `spec.providerRef.name`.
    fn provider_ref_error(&self, message: String) -> ManifestError {
        ManifestError::at(&self.origin, &["spec", "providerRef", "name"])
            .object(Kind::Alert, &self.namespace, &self.name)
            .field("spec.providerRef.name")
            .message(message)
    }
}

impl Provider {
    /// Which object this is.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(Kind::Provider, &self.namespace, &self.name)
    }
}

impl Secret {
    /// Which object this is.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(Kind::Secret, &self.namespace, &self.name)
    }
}

/// A problem in a manifest, with everything needed to find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The file, if the problem is in one.
    pub file: Option<PathBuf>,
    /// The 1-based line.
    pub line: Option<usize>,
    /// The 1-based document index within the file.
    pub document: Option<usize>,
    /// The object it belongs to, when it belongs to one.
    pub object: Option<ObjectKey>,
    /// The field path, for example `spec.timeout`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ManifestError {
    /// An error about a whole file.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ManifestError {
            file: Some(file.to_owned()),
            line: None,
            document: None,
            object: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error at the field `path` of the document at `origin`.
    pub fn at(origin: &Origin, path: &[&str]) -> Self {
        ManifestError {
            file: Some(origin.file.clone()),
            line: Some(origin.line_of(path)),
            document: Some(origin.document),
            object: None,
            field: None,
            message: String::new(),
        }
    }

    /// Names the object.
    pub fn object(mut self, kind: Kind, namespace: &str, name: &str) -> Self {
        self.object = Some(ObjectKey::new(kind, namespace, name));
        self
    }

    /// The object this problem makes not ready: the one it names, or else the file it is in.
    pub fn owner(&self) -> ObjectKey {
        match (&self.object, &self.file) {
            (Some(object), _) => object.clone(),
            (None, Some(file)) => ObjectKey::file(file),
            (None, None) => ObjectKey::new(Kind::File, "", "(manifests)"),
        }
    }

    /// The problem without its object: where (file, line, document), the field and what is
    /// wrong. This is how an object's status lists its reasons.
    pub fn reason(&self) -> String {
        let mut out = String::new();
        self.write_location(&mut out);
        if let Some(field) = &self.field {
            out.push_str(field);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }

    fn write_location(&self, out: &mut String) {
        use fmt::Write as _;
        if let Some(file) = &self.file {
            let _ = write!(out, "{}", file.display());
            if let Some(line) = self.line {
                let _ = write!(out, ":{line}");
            }
            if let Some(doc) = self.document {
                let _ = write!(out, " (document {doc})");
            }
            out.push_str(": ");
        }
    }

    /// Names the field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Says what is wrong.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut location = String::new();
        self.write_location(&mut location);
        f.write_str(&location)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

/// Every problem found in a set of manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the manifests:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_fields;
