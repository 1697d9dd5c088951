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
//!
//! The engine is the cargo feature `templates` (off by default here; the herald binary turns it
//! on by default). Without it this module still reads the annotations and the per-type table,
//! and [`MessageTemplate::compile`] refuses every template with that reason, so a slim build
//! says why a templated object is not ready instead of ignoring its template.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::{DeliveryError, Event, ProviderType};

#[cfg(feature = "templates")]
#[path = "template/engine.rs"]
mod engine;
#[cfg(not(feature = "templates"))]
#[path = "template/no_engine.rs"]
mod engine;

use engine::Engine;

/// Whether this build has the template engine (the cargo feature `templates`).
pub const ENGINE_BUILT_IN: bool = cfg!(feature = "templates");

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
    engine: Engine,
    use_: TemplateUse,
    content_type: Option<String>,
    provider: Arc<ProviderVars>,
}

/// Why a template cannot be used: what, with the line and column inside the template when the
/// engine found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateProblem {
    /// What is wrong, in full (position included).
    pub message: String,
}

impl TemplateProblem {
    fn plain(message: impl Into<String>) -> Self {
        TemplateProblem {
            message: message.into(),
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
        let compiled = MessageTemplate {
            engine: Engine::compile(source)?,
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
        for (what, event) in engine::sample_events() {
            let during = format!(" (rendering the sample {what} event)");
            let out = self
                .render_text(&event, &alert)
                .map_err(|e| TemplateProblem::plain(format!("{e}{during}")))?;
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

    /// The engine's output, or its error with line and column.
    fn render_text(&self, event: &Event, alert: &serde_json::Value) -> Result<String, String> {
        self.engine
            .render(event, AlertVars::of(alert), &self.provider)
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

#[cfg(all(test, feature = "templates"))]
mod tests;
