//! The Flux event (`event.toolkit.fluxcd.io/v1beta1` Event), wire-compatible both ways.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One event as Flux controllers post it and as providers receive it.
///
/// Decoding follows Go's `encoding/json` as Flux uses it: the event and its `involvedObject`
/// must be JSON objects (an array is refused, as Go refuses it), unknown fields are ignored,
/// field names also match case-insensitively, a repeated field takes its last value, a missing
/// or `null` field keeps its zero value (a `null` body is the zero event), and an unparsable
/// timestamp rejects the whole body.
/// Encoding emits the fields in Flux's order, omits `metadata` and `reportingInstance` when
/// empty, and renders the timestamp in UTC to the second (see [`crate::json`] for the exact
/// byte form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The object the event is about.
    pub involved_object: ObjectReference,
    /// `info`, `error` or `trace` (not validated, as in Flux).
    pub severity: Severity,
    /// When the event happened; `None` is Go's zero time and encodes as `null`.
    pub timestamp: Option<Timestamp>,
    /// Free text.
    pub message: String,
    /// CamelCase machine reason, for example `ReconciliationSucceeded`.
    pub reason: String,
    /// Metadata; keys sorted, omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The controller that emitted the event; always emitted, even when empty.
    pub reporting_controller: String,
    /// The emitting instance (pod name); omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// A Kubernetes `ObjectReference`, as Flux puts it in `involvedObject`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Kind, for example `Kustomization`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Namespace of the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// UID of the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `group/version` of the object, for example `kustomize.toolkit.fluxcd.io/v1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Resource version of the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Field path within the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field_path: String,
}

impl ObjectReference {
    /// The API group of the object: `apiVersion` before the `/`, empty for core objects.
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }
}

/// Event severity. Any string is accepted and kept, as Flux does not validate it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `info`.
    Info,
    /// `error`.
    Error,
    /// `trace` (Flux controllers never post these, but the type allows it).
    Trace,
    /// Anything else, kept verbatim.
    Other(String),
}

/// Go's zero value: the empty string, so that a body without `severity` re-encodes as Flux would.
impl Default for Severity {
    fn default() -> Self {
        Severity::Other(String::new())
    }
}

impl Severity {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Severity::Info => "info",
            Severity::Error => "error",
            Severity::Trace => "trace",
            Severity::Other(s) => s,
        }
    }

    /// Whether this is the `error` severity.
    pub fn is_error(&self) -> bool {
        matches!(self, Severity::Error)
    }
}

impl From<&str> for Severity {
    fn from(s: &str) -> Self {
        match s {
            "info" => Severity::Info,
            "error" => Severity::Error,
            "trace" => Severity::Trace,
            other => Severity::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Severity::from(s.as_str()))
    }
}

/// A point in time with Kubernetes `metav1.Time` semantics: parsed from RFC 3339 (fractional
/// seconds and any offset accepted), rendered in UTC to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// From Unix seconds.
    pub fn from_unix(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .map(Timestamp)
    }

    /// The current time, truncated to the second.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp(now.replace_nanosecond(0).unwrap_or(now))
    }

    /// Parses an RFC 3339 string.
    pub fn parse(s: &str) -> Result<Self, String> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Timestamp)
            .map_err(|e| format!("invalid RFC 3339 timestamp {s:?}: {e}"))
    }

    /// Unix seconds.
    pub fn unix(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Unix milliseconds (the sub-second part as received).
    pub fn unix_millis(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The underlying date-time.
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// RFC 3339 in UTC to the second, as Flux re-emits it: `2022-09-30T06:40:29Z`.
    pub fn to_rfc3339(&self) -> String {
        let mut out = String::with_capacity(20);
        // Writing to a String cannot fail.
        let _ = self.write_rfc3339(&mut out);
        out
    }

    /// [`Timestamp::to_rfc3339`] written to `out`, without a String of its own.
    fn write_rfc3339(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

/// A stack buffer for one formatted timestamp: serializing an event allocates nothing for it.
struct StackText {
    bytes: [u8; 32],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_rfc3339(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = StackText {
            bytes: [0; 32],
            len: 0,
        };
        if self.write_rfc3339(&mut text).is_err() {
            // Longer than any year the time crate represents; kept correct all the same.
            return s.serialize_str(&self.to_rfc3339());
        }
        // Only whole `&str`s were copied in, so the bytes are UTF-8.
        match std::str::from_utf8(&text.bytes[..text.len]) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.serialize_str(&self.to_rfc3339()),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Parses the text in place: no String per event.
        struct Rfc3339Visitor;
        impl serde::de::Visitor<'_> for Rfc3339Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Rfc3339Visitor)
    }
}

/// The JSON names of [`Event`]'s fields, in wire order.
const EVENT_FIELDS: &[&str] = &[
    "involvedObject",
    "severity",
    "timestamp",
    "message",
    "reason",
    "metadata",
    "reportingController",
    "reportingInstance",
];

/// The JSON names of [`ObjectReference`]'s fields, in wire order.
const REFERENCE_FIELDS: &[&str] = &[
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
];

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `null` is Go's "leave the zero value": the zero event.
        Ok(Option::<EventObject>::deserialize(d)?
            .map(|e| e.0)
            .unwrap_or_default())
    }
}

/// An [`Event`] that must be a JSON object (its `null` is handled by `Option`).
struct EventObject(Event);

impl<'de> Deserialize<'de> for EventObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> serde::de::Visitor<'de> for EventVisitor {
    type Value = EventObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (a Flux event)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut e = Event::default();
        while let Some(field) = map.next_key_seed(FieldName(EVENT_FIELDS))? {
            match field {
                Some(0) => set(&mut e.involved_object, &mut map)?,
                Some(1) => set(&mut e.severity, &mut map)?,
                // `metav1.Time` decodes `null` as the zero time.
                Some(2) => e.timestamp = map.next_value()?,
                Some(3) => set(&mut e.message, &mut map)?,
                Some(4) => set(&mut e.reason, &mut map)?,
                Some(5) => set(&mut e.metadata, &mut map)?,
                Some(6) => set(&mut e.reporting_controller, &mut map)?,
                Some(7) => set(&mut e.reporting_instance, &mut map)?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(EventObject(e))
    }
}

impl<'de> Deserialize<'de> for ObjectReference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ReferenceVisitor)
    }
}

struct ReferenceVisitor;

impl<'de> serde::de::Visitor<'de> for ReferenceVisitor {
    type Value = ObjectReference;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (an object reference)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = ObjectReference::default();
        while let Some(field) = map.next_key_seed(FieldName(REFERENCE_FIELDS))? {
            match field {
                Some(0) => set(&mut r.kind, &mut map)?,
                Some(1) => set(&mut r.namespace, &mut map)?,
                Some(2) => set(&mut r.name, &mut map)?,
                Some(3) => set(&mut r.uid, &mut map)?,
                Some(4) => set(&mut r.api_version, &mut map)?,
                Some(5) => set(&mut r.resource_version, &mut map)?,
                Some(6) => set(&mut r.field_path, &mut map)?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// Reads the next value into `field`; `null` leaves it as it is, as Go does.
fn set<'de, T: Deserialize<'de>, A: serde::de::MapAccess<'de>>(
    field: &mut T,
    map: &mut A,
) -> Result<(), A::Error> {
    if let Some(value) = map.next_value::<Option<T>>()? {
        *field = value;
    }
    Ok(())
}

/// A key of a JSON object, as the index of the field it names in a table: an exact match, or
/// else one that differs only in ASCII case (Go's decoder matches names case-insensitively).
/// `None` for a key that names no field.
struct FieldName(&'static [&'static str]);

impl FieldName {
    fn find(&self, key: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|f| *f == key)
            .or_else(|| self.0.iter().position(|f| f.eq_ignore_ascii_case(key)))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for FieldName {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldName {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.find(key))
    }

    fn visit_bytes<E: serde::de::Error>(self, key: &[u8]) -> Result<Self::Value, E> {
        Ok(std::str::from_utf8(key).ok().and_then(|k| self.find(k)))
    }
}

#[cfg(test)]
mod tests;
