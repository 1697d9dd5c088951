//! Links the code `herald serve` runs at start into one block of the release binary.
//!
//! `link/start.ld` (written by `cargo xtask start-order`) lists, by symbol name with the crate
//! hashes left out, the functions a daemon runs from start until it is ready. Fat LTO scatters
//! them over the whole text; each first call then faults in a 64 KiB block of the file, and an
//! idle daemon kept about 6 MiB of its binary resident for some 1.3 MB of code. Placed
//! together, they fill about twenty blocks. The script only places sections (`INSERT BEFORE
//! .text`), so a name it no longer finds costs nothing but its locality.
//!
//! Only release builds on Linux with the default linker get it: debug builds are not measured,
//! and a linker set by the user (`target.<triple>.linker`) may not take linker scripts.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/start.ld");
    println!("cargo:rerun-if-env-changed=HERALD_NO_START_ORDER");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let wanted = env("CARGO_CFG_TARGET_OS") == "linux"
        && env("PROFILE") == "release"
        && std::env::var_os("RUSTC_LINKER").is_none()
        && std::env::var_os("HERALD_NO_START_ORDER").is_none();
    let script = Path::new(&env("CARGO_MANIFEST_DIR")).join("link/start.ld");
    // `cargo xtask start-order` writes the script; until then the build goes without it.
    if wanted && script.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=herald=-Wl,-T,{}",
            script.display()
        );
    }
}
