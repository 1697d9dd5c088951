//! Rendering cost per event of `googlepubsub` (`cargo bench -p herald-pubsub --bench render`):
//! the publish body (the event JSON in base64, one attribute), `googlepubsub render: <ns>
//! ns/event`, the median of 5 rounds of at least 0.3 s each.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;

use herald_core::Severity;
use herald_testkit::{bench_event, measure};

fn main() {
    let event = bench_event(Severity::Info);
    let attributes = BTreeMap::from([("cluster".to_owned(), "prod-eu".to_owned())]);
    let ns = measure(|| {
        herald_pubsub::render(black_box(&event), &attributes)
            .unwrap()
            .len()
    });
    println!("googlepubsub render: {ns:.0} ns/event");
}
