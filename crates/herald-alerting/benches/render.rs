//! Rendering cost per event of each alerting provider (`cargo bench -p herald-alerting --bench
//! render`): one line per type, `<type> render: <ns> ns/event`, the median of 5 rounds of at
//! least 0.3 s each.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_core::Severity;
use herald_testkit::{bench_event as event, measure};

/// One provider's render, returning the body length.
type Case<'a> = (&'static str, Box<dyn FnMut() -> usize + 'a>);

fn main() {
    let info = event(Severity::Info);
    let error = event(Severity::Error);
    let alert = herald_alerting::otel::AlertMeta {
        uid: "5f0c8a2e-4b1d-4c3a-9e7f-2a6b8c0d1e3f".into(),
        namespace: "flux-system".into(),
        name: "on-call".into(),
    };
    let cases: [Case<'_>; 8] = [
        (
            "alertmanager",
            Box::new(|| {
                herald_alerting::alertmanager::render(black_box(&error))
                    .unwrap()
                    .len()
            }),
        ),
        (
            "opsgenie",
            Box::new(|| {
                herald_alerting::opsgenie::render(black_box(&error), "flux-system/opsgenie")
                    .unwrap()
                    .len()
            }),
        ),
        (
            "grafana",
            Box::new(|| {
                herald_alerting::grafana::render(black_box(&info))
                    .unwrap()
                    .len()
            }),
        ),
        (
            "sentry",
            Box::new(|| {
                herald_alerting::sentry::render(
                    black_box(&error),
                    "production",
                    "flux-system/sentry",
                )
                .unwrap()
                .unwrap()
                .len()
            }),
        ),
        (
            "pagerduty (event and change event)",
            Box::new(|| {
                herald_alerting::pagerduty::render_event(black_box(&info), "routing-key")
                    .unwrap()
                    .len()
                    + herald_alerting::pagerduty::render_change(black_box(&info), "routing-key")
                        .unwrap()
                        .len()
            }),
        ),
        (
            "datadog",
            Box::new(|| {
                herald_alerting::datadog::render(black_box(&error))
                    .unwrap()
                    .len()
            }),
        ),
        (
            "incident.io",
            Box::new(|| {
                herald_alerting::incident_io::render(black_box(&error))
                    .unwrap()
                    .len()
            }),
        ),
        (
            "otel (protobuf span)",
            Box::new(|| {
                herald_alerting::otel::render(
                    black_box(&error),
                    &alert,
                    std::time::SystemTime::UNIX_EPOCH,
                )
                .len()
            }),
        ),
    ];
    for (name, f) in cases {
        println!("{name} render: {:.0} ns/event", measure(f));
    }
}
