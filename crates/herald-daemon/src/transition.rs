//! How a delivery moves between states: pure functions of (record, outcome, now, policy),
//! table-tested below. The engine applies them; nothing here does I/O or reads a clock.
//!
//! - After an attempt ([`after_attempt`]): delivered; or failed and tried again after the
//!   service's `Retry-After` or a doubling backoff; or dead, because the error will repeat
//!   (a permanent error) or because it is still failing `--delivery-max-age` after its age
//!   clock started. A 429 (or a `Retry-After`) also pauses the whole Provider for that wait.
//! - A retry by hand ([`manual_retry`]) puts a dead or failed delivery back to pending and
//!   restarts its age clock, so that it gets a full `--delivery-max-age` of attempts again.
//! - A delivery waiting behind others ([`expired_waiting`]) is given up only for its own age,
//!   and only when its Provider has not worked once since its age clock started: one transient
//!   failure never gives up the deliveries queued behind it.
//! - At start ([`resume`]), a retry time far in the future (the clock went back while herald
//!   was stopped) is brought back within one backoff.

use std::time::Duration;

use herald_core::DeliveryError;
use herald_core::RetryPolicy;
use herald_core::retry::Verdict;

use crate::outbox::{DeadReason, Record, State};

/// The settings the transitions depend on.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// A delivery still failing this long after its age clock started is given up.
    pub(crate) max_age: Duration,
    /// The waits between attempts (never exhausted: the age bounds them).
    pub(crate) retry: RetryPolicy,
}

impl Policy {
    /// Waits of 1 s doubling up to `backoff_max`, given up after `max_age`.
    pub(crate) fn new(max_age: Duration, backoff_max: Duration) -> Policy {
        Policy {
            max_age,
            retry: RetryPolicy::unbounded(Duration::from_secs(1).min(backoff_max), backoff_max),
        }
    }

    fn max_age_ms(&self) -> u64 {
        u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX)
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The service accepted it.
    Delivered,
    /// It failed: the (masked) error and what the service said about retrying.
    Failed(DeliveryError),
}

/// The result of a transition: the record's new contents, and how long the whole Provider
/// should pause (rate limited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// The record after the attempt.
    pub(crate) record: Record,
    /// Attempt nothing of this Provider for this long.
    pub(crate) pause: Option<Duration>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The record of an active delivery after one attempt that ended at `now`.
pub(crate) fn after_attempt(mut r: Record, outcome: &Outcome, now: u64, policy: &Policy) -> Step {
    r.attempts = r.attempts.saturating_add(1);
    r.last_attempt_at = Some(now);
    r.next_attempt_at = None;
    let error = match outcome {
        Outcome::Delivered => {
            r.state = State::Delivered;
            r.dead_reason = None;
            r.finished_at = Some(now);
            return Step {
                record: r,
                pause: None,
            };
        }
        Outcome::Failed(error) => error,
    };
    r.failures = r.failures.saturating_add(1);
    r.last_error = Some(error.message().to_owned());
    // A clock that went back since the clock started counts as no time at all.
    let age = now.saturating_sub(r.clock_from);
    let give_up = |mut r: Record, reason| {
        r.state = State::Dead;
        r.dead_reason = Some(reason);
        r.finished_at = Some(now);
        Step {
            record: r,
            pause: None,
        }
    };
    match policy.retry.verdict(r.failures, error) {
        Verdict::Permanent => give_up(r, DeadReason::Permanent),
        Verdict::Exhausted => give_up(r, DeadReason::MaxAge),
        Verdict::RetryIn(_) if age >= policy.max_age_ms() => give_up(r, DeadReason::MaxAge),
        Verdict::RetryIn(wait) => {
            r.state = State::Failed;
            r.next_attempt_at = Some(now.saturating_add(ms(wait)));
            let pause = (error.is_rate_limited() || error.retry_after().is_some()).then_some(wait);
            Step { record: r, pause }
        }
    }
}

/// A dead or failed delivery put back to pending by hand at `now`: attempted at once, with a
/// fresh age clock and backoff. `None` for a pending or delivered one (nothing to retry).
pub(crate) fn manual_retry(record: &Record, now: u64) -> Option<Record> {
    if !matches!(record.state, State::Dead | State::Failed) {
        return None;
    }
    let mut r = record.clone();
    r.state = State::Pending;
    r.dead_reason = None;
    r.failures = 0;
    r.clock_from = now;
    r.next_attempt_at = None;
    r.finished_at = None;
    Some(r)
}

/// Whether a delivery waiting (not being attempted) since its age clock started at
/// `clock_from` should be given up at `now`: it is past the maximum age, and its Provider has
/// been failing without a single success since before its clock started.
pub(crate) fn expired_waiting(
    clock_from: u64,
    provider_failing_since: Option<u64>,
    now: u64,
    policy: &Policy,
) -> bool {
    provider_failing_since.is_some_and(|since| since <= clock_from)
        && now.saturating_sub(clock_from) >= policy.max_age_ms()
}

/// The record of a delivery given up while waiting (see [`expired_waiting`]).
pub(crate) fn give_up_waiting(
    record: &Record,
    last_error: Option<&str>,
    now: u64,
    policy: &Policy,
) -> Record {
    let mut r = record.clone();
    r.state = State::Dead;
    r.dead_reason = Some(DeadReason::MaxAge);
    r.finished_at = Some(now);
    r.next_attempt_at = None;
    r.last_error = Some(format!(
        "given up after {} without a working Provider; its last error: {}",
        herald_core::duration::format(policy.max_age),
        last_error.unwrap_or("none")
    ));
    r
}

/// An active record as loaded at start `now`: a retry time more than one maximum backoff
/// ahead (the clock went back while herald was stopped) is brought back to `now` plus that.
pub(crate) fn resume(record: &Record, now: u64, policy: &Policy) -> Record {
    let mut r = record.clone();
    let latest = now.saturating_add(ms(policy.retry.max_backoff));
    if let Some(next) = r.next_attempt_at
        && next > latest
    {
        r.next_attempt_at = Some(latest);
    }
    r
}

/// The record of a delivery refused because its Provider (or herald) has too many waiting.
pub(crate) fn refused_by_quota(mut record: Record, why: String, now: u64) -> Record {
    record.state = State::Dead;
    record.dead_reason = Some(DeadReason::Quota);
    record.finished_at = Some(now);
    record.last_error = Some(why);
    record
}

#[cfg(test)]
mod tests {
    use herald_core::OrderingKey;

    use super::*;

    const T0: u64 = 1_764_000_000_000;
    const S: u64 = 1000;
    const H: u64 = 3600 * S;

    fn policy() -> Policy {
        Policy::new(Duration::from_secs(24 * 3600), Duration::from_secs(300))
    }

    fn record(state: State, failures: u32, clock_from: u64) -> Record {
        Record {
            id: 1,
            provider: "flux-system/hook".into(),
            provider_type: "generic".into(),
            alert: "flux-system/a".into(),
            object: "Kustomization/apps/web".into(),
            reason: "R".into(),
            key: OrderingKey(1),
            accepted_at: T0,
            state,
            dead_reason: None,
            attempts: failures,
            failures,
            clock_from,
            last_attempt_at: None,
            last_error: None,
            next_attempt_at: None,
            finished_at: None,
        }
    }

    fn transient() -> Outcome {
        Outcome::Failed(DeliveryError::transient("HTTP 503").with_status(503))
    }

    fn permanent() -> Outcome {
        Outcome::Failed(DeliveryError::permanent("HTTP 404").with_status(404))
    }

    fn limited(retry_after: Option<u64>) -> Outcome {
        let e = DeliveryError::transient("HTTP 429").with_status(429);
        Outcome::Failed(match retry_after {
            Some(s) => e.with_retry_after(Duration::from_secs(s)),
            None => e,
        })
    }

    /// (what, state before, failures before, clock from, outcome, now) → (state, reason,
    /// next attempt, pause in seconds).
    #[test]
    fn every_state_and_outcome() {
        type Row = (
            &'static str,
            State,
            u32,
            u64,
            Outcome,
            u64,
            (State, Option<DeadReason>, Option<u64>, Option<u64>),
        );
        let rows: Vec<Row> = vec![
            (
                "pending, delivered",
                State::Pending,
                0,
                T0,
                Outcome::Delivered,
                T0 + 5,
                (State::Delivered, None, None, None),
            ),
            (
                "failed, delivered",
                State::Failed,
                3,
                T0,
                Outcome::Delivered,
                T0 + H,
                (State::Delivered, None, None, None),
            ),
            (
                "first failure waits 1 s",
                State::Pending,
                0,
                T0,
                transient(),
                T0 + 5,
                (State::Failed, None, Some(T0 + 5 + S), None),
            ),
            (
                "backoff doubles",
                State::Failed,
                1,
                T0,
                transient(),
                T0 + 10 * S,
                (State::Failed, None, Some(T0 + 12 * S), None),
            ),
            (
                "backoff doubles again",
                State::Failed,
                3,
                T0,
                transient(),
                T0 + 10 * S,
                (State::Failed, None, Some(T0 + 18 * S), None),
            ),
            (
                "backoff is capped",
                State::Failed,
                40,
                T0,
                transient(),
                T0 + H,
                (State::Failed, None, Some(T0 + H + 300 * S), None),
            ),
            (
                "Retry-After replaces the backoff and pauses the provider",
                State::Failed,
                5,
                T0,
                limited(Some(7)),
                T0 + H,
                (State::Failed, None, Some(T0 + H + 7 * S), Some(7)),
            ),
            (
                "429 without Retry-After pauses for the backoff",
                State::Pending,
                0,
                T0,
                limited(None),
                T0,
                (State::Failed, None, Some(T0 + S), Some(1)),
            ),
            (
                "Retry-After beyond an hour is honoured for an hour",
                State::Pending,
                0,
                T0,
                limited(Some(90_000)),
                T0,
                (State::Failed, None, Some(T0 + H), Some(3600)),
            ),
            (
                "permanent error: dead at once",
                State::Pending,
                0,
                T0,
                permanent(),
                T0 + 5,
                (State::Dead, Some(DeadReason::Permanent), None, None),
            ),
            (
                "permanent error after failures",
                State::Failed,
                7,
                T0,
                permanent(),
                T0 + H,
                (State::Dead, Some(DeadReason::Permanent), None, None),
            ),
            (
                "just under the max age: retried",
                State::Failed,
                9,
                T0,
                transient(),
                T0 + 24 * H - 1,
                (State::Failed, None, Some(T0 + 24 * H - 1 + 300 * S), None),
            ),
            (
                "at the max age: dead",
                State::Failed,
                9,
                T0,
                transient(),
                T0 + 24 * H,
                (State::Dead, Some(DeadReason::MaxAge), None, None),
            ),
            (
                "a delivered one past the max age is still delivered",
                State::Failed,
                9,
                T0,
                Outcome::Delivered,
                T0 + 48 * H,
                (State::Delivered, None, None, None),
            ),
            (
                "after a retry by hand the clock starts again",
                State::Pending,
                0,
                T0 + 30 * H,
                transient(),
                T0 + 31 * H,
                (State::Failed, None, Some(T0 + 31 * H + S), None),
            ),
            (
                "clock went back: no age, no underflow",
                State::Failed,
                2,
                T0,
                transient(),
                T0 - 10 * H,
                (State::Failed, None, Some(T0 - 10 * H + 4 * S), None),
            ),
            (
                "clock went back a lot",
                State::Pending,
                0,
                T0,
                transient(),
                0,
                (State::Failed, None, Some(S), None),
            ),
            (
                "clock jumped ahead past the max age: dead on failure",
                State::Failed,
                1,
                T0,
                transient(),
                T0 + 25 * H,
                (State::Dead, Some(DeadReason::MaxAge), None, None),
            ),
        ];
        let p = policy();
        for (
            what,
            state,
            failures,
            clock_from,
            outcome,
            now,
            (want_state, want_reason, want_next, want_pause),
        ) in rows
        {
            let before = record(state, failures, clock_from);
            let step = after_attempt(before.clone(), &outcome, now, &p);
            let r = &step.record;
            assert_eq!(
                (
                    r.state,
                    r.dead_reason,
                    r.next_attempt_at,
                    step.pause.map(|d| d.as_secs())
                ),
                (want_state, want_reason, want_next, want_pause),
                "{what}"
            );
            assert_eq!(r.attempts, before.attempts + 1, "{what}: attempts");
            assert_eq!(r.last_attempt_at, Some(now), "{what}");
            match r.state {
                State::Delivered | State::Dead => assert_eq!(r.finished_at, Some(now), "{what}"),
                _ => assert_eq!(r.finished_at, None, "{what}"),
            }
            match &outcome {
                Outcome::Delivered => assert_eq!(r.failures, before.failures, "{what}"),
                Outcome::Failed(e) => {
                    assert_eq!(r.failures, before.failures + 1, "{what}");
                    assert_eq!(r.last_error.as_deref(), Some(e.message()), "{what}");
                }
            }
            assert_eq!(
                (r.id, r.clock_from, r.accepted_at),
                (1, clock_from, T0),
                "{what}: kept"
            );
        }
    }

    #[test]
    fn counters_saturate() {
        let mut r = record(State::Failed, u32::MAX, T0);
        r.attempts = u32::MAX;
        let step = after_attempt(r, &transient(), T0 + S, &policy());
        assert_eq!(
            (step.record.attempts, step.record.failures),
            (u32::MAX, u32::MAX)
        );
        assert_eq!(step.record.next_attempt_at, Some(T0 + S + 300 * S));
    }

    #[test]
    fn retries_by_hand() {
        let now = T0 + 30 * H;
        for state in [State::Dead, State::Failed] {
            let mut r = record(state, 12, T0);
            r.dead_reason = (state == State::Dead).then_some(DeadReason::MaxAge);
            r.finished_at = (state == State::Dead).then_some(T0 + 24 * H);
            r.next_attempt_at = (state == State::Failed).then_some(T0 + 31 * H);
            r.last_error = Some("HTTP 503".into());
            let again = manual_retry(&r, now).unwrap();
            assert_eq!(again.state, State::Pending, "{state:?}");
            assert_eq!(
                (
                    again.dead_reason,
                    again.failures,
                    again.clock_from,
                    again.next_attempt_at,
                    again.finished_at
                ),
                (None, 0, now, None, None),
                "{state:?}"
            );
            assert_eq!(
                (again.attempts, again.last_error.as_deref()),
                (12, Some("HTTP 503")),
                "history kept"
            );
            // The first failure after the retry is an ordinary retry, not an age death.
            let step = after_attempt(again, &transient(), now + S, &policy());
            assert_eq!(step.record.state, State::Failed);
            assert_eq!(step.record.next_attempt_at, Some(now + 2 * S));
        }
        for state in [State::Pending, State::Delivered] {
            assert_eq!(manual_retry(&record(state, 0, T0), now), None, "{state:?}");
        }
    }

    #[test]
    fn only_age_gives_up_waiting_deliveries() {
        let p = policy();
        let day = 24 * H;
        // (clock from, provider failing since, now) → given up?
        let rows = [
            ("young, provider failing", T0, Some(T0 - H), T0 + H, false),
            (
                "old, provider failing all along",
                T0,
                Some(T0 - H),
                T0 + day,
                true,
            ),
            (
                "old, provider failing since exactly its acceptance",
                T0,
                Some(T0),
                T0 + day,
                true,
            ),
            (
                "old, but the provider worked since (a new run of failures)",
                T0,
                Some(T0 + day - S),
                T0 + day,
                false,
            ),
            ("old, provider not failing", T0, None, T0 + 2 * day, false),
            (
                "retried by hand: its clock restarted",
                T0 + day,
                Some(T0),
                T0 + day + H,
                false,
            ),
            ("clock went back", T0, Some(T0 - H), T0 - day, false),
        ];
        for (what, clock_from, since, now, want) in rows {
            assert_eq!(expired_waiting(clock_from, since, now, &p), want, "{what}");
        }
        let r = give_up_waiting(
            &record(State::Pending, 0, T0),
            Some("HTTP 503"),
            T0 + day,
            &p,
        );
        assert_eq!(
            (r.state, r.dead_reason, r.finished_at),
            (State::Dead, Some(DeadReason::MaxAge), Some(T0 + day))
        );
        assert_eq!(
            r.last_error.as_deref(),
            Some("given up after 24h0m0s without a working Provider; its last error: HTTP 503")
        );
    }

    #[test]
    fn resuming_after_the_clock_went_back() {
        let p = policy();
        let mut r = record(State::Failed, 3, T0);
        r.next_attempt_at = Some(T0 + 10 * S);
        assert_eq!(
            resume(&r, T0, &p).next_attempt_at,
            Some(T0 + 10 * S),
            "kept"
        );
        assert_eq!(
            resume(&r, T0 - 48 * H, &p).next_attempt_at,
            Some(T0 - 48 * H + 300 * S),
            "brought back"
        );
        r.next_attempt_at = None;
        assert_eq!(resume(&r, T0, &p).next_attempt_at, None);
    }

    #[test]
    fn quota_refusals_are_dead_and_say_why() {
        let r = refused_by_quota(record(State::Pending, 0, T0), "quota: full".into(), T0);
        assert_eq!(
            (
                r.state,
                r.dead_reason,
                r.finished_at,
                r.attempts,
                r.last_error.as_deref()
            ),
            (
                State::Dead,
                Some(DeadReason::Quota),
                Some(T0),
                0,
                Some("quota: full")
            )
        );
        assert!(manual_retry(&r, T0 + S).is_some(), "retriable");
    }
}
