//! From an accepted event to deliveries: matching, Flux's per-alert gating, metadata
//! combination, then one worker per Provider that delivers that Provider's deliveries in
//! acceptance order, with bounded concurrency overall.
//!
//! Every delivery is recorded in the outbox before the event is answered 202, and each state
//! change (delivered, failed and retried later, dead) is written back. A Provider that keeps
//! failing holds only its own queue: its worker retries the oldest delivery with capped
//! exponential backoff until `--delivery-max-age`, then dead-letters it, while every other
//! worker goes on. Providers only ever see `Notifier::post`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};

use herald_core::manifest::Alert;
use herald_core::metadata::{self, ANNOTATION_PREFIX};
use herald_core::{Event, text};

use crate::metrics::{AlertLabels, DeliveryLabels, Metrics, ProviderLabels, TypeLabel};
use crate::outbox::{NewDelivery, ProviderStatus, Record, State, Store, StoreError, now_ms};
use crate::state::{Snapshot, UnreadyAlert};

/// Why an event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Too many deliveries are waiting.
    Full,
    /// The outbox could not record it.
    Store(StoreError),
}

/// How deliveries are run and retried.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Deliveries running at once over all Providers.
    pub(crate) concurrency: usize,
    /// Deliveries waiting (over all Providers) before new events get 503.
    pub(crate) max_pending: usize,
    /// Reject events from namespaces other than the Alert's.
    pub(crate) no_cross_namespace_refs: bool,
    /// A delivery still failing this long after it was accepted is dead-lettered.
    pub(crate) max_age: Duration,
    /// The longest wait between two attempts of one delivery.
    pub(crate) backoff_max: Duration,
    /// A Provider failing for longer than this is reported degraded.
    pub(crate) degraded_after: Duration,
}

/// The first wait after a failed attempt; it doubles with each further failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// A waiting delivery, as its worker needs it.
#[derive(Debug, Clone, Copy)]
struct Item {
    accepted_at: u64,
    next_attempt_at: u64,
}

/// A copy of a lane's counts and status, for reports and metrics.
#[derive(Debug, Default)]
struct LaneView {
    pending: usize,
    in_flight: Option<u64>,
    dead: u64,
    provider_type: String,
    status: ProviderStatus,
    configured: bool,
}

/// One Provider's queue and status.
#[derive(Debug, Default)]
struct Lane {
    items: BTreeMap<u64, Item>,
    in_flight: Option<u64>,
    dead: u64,
    provider_type: String,
    status: ProviderStatus,
    worker: bool,
}

#[derive(Debug)]
struct Queue {
    id: String,
    lane: Mutex<Lane>,
    wake: Notify,
}

impl Queue {
    fn lane(&self) -> std::sync::MutexGuard<'_, Lane> {
        self.lane.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What workers share.
#[derive(Debug)]
struct Core {
    store: Store,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    permits: Arc<Semaphore>,
    pending: AtomicUsize,
    busy: AtomicUsize,
    idle: Notify,
    stop: watch::Receiver<bool>,
    settings: Settings,
    metrics: Arc<Metrics>,
}

/// A Provider's delivery status, as `/api/v1/providers` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ProviderReport {
    /// `namespace/name`.
    pub provider: String,
    /// The Provider's type.
    #[serde(rename = "type")]
    pub provider_type: String,
    /// Deliveries waiting (pending, or failed and retried later).
    pub pending: usize,
    /// The delivery being attempted now, if any.
    pub in_flight: Option<u64>,
    /// Dead deliveries kept.
    pub dead: u64,
    /// The last successful delivery (RFC 3339).
    pub last_success: Option<String>,
    /// The last error, masked.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_time: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// Since when the Provider has been failing (RFC 3339).
    pub failing_since: Option<String>,
    /// Failing for longer than `--degraded-after`.
    pub degraded: bool,
    /// Whether the current manifests still define it.
    pub configured: bool,
}

/// Routes events to per-Provider workers.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    core: Arc<Core>,
}

/// An RFC 3339 time from milliseconds since the epoch.
pub(crate) fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Dispatcher {
    /// A dispatcher over `store`, resuming the deliveries it holds.
    pub(crate) fn new(
        store: Store,
        snapshot: Arc<RwLock<Arc<Snapshot>>>,
        settings: Settings,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, StoreError> {
        let loaded = store.load()?;
        let core = Arc::new(Core {
            store,
            snapshot,
            queues: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            pending: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            idle: Notify::new(),
            stop,
            settings,
            metrics,
        });
        let d = Dispatcher { core };
        for (provider, status) in loaded.providers {
            d.core.queue(&provider).lane().status = status;
        }
        for (provider, dead) in loaded.dead {
            d.core.queue(&provider).lane().dead = dead;
        }
        let resumed = loaded.active.len();
        for record in loaded.active {
            d.core.enqueue(&record);
        }
        if resumed > 0 {
            tracing::info!(deliveries = resumed, "resuming deliveries from the outbox");
        }
        Ok(d)
    }

    /// Deliveries waiting, over all Providers.
    pub(crate) fn pending(&self) -> usize {
        self.core.pending.load(Ordering::SeqCst)
    }

    /// Whether a new event can be accepted.
    pub(crate) fn has_room(&self) -> bool {
        self.pending() < self.core.settings.max_pending
    }

    /// The outbox.
    pub(crate) fn store(&self) -> &Store {
        &self.core.store
    }

    /// Matches `event` (metadata cleaned, token still present) against the Alerts of
    /// `snapshot`, applies Flux's gating and metadata rules, and returns one delivery per
    /// matching Alert, with the event exactly as it will be posted. Nothing is recorded yet.
    pub(crate) fn plan(&self, snapshot: &Snapshot, event: &Event) -> Vec<NewDelivery> {
        let alerts = snapshot.index.matching(event);
        let object = text::obj_md(event);
        if alerts.is_empty() {
            tracing::debug!(
                object,
                "discarding event, no alerts found for the involved object"
            );
            return Vec::new();
        }
        let commit_status_update =
            metadata::controller_value(event, "commit_status") == Some("update");
        let has_annotation = |key: &str| {
            event
                .metadata
                .get(&format!("{ANNOTATION_PREFIX}{key}"))
                .is_some_and(|v| !v.is_empty())
        };
        let mut base = event.clone();
        metadata::drop_token(&mut base);
        let mut dropped_commit = Vec::new();
        let mut dropped_change = Vec::new();
        let mut planned = Vec::new();
        tracing::info!(object, reason = %event.reason, event_message = %event.message, "dispatching event");
        for alert in alerts {
            let alert_id = format!("{}/{}", alert.namespace, alert.name);
            if self.core.settings.no_cross_namespace_refs
                && event.involved_object.namespace != alert.namespace
            {
                tracing::error!(
                    alert = alert_id,
                    "discarding event, access denied to cross-namespace sources: alert '{alert_id}' can't process event from '{object}', cross-namespace references have been blocked"
                );
                continue;
            }
            if let Some(unready) = snapshot.unready(&alert) {
                self.count_unready(&alert, &alert_id, unready);
                continue;
            }
            let key = (alert.namespace.clone(), alert.spec.provider_ref.clone());
            let Some(provider) = snapshot.providers.get(&key) else {
                tracing::error!(
                    alert = alert_id,
                    provider = alert.spec.provider_ref,
                    "failed to read provider: not found"
                );
                continue;
            };
            if provider.suspended {
                continue;
            }
            let ty = provider.provider_type;
            if commit_status_update && !ty.is_commit_status() && !ty.is_generic() {
                continue;
            }
            if ty.is_commit_status()
                && !has_annotation("commit")
                && !commit_status_update
                && !event.severity.is_error()
            {
                dropped_commit.push(alert_id);
                continue;
            }
            if ty.is_change_request() && !has_annotation("change_request") {
                dropped_change.push(alert_id);
                continue;
            }
            let mut delivered = base.clone();
            let conflicts = combine(&mut delivered, &alert);
            if !conflicts.is_empty() {
                tracing::info!(
                    alert = alert_id,
                    conflicts = conflicts.join("; "),
                    "metadata key conflicts detected (please refer to the Alert API docs and Flux RFC 0008 for more information)"
                );
            }
            planned.push(NewDelivery {
                provider: provider.id.clone(),
                provider_type: ty.as_str().to_owned(),
                alert: alert_id,
                event: delivered,
            });
        }
        if !dropped_commit.is_empty() {
            tracing::info!(
                alerts = dropped_commit.join(", "),
                "event dropped for commit status providers due to missing commit metadata key"
            );
        }
        if !dropped_change.is_empty() {
            tracing::info!(
                alerts = dropped_change.join(", "),
                "event dropped for change request providers due to missing change request metadata key"
            );
        }
        planned
    }

    /// An event matched `alert`, which is not ready: counted, and logged the first time after
    /// each load.
    fn count_unready(&self, alert: &Alert, alert_id: &str, unready: &UnreadyAlert) {
        self.core
            .metrics
            .alert_events_dropped
            .get_or_create(&AlertLabels {
                namespace: alert.namespace.clone(),
                name: alert.name.clone(),
            })
            .inc();
        if unready.first_match() {
            tracing::error!(
                alert = alert_id,
                reason = unready.reason,
                "event not delivered: the Alert is not ready (further events it matches are counted in herald_alert_events_dropped_total, and logged again after the next reload)"
            );
        }
    }

    /// Records `planned` in the outbox and, once that is durable, queues them.
    pub(crate) async fn accept(&self, planned: Vec<NewDelivery>) -> Result<usize, Rejection> {
        if planned.is_empty() {
            return Ok(0);
        }
        if !self.has_room() {
            return Err(Rejection::Full);
        }
        let records = self
            .core
            .store
            .append(planned)
            .await
            .map_err(Rejection::Store)?;
        for record in &records {
            self.core.enqueue(record);
        }
        Ok(records.len())
    }

    /// Waits until no delivery that is due can still be attempted (workers stop starting new
    /// ones once the stop signal is given), or `timeout` passes. Returns the deliveries left
    /// in the outbox; they resume at the next start.
    pub(crate) async fn drain(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.core.idle.notified();
            if self.core.busy.load(Ordering::SeqCst) == 0 {
                return self.pending();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending();
            }
        }
    }

    /// A copy of every Provider's lane (those with deliveries and those of the manifests), by
    /// Provider id.
    fn lanes(&self) -> BTreeMap<String, LaneView> {
        let snapshot = self.core.current();
        let mut views: BTreeMap<String, LaneView> = self
            .core
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, q)| {
                let lane = q.lane();
                let view = LaneView {
                    pending: lane.items.len(),
                    in_flight: lane.in_flight,
                    dead: lane.dead,
                    provider_type: lane.provider_type.clone(),
                    status: lane.status.clone(),
                    configured: false,
                };
                (id.clone(), view)
            })
            .collect();
        for p in snapshot.providers.values() {
            let view = views.entry(p.id.clone()).or_default();
            view.provider_type = p.provider_type.as_str().to_owned();
            view.configured = true;
        }
        views
    }

    /// Every Provider's delivery status, sorted by Provider.
    pub(crate) fn report(&self) -> Vec<ProviderReport> {
        let now = now_ms();
        self.lanes()
            .into_iter()
            .map(|(provider, v)| ProviderReport {
                degraded: self.core.degraded(&v.status, now),
                provider,
                provider_type: v.provider_type,
                pending: v.pending,
                in_flight: v.in_flight,
                dead: v.dead,
                last_success: v.status.last_success_at.map(rfc3339),
                last_error: v.status.last_error,
                last_error_time: v.status.last_error_at.map(rfc3339),
                consecutive_failures: v.status.consecutive_failures,
                failing_since: v.status.failing_since.map(rfc3339),
                configured: v.configured,
            })
            .collect()
    }

    /// The deliveries being attempted right now.
    pub(crate) fn in_flight(&self) -> Vec<u64> {
        self.core
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|q| q.lane().in_flight)
            .collect()
    }

    /// Refreshes the per-Provider gauges (called before each scrape).
    pub(crate) fn refresh_metrics(&self) {
        let m = &self.core.metrics;
        let now = now_ms();
        let secs = |t: Option<u64>| t.map_or(0, |ms| (ms / 1000) as i64);
        for (id, v) in self.lanes() {
            let (namespace, name) = id.split_once('/').unwrap_or(("", &id));
            let labels = ProviderLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            };
            m.provider_pending
                .get_or_create(&labels)
                .set(v.pending as i64);
            m.provider_dead.get_or_create(&labels).set(v.dead as i64);
            m.provider_failures
                .get_or_create(&labels)
                .set(v.status.consecutive_failures as i64);
            m.provider_last_success
                .get_or_create(&labels)
                .set(secs(v.status.last_success_at));
            m.provider_last_failure
                .get_or_create(&labels)
                .set(secs(v.status.last_error_at));
            m.provider_degraded
                .get_or_create(&labels)
                .set(i64::from(self.core.degraded(&v.status, now)));
        }
        m.outbox_bytes.set(self.core.store.disk_bytes() as i64);
    }

    /// Providers failing for longer than `--degraded-after`.
    pub(crate) fn degraded(&self) -> Vec<ProviderReport> {
        self.report().into_iter().filter(|r| r.degraded).collect()
    }

    /// Puts dead or failed deliveries back in their queue, to be attempted now. Returns the
    /// ids that were requeued; others (unknown, delivered, already pending) are skipped.
    pub(crate) async fn retry(&self, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        let mut done = Vec::new();
        for &id in ids {
            let Some(mut record) = self.core.store.get(id)? else {
                continue;
            };
            let queue = self.core.queue(&record.provider);
            {
                let mut lane = queue.lane();
                match record.state {
                    State::Dead => lane.dead = lane.dead.saturating_sub(1),
                    State::Failed if lane.in_flight != Some(id) => {}
                    _ => continue,
                }
            }
            record.state = State::Pending;
            record.next_attempt_at = None;
            record.finished_at = None;
            self.core.store.put(record.clone())?;
            self.core.enqueue(&record);
            done.push(id);
        }
        self.core.store.flush().await?;
        Ok(done)
    }

    /// Removes a delivery from the outbox (and its queue). Fails for one being attempted.
    pub(crate) async fn remove(&self, id: u64) -> Result<Option<Record>, String> {
        let Some(record) = self.core.store.get(id).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let queue = self.core.queue(&record.provider);
        {
            let mut lane = queue.lane();
            if lane.in_flight == Some(id) {
                return Err(format!(
                    "delivery {id} is being attempted right now; try again in a moment"
                ));
            }
            if lane.items.remove(&id).is_some() {
                self.core.release(1);
            } else if record.state == State::Dead {
                lane.dead = lane.dead.saturating_sub(1);
            }
        }
        self.core.store.delete(id).map_err(|e| e.to_string())?;
        self.core.store.flush().await.map_err(|e| e.to_string())?;
        Ok(Some(record))
    }
}

impl Core {
    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn degraded(&self, status: &ProviderStatus, now: u64) -> bool {
        status.consecutive_failures > 0
            && status.failing_since.is_some_and(|since| {
                now.saturating_sub(since) >= self.settings.degraded_after.as_millis() as u64
            })
    }

    fn release(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::SeqCst);
        self.metrics.queue_depth.dec_by(n as i64);
    }

    fn queue(&self, provider: &str) -> Arc<Queue> {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(provider.to_owned())
            .or_insert_with(|| {
                Arc::new(Queue {
                    id: provider.to_owned(),
                    lane: Mutex::new(Lane::default()),
                    wake: Notify::new(),
                })
            })
            .clone()
    }

    /// Queues an active record for its Provider's worker, starting the worker if needed.
    fn enqueue(self: &Arc<Self>, record: &Record) {
        let queue = self.queue(&record.provider);
        let start = {
            let mut lane = queue.lane();
            if lane.provider_type.is_empty() {
                lane.provider_type = record.provider_type.clone();
            }
            let item = Item {
                accepted_at: record.accepted_at,
                next_attempt_at: record.next_attempt_at.unwrap_or(0),
            };
            if lane.items.insert(record.id, item).is_none() {
                self.pending.fetch_add(1, Ordering::SeqCst);
                self.metrics.queue_depth.inc();
            }
            !std::mem::replace(&mut lane.worker, true)
        };
        if start {
            self.busy.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(work(self.clone(), queue));
        } else {
            queue.wake.notify_one();
        }
    }
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// The error (masked), and whether retrying can help.
    Failed(String, bool),
}

/// A Provider's worker: attempts its oldest waiting delivery when it is due, one at a time.
/// It ends when its queue is empty, or at shutdown once nothing is due.
async fn work(core: Arc<Core>, queue: Arc<Queue>) {
    let mut stop = core.stop.clone();
    loop {
        let head = queue.lane().items.iter().next().map(|(id, it)| (*id, *it));
        let now = now_ms();
        let wait = match head {
            None => None,
            Some((_, item)) if item.next_attempt_at > now => {
                Some(Duration::from_millis(item.next_attempt_at - now))
            }
            Some((id, item)) => {
                attempt(&core, &queue, id, item).await;
                continue;
            }
        };
        if core.stopping() {
            // Nothing due: what is left stays in the outbox for the next start.
            break;
        }
        let Some(wait) = wait else {
            // Empty: leave, unless a delivery arrived meanwhile.
            let mut lane = queue.lane();
            if lane.items.is_empty() {
                lane.worker = false;
                break;
            }
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = queue.wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
    if core.stopping() {
        queue.lane().worker = false;
    }
    if core.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
        core.idle.notify_waiters();
    }
}

async fn attempt(core: &Arc<Core>, queue: &Arc<Queue>, id: u64, item: Item) {
    let (mut record, event) = match core.store.get_with_event(id) {
        Ok(Some(found)) => found,
        Ok(None) => {
            // Dropped meanwhile.
            if queue.lane().items.remove(&id).is_some() {
                core.release(1);
            }
            return;
        }
        Err(e) => {
            tracing::error!(provider = queue.id, delivery = id, error = %e, "cannot read a delivery from the outbox; trying again shortly");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    {
        // Dropped (`herald outbox drop`) between choosing it and reading it: skip it.
        let mut lane = queue.lane();
        if !lane.items.contains_key(&id) {
            return;
        }
        lane.in_flight = Some(id);
    }
    let started = Instant::now();
    let snapshot = core.current();
    let provider = snapshot.provider(&queue.id).cloned();
    let outcome = match &provider {
        None => Outcome::Failed(snapshot.why_not_ready(&queue.id), true),
        Some(p) if p.suspended => {
            Outcome::Failed(format!("the Provider {} is suspended", queue.id), true)
        }
        Some(p) => {
            let permit = core.permits.clone().acquire_owned().await;
            let notifier = p.notifier.clone();
            // In its own task, so that a panicking provider cannot take the worker down.
            let posted = tokio::spawn(async move { notifier.post(&event).await }).await;
            drop(permit);
            match posted {
                Ok(Ok(())) => Outcome::Delivered,
                Ok(Err(e)) => Outcome::Failed(p.masker.mask(e.message()), e.is_retryable()),
                Err(join) => Outcome::Failed(format!("the provider panicked: {join}"), false),
            }
        }
    };
    let elapsed = started.elapsed();
    let now = now_ms();
    let ty = provider.as_ref().map_or_else(
        || record.provider_type.clone(),
        |p| p.provider_type.as_str().to_owned(),
    );
    let (namespace, name) = queue.id.split_once('/').unwrap_or(("", &queue.id));
    let outcome_label = match outcome {
        Outcome::Delivered => "success",
        Outcome::Failed(..) => "failure",
    };
    core.metrics
        .deliveries
        .get_or_create(&DeliveryLabels {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            kind: TypeLabel { r#type: ty.clone() },
            outcome: outcome_label.to_owned(),
        })
        .inc();
    if provider.is_some() {
        core.metrics
            .delivery_seconds
            .get_or_create(&TypeLabel { r#type: ty.clone() })
            .observe(elapsed.as_secs_f64());
    }
    record.attempts += 1;
    record.last_attempt_at = Some(now);
    let ms = elapsed.as_millis() as u64;
    let max_age = core.settings.max_age.as_millis() as u64;
    let mut dead_now: Vec<u64> = Vec::new();
    let status = {
        let mut lane = queue.lane();
        lane.in_flight = None;
        match &outcome {
            Outcome::Delivered => {
                if lane.items.remove(&id).is_some() {
                    core.release(1);
                }
                lane.status.last_success_at = Some(now);
                lane.status.consecutive_failures = 0;
                lane.status.failing_since = None;
                record.state = State::Delivered;
                record.finished_at = Some(now);
                record.next_attempt_at = None;
                core.metrics
                    .delivery_lag
                    .observe(now.saturating_sub(item.accepted_at) as f64 / 1000.0);
            }
            Outcome::Failed(error, retryable) => {
                lane.status.last_error = Some(error.clone());
                lane.status.last_error_at = Some(now);
                lane.status.consecutive_failures += 1;
                lane.status.failing_since.get_or_insert(now);
                record.last_error = Some(error.clone());
                let too_old = now.saturating_sub(item.accepted_at) >= max_age;
                if !retryable || too_old {
                    if lane.items.remove(&id).is_some() {
                        core.release(1);
                    }
                    lane.dead += 1;
                    record.state = State::Dead;
                    record.finished_at = Some(now);
                    record.next_attempt_at = None;
                    core.metrics.dead_lettered.inc();
                } else {
                    let shift = record.attempts.saturating_sub(1).min(20);
                    let wait = BACKOFF_BASE
                        .saturating_mul(1 << shift)
                        .min(core.settings.backoff_max);
                    let next = now + wait.as_millis() as u64;
                    record.state = State::Failed;
                    record.next_attempt_at = Some(next);
                    if let Some(it) = lane.items.get_mut(&id) {
                        it.next_attempt_at = next;
                    }
                }
                // Deliveries that waited behind this one past the maximum age are given up
                // too: the Provider has not worked for all that time.
                dead_now = lane
                    .items
                    .iter()
                    .filter(|(_, it)| now.saturating_sub(it.accepted_at) >= max_age)
                    .map(|(id, _)| *id)
                    .collect();
                for other in &dead_now {
                    lane.items.remove(other);
                    lane.dead += 1;
                    core.release(1);
                    core.metrics.dead_lettered.inc();
                }
            }
        }
        lane.status.clone()
    };
    let state = record.state;
    let attempts = record.attempts;
    let next = record.next_attempt_at;
    let alert = record.alert.clone();
    let object = record.object.clone();
    let reason = record.reason.clone();
    let error = record.last_error.clone().unwrap_or_default();
    let mut writes = core.store.put(record);
    for other in dead_now {
        if let Ok(Some(mut r)) = core.store.get(other) {
            r.state = State::Dead;
            r.finished_at = Some(now);
            r.next_attempt_at = None;
            r.last_error = Some(format!(
                "given up after {} without a working Provider; its last error: {error}",
                herald_core::duration::format(core.settings.max_age)
            ));
            writes = writes.and_then(|()| core.store.put(r));
        }
    }
    writes = writes.and_then(|()| core.store.save_status(&queue.id, status));
    if let Err(e) = writes {
        tracing::error!(provider = queue.id, delivery = id, error = %e, "cannot record a delivery's state in the outbox");
    }
    match (&outcome, state) {
        (Outcome::Delivered, _) => tracing::info!(
            provider = queue.id,
            r#type = ty,
            delivery = id,
            alert,
            object,
            reason,
            attempts,
            ms,
            "delivered"
        ),
        (Outcome::Failed(error, retryable), State::Dead) => tracing::error!(
            provider = queue.id,
            r#type = ty,
            delivery = id,
            alert,
            object,
            reason,
            attempts,
            ms,
            retryable,
            error,
            "failed to send notification; giving up (dead-lettered, see `herald outbox`)"
        ),
        (Outcome::Failed(error, _), _) => tracing::warn!(
            provider = queue.id,
            r#type = ty,
            delivery = id,
            alert,
            object,
            reason,
            attempts,
            ms,
            retry_in_ms = next.map_or(0, |n| n.saturating_sub(now)),
            error,
            "failed to send notification; will retry"
        ),
    }
}

fn combine(event: &mut Event, alert: &Alert) -> Vec<String> {
    let conflicts = metadata::combine(
        event,
        &alert.spec.event_metadata,
        alert.spec.summary.as_deref(),
    );
    conflicts
        .iter()
        .map(|c| {
            let sources: Vec<&str> = c.sources.iter().map(|s| s.describe()).collect();
            format!("{}: {}", c.key, sources.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex as StdMutex;

    use herald_core::manifest::parse_str;
    use herald_core::{
        BuildError, Family, Notifier, NotifyFuture, ObjectReference, ProviderConfig, ProviderType,
        Registry, Severity,
    };

    use super::*;

    /// Records what each provider was asked to post.
    #[derive(Debug)]
    struct Capture(String);

    static POSTED: StdMutex<Vec<(String, Event)>> = StdMutex::new(Vec::new());
    /// The tests share POSTED: one at a time.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    impl Notifier for Capture {
        fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
            Box::pin(async move {
                POSTED.lock().unwrap().push((self.0.clone(), event.clone()));
                Ok(())
            })
        }
    }

    fn capture(cfg: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
        Ok(Arc::new(Capture(cfg.name.clone())))
    }

    fn snapshot(yaml: &str) -> Snapshot {
        let dir = std::env::temp_dir().join(format!(
            "herald-dispatch-{}-{}",
            std::process::id(),
            yaml.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("m.yaml"), yaml).unwrap();
        let (_, errors) = parse_str(Path::new("m.yaml"), yaml);
        assert!(errors.is_empty(), "{errors:?}");
        let mut registry = Registry::new();
        registry.add_family(Family::Generic);
        registry.add_family(Family::Git);
        for ty in [
            ProviderType::Generic,
            ProviderType::GitHub,
            ProviderType::Slack,
            ProviderType::GitHubPullRequestComment,
        ] {
            registry.register(ty, capture);
        }
        let snapshot = Snapshot::load(&[dir], &registry);
        assert!(
            snapshot.catalog.all_ready(),
            "{:?}",
            snapshot.catalog.problems()
        );
        snapshot
    }

    fn event(severity: Severity, meta: &[(&str, &str)]) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "Kustomization".into(),
                namespace: "apps".into(),
                name: "web".into(),
                api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
                ..Default::default()
            },
            severity,
            message: "m".into(),
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    const PROVIDERS: &[&str] = &["generic", "github", "slack", "githubpullrequestcomment"];

    fn yaml() -> String {
        PROVIDERS
            .iter()
            .map(|ty| {
                format!(
                    "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: {ty}, namespace: apps}}\nspec: {{type: {ty}, address: 'https://example.com/o/r'}}\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: to-{ty}, namespace: apps}}\nspec:\n  providerRef: {{name: {ty}}}\n  eventSources: [{{kind: Kustomization, name: '*'}}]\n"
                )
            })
            .collect()
    }

    fn dispatcher(snap: Snapshot, name: &str) -> (Dispatcher, Arc<Snapshot>) {
        let dir = std::env::temp_dir().join(format!(
            "herald-dispatch-store-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut reg = prometheus_client::registry::Registry::default();
        let snap = Arc::new(snap);
        let (_tx, stop) = watch::channel(false);
        std::mem::forget(_tx);
        let d = Dispatcher::new(
            store,
            Arc::new(RwLock::new(snap.clone())),
            Settings {
                concurrency: 4,
                max_pending: 100,
                no_cross_namespace_refs: false,
                max_age: Duration::from_secs(60),
                backoff_max: Duration::from_secs(1),
                degraded_after: Duration::from_secs(60),
            },
            Arc::new(Metrics::new(&mut reg)),
            stop,
        )
        .unwrap();
        (d, snap)
    }

    async fn routed(d: &Dispatcher, snap: &Snapshot, e: Event) -> Vec<String> {
        POSTED.lock().unwrap().clear();
        let n = d.accept(d.plan(snap, &e)).await.unwrap();
        assert_eq!(d.drain(Duration::from_secs(5)).await, 0);
        let mut got: Vec<String> = POSTED
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        got.sort();
        assert_eq!(got.len(), n);
        got
    }

    #[tokio::test]
    async fn commit_status_and_change_request_gating() {
        let _serial = SERIAL.lock().await;
        let (d, snap) = dispatcher(snapshot(&yaml()), "gating");

        // A plain info event: not for commit-status or change-request providers.
        assert_eq!(
            routed(&d, &snap, event(Severity::Info, &[])).await,
            ["generic", "slack"]
        );
        // An error event reaches commit-status providers too.
        assert_eq!(
            routed(&d, &snap, event(Severity::Error, &[])).await,
            ["generic", "github", "slack"]
        );
        // A commit annotation makes an info event a commit-status event.
        let commit = [("event.toolkit.fluxcd.io/commit", "abc")];
        assert_eq!(
            routed(&d, &snap, event(Severity::Info, &commit)).await,
            ["generic", "github", "slack"]
        );
        // A commit-status update goes only to commit-status and generic providers.
        let update = [("kustomize.toolkit.fluxcd.io/commit_status", "update")];
        assert_eq!(
            routed(&d, &snap, event(Severity::Info, &update)).await,
            ["generic", "github"]
        );
        // A change request reaches the comment provider.
        let cr = [("event.toolkit.fluxcd.io/change_request", "42")];
        assert_eq!(
            routed(&d, &snap, event(Severity::Info, &cr)).await,
            ["generic", "githubpullrequestcomment", "slack"]
        );
    }

    #[tokio::test]
    async fn the_token_is_dropped_and_prefixes_stripped() {
        let _serial = SERIAL.lock().await;
        let (d, snap) = dispatcher(snapshot(&yaml()), "token");
        let meta = [
            ("kustomize.toolkit.fluxcd.io/token", "t"),
            ("kustomize.toolkit.fluxcd.io/revision", "r"),
        ];
        POSTED.lock().unwrap().clear();
        d.accept(d.plan(&snap, &event(Severity::Info, &meta)))
            .await
            .unwrap();
        d.drain(Duration::from_secs(5)).await;
        for (_, e) in POSTED.lock().unwrap().iter() {
            assert_eq!(e.metadata, [("revision".to_owned(), "r".to_owned())].into());
        }
    }
}
