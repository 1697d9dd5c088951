//! The daemon benchmark: `wrk` drives `herald serve` with one generic provider whose receiver
//! is a fast loopback sink (`herald receive --quiet`), and the same `wrk` posts straight to the
//! sink for the raw limit. Every accepted event goes through the outbox (answered 202 only once
//! committed to disk), so the rates include durability; the outbox's size gives the disk bytes
//! per event. Also idle and peak RSS, and start-up time with 1,000 Providers and
//! 1,000 Alerts.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What the daemon benchmark measured.
#[derive(Debug)]
pub(crate) struct DaemonBench {
    pub(crate) raw_rps: f64,
    pub(crate) accepted_rps: f64,
    pub(crate) shed: u64,
    pub(crate) delivered_rps: f64,
    pub(crate) delivered: u64,
    pub(crate) p50_added_ms: f64,
    pub(crate) p99_added_ms: f64,
    pub(crate) lag_p50_ms: f64,
    pub(crate) lag_p99_ms: f64,
    pub(crate) idle_rss_kib: u64,
    pub(crate) peak_rss_kib: u64,
    pub(crate) startup_ms: f64,
    pub(crate) outbox_bytes: u64,
    pub(crate) recovery_ms: f64,
}

const DURATION: &str = "10s";
const CONNECTIONS: &str = "32";

const LUA: &str = r#"
local n = 0
function setup(thread)
  n = n + 1
  thread:set("tid", n)
end
local counter = 0
-- Like Flux's emitters, back off when herald sheds load (503) instead of spinning.
local backoff = 0
response = function(status, headers, body)
  if status == 503 then backoff = 2 else backoff = 0 end
end
delay = function()
  return backoff
end
request = function()
  counter = counter + 1
  local body = '{"involvedObject":{"kind":"Kustomization","namespace":"bench","name":"app",' ..
    '"apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-11-28T10:00:00Z",' ..
    '"message":"Reconciliation finished, event ' .. tostring(tid) .. '-' .. counter .. '",' ..
    '"reason":"ReconciliationSucceeded","metadata":{"kustomize.toolkit.fluxcd.io/revision":"main@sha1:69b59063470310ebbd88a9156325322a124e55a3"},' ..
    '"reportingController":"kustomize-controller"}'
  return wrk.format("POST", "/", {["Content-Type"] = "application/json"}, body)
end
"#;

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A raw `GET`; returns the status code and body.
pub(crate) fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub(crate) fn wait_ready(port: u16, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if matches!(get(port, "/readyz"), Ok((200, _))) {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("herald was not ready within {timeout:?}")
}

pub(crate) fn rss_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn ensure_wrk() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("$ apt-get install -y wrk");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "wrk"])
            .status()
    };
    if !install()?.success() {
        Command::new("apt-get").args(["update", "-q"]).status()?;
        if !install()?.success() {
            bail!("could not install wrk with apt-get");
        }
    }
    Ok(())
}

struct WrkResult {
    rps: f64,
    requests: u64,
    /// Answers other than 2xx (503 when herald sheds load, 429 for duplicates).
    non_2xx: u64,
    p50_ms: f64,
    p99_ms: f64,
}

fn to_ms(v: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * factor)
}

fn wrk(script: &Path, port: u16) -> Result<WrkResult> {
    let url = format!("http://127.0.0.1:{port}/");
    eprintln!(
        "$ wrk -t2 -c{CONNECTIONS} -d{DURATION} --latency -s {} {url}",
        script.display()
    );
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{DURATION}"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(&url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{text}");
    if !out.status.success() {
        bail!(
            "wrk failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("no Requests/sec in wrk output")?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let p50_ms = field("50%")
        .and_then(|v| to_ms(&v))
        .context("no 50% latency")?;
    let p99_ms = field("99%")
        .and_then(|v| to_ms(&v))
        .context("no 99% latency")?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(WrkResult {
        rps,
        requests,
        non_2xx,
        p50_ms,
        p99_ms,
    })
}

pub(crate) fn metric(port: u16, prefix: &str) -> Result<f64> {
    let (_, body) = get(port, "/metrics")?;
    Ok(body
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

fn serve(bin: &Path, manifests: &Path, data: &Path, ports: (u16, u16, u16)) -> Result<Killed> {
    let child = Command::new(bin)
        .args(["--log-level", "warn", "serve", "--manifests"])
        .arg(manifests)
        .args(["--events-addr", &format!("127.0.0.1:{}", ports.0)])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports.1)])
        .args(["--health-addr", &format!("127.0.0.1:{}", ports.2)])
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting herald serve")?;
    Ok(Killed(child))
}

/// Runs the daemon benchmark with the release binary `bin`.
pub(crate) fn run(bin: &Path, work: &Path) -> Result<DaemonBench> {
    ensure_wrk()?;
    std::fs::create_dir_all(work)?;
    let script = work.join("post.lua");
    std::fs::write(&script, LUA)?;

    let sink_port = free_port()?;
    let _sink = Killed(
        Command::new(bin)
            .args([
                "receive",
                "--quiet",
                "--addr",
                &format!("127.0.0.1:{sink_port}"),
            ])
            .stdout(Stdio::null())
            .spawn()
            .context("starting the sink")?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let raw = wrk(&script, sink_port)?;

    let manifests = work.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("bench.yaml"),
        format!(
            "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: sink, namespace: bench}}\nspec:\n  type: generic\n  address: http://127.0.0.1:{sink_port}/\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: all, namespace: bench}}\nspec:\n  providerRef: {{name: sink}}\n  eventSources: [{{kind: Kustomization, name: '*'}}]\n"
        ),
    )?;
    let ports = (free_port()?, free_port()?, free_port()?);
    let data = work.join("data");
    // A fresh outbox, so that its size is this run's.
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let daemon = serve(bin, &manifests, &data, ports)?;
    wait_ready(ports.2, Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = daemon.0.id();
    let idle_rss_kib = rss_kib(pid, "VmRSS:")?;
    let started = Instant::now();
    let loaded = wrk(&script, ports.0)?;
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    while metric(ports.1, "herald_queue_depth")? > 0.0 {
        if Instant::now() > drain_deadline {
            bail!("the daemon did not drain its queue within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = metric(
        ports.1,
        "herald_deliveries_total{namespace=\"bench\",name=\"sink\",type=\"generic\",outcome=\"success\"}",
    )? as u64;
    let peak_rss_kib = rss_kib(pid, "VmHWM:")?;
    let (lag_p50_ms, lag_p99_ms) = lag_quantiles(ports.1)?;
    drop(daemon);
    // Nothing is pruned within the run (retention 1h), so this holds every accepted event.
    let outbox_bytes = std::fs::metadata(data.join("outbox.redb"))
        .context("the outbox file")?
        .len();
    let accepted = loaded.requests - loaded.non_2xx;
    // wrk stops counting at the deadline: up to one request per connection was accepted
    // without being counted.
    let in_flight: u64 = CONNECTIONS.parse()?;
    if delivered < accepted || delivered > accepted + in_flight {
        bail!("{delivered} events delivered, but {accepted} were accepted (answered 202)");
    }

    let startup_ms = startup(bin, work)?;
    // The load run ended with SIGKILL: the next start checks and repairs the outbox.
    let ports = (free_port()?, free_port()?, free_port()?);
    let started = Instant::now();
    let daemon = serve(bin, &manifests, &data, ports)?;
    wait_ready(ports.2, Duration::from_secs(120))?;
    let recovery_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(daemon);
    Ok(DaemonBench {
        raw_rps: raw.rps,
        accepted_rps: accepted as f64 / 10.0,
        shed: loaded.non_2xx,
        delivered_rps: delivered as f64 / elapsed,
        delivered,
        p50_added_ms: loaded.p50_ms - raw.p50_ms,
        p99_added_ms: loaded.p99_ms - raw.p99_ms,
        lag_p50_ms,
        lag_p99_ms,
        idle_rss_kib,
        peak_rss_kib,
        startup_ms,
        outbox_bytes,
        recovery_ms,
    })
}

/// Median time from spawn to `/readyz` answering 200, with 1,000 Providers and 1,000 Alerts.
fn startup(bin: &Path, work: &Path) -> Result<f64> {
    let dir: PathBuf = work.join("manifests-1000");
    std::fs::create_dir_all(&dir)?;
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!(
            "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: p{i}, namespace: ns{i}}}\nspec:\n  type: generic-hmac\n  address: http://127.0.0.1:9/hook/{i}\n  secretRef: {{name: s{i}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s{i}, namespace: ns{i}}}\nstringData:\n  token: key-{i}\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: a{i}, namespace: ns{i}}}\nspec:\n  providerRef: {{name: p{i}}}\n  eventSources: [{{kind: Kustomization, name: '*'}}, {{kind: GitRepository, name: 'app-{i}'}}]\n  exclusionList: ['^Dependencies']\n"
        ));
    }
    std::fs::write(dir.join("many.yaml"), text)?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let ports = (free_port()?, free_port()?, free_port()?);
        let data = work.join("startup-data");
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        let started = Instant::now();
        let daemon = serve(bin, &dir, &data, ports)?;
        let _ = wait_ready(ports.2, Duration::from_secs(30))?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        drop(daemon);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// p50 and p99 of `herald_delivery_lag_seconds`, interpolated within its buckets, in ms.
fn lag_quantiles(metrics_port: u16) -> Result<(f64, f64)> {
    let (_, body) = get(metrics_port, "/metrics")?;
    let mut buckets: Vec<(f64, f64)> = body
        .lines()
        .filter_map(|l| l.strip_prefix("herald_delivery_lag_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total == 0.0 {
        bail!("no delivery lag recorded");
    }
    let quantile = |q: f64| {
        let target = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(le, count) in &buckets {
            if count >= target {
                if le.is_infinite() {
                    return lower;
                }
                let frac = if count > below {
                    (target - below) / (count - below)
                } else {
                    0.0
                };
                return lower + frac * (le - lower);
            }
            (lower, below) = (le, count);
        }
        lower
    };
    Ok((quantile(0.5) * 1000.0, quantile(0.99) * 1000.0))
}
