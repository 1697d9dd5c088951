//! `Provider`, `Alert` and `Secret` manifests: their types, loading them from files, and
//! resolving a Provider and its Secrets into a [`ProviderConfig`](crate::ProviderConfig).
//!
//! herald reads the manifests Flux users already have: `notification.toolkit.fluxcd.io`
//! `v1beta1`, `v1beta2` and `v1beta3` Providers and Alerts, and `v1` Secrets (`data` in
//! base64, `stringData` in clear). Files hold any number of YAML documents; documents of other
//! kinds are skipped. Every error names the file, the line, the document, the object and the
//! field, and says what is wrong.

mod load;
mod locate;
mod raw;
mod resolve;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::{ProviderType, SecretBytes};

pub use load::{load_paths, manifest_files, parse_str};

/// The notification API group.
pub const NOTIFICATION_GROUP: &str = "notification.toolkit.fluxcd.io";

/// The API versions of `Provider` and `Alert` herald reads.
pub const NOTIFICATION_VERSIONS: [&str; 3] = ["v1beta1", "v1beta2", "v1beta3"];

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

/// A `Provider`.
#[derive(Clone, Debug)]
pub struct Provider {
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `apiVersion`, as written.
    pub api_version: String,
    /// The spec, normalized across versions.
    pub spec: ProviderSpec,
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
    pub inclusion_list: Vec<Regex>,
    /// `exclusionList`, compiled.
    pub exclusion_list: Vec<Regex>,
    /// `eventMetadata` (v1beta3).
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

/// Everything read from a set of manifest files.
#[derive(Clone, Debug, Default)]
pub struct ManifestSet {
    /// The Providers, in reading order.
    pub providers: Vec<Provider>,
    /// The Alerts, in reading order.
    pub alerts: Vec<Alert>,
    /// The Secrets, in reading order.
    pub secrets: Vec<Secret>,
    /// Things that load but will not behave as a Flux user may expect (for example an event
    /// source with `matchLabels`, which never matches here).
    pub warnings: Vec<ManifestError>,
    /// Documents of other kinds that were skipped: where, and `apiVersion kind`.
    pub skipped: Vec<(Origin, String)>,
    /// The files that were read.
    pub files: Vec<PathBuf>,
}

impl ManifestSet {
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

    /// Checks what loading alone cannot: that every Alert's Provider exists.
    pub fn check_references(&self) -> Vec<ManifestError> {
        self.alerts
            .iter()
            .filter(|a| self.provider(&a.namespace, &a.spec.provider_ref).is_none())
            .map(|a| {
                ManifestError::at(&a.origin, &["spec", "providerRef", "name"])
                    .object("Alert", &a.namespace, &a.name)
                    .field("spec.providerRef.name")
                    .message(format!(
                        "Provider {}/{} not found in the manifests (an Alert's Provider must be \
                         in the Alert's namespace)",
                        a.namespace, a.spec.provider_ref
                    ))
            })
            .collect()
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
    /// `Kind namespace/name`.
    pub object: Option<String>,
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
    pub fn object(mut self, kind: &str, namespace: &str, name: &str) -> Self {
        self.object = Some(format!("{kind} {namespace}/{name}"));
        self
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
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            if let Some(doc) = self.document {
                write!(f, " (document {doc})")?;
            }
            f.write_str(": ")?;
        }
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
