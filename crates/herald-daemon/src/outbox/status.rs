//! A Provider's status over the replicas sharing a backend: each replica saves its own
//! [`ProviderStatus`] (what its own attempts saw), and [`merge`] combines them into the
//! cluster's, so that every replica's status API and readiness report say the same.
//!
//! The rules, with `S` the cluster's latest success (the latest `last_success_at` of any
//! replica):
//!
//! - `last_success_at`: `S`.
//! - `last_error`, `last_error_at`: the latest error of any replica (on a tie, the one seen
//!   last).
//! - A replica fails *after `S`* when it has failures since its own last success and its last
//!   error is later than `S` (or there is no `S`). The cluster is failing when one does: its
//!   latest outcome is an error.
//! - `failing_since`: the earliest start of those replicas' runs of failures, but never before
//!   `S`: a success anywhere ends the cluster's run. A run that started before `S` counts from
//!   `S` (its first failure after `S` is not known, only that it came after `S`).
//! - `consecutive_failures`: the failures after `S`, summed over those replicas: a run that
//!   started after `S` counts whole; one that started before counts 1 (at least one of its
//!   failures is after `S`, how many is not known). So it is exact while the failing replicas'
//!   runs all started after the cluster's last success, and otherwise a lower bound.
//! - Not failing: no failures, no `failing_since`.
//!
//! Degraded is then judged on the merged status as on a replica's own: failing for longer
//! than `--degraded-after`, cluster-wide.

use std::collections::HashMap;
use std::sync::Arc;

use super::ProviderStatus;

/// What a replica last read of the other replicas' statuses (live ones, and those gone for
/// less than a while: see the backend), per Provider (`namespace/name`).
pub type OtherStatuses = Arc<HashMap<String, Vec<ProviderStatus>>>;

/// The cluster's status of one Provider from its replicas' (see the module documentation).
pub fn merge<'a>(statuses: impl IntoIterator<Item = &'a ProviderStatus>) -> ProviderStatus {
    let statuses: Vec<&ProviderStatus> = statuses.into_iter().collect();
    let success = statuses.iter().filter_map(|s| s.last_success_at).max();
    let latest_error = statuses
        .iter()
        .filter(|s| s.last_error_at.is_some())
        .max_by_key(|s| s.last_error_at);
    let after_success = |t: u64| success.is_none_or(|s| t > s);
    let mut merged = ProviderStatus {
        last_success_at: success,
        last_error: latest_error.and_then(|s| s.last_error.clone()),
        last_error_at: latest_error.and_then(|s| s.last_error_at),
        consecutive_failures: 0,
        failing_since: None,
    };
    let failing = statuses
        .iter()
        .filter(|s| s.consecutive_failures > 0 && s.last_error_at.is_some_and(after_success));
    for s in failing {
        // A status saved without its start (not one herald writes) starts at its last error.
        let start = s.failing_since.or(s.last_error_at).unwrap_or(0);
        let (start, failures) = if after_success(start) {
            (start, s.consecutive_failures)
        } else {
            (success.unwrap_or(start), 1)
        };
        merged.consecutive_failures = merged.consecutive_failures.saturating_add(failures);
        merged.failing_since = Some(merged.failing_since.map_or(start, |f| f.min(start)));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(at: u64) -> ProviderStatus {
        ProviderStatus {
            last_success_at: Some(at),
            ..ProviderStatus::default()
        }
    }

    /// Failing since `since`, `n` failures, the last at `last`, after a success at `success`.
    fn failing(success: Option<u64>, since: u64, n: u64, last: u64) -> ProviderStatus {
        ProviderStatus {
            last_success_at: success,
            last_error: Some(format!("error at {last}")),
            last_error_at: Some(last),
            consecutive_failures: n,
            failing_since: Some(since),
        }
    }

    /// Recovered at `success` after an error at `error`.
    fn recovered(error: u64, success: u64) -> ProviderStatus {
        ProviderStatus {
            last_success_at: Some(success),
            last_error: Some(format!("error at {error}")),
            last_error_at: Some(error),
            consecutive_failures: 0,
            failing_since: None,
        }
    }

    /// (what it checks, the replicas' statuses, the merged status expected).
    fn cases() -> Vec<(&'static str, Vec<ProviderStatus>, ProviderStatus)> {
        vec![
            ("nothing known", vec![], ProviderStatus::default()),
            (
                "one replica: its own status, unchanged",
                vec![failing(Some(5), 10, 3, 30)],
                failing(Some(5), 10, 3, 30),
            ),
            (
                "last_success is the latest of all",
                vec![ok(10), ok(30), ok(20)],
                ok(30),
            ),
            (
                "last_error is the latest error, even of a replica that recovered since",
                vec![recovered(40, 50), recovered(20, 60)],
                recovered(40, 60),
            ),
            (
                "failures before the cluster's latest success are over: not failing",
                vec![failing(Some(5), 10, 4, 40), ok(50)],
                recovered(40, 50),
            ),
            (
                "an error after the latest success: failing",
                vec![ok(50), failing(Some(40), 60, 2, 70)],
                failing(Some(50), 60, 2, 70),
            ),
            (
                "runs after the latest success add up, from the earliest start",
                vec![
                    failing(Some(10), 60, 2, 70),
                    failing(Some(50), 55, 3, 80),
                    ok(20),
                ],
                ProviderStatus {
                    last_success_at: Some(50),
                    last_error: Some("error at 80".into()),
                    last_error_at: Some(80),
                    consecutive_failures: 5,
                    failing_since: Some(55),
                },
            ),
            (
                "a run that started before the latest success counts from it, once",
                vec![failing(None, 10, 9, 70), ok(50)],
                failing(Some(50), 50, 1, 70),
            ),
            (
                "never a success anywhere: every run counts whole",
                vec![failing(None, 10, 2, 20), failing(None, 15, 3, 30)],
                ProviderStatus {
                    last_success_at: None,
                    last_error: Some("error at 30".into()),
                    last_error_at: Some(30),
                    consecutive_failures: 5,
                    failing_since: Some(10),
                },
            ),
            (
                "an error at the very time of the latest success is not after it",
                vec![failing(None, 10, 2, 50), ok(50)],
                recovered(50, 50),
            ),
            (
                "a failing status without its start starts at its last error",
                vec![ProviderStatus {
                    failing_since: None,
                    ..failing(None, 0, 1, 30)
                }],
                ProviderStatus {
                    failing_since: Some(30),
                    ..failing(None, 0, 1, 30)
                },
            ),
            (
                "the counts saturate",
                vec![failing(None, 10, u64::MAX, 20), failing(None, 10, 1, 20)],
                ProviderStatus {
                    consecutive_failures: u64::MAX,
                    ..failing(None, 10, 1, 20)
                },
            ),
        ]
    }

    #[test]
    fn every_rule_of_the_merge() {
        for (what, statuses, expected) in cases() {
            assert_eq!(merge(&statuses), expected, "{what}");
        }
    }

    #[test]
    fn the_order_of_the_replicas_does_not_matter() {
        for (what, mut statuses, expected) in cases() {
            statuses.reverse();
            let mut merged = merge(&statuses);
            // On a tie of errors the one seen last wins: ties only in the texts.
            if merged.last_error_at == expected.last_error_at {
                merged.last_error.clone_from(&expected.last_error);
            }
            assert_eq!(merged, expected, "{what}, reversed");
        }
    }
}
