//! From an accepted event to deliveries: matching, Flux's per-alert gating and metadata
//! combination ([`Dispatcher::plan`]), then the delivery engine ([`crate::engine`]), which
//! records them in the outbox before the event is answered 202 and delivers them: in order per
//! ordering key, several at once per Provider, retried with backoff until
//! `--delivery-max-age`, then dead-lettered. Providers only ever see `Notifier::post`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use herald_core::manifest::Alert;
use herald_core::metadata;
use herald_core::{Event, text};

pub(crate) use crate::engine::Rejection;
use crate::engine::{self, Engine, RemoveError};
use crate::metrics::{AlertLabels, Metrics, ProviderLabels};
use crate::outbox::{
    Backend, ClusterLoad, Counts, NewDelivery, OtherStatuses, ProviderStatus, Record, StoreError,
    status,
};
use crate::state::{Snapshot, UnreadyAlert};
use crate::transition::Policy;

/// How deliveries are run and retried.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Attempts running at once over all Providers (each Provider may always start one).
    pub(crate) concurrency: usize,
    /// Deliveries waiting (over all Providers) before new ones are refused.
    pub(crate) max_pending: usize,
    /// Deliveries waiting per Provider before its new ones are refused.
    pub(crate) provider_max_pending: usize,
    /// Every Provider's window, unless its annotation says otherwise (`None`: by family).
    pub(crate) provider_max_in_flight: Option<usize>,
    /// Reject events from namespaces other than the Alert's.
    pub(crate) no_cross_namespace_refs: bool,
    /// A delivery still failing this long after it was accepted is dead-lettered.
    pub(crate) max_age: Duration,
    /// The longest wait between two attempts of one delivery.
    pub(crate) backoff_max: Duration,
    /// A Provider failing for longer than this is reported degraded.
    pub(crate) degraded_after: Duration,
}

/// A Provider's delivery status, as `/api/v1/providers` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ProviderReport {
    /// `namespace/name`.
    pub provider: String,
    /// The Provider's type.
    #[serde(rename = "type")]
    pub provider_type: String,
    /// Deliveries waiting (pending, or failed and retried later), the ones in flight included;
    /// with a shared outbox, the cluster's.
    pub pending: usize,
    /// Deliveries being attempted now; with a shared outbox, the cluster's.
    pub in_flight: usize,
    /// With a shared outbox: each live replica's share of `pending` and `in_flight`, by name
    /// (this replica's own entry includes what it accepted for the others that they have not
    /// reported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<BTreeMap<String, ReplicaCounts>>,
    /// Deliveries it may have in flight at once.
    pub max_in_flight: usize,
    /// Dead deliveries kept.
    pub dead: u64,
    /// The last successful delivery (RFC 3339). With a shared outbox this and the fields down
    /// to `degraded` (but `paused_until`, this replica's own) are the cluster's, merged from the
    /// replicas' statuses.
    pub last_success: Option<String>,
    /// The last error, masked.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_time: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// Since when the Provider has been failing (RFC 3339).
    pub failing_since: Option<String>,
    /// Until when it is paused, because the service rate-limits herald (RFC 3339).
    pub paused_until: Option<String>,
    /// Failing for longer than `--degraded-after`.
    pub degraded: bool,
    /// Whether the current manifests still define it.
    pub configured: bool,
}

impl ProviderReport {
    /// A Provider with nothing waiting, no outcome yet and no status, not (yet) from the
    /// manifests.
    fn empty(provider: &str, provider_type: &str, max_in_flight: usize) -> ProviderReport {
        ProviderReport {
            provider: provider.to_owned(),
            provider_type: provider_type.to_owned(),
            pending: 0,
            in_flight: 0,
            replicas: None,
            max_in_flight,
            dead: 0,
            last_success: None,
            last_error: None,
            last_error_time: None,
            consecutive_failures: 0,
            failing_since: None,
            paused_until: None,
            degraded: false,
            configured: false,
        }
    }
}

/// One replica's share of a Provider's deliveries.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub(crate) struct ReplicaCounts {
    /// Waiting, the ones in flight included.
    pub pending: u64,
    /// Being attempted now.
    pub in_flight: u64,
}

impl From<Counts> for ReplicaCounts {
    fn from(c: Counts) -> ReplicaCounts {
        ReplicaCounts {
            pending: c.pending,
            in_flight: c.in_flight,
        }
    }
}

/// Plans deliveries and hands them to the engine.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    engine: Arc<Engine>,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    no_cross_namespace_refs: bool,
}

/// An RFC 3339 time from milliseconds since the epoch.
pub(crate) fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Dispatcher {
    /// A dispatcher over `store`, resuming the deliveries it holds. Call from within the
    /// runtime.
    pub(crate) fn new(
        store: Arc<dyn Backend>,
        snapshot: Arc<RwLock<Arc<Snapshot>>>,
        settings: &Settings,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, StoreError> {
        let engine = Engine::new(
            store,
            snapshot.clone(),
            engine::Settings {
                max_pending: settings.max_pending,
                provider_max_pending: settings.provider_max_pending,
                max_in_flight: settings.concurrency.max(1),
                provider_max_in_flight: settings.provider_max_in_flight,
                policy: Policy::new(settings.max_age, settings.backoff_max),
                degraded_after: settings.degraded_after,
                hot_bytes: engine::HOT_BYTES,
            },
            metrics,
            stop,
        )?;
        Ok(Dispatcher {
            engine,
            snapshot,
            no_cross_namespace_refs: settings.no_cross_namespace_refs,
        })
    }

    /// Deliveries waiting, over all Providers.
    pub(crate) fn pending(&self) -> usize {
        self.engine.pending()
    }

    /// Whether a new event can be accepted at all.
    pub(crate) fn has_room(&self) -> bool {
        self.engine.has_room()
    }

    /// The outbox.
    pub(crate) fn store(&self) -> &Arc<dyn Backend> {
        self.engine.store()
    }

    /// Applies a reloaded configuration (Provider windows).
    pub(crate) fn configure(&self, snapshot: &Snapshot) {
        self.engine.configure(snapshot);
    }

    /// Matches `event` (metadata cleaned, token still present) against the Alerts of
    /// `snapshot`, applies Flux's gating and metadata rules, and returns one delivery per
    /// matching Alert, with the event exactly as it will be posted. Nothing is recorded yet.
    /// It takes the event: the last delivery posts it without a copy.
    pub(crate) fn plan(&self, snapshot: &Snapshot, mut event: Event) -> Vec<NewDelivery> {
        let alerts = snapshot.index.matching(&event);
        if alerts.is_empty() {
            tracing::debug!(
                object = text::obj_md(&event),
                "discarding event, no alerts found for the involved object"
            );
            return Vec::new();
        }
        let commit_status_update =
            metadata::controller_value(&event, "commit_status") == Some("update");
        let has_annotation =
            |key: &str| metadata::annotation_value(&event, key).is_some_and(|v| !v.is_empty());
        let (has_commit, has_change_request) =
            (has_annotation("commit"), has_annotation("change_request"));
        metadata::drop_token(&mut event);
        let mut dropped_commit = Vec::new();
        let mut dropped_change = Vec::new();
        let mut planned = Vec::with_capacity(alerts.len());
        tracing::debug!(object = text::obj_md(&event), reason = %event.reason, event_message = %event.message, "dispatching event");
        let last = alerts.len().saturating_sub(1);
        for (i, alert) in alerts.into_iter().enumerate() {
            let alert_id = format!("{}/{}", alert.namespace, alert.name);
            if self.no_cross_namespace_refs && event.involved_object.namespace != alert.namespace {
                let object = text::obj_md(&event);
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
                && !has_commit
                && !commit_status_update
                && !event.severity.is_error()
            {
                dropped_commit.push(alert_id);
                continue;
            }
            if ty.is_change_request() && !has_change_request {
                dropped_change.push(alert_id);
                continue;
            }
            // The last Alert takes the event itself: no copy for the usual one Alert.
            let mut delivered = if i == last {
                std::mem::take(&mut event)
            } else {
                event.clone()
            };
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
        self.engine
            .metrics()
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

    /// Records `planned` in the outbox and queues them once that is durable (whether or not
    /// this future is still polled then). `on_failure` runs if they could not be recorded.
    /// Returns how many were queued; the others were refused by a quota and recorded dead.
    pub(crate) async fn accept(
        &self,
        planned: Vec<NewDelivery>,
        on_failure: Box<dyn FnOnce() + Send>,
    ) -> Result<usize, Rejection> {
        if planned.is_empty() {
            return Ok(0);
        }
        let committed = self.engine.accept(planned, on_failure)?;
        committed
            .await
            .map_err(|_| Rejection::Store(StoreError::Stopped))?
            .map_err(Rejection::Store)
    }

    /// Waits until every attempt started has ended and been recorded (none start after the
    /// stop signal), or `timeout` passes. Returns the deliveries left in the outbox; they
    /// resume at the next start.
    pub(crate) async fn drain(&self, timeout: Duration) -> usize {
        self.engine.drain(timeout).await
    }

    /// With a shared outbox: what this replica last heard of the others' deliveries.
    pub(crate) fn cluster(&self) -> Option<Arc<ClusterLoad>> {
        self.engine.cluster()
    }

    /// Every Provider's delivery status (those with deliveries and those of the manifests),
    /// sorted by Provider; with a shared outbox, the cluster's counts and statuses, and the
    /// dead counts read from its shared dead-letter index.
    pub(crate) fn report(&self) -> Vec<ProviderReport> {
        let mut reports = self.reports();
        if let Some(dead) = self.store().dead_counts() {
            match dead {
                Ok(dead) => {
                    for r in &mut reports {
                        r.dead = dead.get(&r.provider).copied().unwrap_or(0);
                    }
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot read the shared dead-letter index; the dead counts are this replica's"
                ),
            }
        }
        reports
    }

    /// [`Dispatcher::report`] without reading the outbox: the dead counts are this replica's.
    fn reports(&self) -> Vec<ProviderReport> {
        let snapshot = self
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut reports: BTreeMap<String, ProviderReport> = self
            .engine
            .lanes()
            .into_iter()
            .map(|(id, v)| {
                let report = ProviderReport {
                    provider: id.to_string(),
                    degraded: self.engine.degraded(&v.status),
                    provider_type: v.provider_type,
                    pending: v.pending,
                    in_flight: v.in_flight,
                    max_in_flight: v.window,
                    dead: v.dead,
                    last_success: v.status.last_success_at.map(rfc3339),
                    last_error: v.status.last_error,
                    last_error_time: v.status.last_error_at.map(rfc3339),
                    consecutive_failures: v.status.consecutive_failures,
                    failing_since: v.status.failing_since.map(rfc3339),
                    paused_until: v.paused_until.map(rfc3339),
                    configured: false,
                    replicas: None,
                };
                (id.to_string(), report)
            })
            .collect();
        let cluster = self.engine.cluster();
        if let Some(cluster) = &cluster {
            for (provider, ty) in cluster.providers() {
                reports
                    .entry(provider.to_owned())
                    .or_insert_with(|| self.empty_report(&snapshot, provider, ty));
            }
        }
        for p in snapshot.providers.values() {
            let ty = p.provider_type.as_str();
            let report = reports
                .entry(p.id.clone())
                .or_insert_with(|| self.empty_report(&snapshot, &p.id, ty));
            report.provider_type = ty.to_owned();
            report.configured = true;
        }
        if let Some(cluster) = &cluster {
            for report in reports.values_mut() {
                add_cluster(report, cluster);
            }
        }
        if let Some(others) = self.store().other_statuses() {
            self.merge_statuses(&mut reports, &others);
        }
        reports.into_values().collect()
    }

    /// With a shared outbox: every report's status becomes the cluster's, merged from this
    /// replica's own (fresh) and the others' (as last read by the backend).
    fn merge_statuses(
        &self,
        reports: &mut BTreeMap<String, ProviderReport>,
        others: &OtherStatuses,
    ) {
        let mine: HashMap<Arc<str>, ProviderStatus> = self
            .engine
            .lanes()
            .into_iter()
            .map(|(id, v)| (id, v.status))
            .collect();
        for (provider, report) in reports.iter_mut() {
            let merged = status::merge(
                mine.get(provider.as_str())
                    .into_iter()
                    .chain(others.get(provider).into_iter().flatten()),
            );
            self.set_status(report, &merged);
        }
    }

    /// Puts `status` in `report`.
    fn set_status(&self, report: &mut ProviderReport, status: &ProviderStatus) {
        report.degraded = self.engine.degraded(status);
        report.last_success = status.last_success_at.map(rfc3339);
        report.last_error.clone_from(&status.last_error);
        report.last_error_time = status.last_error_at.map(rfc3339);
        report.consecutive_failures = status.consecutive_failures;
        report.failing_since = status.failing_since.map(rfc3339);
    }

    /// The report of a Provider this replica holds nothing of.
    fn empty_report(&self, snapshot: &Snapshot, provider: &str, ty: &str) -> ProviderReport {
        ProviderReport::empty(provider, ty, self.engine.window_of(snapshot, provider, ty))
    }

    /// The deliveries being attempted right now.
    pub(crate) fn in_flight(&self) -> HashSet<u64> {
        self.engine.in_flight()
    }

    /// Refreshes the per-Provider gauges (called before each scrape).
    pub(crate) fn refresh_metrics(&self, m: &Metrics) {
        let secs = |t: Option<u64>| t.map_or(0, |ms| (ms / 1000) as i64);
        for (id, v) in self.engine.lanes() {
            let (namespace, name) = id.split_once('/').unwrap_or(("", &id));
            let labels = ProviderLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            };
            m.provider_pending
                .get_or_create(&labels)
                .set(v.pending as i64);
            m.provider_in_flight
                .get_or_create(&labels)
                .set(v.in_flight as i64);
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
                .set(i64::from(self.engine.degraded(&v.status)));
        }
        m.outbox_bytes.set(self.store().disk_bytes() as i64);
        m.outbox_commits(self.store().commits());
    }

    /// Providers failing for longer than `--degraded-after` (without reading the outbox: this
    /// runs at each readiness probe).
    pub(crate) fn degraded(&self) -> Vec<ProviderReport> {
        self.reports().into_iter().filter(|r| r.degraded).collect()
    }

    /// Puts dead or failed deliveries back in their queue, to be attempted now with a fresh
    /// age clock. Returns the ids that were requeued; others are skipped.
    pub(crate) async fn retry(&self, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        self.engine.retry(ids).await
    }

    /// Removes a delivery from the outbox (and its queue). Fails for one being attempted.
    pub(crate) async fn remove(&self, id: u64) -> Result<Option<Record>, RemoveError> {
        self.engine.remove(id).await
    }
}

/// Turns a report of this replica's counts into the cluster's: this replica's counts plus
/// what it heard of the others' (and accepted for them), with each live replica's share.
fn add_cluster(report: &mut ProviderReport, cluster: &ClusterLoad) {
    let transit = cluster
        .in_transit
        .providers
        .get(&report.provider)
        .map_or(0, |p| p.counts.pending);
    let mine = ReplicaCounts {
        pending: (report.pending as u64).saturating_add(transit),
        in_flight: report.in_flight as u64,
    };
    let mut replicas = BTreeMap::from([(cluster.me.clone(), mine)]);
    for (name, load) in cluster.others.iter() {
        let counts = load
            .providers
            .get(&report.provider)
            .map_or_else(Counts::default, |p| p.counts);
        replicas.insert(name.clone(), counts.into());
    }
    let total = |f: fn(&ReplicaCounts) -> u64| {
        let sum = replicas.values().map(f).fold(0u64, u64::saturating_add);
        usize::try_from(sum).unwrap_or(usize::MAX)
    };
    report.pending = total(|c| c.pending);
    report.in_flight = total(|c| c.in_flight);
    report.replicas = Some(replicas);
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
        let store: Arc<dyn Backend> = Arc::new(crate::outbox::Store::open(&dir).unwrap());
        let mut reg = prometheus_client::registry::Registry::default();
        let snap = Arc::new(snap);
        let (_tx, stop) = watch::channel(false);
        std::mem::forget(_tx);
        let d = Dispatcher::new(
            store,
            Arc::new(RwLock::new(snap.clone())),
            &Settings {
                concurrency: 4,
                max_pending: 100,
                provider_max_pending: 100,
                provider_max_in_flight: None,
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
        let n = d
            .accept(d.plan(snap, e.clone()), Box::new(|| {}))
            .await
            .unwrap();
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

    #[test]
    fn the_cluster_report_sums_every_replica_and_what_is_in_transit() {
        use crate::outbox::Load;
        let load = |pending, in_flight| {
            let mut l = Load::default();
            l.add_pending("apps/hook", "generic", pending);
            if let Some(p) = l.providers.get_mut("apps/hook") {
                p.counts.in_flight = in_flight;
            }
            l
        };
        let others = BTreeMap::from([
            ("b".to_owned(), load(4, 2)),
            ("c".to_owned(), Load::default()),
        ]);
        let cluster = ClusterLoad::new("a".into(), others, load(1, 0));
        let mut report = ProviderReport {
            pending: 2,
            in_flight: 1,
            configured: true,
            ..ProviderReport::empty("apps/hook", "generic", 64)
        };
        add_cluster(&mut report, &cluster);
        assert_eq!((report.pending, report.in_flight), (7, 3));
        let share = |pending, in_flight| ReplicaCounts { pending, in_flight };
        assert_eq!(
            report.replicas,
            Some(BTreeMap::from([
                ("a".to_owned(), share(3, 1)),
                ("b".to_owned(), share(4, 2)),
                ("c".to_owned(), share(0, 0)),
            ]))
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["replicas"]["b"]["in_flight"], 2, "{json}");
        report.replicas = None;
        let json = serde_json::to_value(&report).unwrap();
        assert!(
            json.get("replicas").is_none(),
            "only with a shared outbox: {json}"
        );
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
        d.accept(d.plan(&snap, event(Severity::Info, &meta)), Box::new(|| {}))
            .await
            .unwrap();
        d.drain(Duration::from_secs(5)).await;
        for (_, e) in POSTED.lock().unwrap().iter() {
            assert_eq!(e.metadata, [("revision".to_owned(), "r".to_owned())].into());
        }
    }
}
