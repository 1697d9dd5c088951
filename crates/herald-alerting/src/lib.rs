//! herald-alerting: the alerting-tool providers `alertmanager`, `opsgenie`, `grafana`,
//! `sentry`, `pagerduty`, `datadog` and `incident.io`, and the tracing provider `otel`
//! (herald's `alerting` feature).
//!
//! Each turns a Flux event into the request its service expects, as Flux's
//! notification-controller does (section 5 of the compatibility contract), and sends it with
//! [`herald_http`]: Prometheus Alertmanager gets one firing alert (`/api/v2/alerts`), Opsgenie
//! an alert with a de-duplication alias, Grafana an annotation at the event's time, Sentry an
//! error event or a transaction in an envelope for the DSN's project, PagerDuty a trigger or a
//! resolve under the object's UID (and a change event for `info`), Datadog an event with
//! lower-cased tags, incident.io a firing or resolved alert event under the object's UID, and
//! an OpenTelemetry collector one span per event over OTLP/HTTP protobuf, in the trace of the
//! Alert and revision (the one type that needs the Alert: [`herald_core::Notifier::post_for`]).
//! Rendering is pure (the `render` functions of the modules below); sending is the only I/O.
//! Unlike Flux, every failure, Sentry's included, is reported, retried when worth it, and free
//! of secrets.
//!
//! It is not an HTTP client and does no event matching.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::path::Path;
//! use herald_core::{Registry, manifest};
//! use herald_testkit::{Recorder, fixture_event};
//!
//! let grafana = Recorder::start().await;
//! let yaml = format!(
//!     "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\n\
//!      metadata:\n  name: grafana\n  namespace: flux-system\n\
//!      spec:\n  type: grafana\n  address: {}/api/annotations\n  secretRef:\n    name: grafana-token\n\
//!      ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: grafana-token\n  namespace: flux-system\n\
//!      stringData:\n  token: glsa_example\n",
//!     grafana.url()
//! );
//! let (set, errors) = manifest::parse_str(Path::new("providers.yaml"), &yaml);
//! assert!(errors.is_empty(), "{errors:?}");
//! let config = set.provider_config(&set.providers[0]).unwrap();
//!
//! let mut registry = Registry::new();
//! herald_alerting::register(&mut registry);
//! let notifier = registry.build(&config).unwrap();
//! notifier.post(&fixture_event()).await.unwrap();
//!
//! let got = grafana.wait_for(1, std::time::Duration::from_secs(5)).await.remove(0);
//! assert_eq!(got.path, "/api/annotations");
//! assert_eq!(got.header("authorization"), Some("Bearer glsa_example"));
//! assert!(got.body_str().contains(r#""text":"gitrepository/webapp.gitops-system""#));
//! # }
//! ```

use herald_core::{Family, ProviderType};
use herald_http::provider::{Table, entry};

pub mod alertmanager;
mod common;
pub mod datadog;
pub mod grafana;
pub mod incident_io;
pub mod opsgenie;
pub mod otel;
pub mod pagerduty;
pub mod sentry;

/// The providers of this crate: one line per type.
const PROVIDERS: Table<8> = Table::new(
    Family::Alerting,
    [
        entry::<alertmanager::Alertmanager>(ProviderType::Alertmanager),
        entry::<opsgenie::Opsgenie>(ProviderType::Opsgenie),
        entry::<grafana::Grafana>(ProviderType::Grafana),
        entry::<sentry::Sentry>(ProviderType::Sentry),
        entry::<pagerduty::PagerDuty>(ProviderType::PagerDuty),
        entry::<datadog::Datadog>(ProviderType::Datadog),
        entry::<incident_io::IncidentIo>(ProviderType::IncidentIo),
        entry::<otel::Otel>(ProviderType::Otel),
    ],
);

herald_http::family_api!(PROVIDERS);
