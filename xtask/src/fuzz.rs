//! `cargo xtask fuzz [--time SECONDS] [TARGET...]`: runs every cargo-fuzz target of `fuzz/`
//! (or the ones named) for SECONDS each (default 60), then prints executions and coverage per
//! target as a Markdown table for docs/testing.md.
//!
//! It installs cargo-fuzz from crates.io when missing and needs a nightly toolchain
//! (libFuzzer's sanitizer flags are nightly-only); without one it says so and stops. Seeds
//! come from `examples/` (events and manifests) so the fuzzers start from real inputs; the
//! corpora grow under `fuzz/corpus/` (not committed). A crash fails the command and names
//! the reproducer under `fuzz/artifacts/`; each crash found becomes a regression test in the
//! normal suite. It is not part of `cargo xtask ci`: CI has only stable Rust.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The targets, as in fuzz/Cargo.toml.
const TARGETS: [&str; 5] = ["event_json", "manifests", "pipeline", "render", "parsers"];

/// One target's run.
#[derive(Debug)]
struct Outcome {
    target: String,
    executions: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    crashed: Option<String>,
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                let v = it.next().context("--time needs a number of seconds")?;
                seconds = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .with_context(|| format!("--time takes whole seconds, not {v:?}"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => bail!(
                "unknown fuzz argument {other:?}; targets are {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }

    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(nightly) = nightly else {
        bail!(
            "fuzzing needs a nightly toolchain (cargo-fuzz builds with sanitizer flags only nightly accepts) and none is installed: run `rustup toolchain install nightly`, then `cargo xtask fuzz` again. Fuzzing is not part of CI."
        );
    };
    eprintln!(
        "fuzz: using {}",
        String::from_utf8_lossy(&nightly.stdout).trim()
    );
    let has_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        eprintln!("$ cargo install cargo-fuzz --locked");
        let status = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()?;
        if !status.success() {
            bail!("installing cargo-fuzz from crates.io failed");
        }
    }

    let fuzz = root.join("fuzz");
    let mut outcomes = Vec::new();
    for target in &targets {
        let corpus = fuzz.join("corpus").join(target);
        seed(root, target, &corpus)?;
        eprintln!(
            "$ cargo +nightly fuzz run {target} -- -max_total_time={seconds} -print_final_stats=1"
        );
        let out = Command::new("cargo")
            .current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
                "-max_len=65536",
                "-timeout=10",
                "-rss_limit_mb=2048",
            ])
            .output()
            .with_context(|| format!("running cargo fuzz for {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let outcome = parse(target, &log, out.status.success(), &corpus);
        if outcome.crashed.is_some() {
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        eprintln!(
            "fuzz: {target}: {} executions, coverage {} edges, {} features",
            outcome.executions, outcome.coverage, outcome.features
        );
        outcomes.push(outcome);
    }

    println!(
        "| target | seconds | executions | exec/s | coverage (edges) | features | corpus | result |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for o in &outcomes {
        println!(
            "| `{}` | {seconds} | {} | {} | {} | {} | {} | {} |",
            o.target,
            o.executions,
            o.executions / seconds,
            o.coverage,
            o.features,
            o.corpus,
            o.crashed.as_deref().unwrap_or("no crash")
        );
    }
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crashed.is_some()).collect();
    if !crashed.is_empty() {
        bail!(
            "{} target(s) crashed: {}",
            crashed.len(),
            crashed
                .iter()
                .map(|o| format!("{} ({})", o.target, o.crashed.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Reads libFuzzer's final statistics and last status line.
fn parse(target: &str, log: &str, ok: bool, corpus: &Path) -> Outcome {
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    // "#123456	DONE   cov: 1234 ft: 5678 corp: 90/12Kb ..." (or the last pulse line).
    let field = |line: &str, key: &str| -> u64 {
        line.split_whitespace()
            .skip_while(|w| *w != key)
            .nth(1)
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov:"))
        .unwrap_or("");
    let artifact = log
        .lines()
        .find_map(|l| l.split("Test unit written to ").nth(1))
        .map(|p| p.trim().to_owned());
    let corpus_files = std::fs::read_dir(corpus).map_or(0, |d| d.count() as u64);
    Outcome {
        target: target.to_owned(),
        executions: stat("number_of_executed_units"),
        coverage: field(last, "cov:"),
        features: field(last, "ft:"),
        corpus: corpus_files,
        crashed: if ok {
            None
        } else {
            Some(artifact.unwrap_or_else(|| "failed; see the log above".to_owned()))
        },
    }
}

/// Puts the example events and manifests into a target's corpus (once).
fn seed(root: &Path, target: &str, corpus: &Path) -> Result<()> {
    std::fs::create_dir_all(corpus)?;
    let files = |dir: &str, ext: &str| -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == ext) {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    };
    let events = files("examples", "json");
    let manifests = files("examples", "yaml");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    match target {
        "event_json" | "render" => {
            for e in &events {
                seeds.push(std::fs::read(e)?);
            }
        }
        "manifests" => {
            for m in &manifests {
                seeds.push(std::fs::read(m)?);
            }
        }
        "pipeline" => {
            for (m, e) in manifests.iter().zip(events.iter().cycle()) {
                let mut s = std::fs::read(m)?;
                s.extend_from_slice(b"\n---event\n");
                s.extend_from_slice(&std::fs::read(e)?);
                seeds.push(s);
            }
        }
        _ => {
            for s in [
                "5m",
                "1h30m15.5s",
                "-1.5us",
                "0",
                ":9090",
                "[::1]:8080",
                "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
                "http://user:pass@proxy:8080",
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=c",
                "main@sha1:69b59063470310ebbd88a9156325322a124e55a3",
                "https://dev.azure.com/org/project/_git/repo",
            ] {
                seeds.push(s.as_bytes().to_vec());
            }
        }
    }
    for (i, s) in seeds.iter().enumerate() {
        let path = corpus.join(format!("seed-{i:03}"));
        if !path.exists() {
            std::fs::write(path, s)?;
        }
    }
    Ok(())
}
