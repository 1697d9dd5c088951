//! `herald healthcheck`: an HTTP probe of a running daemon, for container images without curl.
//!
//! One plain HTTP/1.1 GET through `http1` (hyper; health endpoints are plain HTTP, there is no
//! TLS here): exit 0 when the answer's status is 2xx, 1 otherwise, with what went wrong. No
//! redirects, no proxy.

use std::process::ExitCode;
use std::time::Duration;

use herald_core::duration;

use crate::{output, report};

#[derive(Debug, clap::Args)]
pub(crate) struct HealthcheckArgs {
    /// The URL to probe (`http://` only); the default is `serve`'s default health address.
    #[arg(
        long,
        env = "HERALD_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:9440/readyz"
    )]
    url: String,

    /// How long connecting, asking and reading the status line may take in all (Go duration).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    timeout: Duration,
}

pub(crate) fn run(args: &HealthcheckArgs) -> anyhow::Result<ExitCode> {
    match probe(&args.url, args.timeout) {
        Ok(status) if (200..300).contains(&status) => {
            output(&format!("ok: {} answered {status}", args.url));
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            report(&format!("unhealthy: {} answered {status}", args.url));
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            report(&format!("unhealthy: {}: {e}", args.url));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The parts of an `http://host[:port][/path]` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` as connected to (and sent as `Host`).
    authority: String,
    /// The path and query, `/` when the URL has none.
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("not a URL ({e}): use http://HOST[:PORT]/PATH"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs can be probed".to_owned());
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| "the URL has no host".to_owned())?;
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    Ok(Target {
        // host() keeps an IPv6 literal's brackets.
        authority: format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        ),
        path: path.to_owned(),
    })
}

/// GETs `url` and returns the status code of the answer.
fn probe(url: &str, timeout: Duration) -> Result<u16, String> {
    let target = parse_url(url)?;
    crate::http1::request(&target.authority, "GET", &target.path, timeout).map(|a| a.status)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    use super::*;

    /// A one-shot server on loopback that answers `reply` after reading the request head, and
    /// returns that head.
    fn serve_once(reply: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/readyz", listener.local_addr().expect("addr"));
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(reply.as_bytes()).expect("write");
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn a_ready_daemon_is_healthy() {
        let (url, server) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(probe(&url, Duration::from_secs(5)), Ok(200));
        let request = server.join().expect("server");
        assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");
    }

    #[test]
    fn a_not_ready_answer_is_its_status() {
        let (url, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(probe(&url, Duration::from_secs(5)), Ok(503));
        server.join().expect("server");
    }

    #[test]
    fn a_closed_port_is_an_error_naming_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = probe(&format!("http://{addr}/readyz"), Duration::from_secs(5))
            .expect_err("nothing listens");
        assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/readyz", listener.local_addr().expect("addr"));
        let err = probe(&url, Duration::from_millis(300)).expect_err("no answer");
        assert!(
            err.contains("reading the answer") || err.contains("no answer"),
            "{err}"
        );
        drop(listener);
    }

    #[test]
    fn garbage_is_not_an_http_answer() {
        let (url, server) = serve_once("hello\r\n");
        let err = probe(&url, Duration::from_secs(5)).expect_err("not HTTP");
        assert!(err.contains("not an HTTP answer"), "{err}");
        server.join().expect("server");
    }

    #[test]
    fn urls_are_split_into_authority_and_path() {
        assert_eq!(
            parse_url("http://127.0.0.1:9440/readyz"),
            Ok(Target {
                authority: "127.0.0.1:9440".to_owned(),
                path: "/readyz".to_owned()
            })
        );
        assert_eq!(
            parse_url("http://localhost"),
            Ok(Target {
                authority: "localhost:80".to_owned(),
                path: "/".to_owned()
            })
        );
        assert_eq!(
            parse_url("http://[::1]/healthz"),
            Ok(Target {
                authority: "[::1]:80".to_owned(),
                path: "/healthz".to_owned()
            })
        );
        assert_eq!(
            parse_url("http://[::1]:9440/x").map(|t| t.authority),
            Ok("[::1]:9440".to_owned())
        );
        assert_eq!(
            parse_url("http://127.0.0.1:9440/readyz?verbose=1").map(|t| t.path),
            Ok("/readyz?verbose=1".to_owned())
        );
        assert!(parse_url("https://example.com/").is_err());
        assert!(parse_url("127.0.0.1:9440/readyz").is_err());
        assert!(parse_url("http:///readyz").is_err());
        assert!(parse_url("http://a b/").is_err());
    }
}
