//! `datadog`: goldens, the `DD-API-KEY` header, lower-cased tags, config errors.

use herald_core::{ProviderType, SecretString};
use herald_testkit::{Recorder, assert_golden, fixture_event};

use crate::{build_err, cases, config, deliver, golden, request_summary};

const HEADERS: &[&str] = &["content-type", "dd-api-key", "authorization"];

fn datadog(url: &str) -> herald_core::ProviderConfig {
    // Any path of the site's address: the API path replaces it.
    let mut cfg = config(ProviderType::Datadog, &format!("{url}/ignored?x=1"));
    cfg.token = Some("dd-api-key-1234".into());
    cfg
}

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    for (case, event) in cases() {
        let got = deliver(&datadog(&rec.url()), &event, &rec).await;
        assert_golden(&golden(&format!("datadog/{case}.json")), got.body_str());
        assert_golden(
            &golden(&format!("datadog/{case}.request.txt")),
            &request_summary(&got, HEADERS),
        );
    }
}

#[tokio::test]
async fn flux_test_event_tags() {
    // Flux's TestToDataDogTags: every tag lower-cased, the metadata as `key:value`.
    let rec = Recorder::start().await;
    let got = deliver(&datadog(&rec.url()), &fixture_event(), &rec).await;
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        body["tags"],
        serde_json::json!([
            "flux_reporting_controller:source-controller",
            "flux_reason:reason",
            "kube_kind:gitrepository",
            "kube_name:webapp",
            "kube_namespace:gitops-system",
            "test:metadata"
        ])
    );
    assert_eq!(got.path, "/api/v1/events");
}

#[test]
fn the_api_key_and_a_url_are_required() {
    let mut cfg = config(ProviderType::Datadog, "https://api.datadoghq.com");
    assert_eq!(
        build_err(&cfg),
        "secret key \"token\": token cannot be empty"
    );
    cfg.token = Some(SecretString::new(" "));
    assert_eq!(
        build_err(&cfg),
        "secret key \"token\": token cannot be empty"
    );
    cfg.token = Some("key".into());
    cfg.address = "https://bad url :)".into();
    let err = build_err(&cfg);
    assert!(
        err.starts_with("spec.address: invalid Datadog API URL: "),
        "{err}"
    );
}
