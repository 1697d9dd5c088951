//! The daemon benchmark: `wrk` drives `herald serve` (default flags and log level) with one
//! generic provider whose receiver is a fast loopback sink (`herald receive --quiet`), and the
//! same `wrk` posts straight to the sink for the raw limit, in the same run, then through a
//! std-only forwarder with no durability (`Forwarder`: the ceiling of two HTTP exchanges per
//! event, what herald's two exchanges allow on the same cores), and the same forwarder
//! answering 202 only once each event is written to a file and synced (`Journal`: the ceiling
//! of such a forwarder with std threads), and `herald-ceiling` (herald-testkit's bench tool: the
//! same durable forwarding on herald's own stack, tokio and hyper with a writer thread's group
//! commits, the ceiling of a forwarder built as herald is whose 202 means "on disk"). Events are distinct
//! and spread over 256 objects. Every accepted event goes through the outbox (answered 202 only
//! once committed to disk), so the accepted rate is the durable rate; the delivered rate counts
//! deliveries made *during* the 10 s load. Then the same with every event about one object
//! (one ordering key: strictly one after another), and against a sink that rate-limits with
//! 429 and `Retry-After`. Also idle and peak RSS, the outbox's disk bytes per event, recovery
//! after `kill -9`, and start-up time with 1,000 Providers and 1,000 Alerts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What one load run measured.
#[derive(Debug, Default)]
pub(crate) struct LoadRun {
    /// Answered 202 (durably recorded) per second of the load.
    pub(crate) accepted_rps: f64,
    /// Answered 503 (shed: a full quota) during the load.
    pub(crate) shed: u64,
    /// Delivered per second *during* the load.
    pub(crate) delivered_rps: f64,
    /// Delivered per second from the start of the load until the queue was empty.
    pub(crate) drained_rps: f64,
    /// Events delivered in all.
    pub(crate) delivered: u64,
    /// Events accepted in all.
    pub(crate) accepted: u64,
    /// wrk's p50 and p99 latency, in ms.
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Accepted-to-delivered p50 and p99, in ms.
    pub(crate) lag_p50_ms: f64,
    pub(crate) lag_p99_ms: f64,
    /// `VmRSS` one second after ready, and `VmHWM` after the run, in KiB.
    pub(crate) idle_rss_kib: u64,
    pub(crate) peak_rss_kib: u64,
    /// The outbox file after the run.
    pub(crate) outbox_bytes: u64,
    /// herald's CPU time (user + system) per delivered event, in µs.
    pub(crate) cpu_us_per_event: f64,
    /// During the load: mean outbox commit time (ms) and deliveries appended per commit.
    pub(crate) commit_ms: f64,
    pub(crate) appended_per_commit: f64,
    /// The rate-limited run: the sink's limit, and the 429 answers herald got.
    pub(crate) limit_rps: f64,
    pub(crate) answered_429: u64,
}

/// What the daemon benchmark measured.
#[derive(Debug)]
pub(crate) struct DaemonBench {
    pub(crate) raw_rps: f64,
    pub(crate) raw_p50_ms: f64,
    pub(crate) raw_p99_ms: f64,
    /// 256 objects through the std-only forwarder with no durability (`Forwarder`): the
    /// ceiling of two HTTP exchanges per event. Its CPU per event is the forwarder's; RSS,
    /// outbox, commit and lag fields are not measured (0).
    pub(crate) ceiling: LoadRun,
    /// The same forwarder answering 202 only once the event is written to a file and synced
    /// (`Journal`): the ceiling of any forwarder whose 202 means "recorded on disk".
    pub(crate) durable_ceiling: LoadRun,
    /// The durable ceiling on herald's own stack (`herald-ceiling`: tokio, hyper's server and
    /// pooled client, a writer thread's group commits): the ceiling of a forwarder built as
    /// herald is whose 202 means "recorded on disk".
    pub(crate) stack_ceiling: LoadRun,
    /// 256 objects.
    pub(crate) spread: LoadRun,
    /// One object: one ordering key.
    pub(crate) single: LoadRun,
    /// 256 objects against a sink that answers 429 beyond its limit.
    pub(crate) limited: LoadRun,
    pub(crate) startup_ms: f64,
    pub(crate) recovery_ms: f64,
    /// A 16 KiB write and `fdatasync` in the data dir's file system, in ms: p50 and mean.
    pub(crate) fsync_p50_ms: f64,
    pub(crate) fsync_mean_ms: f64,
}

impl DaemonBench {
    /// The most events per second that `wrk`'s connections can get answered 202 when every
    /// answer waits for one fsync (one commit at a time, each carrying at most one request per
    /// connection): connections / mean fsync time.
    pub(crate) fn fsync_bound_rps(&self) -> f64 {
        let connections: f64 = CONNECTIONS.parse().unwrap_or(32.0);
        connections / (self.fsync_mean_ms / 1000.0)
    }
}

/// Times `rounds` 16 KiB writes, each followed by `fdatasync`, in `dir`: p50 and mean, in ms.
fn fsync_ms(dir: &Path, rounds: usize) -> Result<(f64, f64)> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = vec![7u8; 16 * 1024];
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let started = Instant::now();
        file.write_all_at(&block, (i % 64) as u64 * block.len() as u64)?;
        file.sync_data()?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], mean))
}

pub(crate) const DURATION: &str = "10s";
pub(crate) const SECONDS: f64 = 10.0;
pub(crate) const CONNECTIONS: &str = "32";
/// The rate-limited sink's limit, per second.
const LIMIT_RPS: u64 = 2000;

/// The wrk script; `OBJECTS` is replaced by how many objects the events are spread over, and
/// `PREFIX` by what starts each event's number in its message (so that the events of several
/// wrk processes at once stay distinct).
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
  local body = '{"involvedObject":{"kind":"Kustomization","namespace":"bench","name":"app-' .. tostring(counter % OBJECTS) .. '",' ..
    '"apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-11-28T10:00:00Z",' ..
    '"message":"Reconciliation finished, event PREFIX' .. tostring(tid) .. '-' .. counter .. '",' ..
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

/// [`wait_ready`] for a daemon whose logs go to `log`: if it is not ready in time, the error
/// says whether it exited and ends with its last log lines.
fn wait_ready_logged(
    daemon: &mut Killed,
    port: u16,
    timeout: Duration,
    log: &Path,
) -> Result<Duration> {
    wait_ready(port, timeout).with_context(|| {
        let exited = match daemon.0.try_wait() {
            Ok(Some(status)) => format!("it exited ({status})"),
            _ => "it is still running".to_owned(),
        };
        let said = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = said.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("{exited}; the end of its log ({}):\n{tail}", log.display())
    })
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

/// A process's CPU time so far (user + system), in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: count fields after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no field {i} in /proc/{pid}/stat"))
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok(field(11)? + field(12)?)
}

pub(crate) fn ensure_wrk() -> Result<()> {
    crate::setup::debian_programs(&[("wrk", "wrk")])
}

pub(crate) struct WrkResult {
    pub(crate) rps: f64,
    pub(crate) requests: u64,
    /// Answers other than 2xx (503 when herald sheds load, 429 for duplicates).
    pub(crate) non_2xx: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
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
    wrk_with(script, port, 2, CONNECTIONS.parse()?)
}

/// `wrk` for `DURATION` with `threads` threads and `connections` connections.
pub(crate) fn wrk_with(
    script: &Path,
    port: u16,
    threads: usize,
    connections: usize,
) -> Result<WrkResult> {
    let url = format!("http://127.0.0.1:{port}/");
    eprintln!(
        "$ wrk -t{threads} -c{connections} -d{DURATION} --latency -s {} {url}",
        script.display()
    );
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
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

/// `herald serve` at its default flags and log level (its logs are dropped).
fn serve(bin: &Path, manifests: &Path, data: &Path, ports: (u16, u16, u16)) -> Result<Killed> {
    serve_with(bin, manifests, data, ports, &[], None)
}

/// `herald serve` at its default flags and log level, with `extra` flags after them; its
/// logs (stdout and stderr) go to `log`, or are dropped.
pub(crate) fn serve_with(
    bin: &Path,
    manifests: &Path,
    data: &Path,
    ports: (u16, u16, u16),
    extra: &[String],
    log: Option<&Path>,
) -> Result<Killed> {
    let (stdout, stderr) = match log {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let child = Command::new(bin)
        .args(["serve", "--manifests"])
        .arg(manifests)
        .args(["--events-addr", &format!("127.0.0.1:{}", ports.0)])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports.1)])
        .args(["--health-addr", &format!("127.0.0.1:{}", ports.2)])
        // The status API is not measured; a free port keeps its default from colliding.
        .args(["--api-addr", &format!("127.0.0.1:{}", free_port()?)])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .context("starting herald serve")?;
    Ok(Killed(child))
}

pub(crate) fn script(work: &Path, objects: u64) -> Result<PathBuf> {
    script_prefixed(work, objects, "")
}

/// The wrk script for `objects` objects whose events' numbers start with `prefix` (letters,
/// digits, `-`).
pub(crate) fn script_prefixed(work: &Path, objects: u64, prefix: &str) -> Result<PathBuf> {
    let name = if prefix.is_empty() {
        format!("post-{objects}.lua")
    } else {
        format!("post-{objects}-{}.lua", prefix.trim_end_matches('-'))
    };
    let path = work.join(name);
    std::fs::write(
        &path,
        LUA.replace("OBJECTS", &objects.to_string())
            .replace("PREFIX", prefix),
    )?;
    Ok(path)
}

/// The manifests of a run, in `<work>/manifests-<name>`: one generic Provider `bench/sink`
/// whose address is the sink on `sink_port`, and one Alert sending it every Kustomization's
/// events.
pub(crate) fn manifests(work: &Path, name: &str, sink_port: u16) -> Result<PathBuf> {
    let manifests = work.join(format!("manifests-{name}"));
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("bench.yaml"),
        format!(
            "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: sink, namespace: bench}}\nspec:\n  type: generic\n  address: http://127.0.0.1:{sink_port}/\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: all, namespace: bench}}\nspec:\n  providerRef: {{name: sink}}\n  eventSources: [{{kind: Kustomization, name: '*'}}]\n"
        ),
    )?;
    Ok(manifests)
}

pub(crate) const DELIVERED: &str = "herald_deliveries_total{namespace=\"bench\",name=\"sink\",type=\"generic\",outcome=\"success\"}";

/// Starts `herald receive --quiet` on a free port.
pub(crate) fn sink(bin: &Path) -> Result<(u16, Killed)> {
    let port = free_port()?;
    let child = Command::new(bin)
        .args(["receive", "--quiet", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the sink")?;
    std::thread::sleep(Duration::from_millis(300));
    Ok((port, Killed(child)))
}

/// One load run against a fresh daemon with a fresh outbox. `drain`: wait until everything
/// accepted is delivered and check that it was (otherwise the daemon is killed at the end of
/// the load). Returns the run and the data dir.
fn load_run(
    bin: &Path,
    work: &Path,
    name: &str,
    objects: u64,
    sink_port: u16,
    drain: bool,
) -> Result<(LoadRun, PathBuf)> {
    let manifests = manifests(work, name, sink_port)?;
    let ports = (free_port()?, free_port()?, free_port()?);
    let data = work.join(format!("data-{name}"));
    // A fresh outbox, so that its size is this run's.
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let daemon = serve(bin, &manifests, &data, ports)?;
    wait_ready(ports.2, Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = daemon.0.id();
    let mut run = LoadRun {
        idle_rss_kib: rss_kib(pid, "VmRSS:")?,
        ..LoadRun::default()
    };
    let script = script(work, objects)?;
    let before = metric(ports.1, DELIVERED)?;
    let commits = |port| -> Result<(f64, f64, f64)> {
        Ok((
            metric(port, "herald_outbox_commits_total")?,
            metric(port, "herald_outbox_commit_seconds_total")?,
            metric(port, "herald_outbox_appended_deliveries_total")?,
        ))
    };
    let commits_before = commits(ports.1)?;
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let loaded = wrk(&script, ports.0)?;
    // Delivered while the load ran: read as soon as wrk is done.
    let during = metric(ports.1, DELIVERED)? - before;
    let commits_after = commits(ports.1)?;
    let n = (commits_after.0 - commits_before.0).max(1.0);
    run.commit_ms = (commits_after.1 - commits_before.1) * 1000.0 / n;
    run.appended_per_commit = (commits_after.2 - commits_before.2) / n;
    let load_secs = started.elapsed().as_secs_f64().max(SECONDS);
    run.accepted = loaded.requests - loaded.non_2xx;
    run.accepted_rps = run.accepted as f64 / SECONDS;
    run.shed = loaded.non_2xx;
    run.delivered_rps = during / load_secs;
    run.p50_ms = loaded.p50_ms;
    run.p99_ms = loaded.p99_ms;
    if drain {
        let deadline = Instant::now() + Duration::from_secs(180);
        while metric(ports.1, "herald_queue_depth")? > 0.0 {
            if Instant::now() > deadline {
                bail!("{name}: the daemon did not drain its queue within 3 minutes");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        run.drained_rps = metric(ports.1, DELIVERED)? / started.elapsed().as_secs_f64();
    }
    run.delivered = metric(ports.1, DELIVERED)? as u64;
    // Ticks of 10 ms (USER_HZ is 100 on Linux).
    let cpu_ms = (cpu_ticks(pid)? - cpu_before) as f64 * 10.0;
    run.cpu_us_per_event = cpu_ms * 1000.0 / (run.delivered.max(1) as f64);
    run.peak_rss_kib = rss_kib(pid, "VmHWM:")?;
    (run.lag_p50_ms, run.lag_p99_ms) = lag_quantiles(ports.1).unwrap_or((0.0, 0.0));
    drop(daemon);
    // Nothing is pruned within the run (retention 1h), so this holds every accepted event.
    run.outbox_bytes = std::fs::metadata(data.join("outbox.redb"))
        .context("the outbox file")?
        .len();
    // wrk stops counting at the deadline: up to one request per connection was accepted
    // without being counted.
    let in_flight: u64 = CONNECTIONS.parse()?;
    if drain && (run.delivered < run.accepted || run.delivered > run.accepted + in_flight) {
        bail!(
            "{name}: {} events delivered, but {} were accepted (answered 202)",
            run.delivered,
            run.accepted
        );
    }
    Ok((run, data))
}

/// Runs the daemon benchmark with the release binary `bin`.
pub(crate) fn run(bin: &Path, ceiling_bin: &Path, work: &Path) -> Result<DaemonBench> {
    ensure_wrk()?;
    std::fs::create_dir_all(work)?;

    let (sink_port, _sink) = sink(bin)?;
    let raw = wrk(&script(work, 256)?, sink_port)?;
    let ceiling = ceiling_run(work, sink_port, false)?;
    let durable_ceiling = ceiling_run(work, sink_port, true)?;
    let stack_ceiling = stack_ceiling_run(ceiling_bin, work, sink_port)?;
    let (spread, data) = load_run(bin, work, "spread", 256, sink_port, true)?;
    let (single, _) = load_run(bin, work, "single", 1, sink_port, true)?;
    let limiter = LimitedSink::start(LIMIT_RPS)?;
    let (mut limited, _) = load_run(bin, work, "limited", 256, limiter.port, false)?;
    limited.limit_rps = LIMIT_RPS as f64;
    limited.answered_429 = limiter.refused();

    let (fsync_p50_ms, fsync_mean_ms) = fsync_ms(work, 300)?;
    let startup_ms = startup(bin, work)?;
    // The spread run ended with SIGKILL: the next start checks and repairs its outbox.
    let manifests = work.join("manifests-spread");
    let ports = (free_port()?, free_port()?, free_port()?);
    let started = Instant::now();
    let log = work.join("recovery.log");
    let mut daemon = serve_with(bin, &manifests, &data, ports, &[], Some(&log))?;
    wait_ready_logged(&mut daemon, ports.2, Duration::from_secs(120), &log)?;
    let recovery_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(daemon);
    Ok(DaemonBench {
        raw_rps: raw.rps,
        raw_p50_ms: raw.p50_ms,
        raw_p99_ms: raw.p99_ms,
        ceiling,
        durable_ceiling,
        stack_ceiling,
        spread,
        single,
        limited,
        startup_ms,
        recovery_ms,
        fsync_p50_ms,
        fsync_mean_ms,
    })
}

/// A sink that answers 200 to at most `limit` requests per second (fixed one-second windows)
/// and `429 Too Many Requests` with `Retry-After: 1` beyond: a service with a published rate
/// limit. One thread per connection; HTTP/1.1 with `Content-Length` bodies, kept alive.
struct LimitedSink {
    port: u16,
    refused: Arc<AtomicU64>,
}

impl LimitedSink {
    fn start(limit: u64) -> Result<LimitedSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let refused = Arc::new(AtomicU64::new(0));
        let window = Arc::new(Mutex::new((Instant::now(), 0u64)));
        let counter = refused.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let window = window.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = serve_limited(stream, &window, &counter, limit);
                });
            }
        });
        Ok(LimitedSink { port, refused })
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

/// One HTTP/1.1 message (request or response) with a `Content-Length` body, or none: its start
/// line and body, or `None` when the peer closed the connection between messages.
fn read_message(reader: &mut impl BufRead, line: &mut String) -> Result<Option<(String, Vec<u8>)>> {
    // The start line, then headers up to the blank line, then the body.
    line.clear();
    if reader.read_line(line)? == 0 {
        return Ok(None);
    }
    let start = line.trim_end().to_owned();
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(Some((start, body)))
}

fn serve_limited(
    stream: TcpStream,
    window: &Mutex<(Instant, u64)>,
    refused: &AtomicU64,
    limit: u64,
) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    while read_message(&mut reader, &mut line)?.is_some() {
        let allowed = {
            let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
            if w.0.elapsed() >= Duration::from_secs(1) {
                *w = (Instant::now(), 0);
            }
            w.1 += 1;
            w.1 <= limit
        };
        if allowed {
            writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        } else {
            refused.fetch_add(1, Ordering::SeqCst);
            writer.write_all(
                b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
            )?;
        }
    }
    Ok(())
}

/// The queue between the forwarder's acceptors and its forwarding threads. Bounded: when it is
/// full an acceptor blocks, so the load backs up into wrk instead of being dropped or queued
/// without end.
const CEILING_QUEUE: usize = 65_536;

/// What the forwarder counted: bodies queued, and forwarded ones the sink answered 2xx or not.
#[derive(Default)]
struct Forwarded {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

/// The ceiling: the least any forwarder must do per event, with std only and no durability,
/// JSON parsing or matching. Each event is one HTTP exchange in (answered 202 at once) and one
/// out (a POST to the sink over a kept-alive connection), as for herald, where the raw limit
/// is one exchange. What it reaches on the same cores in the same run bounds what herald can.
struct Forwarder {
    port: u16,
    counts: Arc<Forwarded>,
}

impl Forwarder {
    /// Listens on loopback (one thread per inbound connection) and starts `workers` forwarding
    /// threads, each with its own connection to the sink on `sink_port`. The threads stay
    /// until the bench exits, idle once the queue is empty.
    fn start(sink_port: u16, workers: usize, journal: Option<Journal>) -> Result<Forwarder> {
        let journal = journal.map(Arc::new);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Forwarded::default());
        let (queue, bodies) = std::sync::mpsc::sync_channel::<Vec<u8>>(CEILING_QUEUE);
        // std's Receiver is not Sync: the threads take turns at it.
        let bodies = Arc::new(Mutex::new(bodies));
        for _ in 0..workers {
            // Connected here, so that a sink that is not there fails the bench at once.
            let mut sink = SinkConnection::open(sink_port)?;
            let (bodies, counts) = (bodies.clone(), counts.clone());
            std::thread::spawn(move || forward(&mut sink, &bodies, &counts));
        }
        let accepting = counts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (queue, counts) = (queue.clone(), accepting.clone());
                let journal = journal.clone();
                std::thread::spawn(move || {
                    let _ = accept_events(stream, &queue, &counts, journal.as_deref());
                });
            }
        });
        Ok(Forwarder { port, counts })
    }

    /// (queued, delivered with a 2xx, failed) so far.
    fn counts(&self) -> (u64, u64, u64) {
        let c = &self.counts;
        (
            c.queued.load(Ordering::SeqCst),
            c.delivered.load(Ordering::SeqCst),
            c.failed.load(Ordering::SeqCst),
        )
    }
}

/// Answers every request on one inbound connection `202 Accepted` and queues its body: at
/// once, or with a `journal` once the body is written to it and synced. The connection is not
/// read again until the body is queued: a full queue holds wrk back. Errors end the connection
/// unreported: wrk drops its connections at the end of the load.
fn accept_events(
    stream: TcpStream,
    queue: &SyncSender<Vec<u8>>,
    counts: &Forwarded,
    journal: Option<&Journal>,
) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    while let Some((_, body)) = read_message(&mut reader, &mut line)? {
        if let Some(journal) = journal {
            journal.append(&body)?;
        }
        writer.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")?;
        counts.queued.fetch_add(1, Ordering::SeqCst);
        queue.send(body)?;
    }
    Ok(())
}

/// One forwarding thread: takes bodies off the queue and POSTs each to the sink, counting the
/// 2xx answers. A broken connection is opened again and the body sent once more on it.
fn forward(sink: &mut SinkConnection, bodies: &Mutex<Receiver<Vec<u8>>>, counts: &Forwarded) {
    loop {
        // The guard goes at the end of this statement: the lock is held only to take one body.
        let next = bodies.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(body) = next else { return };
        let status = sink.post(&body).or_else(|_| {
            *sink = SinkConnection::open(sink.port)?;
            sink.post(&body)
        });
        let counter = match status {
            Ok(200..=299) => &counts.delivered,
            _ => &counts.failed,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// One kept-alive HTTP/1.1 connection to the sink.
struct SinkConnection {
    port: u16,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: String,
    request: Vec<u8>,
}

impl SinkConnection {
    fn open(port: u16) -> Result<SinkConnection> {
        let writer = TcpStream::connect(("127.0.0.1", port)).context("connecting to the sink")?;
        writer.set_nodelay(true)?;
        Ok(SinkConnection {
            port,
            reader: BufReader::new(writer.try_clone()?),
            writer,
            line: String::new(),
            request: Vec::new(),
        })
    }

    /// POSTs `body` as JSON and reads the answer: its status code.
    fn post(&mut self, body: &[u8]) -> Result<u16> {
        // Head and body in one write: one segment, no wait on Nagle and delayed ACKs.
        self.request.clear();
        write!(
            self.request,
            "POST / HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.port,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        self.writer.write_all(&self.request)?;
        let (start, _) = read_message(&mut self.reader, &mut self.line)?
            .context("the sink closed the connection")?;
        start
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("no status in the sink's answer {start:?}"))
    }
}

/// The least a durable forwarder must do before its 202: the body written to a file and the
/// file synced (`fdatasync`), in group commits. A connection's thread adds its body to the
/// next commit and waits for it; whichever thread finds no commit running writes and syncs
/// everything added so far, for all of them. The file is written in full once before the load
/// and then overwritten in place from its start, over and over, so that a sync flushes data
/// only (no growth of the file to record): the cheapest sync the file system offers.
struct Journal {
    file: std::fs::File,
    bytes: u64,
    state: Mutex<JournalState>,
    synced: Condvar,
}

#[derive(Default)]
struct JournalState {
    /// Bodies added since the last commit began.
    pending: Vec<u8>,
    /// Bodies added in all, and how many of them are synced.
    added: u64,
    durable: u64,
    /// A thread is writing and syncing.
    committing: bool,
    /// A commit failed: what it held is lost, so nothing more is answered as synced.
    broken: bool,
    /// Where the next commit writes.
    offset: u64,
}

/// The journal file's size in the bench: far more than a commit ever holds.
const JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

impl Journal {
    /// A journal of `bytes` (a multiple of 4 KiB) at `path`, written in full and synced.
    fn create(path: &Path, bytes: u64) -> Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let zeros = vec![0u8; 4096];
        for _ in 0..bytes / zeros.len() as u64 {
            (&file).write_all(&zeros)?;
        }
        file.sync_all()?;
        Ok(Journal {
            file,
            bytes,
            state: Mutex::new(JournalState::default()),
            synced: Condvar::new(),
        })
    }

    /// Returns once `body` is written and synced.
    fn append(&self, body: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let lock = || self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = lock();
        state.pending.extend_from_slice(body);
        state.added += 1;
        let mine = state.added;
        while state.durable < mine {
            if state.broken {
                bail!("the journal could not be written or synced");
            }
            if state.committing {
                state = self.synced.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.committing = true;
            let batch = std::mem::take(&mut state.pending);
            let upto = state.added;
            if state.offset + batch.len() as u64 > self.bytes {
                state.offset = 0;
            }
            let at = state.offset;
            state.offset += batch.len() as u64;
            drop(state);
            let written = self
                .file
                .write_all_at(&batch, at)
                .and_then(|()| self.file.sync_data());
            state = lock();
            state.committing = false;
            match &written {
                Ok(()) => state.durable = upto,
                Err(_) => state.broken = true,
            }
            self.synced.notify_all();
            written?;
        }
        Ok(())
    }
}

/// The ceiling case: the 256-object load through the std-only `Forwarder` to the sink on
/// `sink_port`, counted as `load_run` counts herald's (accepted over the 10 s, delivered
/// during the load), then drained. Its CPU per event is this process's: the forwarder is all
/// that runs in it meanwhile.
fn ceiling_run(work: &Path, sink_port: u16, durable: bool) -> Result<LoadRun> {
    let name = if durable {
        "durable ceiling"
    } else {
        "ceiling"
    };
    let journal_path = work.join("ceiling-journal");
    let journal = durable
        .then(|| Journal::create(&journal_path, JOURNAL_BYTES))
        .transpose()?;
    let forwarder = Forwarder::start(sink_port, CONNECTIONS.parse()?, journal)?;
    let counts = || Ok(forwarder.counts());
    let run = forwarded_run(name, work, forwarder.port, std::process::id(), counts);
    let _ = std::fs::remove_file(&journal_path);
    run
}

/// The durable ceiling on herald's stack: the 256-object load through `herald-ceiling` (the
/// release binary `bin`) with its journal in `work`, counted as `ceiling_run` counts. Its CPU
/// per event is that process's.
fn stack_ceiling_run(bin: &Path, work: &Path, sink_port: u16) -> Result<LoadRun> {
    let journal_path = work.join("stack-ceiling-journal");
    let mut child = Command::new(bin)
        .arg(sink_port.to_string())
        .arg("--journal")
        .arg(&journal_path)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut first = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut first)?;
    }
    let child = Killed(child);
    let port: u16 = first
        .trim()
        .parse()
        .with_context(|| format!("herald-ceiling printed {first:?}, not its port"))?;
    let counts = || -> Result<(u64, u64, u64)> {
        let (_, text) = get(port, "/counts")?;
        let n: Vec<u64> = text
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        match n[..] {
            [queued, delivered, failed] => Ok((queued, delivered, failed)),
            _ => bail!("herald-ceiling answered {text:?} for its counts"),
        }
    };
    let run = forwarded_run("stack ceiling", work, port, child.0.id(), counts);
    drop(child);
    let _ = std::fs::remove_file(&journal_path);
    run
}

/// The 256-object load through a forwarder listening on `port`, whose `counts` are (queued,
/// delivered with a 2xx, failed) so far: accepted over the 10 s and delivered during the load,
/// as `load_run` counts herald's, then drained. CPU per event is process `pid`'s.
fn forwarded_run(
    name: &str,
    work: &Path,
    port: u16,
    pid: u32,
    counts: impl Fn() -> Result<(u64, u64, u64)>,
) -> Result<LoadRun> {
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let loaded = wrk(&script(work, 256)?, port)?;
    let (_, during, _) = counts()?;
    let load_secs = started.elapsed().as_secs_f64().max(SECONDS);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (queued, delivered, failed) = loop {
        let (queued, delivered, failed) = counts()?;
        if delivered + failed >= queued {
            break (queued, delivered, failed);
        }
        if Instant::now() > deadline {
            bail!("{name}: {queued} queued, only {delivered} delivered within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu_ms = (cpu_ticks(pid)? - cpu_before) as f64 * 10.0;
    let accepted = loaded.requests - loaded.non_2xx;
    if failed > 0 || delivered < accepted {
        bail!(
            "{name}: {delivered} delivered and {failed} failed of {queued} queued; {accepted} accepted"
        );
    }
    Ok(LoadRun {
        accepted_rps: accepted as f64 / SECONDS,
        shed: loaded.non_2xx,
        delivered_rps: during as f64 / load_secs,
        drained_rps: delivered as f64 / started.elapsed().as_secs_f64(),
        delivered,
        accepted,
        p50_ms: loaded.p50_ms,
        p99_ms: loaded.p99_ms,
        cpu_us_per_event: cpu_ms * 1000.0 / delivered.max(1) as f64,
        ..LoadRun::default()
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
        let log = work.join("startup.log");
        let mut daemon = serve_with(bin, &dir, &data, ports, &[], Some(&log))?;
        wait_ready_logged(&mut daemon, ports.2, Duration::from_secs(30), &log)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Appends `per_thread` bodies from each of `threads` threads at once; returns the bodies.
    fn append_from_threads(
        journal: &Arc<Journal>,
        threads: usize,
        per_thread: usize,
    ) -> Vec<String> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    (0..per_thread)
                        .map(|n| {
                            let body = format!("{t}-{n};");
                            journal.append(body.as_bytes()).unwrap();
                            body
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    }

    #[test]
    fn every_body_appended_at_once_from_many_threads_is_in_the_journal_once() {
        let dir = journal_dir("journal");
        let path = dir.join("journal");
        let journal = Arc::new(Journal::create(&path, 64 * 1024).unwrap());
        let mut sent = append_from_threads(&journal, 8, 100);
        let written = std::fs::read(&path).unwrap();
        assert_eq!(
            written.len(),
            64 * 1024,
            "the journal is overwritten in place"
        );
        let text = String::from_utf8_lossy(&written);
        let mut found: Vec<String> = text
            .trim_end_matches('\0')
            .split_inclusive(';')
            .map(str::to_owned)
            .collect();
        sent.sort();
        found.sort();
        assert_eq!(found, sent);
        let state = journal.state.lock().unwrap();
        assert_eq!((state.added, state.durable), (800, 800));
        drop(state);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_journal_is_written_again_from_its_start() {
        let dir = journal_dir("journal-wrap");
        let path = dir.join("journal");
        let journal = Arc::new(Journal::create(&path, 4096).unwrap());
        let sent = append_from_threads(&journal, 4, 800);
        let bytes: usize = sent.iter().map(String::len).sum();
        assert!(bytes > 2 * 4096, "the test must go round the journal");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        assert!(journal.state.lock().unwrap().offset <= 4096);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
