//! The embedded backend: one redb file, written by one thread in group commits.
//!
//! Every table maps bytes to bytes (one set of redb's generic code in the binary):
//!
//! - `meta`: the format tag;
//! - `deliveries`: id (big-endian) to the delivery's row: its record ([`super::codec`]) and,
//!   until it is delivered, the event's JSON;
//! - `index`: `0 ‖ id` for active deliveries and `2 ‖ id` for dead ones, for the start-up scan
//!   and the dead-letter listing;
//! - `providers`: Provider id to its status.
//!
//! A new delivery is two changes (its row, its index entry), delivering it two more (its row
//! without the event, the index entry gone), and a checkpoint writes only each key's last;
//! pruning walks the rows in id order (that is, acceptance order) and removes each delivered
//! or dead one past its retention. Callers encode on their own thread; the writer thread only
//! applies bytes. A state change that keeps the event (failed, dead, retried) reads the row
//! back to carry the event over: the rare path.
//!
//! Durability costs one fsync per commit, shared by everything queued meanwhile: a commit's
//! changes are synced as one frame of the redo log ([`super::redo`]) and kept in memory in the
//! overlay ([`super::overlay`]), which readers see above the file. Four times a second a
//! checkpoint writes the overlay into redb in one durable commit, where a delivery's append
//! and its settle become one write, and empties it; at open the log's frames are applied
//! again. While checkpoints fail (a full disk), new events are refused and state changes
//! still go to the log while it has room. The callbacks of a commit run off the writer, so that
//! the next commit starts at once: in one task on the daemon's runtime ([`Store::open_on`]), or
//! on a thread of their own.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;

use herald_core::Event;

use super::codec::{
    decode_changes, decode_event, decode_record, decode_status, encode_change, encode_record,
    encode_status, new_row, row, split_row,
};
use super::overlay::{Overlaid, Overlay, Row, merge};
use super::redo::{HEADER, RedoLog};
use super::{
    Backend, Commits, Done, Health, Loaded, OpenError, Placement, Prepared, ProviderStatus, Record,
    State, StoreError, now_ms, wait,
};

/// The outbox file inside the data dir.
pub const FILE_NAME: &str = "outbox.redb";
/// The outbox's page cache.
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Deliveries waiting for the writer before new ones are refused ([`StoreError::Busy`]).
pub const MAX_QUEUED_APPENDS: usize = 16 * 1024;
/// What the `format` key of the meta table holds in a herald outbox.
const FORMAT: &[u8] = b"herald-outbox/2";
/// The format of herald's development versions before this one.
const FORMAT_1: &[u8] = b"herald-outbox/1";
/// The size of the write that checks for room after a failure: as large as a big event.
const PROBE_BYTES: usize = 64 * 1024;
/// The most changes in one commit.
const MAX_BATCH: usize = 4096;
/// The overlay's size that makes the next commit a checkpoint, whatever the time: it bounds
/// the memory that changes waiting for a checkpoint take.
const OVERLAY_BYTES: usize = 8 * 1024 * 1024;

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;
const META: Table = TableDefinition::new("meta");
const DELIVERIES: Table = TableDefinition::new("deliveries");
const INDEX: Table = TableDefinition::new("index");
const PROVIDERS: Table = TableDefinition::new("providers");
const TABLES: [Table; 4] = [META, DELIVERIES, INDEX, PROVIDERS];

/// The meta key holding the redo log's epoch: the log's frames of that epoch are not yet in
/// redb's durable state.
const LOG_EPOCH: &[u8] = b"log-epoch";
/// Table numbers in the redo log.
const T_DELIVERIES: u8 = 1;
const T_INDEX: u8 = 2;
const T_PROVIDERS: u8 = 3;

const ACTIVE: u8 = 0;
const DEAD: u8 = 2;

/// The index entry of a delivery placed at `at`: `0 ‖ id` (active), `2 ‖ id` (dead), or
/// none (delivered).
fn index_key(id: u64, at: Placement) -> Option<[u8; 9]> {
    let kind = match at {
        Placement::Active => ACTIVE,
        Placement::Finished(State::Dead, _) => DEAD,
        Placement::Finished(..) => return None,
    };
    let mut key = [kind; 9];
    key[1..].copy_from_slice(&id.to_be_bytes());
    Some(key)
}

/// The id at the end of a key (a table key or an index key).
fn id_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

macro_rules! try_store {
    ($what:expr, $e:expr) => {
        $e.map_err(|e| StoreError::Storage {
            what: $what,
            message: redb::Error::from(e).to_string(),
        })?
    };
}

/// One new delivery, encoded: its row and where it is placed.
struct Entry {
    row: Vec<u8>,
    at: Placement,
}

/// A commit's callback with its result, run on the reply thread: an enum rather than a boxed
/// closure, so that answering costs no allocation per op.
///
/// An append's rows and a settle's record come back with it, to be freed after the callback
/// where answers run: they were allocated on the runtime's threads, and freed there they go
/// back to those threads' caches, where the writer, which frees many and allocates few, sent
/// each through the allocating thread's arena lock.
enum Reply {
    Appended(Done<u64>, Result<u64, StoreError>, Vec<Entry>),
    Written(Done<()>, Result<(), StoreError>, Vec<u8>),
    Pruned(Done<usize>, Result<usize, StoreError>),
}

impl Reply {
    fn run(self) {
        match self {
            Reply::Appended(done, result, rows) => {
                done(result);
                drop(rows);
            }
            Reply::Written(done, result, record) => {
                done(result);
                drop(record);
            }
            Reply::Pruned(done, result) => done(result),
        }
    }
}

/// A change to apply in the next commit.
enum Op {
    Append(Vec<Entry>, Done<u64>),
    Settle {
        id: u64,
        record: Vec<u8>,
        from: Placement,
        to: Placement,
        done: Option<Done<()>>,
    },
    Remove {
        id: u64,
        from: Placement,
        done: Option<Done<()>>,
    },
    Status(String, Vec<u8>),
    Prune {
        delivered_before: u64,
        dead_before: u64,
        limit: usize,
        done: Done<usize>,
    },
    Barrier(Done<()>),
}

/// The open outbox. Cheap to clone; reads run on the caller's thread, writes on the writer
/// thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    log: Mutex<RedoLog>,
    overlay: Mutex<Overlay>,
    ops: Mutex<Option<Sender<Op>>>,
    queued_appends: AtomicUsize,
    health: Mutex<Health>,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    appended: AtomicU64,
    answers: Answers,
}

/// Where commits' callbacks run, batch by batch in commit order, off the writer.
struct Answers {
    /// With [`Store::open_on`]: one task on the daemon's runtime, until [`Backend::close`]
    /// lets go of it.
    task: Mutex<Option<UnboundedSender<Vec<Reply>>>>,
    /// The outbox's own thread: without a runtime, and once closing.
    thread: Sender<Vec<Reply>>,
}

impl Answers {
    /// Hands a commit's callbacks to the task, else the thread; if neither is there, runs them
    /// here.
    fn send(&self, batch: Vec<Reply>) {
        if batch.is_empty() {
            return;
        }
        let batch = match &*self.task.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(task) => match task.send(batch) {
                Ok(()) => return,
                Err(tokio::sync::mpsc::error::SendError(batch)) => batch,
            },
            None => batch,
        };
        if let Err(std::sync::mpsc::SendError(batch)) = self.thread.send(batch) {
            run_all(batch);
        }
    }

    /// From now on the thread answers.
    fn leave_the_runtime(&self) {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn run_all(batch: Vec<Reply>) {
    for reply in batch {
        reply.run();
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn open_db(path: &Path) -> Result<Database, OpenError> {
    // A bounded page cache: the daemon reads back only recent records.
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
            return Err(OpenError::Foreign {
                path: path.to_owned(),
                why: e.to_string(),
            });
        }
        Ok(Err(e)) => {
            return Err(OpenError::Other {
                path: path.to_owned(),
                message: e.to_string(),
            });
        }
        Err(_) => return Err(OpenError::Corrupt(path.to_owned())),
    };
    check_format(&db).map_err(|why| OpenError::Foreign {
        path: path.to_owned(),
        why,
    })?;
    Ok(db)
}

/// A herald outbox says so; an empty new file is made one. Anything else is not ours, and is
/// only read, never written.
fn check_format(db: &Database) -> Result<(), String> {
    let read = || -> Result<Result<bool, String>, StoreError> {
        let txn = try_store!("starting a read", db.begin_read());
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                let others: Vec<String> = try_store!("listing tables", txn.list_tables())
                    .map(|t| t.name().to_owned())
                    .collect();
                if others.is_empty() {
                    return Ok(Ok(false));
                }
                return Ok(Err(format!(
                    "it is a redb file with other tables ({})",
                    others.join(", ")
                )));
            }
            Err(redb::TableError::TableTypeMismatch { .. }) => {
                return Ok(Err(format!(
                    "it was written by an earlier development version of herald (format {}), which this herald cannot read: finish its deliveries with that version, or move it away",
                    String::from_utf8_lossy(FORMAT_1)
                )));
            }
            Err(e) => try_store!("opening the meta table", Err(e)),
        };
        match try_store!("reading the format", meta.get(b"format".as_slice())) {
            Some(f) if f.value() == FORMAT => Ok(Ok(true)),
            Some(f) => Ok(Err(format!(
                "it holds format {:?}, this herald reads {:?}",
                String::from_utf8_lossy(f.value()),
                String::from_utf8_lossy(FORMAT)
            ))),
            None => Ok(Err("its meta table has no format".to_owned())),
        }
    };
    let create = || -> Result<(), StoreError> {
        let txn = try_store!("starting a transaction", db.begin_write());
        {
            let mut meta = try_store!("opening the meta table", txn.open_table(META));
            try_store!(
                "writing the format",
                meta.insert(b"format".as_slice(), FORMAT)
            );
            drop(meta);
            for table in TABLES {
                try_store!("creating tables", txn.open_table(table));
            }
        }
        try_store!("committing", txn.commit());
        Ok(())
    };
    match read() {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => create().map_err(|e| e.to_string()),
        Ok(Err(why)) => Err(why),
        Err(e) => Err(e.to_string()),
    }
}

/// Starts the task on `runtime` that runs commits' callbacks, batch by batch in commit order.
fn answering_task(runtime: &Handle) -> UnboundedSender<Vec<Reply>> {
    let (task, mut batches) = tokio::sync::mpsc::unbounded_channel::<Vec<Reply>>();
    runtime.spawn(async move {
        while let Some(batch) = batches.recv().await {
            run_all(batch);
        }
    });
    task
}

impl Store {
    /// Opens (or creates) the outbox in `data_dir`, and starts its writer thread. Commits'
    /// callbacks run on a thread of the outbox's own.
    pub fn open(data_dir: &Path) -> Result<Store, OpenError> {
        Store::open_with(data_dir, None)
    }

    /// [`Store::open`] for a daemon: commits' callbacks run, in commit order, in one task on
    /// `runtime`, where the tasks they answer and the attempts they start are. That costs one
    /// wake-up from the writer per commit instead of one per callback, and the memory an
    /// attempt takes is allocated on the runtime's threads that free it (about 6% less CPU
    /// per event under the bench's load). [`Backend::close`] goes back to the outbox's own
    /// thread first, so that its flush never waits for a runtime that is blocked in it.
    pub fn open_on(data_dir: &Path, runtime: &Handle) -> Result<Store, OpenError> {
        Store::open_with(data_dir, Some(runtime))
    }

    fn open_with(data_dir: &Path, runtime: Option<&Handle>) -> Result<Store, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = open_db(&path)?;
        let other = |message: String| OpenError::Other {
            path: path.clone(),
            message,
        };
        let log_path = data_dir.join(super::redo::FILE_NAME);
        let mut log = RedoLog::open(&log_path)
            .map_err(|e| other(format!("cannot open {}: {e}", log_path.display())))?;
        let replayed = recover(&db, &mut log).map_err(|e| other(e.to_string()))?;
        if replayed > 0 {
            tracing::info!(
                commits = replayed,
                "outbox: applied the redo log of the last run"
            );
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (replies, answered) = std::sync::mpsc::channel::<Vec<Reply>>();
        let store = Store {
            inner: Arc::new(Inner {
                path: path.clone(),
                db: RwLock::new(Some(Arc::new(db))),
                log: Mutex::new(log),
                overlay: Mutex::new(Overlay::default()),
                ops: Mutex::new(Some(tx)),
                queued_appends: AtomicUsize::new(0),
                health: Mutex::new(Health::Ok),
                commits: AtomicU64::new(0),
                commit_micros: AtomicU64::new(0),
                appended: AtomicU64::new(0),
                answers: Answers {
                    task: Mutex::new(runtime.map(answering_task)),
                    thread: replies,
                },
            }),
        };
        let start = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map(drop)
                .map_err(|e| OpenError::Other {
                    path: path.clone(),
                    message: format!("cannot start the outbox writer: {e}"),
                })
        };
        // Callbacks run off the writer, so that the next commit starts at once: on this thread
        // without a runtime (and once closing).
        start(
            "herald-outbox-done",
            Box::new(move || answered.into_iter().for_each(run_all)),
        )?;
        let writer = store.clone();
        start("herald-outbox", Box::new(move || writer.write_loop(&rx)))?;
        Ok(store)
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Storage {
                what: "reading",
                message: "the outbox is being reopened after a storage error".into(),
            })
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let guard = self.inner.ops.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(tx) => tx.send(op).map_err(|_| StoreError::Stopped),
            None => Err(StoreError::Closed),
        }
    }

    fn set_health(&self, health: Health) {
        *self.inner.health.lock().unwrap_or_else(|e| e.into_inner()) = health;
    }

    /// Waits until everything queued so far is committed, from a plain thread.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        wait(|done| self.flush(done))
    }

    /// Sets dead or failed deliveries back to pending with their age clock reset (see
    /// the engine's own `transition::manual_retry`), for the daemon to attempt when it starts; others
    /// are skipped. Returns the ids set back. For `herald outbox` on a stopped daemon.
    pub fn retry_stopped(&self, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        let now = now_ms();
        let mut retried = Vec::new();
        for &id in ids {
            let Some(record) = self.get(id)? else {
                continue;
            };
            let from = record.placement();
            if let Some(again) = crate::transition::manual_retry(&record, now) {
                self.settle(&again, from, None)?;
                retried.push(id);
            }
        }
        self.flush_blocking()?;
        Ok(retried)
    }

    /// Removes a delivery for good, from a plain thread. `false` if it is not in the outbox.
    pub fn remove_blocking(&self, id: u64) -> Result<bool, StoreError> {
        let Some(record) = self.get(id)? else {
            return Ok(false);
        };
        wait(|done| self.remove(id, record.placement(), Some(done)))?;
        Ok(true)
    }

    /// The writer thread: takes every queued op, applies them in one transaction, commits.
    /// A panic stops it for good: the outbox reports [`Health::Stopped`] and the daemon exits.
    fn write_loop(self, rx: &Receiver<Op>) {
        let mut kept = Kept::default();
        loop {
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| self.write_once(rx, &mut kept)));
            match outcome {
                Ok(true) => {}
                Ok(false) => return,
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(error = why, "the outbox writer crashed; herald stops");
                    self.set_health(Health::Stopped(format!("the outbox writer crashed: {why}")));
                    self.inner
                        .ops
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    return;
                }
            }
        }
    }

    /// One batch; `false` once the outbox is closed and everything is written.
    fn write_once(&self, rx: &Receiver<Op>, kept: &mut Kept) -> bool {
        let failing = !matches!(
            *self.inner.health.lock().unwrap_or_else(|e| e.into_inner()),
            Health::Ok
        );
        let wait = if kept.carried.is_empty() && !failing {
            // Idle with commits only in the log: checkpoint them after a while (an empty
            // commit), so that a start after a crash in a quiet time has nothing to replay.
            self.log().idle_checkpoint_in()
        } else {
            // Something failed: try again now and then even without new changes, so that
            // health comes back by itself once the disk has room again.
            Some(Duration::from_millis(500))
        };
        let first = match wait {
            None => match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => return false,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    if !kept.carried.is_empty() {
                        tracing::error!(
                            changes = kept.carried.len(),
                            "the outbox closed with delivery states it could not write; those deliveries may be sent again at the next start"
                        );
                    }
                    return false;
                }
            },
        };
        let mut batch = std::mem::take(&mut kept.batch);
        batch.append(&mut kept.carried);
        batch.extend(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if failing {
            // State changes first, on their own: they may go to the redo log while
            // checkpoints fail, new events may not, and they must not hold each other up.
            let (appends, changes): (Vec<Op>, Vec<Op>) =
                batch.drain(..).partition(|op| matches!(op, Op::Append(..)));
            for mut part in [changes, appends] {
                if !part.is_empty() {
                    self.commit_and_answer(&mut part, kept, failing);
                }
            }
        } else {
            self.commit_and_answer(&mut batch, kept, failing);
        }
        debug_assert!(batch.is_empty(), "every op is answered or carried");
        batch.shrink_to(Kept::KEEP_OPS);
        kept.batch = batch;
        true
    }

    /// Commits `batch`, leaving it empty, and hands its answers on; on a failure, keeps its
    /// state changes in `kept.carried` for the next commit.
    fn commit_and_answer(&self, batch: &mut Vec<Op>, kept: &mut Kept, failing: bool) {
        let appended: usize = batch
            .iter()
            .map(|op| match op {
                Op::Append(entries, _) => entries.len(),
                _ => 0,
            })
            .sum();
        let started = std::time::Instant::now();
        let result = self.commit(batch, &mut kept.state, &mut kept.buffers);
        if result.is_ok() {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.inner.commits.fetch_add(1, Ordering::Relaxed);
            self.inner
                .commit_micros
                .fetch_add(micros, Ordering::Relaxed);
            self.inner
                .appended
                .fetch_add(appended as u64, Ordering::Relaxed);
        }
        self.inner
            .queued_appends
            .fetch_sub(appended, Ordering::SeqCst);
        match result {
            Ok(Committed {
                answers,
                checkpoint_failed: Some(e),
            }) => {
                // In the redo log, but the file needs reopening, and new events wait.
                tracing::error!(error = %e, file = %self.inner.path.display(), "outbox checkpoint failed");
                self.fail(e);
                self.answer_all(batch, answers);
                self.reopen();
            }
            Ok(Committed { answers, .. }) => {
                // While failing, health comes back when an event would fit again, not when
                // some small state change happens to: without new events, a probe as large
                // as a big event checks, in a transaction of its own.
                if appended > 0 || !failing {
                    self.set_health(Health::Ok);
                } else if let Err(e) = self.probe() {
                    self.fail(e);
                    self.reopen();
                } else {
                    self.set_health(Health::Ok);
                }
                self.answer_all(batch, answers);
            }
            Err(e) => {
                tracing::error!(error = %e, file = %self.inner.path.display(), "outbox commit failed");
                self.fail(e.clone());
                kept.state.next_id = None;
                let mut out: Vec<Reply> = Vec::new();
                for op in batch.drain(..) {
                    let e = e.clone();
                    match op {
                        // New events are refused (the emitter retries); state changes are
                        // kept and written with the next commit that succeeds.
                        Op::Append(rows, done) => out.push(Reply::Appended(done, Err(e), rows)),
                        Op::Prune { done, .. } => out.push(Reply::Pruned(done, Err(e))),
                        Op::Barrier(done) => out.push(Reply::Written(done, Err(e), Vec::new())),
                        other => kept.carried.push(other),
                    }
                }
                self.inner.answers.send(out);
                self.reopen();
            }
        }
    }

    /// Answers every op of a committed `batch`: `answers` as [`Self::commit`] gives them.
    fn answer_all(&self, batch: &mut Vec<Op>, answers: Vec<u64>) {
        let mut answers = answers.into_iter();
        let mut out: Vec<Reply> = Vec::with_capacity(batch.len());
        for op in batch.drain(..) {
            match op {
                Op::Append(rows, done) => {
                    let first = answers.next().unwrap_or(0);
                    out.push(Reply::Appended(done, Ok(first), rows));
                }
                Op::Settle {
                    done: Some(done),
                    record,
                    ..
                } => out.push(Reply::Written(done, Ok(()), record)),
                Op::Settle { done: None, .. } => {}
                Op::Remove { done, .. } => {
                    if let Some(done) = done {
                        out.push(Reply::Written(done, Ok(()), Vec::new()));
                    }
                }
                Op::Prune { done, .. } => {
                    let pruned = answers.next().unwrap_or(0) as usize;
                    out.push(Reply::Pruned(done, Ok(pruned)));
                }
                Op::Barrier(done) => out.push(Reply::Written(done, Ok(()), Vec::new())),
                Op::Status(..) => {}
            }
        }
        self.inner.answers.send(out);
    }

    /// Records a failure (keeping when the current run of failures began).
    fn fail(&self, error: StoreError) {
        let mut health = self.inner.health.lock().unwrap_or_else(|e| e.into_inner());
        let since = match &*health {
            Health::Failing { since, .. } => *since,
            _ => now_ms(),
        };
        *health = Health::Failing { since, error };
    }

    /// Writes and drops as much as a big event: is there room again?
    fn probe(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = try_store!("starting a transaction", db.begin_write());
        {
            let mut meta = try_store!("opening the meta table", txn.open_table(META));
            let room = vec![0u8; PROBE_BYTES];
            try_store!("writing", meta.insert(b"probe".as_slice(), room.as_slice()));
            try_store!("writing", meta.remove(b"probe".as_slice()));
        }
        try_store!("committing", txn.commit());
        Ok(())
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
        // The file holds the last checkpoint, and the overlay still holds every frame since:
        // nothing to replay.
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

    /// Commits `batch`: as one frame of the redo log, laid over the file in the overlay once
    /// it is synced; or, when a checkpoint is due or the frame cannot be written, in a
    /// checkpoint. A checkpoint that fails fails the commit, unless the batch holds only
    /// state changes and the log has room for them: then they go to the log, so that a
    /// delivery's settle can shrink what the next checkpoint must write, and the failure is
    /// reported beside the commit.
    fn commit(
        &self,
        batch: &[Op],
        state: &mut WriterState,
        buffers: &mut Buffers,
    ) -> Result<Committed, StoreError> {
        if self.db().is_err() {
            // Still closed after a failed reopen: try again now.
            self.reopen();
        }
        let db = self.db()?;
        let before = *state;
        let mut staged = Staged::new(&db, &self.inner.overlay, buffers);
        let answers = apply(&mut staged, batch, state)?;
        let after = *state;
        let mut log = self.log();
        let overlay_full = self.overlay().bytes() + staged.bytes > OVERLAY_BYTES;
        let due = log.checkpoint_due(staged.buffers.frame.len() - HEADER);
        let mut checkpoint_failed = None;
        if due.is_some() || overlay_full {
            // The checkpoint applies the batch again, from the state it started from.
            *state = before;
            let full = due.unwrap_or(false);
            match self.checkpoint(&db, &mut log, batch, state, full) {
                Ok(answers) => return Ok(Committed::new(answers)),
                Err(e) if full || batch.iter().any(|op| matches!(op, Op::Append(..))) => {
                    return Err(e);
                }
                Err(e) => {
                    *state = after;
                    checkpoint_failed = Some(e);
                }
            }
        }
        match log.append(&mut staged.buffers.frame) {
            Ok(()) => {
                staged.lay_over();
                Ok(Committed {
                    answers,
                    checkpoint_failed,
                })
            }
            Err(e) if checkpoint_failed.is_none() => {
                tracing::warn!(error = %e, "cannot write the outbox's redo log; checkpointing instead");
                *state = before;
                Ok(Committed::new(
                    self.checkpoint(&db, &mut log, batch, state, false)?,
                ))
            }
            Err(e) => Err(StoreError::Storage {
                what: "writing the redo log",
                message: e.to_string(),
            }),
        }
    }

    /// A durable commit of the overlay and then `batch`, under a new log epoch: the log starts
    /// again (`full`: it had no room left) and the overlay empties. Answers as [`Self::commit`].
    fn checkpoint(
        &self,
        db: &Database,
        log: &mut RedoLog,
        batch: &[Op],
        state: &mut WriterState,
        full: bool,
    ) -> Result<Vec<u64>, StoreError> {
        let txn = try_store!("starting a transaction", db.begin_write());
        let answers = {
            let mut tables = Tables::open(&txn)?;
            for (table, key, value) in self.overlay().iter() {
                tables.set("checkpointing", table, key, value)?;
            }
            apply(&mut tables, batch, state)?
        };
        let epoch = log.epoch() + 1;
        commit_checkpoint(txn, log, epoch, full)?;
        self.overlay().clear();
        Ok(answers)
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        self.inner.overlay.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> std::sync::MutexGuard<'_, RedoLog> {
        self.inner.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `(record, event?)` of `id`.
    fn read(
        &self,
        id: u64,
        with_event: bool,
    ) -> Result<Option<(Record, Option<Event>)>, StoreError> {
        let key = id_key(id);
        // The overlay first: what it drops at a checkpoint is in the file by then.
        let staged = self
            .overlay()
            .get(T_DELIVERIES, &key)
            .map(|row| row.map(<[u8]>::to_vec));
        let row = match staged {
            Some(row) => row,
            None => file_row(&try_store!("starting a read", self.db()?.begin_read()), id)?,
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let (record, event) = split_row(id, &row)?;
        let record = decode_record(id, record)?;
        let event = match event {
            Some(bytes) if with_event => Some(decode_event(id, bytes)?),
            _ => None,
        };
        Ok(Some((record, event)))
    }

    /// A consistent read of everything: a copy of the overlay, then a read of the file begun
    /// after it, so that what the overlay drops at a checkpoint is in the file read.
    fn view(&self) -> Result<View, StoreError> {
        let staged = self.overlay().clone();
        let db = self.db()?;
        let txn = try_store!("starting a read", db.begin_read());
        Ok(View { staged, txn })
    }
}

/// The outbox as readers see it: the file under the overlay's changes.
struct View {
    staged: Overlay,
    txn: redb::ReadTransaction,
}

impl View {
    /// The row of delivery `id`.
    fn row(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = id_key(id);
        match self.staged.get(T_DELIVERIES, &key) {
            Some(row) => Ok(row.map(<[u8]>::to_vec)),
            None => file_row(&self.txn, id),
        }
    }

    /// The rows of table `table` (numbered as in the redo log) with keys from `start` to `end`
    /// (exclusive; `None`: the table's end), in key order (`descending`: from the end).
    fn rows(
        &self,
        table: u8,
        start: &[u8],
        end: Option<&[u8]>,
        descending: bool,
    ) -> Result<Rows<'static>, StoreError> {
        let staged = self.staged.range(table, start, end);
        merged_rows(&self.txn, staged, table, start, end, descending)
    }
}

/// The row of delivery `id` in the file as `txn` reads it.
fn file_row(txn: &redb::ReadTransaction, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let deliveries = try_store!("opening deliveries", txn.open_table(DELIVERIES));
    let row = try_store!("reading a delivery", deliveries.get(id_key(id).as_slice()));
    Ok(row.map(|v| v.value().to_vec()))
}

/// The rows of table `table` in the file as `txn` reads it, with keys from `start` to `end`
/// (exclusive; `None`: the table's end), under `staged` (that table's overlay changes in that
/// range), in key order (`descending`: from the end).
fn merged_rows(
    txn: &redb::ReadTransaction,
    staged: Vec<Overlaid>,
    table: u8,
    start: &[u8],
    end: Option<&[u8]>,
    descending: bool,
) -> Result<Rows<'static>, StoreError> {
    let t = try_store!("opening a table", txn.open_table(definition(table)?));
    let range = try_store!("reading", t.range::<&[u8]>(bounds(start, end)));
    Ok(Box::new(merge(
        owned(range, descending),
        staged,
        descending,
    )))
}

/// Rows read, as owned copies.
type Rows<'a> = Box<dyn Iterator<Item = Result<Row, StoreError>> + 'a>;

/// The table numbered `table` in the redo log.
fn definition(table: u8) -> Result<Table, StoreError> {
    match table {
        T_DELIVERIES => Ok(DELIVERIES),
        T_INDEX => Ok(INDEX),
        T_PROVIDERS => Ok(PROVIDERS),
        _ => Err(no_such_table(table)),
    }
}

/// Keys from `start` to `end` (exclusive; `None`: no end).
fn bounds<'k>(start: &'k [u8], end: Option<&'k [u8]>) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// `range`'s rows as owned copies, in key order (`descending`: from the end).
fn owned<'a>(range: redb::Range<'a, &'static [u8], &'static [u8]>, descending: bool) -> Rows<'a> {
    let copy = |entry: Result<_, redb::StorageError>| -> Result<Row, StoreError> {
        let (k, v): (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>) =
            try_store!("reading", entry);
        Ok((k.value().to_vec(), v.value().to_vec()))
    };
    if descending {
        Box::new(range.rev().map(copy))
    } else {
        Box::new(range.map(copy))
    }
}

type BytesTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// Where a commit's changes go: redb's tables in a write transaction ([`Tables`]: a
/// checkpoint, and the replay at open), or a redo-log frame for the overlay ([`Staged`]:
/// every other commit). Reads see what the commit would.
trait Target {
    /// Sets `key` of `table` to `value` (`None`: removes it), `what` naming it in errors.
    fn set(
        &mut self,
        what: &'static str,
        table: u8,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StoreError>;

    /// The row of delivery `id`.
    fn row(&mut self, id: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The highest delivery id with a row, before this commit's changes.
    fn last_id(&mut self) -> Result<Option<u64>, StoreError>;

    /// The deliveries' rows from id `from` on, in id order, before this commit's changes.
    fn rows_from(&mut self, from: u64) -> Result<Rows<'_>, StoreError>;
}

/// A transaction's tables.
struct Tables<'t> {
    deliveries: BytesTable<'t>,
    index: BytesTable<'t>,
    providers: BytesTable<'t>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            deliveries: try_store!("opening deliveries", txn.open_table(DELIVERIES)),
            index: try_store!("opening the index", txn.open_table(INDEX)),
            providers: try_store!("opening providers", txn.open_table(PROVIDERS)),
        })
    }

    /// The table numbered `table` in the redo log; another number is a damaged log.
    fn table(&mut self, table: u8) -> Result<&mut BytesTable<'t>, StoreError> {
        match table {
            T_DELIVERIES => Ok(&mut self.deliveries),
            T_INDEX => Ok(&mut self.index),
            T_PROVIDERS => Ok(&mut self.providers),
            _ => Err(no_such_table(table)),
        }
    }
}

/// The error for a table number the outbox does not have: only a damaged redo log names one.
fn no_such_table(table: u8) -> StoreError {
    StoreError::Storage {
        what: "applying the redo log",
        message: format!("it names table {table}, which the outbox does not have"),
    }
}

impl Target for Tables<'_> {
    fn set(
        &mut self,
        what: &'static str,
        table: u8,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let target = self.table(table)?;
        match value {
            Some(v) => try_store!(what, target.insert(key, v)),
            None => try_store!(what, target.remove(key)),
        };
        Ok(())
    }

    fn row(&mut self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = try_store!(
            "reading a delivery",
            self.deliveries.get(id_key(id).as_slice())
        );
        Ok(row.map(|v| v.value().to_vec()))
    }

    fn last_id(&mut self) -> Result<Option<u64>, StoreError> {
        let last = try_store!("reading the last id", self.deliveries.last());
        Ok(last.and_then(|(k, _)| id_of(k.value())))
    }

    fn rows_from(&mut self, from: u64) -> Result<Rows<'_>, StoreError> {
        let start = id_key(from);
        let range = try_store!(
            "listing old deliveries",
            self.deliveries.range::<&[u8]>(bounds(&start, None))
        );
        Ok(owned(range, false))
    }
}

/// A commit on the fast path: its changes as one redo-log frame, and kept to lay over the
/// overlay once that frame is synced. It reads the file under the overlay under its own
/// changes; only the writer thread changes the overlay and the file, so no checkpoint comes
/// between its reads.
struct Staged<'a> {
    db: &'a Database,
    overlay: &'a Mutex<Overlay>,
    file: Option<redb::ReadTransaction>,
    buffers: &'a mut Buffers,
    /// The changes' keys and values, in bytes.
    bytes: usize,
}

/// A staged commit's changes and its frame, kept by the writer from one commit to the next so
/// that a commit does not grow them again from nothing (most of a commit's allocations).
struct Buffers {
    changes: Vec<(u8, Vec<u8>, Option<Vec<u8>>)>,
    frame: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Buffers {
        Buffers {
            changes: Vec::new(),
            frame: RedoLog::buffer(),
        }
    }
}

impl Buffers {
    /// The most bytes of frame kept room for, once a commit of large events has grown it.
    const KEEP_FRAME: usize = 256 * 1024;
    /// The most changes kept room for, once a backlog's commit has grown it: a commit under
    /// load makes a few dozen.
    const KEEP_CHANGES: usize = 1024;

    /// Empty, for the next commit: a bare header to append changes to.
    fn clear(&mut self) {
        self.changes.clear();
        self.changes.shrink_to(Self::KEEP_CHANGES);
        self.frame.clear();
        self.frame.shrink_to(Self::KEEP_FRAME);
        self.frame.resize(HEADER, 0);
    }
}

/// What the writer keeps from one batch to the next. Each vector keeps room for a busy
/// commit, not for the largest backlog seen.
#[derive(Default)]
struct Kept {
    /// The next id and where a prune starts.
    state: WriterState,
    /// State changes of a failed commit, applied again with the next one.
    carried: Vec<Op>,
    /// The next batch's (empty) vector.
    batch: Vec<Op>,
    buffers: Buffers,
}

impl Kept {
    /// The most ops kept room for.
    const KEEP_OPS: usize = 256;
}

impl<'a> Staged<'a> {
    fn new(db: &'a Database, overlay: &'a Mutex<Overlay>, buffers: &'a mut Buffers) -> Staged<'a> {
        buffers.clear();
        Staged {
            db,
            overlay,
            file: None,
            buffers,
            bytes: 0,
        }
    }

    fn overlay(&self) -> std::sync::MutexGuard<'a, Overlay> {
        self.overlay.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file(&mut self) -> Result<&redb::ReadTransaction, StoreError> {
        let file = match self.file.take() {
            Some(file) => file,
            None => try_store!("starting a read", self.db.begin_read()),
        };
        Ok(self.file.insert(file))
    }

    /// The deliveries' rows in the file under the overlay, from key `start` on.
    fn rows(&mut self, start: &[u8], descending: bool) -> Result<Rows<'static>, StoreError> {
        let staged = self.overlay().range(T_DELIVERIES, start, None);
        merged_rows(self.file()?, staged, T_DELIVERIES, start, None, descending)
    }

    /// Moves the changes into the overlay: their frame is synced.
    fn lay_over(self) {
        let mut overlay = self.overlay();
        for (table, key, value) in self.buffers.changes.drain(..) {
            overlay.set(table, key, value);
        }
    }
}

impl Target for Staged<'_> {
    fn set(
        &mut self,
        _what: &'static str,
        table: u8,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        definition(table)?;
        encode_change(&mut self.buffers.frame, table, key, value);
        self.bytes += key.len() + value.map_or(0, <[u8]>::len);
        self.buffers
            .changes
            .push((table, key.to_vec(), value.map(<[u8]>::to_vec)));
        Ok(())
    }

    fn row(&mut self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = id_key(id);
        let own = self
            .buffers
            .changes
            .iter()
            .rev()
            .find(|(table, k, _)| *table == T_DELIVERIES && k.as_slice() == key.as_slice());
        if let Some((_, _, row)) = own {
            return Ok(row.clone());
        }
        if let Some(row) = self.overlay().get(T_DELIVERIES, &key) {
            return Ok(row.map(<[u8]>::to_vec));
        }
        file_row(self.file()?, id)
    }

    fn last_id(&mut self) -> Result<Option<u64>, StoreError> {
        match self.rows(&[], true)?.next().transpose()? {
            Some((key, _)) => Ok(id_of(&key)),
            None => Ok(None),
        }
    }

    fn rows_from(&mut self, from: u64) -> Result<Rows<'_>, StoreError> {
        self.rows(&id_key(from), false)
    }
}

/// Applies `batch` to `t`. Answers, in order: the first id of each append and the count of
/// each prune.
fn apply(
    t: &mut impl Target,
    batch: &[Op],
    state: &mut WriterState,
) -> Result<Vec<u64>, StoreError> {
    let mut answers = Vec::with_capacity(batch.len());
    let mut id = match state.next_id {
        Some(id) => id,
        None => t.last_id()?.map_or(1, |id| id + 1),
    };
    // Only the last status of each Provider in the batch is worth writing.
    let mut last_status: HashMap<&str, usize> = HashMap::new();
    for (i, op) in batch.iter().enumerate() {
        if let Op::Status(provider, _) = op {
            last_status.insert(provider.as_str(), i);
        }
    }
    for (i, op) in batch.iter().enumerate() {
        match op {
            Op::Append(entries, _) => {
                answers.push(id);
                for e in entries {
                    t.set(
                        "writing a delivery",
                        T_DELIVERIES,
                        &id_key(id),
                        Some(&e.row),
                    )?;
                    if let Some(at) = index_key(id, e.at) {
                        t.set("writing the index", T_INDEX, &at, Some(&[]))?;
                    }
                    id += 1;
                }
            }
            Op::Settle {
                id,
                record,
                from,
                to,
                ..
            } => settle(t, *id, record, *from, *to)?,
            Op::Remove { id, from, .. } => {
                t.set("removing a delivery", T_DELIVERIES, &id_key(*id), None)?;
                if let Some(at) = index_key(*id, *from) {
                    t.set("updating the index", T_INDEX, &at, None)?;
                }
            }
            Op::Status(provider, _) if last_status.get(provider.as_str()) != Some(&i) => {}
            Op::Status(provider, status) => t.set(
                "writing a provider status",
                T_PROVIDERS,
                provider.as_bytes(),
                Some(status),
            )?,
            Op::Prune {
                delivered_before,
                dead_before,
                limit,
                ..
            } => {
                let cut = Cut {
                    delivered_before: *delivered_before,
                    dead_before: *dead_before,
                    limit: *limit,
                };
                let start = state.prune_from;
                let gone = prunable(t.rows_from(start)?, &cut, &mut state.prune_from)?;
                for (id, at) in &gone {
                    t.set("pruning", T_DELIVERIES, &id_key(*id), None)?;
                    if let Some(at) = index_key(*id, *at) {
                        t.set("pruning", T_INDEX, &at, None)?;
                    }
                }
                answers.push(gone.len() as u64);
            }
            Op::Barrier(_) => {}
        }
    }
    state.next_id = Some(id);
    Ok(answers)
}

/// Replaces delivery `id`'s record, moving its index entry from `from` to `to`.
fn settle(
    t: &mut impl Target,
    id: u64,
    record: &[u8],
    from: Placement,
    to: Placement,
) -> Result<(), StoreError> {
    let key = id_key(id);
    let new_row = if matches!(to, Placement::Finished(State::Delivered, _)) {
        row(record, None)
    } else {
        // Keeps its event: carry it over from the row as it is.
        let Some(old) = t.row(id)? else {
            // Removed meanwhile: it stays removed.
            return Ok(());
        };
        let (_, event) = split_row(id, &old)?;
        row(record, event)
    };
    t.set("writing a delivery", T_DELIVERIES, &key, Some(&new_row))?;
    let (old_at, new_at) = (index_key(id, from), index_key(id, to));
    if old_at != new_at {
        if let Some(old_at) = old_at {
            t.set("updating the index", T_INDEX, &old_at, None)?;
        }
        if let Some(new_at) = new_at {
            t.set("updating the index", T_INDEX, &new_at, Some(&[]))?;
        }
    }
    Ok(())
}

/// Records in `txn` that the redo log's frames before `epoch` are in redb.
fn set_epoch(txn: &redb::WriteTransaction, epoch: u64) -> Result<(), StoreError> {
    let mut meta = try_store!("opening the meta table", txn.open_table(META));
    try_store!(
        "writing the log epoch",
        meta.insert(LOG_EPOCH, epoch.to_le_bytes().as_slice())
    );
    Ok(())
}

/// The redo log's epoch recorded in `db`.
fn epoch_of(db: &Database) -> Result<u64, StoreError> {
    let txn = try_store!("starting a read", db.begin_read());
    let meta = try_store!("opening the meta table", txn.open_table(META));
    let epoch = try_store!("reading the log epoch", meta.get(LOG_EPOCH))
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_le_bytes);
    Ok(epoch)
}

/// Commits `txn` durably as the start of log epoch `epoch`, and starts the log again (`full`:
/// it had no room left); a log that cannot grow stays as it is.
fn commit_checkpoint(
    txn: redb::WriteTransaction,
    log: &mut RedoLog,
    epoch: u64,
    full: bool,
) -> Result<(), StoreError> {
    set_epoch(&txn, epoch)?;
    try_store!("committing", txn.commit());
    if let Err(e) = log.restart(epoch, full) {
        tracing::warn!(error = %e, "cannot grow the outbox's redo log; it stays at its size");
    }
    Ok(())
}

/// At open: applies the redo log's frames that redb does not hold durably yet, and makes
/// them durable. Returns how many commits were applied.
fn recover(db: &Database, log: &mut RedoLog) -> Result<usize, StoreError> {
    let epoch = epoch_of(db)?;
    let frames = log.frames(epoch).map_err(|e| StoreError::Storage {
        what: "reading the redo log",
        message: e.to_string(),
    })?;
    let txn = try_store!("starting a transaction", db.begin_write());
    {
        let mut t = Tables::open(&txn)?;
        for (seq, frame) in frames.iter().enumerate() {
            let changes = decode_changes(frame).map_err(|message| StoreError::Storage {
                what: "reading the redo log",
                message: format!("frame {seq} of epoch {epoch}: {message}"),
            })?;
            for (table, key, value) in changes {
                t.set("applying the redo log", table, key, value)?;
            }
        }
    }
    commit_checkpoint(txn, log, epoch + 1, false)?;
    Ok(frames.len())
}

/// What a prune removes: delivered records finished before one time, dead ones before
/// another, at most `limit` rows looked at.
struct Cut {
    delivered_before: u64,
    dead_before: u64,
    limit: usize,
}

/// The rows to remove, walking them from `*from` in id order, the delivered and dead ones finished
/// before their cut, looking at most at `cut.limit` rows. Rows are in acceptance order, and a
/// record finishes after it is accepted, so the walk ends at the first row accepted after
/// both cuts. `*from` remembers where a walk cut short by the limit goes on.
fn prunable(
    rows: Rows<'_>,
    cut: &Cut,
    from: &mut u64,
) -> Result<Vec<(u64, Placement)>, StoreError> {
    let latest = cut.delivered_before.max(cut.dead_before);
    let mut gone = Vec::new();
    let mut looked = 0;
    let mut next = None;
    for entry in rows {
        let (k, v) = entry?;
        let Some(id) = id_of(&k) else { continue };
        if looked == cut.limit {
            next = Some(id);
            break;
        }
        looked += 1;
        let (record, _) = split_row(id, &v)?;
        let r = decode_record(id, record)?;
        if r.accepted_at >= latest {
            break;
        }
        let finished = r.finished_at.unwrap_or(u64::MAX);
        let old = match r.state {
            State::Delivered => finished < cut.delivered_before,
            State::Dead => finished < cut.dead_before,
            State::Pending | State::Failed => false,
        };
        if old {
            gone.push((id, r.placement()));
        }
    }
    *from = next.unwrap_or(0);
    Ok(gone)
}

/// A commit's answers (see [`Store::commit`]), and the error of a checkpoint that failed
/// beside it.
struct Committed {
    answers: Vec<u64>,
    checkpoint_failed: Option<StoreError>,
}

impl Committed {
    fn new(answers: Vec<u64>) -> Committed {
        Committed {
            answers,
            checkpoint_failed: None,
        }
    }
}

/// What the writer remembers between commits.
#[derive(Debug, Default, Clone, Copy)]
struct WriterState {
    /// The next id to assign (read from the file when unknown).
    next_id: Option<u64>,
    /// Where the next prune walk starts.
    prune_from: u64,
}

impl Backend for Store {
    fn append(&self, deliveries: &[Prepared], done: Done<u64>) -> Result<(), StoreError> {
        let n = deliveries.len();
        if self.inner.queued_appends.fetch_add(n, Ordering::SeqCst) + n > MAX_QUEUED_APPENDS {
            self.inner.queued_appends.fetch_sub(n, Ordering::SeqCst);
            return Err(StoreError::Busy);
        }
        let entries = deliveries
            .iter()
            .map(|p| Entry {
                row: new_row(&encode_record(&p.record), &p.event),
                at: p.record.placement(),
            })
            .collect();
        self.send(Op::Append(entries, done)).inspect_err(|_| {
            self.inner.queued_appends.fetch_sub(n, Ordering::SeqCst);
        })
    }

    fn settle(
        &self,
        record: &Record,
        from: Placement,
        done: Option<Done<()>>,
    ) -> Result<(), StoreError> {
        self.send(Op::Settle {
            id: record.id,
            record: encode_record(record),
            from,
            to: record.placement(),
            done,
        })
    }

    fn remove(&self, id: u64, from: Placement, done: Option<Done<()>>) -> Result<(), StoreError> {
        self.send(Op::Remove { id, from, done })
    }

    fn save_status(&self, provider: &str, status: &ProviderStatus) -> Result<(), StoreError> {
        self.send(Op::Status(provider.to_owned(), encode_status(status)))
    }

    fn prune(
        &self,
        delivered_before: u64,
        dead_before: u64,
        limit: usize,
        done: Done<usize>,
    ) -> Result<(), StoreError> {
        self.send(Op::Prune {
            delivered_before,
            dead_before,
            limit,
            done,
        })
    }

    fn flush(&self, done: Done<()>) -> Result<(), StoreError> {
        self.send(Op::Barrier(done))
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let view = self.view()?;
        let mut loaded = Loaded::default();
        let record_of = |id: u64| -> Result<Option<Record>, StoreError> {
            match view.row(id)? {
                Some(row) => decode_record(id, split_row(id, &row)?.0).map(Some),
                None => Ok(None),
            }
        };
        for entry in view.rows(T_INDEX, &[ACTIVE], Some(&[ACTIVE + 1]), false)? {
            let (k, _) = entry?;
            if let Some(record) = id_of(&k).map(record_of).transpose()?.flatten() {
                loaded.active.push(record);
            }
        }
        for entry in view.rows(T_INDEX, &[DEAD], Some(&[DEAD + 1]), false)? {
            let (k, _) = entry?;
            if let Some(record) = id_of(&k).map(record_of).transpose()?.flatten() {
                *loaded.dead.entry(record.provider).or_default() += 1;
            }
        }
        for entry in view.rows(T_PROVIDERS, &[], None, false)? {
            let (k, v) = entry?;
            if let (Ok(name), Some(status)) = (std::str::from_utf8(&k), decode_status(&v)) {
                loaded.providers.insert(name.to_owned(), status);
            }
        }
        Ok(loaded)
    }

    fn get(&self, id: u64) -> Result<Option<Record>, StoreError> {
        Ok(self.read(id, false)?.map(|(r, _)| r))
    }

    fn get_with_event(&self, id: u64) -> Result<Option<(Record, Option<Event>)>, StoreError> {
        self.read(id, true)
    }

    fn list(
        &self,
        limit: usize,
        keep: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<Vec<Record>, StoreError> {
        let view = self.view()?;
        let mut out = Vec::new();
        for entry in view.rows(T_DELIVERIES, &[], None, true)? {
            let (k, v) = entry?;
            let Some(id) = id_of(&k) else {
                continue;
            };
            let record = decode_record(id, split_row(id, &v)?.0)?;
            if keep(&record) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn dead_ids(&self, provider: Option<&str>) -> Result<Vec<u64>, StoreError> {
        let view = self.view()?;
        let mut ids = Vec::new();
        for entry in view.rows(T_INDEX, &[DEAD], Some(&[DEAD + 1]), false)? {
            let (k, _) = entry?;
            let Some(id) = id_of(&k) else {
                continue;
            };
            if let Some(p) = provider {
                let Some(row) = view.row(id)? else {
                    continue;
                };
                if decode_record(id, split_row(id, &row)?.0)?.provider != p {
                    continue;
                }
            }
            ids.push(id);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn health(&self) -> Health {
        self.inner
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.inner.path).map_or(0, |m| m.len()) + self.log().size()
    }

    fn commits(&self) -> Commits {
        Commits {
            count: self.inner.commits.load(Ordering::Relaxed),
            micros: self.inner.commit_micros.load(Ordering::Relaxed),
            appended: self.inner.appended.load(Ordering::Relaxed),
        }
    }

    fn close(&self) {
        // The flush's answer comes from the reply thread: the caller may be the runtime's
        // only thread. The answering task runs what it already holds, then ends.
        self.inner.answers.leave_the_runtime();
        let _ = self.flush_blocking();
        self.inner
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // A clean stop leaves nothing for the next start to replay.
        let mut state = WriterState::default();
        if let Ok(db) = self.db()
            && let Err(e) = self.checkpoint(&db, &mut self.log(), &[], &mut state, false)
        {
            tracing::warn!(error = %e, "cannot checkpoint the outbox at close; the next start applies its redo log");
        }
        self.inner
            .db
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::conformance;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("herald-outbox-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// The redb store passes the backend suite.
    #[test]
    fn the_redb_store_passes_the_backend_suite() {
        let d = dir("conformance");
        conformance::run(&|| Arc::new(Store::open(&d).unwrap()) as Arc<dyn Backend>);
    }

    /// And so it does with its callbacks on a runtime, as the daemon opens it.
    #[test]
    fn the_redb_store_answering_on_a_runtime_passes_the_backend_suite() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let d = dir("conformance-on-runtime");
        conformance::run(&|| {
            Arc::new(Store::open_on(&d, runtime.handle()).unwrap()) as Arc<dyn Backend>
        });
    }

    #[test]
    fn callbacks_run_on_the_runtime_in_commit_order() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("answering-test")
            .build()
            .unwrap();
        let store = Store::open_on(&dir("answering"), runtime.handle()).unwrap();
        let (tx, answers) = std::sync::mpsc::channel();
        for n in 0..200 {
            let tx = tx.clone();
            let delivery = conformance::prepared("apps/p", Event::default());
            let done: Done<u64> = Box::new(move |first| {
                let thread = std::thread::current().name().map(str::to_owned);
                let _ = tx.send((n, first.unwrap(), thread));
            });
            store.append(&[delivery], done).unwrap();
        }
        let answers: Vec<_> = (0..200)
            .map(|_| answers.recv_timeout(Duration::from_secs(20)).unwrap())
            .collect();
        for (i, (n, id, thread)) in answers.iter().enumerate() {
            assert_eq!(*n, i, "answered out of commit order: {answers:?}");
            assert_eq!(*id, i as u64 + 1);
            assert_eq!(thread.as_deref(), Some("answering-test"));
        }
        store.close();
    }

    #[test]
    fn closing_on_the_only_thread_of_its_runtime_does_not_wait_for_that_runtime() {
        // The close's flush is answered while the runtime that would answer it is the caller.
        let d = dir("close-on-runtime");
        let (tx, closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let store = Store::open_on(&d, &Handle::current()).unwrap();
                let delivery = conformance::prepared("apps/p", Event::default());
                let (done, first) = crate::outbox::done_channel();
                store.append(&[delivery], done).unwrap();
                let first = first.await.unwrap().unwrap();
                store.close();
                tx.send(first).unwrap();
            });
        });
        assert_eq!(closed.recv_timeout(Duration::from_secs(20)), Ok(1));
    }

    #[test]
    fn a_stored_event_reads_back_identical() {
        // Redelivery after a restart posts the stored event: it must be the same event, byte
        // for byte once encoded, or idempotency keys derived from it (the Matrix txn id) change.
        let d = dir("roundtrip");
        let store = Store::open(&d).unwrap();
        let json = r#"{"involvedObject":{"kind":"Kustomization","namespace":"apps","name":"web","uid":"7d0c","apiVersion":"kustomize.toolkit.fluxcd.io/v1","resourceVersion":"42"},"severity":"error","timestamp":"2022-10-28T07:26:19Z","message":"Health check failed: \"x\" <é> \u2028","reason":"HealthCheckFailed","metadata":{"revision":"main@sha1:731f","summary":"prod","z":"last","a":"first"},"reportingController":"kustomize-controller","reportingInstance":"kc-1"}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        let first =
            conformance::append_one(&store, &conformance::prepared("apps/p", event.clone()));
        store.close();
        drop(store);
        let store = Store::open(&d).unwrap();
        let (record, back) = store.get_with_event(first).unwrap().unwrap();
        let back = back.unwrap();
        assert_eq!(back, event);
        assert_eq!(
            herald_core::json::to_vec(&back).unwrap(),
            herald_core::json::to_vec(&event).unwrap()
        );
        assert_eq!(record.object, "Kustomization/apps/web");
        store.close();
    }

    /// The data dir as a crash would leave it now: redb's file holds only the last
    /// checkpoint (later commits are in the overlay, in memory), the redo log holds every
    /// synced frame. `with_log`: false drops the log from the copy.
    fn crash_copy(from: &Path, name: &str, with_log: bool) -> PathBuf {
        let to = dir(name);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(from.join(FILE_NAME), to.join(FILE_NAME)).unwrap();
        if with_log {
            let log = super::super::redo::FILE_NAME;
            std::fs::copy(from.join(log), to.join(log)).unwrap();
        }
        to
    }

    /// A new outbox in the test dir `name`, holding one pending delivery: the dir, the
    /// outbox, the delivery's id.
    fn one_pending(name: &str) -> (PathBuf, Store, u64) {
        let d = dir(name);
        let store = Store::open(&d).unwrap();
        let id =
            conformance::append_one(&store, &conformance::prepared("apps/p", Event::default()));
        (d, store, id)
    }

    /// Opens the outbox in `dir` and checks that delivery `id` is there and pending.
    fn holds_pending(dir: &Path, id: u64) {
        let store = Store::open(dir).unwrap();
        assert_eq!(store.get(id).unwrap().unwrap().state, State::Pending);
        store.close();
    }

    fn settled(store: &Store, id: u64) {
        settled_as(store, id, State::Delivered);
    }

    fn settled_as(store: &Store, id: u64, state: State) {
        let mut record = store.get(id).unwrap().unwrap();
        let from = record.placement();
        record.state = state;
        record.finished_at = Some(now_ms());
        wait(|done| store.settle(&record, from, Some(done))).unwrap();
    }

    #[test]
    fn kept_buffers_start_each_commit_empty_and_do_not_keep_a_backlog_s_room() {
        let mut buffers = Buffers::default();
        for round in 0..2 {
            for i in 0..5_000u32 {
                encode_change(
                    &mut buffers.frame,
                    T_DELIVERIES,
                    &i.to_be_bytes(),
                    Some(&[7; 100]),
                );
                buffers
                    .changes
                    .push((T_DELIVERIES, i.to_be_bytes().to_vec(), None));
            }
            buffers.frame[..HEADER].fill(0xff);
            buffers.clear();
            assert!(buffers.changes.is_empty(), "round {round}");
            assert!(
                buffers.changes.capacity() <= Buffers::KEEP_CHANGES,
                "round {round}"
            );
            assert_eq!(buffers.frame, [0u8; HEADER], "round {round}: a bare header");
            assert!(
                buffers.frame.capacity() <= Buffers::KEEP_FRAME,
                "round {round}"
            );
        }
    }

    #[test]
    fn reads_see_the_changes_since_the_checkpoint_over_the_file() {
        let d = dir("overlay");
        let store = Store::open(&d).unwrap();
        let append = |store: &Store| {
            conformance::append_one(store, &conformance::prepared("apps/p", Event::default()))
        };
        let on_file: Vec<u64> = (0..3).map(|_| append(&store)).collect();
        store.close();
        drop(store);
        let store = Store::open(&d).unwrap();
        store.log().only_when_full();
        // A changed row, a removed one, a new one: all in the overlay, none in the file.
        settled_as(&store, on_file[0], State::Dead);
        let gone = store.get(on_file[1]).unwrap().unwrap().placement();
        wait(|done| store.remove(on_file[1], gone, Some(done))).unwrap();
        let new = append(&store);
        assert_eq!(new, on_file[2] + 1, "ids go on after the file's");

        assert_eq!(store.get(on_file[0]).unwrap().unwrap().state, State::Dead);
        assert_eq!(store.get(on_file[1]).unwrap(), None);
        let listed: Vec<u64> = store
            .list(10, &mut |_| true)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, [new, on_file[2], on_file[0]]);
        assert_eq!(store.dead_ids(Some("apps/p")).unwrap(), [on_file[0]]);
        assert_eq!(
            store.dead_ids(Some("apps/other")).unwrap(),
            Vec::<u64>::new()
        );
        let loaded = store.load().unwrap();
        let active: Vec<u64> = loaded.active.iter().map(|r| r.id).collect();
        assert_eq!(active, [on_file[2], new]);
        assert_eq!(loaded.dead["apps/p"], 1);

        // The file alone still holds the rows as they were: the reads above came from the
        // overlay.
        let bare = Store::open(&crash_copy(&d, "overlay-bare", false)).unwrap();
        assert_eq!(bare.get(on_file[0]).unwrap().unwrap().state, State::Pending);
        assert!(bare.get(on_file[1]).unwrap().is_some());
        assert_eq!(bare.get(new).unwrap(), None);
        bare.close();
        store.close();
    }

    #[test]
    fn commits_since_the_last_checkpoint_come_back_from_the_redo_log_after_a_crash() {
        let d = dir("crash");
        let store = Store::open(&d).unwrap();
        // However slow the machine, no checkpoint comes before the copies are taken.
        store.log().only_when_full();
        let event = |m: &str| Event {
            message: m.into(),
            ..Event::default()
        };
        let first = conformance::append_one(&store, &conformance::prepared("apps/p", event("one")));
        let second =
            conformance::append_one(&store, &conformance::prepared("apps/p", event("two")));
        settled(&store, first);
        store
            .save_status(
                "apps/p",
                &ProviderStatus {
                    consecutive_failures: 3,
                    ..ProviderStatus::default()
                },
            )
            .unwrap();
        store.flush_blocking().unwrap();

        // Without the log, the crash image has none of it: the commits were not durable in
        // redb (so this test would notice a log that is never needed).
        let bare = Store::open(&crash_copy(&d, "crash-bare", false)).unwrap();
        assert_eq!(bare.get(first).unwrap(), None);
        bare.close();

        let copy = crash_copy(&d, "crash-log", true);
        let back = Store::open(&copy).unwrap();
        let loaded = back.load().unwrap();
        assert_eq!(
            loaded.active.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![second]
        );
        assert_eq!(loaded.providers["apps/p"].consecutive_failures, 3);
        assert_eq!(back.get(first).unwrap().unwrap().state, State::Delivered);
        let (_, ev) = back.get_with_event(second).unwrap().unwrap();
        assert_eq!(ev.unwrap().message, "two");
        // Ids go on after the replayed ones.
        let third = conformance::append_one(&back, &conformance::prepared("apps/p", event("3")));
        assert_eq!(third, second + 1);
        back.close();
        // The replay was made durable: the log is not needed again.
        std::fs::remove_file(copy.join(super::super::redo::FILE_NAME)).unwrap();
        holds_pending(&copy, third);
        store.close();
    }

    #[test]
    fn a_redo_log_naming_an_unknown_table_stops_the_open_with_an_error() {
        let d = dir("unknown-table");
        Store::open(&d).unwrap().close();
        let epoch = epoch_of(&open_db(&d.join(FILE_NAME)).unwrap()).unwrap();
        let mut log = RedoLog::open(&d.join(super::super::redo::FILE_NAME)).unwrap();
        log.restart(epoch, false).unwrap();
        let mut frame = RedoLog::buffer();
        encode_change(&mut frame, 9, b"key", Some(b"value"));
        log.append(&mut frame).unwrap();
        drop(log);
        let e = Store::open(&d).unwrap_err().to_string();
        assert!(e.contains("it names table 9"), "{e}");
    }

    #[test]
    fn an_idle_outbox_checkpoints_its_redo_log() {
        let (d, store, id) = one_pending("idle");
        assert!(store.log().has_frames());
        let waited = std::time::Instant::now();
        while store.log().has_frames() {
            assert!(waited.elapsed() < Duration::from_secs(10), "no checkpoint");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            waited.elapsed() >= Duration::from_millis(100),
            "{:?}",
            waited.elapsed()
        );
        holds_pending(&crash_copy(&d, "idle-copy", false), id);
        store.close();
    }

    #[test]
    fn a_clean_close_checkpoints_so_the_file_alone_holds_everything() {
        let (d, store, id) = one_pending("clean");
        store.close();
        drop(store);
        holds_pending(&crash_copy(&d, "clean-copy", false), id);
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

        // An outbox of herald's first development format.
        std::fs::remove_file(&file).unwrap();
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let t: TableDefinition<'static, &str, &str> = TableDefinition::new("meta");
            txn.open_table(t)
                .unwrap()
                .insert("format", "herald-outbox/1")
                .unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        let e = Store::open(&d).unwrap_err().to_string();
        assert!(
            e.contains("an earlier development version of herald (format herald-outbox/1)"),
            "{e}"
        );
        assert!(e.contains("left untouched"), "{e}");
        // Still that outbox, readable by the version that wrote it (redb's open may rewrite
        // its header, never the tables).
        let db = Database::open(&file).unwrap();
        let txn = db.begin_read().unwrap();
        let t: TableDefinition<'static, &str, &str> = TableDefinition::new("meta");
        let meta = txn.open_table(t).unwrap();
        assert_eq!(
            meta.get("format").unwrap().unwrap().value(),
            "herald-outbox/1"
        );
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

    #[test]
    fn too_many_queued_appends_are_refused_not_queued() {
        let d = dir("busy");
        let store = Store::open(&d).unwrap();
        let many: Vec<Prepared> = (0..MAX_QUEUED_APPENDS + 1)
            .map(|_| conformance::prepared("apps/p", Event::default()))
            .collect();
        let e = store.append(&many, Box::new(|_| {})).unwrap_err();
        assert_eq!(e, StoreError::Busy);
        assert_eq!(store.inner.queued_appends.load(Ordering::SeqCst), 0);
        store.close();
    }
}
