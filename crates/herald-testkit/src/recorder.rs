//! A recording HTTP/1.1 server on 127.0.0.1 with scripted replies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::ServerTls;

/// One scripted answer of a [`Recorder`]. `Reply::default()` is `200` with an empty body.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code (100 to 999).
    pub status: u16,
    /// Response headers, sent in this order.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
    /// How long to wait, after the request body was read and recorded, before answering.
    pub delay: Option<Duration>,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::status(200)
    }
}

impl Reply {
    /// A reply with this status, no headers and an empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the response body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A request as the [`Recorder`] received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// `POST`, `PUT`, ...
    pub method: String,
    /// The request target as received: path and query (`/hook?x=1`), or the absolute URL of
    /// an absolute-form request.
    pub path: String,
    /// Header names in lowercase with their values, in the order received (hyper groups the
    /// values of a repeated name at the place where the name first appeared).
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// The status code it was answered with.
    pub answered: u16,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as UTF-8. Panics if it is not UTF-8.
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|e| panic!("body of {} {} is not UTF-8: {e}", self.method, self.path))
    }
}

/// What the server thread and the [`Recorder`] handle share.
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    replies: Mutex<VecDeque<Reply>>,
    default_reply: Mutex<Reply>,
    count: watch::Sender<usize>,
    connections: AtomicUsize,
}

/// Locks a mutex, ignoring poisoning: a panicking test must not hide the recorded requests.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The first value of header `name` (case-insensitive) in `headers`.
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A recording HTTP/1.1 server on `127.0.0.1` and a random port.
///
/// It runs on its own thread with its own Tokio runtime, so it keeps answering whatever the
/// test's runtime is doing (a current-thread test blocked in `spawn_blocking`, a synchronous
/// test). It stops when the `Recorder` is dropped.
///
/// Every request is recorded once its body has been read, then answered with the next queued
/// [`Reply`] (or the default reply, at first `200` with an empty body, when none is queued),
/// after the reply's delay.
pub struct Recorder {
    addr: SocketAddr,
    url: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("url", &self.url)
            .field("requests", &lock(&self.shared.requests).len())
            .finish()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The server may already be gone; nothing to do then.
            let _ = tx.send(());
        }
    }
}

impl Recorder {
    /// Starts a plain HTTP recorder; [`Recorder::url`] is `http://127.0.0.1:PORT`.
    pub async fn start() -> Recorder {
        Recorder::launch(None)
    }

    /// Starts an HTTPS recorder; [`Recorder::url`] is `https://127.0.0.1:PORT`. The
    /// certificate must be valid for the IP address 127.0.0.1 (those of
    /// [`crate::TestCa::server_cert`] are valid for `127.0.0.1` and `localhost`). With
    /// `client_ca_pem` set, connections without a client certificate from that CA fail
    /// during the handshake and are never recorded. Panics on bad PEM.
    pub async fn start_tls(tls: ServerTls) -> Recorder {
        Recorder::launch(Some(TlsAcceptor::from(tls.server_config())))
    }

    /// Starts a plain HTTP recorder on a given address (for a receiver that comes back on the
    /// port a daemon was configured with). Panics if the address cannot be bound.
    pub async fn start_at(addr: SocketAddr) -> Recorder {
        Recorder::launch_at(None, addr)
    }

    fn launch(tls: Option<TlsAcceptor>) -> Recorder {
        Recorder::launch_at(tls, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn launch_at(tls: Option<TlsAcceptor>, addr: SocketAddr) -> Recorder {
        let listener = std::net::TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("bind a recorder on {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("make the recorder listener non-blocking");
        let addr = listener.local_addr().expect("recorder listener address");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            replies: Mutex::new(VecDeque::new()),
            default_reply: Mutex::new(Reply::default()),
            count: watch::Sender::new(0),
            connections: AtomicUsize::new(0),
        });
        let server_shared = shared.clone();
        let tx = spawn_server(
            listener,
            format!("recorder-{}", addr.port()),
            move |listener| accept_loop(listener, tls, server_shared),
        );
        Recorder {
            addr,
            url: format!("{scheme}://{addr}"),
            shared,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply; replies are used in the order queued.
    pub fn push_reply(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Sets the reply used once the queued ones are used up (at first `200`, empty).
    pub fn set_default_reply(&self, reply: Reply) {
        *lock(&self.shared.default_reply) = reply;
    }

    /// Every request recorded so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// How many connections were accepted (TCP level, before any TLS handshake). Counts
    /// attempts that never became a request, such as failed TLS handshakes.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests were recorded and returns all of them. Panics, with
    /// what was received, if that does not happen within `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let mut rx = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n)).await;
        if !matches!(reached, Ok(Ok(_))) {
            let got: Vec<String> = self
                .requests()
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect();
            panic!(
                "recorder {} expected at least {n} request(s) within {timeout:?}, got {}: {got:?}",
                self.url,
                got.len()
            );
        }
        self.requests()
    }
}

/// Runs `serve` on `listener` in a thread of its own with its own Tokio runtime (so that it
/// answers whatever the test's runtime is doing), until the returned sender is dropped or
/// fires.
pub(crate) fn spawn_server<F, Fut>(
    listener: std::net::TcpListener,
    name: String,
    serve: F,
) -> oneshot::Sender<()>
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a test server runtime");
            runtime.block_on(async move {
                let listener =
                    TcpListener::from_std(listener).expect("register a test server listener");
                tokio::select! {
                    _ = rx => {}
                    () = serve(listener) => {}
                }
            });
        })
        .expect("spawn a test server thread");
    tx
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve(stream, shared).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, shared).await;
                    }
                }
            }
        });
    }
}

async fn serve<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(req, shared.clone()));
    // A client that goes away mid-request is not the recorder's problem.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        // The client went away before sending the whole body: nothing to record or answer.
        Err(_) => return Ok(hyper::Response::new(Full::new(Bytes::new()))),
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        answered: 0,
    };
    let reply = lock(&shared.replies)
        .pop_front()
        .unwrap_or_else(|| lock(&shared.default_reply).clone());
    let recorded = Recorded {
        answered: reply.status,
        ..recorded
    };
    lock(&shared.requests).push(recorded);
    shared.count.send_modify(|c| *c += 1);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = http::StatusCode::from_u16(reply.status)
        .unwrap_or_else(|_| panic!("Reply status {} is not 100..=999", reply.status));
    for (name, value) in &reply.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("Reply header name {name:?} is invalid"));
        let value = http::HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("Reply header value {value:?} is invalid"));
        resp.headers_mut().append(name, value);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Sends one raw HTTP/1.1 request and returns the raw response.
    async fn raw(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn records_requests_and_plays_replies_in_order() {
        let rec = Recorder::start().await;
        assert!(rec.url().starts_with("http://127.0.0.1:"));
        rec.push_reply(Reply::status(503).header("Retry-After", "7").body("busy"));
        let first = raw(
            rec.addr(),
            "POST /hook?x=1 HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .await;
        assert!(
            first.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{first}"
        );
        assert!(
            first.contains("retry-after: 7\r\n") && first.ends_with("busy"),
            "{first}"
        );
        let second = raw(
            rec.addr(),
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");

        let got = rec.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].method.as_str(), got[0].path.as_str()),
            ("POST", "/hook?x=1")
        );
        assert_eq!(got[0].header("X-ONE"), Some("1"));
        assert_eq!(got[0].headers[0], ("host".to_owned(), "a".to_owned()));
        assert_eq!(got[0].body_str(), "hello");
        assert_eq!(got[1].method, "GET");
        assert_eq!(rec.connections(), 2);
    }

    #[tokio::test]
    async fn wait_for_panics_with_what_arrived() {
        let rec = Recorder::start().await;
        let waited = tokio::spawn(async move {
            rec.wait_for(1, Duration::from_millis(100)).await;
        })
        .await;
        let panic = waited.unwrap_err().into_panic();
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("expected at least 1 request(s)") && msg.contains("got 0"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn dropping_the_recorder_stops_the_server() {
        let rec = Recorder::start().await;
        let addr = rec.addr();
        drop(rec);
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "the listener of a dropped recorder still accepts");
    }

    /// A TLS client trusting `ca`, presenting `client` if given.
    fn tls_client(
        ca: &crate::TestCa,
        client: Option<(String, String)>,
    ) -> tokio_rustls::TlsConnector {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.ca_pem().as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// One request over TLS to `rec`; the response, or the error text.
    async fn tls_get(
        rec: &Recorder,
        connector: &tokio_rustls::TlsConnector,
        name: &str,
    ) -> Result<String, String> {
        let tcp = TcpStream::connect(rec.addr()).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"GET /tls HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn tls_recorder_serves_its_ca_names_and_requires_client_certificates() {
        let ca = crate::TestCa::new();
        let rec = Recorder::start_tls(crate::ServerTls::from_ca(&ca)).await;
        assert!(rec.url().starts_with("https://127.0.0.1:"), "{}", rec.url());
        let plain = tls_client(&ca, None);
        for name in ["127.0.0.1", "localhost"] {
            let resp = tls_get(&rec, &plain, name).await.unwrap();
            assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        }
        let stranger = tls_client(&crate::TestCa::new(), None);
        let err = tls_get(&rec, &stranger, "127.0.0.1").await.unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
        assert_eq!(rec.requests().len(), 2);

        let mtls = Recorder::start_tls(crate::ServerTls::from_ca(&ca).with_client_auth(&ca)).await;
        let with_cert = tls_client(&ca, Some(ca.client_cert("herald-client")));
        let resp = tls_get(&mtls, &with_cert, "127.0.0.1").await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        // TLS 1.3: the client learns of the refusal when it reads.
        let err = tls_get(&mtls, &plain, "127.0.0.1").await.unwrap_err();
        assert!(err.contains("CertificateRequired"), "{err}");
        assert_eq!(mtls.requests().len(), 1);
        assert_eq!(mtls.connections(), 2);
    }
}
