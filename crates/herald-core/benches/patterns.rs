//! One Alert pattern matched against an event's message (`cargo xtask bench`), on the engine
//! this build has: `regex-lite` by default, the `regex` crate with `--features unicode-regex`.

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use herald_core::pattern::{Pattern, UNICODE_BUILT_IN};

/// A kustomize-controller message of a typical length (134 bytes), matched by none of them.
const MESSAGE: &str = "Reconciliation finished in 1.2s, next run in 10m0s; applied revision main@sha1:69b59063470310ebbd88a9156325322a124e55a3 to 42 objects";

/// Patterns as Flux's docs and users write them: anchored, unanchored, alternatives, a word.
const PATTERNS: [&str; 4] = [
    "^Dependencies.*",
    ".*error.*",
    "(?i)health check failed|timeout",
    r"\bfailed\b",
];

/// The median over 5 rounds of at least 400 ms of the mean nanoseconds per call, after a
/// warm-up: herald-testkit's method (herald-testkit depends on this crate, so it cannot be a
/// dependency of its benchmarks).
fn measure(mut f: impl FnMut() -> bool) -> f64 {
    for _ in 0..10_000 {
        black_box(f());
    }
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_millis(400) {
                for _ in 0..256 {
                    black_box(f());
                }
                n += 256;
            }
            started.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn main() {
    let engine = if UNICODE_BUILT_IN {
        "regex"
    } else {
        "regex-lite"
    };
    for source in PATTERNS {
        let pattern = Pattern::new(source).unwrap();
        assert!(!pattern.is_match(MESSAGE), "{source}");
        let ns = measure(|| pattern.is_match(black_box(MESSAGE)));
        println!("alert pattern {source:?} ({engine}), 134-byte message: {ns:.0} ns/event");
    }
}
