//! The HTTP listeners: the Flux-compatible event server, health, and metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use herald_core::{Event, metadata};

use crate::Shared;
use crate::dispatch::Rejection;
use crate::guard::{Guard, Refusal};
use crate::metrics::method_label;
use crate::outbox::{Health, StoreError};
use crate::ratelimit::{self, Decision};

/// The largest event body accepted: 3 MiB, exactly as Flux.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// Time allowed to send the request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to read a whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head (request line and headers).
pub const MAX_HEADER_BYTES: usize = 256 * 1024;

type Reply = Response<Full<Bytes>>;

/// Serves `handler` on `listener` until `shutdown` turns true.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    serve_guarded(listener, shutdown, None, handler).await;
}

/// A 503 written straight to a connection over the cap, before it is closed.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 46\r\n\r\n{\"error\":\"too many connections; retry later\"}";

/// A request handler behind one pointer type: every listener then shares one copy of hyper's
/// connection code (per stream type) instead of one per handler (five handlers: 90 KiB of
/// binary). One box per request is nothing beside the request itself.
type Handler = Arc<dyn Fn(Request<Incoming>, SocketAddr) -> BoxedReply + Send + Sync>;
type BoxedReply = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Serves `handler` on `listener` until `shutdown` turns true; with a `guard`, connections
/// get its TLS, its connection cap and its header timeout.
///
/// Over the cap a connection is answered a canned 503 (see [`shed`]), so a flood of
/// connections costs a bounded amount of memory, never memory that grows with the flood.
pub(crate) async fn serve_guarded<F, Fut>(
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    guard: Option<Arc<Guard>>,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let handler: Handler = Arc::new(move |req, peer| Box::pin(handler(req, peer)));
    serve_connections(listener, shutdown, guard, handler).await;
}

async fn serve_connections(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    guard: Option<Arc<Guard>>,
    handler: Handler,
) {
    let slots = guard.as_ref().map(|g| {
        Arc::new(Semaphore::new(
            g.max_connections.min(Semaphore::MAX_PERMITS),
        ))
    });
    let header_timeout = guard.as_ref().map_or(HEADER_TIMEOUT, |g| g.header_timeout);
    let answering = Arc::new(Semaphore::new(SHED_AT_ONCE));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::stopped(&mut shutdown) => return,
        };
        let tls = guard.as_ref().and_then(|g| g.tls());
        let permit = match &slots {
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    shed(stream, tls.is_some(), peer, &answering);
                    continue;
                }
            },
            None => None,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let reply = handler(req, peer);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEADER_BYTES);
            let result = match tls {
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Connections over the cap being answered at once; beyond this they are closed unanswered.
const SHED_AT_ONCE: usize = 64;
/// How long a shed connection may take to receive its 503.
const SHED_TIME: Duration = Duration::from_secs(1);

/// Answers a connection over the cap with a canned 503 and closes it. The answer is written,
/// the write side shut, and what the client sends is read and dropped for at most
/// [`SHED_TIME`] (closing with unread data would reset the connection and could lose the 503).
/// At most [`SHED_AT_ONCE`] are answered at once, each with a fixed 4 KiB buffer; the rest are
/// closed at once. Over TLS no plain answer is possible: the connection is closed.
fn shed(stream: tokio::net::TcpStream, tls: bool, peer: SocketAddr, answering: &Arc<Semaphore>) {
    tracing::debug!(%peer, "connection cap reached: connection shed");
    if tls {
        return;
    }
    let Ok(permit) = answering.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = tokio::time::timeout(SHED_TIME, async {
            stream.write_all(SHED_RESPONSE).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

fn reply(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Reply {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Some(ct) = content_type
        && let Ok(v) = header::HeaderValue::from_str(ct)
    {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn json_error(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    reply(status, Some("application/json"), body)
}

/// The event endpoint: any path, any method, like Flux.
pub(crate) async fn handle_event(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    let started = Instant::now();
    let method = method_label(req.method());
    let resp = event_response(&shared, req).await;
    shared.metrics.event_answered(
        resp.status().as_u16(),
        method,
        started.elapsed().as_secs_f64(),
    );
    resp
}

async fn event_response(shared: &Shared, req: Request<Incoming>) -> Reply {
    if shared.stopping.load(Ordering::SeqCst) {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "herald is shutting down");
    }
    if let Err(refusal) = shared.guard.authorize(req.headers()) {
        return unauthorized(refusal);
    }
    // Shed load before reading anything: under overload a 503 must cost next to nothing.
    if !shared.dispatcher.has_room() {
        return queue_full();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let deadline = tokio::time::Instant::now() + shared.guard.read_timeout;
    if let Some(len) = declared.filter(|len| *len > MAX_BODY as u64) {
        // A client waiting for `100 Continue` has sent nothing yet: answer at once. Others
        // are writing the body: read it away first (up to a bound), so that one that reads
        // only once it has written everything still gets the 413.
        let waiting = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let drained = !waiting
            && len <= (MAX_BODY + MAX_DRAIN) as u64
            && drain(req.into_body(), MAX_DRAIN + MAX_BODY, deadline).await;
        return too_large(drained);
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, declared, deadline).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { drained }) => return too_large(drained),
        Err(BodyError::Timeout) => {
            return json_error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not received in time",
            );
        }
        Err(BodyError::Read(e)) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "failed to read the request body: {}",
                    bounded(&e.to_string())
                ),
            );
        }
    };
    if let Err(refusal) = shared.guard.verify_body(&parts.headers, &body) {
        return unauthorized(refusal);
    }
    let mut event: Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid event JSON: {}", bounded(&e.to_string())),
            );
        }
    };
    metadata::cleanup(&mut event);
    // Check for room before the duplicate check: a 503 must not use up the event's window,
    // or the emitter's retry would be answered 429 and the event lost.
    if !shared.dispatcher.has_room() {
        return queue_full();
    }
    // The duplicate key reads the token, which planning drops from the event it takes.
    let key = ratelimit::key(&event);
    let snapshot = shared.snapshot();
    let planned = shared.dispatcher.plan(&snapshot, event);
    if planned.is_empty() {
        // Nothing to deliver: no duplicate window is kept for it (they would only grow).
        return reply(StatusCode::ACCEPTED, None, Bytes::new());
    }

    let decision = shared.limiter.check(key, Instant::now(), SystemTime::now());
    let reset = match decision {
        Decision::Duplicate { reset } => {
            tracing::debug!(object = %herald_core::text::obj_md(&planned[0].event), "Discarding event, rate limiting duplicate events");
            return duplicate(shared, reset);
        }
        Decision::Allowed { reset } => Some(reset),
        Decision::Off => None,
    };
    let interval = shared.limiter.interval();
    let store = shared.dispatcher.store().clone();
    if let Some(reset) = reset
        && let Some(take) = store.take_window(key, interval)
    {
        match take.await {
            Ok(true) => {}
            Ok(false) => {
                // A duplicate posted to another replica within the window.
                return duplicate(shared, reset);
            }
            // The append fails too if the shared outbox is away; if not, the event is
            // accepted without the shared window rather than refused.
            Err(e) => tracing::warn!(error = %e, "cannot check the shared duplicate window"),
        }
    }

    // Not recorded, so not accepted: the emitter must retry, and its retry must not be taken
    // for a duplicate. This holds even if the client is gone before the commit ends.
    let limiter = shared.limiter.clone();
    let windows = store.clone();
    let forget = Box::new(move || {
        limiter.forget(&key);
        windows.forget_window(key, interval);
    });
    let accepted = shared.dispatcher.accept(planned, forget).await;
    if accepted.is_err() {
        shared.limiter.forget(&key);
        store.forget_window(key, interval);
    }
    let mut resp = match accepted {
        Ok(_) => reply(StatusCode::ACCEPTED, None, Bytes::new()),
        Err(Rejection::Full) => queue_full(),
        Err(Rejection::Store(StoreError::Busy)) => {
            retry_later("herald has too many events waiting to be recorded; retry later")
        }
        Err(Rejection::Store(e)) => {
            shared.metrics.outbox_errors.inc();
            tracing::error!(error = %e, "event refused: the outbox cannot record it");
            retry_later(&format!(
                "herald cannot record the event durably ({e}); retry later"
            ))
        }
    };
    if let Some(reset) = reset {
        rate_limit_headers(&mut resp, reset, false);
    }
    resp
}

/// How much of a body over [`MAX_BODY`] is read and dropped, beyond the limit, before the 413
/// (within the body's read timeout). A client that writes its whole body before reading the
/// answer (Python's `http.client`, for one) would otherwise meet a reset connection instead
/// of the 413, as nginx's lingering close and Go's server avoid too. A larger body is answered
/// at once and its connection closed.
pub const MAX_DRAIN: usize = 32 * 1024 * 1024;

/// Why a body was not read.
enum BodyError {
    /// Over [`MAX_BODY`]; `drained` when the rest was read away too.
    TooLarge { drained: bool },
    /// Not received within the read timeout.
    Timeout,
    /// The connection failed.
    Read(hyper::Error),
}

/// Reads a body of at most [`MAX_BODY`] bytes before `deadline`.
async fn read_body(
    mut body: Incoming,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
) -> Result<Bytes, BodyError> {
    let mut collected: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => return Ok(Bytes::from(collected)),
            Ok(Some(Err(e))) => return Err(BodyError::Read(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if collected.len() + data.len() > MAX_BODY {
            let drained = drain(body, MAX_DRAIN, deadline).await;
            return Err(BodyError::TooLarge { drained });
        }
        collected.extend_from_slice(&data);
    }
}

/// Reads and drops the rest of `body`: true when it ended within `budget` bytes and before
/// `deadline`.
async fn drain(mut body: Incoming, budget: usize, deadline: tokio::time::Instant) -> bool {
    let mut read = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > budget {
                    return false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// 413 with an empty body, as Flux answers; the connection is closed unless the whole body was
/// read.
fn too_large(drained: bool) -> Reply {
    let mut r = reply(StatusCode::PAYLOAD_TOO_LARGE, None, Bytes::new());
    if !drained {
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    r
}

/// The longest error detail echoed back: serde's messages quote the offending value, which can
/// be megabytes long.
const MAX_DETAIL: usize = 256;

/// `text` cut to [`MAX_DETAIL`] bytes at a character boundary, marked when cut.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_DETAIL {
        return text.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len())
}

/// 401 that says which check failed and nothing about the expected values.
fn unauthorized(refusal: Refusal) -> Reply {
    let (message, challenge) = match refusal {
        Refusal::Token => ("missing or invalid bearer token", "Bearer"),
        Refusal::Signature => (
            "missing or invalid X-Signature (expected sha256=<hex HMAC-SHA256 of the body>)",
            "HMAC-SHA256",
        ),
    };
    tracing::debug!(reason = message, "event request refused");
    let mut r = json_error(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(challenge),
    );
    r
}

fn queue_full() -> Reply {
    retry_later("too many deliveries pending; retry later")
}

/// 503 with `Retry-After: 5`: the emitter should send the event again.
fn retry_later(message: &str) -> Reply {
    let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    r
}

/// The rate-limit header names, checked once at compile time rather than per answer.
const RATELIMIT_LIMIT: header::HeaderName = header::HeaderName::from_static("x-ratelimit-limit");
const RATELIMIT_REMAINING: header::HeaderName =
    header::HeaderName::from_static("x-ratelimit-remaining");
const RATELIMIT_RESET: header::HeaderName = header::HeaderName::from_static("x-ratelimit-reset");

/// Flux's answer to a duplicate within the window: 429 with the window's end.
fn duplicate(shared: &Shared, reset: SystemTime) -> Reply {
    shared.metrics.duplicates.inc();
    let mut resp = reply(
        StatusCode::TOO_MANY_REQUESTS,
        Some("text/plain; charset=utf-8"),
        "Too Many Requests\n",
    );
    rate_limit_headers(&mut resp, reset, true);
    resp
}

fn rate_limit_headers(resp: &mut Reply, reset: SystemTime, retry_after: bool) {
    let h = resp.headers_mut();
    h.insert(RATELIMIT_LIMIT, header::HeaderValue::from_static("1"));
    h.insert(RATELIMIT_REMAINING, header::HeaderValue::from_static("0"));
    if let Some(v) = reset_header(reset) {
        if retry_after {
            h.insert(header::RETRY_AFTER, v.clone());
        }
        h.insert(RATELIMIT_RESET, v);
    }
}

thread_local! {
    /// The last reset header made on this thread, by its second: under load every event of a
    /// second gets the same one, so it is formatted once a second, not once an event.
    static RESET_HEADER: std::cell::RefCell<Option<(u64, header::HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// `reset` as the header value Flux sends (RFC 1123, to the second).
fn reset_header(reset: SystemTime) -> Option<header::HeaderValue> {
    let Ok(since_epoch) = reset.duration_since(SystemTime::UNIX_EPOCH) else {
        return header::HeaderValue::from_str(&ratelimit::rfc1123(reset)).ok();
    };
    let second = since_epoch.as_secs();
    RESET_HEADER.with(|cached| {
        let mut cached = cached.borrow_mut();
        if let Some((at, value)) = cached.as_ref()
            && *at == second
        {
            return Some(value.clone());
        }
        let value = header::HeaderValue::from_str(&ratelimit::rfc1123(reset)).ok()?;
        *cached = Some((second, value.clone()));
        Some(value)
    })
}

/// `/healthz` and `/readyz`.
pub(crate) async fn handle_health(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            reply(StatusCode::OK, Some("text/plain"), "ok\n")
        }
        (&Method::GET | &Method::HEAD, "/readyz") => {
            match shared.dispatcher.store().health() {
                Health::Ok => {}
                Health::Failing { since, error } => {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some("text/plain"),
                        format!(
                            "not ready: the outbox cannot record events since {}: {error}\n",
                            crate::dispatch::rfc3339(since)
                        ),
                    );
                }
                Health::Stopped(why) => {
                    return reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some("text/plain"),
                        format!("not ready: {why}\n"),
                    );
                }
            }
            if shared.ready.load(Ordering::SeqCst) && !shared.stopping.load(Ordering::SeqCst) {
                // A failing Provider is reported, but readiness holds: failing it would take
                // herald out of its Service and lose the events of every other Provider.
                let degraded = shared.dispatcher.degraded();
                let snapshot = shared.snapshot();
                let not_ready: Vec<_> = snapshot.catalog.not_ready().collect();
                if degraded.is_empty() && not_ready.is_empty() {
                    return reply(StatusCode::OK, Some("text/plain"), "ok\n");
                }
                let mut body = String::new();
                if !not_ready.is_empty() {
                    body.push_str(&format!(
                        "not ready: {} object(s) of the manifests (the others work; GET /api/v1/objects for all)\n",
                        not_ready.len()
                    ));
                    for object in &not_ready {
                        body.push_str(&format!(
                            "- {}: {}\n",
                            object.key,
                            object.reasons().join("; ")
                        ));
                    }
                }
                if !degraded.is_empty() {
                    body.push_str(&format!(
                        "degraded: {} provider(s) failing\n",
                        degraded.len()
                    ));
                }
                for p in degraded {
                    body.push_str(&format!(
                        "- {} ({}): failing since {}, {} consecutive failures, {} waiting; last error: {}\n",
                        p.provider,
                        p.provider_type,
                        p.failing_since.as_deref().unwrap_or("?"),
                        p.consecutive_failures,
                        p.pending,
                        p.last_error.as_deref().unwrap_or("")
                    ));
                }
                let mut r = reply(StatusCode::OK, Some("text/plain"), body);
                r.headers_mut().insert(
                    "x-herald-health",
                    header::HeaderValue::from_static("degraded"),
                );
                r
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some("text/plain"),
                    "not ready\n",
                )
            }
        }
        (_, path) if path.starts_with("/api/v1/") || path == "/api/v1" => json_error(
            StatusCode::NOT_FOUND,
            "the status API is served on the API address (--api-addr), not on the health address",
        ),
        _ => reply(StatusCode::NOT_FOUND, Some("text/plain"), "not found\n"),
    }
}

/// `/metrics` in the Prometheus text format.
pub(crate) async fn handle_metrics(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, Some("text/plain"), "not found\n");
    }
    shared.dispatcher.refresh_metrics(&shared.metrics);
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &shared.prometheus) {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("text/plain"),
            format!("encoding failed: {e}\n"),
        );
    }
    reply(
        StatusCode::OK,
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        out,
    )
}
