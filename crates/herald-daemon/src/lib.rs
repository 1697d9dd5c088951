//! herald-daemon: the long-running part of herald.
//!
//! It listens for Flux events on the events address (any path, POST of a Flux event, 202 as
//! Flux answers), suppresses duplicates with Flux's key and window, matches the event against
//! the Alerts, applies Flux's per-alert gating and metadata rules, records one delivery per
//! (event, Alert, Provider) in its outbox before it answers 202, and delivers them: several at
//! once per Provider, in order per ordering key (see [`herald_core::OrderingKey`]), retried
//! durably, with per-Provider quotas. It serves `/healthz`, `/readyz`, Prometheus `/metrics`
//! and the status API ([`api`]), each on its own address. It takes the manifests object by
//! object, as Flux does: a broken object is reported (log, `/readyz`, `/api/v1/objects`,
//! `herald_object_ready`) and every other one works. It reloads the manifests when they change
//! or on SIGHUP, and on
//! SIGTERM stops accepting and finishes what it accepted, up to a deadline.
//!
//! It is not a provider: it knows providers only through [`herald_core::Notifier`], built by
//! the [`herald_core::Registry`] it is given. It is not a command line either: the `herald`
//! binary parses flags into [`Options`].

pub mod api;
mod dispatch;
mod engine;
mod guard;
pub mod manifests;
mod metrics;
pub mod outbox;
pub mod ratelimit;
pub mod receiver;
mod server;
mod state;
mod transition;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

use herald_core::Registry;
use herald_core::manifest::{self, ObjectKey};

pub use engine::default_window;
pub use guard::GuardError;
pub use server::{HEADER_TIMEOUT, MAX_BODY, MAX_DRAIN, MAX_HEADER_BYTES, READ_TIMEOUT};
pub use state::Snapshot;

use crate::dispatch::Dispatcher;
use crate::metrics::{Metrics, ObjectLabels, ResultLabels};
use crate::outbox::{Backend, Health, OpenError, StoreError};
use crate::ratelimit::RateLimiter;

/// How the daemon runs (the flags of `herald serve`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Manifest files and folders.
    pub manifests: Vec<PathBuf>,
    /// Where Flux controllers post events.
    pub events_addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// Where `/healthz` and `/readyz` are served.
    pub health_addr: SocketAddr,
    /// Where the status API (`/api/v1/`) is served.
    pub api_addr: SocketAddr,
    /// A file holding the bearer token every API request must present.
    pub api_token_file: Option<PathBuf>,
    /// Refuse to start, and reject a reload, unless every object of the manifests is ready.
    pub require_all_objects: bool,
    /// Duplicate-suppression window; zero turns it off.
    pub rate_limit_interval: Duration,
    /// Reject events from namespaces other than the Alert's.
    pub no_cross_namespace_refs: bool,
    /// How often the manifests are checked for changes; zero turns watching off.
    pub reload_interval: Duration,
    /// How long SIGTERM waits for accepted deliveries to finish.
    pub shutdown_timeout: Duration,
    /// Attempts running at once, over all Providers (a Provider with none in flight may
    /// always start one).
    pub concurrency: usize,
    /// Deliveries waiting over all Providers before new ones are refused.
    pub max_pending: usize,
    /// Deliveries waiting per Provider before its new ones are refused (dead, reason `quota`).
    pub provider_max_pending: usize,
    /// Every Provider's window (its deliveries attempted at once), unless its
    /// `herald.dev/max-in-flight` annotation says otherwise; `None`: its family's default.
    pub provider_max_in_flight: Option<usize>,
    /// Where the embedded outbox lives.
    pub data_dir: PathBuf,
    /// A shared outbox in NATS JetStream instead of the embedded one.
    pub shared_outbox: Option<outbox::SharedOutbox>,
    /// A delivery still failing this long after it was accepted is dead-lettered.
    pub delivery_max_age: Duration,
    /// Delivered records are pruned after this.
    pub retention: Duration,
    /// Dead records are pruned after this.
    pub dead_retention: Duration,
    /// The longest wait between two attempts of one delivery.
    pub retry_backoff_max: Duration,
    /// A Provider failing for longer than this makes `/readyz` report degraded.
    pub degraded_after: Duration,
    /// PEM certificate chain: with `events_tls_key`, the event server speaks TLS only.
    pub events_tls_cert: Option<PathBuf>,
    /// PEM private key of `events_tls_cert`.
    pub events_tls_key: Option<PathBuf>,
    /// A file holding the bearer token every event request must present.
    pub events_token_file: Option<PathBuf>,
    /// A file holding the HMAC key every event body must be signed with (`X-Signature`).
    pub events_hmac_key_file: Option<PathBuf>,
    /// Event connections served at once; further ones get 503 and are closed.
    pub events_max_connections: usize,
    /// Time allowed for a TLS handshake and for each request's headers.
    pub events_header_timeout: Duration,
    /// Time allowed for each request body.
    pub events_read_timeout: Duration,
}

/// Event connections served at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// A listen address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid listen address {input:?}: {reason} (expected HOST:PORT or :PORT)")]
pub struct AddrError {
    /// What was given.
    pub input: String,
    /// Why it is not an address.
    pub reason: String,
}

/// Parses a listen address; `:9090` means every interface, as in Flux.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, AddrError> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    full.parse()
        .map_err(|e: std::net::AddrParseError| AddrError {
            input: s.to_owned(),
            reason: e.to_string(),
        })
}

/// Why the daemon could not start, or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The event endpoint's TLS, token or HMAC settings.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// `--require-all-objects` and some object is not ready (every problem, with file and line).
    #[error("--require-all-objects: not starting, {0}")]
    NotAllReady(manifest::ManifestErrors),
    /// The outbox cannot be opened.
    #[error(transparent)]
    Outbox(#[from] OpenError),
    /// The outbox opened but cannot be read.
    #[error("cannot read the outbox {}: {source}", path.display())]
    Load {
        /// The outbox file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// A listener cannot be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// `events`, `metrics`, `health` or `status API`.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The outbox stopped for good while running (its writer crashed). What was accepted is on
    /// disk: a restart resumes it.
    #[error("the outbox cannot go on ({0}); herald stops so that it is restarted")]
    OutboxStopped(String),
}

/// State shared by the listeners and the background tasks.
struct Shared {
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    limiter: Arc<RateLimiter>,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    prometheus: prometheus_client::registry::Registry,
    ready: AtomicBool,
    stopping: AtomicBool,
    guard: Arc<guard::Guard>,
    api_token: Option<guard::BearerToken>,
}

impl Shared {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A running daemon's addresses, once bound.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// The event server.
    pub events: SocketAddr,
    /// The metrics server.
    pub metrics: SocketAddr,
    /// The health server.
    pub health: SocketAddr,
    /// The status API.
    pub api: SocketAddr,
}

/// Loads the manifests, binds the listeners, and serves until `stop` resolves (the binary
/// passes SIGTERM/SIGINT). `on_bound` is called once the listeners are up.
pub async fn run(
    options: Options,
    registry: Registry,
    stop: impl std::future::Future<Output = ()>,
    on_bound: impl FnOnce(Bound),
) -> Result<(), RunError> {
    let started = Instant::now();
    let guard = Arc::new(guard::Guard::load(&options)?);
    tracing::info!(guard = ?guard, "event endpoint limits and defences");
    let api_token = options
        .api_token_file
        .as_deref()
        .map(guard::BearerToken::load)
        .transpose()?;
    // Taken before reading, so that a change made while loading is seen by the first poll.
    let loaded_files = fingerprint(&options.manifests);
    let snapshot = Snapshot::load(&options.manifests, &registry);
    if options.require_all_objects && !snapshot.catalog.all_ready() {
        let problems = snapshot.catalog.problems().into_iter().cloned().collect();
        return Err(RunError::NotAllReady(manifest::ManifestErrors(problems)));
    }
    log_objects(&snapshot, None);
    tracing::info!(
        providers = snapshot.set().providers.len(),
        alerts = snapshot.set().alerts.len(),
        secrets = snapshot.set().secrets.len(),
        files = snapshot.set().files.len(),
        not_ready = snapshot.catalog.not_ready().count(),
        "manifests loaded"
    );

    let (store, path) = open_outbox(&options)?;
    let mut prometheus = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::new(&mut prometheus));
    set_object_metrics(&metrics, &snapshot);
    let (stop_tx, stop_rx) = watch::channel(false);
    let snapshot = Arc::new(RwLock::new(Arc::new(snapshot)));
    let dispatcher = Dispatcher::new(
        store.clone(),
        snapshot.clone(),
        &dispatch::Settings {
            concurrency: options.concurrency,
            max_pending: options.max_pending,
            provider_max_pending: options.provider_max_pending,
            provider_max_in_flight: options.provider_max_in_flight,
            no_cross_namespace_refs: options.no_cross_namespace_refs,
            max_age: options.delivery_max_age,
            backoff_max: options.retry_backoff_max,
            degraded_after: options.degraded_after,
        },
        metrics.clone(),
        stop_rx.clone(),
    )
    .map_err(|source| RunError::Load { path, source })?;
    let shared = Arc::new(Shared {
        snapshot,
        limiter: Arc::new(RateLimiter::new(options.rate_limit_interval)),
        dispatcher,
        metrics,
        prometheus,
        ready: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        guard: guard.clone(),
        api_token,
    });

    let bind = |addr: SocketAddr, what: &'static str| async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, what, source })?;
        let local =
            listener
                .local_addr()
                .map_err(|source| RunError::Listen { addr, what, source })?;
        Ok::<_, RunError>((listener, local))
    };
    let (events, events_addr) = bind(options.events_addr, "events").await?;
    let (metrics_l, metrics_addr) = bind(options.metrics_addr, "metrics").await?;
    let (health, health_addr) = bind(options.health_addr, "health").await?;
    let (api, api_addr) = bind(options.api_addr, "status API").await?;
    let bound = Bound {
        events: events_addr,
        metrics: metrics_addr,
        health: health_addr,
        api: api_addr,
    };

    let s = shared.clone();
    let events_task = tokio::spawn(server::serve_guarded(
        events,
        stop_rx.clone(),
        Some(guard),
        move |req, _| server::handle_event(s.clone(), req),
    ));
    let s = shared.clone();
    let metrics_task = tokio::spawn(server::serve(metrics_l, stop_rx.clone(), move |req, _| {
        server::handle_metrics(s.clone(), req)
    }));
    let s = shared.clone();
    let health_task = tokio::spawn(server::serve(health, stop_rx.clone(), move |req, _| {
        server::handle_health(s.clone(), req)
    }));
    let s = shared.clone();
    let api_task = tokio::spawn(server::serve(api, stop_rx.clone(), move |req, _| {
        let s = s.clone();
        async move { api::serve(&s, req).await }
    }));
    let registry = Arc::new(registry);
    let reload_task = tokio::spawn(watch_manifests(
        shared.clone(),
        registry,
        options.clone(),
        loaded_files,
        stop_rx.clone(),
    ));
    let sweep_task = tokio::spawn(sweep(shared.clone(), stop_rx.clone()));
    let prune_task = tokio::spawn(prune(
        shared.clone(),
        options.retention,
        options.dead_retention,
        stop_rx.clone(),
    ));

    shared.ready.store(true, Ordering::SeqCst);
    tracing::info!(
        events = %bound.events,
        metrics = %bound.metrics,
        health = %bound.health,
        api = %bound.api,
        api_token = shared.api_token.is_some(),
        ms = started.elapsed().as_millis() as u64,
        "herald is ready"
    );
    on_bound(bound);

    let outcome = tokio::select! {
        () = stop => Ok(()),
        why = outbox_stopped(store.clone()) => Err(RunError::OutboxStopped(why)),
    };
    tracing::info!(
        pending = shared.dispatcher.pending(),
        "shutting down: no new events accepted"
    );
    shared.stopping.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = events_task.await;
    let left = shared.dispatcher.drain(options.shutdown_timeout).await;
    for task in [
        metrics_task,
        health_task,
        api_task,
        reload_task,
        sweep_task,
        prune_task,
    ] {
        task.abort();
    }
    if let Err(e) = outbox::flush(&*store).await {
        tracing::error!(error = %e, "the outbox could not record the last delivery states; those deliveries may be sent again at the next start");
    }
    store.close();
    if left > 0 {
        tracing::info!(
            left,
            "stopped; deliveries not yet made stay in the outbox and resume at the next start"
        );
    } else {
        tracing::info!("stopped; all accepted deliveries finished");
    }
    outcome
}

/// Opens the outbox: the shared one when `--outbox` names it, else the embedded file.
fn open_outbox(options: &Options) -> Result<(Arc<dyn Backend>, PathBuf), RunError> {
    let Some(shared) = &options.shared_outbox else {
        let redb = outbox::Store::open_on(&options.data_dir, &tokio::runtime::Handle::current())?;
        let path = redb.path().to_owned();
        tracing::info!(file = %path.display(), bytes = redb.disk_bytes(), "outbox opened");
        return Ok((Arc::new(redb), path));
    };
    let path = PathBuf::from(shared.servers.join(","));
    #[cfg(feature = "jetstream")]
    {
        let store = outbox::jetstream::JetStream::open(shared)?;
        tracing::info!(servers = %path.display(), replica = shared.replica, copies = store.copies(), "shared outbox opened in JetStream");
        Ok((Arc::new(store), path))
    }
    #[cfg(not(feature = "jetstream"))]
    Err(RunError::Outbox(OpenError::Shared {
        servers: path.display().to_string(),
        message: "this herald is built without the shared outbox; build it with the cargo feature `jetstream` (on by default), or leave out --outbox".into(),
    }))
}

/// Resolves, with the reason, if the outbox stops for good.
async fn outbox_stopped(store: Arc<dyn Backend>) -> String {
    loop {
        if let Health::Stopped(why) = store.health() {
            return why;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn sweep(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let every = shared.limiter.interval().max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => { shared.limiter.sweep(Instant::now()); }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// The most records one prune removes: pruning goes in chunks, each its own commit, so that
/// the events committed beside it never wait long.
const PRUNE_CHUNK: usize = 2000;

/// Prunes delivered and dead records past their retention, every so often.
async fn prune(
    shared: Arc<Shared>,
    retention: Duration,
    dead_retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let every = (retention / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let mut wait = every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                let now = outbox::now_ms();
                let before = |d: Duration| now.saturating_sub(d.as_millis() as u64);
                let (done, pruned) = outbox::done_channel();
                let store = shared.dispatcher.store();
                let pruned = match store.prune(before(retention), before(dead_retention), PRUNE_CHUNK, done) {
                    Ok(()) => pruned.await.unwrap_or(Err(StoreError::Stopped)),
                    Err(e) => Err(e),
                };
                // A full chunk: there is more, go on soon (but let other commits through).
                wait = match pruned {
                    Ok(n) if n >= PRUNE_CHUNK => Duration::from_millis(20),
                    Ok(_) => every,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot prune the outbox");
                        every
                    }
                };
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    manifests::files(paths)
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (f, len, modified)
        })
        .collect()
}

/// Reloads on SIGHUP and when the manifest files change (polled: robust to the symlink swaps
/// of Kubernetes ConfigMap and Secret volumes).
async fn watch_manifests(
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    options: Options,
    mut last: Fingerprint,
    mut stop: watch::Receiver<bool>,
) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on change only");
            None
        }
    };
    let poll = if options.reload_interval.is_zero() {
        Duration::from_secs(3600 * 24 * 365)
    } else {
        options.reload_interval
    };
    loop {
        let reason = tokio::select! {
            _ = tokio::time::sleep(poll) => {
                if options.reload_interval.is_zero() { continue; }
                let now = fingerprint(&options.manifests);
                if now == last { continue; }
                last = now;
                "manifests changed"
            }
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                last = fingerprint(&options.manifests);
                "SIGHUP"
            }
            _ = stopped(&mut stop) => return,
        };
        reload(&shared, &registry, &options, reason);
    }
}

fn reload(shared: &Shared, registry: &Registry, options: &Options, reason: &str) {
    if shared.guard.has_files() {
        match shared.guard.reload() {
            Ok(()) => tracing::info!(reason, "event endpoint TLS and key files re-read"),
            Err(e) => tracing::error!(
                reason,
                "event endpoint files rejected, still using the previous ones: {e}"
            ),
        }
    }
    if let Some(token) = &shared.api_token
        && let Err(e) = token.reload()
    {
        tracing::error!(
            reason,
            "API token rejected, still using the previous one: {e}"
        );
    }
    let snapshot = Snapshot::load(&options.manifests, registry);
    let outcome = if options.require_all_objects && !snapshot.catalog.all_ready() {
        let problems = snapshot.catalog.problems().into_iter().cloned().collect();
        tracing::error!(
            reason,
            "--require-all-objects: new manifests rejected, still serving the previous ones: {}",
            manifest::ManifestErrors(problems)
        );
        "failure"
    } else {
        let previous = shared.snapshot();
        log_objects(&snapshot, Some(&previous));
        tracing::info!(
            reason,
            providers = snapshot.set().providers.len(),
            alerts = snapshot.set().alerts.len(),
            not_ready = snapshot.catalog.not_ready().count(),
            "manifests reloaded"
        );
        set_object_metrics(&shared.metrics, &snapshot);
        shared.dispatcher.configure(&snapshot);
        *shared.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        "success"
    };
    shared
        .metrics
        .reloads
        .get_or_create(&ResultLabels {
            result: outcome.into(),
        })
        .inc();
}

/// A warning per object that is not ready and per warning of the manifests; after a reload,
/// also a line per object that is ready again.
fn log_objects(snapshot: &Snapshot, previous: Option<&Snapshot>) {
    for warning in snapshot.catalog.warnings() {
        tracing::warn!("{warning}");
    }
    for status in snapshot.catalog.not_ready() {
        tracing::warn!(
            object = %status.key,
            problems = status.problems.len(),
            "{} is not ready (the other objects work): {}",
            status.key,
            status.reasons().join("; ")
        );
    }
    let Some(previous) = previous else { return };
    let was_broken = |key: &ObjectKey| previous.catalog.status(key).is_some_and(|s| !s.is_ready());
    for status in snapshot.catalog.statuses() {
        if status.is_ready() && was_broken(&status.key) {
            tracing::info!(object = %status.key, "{} is ready", status.key);
        }
    }
}

/// `herald_object_ready` for the objects of `snapshot`, and only those.
fn set_object_metrics(metrics: &Metrics, snapshot: &Snapshot) {
    metrics.object_ready.clear();
    for status in snapshot.catalog.statuses() {
        metrics
            .object_ready
            .get_or_create(&ObjectLabels {
                kind: status.key.kind.as_str().to_owned(),
                namespace: status.key.namespace.clone(),
                name: status.key.name.clone(),
            })
            .set(i64::from(status.is_ready()));
    }
}

#[cfg(test)]
mod tests {
    use super::parse_listen_addr;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr(":9090").unwrap().to_string(),
            "0.0.0.0:9090"
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert!(
            parse_listen_addr("localhost")
                .unwrap_err()
                .to_string()
                .contains("expected HOST:PORT")
        );
    }
}
