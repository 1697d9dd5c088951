//! Real services for tests: the scripts of this crate's `peers/` folder (see its README.md;
//! `cargo xtask peers` runs them by hand).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Exit code of a peer script whose dependency could not be installed.
const EXIT_INSTALL_FAILED: i32 = 3;

/// The path of a peer script (for example `proxy.sh`) in this crate's `peers/` folder.
///
/// Panics if there is no such script: a test naming a peer the repository does not have is a
/// bug, not a skip.
pub fn peer_script(script: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(script);
    assert!(path.is_file(), "no peer script {}", path.display());
    path
}

/// `bash <script>` with its state under `state_dir`, ready for the script's arguments (for
/// commands beyond start and stop, such as `messages`).
pub fn peer_command(script: &str, state_dir: &Path) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(peer_script(script))
        .env("HERALD_PEERS_STATE", state_dir);
    command
}

/// Runs one command of a peer script (`messages`, `restart`, ...) and returns what it printed;
/// panics with the script's stderr when it fails.
pub fn run_peer(script: &str, state_dir: &Path, args: &[&str]) -> String {
    let out = peer_command(script, state_dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash for peer {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether this run is CI's (`CI=true`, as CI services set it): there a peer that cannot be
/// installed fails the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Starts `script` (for example `proxy.sh`) on an `auto` port with its state under
/// `state_dir`, and returns the facts it printed (`URL`, `PID`, `LOG`, ...).
///
/// Returns `None`, after printing a loud `SKIPPED` line on stderr, only when the script exits
/// 3 (a dependency could not be installed) and this is not CI: under `CI=true` that panics
/// too. Any other failure panics with the script's stderr: a peer that is installed but does
/// not work is a test failure, not a skip.
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
    let out = peer_command(script, state_dir)
        .args(["start", port])
        .envs(env.iter().copied())
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
        Some(EXIT_INSTALL_FAILED) if in_ci() => panic!(
            "peer {script} could not be installed, and under CI=true a test that needs it fails \
             instead of skipping:\n{stderr}"
        ),
        Some(EXIT_INSTALL_FAILED) => {
            #[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
            {
                eprintln!(
                    "SKIPPED: peer {script} could not be installed (under CI=true this fails):\n{stderr}"
                );
            }
            None
        }
        _ => panic!("peer {script} failed to start ({}):\n{stderr}", out.status),
    }
}

/// Stops the instance of `script` listening on `port` whose state is under `state_dir`.
/// Panics with the script's stderr if it fails.
pub fn stop_peer(script: &str, port: impl std::fmt::Display, state_dir: &Path) {
    let out = peer_command(script, state_dir)
        .args(["stop", &port.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash for peer {script}: {e}"));
    assert!(
        out.status.success(),
        "peer {script} failed to stop on port {port} ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_script_is_in_the_crate() {
        for script in [
            "alertmanager.sh",
            "eventhub-mock.sh",
            "matrix-synapse.sh",
            "nats.sh",
            "otlp-collector.sh",
            "proxy.sh",
            "selftest.sh",
        ] {
            assert!(peer_script(script).is_file());
        }
    }

    #[test]
    #[should_panic(expected = "no peer script")]
    fn an_unknown_peer_is_a_bug() {
        peer_script("no-such-peer.sh");
    }
}
