//! The cases every change-request comment type goes through against its forge's stub: the
//! comment is created on the first event, the same comment edited on the second, and comments
//! of other authors, or of ours without this Provider's marker, are never touched.

use std::time::Duration;

use herald_core::{DeliveryError, Event, Notifier, ProviderConfig};
use herald_http::RetryPolicy;
use herald_testkit::{Recorded, Recorder, Reply, assert_golden};

use crate::harness::{self, golden, summary};

/// The Provider UID of the stubs' configurations.
pub(crate) const UID: &str = "0c9c2e41-d2f5-4e4b-9c1a-2a6b1f0e7d3c";
/// Who the stubs say the token belongs to.
pub(crate) const ME: &str = "flux-bot";

/// A comment forge's stub.
#[derive(Debug)]
pub(crate) struct CommentStub {
    /// The golden directory (the type).
    pub(crate) dir: &'static str,
    /// The configuration for a stub at `url`.
    pub(crate) config: fn(&str) -> ProviderConfig,
    /// The identity lookup's answer, naming [`ME`].
    pub(crate) identity: fn() -> Reply,
    /// A list answer of `(id, author, body)` comments.
    pub(crate) list: fn(&[(u64, &str, &str)]) -> Reply,
    /// The marker prefix.
    pub(crate) prefix: &'static str,
}

/// The event: the fixture's Kustomization, naming change request 42.
pub(crate) fn event(severity_error: bool) -> Event {
    let mut e = harness::event(if severity_error { "failure" } else { "success" });
    // Commit-status updates never reach comment providers (dispatch skips them).
    e.metadata.remove("commit_status");
    e.metadata.insert("change_request".into(), "42".into());
    e
}

/// A `200` JSON answer.
pub(crate) fn json_reply(value: &serde_json::Value) -> Reply {
    Reply::status(200)
        .header("content-type", "application/json")
        .body(value.to_string())
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 1,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }
}

async fn post(n: &dyn Notifier, e: &Event) -> Result<(), DeliveryError> {
    n.post(e).await
}

fn created() -> Reply {
    Reply::status(201)
        .header("content-type", "application/json")
        .body(r#"{"id":900}"#)
}

/// The body text a request carried (`{"body": …}`).
fn comment_text(r: &Recorded) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["body"].as_str().unwrap().to_owned()
}

/// Create, then edit the same comment; others' comments untouched.
pub(crate) async fn upserts(stub: &CommentStub) {
    let rec = Recorder::start().await;
    let cfg = (stub.config)(&rec.url());
    let n = herald_git::build_with_retry_policy(&cfg, fast()).unwrap();
    let marker = format!(
        "<!-- {}:{UID}/Kustomization/flux-system/gitops-system -->",
        stub.prefix
    );

    // First event: nobody's comment carries our marker, one of another author does.
    rec.push_reply((stub.identity)());
    rec.push_reply((stub.list)(&[
        (1, "someone", "LGTM"),
        (2, "intruder", &format!("{marker}\n\ncopied")),
        (3, ME, "a comment of ours without the marker"),
    ]));
    rec.push_reply(created());
    post(n.as_ref(), &event(false)).await.unwrap();
    let first = rec.requests();
    assert_eq!(first.len(), 3, "{}: {first:?}", stub.dir);
    assert_golden(
        &golden(&format!("{}/create.request.txt", stub.dir)),
        &summary(&first),
    );
    assert_golden(
        &golden(&format!("{}/create.json", stub.dir)),
        first[2].body_str(),
    );
    let text = comment_text(&first[2]);
    assert!(
        text.starts_with(&format!("{marker}\n\n## Flux Status\n\n")),
        "{text}"
    );

    // Second event (an error now): our comment is listed (after others) and edited; the
    // identity is not asked again.
    rec.push_reply((stub.list)(&[
        (1, "someone", "LGTM"),
        (2, "intruder", &format!("{marker}\n\ncopied")),
        (900, ME, &text),
    ]));
    rec.push_reply(Reply::status(200).body("{}"));
    post(n.as_ref(), &event(true)).await.unwrap();
    let second = rec.requests()[3..].to_vec();
    assert_eq!(second.len(), 2, "{}: {second:?}", stub.dir);
    assert_golden(
        &golden(&format!("{}/edit.request.txt", stub.dir)),
        &summary(&second),
    );
    assert_golden(
        &golden(&format!("{}/edit.json", stub.dir)),
        second[1].body_str(),
    );
    assert!(second[1].path.contains("/900"), "{}", second[1].path);

    // A comment of ours for another object (another marker) is not this object's.
    let rec = Recorder::start().await;
    let n = herald_git::build_with_retry_policy(&(stub.config)(&rec.url()), fast()).unwrap();
    let other = text.replace("flux-system/gitops-system", "flux-system/other");
    rec.push_reply((stub.identity)());
    rec.push_reply((stub.list)(&[(7, ME, &other)]));
    rec.push_reply(created());
    post(n.as_ref(), &event(false)).await.unwrap();
    let got = rec.requests();
    assert_eq!(got[2].method, "POST", "{}: {got:?}", stub.dir);
}

/// What is refused before any request, and failures that name the step.
pub(crate) async fn refusals(stub: &CommentStub) {
    let rec = Recorder::start().await;
    let cfg = (stub.config)(&rec.url());
    let n = herald_git::build_with_retry_policy(&cfg, fast()).unwrap();
    let mut bad = event(false);
    bad.metadata.insert("change_request".into(), "#42".into());
    let err = post(n.as_ref(), &bad).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .contains("invalid \"change_request\" metadata value \"#42\""),
        "{err}"
    );
    let mut none = event(false);
    none.metadata.remove("change_request");
    let err = post(n.as_ref(), &none).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("missing \"change_request\" metadata key"),
        "{err}"
    );
    assert!(rec.requests().is_empty());

    // No metadata.uid: refused at build, as Flux refuses an empty Provider UID.
    let mut cfg = (stub.config)(&rec.url());
    cfg.uid = None;
    let err = harness::build_error(&cfg);
    assert!(
        err.starts_with("metadata.uid: provider UID cannot be empty"),
        "{err}"
    );

    // The list fails: the step is named, and the identity lookup does not hide it.
    rec.push_reply((stub.identity)());
    rec.push_reply(
        Reply::status(404)
            .header("content-type", "application/json")
            .body(r#"{"message":"Not Found"}"#),
    );
    let err = post(n.as_ref(), &event(false)).await.unwrap_err();
    assert!(err.to_string().contains("failed to list"), "{err}");
    assert_eq!(err.status(), Some(404));
}
