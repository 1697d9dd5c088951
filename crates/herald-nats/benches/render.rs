//! Rendering cost per event of `nats` (`cargo bench -p herald-nats --bench render`): the
//! payload (the event JSON), `nats render: <ns> ns/event`, the median of 5 rounds of at least
//! 0.3 s each.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_core::Severity;
use herald_testkit::{bench_event, measure};

fn main() {
    let event = bench_event(Severity::Info);
    let ns = measure(|| herald_nats::render(black_box(&event)).unwrap().len());
    println!("nats render: {ns:.0} ns/event");
}
