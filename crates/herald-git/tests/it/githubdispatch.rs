//! `githubdispatch` against a GitHub Enterprise stub on loopback.
//!
//! API reference: <https://docs.github.com/en/rest/repos/repos?apiVersion=2022-11-28#create-a-repository-dispatch-event>
//! (`POST /repos/{owner}/{repo}/dispatches` with `event_type` and `client_payload`; answers
//! `204 No Content`).

use herald_core::{Event, ProviderConfig, ProviderType, SecretString};
use herald_testkit::{Recorder, Reply, assert_golden, fixture_event};

use crate::harness::{self, TOKEN, fixture, golden, summary};

fn config(url: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(
        ProviderType::GitHubDispatch,
        "flux-system",
        "dispatch",
        format!("{url}/org/app"),
    );
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

#[tokio::test]
async fn every_severity_and_reason_is_dispatched() {
    let cases: [(&str, Event); 5] = [
        ("info", fixture_event()),
        ("success", harness::event("success")),
        ("error", fixture("kustomization-error.json")),
        ("progressing", harness::event("progressing")),
        ("unicode", fixture("unicode.json")),
    ];
    for (case, event) in cases {
        let rec = Recorder::start().await;
        rec.push_reply(Reply::status(204));
        let n = herald_git::build(&config(&rec.url())).unwrap();
        n.post(&event)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let got = rec.requests();
        assert_eq!(got.len(), 1, "{case}");
        assert_golden(
            &golden(&format!("githubdispatch/{case}.json")),
            got[0].body_str(),
        );
        assert_golden(
            &golden(&format!("githubdispatch/{case}.request.txt")),
            &summary(&got),
        );
        // client_payload is the event exactly as the generic webhook would post it.
        let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
        let again: Event = serde_json::from_value(body["client_payload"].clone()).unwrap();
        assert_eq!(again.involved_object, event.involved_object);
        assert_eq!(again.message, event.message);
    }
}

#[tokio::test]
async fn failures_are_reported_without_the_token() {
    let rec = Recorder::start().await;
    rec.push_reply(
        Reply::status(404).body(format!(r#"{{"message":"Not Found","token":"{TOKEN}"}}"#)),
    );
    let n = herald_git::build(&config(&rec.url())).unwrap();
    let err = n.post(&fixture_event()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("could not send github repository dispatch webhook: "),
        "{text}"
    );
    assert!(
        text.contains("HTTP 404") && text.contains("Not Found"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!err.is_retryable());
    assert_eq!(rec.requests().len(), 1);
}

#[test]
fn needs_owner_and_repo_and_a_token() {
    let mut cfg = config("http://127.0.0.1:1");
    cfg.address = SecretString::new("https://github.com/org");
    assert!(harness::build_error(&cfg).contains("invalid repository id \"org\""));
    let mut cfg = config("http://127.0.0.1:1");
    cfg.token = None;
    assert!(harness::build_error(&cfg).contains("github token"));
}
