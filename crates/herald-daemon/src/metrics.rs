//! Prometheus metrics, herald's own and Flux's `gotk_event_http_request_duration_seconds`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the event-server metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabels {
    /// HTTP status code answered.
    pub(crate) code: String,
}

/// Labels of Flux's HTTP duration metric (go-http-metrics).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    /// HTTP status code answered.
    pub(crate) code: String,
    /// Request method: one of [`method_label`]'s, so that a client cannot grow the label set.
    pub(crate) method: String,
    /// Always `/`, as in Flux without `--export-http-path-metrics`.
    pub(crate) handler: String,
}

/// Labels of delivery metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeliveryLabels {
    /// Provider namespace.
    pub(crate) namespace: String,
    /// Provider name.
    pub(crate) name: String,
    /// Provider type.
    #[prometheus(flatten)]
    pub(crate) kind: TypeLabel,
    /// `success` or `failure`.
    pub(crate) outcome: String,
}

/// The provider type label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeLabel {
    /// Provider type.
    pub(crate) r#type: String,
}

/// A Provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProviderLabels {
    /// Provider namespace.
    pub(crate) namespace: String,
    /// Provider name.
    pub(crate) name: String,
}

/// An Alert: its namespace and name, as a Provider's.
pub(crate) type AlertLabels = ProviderLabels;

/// An object of the manifests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ObjectLabels {
    /// `Provider`, `Alert`, `Secret` or `File`.
    pub(crate) kind: String,
    /// Its namespace (empty for a `File`).
    pub(crate) namespace: String,
    /// Its name (the path of a `File`).
    pub(crate) name: String,
}

/// Labels of reload metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    /// `success` or `failure`.
    pub(crate) result: String,
}

/// The event server's counter and histogram per (code, method).
type EventHandles = HashMap<(u16, &'static str), (Counter, Histogram)>;

/// Every metric the daemon exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Events received, by response code.
    pub(crate) events_received: Family<CodeLabels, Counter>,
    /// Duplicates answered 429.
    pub(crate) duplicates: Counter,
    /// Deliveries by provider and outcome.
    pub(crate) deliveries: Family<DeliveryLabels, Counter>,
    /// Delivery latency by provider type.
    pub(crate) delivery_seconds: Family<TypeLabel, Histogram>,
    /// Time from accepting an event to finishing its delivery (queueing included).
    pub(crate) delivery_lag: Histogram,
    /// Deliveries accepted and not finished.
    pub(crate) queue_depth: Gauge,
    /// Configuration reloads by result.
    pub(crate) reloads: Family<ResultLabels, Counter>,
    /// Flux's event-server request duration.
    pub(crate) http_seconds: Family<HttpLabels, Histogram>,
    /// Deliveries waiting per Provider (pending or failed, retried later).
    pub(crate) provider_pending: Family<ProviderLabels, Gauge>,
    /// Dead deliveries kept per Provider.
    pub(crate) provider_dead: Family<ProviderLabels, Gauge>,
    /// Failed attempts since the last success, per Provider.
    pub(crate) provider_failures: Family<ProviderLabels, Gauge>,
    /// The last successful delivery, Unix seconds.
    pub(crate) provider_last_success: Family<ProviderLabels, Gauge>,
    /// The last failed attempt, Unix seconds.
    pub(crate) provider_last_failure: Family<ProviderLabels, Gauge>,
    /// 1 while a Provider has been failing for longer than `--degraded-after`.
    pub(crate) provider_degraded: Family<ProviderLabels, Gauge>,
    /// Deliveries being attempted per Provider.
    pub(crate) provider_in_flight: Family<ProviderLabels, Gauge>,
    /// Deliveries refused because their Provider (or herald) had too many waiting.
    pub(crate) refused: Counter,
    /// The event server's metric handles by (code, method), made once each.
    event_handles: Mutex<EventHandles>,
    /// Deliveries given up (dead-lettered).
    pub(crate) dead_lettered: Counter,
    /// The outbox file's size.
    pub(crate) outbox_bytes: Gauge,
    /// Outbox commits, their total time and the deliveries they appended (set from the
    /// backend's own counts at each scrape).
    pub(crate) outbox_commits: Counter,
    pub(crate) outbox_commit_seconds: Counter<f64, AtomicU64>,
    pub(crate) outbox_appended: Counter,
    /// Events refused because the outbox could not record them.
    pub(crate) outbox_errors: Counter,
    /// 1 for each object of the manifests that is ready, 0 for one that is not.
    pub(crate) object_ready: Family<ObjectLabels, Gauge>,
    /// Events matched by an Alert that is not ready, so not delivered, per Alert.
    pub(crate) alert_events_dropped: Family<AlertLabels, Counter>,
}

const HTTP_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const LAG_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];
const DELIVERY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Creates the metrics and registers them.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let m = Metrics {
            events_received: Family::default(),
            duplicates: Counter::default(),
            deliveries: Family::default(),
            delivery_seconds: Family::new_with_constructor(|| Histogram::new(DELIVERY_BUCKETS)),
            delivery_lag: Histogram::new(LAG_BUCKETS),
            queue_depth: Gauge::default(),
            reloads: Family::default(),
            http_seconds: Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS)),
            provider_pending: Family::default(),
            provider_dead: Family::default(),
            provider_failures: Family::default(),
            provider_last_success: Family::default(),
            provider_last_failure: Family::default(),
            provider_degraded: Family::default(),
            provider_in_flight: Family::default(),
            refused: Counter::default(),
            event_handles: Mutex::new(HashMap::new()),
            dead_lettered: Counter::default(),
            outbox_bytes: Gauge::default(),
            outbox_commits: Counter::default(),
            outbox_commit_seconds: Counter::default(),
            outbox_appended: Counter::default(),
            outbox_errors: Counter::default(),
            object_ready: Family::default(),
            alert_events_dropped: Family::default(),
        };
        registry.register(
            "herald_events_received",
            "Events received, by HTTP response code",
            m.events_received.clone(),
        );
        registry.register(
            "herald_events_duplicate",
            "Duplicate events suppressed (answered 429)",
            m.duplicates.clone(),
        );
        registry.register(
            "herald_deliveries",
            "Deliveries by provider and outcome",
            m.deliveries.clone(),
        );
        registry.register(
            "herald_delivery_duration_seconds",
            "Time to deliver one event to one provider, retries included",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "herald_delivery_lag_seconds",
            "Time from accepting an event to finishing its delivery, queueing included",
            m.delivery_lag.clone(),
        );
        registry.register(
            "herald_queue_depth",
            "Deliveries accepted and not yet finished that this process holds (with a shared outbox, this replica's)",
            m.queue_depth.clone(),
        );
        registry.register(
            "herald_config_reloads",
            "Configuration reloads by result",
            m.reloads.clone(),
        );
        registry.register(
            "gotk_event_http_request_duration_seconds",
            "The latency of the HTTP requests (Flux-compatible)",
            m.http_seconds.clone(),
        );
        registry.register(
            "herald_provider_pending",
            "Deliveries waiting per provider (pending, or failed and retried later) that this process holds (with a shared outbox, this replica's)",
            m.provider_pending.clone(),
        );
        registry.register(
            "herald_provider_dead",
            "Dead deliveries kept per provider (see herald outbox)",
            m.provider_dead.clone(),
        );
        registry.register(
            "herald_provider_consecutive_failures",
            "Failed attempts since the provider's last success",
            m.provider_failures.clone(),
        );
        registry.register(
            "herald_provider_last_success_timestamp_seconds",
            "The provider's last successful delivery (Unix time; 0 if none)",
            m.provider_last_success.clone(),
        );
        registry.register(
            "herald_provider_last_failure_timestamp_seconds",
            "The provider's last failed attempt (Unix time; 0 if none)",
            m.provider_last_failure.clone(),
        );
        registry.register(
            "herald_provider_degraded",
            "1 while the provider has been failing for longer than --degraded-after",
            m.provider_degraded.clone(),
        );
        registry.register(
            "herald_provider_in_flight",
            "Deliveries being attempted per provider by this process",
            m.provider_in_flight.clone(),
        );
        registry.register(
            "herald_deliveries_refused_quota",
            "Deliveries refused (kept as dead, reason quota) because their provider had --provider-max-pending waiting, or herald --max-pending",
            m.refused.clone(),
        );
        registry.register(
            "herald_deliveries_dead_lettered",
            "Deliveries given up and kept as dead",
            m.dead_lettered.clone(),
        );
        registry.register(
            "herald_outbox_size_bytes",
            "Size of the outbox file",
            m.outbox_bytes.clone(),
        );
        registry.register(
            "herald_outbox_commits",
            "Outbox commits (each one fsync, shared by the changes queued meanwhile)",
            m.outbox_commits.clone(),
        );
        registry.register(
            "herald_outbox_commit_seconds",
            "Time spent in outbox commits, writing and syncing",
            m.outbox_commit_seconds.clone(),
        );
        registry.register(
            "herald_outbox_appended_deliveries",
            "Deliveries recorded by outbox commits",
            m.outbox_appended.clone(),
        );
        registry.register(
            "herald_outbox_write_errors",
            "Events refused with 503 because the outbox could not record them",
            m.outbox_errors.clone(),
        );
        registry.register(
            "herald_object_ready",
            "1 if the object of the manifests is ready, 0 if not (see /api/v1/objects)",
            m.object_ready.clone(),
        );
        registry.register(
            "herald_alert_events_dropped",
            "Events matched by an Alert that is not ready, so not delivered",
            m.alert_events_dropped.clone(),
        );
        m
    }
}

impl Metrics {
    /// Brings the outbox counters up to the backend's counts.
    pub(crate) fn outbox_commits(&self, now: crate::outbox::Commits) {
        let add = |counter: &Counter, to: u64| {
            let have = counter.get();
            if to > have {
                counter.inc_by(to - have);
            }
        };
        add(&self.outbox_commits, now.count);
        add(&self.outbox_appended, now.appended);
        let seconds = now.micros as f64 / 1e6;
        let have = self.outbox_commit_seconds.get();
        if seconds > have {
            self.outbox_commit_seconds.inc_by(seconds - have);
        }
    }

    /// Counts an event request answered `code`, and how long it took.
    pub(crate) fn event_answered(&self, code: u16, method: &'static str, seconds: f64) {
        let (counter, histogram) = {
            let mut handles = self.event_handles.lock().unwrap_or_else(|e| e.into_inner());
            handles
                .entry((code, method))
                .or_insert_with(|| {
                    let code = code.to_string();
                    let counter = self
                        .events_received
                        .get_or_create(&CodeLabels { code: code.clone() })
                        .clone();
                    let histogram = self
                        .http_seconds
                        .get_or_create(&HttpLabels {
                            code,
                            method: method.to_owned(),
                            handler: "/".to_owned(),
                        })
                        .clone();
                    (counter, histogram)
                })
                .clone()
        };
        counter.inc();
        histogram.observe(seconds);
    }
}

/// The method label of a request: the standard methods by name, anything else `other`.
pub(crate) fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_fixed_set() {
        assert_eq!(method_label(&http::Method::POST), "POST");
        let odd = http::Method::from_bytes("X".repeat(4096).as_bytes()).unwrap();
        assert_eq!(method_label(&odd), "other");
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        for i in 0..100 {
            let method = http::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
            m.event_answered(400, method_label(&method), 0.001);
        }
        assert_eq!(m.event_handles.lock().unwrap().len(), 1);
    }
}
