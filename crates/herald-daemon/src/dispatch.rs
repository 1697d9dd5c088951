//! From an accepted event to deliveries: matching, Flux's per-alert gating, metadata
//! combination, then one ordered queue per Provider with bounded concurrency overall.
//!
//! The queue is in memory; it is the one piece a durable outbox replaces. Providers only ever
//! see `Notifier::post`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc};

use herald_core::manifest::Alert;
use herald_core::metadata::{self, ANNOTATION_PREFIX};
use herald_core::{Event, text};

use crate::metrics::{DeliveryLabels, Metrics, TypeLabel};
use crate::state::{ProviderEntry, Snapshot};

/// One (event, alert, provider) to deliver.
#[derive(Debug)]
struct Delivery {
    event: Event,
    alert: String,
    provider: Arc<ProviderEntry>,
    accepted: Instant,
}

/// Why an accepted event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Too many deliveries are pending.
    Full,
}

/// Routes events to per-Provider workers.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    workers: Mutex<HashMap<String, mpsc::UnboundedSender<Delivery>>>,
    permits: Arc<Semaphore>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
    max_pending: usize,
    no_cross_namespace_refs: bool,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    /// A dispatcher running at most `concurrency` deliveries at once and holding at most
    /// `max_pending` undelivered ones.
    pub(crate) fn new(
        concurrency: usize,
        max_pending: usize,
        no_cross_namespace_refs: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Dispatcher {
            workers: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            pending: Arc::new(AtomicUsize::new(0)),
            drained: Arc::new(Notify::new()),
            max_pending,
            no_cross_namespace_refs,
            metrics,
        }
    }

    /// Deliveries accepted and not finished.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Whether a new event can be accepted.
    pub(crate) fn has_room(&self) -> bool {
        self.pending() < self.max_pending
    }

    /// Matches `event` (metadata cleaned, token still present) against the Alerts of
    /// `snapshot` and queues a delivery per matching Alert. Returns how many were queued.
    pub(crate) fn route(&self, snapshot: &Snapshot, event: &Event) -> Result<usize, Rejection> {
        if !self.has_room() {
            return Err(Rejection::Full);
        }
        let alerts = snapshot.index.matching(event);
        let object = text::obj_md(event);
        if alerts.is_empty() {
            tracing::debug!(
                object,
                "discarding event, no alerts found for the involved object"
            );
            return Ok(0);
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
        let mut queued = 0;
        tracing::info!(object, reason = %event.reason, event_message = %event.message, "dispatching event");
        for alert in alerts {
            let alert_id = format!("{}/{}", alert.namespace, alert.name);
            if self.no_cross_namespace_refs && event.involved_object.namespace != alert.namespace {
                tracing::error!(
                    alert = alert_id,
                    "discarding event, access denied to cross-namespace sources: alert '{alert_id}' can't process event from '{object}', cross-namespace references have been blocked"
                );
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
            self.enqueue(Delivery {
                event: delivered,
                alert: alert_id,
                provider: provider.clone(),
                accepted: Instant::now(),
            });
            queued += 1;
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
        Ok(queued)
    }

    fn enqueue(&self, delivery: Delivery) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.metrics.queue_depth.inc();
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let id = delivery.provider.id.clone();
        let sender = workers.entry(id).or_insert_with(|| self.spawn_worker());
        if let Err(mpsc::error::SendError(delivery)) = sender.send(delivery) {
            // The worker is gone (it cannot be, but never lose the delivery): start another.
            let fresh = self.spawn_worker();
            let _ = fresh.send(delivery);
            *sender = fresh;
        }
    }

    fn spawn_worker(&self) -> mpsc::UnboundedSender<Delivery> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        let permits = self.permits.clone();
        let pending = self.pending.clone();
        let drained = self.drained.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                let permit = permits.clone().acquire_owned().await;
                deliver(d, &metrics).await;
                drop(permit);
                metrics.queue_depth.dec();
                if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                    drained.notify_waiters();
                }
            }
        });
        tx
    }

    /// Waits until every accepted delivery has finished, or `timeout` passes. Returns the
    /// number still pending.
    pub(crate) async fn drain(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.drained.notified();
            if self.pending() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending();
            }
        }
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

/// Posts one delivery, in its own task so that a panicking provider cannot take the worker
/// down, and records the outcome.
async fn deliver(d: Delivery, metrics: &Metrics) {
    let started = Instant::now();
    let Delivery {
        event,
        alert,
        provider,
        accepted,
    } = d;
    let event_for_log = (text::obj_md(&event), event.reason.clone());
    let notifier = provider.notifier.clone();
    let outcome = tokio::spawn(async move { notifier.post(&event).await }).await;
    let elapsed = started.elapsed();
    metrics
        .delivery_lag
        .observe(accepted.elapsed().as_secs_f64());
    let ty = provider.provider_type.as_str().to_owned();
    metrics
        .delivery_seconds
        .get_or_create(&TypeLabel { r#type: ty.clone() })
        .observe(elapsed.as_secs_f64());
    let (object, reason) = event_for_log;
    let result = match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((provider.masker.mask(e.message()), e.is_retryable())),
        Err(join) => Err((format!("the provider panicked: {join}"), false)),
    };
    let outcome_label = if result.is_ok() { "success" } else { "failure" };
    metrics
        .deliveries
        .get_or_create(&DeliveryLabels {
            namespace: provider.namespace.clone(),
            name: provider.name.clone(),
            kind: TypeLabel { r#type: ty.clone() },
            outcome: outcome_label.to_owned(),
        })
        .inc();
    match result {
        Ok(()) => tracing::info!(
            provider = provider.id,
            r#type = ty,
            alert,
            object,
            reason,
            ms = elapsed.as_millis() as u64,
            "delivered"
        ),
        Err((error, retryable)) => tracing::warn!(
            provider = provider.id,
            r#type = ty,
            alert,
            object,
            reason,
            ms = elapsed.as_millis() as u64,
            retryable,
            error,
            "failed to send notification"
        ),
    }
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
        Snapshot::load(&[dir], &registry).unwrap()
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

    async fn routed(d: &Dispatcher, snap: &Snapshot, e: Event) -> Vec<String> {
        POSTED.lock().unwrap().clear();
        let n = d.route(snap, &e).unwrap();
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
        let snap = snapshot(&yaml());
        let mut reg = prometheus_client::registry::Registry::default();
        let d = Dispatcher::new(4, 100, false, Arc::new(Metrics::new(&mut reg)));

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
        let snap = snapshot(&yaml());
        let mut reg = prometheus_client::registry::Registry::default();
        let d = Dispatcher::new(4, 100, false, Arc::new(Metrics::new(&mut reg)));
        let meta = [
            ("kustomize.toolkit.fluxcd.io/token", "t"),
            ("kustomize.toolkit.fluxcd.io/revision", "r"),
        ];
        POSTED.lock().unwrap().clear();
        d.route(&snap, &event(Severity::Info, &meta)).unwrap();
        d.drain(Duration::from_secs(5)).await;
        for (_, e) in POSTED.lock().unwrap().iter() {
            assert_eq!(e.metadata, [("revision".to_owned(), "r".to_owned())].into());
        }
    }
}
