//! `opsgenie`: goldens, the GenieKey header, the de-duplication alias, config errors.

use herald_core::{ProviderType, SecretString};
use herald_testkit::{Recorder, assert_golden, fixture_event};

use crate::{build_err, cases, config, deliver, golden, request_summary};

const HEADERS: &[&str] = &["content-type", "authorization"];

fn opsgenie(url: &str) -> herald_core::ProviderConfig {
    let mut cfg = config(ProviderType::Opsgenie, &format!("{url}/v2/alerts"));
    cfg.token = Some("og-key-1234".into());
    cfg
}

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    for (case, event) in cases() {
        let got = deliver(&opsgenie(&rec.url()), &event, &rec).await;
        assert_golden(&golden(&format!("opsgenie/{case}.json")), got.body_str());
        assert_golden(
            &golden(&format!("opsgenie/{case}.request.txt")),
            &request_summary(&got, HEADERS),
        );
    }
}

#[tokio::test]
async fn repeats_share_an_alias_per_provider_object_and_reason() {
    let rec = Recorder::start().await;
    let alias = |r: &herald_testkit::Recorded| -> String {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["alias"].as_str().unwrap().to_owned()
    };
    let cfg = opsgenie(&rec.url());
    let mut event = fixture_event();
    let first = alias(&deliver(&cfg, &event, &rec).await);
    event.message = "a different message".into();
    event.timestamp = herald_core::Timestamp::from_unix(1_700_000_000);
    let again = alias(&deliver(&cfg, &event, &rec).await);
    assert_eq!(first, again, "same provider, object and reason: same alias");
    assert_eq!(
        first,
        herald_alerting::opsgenie::alias("flux-system/opsgenie", &event),
        "the provider id is <namespace>/<name>"
    );

    event.reason = "Other".into();
    assert_ne!(
        alias(&deliver(&cfg, &event, &rec).await),
        first,
        "another reason"
    );
    let mut other = opsgenie(&rec.url());
    other.name = "second".into();
    assert_ne!(
        alias(&deliver(&other, &fixture_event(), &rec).await),
        first,
        "another provider"
    );
}

#[test]
fn the_api_key_is_required() {
    let mut cfg = config(ProviderType::Opsgenie, "https://api.opsgenie.com/v2/alerts");
    let err = build_err(&cfg);
    assert!(
        err.starts_with("secret key \"token\": the Opsgenie API key is empty"),
        "{err}"
    );
    cfg.token = Some(SecretString::new(""));
    assert!(build_err(&cfg).contains("API key is empty"));
    cfg.token = Some("key".into());
    cfg.address = "".into();
    assert_eq!(
        build_err(&cfg),
        "spec.address: invalid Opsgenie URL: the address is empty"
    );
}
