//! When a failed delivery is worth trying again, and how long to wait: the one retry policy of
//! herald, as a pure function of the error and the failures so far.
//!
//! Whoever runs the attempts applies it: the daemon's delivery engine schedules retries
//! durably (it releases the delivery's slot while it waits, and survives restarts), `herald
//! send` waits in memory, and [`herald_http`'s client](https://docs.rs/herald-http) can retry
//! inside one send when a caller asks it to. None of them decides on its own.

use std::time::Duration;

use crate::DeliveryError;

/// The longest `Retry-After` honoured: a service asking for more is retried after this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// How often a failed delivery is tried again, and the waits in between.
///
/// [`RetryPolicy::default`] makes one attempt and never retries, which is what a caller that
/// retries durably itself wants (the daemon); [`RetryPolicy::flux`] is go-retryablehttp's
/// default, as Flux's notification-controller uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a delivery is retried after its first attempt.
    pub max_retries: u32,
    /// The wait before the first retry; it doubles for every further retry.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts (`Retry-After` excepted, up to
    /// [`RETRY_AFTER_MAX`]).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// One attempt, no retry.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after this wait.
    RetryIn(Duration),
    /// The error will repeat until something changes: do not retry.
    Permanent,
    /// Worth retrying, but the policy's retries are used up.
    Exhausted,
}

impl RetryPolicy {
    /// go-retryablehttp's default, as used by Flux: 4 retries, 2 s doubling, capped at 30 s.
    pub fn flux() -> Self {
        RetryPolicy {
            max_retries: 4,
            ..RetryPolicy::default()
        }
    }

    /// Retries without end (the caller bounds them some other way, for example by age), waiting
    /// `initial` doubling up to `max`.
    pub fn unbounded(initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff: initial,
            max_backoff: max,
        }
    }

    /// The wait before retry number `retry` (0-based): `initial * 2^retry`, at most `max`.
    pub fn backoff(&self, retry: u32) -> Duration {
        2u32.checked_pow(retry)
            .and_then(|factor| self.initial_backoff.checked_mul(factor))
            .map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }

    /// What to do after `failures` failed attempts in a row (at least 1), the last one with
    /// `error`: a permanent error is not retried; a service's `Retry-After` is honoured in
    /// place of the backoff (up to [`RETRY_AFTER_MAX`]); otherwise the wait doubles.
    pub fn verdict(&self, failures: u32, error: &DeliveryError) -> Verdict {
        if !error.is_retryable() {
            return Verdict::Permanent;
        }
        if failures > self.max_retries {
            return Verdict::Exhausted;
        }
        let wait = match error.retry_after() {
            Some(asked) => asked.min(RETRY_AFTER_MAX),
            None => self.backoff(failures.saturating_sub(1)),
        };
        Verdict::RetryIn(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::flux();
        assert_eq!(p.max_retries, 4);
        let waits: Vec<u64> = (0..6).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
        assert_eq!(p.backoff(200), Duration::from_secs(30));
    }

    #[test]
    fn verdicts() {
        let flux = RetryPolicy::flux();
        let once = RetryPolicy::default();
        let forever = RetryPolicy::unbounded(Duration::from_secs(1), Duration::from_secs(300));
        let transient = DeliveryError::transient("503");
        let permanent = DeliveryError::permanent("404");
        let asked =
            |secs| DeliveryError::transient("429").with_retry_after(Duration::from_secs(secs));
        let s = Duration::from_secs;
        let table: [(&RetryPolicy, u32, &DeliveryError, Verdict); 12] = [
            (&flux, 1, &transient, Verdict::RetryIn(s(2))),
            (&flux, 2, &transient, Verdict::RetryIn(s(4))),
            (&flux, 4, &transient, Verdict::RetryIn(s(16))),
            (&flux, 5, &transient, Verdict::Exhausted),
            (&flux, 1, &permanent, Verdict::Permanent),
            (&flux, 1, &asked(7), Verdict::RetryIn(s(7))),
            (&flux, 1, &asked(0), Verdict::RetryIn(s(0))),
            (&flux, 1, &asked(86_400), Verdict::RetryIn(RETRY_AFTER_MAX)),
            (&once, 1, &transient, Verdict::Exhausted),
            (&once, 1, &permanent, Verdict::Permanent),
            (&forever, 30, &transient, Verdict::RetryIn(s(300))),
            (&forever, u32::MAX, &transient, Verdict::RetryIn(s(300))),
        ];
        for (i, (policy, failures, error, want)) in table.iter().enumerate() {
            assert_eq!(policy.verdict(*failures, error), *want, "row {i}");
        }
    }
}
