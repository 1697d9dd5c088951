//! Message templates of Providers and Alerts: what a template sets for each provider type, the
//! context it is rendered against, and the check every template passes when the manifests are
//! loaded.
//!
//! A template comes from the `herald.dev/template` annotation (inline) or
//! `herald.dev/template-from` (`<configmap>/<key>` in the same namespace) of a Provider or an
//! Alert; the Alert's wins. It is compiled once per load by [`MessageTemplate::compile`] with
//! the engine of `herald-template`, and rendered against four sample events (info and error,
//! with and without metadata), so that a syntax error, an unknown variable, a runaway loop or
//! an output the provider cannot use is found at load and makes only its object not ready.
//! The compiled templates of a Provider and of its Alerts travel in its
//! [`ProviderConfig`](crate::ProviderConfig) ([`Templates`]); the notifier picks the one of the
//! Alert a delivery is for ([`Templates::for_alert`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_template::{Limits, Template, TemplateError};
use serde::Serialize;

use crate::{DeliveryError, Event, ObjectReference, ProviderType, Severity, Timestamp};

/// An inline template (Provider or Alert annotation).
pub const TEMPLATE_ANNOTATION: &str = "herald.dev/template";

/// A template held in a ConfigMap of the same namespace: `<configmap>/<key>`.
pub const TEMPLATE_FROM_ANNOTATION: &str = "herald.dev/template-from";

/// The `Content-Type` of a `generic`/`generic-hmac` body rendered by a template; without it the
/// body must be JSON and is sent as `application/json`.
pub const TEMPLATE_CONTENT_TYPE_ANNOTATION: &str = "herald.dev/template-content-type";

/// What a template sets for a provider type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateUse {
    /// The whole request body (`generic`, `generic-hmac`): JSON unless a content type is given.
    Body,
    /// The `repository_dispatch` body: a JSON object with `event_type` (a non-empty string) and
    /// optionally `client_payload` (an object).
    Dispatch,
    /// The message text, inside the service's usual message (card, attachment, colours); the
    /// alerting types' message or summary; the commit-status types' description.
    Message,
    /// Nothing: the type takes no template, for the reason given.
    Refused(&'static str),
}

impl TemplateUse {
    /// What a template sets for `ty`.
    pub fn of(ty: ProviderType) -> TemplateUse {
        use ProviderType as T;
        match ty {
            T::Generic | T::GenericHmac => TemplateUse::Body,
            T::GitHubDispatch => TemplateUse::Dispatch,
            T::Slack
            | T::Discord
            | T::MsTeams
            | T::Rocket
            | T::GoogleChat
            | T::Webex
            | T::Telegram
            | T::Lark
            | T::Matrix
            | T::Zulip
            | T::Zoom => TemplateUse::Message,
            T::Sentry
            | T::Opsgenie
            | T::Alertmanager
            | T::Grafana
            | T::PagerDuty
            | T::Datadog
            | T::IncidentIo => TemplateUse::Message,
            // The commit status's description; spec.commitStatusExpr still sets its id.
            T::GitHub
            | T::GitLab
            | T::Gitea
            | T::Bitbucket
            | T::BitbucketServer
            | T::AzureDevOps => TemplateUse::Message,
            T::GitHubPullRequestComment
            | T::GitLabMergeRequestComment
            | T::GiteaPullRequestComment => TemplateUse::Refused(
                "change-request comments are Flux's status post, kept identical so that \
                     herald edits the comments Flux wrote",
            ),
            T::AzureEventHub | T::GooglePubSub | T::Nats => {
                TemplateUse::Refused("it publishes the event's JSON itself, for programs to read")
            }
            T::Otel => TemplateUse::Refused(
                "its span is the event's own record (the object, its metadata and the status), \
                 read by tracing tools by field, with no message text to shape",
            ),
        }
    }
}

/// The Provider as a template sees it: `provider.namespace`, `.name`, `.type`, `.channel`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProviderVars {
    /// The Provider's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.type`.
    #[serde(rename = "type")]
    pub provider_type: String,
    /// `spec.channel`.
    pub channel: String,
}

/// The Alert as a template sees it: `alert.namespace`, `.name`, `.summary` (`spec.summary`,
/// or else `spec.eventMetadata.summary`, or empty). Empty when a delivery has no Alert (`herald
/// send`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AlertVars<'a> {
    /// The Alert's namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its summary.
    pub summary: &'a str,
}

impl<'a> AlertVars<'a> {
    /// The variables of the Alert whose manifest object is `object` (`null`: none).
    pub fn of(object: &'a serde_json::Value) -> Self {
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(object, |v, k| v.get(k))
                .and_then(serde_json::Value::as_str)
        };
        let name = text(&["metadata", "name"]).unwrap_or_default();
        let namespace = match text(&["metadata", "namespace"]) {
            Some(ns) if !ns.is_empty() => ns,
            _ if name.is_empty() => "",
            _ => crate::manifest::DEFAULT_NAMESPACE,
        };
        let summary = text(&["spec", "summary"])
            .filter(|s| !s.is_empty())
            .or_else(|| text(&["spec", "eventMetadata", "summary"]))
            .unwrap_or_default();
        AlertVars {
            namespace,
            name,
            summary,
        }
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

/// The first 7 characters of the digest of a Flux revision (`main@sha1:69b59063…` →
/// `69b5906`), or the revision itself when it has no digest (`v1.2.3`).
pub fn short_revision(revision: &str) -> &str {
    match revision.rsplit_once(':') {
        Some((_, digest)) if digest.len() > 7 && digest.is_char_boundary(7) => &digest[..7],
        Some((_, digest)) => digest,
        None => revision,
    }
}

/// A template compiled and checked for one Provider: what it sets and how to render it.
#[derive(Clone, Debug)]
pub struct MessageTemplate {
    template: Arc<Template>,
    use_: TemplateUse,
    content_type: Option<String>,
    provider: Arc<ProviderVars>,
}

/// Why a template cannot be used: where in the template, when known, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateProblem {
    /// The engine's error, with line and column inside the template.
    pub error: Option<TemplateError>,
    /// What is wrong, in full (position included).
    pub message: String,
}

impl TemplateProblem {
    fn plain(message: impl Into<String>) -> Self {
        TemplateProblem {
            error: None,
            message: message.into(),
        }
    }

    fn engine(error: TemplateError, during: &str) -> Self {
        TemplateProblem {
            message: format!("{error}{during}"),
            error: Some(error),
        }
    }
}

impl MessageTemplate {
    /// Compiles `source` for a Provider of type `ty` (`provider`) and renders it against the
    /// sample events, checking that each output is what the type needs.
    pub fn compile(
        source: &str,
        ty: ProviderType,
        content_type: Option<&str>,
        provider: ProviderVars,
    ) -> Result<MessageTemplate, TemplateProblem> {
        let use_ = TemplateUse::of(ty);
        if let TemplateUse::Refused(why) = use_ {
            return Err(TemplateProblem::plain(format!(
                "provider type `{ty}` takes no template: {why}"
            )));
        }
        if content_type.is_some() && use_ != TemplateUse::Body {
            return Err(TemplateProblem::plain(format!(
                "{TEMPLATE_CONTENT_TYPE_ANNOTATION} applies to generic and generic-hmac only, \
                 not to `{ty}`"
            )));
        }
        if let Some(ct) = content_type
            && (ct.is_empty() || !ct.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(TemplateProblem::plain(format!(
                "{TEMPLATE_CONTENT_TYPE_ANNOTATION}: {ct:?} is not a header value (printable \
                 ASCII on one line)"
            )));
        }
        let template = Template::compile(source, &Limits::DEFAULT)
            .map_err(|e| TemplateProblem::engine(e, ""))?;
        let compiled = MessageTemplate {
            template: Arc::new(template),
            use_,
            content_type: content_type.map(str::to_owned),
            provider: Arc::new(provider),
        };
        compiled.check_samples()?;
        Ok(compiled)
    }

    fn check_samples(&self) -> Result<(), TemplateProblem> {
        let alert = serde_json::json!({
            "metadata": {"namespace": self.provider.namespace, "name": "sample-alert"},
            "spec": {"summary": "sample summary"},
        });
        for (what, event) in sample_events() {
            let during = format!(" (rendering the sample {what} event)");
            let out = self
                .render_text(&event, &alert)
                .map_err(|e| TemplateProblem::engine(e, &during))?;
            self.check_output(&out)
                .map_err(|m| TemplateProblem::plain(format!("{m}{during}")))?;
        }
        Ok(())
    }

    /// Whether `out` is what this template's type needs.
    fn check_output(&self, out: &str) -> Result<(), String> {
        match self.use_ {
            TemplateUse::Body if self.content_type.is_none() => {
                serde_json::from_str::<serde::de::IgnoredAny>(out)
                    .map(|_| ())
                    .map_err(|e| {
                        format!(
                            "the body is not valid JSON ({e}); render JSON, or set \
                         {TEMPLATE_CONTENT_TYPE_ANNOTATION} to send something else"
                        )
                    })
            }
            TemplateUse::Dispatch => check_dispatch(out),
            _ => Ok(()),
        }
    }

    fn render_text(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        let context = Context::new(event, AlertVars::of(alert), &self.provider);
        self.template.render(&context)
    }

    /// Renders for a delivery of `event` matched by the Alert whose manifest object is `alert`
    /// (`null` when there is none). A failure is permanent: the same event renders the same.
    pub fn render(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<String, DeliveryError> {
        let out = self
            .render_text(event, alert)
            .map_err(|e| DeliveryError::permanent(format!("the message template failed: {e}")))?;
        self.check_output(&out)
            .map_err(|m| DeliveryError::permanent(format!("the message template failed: {m}")))?;
        Ok(out)
    }

    /// What the template sets.
    pub fn template_use(&self) -> TemplateUse {
        self.use_
    }

    /// The `Content-Type` of a body it renders, when not JSON.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }
}

/// The body of a `repository_dispatch` must be an object with a non-empty `event_type`.
fn check_dispatch(out: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(out)
        .map_err(|e| format!("the dispatch body is not valid JSON ({e})"))?;
    match value.get("event_type") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => {}
        _ => {
            return Err("the dispatch body needs \"event_type\": a non-empty string".to_owned());
        }
    }
    match value.get("client_payload") {
        None | Some(serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err("the dispatch body's \"client_payload\" must be an object".to_owned()),
    }
}

/// The events every template is rendered against at load.
fn sample_events() -> [(&'static str, Event); 4] {
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

/// The compiled templates of one Provider: its own, and those of the Alerts that use it (which
/// win over the Provider's).
#[derive(Clone, Debug, Default)]
pub struct Templates {
    provider: Option<MessageTemplate>,
    alerts: BTreeMap<(String, String), MessageTemplate>,
}

impl Templates {
    /// The Provider's own template.
    pub fn set_provider(&mut self, template: MessageTemplate) {
        self.provider = Some(template);
    }

    /// The template of the Alert `namespace/name`.
    pub fn add_alert(&mut self, namespace: &str, name: &str, template: MessageTemplate) {
        self.alerts
            .insert((namespace.to_owned(), name.to_owned()), template);
    }

    /// Whether neither the Provider nor any of its Alerts has a template.
    pub fn is_empty(&self) -> bool {
        self.provider.is_none() && self.alerts.is_empty()
    }

    /// The template of a delivery for the Alert whose manifest object is `alert` (`null`: no
    /// Alert): the Alert's own, or else the Provider's, or none.
    pub fn for_alert(&self, alert: &serde_json::Value) -> Option<&MessageTemplate> {
        if !self.alerts.is_empty() {
            let vars = AlertVars::of(alert);
            let key = (vars.namespace.to_owned(), vars.name.to_owned());
            if let Some(t) = self.alerts.get(&key) {
                return Some(t);
            }
        }
        self.provider.as_ref()
    }
}

#[cfg(test)]
mod tests;
