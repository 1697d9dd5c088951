//! Rendering cost per event of each alerting provider (`cargo bench -p herald-alerting --bench
//! render`): one line per type, `<type> render: <ns> ns/event`, the median of 5 rounds of at
//! least 0.3 s each.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_core::{Event, ObjectReference, Severity, Timestamp};
use herald_testkit::measure;

fn event(severity: Severity) -> Event {
    Event {
        involved_object: ObjectReference {
            kind: "Kustomization".into(),
            namespace: "flux-system".into(),
            name: "apps".into(),
            uid: "7d0cdc51-ddcf-4743-b223-83ca5c699632".into(),
            api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
            ..Default::default()
        },
        severity,
        timestamp: Timestamp::from_unix(1_764_324_000),
        message: "Deployment/apps/podinfo configured\nService/apps/podinfo unchanged".into(),
        reason: "ReconciliationSucceeded".into(),
        metadata: [
            (
                "revision",
                "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
            ),
            ("summary", "Production cluster"),
            ("env", "prod"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into(),
        reporting_controller: "kustomize-controller".into(),
        reporting_instance: "kustomize-controller-7c7b47f5f-8bhrp".into(),
    }
}

/// One provider's render, returning the body length.
type Case<'a> = (&'static str, Box<dyn FnMut() -> usize + 'a>);

fn main() {
    let info = event(Severity::Info);
    let error = event(Severity::Error);
    let cases: [Case<'_>; 4] = [
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
    ];
    for (name, f) in cases {
        println!("{name} render: {:.0} ns/event", measure(f));
    }
}
