//! Real services for tests: the scripts of `../shared/peers` (see its README.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Exit code of a peer script whose dependency could not be installed.
const EXIT_INSTALL_FAILED: i32 = 3;

/// The `shared/peers` folder beside the repository, found from this crate's directory.
fn peers_dir(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("../shared/peers"))
        .find(|p| p.join(script).exists())
        .unwrap_or_else(|| {
            panic!(
                "shared/peers/{script} not found next to the repository (looked above {})",
                env!("CARGO_MANIFEST_DIR")
            )
        })
}

/// Starts `script` (for example `proxy.sh`) on an `auto` port with its state under
/// `state_dir`, and returns the facts it printed (`URL`, `PID`, `LOG`, ...).
///
/// Returns `None`, after printing a loud `SKIPPED` line on stderr, only when the script exits
/// 3 (a dependency could not be installed). Any other failure panics with the script's
/// stderr: a peer that is installed but does not work is a test failure, not a skip.
pub fn start_peer(script: &str, state_dir: &Path) -> Option<HashMap<String, String>> {
    start_peer_with(script, state_dir, "auto", &[])
}

/// [`start_peer`] on a given port (`auto` picks a free one) with extra environment variables
/// for the script (such as `EVENTHUB_AUTH=none`).
pub fn start_peer_with(
    script: &str,
    state_dir: &Path,
    port: &str,
    env: &[(&str, &str)],
) -> Option<HashMap<String, String>> {
    let dir = peers_dir(script);
    let out = Command::new("bash")
        .arg(dir.join(script))
        .args(["start", port])
        .envs(env.iter().copied())
        .env("HERALD_PEERS_STATE", state_dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash for peer {script}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        Some(EXIT_INSTALL_FAILED) => {
            #[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
            {
                eprintln!("SKIPPED: peer {script} could not be installed:\n{stderr}");
            }
            None
        }
        _ => panic!("peer {script} failed to start ({}):\n{stderr}", out.status),
    }
}

/// Stops the instance of `script` listening on `port` whose state is under `state_dir`.
/// Panics with the script's stderr if it fails.
pub fn stop_peer(script: &str, port: impl std::fmt::Display, state_dir: &Path) {
    let dir = peers_dir(script);
    let out = Command::new("bash")
        .arg(dir.join(script))
        .args(["stop", &port.to_string()])
        .env("HERALD_PEERS_STATE", state_dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash for peer {script}: {e}"));
    assert!(
        out.status.success(),
        "peer {script} failed to stop on port {port} ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
