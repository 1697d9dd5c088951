//! `sentry`: error events become Sentry error events, info events become transactions, sent
//! as one envelope to the DSN's envelope endpoint.
//!
//! The event model, the envelope format, DSN parsing and the `X-Sentry-Auth` header come from
//! the `sentry-types` protocol crate (no Sentry client, no global hub): herald builds the
//! envelope and sends it with its own HTTP client, so a failed delivery is reported and
//! retried like any other, where Flux's SDK transport drops it silently.

use std::collections::BTreeMap;
use std::time::SystemTime;

use sentry_types::protocol::v7 as proto;
use sentry_types::{Auth, Dsn, Uuid};
use sha2::{Digest, Sha512};

use herald_core::{BuildError, DeliveryError, Event, Severity, json, text};
use herald_http::provider::{self, HttpProvider, Setup};
use herald_http::{HeaderName, HeaderValue, Request};

/// The `sentry_client` of the auth header.
const CLIENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// The content type of an envelope.
const ENVELOPE_CONTENT_TYPE: &str = "application/x-sentry-envelope";

/// A validated `sentry` Provider: the address is the project's DSN, `spec.channel` the
/// environment.
#[derive(Debug)]
pub(crate) struct Sentry {
    url: String,
    auth: HeaderValue,
    environment: String,
    provider_id: String,
}

impl HttpProvider for Sentry {
    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let field = setup.address_field();
        let raw = setup.config().address.expose().trim();
        if raw.is_empty() {
            return Err(BuildError::invalid(field, "DSN cannot be empty"));
        }
        // ParseDsnError never quotes the DSN, which holds the project key.
        let dsn: Dsn = raw.parse().map_err(|e| {
            BuildError::invalid(
                field,
                format!("invalid Sentry DSN ({e}); expected https://<key>@<host>/<project>"),
            )
        })?;
        setup.secret(dsn.public_key());
        if let Some(secret) = dsn.secret_key() {
            setup.secret(secret);
        }
        let auth = auth_header(&dsn)
            .map_err(|e| BuildError::invalid(field, format!("invalid Sentry DSN ({e})")))?;
        Ok(Sentry {
            url: dsn.envelope_api_url().to_string(),
            auth: provider::sensitive(&auth, field)?,
            environment: setup.config().channel.clone(),
            provider_id: setup.config().id(),
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        render(event, &self.environment, &self.provider_id)
            .map_err(|e| DeliveryError::permanent(format!("cannot encode the envelope: {e}")))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(Request::post_json(self.url.as_str(), body)
            .header(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static(ENVELOPE_CONTENT_TYPE),
            )
            .header(HeaderName::from_static("x-sentry-auth"), self.auth.clone()))
    }
}

/// `X-Sentry-Auth: Sentry sentry_key=<key>, sentry_version=7, sentry_client=herald/<v>`
/// (plus `sentry_secret` for legacy DSNs that carry one).
///
/// Built with sentry-types' `Auth` from the DSN's keys rather than `Dsn::to_auth`, which
/// stamps `sentry_timestamp` with the time it is called: the notifier is built once and lives
/// for days, so that stamp would go stale, and the header would no longer be the same bytes
/// from one delivery of an event to the next.
fn auth_header(dsn: &Dsn) -> Result<String, sentry_types::ParseAuthError> {
    let mut pairs = vec![
        ("sentry_key", dsn.public_key()),
        ("sentry_version", "7"),
        ("sentry_client", CLIENT),
    ];
    if let Some(secret) = dsn.secret_key() {
        pairs.push(("sentry_secret", secret));
    }
    Ok(Auth::from_pairs(pairs)?.to_string())
}

/// Deterministic ids: the same event through the same Provider always gets the same event id,
/// so Sentry drops a retried delivery that had in fact arrived.
struct Ids {
    event_id: Uuid,
    trace_id: proto::TraceId,
    span_id: proto::SpanId,
}

fn ids(event: &Event, environment: &str, provider_id: &str) -> Result<Ids, serde_json::Error> {
    let mut hasher = Sha512::new();
    hasher.update(provider_id.as_bytes());
    hasher.update(b"\n");
    hasher.update(environment.as_bytes());
    hasher.update(b"\n");
    hasher.update(json::to_vec(event)?);
    let digest = hasher.finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    // A version-4-shaped UUID, as the SDKs send.
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let mut trace = [0u8; 16];
    trace.copy_from_slice(&digest[16..32]);
    let mut span = [0u8; 8];
    span.copy_from_slice(&digest[32..40]);
    Ok(Ids {
        event_id: Uuid::from_bytes(uuid),
        trace_id: trace.into(),
        span_id: span.into(),
    })
}

/// The `flux_*` tags of section 5.9 (empty values left out: Sentry drops them anyway).
fn flux_tags(event: &Event) -> BTreeMap<String, String> {
    let o = &event.involved_object;
    [
        ("flux_involved_object_kind", &o.kind),
        ("flux_involved_object_namespace", &o.namespace),
        ("flux_involved_object_name", &o.name),
        ("flux_reporting_controller", &event.reporting_controller),
        ("flux_reporting_instance", &event.reporting_instance),
        ("flux_reason", &event.reason),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The envelope for `event`, or `None` for severities other than `info` and `error` (Flux
/// sends nothing for those either).
///
/// * `error`: an error event with `message`, `transaction` = `<Kind>: <namespace>/<name>`,
///   `server_name` = the reporting controller, `timestamp` = the event time,
///   `contexts.metadata` = the metadata, the `flux_*` tags, and `environment` = `spec.channel`.
///   (`level` is not written: `error` is the protocol's default.)
/// * `info`: a transaction named `<Kind>: <namespace>/<name>`, starting and ending at the
///   event time, whose trace context is one span with `op` `event` and the message as its
///   description (transactions have no `message` field; the message is also in
///   `extra.message`), tagged with the `flux_*` tags plus every metadata entry (the `flux_*`
///   tags win a clash), with `environment` and `server_name` as above.
pub fn render(
    event: &Event,
    environment: &str,
    provider_id: &str,
) -> Result<Option<Vec<u8>>, std::io::Error> {
    let ids = ids(event, environment, provider_id)?;
    let when: SystemTime = event.timestamp.map_or_else(SystemTime::now, |t| {
        SystemTime::from(t.as_offset_date_time())
    });
    let environment = non_empty(environment).map(Into::into);
    let server_name = non_empty(&event.reporting_controller).map(Into::into);
    let mut envelope = proto::Envelope::new();
    match event.severity {
        Severity::Error => {
            let mut contexts = BTreeMap::new();
            if !event.metadata.is_empty() {
                let metadata = event
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), proto::Value::String(v.clone())))
                    .collect();
                contexts.insert("metadata".to_owned(), proto::Context::Other(metadata));
            }
            envelope.add_item(proto::Event {
                event_id: ids.event_id,
                level: proto::Level::Error,
                message: Some(event.message.clone()),
                transaction: Some(text::summary(event)),
                server_name,
                environment,
                timestamp: when,
                contexts,
                tags: flux_tags(event),
                ..Default::default()
            });
        }
        Severity::Info => {
            let mut tags: BTreeMap<String, String> = event.metadata.clone();
            tags.extend(flux_tags(event));
            let trace = proto::TraceContext {
                span_id: ids.span_id,
                trace_id: ids.trace_id,
                op: Some("event".to_owned()),
                description: non_empty(&event.message),
                status: Some(proto::SpanStatus::Ok),
                ..Default::default()
            };
            let mut extra = BTreeMap::new();
            extra.insert(
                "message".to_owned(),
                proto::Value::String(event.message.clone()),
            );
            envelope.add_item(proto::Transaction {
                event_id: ids.event_id,
                name: Some(text::summary(event)),
                environment,
                server_name,
                tags,
                extra,
                start_timestamp: when,
                timestamp: Some(when),
                contexts: [("trace".to_owned(), proto::Context::from(trace))].into(),
                ..Default::default()
            });
        }
        Severity::Trace | Severity::Other(_) => return Ok(None),
    }
    let mut out = Vec::with_capacity(1024);
    envelope.to_writer(&mut out)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_urls_and_auth_come_from_the_dsn() {
        let dsn: Dsn = "https://abc123@o1.ingest.sentry.io/42".parse().unwrap();
        assert_eq!(
            dsn.envelope_api_url().as_str(),
            "https://o1.ingest.sentry.io/api/42/envelope/"
        );
        assert_eq!(
            auth_header(&dsn).unwrap(),
            format!("Sentry sentry_key=abc123, sentry_version=7, sentry_client={CLIENT}")
        );
        let dsn: Dsn = "http://k:s@127.0.0.1:9000/sub/path/7".parse().unwrap();
        assert_eq!(
            dsn.envelope_api_url().as_str(),
            "http://127.0.0.1:9000/sub/path/api/7/envelope/"
        );
        assert!(auth_header(&dsn).unwrap().ends_with(", sentry_secret=s"));
    }

    #[test]
    fn other_severities_send_nothing() {
        let event = Event {
            severity: Severity::Trace,
            ..Default::default()
        };
        assert!(render(&event, "", "ns/p").unwrap().is_none());
    }

    #[test]
    fn pre_epoch_times_are_an_error_not_a_panic() {
        let event = Event {
            severity: Severity::Error,
            timestamp: herald_core::Timestamp::from_unix(-10),
            ..Default::default()
        };
        assert!(render(&event, "", "ns/p").is_err());
    }
}
