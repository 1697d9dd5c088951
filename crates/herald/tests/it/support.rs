//! Starting the real binary and talking raw HTTP/1.1 to it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `herald serve`'s four listeners on free loopback ports.
/// How long a daemon may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

pub(crate) const LOOPBACK_PORTS: [&str; 8] = [
    "--events-addr",
    "127.0.0.1:0",
    "--metrics-addr",
    "127.0.0.1:0",
    "--health-addr",
    "127.0.0.1:0",
    "--api-addr",
    "127.0.0.1:0",
];

/// A running `herald serve`.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) events: String,
    pub(crate) health: String,
    pub(crate) metrics: String,
    pub(crate) api: String,
    pub(crate) logs: Arc<Mutex<Vec<String>>>,
    pub(crate) data: PathBuf,
}

impl Daemon {
    /// Starts `herald serve` on free ports with `args` added, and waits until it is ready.
    pub(crate) fn start(manifests: &Path, args: &[&str]) -> Daemon {
        Daemon::start_within(manifests, args, READY_WITHIN)
    }

    /// As [`Daemon::start`], for a daemon that may take up to `ready_within` to be ready.
    pub(crate) fn start_within(manifests: &Path, args: &[&str], ready_within: Duration) -> Daemon {
        let data = tempfile::tempdir().unwrap().keep();
        Daemon::spawn(herald(), manifests, &data, args, ready_within)
    }

    /// Starts `cmd` (herald, or a wrapper that runs it) as `herald serve` with its outbox in
    /// `data`.
    pub(crate) fn start_in(cmd: Command, manifests: &Path, data: &Path, args: &[&str]) -> Daemon {
        Daemon::spawn(cmd, manifests, data, args, READY_WITHIN)
    }

    fn spawn(
        mut cmd: Command,
        manifests: &Path,
        data: &Path,
        args: &[&str],
        ready_within: Duration,
    ) -> Daemon {
        let data = data.to_owned();
        let mut child = cmd
            .args([
                "--log-format",
                "json",
                "--log-level",
                "debug",
                "serve",
                "--manifests",
            ])
            .arg(manifests)
            .args(LOOPBACK_PORTS)
            .args(["--reload-interval", "200ms", "--data-dir"])
            .arg(&data)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herald serve");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("herald is ready") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let Ok(ready) = rx.recv_timeout(ready_within) else {
            let _ = child.kill();
            panic!(
                "herald did not become ready:\n{}",
                logs.lock().unwrap().join("\n")
            );
        };
        let v: serde_json::Value = serde_json::from_str(&ready).unwrap();
        let addr = |k: &str| v[k].as_str().unwrap().to_owned();
        Daemon {
            child,
            events: addr("events"),
            health: addr("health"),
            metrics: addr("metrics"),
            api: addr("api"),
            logs,
            data,
        }
    }

    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    pub(crate) async fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no log line containing {needle:?} within {timeout:?}:\n{}",
            self.logs()
        );
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The value of the metric line that starts with `prefix` once it is `want`, or the last
    /// value read when `timeout` runs out.
    pub(crate) async fn wait_metric(
        &self,
        prefix: &str,
        want: f64,
        timeout: Duration,
    ) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.metric(prefix).await;
            if value == Some(want) || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Current value of a metric line that starts with `prefix` (name and labels).
    pub(crate) async fn metric(&self, prefix: &str) -> Option<f64> {
        let resp = request(&self.metrics, "GET", "/metrics", &[], b"").await;
        assert_eq!(resp.status, 200);
        resp.body_str()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub(crate) async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading everything; ignore a broken pipe then.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("response in time");
    parse_response(&raw)
}

pub(crate) fn parse_response(raw: &[u8]) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body);
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// The Flux example event (compatibility contract, section 1.2), with a variable message.
pub(crate) fn flux_event(message: &str) -> String {
    serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "apps", "name": "webapp",
            "uid": "7d0cdc51-ddcf-4743-b223-83ca5c699632", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
        "severity": "error", "timestamp": "2022-10-28T07:26:19Z",
        "message": message, "reason": "ValidationFailed",
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"},
        "reportingController": "kustomize-controller", "reportingInstance": "kustomize-controller-7c7b47f5f-8bhrp"
    })
    .to_string()
}

/// A manifest folder with `text` as its only file.
pub(crate) fn manifests(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifests.yaml"), text).unwrap();
    dir
}

pub(crate) fn provider(name: &str, ns: &str, ty: &str, address: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  type: {ty}\n  address: {address}\n"
    )
}

pub(crate) fn alert(name: &str, ns: &str, provider: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  providerRef: {{name: {provider}}}\n{extra}\n"
    )
}
