//! `otel`: one OpenTelemetry span per event, exported over OTLP/HTTP as protobuf (contract
//! section 5.22), the span Flux's notification-controller exports through the Go SDK.
//!
//! The trace is the Alert's: its ID is the first 16 bytes of SHA-256 of
//! `<alert UID>:<revision>`, so every event about one revision that one Alert matched lands
//! in one trace. The resource names the Alert (`service.name` `<namespace>/<name>`,
//! `service.namespace`, `service.instance.id` its UID, schema URL of semantic conventions
//! 1.34.0), the scope is `flux:notification-controller`, the span is named
//! `<Kind>: <namespace>/<name>`, is `INTERNAL`, starts at the event's time and carries the
//! object's `uid`, `kind`, `name` and `namespace` and every metadata pair as attributes; its
//! status is `ERROR` with the message for an `error` event, `OK` (no message) otherwise.
//! `HelmRepository` events send nothing. The body is encoded with [`prost`], the OTLP
//! messages declared in [`proto`] with the field numbers of opentelemetry-proto 1.x.
//!
//! Where herald differs, and why:
//!
//! * The span ends when it starts (Flux ends it at export time): the span stands for the
//!   event, and every attempt of one delivery sends the same span.
//! * The span ID is the first 8 bytes of SHA-256 of the span encoded without it (Flux's SDK
//!   draws a random one): a retry after a lost answer repeats the span rather than adding a
//!   second one, and the body is a function of the event, the Alert and the configuration.
//! * Metadata attributes follow the object's four in key order (Go's map order is random).
//! * An answer that is not `2xx`, or a `2xx` whose partial success rejects the span, fails
//!   the delivery, which is retried when worth it (Flux logs export errors and reports
//!   success, after its exporter's own retries of 429, 502, 503 and 504).
//! * An Alert written without `metadata.uid` (manifests kept in files rarely have one) takes
//!   `<namespace>/<name>` in its place, so that two such Alerts never share traces.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;
use sha2::{Digest, Sha256};

use herald_core::{BuildError, DeliveryError, Event, SecretString, Severity};
use herald_http::provider::{self, HttpProvider, Setup};
use herald_http::{HeaderName, HeaderValue, Method, Request, Response};

/// The schema URL of the semantic conventions Flux's resource is built with (Go's
/// `semconv/v1.34.0`).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.34.0";

/// The instrumentation scope of every span, as Flux names its tracer.
pub const SCOPE: &str = "flux:notification-controller";

/// The media type of OTLP/HTTP protobuf bodies.
const CONTENT_TYPE: &str = "application/x-protobuf";

/// Attributes a span keeps (the Go SDK's default span limit); the others are counted as
/// dropped.
const ATTRIBUTE_LIMIT: usize = 128;

/// Trace flags of every span: sampled (`0x01`), and "whether the parent is remote is known"
/// and "the parent is remote" (`0x100 | 0x200`): Flux starts each span under a remote span
/// context that carries only the trace ID.
const SPAN_FLAGS: u32 = 0x301;

/// Go's zero time (`0001-01-01T00:00:00Z`) in Unix seconds.
const GO_ZERO_UNIX: i64 = -62_135_596_800;

/// Kinds Flux does not trace (not a main source of a deployment).
const SKIPPED_KIND: &str = "HelmRepository";

/// A validated `otel` Provider: where spans go and the headers they carry.
#[derive(Debug)]
pub(crate) struct Otel {
    url: SecretString,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpProvider for Otel {
    const SEND_FAILED: Option<&'static str> = Some("failed to export the span");

    fn from_config(setup: &mut Setup<'_>) -> Result<Self, BuildError> {
        let endpoint = setup.endpoint("OTLP traces URL")?;
        // Go's exporter posts to scheme://host/path of the address: the query and the
        // userinfo are dropped.
        let url = format!("{}{}", endpoint.origin(), endpoint.path());
        let mut headers = Vec::with_capacity(setup.config().headers.len() + 2);
        for (name, value) in &setup.config().headers {
            let header = herald_http::parse_header(name, value.expose())
                .map_err(|e| BuildError::invalid("secret key \"headers\"", e))?;
            headers.push(header);
        }
        if let Some(authorization) = authorization(setup, &headers)? {
            headers.push((provider::AUTHORIZATION, authorization));
        }
        headers.push((http_content_type(), HeaderValue::from_static(CONTENT_TYPE)));
        Ok(Otel {
            url: SecretString::new(url),
            headers,
        })
    }

    fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        self.render_for(event, &serde_json::Value::Null)
    }

    fn render_for(
        &self,
        event: &Event,
        alert: &serde_json::Value,
    ) -> Result<Option<Vec<u8>>, DeliveryError> {
        let alert = AlertMeta::from_object(alert).ok_or_else(|| {
            DeliveryError::permanent(
                "an otel delivery needs the Alert that matched the event (its UID and name make \
                 the trace); `herald send` takes it with --alert",
            )
        })?;
        if event.involved_object.kind == SKIPPED_KIND {
            return Ok(None);
        }
        Ok(Some(render(event, &alert, SystemTime::now())))
    }

    fn request(&self, _event: &Event, body: Vec<u8>) -> Result<Request, DeliveryError> {
        Ok(Request::new(Method::POST, self.url.expose())
            .headers(&self.headers)
            .body(body))
    }

    fn check(&self, response: &Response) -> Result<(), DeliveryError> {
        check_answer(response)
    }
}

fn http_content_type() -> HeaderName {
    HeaderName::from_static("content-type")
}

/// Flux's `Authorization`, added only when the Secret has `headers` and none of them is an
/// `Authorization`: `Bearer <token, else password>` without a username, `Basic
/// base64(<username>:<token, else password>)` with one (and nothing when both are empty).
fn authorization(
    setup: &mut Setup<'_>,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<Option<HeaderValue>, BuildError> {
    if headers.is_empty() || headers.iter().any(|(n, _)| *n == provider::AUTHORIZATION) {
        return Ok(None);
    }
    let config = setup.config();
    let secret = setup.token().or_else(|| config.password.clone());
    if config.username.is_empty() {
        let bearer = secret.map(|s| SecretString::new(s.expose().trim()));
        let bearer = bearer.filter(|s| !s.is_empty());
        return setup.bearer(bearer.as_ref()).map(Some);
    }
    match secret.filter(|s| !s.is_empty()) {
        Some(password) => setup
            .basic(&config.username, password.expose(), provider::TOKEN_FIELD)
            .map(Some),
        None => Ok(None),
    }
}

/// The Alert as the trace names it: from its manifest object's `metadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertMeta {
    /// `metadata.uid`, or `<namespace>/<name>` when the manifest has none.
    pub uid: String,
    /// `metadata.namespace` (`default` when absent).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl AlertMeta {
    /// From the Alert's manifest object; `None` when it is not one (`null`: no Alert).
    pub fn from_object(alert: &serde_json::Value) -> Option<AlertMeta> {
        let metadata = alert.get("metadata")?;
        let field = |key: &str| metadata.get(key).and_then(serde_json::Value::as_str);
        let name = field("name")?.to_owned();
        let namespace = field("namespace")
            .filter(|n| !n.is_empty())
            .unwrap_or(herald_core::manifest::DEFAULT_NAMESPACE)
            .to_owned();
        let uid = match field("uid").filter(|u| !u.is_empty()) {
            Some(uid) => uid.to_owned(),
            None => format!("{namespace}/{name}"),
        };
        Some(AlertMeta {
            uid,
            namespace,
            name,
        })
    }
}

/// The revision the trace ID is made from, as Flux reads it: `<app-version>@<oci-digest>` when
/// both are set (OCIRepository), else `revision`, else `unknown`.
pub fn revision(metadata: &BTreeMap<String, String>) -> String {
    match (metadata.get("app-version"), metadata.get("oci-digest")) {
        (Some(app), Some(digest)) => format!("{app}@{digest}"),
        _ => metadata
            .get("revision")
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned()),
    }
}

/// The trace ID: the first 16 bytes of SHA-256 of `<alert UID>:<revision>`.
pub fn trace_id(alert_uid: &str, revision: &str) -> [u8; 16] {
    let hash = Sha256::digest(format!("{alert_uid}:{revision}"));
    let mut id = [0; 16];
    id.copy_from_slice(&hash[..16]);
    id
}

/// The `ExportTraceServiceRequest` body for `event` that `alert` matched. `now` stands in for
/// an event without a time (Go's SDK starts such a span now); the body is otherwise a pure
/// function of the event and the Alert.
pub fn render(event: &Event, alert: &AlertMeta, now: SystemTime) -> Vec<u8> {
    // Go's zero time is "no time" to its SDK too: such a span starts now.
    let start = event
        .timestamp
        .filter(|t| t.unix() != GO_ZERO_UNIX)
        .map_or_else(
            || {
                now.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            },
            |t| u64::try_from(t.as_offset_date_time().unix_timestamp_nanos().max(0)).unwrap_or(0),
        );
    let (attributes, dropped_attributes_count) = span_attributes(event);
    let o = &event.involved_object;
    let mut span = proto::Span {
        trace_id: trace_id(&alert.uid, &revision(&event.metadata)).to_vec(),
        span_id: Vec::new(),
        trace_state: String::new(),
        parent_span_id: Vec::new(),
        name: format!("{}: {}/{}", o.kind, o.namespace, o.name),
        kind: proto::SPAN_KIND_INTERNAL,
        start_time_unix_nano: start,
        end_time_unix_nano: start,
        attributes,
        dropped_attributes_count,
        status: Some(status(event)),
        flags: SPAN_FLAGS,
    };
    span.span_id = span_id(&span.encode_to_vec()).to_vec();
    proto::ExportTraceServiceRequest {
        resource_spans: vec![proto::ResourceSpans {
            resource: Some(proto::Resource {
                attributes: resource_attributes(alert),
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(proto::InstrumentationScope {
                    name: SCOPE.to_owned(),
                    ..Default::default()
                }),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: SCHEMA_URL.to_owned(),
        }],
    }
    .encode_to_vec()
}

/// The span ID: the first 8 bytes of SHA-256 of the span encoded without it, never all zero
/// (an invalid ID).
fn span_id(span_without_id: &[u8]) -> [u8; 8] {
    let hash = Sha256::digest(span_without_id);
    let mut id = [0; 8];
    id.copy_from_slice(&hash[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// The resource attributes, in key order as Go's attribute set keeps them.
fn resource_attributes(alert: &AlertMeta) -> Vec<proto::KeyValue> {
    vec![
        proto::KeyValue::string("service.instance.id", &alert.uid),
        proto::KeyValue::string(
            "service.name",
            &format!("{}/{}", alert.namespace, alert.name),
        ),
        proto::KeyValue::string("service.namespace", &alert.namespace),
    ]
}

/// The object's four attributes, then the metadata in key order, as Go's SDK keeps them: a
/// key given twice keeps its first place and its last value, an empty key is dropped, and
/// past [`ATTRIBUTE_LIMIT`] new keys are dropped; the second value counts the dropped ones.
fn span_attributes(event: &Event) -> (Vec<proto::KeyValue>, u32) {
    let o = &event.involved_object;
    let object = [
        ("object.uid", o.uid.as_str()),
        ("object.kind", o.kind.as_str()),
        ("object.name", o.name.as_str()),
        ("object.namespace", o.namespace.as_str()),
    ];
    let pairs = object
        .into_iter()
        .chain(event.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut out: Vec<proto::KeyValue> = Vec::with_capacity(4 + event.metadata.len());
    let mut dropped = 0u32;
    for (key, value) in pairs {
        if key.is_empty() {
            dropped = dropped.saturating_add(1);
        } else if let Some(kv) = out.iter_mut().find(|kv| kv.key == key) {
            *kv = proto::KeyValue::string(key, value);
        } else if out.len() < ATTRIBUTE_LIMIT {
            out.push(proto::KeyValue::string(key, value));
        } else {
            dropped = dropped.saturating_add(1);
        }
    }
    (out, dropped)
}

/// `ERROR` with the message for an `error` event; `OK` otherwise, whose message Go's SDK
/// drops.
fn status(event: &Event) -> proto::Status {
    if event.severity == Severity::Error {
        proto::Status {
            message: event.message.clone(),
            code: proto::STATUS_CODE_ERROR,
        }
    } else {
        proto::Status {
            message: String::new(),
            code: proto::STATUS_CODE_OK,
        }
    }
}

/// A `2xx` answer whose `ExportTraceServiceResponse` reports rejected spans is a failure: the
/// span did not arrive, and the collector said why.
fn check_answer(response: &Response) -> Result<(), DeliveryError> {
    let protobuf = response
        .headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == CONTENT_TYPE.as_bytes());
    if !protobuf || response.body.is_empty() {
        return Ok(());
    }
    let answer =
        proto::ExportTraceServiceResponse::decode(response.body.as_ref()).map_err(|e| {
            DeliveryError::permanent(format!(
                "the collector's answer is not an OTLP ExportTraceServiceResponse: {e}"
            ))
        })?;
    match answer.partial_success {
        Some(p) if p.rejected_spans > 0 => Err(DeliveryError::permanent(format!(
            "the collector rejected the span: {}",
            if p.error_message.is_empty() {
                "(no reason given)"
            } else {
                p.error_message.as_str()
            }
        ))),
        _ => Ok(()),
    }
}

/// The OTLP messages herald sends and reads, with the field numbers of opentelemetry-proto
/// 1.x (`opentelemetry/proto/{collector/trace,trace,resource,common}/v1`). Only the fields
/// herald sets are declared: a decoder skips what it does not know, and an encoder writes no
/// field left at its default, so these encode exactly as the full messages do.
pub mod proto {
    /// `SPAN_KIND_INTERNAL`.
    pub const SPAN_KIND_INTERNAL: i32 = 1;
    /// `STATUS_CODE_OK`.
    pub const STATUS_CODE_OK: i32 = 1;
    /// `STATUS_CODE_ERROR`.
    pub const STATUS_CODE_ERROR: i32 = 2;

    /// `collector.trace.v1.ExportTraceServiceRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        /// `resource_spans = 1`.
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    /// `collector.trace.v1.ExportTraceServiceResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceResponse {
        /// `partial_success = 1`.
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<ExportTracePartialSuccess>,
    }

    /// `collector.trace.v1.ExportTracePartialSuccess`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTracePartialSuccess {
        /// `rejected_spans = 1`.
        #[prost(int64, tag = "1")]
        pub rejected_spans: i64,
        /// `error_message = 2`.
        #[prost(string, tag = "2")]
        pub error_message: String,
    }

    /// `trace.v1.ResourceSpans`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        /// `resource = 1`.
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// `scope_spans = 2`.
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
        /// `schema_url = 3`.
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    /// `trace.v1.ScopeSpans`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        /// `scope = 1`.
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        /// `spans = 2`.
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
        /// `schema_url = 3`.
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    /// `trace.v1.Span`, its fields in number order (as Go's encoder writes them).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        /// `trace_id = 1`.
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        /// `span_id = 2`.
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        /// `trace_state = 3`.
        #[prost(string, tag = "3")]
        pub trace_state: String,
        /// `parent_span_id = 4`.
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        /// `name = 5`.
        #[prost(string, tag = "5")]
        pub name: String,
        /// `kind = 6` (`SpanKind`).
        #[prost(int32, tag = "6")]
        pub kind: i32,
        /// `start_time_unix_nano = 7`.
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        /// `end_time_unix_nano = 8`.
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        /// `attributes = 9`.
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        /// `dropped_attributes_count = 10`.
        #[prost(uint32, tag = "10")]
        pub dropped_attributes_count: u32,
        /// `status = 15`.
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
        /// `flags = 16`.
        #[prost(fixed32, tag = "16")]
        pub flags: u32,
    }

    /// `trace.v1.Status`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        /// `message = 2`.
        #[prost(string, tag = "2")]
        pub message: String,
        /// `code = 3` (`StatusCode`).
        #[prost(int32, tag = "3")]
        pub code: i32,
    }

    /// `resource.v1.Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// `attributes = 1`.
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        /// `dropped_attributes_count = 2`.
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }

    /// `common.v1.InstrumentationScope`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        /// `name = 1`.
        #[prost(string, tag = "1")]
        pub name: String,
        /// `version = 2`.
        #[prost(string, tag = "2")]
        pub version: String,
        /// `attributes = 3`.
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
        /// `dropped_attributes_count = 4`.
        #[prost(uint32, tag = "4")]
        pub dropped_attributes_count: u32,
    }

    /// `common.v1.KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// `key = 1`.
        #[prost(string, tag = "1")]
        pub key: String,
        /// `value = 2`.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    impl KeyValue {
        /// A string attribute.
        pub fn string(key: &str, value: &str) -> KeyValue {
            KeyValue {
                key: key.to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value.to_owned())),
                }),
            }
        }
    }

    /// `common.v1.AnyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        /// The `value` oneof.
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3")]
        pub value: Option<any_value::Value>,
    }

    /// The `value` oneof of [`AnyValue`].
    pub mod any_value {
        /// The kinds of value herald reads and writes.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// `string_value = 1`.
            #[prost(string, tag = "1")]
            StringValue(String),
            /// `bool_value = 2`.
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            /// `int_value = 3`.
            #[prost(int64, tag = "3")]
            IntValue(i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{ObjectReference, Timestamp};

    fn alert() -> AlertMeta {
        AlertMeta {
            uid: "test-alert-uid".into(),
            namespace: "test-namespace".into(),
            name: "test-alert".into(),
        }
    }

    fn event() -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "GitRepository".into(),
                namespace: "gitops-system".into(),
                name: "webapp".into(),
                uid: "cc4d0095-e0cd-4fd5-b5c8-af13d6fd8a3e".into(),
                ..Default::default()
            },
            severity: Severity::Info,
            timestamp: Timestamp::parse("2026-05-06T07:08:09.5Z").ok(),
            message: "message".into(),
            reason: "reason".into(),
            metadata: [("test", "metadata"), ("revision", "main@sha1:abc")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ..Default::default()
        }
    }

    fn decode(body: &[u8]) -> proto::Span {
        let mut request = proto::ExportTraceServiceRequest::decode(body).unwrap();
        request
            .resource_spans
            .remove(0)
            .scope_spans
            .remove(0)
            .spans
            .remove(0)
    }

    fn attrs(kvs: &[proto::KeyValue]) -> Vec<(String, String)> {
        kvs.iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(proto::any_value::Value::StringValue(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), value)
            })
            .collect()
    }

    /// Secret headers, username, token, password, and the `Authorization` wanted.
    type AuthCase = (
        &'static [(&'static str, &'static str)],
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    #[test]
    fn authorization_follows_flux() {
        // (headers, username, token, password) -> Authorization
        let cases: [AuthCase; 9] = [
            (&[], "", Some("tok"), None, None),
            (&[], "user", Some("tok"), Some("pw"), None),
            (
                &[("X-Org", "1")],
                "",
                Some("tok"),
                Some("pw"),
                Some("Bearer tok"),
            ),
            (&[("X-Org", "1")], "", None, Some(" pw "), Some("Bearer pw")),
            (&[("X-Org", "1")], "", None, None, Some("Bearer")),
            (
                &[("X-Org", "1")],
                "user",
                Some("tok"),
                Some("pw"),
                Some("Basic dXNlcjp0b2s="),
            ),
            (
                &[("X-Org", "1")],
                "user",
                None,
                Some("pw"),
                Some("Basic dXNlcjpwdw=="),
            ),
            (&[("X-Org", "1")], "user", None, None, None),
            (
                &[("authorization", "Key k")],
                "",
                Some("tok"),
                None,
                Some("Key k"),
            ),
        ];
        for (headers, username, token, password, want) in cases {
            let mut config = herald_core::ProviderConfig::new(
                herald_core::ProviderType::Otel,
                "ns",
                "otel",
                "http://collector:4318/v1/traces",
            );
            config.headers = headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                .collect();
            config.username = username.to_owned();
            config.token = token.map(Into::into);
            config.password = password.map(Into::into);
            let otel = Otel::from_config(&mut Setup::new(&config)).unwrap();
            let got = otel
                .headers
                .iter()
                .find(|(n, _)| *n == provider::AUTHORIZATION)
                .map(|(_, v)| v.to_str().unwrap().to_owned());
            assert_eq!(
                got.as_deref(),
                want,
                "{headers:?} {username:?} {token:?} {password:?}"
            );
        }
    }

    #[test]
    fn revisions_as_flux_reads_them() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let cases = [
            (m(&[]), "unknown"),
            (m(&[("revision", "main@sha1:1")]), "main@sha1:1"),
            (
                m(&[
                    ("revision", "r"),
                    ("app-version", "1.2"),
                    ("oci-digest", "sha256:d"),
                ]),
                "1.2@sha256:d",
            ),
            (m(&[("revision", "r"), ("app-version", "1.2")]), "r"),
            (m(&[("oci-digest", "sha256:d")]), "unknown"),
        ];
        for (metadata, want) in cases {
            assert_eq!(revision(&metadata), want, "{metadata:?}");
        }
    }

    #[test]
    fn the_trace_id_is_the_head_of_sha256_of_uid_and_revision() {
        // printf 'test-alert-uid:main@sha1:abc' | sha256sum
        let id = trace_id("test-alert-uid", "main@sha1:abc");
        let full = Sha256::digest(b"test-alert-uid:main@sha1:abc");
        assert_eq!(id[..], full[..16]);
        assert_eq!(decode(&render(&event(), &alert(), UNIX_EPOCH)).trace_id, id);
    }

    #[test]
    fn the_span_follows_flux() {
        let span = decode(&render(&event(), &alert(), UNIX_EPOCH));
        assert_eq!(span.name, "GitRepository: gitops-system/webapp");
        assert_eq!(span.kind, proto::SPAN_KIND_INTERNAL);
        assert_eq!(span.start_time_unix_nano, 1_778_051_289_500_000_000);
        assert_eq!(span.end_time_unix_nano, span.start_time_unix_nano);
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.flags, 0x301);
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(
            attrs(&span.attributes),
            [
                ("object.uid", "cc4d0095-e0cd-4fd5-b5c8-af13d6fd8a3e"),
                ("object.kind", "GitRepository"),
                ("object.name", "webapp"),
                ("object.namespace", "gitops-system"),
                ("revision", "main@sha1:abc"),
                ("test", "metadata"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            span.status,
            Some(proto::Status {
                message: String::new(),
                code: proto::STATUS_CODE_OK
            })
        );
        let mut error = event();
        error.severity = Severity::Error;
        let span = decode(&render(&error, &alert(), UNIX_EPOCH));
        assert_eq!(
            span.status,
            Some(proto::Status {
                message: "message".into(),
                code: proto::STATUS_CODE_ERROR
            })
        );
    }

    #[test]
    fn the_resource_and_scope_name_the_alert() {
        let body = render(&event(), &alert(), UNIX_EPOCH);
        let mut request = proto::ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let rs = request.resource_spans.remove(0);
        assert_eq!(rs.schema_url, SCHEMA_URL);
        assert_eq!(
            attrs(&rs.resource.unwrap().attributes),
            [
                ("service.instance.id", "test-alert-uid"),
                ("service.name", "test-namespace/test-alert"),
                ("service.namespace", "test-namespace"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let scope = rs.scope_spans[0].scope.clone().unwrap();
        assert_eq!((scope.name.as_str(), scope.version.as_str()), (SCOPE, ""));
    }

    #[test]
    fn span_ids_are_stable_and_differ_between_events() {
        let a = decode(&render(&event(), &alert(), UNIX_EPOCH)).span_id;
        assert_eq!(a, decode(&render(&event(), &alert(), UNIX_EPOCH)).span_id);
        let mut other = event();
        other.message = "another".into();
        other.severity = Severity::Error;
        assert_ne!(a, decode(&render(&other, &alert(), UNIX_EPOCH)).span_id);
    }

    #[test]
    fn an_event_without_time_starts_now() {
        let mut e = event();
        e.timestamp = None;
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let span = decode(&render(&e, &alert(), now));
        assert_eq!(span.start_time_unix_nano, 1_800_000_000_000_000_000);
    }

    #[test]
    fn go_zero_time_starts_now_too() {
        let mut e = event();
        e.timestamp = Timestamp::parse("0001-01-01T00:00:00Z").ok();
        assert!(e.timestamp.is_some());
        let now = UNIX_EPOCH + std::time::Duration::from_secs(7);
        assert_eq!(
            decode(&render(&e, &alert(), now)).start_time_unix_nano,
            7_000_000_000
        );
        e.timestamp = Timestamp::parse("1969-12-31T23:59:59Z").ok();
        assert_eq!(
            decode(&render(&e, &alert(), now)).start_time_unix_nano,
            0,
            "as Go clamps"
        );
    }

    #[test]
    fn metadata_keys_are_kept_as_go_keeps_them() {
        let mut e = event();
        e.metadata.clear();
        e.metadata.insert("object.kind".into(), "Overridden".into());
        e.metadata.insert(String::new(), "no key".into());
        let (kvs, dropped) = span_attributes(&e);
        assert_eq!(attrs(&kvs)[1], ("object.kind".into(), "Overridden".into()));
        assert_eq!((kvs.len(), dropped), (4, 1));
        for i in 0..200 {
            e.metadata.insert(format!("k{i:03}"), "v".into());
        }
        let (kvs, dropped) = span_attributes(&e);
        assert_eq!((kvs.len(), dropped), (ATTRIBUTE_LIMIT, 1 + 200 - 124));
    }

    #[test]
    fn alerts_are_read_from_their_manifest_object() {
        let object = serde_json::json!({
            "metadata": {"name": "a", "namespace": "ns", "uid": "u-1"}
        });
        assert_eq!(
            AlertMeta::from_object(&object),
            Some(AlertMeta {
                uid: "u-1".into(),
                namespace: "ns".into(),
                name: "a".into()
            })
        );
        let object = serde_json::json!({"metadata": {"name": "a"}});
        assert_eq!(
            AlertMeta::from_object(&object).map(|a| a.uid),
            Some("default/a".into())
        );
        assert_eq!(AlertMeta::from_object(&serde_json::Value::Null), None);
    }

    fn answer(content_type: &str, body: Vec<u8>) -> Response {
        let mut headers = herald_http::HeaderMap::new();
        headers.insert(
            http_content_type(),
            HeaderValue::from_str(content_type).unwrap(),
        );
        Response {
            status: herald_http::StatusCode::OK,
            headers,
            body: body.into(),
        }
    }

    #[test]
    fn partial_success_that_rejects_the_span_is_a_failure() {
        let rejected = proto::ExportTraceServiceResponse {
            partial_success: Some(proto::ExportTracePartialSuccess {
                rejected_spans: 1,
                error_message: "span too old".into(),
            }),
        }
        .encode_to_vec();
        let err = check_answer(&answer(CONTENT_TYPE, rejected.clone())).unwrap_err();
        assert_eq!(
            err.message(),
            "the collector rejected the span: span too old"
        );
        assert!(!err.is_retryable());
        assert!(check_answer(&answer("application/json", rejected)).is_ok());
        let warned = proto::ExportTraceServiceResponse {
            partial_success: Some(proto::ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: "slow down".into(),
            }),
        }
        .encode_to_vec();
        assert!(check_answer(&answer(CONTENT_TYPE, warned)).is_ok());
        assert!(check_answer(&answer(CONTENT_TYPE, Vec::new())).is_ok());
        let err = check_answer(&answer(CONTENT_TYPE, vec![0xff])).unwrap_err();
        assert!(
            err.message().starts_with("the collector's answer is not"),
            "{err}"
        );
    }
}
