//! Duplicate-event suppression, as Flux does it (section 3): one event per key per interval,
//! in fixed windows anchored at the first time a key is seen.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use herald_core::{Event, metadata};

/// The duplicate key of an event (after metadata cleanup, before the token is dropped):
/// SHA-256 of `event/name=<n>/namespace=<ns>/kind=<k>/message=<m>` followed by
/// `/originRevision=`, `/revision=` and `/token=` parts when the controller sent them.
pub fn key(event: &Event) -> [u8; 32] {
    let o = &event.involved_object;
    // Hashed piece by piece: the same bytes as Flux's key string, without building it.
    let mut hash = Sha256::new();
    for part in [
        "event/name=",
        &o.name,
        "/namespace=",
        &o.namespace,
        "/kind=",
        &o.kind,
        "/message=",
        &event.message,
    ] {
        hash.update(part.as_bytes());
    }
    for k in ["originRevision", "revision", "token"] {
        if let Some(v) = metadata::controller_value(event, k) {
            for part in ["/", k, "=", v] {
                hash.update(part.as_bytes());
            }
        }
    }
    hash.finalize().into()
}

/// What the limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// First of its window: deliver. `reset` is when the window ends.
    Allowed {
        /// End of the current window.
        reset: SystemTime,
    },
    /// A duplicate within the window: answer 429.
    Duplicate {
        /// End of the current window.
        reset: SystemTime,
    },
    /// Suppression is off (interval 0).
    Off,
}

#[derive(Debug)]
struct Bucket {
    start: Instant,
    used_tick: u64,
    last_seen: Instant,
}

/// Duplicate windows kept at most (about 100 bytes each). Only events that matched an Alert
/// get one.
pub const MAX_KEYS: usize = 100_000;

/// The in-memory limiter shared by every connection.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    max_keys: usize,
    buckets: Mutex<Buckets>,
    full_logged: AtomicBool,
}

/// The windows, and the earliest moment one of them can go stale.
#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<[u8; 32], Bucket>,
    /// No window goes stale before this (a lower bound: `last_seen` only moves forward, and
    /// windows added later are newer). A full table is swept only once it is reached, so a
    /// flood of new events costs one scan per expiry, not one per event.
    no_expiry_before: Option<Instant>,
    /// Full scans so far.
    scans: u64,
}

impl Buckets {
    /// Forgets windows not seen for `ttl` and notes when the oldest that stays goes stale.
    fn sweep(&mut self, now: Instant, ttl: Duration) {
        self.scans += 1;
        let mut oldest: Option<Instant> = None;
        self.map.retain(|_, b| {
            let keep = now.saturating_duration_since(b.last_seen) < ttl;
            if keep {
                oldest = Some(oldest.map_or(b.last_seen, |o| o.min(b.last_seen)));
            }
            keep
        });
        self.no_expiry_before = oldest.map(|o| o + ttl);
    }

    /// Whether a new window fits, sweeping a full table when a window may have gone stale.
    fn has_room(&mut self, max_keys: usize, now: Instant, ttl: Duration) -> bool {
        if self.map.len() < max_keys {
            return true;
        }
        if self.no_expiry_before.is_none_or(|t| now >= t) {
            self.sweep(now, ttl);
        }
        self.map.len() < max_keys
    }
}

impl RateLimiter {
    /// A limiter with windows of `interval`; zero turns suppression off.
    pub fn new(interval: Duration) -> Self {
        RateLimiter::with_max_keys(interval, MAX_KEYS)
    }

    /// A limiter that keeps at most `max_keys` windows. Beyond that, once the stale ones are
    /// swept, new events are let through without a window of their own: at worst a duplicate
    /// is delivered, never an event lost.
    pub fn with_max_keys(interval: Duration, max_keys: usize) -> Self {
        RateLimiter {
            interval,
            max_keys,
            buckets: Mutex::new(Buckets::default()),
            full_logged: AtomicBool::new(false),
        }
    }

    /// The window length.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes the key's token for the current window, if it is still there.
    pub fn check(&self, key: [u8; 32], now: Instant, wall: SystemTime) -> Decision {
        if self.interval.is_zero() {
            return Decision::Off;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let interval = self.interval.as_nanos();
        if buckets.map.len() >= self.max_keys && !buckets.map.contains_key(&key) {
            if !buckets.has_room(self.max_keys, now, self.ttl()) {
                if !self.full_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        windows = buckets.map.len(),
                        "duplicate suppression is full: new events are accepted without a window until old ones expire"
                    );
                }
                return Decision::Allowed {
                    reset: wall + self.interval,
                };
            }
            self.full_logged.store(false, Ordering::Relaxed);
        }
        let bucket = buckets.map.entry(key).or_insert(Bucket {
            start: now,
            used_tick: u64::MAX,
            last_seen: now,
        });
        bucket.last_seen = now;
        let elapsed = now.saturating_duration_since(bucket.start).as_nanos();
        let tick = (elapsed / interval) as u64;
        let until_reset =
            Duration::from_nanos(((u128::from(tick) + 1) * interval - elapsed) as u64);
        let reset = wall + until_reset;
        if bucket.used_tick == tick {
            Decision::Duplicate { reset }
        } else {
            bucket.used_tick = tick;
            Decision::Allowed { reset }
        }
    }

    /// Gives the key's token back: the event it was taken for was not accepted after all
    /// (503), so the emitter's retry must not be answered 429.
    pub fn forget(&self, key: &[u8; 32]) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.map.get_mut(key) {
            bucket.used_tick = u64::MAX;
        }
    }

    /// Forgets keys not seen for two intervals; returns how many remain.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.sweep(now, self.ttl());
        buckets.map.len()
    }

    /// How long a window is kept after its key was last seen.
    fn ttl(&self) -> Duration {
        self.interval * 2
    }

    /// Full scans of the windows so far.
    #[cfg(test)]
    fn scans(&self) -> u64 {
        self.buckets.lock().map(|b| b.scans).unwrap_or_default()
    }
}

/// RFC 1123 in UTC, as Go's `time.RFC1123` prints it: `Mon, 02 Jan 2006 15:04:05 UTC`.
pub fn rfc1123(t: SystemTime) -> String {
    // httpdate prints `GMT`; Flux prints `UTC`.
    let s = httpdate::fmt_http_date(t);
    match s.strip_suffix("GMT") {
        Some(prefix) => format!("{prefix}UTC"),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::ObjectReference;

    fn event(message: &str, meta: &[(&str, &str)]) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "Kustomization".into(),
                namespace: "1".into(),
                name: "1".into(),
                api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
                ..Default::default()
            },
            message: message.into(),
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn key_matches_flux() {
        // sha256("event/name=1/namespace=1/kind=Kustomization/message=Health check passed/revision=rev1")
        let e = event(
            "Health check passed",
            &[("kustomize.toolkit.fluxcd.io/revision", "rev1")],
        );
        let want: [u8; 32] =
            Sha256::digest(b"event/name=1/namespace=1/kind=Kustomization/message=Health check passed/revision=rev1").into();
        assert_eq!(key(&e), want);
        let with_all = event(
            "m",
            &[
                ("kustomize.toolkit.fluxcd.io/token", "t"),
                ("kustomize.toolkit.fluxcd.io/revision", "r"),
                ("kustomize.toolkit.fluxcd.io/originRevision", "o"),
            ],
        );
        let want: [u8; 32] =
            Sha256::digest(b"event/name=1/namespace=1/kind=Kustomization/message=m/originRevision=o/revision=r/token=t").into();
        assert_eq!(key(&with_all), want);
    }

    #[test]
    fn one_per_window() {
        let rl = RateLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let k = key(&event("m", &[]));
        assert_eq!(
            rl.check(k, t0, wall),
            Decision::Allowed {
                reset: wall + Duration::from_secs(60)
            }
        );
        assert_eq!(
            rl.check(
                k,
                t0 + Duration::from_secs(10),
                wall + Duration::from_secs(10)
            ),
            Decision::Duplicate {
                reset: wall + Duration::from_secs(60)
            }
        );
        assert!(matches!(
            rl.check(key(&event("other", &[])), t0, wall),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            rl.check(
                k,
                t0 + Duration::from_secs(61),
                wall + Duration::from_secs(61)
            ),
            Decision::Allowed { .. }
        ));
        assert_eq!(rl.sweep(t0 + Duration::from_secs(100)), 2);
        assert_eq!(rl.sweep(t0 + Duration::from_secs(200)), 0);
        assert_eq!(
            RateLimiter::new(Duration::ZERO).check(k, t0, wall),
            Decision::Off
        );
    }

    #[test]
    fn windows_are_capped() {
        let rl = RateLimiter::with_max_keys(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let k = |m: &str| key(&event(m, &[]));
        assert!(matches!(
            rl.check(k("a"), t0, wall),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            rl.check(k("b"), t0, wall),
            Decision::Allowed { .. }
        ));
        // Full: a third event goes through, but gets no window, so its repeat goes through too.
        assert!(matches!(
            rl.check(k("c"), t0, wall),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            rl.check(k("c"), t0, wall),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            rl.check(k("a"), t0, wall),
            Decision::Duplicate { .. }
        ));
        assert_eq!(rl.sweep(t0), 2);
        // Once the old windows are stale they make room.
        let later = t0 + Duration::from_secs(121);
        assert!(matches!(
            rl.check(k("c"), later, wall),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            rl.check(k("c"), later, wall),
            Decision::Duplicate { .. }
        ));
    }

    #[test]
    fn a_full_table_is_scanned_once_per_expiry_not_once_per_event() {
        let rl = RateLimiter::with_max_keys(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let k = |i: u32| key(&event(&i.to_string(), &[]));
        for i in 0..3 {
            rl.check(k(i), t0 + Duration::from_secs(u64::from(i)), wall);
        }
        // Full, and the oldest window (seen at t0) stays fresh until t0 + 120 s.
        for i in 3..1_000 {
            rl.check(k(i), t0 + Duration::from_secs(10), wall);
        }
        assert_eq!(rl.scans(), 1);
        rl.check(k(1_000), t0 + Duration::from_secs(119), wall);
        assert_eq!(rl.scans(), 1);
        // Now the first window is stale: one scan frees it and the new key takes its place.
        let at = t0 + Duration::from_secs(120);
        assert!(matches!(
            rl.check(k(1_001), at, wall),
            Decision::Allowed { .. }
        ));
        assert_eq!(rl.scans(), 2);
        assert!(matches!(
            rl.check(k(1_001), at, wall),
            Decision::Duplicate { .. }
        ));
        // Full again; that scan found the next window to go stale: the one seen at t0 + 1 s.
        rl.check(k(1_002), at, wall);
        rl.check(k(1_003), at + Duration::from_millis(500), wall);
        assert_eq!(rl.scans(), 2);
        rl.check(k(1_004), t0 + Duration::from_secs(121), wall);
        assert_eq!(rl.scans(), 3);
        assert!(matches!(
            rl.check(k(1_004), t0 + Duration::from_secs(121), wall),
            Decision::Duplicate { .. }
        ));
    }

    #[test]
    fn reset_is_formatted_like_go() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1136214245);
        assert_eq!(rfc1123(t), "Mon, 02 Jan 2006 15:04:05 UTC");
    }

    #[test]
    fn a_forgotten_key_is_allowed_again() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let k = key(&event("m", &[]));
        let now = Instant::now();
        let wall = SystemTime::now();
        assert!(matches!(
            limiter.check(k, now, wall),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            limiter.check(k, now, wall),
            Decision::Duplicate { .. }
        ));
        limiter.forget(&k);
        assert!(matches!(
            limiter.check(k, now, wall),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            limiter.check(k, now, wall),
            Decision::Duplicate { .. }
        ));
    }
}
