//! The per-version field tables against upstream's API types (notification-controller v1.9.3,
//! `api/v1beta1`, `api/v1beta2`, `api/v1beta3`, `provider_types.go` and `alert_types.go`):
//! a manifest with every field upstream accepts for a version loads with no problem, and a
//! field a version does not have is refused.

use std::path::Path;

use super::parse_str;

/// Every `ProviderSpec` JSON field of each version, as upstream declares it, with a valid
/// value.
const PROVIDER_FIELDS: &[(&str, &[&str])] = &[
    (
        "v1beta1",
        &[
            "type",
            "channel",
            "username",
            "address",
            "timeout",
            "proxy",
            "secretRef",
            "certSecretRef",
            "suspend",
        ],
    ),
    (
        "v1beta2",
        &[
            "type",
            "interval",
            "channel",
            "username",
            "address",
            "timeout",
            "proxy",
            "secretRef",
            "certSecretRef",
            "suspend",
        ],
    ),
    (
        "v1beta3",
        &[
            "type",
            "interval",
            "channel",
            "username",
            "address",
            "timeout",
            "proxy",
            "proxySecretRef",
            "secretRef",
            "serviceAccountName",
            "certSecretRef",
            "suspend",
            "commitStatusExpr",
        ],
    ),
];

/// Every `AlertSpec` JSON field of each version, as upstream declares it.
const ALERT_FIELDS: &[(&str, &[&str])] = &[
    (
        "v1beta1",
        &[
            "providerRef",
            "eventSeverity",
            "eventSources",
            "exclusionList",
            "summary",
            "suspend",
        ],
    ),
    (
        "v1beta2",
        &[
            "providerRef",
            "eventSeverity",
            "eventSources",
            "inclusionList",
            "eventMetadata",
            "exclusionList",
            "summary",
            "suspend",
        ],
    ),
    (
        "v1beta3",
        &[
            "providerRef",
            "eventSeverity",
            "eventSources",
            "inclusionList",
            "eventMetadata",
            "exclusionList",
            "summary",
            "suspend",
        ],
    ),
];

fn provider_value(field: &str) -> &'static str {
    match field {
        "type" => "github",
        "interval" => "10m",
        "channel" => "general",
        "username" => "flux",
        "address" => "https://github.com/org/repo",
        "timeout" => "30s",
        "proxy" => "http://proxy.example.com:3128",
        "proxySecretRef" | "secretRef" | "certSecretRef" => "{name: s}",
        "serviceAccountName" => "notifier",
        "suspend" => "false",
        "commitStatusExpr" => "\"event.involvedObject.kind + '/' + event.involvedObject.name\"",
        other => panic!("no test value for Provider field {other}"),
    }
}

fn alert_value(field: &str) -> &'static str {
    match field {
        "providerRef" => "{name: p}",
        "eventSeverity" => "error",
        // Every CrossNamespaceObjectReference field (matchLabels only warns).
        "eventSources" => {
            "[{apiVersion: kustomize.toolkit.fluxcd.io/v1, kind: Kustomization, name: '*', namespace: apps, matchLabels: {app: web}}]"
        }
        "inclusionList" => "['^Reconciliation']",
        "eventMetadata" => "{env: prod}",
        "exclusionList" => "['^Dependencies']",
        "summary" => "cluster one",
        "suspend" => "false",
        other => panic!("no test value for Alert field {other}"),
    }
}

/// A manifest with the metadata and status a `kubectl get -o yaml` export carries.
fn manifest(kind: &str, version: &str, spec: &str) -> String {
    let status = if version == "v1beta3" {
        // v1beta3 objects have no status; herald ignores one anyway.
        String::new()
    } else {
        "status:\n  observedGeneration: 1\n  lastHandledReconcileAt: x\n  conditions: [{type: Ready, status: 'True', reason: Succeeded, message: ok, lastTransitionTime: '2024-01-01T00:00:00Z'}]\n".to_owned()
    };
    format!(
        "apiVersion: notification.toolkit.fluxcd.io/{version}\nkind: {kind}\nmetadata:\n  name: x\n  namespace: apps\n  uid: 0c9c2e41-d2f5-4e4b-9c1a-2a6b1f0e7d3c\n  resourceVersion: '42'\n  generation: 1\n  creationTimestamp: '2024-01-01T00:00:00Z'\n  labels: {{app: web}}\n  annotations: {{kubectl.kubernetes.io/last-applied-configuration: x}}\n  finalizers: [finalizers.fluxcd.io]\n  managedFields: [{{manager: kubectl, operation: Apply}}]\nspec:\n{spec}{status}"
    )
}

fn spec(fields: &[&str], value: fn(&str) -> &'static str) -> String {
    fields
        .iter()
        .map(|f| format!("  {f}: {}\n", value(f)))
        .collect()
}

fn problems(text: &str) -> Vec<String> {
    let (_, errors) = parse_str(Path::new("m.yaml"), text);
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn every_upstream_provider_field_loads() {
    for (version, fields) in PROVIDER_FIELDS {
        let text = manifest("Provider", version, &spec(fields, provider_value));
        assert_eq!(
            problems(&text),
            Vec::<String>::new(),
            "Provider {version}:\n{text}"
        );
    }
}

#[test]
fn every_upstream_alert_field_loads() {
    for (version, fields) in ALERT_FIELDS {
        let text = manifest("Alert", version, &spec(fields, alert_value));
        assert_eq!(
            problems(&text),
            Vec::<String>::new(),
            "Alert {version}:\n{text}"
        );
    }
}

/// The other direction: a field of another version that this version lacks is refused.
#[test]
fn fields_a_version_lacks_are_refused() {
    let tables = [
        (
            "Provider",
            PROVIDER_FIELDS,
            provider_value as fn(&str) -> &'static str,
        ),
        ("Alert", ALERT_FIELDS, alert_value),
    ];
    for (kind, table, value) in tables {
        let all: Vec<&str> = table.iter().flat_map(|(_, f)| f.iter().copied()).collect();
        for (version, fields) in table {
            for field in all.iter().filter(|f| !fields.contains(f)) {
                let required = if kind == "Provider" {
                    "type"
                } else {
                    "providerRef"
                };
                let mut with: Vec<&str> = vec![required, field];
                if kind == "Alert" {
                    with.push("eventSources");
                }
                let text = manifest(kind, version, &spec(&with, value));
                let errors = problems(&text);
                assert!(
                    errors.len() == 1
                        && errors[0].contains(&format!("spec.{field}: not a field of")),
                    "{kind} {version} with {field}: {errors:?}"
                );
            }
        }
    }
}
