//! The delivery engine: from committed deliveries to `Notifier::post`, with order per key,
//! concurrency per Provider, quotas, retries and dead letters.
//!
//! Each Provider has a lane. A lane holds its deliveries per [`OrderingKey`] in acceptance
//! order, and delivers up to its window (`herald.dev/max-in-flight`, `--provider-max-in-flight`,
//! or its family's default) at once, never two of one key at once. A key's next delivery goes
//! out only once the outcome of the previous one is committed to the outbox, so a crash can
//! repeat at most the one delivery per key that was in flight. Over all Providers at most
//! `--concurrency` attempts run at once, except that a Provider with nothing in flight may
//! always start one: Providers that hang cannot starve the others.
//!
//! Deliveries are queued by the outbox writer's commit callback, in id order, whether or not the
//! HTTP request that brought them is still there. A failed attempt frees its slot at once; the
//! delivery waits on a timer for its retry (see [`crate::transition`]). A 429 or a
//! `Retry-After` pauses the whole lane. Events are kept in memory with their queued deliveries
//! up to a budget; beyond it they are read back from the outbox when their turn comes.
//!
//! Quotas: a lane holds at most `--provider-max-pending` waiting deliveries and herald at most
//! `--max-pending`; a delivery over either is recorded dead with reason `quota` (retriable),
//! and an event all of whose deliveries are refused is answered 503. With a shared backend the
//! quotas count the cluster's deliveries: this replica's, and what the backend last heard of
//! the others' ([`Backend::cluster_load`]); the engine hands the backend its own counts for its
//! heartbeat ([`Backend::report_load`]).
//!
//! With a backend shared by several replicas ([`Backend::shared`]) the engine queues neither
//! what it appends nor what it loads: the backend hands this replica its share as claims, in
//! commit order per key, and says when a share moves away; queued deliveries of it are dropped,
//! one in flight is dropped once its outcome is recorded (retrying it is its next holder's
//! work), and the backend is told once none of them is in flight here.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot, watch};

use herald_core::{DeliveryError, Event, Family, OrderingKey, ProviderType};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::{DeliveryLabels, Metrics, TypeLabel};
use crate::outbox::load::ProviderLoad;
use crate::outbox::{
    Backend, Claim, ClusterLoad, Counts, Idle, Load, NewDelivery, Placement, Prepared,
    ProviderStatus, Record, State, StoreError, done_channel,
};
use crate::state::{ProviderEntry, Snapshot};
use crate::transition::{self, Outcome, Policy};

/// The window of a Provider type unless configured otherwise: how many of its deliveries may
/// be attempted at once (with different ordering keys).
///
/// Webhooks and alerting tools take concurrent requests well; chat services publish rate limits
/// of about one message per second per channel (Slack, Discord, Telegram, Teams), and GitHub
/// asks for content-creating requests of one token to be made one after another.
pub fn default_window(ty: ProviderType) -> usize {
    match ty.family() {
        Family::Generic => 64,
        Family::Alerting | Family::EventHub | Family::Nats | Family::PubSub => 16,
        Family::Chat => 4,
        Family::Git => 2,
    }
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Deliveries waiting over all Providers before more are refused.
    pub(crate) max_pending: usize,
    /// Deliveries waiting per Provider before more are refused.
    pub(crate) provider_max_pending: usize,
    /// Attempts at once over all Providers (each Provider may always start one).
    pub(crate) max_in_flight: usize,
    /// Every Provider's window, unless its annotation says otherwise.
    pub(crate) provider_max_in_flight: Option<usize>,
    /// Retries and the maximum age.
    pub(crate) policy: Policy,
    /// A Provider failing for longer than this is reported degraded.
    pub(crate) degraded_after: Duration,
    /// Bytes of events kept in memory with their queued deliveries.
    pub(crate) hot_bytes: usize,
}

/// Events kept in memory with their queued deliveries, at most (estimated bytes).
pub(crate) const HOT_BYTES: usize = 8 * 1024 * 1024;
/// How often the engine saves statuses and gives up deliveries too old to wait.
const TICK: Duration = Duration::from_secs(1);
/// How often the info summary of deliveries is logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Why an event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Every delivery it would make is over a quota.
    Full,
    /// The outbox could not record it (or has too many writes queued).
    Store(StoreError),
}

/// A clock that starts at the wall clock and then only moves forward, with the process: jumps
/// of the system clock while herald runs change neither ages nor retry times.
#[derive(Debug)]
struct Clock {
    wall: u64,
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            wall: crate::outbox::now_ms(),
            start: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.wall
            .saturating_add(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn instant(&self, at: u64) -> tokio::time::Instant {
        self.start + Duration::from_millis(at.saturating_sub(self.wall))
    }
}

/// A queued delivery's event and record, kept in memory so that delivering needs no read.
#[derive(Debug)]
struct Hot {
    record: Record,
    event: Arc<Event>,
    bytes: usize,
}

#[derive(Debug)]
struct Item {
    id: u64,
    clock_from: u64,
    next_attempt_at: u64,
    hot: Option<Box<Hot>>,
}

#[derive(Debug, Default)]
struct KeyQueue {
    items: VecDeque<Item>,
    /// Its head is in flight, or its outcome is not committed yet.
    busy: bool,
    /// In `ready` or `waiting`.
    queued: bool,
    /// Its share moved to another replica while its head was busy: once the head's outcome is
    /// recorded, the key is the next holder's, who reads that outcome and retries from it.
    released: bool,
}

/// What a lane did since the last summary.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    delivered: u64,
    failed: u64,
    dead: u64,
    refused: u64,
}

#[derive(Debug, Default)]
struct LaneState {
    provider_type: String,
    window: usize,
    /// Active deliveries, with the ones reserved by events being committed.
    pending: usize,
    dead: u64,
    in_flight: HashSet<u64>,
    keys: HashMap<u64, KeyQueue>,
    ready: VecDeque<u64>,
    waiting: BTreeSet<(u64, u64)>,
    paused_until: u64,
    timer_at: Option<u64>,
    status: ProviderStatus,
    status_dirty: bool,
    starved: bool,
    full_logged: bool,
    tally: Tally,
}

/// The metric handles of one Provider, made once.
#[derive(Debug)]
struct LaneMetrics {
    delivered: Counter,
    failed: Counter,
    seconds: Histogram,
}

/// One Provider's deliveries.
pub(crate) struct Lane {
    id: Arc<str>,
    state: Mutex<LaneState>,
    /// Its entry in the snapshot it was last looked up in (found once per reload).
    entry: Mutex<(Weak<Snapshot>, Option<Arc<ProviderEntry>>)>,
    /// Made at the first attempt, when the type is known.
    metrics: std::sync::OnceLock<LaneMetrics>,
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A copy of a lane's counts and status, for reports and metrics.
#[derive(Debug, Default, Clone)]
pub(crate) struct LaneView {
    pub(crate) provider_type: String,
    pub(crate) pending: usize,
    pub(crate) in_flight: usize,
    pub(crate) window: usize,
    pub(crate) dead: u64,
    pub(crate) status: ProviderStatus,
    pub(crate) paused_until: Option<u64>,
}

/// The engine (see the module documentation).
pub(crate) struct Engine {
    store: Arc<dyn Backend>,
    /// The backend is shared by several replicas: work comes only through its claims.
    shared: bool,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    lanes: RwLock<HashMap<Arc<str>, Arc<Lane>>>,
    settings: Settings,
    clock: Clock,
    runtime: tokio::runtime::Handle,
    pending: AtomicUsize,
    in_flight: AtomicUsize,
    starved: Mutex<VecDeque<Arc<Lane>>>,
    hot: AtomicUsize,
    /// Attempts started whose outcome is not committed yet.
    unsettled: AtomicUsize,
    idle: Notify,
    stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    /// Released shares waiting for their deliveries in flight: the ids, and whom to call.
    watchers: Mutex<Vec<(HashSet<u64>, Idle)>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("pending", &self.pending)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// An estimate of the memory an event takes.
fn event_bytes(e: &Event) -> usize {
    let o = &e.involved_object;
    let strings = [
        &o.kind,
        &o.namespace,
        &o.name,
        &o.uid,
        &o.api_version,
        &o.resource_version,
        &e.message,
        &e.reason,
        &e.reporting_controller,
        &e.reporting_instance,
    ];
    let meta: usize = e.metadata.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
    strings.iter().map(|s| s.len()).sum::<usize>() + meta + 512
}

impl Engine {
    /// An engine over `store`, resuming the deliveries it holds. Call from within the runtime.
    pub(crate) fn new(
        store: Arc<dyn Backend>,
        snapshot: Arc<RwLock<Arc<Snapshot>>>,
        settings: Settings,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Engine>, StoreError> {
        let loaded = store.load()?;
        let shared = store.shared();
        let engine = Arc::new(Engine {
            shared,
            store,
            snapshot,
            lanes: RwLock::new(HashMap::new()),
            settings,
            clock: Clock::new(),
            runtime: tokio::runtime::Handle::current(),
            pending: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            starved: Mutex::new(VecDeque::new()),
            hot: AtomicUsize::new(0),
            unsettled: AtomicUsize::new(0),
            idle: Notify::new(),
            stop,
            metrics,
            watchers: Mutex::new(Vec::new()),
        });
        for (provider, status) in loaded.providers {
            engine.lane(&provider, None).lock().status = status;
        }
        for (provider, dead) in loaded.dead {
            engine.lane(&provider, None).lock().dead = dead;
        }
        // A shared backend hands this replica its share through claims instead.
        let active = if shared { Vec::new() } else { loaded.active };
        let resumed = active.len();
        let now = engine.clock.now();
        for record in active {
            let record = transition::resume(&record, now, &engine.settings.policy);
            let lane = engine.lane(&record.provider, Some(&record.provider_type));
            let mut l = lane.lock();
            l.pending += 1;
            engine.pending.fetch_add(1, Ordering::SeqCst);
            engine.metrics.queue_depth.inc();
            l.keys
                .entry(record.key.0)
                .or_default()
                .items
                .push_back(Item {
                    id: record.id,
                    clock_from: record.clock_from,
                    next_attempt_at: record.next_attempt_at.unwrap_or(0),
                    hot: None,
                });
        }
        for lane in engine.all_lanes() {
            {
                let mut l = lane.lock();
                let keys: Vec<u64> = l.keys.keys().copied().collect();
                for key in keys {
                    engine.schedule(&lane, &mut l, key, now);
                }
            }
            engine.pump(&lane);
        }
        if resumed > 0 {
            tracing::info!(deliveries = resumed, "resuming deliveries from the outbox");
        }
        engine.runtime.spawn(tick(Arc::downgrade(&engine)));
        if shared {
            let weak = Arc::downgrade(&engine);
            engine.store.report_load(Arc::new(move || {
                weak.upgrade().map(|e| e.load()).unwrap_or_default()
            }));
            let weak = Arc::downgrade(&engine);
            engine.store.start_claims(Arc::new(move |claim| {
                if let Some(engine) = weak.upgrade() {
                    engine.claimed(claim);
                }
            }));
        }
        Ok(engine)
    }

    /// A shared backend's word: a delivery to make, or a share given up.
    fn claimed(self: &Arc<Self>, claim: Claim) {
        match claim {
            Claim::Deliver(record, event) => self.take(&record, event),
            Claim::Release(share, idle) => {
                let busy = self.drop_queued(&*share);
                self.when_settled(busy, idle);
            }
        }
    }

    /// Queues a claimed delivery behind the others of its key (claims come in commit order
    /// per key). One this replica holds already is ignored.
    fn take(self: &Arc<Self>, record: &Record, event: Arc<Event>) {
        let now = self.clock.now();
        let record = transition::resume(record, now, &self.settings.policy);
        let lane = self.lane(&record.provider, Some(&record.provider_type));
        {
            let mut l = lane.lock();
            let key = record.key.0;
            if let Some(kq) = l.keys.get_mut(&key) {
                // Its share is this replica's again.
                kq.released = false;
            }
            let held = l.in_flight.contains(&record.id)
                || l.keys
                    .get(&key)
                    .is_some_and(|kq| kq.items.iter().any(|i| i.id == record.id));
            if held {
                return;
            }
            l.pending += 1;
            self.pending.fetch_add(1, Ordering::SeqCst);
            self.metrics.queue_depth.inc();
            let bytes = event_bytes(&event);
            let item = Item {
                id: record.id,
                clock_from: record.clock_from,
                next_attempt_at: record.next_attempt_at.unwrap_or(0),
                hot: self.try_hot(bytes).then(|| {
                    Box::new(Hot {
                        record,
                        event,
                        bytes,
                    })
                }),
            };
            l.keys.entry(key).or_default().items.push_back(item);
            self.schedule(&lane, &mut l, key, now);
        }
        self.pump(&lane);
    }

    /// Calls `idle` once none of `busy` is in flight or waiting for its outcome to commit.
    fn when_settled(&self, busy: HashSet<u64>, idle: Idle) {
        if busy.is_empty() {
            idle();
            return;
        }
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((busy, idle));
    }

    /// An attempt's outcome is committed: wakes who waited for its key to be idle.
    fn attempt_settled(&self, id: u64) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if watchers.is_empty() {
            return;
        }
        let mut ready = Vec::new();
        let mut i = 0;
        while i < watchers.len() {
            watchers[i].0.remove(&id);
            if watchers[i].0.is_empty() {
                ready.push(watchers.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        drop(watchers);
        for idle in ready {
            idle();
        }
    }

    /// Drops the queued deliveries `share` picks; a head in flight stays until its outcome is
    /// recorded. Returns the ids of those heads.
    fn drop_queued(
        &self,
        share: &(dyn Fn(&str, OrderingKey) -> bool + Send + Sync),
    ) -> HashSet<u64> {
        let mut busy = HashSet::new();
        for lane in self.all_lanes() {
            let mut l = lane.lock();
            let keys: Vec<u64> = l
                .keys
                .keys()
                .copied()
                .filter(|k| share(&lane.id, OrderingKey(*k)))
                .collect();
            for key in keys {
                let Some(kq) = l.keys.get_mut(&key) else {
                    continue;
                };
                if kq.busy {
                    busy.extend(kq.items.front().map(|head| head.id));
                    kq.released = true;
                }
                let dropped: Vec<Item> = kq.items.drain(usize::from(kq.busy)..).collect();
                if kq.items.is_empty() {
                    l.keys.remove(&key);
                }
                for item in dropped {
                    if let Some(hot) = item.hot {
                        self.hot.fetch_sub(hot.bytes, Ordering::SeqCst);
                    }
                    l.pending -= 1;
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                    self.metrics.queue_depth.dec();
                }
            }
            let LaneState {
                keys,
                ready,
                waiting,
                ..
            } = &mut *l;
            ready.retain(|k| keys.contains_key(k));
            waiting.retain(|(_, k)| keys.contains_key(k));
        }
        busy
    }

    /// The outbox.
    pub(crate) fn store(&self) -> &Arc<dyn Backend> {
        &self.store
    }

    /// Deliveries waiting, over all Providers.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Whether any new delivery can be accepted at all.
    pub(crate) fn has_room(&self) -> bool {
        let elsewhere = self.cluster().map_or(0, |c| c.elsewhere_pending());
        (self.pending() as u64).saturating_add(elsewhere) < self.settings.max_pending as u64
    }

    /// With a shared backend: what it last heard of the deliveries held elsewhere.
    pub(crate) fn cluster(&self) -> Option<Arc<ClusterLoad>> {
        if self.shared {
            self.store.cluster_load()
        } else {
            None
        }
    }

    /// The deliveries this replica holds, per Provider, for its heartbeat: each lane locked
    /// only to copy its counts, as for [`Engine::lanes`].
    fn load(&self) -> Load {
        let mut load = Load::default();
        for lane in self.all_lanes() {
            let l = lane.lock();
            if l.pending == 0 && l.in_flight.is_empty() {
                continue;
            }
            let counts = Counts {
                pending: l.pending as u64,
                in_flight: l.in_flight.len() as u64,
            };
            let provider_type = l.provider_type.clone();
            drop(l);
            load.providers.insert(
                lane.id.to_string(),
                ProviderLoad {
                    provider_type,
                    counts,
                },
            );
        }
        load
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `lane`'s Provider in the current configuration.
    fn provider_of(&self, lane: &Lane) -> Option<Arc<ProviderEntry>> {
        let snapshot = self.current();
        let mut cached = lane.entry.lock().unwrap_or_else(|e| e.into_inner());
        if !std::ptr::eq(cached.0.as_ptr(), Arc::as_ptr(&snapshot)) {
            *cached = (
                Arc::downgrade(&snapshot),
                snapshot.provider(&lane.id).cloned(),
            );
        }
        cached.1.clone()
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// The daemon's metrics, which the engine updates.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Why the Provider of `lane` cannot deliver now (it has no entry in the current snapshot).
    fn why_not_ready(&self, lane: &Lane) -> String {
        self.current().why_not_ready(&lane.id)
    }

    fn window(&self, snapshot: &Snapshot, provider: &str, ty: &str) -> usize {
        let configured = snapshot.provider(provider).and_then(|p| p.max_in_flight);
        let ty = ty.parse::<ProviderType>().unwrap_or(ProviderType::Generic);
        configured
            .or(self.settings.provider_max_in_flight)
            .unwrap_or_else(|| default_window(ty))
            .max(1)
    }

    /// The lane of `provider`, made if needed (`ty`: its type, when known).
    fn lane(&self, provider: &str, ty: Option<&str>) -> Arc<Lane> {
        if let Some(lane) = self
            .lanes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(provider)
        {
            if let Some(ty) = ty {
                let mut l = lane.lock();
                if l.provider_type.is_empty() {
                    l.provider_type = ty.to_owned();
                    l.window = self.window(&self.current(), provider, ty);
                }
            }
            return lane.clone();
        }
        let mut lanes = self.lanes.write().unwrap_or_else(|e| e.into_inner());
        lanes
            .entry(Arc::from(provider))
            .or_insert_with(|| {
                let snapshot = self.current();
                let ty = ty
                    .map(str::to_owned)
                    .or_else(|| {
                        snapshot
                            .provider(provider)
                            .map(|p| p.provider_type.as_str().to_owned())
                    })
                    .unwrap_or_default();
                let lane = Lane {
                    id: Arc::from(provider),
                    entry: Mutex::new((Weak::new(), None)),
                    metrics: std::sync::OnceLock::new(),
                    state: Mutex::new(LaneState {
                        window: self.window(&snapshot, provider, &ty),
                        provider_type: ty,
                        ..LaneState::default()
                    }),
                };
                Arc::new(lane)
            })
            .clone()
    }

    /// The metric handles of `lane` (made once: label strings are not built per delivery).
    fn lane_metrics<'a>(&self, lane: &'a Lane, ty: &str) -> &'a LaneMetrics {
        lane.metrics.get_or_init(|| {
            let (namespace, name) = lane.id.split_once('/').unwrap_or(("", &lane.id));
            let labels = |outcome: &str| DeliveryLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                kind: TypeLabel {
                    r#type: ty.to_owned(),
                },
                outcome: outcome.to_owned(),
            };
            let m = &self.metrics;
            // One statement each: a family's guard lives until the end of its statement.
            let delivered = m.deliveries.get_or_create(&labels("success")).clone();
            let failed = m.deliveries.get_or_create(&labels("failure")).clone();
            let ty_label = TypeLabel {
                r#type: ty.to_owned(),
            };
            let seconds = m.delivery_seconds.get_or_create(&ty_label).clone();
            LaneMetrics {
                delivered,
                failed,
                seconds,
            }
        })
    }

    fn all_lanes(&self) -> Vec<Arc<Lane>> {
        self.lanes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Applies a new configuration: Provider windows may have changed.
    pub(crate) fn configure(self: &Arc<Self>, snapshot: &Snapshot) {
        for lane in self.all_lanes() {
            {
                let mut l = lane.lock();
                let ty = l.provider_type.clone();
                l.window = self.window(snapshot, &lane.id, &ty);
            }
            self.pump(&lane);
        }
    }

    /// Records `planned` (refusing, as dead with reason `quota`, what is over a quota) and, once
    /// that is committed, queues them; this happens whether or not the caller still waits.
    /// `on_failure` runs if the commit fails. The receiver answers how many were queued.
    pub(crate) fn accept(
        self: &Arc<Self>,
        planned: Vec<NewDelivery>,
        on_failure: Box<dyn FnOnce() + Send>,
    ) -> Result<oneshot::Receiver<Result<usize, StoreError>>, Rejection> {
        let now = self.clock.now();
        let mut prepared = Vec::with_capacity(planned.len());
        // Per delivery: its lane, and whether it got room (else it is recorded dead).
        let mut slots: Vec<(Arc<Lane>, bool)> = Vec::with_capacity(planned.len());
        let cluster = self.cluster();
        for new in planned {
            let lane = self.lane(&new.provider, Some(&new.provider_type));
            let refusal = self.reserve(&lane, cluster.as_deref());
            let ty = new
                .provider_type
                .parse::<ProviderType>()
                .unwrap_or(ProviderType::Generic);
            let key = OrderingKey::of(ty, &new.event);
            let (record, event) = Record::pending(new, key, now);
            let record = match &refusal {
                None => record,
                Some(why) => transition::refused_by_quota(record, why.clone(), now),
            };
            slots.push((lane, refusal.is_none()));
            prepared.push(Prepared {
                record,
                event: Arc::new(event),
            });
        }
        let accepted = slots.iter().filter(|(_, ok)| *ok).count();
        if accepted == 0 {
            return Err(Rejection::Full);
        }
        let prepared = Arc::new(prepared);
        let queued = prepared.clone();
        let (tx, rx) = oneshot::channel();
        let engine = self.clone();
        let release_slots = slots.clone();
        let done = Box::new(move |result: Result<u64, StoreError>| match result {
            Ok(_) if engine.shared => {
                engine.committed_elsewhere(&slots);
                let _ = tx.send(Ok(accepted));
            }
            Ok(first) => {
                // The caller has long let go of its share: no copy.
                let queued = Arc::try_unwrap(queued).unwrap_or_else(|shared| (*shared).clone());
                engine.queue_committed(first, queued, &slots);
                let _ = tx.send(Ok(accepted));
            }
            Err(e) => {
                engine.release(&slots);
                on_failure();
                let _ = tx.send(Err(e));
            }
        });
        if let Err(e) = self.store.append(&prepared, done) {
            self.release(&release_slots);
            return Err(Rejection::Store(e));
        }
        Ok(rx)
    }

    /// Takes room for one delivery in `lane`, or says why there is none. `cluster`: what is
    /// held elsewhere, which counts against the quotas too.
    fn reserve(&self, lane: &Lane, cluster: Option<&ClusterLoad>) -> Option<String> {
        let elsewhere = cluster.map_or(0, |c| c.elsewhere(&lane.id).pending);
        let elsewhere_total = cluster.map_or(0, ClusterLoad::elsewhere_pending);
        let scope = if cluster.is_some() {
            " in the cluster"
        } else {
            ""
        };
        let mut l = lane.lock();
        let provider_waiting = (l.pending as u64).saturating_add(elsewhere);
        let total_waiting =
            (self.pending.fetch_add(1, Ordering::SeqCst) as u64).saturating_add(elsewhere_total);
        let Some(over) = over_quota(provider_waiting, total_waiting, &self.settings) else {
            l.pending += 1;
            l.full_logged = false;
            self.metrics.queue_depth.inc();
            return None;
        };
        self.pending.fetch_sub(1, Ordering::SeqCst);
        l.tally.refused += 1;
        Some(match over {
            Over::Provider => {
                if !std::mem::replace(&mut l.full_logged, true) {
                    tracing::warn!(
                        provider = %lane.id,
                        pending = provider_waiting,
                        "provider quota reached: its new deliveries are refused (dead, reason quota) until it catches up"
                    );
                }
                format!(
                    "refused: the Provider {} already has {provider_waiting} deliveries waiting{scope} (--provider-max-pending); retry it once the Provider has caught up",
                    lane.id
                )
            }
            Over::Total => format!(
                "refused: herald already has {} deliveries waiting{scope} (--max-pending); retry it once the Providers have caught up",
                self.settings.max_pending
            ),
        })
    }

    fn release(&self, slots: &[(Arc<Lane>, bool)]) {
        for (lane, reserved) in slots {
            if *reserved {
                lane.lock().pending -= 1;
                self.pending.fetch_sub(1, Ordering::SeqCst);
                self.metrics.queue_depth.dec();
            }
        }
    }

    /// With a shared backend, once an append is committed: what was accepted comes back as
    /// claims to whichever replica holds its key, so only the room taken is given back here.
    fn committed_elsewhere(&self, slots: &[(Arc<Lane>, bool)]) {
        self.release(slots);
        for (lane, accepted) in slots {
            if !accepted {
                lane.lock().dead += 1;
                self.metrics.dead_lettered.inc();
                self.metrics.refused.inc();
            }
        }
    }

    /// On the outbox writer's thread, once an append is committed: queue what was accepted.
    fn queue_committed(
        self: &Arc<Self>,
        first: u64,
        queued: Vec<Prepared>,
        slots: &[(Arc<Lane>, bool)],
    ) {
        let now = self.clock.now();
        let mut touched: Vec<&Arc<Lane>> = Vec::new();
        for (i, (Prepared { mut record, event }, (lane, accepted))) in
            queued.into_iter().zip(slots.iter()).enumerate()
        {
            record.id = first + i as u64;
            let mut l = lane.lock();
            if !accepted {
                l.dead += 1;
                self.metrics.dead_lettered.inc();
                self.metrics.refused.inc();
                continue;
            }
            let (id, clock_from, key) = (record.id, record.clock_from, record.key.0);
            let bytes = event_bytes(&event);
            let hot = self.try_hot(bytes).then(|| {
                Box::new(Hot {
                    record,
                    event,
                    bytes,
                })
            });
            l.keys.entry(key).or_default().items.push_back(Item {
                id,
                clock_from,
                next_attempt_at: 0,
                hot,
            });
            self.schedule(lane, &mut l, key, now);
            if !touched.iter().any(|t| Arc::ptr_eq(t, lane)) {
                touched.push(lane);
            }
        }
        for lane in touched {
            self.pump(lane);
        }
    }

    /// Counts `bytes` more of events kept in memory, if the budget allows.
    fn try_hot(&self, bytes: usize) -> bool {
        if self.hot.fetch_add(bytes, Ordering::SeqCst) + bytes <= self.settings.hot_bytes {
            return true;
        }
        self.hot.fetch_sub(bytes, Ordering::SeqCst);
        false
    }

    /// Puts `key` in the ready queue if its head is due, or on the timer.
    fn schedule(self: &Arc<Self>, lane: &Arc<Lane>, l: &mut LaneState, key: u64, now: u64) {
        let Some(kq) = l.keys.get_mut(&key) else {
            return;
        };
        if kq.busy || kq.queued {
            return;
        }
        let Some(head) = kq.items.front() else {
            return;
        };
        kq.queued = true;
        let due = head.next_attempt_at;
        if due <= now {
            l.ready.push_back(key);
        } else {
            l.waiting.insert((due, key));
            self.arm(lane, l, due);
        }
    }

    /// Makes sure the lane's timer fires by `due`.
    fn arm(self: &Arc<Self>, lane: &Arc<Lane>, l: &mut LaneState, due: u64) {
        if l.timer_at.is_some_and(|at| at <= due) {
            return;
        }
        l.timer_at = Some(due);
        let engine = Arc::downgrade(self);
        let lane = lane.clone();
        let at = self.clock.instant(due);
        self.runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(engine) = engine.upgrade() {
                engine.fire(&lane, due);
            }
        });
    }

    /// A lane's timer: keys whose retry time has come are ready again.
    fn fire(self: &Arc<Self>, lane: &Arc<Lane>, due: u64) {
        {
            let mut l = lane.lock();
            if l.timer_at == Some(due) {
                l.timer_at = None;
            }
            let now = self.clock.now();
            while let Some(&(at, key)) = l.waiting.first() {
                if at > now {
                    break;
                }
                l.waiting.pop_first();
                // The head may have changed meanwhile: schedule the key afresh.
                if let Some(kq) = l.keys.get_mut(&key) {
                    kq.queued = false;
                    self.schedule(lane, &mut l, key, now);
                }
            }
            let next = l
                .waiting
                .first()
                .map(|(at, _)| *at)
                .into_iter()
                .chain((l.paused_until > now).then_some(l.paused_until))
                .min();
            if let Some(next) = next {
                self.arm(lane, &mut l, next);
            }
        }
        self.pump(lane);
    }

    /// Starts what the lane's window and the global cap allow.
    fn pump(self: &Arc<Self>, lane: &Arc<Lane>) {
        if self.stopping() {
            return;
        }
        let mut starts = Vec::new();
        {
            let mut l = lane.lock();
            let now = self.clock.now();
            if l.paused_until > now {
                let until = l.paused_until;
                self.arm(lane, &mut l, until);
                return;
            }
            while l.in_flight.len() < l.window {
                let Some(key) = l.ready.pop_front() else {
                    break;
                };
                let Some(kq) = l.keys.get_mut(&key) else {
                    continue;
                };
                kq.queued = false;
                let Some(head) = kq.items.front() else {
                    continue;
                };
                if kq.busy {
                    continue;
                }
                if head.next_attempt_at > now {
                    self.schedule(lane, &mut l, key, now);
                    continue;
                }
                let over_cap = self.in_flight.load(Ordering::SeqCst) >= self.settings.max_in_flight;
                if over_cap && !l.in_flight.is_empty() {
                    l.ready.push_front(key);
                    if let Some(kq) = l.keys.get_mut(&key) {
                        kq.queued = true;
                    }
                    if !std::mem::replace(&mut l.starved, true) {
                        self.starved
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_back(lane.clone());
                    }
                    break;
                }
                let Some(kq) = l.keys.get_mut(&key) else {
                    continue;
                };
                kq.busy = true;
                let Some(head) = kq.items.front_mut() else {
                    continue;
                };
                let (id, hot) = (head.id, head.hot.take());
                l.in_flight.insert(id);
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                self.unsettled.fetch_add(1, Ordering::SeqCst);
                starts.push((key, id, hot));
            }
        }
        for (key, id, hot) in starts {
            let attempt = Attempt {
                engine: self.clone(),
                lane: lane.clone(),
                key,
                id,
                hot,
                started: Instant::now(),
                finished: false,
            };
            self.runtime.spawn(attempt.run());
        }
    }

    /// A slot was freed: let a lane that waited for the global cap go on.
    fn wake_starved(self: &Arc<Self>) {
        let next = self
            .starved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        if let Some(lane) = next {
            lane.lock().starved = false;
            self.pump(&lane);
        }
    }

    /// Records an attempt's outcome: in memory at once (status, slot), then in the outbox; the
    /// key's next delivery goes out once that is committed.
    fn finish(
        self: &Arc<Self>,
        lane: &Arc<Lane>,
        key: u64,
        hot: Box<Hot>,
        outcome: &Outcome,
        elapsed: Duration,
    ) {
        let now = self.clock.now();
        let Hot {
            record,
            event,
            bytes,
        } = *hot;
        let metrics = self.lane_metrics(lane, &record.provider_type);
        let accepted_at = record.accepted_at;
        let id = record.id;
        let step = transition::after_attempt(record, outcome, now, &self.settings.policy);
        metrics.seconds.observe(elapsed.as_secs_f64());
        {
            let mut l = lane.lock();
            l.in_flight.remove(&id);
            match outcome {
                Outcome::Delivered => {
                    metrics.delivered.inc();
                    l.tally.delivered += 1;
                    if l.status.consecutive_failures > 0 {
                        tracing::info!(
                            provider = %lane.id,
                            failures = l.status.consecutive_failures,
                            "provider delivering again"
                        );
                    }
                    l.status.last_success_at = Some(now);
                    l.status.consecutive_failures = 0;
                    l.status.failing_since = None;
                    self.metrics
                        .delivery_lag
                        .observe(now.saturating_sub(accepted_at) as f64 / 1000.0);
                }
                Outcome::Failed(error) => {
                    metrics.failed.inc();
                    l.tally.failed += 1;
                    if l.status.consecutive_failures == 0 {
                        tracing::warn!(provider = %lane.id, error = error.message(), "provider failing; its deliveries are retried");
                    }
                    l.status.last_error = Some(error.message().to_owned());
                    l.status.last_error_at = Some(now);
                    l.status.consecutive_failures += 1;
                    l.status.failing_since.get_or_insert(now);
                    if let Some(pause) = step.pause {
                        let until = now
                            .saturating_add(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
                        l.paused_until = l.paused_until.max(until);
                    }
                }
            }
            l.status_dirty = true;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.log_outcome(lane, &step.record, outcome, elapsed);
        let record = step.record;
        let from = Placement::Active;
        let engine = self.clone();
        let lane2 = lane.clone();
        // A failed delivery keeps its record and event in memory for the retry; a finished
        // one needs only its id and state, and its event is dropped here, on the thread that
        // ran its attempt, rather than in the commit's callback.
        let outcome = Settled {
            id: record.id,
            state: record.state,
            kept: (record.state == State::Failed).then(|| (record.clone(), event)),
        };
        let done: crate::outbox::Done<()> = Box::new(move |result| {
            if let Err(e) = result {
                tracing::error!(provider = %lane2.id, delivery = outcome.id, error = %e, "cannot record a delivery's state in the outbox");
            }
            engine.settled(&lane2, key, outcome, bytes);
        });
        if let Err(e) = self.store.settle(&record, from, Some(done)) {
            // The writer is gone: herald is stopping. The state stays in memory.
            tracing::error!(provider = %lane.id, delivery = record.id, error = %e, "cannot record a delivery's state in the outbox");
            self.attempt_settled(record.id);
            self.unsettle();
        }
        self.pump(lane);
        self.wake_starved();
    }

    fn log_outcome(&self, lane: &Lane, r: &Record, outcome: &Outcome, elapsed: Duration) {
        let ms = elapsed.as_millis() as u64;
        match (outcome, r.state) {
            (Outcome::Delivered, _) => tracing::debug!(
                provider = %lane.id, delivery = r.id, alert = r.alert, object = r.object,
                reason = r.reason, attempts = r.attempts, ms, "delivered"
            ),
            (Outcome::Failed(e), State::Dead) => tracing::warn!(
                provider = %lane.id, r#type = r.provider_type, delivery = r.id, alert = r.alert,
                object = r.object, reason = r.reason, attempts = r.attempts, ms,
                dead_reason = r.dead_reason.map_or("", |d| d.as_str()), error = e.message(),
                "failed to send notification; giving up (dead-lettered, see `herald outbox`)"
            ),
            (Outcome::Failed(e), _) => tracing::debug!(
                provider = %lane.id, delivery = r.id, object = r.object, attempts = r.attempts, ms,
                retry_in_ms = r.next_attempt_at.map_or(0, |n| n.saturating_sub(r.last_attempt_at.unwrap_or(n))),
                error = e.message(), "failed to send notification; will retry"
            ),
        }
    }

    /// On the writer's thread: an attempt's outcome is committed; the key may go on.
    fn settled(self: &Arc<Self>, lane: &Arc<Lane>, key: u64, outcome: Settled, bytes: usize) {
        let now = self.clock.now();
        self.attempt_settled(outcome.id);
        {
            let mut l = lane.lock();
            let Some(kq) = l.keys.get_mut(&key) else {
                drop(l);
                self.unsettle();
                return;
            };
            kq.busy = false;
            let released = std::mem::take(&mut kq.released);
            let at = kq.items.iter().position(|i| i.id == outcome.id);
            match (outcome.state, outcome.kept, at) {
                // Finished, or no longer this replica's to retry.
                (state, _, Some(at))
                    if released || matches!(state, State::Delivered | State::Dead) =>
                {
                    kq.items.remove(at);
                    self.hot.fetch_sub(bytes, Ordering::SeqCst);
                    let empty = kq.items.is_empty();
                    if empty {
                        l.keys.remove(&key);
                    }
                    l.pending -= 1;
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                    self.metrics.queue_depth.dec();
                    if state == State::Dead {
                        l.dead += 1;
                        l.tally.dead += 1;
                        self.metrics.dead_lettered.inc();
                    }
                }
                (_, Some((record, event)), Some(at)) => {
                    // Kept in memory for its retry, within the budget.
                    let bytes = if bytes > 0 || !self.try_hot(event_bytes(&event)) {
                        bytes
                    } else {
                        event_bytes(&event)
                    };
                    let item = &mut kq.items[at];
                    item.next_attempt_at = record.next_attempt_at.unwrap_or(0);
                    item.clock_from = record.clock_from;
                    item.hot = (bytes > 0).then(|| {
                        Box::new(Hot {
                            record,
                            event,
                            bytes,
                        })
                    });
                }
                (_, _, _) => {
                    self.hot.fetch_sub(bytes, Ordering::SeqCst);
                }
            }
            self.schedule(lane, &mut l, key, now);
        }
        self.unsettle();
        self.pump(lane);
    }

    fn unsettle(&self) {
        if self.unsettled.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until every attempt started has ended and its outcome is committed (no new ones
    /// start once the stop signal is given), or `timeout` passes. Returns the deliveries left
    /// in the outbox; they resume at the next start.
    pub(crate) async fn drain(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            if self.unsettled.load(Ordering::SeqCst) == 0 {
                return self.pending();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending();
            }
        }
    }

    /// A copy of every lane, by Provider id.
    pub(crate) fn lanes(&self) -> Vec<(Arc<str>, LaneView)> {
        let now = self.clock.now();
        self.all_lanes()
            .into_iter()
            .map(|lane| {
                let l = lane.lock();
                let view = LaneView {
                    provider_type: l.provider_type.clone(),
                    pending: l.pending,
                    in_flight: l.in_flight.len(),
                    window: l.window,
                    dead: l.dead,
                    status: l.status.clone(),
                    paused_until: (l.paused_until > now).then_some(l.paused_until),
                };
                (lane.id.clone(), view)
            })
            .collect()
    }

    /// Whether a Provider has been failing for longer than `--degraded-after`.
    pub(crate) fn degraded(&self, status: &ProviderStatus) -> bool {
        let now = self.clock.now();
        status.consecutive_failures > 0
            && status.failing_since.is_some_and(|since| {
                now.saturating_sub(since) >= self.settings.degraded_after.as_millis() as u64
            })
    }

    /// The window `provider` would get now.
    pub(crate) fn window_of(&self, snapshot: &Snapshot, provider: &str, ty: &str) -> usize {
        self.window(snapshot, provider, ty)
    }

    /// The deliveries being attempted right now.
    pub(crate) fn in_flight(&self) -> HashSet<u64> {
        self.all_lanes()
            .iter()
            .flat_map(|lane| lane.lock().in_flight.iter().copied().collect::<Vec<_>>())
            .collect()
    }

    /// Puts dead or failed deliveries back in their queue, to be attempted now with a fresh
    /// age clock. Returns the ids that were requeued; others (unknown, delivered, pending, in
    /// flight) are skipped.
    pub(crate) async fn retry(self: &Arc<Self>, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        let mut done = Vec::new();
        let mut commits = Vec::new();
        for &id in ids {
            let Some(record) = self.store.get(id)? else {
                continue;
            };
            let now = self.clock.now();
            let Some(again) = transition::manual_retry(&record, now) else {
                continue;
            };
            let lane = self.lane(&record.provider, Some(&record.provider_type));
            let from = record.placement();
            if record.state == State::Failed {
                // Queued already: make it due now, unless it is being attempted.
                let mut l = lane.lock();
                if l.in_flight.contains(&id) {
                    continue;
                }
                let key = record.key.0;
                let Some(kq) = l.keys.get_mut(&key) else {
                    continue;
                };
                let Some(item) = kq.items.iter_mut().find(|i| i.id == id) else {
                    continue;
                };
                item.next_attempt_at = 0;
                item.clock_from = now;
                if let Some(hot) = &mut item.hot {
                    hot.record = again.clone();
                }
                kq.queued = false;
                l.waiting.retain(|(_, k)| *k != key);
                self.schedule(&lane, &mut l, key, now);
                drop(l);
                let (tx, rx) = done_channel();
                self.store.settle(&again, from, Some(tx))?;
                commits.push(rx);
                self.pump(&lane);
                done.push(id);
                continue;
            }
            // Dead: back to active once committed, beside the other deliveries of its key.
            {
                let mut l = lane.lock();
                l.pending += 1;
                l.dead = l.dead.saturating_sub(1);
            }
            self.pending.fetch_add(1, Ordering::SeqCst);
            self.metrics.queue_depth.inc();
            let engine = self.clone();
            let lane2 = lane.clone();
            let (tx, rx) = done_channel();
            let item = Item {
                id,
                clock_from: now,
                next_attempt_at: 0,
                hot: None,
            };
            let key = again.key.0;
            let requeue: crate::outbox::Done<()> = Box::new(move |result| {
                if result.is_ok() && engine.shared {
                    // Back in the shared outbox: it comes as a claim to whichever replica
                    // holds its key.
                    lane2.lock().pending -= 1;
                    engine.pending.fetch_sub(1, Ordering::SeqCst);
                    engine.metrics.queue_depth.dec();
                } else if result.is_ok() {
                    engine.requeue(&lane2, key, item);
                } else {
                    // Still dead: give its room back.
                    let mut l = lane2.lock();
                    l.pending -= 1;
                    l.dead += 1;
                    drop(l);
                    engine.pending.fetch_sub(1, Ordering::SeqCst);
                    engine.metrics.queue_depth.dec();
                }
                tx(result);
            });
            self.store.settle(&again, from, Some(requeue))?;
            commits.push(rx);
            done.push(id);
        }
        for rx in commits {
            rx.await.map_err(|_| StoreError::Stopped)??;
        }
        Ok(done)
    }

    /// On the writer's thread: a delivery retried by hand is back in its key's queue, in id
    /// order (never before a head being attempted).
    fn requeue(self: &Arc<Self>, lane: &Arc<Lane>, key: u64, item: Item) {
        let now = self.clock.now();
        {
            let mut l = lane.lock();
            let kq = l.keys.entry(key).or_default();
            let first = usize::from(kq.busy);
            let at = kq
                .items
                .iter()
                .skip(first)
                .position(|i| i.id > item.id)
                .map_or(kq.items.len(), |p| p + first);
            kq.items.insert(at, item);
            if at == 0 {
                kq.queued = false;
                l.waiting.retain(|(_, k)| *k != key);
            }
            self.schedule(lane, &mut l, key, now);
        }
        self.pump(lane);
    }

    /// Removes a delivery from the outbox (and its queue). `Err` names why it cannot be removed
    /// now (it is being attempted).
    pub(crate) async fn remove(&self, id: u64) -> Result<Option<Record>, RemoveError> {
        let Some(record) = self.store.get(id)? else {
            return Ok(None);
        };
        let lane = self.lane(&record.provider, None);
        {
            let mut l = lane.lock();
            let key = record.key.0;
            // Being attempted, or its outcome not recorded yet.
            let busy_head = l
                .keys
                .get(&key)
                .is_some_and(|kq| kq.busy && kq.items.front().is_some_and(|head| head.id == id));
            if l.in_flight.contains(&id) || busy_head {
                return Err(RemoveError::InFlight(id));
            }
            let found = l.keys.get_mut(&key).and_then(|kq| {
                let at = kq.items.iter().position(|i| i.id == id)?;
                if at == 0 && kq.busy {
                    return None;
                }
                kq.items.remove(at)
            });
            match found {
                Some(item) => {
                    if let Some(hot) = item.hot {
                        self.hot.fetch_sub(hot.bytes, Ordering::SeqCst);
                    }
                    if l.keys.get(&key).is_some_and(|kq| kq.items.is_empty()) {
                        l.keys.remove(&key);
                    }
                    l.pending -= 1;
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                    self.metrics.queue_depth.dec();
                }
                None if record.state == State::Dead => l.dead = l.dead.saturating_sub(1),
                None => {}
            }
        }
        let (tx, rx) = done_channel();
        self.store.remove(id, record.placement(), Some(tx))?;
        rx.await.map_err(|_| StoreError::Stopped)??;
        Ok(Some(record))
    }

    /// Once a second: save changed statuses, give up deliveries that waited too long behind a
    /// Provider that does not work, and now and then log a summary.
    fn tick(self: &Arc<Self>, summary_due: bool) {
        let now = self.clock.now();
        for lane in self.all_lanes() {
            let (status, expired, tally, pending) = {
                let mut l = lane.lock();
                let status =
                    std::mem::replace(&mut l.status_dirty, false).then(|| l.status.clone());
                let expired = self.expire(&mut l, now);
                let tally = if summary_due {
                    std::mem::take(&mut l.tally)
                } else {
                    Tally::default()
                };
                (status, expired, tally, l.pending)
            };
            if let Some(status) = status
                && let Err(e) = self.store.save_status(&lane.id, &status)
            {
                tracing::warn!(provider = %lane.id, error = %e, "cannot save a provider's status");
            }
            self.give_up(&lane, expired, now);
            if summary_due
                && (tally.delivered + tally.failed + tally.dead + tally.refused > 0 || pending > 0)
            {
                tracing::info!(
                    provider = %lane.id,
                    delivered = tally.delivered,
                    failed_attempts = tally.failed,
                    dead = tally.dead,
                    refused = tally.refused,
                    pending,
                    "deliveries in the last minute"
                );
            }
        }
    }

    /// Takes out of `l` the waiting deliveries its failing Provider has held past their age.
    fn expire(&self, l: &mut LaneState, now: u64) -> Vec<(u64, Option<Box<Hot>>)> {
        let policy = &self.settings.policy;
        let Some(since) = l.status.failing_since else {
            return Vec::new();
        };
        if !transition::expired_waiting(since, Some(since), now, policy) {
            // Failing for less than the maximum age: nothing can be that old.
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        for (key, kq) in l.keys.iter_mut() {
            let keep_head = usize::from(kq.busy);
            let mut i = keep_head;
            while i < kq.items.len() {
                if transition::expired_waiting(kq.items[i].clock_from, Some(since), now, policy) {
                    if let Some(item) = kq.items.remove(i) {
                        out.push((item.id, item.hot));
                    }
                } else {
                    i += 1;
                }
            }
            if kq.items.is_empty() {
                emptied.push(*key);
            }
        }
        for key in emptied {
            l.keys.remove(&key);
        }
        l.pending -= out.len();
        l.dead += out.len() as u64;
        l.tally.dead += out.len() as u64;
        out
    }

    fn give_up(&self, lane: &Lane, expired: Vec<(u64, Option<Box<Hot>>)>, now: u64) {
        if expired.is_empty() {
            return;
        }
        let last_error = lane.lock().status.last_error.clone();
        tracing::warn!(
            provider = %lane.id,
            deliveries = expired.len(),
            "deliveries given up: they waited {} without a working Provider (dead-lettered, see `herald outbox`)",
            herald_core::duration::format(self.settings.policy.max_age)
        );
        for (id, hot) in expired {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            self.metrics.queue_depth.dec();
            self.metrics.dead_lettered.inc();
            let record = match hot {
                Some(hot) => {
                    self.hot.fetch_sub(hot.bytes, Ordering::SeqCst);
                    Some(hot.record)
                }
                None => self.store.get(id).ok().flatten(),
            };
            let Some(record) = record else { continue };
            let dead = transition::give_up_waiting(
                &record,
                last_error.as_deref(),
                now,
                &self.settings.policy,
            );
            if let Err(e) = self.store.settle(&dead, Placement::Active, None) {
                tracing::error!(provider = %lane.id, delivery = id, error = %e, "cannot record a delivery's state in the outbox");
            }
        }
    }
}

/// The quota a new delivery would go over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    /// Its Provider's, `--provider-max-pending`.
    Provider,
    /// herald's, `--max-pending`.
    Total,
}

/// Which quota a new delivery goes over, given the deliveries already waiting that count
/// against each: its Provider's and all of them (this replica's, and with a shared backend the
/// rest of the cluster's).
fn over_quota(provider_waiting: u64, total_waiting: u64, settings: &Settings) -> Option<Over> {
    if provider_waiting >= settings.provider_max_pending as u64 {
        Some(Over::Provider)
    } else if total_waiting >= settings.max_pending as u64 {
        Some(Over::Total)
    } else {
        None
    }
}

/// What the engine needs once an attempt's outcome is committed.
#[derive(Debug)]
struct Settled {
    id: u64,
    state: State,
    /// The record and event of a delivery that stays queued (failed).
    kept: Option<(Record, Arc<Event>)>,
}

/// Why a delivery cannot be removed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoveError {
    /// It is being attempted.
    #[error("delivery {0} is being attempted right now; try again in a moment")]
    InFlight(u64),
    /// The outbox failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine's ticker; ends with the engine.
async fn tick(engine: std::sync::Weak<Engine>) {
    let mut last_summary = Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let summary_due = last_summary.elapsed() >= SUMMARY_EVERY;
        if summary_due {
            last_summary = Instant::now();
        }
        engine.tick(summary_due);
    }
}

/// One attempt in flight. If it is dropped before it finishes (the provider panicked), the
/// delivery is settled as failed for good, so that its key never stays blocked.
struct Attempt {
    engine: Arc<Engine>,
    lane: Arc<Lane>,
    key: u64,
    id: u64,
    hot: Option<Box<Hot>>,
    started: Instant,
    finished: bool,
}

impl Attempt {
    async fn run(mut self) {
        if self.hot.is_none() {
            match self.engine.store.get_with_event(self.id) {
                Ok(Some((record, Some(event)))) => {
                    let event = Arc::new(event);
                    self.hot = Some(Box::new(Hot {
                        record,
                        event,
                        bytes: 0,
                    }));
                }
                Ok(Some((record, None))) => {
                    self.hot = Some(Box::new(Hot {
                        record,
                        event: Arc::new(Event::default()),
                        bytes: 0,
                    }));
                    let e = DeliveryError::permanent("its stored event is missing from the outbox");
                    return self.finish(&Outcome::Failed(e));
                }
                Ok(None) => {
                    // Dropped meanwhile.
                    return self.vanished();
                }
                Err(e) => {
                    tracing::error!(provider = %self.lane.id, delivery = self.id, error = %e, "cannot read a delivery from the outbox; trying again shortly");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return self.vanished_for_now();
                }
            }
        }
        let Some(hot) = &self.hot else { return };
        let event = hot.event.clone();
        let snapshot = self.engine.current();
        let alert = snapshot.alert_object(&hot.record.alert);
        let provider = self.engine.provider_of(&self.lane);
        self.started = Instant::now();
        let outcome = match &provider {
            None => Outcome::Failed(DeliveryError::transient(
                self.engine.why_not_ready(&self.lane),
            )),
            Some(p) if p.suspended => Outcome::Failed(DeliveryError::transient(format!(
                "the Provider {} is suspended",
                self.lane.id
            ))),
            Some(p) => match p.notifier.post_for(&event, alert).await {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Failed(e.map_message(|m| p.masker.mask(m))),
            },
        };
        self.finish(&outcome);
    }

    fn finish(&mut self, outcome: &Outcome) {
        self.finished = true;
        if let Some(hot) = self.hot.take() {
            let elapsed = self.started.elapsed();
            self.engine
                .finish(&self.lane, self.key, hot, outcome, elapsed);
        }
    }

    /// The delivery is gone from the outbox: free its key.
    fn vanished(&mut self) {
        self.finished = true;
        {
            let mut l = self.lane.lock();
            l.in_flight.remove(&self.id);
            if let Some(kq) = l.keys.get_mut(&self.key) {
                kq.busy = false;
                if let Some(at) = kq.items.iter().position(|i| i.id == self.id) {
                    kq.items.remove(at);
                    l.pending -= 1;
                    self.engine.pending.fetch_sub(1, Ordering::SeqCst);
                    self.engine.metrics.queue_depth.dec();
                }
                let now = self.engine.clock.now();
                if l.keys.get(&self.key).is_some_and(|kq| kq.items.is_empty()) {
                    l.keys.remove(&self.key);
                } else {
                    self.engine.schedule(&self.lane, &mut l, self.key, now);
                }
            }
        }
        self.engine.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.engine.attempt_settled(self.id);
        self.engine.unsettle();
        self.engine.pump(&self.lane);
    }

    /// The outbox could not be read: the delivery stays queued and is tried again.
    fn vanished_for_now(&mut self) {
        self.finished = true;
        {
            let mut l = self.lane.lock();
            l.in_flight.remove(&self.id);
            if let Some(kq) = l.keys.get_mut(&self.key) {
                kq.busy = false;
            }
            let now = self.engine.clock.now();
            self.engine.schedule(&self.lane, &mut l, self.key, now);
        }
        self.engine.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.engine.attempt_settled(self.id);
        self.engine.unsettle();
        self.engine.pump(&self.lane);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.finished {
            // The provider panicked (or the runtime is shutting down mid-attempt).
            if self.hot.is_some() && !self.engine.stopping() {
                let e = DeliveryError::permanent("the provider panicked");
                self.finish(&Outcome::Failed(e));
            } else {
                self.finished = true;
                self.engine.in_flight.fetch_sub(1, Ordering::SeqCst);
                self.engine.attempt_settled(self.id);
                self.engine.unsettle();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use herald_core::{BuildError, Notifier, NotifyFuture, ProviderConfig, Registry};

    use super::*;
    use crate::outbox::conformance::{append_one, prepared};
    use crate::outbox::{Claims, Commits, Done, Health, Loaded};

    fn settings(provider_max_pending: usize, max_pending: usize) -> Settings {
        Settings {
            max_pending,
            provider_max_pending,
            max_in_flight: 4,
            provider_max_in_flight: None,
            policy: Policy::new(Duration::from_secs(60), Duration::from_secs(1)),
            degraded_after: Duration::from_secs(60),
            hot_bytes: HOT_BYTES,
        }
    }

    #[test]
    fn quotas_refuse_at_their_limit() {
        // (provider waiting, all waiting, --provider-max-pending, --max-pending, over)
        let cases = [
            (0, 0, 5, 10, None),
            (4, 4, 5, 10, None),
            (5, 5, 5, 10, Some(Over::Provider)),
            (6, 6, 5, 10, Some(Over::Provider)),
            (4, 9, 5, 10, None),
            (4, 10, 5, 10, Some(Over::Total)),
            // Both over: the Provider's quota is named.
            (5, 10, 5, 10, Some(Over::Provider)),
            // Zero room.
            (0, 0, 0, 10, Some(Over::Provider)),
            (0, 0, 5, 0, Some(Over::Total)),
            (
                u64::MAX,
                u64::MAX,
                usize::MAX,
                usize::MAX,
                Some(Over::Provider),
            ),
        ];
        for (provider, total, provider_max, max, want) in cases {
            assert_eq!(
                over_quota(provider, total, &settings(provider_max, max)),
                want,
                "{provider} of {provider_max} for the Provider, {total} of {max} in all"
            );
        }
    }

    /// The embedded outbox, said to be shared: what it holds comes to the engine only through
    /// the claims the test makes.
    struct Shared {
        store: crate::outbox::Store,
        claims: Mutex<Option<Claims>>,
    }

    impl fmt::Debug for Shared {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Shared").finish_non_exhaustive()
        }
    }

    impl Backend for Shared {
        fn append(&self, deliveries: &[Prepared], done: Done<u64>) -> Result<(), StoreError> {
            self.store.append(deliveries, done)
        }
        fn settle(
            &self,
            record: &Record,
            from: Placement,
            done: Option<Done<()>>,
        ) -> Result<(), StoreError> {
            self.store.settle(record, from, done)
        }
        fn remove(
            &self,
            id: u64,
            from: Placement,
            done: Option<Done<()>>,
        ) -> Result<(), StoreError> {
            self.store.remove(id, from, done)
        }
        fn save_status(&self, provider: &str, status: &ProviderStatus) -> Result<(), StoreError> {
            self.store.save_status(provider, status)
        }
        fn prune(
            &self,
            delivered_before: u64,
            dead_before: u64,
            limit: usize,
            done: Done<usize>,
        ) -> Result<(), StoreError> {
            self.store.prune(delivered_before, dead_before, limit, done)
        }
        fn flush(&self, done: Done<()>) -> Result<(), StoreError> {
            self.store.flush(done)
        }
        fn load(&self) -> Result<Loaded, StoreError> {
            self.store.load()
        }
        fn get(&self, id: u64) -> Result<Option<Record>, StoreError> {
            self.store.get(id)
        }
        fn get_with_event(&self, id: u64) -> Result<Option<(Record, Option<Event>)>, StoreError> {
            self.store.get_with_event(id)
        }
        fn list(
            &self,
            limit: usize,
            keep: &mut dyn FnMut(&Record) -> bool,
        ) -> Result<Vec<Record>, StoreError> {
            self.store.list(limit, keep)
        }
        fn dead_ids(&self, provider: Option<&str>) -> Result<Vec<u64>, StoreError> {
            self.store.dead_ids(provider)
        }
        fn health(&self) -> Health {
            self.store.health()
        }
        fn disk_bytes(&self) -> u64 {
            self.store.disk_bytes()
        }
        fn commits(&self) -> Commits {
            self.store.commits()
        }
        fn shared(&self) -> bool {
            true
        }
        fn start_claims(&self, claims: Claims) {
            *self.claims.lock().unwrap() = Some(claims);
        }
        fn close(&self) {
            self.store.close()
        }
    }

    /// Attempts made by [`Down`], and the permits that let each one end.
    static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
    static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

    /// A Provider that is down: each attempt waits for a permit of [`GATE`], then fails.
    #[derive(Debug)]
    struct Down;

    impl Notifier for Down {
        fn post<'a>(&'a self, _event: &'a Event) -> NotifyFuture<'a> {
            Box::pin(async move {
                ATTEMPTS.fetch_add(1, Ordering::SeqCst);
                GATE.acquire().await.unwrap().forget();
                Err(DeliveryError::transient("down"))
            })
        }
    }

    fn down(_: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
        Ok(Arc::new(Down))
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_share_given_up_mid_attempt_is_not_retried_here_until_it_is_claimed_again() {
        let dir = std::env::temp_dir().join(format!("herald-engine-share-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {name: hook, namespace: apps}\nspec: {type: generic, address: 'http://127.0.0.1:9/'}\n";
        std::fs::write(dir.join("m.yaml"), yaml).unwrap();
        let mut registry = Registry::new();
        registry.add_family(Family::Generic);
        registry.register(ProviderType::Generic, down);
        let snapshot = Snapshot::load(std::slice::from_ref(&dir), &registry);
        assert!(
            snapshot.catalog.all_ready(),
            "{:?}",
            snapshot.catalog.problems()
        );
        let shared = Arc::new(Shared {
            store: crate::outbox::Store::open(&dir.join("data")).unwrap(),
            claims: Mutex::new(None),
        });
        let mut reg = prometheus_client::registry::Registry::default();
        let (_stop_tx, stop) = watch::channel(false);
        let mut settings = settings(100, 100);
        // Retries 100 ms after a failure.
        settings.policy = Policy::new(Duration::from_secs(60), Duration::from_millis(100));
        let engine = Engine::new(
            shared.clone(),
            Arc::new(RwLock::new(Arc::new(snapshot))),
            settings,
            Arc::new(Metrics::new(&mut reg)),
            stop,
        )
        .unwrap();
        let claims = shared.claims.lock().unwrap().clone().unwrap();
        let delivery = prepared("apps/hook", Event::default());
        let id = append_one(&shared.store, &delivery);
        let claim =
            |record: Record| claims(Claim::Deliver(Box::new(record), delivery.event.clone()));
        claim(shared.get(id).unwrap().unwrap());
        until("the claimed delivery is attempted", || {
            ATTEMPTS.load(Ordering::SeqCst) == 1
        })
        .await;
        // The share moves away while the attempt is in flight: the engine says so once its
        // outcome is recorded.
        let release = || {
            let idle = Arc::new(AtomicBool::new(false));
            let flag = idle.clone();
            claims(Claim::Release(
                Arc::new(|_, _| true),
                Box::new(move || flag.store(true, Ordering::SeqCst)),
            ));
            idle
        };
        let idle = release();
        assert!(!idle.load(Ordering::SeqCst), "idle while in flight");
        GATE.add_permits(1);
        until("the release is done once the outcome is recorded", || {
            idle.load(Ordering::SeqCst)
        })
        .await;
        assert_eq!(shared.get(id).unwrap().unwrap().state, State::Failed);
        // Its next holder retries it: this replica does not, although ten retry intervals pass.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            ATTEMPTS.load(Ordering::SeqCst),
            1,
            "retried by a replica that gave its share up"
        );
        assert_eq!(engine.pending(), 0, "nothing is kept for it here");
        // Claimed again (the share came back): retried from its recorded state.
        claim(shared.get(id).unwrap().unwrap());
        until("retried once claimed again", || {
            ATTEMPTS.load(Ordering::SeqCst) == 2
        })
        .await;
        // Given up and claimed back while in flight: still this replica's to retry.
        let idle = release();
        claim(shared.get(id).unwrap().unwrap());
        GATE.add_permits(1);
        until("released", || idle.load(Ordering::SeqCst)).await;
        until("retried after coming back mid-attempt", || {
            ATTEMPTS.load(Ordering::SeqCst) == 3
        })
        .await;
        assert_eq!(engine.pending(), 1);
        GATE.add_permits(1000);
        shared.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
