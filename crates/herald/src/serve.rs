//! `herald serve`: the daemon, with the flags Flux users know.

use std::path::PathBuf;
use std::process::ExitCode;

use herald_core::duration;

use crate::{ManifestArgs, registry};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    manifests: ManifestArgs,

    /// Where Flux controllers post events (`:9090` means every interface).
    #[arg(long, env = "HERALD_EVENTS_ADDR", default_value = "127.0.0.1:9090", value_parser = herald_daemon::parse_listen_addr)]
    events_addr: std::net::SocketAddr,

    /// Where Prometheus metrics are served (`/metrics`).
    #[arg(long, env = "HERALD_METRICS_ADDR", default_value = "127.0.0.1:8080", value_parser = herald_daemon::parse_listen_addr)]
    metrics_addr: std::net::SocketAddr,

    /// Where `/healthz` and `/readyz` are served (nothing else: the kubelet's probes need it
    /// open).
    #[arg(long, env = "HERALD_HEALTH_ADDR", default_value = "127.0.0.1:9440", value_parser = herald_daemon::parse_listen_addr)]
    health_addr: std::net::SocketAddr,

    /// Where the status API (`/api/v1/`: objects, providers, deliveries with their events,
    /// retry and drop) is served. Keep it private, or set `--api-token-file`.
    #[arg(long, env = "HERALD_API_ADDR", default_value = "127.0.0.1:9441", value_parser = herald_daemon::parse_listen_addr)]
    api_addr: std::net::SocketAddr,

    /// File holding a token that every status API request must present as
    /// `Authorization: Bearer <token>`; others get 401. Surrounding whitespace is ignored;
    /// re-read on reload. Off by default.
    #[arg(long, env = "HERALD_API_TOKEN_FILE")]
    api_token_file: Option<PathBuf>,

    /// Start only if every object of the manifests is ready, and reject a reload that has a
    /// broken object (keeping the previous set). By default a broken object is reported and
    /// every other one works, as in Flux.
    #[arg(long, env = "HERALD_REQUIRE_ALL_OBJECTS")]
    require_all_objects: bool,

    /// Window in which a duplicate event is answered 429 (Go duration; `0s` turns it off).
    #[arg(long, env = "HERALD_RATE_LIMIT_INTERVAL", default_value = "5m", value_parser = duration::parse)]
    rate_limit_interval: std::time::Duration,

    /// Where herald keeps its outbox of accepted deliveries (created if missing).
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "./herald-data")]
    data_dir: PathBuf,

    /// A delivery still failing this long after it was accepted is given up and kept as dead
    /// (see `herald outbox`).
    #[arg(long, env = "HERALD_DELIVERY_MAX_AGE", default_value = "24h", value_parser = duration::parse)]
    delivery_max_age: std::time::Duration,

    /// The longest wait between two attempts of a failing delivery (the wait starts at 1s and
    /// doubles).
    #[arg(long, env = "HERALD_RETRY_BACKOFF_MAX", default_value = "5m", value_parser = duration::parse)]
    retry_backoff_max: std::time::Duration,

    /// How long delivered records are kept in the outbox.
    #[arg(long, env = "HERALD_RETENTION", default_value = "1h", value_parser = duration::parse)]
    retention: std::time::Duration,

    /// How long dead deliveries are kept in the outbox.
    #[arg(long, env = "HERALD_DEAD_RETENTION", default_value = "168h", value_parser = duration::parse)]
    dead_retention: std::time::Duration,

    /// A provider failing for longer than this makes `/readyz` report it as degraded.
    #[arg(long, env = "HERALD_DEGRADED_AFTER", default_value = "5m", value_parser = duration::parse)]
    degraded_after: std::time::Duration,

    /// Reject events from namespaces other than the Alert's own.
    #[arg(long, env = "HERALD_NO_CROSS_NAMESPACE_REFS")]
    no_cross_namespace_refs: bool,

    /// How often manifest files are checked for changes (`0s`: only on SIGHUP).
    #[arg(long, env = "HERALD_RELOAD_INTERVAL", default_value = "2s", value_parser = duration::parse)]
    reload_interval: std::time::Duration,

    /// How long SIGTERM waits for accepted deliveries to finish.
    #[arg(long, env = "HERALD_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    shutdown_timeout: std::time::Duration,

    /// Deliveries attempted at once over all providers. A provider with nothing in flight may
    /// always start one, so providers that hang cannot hold up the others.
    #[arg(long, env = "HERALD_CONCURRENCY", default_value_t = 256, value_parser = at_least_one)]
    concurrency: usize,

    /// Deliveries one provider attempts at once (deliveries about the same object, or the same
    /// commit status, always go one after another). Default: by provider family (64 for
    /// webhooks, 16 alerting and Event Hubs, 4 chat, 2 git); a Provider's annotation
    /// `herald.dev/max-in-flight` overrides both.
    #[arg(long, env = "HERALD_PROVIDER_MAX_IN_FLIGHT", value_parser = at_least_one)]
    provider_max_in_flight: Option<usize>,

    /// Deliveries waiting over all providers before new ones are refused; an event all of
    /// whose deliveries are refused is answered 503. With a shared outbox, the cluster's
    /// deliveries (see docs/scaling.md).
    #[arg(long, env = "HERALD_MAX_PENDING", default_value_t = 100_000, value_parser = at_least_one)]
    max_pending: usize,

    /// Deliveries waiting for one provider before its new ones are refused: kept as dead with
    /// reason `quota` (retry them with `herald outbox retry`), while the event's other
    /// deliveries are accepted. With a shared outbox, the cluster's deliveries (see
    /// docs/scaling.md).
    #[arg(long, env = "HERALD_PROVIDER_MAX_PENDING", default_value_t = 10_000, value_parser = at_least_one)]
    provider_max_pending: usize,

    /// PEM certificate chain for serving events over TLS only (with `--events-tls-key`).
    /// Re-read on reload, so a renewed certificate needs no restart. Off by default.
    #[arg(long, env = "HERALD_EVENTS_TLS_CERT", requires = "events_tls_key")]
    events_tls_cert: Option<PathBuf>,

    /// PEM private key of `--events-tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "HERALD_EVENTS_TLS_KEY", requires = "events_tls_cert")]
    events_tls_key: Option<PathBuf>,

    /// File holding a token that every event request must present as
    /// `Authorization: Bearer <token>`; others get 401. Surrounding whitespace is ignored;
    /// re-read on reload. Off by default (Flux controllers send no token).
    #[arg(long, env = "HERALD_EVENTS_TOKEN_FILE")]
    events_token_file: Option<PathBuf>,

    /// File holding an HMAC key: every event body must carry `X-Signature: sha256=<hex
    /// HMAC-SHA256(key, body)>`, as a `generic-hmac` Provider sends; others get 401.
    /// Surrounding whitespace is ignored; re-read on reload. Off by default.
    #[arg(long, env = "HERALD_EVENTS_HMAC_KEY_FILE")]
    events_hmac_key_file: Option<PathBuf>,

    /// Event connections served at once; a connection over the cap is answered 503 and
    /// closed (closed without an answer over TLS). Bounds memory under a connection flood.
    #[arg(long, env = "HERALD_EVENTS_MAX_CONNECTIONS", default_value_t = herald_daemon::DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    events_max_connections: usize,

    /// Time allowed for a TLS handshake and for each request's headers, including the wait
    /// for the next request on a kept-alive connection (Go duration).
    #[arg(long, env = "HERALD_EVENTS_HEADER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    events_header_timeout: std::time::Duration,

    /// Time allowed for each request body; a slower one gets 408 (Go duration).
    #[arg(long, env = "HERALD_EVENTS_READ_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    events_read_timeout: std::time::Duration,

    /// Keep the outbox in NATS JetStream at these servers (comma-separated `nats://` or
    /// `tls://` URLs, user and password in them if any) instead of `--data-dir`: every herald
    /// pointed at the same JetStream shares it, so several replicas accept and deliver
    /// together and take over each other's work (see docs/scaling.md). Needs nats-server 2.9
    /// or later with JetStream.
    #[arg(long, env = "HERALD_OUTBOX", value_parser = outbox_servers)]
    outbox: Option<OutboxServers>,

    /// `.creds` file (user JWT and nkey seed) for `--outbox`.
    #[arg(long, env = "HERALD_OUTBOX_CREDS", requires = "outbox")]
    outbox_creds: Option<PathBuf>,

    /// File holding an nkey seed for `--outbox`.
    #[arg(long, env = "HERALD_OUTBOX_NKEY", requires = "outbox")]
    outbox_nkey: Option<PathBuf>,

    /// PEM CA certificates to trust for `--outbox` over TLS (TLS is then required).
    #[arg(long, env = "HERALD_OUTBOX_CA", requires = "outbox")]
    outbox_ca: Option<PathBuf>,

    /// Copies JetStream keeps of the shared outbox's streams (set when they are created).
    /// Default: 3 when the server is in a cluster, else 1.
    #[arg(long, env = "HERALD_OUTBOX_REPLICAS", requires = "outbox", value_parser = at_least_one)]
    outbox_replicas: Option<usize>,

    /// This replica's name among those sharing `--outbox` (unique; default: the host name
    /// and the process id).
    #[arg(long, env = "HERALD_REPLICA_NAME", requires = "outbox")]
    replica_name: Option<String>,
}

/// The servers of `--outbox`.
#[derive(Debug, Clone)]
struct OutboxServers(Vec<String>);

/// `--outbox`: comma-separated NATS server URLs.
fn outbox_servers(s: &str) -> Result<OutboxServers, String> {
    let servers: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if servers.is_empty() {
        return Err("expected one or more NATS server URLs (nats://host:4222,...)".to_owned());
    }
    for url in &servers {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("nats" | "tls")) {
            return Err(format!(
                "{url:?} is not a NATS server URL (expected nats://host:port or tls://host:port)"
            ));
        }
    }
    Ok(OutboxServers(servers))
}

/// The default replica name: the host name and the process id, unique on one machine and
/// across pods.
fn default_replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".to_owned());
    format!("{host}-{}", std::process::id())
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = duration::parse(s)?;
    if d.is_zero() {
        return Err("must be more than 0s".to_owned());
    }
    Ok(d)
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let options = herald_daemon::Options {
        manifests: args.manifests.paths,
        events_addr: args.events_addr,
        metrics_addr: args.metrics_addr,
        health_addr: args.health_addr,
        api_addr: args.api_addr,
        api_token_file: args.api_token_file,
        require_all_objects: args.require_all_objects,
        rate_limit_interval: args.rate_limit_interval,
        no_cross_namespace_refs: args.no_cross_namespace_refs,
        reload_interval: args.reload_interval,
        shutdown_timeout: args.shutdown_timeout,
        concurrency: args.concurrency,
        max_pending: args.max_pending,
        provider_max_pending: args.provider_max_pending,
        provider_max_in_flight: args.provider_max_in_flight,
        data_dir: args.data_dir,
        shared_outbox: args
            .outbox
            .map(|servers| herald_daemon::outbox::SharedOutbox {
                servers: servers.0,
                creds_file: args.outbox_creds,
                nkey_file: args.outbox_nkey,
                ca_file: args.outbox_ca,
                replicas: args.outbox_replicas,
                replica: args.replica_name.unwrap_or_else(default_replica_name),
            }),
        delivery_max_age: args.delivery_max_age,
        retention: args.retention,
        dead_retention: args.dead_retention,
        retry_backoff_max: args.retry_backoff_max,
        degraded_after: args.degraded_after,
        events_tls_cert: args.events_tls_cert,
        events_tls_key: args.events_tls_key,
        events_token_file: args.events_token_file,
        events_hmac_key_file: args.events_hmac_key_file,
        events_max_connections: args.events_max_connections,
        events_header_timeout: args.events_header_timeout,
        events_read_timeout: args.events_read_timeout,
    };
    let families: Vec<&str> = registry::families().iter().map(|f| f.name()).collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        families = families.join(","),
        "starting herald"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(async {
            herald_daemon::run(options, registry::registry(), shutdown_signal(), |_| {}).await
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot listen for SIGTERM/SIGINT; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
