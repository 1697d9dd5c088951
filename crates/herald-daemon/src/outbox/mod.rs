//! The outbox: every accepted delivery, durably recorded before its event is answered 202.
//!
//! A delivery is one (event, Alert, Provider). Its [`Record`] moves from `pending` (or
//! `failed`, waiting for a retry) to `delivered` or `dead`; the event it posts is kept beside it
//! until it is delivered (a dead delivery keeps it, to be retried by hand). Delivered and dead
//! records are pruned after their retention.
//!
//! [`Backend`] is the seam between the delivery engine and storage: the engine decides (what to
//! attempt, when, in which order), a backend only records. [`Store`], one redb file under the
//! data dir written by one thread in group commits, is the embedded backend and the reference;
//! [`conformance`] is the test suite every backend must pass. The `herald outbox` command opens
//! a [`Store`] directly when the daemon is stopped.

mod codec;
pub mod conformance;
#[cfg(feature = "jetstream")]
pub mod jetstream;
pub mod load;
mod overlay;
mod redb;
mod redo;
pub mod status;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_core::{Event, OrderingKey};

pub use self::load::{ClusterLoad, Counts, Load, LoadSource};
pub use self::redb::{CACHE_BYTES, FILE_NAME, MAX_QUEUED_APPENDS, Store};
pub use self::status::OtherStatuses;

/// Where a shared outbox lives: NATS JetStream (`herald serve --outbox nats://...`; the
/// cargo feature `jetstream`).
#[derive(Debug, Clone, Default)]
pub struct SharedOutbox {
    /// Server URLs (`nats://`, `tls://`), user and password in them if any.
    pub servers: Vec<String>,
    /// A `.creds` file (user JWT and nkey seed).
    pub creds_file: Option<PathBuf>,
    /// A file holding an nkey seed.
    pub nkey_file: Option<PathBuf>,
    /// PEM CA certificates to trust for TLS (then TLS is required).
    pub ca_file: Option<PathBuf>,
    /// Replicas of every stream and bucket; `None`: 3 in a cluster, else 1.
    pub replicas: Option<usize>,
    /// This replica's name in leases (unique among the replicas).
    pub replica: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

/// A time as milliseconds since the Unix epoch.
pub fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Accepted, not tried yet (or put back by a retry).
    Pending,
    /// Tried and failed; tried again at `next_attempt_at`.
    Failed,
    /// Delivered.
    Delivered,
    /// Given up (see [`DeadReason`]); kept with its event and last error until retried by
    /// hand, dropped, or pruned.
    Dead,
}

impl State {
    /// The name used in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Failed => "failed",
            State::Delivered => "delivered",
            State::Dead => "dead",
        }
    }

    /// Still to be delivered.
    pub fn is_active(self) -> bool {
        matches!(self, State::Pending | State::Failed)
    }
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(State::Pending),
            "failed" => Ok(State::Failed),
            "delivered" => Ok(State::Delivered),
            "dead" => Ok(State::Dead),
            _ => Err(format!(
                "unknown state {s:?} (expected pending, failed, delivered or dead)"
            )),
        }
    }
}

/// Why a delivery was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// The Provider already had `--provider-max-pending` deliveries waiting (or herald
    /// `--max-pending`) when the event came: refused, while the event's other deliveries were
    /// accepted.
    Quota,
    /// Still failing `--delivery-max-age` after it was accepted (or retried by hand), or waiting
    /// that long behind a Provider that never worked in the meantime.
    MaxAge,
    /// An error that retrying cannot fix (a 4xx answer, a payload the service rejects, a
    /// provider that panicked).
    Permanent,
}

impl DeadReason {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Quota => "quota",
            DeadReason::MaxAge => "max-age",
            DeadReason::Permanent => "permanent",
        }
    }
}

/// One delivery as stored (its event is kept beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The outbox id: increasing in acceptance order.
    pub id: u64,
    /// The Provider, `namespace/name`.
    pub provider: String,
    /// The Provider's type.
    pub provider_type: String,
    /// The Alert that matched, `namespace/name`.
    pub alert: String,
    /// The involved object, `Kind/namespace/name`.
    pub object: String,
    /// The event's reason.
    pub reason: String,
    /// Deliveries of one Provider with the same key go out one after another.
    pub key: OrderingKey,
    /// When the event was accepted (ms since the epoch).
    pub accepted_at: u64,
    /// The state.
    pub state: State,
    /// Why it is dead, when it is.
    pub dead_reason: Option<DeadReason>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Failed attempts since the age clock started: the backoff grows with them.
    pub failures: u32,
    /// Where the age clock starts: acceptance, or the last retry by hand.
    pub clock_from: u64,
    /// When the last attempt ended.
    pub last_attempt_at: Option<u64>,
    /// The last error, masked.
    pub last_error: Option<String>,
    /// When a failed delivery is tried again.
    pub next_attempt_at: Option<u64>,
    /// When it was delivered or given up.
    pub finished_at: Option<u64>,
}

impl Record {
    /// A delivery of `new`'s event, accepted at `now`, not attempted yet (the backend assigns
    /// the id).
    pub fn pending(new: NewDelivery, key: OrderingKey, now: u64) -> (Record, Event) {
        let record = Record {
            id: 0,
            object: herald_core::text::obj_md(&new.event),
            reason: new.event.reason.clone(),
            key,
            provider: new.provider,
            provider_type: new.provider_type,
            alert: new.alert,
            accepted_at: now,
            state: State::Pending,
            dead_reason: None,
            attempts: 0,
            failures: 0,
            clock_from: now,
            last_attempt_at: None,
            last_error: None,
            next_attempt_at: None,
            finished_at: None,
        };
        (record, new.event)
    }

    /// Where the record sits in the backend's indexes.
    pub fn placement(&self) -> Placement {
        match self.state {
            State::Pending | State::Failed => Placement::Active,
            state => Placement::Finished(state, self.finished_at.unwrap_or(0)),
        }
    }
}

/// Which index a record is in: still to deliver, or finished (delivered or dead, since when).
/// A backend's state changes name the record's placement before the change, so that they never
/// need to read the old record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Pending or failed.
    Active,
    /// Delivered or dead, finished at (ms since the epoch).
    Finished(State, u64),
}

/// A delivery to record: its record (the backend assigns the id) and the event it posts.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The record; `id` is ignored.
    pub record: Record,
    /// The event, exactly as it will be posted.
    pub event: Arc<Event>,
}

/// A delivery planned for an accepted event: the Provider, its type, the Alert, and the event
/// exactly as it will be posted.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The Provider, `namespace/name`.
    pub provider: String,
    /// The Provider's type.
    pub provider_type: String,
    /// The Alert, `namespace/name`.
    pub alert: String,
    /// The event, exactly as it will be posted.
    pub event: Event,
}

/// What the outbox remembers about a Provider across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The last successful delivery (ms since the epoch).
    pub last_success_at: Option<u64>,
    /// The last error, masked.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<u64>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// The first failure of the current run of failures.
    pub failing_since: Option<u64>,
}

/// What a start-up scan finds.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Deliveries still to deliver, in id order.
    pub active: Vec<Record>,
    /// Dead deliveries per Provider.
    pub dead: HashMap<String, u64>,
    /// Saved Provider statuses.
    pub providers: HashMap<String, ProviderStatus>,
}

/// Commits made since the backend was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commits {
    /// Commits that succeeded.
    pub count: u64,
    /// Their total duration (writing and syncing), in microseconds.
    pub micros: u64,
    /// Deliveries they appended.
    pub appended: u64,
}

/// Whether the backend can record changes right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The last commit succeeded.
    Ok,
    /// Commits fail since then (ms since the epoch), with the last error.
    Failing {
        /// The first failure of the current run.
        since: u64,
        /// The last error.
        error: StoreError,
    },
    /// The backend stopped and cannot go on: the daemon exits.
    Stopped(String),
}

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage engine failed while doing `what`.
    #[error("{what}: {message}")]
    Storage {
        /// What was being done.
        what: &'static str,
        /// The storage engine's error.
        message: String,
    },
    /// A stored record or event cannot be decoded.
    #[error("delivery {id}: {what} is unreadable: {message}")]
    Corrupt {
        /// The delivery.
        id: u64,
        /// `its record`, `its event`.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// Too many writes are queued: the caller should answer 503 and let the emitter retry.
    #[error("the outbox has too many writes queued")]
    Busy,
    /// The writer has stopped.
    #[error("the outbox writer has stopped")]
    Stopped,
    /// The outbox was closed.
    #[error("the outbox is closed")]
    Closed,
}

/// Why the outbox could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process (a running daemon) holds the file.
    #[error("the outbox {} is in use by another herald process (a running daemon?)", .0.display())]
    Locked(PathBuf),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a herald outbox of this version; it was left untouched.
    #[error(
        "{} is not a herald outbox: {why}; it was left untouched: move it away or choose another --data-dir",
        path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// The file is damaged beyond what opening repairs; it was left untouched.
    #[error(
        "the outbox {} is corrupt; it was left untouched: move it away (the deliveries in it are lost) or repair it",
        .0.display()
    )]
    Corrupt(PathBuf),
    /// The shared outbox cannot be reached or set up.
    #[error("cannot open the shared outbox in JetStream at {servers}: {message}")]
    Shared {
        /// The servers.
        servers: String,
        /// Why.
        message: String,
    },
    /// Any other failure to open the file or start its writer.
    #[error("cannot open the outbox {}: {message}; it was left untouched", path.display())]
    Other {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Called once an operation is committed, or has failed; on the backend's own thread.
pub type Done<T> = Box<dyn FnOnce(Result<T, StoreError>) + Send>;

/// Which deliveries a [`Claim::Release`] gives up: true for those of this Provider and key.
pub type Share = Arc<dyn Fn(&str, OrderingKey) -> bool + Send + Sync>;

/// Called once a released share has nothing in flight.
pub type Idle = Box<dyn FnOnce() + Send>;

/// What a backend shared by several replicas tells the engine of the replica it runs in.
pub enum Claim {
    /// A delivery that is this replica's to make now, with its event (its record as last
    /// committed, by whichever replica).
    Deliver(Box<Record>, Arc<Event>),
    /// This replica no longer holds the deliveries `Share` picks: drop those queued; the ones
    /// in flight finish and record their outcome, and then the engine calls the function, so
    /// that the backend lets another replica take them only once none is in flight here.
    Release(Share, Idle),
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Deliver(r, _) => f.debug_tuple("Deliver").field(&r.id).finish(),
            Claim::Release(..) => f.write_str("Release"),
        }
    }
}

/// The answer of [`Backend::take_window`]: whether the window was free.
pub type WindowTake =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, StoreError>> + Send>>;

/// Where a shared backend sends its [`Claim`]s; it must return quickly.
pub type Claims = Arc<dyn Fn(Claim) + Send + Sync>;

/// Durable storage for deliveries: what the delivery engine needs from any backend.
///
/// Changes are queued and committed together ("group commit"); each says, through its [`Done`]
/// callback, when it is durable. Callbacks run in commit order, on the backend's thread, and
/// must be quick. State changes never read the old record: the caller gives the record's new
/// contents and its [`Placement`] before the change. Reads see what is committed.
///
/// The engine keeps the queues, windows and timers; a backend does not decide anything. The
/// embedded backend serves one process, which claims every active delivery it loads; a backend
/// shared by several replicas also decides which replica holds which ordering keys (for
/// example one partition per key hash, [`OrderingKey`] being stable across processes) and
/// hands each replica only its share in [`Backend::load`] and afterwards.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Records new deliveries; `done` gets the id of the first (the others follow one by one,
    /// in order). Fails at once, without recording anything, when too many writes are queued
    /// ([`StoreError::Busy`]) or the backend cannot write.
    fn append(&self, deliveries: &[Prepared], done: Done<u64>) -> Result<(), StoreError>;

    /// Replaces a record with `record` (a state change), moving it from `from` to the index of
    /// its new state. A delivered record's event is dropped. A change that fails to commit is
    /// kept and committed with the next commit that succeeds: `done` is called then.
    fn settle(
        &self,
        record: &Record,
        from: Placement,
        done: Option<Done<()>>,
    ) -> Result<(), StoreError>;

    /// Removes a record and its event for good.
    fn remove(&self, id: u64, from: Placement, done: Option<Done<()>>) -> Result<(), StoreError>;

    /// Saves a Provider's status (with a shared backend, this replica's own).
    fn save_status(&self, provider: &str, status: &ProviderStatus) -> Result<(), StoreError>;

    /// Prunes at most `limit` delivered records finished before `delivered_before` and dead
    /// ones before `dead_before` (ms since the epoch); `done` gets how many went.
    fn prune(
        &self,
        delivered_before: u64,
        dead_before: u64,
        limit: usize,
        done: Done<usize>,
    ) -> Result<(), StoreError>;

    /// Calls `done` once everything queued before it is committed (or failed).
    fn flush(&self, done: Done<()>) -> Result<(), StoreError>;

    /// What a daemon needs at start: the active deliveries, dead counts, Provider statuses
    /// (with a shared backend, the ones this replica saved).
    fn load(&self) -> Result<Loaded, StoreError>;

    /// One record.
    fn get(&self, id: u64) -> Result<Option<Record>, StoreError>;

    /// A record and its event (`None` once delivered: the event is dropped then).
    fn get_with_event(&self, id: u64) -> Result<Option<(Record, Option<Event>)>, StoreError>;

    /// Records, newest first, that pass `keep`, at most `limit`.
    fn list(
        &self,
        limit: usize,
        keep: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<Vec<Record>, StoreError>;

    /// Ids of dead records, optionally of one Provider, in id order.
    fn dead_ids(&self, provider: Option<&str>) -> Result<Vec<u64>, StoreError>;

    /// Whether commits succeed.
    fn health(&self) -> Health;

    /// Bytes the backend holds on disk, when it knows.
    fn disk_bytes(&self) -> u64;

    /// Commits made so far and the time they took, when the backend counts them.
    fn commits(&self) -> Commits {
        Commits::default()
    }

    /// Takes Flux's duplicate window of event key `key` (see `ratelimit::key`) for every
    /// replica sharing this backend: resolves to whether it was free (so the event is not a
    /// duplicate within `interval` on any replica). `None`: the backend is not shared, and the
    /// daemon's own limiter decides alone.
    fn take_window(&self, _key: [u8; 32], _interval: std::time::Duration) -> Option<WindowTake> {
        None
    }

    /// Gives a window taken by [`Backend::take_window`] back: its event was not accepted.
    fn forget_window(&self, _key: [u8; 32], _interval: std::time::Duration) {}

    /// Whether several replicas share this backend. Then the engine queues neither what it
    /// appends nor what [`Backend::load`] finds: the backend hands every replica its share
    /// through [`Backend::start_claims`], whichever replica appended it.
    fn shared(&self) -> bool {
        false
    }

    /// A shared backend starts handing this replica its share of the active deliveries.
    fn start_claims(&self, _claims: Claims) {}

    /// A shared backend publishes this replica's [`Load`] to the others, read from `source` at
    /// each heartbeat.
    fn report_load(&self, _source: LoadSource) {}

    /// What a shared backend last heard of the deliveries held by the other replicas (and
    /// accepted here for them); `None`: the backend is not shared, this process holds all.
    /// Quick: it never waits on the network.
    fn cluster_load(&self) -> Option<Arc<ClusterLoad>> {
        None
    }

    /// Dead deliveries per Provider, read from a shared backend's dead-letter index (every
    /// replica's); `None`: the backend is not shared, and the engine's own counts are all.
    fn dead_counts(&self) -> Option<Result<HashMap<String, u64>, StoreError>> {
        None
    }

    /// What a shared backend last read of the other replicas' Provider statuses (each
    /// replica saves its own with [`Backend::save_status`]), for the status API to merge with
    /// this replica's ([`status::merge`]); `None`: the backend is not shared, this process's
    /// statuses are all. Quick: it never waits on the network.
    fn other_statuses(&self) -> Option<OtherStatuses> {
        None
    }

    /// Commits what is queued, stops, and releases the storage.
    fn close(&self);
}

/// Waits for a [`Done`] from async code.
pub(crate) fn done_channel<T: Send + 'static>() -> (
    Done<T>,
    tokio::sync::oneshot::Receiver<Result<T, StoreError>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
        rx,
    )
}

/// Waits until everything queued in `store` so far is committed.
pub async fn flush(store: &dyn Backend) -> Result<(), StoreError> {
    let (done, committed) = done_channel();
    store.flush(done)?;
    committed.await.map_err(|_| StoreError::Stopped)?
}

/// Waits for a [`Done`] from a plain thread.
pub fn wait<T: Send + 'static>(
    start: impl FnOnce(Done<T>) -> Result<(), StoreError>,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    start(Box::new(move |r| {
        let _ = tx.send(r);
    }))?;
    rx.recv().map_err(|_| StoreError::Stopped)?
}
