//! Rendering cost per event of each chat provider (`cargo bench -p herald-chat --bench
//! render`): one line per type, `<type> render: <ns> ns/event`, the median of 5 rounds of at
//! least 0.3 s each, for a realistic event with 3 metadata keys.

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_chat::{discord, googlechat, lark, matrix, msteams, rocket, slack, telegram, webex};
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
    let e = || black_box(&error);
    let cases: [Case<'_>; 9] = [
        (
            "slack",
            Box::new(|| slack::render(e(), "#flux", "").unwrap().len()),
        ),
        (
            "discord",
            Box::new(|| discord::render(e(), "").unwrap().len()),
        ),
        (
            "rocket",
            Box::new(|| rocket::render(e(), "#flux", "flux").unwrap().len()),
        ),
        (
            "msteams",
            Box::new(|| {
                msteams::render(e(), msteams::Schema::AdaptiveCard)
                    .unwrap()
                    .len()
            }),
        ),
        (
            "googlechat",
            Box::new(|| googlechat::render(e()).unwrap().len()),
        ),
        (
            "webex",
            Box::new(|| webex::render(e(), "Y2lzY29zcGFyazovL3Vz").unwrap().len()),
        ),
        (
            "telegram",
            Box::new(|| {
                telegram::render(black_box(&info), "-1001234567890:7")
                    .unwrap()
                    .len()
            }),
        ),
        ("lark", Box::new(|| lark::render(e()).unwrap().len())),
        (
            // The transaction id is part of each Matrix request, so it is measured too.
            "matrix",
            Box::new(|| matrix::render(e()).unwrap().len() + matrix::txn_id(e()).unwrap().len()),
        ),
    ];
    for (name, mut f) in cases {
        let ns = measure(&mut f);
        println!("{name} render: {ns:.0} ns/event");
    }
}
