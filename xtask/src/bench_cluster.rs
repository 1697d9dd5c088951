//! The cluster benchmark (`cargo xtask bench cluster`): the daemon benchmark's 256-object load
//! (wrk, 32 connections, distinct events, one generic Provider whose receiver is
//! `herald receive --quiet`) against the embedded outbox and against the shared JetStream
//! outbox (`--outbox nats://...`), in one run, on a 3-server nats-server cluster on loopback
//! started through `crates/herald-testkit/peers/nats.sh`:
//!
//! - the raw limit: wrk straight to the sink;
//! - `embedded`: one `herald serve` with the embedded outbox (the baseline);
//! - `JetStream x1`: one `herald serve --outbox <the three servers>`;
//! - `JetStream x3`: three of them (their own ports, data dirs and `--replica-name`), each
//!   loaded by its own wrk with a third of the connections, the three at once.
//!
//! Each case: 10 s of load; accepted events/s (202 answers, summed over the replicas),
//! delivered events/s during the load (the sum of every replica's `herald_deliveries_total`
//! over the load), then the time until everything accepted is delivered (the drain). Each
//! JetStream case gets a cluster of its own (a fresh state dir), so that no backlog carries
//! over. A case that fails (a replica exits, deliveries stop short of the accepted events within
//! the drain timeout) is reported as failed with what was seen, and the others still run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_daemon::{
    self, CONNECTIONS, DELIVERED, Killed, SECONDS, WrkResult, cpu_ticks, free_port, metric,
};

/// Servers in the NATS cluster.
const NATS_SERVERS: usize = 3;
/// Herald replicas in the last case.
const REPLICAS: usize = 3;
/// Objects the events are spread over.
const OBJECTS: u64 = 256;
/// How long everything accepted may take to be delivered after the load.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// After every replica is ready, before the load: a few lease rounds (the JetStream backend
/// renews and rebalances its partitions every 2 s), so that the partitions are spread over
/// the replicas when the load starts.
const SETTLE_SHARED: Duration = Duration::from_secs(6);
/// After the embedded daemon is ready, before the load (as the daemon benchmark waits).
const SETTLE_EMBEDDED: Duration = Duration::from_secs(1);

/// What one case measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct CaseRun {
    /// Answered 202 (durably recorded), summed over the replicas.
    pub(crate) accepted: u64,
    pub(crate) accepted_rps: f64,
    /// Answered otherwise (503: shed) during the load.
    pub(crate) shed: u64,
    /// Delivered during the load (every replica's successes summed), per second.
    pub(crate) delivered_rps: f64,
    /// From the end of the load until every accepted event was delivered, in s.
    pub(crate) drain_secs: f64,
    /// Delivered in all (successes).
    pub(crate) delivered: u64,
    /// Deliveries with another outcome than success, summed over the replicas.
    pub(crate) not_success: u64,
    /// wrk's p50 and p99 latency, in ms: the worst of the replicas' wrk processes.
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// CPU time (user + system) from the start of the load to the end of the drain, in s:
    /// every herald replica's together, and every nats-server's together.
    pub(crate) herald_cpu_secs: f64,
    pub(crate) nats_cpu_secs: f64,
    /// From the start of the load to the end of the drain, in s.
    pub(crate) window_secs: f64,
    /// What was odd but did not stop the case (e.g. more deliveries than accepted events).
    pub(crate) notes: Vec<String>,
}

/// One case: its name, replicas and what it measured, or why it failed.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) replicas: usize,
    pub(crate) outcome: Result<CaseRun, String>,
}

/// What the cluster benchmark measured.
#[derive(Debug)]
pub(crate) struct ClusterBench {
    pub(crate) raw_rps: f64,
    pub(crate) raw_p50_ms: f64,
    pub(crate) raw_p99_ms: f64,
    /// Embedded, JetStream x1, JetStream x3.
    pub(crate) cases: Vec<Case>,
}

impl ClusterBench {
    /// The embedded case's run, if it succeeded: the baseline of the ratios.
    fn baseline(&self) -> Option<&CaseRun> {
        self.cases
            .iter()
            .find(|c| c.name == EMBEDDED)
            .and_then(|c| c.outcome.as_ref().ok())
    }

    /// Fails if any case failed, naming them.
    pub(crate) fn check(&self) -> Result<()> {
        let failed: Vec<String> = self
            .cases
            .iter()
            .filter_map(|c| c.outcome.as_ref().err().map(|e| format!("{}: {e}", c.name)))
            .collect();
        if !failed.is_empty() {
            bail!("{} case(s) failed:\n{}", failed.len(), failed.join("\n"));
        }
        Ok(())
    }

    /// The results as a table, then the notes and failures.
    pub(crate) fn table(&self) -> String {
        let base = self.baseline();
        let ratio = |v: f64, of: Option<f64>| match of {
            Some(b) if b > 0.0 => format!("{:.2}", v / b),
            _ => "-".to_owned(),
        };
        let mut out = format!(
            "{:<34} {:>11} {:>6} {:>14} {:>6} {:>9} {:>10} {:>9}\n",
            "case",
            "accepted/s",
            "x emb",
            "delivered/s *",
            "x emb",
            "drain",
            "herald CPU",
            "nats CPU"
        );
        out.push_str(&format!(
            "{:<34} {:>11.0} {:>6} {:>14} {:>6} {:>9} {:>10} {:>9}\n",
            "raw limit (wrk straight to sink)",
            self.raw_rps,
            ratio(self.raw_rps, base.map(|b| b.accepted_rps)),
            "-",
            "-",
            "-",
            "-",
            "-"
        ));
        let mut after = String::new();
        for case in &self.cases {
            let label = format!(
                "{} ({} herald{})",
                case.name,
                case.replicas,
                if case.replicas == 1 { "" } else { "s" }
            );
            match &case.outcome {
                Ok(r) => {
                    let cpu = |secs: f64| format!("{:.0}%", 100.0 * secs / r.window_secs.max(1e-9));
                    out.push_str(&format!(
                        "{:<34} {:>11.0} {:>6} {:>14.0} {:>6} {:>8.1}s {:>10} {:>9}\n",
                        label,
                        r.accepted_rps,
                        ratio(r.accepted_rps, base.map(|b| b.accepted_rps)),
                        r.delivered_rps,
                        ratio(r.delivered_rps, base.map(|b| b.delivered_rps)),
                        r.drain_secs,
                        cpu(r.herald_cpu_secs),
                        cpu(r.nats_cpu_secs),
                    ));
                    after.push_str(&format!(
                        "{label}: {} accepted ({} shed), {} delivered, {} other outcomes; wrk p50 {:.2} ms, p99 {:.2} ms\n",
                        r.accepted, r.shed, r.delivered, r.not_success, r.p50_ms, r.p99_ms
                    ));
                    for note in &r.notes {
                        after.push_str(&format!("{label}: NOTE: {note}\n"));
                    }
                }
                Err(e) => {
                    out.push_str(&format!("{label:<34} FAILED (below)\n"));
                    after.push_str(&format!("{label}: FAILED: {e}\n"));
                }
            }
        }
        out.push_str(&format!(
            "* delivered during the {SECONDS:.0} s load; drain: from the end of the load until everything accepted was delivered; CPU: share of one core from the start of the load to the end of the drain; x emb: ratio to the embedded case\n"
        ));
        out.push_str(&format!(
            "raw limit: p50 {:.2} ms, p99 {:.2} ms\n",
            self.raw_p50_ms, self.raw_p99_ms
        ));
        out.push_str(&after);
        out
    }
}

const EMBEDDED: &str = "embedded";
const SHARED_ONE: &str = "JetStream x1";
const SHARED_THREE: &str = "JetStream x3";

/// A running nats-server cluster started by nats.sh in its own state dir; stopped (every
/// server of that state dir) when dropped.
struct Cluster {
    script: PathBuf,
    state: PathBuf,
    /// The servers' `nats://` URLs, comma-separated.
    urls: String,
    /// The servers' process ids.
    pids: Vec<u32>,
}

impl Cluster {
    fn start(script: &Path, state: &Path) -> Result<Cluster> {
        if state.exists() {
            std::fs::remove_dir_all(state)?;
        }
        std::fs::create_dir_all(state)?;
        eprintln!(
            "$ HERALD_PEERS_STATE={} bash {} start auto --cluster {NATS_SERVERS}",
            state.display(),
            script.display()
        );
        let out = Command::new("bash")
            .arg(script)
            .args(["start", "auto", "--cluster", &NATS_SERVERS.to_string()])
            .env("HERALD_PEERS_STATE", state)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running nats.sh")?;
        // From here on the state dir may hold servers: stop them whatever happens.
        let mut cluster = Cluster {
            script: script.to_owned(),
            state: state.to_owned(),
            urls: String::new(),
            pids: Vec::new(),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "nats.sh start failed ({}{}):\n{text}",
                out.status,
                if out.status.code() == Some(3) {
                    ": nats-server could not be installed"
                } else {
                    ""
                }
            );
        }
        let facts = facts(&text);
        cluster.urls = fact(&facts, "URL")?.to_owned();
        for i in 1..=NATS_SERVERS {
            cluster.pids.push(
                fact(&facts, &format!("NODE{i}_PID"))?
                    .parse()
                    .context("a NODE<i>_PID that is not a number")?,
            );
        }
        if cluster.urls.split(',').count() != NATS_SERVERS {
            bail!(
                "nats.sh printed URL={}, not {NATS_SERVERS} servers",
                cluster.urls
            );
        }
        Ok(cluster)
    }

    fn cpu_ticks(&self) -> Result<u64> {
        self.pids.iter().map(|&p| cpu_ticks(p)).sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        eprintln!(
            "$ HERALD_PEERS_STATE={} bash {} stop --all",
            self.state.display(),
            self.script.display()
        );
        let stopped = Command::new("bash")
            .arg(&self.script)
            .args(["stop", "--all"])
            .env("HERALD_PEERS_STATE", &self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !matches!(stopped, Ok(s) if s.success()) {
            eprintln!("xtask: warning: stopping the nats cluster failed ({stopped:?})");
        }
    }
}

/// nats.sh's `KEY=VALUE` lines (split at the first `=`).
fn facts(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn fact<'a>(facts: &'a [(String, String)], key: &str) -> Result<&'a str> {
    facts
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .with_context(|| format!("nats.sh printed no {key}="))
}

/// `total` connections split over `parts` wrk processes as evenly as can be: the first ones
/// take one more.
fn split(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// One `herald serve` of a case.
struct Replica {
    name: String,
    daemon: Killed,
    /// Events, metrics, health.
    ports: (u16, u16, u16),
    log: PathBuf,
}

impl Replica {
    /// The last lines of its log, for a failure's report.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
        format!("{} ({}):\n    {tail}", self.name, self.log.display())
    }

    /// Waits for `/readyz` to answer 200; fails at once if the process exits meanwhile.
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            self.alive()?;
            if matches!(bench_daemon::get(self.ports.2, "/readyz"), Ok((200, _))) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("replica {} was not ready within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Fails if the process has exited.
    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.daemon.0.try_wait()? {
            bail!("replica {} exited ({status})", self.name);
        }
        Ok(())
    }
}

/// The successes summed over the replicas.
fn delivered(replicas: &[Replica]) -> Result<f64> {
    replicas.iter().map(|r| metric(r.ports.1, DELIVERED)).sum()
}

/// Every `herald_deliveries_total` with an outcome other than success, summed over the
/// replicas.
fn not_success(replicas: &[Replica]) -> Result<f64> {
    let mut sum = 0.0;
    for r in replicas {
        let (_, body) = bench_daemon::get(r.ports.1, "/metrics")?;
        sum += body
            .lines()
            .filter(|l| {
                l.starts_with("herald_deliveries_total{") && !l.contains("outcome=\"success\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(sum)
}

fn herald_cpu_ticks(replicas: &[Replica]) -> Result<u64> {
    replicas.iter().map(|r| cpu_ticks(r.daemon.0.id())).sum()
}

/// One case: `replicas` fresh `herald serve` (with `--outbox <urls>` if given), each loaded by
/// its own wrk (the connections split between them) at once; then the drain.
fn run_case(
    bin: &Path,
    work: &Path,
    name: &str,
    sink_port: u16,
    cluster: Option<&Cluster>,
    replicas: usize,
) -> Result<CaseRun> {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let manifests = bench_daemon::manifests(work, &slug, sink_port)?;
    let mut started = Vec::new();
    for i in 1..=replicas {
        let replica = format!("{slug}-r{i}");
        let ports = (free_port()?, free_port()?, free_port()?);
        let data = work.join(format!("data-{replica}"));
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        let mut extra = Vec::new();
        if let Some(cluster) = cluster {
            extra.extend([
                "--outbox".to_owned(),
                cluster.urls.clone(),
                "--replica-name".to_owned(),
                replica.clone(),
            ]);
        }
        let log = work.join(format!("{replica}.log"));
        eprintln!(
            "$ herald serve ... --data-dir {} {} (logs in {})",
            data.display(),
            extra.join(" "),
            log.display()
        );
        let daemon = bench_daemon::serve_with(bin, &manifests, &data, ports, &extra, Some(&log))?;
        started.push(Replica {
            name: replica,
            daemon,
            ports,
            log,
        });
    }
    let mut replicas = started;
    let tails = |replicas: &[Replica]| -> String {
        replicas
            .iter()
            .map(Replica::log_tail)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let not_ready = replicas
        .iter_mut()
        .find_map(|r| r.wait_ready(Duration::from_secs(60)).err());
    if let Some(e) = not_ready {
        let tails = tails(&replicas);
        bail!("{e:#}\n{tails}");
    }
    std::thread::sleep(if cluster.is_some() {
        SETTLE_SHARED
    } else {
        SETTLE_EMBEDDED
    });
    for r in &mut replicas {
        r.alive()?;
    }
    let scripts = (1..=replicas.len())
        .map(|i| bench_daemon::script_prefixed(work, OBJECTS, &format!("r{i}-")))
        .collect::<Result<Vec<_>>>()?;
    let connections = split(CONNECTIONS.parse()?, replicas.len());
    // One wrk alone gets the daemon benchmark's two threads; several share them.
    let threads = if replicas.len() == 1 { 2 } else { 1 };

    let before = delivered(&replicas)?;
    let cpu_before = herald_cpu_ticks(&replicas)?;
    let nats_before = cluster.map(Cluster::cpu_ticks).transpose()?.unwrap_or(0);
    let load_started = Instant::now();
    let loads: Vec<Result<WrkResult>> = std::thread::scope(|s| {
        let handles: Vec<_> = replicas
            .iter()
            .zip(&scripts)
            .zip(&connections)
            .map(|((r, script), &c)| {
                let port = r.ports.0;
                s.spawn(move || bench_daemon::wrk_with(script, port, threads, c))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("wrk's thread panicked")))
            })
            .collect()
    });
    let load_ended = Instant::now();
    let during = delivered(&replicas)? - before;
    let load_secs = (load_ended - load_started).as_secs_f64().max(SECONDS);
    let mut run = CaseRun::default();
    for load in loads {
        let load = load?;
        run.accepted += load.requests - load.non_2xx;
        run.shed += load.non_2xx;
        run.p50_ms = run.p50_ms.max(load.p50_ms);
        run.p99_ms = run.p99_ms.max(load.p99_ms);
    }
    run.accepted_rps = run.accepted as f64 / SECONDS;
    run.delivered_rps = during / load_secs;

    let deadline = load_ended + DRAIN_TIMEOUT;
    loop {
        for r in &mut replicas {
            if let Err(e) = r.alive() {
                let tails = tails(&replicas);
                bail!(
                    "{e:#} while draining, {:.0} s after the load ({} accepted)\n{tails}",
                    load_ended.elapsed().as_secs_f64(),
                    run.accepted
                );
            }
        }
        let done = delivered(&replicas)?;
        if done >= run.accepted as f64 {
            break;
        }
        if Instant::now() > deadline {
            let others = not_success(&replicas).unwrap_or(f64::NAN);
            let depths = replicas
                .iter()
                .map(|r| {
                    metric(r.ports.1, "herald_queue_depth").map_or_else(
                        |e| format!("{}: {e:#}", r.name),
                        |d| format!("{}: {d}", r.name),
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let tails = tails(&replicas);
            bail!(
                "only {done} of {} accepted events delivered {:.0} s after the load ({others} deliveries with other outcomes; herald_queue_depth {depths})\n{tails}",
                run.accepted,
                DRAIN_TIMEOUT.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = Instant::now();
    run.drain_secs = (drained - load_ended).as_secs_f64();
    run.window_secs = (drained - load_started).as_secs_f64();
    run.herald_cpu_secs = (herald_cpu_ticks(&replicas)? - cpu_before) as f64 / 100.0;
    run.nats_cpu_secs = match cluster {
        Some(c) => (c.cpu_ticks()? - nats_before) as f64 / 100.0,
        None => 0.0,
    };
    // Late deliveries beyond the accepted ones (a redelivery) show within a moment.
    std::thread::sleep(Duration::from_secs(1));
    run.delivered = delivered(&replicas)? as u64;
    run.not_success = not_success(&replicas)? as u64;
    // wrk stops counting at the deadline: up to one request per connection was accepted
    // without being counted.
    let in_flight: u64 = CONNECTIONS.parse()?;
    if run.delivered > run.accepted + in_flight {
        run.notes.push(format!(
            "{} delivered for {} accepted (+ at most {in_flight} uncounted at wrk's deadline): some events were delivered more than once",
            run.delivered, run.accepted
        ));
    }
    if run.not_success > 0 {
        run.notes.push(format!(
            "{} deliveries ended otherwise than in success",
            run.not_success
        ));
    }
    for r in &mut replicas {
        r.alive()?;
    }
    Ok(run)
}

/// Runs the cluster benchmark with the release binary `bin`; `nats` is nats.sh.
pub(crate) fn run(bin: &Path, work: &Path, nats: &Path) -> Result<ClusterBench> {
    bench_daemon::ensure_wrk()?;
    std::fs::create_dir_all(work)?;
    let (sink_port, _sink) = bench_daemon::sink(bin)?;

    let cluster = Cluster::start(nats, &work.join("nats-1"))?;
    let raw = bench_daemon::wrk_with(
        &bench_daemon::script(work, OBJECTS)?,
        sink_port,
        2,
        CONNECTIONS.parse()?,
    )?;
    let mut cases = Vec::new();
    let mut case = |name: &'static str, cluster: Option<&Cluster>, replicas: usize| {
        eprintln!("\n== {name}: {replicas} herald serve");
        let outcome = run_case(bin, work, name, sink_port, cluster, replicas).map_err(|e| {
            eprintln!("{name}: FAILED: {e:#}");
            format!("{e:#}")
        });
        cases.push(Case {
            name,
            replicas,
            outcome,
        });
    };
    // The embedded case runs beside the idle cluster that the next case uses.
    case(EMBEDDED, None, 1);
    case(SHARED_ONE, Some(&cluster), 1);
    drop(cluster);
    match Cluster::start(nats, &work.join("nats-2")) {
        Ok(cluster) => case(SHARED_THREE, Some(&cluster), REPLICAS),
        Err(e) => cases.push(Case {
            name: SHARED_THREE,
            replicas: REPLICAS,
            outcome: Err(format!("starting a fresh nats cluster: {e:#}")),
        }),
    }
    Ok(ClusterBench {
        raw_rps: raw.rps,
        raw_p50_ms: raw.p50_ms,
        raw_p99_ms: raw.p99_ms,
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_split_evenly() {
        assert_eq!(split(32, 3), vec![11, 11, 10]);
        assert_eq!(split(32, 1), vec![32]);
        assert_eq!(split(32, 2), vec![16, 16]);
        assert_eq!(split(32, 3).iter().sum::<usize>(), 32);
    }

    #[test]
    fn facts_split_at_the_first_equals() {
        let f = facts("URL=nats://127.0.0.1:1,nats://127.0.0.1:2\nAUTH=none\nX=a=b\nnoise\n");
        assert_eq!(
            fact(&f, "URL").unwrap(),
            "nats://127.0.0.1:1,nats://127.0.0.1:2"
        );
        assert_eq!(fact(&f, "X").unwrap(), "a=b");
        assert!(fact(&f, "PID").is_err());
    }

    #[test]
    fn the_table_gives_ratios_to_the_embedded_case_and_failures() {
        let run = |accepted_rps: f64, delivered_rps: f64| CaseRun {
            accepted_rps,
            delivered_rps,
            drain_secs: 1.5,
            window_secs: 11.5,
            herald_cpu_secs: 11.5,
            ..CaseRun::default()
        };
        let bench = ClusterBench {
            raw_rps: 20000.0,
            raw_p50_ms: 1.0,
            raw_p99_ms: 2.0,
            cases: vec![
                Case {
                    name: EMBEDDED,
                    replicas: 1,
                    outcome: Ok(run(4000.0, 3000.0)),
                },
                Case {
                    name: SHARED_ONE,
                    replicas: 1,
                    outcome: Ok(run(1000.0, 600.0)),
                },
                Case {
                    name: SHARED_THREE,
                    replicas: 3,
                    outcome: Err("replica x exited".to_owned()),
                },
            ],
        };
        let table = bench.table();
        let line = |start: &str| {
            table
                .lines()
                .find(|l| l.starts_with(start))
                .unwrap()
                .to_owned()
        };
        assert!(line("raw limit").contains(" 5.00 "), "{table}");
        let one = line("JetStream x1 (1 herald)");
        assert!(one.contains(" 0.25 ") && one.contains(" 0.20 "), "{table}");
        assert!(one.contains("100%"), "{table}");
        assert!(
            line("JetStream x3 (3 heralds)").contains("FAILED"),
            "{table}"
        );
        assert!(table.contains("FAILED: replica x exited"), "{table}");
        assert!(bench.check().is_err());
    }
}
