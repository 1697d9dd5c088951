//! `pagerduty`: PagerDuty Events API v2 (contract section 5.17). An `error` triggers an alert,
//! any other event resolves it, both under the involved object's UID as de-duplication key,
//! and an `info` event is also recorded as a change event; `Progressing` events send nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use herald_core::{BuildError, DeliveryError, Event, SecretString, json, text};
use herald_http::Request;
use herald_http::provider::{self, FollowUp, HttpProvider, JsonPost, Setup};

use crate::common::{PROGRESSING, object_key};

/// Go's zero time in RFC 3339, what Flux writes for an event without a time.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A validated `pagerduty` Provider: the Events API root and the routing key (`spec.channel`).
/// The routing key is kept out of messages and `Debug` output: whoever has it can open
/// incidents.
#[derive(Debug)]
pub(crate) struct PagerDuty {
    event: JsonPost,
    change: JsonPost,
    routing_key: SecretString,
}

impl HttpProvider for PagerDuty {
    const SEND_FAILED: Option<&'static str> = Some("failed sending event");

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        // Flux keeps only `scheme://host` of the address: any Events API URL of the account's
        // region works (`https://events.eu.pagerduty.com/v2/enqueue`).
        let origin = setup.endpoint("PagerDuty endpoint URL")?.origin();
        let routing_key = setup.config().channel.trim();
        if routing_key.is_empty() {
            return Err(BuildError::invalid(
                "spec.channel",
                "the PagerDuty routing key is empty (set spec.channel to the integration key \
                 of the service's Events API v2 integration)",
            ));
        }
        setup.secret(routing_key);
        Ok(PagerDuty {
            event: JsonPost::new(format!("{origin}/v2/enqueue"), None),
            change: JsonPost::new(format!("{origin}/v2/change/enqueue"), None),
            routing_key: SecretString::new(routing_key),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        if event.reason == PROGRESSING {
            return Ok(None);
        }
        provider::rendered(render_event(event, self.routing_key.expose()))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(self.event.request(body))
    }

    fn follow_ups(&self, event: &Event) -> Result<Vec<FollowUp>, DeliveryError> {
        if event.severity != herald_core::Severity::Info {
            return Ok(Vec::new());
        }
        let body = render_change(event, self.routing_key.expose())
            .map_err(|e| provider::encode_error(&e))?;
        Ok(vec![FollowUp {
            request: self.change.request(body),
            send_failed: Some("failed sending change event"),
        }])
    }
}

#[derive(Serialize)]
struct V2Event<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<V2Payload<'a>>,
}

#[derive(Serialize)]
struct V2Payload<'a> {
    summary: String,
    source: String,
    severity: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    component: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    custom_details: Details<'a>,
}

#[derive(Serialize)]
struct ChangeEvent<'a> {
    routing_key: &'a str,
    payload: ChangePayload<'a>,
}

#[derive(Serialize)]
struct ChangePayload<'a> {
    summary: String,
    source: String,
    timestamp: String,
    custom_details: Details<'a>,
}

#[derive(Serialize)]
struct Details<'a> {
    message: &'a str,
    metadata: &'a BTreeMap<String, String>,
}

/// `<desc(reason)>: <lower(Kind/name)>`: `failed: gitrepository/test-app`.
fn summary(event: &Event) -> String {
    format!(
        "{}: {}",
        text::reason_words(&event.reason),
        text::name_lc(event)
    )
}

fn source(event: &Event) -> String {
    format!("Flux {}", event.reporting_controller)
}

fn timestamp(event: &Event) -> String {
    event
        .timestamp
        .map_or_else(|| GO_ZERO_TIME.to_owned(), |t| t.to_rfc3339())
}

fn details(event: &Event) -> Details<'_> {
    Details {
        message: &event.message,
        metadata: &event.metadata,
    }
}

/// The Events API v2 body (`POST /v2/enqueue`): `trigger` with a payload for an `error`,
/// `resolve` for any other severity.
pub fn render_event(event: &Event, routing_key: &str) -> Result<Vec<u8>, serde_json::Error> {
    let payload = event.severity.is_error().then(|| V2Payload {
        summary: summary(event),
        source: source(event),
        severity: "error",
        timestamp: timestamp(event),
        component: &event.involved_object.name,
        group: &event.involved_object.kind,
        custom_details: details(event),
    });
    json::to_vec(&V2Event {
        routing_key,
        event_action: if payload.is_some() {
            "trigger"
        } else {
            "resolve"
        },
        dedup_key: object_key(event),
        payload,
    })
}

/// The change event body (`POST /v2/change/enqueue`), sent for `info` events.
pub fn render_change(event: &Event, routing_key: &str) -> Result<Vec<u8>, serde_json::Error> {
    json::to_vec(&ChangeEvent {
        routing_key,
        payload: ChangePayload {
            summary: summary(event),
            source: source(event),
            timestamp: timestamp(event),
            custom_details: details(event),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{ObjectReference, Severity, Timestamp};

    /// The event of Flux's `TestToPagerDutyV2Event`.
    fn flux_case(severity: Severity, reason: &str) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "GitRepository".into(),
                namespace: "flux-system".into(),
                name: "test-app".into(),
                uid: "1234".into(),
                ..Default::default()
            },
            severity,
            timestamp: Timestamp::parse("2020-01-01T00:00:00Z").ok(),
            message: "message".into(),
            reason: reason.into(),
            metadata: [("key1", "val1"), ("key2", "val2")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            reporting_controller: "source-controller".into(),
            ..Default::default()
        }
    }

    fn text(body: Vec<u8>) -> String {
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn flux_v2_events() {
        let info = flux_case(Severity::Info, "Succeeded");
        assert_eq!(
            text(render_event(&info, "notARealRoutingKey").unwrap()),
            r#"{"routing_key":"notARealRoutingKey","event_action":"resolve","dedup_key":"1234"}"#
        );
        let error = flux_case(Severity::Error, "Failed");
        assert_eq!(
            text(render_event(&error, "notARealRoutingKey").unwrap()),
            concat!(
                r#"{"routing_key":"notARealRoutingKey","event_action":"trigger","dedup_key":"1234","#,
                r#""payload":{"summary":"failed: gitrepository/test-app","source":"Flux source-controller","#,
                r#""severity":"error","timestamp":"2020-01-01T00:00:00Z","component":"test-app","#,
                r#""group":"GitRepository","custom_details":{"message":"message","#,
                r#""metadata":{"key1":"val1","key2":"val2"}}}}"#
            )
        );
    }

    #[test]
    fn flux_change_event() {
        let info = flux_case(Severity::Info, "Succeeded");
        assert_eq!(
            text(render_change(&info, "notARealRoutingKey").unwrap()),
            concat!(
                r#"{"routing_key":"notARealRoutingKey","payload":{"summary":"succeeded: gitrepository/test-app","#,
                r#""source":"Flux source-controller","timestamp":"2020-01-01T00:00:00Z","#,
                r#""custom_details":{"message":"message","metadata":{"key1":"val1","key2":"val2"}}}}"#
            )
        );
    }

    #[test]
    fn events_without_uid_or_time_stay_paired_and_dated_as_go_dates_them() {
        let mut e = flux_case(Severity::Error, "Failed");
        e.involved_object.uid.clear();
        e.timestamp = None;
        e.metadata.clear();
        let body = text(render_event(&e, "k").unwrap());
        assert!(
            body.contains(r#""dedup_key":"GitRepository/flux-system/test-app""#),
            "{body}"
        );
        assert!(
            body.contains(r#""timestamp":"0001-01-01T00:00:00Z""#),
            "{body}"
        );
        assert!(body.contains(r#""metadata":{}"#), "{body}");
    }
}
