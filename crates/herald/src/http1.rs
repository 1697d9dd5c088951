//! A minimal HTTP/1.1 client over std for herald's own endpoints: `herald healthcheck` probing
//! `/readyz`, and `herald outbox` talking to a running daemon's API. Plain `http` only, one
//! request per connection (`Connection: close`), the answer read to the end.
//!
//! It is not for providers: every request to a service goes through `herald-http` (proxy, TLS,
//! retries, masking).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest answer read (a long `herald outbox list --limit 10000` is a few MiB).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

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
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {timeout:?}"))
    };
    let addrs: Vec<_> = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .collect();
    let mut last_error = format!("{authority} resolves to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last_error)?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: herald\r\nAccept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n"
    );
    stream
        .set_write_timeout(Some(remaining()?))
        .and_then(|()| stream.write_all(head.as_bytes()))
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(|e| format!("reading the answer: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
        if raw.len() as u64 > MAX_ANSWER {
            return Err(format!("the answer is larger than {MAX_ANSWER} bytes"));
        }
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Answer, String> {
    let line_end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..line_end]);
    let mut words = line.split_whitespace();
    let status = match (words.next(), words.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/") => status,
        _ if line.is_empty() => return Err("the connection closed without an answer".to_owned()),
        _ => return Err(format!("not an HTTP answer: {line:?}")),
    };
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| raw[i + 4..].to_vec());
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_split_into_status_and_body() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            Ok(Answer {
                status: 200,
                body: b"ok".to_vec()
            })
        );
        assert_eq!(
            parse(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").map(|a| a.status),
            Ok(503)
        );
        assert_eq!(
            parse(b""),
            Err("the connection closed without an answer".to_owned())
        );
        assert!(
            parse(b"hello\r\n")
                .unwrap_err()
                .contains("not an HTTP answer")
        );
    }
}
