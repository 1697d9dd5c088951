//! A small HTTP/1.1 client for herald's own endpoints: `herald healthcheck` probing `/readyz`,
//! and `herald outbox` talking to a running daemon's API. Plain `http` only, one request per
//! connection, the answer read to its end as hyper frames it (Content-Length or chunked).
//!
//! It is not for providers: every request to a service goes through `herald-http` (proxy, TLS,
//! retries, masking). Its callers are synchronous commands, so each request runs on a
//! current-thread runtime of its own.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, HOST, USER_AGENT};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The largest answer read (a long `herald outbox list --limit 10000` is a few MiB).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A status and a body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Sends `method path` to `authority` (`host:port`) and reads the answer, all within `timeout`.
/// Errors say what failed: resolving, connecting (naming the address), sending, reading, or an
/// answer that is not HTTP.
pub(crate) fn request(
    authority: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    request_with(authority, method, path, &[], timeout)
}

/// [`request`] with extra request headers (`Authorization`, say).
pub(crate) fn request_with(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answer, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, exchange(authority, method, path, headers))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
    })
}

async fn exchange(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority)
        .header(USER_AGENT, "herald")
        .header(ACCEPT, "application/json")
        .header(CONTENT_LENGTH, "0")
        .header(CONNECTION, "close");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request {method} {path}: {e}"))?;
    let stream = connect(authority).await?;
    // Title-case header names, as herald's requests were written before hyper: the bytes on
    // the wire stay what they were.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    // The connection task ends with the exchange (Connection: close); its error, if any, is
    // the one send_request or the body read reports.
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| answer_error(&e))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                format!("the answer is larger than {MAX_ANSWER} bytes")
            } else {
                format!("reading the answer: {e}")
            }
        })?
        .to_bytes()
        .to_vec();
    driver.abort();
    Ok(Answer { status, body })
}

/// The first address of `authority` that accepts a connection.
async fn connect(authority: &str) -> Result<TcpStream, String> {
    let addrs = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?;
    let mut last_error = format!("{authority} resolves to no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last_error)
}

/// What went wrong before a status line was read, in the words of the old std client.
fn answer_error(e: &hyper::Error) -> String {
    if e.is_parse() {
        format!("not an HTTP answer: {e}")
    } else if e.is_incomplete_message() {
        "the connection closed without an answer".to_owned()
    } else {
        format!("reading the answer: {e}")
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    use super::*;

    /// A one-shot server on loopback that answers `reply` after reading the request head.
    fn serve_once(reply: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let authority = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(reply);
        });
        authority
    }

    fn get(authority: &str) -> Result<Answer, String> {
        request(
            authority,
            "GET",
            "/api/v1/deliveries",
            Duration::from_secs(5),
        )
    }

    #[test]
    fn a_content_length_answer_is_read() {
        let at = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(
            get(&at),
            Ok(Answer {
                status: 200,
                body: b"ok".to_vec()
            })
        );
    }

    #[test]
    fn a_chunked_answer_is_decoded() {
        let at = serve_once(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n[{\"id\r\n4\r\n\":1}\r\n1\r\n]\r\n0\r\n\r\n",
        );
        assert_eq!(get(&at).map(|a| a.body), Ok(b"[{\"id\":1}]".to_vec()));
    }

    #[test]
    fn an_answer_without_length_is_read_to_the_close() {
        let at = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready");
        assert_eq!(
            get(&at),
            Ok(Answer {
                status: 503,
                body: b"not ready".to_vec()
            })
        );
    }

    #[test]
    fn broken_answers_are_errors_that_say_so() {
        let closed = serve_once(b"");
        assert_eq!(
            get(&closed),
            Err("the connection closed without an answer".to_owned())
        );
        let garbage = serve_once(b"hello\r\n\r\n");
        let err = get(&garbage).unwrap_err();
        assert!(err.contains("not an HTTP answer"), "{err}");
        let cut = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort");
        let err = get(&cut).unwrap_err();
        assert!(err.starts_with("reading the answer"), "{err}");
    }
}
