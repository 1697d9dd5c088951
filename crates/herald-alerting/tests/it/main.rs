//! The alerting providers against a recording server on loopback (and, for Alertmanager, the
//! real Alertmanager): exact bodies and auth headers, retries, error classification, secrets.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod alertmanager;
mod datadog;
mod grafana;
mod incident_io;
mod opsgenie;
mod otel;
mod pagerduty;
mod sentry;
mod templates;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use herald_core::manifest::parse_str;
use herald_core::{Event, Family, Notifier, NotifyFuture, ProviderConfig, ProviderType, Registry};
use herald_http::RetryPolicy;
pub(crate) use herald_testkit::fixture;
use herald_testkit::{Recorded, Recorder};

/// The alerting family as the shared checks of herald-testkit see it (`otel` posting for the
/// Alert of Flux's test, which it needs).
const FAMILY: herald_testkit::Family = herald_testkit::Family {
    types: &herald_alerting::TYPES,
    working_config,
    build: build_for_alert,
};

/// The golden cases every provider renders (herald-testkit's standard ones).
pub(crate) fn cases() -> Vec<(&'static str, Event)> {
    herald_testkit::golden_cases()
}

pub(crate) fn golden(name: &str) -> PathBuf {
    herald_testkit::golden_path(env!("CARGO_MANIFEST_DIR"), name)
}

pub(crate) fn config(ty: ProviderType, address: &str) -> ProviderConfig {
    herald_testkit::provider_config(ty, address)
}

pub(crate) use herald_testkit::request_summary;

/// Retries in milliseconds, so that retry tests are quick.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

pub(crate) fn build(cfg: &ProviderConfig) -> Arc<dyn Notifier> {
    herald_alerting::build_with_retry_policy(cfg, fast_retry()).unwrap()
}

/// [`build`], and for `otel` a notifier whose `post` is `post_for` Flux's test Alert.
fn build_for_alert(cfg: &ProviderConfig) -> Arc<dyn Notifier> {
    let notifier = build(cfg);
    if cfg.provider_type == ProviderType::Otel {
        Arc::new(ForAlert(notifier))
    } else {
        notifier
    }
}

static FLUX_ALERT: LazyLock<serde_json::Value> = LazyLock::new(otel::flux_alert);

#[derive(Debug)]
struct ForAlert(Arc<dyn Notifier>);

impl Notifier for ForAlert {
    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        self.0.post_for(event, &FLUX_ALERT)
    }
}

pub(crate) fn build_err(cfg: &ProviderConfig) -> String {
    herald_alerting::build(cfg).unwrap_err().to_string()
}

/// Posts `event` and returns the one request the recorder got.
pub(crate) async fn deliver(cfg: &ProviderConfig, event: &Event, rec: &Recorder) -> Recorded {
    FAMILY.deliver(cfg, event, rec).await
}

/// A working configuration of `ty` against `url` (a token where one is required, a DSN for
/// Sentry, the routing key for PagerDuty).
pub(crate) fn working_config(ty: ProviderType, url: &str, token: &str) -> ProviderConfig {
    match ty {
        ProviderType::Sentry => config(ty, &sentry::dsn(url, token)),
        ProviderType::PagerDuty => {
            let mut cfg = config(ty, &format!("{url}/v2/enqueue"));
            cfg.channel = token.to_owned();
            cfg
        }
        // Flux authorizes OTLP exports only when the Secret has `headers`.
        ProviderType::Otel => {
            let mut cfg = config(ty, &format!("{url}/v1/traces"));
            cfg.headers = [("X-Scope-OrgID".to_owned(), "tenant-1".into())].into();
            cfg.token = Some(token.into());
            cfg
        }
        _ => {
            let mut cfg = config(ty, &format!("{url}/api"));
            cfg.token = Some(token.into());
            cfg
        }
    }
}

#[test]
fn tidy_every_type_has_a_module_goldens_and_a_readme_section() {
    herald_testkit::assert_family_layout(env!("CARGO_MANIFEST_DIR"), &herald_alerting::TYPES);
}

#[test]
fn register_adds_the_family_and_its_types() {
    let mut registry = Registry::new();
    herald_alerting::register(&mut registry);
    assert_eq!(registry.families().collect::<Vec<_>>(), [Family::Alerting]);
    let mut types: Vec<_> = registry.types().collect();
    types.sort();
    let mut want = herald_alerting::TYPES.to_vec();
    want.sort();
    assert_eq!(types, want);
    let mut upstream: Vec<_> = Family::Alerting.types().collect();
    upstream.sort();
    assert_eq!(
        want, upstream,
        "every alerting type upstream has is implemented"
    );
    let err = build_err(&config(ProviderType::Slack, "https://example.com"));
    assert!(err.contains("not an alerting provider type"), "{err}");
}

#[tokio::test]
async fn client_errors_are_permanent_and_not_retried() {
    FAMILY.client_errors_are_permanent_and_not_retried().await;
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    FAMILY.server_errors_and_rate_limits_are_retried().await;
}

#[tokio::test]
async fn failures_never_show_a_secret() {
    FAMILY
        .failures_never_show_a_secret("e0c1d2b3a4f5-distinctive-secret")
        .await;
}

#[tokio::test]
async fn every_type_builds_from_manifests() {
    let rec = Recorder::start().await;
    let host = rec.url().trim_start_matches("http://").to_owned();
    let yaml = format!(
        r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: am, namespace: flux-system}}
spec: {{type: alertmanager, address: "http://herald:am-pass@{host}/api/v2/alerts"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: og, namespace: flux-system}}
spec: {{type: opsgenie, address: "http://{host}/v2/alerts", secretRef: {{name: og}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: og, namespace: flux-system}}
stringData: {{token: og-api-key}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: gf, namespace: flux-system}}
spec: {{type: grafana, address: "http://{host}/api/annotations", secretRef: {{name: gf}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: gf, namespace: flux-system}}
stringData: {{username: admin, password: gf-pass}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: sn, namespace: flux-system}}
spec: {{type: sentry, channel: staging, secretRef: {{name: sn}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sn, namespace: flux-system}}
stringData: {{address: "http://publickey123@{host}/7"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: pd, namespace: flux-system}}
spec: {{type: pagerduty, channel: pd-routing-key, address: "http://{host}/v2/enqueue?ignored=1"}}
"#
    );
    let (set, errors) = parse_str(Path::new("inline.yaml"), &yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let mut registry = Registry::new();
    herald_alerting::register(&mut registry);
    let event = fixture("kustomization-error.json");
    for provider in &set.providers {
        let cfg = set.provider_config(provider).unwrap();
        registry.build(&cfg).unwrap().post(&event).await.unwrap();
    }
    let got = rec.wait_for(5, Duration::from_secs(5)).await;
    let summary: Vec<String> = got
        .iter()
        .map(|r| request_summary(r, &["authorization", "x-sentry-auth"]))
        .collect();
    assert_eq!(
        summary,
        [
            "POST /api/v2/alerts\nauthorization: Basic aGVyYWxkOmFtLXBhc3M=\n".to_owned(),
            "POST /v2/alerts\nauthorization: GenieKey og-api-key\n".to_owned(),
            "POST /api/annotations\nauthorization: Basic YWRtaW46Z2YtcGFzcw==\n".to_owned(),
            format!(
                "POST /api/7/envelope/\nx-sentry-auth: Sentry sentry_key=publickey123, sentry_version=7, sentry_client=herald/{}\n",
                env!("CARGO_PKG_VERSION")
            ),
            "POST /v2/enqueue\n".to_owned(),
        ]
    );
    assert!(got[3].body_str().contains(r#""environment":"staging""#));
    assert!(
        got[4]
            .body_str()
            .starts_with(r#"{"routing_key":"pd-routing-key","event_action":"trigger""#)
    );
}

#[tokio::test]
async fn tokens_lose_surrounding_whitespace_as_in_every_family() {
    // The trailing newline of `echo token | kubectl create secret`: Go refuses it in a header,
    // so Flux never delivers; herald sends the token Flux would send without it.
    let rec = Recorder::start().await;
    for (ty, want) in [
        (ProviderType::Alertmanager, "Bearer tok-123"),
        (ProviderType::Grafana, "Bearer tok-123"),
        (ProviderType::Opsgenie, "GenieKey tok-123"),
        (ProviderType::Otel, "Bearer tok-123"),
    ] {
        let got = deliver(
            &working_config(ty, &rec.url(), " tok-123\n"),
            &fixture("unicode.json"),
            &rec,
        )
        .await;
        assert_eq!(got.header("authorization"), Some(want), "{ty}");
    }
}
