//! The shared backend: the outbox in NATS JetStream, shared by every herald replica that points
//! at it (`--outbox nats://...`). It needs nats-server 2.9 or later, and nothing beyond 2.9.
//!
//! What lives where (`R` is `--outbox-replicas`):
//!
//! - KV bucket `herald-records`: the truth. Key `d<id>` (20 digits, so that keys sort by id)
//!   holds the delivery's row (the outbox codec's: its record and, until it is delivered, its
//!   event). Every state change is one put; prune and remove purge the key's subject.
//! - Stream `HERALD_OUTBOX` (work-queue retention): one message per delivery still to make, on
//!   `herald.outbox.<partition>`, carrying its id (header `Herald-Id`) and its row as accepted.
//!   The partition is a stable hash of (Provider, [`OrderingKey`]) over [`PARTITIONS`]. An
//!   append publishes with `Nats-Msg-Id` (the Provider, the Alert and the event's bytes), so a
//!   resend within the stream's two-minute duplicate window is stored once. A message is acked
//!   (and so removed) when its delivery is delivered or dead.
//! - KV bucket `herald-leases` (entries expire after [`LEASE_TTL`]): key `p<partition>` names the
//!   replica that holds the partition. Every replica renews its leases every [`RENEW_EVERY`]
//!   and takes free ones up to its fair share (the partitions over the live replicas, counted in
//!   `herald-replicas`), giving back what is over it. The holder of a partition reads it through
//!   the durable consumer `part-<partition>` (re-created when a partition changes hands, and
//!   checked to have delivered nothing yet, so that every message not yet acked is read again,
//!   oldest first), and hands each delivery to its engine as a
//!   [`Claim`]; the engine keeps its order per key, window and retries. So deliveries of one key
//!   are made by one replica at a time, in commit order.
//! - KV bucket `herald-replicas` (entries expire after [`LEASE_TTL`]): each live replica's
//!   heartbeat, rewritten every [`RENEW_EVERY`], holding its [`super::Load`]: per Provider, the
//!   deliveries it holds waiting and in flight, read from its engine through
//!   [`Backend::report_load`]. Each replica reads the others' after writing its own, and
//!   [`Backend::cluster_load`] hands the engine what it heard, with the deliveries this replica
//!   accepted for partitions others hold and that their heartbeats do not count yet (see the
//!   `counts` module): `/api/v1/providers` and the quotas count the cluster's deliveries, at
//!   most a heartbeat interval late.
//! - KV bucket `herald-dead`: key `<provider hex>.<id>` for each dead delivery (the dead-letter
//!   index, which [`Backend::dead_counts`] counts for the status API).
//! - KV bucket `herald-providers`: key `<provider hex>.<replica hex>`, each replica's own status
//!   of each Provider (what its attempts saw), so that replicas never overwrite each other's.
//!   `load` reads this replica's own; each heartbeat round reads the others' into memory when
//!   the bucket changed, and [`Backend::other_statuses`] hands them to the status API, which
//!   merges them with this replica's ([`super::status::merge`]): every replica reports the
//!   cluster's status, at most a round (plus the others' once-a-second save) late. A replica
//!   that has left counts until its status is [`STATUS_KEEP`] old, and is then purged (see the
//!   `statuses` module).
//! - Stream `HERALD_IDS`: ids. A replica takes a block of [`ID_BLOCK`] ids by publishing an
//!   empty message there; the block is the message's stream sequence times [`ID_BLOCK`]. The
//!   stream's leader hands out each sequence once, where a compare-and-set on a key does not
//!   hold in a cluster (nats-server before 2.9.21 let two updates made with the same expected
//!   revision both succeed, and later ones check the revision on the leader only, before the
//!   write is agreed on: a leader change can still let two through).
//!
//! Reads (the status API's listings and dead counts, `load`) go to JetStream each time and wait
//! for the answer (the counts and statuses of the others are read in the rounds); writes
//! are sent at once and report through their [`Done`]. The work runs on this backend's own
//! runtime thread, so the engine's callbacks never wait on the network.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{HeaderMap, connection::State as Connection};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use herald_core::{Event, OrderingKey};

use super::codec::{
    decode_event, decode_record, decode_status, encode_record, encode_status, row, split_row,
};
use super::{
    Backend, Claim, Claims, ClusterLoad, Commits, Done, Health, LoadSource, Loaded, OpenError,
    OtherStatuses, Placement, Prepared, ProviderStatus, Record, State, StoreError, now_ms,
};

/// Partitions of the work stream: the most replicas that can share the work, and the unit
/// that moves between them. Fixed: every replica must hash alike.
pub const PARTITIONS: u32 = 32;
/// A lease not renewed for this long is free for another replica.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a replica renews its leases and looks for free partitions.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// A held message is sent to its partition's holder again after this (and skipped there):
/// what a dying server lost on the way is read again.
const REDELIVER_AFTER: Duration = Duration::from_secs(30);
/// How long opening waits for a JetStream that does not answer before herald gives up.
const SETUP_PATIENCE: Duration = Duration::from_secs(60);
/// Readings of `herald-records` a scan makes before it gives up on a stalled one.
const SCAN_ATTEMPTS: usize = 3;
/// Ids a replica takes at a time (one message in `HERALD_IDS`), and so the most deliveries one
/// event can make.
pub const ID_BLOCK: u64 = 1 << 20;
/// How long the Provider status saved by a replica that has left still counts in the
/// cluster's, after its latest outcome.
pub const STATUS_KEEP: Duration = Duration::from_secs(60 * 60);
/// How long one JetStream request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes waiting for JetStream before new appends are refused ([`StoreError::Busy`]).
const MAX_QUEUED_WRITES: usize = 16 * 1024;

const WORK_STREAM: &str = "HERALD_OUTBOX";
const WORK_SUBJECT: &str = "herald.outbox";
const RECORDS: &str = "herald-records";
const DEAD: &str = "herald-dead";
const PROVIDERS: &str = "herald-providers";
const IDS_STREAM: &str = "HERALD_IDS";
const IDS_SUBJECT: &str = "herald.ids";
const LEASES: &str = "herald-leases";
const REPLICAS: &str = "herald-replicas";
const ID_HEADER: &str = "Herald-Id";

/// How to reach JetStream.
pub use super::SharedOutbox as Options;

/// The partition of a Provider's ordering key: FNV-1a, stable across processes and versions.
pub fn partition(provider: &str, key: OrderingKey) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in provider.bytes().chain(key.0.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(PARTITIONS)) as u32
}

fn record_key(id: u64) -> String {
    format!("d{id:020}")
}

fn provider_token(provider: &str) -> String {
    provider.bytes().map(|b| format!("{b:02x}")).collect()
}

fn provider_of_token(token: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn dead_key(provider: &str, id: u64) -> String {
    format!("{}.{id:020}", provider_token(provider))
}

fn storage(what: &'static str, e: impl fmt::Display) -> StoreError {
    StoreError::Storage {
        what,
        message: e.to_string(),
    }
}

/// Bounds a JetStream request.
async fn bounded<T, E: fmt::Display>(
    what: &'static str,
    fut: impl IntoFuture<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut.into_future()).await {
        Ok(r) => r.map_err(|e| storage(what, e)),
        Err(_) => Err(storage(what, "JetStream did not answer in time")),
    }
}

/// A delivery message this replica holds (read from its partition, not acked yet).
struct Held {
    message: jetstream::Message,
    partition: u32,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    work: stream::Stream,
    records: kv::Store,
    dead: kv::Store,
    providers: kv::Store,
    leases: kv::Store,
    live: kv::Store,
    replica: String,
    /// The rest of this replica's block of ids: (next, end).
    ids: tokio::sync::Mutex<(u64, u64)>,
    held: Mutex<HashMap<u64, Held>>,
    writes: AtomicUsize,
    written: Notify,
    health: Mutex<Health>,
    commits: Mutex<Commits>,
    disk: AtomicU64,
    stop: watch::Sender<bool>,
    /// Replicas of every stream and bucket.
    replicas: usize,
    /// The duplicate windows' bucket, made at the first event.
    windows: tokio::sync::OnceCell<kv::Store>,
    /// What this replica publishes of its load and knows of the others'.
    counts: counts::Shared,
    /// The other replicas' Provider statuses as last read.
    statuses: statuses::Heard,
}

/// The JetStream backend (see the module documentation).
pub struct JetStream {
    inner: Arc<Inner>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

impl fmt::Debug for JetStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStream")
            .field("replica", &self.inner.replica)
            .finish_non_exhaustive()
    }
}

impl Drop for JetStream {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which async code must not.
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

/// Runs `fut` on `handle` and waits for it from synchronous code, inside a runtime or not.
fn block_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let wait = || rx.recv().map_err(|_| StoreError::Stopped);
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

impl JetStream {
    /// Connects and makes sure the streams and buckets exist (creating them, or updating
    /// their replicas).
    pub fn open(options: &Options) -> Result<JetStream, OpenError> {
        let failed = |message: String| OpenError::Shared {
            servers: options.servers.join(","),
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("herald-jetstream")
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start its runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let opts = options.clone();
        let inner = match block_on(&handle, async move { Inner::connect(&opts).await }) {
            Ok(Ok(inner)) => inner,
            Ok(Err(message)) => {
                runtime.shutdown_background();
                return Err(failed(message));
            }
            Err(e) => {
                runtime.shutdown_background();
                return Err(failed(e.to_string()));
            }
        };
        Ok(JetStream {
            inner: Arc::new(inner),
            runtime: Mutex::new(Some(runtime)),
            handle,
        })
    }

    /// Copies JetStream keeps of each stream and bucket.
    pub fn copies(&self) -> usize {
        self.inner.replicas
    }

    /// Reads from JetStream, waiting for the answer.
    fn read<T: Send + 'static, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let result = block_on(&self.handle, f(self.inner.clone()))?;
        self.inner.note(result.as_ref().err());
        result
    }

    /// Sends a write: `done` gets its result. Refused at once when too many are waiting.
    fn write<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(Arc<Inner>) -> F,
        done: Option<Done<T>>,
    ) -> Result<(), StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        if *self.inner.stop.borrow() {
            return Err(StoreError::Closed);
        }
        if self.inner.writes.fetch_add(1, Ordering::SeqCst) >= MAX_QUEUED_WRITES {
            self.inner.end_write();
            return Err(StoreError::Busy);
        }
        let inner = self.inner.clone();
        let fut = f(inner.clone());
        self.handle.spawn(async move {
            let started = std::time::Instant::now();
            let result = fut.await;
            inner.note(result.as_ref().err());
            if result.is_ok() {
                let mut c = inner.commits.lock().unwrap_or_else(|e| e.into_inner());
                c.count += 1;
                c.micros += started.elapsed().as_micros() as u64;
            }
            if let Some(done) = done {
                done(result);
            }
            inner.end_write();
        });
        Ok(())
    }
}

impl Inner {
    async fn connect(o: &Options) -> Result<Inner, String> {
        let mut connect = async_nats::ConnectOptions::new()
            .name(format!("herald {}", o.replica))
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        if let Some(creds) = &o.creds_file {
            connect = connect
                .credentials_file(creds)
                .await
                .map_err(|e| format!("cannot read the creds file {}: {e}", creds.display()))?;
        }
        if let Some(file) = &o.nkey_file {
            let seed = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the nkey file {}: {e}", file.display()))?;
            connect = connect.nkey(seed.trim().to_owned());
        }
        if let Some(ca) = &o.ca_file {
            connect = connect.add_root_certificates(ca.clone()).require_tls(true);
        }
        let servers = o
            .servers
            .iter()
            .map(|u| {
                u.parse::<async_nats::ServerAddr>()
                    .map_err(|e| format!("{u:?} is not a NATS server URL: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = connect
            .connect(servers)
            .await
            .map_err(|e| format!("cannot connect to NATS: {e}"))?;
        let js = jetstream::new(client.clone());
        let replicas = o.replicas.unwrap_or_else(|| {
            let info = client.server_info();
            if info.cluster.is_some() { 3 } else { 1 }
        });
        let work = ensure_stream(
            &js,
            "stream",
            stream::Config {
                name: WORK_STREAM.into(),
                subjects: vec![format!("{WORK_SUBJECT}.*")],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            },
        )
        .await?;
        let ids = stream::Config {
            name: IDS_STREAM.into(),
            subjects: vec![IDS_SUBJECT.into()],
            // Only the sequence matters: the last message is all it keeps.
            max_messages: 1,
            discard: stream::DiscardPolicy::Old,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        ensure_stream(&js, "stream", ids).await?;
        let mut stores = Vec::new();
        for (name, max_age) in [
            (RECORDS, Duration::ZERO),
            (DEAD, Duration::ZERO),
            (PROVIDERS, Duration::ZERO),
            (LEASES, LEASE_TTL),
            (REPLICAS, LEASE_TTL),
        ] {
            stores.push(open_bucket(&js, name, max_age, replicas).await?);
        }
        let [records, dead, providers, leases, live] =
            <[kv::Store; 5]>::try_from(stores).map_err(|_| "the buckets are missing".to_owned())?;
        let (stop, _) = watch::channel(false);
        Ok(Inner {
            client,
            js,
            work,
            records,
            dead,
            providers,
            leases,
            live,
            replica: o.replica.clone(),
            ids: tokio::sync::Mutex::new((0, 0)),
            held: Mutex::new(HashMap::new()),
            writes: AtomicUsize::new(0),
            written: Notify::new(),
            health: Mutex::new(Health::Ok),
            commits: Mutex::new(Commits::default()),
            disk: AtomicU64::new(0),
            stop,
            replicas,
            windows: tokio::sync::OnceCell::new(),
            counts: counts::Shared::default(),
            statuses: statuses::Heard::default(),
        })
    }

    /// Takes event key `key`'s duplicate window: a key in a bucket whose entries expire
    /// `interval` after they are made, as Flux's window starts at the first event.
    async fn take_window(&self, key: [u8; 32], interval: Duration) -> Result<bool, StoreError> {
        let windows = self.windows_of(interval).await?;
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        match tokio::time::timeout(REQUEST_TIMEOUT, windows.create(key, Bytes::new())).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Ok(Err(e)) => Err(storage("taking a duplicate window", e)),
            Err(_) => Err(storage(
                "taking a duplicate window",
                "JetStream did not answer in time",
            )),
        }
    }

    async fn forget_window(&self, key: [u8; 32], interval: Duration) -> Result<(), StoreError> {
        let windows = self.windows_of(interval).await?;
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        bounded("giving a duplicate window back", windows.delete(key)).await
    }

    /// The bucket of windows of `interval` (one per interval, so replicas started with
    /// different intervals do not share windows of the wrong length).
    async fn windows_of(&self, interval: Duration) -> Result<&kv::Store, StoreError> {
        self.windows
            .get_or_try_init(|| async {
                let name = format!("herald-windows-{}ms", interval.as_millis());
                open_bucket(&self.js, &name, interval, self.replicas)
                    .await
                    .map_err(|e| storage("opening the duplicate windows", e))
            })
            .await
    }
}

/// Creates a stream (or opens it as it is), waiting out a JetStream that is briefly away: a
/// leader being elected, or several replicas starting at once against a new cluster. Any other
/// error fails at once; that one after [`SETUP_PATIENCE`]. `kind` names it in the error: a
/// bucket's stream is `KV_<bucket>`.
async fn ensure_stream(
    js: &jetstream::Context,
    kind: &str,
    config: stream::Config,
) -> Result<stream::Stream, String> {
    let name = config
        .name
        .strip_prefix("KV_")
        .unwrap_or(&config.name)
        .to_owned();
    let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
    let mut wait = Duration::from_millis(500);
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(e) if not_yet(&e.kind()) && tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(%kind, %name, error = %e, "JetStream does not answer yet; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(format!("cannot create the {kind} {name}: {e}")),
        }
    }
}

/// Whether a stream could not be made only because JetStream is not there yet: no answer, no
/// JetStream server, one without a quorum yet ("temporarily unavailable"), or a meta leader
/// that does not see enough servers for the copies yet ("no suitable peers for placement",
/// while the last servers of a starting cluster join).
fn not_yet(kind: &jetstream::context::CreateStreamErrorKind) -> bool {
    use jetstream::ErrorCode;
    use jetstream::context::CreateStreamErrorKind as Kind;
    match kind {
        Kind::TimedOut | Kind::JetStreamUnavailable => true,
        Kind::JetStream(e) => matches!(
            e.error_code(),
            ErrorCode::CLUSTER_NOT_AVAILABLE | ErrorCode::CLUSTER_NO_PEERS
        ),
        _ => false,
    }
}

/// Opens a key-value bucket, creating its stream as the KV API would: the API's own creation
/// asks for account details in a newer server's form than 2.9 gives.
async fn open_bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, String> {
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_messages: -1,
        max_bytes: -1,
        max_message_size: -1,
        max_age,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        // Reads go to the stream's leader: a follower may lag, and a claim that read an old
        // record would skip or repeat a delivery.
        allow_direct: false,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    ensure_stream(js, "bucket", config).await?;
    js.get_key_value(name)
        .await
        .map_err(|e| format!("cannot open the bucket {name}: {e}"))
}

impl Inner {
    /// Tries a state change until it is written (JetStream away, a leader being elected) or
    /// the backend closes: a change that fails is kept and made once JetStream answers.
    async fn until_written<F, Fut>(
        &self,
        what: &'static str,
        mut attempt: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let mut wait = Duration::from_millis(100);
        let mut stop = self.stop.subscribe();
        loop {
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(e) if *stop.borrow() => return Err(e),
                Err(e) => {
                    self.note(Some(&e));
                    tracing::debug!(error = %e, what, "JetStream write failed; trying again");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    fn end_write(&self) {
        if self.writes.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.written.notify_waiters();
        }
    }

    /// Keeps [`Health`] up to date with the last request's result.
    fn note(&self, error: Option<&StoreError>) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        match (error, &*health) {
            (None, _) => *health = Health::Ok,
            (Some(StoreError::Busy | StoreError::Closed), _) => {}
            (Some(e), Health::Failing { since, .. }) => {
                *health = Health::Failing {
                    since: *since,
                    error: e.clone(),
                }
            }
            (Some(e), _) => {
                *health = Health::Failing {
                    since: now_ms(),
                    error: e.clone(),
                }
            }
        }
    }

    /// `n` consecutive ids from this replica's block, taking a new block when it runs out.
    async fn take_ids(&self, n: u64) -> Result<u64, StoreError> {
        if n > ID_BLOCK {
            return Err(storage(
                "numbering deliveries",
                format_args!("one event makes {n} deliveries, over the {ID_BLOCK} a block holds"),
            ));
        }
        let mut ids = self.ids.lock().await;
        if ids.1 - ids.0 < n {
            let ack = bounded(
                "taking a block of ids",
                self.js.publish(IDS_SUBJECT, Bytes::new()),
            )
            .await?;
            let block = bounded("taking a block of ids", ack).await?.sequence;
            let start = block
                .checked_mul(ID_BLOCK)
                .ok_or_else(|| storage("taking a block of ids", "the ids are used up"))?;
            *ids = (start, start + ID_BLOCK);
        }
        let first = ids.0;
        ids.0 += n;
        Ok(first)
    }

    async fn put_row(&self, id: u64, row: Vec<u8>) -> Result<(), StoreError> {
        bounded(
            "writing a delivery",
            self.records.put(record_key(id), Bytes::from(row)),
        )
        .await
        .map(drop)
    }

    /// A delivery's row; an empty one is the tombstone of a removed delivery.
    async fn get_row(&self, id: u64) -> Result<Option<Bytes>, StoreError> {
        bounded("reading a delivery", self.records.get(record_key(id))).await
    }

    async fn purge_key(
        &self,
        stream_of: &kv::Store,
        bucket: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        bounded(
            "removing a key",
            stream_of
                .stream
                .purge()
                .filter(format!("$KV.{bucket}.{key}")),
        )
        .await
        .map(drop)
    }

    /// Publishes a delivery to its partition; returns whether it was new (not a resend).
    async fn publish(
        &self,
        id: u64,
        record: &Record,
        row: Vec<u8>,
        msg_id: String,
    ) -> Result<bool, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, id.to_string().as_str());
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        let subject = format!("{WORK_SUBJECT}.{}", partition(&record.provider, record.key));
        let ack = bounded(
            "queueing a delivery",
            self.js
                .publish_with_headers(subject, headers, Bytes::from(row)),
        )
        .await?;
        let ack = bounded("queueing a delivery", ack).await?;
        Ok(!ack.duplicate)
    }

    /// Acks the message of a finished delivery this replica holds: it leaves the work stream.
    async fn finish_message(&self, id: u64) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(held) = held
            && let Err(e) = held.message.double_ack().await
        {
            tracing::debug!(delivery = id, error = %e, "cannot ack a delivery's message; the next holder of its partition skips it");
        }
    }

    /// The event bytes of a delivery, read back when the caller does not have them.
    async fn event_of(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(old) = self.get_row(id).await?.filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        Ok(split_row(id, &old)?.1.map(<[u8]>::to_vec))
    }

    async fn append(&self, rows: Vec<(Record, Vec<u8>, String)>) -> Result<u64, StoreError> {
        let first = self.take_ids(rows.len() as u64).await?;
        let mut writes = Vec::with_capacity(rows.len());
        for (i, (record, row, msg_id)) in rows.into_iter().enumerate() {
            let id = first + i as u64;
            writes.push(async move {
                // The record first: a claim that finds none knows its delivery was removed.
                self.put_row(id, row.clone()).await?;
                if record.state == State::Dead {
                    let key = dead_key(&record.provider, id);
                    bounded("indexing a dead delivery", self.dead.put(key, Bytes::new())).await?;
                } else if self.publish(id, &record, row, msg_id).await? {
                    self.counts.sent(&record);
                } else {
                    // Stored already (a resend): this id stays unused.
                    self.purge_key(&self.records, RECORDS, &record_key(id))
                        .await?;
                }
                Ok::<(), StoreError>(())
            });
        }
        for result in futures_util::future::join_all(writes).await {
            result?;
        }
        Ok(first)
    }

    async fn settle(&self, record: Record, from: Placement) -> Result<(), StoreError> {
        let id = record.id;
        let encoded = encode_record(&record);
        match record.state {
            State::Delivered => {
                self.put_row(id, row(&encoded, None)).await?;
                self.finish_message(id).await;
            }
            State::Dead => {
                let event = self.event_of(id).await?;
                self.put_row(id, row(&encoded, event.as_deref())).await?;
                let key = dead_key(&record.provider, id);
                bounded("indexing a dead delivery", self.dead.put(key, Bytes::new())).await?;
                self.finish_message(id).await;
            }
            State::Pending | State::Failed => {
                let event = self.event_of(id).await?;
                let new_row = row(&encoded, event.as_deref());
                self.put_row(id, new_row.clone()).await?;
                if let Placement::Finished(State::Dead, _) = from {
                    // Retried by hand: back in the work stream, for whichever replica holds
                    // its partition.
                    let key = dead_key(&record.provider, id);
                    self.purge_key(&self.dead, DEAD, &key).await?;
                    let msg_id = format!("retry-{id}-{}", record.clock_from);
                    if self.publish(id, &record, new_row, msg_id).await? {
                        self.counts.sent(&record);
                    }
                }
            }
        }
        Ok(())
    }

    async fn remove(&self, id: u64) -> Result<(), StoreError> {
        if let Some(old) = self.get_row(id).await?.filter(|r| !r.is_empty()) {
            let (record, _) = split_row(id, &old)?;
            let record = decode_record(id, record)?;
            self.purge_key(&self.dead, DEAD, &dead_key(&record.provider, id))
                .await?;
        }
        // A tombstone, not a purge: a claim that finds no record at all delivers the row its
        // message carries (JetStream may lose a write when a server dies), one that finds the
        // tombstone knows the delivery was removed.
        self.put_row(id, Vec::new()).await?;
        self.finish_message(id).await;
        Ok(())
    }

    /// Calls `f` with every row of `herald-records` (its latest value; an empty one is a
    /// tombstone), oldest change first, until `f` says stop. A reading that stalls (a server
    /// slow under load, or rows purged while it ran) goes on from after the last row read.
    async fn scan(
        &self,
        mut f: impl FnMut(u64, &[u8], jetstream::message::Info<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut next = 1;
        for _ in 0..SCAN_ATTEMPTS {
            match self.scan_from(next, &mut f).await? {
                Some(stalled_at) => next = stalled_at,
                None => return Ok(()),
            }
        }
        Err(storage(
            "reading the records",
            "JetStream did not answer in time",
        ))
    }

    /// One reading of the rows from stream sequence `start`: `Some(sequence to go on from)`
    /// when no row came in time.
    async fn scan_from(
        &self,
        start: u64,
        f: &mut impl FnMut(u64, &[u8], jetstream::message::Info<'_>) -> Result<bool, StoreError>,
    ) -> Result<Option<u64>, StoreError> {
        let consumer = bounded(
            "reading the records",
            self.records
                .stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: format!("$KV.{RECORDS}.>"),
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    },
                    ..Default::default()
                }),
        )
        .await?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(None);
        }
        let mut messages = bounded("reading the records", consumer.messages()).await?;
        let mut next = start;
        loop {
            let Ok(message) = tokio::time::timeout(REQUEST_TIMEOUT, messages.next()).await else {
                return Ok(Some(next));
            };
            let Some(message) = message else {
                return Ok(None);
            };
            let message = message.map_err(|e| storage("reading the records", e))?;
            let info = message
                .info()
                .map_err(|e| storage("reading the records", e))?;
            let pending = info.pending;
            next = info.stream_sequence + 1;
            let id = message
                .subject
                .as_str()
                .rsplit('.')
                .next()
                .and_then(|k| k.strip_prefix('d'))
                .and_then(|k| k.parse::<u64>().ok());
            if let Some(id) = id
                && !f(id, &message.payload, info)?
            {
                return Ok(None);
            }
            if pending == 0 {
                return Ok(None);
            }
        }
    }

    async fn load(&self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        self.scan(|id, bytes, _| {
            if bytes.is_empty() {
                return Ok(true);
            }
            let (record, _) = split_row(id, bytes)?;
            let record = decode_record(id, record)?;
            if record.state.is_active() {
                loaded.active.push(record);
            }
            Ok(true)
        })
        .await?;
        loaded.active.sort_by_key(|r| r.id);
        for key in self.dead_keys().await? {
            *loaded.dead.entry(key.0).or_default() += 1;
        }
        let mut keys = bounded("reading the Provider statuses", self.providers.keys()).await?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| storage("reading the Provider statuses", e))?;
            // This replica's own: the others' are merged in at each report.
            let Some((provider, Some(replica))) = statuses::parse_key(&key) else {
                continue;
            };
            if replica != self.replica {
                continue;
            }
            let value = bounded("reading a Provider status", self.providers.get(key)).await?;
            if let Some(status) = value.as_deref().and_then(decode_status) {
                loaded.providers.insert(provider, status);
            }
        }
        Ok(loaded)
    }

    /// Every dead delivery: (Provider, id).
    async fn dead_keys(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut out = Vec::new();
        let mut keys = bounded("reading the dead letters", self.dead.keys()).await?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| storage("reading the dead letters", e))?;
            let Some((token, id)) = key.split_once('.') else {
                continue;
            };
            if let (Some(provider), Ok(id)) = (provider_of_token(token), id.parse::<u64>()) {
                out.push((provider, id));
            }
        }
        out.sort_by_key(|(_, id)| *id);
        Ok(out)
    }

    async fn prune(
        &self,
        delivered_before: u64,
        dead_before: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut gone = Vec::new();
        let mut tombstones = Vec::new();
        // A removed delivery's tombstone matters only while its message may still be read:
        // once every message older than the tombstone has left the work stream, it goes too.
        let work = bounded("reading the work stream", self.work.get_info()).await?;
        let oldest_work = match work.state.messages {
            0 => i128::MAX,
            _ => work.state.first_timestamp.unix_timestamp_nanos(),
        };
        // Records come in the order of their last change: past the later cut, none is due.
        let last_cut = i128::from(delivered_before.max(dead_before)) * 1_000_000;
        self.scan(|id, bytes, info| {
            let changed = info.published.unix_timestamp_nanos();
            if changed > last_cut {
                return Ok(false);
            }
            if bytes.is_empty() {
                if changed < oldest_work {
                    tombstones.push(id);
                }
                return Ok(gone.len() + tombstones.len() < limit);
            }
            let (record, _) = split_row(id, bytes)?;
            let record = decode_record(id, record)?;
            let finished = record.finished_at.unwrap_or(u64::MAX);
            let due = match record.state {
                State::Delivered => finished < delivered_before,
                State::Dead => finished < dead_before,
                State::Pending | State::Failed => false,
            };
            if due {
                gone.push(record);
            }
            Ok(gone.len() + tombstones.len() < limit)
        })
        .await?;
        for &id in &tombstones {
            self.purge_key(&self.records, RECORDS, &record_key(id))
                .await?;
        }
        for record in &gone {
            if record.state == State::Dead {
                self.purge_key(&self.dead, DEAD, &dead_key(&record.provider, record.id))
                    .await?;
            }
            self.purge_key(&self.records, RECORDS, &record_key(record.id))
                .await?;
        }
        Ok(gone.len() + tombstones.len())
    }
}

impl Backend for JetStream {
    fn append(&self, deliveries: &[Prepared], done: Done<u64>) -> Result<(), StoreError> {
        let rows: Vec<(Record, Vec<u8>, String)> = deliveries
            .iter()
            .map(|d| {
                let encoded = encode_record(&d.record);
                let row = super::codec::new_row(&encoded, &d.event);
                let msg_id = message_id(&d.record, &row);
                (d.record.clone(), row, msg_id)
            })
            .collect();
        let n = rows.len() as u64;
        self.write(
            move |inner| async move {
                let first = inner.append(rows).await?;
                inner
                    .commits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .appended += n;
                Ok(first)
            },
            Some(done),
        )
    }

    fn settle(
        &self,
        record: &Record,
        from: Placement,
        done: Option<Done<()>>,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(
            move |inner| async move {
                let again = || inner.settle(record.clone(), from);
                inner
                    .until_written("recording a delivery's state", again)
                    .await
            },
            done,
        )
    }

    fn remove(&self, id: u64, _from: Placement, done: Option<Done<()>>) -> Result<(), StoreError> {
        self.write(
            move |inner| async move {
                inner
                    .until_written("removing a delivery", || inner.remove(id))
                    .await
            },
            done,
        )
    }

    fn save_status(&self, provider: &str, status: &ProviderStatus) -> Result<(), StoreError> {
        let key = statuses::key(provider, &self.inner.replica);
        let value = Bytes::from(encode_status(status));
        self.write::<(), _>(
            move |inner| async move {
                bounded("saving a Provider status", inner.providers.put(key, value))
                    .await
                    .map(drop)
            },
            None,
        )
    }

    fn prune(
        &self,
        delivered_before: u64,
        dead_before: u64,
        limit: usize,
        done: Done<usize>,
    ) -> Result<(), StoreError> {
        self.write(
            move |inner| async move { inner.prune(delivered_before, dead_before, limit).await },
            Some(done),
        )
    }

    fn flush(&self, done: Done<()>) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        self.handle.spawn(async move {
            loop {
                let written = inner.written.notified();
                if inner.writes.load(Ordering::SeqCst) == 0 {
                    break;
                }
                written.await;
            }
            done(Ok(()));
        });
        Ok(())
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        self.read(|inner| async move { inner.load().await })
    }

    fn get(&self, id: u64) -> Result<Option<Record>, StoreError> {
        Ok(self.get_with_event(id)?.map(|(r, _)| r))
    }

    fn get_with_event(&self, id: u64) -> Result<Option<(Record, Option<Event>)>, StoreError> {
        let row = self.read(|inner| async move { inner.get_row(id).await })?;
        let Some(row) = row.filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let (record, event) = split_row(id, &row)?;
        let event = event.map(|e| decode_event(id, e)).transpose()?;
        Ok(Some((decode_record(id, record)?, event)))
    }

    fn list(
        &self,
        limit: usize,
        keep: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<Vec<Record>, StoreError> {
        let rows = self.read(|inner| async move {
            let mut rows = Vec::new();
            inner
                .scan(|id, bytes, _| {
                    if !bytes.is_empty() {
                        rows.push((id, split_row(id, bytes)?.0.to_vec()));
                    }
                    Ok(true)
                })
                .await?;
            Ok(rows)
        })?;
        let mut records = rows
            .into_iter()
            .map(|(id, r)| decode_record(id, &r))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| std::cmp::Reverse(r.id));
        Ok(records
            .into_iter()
            .filter(|r| keep(r))
            .take(limit)
            .collect())
    }

    fn dead_ids(&self, provider: Option<&str>) -> Result<Vec<u64>, StoreError> {
        let keys = self.read(|inner| async move { inner.dead_keys().await })?;
        Ok(keys
            .into_iter()
            .filter(|(p, _)| provider.is_none_or(|want| want == p))
            .map(|(_, id)| id)
            .collect())
    }

    fn health(&self) -> Health {
        if self.inner.client.connection_state() != Connection::Connected {
            let since = match &*self.inner.health.lock().unwrap_or_else(|e| e.into_inner()) {
                Health::Failing { since, .. } => *since,
                _ => now_ms(),
            };
            return Health::Failing {
                since,
                error: storage("reaching JetStream", "not connected to NATS"),
            };
        }
        self.inner
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn disk_bytes(&self) -> u64 {
        self.inner.disk.load(Ordering::SeqCst)
    }

    fn commits(&self) -> Commits {
        *self.inner.commits.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_window(&self, key: [u8; 32], interval: Duration) -> Option<super::WindowTake> {
        let inner = self.inner.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(inner.take_window(key, interval).await);
        });
        Some(Box::pin(async move {
            rx.await.map_err(|_| StoreError::Stopped)?
        }))
    }

    fn forget_window(&self, key: [u8; 32], interval: Duration) {
        let inner = self.inner.clone();
        self.handle.spawn(async move {
            if let Err(e) = inner.forget_window(key, interval).await {
                tracing::warn!(error = %e, "cannot give a duplicate window back; the emitter's retry may be answered 429 until it ends");
            }
        });
    }

    fn shared(&self) -> bool {
        true
    }

    fn start_claims(&self, claims: Claims) {
        let inner = self.inner.clone();
        self.handle.spawn(leases::run(inner, claims));
    }

    fn report_load(&self, source: LoadSource) {
        self.inner.counts.report_from(source);
    }

    fn cluster_load(&self) -> Option<Arc<ClusterLoad>> {
        Some(self.inner.counts.view(&self.inner.replica))
    }

    fn other_statuses(&self) -> Option<OtherStatuses> {
        Some(self.inner.statuses.view())
    }

    fn dead_counts(&self) -> Option<Result<HashMap<String, u64>, StoreError>> {
        let keys = self.read(|inner| async move { inner.dead_keys().await });
        Some(keys.map(|keys| {
            let mut counts = HashMap::new();
            for (provider, _) in keys {
                *counts.entry(provider).or_default() += 1;
            }
            counts
        }))
    }

    fn close(&self) {
        let _ = self.inner.stop.send(true);
        let inner = self.inner.clone();
        let _ = block_on(&self.handle, async move {
            let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
            while inner.writes.load(Ordering::SeqCst) > 0 {
                let written = inner.written.notified();
                if tokio::time::timeout_at(deadline, written).await.is_err() {
                    break;
                }
            }
            leases::give_back(&inner).await;
            counts::leave(&inner).await;
            let _ = inner.client.flush().await;
        });
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

/// `Nats-Msg-Id` of a new delivery: the same Provider, Alert and event bytes make the same id,
/// so a resend within the duplicate window is stored once.
fn message_id(record: &Record, row: &[u8]) -> String {
    use sha2::Digest;
    let event = split_row(0, row)
        .ok()
        .and_then(|(_, e)| e)
        .unwrap_or_default();
    let mut h = sha2::Sha256::new();
    for part in [record.provider.as_bytes(), record.alert.as_bytes(), event] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Partition leases and the consumers of the partitions held.
mod leases {
    use super::*;

    /// The partitions this replica holds: lease revision and the stop of its reader.
    type Owned = HashMap<u32, (u64, Reader)>;

    /// Partitions given up but still leased until their deliveries in flight here are done:
    /// lease revision, whether they are, and since when this waits.
    type Draining = HashMap<
        u32,
        (
            u64,
            Arc<std::sync::atomic::AtomicBool>,
            tokio::time::Instant,
        ),
    >;

    /// The longest a given-up partition stays leased while its deliveries in flight finish
    /// (an attempt is bounded by its Provider's timeout; this bounds a stuck one too).
    const MAX_DRAIN: Duration = Duration::from_secs(120);

    fn lease_key(p: u32) -> String {
        format!("p{p}")
    }

    /// Renews, takes and gives back leases until the backend closes.
    pub(super) async fn run(inner: Arc<Inner>, claims: Claims) {
        let mut owned: Owned = HashMap::new();
        let mut draining: Draining = HashMap::new();
        let mut stop = inner.stop.subscribe();
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            // A round is a write too: JetStream back answers it, and readiness follows.
            match round(&inner, &claims, &mut owned, &mut draining).await {
                Ok(()) => inner.note(None),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the outbox partitions; retrying");
                    inner.note(Some(&e));
                }
            }
        }
        for (p, (_, reader)) in owned.drain() {
            reader.stop();
            claims(Claim::Release(share_of(p), Box::new(|| {})));
        }
    }

    /// Gives every lease of this replica back (at close), so that others take over at once.
    pub(super) async fn give_back(inner: &Inner) {
        let give = async {
            let Ok(mut keys) = inner.leases.keys().await else {
                return;
            };
            while let Some(Ok(key)) = keys.next().await {
                if let Ok(Some(holder)) = inner.leases.get(&key).await
                    && holder == inner.replica.as_bytes()
                {
                    let _ = inner.leases.delete(&key).await;
                }
            }
        };
        // Leases not given back expire by themselves.
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, give).await;
    }

    fn share_of(p: u32) -> super::super::Share {
        Arc::new(move |provider, key| partition(provider, key) == p)
    }

    async fn round(
        inner: &Arc<Inner>,
        claims: &Claims,
        owned: &mut Owned,
        draining: &mut Draining,
    ) -> Result<(), StoreError> {
        let me = Bytes::from(inner.replica.clone());
        // Leases first, all at once: the rest may wait on a server that is away. A lease that
        // cannot be renewed is given up like one another replica took: it expires on its own,
        // and reading on could overlap with its next holder.
        let renewals = owned.iter_mut().map(|(&p, (revision, _))| {
            let me = &me;
            async move { (p, renew(inner, me, p, revision).await) }
        });
        let mut unreachable = None;
        for (p, renewed) in futures_util::future::join_all(renewals).await {
            match renewed {
                Ok(true) => continue,
                Ok(false) => tracing::warn!(
                    partition = p,
                    "outbox partition lost; another replica takes it"
                ),
                Err(e) => unreachable = Some(e),
            }
            drop_partition(inner, claims, owned, p, Box::new(|| {}));
        }
        renew_draining(inner, &me, draining).await;
        if let Some(e) = unreachable {
            // Not ready until a round goes through; the next one tries again.
            return Err(e);
        }
        restart_broken(inner, claims, owned).await;
        // One entry per replica seen within the lease time. When that bucket cannot be read,
        // take what is free: leases keep partitions single-held, and the next round that can
        // count gives back what is over the share.
        let counted = async {
            counts::announce(inner).await?;
            bounded("counting the replicas", inner.live.stream.get_info()).await
        };
        let live = match counted.await {
            Ok(info) => {
                let heard = counts::gather(inner).await;
                if let Err(e) = &heard {
                    tracing::debug!(error = %e, "cannot read the other replicas' loads; the last ones stand");
                }
                if let Err(e) = statuses::gather(inner, heard.is_ok()).await {
                    tracing::debug!(error = %e, "cannot read the other replicas' Provider statuses; the last ones stand");
                }
                info.state.messages.clamp(1, u64::from(PARTITIONS)) as u32
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the replicas; taking free partitions");
                1
            }
        };
        let fair = PARTITIONS.div_ceil(live) as usize;
        while owned.len() > fair {
            let Some(&p) = owned.keys().max() else { break };
            let idle = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = idle.clone();
            let revision = owned.get(&p).map_or(0, |(r, _)| *r);
            drop_partition(
                inner,
                claims,
                owned,
                p,
                Box::new(move || flag.store(true, Ordering::SeqCst)),
            );
            draining.insert(p, (revision, idle, tokio::time::Instant::now()));
        }
        for p in 0..PARTITIONS {
            if owned.len() >= fair {
                break;
            }
            if owned.contains_key(&p) || draining.contains_key(&p) {
                continue;
            }
            let created = inner.leases.create(lease_key(p), me.clone());
            let revision = match tokio::time::timeout(REQUEST_TIMEOUT, created).await {
                Ok(Ok(revision)) => Some(revision),
                Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => None,
                Ok(Err(e)) => return Err(storage("taking a lease", e)),
                Err(_) => {
                    return Err(storage(
                        "taking a lease",
                        "JetStream did not answer in time",
                    ));
                }
            };
            if let Some(revision) = revision {
                match read_partition(inner.clone(), claims.clone(), p).await {
                    Ok(reader) => {
                        tracing::info!(partition = p, "outbox partition taken");
                        owned.insert(p, (revision, reader));
                        inner.counts.hold(p, true);
                    }
                    Err(e) => {
                        let _ = inner.leases.delete(lease_key(p)).await;
                        return Err(e);
                    }
                }
            }
        }
        if let Ok(info) = inner.work.get_info().await {
            inner.disk.store(info.state.bytes, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Renews this replica's lease of partition `p` at `revision`: false when another replica
    /// holds it, an error when JetStream does not answer.
    async fn renew(
        inner: &Inner,
        me: &Bytes,
        p: u32,
        revision: &mut u64,
    ) -> Result<bool, StoreError> {
        let update = inner.leases.update(lease_key(p), me.clone(), *revision);
        match tokio::time::timeout(REQUEST_TIMEOUT, update).await {
            Ok(Ok(r)) => {
                *revision = r;
                Ok(true)
            }
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Ok(Err(e)) => Err(storage("renewing a lease", e)),
            Err(_) => Err(storage(
                "renewing a lease",
                "JetStream did not answer in time",
            )),
        }
    }

    /// Stops reading partition `p` and tells the engine; `idle` runs once none of its
    /// deliveries is in flight here.
    fn drop_partition(
        inner: &Inner,
        claims: &Claims,
        owned: &mut Owned,
        p: u32,
        idle: super::super::Idle,
    ) {
        if let Some((_, reader)) = owned.remove(&p) {
            reader.stop();
        }
        inner.counts.hold(p, false);
        claims(Claim::Release(share_of(p), idle));
        inner
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, h| h.partition != p);
    }

    /// Reads again, from its start, every held partition whose reader stopped on a gap or an
    /// error (its lease was just renewed: it is still this replica's). What the engine holds
    /// already is skipped, so the order holds.
    async fn restart_broken(inner: &Arc<Inner>, claims: &Claims, owned: &mut Owned) {
        let broken: Vec<u32> = owned
            .iter()
            .filter(|(_, (_, r))| r.broken())
            .map(|(p, _)| *p)
            .collect();
        for p in broken {
            match read_partition(inner.clone(), claims.clone(), p).await {
                Ok(reader) => {
                    if let Some((_, old)) = owned.get_mut(&p) {
                        old.stop();
                        *old = reader;
                    }
                }
                Err(e) => {
                    tracing::debug!(partition = p, error = %e, "cannot read the partition again yet")
                }
            }
        }
    }

    /// Keeps the leases of partitions given up until their deliveries in flight are done (or
    /// [`MAX_DRAIN`] passed), then frees them for the other replicas.
    async fn renew_draining(inner: &Inner, me: &Bytes, draining: &mut Draining) {
        let mut done = Vec::new();
        for (&p, (revision, idle, since)) in draining.iter_mut() {
            if idle.load(Ordering::SeqCst) || since.elapsed() > MAX_DRAIN {
                done.push(p);
                continue;
            }
            if !matches!(renew(inner, me, p, revision).await, Ok(true)) {
                done.push(p);
            }
        }
        for p in done {
            draining.remove(&p);
            let _ = bounded("freeing a lease", inner.leases.delete(lease_key(p))).await;
        }
    }

    /// The reader of a held partition.
    pub(super) struct Reader {
        stop: watch::Sender<bool>,
        /// Whether it may still hand deliveries to the engine: cleared, under its lock, before
        /// the engine is told the partition is released, so that no claim comes after that.
        active: Arc<Mutex<bool>>,
        /// It stopped on a gap or an error: the partition is read again from its start.
        broken: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Reader {
        /// Stops it for good; after this it hands the engine nothing more.
        pub(super) fn stop(&self) {
            *self.active.lock().unwrap_or_else(|e| e.into_inner()) = false;
            let _ = self.stop.send(true);
        }

        pub(super) fn broken(&self) -> bool {
            self.broken.load(Ordering::SeqCst)
        }
    }

    /// Starts reading partition `p` from its first message not acked yet, through a consumer
    /// made afresh (which ends any reading of it elsewhere).
    pub(super) async fn read_partition(
        inner: Arc<Inner>,
        claims: Claims,
        p: u32,
    ) -> Result<Reader, StoreError> {
        let consumer = fresh_consumer(&inner, p).await?;
        let mut messages = bounded("reading a partition", consumer.messages()).await?;
        let (stop_tx, mut stop) = watch::channel(false);
        let reader = Reader {
            stop: stop_tx,
            active: Arc::new(Mutex::new(true)),
            broken: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let (active, broken) = (reader.active.clone(), reader.broken.clone());
        tokio::spawn(async move {
            // Deliveries of a consumer are numbered: a gap is a message lost on the way (a
            // server that died), and reading on would put the ones after it first.
            let mut last = 0u64;
            // The newest stream position claimed: claims come in stream order, which is the
            // commit order of each key. One behind it would go out after newer ones of its key.
            let mut newest = 0u64;
            let mut warned = false;
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    _ = stop.changed() => return,
                };
                let why = match next {
                    Some(Ok(message)) => {
                        let (seq, at) = message
                            .info()
                            .map_or((0, 0), |i| (i.consumer_sequence, i.stream_sequence));
                        if last != 0 && seq != last + 1 {
                            "a message was lost on the way".to_owned()
                        } else {
                            last = seq;
                            if handle(&inner, &claims, &active, &mut stop, message).await {
                                if at < newest && !warned {
                                    warned = true;
                                    tracing::warn!(
                                        partition = p,
                                        position = at,
                                        newest,
                                        "a delivery was claimed behind newer ones of its partition; its key's order may not hold"
                                    );
                                }
                                newest = newest.max(at);
                            }
                            continue;
                        }
                    }
                    Some(Err(e)) => e.to_string(),
                    None => "the consumer ended".to_owned(),
                };
                tracing::debug!(
                    partition = p,
                    why,
                    "reading the partition again from its start"
                );
                broken.store(true, Ordering::SeqCst);
                return;
            }
        });
        Ok(reader)
    }

    /// Tries to make a fresh consumer of partition `p` this many times before the round
    /// gives up (the next one tries again).
    const FRESH_ATTEMPTS: u32 = 5;

    /// The consumer `part-<p>`, made afresh: it delivers every message not acked yet, oldest
    /// first.
    ///
    /// Creating a durable consumer whose name is taken, with the same configuration, answers
    /// the one there. When the deletion before it did not go through (a server away, a
    /// deletion not yet agreed on by the cluster), that consumer's pointer is past the
    /// messages an earlier reader took and never acked: they would come back only after
    /// [`REDELIVER_AFTER`], behind newer ones of the same keys. So a consumer that has
    /// delivered anything is deleted and made again.
    pub(super) async fn fresh_consumer(
        inner: &Inner,
        p: u32,
    ) -> Result<jetstream::consumer::Consumer<consumer::pull::Config>, StoreError> {
        let config = consumer_config(p);
        let name = config.durable_name.clone().unwrap_or_default();
        for attempt in 1..=FRESH_ATTEMPTS {
            let _ = bounded("re-reading a partition", inner.work.delete_consumer(&name)).await;
            let consumer = bounded(
                "reading a partition",
                inner.work.create_consumer(config.clone()),
            )
            .await?;
            let info = consumer.cached_info();
            if is_fresh(info) {
                return Ok(consumer);
            }
            tracing::debug!(
                partition = p,
                attempt,
                delivered = info.delivered.consumer_sequence,
                "the partition's earlier consumer is still there; deleting it again"
            );
            tokio::time::sleep(Duration::from_millis(200) * attempt).await;
        }
        Err(storage(
            "reading a partition",
            "its earlier consumer could not be deleted",
        ))
    }

    /// How partition `p` is read: the durable consumer `part-<p>`.
    pub(super) fn consumer_config(p: u32) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(format!("part-{p}")),
            filter_subject: format!("{WORK_SUBJECT}.{p}"),
            ack_policy: consumer::AckPolicy::Explicit,
            // A message not acked within this is sent again (and skipped here while this
            // replica holds it).
            ack_wait: REDELIVER_AFTER,
            max_ack_pending: 100_000,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        }
    }

    /// Whether a consumer has delivered nothing yet.
    pub(super) fn is_fresh(info: &consumer::Info) -> bool {
        info.delivered.consumer_sequence == 0 && info.num_ack_pending == 0
    }

    /// One message of a held partition: its delivery as last recorded goes to the engine.
    /// Returns whether it went (not held here already, still to make, the reader not stopped).
    async fn handle(
        inner: &Inner,
        claims: &Claims,
        active: &Mutex<bool>,
        stop: &mut watch::Receiver<bool>,
        message: jetstream::Message,
    ) -> bool {
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(ID_HEADER))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        let Some(id) = id else {
            let _ = message.ack().await;
            return false;
        };
        if inner
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
        {
            return false;
        }
        // Read until it works: the deliveries behind this one in the partition wait, so that
        // their order holds.
        let mut wait = Duration::from_millis(100);
        let current = loop {
            match inner.get_row(id).await {
                Ok(row) => break row,
                Err(e) => {
                    tracing::debug!(delivery = id, error = %e, "cannot read a claimed delivery; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return false,
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        };
        // No record at all: the write JetStream acknowledged was lost (a server died); the
        // message carries the row as accepted. An empty row is a removed delivery's tombstone.
        let row = match &current {
            Some(row) if row.is_empty() => None,
            Some(row) => Some(&row[..]),
            None => {
                tracing::warn!(
                    delivery = id,
                    "a claimed delivery has no record; it is delivered as accepted"
                );
                Some(&message.payload[..])
            }
        };
        let claimed = row.map(|row| -> Result<_, StoreError> {
            let (record, event) = split_row(id, row)?;
            let record = decode_record(id, record)?;
            let event = event.map(|e| decode_event(id, e)).transpose()?;
            Ok((record, event))
        });
        match claimed {
            Some(Ok((record, Some(event)))) if record.state.is_active() => {
                let partition = partition(&record.provider, record.key);
                let still = active.lock().unwrap_or_else(|e| e.into_inner());
                if *still {
                    inner
                        .held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, Held { message, partition });
                    claims(Claim::Deliver(Box::new(record), Arc::new(event)));
                }
                *still
            }
            Some(Err(e)) => {
                tracing::error!(delivery = id, error = %e, "a claimed delivery is unreadable; it is skipped");
                let _ = message.ack().await;
                false
            }
            // Removed, or finished already (by an earlier holder).
            _ => {
                let _ = message.ack().await;
                false
            }
        }
    }
}

/// The counts replicas publish in their heartbeats (`herald-replicas`, key the replica's
/// name, value its [`super::Load`] in the codec's form), and what this replica makes of the
/// others'.
///
/// A delivery this replica accepts for a partition another replica holds is counted here "in
/// transit" from its acceptance until every other live replica has written a heartbeat after
/// this replica's next one (heartbeat revisions order them): by then its holder has claimed it
/// and counts it. So the cluster's count is never low by what was just accepted, and may be
/// high by it for about one heartbeat interval ([`RENEW_EVERY`]).
mod counts {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicU32;

    use super::super::Load;
    use super::super::codec::{decode_load, encode_load};
    use super::*;

    /// What this replica accepted for partitions others hold, in batches by heartbeat: each
    /// with the revision of this replica's first heartbeat written after it (`None`: not yet).
    #[derive(Debug, Default)]
    pub(super) struct Transit {
        batches: VecDeque<(Option<u64>, Load)>,
    }

    impl Transit {
        pub(super) fn add(&mut self, provider: &str, provider_type: &str) {
            if !matches!(self.batches.back(), Some((None, _))) {
                self.batches.push_back((None, Load::default()));
            }
            if let Some((_, load)) = self.batches.back_mut() {
                load.add_pending(provider, provider_type, 1);
            }
        }

        /// This replica's heartbeat was written at `revision`.
        pub(super) fn seal(&mut self, revision: u64) {
            if let Some((at @ None, _)) = self.batches.back_mut() {
                *at = Some(revision);
            }
        }

        /// Every other replica's last heartbeat is at `oldest` or later: the batches sealed
        /// before it are counted by their holders now.
        pub(super) fn settle(&mut self, oldest: u64) {
            while matches!(self.batches.front(), Some((Some(at), _)) if *at < oldest) {
                self.batches.pop_front();
            }
        }

        pub(super) fn load(&self) -> Load {
            let mut sum = Load::default();
            for (_, load) in &self.batches {
                sum.merge(load);
            }
            sum
        }
    }

    /// The others' last heartbeats as last read, and the view handed out (`None` once
    /// something changed).
    #[derive(Debug, Default)]
    struct Heard {
        read_at: Option<std::time::Instant>,
        others: Arc<ClusterLoad>,
        view: Option<Arc<ClusterLoad>>,
    }

    #[derive(Default)]
    pub(super) struct Shared {
        source: OnceLock<LoadSource>,
        /// One bit per partition read here: what is appended to those the engine counts.
        holding: AtomicU32,
        transit: Mutex<Transit>,
        heard: Mutex<Heard>,
    }

    impl Shared {
        pub(super) fn report_from(&self, source: LoadSource) {
            let _ = self.source.set(source);
        }

        /// This replica starts or stops reading `partition`.
        pub(super) fn hold(&self, partition: u32, held: bool) {
            let bit = 1u32 << (partition % PARTITIONS);
            if held {
                self.holding.fetch_or(bit, Ordering::SeqCst);
            } else {
                self.holding.fetch_and(!bit, Ordering::SeqCst);
            }
        }

        /// Whether this replica reads `partition` (its engine counts what is in it).
        pub(super) fn holds(&self, partition: u32) -> bool {
            self.holding.load(Ordering::SeqCst) & (1u32 << (partition % PARTITIONS)) != 0
        }

        /// A delivery is in the work stream: counted in transit unless this replica reads
        /// its partition.
        pub(super) fn sent(&self, record: &Record) {
            if self.holds(partition(&record.provider, record.key)) {
                return;
            }
            lock(&self.transit).add(&record.provider, &record.provider_type);
            lock(&self.heard).view = None;
        }

        /// The others' loads (none once the last reading is older than a heartbeat lives)
        /// and what is in transit.
        pub(super) fn view(&self, me: &str) -> Arc<ClusterLoad> {
            let mut heard = lock(&self.heard);
            // Stale, or never read yet (the default view names no replica).
            if heard.read_at.is_some_and(|at| at.elapsed() > LEASE_TTL) || heard.others.me != me {
                heard.read_at = None;
                heard.others = Arc::new(ClusterLoad::new(
                    me.to_owned(),
                    BTreeMap::new(),
                    Load::default(),
                ));
                heard.view = None;
            }
            if let Some(view) = &heard.view {
                return view.clone();
            }
            let view = Arc::new(heard.others.with_transit(lock(&self.transit).load()));
            heard.view = Some(view.clone());
            view
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes this replica's heartbeat with its current load.
    pub(super) async fn announce(inner: &Inner) -> Result<(), StoreError> {
        let load = inner.counts.source.get().map(|f| f()).unwrap_or_default();
        let revision = bounded(
            "announcing this replica",
            inner
                .live
                .put(&inner.replica, Bytes::from(encode_load(&load))),
        )
        .await?;
        lock(&inner.counts.transit).seal(revision);
        Ok(())
    }

    /// Reads the other live replicas' heartbeats.
    pub(super) async fn gather(inner: &Inner) -> Result<(), StoreError> {
        let read = async {
            let mut others = BTreeMap::new();
            let mut oldest = u64::MAX;
            let mut keys = bounded("reading the replicas", inner.live.keys()).await?;
            while let Some(key) = keys.next().await {
                let key = key.map_err(|e| storage("reading the replicas", e))?;
                if key == inner.replica {
                    continue;
                }
                let entry = bounded("reading a replica's load", inner.live.entry(&key)).await?;
                if let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) {
                    oldest = oldest.min(entry.revision);
                    // Another version's heartbeat counts for nothing.
                    others.insert(key, decode_load(&entry.value).unwrap_or_default());
                }
            }
            Ok::<_, StoreError>((others, oldest))
        };
        let (others, oldest) = tokio::time::timeout(REQUEST_TIMEOUT, read)
            .await
            .map_err(|_| storage("reading the replicas", "JetStream did not answer in time"))??;
        lock(&inner.counts.transit).settle(oldest);
        let mut heard = lock(&inner.counts.heard);
        heard.read_at = Some(std::time::Instant::now());
        heard.others = Arc::new(ClusterLoad::new(
            inner.replica.clone(),
            others,
            Load::default(),
        ));
        heard.view = None;
        Ok(())
    }

    /// At close: a last heartbeat that holds nothing, so that the others stop counting what
    /// they take over from this replica at once.
    pub(super) async fn leave(inner: &Inner) {
        let empty = Bytes::from(encode_load(&Load::default()));
        let _ = bounded("leaving", inner.live.put(&inner.replica, empty)).await;
    }
}

/// Provider statuses in `herald-providers`: each replica saves its own under key
/// `<provider hex>.<replica hex>`, and reads the others' at each heartbeat round, for the
/// status API to merge with its own ([`super::status::merge`]). Reading is skipped while the
/// bucket has not changed (its stream's last sequence). A replica that has left (no
/// heartbeat in `herald-replicas`) keeps counting until its status is [`STATUS_KEEP`] old (by
/// its latest outcome), and then whichever replica sees that first purges its key: pod names
/// change at every rollout, and the keys would pile up. A key of the form before (the
/// Provider's alone, written by any replica) is read as one of a replica that has left.
mod statuses {
    use std::collections::BTreeSet;

    use super::*;

    /// The others' statuses as last read: the bucket's last sequence then, every key read
    /// (but this replica's) with its Provider, replica and status, and the view handed out.
    #[derive(Debug, Default)]
    pub(super) struct Heard(Mutex<Read>);

    #[derive(Debug, Default)]
    struct Read {
        sequence: Option<u64>,
        entries: Vec<Saved>,
        view: OtherStatuses,
    }

    #[derive(Debug, Clone)]
    struct Saved {
        key: String,
        provider: String,
        replica: Option<String>,
        status: ProviderStatus,
    }

    impl Heard {
        pub(super) fn view(&self) -> OtherStatuses {
            lock(&self.0).view.clone()
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of `replica`'s status of `provider`.
    pub(super) fn key(provider: &str, replica: &str) -> String {
        format!("{}.{}", provider_token(provider), provider_token(replica))
    }

    /// The Provider and replica of a key (no replica: a key of the form before); `None` when
    /// it is not one.
    pub(super) fn parse_key(key: &str) -> Option<(String, Option<String>)> {
        match key.split_once('.') {
            Some((provider, replica)) => Some((
                provider_of_token(provider)?,
                Some(provider_of_token(replica)?),
            )),
            None => Some((provider_of_token(key)?, None)),
        }
    }

    /// When the status's latest outcome was (ms since the epoch): it is saved right after.
    fn latest(status: &ProviderStatus) -> u64 {
        status
            .last_success_at
            .max(status.last_error_at)
            .unwrap_or(0)
    }

    /// Reads the others' statuses if the bucket changed, purges those of replicas that left
    /// long enough ago (only when the live replicas were just `counted`: a quiet replica whose
    /// heartbeat could not be read is not one that left), and makes the view.
    pub(super) async fn gather(inner: &Inner, counted: bool) -> Result<(), StoreError> {
        let info = bounded(
            "reading the Provider statuses",
            inner.providers.stream.get_info(),
        )
        .await?;
        let sequence = Some(info.state.last_sequence);
        let mut entries = {
            let read = lock(&inner.statuses.0);
            (read.sequence == sequence).then(|| read.entries.clone())
        };
        if entries.is_none() {
            let read = tokio::time::timeout(REQUEST_TIMEOUT, read_others(inner))
                .await
                .map_err(|_| {
                    storage(
                        "reading the Provider statuses",
                        "JetStream did not answer in time",
                    )
                })??;
            entries = Some(read);
        }
        let mut entries = entries.unwrap_or_default();
        let live: BTreeSet<String> = inner
            .counts
            .view(&inner.replica)
            .others
            .keys()
            .cloned()
            .collect();
        let now = now_ms();
        let mut kept = Vec::with_capacity(entries.len());
        for saved in entries.drain(..) {
            let left = saved.replica.as_ref().is_none_or(|r| !live.contains(r));
            let keep_ms = u64::try_from(STATUS_KEEP.as_millis()).unwrap_or(u64::MAX);
            if counted && left && latest(&saved.status).saturating_add(keep_ms) < now {
                // Purged by whichever replica sees it first; the others skip it next round.
                if let Err(e) = inner
                    .purge_key(&inner.providers, PROVIDERS, &saved.key)
                    .await
                {
                    tracing::debug!(error = %e, "cannot purge a departed replica's Provider status");
                }
                continue;
            }
            kept.push(saved);
        }
        let mut view: HashMap<String, Vec<ProviderStatus>> = HashMap::new();
        for saved in &kept {
            view.entry(saved.provider.clone())
                .or_default()
                .push(saved.status.clone());
        }
        let mut read = lock(&inner.statuses.0);
        read.sequence = sequence;
        read.entries = kept;
        read.view = Arc::new(view);
        Ok(())
    }

    /// Every status in the bucket but this replica's own; unreadable ones (another
    /// version's) are skipped.
    async fn read_others(inner: &Inner) -> Result<Vec<Saved>, StoreError> {
        let mut keys = bounded("reading the Provider statuses", inner.providers.keys()).await?;
        let mut found = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| storage("reading the Provider statuses", e))?;
            let Some((provider, replica)) = parse_key(&key) else {
                continue;
            };
            if replica.as_deref() != Some(inner.replica.as_str()) {
                found.push((key, provider, replica));
            }
        }
        let reads = found
            .into_iter()
            .map(|(key, provider, replica)| async move {
                let value = bounded("reading a Provider status", inner.providers.get(&key)).await?;
                let status = value.as_deref().and_then(decode_status);
                Ok::<_, StoreError>(status.map(|status| Saved {
                    key,
                    provider,
                    replica,
                    status,
                }))
            });
        let mut saved = Vec::new();
        for read in futures_util::future::join_all(reads).await {
            saved.extend(read?);
        }
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::super::Load;
    use super::*;

    /// A fresh single nats-server with JetStream; `None` (said loudly) when it cannot be
    /// installed outside CI.
    fn server(dir: &std::path::Path) -> Option<String> {
        let facts = herald_testkit::start_peer_with("nats.sh", dir, "auto", &[])?;
        Some(facts["URL"].clone())
    }

    fn options(url: &str, replica: &str) -> Options {
        Options {
            servers: vec![url.to_owned()],
            replicas: Some(1),
            replica: replica.to_owned(),
            ..Options::default()
        }
    }

    #[test]
    fn passes_the_backend_suite() {
        let dir = std::env::temp_dir().join(format!("herald-jetstream-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        super::super::conformance::run(&|| {
            Arc::new(JetStream::open(&options(&url, "suite")).expect("open")) as Arc<dyn Backend>
        });
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    #[test]
    fn duplicate_windows_are_shared_by_replicas() {
        let dir = std::env::temp_dir().join(format!("herald-jetstream-w-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let b = JetStream::open(&options(&url, "b")).expect("open b");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let minute = Duration::from_secs(60);
        let take = |s: &JetStream, key: u8| rt.block_on(s.take_window([key; 32], minute).unwrap());
        assert!(take(&a, 1).unwrap(), "the first event takes its window");
        assert!(
            !take(&b, 1).unwrap(),
            "the same event on another replica is a duplicate"
        );
        assert!(take(&b, 2).unwrap(), "another event has its own window");
        b.forget_window([1; 32], minute);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !take(&a, 1).unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "a window given back is free again"
            );
        }
        a.close();
        b.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    /// Replicas that take blocks of ids at the same moment, on a 3-server cluster: no id is
    /// handed out twice. (A compare-and-set on one key does not give this on nats-server before
    /// 2.9.21, where two updates made with the same expected revision could both succeed.)
    #[test]
    fn ids_taken_at_once_by_replicas_of_a_cluster_never_overlap() {
        let dir = std::env::temp_dir().join(format!("herald-jetstream-i-{}", std::process::id()));
        let Some(facts) =
            herald_testkit::start_peer_with("nats.sh", &dir, "auto", &[("NATS_CLUSTER", "3")])
        else {
            return;
        };
        let urls: Vec<String> = facts["URL"].split(',').map(str::to_owned).collect();
        let stores: Vec<JetStream> = (0..6)
            .map(|i| {
                let o = Options {
                    servers: vec![urls[i % urls.len()].clone()],
                    replicas: Some(3),
                    replica: format!("r{i}"),
                    ..Options::default()
                };
                JetStream::open(&o).expect("open")
            })
            .collect();
        let blocks: Vec<u64> = std::thread::scope(|s| {
            let takers: Vec<_> = stores
                .iter()
                .map(|store| {
                    s.spawn(move || {
                        (0..40)
                            .map(|_| {
                                store
                                    .read(|inner| async move { inner.take_ids(ID_BLOCK).await })
                                    .expect("take a block")
                            })
                            .collect::<Vec<u64>>()
                    })
                })
                .collect();
            takers.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        let unique: HashSet<u64> = blocks.iter().copied().collect();
        for store in &stores {
            store.close();
        }
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
        assert_eq!(
            unique.len(),
            blocks.len(),
            "{} of {} blocks were handed out twice",
            blocks.len() - unique.len(),
            blocks.len()
        );
    }

    /// The raw row of delivery `id` in `herald-records`: `None` once its key is purged, empty
    /// for a tombstone.
    fn raw_row(store: &JetStream, id: u64) -> Option<Bytes> {
        store
            .read(move |inner| async move { inner.get_row(id).await })
            .unwrap()
    }

    /// Messages in the work stream: deliveries not acked yet.
    fn queued(store: &JetStream) -> u64 {
        store
            .read(|inner| async move { bounded("info", inner.work.get_info()).await })
            .unwrap()
            .state
            .messages
    }

    #[test]
    fn a_removed_deliverys_tombstone_goes_once_its_message_has_left_the_work_stream() {
        use super::super::conformance::{append_one, prepared};
        let dir = std::env::temp_dir().join(format!("herald-jetstream-t-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let event = Event {
            message: "removed before anyone read it".into(),
            ..Default::default()
        };
        let id = append_one(&a, &prepared("apps/hook", event));
        super::super::wait(|done| a.remove(id, Placement::Active, Some(done))).unwrap();
        assert_eq!(raw_row(&a, id).as_deref(), Some(&b""[..]), "a tombstone");
        let prune = |s: &JetStream| {
            let later = now_ms() + 60_000;
            super::super::wait(|done| s.prune(later, later, 100, done)).unwrap()
        };
        // No replica has read its partition: the message is still there, and so is the
        // tombstone that tells its next reader the delivery was removed.
        assert_eq!(prune(&a), 0);
        assert_eq!(raw_row(&a, id).as_deref(), Some(&b""[..]));
        // A reader finds the tombstone, hands nothing to its engine and acks the message.
        let (to_a, from_a) = claims();
        a.start_claims(to_a);
        eventually(20, "the message is acked", || queued(&a) == 0);
        assert!(
            !matches!(from_a.try_recv(), Ok(Claim::Deliver(..))),
            "a removed delivery is not claimed"
        );
        assert_eq!(prune(&a), 1, "the tombstone goes");
        assert_eq!(raw_row(&a, id), None);
        a.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    #[test]
    fn a_partition_is_read_from_its_oldest_message_even_when_an_earlier_consumer_is_left() {
        use super::super::conformance::{append_one, prepared};
        let dir = std::env::temp_dir().join(format!("herald-jetstream-c-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let ids: Vec<u64> = (0..3)
            .map(|i| {
                let event = Event {
                    message: format!("event {i} about one object"),
                    ..Default::default()
                };
                append_one(&a, &prepared("apps/hook", event))
            })
            .collect();
        let record = a.get(ids[0]).unwrap().unwrap();
        let p = partition(&record.provider, record.key);
        let id_of = |m: &jetstream::Message| -> u64 {
            m.headers
                .as_ref()
                .unwrap()
                .get(ID_HEADER)
                .unwrap()
                .as_str()
                .parse()
                .unwrap()
        };
        let (stale, first) = a
            .read(move |inner| async move {
                // An earlier reader took two messages and never acked them.
                let earlier = inner
                    .work
                    .create_consumer(leases::consumer_config(p))
                    .await
                    .unwrap();
                let mut taken = earlier.fetch().max_messages(2).messages().await.unwrap();
                while let Some(m) = taken.next().await {
                    m.unwrap();
                }
                // Its deletion did not go through: making the consumer again answers the one
                // that is there, past the two messages.
                let again = inner
                    .work
                    .create_consumer(leases::consumer_config(p))
                    .await
                    .unwrap();
                let stale = !leases::is_fresh(again.cached_info());
                let fresh = leases::fresh_consumer(&inner, p).await?;
                let mut messages = fresh.messages().await.unwrap();
                let first = messages.next().await.unwrap().unwrap();
                Ok((stale, id_of(&first)))
            })
            .unwrap();
        a.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
        assert!(
            stale,
            "a consumer that delivered messages is not taken for a fresh one"
        );
        assert_eq!(
            first, ids[0],
            "the partition is read from its oldest message"
        );
    }

    #[test]
    fn a_delivery_held_through_a_new_reading_of_its_partition_is_acked_through_it() {
        use super::super::conformance::{append_one, prepared};
        let dir = std::env::temp_dir().join(format!("herald-jetstream-h-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let event = Event {
            message: "held while its partition is read again".into(),
            ..Default::default()
        };
        let id = append_one(&a, &prepared("apps/hook", event));
        let record = a.get(id).unwrap().unwrap();
        let p = partition(&record.provider, record.key);
        let (to_a, from_a) = claims();
        let first = a
            .read({
                let to_a = to_a.clone();
                move |inner| async move { leases::read_partition(inner, to_a, p).await }
            })
            .unwrap();
        assert!(matches!(
            from_a.recv_timeout(Duration::from_secs(10)),
            Ok(Claim::Deliver(..))
        ));
        // Read again from its start, as after a gap: the delivery is held, so not claimed twice.
        let second = a
            .read(move |inner| async move { leases::read_partition(inner, to_a, p).await })
            .unwrap();
        first.stop();
        // The holder has seen it again once the new consumer has delivered it.
        let delivered = || {
            a.read(move |inner| async move {
                let mut c = inner
                    .work
                    .get_consumer::<consumer::pull::Config>(&format!("part-{p}"))
                    .await
                    .map_err(|e| storage("consumer", e))?;
                Ok(c.info()
                    .await
                    .map_err(|e| storage("consumer", e))?
                    .delivered
                    .consumer_sequence)
            })
            .unwrap()
        };
        eventually(10, "read again", || delivered() > 0);
        assert!(
            from_a.recv_timeout(Duration::from_secs(1)).is_err(),
            "a held delivery is not claimed again"
        );
        // Delivered: its ack, through the copy the first reading got, reaches the new consumer
        // (acks name the consumer, and it has the same name), not only after the ack wait.
        a.read(move |inner| async move {
            inner.finish_message(id).await;
            Ok(())
        })
        .unwrap();
        eventually(10, "the message left the work stream", || queued(&a) == 0);
        second.stop();
        a.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    #[test]
    fn a_scan_goes_on_from_any_row() {
        use super::super::conformance::{append, prepared};
        let dir = std::env::temp_dir().join(format!("herald-jetstream-s-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let batch: Vec<Prepared> = (0..5)
            .map(|i| {
                let event = Event {
                    message: format!("event {i}"),
                    ..Default::default()
                };
                prepared("apps/hook", event)
            })
            .collect();
        let first = append(&a, &batch);
        // (id, stream sequence) of the rows read from `start`, and whether it stalled.
        let read_from = |start: u64| {
            a.read(move |inner| async move {
                let mut rows = Vec::new();
                let stalled = inner
                    .scan_from(start, &mut |id, _, info| {
                        rows.push((id, info.stream_sequence));
                        Ok(true)
                    })
                    .await?;
                Ok((rows, stalled))
            })
            .unwrap()
        };
        let (all, stalled) = read_from(1);
        assert_eq!(stalled, None);
        let ids: Vec<u64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (first..first + 5).collect::<Vec<_>>());
        let (rest, _) = read_from(all[2].1);
        assert_eq!(rest, all[2..], "from the third row on");
        let (none, stalled) = read_from(all[4].1 + 1);
        assert_eq!(
            (none, stalled),
            (vec![], None),
            "nothing after the last row"
        );
        a.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    /// The partitions whose lease `replica` holds.
    fn held_by(store: &JetStream, replica: &str) -> HashSet<u32> {
        let replica = replica.to_owned();
        store
            .read(|inner| async move {
                let mut held = HashSet::new();
                let mut keys = inner
                    .leases
                    .keys()
                    .await
                    .map_err(|e| storage("leases", e))?;
                while let Some(Ok(key)) = keys.next().await {
                    let holder = inner
                        .leases
                        .get(&key)
                        .await
                        .map_err(|e| storage("leases", e))?;
                    if holder.as_deref() == Some(replica.as_bytes()) {
                        held.extend(key.strip_prefix('p').and_then(|p| p.parse::<u32>().ok()));
                    }
                }
                Ok(held)
            })
            .unwrap()
    }

    /// Claims of one replica, as the engine would get them.
    fn claims() -> (Claims, std::sync::mpsc::Receiver<Claim>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        (
            Arc::new(move |c| {
                let _ = tx.lock().unwrap().send(c);
            }),
            rx,
        )
    }

    #[test]
    fn every_delivery_is_claimed_once_and_partitions_move_to_a_new_replica() {
        use super::super::conformance::{append, prepared};
        let dir = std::env::temp_dir().join(format!("herald-jetstream-c-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let (to_a, from_a) = claims();
        a.start_claims(to_a);
        let event = |i: usize| Event {
            involved_object: herald_core::ObjectReference {
                kind: "Kustomization".into(),
                namespace: "apps".into(),
                name: format!("obj-{}", i % 8),
                ..Default::default()
            },
            message: format!("event {i}"),
            ..Default::default()
        };
        let batch: Vec<Prepared> = (0..40).map(|i| prepared("apps/hook", event(i))).collect();
        let first = append(&a, &batch);
        let mut got = HashMap::new();
        while got.len() < 40 {
            match from_a
                .recv_timeout(Duration::from_secs(20))
                .expect("claims come")
            {
                Claim::Deliver(r, e) => {
                    assert!(
                        got.insert(r.id, e.message.clone()).is_none(),
                        "claimed twice: {}",
                        r.id
                    );
                }
                Claim::Release(..) => panic!("nothing was released"),
            }
        }
        let want: HashMap<u64, String> = (0..40)
            .map(|i| (first + i as u64, format!("event {i}")))
            .collect();
        assert_eq!(got, want);
        // Finish half; a second replica takes half the partitions and is handed only what
        // is still to do in them.
        for id in first..first + 20 {
            let mut r = a.get(id).unwrap().unwrap();
            r.state = State::Delivered;
            r.finished_at = Some(now_ms());
            super::super::wait(|done| a.settle(&r, Placement::Active, Some(done))).unwrap();
        }
        let b = JetStream::open(&options(&url, "b")).expect("open b");
        let (to_b, from_b) = claims();
        b.start_claims(to_b);
        let mut released = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut moved = HashSet::new();
        while released < (PARTITIONS / 2) as usize && std::time::Instant::now() < deadline {
            if let Ok(Claim::Release(_, idle)) = from_a.recv_timeout(Duration::from_millis(100)) {
                // Nothing is in flight in this stand-in for the engine.
                idle();
                released += 1;
            }
            while let Ok(Claim::Deliver(r, _)) = from_b.try_recv() {
                assert!(r.id >= first + 20, "{} was delivered already", r.id);
                moved.insert(r.id);
            }
        }
        assert_eq!(
            released,
            (PARTITIONS / 2) as usize,
            "a gives half its partitions back"
        );
        // a frees them once nothing is in flight; b takes them at its next round.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while held_by(&b, "b").len() < (PARTITIONS / 2) as usize {
            assert!(
                std::time::Instant::now() < deadline,
                "b takes the freed partitions"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let of_b = held_by(&b, "b");
        let expected: HashSet<u64> = (first + 20..first + 40)
            .filter(|id| {
                let r = a.get(*id).unwrap().unwrap();
                of_b.contains(&partition(&r.provider, r.key))
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !moved.is_superset(&expected) && std::time::Instant::now() < deadline {
            if let Ok(Claim::Deliver(r, _)) = from_b.recv_timeout(Duration::from_millis(200)) {
                assert!(r.id >= first + 20, "{} was delivered already", r.id);
                moved.insert(r.id);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        while let Ok(Claim::Deliver(r, _)) = from_b.try_recv() {
            moved.insert(r.id);
        }
        assert_eq!(
            moved, expected,
            "b is handed the unfinished deliveries of its partitions"
        );
        a.close();
        b.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    /// Hands every claim to a thread that notes the delivered ids and answers releases at once
    /// (nothing is in flight in this stand-in for an engine).
    fn claims_noted(store: &JetStream) -> Arc<Mutex<HashSet<u64>>> {
        let (to, from) = claims();
        store.start_claims(to);
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let noted = seen.clone();
        std::thread::spawn(move || {
            while let Ok(claim) = from.recv() {
                match claim {
                    Claim::Deliver(r, _) => {
                        noted.lock().unwrap().insert(r.id);
                    }
                    Claim::Release(_, idle) => idle(),
                }
            }
        });
        seen
    }

    /// Polls `what` until it holds, for at most `secs`.
    fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn load_of(entries: &[(&str, u64, u64)]) -> Load {
        let mut load = Load::default();
        for (provider, pending, in_flight) in entries {
            load.add_pending(provider, "generic", *pending);
            if let Some(p) = load.providers.get_mut(*provider) {
                p.counts.in_flight = *in_flight;
            }
        }
        load
    }

    #[test]
    fn replicas_see_each_others_loads_and_what_is_in_transit_until_its_holder_counts_it() {
        use super::super::conformance::{append_one, prepared};
        let dir = std::env::temp_dir().join(format!("herald-jetstream-l-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let b = JetStream::open(&options(&url, "b")).expect("open b");
        assert_eq!(
            b.cluster_load().map(|c| c.me.clone()).as_deref(),
            Some("b"),
            "a shared backend always has a view"
        );
        let of_a = Arc::new(Mutex::new(load_of(&[("apps/hook", 3, 1)])));
        let source = of_a.clone();
        a.report_load(Arc::new(move || source.lock().unwrap().clone()));
        b.report_load(Arc::new(Load::default));
        let claimed_by_a = claims_noted(&a);
        claims_noted(&b);
        let others = |s: &JetStream| s.cluster_load().unwrap().others.clone();
        eventually(15, "b hears a's load", || {
            others(&b).get("a") == Some(&load_of(&[("apps/hook", 3, 1)]))
        });
        eventually(15, "a hears b's empty load", || {
            *others(&a) == BTreeMap::from([("b".to_owned(), Load::default())])
        });
        assert!(
            !others(&a).contains_key("a"),
            "a replica is not its own other"
        );
        *of_a.lock().unwrap() = load_of(&[("apps/hook", 7, 2), ("apps/slack", 1, 0)]);
        eventually(10, "b hears a's new load", || {
            let c = b.cluster_load().unwrap();
            c.elsewhere("apps/hook")
                == super::super::Counts {
                    pending: 7,
                    in_flight: 2,
                }
                && c.elsewhere_pending() == 8
        });
        // Half the partitions each; then a delivery b accepts for a partition a reads is in
        // transit at b until a has heartbeated after b, one for its own partition never is.
        eventually(30, "the partitions are shared", || {
            held_by(&a, "a").len() == 16
                && held_by(&b, "b").len() == 16
                && (0..PARTITIONS).all(|p| a.inner.counts.holds(p) != b.inner.counts.holds(p))
        });
        let event_in = |store: &JetStream| {
            (0..)
                .map(|i| Event {
                    involved_object: herald_core::ObjectReference {
                        kind: "Kustomization".into(),
                        namespace: "apps".into(),
                        name: format!("obj-{i}"),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .map(|e| prepared("apps/transit", e))
                .find(|d| {
                    store
                        .inner
                        .counts
                        .holds(partition(&d.record.provider, d.record.key))
                })
                .unwrap()
        };
        let in_transit = |s: &JetStream| {
            s.cluster_load()
                .unwrap()
                .in_transit
                .providers
                .get("apps/transit")
                .map_or(0, |p| p.counts.pending)
        };
        append_one(&b, &event_in(&b));
        assert_eq!(in_transit(&b), 0, "b reads that partition itself");
        let id = append_one(&b, &event_in(&a));
        assert_eq!(in_transit(&b), 1, "counted at once where it was accepted");
        assert_eq!(
            b.cluster_load().unwrap().elsewhere("apps/transit").pending,
            1
        );
        eventually(10, "a claims it", || {
            claimed_by_a.lock().unwrap().contains(&id)
        });
        eventually(15, "b stops counting it once a heartbeated after b", || {
            in_transit(&b) == 0
        });
        // A replica that stops without a word (its runtime gone): its last heartbeat counts
        // until it expires.
        drop(a);
        assert!(
            others(&b).contains_key("a"),
            "the last heartbeat still counts"
        );
        eventually(
            LEASE_TTL.as_secs() + 2 * RENEW_EVERY.as_secs() + 5,
            "an expired heartbeat stops counting",
            || !others(&b).contains_key("a"),
        );
        assert_eq!(
            b.cluster_load().unwrap().elsewhere("apps/hook"),
            Default::default()
        );
        b.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    #[test]
    fn replicas_keep_their_own_provider_statuses_and_read_the_others() {
        let dir = std::env::temp_dir().join(format!("herald-jetstream-s-{}", std::process::id()));
        let Some(url) = server(&dir) else { return };
        let a = JetStream::open(&options(&url, "a")).expect("open a");
        let b = JetStream::open(&options(&url, "b")).expect("open b");
        for store in [&a, &b] {
            store.report_load(Arc::new(Load::default));
            claims_noted(store);
        }
        let now = now_ms();
        let failing_at_a = ProviderStatus {
            last_success_at: Some(now - 5_000),
            last_error: Some("HTTP 500".into()),
            last_error_at: Some(now - 1_000),
            consecutive_failures: 3,
            failing_since: Some(now - 4_000),
        };
        let fine_at_b = ProviderStatus {
            last_success_at: Some(now - 2_000),
            ..ProviderStatus::default()
        };
        a.save_status("apps/hook", &failing_at_a).unwrap();
        b.save_status("apps/hook", &fine_at_b).unwrap();
        let others_of = |s: &JetStream, provider: &str| {
            s.other_statuses()
                .and_then(|o| o.get(provider).cloned())
                .unwrap_or_default()
        };
        eventually(15, "b reads a's status", || {
            others_of(&b, "apps/hook") == [failing_at_a.clone()]
        });
        eventually(15, "a reads b's status", || {
            others_of(&a, "apps/hook") == [fine_at_b.clone()]
        });
        assert_eq!(
            super::super::status::merge(&[fine_at_b.clone(), failing_at_a.clone()]),
            ProviderStatus {
                last_success_at: fine_at_b.last_success_at,
                consecutive_failures: 1,
                failing_since: fine_at_b.last_success_at,
                ..failing_at_a.clone()
            },
            "the cluster fails since b's success"
        );
        // Neither overwrote the other; each loads its own.
        assert_eq!(a.load().unwrap().providers["apps/hook"], failing_at_a);
        assert_eq!(b.load().unwrap().providers["apps/hook"], fine_at_b);
        // A replica that left: its recent status counts, an old one is purged, as is an old
        // key of the form before; an unreadable one is skipped.
        let put = |key: String, value: Vec<u8>| {
            let providers = a.inner.providers.clone();
            block_on(
                &a.handle,
                async move { providers.put(key, value.into()).await },
            )
            .unwrap()
            .unwrap();
        };
        let keep = u64::try_from(STATUS_KEEP.as_millis()).unwrap();
        let recent = ProviderStatus {
            last_error: Some("gone".into()),
            last_error_at: Some(now - 500),
            consecutive_failures: 1,
            failing_since: Some(now - 500),
            ..ProviderStatus::default()
        };
        let old = ProviderStatus {
            last_success_at: Some(now - keep - 60_000),
            ..ProviderStatus::default()
        };
        put(
            statuses::key("apps/hook", "gone-recently"),
            encode_status(&recent),
        );
        put(
            statuses::key("apps/hook", "gone-long-ago"),
            encode_status(&old),
        );
        put(provider_token("apps/hook"), encode_status(&old));
        put(
            statuses::key("apps/hook", "newer-version"),
            vec![0xff, 1, 2],
        );
        eventually(
            15,
            "b counts the recent one and purges the old ones",
            || {
                let mut seen = others_of(&b, "apps/hook");
                seen.sort_by_key(|s| s.last_error_at);
                seen == [failing_at_a.clone(), recent.clone()]
            },
        );
        let providers = a.inner.providers.clone();
        let keys: Vec<String> = block_on(&a.handle, async move {
            let keys = providers.keys().await.unwrap();
            keys.filter_map(|k| async move { k.ok() }).collect().await
        })
        .unwrap();
        let mut keys: Vec<_> = keys
            .iter()
            .filter_map(|k| statuses::parse_key(k))
            .map(|(_, replica)| replica.unwrap_or_default())
            .collect();
        keys.sort();
        assert_eq!(keys, ["a", "b", "gone-recently", "newer-version"]);
        a.close();
        b.close();
        herald_testkit::run_peer("nats.sh", &dir, &["stop", "--all"]);
    }

    #[test]
    fn what_is_in_transit_counts_until_every_other_replica_heartbeats_after() {
        let mut t = counts::Transit::default();
        t.add("apps/hook", "generic");
        t.add("apps/hook", "generic");
        t.seal(10);
        t.add("apps/slack", "slack");
        let pending = |t: &counts::Transit, p: &str| {
            t.load().providers.get(p).map_or(0, |l| l.counts.pending)
        };
        assert_eq!(
            (pending(&t, "apps/hook"), pending(&t, "apps/slack")),
            (2, 1)
        );
        // The others' heartbeats are all from before this replica's at 10.
        t.settle(9);
        t.settle(10);
        assert_eq!(pending(&t, "apps/hook"), 2);
        // All after it: the holders count the first batch; the second is not sealed yet.
        t.settle(11);
        assert_eq!(
            (pending(&t, "apps/hook"), pending(&t, "apps/slack")),
            (0, 1)
        );
        t.seal(12);
        t.seal(13);
        t.add("apps/slack", "slack");
        t.seal(14);
        // A seal only closes the open batch: the one at 12 is passed by 13, the new one not.
        t.settle(14);
        assert_eq!(pending(&t, "apps/slack"), 1);
        // No other replica at all: nothing sealed stays in transit.
        t.settle(u64::MAX);
        assert_eq!(t.load(), Load::default());
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(
            partition("apps/web", OrderingKey(1)),
            partition("apps/web", OrderingKey(1))
        );
        let used: HashSet<u32> = (0..1000)
            .map(|k| partition("apps/web", OrderingKey(k)))
            .collect();
        assert_eq!(used.len(), PARTITIONS as usize);
        assert!(used.iter().all(|p| *p < PARTITIONS));
    }

    #[test]
    fn provider_tokens_round_trip() {
        for p in ["apps/web", "flux-system/slack.v2", "a/b"] {
            let t = provider_token(p);
            assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(provider_of_token(&t).as_deref(), Some(p));
        }
        assert_eq!(provider_of_token("zz"), None);
    }

    #[test]
    fn record_keys_sort_by_id() {
        assert!(record_key(9) < record_key(10));
        assert_eq!(record_key(42), "d00000000000000000042");
    }
}
