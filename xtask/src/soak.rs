//! The soak test: `cargo xtask soak --minutes N` runs a release `herald serve` under a steady
//! mixed load for N minutes and samples its RSS and open file descriptors from `/proc` every
//! 10 s, then prints a Markdown table, writes an SVG plot (`docs/soak.svg`, drawn by hand
//! here), and fails when either grows after warm-up.
//!
//! The load, from one client thread at a fixed rate over short connections: distinct good
//! events (delivered through a `generic` Provider to a `herald receive --quiet` sink), exact
//! duplicates (429), malformed bodies (400: broken JSON, invalid UTF-8, deep nesting, wrong
//! types) and oversized declared bodies (413). The sink flaps: it is stopped for 10 s out of
//! every 30 s, so deliveries fail, are retried and give up. The duplicate window is 30 s so the
//! suppression table reaches its steady size within the warm-up.
//!
//! It is not a benchmark (`cargo xtask bench` measures speed) and not run by CI.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_daemon::{Killed, free_port, metric, rss_kib, wait_ready};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Requests per second sent by the load thread.
const RATE: u64 = 200;

/// One sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: u64,
    rss_kib: u64,
    fds: usize,
    sent: u64,
    delivered: f64,
}

fn event(n: u64) -> String {
    format!(
        "{{\"involvedObject\":{{\"kind\":\"Kustomization\",\"namespace\":\"soak\",\"name\":\"app-{}\",\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\"}},\"severity\":\"info\",\"timestamp\":\"2026-11-28T10:00:00Z\",\"message\":\"soak event {n}\",\"reason\":\"ReconciliationSucceeded\",\"metadata\":{{\"kustomize.toolkit.fluxcd.io/revision\":\"main@sha1:69b59063470310ebbd88a9156325322a124e55a3\"}},\"reportingController\":\"kustomize-controller\"}}",
        n % 50
    )
}

/// Posts `body` (with `declared` as Content-Length when given) and returns the status.
fn post(port: u16, body: &[u8], declared: Option<usize>) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        declared.unwrap_or(body.len())
    );
    s.write_all(head.as_bytes()).ok()?;
    if declared.is_none() {
        s.write_all(body).ok()?;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
}

fn fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn start_sink(bin: &Path, port: u16) -> Result<Killed> {
    let child = Command::new(bin)
        .args(["receive", "--quiet", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting herald receive")?;
    Ok(Killed(child))
}

/// Runs the soak for `minutes` with the release binary `bin`; writes the plot to `svg`.
pub(crate) fn run(bin: &Path, work: &Path, minutes: f64, svg: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let sink_port = free_port()?;
    let manifests = work.join("manifests.yaml");
    std::fs::write(
        &manifests,
        format!(
            "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata: {{name: sink, namespace: soak}}\nspec:\n  type: generic\n  timeout: 3s\n  address: http://127.0.0.1:{sink_port}/\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata: {{name: all, namespace: soak}}\nspec:\n  providerRef: {{name: sink}}\n  eventSources: [{{kind: Kustomization, name: '*'}}]\n"
        ),
    )?;
    let (events, metrics, health) = (free_port()?, free_port()?, free_port()?);
    let daemon = Killed(
        Command::new(bin)
            .args(["--log-level", "warn", "serve", "--manifests"])
            .arg(&manifests)
            .args(["--events-addr", &format!("127.0.0.1:{events}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--health-addr", &format!("127.0.0.1:{health}")])
            .args(["--api-addr", &format!("127.0.0.1:{}", free_port()?)])
            .args(["--rate-limit-interval", "30s", "--data-dir"])
            .arg(work.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting herald serve")?,
    );
    wait_ready(health, Duration::from_secs(20))?;
    let pid = daemon.0.id();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let codes: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let load = {
        let (stop, sent, codes) = (stop.clone(), sent.clone(), codes.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut n: u64 = 0;
            let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
            while !stop.load(Ordering::Relaxed) {
                let due = started + Duration::from_micros(n * 1_000_000 / RATE);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let status = match n % 10 {
                    // Good, distinct events.
                    0..=4 => post(events, event(n).as_bytes(), None),
                    // Exact duplicates of the last good event (number 4 of these ten).
                    5 | 6 => post(events, event(n - (n % 10 - 4)).as_bytes(), None),
                    7 => post(events, b"{\"involvedObject\": \"broken", None),
                    8 => match (n / 10) % 3 {
                        0 => post(events, b"{\"message\": \"\xff\xfe\"}", None),
                        1 => post(events, deep.as_bytes(), None),
                        _ => post(events, b"{\"severity\": 1e999999}", None),
                    },
                    _ => post(events, b"", Some(64 * 1024 * 1024)),
                };
                let slot = match status {
                    Some(202) => 0,
                    Some(429) => 1,
                    Some(400) => 2,
                    Some(413) => 3,
                    Some(503) => 4,
                    _ => 5,
                };
                codes[slot].fetch_add(1, Ordering::Relaxed);
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        })
    };

    let total = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut sink: Option<Killed> = Some(start_sink(bin, sink_port)?);
    let mut next_sample = Duration::ZERO;
    eprintln!(
        "soak: {minutes} min at {RATE} requests/s; herald serve pid {pid}; sink flaps every 30 s"
    );
    while started.elapsed() <= total {
        let t = started.elapsed();
        // The sink is down from second 20 to 30 of every 30.
        let down = t.as_secs() % 30 >= 20;
        match (down, sink.is_some()) {
            (true, true) => sink = None,
            (false, false) => sink = Some(start_sink(bin, sink_port)?),
            _ => {}
        }
        if t >= next_sample {
            let s = Sample {
                secs: t.as_secs(),
                rss_kib: rss_kib(pid, "VmRSS:")?,
                fds: fds(pid)?,
                sent: sent.load(Ordering::Relaxed),
                delivered: metric(
                    metrics,
                    "herald_deliveries_total{namespace=\"soak\",name=\"sink\",type=\"generic\",outcome=\"success\"}",
                )
                .unwrap_or(0.0),
            };
            eprintln!(
                "soak: {:>4} s  RSS {:>6} KiB  fds {:>3}  sent {:>7}  delivered {:>7}",
                s.secs, s.rss_kib, s.fds, s.sent, s.delivered
            );
            samples.push(s);
            next_sample += SAMPLE_EVERY;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    drop(sink);
    drop(daemon);

    let names = ["202", "429", "400", "413", "503", "other"];
    let counts: Vec<String> = names
        .iter()
        .zip(codes.iter())
        .map(|(n, c)| format!("{n}: {}", c.load(Ordering::Relaxed)))
        .collect();
    println!("responses: {}", counts.join(", "));
    println!();
    println!("| time (s) | RSS (KiB) | open fds | requests sent | delivered |");
    println!("|---:|---:|---:|---:|---:|");
    for s in &samples {
        println!(
            "| {} | {} | {} | {} | {} |",
            s.secs, s.rss_kib, s.fds, s.sent, s.delivered
        );
    }
    std::fs::write(svg, plot(&samples))?;
    println!("\nplot written to {}", svg.display());
    verdict(&samples)
}

/// Flat after warm-up: the last quarter's RSS is within 10 % (or 2 MiB) of the second
/// quarter's, and the fds within 8 of it.
fn verdict(samples: &[Sample]) -> Result<()> {
    if samples.len() < 8 {
        println!("too few samples for a verdict (run at least 80 s)");
        return Ok(());
    }
    let q = samples.len() / 4;
    let avg = |s: &[Sample], f: fn(&Sample) -> f64| s.iter().map(f).sum::<f64>() / s.len() as f64;
    let early = &samples[q..2 * q];
    let late = &samples[samples.len() - q..];
    let rss = (
        avg(early, |s| s.rss_kib as f64),
        avg(late, |s| s.rss_kib as f64),
    );
    let fd = (avg(early, |s| s.fds as f64), avg(late, |s| s.fds as f64));
    println!(
        "after warm-up: RSS {:.0} KiB -> {:.0} KiB, fds {:.1} -> {:.1}",
        rss.0, rss.1, fd.0, fd.1
    );
    if rss.1 > (rss.0 * 1.10).max(rss.0 + 2048.0) {
        bail!(
            "RSS grew after warm-up: {:.0} KiB -> {:.0} KiB",
            rss.0,
            rss.1
        );
    }
    if fd.1 > fd.0 + 8.0 {
        bail!("open fds grew after warm-up: {:.1} -> {:.1}", fd.0, fd.1);
    }
    println!("flat: no growth after warm-up");
    Ok(())
}

/// A two-panel SVG: RSS (MiB) and open fds against minutes.
fn plot(samples: &[Sample]) -> String {
    let (w, h, pad) = (720.0_f64, 220.0_f64, 50.0_f64);
    let max_t = samples.last().map_or(1, |s| s.secs.max(1)) as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * h + 20.0
    );
    type Value = fn(&Sample) -> f64;
    let panels: [(&str, &str, Value); 2] = [
        ("RSS (MiB)", "#1f77b4", |s| s.rss_kib as f64 / 1024.0),
        ("open file descriptors", "#d62728", |s| s.fds as f64),
    ];
    for (i, (label, colour, value)) in panels.iter().enumerate() {
        let top = i as f64 * (h + 20.0);
        let max_v = samples.iter().map(value).fold(1.0_f64, f64::max) * 1.2;
        let x = |t: f64| pad + t / max_t * (w - 2.0 * pad);
        let y = |v: f64| top + h - pad / 2.0 - v / max_v * (h - pad);
        out.push_str(&format!(
            "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n<line x1=\"{pad}\" y1=\"{2}\" x2=\"{pad}\" y2=\"{0}\" stroke=\"black\"/>\n<text x=\"{pad}\" y=\"{3}\">{label} (0 to {4:.0}) against time (0 to {5:.1} min)</text>\n",
            y(0.0),
            w - pad,
            y(max_v),
            top + 14.0,
            max_v,
            max_t / 60.0
        ));
        for frac in [0.25, 0.5, 0.75, 1.0] {
            out.push_str(&format!(
                "<text x=\"4\" y=\"{:.1}\">{:.0}</text>\n",
                y(max_v * frac / 1.2) + 4.0,
                max_v * frac / 1.2
            ));
        }
        let points: Vec<String> = samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.secs as f64), y(value(s))))
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            points.join(" ")
        ));
    }
    out.push_str("</svg>\n");
    out
}
