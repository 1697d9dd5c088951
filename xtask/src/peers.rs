//! `cargo xtask peers <name> <command...>`: the real services of herald's tests, by hand. Each
//! is a script in `crates/herald-testkit/peers/` (its README.md tells their commands and
//! facts); this passes the command line through and exits as the script does.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Every peer: the name `cargo xtask peers` takes, and its script.
pub(crate) const SCRIPTS: [(&str, &str); 6] = [
    ("alertmanager", "alertmanager.sh"),
    ("eventhub", "eventhub-mock.sh"),
    ("nats", "nats.sh"),
    ("otlp", "otlp-collector.sh"),
    ("proxy", "proxy.sh"),
    ("synapse", "matrix-synapse.sh"),
];

pub(crate) fn dir(root: &Path) -> PathBuf {
    root.join("crates/herald-testkit/peers")
}

fn usage() -> String {
    let names: Vec<&str> = SCRIPTS.iter().map(|(n, _)| *n).collect();
    format!(
        "usage: cargo xtask peers <{}> <start|stop|status|logs|install|--help ...> | peers install | peers selftest [NAME...]",
        names.join("|")
    )
}

/// The script a name stands for: a peer's name, its script's file name, or `selftest`.
fn script(name: &str) -> Option<&'static str> {
    if name == "selftest" {
        return Some("selftest.sh");
    }
    SCRIPTS
        .iter()
        .find(|(n, s)| *n == name || *s == name || (name == "matrix" && *n == "synapse"))
        .map(|(_, s)| *s)
}

/// Runs the script; returns its exit code for the process to exit with.
pub(crate) fn main(root: &Path, args: &[String]) -> Result<i32> {
    let Some(name) = args.first() else {
        bail!("{}", usage());
    };
    if name == "install" && args.len() == 1 {
        crate::setup::peer_installs(root)?;
        return Ok(0);
    }
    let Some(script) = script(name) else {
        bail!("unknown peer {name:?}; {}", usage());
    };
    let status = Command::new("bash")
        .arg(dir(root).join(script))
        .args(&args[1..])
        .status()
        .with_context(|| format!("running {script}"))?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_scripts_that_exist() {
        let root = crate::root();
        for (name, file) in SCRIPTS {
            assert_eq!(script(name), Some(file));
            assert!(dir(&root).join(file).is_file(), "{file}");
        }
        assert_eq!(script("matrix"), Some("matrix-synapse.sh"));
        assert_eq!(script("nats.sh"), Some("nats.sh"));
        assert_eq!(script("selftest"), Some("selftest.sh"));
        assert_eq!(script("postgres"), None);
    }

    /// The selftest runs every script `cargo xtask peers` knows, and nothing else.
    #[test]
    fn the_selftest_knows_every_peer() {
        let text = std::fs::read_to_string(dir(&crate::root()).join("selftest.sh")).unwrap();
        for (name, file) in SCRIPTS {
            assert!(
                text.contains(&format!("{name})")),
                "selftest.sh has no case for {name}"
            );
            assert!(text.contains(file), "selftest.sh never runs {file}");
        }
    }
}
