//! `cargo xtask deny`: `cargo deny check` with the best RustSec advisory database there is.
//!
//! 1. The database cargo-deny fetches itself (`cargo deny fetch db`), where the network
//!    reaches it; then the whole check runs online (yanked crates included).
//! 2. Where it cannot: a snapshot named by `HERALD_ADVISORY_DB` (a `.tar.gz` of an
//!    `advisory-db-*` folder as cargo-deny names its clone, or a folder holding such folders;
//!    CI's `.ci/run` points it at the snapshot its machine has), unpacked into cargo-deny's
//!    default database folder (`$CARGO_HOME/advisory-dbs`) unless a newer database is there.
//! 3. Else a database an earlier run left there, named with its date.
//! 4. Else none: it says so loudly and checks bans, licenses and sources without advisories.
//!
//! Cases 2 to 4 run offline, after `cargo fetch --locked` (cargo metadata then needs no network).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, run};

/// Which database the check used, for the closing summary.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Advisories {
    Fetched,
    Snapshot {
        date: String,
    },
    Cached {
        date: String,
    },
    /// No database: advisories were not checked.
    Missing,
}

impl Advisories {
    pub(crate) fn describe(&self) -> String {
        match self {
            Advisories::Fetched => "advisories checked against the RustSec database fetched now".to_owned(),
            Advisories::Snapshot { date } => format!("advisories checked offline against the snapshot of HERALD_ADVISORY_DB (database of {date})"),
            Advisories::Cached { date } => format!("advisories checked offline against the database an earlier fetch or snapshot left (of {date}; the fetch failed now)"),
            Advisories::Missing => "ADVISORIES NOT CHECKED: the RustSec database could not be fetched and HERALD_ADVISORY_DB names no snapshot".to_owned(),
        }
    }
}

pub(crate) fn check() -> Result<Advisories> {
    crate::setup::cargo_tool("cargo-deny", "deny")?;
    let dbs = databases_dir()?;
    let advisories = if fetch(&dbs)? {
        Advisories::Fetched
    } else if let Some(snapshot) = std::env::var_os("HERALD_ADVISORY_DB").map(PathBuf::from) {
        match use_snapshot(&snapshot, &dbs)? {
            (date, true) => Advisories::Snapshot { date },
            (date, false) => Advisories::Cached { date },
        }
    } else if let Some(db) = database_in(&dbs) {
        Advisories::Cached { date: date_of(&db) }
    } else {
        Advisories::Missing
    };
    eprintln!("deny: {}", advisories.describe());
    match advisories {
        Advisories::Fetched => run(&cargo(), &["deny", "check"])?,
        Advisories::Missing => {
            loud_warning();
            run(&cargo(), &["fetch", "--locked"])?;
            run(
                &cargo(),
                &["deny", "--offline", "check", "bans", "licenses", "sources"],
            )?;
        }
        _ => {
            run(&cargo(), &["fetch", "--locked"])?;
            run(&cargo(), &["deny", "--offline", "check"])?;
        }
    }
    Ok(advisories)
}

fn loud_warning() {
    let line = "!".repeat(78);
    eprintln!(
        "{line}\n! WARNING: no RustSec advisory database: the fetch failed (no network?) and\n\
         ! HERALD_ADVISORY_DB names no snapshot. Advisories are NOT checked; bans, licenses\n\
         ! and sources are. Set HERALD_ADVISORY_DB=/path/to/advisory-db.tar.gz to check them.\n{line}"
    );
}

/// `cargo deny fetch db`: whether the database could be fetched.
///
/// A snapshot unpacked by an earlier run is no clone cargo-deny can update (it has no
/// `origin`), so a failed fetch over one is tried again with the snapshot moved aside; it is
/// put back if that fails too.
fn fetch(dbs: &Path) -> Result<bool> {
    if try_fetch() {
        return Ok(true);
    }
    let Some(db) = database_in(dbs).filter(|db| !has_origin(db)) else {
        return Ok(false);
    };
    let parked = dbs.join(".herald-parked-snapshot");
    if parked.exists() {
        std::fs::remove_dir_all(&parked)?;
    }
    std::fs::rename(&db, &parked)?;
    eprintln!(
        "deny: {} is an unpacked snapshot; fetching a fresh clone instead",
        db.display()
    );
    if try_fetch() {
        std::fs::remove_dir_all(&parked)?;
        return Ok(true);
    }
    if db.exists() {
        std::fs::remove_dir_all(&db)?;
    }
    std::fs::rename(&parked, &db)?;
    Ok(false)
}

fn has_origin(db: &Path) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(db)
        .args(["remote", "get-url", "origin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One `cargo deny fetch db`, quietly but for the first line of its error.
fn try_fetch() -> bool {
    eprintln!("$ {} deny fetch db", cargo());
    let out = Command::new(cargo())
        .args(["deny", "fetch", "db"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr);
            let first = why.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            eprintln!("deny: cannot fetch the advisory database: {first}");
            false
        }
        Err(e) => {
            eprintln!("deny: cannot run cargo deny fetch: {e}");
            false
        }
    }
}

/// cargo-deny's default database folder (deny.toml does not move it).
fn databases_dir() -> Result<PathBuf> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?)
                .join(".cargo")
        }
    };
    Ok(cargo_home.join("advisory-dbs"))
}

/// The database in `dbs`: a folder `advisory-db-*` that holds advisories (a bare `db.lock` or
/// an empty clone left by a failed fetch does not count).
fn database_in(dbs: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dbs)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("advisory-db"))
                && p.join("crates").is_dir()
        })
}

/// The date of a database's last commit (`YYYY-MM-DD`), or `unknown date`.
fn date_of(db: &Path) -> String {
    Command::new("git")
        .arg("-C")
        .arg(db)
        .args(["log", "-1", "--format=%cs"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "unknown date".to_owned())
}

fn commit_time(db: &Path) -> Option<u64> {
    let out = Command::new("git")
        .arg("-C")
        .arg(db)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Unpacks the snapshot beside the databases, and puts it in place unless the database there
/// is newer. Returns the date of the database used, and whether it is the snapshot.
fn use_snapshot(snapshot: &Path, dbs: &Path) -> Result<(String, bool)> {
    let snapshot = std::path::absolute(snapshot)?;
    if !snapshot.exists() {
        bail!(
            "HERALD_ADVISORY_DB is {}, which does not exist",
            snapshot.display()
        );
    }
    std::fs::create_dir_all(dbs).with_context(|| format!("creating {}", dbs.display()))?;
    let staging = dbs.join(".herald-snapshot");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    let staged = staging.to_string_lossy().into_owned();
    if snapshot.is_dir() {
        run("cp", &["-a", &format!("{}/.", snapshot.display()), &staged])?;
    } else {
        run("tar", &["xzf", &snapshot.to_string_lossy(), "-C", &staged])?;
    }
    let new = database_in(&staging).with_context(|| {
        format!(
            "HERALD_ADVISORY_DB ({}) holds no advisory-db-* folder with advisories",
            snapshot.display()
        )
    })?;
    let name = new
        .file_name()
        .context("a database without a name")?
        .to_owned();
    let current = dbs.join(&name);
    let keep_current = current.join("crates").is_dir()
        && commit_time(&current).unwrap_or(0) > commit_time(&new).unwrap_or(0);
    if keep_current {
        eprintln!(
            "deny: {} is newer than the snapshot; using it",
            current.display()
        );
    } else {
        if current.exists() {
            std::fs::remove_dir_all(&current)
                .with_context(|| format!("removing the older {}", current.display()))?;
        }
        std::fs::rename(&new, &current)
            .with_context(|| format!("moving the snapshot to {}", current.display()))?;
    }
    std::fs::remove_dir_all(&staging)?;
    Ok((date_of(&current), !keep_current))
}
