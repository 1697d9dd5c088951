//! The NATS peer works before any herald code uses it: `peers/selftest.sh nats` end to end (one
//! server with JetStream and a restart, user/password and nkey auth, operator-JWT `.creds`
//! auth, and a 3-server cluster that keeps acking an R3 stream through `kill -9` of a server).

// A test: a panic is a failure with a location.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use herald_testkit::{in_ci, peer_command, peer_script};

#[test]
fn the_nats_peer_passes_its_selftest() {
    let state = std::env::temp_dir().join(format!("herald-nats-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let install = peer_command("nats.sh", &state)
        .arg("install")
        .output()
        .unwrap();
    if install.status.code() == Some(3) {
        let why = String::from_utf8_lossy(&install.stderr);
        assert!(
            !in_ci(),
            "the NATS peer could not be installed, and under CI=true that fails:\n{why}"
        );
        eprintln!(
            "SKIPPED the_nats_peer_passes_its_selftest: nats.sh could not be installed:\n{why}"
        );
        return;
    }
    assert!(
        install.status.success(),
        "nats.sh install failed:\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let out = std::process::Command::new("bash")
        .arg(peer_script("selftest.sh"))
        .arg("nats")
        .env("HERALD_PEERS_STATE", &state)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&state);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "selftest.sh nats:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every check ran: 4 instances (single, auth, creds, cluster) of at least 7 checks each.
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= 40, "only {passed} checks passed:\n{stdout}");
}
