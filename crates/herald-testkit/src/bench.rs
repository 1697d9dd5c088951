//! A tiny benchmark loop for the `benches/render.rs` of each family (no criterion: plain
//! `Instant` loops keep the build light).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The median, over 5 rounds of at least 400 ms each, of the mean nanoseconds per call of `f`,
/// after a warm-up. The result of `f` goes through `black_box` so the work is not optimized away.
pub fn measure<T>(mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..10_000 {
        black_box(f());
    }
    let min = Duration::from_millis(400);
    let mut rounds = Vec::with_capacity(5);
    for _ in 0..5 {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < min {
            for _ in 0..256 {
                black_box(f());
            }
            n += 256;
        }
        rounds.push(started.elapsed().as_nanos() as f64 / n as f64);
    }
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

#[cfg(test)]
mod tests {
    #[test]
    fn measures_something_positive() {
        let mut x = 0u64;
        let ns = super::measure(|| {
            x = x.wrapping_mul(31).wrapping_add(7);
            x
        });
        assert!(ns > 0.0 && ns < 1_000_000.0, "{ns}");
    }
}
