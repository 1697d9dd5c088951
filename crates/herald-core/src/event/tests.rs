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
fn timestamps_read_escaped_text_and_write_one_form_everywhere() {
    // An escaped string cannot be borrowed from the body: it is read all the same.
    let e: Event = serde_json::from_str(r#"{"timestamp":"2022-10-28T07:26:19\u005a"}"#).unwrap();
    let t = e.timestamp.unwrap();
    assert_eq!(t.to_rfc3339(), "2022-10-28T07:26:19Z");
    assert_eq!(t.to_string(), t.to_rfc3339());
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#""2022-10-28T07:26:19Z""#
    );
    // An offset is written in UTC; a number is refused as a string would be expected.
    let e: Event = serde_json::from_str(r#"{"timestamp":"2022-10-28T09:26:19+02:00"}"#).unwrap();
    assert_eq!(e.timestamp.unwrap().to_rfc3339(), "2022-10-28T07:26:19Z");
    let err = serde_json::from_str::<Event>(r#"{"timestamp":5}"#).unwrap_err();
    assert!(err.to_string().contains("expected a string"), "{err}");
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

#[test]
fn only_objects_are_events_as_in_go() {
    // Go's decoder refuses an array where it expects a struct; serde would read one as a
    // sequence of fields.
    let array =
        r#"[{"involvedObject":{"kind":"Bucket","namespace":"ns","name":"b"},"message":"m"}]"#;
    let err = serde_json::from_str::<Event>(array)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid type: sequence, expected a JSON object (a Flux event) at line 1 column 0"
    );
    for body in [r#""text""#, "5", "true", r#"[["Bucket","ns","b"],"info"]"#] {
        assert!(serde_json::from_str::<Event>(body).is_err(), "{body}");
    }
    let err = serde_json::from_str::<Event>(r#"{"involvedObject":["Bucket","ns","b"]}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid type: sequence, expected a JSON object (an object reference)"),
        "{err}"
    );
    // `null` decodes into a Go struct as "no change": the zero event.
    assert_eq!(
        serde_json::from_str::<Event>("null").unwrap(),
        Event::default()
    );
}

#[test]
fn field_names_and_repeats_follow_go() {
    let e: Event = serde_json::from_str(
        r#"{"Message":"first","message":"second","INVOLVEDOBJECT":{"KIND":"Bucket","name":"b"},
           "reason":"r","reason":null,"severity":"info"}"#,
    )
    .unwrap();
    assert_eq!(e.message, "second", "the last value wins");
    assert_eq!(
        e.involved_object.kind, "Bucket",
        "names match case-insensitively"
    );
    assert_eq!(e.involved_object.name, "b");
    assert_eq!(e.reason, "r", "null leaves the value");
    assert_eq!(e.severity, Severity::Info);
}
