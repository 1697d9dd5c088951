use super::*;
use crate::json;

fn fixture() -> Event {
    Event {
        involved_object: ObjectReference {
            kind: "GitRepository".into(),
            namespace: "gitops-system".into(),
            name: "webapp".into(),
            ..Default::default()
        },
        severity: Severity::Info,
        timestamp: Timestamp::from_unix(1664520029),
        message: "message".into(),
        reason: "reason".into(),
        metadata: [("test".to_owned(), "metadata".to_owned())].into(),
        reporting_controller: "source-controller".into(),
        reporting_instance: "source-controller-xyz".into(),
    }
}

#[test]
fn encodes_like_flux() {
    let got = String::from_utf8(json::to_vec(&fixture()).unwrap()).unwrap();
    assert_eq!(
        got,
        r#"{"involvedObject":{"kind":"GitRepository","namespace":"gitops-system","name":"webapp"},"severity":"info","timestamp":"2022-09-30T06:40:29Z","message":"message","reason":"reason","metadata":{"test":"metadata"},"reportingController":"source-controller","reportingInstance":"source-controller-xyz"}"#
    );
}

#[test]
fn zero_event_encodes_like_go() {
    let mut e = Event::default();
    e.metadata.insert("foo".into(), "bar".into());
    let got = String::from_utf8(json::to_vec(&e).unwrap()).unwrap();
    assert_eq!(
        got,
        r#"{"involvedObject":{},"severity":"","timestamp":null,"message":"","reason":"","metadata":{"foo":"bar"},"reportingController":""}"#
    );
}

#[test]
fn decodes_leniently_and_round_trips() {
    let raw = r#"{"involvedObject":{"kind":"Kustomization","namespace":"apps","name":"webapp","uid":"7d0cdc51","apiVersion":"kustomize.toolkit.fluxcd.io/v1","unknown":1},
      "severity":"error","timestamp":"2022-10-28T09:26:19.5+02:00","message":"m","reason":"ValidationFailed",
      "metadata":null,"reportingController":null,"extra":{"a":[1,2]}}"#;
    let e: Event = serde_json::from_str(raw).unwrap();
    assert_eq!(e.severity, Severity::Error);
    assert!(e.metadata.is_empty());
    assert_eq!(e.reporting_controller, "");
    assert_eq!(e.involved_object.group(), "kustomize.toolkit.fluxcd.io");
    assert_eq!(e.timestamp.unwrap().to_rfc3339(), "2022-10-28T07:26:19Z");
    assert_eq!(e.timestamp.unwrap().unix_millis(), 1666941979500);
    let again: Event = serde_json::from_slice(&json::to_vec(&e).unwrap()).unwrap();
    assert_eq!(again.involved_object, e.involved_object);
    assert_eq!(again.timestamp.unwrap().unix(), e.timestamp.unwrap().unix());
}

#[test]
fn missing_fields_take_zero_values() {
    let e: Event = serde_json::from_str("{}").unwrap();
    assert_eq!(e, Event::default());
    assert_eq!(e.severity.as_str(), "");
    assert!(e.timestamp.is_none());
}

#[test]
fn bad_timestamp_rejects_the_body() {
    let err = serde_json::from_str::<Event>(r#"{"timestamp":"yesterday"}"#).unwrap_err();
    assert!(
        err.to_string().contains("invalid RFC 3339 timestamp"),
        "{err}"
    );
    let err = serde_json::from_str::<Event>(r#"{"message":5}"#).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn unknown_severity_is_kept() {
    let e: Event = serde_json::from_str(r#"{"severity":"warning"}"#).unwrap();
    assert_eq!(e.severity, Severity::Other("warning".into()));
    assert!(
        String::from_utf8(json::to_vec(&e).unwrap())
            .unwrap()
            .contains(r#""severity":"warning""#)
    );
}
