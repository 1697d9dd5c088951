//! xtask: herald's automation, in Rust (`cargo xtask <command>`).
//!
//! - `ci [--skip STEP,...]`: what CI runs: fmt, clippy, test, features, deny.
//! - `features`: the feature-matrix check alone (no families, each family alone, all).
//! - `deny`: `cargo deny check` with the RustSec database from `../shared`, offline.
//! - `bench [daemon]`: render/sign benchmarks and the daemon load benchmark (sizes: `sizes`).
//! - `soak [--minutes N]`: a release daemon under steady mixed load; RSS and fds over time.
//! - `fuzz [--time SECONDS] [TARGET...]`: every cargo-fuzz target in `fuzz/` (nightly).
//! - `dist [--features LIST]`: a release build of the chosen families and its tarball.
//! - `sizes [--update]`: every feature set of docs/benchmarks.md's size table through `dist`,
//!   checked against the table (CI's `dist` step) or written into it.
//! - `docs`: regenerates what is generated from the command line (docs/configuration.md's
//!   flag reference, docs/cli/ completions and man pages).
//!
//! It is not part of herald: it only runs cargo and the tools CI needs. Its tests check the
//! workspace invariants of ARCHITECTURE.md.

// xtask talks to the person running it on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench_daemon;
mod dist;
mod fuzz;
mod soak;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() {
    // One clear line per failure (with its causes), not a backtrace: RUST_BACKTRACE is often
    // set on developer machines and would bury the message.
    if let Err(e) = dispatch() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root, &skipped(&args[1..])?),
        Some("features") => features(&root),
        Some("deny") => deny(&root),
        Some("bench") => bench(&root, args.get(1).map(String::as_str) == Some("daemon")),
        Some("soak") => soak_cmd(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("dist") => dist::main(&root, &args[1..]),
        Some("sizes") => match args.get(1).map(String::as_str) {
            None => dist::sizes(&root, false),
            Some("--update") => dist::sizes(&root, true),
            Some(other) => bail!("unknown argument {other:?}; usage: cargo xtask sizes [--update]"),
        },
        Some("docs") => docs(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci [--skip fmt,clippy,test,features,deny,dist] | features | deny | bench [daemon] | soak [--minutes N] | fuzz [--time SECONDS] [TARGET...] | dist [--features LIST] | sizes [--update] | docs>"
            );
            std::process::exit(2);
        }
    }
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

/// Counts (passed, failed) in nextest's `Summary` line and libtest's `test result:` lines.
///
/// Only libtest lines at the start of a line count: nextest shows a failed try's captured
/// output indented, and that output holds the test binary's own `test result:` line (a flaky
/// test that passed on retry must not count as failed).
fn count_tests(output: &str) -> (u64, u64) {
    let number_before = |line: &str, word: &str| -> u64 {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|w| !w.is_empty())
            .collect();
        words
            .windows(2)
            .find(|w| w[1] == word)
            .and_then(|w| w[0].parse().ok())
            .unwrap_or(0)
    };
    let (mut passed, mut failed) = (0, 0);
    for line in output.lines() {
        let line = strip_ansi(line);
        if line.trim_start().starts_with("Summary [") || line.starts_with("test result:") {
            let line = line.trim();
            passed += number_before(line, "passed");
            failed += number_before(line, "failed");
        }
    }
    (passed, failed)
}

/// The line without its colour codes (`ESC [ ... letter`), as under CARGO_TERM_COLOR=always.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip `[`, the parameters and the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

const STEPS: [&str; 6] = ["fmt", "clippy", "test", "features", "deny", "dist"];

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
    let mut timings = Vec::new();
    let mut tests = (0, 0);
    for step in STEPS {
        if skip.iter().any(|s| s == step) {
            eprintln!("== {step}: skipped");
            continue;
        }
        eprintln!("== {step}");
        let started = Instant::now();
        match step {
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
            "test" => {
                let unit = run_tee(
                    &cargo,
                    &[
                        "nextest",
                        "run",
                        "--workspace",
                        "--all-features",
                        "--locked",
                        "--no-fail-fast",
                    ],
                )?;
                let doc = run_tee(
                    &cargo,
                    &["test", "--workspace", "--all-features", "--locked", "--doc"],
                )?;
                let (a, b) = (count_tests(&unit), count_tests(&doc));
                tests = (a.0 + b.0, a.1 + b.1);
            }
            "features" => features(root)?,
            "deny" => deny(root)?,
            _ => dist::sizes(root, false)?,
        }
        timings.push((step, started.elapsed()));
    }
    eprintln!("== ci passed");
    for (step, took) in timings {
        eprintln!("   {step:<9} {:>6.1} s", took.as_secs_f64());
    }
    if !skip.iter().any(|s| s == "test") {
        // The closing line: every test and doctest run, nextest and libtest together.
        println!("{} passed, {} failed", tests.0, tests.1);
    }
    Ok(())
}

/// The binary's family features: every `[features]` key of crates/herald except `default`.
fn family_features(root: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(root.join("crates/herald/Cargo.toml"))?;
    let mut in_features = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if in_features && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') && name != "default" {
                out.push(name.to_owned());
            }
        }
    }
    if out.is_empty() {
        bail!("no features found in crates/herald/Cargo.toml");
    }
    Ok(out)
}

/// Checks herald (every target, tests too) with no family, each family alone, and all.
///
/// Warnings that show only under some feature set (an import only one family uses) are the
/// usual failure, so a warning fails the step. They are read from cargo's output (its
/// "warning: `crate` (target) generated N warnings" line, which only workspace crates get and
/// which cargo repeats for cached crates) rather than set with `RUSTFLAGS=-Dwarnings`: RUSTFLAGS
/// would recheck every dependency under every set instead of reusing what the clippy step
/// checked (about 2.5x the time on two cores).
fn features(root: &Path) -> Result<()> {
    let cargo = cargo();
    let mut sets: Vec<Vec<String>> = vec![vec!["--no-default-features".to_owned()]];
    for f in family_features(root)? {
        sets.push(vec![
            "--no-default-features".to_owned(),
            "--features".to_owned(),
            f,
        ]);
    }
    sets.push(vec!["--all-features".to_owned()]);
    for set in &sets {
        let mut args = vec!["check", "-p", "herald", "--all-targets", "--locked"];
        args.extend(set.iter().map(String::as_str));
        let output = run_tee(&cargo, &args)?;
        let warned: Vec<&str> = output.lines().filter(|l| warned_crate(l)).collect();
        if !warned.is_empty() {
            bail!("warnings under `{}`:\n{}", set.join(" "), warned.join("\n"));
        }
    }
    Ok(())
}

/// Whether a line of cargo's output is its closing warning count for one crate target.
fn warned_crate(line: &str) -> bool {
    let line = strip_ansi(line);
    line.starts_with("warning: `") && line.contains(" generated ") && line.contains(" warning")
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

/// Where `../shared` is: next to the repository.
fn shared(root: &Path) -> Option<PathBuf> {
    root.ancestors()
        .map(|d| d.join("../shared"))
        .find(|p| p.join("advisory-db.tar.gz").exists())
}

fn deny(root: &Path) -> Result<()> {
    if Command::new(cargo())
        .args(["deny", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        bail!("cargo-deny is not installed: `cargo install cargo-deny --locked` (.ci/run does it)");
    }
    match shared(root) {
        Some(shared) => {
            let home = std::env::var("HOME").context("HOME is not set")?;
            let dbs = Path::new(&home).join(".cargo/advisory-dbs");
            // A database is there when a folder `advisory-db-*` holds advisories; a bare
            // `db.lock` (left by a cargo-deny that could not fetch) does not count.
            let has_db = std::fs::read_dir(&dbs)
                .map(|entries| {
                    entries.filter_map(Result::ok).any(|e| {
                        e.file_name().to_string_lossy().starts_with("advisory-db")
                            && e.path().join("crates").is_dir()
                    })
                })
                .unwrap_or(false);
            if !has_db {
                std::fs::create_dir_all(&dbs)?;
                let tarball = shared.join("advisory-db.tar.gz");
                run(
                    "tar",
                    &[
                        "xzf",
                        &tarball.to_string_lossy(),
                        "-C",
                        &dbs.to_string_lossy(),
                    ],
                )?;
            }
            // `--offline` keeps cargo-deny from fetching the database, and also keeps
            // `cargo metadata` offline: fetch every crate of every target first.
            run(&cargo(), &["fetch", "--locked"])?;
            run(&cargo(), &["deny", "--offline", "check"])
        }
        // On a machine that reaches the RustSec database (GitHub Actions), fetch it.
        None if std::env::var("CI_ONLINE_ADVISORIES").as_deref() == Ok("1") => {
            run(&cargo(), &["deny", "check"])
        }
        None => bail!(
            "../shared/advisory-db.tar.gz not found; set CI_ONLINE_ADVISORIES=1 to fetch the database"
        ),
    }
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
        eprintln!("$ {cargo} bench -p {krate} --bench render --locked");
        let out = Command::new(&cargo)
            .args(["bench", "-p", krate, "--bench", "render", "--locked"])
            .output()?;
        if !out.status.success() {
            bail!(
                "bench of {krate} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{text}");
        renders.extend(
            text.lines()
                .filter(|l| l.contains("ns/event"))
                .map(str::to_owned),
        );
    }

    // Binary sizes are `cargo xtask sizes`' job (docs/benchmarks.md's table); the daemon
    // benchmark needs the default (all families) release build.
    run(&cargo, &["build", "--release", "-p", "herald", "--locked"])?;
    let bin = root.join("target/release/herald");
    let daemon = bench_daemon::run(&bin, &root.join("target/bench-daemon"))?;

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
    println!(
        "daemon: raw limit (wrk straight to the sink): {:.0} req/s",
        d.raw_rps
    );
    println!(
        "daemon: accepted {:.0} events/s (202); shed {} with 503 under overload; delivered all {} accepted events at {:.0}/s",
        d.accepted_rps, d.shed, d.delivered, d.delivered_rps
    );
    println!(
        "daemon: delivered/raw ratio {:.2} ({} of 0.4)",
        d.delivered_rps / d.raw_rps,
        aim(d.delivered_rps / d.raw_rps >= 0.4)
    );
    println!(
        "daemon: durably accepted/raw ratio {:.2} ({} of 0.3 and 5,000 events/s)",
        d.accepted_rps / d.raw_rps,
        aim(d.accepted_rps / d.raw_rps >= 0.3 && d.accepted_rps >= 5000.0)
    );
    println!(
        "daemon: outbox file {} bytes holding {} events = {:.0} bytes/event on disk (redb grows the file ahead of use)",
        d.outbox_bytes,
        d.delivered,
        d.outbox_bytes as f64 / d.delivered.max(1) as f64
    );
    println!(
        "daemon: ready after kill -9 with that outbox (crash recovery) in {:.0} ms",
        d.recovery_ms
    );
    println!(
        "daemon: event endpoint latency vs. the sink: p50 {:+.2} ms, p99 {:+.2} ms; accepted-to-delivered p50 {:.2} ms, p99 {:.2} ms",
        d.p50_added_ms, d.p99_added_ms, d.lag_p50_ms, d.lag_p99_ms
    );
    println!(
        "daemon: idle RSS {:.1} MiB ({} of 10 MiB)",
        d.idle_rss_kib as f64 / 1024.0,
        aim(d.idle_rss_kib <= 10 * 1024)
    );
    println!(
        "daemon: peak RSS {:.1} MiB ({} of 64 MiB)",
        d.peak_rss_kib as f64 / 1024.0,
        aim(d.peak_rss_kib <= 64 * 1024)
    );
    println!(
        "daemon: ready with 1,000 Providers and 1,000 Alerts in {:.0} ms ({} of 200 ms)",
        d.startup_ms,
        aim(d.startup_ms < 200.0)
    );
    Ok(())
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
    soak::run(
        &root.join("target/release/herald"),
        &root.join("target/soak"),
        minutes,
        &root.join("docs/soak.svg"),
    )
}
