//! `datadog`: one event per Flux event, POSTed to the Datadog Events API v1 with the
//! `DD-API-KEY` header (contract section 5.18).

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json};
use herald_http::provider::{self, HttpProvider, JsonPost, Setup, TOKEN_FIELD};
use herald_http::{HeaderName, Request};

/// Unix seconds of Go's zero time, what Flux sends for an event without a time.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// The API key header.
const DD_API_KEY: HeaderName = HeaderName::from_static("dd-api-key");

/// A validated `datadog` Provider. The Secret's `token` (the API key, not an application key)
/// is required.
#[derive(Debug)]
pub(crate) struct Datadog {
    post: JsonPost,
    api_key: herald_http::HeaderValue,
}

impl HttpProvider for Datadog {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        // Flux's Datadog client keeps only the scheme and host of the address (the site:
        // `https://api.datadoghq.eu`, `https://api.us5.datadoghq.com`).
        let origin = setup.endpoint("Datadog API URL")?.origin();
        let token = setup.require_token("token cannot be empty")?;
        let api_key = setup.header(token.expose(), TOKEN_FIELD)?;
        Ok(Datadog {
            post: JsonPost::new(format!("{origin}/api/v1/events"), None),
            api_key,
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        provider::rendered(render(event))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self
            .post
            .request(body)
            .header(DD_API_KEY, self.api_key.clone()))
    }
}

/// Datadog's `EventCreateRequest`, whose client writes its fields in key order.
#[derive(Serialize)]
struct EventCreateRequest<'a> {
    alert_type: &'static str,
    date_happened: i64,
    source_type_name: &'static str,
    tags: Vec<String>,
    text: &'a str,
    title: String,
}

/// The request body: `{"alert_type":"error|info","date_happened":<unix seconds>,
/// "source_type_name":"fluxcd","tags":[…],"text":"<message>","title":"Events from the <Kind>
/// <name>/<namespace>"}`.
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let o = &event.involved_object;
    json::to_vec(&EventCreateRequest {
        alert_type: if event.severity.is_error() {
            "error"
        } else {
            "info"
        },
        date_happened: event.timestamp.map_or(GO_ZERO_TIME_UNIX, |t| t.unix()),
        source_type_name: "fluxcd",
        tags: tags(event),
        text: &event.message,
        title: format!("Events from the {} {}/{}", o.kind, o.name, o.namespace),
    })
}

/// Flux's tags, lower-cased as Datadog stores them: `flux_reporting_controller:`,
/// `flux_reason:`, `kube_kind:`, `kube_name:`, `kube_namespace:`, then `<key>:<value>` per
/// metadata entry (in key order, where Flux iterates a Go map).
pub fn tags(event: &Event) -> Vec<String> {
    let o = &event.involved_object;
    let fixed = [
        (
            "flux_reporting_controller",
            event.reporting_controller.as_str(),
        ),
        ("flux_reason", event.reason.as_str()),
        ("kube_kind", o.kind.as_str()),
        ("kube_name", o.name.as_str()),
        ("kube_namespace", o.namespace.as_str()),
    ];
    let metadata = event.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    fixed
        .into_iter()
        .chain(metadata)
        .map(|(k, v)| format!("{k}:{v}").to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_lowercased_as_flux_does() {
        let mut e = herald_core::Event {
            reporting_controller: "Source-Controller".into(),
            reason: "ReconciliationSucceeded".into(),
            ..Default::default()
        };
        e.involved_object.kind = "GitRepository".into();
        e.involved_object.name = "WebApp".into();
        e.involved_object.namespace = "gitops-system".into();
        e.metadata.insert("Env".into(), "PROD".into());
        assert_eq!(
            tags(&e),
            [
                "flux_reporting_controller:source-controller",
                "flux_reason:reconciliationsucceeded",
                "kube_kind:gitrepository",
                "kube_name:webapp",
                "kube_namespace:gitops-system",
                "env:prod",
            ]
        );
        let body = String::from_utf8(render(&e).unwrap()).unwrap();
        assert!(
            body.starts_with(r#"{"alert_type":"info","date_happened":-62135596800,"#),
            "{body}"
        );
        assert!(
            body.ends_with(r#""title":"Events from the GitRepository WebApp/gitops-system"}"#),
            "{body}"
        );
    }
}
