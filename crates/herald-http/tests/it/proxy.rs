//! Proxies: the real authenticated tinyproxy of herald-testkit's `peers/proxy.sh`, and a SOCKS5
//! server written here (there is no SOCKS peer).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::{ProxyConfig, SecretBytes, SecretString};
use herald_http::HttpClient;
use herald_testkit::{
    Recorder, RecordingProxy, ServerTls, TestCa, peer_command, start_peer, stop_peer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{client, closed_port, config, post};

/// Stops the proxy peer even when an assertion fails first.
struct PeerGuard {
    port: String,
    state: PathBuf,
    armed: bool,
}

impl PeerGuard {
    /// Stops it now, failing the test if that fails.
    fn stop(mut self) {
        self.armed = false;
        stop_peer("proxy.sh", &self.port, &self.state);
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        if self.armed {
            // Best effort while a failing test unwinds: no panic here.
            let _ = peer_command("proxy.sh", &self.state)
                .args(["stop", &self.port])
                .output();
        }
    }
}

fn proxy(facts: &HashMap<String, String>, user: &str, pass: Option<&str>) -> ProxyConfig {
    ProxyConfig {
        url: facts["PROXY_URL"].clone(),
        username: Some(user.to_owned()),
        password: pass.map(SecretString::new),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_go_through_the_authenticated_proxy() {
    let state = std::env::temp_dir().join(format!("herald-http-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let facts = tokio::task::spawn_blocking({
        let state = state.clone();
        move || start_peer("proxy.sh", &state)
    })
    .await
    .unwrap();
    let Some(facts) = facts else { return };
    let port = facts["PROXY_URL"].rsplit(':').next().unwrap().to_owned();
    let guard = PeerGuard {
        port,
        state: state.clone(),
        armed: true,
    };
    let (user, pass) = (facts["PROXY_USER"].clone(), facts["PROXY_PASS"].clone());
    let log = || std::fs::read_to_string(&facts["LOG"]).unwrap();

    // Plain HTTP destination: sent to the proxy in absolute form, as Go does (tinyproxy logs
    // the request line), with the credentials for the proxy only.
    let plain = Recorder::start().await;
    let mut cfg = config(&format!("{}/through-proxy", plain.url()));
    cfg.proxy = Some(proxy(&facts, &user, Some(&pass)));
    post(&client(&cfg), &cfg).await.unwrap();
    assert_eq!(plain.requests()[0].path, "/through-proxy");
    assert!(
        plain.requests()[0].header("proxy-authorization").is_none(),
        "credentials stay with the proxy"
    );
    let line = "Request (file descriptor";
    let absolute = format!("POST {}/through-proxy HTTP/1.1", plain.url());
    assert!(
        log()
            .lines()
            .any(|l| l.contains(line) && l.contains(&absolute)),
        "{absolute:?} not in the proxy log:\n{}",
        log()
    );
    assert!(!log().contains(&format!("CONNECT 127.0.0.1:{}", plain.addr().port())));

    // HTTPS destination with a custom CA: TLS end to end inside a CONNECT tunnel.
    let ca = TestCa::new();
    let secure = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    let mut cfg = config(&format!("{}/secure", secure.url()));
    cfg.proxy = Some(proxy(&facts, &user, Some(&pass)));
    cfg.tls.ca_pem = Some(SecretBytes::new(ca.ca_pem().into_bytes()));
    post(&client(&cfg), &cfg).await.unwrap();
    assert_eq!(secure.requests()[0].path, "/secure");
    let line = format!("CONNECT 127.0.0.1:{}", secure.addr().port());
    assert!(
        log().contains(&line),
        "{line:?} not in the proxy log:\n{}",
        log()
    );

    // Wrong password: tinyproxy answers 401. Permanent, and the password is never shown.
    cfg.proxy = Some(proxy(&facts, &user, Some("wrong-password-123")));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}/…: proxy {} refused CONNECT 127.0.0.1:{}: HTTP 401 Unauthorized \
             (the proxy rejected the username or password)",
            secure.url(),
            facts["PROXY_URL"],
            secure.addr().port()
        )
    );
    assert!(!err.is_retryable());
    // The same for a plain destination: tinyproxy's 401 is the answer to the request itself.
    let mut plain_cfg = config(&plain.url());
    plain_cfg.proxy = Some(proxy(&facts, &user, Some("wrong-password-123")));
    let err = post(&client(&plain_cfg), &plain_cfg).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 401 Unauthorized"), "{err}");
    assert!(!err.to_string().contains("wrong-password-123"), "{err}");
    assert!(!err.is_retryable());
    // No credentials at all: 407, for both kinds of destination.
    let anonymous = ProxyConfig {
        url: facts["PROXY_URL"].clone(),
        username: None,
        password: None,
    };
    for cfg in [&mut cfg, &mut plain_cfg] {
        cfg.proxy = Some(anonymous.clone());
        let err = post(&client(cfg), cfg).await.unwrap_err();
        assert!(
            err.to_string().ends_with(
                "HTTP 407 Proxy Authentication Required (the proxy requires a username and password)"
            ),
            "{err}"
        );
        assert!(!err.is_retryable(), "{err}");
    }
    assert_eq!(plain.requests().len(), 1, "refused deliveries never arrive");
    assert_eq!(
        secure.requests().len(),
        1,
        "refused deliveries never arrive"
    );

    tokio::task::spawn_blocking(move || guard.stop())
        .await
        .unwrap();
    // Stopped cleanly: the state (kept by the script for post-mortems) is not needed.
    std::fs::remove_dir_all(&state).unwrap();
}

#[tokio::test]
async fn an_unreachable_proxy_is_retried_then_transient() {
    let rec = Recorder::start().await;
    let mut cfg = config(&rec.url());
    let port = closed_port();
    cfg.proxy = Some(ProxyConfig {
        url: format!("http://127.0.0.1:{port}"),
        username: None,
        password: None,
    });
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "giving up after 5 attempts: cannot connect to proxy http://127.0.0.1:{port}: "
        )),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    assert!(err.is_retryable());
    assert!(rec.requests().is_empty());
}

#[test]
fn unknown_proxies_are_build_errors() {
    let mut cfg = config("https://hooks.example.com/x");
    cfg.proxy = Some(ProxyConfig {
        url: "socks4://proxy.example.com".into(),
        username: None,
        password: None,
    });
    let err = HttpClient::from_config(&cfg).unwrap_err().to_string();
    assert_eq!(
        err,
        "spec.proxy: proxy scheme \"socks4\" is not supported; use http://, https:// or socks5://"
    );
    // Debug shows where the proxy is, never its password.
    for (url, shown_as) in [
        (
            "http://proxy.example.com:3128",
            "proxy http://proxy.example.com:3128",
        ),
        (
            "https://proxy.example.com",
            "proxy https://proxy.example.com:443",
        ),
    ] {
        cfg.proxy = Some(ProxyConfig {
            url: url.into(),
            username: Some("me".into()),
            password: Some(SecretString::new("proxy-pass-xyz")),
        });
        let shown = format!("{:?}", HttpClient::from_config(&cfg).unwrap());
        assert!(
            shown.contains(shown_as) && !shown.contains("proxy-pass-xyz"),
            "{shown}"
        );
    }
}

/// A proxy config for a [`RecordingProxy`], with credentials.
fn recording(proxy: &RecordingProxy) -> ProxyConfig {
    ProxyConfig {
        url: proxy.url(),
        username: Some("herald".into()),
        password: Some(SecretString::new("proxy-pass-123")),
    }
}

/// base64("herald:proxy-pass-123")
const PROXY_BASIC: &str = "Basic aGVyYWxkOnByb3h5LXBhc3MtMTIz";

#[tokio::test]
async fn http_targets_go_in_absolute_form_and_https_ones_through_connect() {
    let proxy = RecordingProxy::start().await;
    let plain = Recorder::start().await;
    let mut cfg = config(&format!("{}/plain?x=1", plain.url()));
    cfg.proxy = Some(recording(&proxy));
    let client = client(&cfg);
    post(&client, &cfg).await.unwrap();
    post(&client, &cfg).await.unwrap();

    let ca = TestCa::new();
    let secure = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    let mut tls_cfg = config(&format!("{}/secure", secure.url()));
    tls_cfg.proxy = Some(recording(&proxy));
    tls_cfg.tls.ca_pem = Some(SecretBytes::new(ca.ca_pem().into_bytes()));
    post(&self::client(&tls_cfg), &tls_cfg).await.unwrap();

    let seen = proxy.requests();
    let lines: Vec<(String, String, Option<&str>)> = seen
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.target.clone(),
                r.header("proxy-authorization"),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                "POST".to_owned(),
                format!("{}/plain?x=1", plain.url()),
                Some(PROXY_BASIC)
            ),
            (
                "POST".to_owned(),
                format!("{}/plain?x=1", plain.url()),
                Some(PROXY_BASIC)
            ),
            (
                "CONNECT".to_owned(),
                secure.addr().to_string(),
                Some(PROXY_BASIC)
            ),
        ]
    );
    // The absolute-form request is the whole request: host, type, user agent, body.
    assert_eq!(
        seen[0].header("host"),
        Some(plain.addr().to_string().as_str())
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert!(seen[0].header("user-agent").unwrap().starts_with("herald/"));
    // Inside the tunnel the proxy's credentials are never sent.
    assert_eq!(secure.requests()[0].path, "/secure");
    assert_eq!(secure.requests()[0].header("proxy-authorization"), None);
    assert_eq!(plain.requests().len(), 2);
}

#[tokio::test]
async fn a_proxy_that_wants_credentials_is_a_permanent_refusal() {
    let proxy = RecordingProxy::start().await;
    proxy.refuse_with(407);
    let plain = Recorder::start().await;
    let mut cfg = config(&plain.url());
    cfg.proxy = Some(recording(&proxy));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "provider test/hook: POST {}: proxy {} refused the request: HTTP 407 Proxy \
             Authentication Required (the proxy rejected the username or password)",
            plain.url(),
            proxy.url()
        )
    );
    assert!(!err.is_retryable());
    assert_eq!(err.status(), None, "the proxy answered, not the service");
    assert_eq!(proxy.requests().len(), 1, "not retried");
    // A 5xx from the proxy's CONNECT is retried.
    proxy.refuse_with(502);
    let mut cfg = config("https://127.0.0.1:1/x");
    cfg.proxy = Some(recording(&proxy));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("refused CONNECT 127.0.0.1:1: HTTP 502 Bad Gateway"),
        "{err}"
    );
}

#[tokio::test]
async fn an_https_proxy_is_spoken_to_over_tls() {
    // The proxy's certificate is checked with the provider's CA, as Go does with its TLS
    // configuration; destinations of both schemes go through it.
    let ca = TestCa::new();
    let proxy = RecordingProxy::start_tls(ServerTls::from_ca(&ca)).await;
    assert!(proxy.url().starts_with("https://"));
    let plain = Recorder::start().await;
    let secure = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    for (url, target) in [
        (
            format!("{}/plain", plain.url()),
            format!("{}/plain", plain.url()),
        ),
        (
            format!("{}/secure", secure.url()),
            secure.addr().to_string(),
        ),
    ] {
        let mut cfg = config(&url);
        cfg.proxy = Some(recording(&proxy));
        cfg.tls.ca_pem = Some(SecretBytes::new(ca.ca_pem().into_bytes()));
        post(&client(&cfg), &cfg).await.unwrap();
        let seen = proxy.requests().pop().unwrap();
        assert_eq!(seen.target, target);
        assert_eq!(seen.header("proxy-authorization"), Some(PROXY_BASIC));
    }
    assert_eq!(plain.requests()[0].path, "/plain");
    assert_eq!(secure.requests()[0].path, "/secure");

    // A proxy certificate the provider does not trust: a permanent TLS failure that names the
    // proxy, and nothing is sent.
    let mut cfg = config(&format!("{}/plain", plain.url()));
    cfg.proxy = Some(recording(&proxy));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("TLS handshake with proxy {} failed", proxy.url())),
        "{err}"
    );
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(plain.requests().len(), 1);
}

/// A minimal SOCKS5 server (RFC 1928 CONNECT, RFC 1929 username/password) that records the
/// destinations it was asked for and connects to them.
async fn socks5_server(
    credentials: Option<(&'static str, &'static str)>,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the SOCKS5 server");
    let port = listener.local_addr().expect("SOCKS5 server address").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.expect("SOCKS5 accept");
            let log = log.clone();
            tokio::spawn(async move {
                // A client that gives up half-way is fine.
                let _ = socks5_session(conn, credentials, log).await;
            });
        }
    });
    (port, seen)
}

async fn socks5_session(
    mut conn: TcpStream,
    credentials: Option<(&str, &str)>,
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let (version, n) = (conn.read_u8().await?, conn.read_u8().await?);
    assert_eq!(version, 5);
    let mut methods = vec![0; usize::from(n)];
    conn.read_exact(&mut methods).await?;
    let wanted = if credentials.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        return conn.write_all(&[5, 0xff]).await;
    }
    conn.write_all(&[5, wanted]).await?;
    if let Some((user, pass)) = credentials {
        assert_eq!(conn.read_u8().await?, 1);
        let mut u = vec![0; usize::from(conn.read_u8().await?)];
        conn.read_exact(&mut u).await?;
        let mut p = vec![0; usize::from(conn.read_u8().await?)];
        conn.read_exact(&mut p).await?;
        if u != user.as_bytes() || p != pass.as_bytes() {
            return conn.write_all(&[1, 1]).await;
        }
        conn.write_all(&[1, 0]).await?;
    }
    let mut head = [0; 4];
    conn.read_exact(&mut head).await?;
    assert_eq!(&head[..3], &[5, 1, 0], "a CONNECT request");
    let host = match head[3] {
        1 => {
            let mut ip = [0; 4];
            conn.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut name = vec![0; usize::from(conn.read_u8().await?)];
            conn.read_exact(&mut name).await?;
            String::from_utf8(name).expect("a UTF-8 host name")
        }
        other => panic!("address type {other} not expected"),
    };
    let port = conn.read_u16().await?;
    log.lock()
        .expect("SOCKS5 log lock")
        .push(format!("{host}:{port}"));
    let mut upstream = TcpStream::connect((host.as_str(), port)).await?;
    conn.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}

#[tokio::test]
async fn socks5_proxies_work_with_and_without_credentials() {
    let rec = Recorder::start().await;
    let (port, seen) = socks5_server(Some(("sockuser", "sockpass-1234"))).await;
    let mut cfg = config(&format!("{}/via-socks", rec.url()));
    cfg.proxy = Some(ProxyConfig {
        url: format!("socks5://127.0.0.1:{port}"),
        username: Some("sockuser".into()),
        password: Some(SecretString::new("sockpass-1234")),
    });
    post(&client(&cfg), &cfg).await.unwrap();
    assert_eq!(rec.requests()[0].path, "/via-socks");
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("127.0.0.1:{}", rec.addr().port())]
    );

    // HTTPS through SOCKS5, with a host name the proxy resolves.
    let ca = TestCa::new();
    let secure = Recorder::start_tls(ServerTls::from_ca(&ca)).await;
    let mut tls_cfg = config(&format!(
        "https://localhost:{}/tls-via-socks",
        secure.addr().port()
    ));
    tls_cfg.proxy = cfg.proxy.clone();
    tls_cfg.tls.ca_pem = Some(SecretBytes::new(ca.ca_pem().into_bytes()));
    post(&client(&tls_cfg), &tls_cfg).await.unwrap();
    assert_eq!(secure.requests()[0].path, "/tls-via-socks");
    assert_eq!(
        seen.lock().unwrap()[1],
        format!("localhost:{}", secure.addr().port())
    );

    // Wrong password: refused, permanent, password not shown.
    cfg.proxy.as_mut().unwrap().password = Some(SecretString::new("wrong-sock-pass"));
    let err = post(&client(&cfg), &cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("SOCKS5 proxy socks5://127.0.0.1:{port}: ")),
        "{text}"
    );
    assert!(text.contains("credentials not accepted"), "{text}");
    assert!(!text.contains("wrong-sock-pass"));
    assert!(!err.is_retryable());

    // An open SOCKS5 proxy without credentials.
    let (open_port, open_seen) = socks5_server(None).await;
    cfg.proxy = Some(ProxyConfig {
        url: format!("socks5://127.0.0.1:{open_port}"),
        username: None,
        password: None,
    });
    post(&client(&cfg), &cfg).await.unwrap();
    assert_eq!(open_seen.lock().unwrap().len(), 1);
    assert_eq!(rec.wait_for(2, Duration::from_secs(5)).await.len(), 2);
}
