//! `herald-ceiling`: the least a forwarder built on herald's own stack (tokio, hyper's server
//! and pooled client) must do per event, for `cargo xtask bench daemon`. It answers every POST
//! `202 Accepted` and forwards its body to a sink, at most 64 at once, as herald's engine
//! does for one Provider. With `--journal FILE`, each 202 waits until the body is written to
//! that file and synced (`fdatasync`) in a group commit on a writer thread of its own, as
//! herald's outbox does, so it is the ceiling of any forwarder on this stack whose 202 means
//! "on disk". It parses, matches and records nothing else.
//!
//! It is not part of herald: a bench tool, built in release by the bench. It prints the port
//! it listens on as its first line, and answers `GET /counts` with `queued delivered failed`.
//!
//! Usage: `herald-ceiling SINK_PORT [--journal FILE]`.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Semaphore, oneshot};

/// Deliveries in flight at once: herald's default window for a generic Provider.
const IN_FLIGHT: usize = 64;
/// The journal's size: written in full before the load, then overwritten in place from its
/// start, so that a sync flushes data only and never a change of the file's size.
const JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

type Synced = oneshot::Sender<std::io::Result<()>>;

/// Bodies waiting for the next group commit, and the writer thread's wake-up.
#[derive(Default)]
struct Journal {
    waiting: Mutex<Vec<(Bytes, Synced)>>,
    added: Condvar,
}

impl Journal {
    /// Starts the writer thread on a journal file at `path`, written in full and synced first.
    fn start(path: &Path) -> std::io::Result<Arc<Journal>> {
        let file = File::create(path)?;
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..JOURNAL_BYTES / zeros.len() as u64 {
            (&file).write_all(&zeros)?;
        }
        file.sync_all()?;
        let journal = Arc::new(Journal::default());
        let writer = journal.clone();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.write_loop(&file))?;
        Ok(journal)
    }

    /// Resolves once `body` is written and synced.
    async fn append(&self, body: Bytes) -> std::io::Result<()> {
        let (synced, answer) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((body, synced));
        self.added.notify_one();
        answer
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("writer gone")))
    }

    /// One commit after another: everything added meanwhile, in one write and one sync.
    fn write_loop(&self, file: &File) {
        let (mut at, mut buffer) = (0u64, Vec::new());
        loop {
            let batch = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                while waiting.is_empty() {
                    waiting = self.added.wait(waiting).unwrap_or_else(|e| e.into_inner());
                }
                std::mem::take(&mut *waiting)
            };
            buffer.clear();
            for (body, _) in &batch {
                buffer.extend_from_slice(body);
            }
            if at + buffer.len() as u64 > JOURNAL_BYTES {
                at = 0;
            }
            let written = file
                .write_all_at(&buffer, at)
                .and_then(|()| file.sync_data());
            at += buffer.len() as u64;
            for (_, synced) in batch {
                let _ = synced.send(written.as_ref().map(|_| ()).map_err(|e| e.kind().into()));
            }
        }
    }
}

struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    sink: hyper::Uri,
    slots: Arc<Semaphore>,
    journal: Option<Arc<Journal>>,
    counts: Counts,
}

impl Forwarder {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() == Method::GET {
            let c = &self.counts;
            let text = format!(
                "{} {} {}\n",
                c.queued.load(Ordering::SeqCst),
                c.delivered.load(Ordering::SeqCst),
                c.failed.load(Ordering::SeqCst)
            );
            return Response::new(Full::new(Bytes::from(text)));
        }
        let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
            return status(400);
        };
        if let Some(journal) = &self.journal
            && journal.append(body.clone()).await.is_err()
        {
            return status(503);
        }
        // Waiting for a slot holds this connection's next request back, as a full queue would.
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return status(503);
        };
        self.counts.queued.fetch_add(1, Ordering::SeqCst);
        let forwarder = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let delivered = forwarder.post(body).await;
            let counter = if delivered {
                &forwarder.counts.delivered
            } else {
                &forwarder.counts.failed
            };
            counter.fetch_add(1, Ordering::SeqCst);
        });
        status(202)
    }

    /// POSTs `body` to the sink: `true` on a 2xx.
    async fn post(&self, body: Bytes) -> bool {
        let request = Request::post(self.sink.clone())
            .header("content-type", "application/json")
            .body(Full::new(body));
        let Ok(request) = request else { return false };
        match self.client.request(request).await {
            Ok(response) => {
                let ok = response.status().is_success();
                ok && response.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        }
    }
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or_default();
    response
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: herald-ceiling SINK_PORT [--journal FILE]";
    let sink_port: u16 = args.first().ok_or(usage)?.parse()?;
    let journal = match args.get(1).map(String::as_str) {
        None => None,
        Some("--journal") => Some(Journal::start(Path::new(args.get(2).ok_or(usage)?))?),
        Some(_) => return Err(usage.into()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        // Its one line on stdout: the bench reads the port from it.
        writeln!(std::io::stdout(), "{}", listener.local_addr()?.port())?;
        let forwarder = Arc::new(Forwarder {
            client: Client::builder(TokioExecutor::new()).build_http(),
            sink: format!("http://127.0.0.1:{sink_port}/").parse()?,
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            journal,
            counts: Counts::default(),
        });
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let forwarder = forwarder.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let forwarder = forwarder.clone();
                    async move { Ok::<_, Infallible>(forwarder.handle(request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
