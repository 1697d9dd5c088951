//! `alertmanager`: one firing alert per event, POSTed to Alertmanager's `/api/v2/alerts`.
//!
//! The body is Flux's (section 5.15 of the compatibility contract) with two changes, both so
//! that Alertmanager keeps what Flux would lose:
//!
//! * `endsAt` is omitted instead of sent as Go's zero time `0001-01-01T00:00:00Z`. Alertmanager
//!   treats both as "unset" and gives the alert `endsAt = now + resolve_timeout` (5 minutes by
//!   default), so it stays active until Flux stops re-sending it; other receivers of the
//!   Alertmanager API may read the zero time as "resolved in year 1". Omitting it says the
//!   same thing unambiguously.
//! * Label names are made valid Prometheus label names (`[a-zA-Z_][a-zA-Z0-9_]*`, other
//!   characters become `_`): Alertmanager rejects the *whole* request with 400 `invalid label
//!   set` when one metadata key such as `event.toolkit.fluxcd.io/my-key` (→ `my-key`) is not,
//!   so Flux loses such alerts entirely.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json};
use herald_http::Request;
use herald_http::provider::{self, Credential, HttpProvider, JsonPost, Setup};

/// A validated `alertmanager` Provider.
#[derive(Debug)]
pub(crate) struct Alertmanager {
    post: JsonPost,
}

impl HttpProvider for Alertmanager {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        // Flux's order: the Secret's username+password replace a bearer token; Go's HTTP
        // client uses the URL's userinfo only when no Authorization header is set.
        let order = [Credential::Basic, Credential::Bearer, Credential::Userinfo];
        let post = JsonPost::from_setup(setup, "Alertmanager URL", &order)?;
        Ok(Alertmanager { post })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Alert<'a> {
    status: &'static str,
    labels: BTreeMap<Cow<'a, str>, &'a str>,
    annotations: BTreeMap<&'static str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    starts_at: Option<String>,
}

/// The request body: a JSON array holding one alert.
///
/// Labels are the event metadata except `summary` (names made valid, see the module docs),
/// overridden by `alertname` ([`alertname`]), `severity`, `reason`, `kind`, `name`,
/// `namespace` and `reportingcontroller`; annotations are `message` and, when the metadata
/// has one, `summary`; `startsAt` is the event time (omitted when the event has none, so that
/// Alertmanager uses the time of receipt).
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let o = &event.involved_object;
    let mut labels: BTreeMap<Cow<'_, str>, &str> = BTreeMap::new();
    for (key, value) in &event.metadata {
        if key != "summary" && !key.is_empty() {
            labels.insert(label_name(key), value);
        }
    }
    let alertname = alertname(event);
    for (key, value) in [
        ("alertname", alertname.as_str()),
        ("severity", event.severity.as_str()),
        ("reason", event.reason.as_str()),
        ("kind", o.kind.as_str()),
        ("name", o.name.as_str()),
        ("namespace", o.namespace.as_str()),
        ("reportingcontroller", event.reporting_controller.as_str()),
    ] {
        labels.insert(Cow::Borrowed(key), value);
    }
    let mut annotations = BTreeMap::new();
    annotations.insert("message", event.message.as_str());
    if let Some(summary) = event.metadata.get("summary") {
        annotations.insert("summary", summary.as_str());
    }
    let alert = Alert {
        status: "firing",
        labels,
        annotations,
        starts_at: event.timestamp.map(|t| t.to_rfc3339()),
    };
    json::to_vec(&[alert])
}

/// `Flux<Kind><Reason>` with the reason's first letter upper-case and the rest lower-case,
/// as Flux does: `ReconciliationSucceeded` → `FluxKustomizationReconciliationsucceeded`.
pub fn alertname(event: &Event) -> String {
    let mut name = format!("Flux{}", event.involved_object.kind);
    let mut chars = event.reason.chars();
    if let Some(first) = chars.next() {
        name.extend(first.to_uppercase());
        name.push_str(&chars.as_str().to_lowercase());
    }
    name
}

/// A valid Prometheus label name: characters outside `[a-zA-Z0-9_]` become `_`, and a leading
/// digit gets a `_` prefix. Valid names are returned unchanged.
pub fn label_name(key: &str) -> Cow<'_, str> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let starts_ok = key.chars().next().is_some_and(|c| !c.is_ascii_digit());
    if starts_ok && key.chars().all(valid_char) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 1);
    if !starts_ok {
        out.push('_');
    }
    out.extend(key.chars().map(|c| if valid_char(c) { c } else { '_' }));
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{ObjectReference, Severity, Timestamp};

    fn event() -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "Kustomization".into(),
                namespace: "gitops-system".into(),
                name: "webapp".into(),
                ..Default::default()
            },
            severity: Severity::Info,
            timestamp: Timestamp::from_unix(1_664_520_029),
            message: "message".into(),
            reason: "ReconciliationSucceeded".into(),
            reporting_controller: "kustomize-controller".into(),
            ..Default::default()
        }
    }

    #[test]
    fn alertname_lowercases_the_rest_of_the_reason() {
        let mut e = event();
        assert_eq!(alertname(&e), "FluxKustomizationReconciliationsucceeded");
        e.reason = "étatOK".into();
        assert_eq!(alertname(&e), "FluxKustomizationÉtatok");
        e.reason = String::new();
        assert_eq!(alertname(&e), "FluxKustomization");
    }

    #[test]
    fn label_names_are_made_valid() {
        assert!(matches!(label_name("revision"), Cow::Borrowed("revision")));
        assert_eq!(label_name("my-key"), "my_key");
        assert_eq!(label_name("1st"), "_1st");
        assert_eq!(label_name("clé.x/y"), "cl__x_y");
    }

    #[test]
    fn fixed_labels_override_metadata_and_summary_is_an_annotation() {
        let mut e = event();
        e.metadata = [
            ("summary", "Prod"),
            ("name", "spoofed"),
            ("env", "prod"),
            ("a-b", "c"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let body: serde_json::Value = serde_json::from_slice(&render(&e).unwrap()).unwrap();
        let alert = &body[0];
        assert_eq!(alert["labels"]["name"], "webapp");
        assert_eq!(alert["labels"]["env"], "prod");
        assert_eq!(alert["labels"]["a_b"], "c");
        assert!(alert["labels"].get("summary").is_none());
        assert_eq!(alert["annotations"]["summary"], "Prod");
        assert_eq!(alert["startsAt"], "2022-09-30T06:40:29Z");
        assert!(alert.get("endsAt").is_none());
        e.timestamp = None;
        e.metadata.clear();
        let body: serde_json::Value = serde_json::from_slice(&render(&e).unwrap()).unwrap();
        assert!(body[0].get("startsAt").is_none());
        assert!(body[0]["annotations"].get("summary").is_none());
    }
}
