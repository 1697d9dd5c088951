//! A recording HTTP proxy on 127.0.0.1: what a client asked the proxy for, as it asked.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::ServerTls;
use crate::recorder::spawn_server;

/// The head of one request a [`RecordingProxy`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxied {
    /// `CONNECT`, `POST`, ...
    pub method: String,
    /// The request target as sent: `host:port` for `CONNECT`, the absolute URL otherwise.
    pub target: String,
    /// Header names (lower-case) and values, in the order received.
    pub headers: Vec<(String, String)>,
}

impl Proxied {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::recorder::header(&self.headers, name)
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Proxied>>,
    refuse: Mutex<Option<u16>>,
}

/// An HTTP proxy on `127.0.0.1` that records every request head it gets, then does what a
/// proxy does: `CONNECT host:port` opens a tunnel (`200`), an absolute-form request is sent
/// on in origin form without `Proxy-Authorization`, with `Connection: close`. Plain, or TLS
/// to the proxy ([`RecordingProxy::start_tls`]). Every connection goes to the requested
/// address, or to one fixed upstream ([`RecordingProxy::upstream`]), so that made-up host
/// names never reach a resolver. It stops when dropped.
pub struct RecordingProxy {
    url: String,
    shared: Arc<Shared>,
    _shutdown: oneshot::Sender<()>,
}

impl fmt::Debug for RecordingProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingProxy")
            .field("url", &self.url)
            .finish()
    }
}

impl RecordingProxy {
    /// A plain proxy, `http://127.0.0.1:PORT`.
    pub async fn start() -> RecordingProxy {
        RecordingProxy::launch(None, None)
    }

    /// A proxy spoken to over TLS, `https://127.0.0.1:PORT`.
    pub async fn start_tls(tls: ServerTls) -> RecordingProxy {
        RecordingProxy::launch(Some(TlsAcceptor::from(tls.server_config())), None)
    }

    /// A plain proxy that sends every connection to `upstream`, whatever was asked for.
    pub async fn upstream(upstream: SocketAddr) -> RecordingProxy {
        RecordingProxy::launch(None, Some(upstream))
    }

    fn launch(tls: Option<TlsAcceptor>, upstream: Option<SocketAddr>) -> RecordingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a proxy");
        listener
            .set_nonblocking(true)
            .expect("make the proxy listener non-blocking");
        let addr = listener.local_addr().expect("proxy listener address");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        let shutdown = spawn_server(listener, format!("proxy-{}", addr.port()), move |l| {
            accept_loop(l, tls, upstream, serving)
        });
        RecordingProxy {
            url: format!("{scheme}://{addr}"),
            shared,
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every request head received so far, oldest first.
    pub fn requests(&self) -> Vec<Proxied> {
        self.shared.seen.lock().expect("proxy log").clone()
    }

    /// From now on, answers every request with `status` (and an empty body) instead.
    pub fn refuse_with(&self, status: u16) {
        *self.shared.refuse.lock().expect("proxy state") = Some(status);
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    upstream: Option<SocketAddr>,
    shared: Arc<Shared>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            match tls {
                None => serve(stream, upstream, shared).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, upstream, shared).await;
                    }
                }
            }
        });
    }
}

/// Reads a request head, byte by byte so that what follows it stays in the stream.
async fn read_head<S: AsyncRead + Unpin>(client: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(client.read_u8().await.ok()?);
    }
    Some(head)
}

async fn serve<S>(mut client: S, upstream: Option<SocketAddr>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(&head), Ok(httparse::Status::Complete(_))) {
        return;
    }
    let proxied = Proxied {
        method: request.method.unwrap_or_default().to_owned(),
        target: request.path.unwrap_or_default().to_owned(),
        headers: request
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    };
    shared.seen.lock().expect("proxy log").push(proxied.clone());
    let refuse = *shared.refuse.lock().expect("proxy state");
    if let Some(status) = refuse {
        let answer = format!("HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\n\r\n");
        let _ = client.write_all(answer.as_bytes()).await;
        return;
    }
    let (authority, forwarded) = if proxied.method == "CONNECT" {
        (proxied.target.clone(), None)
    } else {
        let Some((authority, origin)) = split_absolute(&proxied.target) else {
            return;
        };
        (authority.to_owned(), Some(origin_form(&proxied, origin)))
    };
    let connected = match upstream {
        Some(addr) => TcpStream::connect(addr).await,
        None => TcpStream::connect(authority.as_str()).await,
    };
    let Ok(mut server) = connected else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    let ready = match forwarded {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
        }
        Some(head) => server.write_all(&head).await,
    };
    if ready.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// `host:port` and `/path?query` of `http://host:port/path?query`.
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let rest = target.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// The request head for the upstream: origin form, no `Proxy-Authorization`, and
/// `Connection: close`, so that every request on a kept-alive client connection comes back to
/// the proxy.
fn origin_form(proxied: &Proxied, origin: &str) -> Vec<u8> {
    let origin = if origin.is_empty() { "/" } else { origin };
    let mut head = format!("{} {origin} HTTP/1.1\r\n", proxied.method);
    for (name, value) in &proxied.headers {
        if name != "proxy-authorization" && name != "connection" {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Recorder, ServerTls, TestCa};

    async fn raw<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &str) -> String {
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn forwards_absolute_form_and_tunnels_connect() {
        let rec = Recorder::start().await;
        let proxy = RecordingProxy::start().await;
        let port = proxy.url().rsplit(':').next().unwrap().to_owned();
        let addr = format!("127.0.0.1:{port}");
        let answer = raw(
            TcpStream::connect(&addr).await.unwrap(),
            &format!(
                "POST http://{}/hook?x=1 HTTP/1.1\r\nHost: {0}\r\nProxy-Authorization: Basic eA==\r\nContent-Length: 2\r\n\r\nhi",
                rec.addr()
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        let mut tunnel = TcpStream::connect(&addr).await.unwrap();
        let connect = format!("CONNECT {} HTTP/1.1\r\nHost: {0}\r\n\r\n", rec.addr());
        tunnel.write_all(connect.as_bytes()).await.unwrap();
        let established = read_head(&mut tunnel).await.unwrap();
        assert!(established.starts_with(b"HTTP/1.1 200 "));
        let answer = raw(
            tunnel,
            "GET /in HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");

        let seen = proxy.requests();
        assert_eq!(
            (seen[0].method.as_str(), seen[0].target.as_str()),
            ("POST", format!("http://{}/hook?x=1", rec.addr()).as_str())
        );
        assert_eq!(seen[0].header("proxy-authorization"), Some("Basic eA=="));
        assert_eq!(seen[1].method, "CONNECT");
        assert_eq!(seen[1].target, rec.addr().to_string());
        let got = rec.requests();
        assert_eq!(
            (got[0].path.as_str(), got[0].body_str()),
            ("/hook?x=1", "hi")
        );
        assert_eq!(got[0].header("proxy-authorization"), None);
        assert_eq!(got[1].path, "/in");

        proxy.refuse_with(407);
        let answer = raw(
            TcpStream::connect(&addr).await.unwrap(),
            "CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 407 "), "{answer}");
    }

    #[tokio::test]
    async fn speaks_tls_when_asked() {
        let ca = TestCa::new();
        let proxy = RecordingProxy::start_tls(ServerTls::from_ca(&ca)).await;
        assert!(proxy.url().starts_with("https://127.0.0.1:"));
        // A plain-text client gets no HTTP answer (at most a TLS alert): the proxy expects a
        // TLS handshake.
        let addr = proxy.url().trim_start_matches("https://").to_owned();
        let mut plain = TcpStream::connect(&addr).await.unwrap();
        plain
            .write_all(b"CONNECT a:1 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
        assert!(proxy.requests().is_empty());
    }
}
