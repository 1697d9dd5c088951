//! xtask: herald's automation, in Rust (`cargo xtask <command>`).
//!
//! - `ci [--skip STEP,...]`: what CI runs: setup (installs what the steps need and the
//!   machine lacks), fmt, clippy, doc (rustdoc warnings are errors), test, features, deny,
//!   and the cheap size gate (dist: the
//!   generic-only and all-families builds against docs/benchmarks.md).
//! - `features`: the feature-matrix check alone (no families, each family or part such as
//!   `templates` alone, all), and herald-core's unit tests without the template engine.
//! - `deny`: `cargo deny check` with the advisory database fetched now, else the snapshot
//!   `HERALD_ADVISORY_DB` names, else without advisories, loudly (module `deny`).
//! - `peers <name> <command...>`: the real services of the tests, by hand (module `peers`).
//! - `bench [daemon]`: render/sign and Alert-pattern benchmarks, and the daemon load benchmark.
//! - `bench cluster`: the load benchmark of the embedded outbox against the shared JetStream
//!   outbox (one and three replicas) on a 3-server nats-server cluster (module
//!   `bench_cluster`).
//! - `soak [--minutes N]`: a release daemon under steady mixed load; RSS and fds over time.
//! - `fuzz [--time SECONDS] [TARGET...]`: every cargo-fuzz target in `fuzz/` (nightly).
//! - `dist [--features LIST]`: a release build of the chosen families (and `templates`) and
//!   its tarball.
//! - `sizes [--update]`: every feature set of docs/benchmarks.md's size table through `dist`,
//!   checked against the table or written into it; the all-families build also against
//!   `crates/herald/link/start.ld` (module `start_order`).
//! - `start-order`: rewrites that linker script from the functions a starting daemon runs
//!   (valgrind).
//! - `docs`: regenerates what is generated from the command line (docs/configuration.md's
//!   flag reference, docs/cli/ completions and man pages).
//!
//! It is not part of herald: it only runs cargo and the tools CI needs, and reads what they
//! report in their machine-readable forms (`cargo metadata`, cargo's JSON messages, nextest's
//! JUnit report). Its tests check the workspace invariants of ARCHITECTURE.md.

// xtask talks to the person running it on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench_cluster;
mod bench_daemon;
mod deny;
mod dist;
mod fuzz;
mod meta;
mod peers;
mod report;
mod setup;
mod soak;
mod start_order;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::meta::build_features;

fn main() {
    // One clear line per failure (with its causes), not a backtrace: RUST_BACKTRACE is often
    // set on developer machines and would bury the message.
    match dispatch() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs the command; its exit code (a passed-through script's, or 0).
fn dispatch() -> Result<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root, &skipped(&args[1..])?),
        Some("features") => features(&root),
        Some("deny") => deny::check().map(drop),
        Some("peers") => return peers::main(&root, &args[1..]),
        Some("bench") => match args.get(1).map(String::as_str) {
            None => bench(&root, false),
            Some("daemon") => bench(&root, true),
            Some("cluster") => bench_cluster(&root),
            Some(other) => {
                bail!("unknown argument {other:?}; usage: cargo xtask bench [daemon|cluster]")
            }
        },
        Some("soak") => soak_cmd(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("dist") => dist::main(&root, &args[1..]),
        Some("sizes") => match args.get(1).map(String::as_str) {
            None => dist::sizes(&root, dist::Sizes::All),
            Some("--update") => dist::sizes(&root, dist::Sizes::Update),
            Some(other) => bail!("unknown argument {other:?}; usage: cargo xtask sizes [--update]"),
        },
        Some("start-order") => start_order::main(&root),
        Some("docs") => docs(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci [--skip {}] | features | deny | peers <name> <command...> | bench [daemon|cluster] | soak [--minutes N] | fuzz [--time SECONDS] [TARGET...] | dist [--features LIST] | sizes [--update] | start-order | docs>",
                STEPS.join(",")
            );
            return Ok(2);
        }
    }?;
    Ok(0)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Whether this is CI's run (`CI=true`, as CI services set it).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Runs a command, echoing it, and fails if it fails.
fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs a command, echoing it and passing its output through, and returns that output (stdout
/// and stderr, interleaved as lines arrive).
fn run_tee(program: &str, args: &[&str]) -> Result<String> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    eprintln!("$ {program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let seen = Arc::new(Mutex::new(String::new()));
    let forward = |stream: Box<dyn std::io::Read + Send>, to_stderr: bool| {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if to_stderr {
                    eprintln!("{line}")
                } else {
                    println!("{line}")
                }
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.push_str(&line);
                seen.push('\n');
            }
        })
    };
    let out = forward(Box::new(child.stdout.take().context("no stdout")?), false);
    let err = forward(Box::new(child.stderr.take().context("no stderr")?), true);
    let status = child.wait()?;
    let _ = (out.join(), err.join());
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    let text = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(text)
}

const STEPS: [&str; 8] = [
    "setup", "fmt", "clippy", "doc", "test", "features", "deny", "dist",
];

fn skipped(args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let list = match a.as_str() {
            "--skip" => it.next().context("--skip needs a list of steps")?.clone(),
            other => match other.strip_prefix("--skip=") {
                Some(list) => list.to_owned(),
                None => bail!("unknown argument {other:?}"),
            },
        };
        for step in list.split(',') {
            if !STEPS.contains(&step) {
                bail!("unknown step {step:?}; steps are {}", STEPS.join(", "));
            }
            out.push(step.to_owned());
        }
    }
    Ok(out)
}

fn ci(root: &Path, skip: &[String]) -> Result<()> {
    let cargo = cargo();
    let runs = |step: &str| !skip.iter().any(|s| s == step);
    let mut timings = Vec::new();
    let mut tests = None;
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    for step in STEPS {
        if !runs(step) {
            eprintln!("== {step}: skipped");
            continue;
        }
        eprintln!("== {step}");
        let started = Instant::now();
        match step {
            "setup" => warnings.extend(setup::run_setup(
                root,
                setup::Needs {
                    rustfmt: runs("fmt"),
                    clippy: runs("clippy"),
                    nextest: runs("test"),
                    deny: runs("deny"),
                    test_programs: runs("test"),
                },
            )?),
            "fmt" => run(&cargo, &["fmt", "--all", "--check"])?,
            "clippy" => run(
                &cargo,
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ],
            )?,
            "doc" => {
                // Broken or private intra-doc links fail here, not on docs.rs.
                let status = Command::new(&cargo)
                    .args([
                        "doc",
                        "--workspace",
                        "--no-deps",
                        "--all-features",
                        "--locked",
                    ])
                    .env("RUSTDOCFLAGS", "-D warnings")
                    .status()
                    .context("running cargo doc")?;
                if !status.success() {
                    bail!("`cargo doc` found rustdoc warnings ({status})");
                }
            }
            "test" => {
                let totals = test(root)?;
                warnings.extend(totals.skipped_a_peer.iter().map(|t| {
                    format!("{t} SKIPPED its peer checks (the peer could not be installed)")
                }));
                if totals.flaky > 0 {
                    notes.push(format!(
                        "{} test(s) FLAKY: failed a try, passed the retry (see above)",
                        totals.flaky
                    ));
                }
                tests = Some(totals);
            }
            "features" => features(root)?,
            "deny" => {
                let advisories = deny::check()?;
                if advisories == deny::Advisories::Missing {
                    warnings.push(advisories.describe());
                } else {
                    notes.push(advisories.describe());
                }
            }
            _ => dist::sizes(root, dist::Sizes::Gate)?,
        }
        timings.push((step, started.elapsed()));
    }
    eprintln!("== ci passed");
    for (step, took) in timings {
        eprintln!("   {step:<9} {:>6.1} s", took.as_secs_f64());
    }
    for note in &notes {
        eprintln!("   {note}");
    }
    for warning in &warnings {
        eprintln!("WARNING: {warning}");
    }
    if let Some(t) = tests {
        // The closing line: every test and doctest run, nextest and libtest together.
        println!("{} passed, {} failed", t.passed, t.failed);
    }
    Ok(())
}

/// What the test step ran.
#[derive(Debug)]
struct Totals {
    passed: u64,
    failed: u64,
    flaky: u64,
    skipped_a_peer: Vec<String>,
}

/// Every test under nextest (profile `ci`, whose JUnit report is read for the counts), then
/// the doctests under libtest.
fn test(root: &Path) -> Result<Totals> {
    let report = meta::target_dir(root)?.join("nextest/ci/junit.xml");
    let _ = std::fs::remove_file(&report);
    let args = [
        "nextest",
        "run",
        "--profile",
        "ci",
        "--workspace",
        "--all-features",
        "--locked",
        "--no-fail-fast",
    ];
    eprintln!("$ {} {}", cargo(), args.join(" "));
    let status = Command::new(cargo())
        .args(args)
        .status()
        .context("running cargo nextest")?;
    let xml = std::fs::read_to_string(&report)
        .with_context(|| format!("nextest wrote no report at {} ({status})", report.display()))?;
    let run = report::junit(&xml)?;
    if !status.success() {
        bail!(
            "{} of {} tests failed (nextest: {status})",
            run.failed,
            run.tests
        );
    }
    let doc = run_tee(
        &cargo(),
        &["test", "--workspace", "--all-features", "--locked", "--doc"],
    )?;
    let (doc_passed, doc_failed) = report::libtest_totals(&doc);
    Ok(Totals {
        passed: run.passed() + doc_passed,
        failed: run.failed + doc_failed,
        flaky: run.flaky,
        skipped_a_peer: run.skipped_a_peer,
    })
}

/// Checks herald (every target, tests too) with no family, each family or optional part (such
/// as `templates`) alone, and all; then runs herald-core's unit tests without the template engine.
///
/// Warnings that show only under some feature set (an import only one family uses) are the
/// usual failure, so a warning fails the step. They are read from cargo's JSON messages
/// (which replay the warnings of crates not rebuilt) rather than made errors with
/// `RUSTFLAGS=-Dwarnings`: RUSTFLAGS would recheck every dependency under every set instead of
/// reusing what the clippy step checked (about 2.5x the time on two cores).
fn features(root: &Path) -> Result<()> {
    let mut sets: Vec<Vec<String>> = vec![vec!["--no-default-features".to_owned()]];
    for f in build_features(root)? {
        sets.push(vec![
            "--no-default-features".to_owned(),
            "--features".to_owned(),
            f,
        ]);
    }
    sets.push(vec!["--all-features".to_owned()]);
    for set in &sets {
        let mut args = vec![
            "check",
            "-p",
            "herald",
            "--all-targets",
            "--locked",
            "--message-format=json",
        ];
        args.extend(set.iter().map(String::as_str));
        eprintln!("$ {} {}", cargo(), args.join(" "));
        let mut child = Command::new(cargo())
            .args(&args)
            .stdout(Stdio::piped())
            .spawn()
            .context("running cargo check")?;
        let mut json = String::new();
        child
            .stdout
            .take()
            .context("no stdout")?
            .read_to_string(&mut json)?;
        let status = child.wait()?;
        let diagnostics = report::diagnostics(&json);
        for (_, rendered) in &diagnostics {
            eprint!("{rendered}");
        }
        if !status.success() {
            bail!("`cargo {}` failed ({status})", args.join(" "));
        }
        let warnings = diagnostics.iter().filter(|(l, _)| l == "warning").count();
        if warnings > 0 {
            bail!("{warnings} warning(s) under `{}` (above)", set.join(" "));
        }
    }
    // The test step runs with every feature on; a build without the template engine behaves
    // differently (every template refused, with its reason), which herald-core's own unit
    // tests check when run alone, where `templates` is off.
    run(
        &cargo(),
        &["test", "-p", "herald-core", "--lib", "--locked", "--quiet"],
    )
}

/// `cargo xtask docs`: rewrites the files generated from herald's clap command line (they are
/// golden files of the `cli_docs` tests, which fail while one is out of date).
fn docs() -> Result<()> {
    eprintln!(
        "$ UPDATE_GOLDEN=1 {} test -p herald --lib --locked cli_docs",
        cargo()
    );
    let status = Command::new(cargo())
        .args(["test", "-p", "herald", "--lib", "--locked", "cli_docs"])
        .env("UPDATE_GOLDEN", "1")
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("regenerating the command-line docs failed ({status})");
    }
    eprintln!("regenerated docs/configuration.md (flags) and docs/cli/; review them with git diff");
    Ok(())
}

/// Runs `cargo bench ARGS --locked`, prints its output and returns its `ns/event` lines.
fn bench_lines(cargo: &str, args: &[&str]) -> Result<Vec<String>> {
    let mut all = vec!["bench"];
    all.extend(args);
    all.push("--locked");
    eprintln!("$ {cargo} {}", all.join(" "));
    let out = Command::new(cargo).args(&all).output()?;
    if !out.status.success() {
        bail!(
            "`cargo {}` failed:\n{}",
            all.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    Ok(text
        .lines()
        .filter(|l| l.contains("ns/event"))
        .map(str::to_owned)
        .collect())
}

/// `cargo xtask bench [daemon]`: everything, or only the daemon benchmark.
fn bench(root: &Path, daemon_only: bool) -> Result<()> {
    let cargo = cargo();
    let mut renders = Vec::new();
    for krate in [
        "herald-webhook",
        "herald-chat",
        "herald-git",
        "herald-alerting",
        "herald-template",
    ] {
        if !root
            .join("crates")
            .join(krate)
            .join("benches/render.rs")
            .exists()
            || daemon_only
        {
            continue;
        }
        renders.extend(bench_lines(&cargo, &["-p", krate, "--bench", "render"])?);
    }
    // Alert patterns on each engine: regex-lite, and the regex crate of `unicode-regex`.
    for features in [&[][..], &["--features", "unicode-regex"]] {
        if daemon_only {
            break;
        }
        let mut args = vec!["-p", "herald-core", "--bench", "patterns"];
        args.extend(features);
        renders.extend(bench_lines(&cargo, &args)?);
    }

    // Binary sizes are `cargo xtask sizes`' job (docs/benchmarks.md's table); the daemon
    // benchmark needs the default (all families) release build.
    run(&cargo, &["build", "--release", "-p", "herald", "--locked"])?;
    // The durable ceiling on herald's stack, built with the same release settings.
    run(
        &cargo,
        &[
            "build",
            "--release",
            "-p",
            "herald-testkit",
            "--bin",
            "herald-ceiling",
            "--locked",
        ],
    )?;
    let target = meta::target_dir(root)?;
    let bin = target.join("release/herald");
    let ceiling_bin = target.join("release/herald-ceiling");
    let daemon = bench_daemon::run(&bin, &ceiling_bin, &target.join("bench-daemon"))?;

    println!("\n== herald benchmarks");
    for line in &renders {
        println!("{line}");
    }
    let aim = |ok: bool| {
        if ok {
            "meets the aim"
        } else {
            "MISSES the aim"
        }
    };
    let webhook = renders
        .iter()
        .find(|l| l.starts_with("generic-hmac parse+render+sign"))
        .and_then(|l| {
            l.split(':')
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        });
    if let Some(ns) = webhook {
        println!(
            "generic-hmac parse+render+sign: {:.2} µs/event ({} of 5 µs)",
            ns / 1000.0,
            aim(ns < 5000.0)
        );
    }
    let d = &daemon;
    let raw = d.raw_rps;
    println!(
        "daemon: raw limit (wrk straight to the sink, same run): {raw:.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
        d.raw_p50_ms, d.raw_p99_ms
    );
    println!(
        "daemon: fsync (16 KiB write + fdatasync) p50 {:.2} ms, mean {:.2} ms: with {} connections each waiting for a durable 202, at most {:.0} accepted/s = {:.2} of raw",
        d.fsync_p50_ms,
        d.fsync_mean_ms,
        bench_daemon::CONNECTIONS,
        d.fsync_bound_rps(),
        d.fsync_bound_rps() / raw
    );
    let c = &d.ceiling;
    println!(
        "daemon, ceiling (a std-only forwarder, no durability: 202 at once, one POST to the sink per event from {} threads): accepted {:.0}/s = {:.2} of raw; delivered {:.0}/s during the load = {:.2} of raw; all {} delivered at {:.0}/s up to an empty queue; {:.0} µs of forwarder CPU per event",
        bench_daemon::CONNECTIONS,
        c.accepted_rps,
        c.accepted_rps / raw,
        c.delivered_rps,
        c.delivered_rps / raw,
        c.delivered,
        c.drained_rps,
        c.cpu_us_per_event
    );
    let durable = |what: &str, c: &bench_daemon::LoadRun| {
        println!(
            "daemon, {what}: accepted {:.0}/s = {:.2} of raw ({} of 0.4 itself); delivered {:.0}/s during the load = {:.2} of raw; all {} delivered; {:.0} µs of forwarder CPU per event",
            c.accepted_rps,
            c.accepted_rps / raw,
            aim(c.accepted_rps / raw >= 0.4),
            c.delivered_rps,
            c.delivered_rps / raw,
            c.delivered,
            c.cpu_us_per_event
        );
    };
    durable(
        "durable ceiling (the same forwarder, its 202 only once the event is written to a file and fdatasync'd, in group commits)",
        &d.durable_ceiling,
    );
    durable(
        "durable ceiling on herald's stack (herald-ceiling: tokio, hyper's server and pooled client, up to 64 POSTs at once, its 202 once the event is in a group commit fdatasync'd by a writer thread)",
        &d.stack_ceiling,
    );
    let s = &d.spread;
    println!(
        "daemon, 256 objects: accepted {:.0} events/s durably (202; {} shed with 503); delivered {:.0}/s during the load, all {} accepted delivered at {:.0}/s up to an empty queue",
        s.accepted_rps, s.shed, s.delivered_rps, s.delivered, s.drained_rps
    );
    println!(
        "daemon, 256 objects: delivered-during-load/raw {:.2} ({} of 0.4); accepted/raw {:.2} ({} of 0.4); accepted / fsync bound {:.2}",
        s.delivered_rps / raw,
        aim(s.delivered_rps / raw >= 0.4),
        s.accepted_rps / raw,
        aim(s.accepted_rps / raw >= 0.4),
        s.accepted_rps / d.fsync_bound_rps()
    );
    println!(
        "daemon, 256 objects: accepted {:.2} and delivered-during-load {:.2} of the ceiling's; {:.2} and {:.2} of the durable ceiling's",
        s.accepted_rps / d.ceiling.accepted_rps,
        s.delivered_rps / d.ceiling.delivered_rps,
        s.accepted_rps / d.durable_ceiling.accepted_rps,
        s.delivered_rps / d.durable_ceiling.delivered_rps
    );
    println!(
        "daemon, 256 objects: accepted {:.2} and delivered-during-load {:.2} of the durable ceiling's on herald's stack; CPU per event {:.2} of its",
        s.accepted_rps / d.stack_ceiling.accepted_rps,
        s.delivered_rps / d.stack_ceiling.delivered_rps,
        s.cpu_us_per_event / d.stack_ceiling.cpu_us_per_event.max(1.0)
    );
    println!(
        "daemon, 256 objects: event endpoint latency p50 {:.2} ms, p99 {:.2} ms; accepted-to-delivered p50 {:.2} ms, p99 {:.2} ms",
        s.p50_ms, s.p99_ms, s.lag_p50_ms, s.lag_p99_ms
    );
    println!(
        "daemon, 256 objects: herald CPU {:.0} µs per event; outbox commits of {:.2} ms on average, {:.1} new deliveries each",
        s.cpu_us_per_event, s.commit_ms, s.appended_per_commit
    );
    println!(
        "daemon, 256 objects: outbox file {} bytes holding {} events = {:.0} bytes/event on disk (redb grows the file ahead of use)",
        s.outbox_bytes,
        s.delivered,
        s.outbox_bytes as f64 / s.delivered.max(1) as f64
    );
    let o = &d.single;
    println!(
        "daemon, one object (one ordering key, strictly in order): accepted {:.0}/s ({} shed: the provider quota), delivered {:.0}/s during the load = {:.3} of raw; all {} delivered at {:.0}/s",
        o.accepted_rps,
        o.shed,
        o.delivered_rps,
        o.delivered_rps / raw,
        o.delivered,
        o.drained_rps
    );
    let l = &d.limited;
    println!(
        "daemon, sink limited to {:.0}/s with 429 + Retry-After: 1: delivered {:.0}/s during the load = {:.2} of the limit; {} answers 429 in {:.0} s; accepted {:.0}/s ({} shed)",
        l.limit_rps,
        l.delivered_rps,
        l.delivered_rps / l.limit_rps,
        l.answered_429,
        10.0,
        l.accepted_rps,
        l.shed
    );
    println!(
        "daemon: ready after kill -9 with the 256-object run's outbox (crash recovery) in {:.0} ms",
        d.recovery_ms
    );
    println!(
        "daemon: idle RSS {:.1} MiB ({} of 10 MiB)",
        s.idle_rss_kib as f64 / 1024.0,
        aim(s.idle_rss_kib <= 10 * 1024)
    );
    let peak = s.peak_rss_kib.max(o.peak_rss_kib).max(l.peak_rss_kib);
    println!(
        "daemon: peak RSS {:.1} MiB over the three runs (256 objects {:.1}, one object {:.1}, limited {:.1}) ({} of 64 MiB)",
        peak as f64 / 1024.0,
        s.peak_rss_kib as f64 / 1024.0,
        o.peak_rss_kib as f64 / 1024.0,
        l.peak_rss_kib as f64 / 1024.0,
        aim(peak <= 64 * 1024)
    );
    println!(
        "daemon: ready with 1,000 Providers and 1,000 Alerts in {:.0} ms ({} of 200 ms)",
        d.startup_ms,
        aim(d.startup_ms < 200.0)
    );
    Ok(())
}

/// `cargo xtask bench cluster`: the embedded outbox against the shared JetStream outbox.
fn bench_cluster(root: &Path) -> Result<()> {
    run(
        &cargo(),
        &["build", "--release", "-p", "herald", "--locked"],
    )?;
    let target = meta::target_dir(root)?;
    let bench = bench_cluster::run(
        &target.join("release/herald"),
        &target.join("bench-cluster"),
        &peers::dir(root).join("nats.sh"),
    )?;
    println!(
        "\n== herald cluster benchmark: {:.0} s of load, {} connections, 256 objects, 3 nats-servers on loopback",
        bench_daemon::SECONDS,
        bench_daemon::CONNECTIONS
    );
    print!("{}", bench.table());
    bench.check()
}

#[cfg(test)]
mod tidy;

/// `cargo xtask soak [--minutes N]` (default 10).
fn soak_cmd(root: &Path, args: &[String]) -> Result<()> {
    let minutes = match args {
        [] => 10.0,
        [flag, n] if flag == "--minutes" => n
            .parse::<f64>()
            .ok()
            .filter(|m| *m > 0.0)
            .with_context(|| format!("--minutes takes a positive number, not {n:?}"))?,
        _ => bail!("usage: cargo xtask soak [--minutes N]"),
    };
    run(
        &cargo(),
        &["build", "--release", "-p", "herald", "--locked"],
    )?;
    let target = meta::target_dir(root)?;
    soak::run(
        &target.join("release/herald"),
        &target.join("soak"),
        minutes,
        &root.join("docs/soak.svg"),
    )
}
