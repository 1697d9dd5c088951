//! The HTTP listeners: the Flux-compatible event server, health, and metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use herald_core::{Event, metadata};

use crate::Shared;
use crate::dispatch::Rejection;
use crate::metrics::{CodeLabels, HttpLabels};
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
    mut shutdown: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
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
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req, peer).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
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
    let method = req.method().to_string();
    let resp = event_response(&shared, req).await;
    let code = resp.status().as_u16().to_string();
    shared
        .metrics
        .events_received
        .get_or_create(&CodeLabels { code: code.clone() })
        .inc();
    shared
        .metrics
        .http_seconds
        .get_or_create(&HttpLabels {
            code,
            method,
            handler: "/".to_owned(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn event_response(shared: &Shared, req: Request<Incoming>) -> Reply {
    if shared.stopping.load(Ordering::SeqCst) {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "herald is shutting down");
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
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, None, Bytes::new());
    }
    let body = match tokio::time::timeout(
        READ_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Err(_) => {
            return json_error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not received in time",
            );
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, None, Bytes::new());
        }
        Ok(Err(e)) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("failed to read the request body: {e}"),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let mut event: Event = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("invalid event JSON: {e}")),
    };
    metadata::cleanup(&mut event);
    // Check for room before the duplicate check: a 503 must not use up the event's window,
    // or the emitter's retry would be answered 429 and the event lost.
    if !shared.dispatcher.has_room() {
        return queue_full();
    }

    let decision = shared
        .limiter
        .check(ratelimit::key(&event), Instant::now(), SystemTime::now());
    let reset = match decision {
        Decision::Duplicate { reset } => {
            shared.metrics.duplicates.inc();
            tracing::debug!(object = %herald_core::text::obj_md(&event), "Discarding event, rate limiting duplicate events");
            let mut resp = reply(
                StatusCode::TOO_MANY_REQUESTS,
                Some("text/plain; charset=utf-8"),
                "Too Many Requests\n",
            );
            rate_limit_headers(&mut resp, reset, true);
            return resp;
        }
        Decision::Allowed { reset } => Some(reset),
        Decision::Off => None,
    };

    let snapshot = shared.snapshot();
    let planned = shared.dispatcher.plan(&snapshot, &event);
    let mut resp = match shared.dispatcher.accept(planned).await {
        Ok(_) => reply(StatusCode::ACCEPTED, None, Bytes::new()),
        Err(Rejection::Full) => {
            shared.limiter.forget(&ratelimit::key(&event));
            queue_full()
        }
        Err(Rejection::Store(e)) => {
            // Not recorded, so not accepted: the emitter must retry, and its retry must not be
            // taken for a duplicate.
            shared.limiter.forget(&ratelimit::key(&event));
            shared.metrics.outbox_errors.inc();
            tracing::error!(error = %e, "event refused: the outbox cannot record it");
            let mut r = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("herald cannot record the event durably ({e}); retry later"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            r
        }
    };
    if let Some(reset) = reset {
        rate_limit_headers(&mut resp, reset, false);
    }
    resp
}

fn queue_full() -> Reply {
    let mut r = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many deliveries pending; retry later",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    r
}

fn rate_limit_headers(resp: &mut Reply, reset: SystemTime, retry_after: bool) {
    let reset = ratelimit::rfc1123(reset);
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", header::HeaderValue::from_static("1"));
    h.insert(
        "x-ratelimit-remaining",
        header::HeaderValue::from_static("0"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&reset) {
        if retry_after {
            h.insert(header::RETRY_AFTER, v.clone());
        }
        h.insert("x-ratelimit-reset", v);
    }
}

/// `/healthz` and `/readyz`.
pub(crate) async fn handle_health(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            reply(StatusCode::OK, Some("text/plain"), "ok\n")
        }
        (&Method::GET | &Method::HEAD, "/readyz") => {
            if shared.ready.load(Ordering::SeqCst) && !shared.stopping.load(Ordering::SeqCst) {
                // A failing Provider is reported, but readiness holds: failing it would take
                // herald out of its Service and lose the events of every other Provider.
                let degraded = shared.dispatcher.degraded();
                if degraded.is_empty() {
                    return reply(StatusCode::OK, Some("text/plain"), "ok\n");
                }
                let mut body = format!("degraded: {} provider(s) failing\n", degraded.len());
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
        (_, path) if path.starts_with("/api/v1/") || path == "/api/v1" => {
            crate::api::handle(&shared, req).await
        }
        _ => reply(StatusCode::NOT_FOUND, Some("text/plain"), "not found\n"),
    }
}

/// `/metrics` in the Prometheus text format.
pub(crate) async fn handle_metrics(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, Some("text/plain"), "not found\n");
    }
    shared.dispatcher.refresh_metrics();
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
