//! The secured event endpoint (TLS, bearer token, `X-Signature`) and hostile input to the
//! event server: slow clients, connection floods, pathological JSON, request smuggling. Each
//! abuse gets a clear 4xx or 503 and the daemon still delivers a good event afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use herald_testkit::{Recorder, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Daemon, alert, flux_event, manifests, parse_response, provider, request};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "tok-7f3a9c1e-event-endpoint-bearer";
const HMAC_KEY: &str = "hmac-5d2b8e44-event-endpoint-key";

fn all_kustomizations() -> String {
    "  eventSources:\n    - kind: Kustomization\n      name: '*'\n      namespace: apps\n"
        .to_owned()
}

/// A daemon delivering every apps Kustomization event to `rec` through a `generic` Provider.
fn forwarding_manifests(rec: &Recorder) -> tempfile::TempDir {
    manifests(
        &[
            provider("hook", "apps", "generic", &rec.url()),
            alert("all", "apps", "hook", &all_kustomizations()),
        ]
        .concat(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// Sends `raw` as is, then reads until the server closes; fails if it does not close within
/// `timeout`.
async fn exchange(addr: &str, raw: &[u8], timeout: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(raw).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(timeout, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {timeout:?}; it sent {:?}",
        String::from_utf8_lossy(&out)
    );
    out
}

/// The status codes of every HTTP response in `raw`.
fn statuses(raw: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(raw);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12).and_then(|s| s.parse().ok()))
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A good event goes through and reaches the recorder (as its `n`th request).
async fn still_delivers(d: &Daemon, rec: &Recorder, n: usize, headers: &[(&str, &str)]) {
    let body = flux_event(&format!("good event {n}"));
    let resp = request(&d.events, "POST", "/", headers, body.as_bytes()).await;
    assert_eq!(resp.status, 202, "{}", resp.body_str());
    let got = rec.wait_for(n, WAIT).await;
    assert!(
        got[n - 1].body_str().contains(&format!("good event {n}")),
        "{}",
        got[n - 1].body_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_and_signature_are_required_when_configured() {
    let rec = Recorder::start().await;
    let dir = forwarding_manifests(&rec);
    let secrets = tempfile::tempdir().unwrap();
    let token_file = write(secrets.path(), "token", &format!("{TOKEN}\n"));
    let key_file = write(secrets.path(), "hmac", &format!("{HMAC_KEY}\n"));
    let d = Daemon::start(
        dir.path(),
        &[
            "--events-token-file",
            &token_file,
            "--events-hmac-key-file",
            &key_file,
        ],
    );
    let body = flux_event("signed");
    let sig = herald_webhook::sign(HMAC_KEY.as_bytes(), body.as_bytes());
    let bearer = format!("Bearer {TOKEN}");
    let wrong_sig = herald_webhook::sign(b"another key", body.as_bytes());
    let suffixed = format!("{bearer}x");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no token", vec![("X-Signature", &sig)]),
        (
            "wrong token",
            vec![("Authorization", "Bearer nope"), ("X-Signature", &sig)],
        ),
        (
            "token as basic auth",
            vec![
                ("Authorization", "Basic dG9rOnRvaw=="),
                ("X-Signature", &sig),
            ],
        ),
        (
            "token with a suffix",
            vec![("Authorization", &suffixed), ("X-Signature", &sig)],
        ),
        ("no signature", vec![("Authorization", &bearer)]),
        (
            "wrong signature",
            vec![("Authorization", &bearer), ("X-Signature", &wrong_sig)],
        ),
        (
            "signature not hex",
            vec![("Authorization", &bearer), ("X-Signature", "sha256=zz")],
        ),
    ];
    for (what, headers) in cases {
        let resp = request(&d.events, "POST", "/", &headers, body.as_bytes()).await;
        assert_eq!(resp.status, 401, "{what}: {}", resp.body_str());
        assert!(resp.headers.contains_key("www-authenticate"), "{what}");
        let text = resp.body_str();
        assert!(
            !text.contains(TOKEN) && !text.contains(HMAC_KEY),
            "{what}: {text}"
        );
    }
    // A signature over another body does not do either.
    let other = flux_event("tampered");
    let resp = request(
        &d.events,
        "POST",
        "/",
        &[("Authorization", &bearer), ("X-Signature", &sig)],
        other.as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 401);
    assert!(rec.requests().is_empty(), "nothing refused was delivered");

    // The scheme is case-insensitive, as RFC 9110 says.
    let resp = request(
        &d.events,
        "POST",
        "/",
        &[
            ("Authorization", &format!("bearer {TOKEN}")),
            ("X-Signature", &sig),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 202, "{}", resp.body_str());
    let got = rec.wait_for(1, WAIT).await;
    assert!(got[0].body_str().contains("signed"));

    // A new token is read on SIGHUP; the old one stops working.
    std::fs::write(&token_file, "rotated-token\n").unwrap();
    d.signal("HUP");
    d.wait_log("event endpoint TLS and key files re-read", WAIT)
        .await;
    let resp = request(
        &d.events,
        "POST",
        "/",
        &[("Authorization", &bearer), ("X-Signature", &sig)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 401);
    let body2 = flux_event("after rotation");
    let sig2 = herald_webhook::sign(HMAC_KEY.as_bytes(), body2.as_bytes());
    let resp = request(
        &d.events,
        "POST",
        "/",
        &[
            ("Authorization", "Bearer rotated-token"),
            ("X-Signature", &sig2),
        ],
        body2.as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 202, "{}", resp.body_str());
    rec.wait_for(2, WAIT).await;

    let logs = d.logs();
    assert!(!logs.contains(TOKEN) && !logs.contains(HMAC_KEY) && !logs.contains("rotated-token"));
}

/// herald A's `generic-hmac` Provider (with a bearer token in its `headers` and the test CA in
/// its `certSecretRef`) feeds herald B's event endpoint, which has TLS, a token and an HMAC key.
#[tokio::test(flavor = "multi_thread")]
async fn one_herald_feeds_another_over_tls_with_token_and_signature() {
    let rec = Recorder::start().await;
    let b_dir = forwarding_manifests(&rec);
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert();
    let files = tempfile::tempdir().unwrap();
    let cert_file = write(files.path(), "tls.crt", &cert);
    let key_file = write(files.path(), "tls.key", &key);
    let token_file = write(files.path(), "token", TOKEN);
    let hmac_file = write(files.path(), "hmac", HMAC_KEY);
    let b = Daemon::start(
        b_dir.path(),
        &[
            "--events-tls-cert",
            &cert_file,
            "--events-tls-key",
            &key_file,
            "--events-token-file",
            &token_file,
            "--events-hmac-key-file",
            &hmac_file,
        ],
    );

    // Plain HTTP to the TLS endpoint gets no HTTP answer, and B keeps serving.
    let raw = exchange(
        &b.events,
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
            flux_event("plain").len(),
            flux_event("plain")
        )
        .as_bytes(),
        Duration::from_secs(15),
    )
    .await;
    assert!(
        statuses(&raw).is_empty(),
        "{}",
        String::from_utf8_lossy(&raw)
    );

    let b_port = b.events.rsplit(':').next().unwrap();
    let a_manifests = format!(
        "{}{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: b-auth, namespace: apps}}\nstringData:\n  token: {HMAC_KEY}\n  headers: |\n    Authorization: Bearer {TOKEN}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: b-ca, namespace: apps}}\nstringData:\n  ca.crt: |\n{}",
        provider(
            "herald-b",
            "apps",
            "generic-hmac",
            &format!("https://localhost:{b_port}/")
        )
        .trim_end()
        .to_owned()
            + "\n  secretRef: {name: b-auth}\n  certSecretRef: {name: b-ca}\n",
        alert("to-b", "apps", "herald-b", &all_kustomizations()),
        indent(&ca.ca_pem(), 4),
    );
    let a_dir = manifests(&a_manifests);
    let a = Daemon::start(a_dir.path(), &[]);
    let resp = request(
        &a.events,
        "POST",
        "/",
        &[],
        flux_event("relayed by herald A").as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 202);
    let got = rec.wait_for(1, WAIT).await;
    assert!(
        got[0].body_str().contains("relayed by herald A"),
        "{}",
        got[0].body_str()
    );
    assert!(got[0].header("authorization").is_none());
    for logs in [a.logs(), b.logs()] {
        assert!(!logs.contains(TOKEN) && !logs.contains(HMAC_KEY), "{logs}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tls_files_are_clear_errors_without_their_contents() {
    let files = tempfile::tempdir().unwrap();
    let cert = write(files.path(), "tls.crt", "not a certificate");
    let key = write(
        files.path(),
        "tls.key",
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n",
    );
    let dir = manifests("");
    let out = crate::support::herald()
        .args(["serve", "--manifests"])
        .arg(dir.path())
        .args(crate::support::LOOPBACK_PORTS)
        .args(["--events-tls-cert", &cert, "--events-tls-key", &key])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no PEM certificate in"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "{err}");

    let out = crate::support::herald()
        .args(["serve", "--manifests"])
        .arg(dir.path())
        .args(["--events-tls-cert", &cert])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--events-tls-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off() {
    let rec = Recorder::start().await;
    let dir = forwarding_manifests(&rec);
    let d = Daemon::start(
        dir.path(),
        &[
            "--events-header-timeout",
            "1s",
            "--events-read-timeout",
            "2s",
        ],
    );
    // Headers a byte at a time, never finished: the connection is closed.
    let addr = d.events.clone();
    let trickle = tokio::spawn(async move {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let started = Instant::now();
        for b in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
            if stream.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(30) {
                panic!("a trickling client was never cut off");
            }
        }
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        out
    });
    // A connection that says nothing at all is closed too.
    let idle = exchange(&d.events, b"", Duration::from_secs(30)).await;
    assert!(statuses(&idle).iter().all(|s| *s == 408), "{idle:?}");
    // A body that stops halfway gets 408.
    let body = flux_event("slow body");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let partial = [head.as_bytes(), &body.as_bytes()[..20]].concat();
    let raw = exchange(&d.events, &partial, Duration::from_secs(30)).await;
    assert_eq!(
        parse_response(&raw).status,
        408,
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let out = trickle.await.unwrap();
    assert!(statuses(&out).iter().all(|s| *s == 408), "{out:?}");
    still_delivers(&d, &rec, 1, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_floods_are_shed_with_503() {
    let rec = Recorder::start().await;
    let dir = forwarding_manifests(&rec);
    let d = Daemon::start(
        dir.path(),
        &[
            "--events-max-connections",
            "8",
            "--events-header-timeout",
            "10s",
        ],
    );
    let rss_before = rss_kib(d.child.id());
    // Eight idle connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&d.events).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = flux_event("over the cap");
    // Waves smaller than the number of 503s written at once: every connection is answered.
    for _ in 0..10 {
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let addr = d.events.clone();
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                request(&addr, "POST", "/", &[], body.as_bytes()).await
            }));
        }
        for t in tasks {
            let resp = t.await.unwrap();
            assert_eq!(resp.status, 503, "{}", resp.body_str());
            assert_eq!(
                resp.headers.get("retry-after").map(String::as_str),
                Some("1")
            );
            assert!(resp.body_str().contains("too many connections"));
        }
    }
    // A burst of 600 at once: each is answered 503 or closed unanswered, never served.
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut tasks = Vec::new();
    for _ in 0..600 {
        let addr = d.events.clone();
        let raw = raw.clone();
        tasks.push(tokio::spawn(async move {
            statuses(&exchange(&addr, raw.as_bytes(), WAIT).await)
        }));
    }
    let mut answered = 0;
    for t in tasks {
        let codes = t.await.unwrap();
        assert!(codes.iter().all(|c| *c == 503), "{codes:?}");
        answered += codes.len();
    }
    assert!(answered > 0, "no connection of the burst was answered 503");
    let rss_after = rss_kib(d.child.id());
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB under a connection flood"
    );
    assert!(rec.requests().is_empty());
    drop(idle);
    // The slots come back once the idle connections are gone.
    let deadline = Instant::now() + WAIT;
    loop {
        let resp = request(
            &d.events,
            "POST",
            "/",
            &[],
            flux_event("good event 1").as_bytes(),
        )
        .await;
        if resp.status == 202 {
            break;
        }
        assert_eq!(resp.status, 503);
        assert!(Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rec.wait_for(1, WAIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pathological_json_gets_400() {
    let rec = Recorder::start().await;
    let dir = forwarding_manifests(&rec);
    let d = Daemon::start(dir.path(), &[]);
    let good: serde_json::Value = serde_json::from_str(&flux_event("x")).unwrap();
    let with = |field: &str, raw: &str| {
        let mut v = good.clone();
        v[field] = serde_json::Value::String("@@@".into());
        v.to_string().replace("\"@@@\"", raw)
    };
    let deep_array = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let huge_digits = "9".repeat(2_000_000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "deeply nested arrays",
            with("message", &deep_array).into_bytes(),
        ),
        (
            "deeply nested objects",
            with("metadata", &deep_object).into_bytes(),
        ),
        ("a deeply nested document", deep_array.clone().into_bytes()),
        ("a huge number", with("message", &huge_digits).into_bytes()),
        (
            "a huge exponent",
            with("severity", "1e999999999").into_bytes(),
        ),
        (
            "a huge string of the wrong type",
            with("involvedObject", &format!("\"{}\"", "x".repeat(2_500_000))).into_bytes(),
        ),
        ("invalid UTF-8", {
            let mut b = with("message", "\"caf\u{e9}\"").into_bytes();
            let at = b.iter().position(|c| *c == 0xc3).unwrap();
            b[at] = 0xff;
            b
        }),
        (
            "a lone surrogate",
            with("message", "\"\\ud800\"").into_bytes(),
        ),
        (
            "a trailing second document",
            format!("{} {{}}", flux_event("x")).into_bytes(),
        ),
        ("a bare number", b"12345678901234567890123456789".to_vec()),
        (
            "an array of events",
            format!("[{}]", flux_event("x")).into_bytes(),
        ),
        (
            "an array as involvedObject",
            with("involvedObject", r#"["Kustomization","apps","webapp"]"#).into_bytes(),
        ),
    ];
    for (what, body) in cases {
        let resp = request(&d.events, "POST", "/", &[], &body).await;
        assert_eq!(resp.status, 400, "{what}: {}", resp.body_str());
        let err: serde_json::Value = serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("{what}: {e}: {}", resp.body_str()));
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid event JSON"),
            "{what}: {err}"
        );
        assert!(resp.body.len() < 1024, "{what}: the error echoes the input");
    }
    // Big but valid: accepted and delivered whole.
    let big = flux_event(&"m".repeat(3 * 1024 * 1024 - 1024));
    let resp = request(&d.events, "POST", "/", &[], big.as_bytes()).await;
    assert_eq!(resp.status, 202, "{}", resp.body_str());
    let got = rec.wait_for(1, WAIT).await;
    assert!(got[0].body.len() > 3 * 1024 * 1024 - 1024);
    assert!(
        d.metric("herald_events_received_total{code=\"400\"}")
            .await
            .is_some()
    );
    still_delivers(&d, &rec, 2, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn request_smuggling_shapes_are_refused() {
    let rec = Recorder::start().await;
    let dir = forwarding_manifests(&rec);
    let d = Daemon::start(dir.path(), &[]);
    let smuggled = flux_event("smuggled");
    let inner = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let shapes: Vec<(&str, String)> = vec![
        (
            "Content-Length and chunked",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{inner}"
            ),
        ),
        (
            "chunked and Content-Length",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n0\r\n\r\n{inner}",
                5 + inner.len()
            ),
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{inner}",
                inner.len()
            ),
        ),
        (
            "a Content-Length list",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, {}\r\n\r\n{inner}",
                inner.len()
            ),
        ),
        (
            "chunked not last",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n{inner}"
            ),
        ),
        (
            "an unknown transfer coding",
            format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n{inner}"),
        ),
        (
            "whitespace before the colon",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{inner}"
            ),
        ),
        (
            "a bad chunk size",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n{inner}"
            ),
        ),
        (
            "Content-Length and a chunked hidden after a bare LF",
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: b\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{inner}"
            ),
        ),
    ];
    for (what, raw) in shapes {
        let out = exchange(&d.events, raw.as_bytes(), Duration::from_secs(15)).await;
        let codes = statuses(&out);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| (400..500).contains(c)),
            "{what}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    still_delivers(&d, &rec, 1, &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rec.requests();
    assert_eq!(got.len(), 1, "only the good event is delivered");
    assert!(!got[0].body_str().contains("smuggled"));
}

/// Writes the whole request, as Python's `http.client` does, and only then reads the answer.
/// Returns the write error, if any, and the answer read.
async fn write_all_then_read(addr: &str, head: &str, body: &[u8]) -> (Option<String>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await
    }
    .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    (written.err().map(|e| e.to_string()), out)
}

/// A body over 3 MiB is read away (up to a bound) before the 413, so a client that writes
/// everything before reading gets the 413, not a reset connection. One that waits for
/// `100 Continue` gets it at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_413_reaches_clients_that_write_the_whole_body_first() {
    let rec = Recorder::start().await;
    let dir = forwarding_manifests(&rec);
    let d = Daemon::start(dir.path(), &[]);
    // Far more than the socket buffers hold, so the client blocks writing until herald reads.
    let body = vec![b'x'; herald_daemon::MAX_BODY + 12 * 1024 * 1024];

    let head = format!(
        "POST / HTTP/1.1\r\nHost: herald\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (write_error, answer) = write_all_then_read(&d.events, &head, &body).await;
    assert_eq!(write_error, None, "the client could not write its body");
    let r = parse_response(&answer);
    assert_eq!((r.status, r.body.len()), (413, 0));

    // Without a Content-Length (chunked), the limit is found while reading.
    let mut chunked = Vec::new();
    for chunk in body.chunks(1024 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST / HTTP/1.1\r\nHost: herald\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (write_error, answer) = write_all_then_read(&d.events, head, &chunked).await;
    assert_eq!(
        write_error, None,
        "the client could not write its chunked body"
    );
    assert_eq!(parse_response(&answer).status, 413);

    // A client that waits for 100 Continue is answered before it sends anything.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: herald\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let raw = exchange(&d.events, head.as_bytes(), WAIT).await;
    let r = parse_response(&raw);
    assert_eq!(r.status, 413);
    assert_eq!(r.headers["connection"], "close");

    assert_eq!(
        d.metric("herald_events_received_total{code=\"413\"}").await,
        Some(3.0)
    );
    still_delivers(&d, &rec, 1, &[]).await;
}
