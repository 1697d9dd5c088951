//! `incident.io`: an alert event for an incident.io HTTP alert source, `firing` for an error
//! and `resolved` otherwise, under the involved object's UID (contract section 5.24; a type of
//! Flux's main branch, not of a release yet). `Progressing` events send nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, json, text};
use herald_http::Request;
use herald_http::provider::{self, HttpProvider, JsonPost, Setup};

use crate::common::{PROGRESSING, object_key};

/// A validated `incident.io` Provider. The Secret's `token` (an API key) is required.
#[derive(Debug)]
pub(crate) struct IncidentIo {
    post: JsonPost,
}

impl HttpProvider for IncidentIo {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint("incident.io alert source URL")?;
        let token = setup.require_token("empty incident.io API token")?;
        let authorization = setup.bearer(Some(&token))?;
        Ok(IncidentIo {
            post: JsonPost::new(endpoint.url(), Some(authorization)),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        if event.reason == PROGRESSING {
            return Ok(None);
        }
        provider::rendered(render(event))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.post.request(body))
    }
}

#[derive(Serialize)]
struct AlertEvent<'a> {
    title: String,
    status: &'static str,
    deduplication_key: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    metadata: BTreeMap<&'a str, &'a str>,
}

/// The request body: `{"title":"<kind>/<name>.<namespace>: <reason>","status":"firing|resolved",
/// "deduplication_key":"<uid>","description":"<message>","metadata":{<metadata>…,"reason":…,
/// "reportingController":…,"severity":…}}` (the three event fields win over metadata keys of
/// the same name; `reportingController` only when the event has one).
pub fn render(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    let mut metadata: BTreeMap<&str, &str> = event
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    metadata.insert("severity", event.severity.as_str());
    metadata.insert("reason", &event.reason);
    if !event.reporting_controller.is_empty() {
        metadata.insert("reportingController", &event.reporting_controller);
    }
    json::to_vec(&AlertEvent {
        title: format!("{}: {}", text::obj_dot(event), event.reason),
        status: if event.severity.is_error() {
            "firing"
        } else {
            "resolved"
        },
        deduplication_key: object_key(event),
        description: &event.message,
        metadata,
    })
}
