//! `grafana`: goldens and auth selection.

use herald_core::ProviderType;
use herald_testkit::{Recorder, assert_golden, fixture_event};

use crate::{build_err, cases, config, deliver, golden, request_summary};

const HEADERS: &[&str] = &["content-type", "authorization"];

#[tokio::test]
async fn goldens() {
    let rec = Recorder::start().await;
    for (case, event) in cases() {
        let mut cfg = config(
            ProviderType::Grafana,
            &format!("{}/api/annotations", rec.url()),
        );
        match case {
            "info" | "unicode" => cfg.token = Some("glsa_token".into()),
            "error" => {
                cfg.username = "admin".into();
                cfg.password = Some("admin-pass".into());
            }
            _ => {}
        }
        let got = deliver(&cfg, &event, &rec).await;
        assert_golden(&golden(&format!("grafana/{case}.json")), got.body_str());
        assert_golden(
            &golden(&format!("grafana/{case}.request.txt")),
            &request_summary(&got, HEADERS),
        );
    }
}

#[tokio::test]
async fn a_token_wins_and_basic_needs_both_username_and_password() {
    let rec = Recorder::start().await;
    let mut cfg = config(
        ProviderType::Grafana,
        &format!("{}/api/annotations", rec.url()),
    );
    cfg.token = Some("tok".into());
    cfg.username = "user".into();
    cfg.password = Some("password".into());
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.header("authorization"), Some("Bearer tok"));

    cfg.token = None;
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(
        got.header("authorization"),
        Some("Basic dXNlcjpwYXNzd29yZA==")
    );

    cfg.password = None;
    let got = deliver(&cfg, &fixture_event(), &rec).await;
    assert_eq!(got.header("authorization"), None);
}

#[test]
fn bad_addresses_are_build_errors() {
    let err = build_err(&config(
        ProviderType::Grafana,
        "grafana.example.com/api/annotations",
    ));
    assert!(
        err.starts_with("spec.address: invalid Grafana URL: not an absolute URL"),
        "{err}"
    );
}
