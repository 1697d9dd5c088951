//! The manifests as written: strict serde shapes, one per kind, covering every version.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// Only `apiVersion` and `kind`, to decide how to read the rest, and `metadata` as whatever
/// it is, to name the object in a problem even when the rest cannot be read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Header {
    #[serde(default)]
    pub(super) api_version: Option<String>,
    #[serde(default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) metadata: Option<serde_yaml_ng::Value>,
}

impl Header {
    /// `metadata.name` and `metadata.namespace`, when they are strings.
    pub(super) fn meta(&self) -> Meta {
        let text = |key: &str| {
            self.metadata
                .as_ref()
                .and_then(|m| m.get(key))
                .and_then(serde_yaml_ng::Value::as_str)
                .map(str::to_owned)
        };
        Meta {
            name: text("name"),
            namespace: text("namespace"),
            uid: None,
            annotations: None,
        }
    }
}

/// A `kind: List` (as `kubectl get -o yaml` prints).
#[derive(Deserialize)]
pub(super) struct List {
    #[serde(default)]
    pub(super) items: Vec<serde_yaml_ng::Value>,
}

/// The `metadata` fields herald uses; the others (labels, annotations other than herald's,
/// timestamps) are accepted and ignored.
#[derive(Deserialize, Default)]
pub(super) struct Meta {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) uid: Option<String>,
    #[serde(default)]
    pub(super) annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>")
)]
pub(super) struct Object<S> {
    #[allow(dead_code)]
    pub(super) api_version: String,
    #[allow(dead_code)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) metadata: Meta,
    #[serde(default)]
    pub(super) spec: Option<S>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) status: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LocalRef {
    pub(super) name: String,
}

/// Every field of `spec` in any Provider version; [`PROVIDER_FIELDS`] says which version has
/// which.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ProviderSpec {
    #[serde(rename = "type")]
    pub(super) ty: Option<String>,
    pub(super) interval: Option<String>,
    pub(super) channel: Option<String>,
    pub(super) username: Option<String>,
    pub(super) address: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) proxy: Option<String>,
    pub(super) proxy_secret_ref: Option<LocalRef>,
    pub(super) secret_ref: Option<LocalRef>,
    pub(super) cert_secret_ref: Option<LocalRef>,
    pub(super) suspend: Option<bool>,
    pub(super) commit_status_expr: Option<String>,
    pub(super) service_account_name: Option<String>,
}

/// `(field, first version that has it)` for Provider specs.
pub(super) const PROVIDER_FIELDS: &[(&str, &str)] = &[
    ("type", "v1beta1"),
    ("channel", "v1beta1"),
    ("username", "v1beta1"),
    ("address", "v1beta1"),
    ("timeout", "v1beta1"),
    ("proxy", "v1beta1"),
    ("secretRef", "v1beta1"),
    ("certSecretRef", "v1beta1"),
    ("suspend", "v1beta1"),
    ("interval", "v1beta2"),
    ("proxySecretRef", "v1beta3"),
    ("commitStatusExpr", "v1beta3"),
    ("serviceAccountName", "v1beta3"),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct EventSource {
    pub(super) api_version: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) match_labels: Option<BTreeMap<String, String>>,
}

/// Every field of `spec` in any Alert version; [`ALERT_FIELDS`] says which version has which.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AlertSpec {
    pub(super) provider_ref: Option<LocalRef>,
    pub(super) event_severity: Option<String>,
    pub(super) event_sources: Option<Vec<EventSource>>,
    pub(super) inclusion_list: Option<Vec<String>>,
    pub(super) exclusion_list: Option<Vec<String>>,
    pub(super) event_metadata: Option<BTreeMap<String, String>>,
    pub(super) summary: Option<String>,
    pub(super) suspend: Option<bool>,
}

/// `(field, first version that has it)` for Alert specs.
pub(super) const ALERT_FIELDS: &[(&str, &str)] = &[
    ("providerRef", "v1beta1"),
    ("eventSeverity", "v1beta1"),
    ("eventSources", "v1beta1"),
    ("exclusionList", "v1beta1"),
    ("summary", "v1beta1"),
    ("suspend", "v1beta1"),
    ("inclusionList", "v1beta2"),
    ("eventMetadata", "v1beta2"),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Secret {
    #[allow(dead_code)]
    pub(super) api_version: String,
    #[allow(dead_code)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) metadata: Meta,
    #[serde(default)]
    pub(super) data: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    pub(super) string_data: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, rename = "type")]
    #[allow(dead_code)]
    pub(super) ty: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) immutable: Option<bool>,
}

/// A `v1` `ConfigMap`: only `data` is read; `binaryData` and `immutable` are accepted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ConfigMap {
    #[allow(dead_code)]
    pub(super) api_version: String,
    #[allow(dead_code)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) metadata: Meta,
    #[serde(default)]
    pub(super) data: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) binary_data: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) immutable: Option<bool>,
}
