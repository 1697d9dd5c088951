//! Parse + render + sign per event for `generic-hmac` (`cargo xtask bench`).

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_core::Event;
use herald_testkit::measure;

const EVENT: &str = r#"{"involvedObject":{"kind":"Kustomization","namespace":"flux-system","name":"apps","uid":"0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a","apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-11-28T10:00:00Z","message":"Reconciliation finished in 1.2s, next run in 10m0s; applied revision main@sha1:69b59063470310ebbd88a9156325322a124e55a3 to 42 objects in 3 namespaces","reason":"ReconciliationSucceeded","metadata":{"revision":"main@sha1:69b59063470310ebbd88a9156325322a124e55a3","summary":"Production cluster","env":"prod"},"reportingController":"kustomize-controller","reportingInstance":"kustomize-controller-7c7b47f5f-8bhrp"}"#;

fn one(key: &[u8]) -> String {
    let event: Event = serde_json::from_slice(black_box(EVENT.as_bytes())).unwrap();
    let body = herald_webhook::render_body(&event);
    herald_webhook::sign(key, &body)
}

fn main() {
    let key = b"7152fed34dd6149a7c75a276c510da27cb6f82b0";
    let ns = measure(|| {
        black_box(one(black_box(key)));
    });
    println!("generic-hmac parse+render+sign: {ns:.0} ns/event");
    let event: Event = serde_json::from_str(EVENT).unwrap();
    let ns = measure(|| {
        black_box(herald_webhook::render_body(black_box(&event)));
    });
    println!("generic render: {ns:.0} ns/event");
}
