//! The template engine of a build with the `templates` feature: `herald-template`'s sandboxed
//! environment, and the context a template is rendered against.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_template::{Limits, Template};
use serde::Serialize;

use super::{AlertVars, ProviderVars, TemplateProblem, short_revision};
use crate::{Event, ObjectReference, Severity, Timestamp};

/// A compiled template.
#[derive(Clone, Debug)]
pub(super) struct Engine(Arc<Template>);

impl Engine {
    /// Compiles `source` with the default limits.
    pub(super) fn compile(source: &str) -> Result<Engine, TemplateProblem> {
        Template::compile(source, &Limits::DEFAULT)
            .map(|t| Engine(Arc::new(t)))
            .map_err(|e| TemplateProblem::plain(e.to_string()))
    }

    /// Renders for `event`, the Alert `alert` and the Provider `provider`; the error has the
    /// line and column inside the template.
    pub(super) fn render(
        &self,
        event: &Event,
        alert: AlertVars<'_>,
        provider: &ProviderVars,
    ) -> Result<String, String> {
        self.0
            .render(&Context::new(event, alert, provider))
            .map_err(|e| e.to_string())
    }
}

/// The event as a template sees it: the JSON field names of the wire format, with `metadata`
/// always present (an empty map when the event has none).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventVars<'a> {
    involved_object: &'a ObjectReference,
    severity: &'a str,
    timestamp: Option<&'a Timestamp>,
    message: &'a str,
    reason: &'a str,
    metadata: &'a BTreeMap<String, String>,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
}

/// Everything a template can read.
#[derive(Serialize)]
struct Context<'a> {
    event: EventVars<'a>,
    alert: AlertVars<'a>,
    provider: &'a ProviderVars,
    /// `Kind/namespace/name`.
    obj: String,
    /// The `revision` metadata (`main@sha1:69b5906…`), or empty.
    revision: &'a str,
    /// The first 7 characters of the revision's digest, or the revision when it has none.
    short_revision: &'a str,
    is_error: bool,
}

impl<'a> Context<'a> {
    fn new(event: &'a Event, alert: AlertVars<'a>, provider: &'a ProviderVars) -> Self {
        let revision = event.metadata.get("revision").map_or("", String::as_str);
        Context {
            event: EventVars {
                involved_object: &event.involved_object,
                severity: event.severity.as_str(),
                timestamp: event.timestamp.as_ref(),
                message: &event.message,
                reason: &event.reason,
                metadata: &event.metadata,
                reporting_controller: &event.reporting_controller,
                reporting_instance: &event.reporting_instance,
            },
            alert,
            provider,
            obj: crate::text::obj_md(event),
            revision,
            short_revision: short_revision(revision),
            is_error: event.severity.is_error(),
        }
    }
}

/// The events every template is rendered against at load.
pub(super) fn sample_events() -> [(&'static str, Event); 4] {
    let base = Event {
        involved_object: ObjectReference {
            kind: "Kustomization".into(),
            namespace: "flux-system".into(),
            name: "apps".into(),
            uid: "0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a".into(),
            api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
            ..ObjectReference::default()
        },
        severity: Severity::Info,
        timestamp: Timestamp::parse("2026-11-28T10:00:00Z").ok(),
        message: "Reconciliation finished in 1.2s, next run in 10m0s".into(),
        reason: "ReconciliationSucceeded".into(),
        metadata: BTreeMap::new(),
        reporting_controller: "kustomize-controller".into(),
        reporting_instance: "kustomize-controller-7c7b47f5f-8bhrp".into(),
    };
    let with_metadata = |mut e: Event| {
        e.metadata = BTreeMap::from([
            (
                "revision".to_owned(),
                "main@sha1:69b59063470310ebbd88a9156325322a124e55a3".to_owned(),
            ),
            ("summary".to_owned(), "sample summary".to_owned()),
        ]);
        e
    };
    let error = Event {
        severity: Severity::Error,
        message: "Health check failed after 5m0s: timeout waiting for Deployment/apps/web".into(),
        reason: "HealthCheckFailed".into(),
        ..base.clone()
    };
    [
        ("info", base.clone()),
        ("error", error.clone()),
        ("info with metadata", with_metadata(base)),
        ("error with metadata", with_metadata(error)),
    ]
}
