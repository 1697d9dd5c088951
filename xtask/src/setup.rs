//! `cargo xtask ci`'s first step: install what the other steps need and a fresh machine with
//! only Rust lacks. The toolchain's rustfmt and clippy (rustup), cargo-nextest and cargo-deny
//! (`cargo install --locked`), the programs the tests run (Debian packages), and every peer
//! service's packages (each peer script's `install`), so that no test spends its time
//! installing. What is there already is left alone.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, in_ci, peers, run};

/// What the steps that will run need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    pub(crate) rustfmt: bool,
    pub(crate) clippy: bool,
    pub(crate) nextest: bool,
    pub(crate) deny: bool,
    /// The programs the tests run, and the peers' packages.
    pub(crate) test_programs: bool,
}

/// Programs the tests and the dist step run, and the Debian package of each: bash (peer
/// scripts, the full-disk test), tar (dist tarballs), kill (signals to the daemon),
/// sha256sum, python3 (peer scripts, a signature cross-check), curl and flock (peer scripts),
/// ss (the peers' self-test checks what they listen on).
const PROGRAMS: [(&str, &str); 8] = [
    ("bash", "bash"),
    ("tar", "tar"),
    ("kill", "procps"),
    ("sha256sum", "coreutils"),
    ("python3", "python3"),
    ("curl", "curl"),
    ("flock", "util-linux"),
    ("ss", "iproute2"),
];

/// Programs the deny step runs: tar (an advisory-database snapshot), git (the database's date
/// and origin).
const DENY_PROGRAMS: [(&str, &str); 2] = [("tar", "tar"), ("git", "git")];

/// Installs what is missing. Returns warnings for the closing summary (a peer that could not
/// be installed outside CI); under `CI=true` such a peer is an error.
pub(crate) fn run_setup(root: &Path, needs: Needs) -> Result<Vec<String>> {
    if needs.rustfmt {
        component("rustfmt", &["fmt", "--version"])?;
    }
    if needs.clippy {
        component("clippy", &["clippy", "--version"])?;
    }
    if needs.nextest {
        cargo_tool("cargo-nextest", "nextest")?;
    }
    if needs.deny {
        cargo_tool("cargo-deny", "deny")?;
        debian_programs(&DENY_PROGRAMS)?;
    }
    if !needs.test_programs {
        return Ok(Vec::new());
    }
    debian_programs(&PROGRAMS)?;
    peer_installs(root)
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A toolchain component, added with rustup when `cargo <check>` does not run.
fn component(name: &str, check: &[&str]) -> Result<()> {
    if works(&cargo(), check) {
        return Ok(());
    }
    if !works("rustup", &["--version"]) {
        bail!(
            "`cargo {}` does not run and there is no rustup to add {name}: install {name} for this toolchain",
            check.join(" ")
        );
    }
    run("rustup", &["component", "add", name])
}

/// A cargo subcommand, installed from crates.io (`--locked`, its own lock file) when
/// `cargo <subcommand> --version` does not run.
pub(crate) fn cargo_tool(krate: &str, subcommand: &str) -> Result<()> {
    if works(&cargo(), &[subcommand, "--version"]) {
        return Ok(());
    }
    eprintln!("{krate} is not installed; installing it (once, a few minutes)");
    run(&cargo(), &["install", krate, "--locked"]).with_context(|| format!("installing {krate}"))
}

/// Installs, with apt-get, the package of each (program, package) whose program is not on the
/// `PATH`.
pub(crate) fn debian_programs(programs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = programs
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!(
            "these packages are needed and there is no apt-get to install them: {}",
            missing.join(", ")
        );
    }
    run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    let status = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get install {} failed ({status})", missing.join(" "));
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Every peer script's `install`, all at once (apt installs queue on the scripts' lock; the
/// Python venvs build side by side).
pub(crate) fn peer_installs(root: &Path) -> Result<Vec<String>> {
    let dir = peers::dir(root);
    let children: Vec<(&str, std::process::Child)> = peers::SCRIPTS
        .iter()
        .map(|(_, script)| {
            eprintln!("$ bash {} install", dir.join(script).display());
            let child = Command::new("bash")
                .arg(dir.join(script))
                .arg("install")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("running {script} install"))?;
            Ok((*script, child))
        })
        .collect::<Result<_>>()?;
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    for (script, child) in children {
        let Output { status, stderr, .. } = child
            .wait_with_output()
            .with_context(|| format!("waiting for {script} install"))?;
        let stderr = String::from_utf8_lossy(&stderr);
        if !stderr.trim().is_empty() {
            eprint!("{stderr}");
        }
        match status.code() {
            Some(0) => {}
            Some(3) if !in_ci() => warnings.push(format!(
                "peer {script} could not be installed: the tests that need it SKIP (see above)"
            )),
            Some(3) => failures.push(format!(
                "{script} install failed, and under CI=true a peer the tests need must install"
            )),
            _ => failures.push(format!("{script} install failed ({status})")),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(warnings)
}
