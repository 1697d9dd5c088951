//! Which Alerts an event matches (Flux's section 2.5), through an index so that thousands
//! of Alerts cost a hash lookup, not a scan.
//!
//! An Alert matches when it is not suspended and any of its event sources matches the
//! involved object (same kind, namespace — the Alert's own when the source names none — and
//! name, or `*`), its severity threshold admits the event (`info` admits all, `error` only
//! errors), at least one inclusion regex matches the message (when there are any) and no
//! exclusion regex does. A source with `matchLabels` never matches: a standalone daemon has
//! no access to the object's labels, and loading says so.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Event;
use crate::manifest::Alert;

/// The Alerts of a manifest set, indexed by (namespace, kind) of their event sources.
#[derive(Debug, Default, Clone)]
pub struct AlertIndex {
    alerts: Vec<Arc<Alert>>,
    /// namespace → kind → (alert index, source index), in Alert order (nested, so that a
    /// lookup borrows the event's strings instead of copying them).
    by_object: HashMap<String, HashMap<String, Vec<(usize, usize)>>>,
}

impl AlertIndex {
    /// Indexes `alerts` (suspended ones included: suspension is checked per event, so the
    /// index does not change when only `suspend` does).
    pub fn new(alerts: impl IntoIterator<Item = Alert>) -> Self {
        let alerts: Vec<Arc<Alert>> = alerts.into_iter().map(Arc::new).collect();
        let mut by_object: HashMap<String, HashMap<String, Vec<(usize, usize)>>> = HashMap::new();
        for (ai, alert) in alerts.iter().enumerate() {
            for (si, source) in alert.spec.event_sources.iter().enumerate() {
                if source.match_labels.is_some() {
                    continue;
                }
                let ns = source
                    .namespace
                    .clone()
                    .unwrap_or_else(|| alert.namespace.clone());
                by_object
                    .entry(ns)
                    .or_default()
                    .entry(source.kind.clone())
                    .or_default()
                    .push((ai, si));
            }
        }
        AlertIndex { alerts, by_object }
    }

    /// The number of Alerts indexed.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether no Alert is indexed.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// The Alerts `event` matches, each once, in manifest order.
    pub fn matching(&self, event: &Event) -> Vec<Arc<Alert>> {
        let obj = &event.involved_object;
        let Some(candidates) = self
            .by_object
            .get(&obj.namespace)
            .and_then(|kinds| kinds.get(&obj.kind))
        else {
            return Vec::new();
        };
        let mut out: Vec<Arc<Alert>> = Vec::new();
        let mut last = None;
        for &(ai, si) in candidates {
            if last == Some(ai) {
                continue;
            }
            let alert = &self.alerts[ai];
            let source = &alert.spec.event_sources[si];
            if !(source.name == "*" || source.name == obj.name) {
                continue;
            }
            if alert.spec.suspend || !severity_admits(&alert.spec.event_severity, event) {
                continue;
            }
            if !message_admitted(alert, &event.message) {
                continue;
            }
            last = Some(ai);
            out.push(alert.clone());
        }
        out
    }
}

/// `info` admits every severity; any other threshold only the same severity.
fn severity_admits(threshold: &str, event: &Event) -> bool {
    threshold == "info" || threshold == event.severity.as_str()
}

/// Inclusion (any must match, when present), then exclusion (none may match): exclusion wins.
fn message_admitted(alert: &Alert, message: &str) -> bool {
    let spec = &alert.spec;
    if !spec.inclusion_list.is_empty() && !spec.inclusion_list.iter().any(|re| re.is_match(message))
    {
        return false;
    }
    !spec.exclusion_list.iter().any(|re| re.is_match(message))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifest::parse_str;
    use crate::{ObjectReference, Severity};

    fn index(yaml: &str) -> AlertIndex {
        let (set, errors) = parse_str(Path::new("a.yaml"), yaml);
        assert!(errors.is_empty(), "{errors:?}");
        AlertIndex::new(set.alerts)
    }

    fn alert(name: &str, ns: &str, spec: &str) -> String {
        format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  providerRef: {{name: p}}\n{spec}\n"
        )
    }

    fn event(kind: &str, ns: &str, name: &str, severity: Severity, message: &str) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
                ..Default::default()
            },
            severity,
            message: message.into(),
            ..Default::default()
        }
    }

    fn names(index: &AlertIndex, e: &Event) -> Vec<String> {
        index.matching(e).iter().map(|a| a.name.clone()).collect()
    }

    #[test]
    fn sources_kinds_names_namespaces() {
        let idx = index(&[
            alert("any-ks", "apps", "  eventSources: [{kind: Kustomization, name: '*'}]"),
            alert("one-ks", "apps", "  eventSources: [{kind: Kustomization, name: web}]"),
            alert("other-ns", "flux", "  eventSources: [{kind: Kustomization, name: '*', namespace: apps}]"),
            alert("own-ns-only", "flux", "  eventSources: [{kind: Kustomization, name: '*'}]"),
            alert("two-sources", "apps", "  eventSources: [{kind: GitRepository, name: '*'}, {kind: Kustomization, name: '*'}]"),
            alert("glob-is-literal", "apps", "  eventSources: [{kind: Kustomization, name: 'we*'}]"),
        ]
        .concat());
        let e = event("Kustomization", "apps", "web", Severity::Info, "m");
        assert_eq!(
            names(&idx, &e),
            ["any-ks", "one-ks", "other-ns", "two-sources"]
        );
        let e = event("Kustomization", "apps", "api", Severity::Info, "m");
        assert_eq!(names(&idx, &e), ["any-ks", "other-ns", "two-sources"]);
        let e = event("kustomization", "apps", "web", Severity::Info, "m");
        assert!(names(&idx, &e).is_empty(), "kind is case-sensitive");
        let e = event("GitRepository", "apps", "web", Severity::Info, "m");
        assert_eq!(names(&idx, &e), ["two-sources"]);
    }

    #[test]
    fn severity_suspend_and_lists() {
        let idx = index(&[
            alert("errors", "ns", "  eventSeverity: error\n  eventSources: [{kind: Bucket, name: '*'}]"),
            alert("all", "ns", "  eventSources: [{kind: Bucket, name: '*'}]"),
            alert("suspended", "ns", "  suspend: true\n  eventSources: [{kind: Bucket, name: '*'}]"),
            alert("included", "ns", "  inclusionList: ['^Fetched', 'revision']\n  eventSources: [{kind: Bucket, name: '*'}]"),
            alert("excluded", "ns", "  exclusionList: ['skip me']\n  eventSources: [{kind: Bucket, name: '*'}]"),
            alert("both", "ns", "  inclusionList: ['Fetched']\n  exclusionList: ['skip me']\n  eventSources: [{kind: Bucket, name: '*'}]"),
            alert("labels", "ns", "  eventSources: [{kind: Bucket, name: '*', matchLabels: {app: x}}]"),
        ]
        .concat());
        let e = event("Bucket", "ns", "b", Severity::Info, "Fetched revision 1");
        assert_eq!(names(&idx, &e), ["all", "included", "excluded", "both"]);
        let e = event("Bucket", "ns", "b", Severity::Error, "Fetched but skip me");
        assert_eq!(names(&idx, &e), ["errors", "all", "included"]);
        let e = event("Bucket", "ns", "b", Severity::Info, "other");
        assert_eq!(names(&idx, &e), ["all", "excluded"]);
    }

    #[test]
    fn thousands_of_alerts_index_by_object() {
        let yaml: String = (0..2000)
            .map(|i| {
                alert(
                    &format!("a{i}"),
                    &format!("ns{i}"),
                    "  eventSources: [{kind: Kustomization, name: '*'}]",
                )
            })
            .collect();
        let idx = index(&yaml);
        assert_eq!(idx.len(), 2000);
        let e = event("Kustomization", "ns1234", "x", Severity::Info, "m");
        assert_eq!(names(&idx, &e), ["a1234"]);
    }
}
