//! The outbox: every accepted delivery, durably recorded in one redb file under the data dir.
//!
//! A delivery is one (event, Alert, Provider). It is written, with the event as it will be
//! posted, before the event server answers 202; its state then moves from `pending` (or
//! `failed`, waiting for a retry) to `delivered` or `dead`. Delivered and dead records are
//! pruned after their retention. Writes from the whole daemon go through one writer thread that
//! commits them in batches (group commit), so durability costs one fsync per batch, not per event.
//!
//! This module is storage only: it does not decide when to deliver or retry (that is
//! `dispatch`), and it has no network I/O. The `herald outbox` command opens the same file
//! directly when the daemon is stopped.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use herald_core::Event;

/// The outbox file inside the data dir.
pub const FILE_NAME: &str = "outbox.redb";
/// The outbox's page cache.
const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// What the `format` key of the meta table holds in a herald outbox.
const FORMAT: &str = "herald-outbox/1";

const META: TableDefinition<'static, &str, &str> = TableDefinition::new("meta");
const DELIVERIES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("deliveries");
const PAYLOADS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("payloads");
/// Ids of the deliveries still to deliver (pending or failed).
const ACTIVE: TableDefinition<'static, u64, ()> = TableDefinition::new("active");
/// (finished at, id) of delivered records, for pruning.
const DELIVERED_AT: TableDefinition<'static, (u64, u64), ()> = TableDefinition::new("delivered_at");
/// (finished at, id) of dead records, for pruning.
const DEAD_AT: TableDefinition<'static, (u64, u64), ()> = TableDefinition::new("dead_at");
/// Provider id to its [`ProviderStatus`] (JSON).
const PROVIDERS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("providers");

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Accepted, not tried yet.
    Pending,
    /// Tried and failed; retried at `next_attempt_at`.
    Failed,
    /// Delivered.
    Delivered,
    /// Given up (too old, or an error that retrying cannot fix); kept with its last error
    /// until retried by hand, dropped, or pruned.
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

/// One delivery as stored (the event itself is kept beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When the event was accepted (ms since the epoch).
    pub accepted_at: u64,
    /// The state.
    pub state: State,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the last attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<u64>,
    /// The last error, masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a failed delivery is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    /// When it was delivered or given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
}

/// A delivery to record: its record (id and state are assigned by the store) and its event.
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatus {
    /// The last successful delivery (ms since the epoch).
    #[serde(default)]
    pub last_success_at: Option<u64>,
    /// The last error, masked.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it happened.
    #[serde(default)]
    pub last_error_at: Option<u64>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub consecutive_failures: u64,
    /// The first failure of the current run of failures.
    #[serde(default)]
    pub failing_since: Option<u64>,
}

/// A storage failure, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

macro_rules! try_store {
    ($what:expr, $e:expr) => {
        $e.map_err(|e| StoreError(format!("{}: {}", $what, redb::Error::from(e))))?
    };
}

/// Why the outbox could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another process (a running daemon) holds the file.
    Locked(PathBuf),
    /// Anything else, with a message that says what and where.
    Other(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked(p) => write!(
                f,
                "the outbox {} is in use by another herald process (a running daemon?)",
                p.display()
            ),
            OpenError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for OpenError {}

/// A change to apply in the next commit.
enum Op {
    /// Record new deliveries; answers their ids once committed.
    Append(
        Vec<NewDelivery>,
        oneshot::Sender<Result<Vec<Record>, StoreError>>,
    ),
    /// Replace a record (a state change).
    Put(Record),
    /// Remove a record and its event.
    Delete(u64),
    /// Save a Provider's status.
    Status(String, ProviderStatus),
    /// Prune delivered records finished before the first time and dead ones before the second.
    Prune(u64, u64),
    /// Answers once everything sent before it is committed (or failed).
    Barrier(Box<dyn FnOnce(Result<(), StoreError>) + Send>),
}

/// The open outbox. Cheap to clone; reads run on the caller's thread, writes on the writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    ops: std::sync::Mutex<Option<std::sync::mpsc::Sender<Op>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
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

fn open_db(path: &Path) -> Result<Database, OpenError> {
    // A small page cache: the daemon reads back only recent records.
    let opened =
        std::panic::catch_unwind(|| Database::builder().set_cache_size(CACHE_BYTES).create(path));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(OpenError::Locked(path.to_owned()));
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            return Err(OpenError::Other(format!(
                "{} is not a herald outbox ({e}); it was left untouched: move it away or choose another --data-dir",
                path.display()
            )));
        }
        Ok(Err(e)) => {
            return Err(OpenError::Other(format!(
                "cannot open the outbox {}: {e}; it was left untouched",
                path.display()
            )));
        }
        Err(_) => {
            return Err(OpenError::Other(format!(
                "the outbox {} is corrupt; it was left untouched: move it away (the deliveries in it are lost) or repair it",
                path.display()
            )));
        }
    };
    // A herald outbox says so; an empty new file is made one. Anything else is not ours.
    let check = || -> Result<(), StoreError> {
        let txn = try_store!("starting a transaction", db.begin_write());
        {
            let meta = try_store!("opening the meta table", txn.open_table(META));
            let format =
                try_store!("reading the format", meta.get("format")).map(|v| v.value().to_owned());
            match format {
                Some(f) if f == FORMAT => {}
                Some(f) => {
                    return Err(StoreError(format!(
                        "it holds format {f:?}, this herald reads {FORMAT:?}"
                    )));
                }
                None => {
                    drop(meta);
                    let names: Vec<String> = try_store!("listing tables", txn.list_tables())
                        .map(|t| t.name().to_owned())
                        .filter(|n| n != "meta")
                        .collect();
                    if !names.is_empty() {
                        return Err(StoreError(format!(
                            "it is a redb file with other tables ({})",
                            names.join(", ")
                        )));
                    }
                    let mut meta = try_store!("opening the meta table", txn.open_table(META));
                    try_store!("writing the format", meta.insert("format", FORMAT));
                }
            }
            try_store!("creating tables", txn.open_table(DELIVERIES));
            try_store!("creating tables", txn.open_table(PAYLOADS));
            try_store!("creating tables", txn.open_table(ACTIVE));
            try_store!("creating tables", txn.open_table(DELIVERED_AT));
            try_store!("creating tables", txn.open_table(DEAD_AT));
            try_store!("creating tables", txn.open_table(PROVIDERS));
        }
        try_store!("committing", txn.commit());
        Ok(())
    };
    check().map_err(|e| {
        OpenError::Other(format!(
            "{} is not a herald outbox: {e}; it was left untouched: move it away or choose another --data-dir",
            path.display()
        ))
    })?;
    Ok(db)
}

impl Store {
    /// Opens (or creates) the outbox in `data_dir`, and starts its writer thread.
    pub fn open(data_dir: &Path) -> Result<Store, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            OpenError::Other(format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = open_db(&path)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let store = Store {
            inner: Arc::new(Inner {
                path,
                db: RwLock::new(Some(Arc::new(db))),
                ops: std::sync::Mutex::new(Some(tx)),
            }),
        };
        let writer = store.clone();
        std::thread::Builder::new()
            .name("herald-outbox".into())
            .spawn(move || writer.write_loop(&rx))
            .map_err(|e| OpenError::Other(format!("cannot start the outbox writer: {e}")))?;
        Ok(store)
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The file's size in bytes.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.inner.path).map_or(0, |m| m.len())
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError("the outbox is being reopened after a storage error".into()))
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let guard = self.inner.ops.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(tx) => tx
                .send(op)
                .map_err(|_| StoreError("the outbox writer has stopped".into())),
            None => Err(StoreError("the outbox is closed".into())),
        }
    }

    /// Records deliveries durably; resolves with their records once committed.
    pub async fn append(&self, deliveries: Vec<NewDelivery>) -> Result<Vec<Record>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Append(deliveries, tx))?;
        rx.await
            .map_err(|_| StoreError("the outbox writer has stopped".into()))?
    }

    /// Queues a record's new state for the next commit.
    pub fn put(&self, record: Record) -> Result<(), StoreError> {
        self.send(Op::Put(record))
    }

    /// Queues the removal of a record.
    pub fn delete(&self, id: u64) -> Result<(), StoreError> {
        self.send(Op::Delete(id))
    }

    /// Queues a Provider's status.
    pub fn save_status(&self, provider: &str, status: ProviderStatus) -> Result<(), StoreError> {
        self.send(Op::Status(provider.to_owned(), status))
    }

    /// Queues pruning: delivered records finished before `delivered_before`, dead ones before
    /// `dead_before` (ms since the epoch).
    pub fn prune(&self, delivered_before: u64, dead_before: u64) -> Result<(), StoreError> {
        self.send(Op::Prune(delivered_before, dead_before))
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Barrier(Box::new(move |r| {
            let _ = tx.send(r);
        })))?;
        rx.await
            .map_err(|_| StoreError("the outbox writer has stopped".into()))?
    }

    /// [`Store::flush`] that blocks the calling thread.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Op::Barrier(Box::new(move |r| {
            let _ = tx.send(r);
        })))?;
        rx.recv()
            .map_err(|_| StoreError("the outbox writer has stopped".into()))?
    }

    /// Stops the writer once it has committed what was queued, and releases the file.
    pub fn close(&self) {
        let _ = self.flush_blocking();
        self.inner
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.inner
            .db
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// One record.
    pub fn get(&self, id: u64) -> Result<Option<Record>, StoreError> {
        let db = self.db()?;
        let txn = try_store!("starting a read", db.begin_read());
        let table = try_store!("opening deliveries", txn.open_table(DELIVERIES));
        let value = try_store!("reading a delivery", table.get(id));
        value.map(|v| decode(id, v.value())).transpose()
    }

    /// A record and its event, read together.
    pub fn get_with_event(&self, id: u64) -> Result<Option<(Record, Event)>, StoreError> {
        let db = self.db()?;
        let txn = try_store!("starting a read", db.begin_read());
        let deliveries = try_store!("opening deliveries", txn.open_table(DELIVERIES));
        let Some(record) = try_store!("reading a delivery", deliveries.get(id)) else {
            return Ok(None);
        };
        let record = decode(id, record.value())?;
        let payloads = try_store!("opening payloads", txn.open_table(PAYLOADS));
        let Some(event) = try_store!("reading an event", payloads.get(id)) else {
            return Ok(None);
        };
        let event = serde_json::from_slice(event.value()).map_err(|e| {
            StoreError(format!(
                "delivery {id}: its stored event is unreadable: {e}"
            ))
        })?;
        Ok(Some((record, event)))
    }

    /// Records, newest first, that pass `keep`, at most `limit`.
    pub fn list(
        &self,
        limit: usize,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Result<Vec<Record>, StoreError> {
        let db = self.db()?;
        let txn = try_store!("starting a read", db.begin_read());
        let table = try_store!("opening deliveries", txn.open_table(DELIVERIES));
        let mut out = Vec::new();
        for entry in try_store!("listing deliveries", table.iter()).rev() {
            let (k, v) = try_store!("listing deliveries", entry);
            let record = decode(k.value(), v.value())?;
            if keep(&record) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Ids of dead records, optionally of one Provider.
    pub fn dead_ids(&self, provider: Option<&str>) -> Result<Vec<u64>, StoreError> {
        let db = self.db()?;
        let txn = try_store!("starting a read", db.begin_read());
        let dead = try_store!("opening the dead index", txn.open_table(DEAD_AT));
        let table = try_store!("opening deliveries", txn.open_table(DELIVERIES));
        let mut ids = Vec::new();
        for entry in try_store!("listing dead deliveries", dead.iter()) {
            let (k, _) = try_store!("listing dead deliveries", entry);
            let (_, id) = k.value();
            if let Some(p) = provider {
                let Some(v) = try_store!("reading a delivery", table.get(id)) else {
                    continue;
                };
                if decode(id, v.value())?.provider != p {
                    continue;
                }
            }
            ids.push(id);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// What a daemon needs at start: the active deliveries, dead counts, Provider statuses.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let db = self.db()?;
        let txn = try_store!("starting a read", db.begin_read());
        let table = try_store!("opening deliveries", txn.open_table(DELIVERIES));
        let active = try_store!("opening the active index", txn.open_table(ACTIVE));
        let mut loaded = Loaded::default();
        for entry in try_store!("listing active deliveries", active.iter()) {
            let (k, _) = try_store!("listing active deliveries", entry);
            let id = k.value();
            if let Some(v) = try_store!("reading a delivery", table.get(id)) {
                loaded.active.push(decode(id, v.value())?);
            }
        }
        let dead = try_store!("opening the dead index", txn.open_table(DEAD_AT));
        for entry in try_store!("listing dead deliveries", dead.iter()) {
            let (k, _) = try_store!("listing dead deliveries", entry);
            let (_, id) = k.value();
            if let Some(v) = try_store!("reading a delivery", table.get(id)) {
                *loaded
                    .dead
                    .entry(decode(id, v.value())?.provider)
                    .or_default() += 1;
            }
        }
        let providers = try_store!("opening providers", txn.open_table(PROVIDERS));
        for entry in try_store!("listing providers", providers.iter()) {
            let (k, v) = try_store!("listing providers", entry);
            if let Ok(status) = serde_json::from_slice(v.value()) {
                loaded.providers.insert(k.value().to_owned(), status);
            }
        }
        Ok(loaded)
    }

    /// The writer thread: takes every queued op, applies them in one transaction, commits.
    fn write_loop(self, rx: &std::sync::mpsc::Receiver<Op>) {
        let mut next_id: Option<u64> = None;
        // Changes of a failed commit, applied again with the next one.
        let mut carried: Vec<Op> = Vec::new();
        loop {
            let first = if carried.is_empty() {
                match rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => return,
                }
            } else {
                match rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(op) => Some(op),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        // Closed while the last commits failed: nothing more can be written.
                        tracing::error!(
                            changes = carried.len(),
                            "the outbox closed with delivery states it could not write; those deliveries may be sent again at the next start"
                        );
                        return;
                    }
                }
            };
            let mut batch: Vec<Op> = std::mem::take(&mut carried);
            batch.extend(first);
            while batch.len() < 4096 {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            match self.commit(&batch, &mut next_id) {
                Ok(appended) => {
                    let mut appended = appended.into_iter();
                    for op in batch {
                        match op {
                            Op::Append(_, reply) => {
                                let _ = reply.send(Ok(appended.next().unwrap_or_default()));
                            }
                            Op::Barrier(reply) => reply(Ok(())),
                            _ => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, file = %self.inner.path.display(), "outbox commit failed");
                    next_id = None;
                    for op in batch {
                        match op {
                            // New events are refused (the emitter retries); state changes
                            // are kept and written with the next commit that succeeds.
                            Op::Append(_, reply) => {
                                let _ = reply.send(Err(e.clone()));
                            }
                            Op::Barrier(reply) => reply(Err(e.clone())),
                            other => carried.push(other),
                        }
                    }
                    self.reopen();
                }
            }
        }
    }

    /// After an I/O error redb refuses every later transaction until the file is reopened: take
    /// the handle back (readers hold it only for a moment) and open the file again. If that
    /// fails the slot stays empty, and the next commit tries again.
    fn reopen(&self) {
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(mut old) = slot.take() {
            let mut tries = 0;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if tries < 200 => {
                        old = still;
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still) => {
                        // Still in use: keep it, and try again after the next failure.
                        *slot = Some(still);
                        return;
                    }
                }
            }
        }
        match open_db(&self.inner.path) {
            Ok(db) => {
                tracing::info!(file = %self.inner.path.display(), "outbox reopened");
                *slot = Some(Arc::new(db));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the outbox; the next commit tries again")
            }
        }
    }

    fn commit(
        &self,
        batch: &[Op],
        next_id: &mut Option<u64>,
    ) -> Result<Vec<Vec<Record>>, StoreError> {
        if self.db().is_err() {
            // Still closed after a failed reopen: try again now.
            self.reopen();
        }
        let db = self.db()?;
        let txn = try_store!("starting a transaction", db.begin_write());
        let mut appended = Vec::new();
        {
            let mut deliveries = try_store!("opening deliveries", txn.open_table(DELIVERIES));
            let mut payloads = try_store!("opening payloads", txn.open_table(PAYLOADS));
            let mut indexes = Indexes {
                active: try_store!("opening the active index", txn.open_table(ACTIVE)),
                delivered_at: try_store!(
                    "opening the delivered index",
                    txn.open_table(DELIVERED_AT)
                ),
                dead_at: try_store!("opening the dead index", txn.open_table(DEAD_AT)),
            };
            let mut providers = try_store!("opening providers", txn.open_table(PROVIDERS));
            let mut id = match *next_id {
                Some(id) => id,
                None => try_store!("reading the last id", deliveries.last())
                    .map_or(1, |(k, _)| k.value() + 1),
            };
            let now = now_ms();
            // Only the last status of each Provider in the batch is worth writing.
            let mut last_status: HashMap<&str, usize> = HashMap::new();
            for (i, op) in batch.iter().enumerate() {
                if let Op::Status(provider, _) = op {
                    last_status.insert(provider.as_str(), i);
                }
            }
            for (i, op) in batch.iter().enumerate() {
                match op {
                    Op::Append(news, _) => {
                        let mut records = Vec::with_capacity(news.len());
                        for new in news {
                            let record = Record {
                                id,
                                provider: new.provider.clone(),
                                provider_type: new.provider_type.clone(),
                                alert: new.alert.clone(),
                                object: herald_core::text::obj_md(&new.event),
                                reason: new.event.reason.clone(),
                                accepted_at: now,
                                state: State::Pending,
                                attempts: 0,
                                last_attempt_at: None,
                                last_error: None,
                                next_attempt_at: None,
                                finished_at: None,
                            };
                            let payload = serde_json::to_vec(&new.event)
                                .map_err(|e| StoreError(format!("encoding an event: {e}")))?;
                            try_store!("writing an event", payloads.insert(id, payload.as_slice()));
                            try_store!(
                                "writing a delivery",
                                deliveries.insert(id, encode(&record).as_slice())
                            );
                            try_store!("writing the active index", indexes.active.insert(id, ()));
                            records.push(record);
                            id += 1;
                        }
                        appended.push(records);
                    }
                    Op::Put(record) => {
                        let old = try_store!("reading a delivery", deliveries.get(record.id))
                            .map(|v| decode(record.id, v.value()))
                            .transpose()?;
                        // A record deleted meanwhile stays deleted.
                        let Some(old) = old else { continue };
                        indexes.update(&old, false)?;
                        try_store!(
                            "writing a delivery",
                            deliveries.insert(record.id, encode(record).as_slice())
                        );
                        indexes.update(record, true)?;
                    }
                    Op::Delete(id) => {
                        let old = try_store!("reading a delivery", deliveries.remove(*id))
                            .map(|v| decode(*id, v.value()))
                            .transpose()?;
                        if let Some(old) = old {
                            indexes.update(&old, false)?;
                        }
                        try_store!("removing an event", payloads.remove(*id));
                    }
                    Op::Status(provider, _) if last_status.get(provider.as_str()) != Some(&i) => {}
                    Op::Status(provider, status) => {
                        let json = serde_json::to_vec(status).unwrap_or_default();
                        try_store!(
                            "writing a provider status",
                            providers.insert(provider.as_str(), json.as_slice())
                        );
                    }
                    Op::Prune(delivered_before, dead_before) => {
                        for (index_table, before) in [
                            (&mut indexes.delivered_at, *delivered_before),
                            (&mut indexes.dead_at, *dead_before),
                        ] {
                            let old: Vec<(u64, u64)> = try_store!(
                                "listing old deliveries",
                                index_table.range((0, 0)..(before, 0))
                            )
                            .filter_map(|e| e.ok().map(|(k, _)| k.value()))
                            .collect();
                            for key in old {
                                try_store!("pruning", index_table.remove(key));
                                try_store!("pruning", deliveries.remove(key.1));
                                try_store!("pruning", payloads.remove(key.1));
                            }
                        }
                    }
                    Op::Barrier(_) => {}
                }
            }
            *next_id = Some(id);
        }
        try_store!("committing", txn.commit());
        Ok(appended)
    }
}

/// The indexes a record is in, by its state: active (pending or failed), or by finish time
/// (delivered, dead) for pruning.
struct Indexes<'t> {
    active: redb::Table<'t, u64, ()>,
    delivered_at: redb::Table<'t, (u64, u64), ()>,
    dead_at: redb::Table<'t, (u64, u64), ()>,
}

impl Indexes<'_> {
    /// Adds `r` to the index of its state (`present`), or removes it.
    fn update(&mut self, r: &Record, present: bool) -> Result<(), StoreError> {
        let finished = (r.finished_at.unwrap_or(0), r.id);
        let by_time = match r.state {
            State::Pending | State::Failed => {
                if present {
                    try_store!("updating the active index", self.active.insert(r.id, ()));
                } else {
                    try_store!("updating the active index", self.active.remove(r.id));
                }
                return Ok(());
            }
            State::Delivered => &mut self.delivered_at,
            State::Dead => &mut self.dead_at,
        };
        if present {
            try_store!("updating an index", by_time.insert(finished, ()));
        } else {
            try_store!("updating an index", by_time.remove(finished));
        }
        Ok(())
    }
}

fn encode(record: &Record) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

fn decode(id: u64, bytes: &[u8]) -> Result<Record, StoreError> {
    let mut record: Record = serde_json::from_slice(bytes)
        .map_err(|e| StoreError(format!("delivery {id} is unreadable: {e}")))?;
    record.id = id;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(provider: &str, reason: &str) -> NewDelivery {
        NewDelivery {
            provider: provider.into(),
            provider_type: "generic".into(),
            alert: "apps/a".into(),
            event: Event {
                reason: reason.into(),
                message: "m".into(),
                ..Default::default()
            },
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("herald-outbox-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn records_survive_a_reopen_and_move_between_states() {
        let d = dir("states");
        let store = Store::open(&d).unwrap();
        let recs = store
            .append(vec![new("apps/p", "one"), new("apps/q", "two")])
            .await
            .unwrap();
        assert_eq!(recs.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(store.get_with_event(1).unwrap().unwrap().1.reason, "one");

        let mut done = recs[0].clone();
        done.state = State::Delivered;
        done.finished_at = Some(now_ms());
        store.put(done).unwrap();
        let mut dead = recs[1].clone();
        dead.state = State::Dead;
        dead.last_error = Some("boom".into());
        dead.finished_at = Some(now_ms());
        store.put(dead).unwrap();
        store
            .save_status(
                "apps/q",
                ProviderStatus {
                    consecutive_failures: 3,
                    ..Default::default()
                },
            )
            .unwrap();
        store.close();
        drop(store);

        let store = Store::open(&d).unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.active.is_empty());
        assert_eq!(loaded.dead["apps/q"], 1);
        assert_eq!(loaded.providers["apps/q"].consecutive_failures, 3);
        assert_eq!(store.dead_ids(Some("apps/q")).unwrap(), [2]);
        assert_eq!(store.dead_ids(Some("apps/p")).unwrap(), Vec::<u64>::new());
        // Ids keep increasing after a reopen.
        let more = store.append(vec![new("apps/p", "three")]).await.unwrap();
        assert_eq!(more[0].id, 3);
        assert_eq!(store.load().unwrap().active.len(), 1);
        let listed = store.list(10, |r| r.state == State::Dead).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].last_error.as_deref(), Some("boom"));

        // Pruning removes finished records older than the cut, and their events.
        store.prune(now_ms() + 1, 0).unwrap();
        store.flush().await.unwrap();
        assert!(store.get(1).unwrap().is_none());
        assert!(store.get_with_event(1).unwrap().is_none());
        assert!(store.get(2).unwrap().is_some(), "dead kept");
        store.delete(2).unwrap();
        store.flush().await.unwrap();
        assert!(store.get(2).unwrap().is_none());
        assert!(store.load().unwrap().dead.is_empty());
        store.close();
    }

    #[tokio::test]
    async fn a_stored_event_reads_back_identical() {
        // Redelivery after a restart posts the stored event: it must be the same event, byte
        // for byte once encoded, or idempotency keys derived from it (the Matrix txn id) change.
        let d = dir("roundtrip");
        let store = Store::open(&d).unwrap();
        let json = r#"{"involvedObject":{"kind":"Kustomization","namespace":"apps","name":"web","uid":"7d0c","apiVersion":"kustomize.toolkit.fluxcd.io/v1","resourceVersion":"42"},"severity":"error","timestamp":"2022-10-28T07:26:19Z","message":"Health check failed: \"x\" <é> \u2028","reason":"HealthCheckFailed","metadata":{"revision":"main@sha1:731f","summary":"prod","z":"last","a":"first"},"reportingController":"kustomize-controller","reportingInstance":"kc-1"}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        let mut new = new("apps/p", "x");
        new.event = event.clone();
        let ids = store.append(vec![new]).await.unwrap();
        store.close();
        drop(store);
        let store = Store::open(&d).unwrap();
        let (record, back) = store.get_with_event(ids[0].id).unwrap().unwrap();
        assert_eq!(back, event);
        assert_eq!(
            herald_core::json::to_vec(&back).unwrap(),
            herald_core::json::to_vec(&event).unwrap()
        );
        assert_eq!(record.object, "Kustomization/apps/web");
        assert_eq!(record.reason, "HealthCheckFailed");
        store.close();
    }

    #[test]
    fn a_foreign_file_is_refused_and_left_alone() {
        let d = dir("foreign");
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join(FILE_NAME);
        std::fs::write(&file, b"SQLite format 3\0 and more bytes that are not redb").unwrap();
        let e = Store::open(&d).unwrap_err().to_string();
        assert!(e.contains("is not a herald outbox"), "{e}");
        assert!(e.contains("outbox.redb"), "{e}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"SQLite format 3\0 and more bytes that are not redb"
        );

        // A redb file of someone else's.
        std::fs::remove_file(&file).unwrap();
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let t: TableDefinition<'static, &str, u64> = TableDefinition::new("theirs");
            txn.open_table(t).unwrap().insert("k", 1).unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        let e = Store::open(&d).unwrap_err().to_string();
        assert!(e.contains("other tables (theirs)"), "{e}");
    }

    #[test]
    fn a_second_opener_is_told_the_file_is_in_use() {
        let d = dir("locked");
        let store = Store::open(&d).unwrap();
        let e = Store::open(&d).unwrap_err();
        assert!(matches!(e, OpenError::Locked(_)), "{e}");
        assert!(e.to_string().contains("in use by another herald process"));
        store.close();
    }
}
