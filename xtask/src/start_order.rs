//! `cargo xtask start-order`: writes `crates/herald/link/start.ld`, the linker script that
//! places the code `herald serve` runs at start in one block of the release binary (the
//! binary's build script passes it to the linker; see `crates/herald/build.rs`).
//!
//! It builds the default feature set with its symbols, runs `herald serve` as the daemon
//! benchmark starts it under valgrind's callgrind until one second after `/readyz` answers,
//! and writes one section pattern per function the binary ran: the symbol's v0 name (the
//! workspace builds with `-Csymbol-mangling-version=v0`, whose names tell every generic
//! instance apart) with the crate hashes and LTO suffixes left to wildcards, so that the
//! script stays true across dependency and toolchain updates until the code itself changes.
//!
//! `check` is the size gate's part (`cargo xtask ci`): it fails when the all-families build
//! places much less code at start than the script covered when it was written, that is, when
//! the script has gone stale.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_daemon::{free_port, manifests, wait_ready};
use crate::cargo;

/// The script, relative to the workspace root.
pub(crate) const SCRIPT: &str = "crates/herald/link/start.ld";
/// The output section the script fills.
const SECTION: &str = ".text.herald_start";
/// The header line that records how many bytes of code the script covered when written.
const COVERS: &str = "covers ";
/// The share of that the all-families build must still place at start.
const STALE_BELOW: f64 = 0.8;

/// The command: build, record, write the script.
pub(crate) fn main(root: &Path) -> Result<()> {
    crate::setup::debian_programs(&[("valgrind", "valgrind"), ("nm", "binutils")])?;
    // The final crate alone is relinked with its symbols and without the current script
    // (callgrind names no function in a section it does not know): the dependencies stay
    // those of `cargo build --release`, so the names are the release build's.
    let args = [
        "rustc",
        "--release",
        "--locked",
        "-p",
        "herald",
        "--bin",
        "herald",
        "--",
        "-C",
        "strip=none",
    ];
    eprintln!("$ HERALD_NO_START_ORDER=1 cargo {}", args.join(" "));
    let status = Command::new(cargo())
        .args(args)
        .env("HERALD_NO_START_ORDER", "1")
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building herald with its symbols failed ({status})");
    }
    let binary = crate::meta::target_dir(root)?.join("release/herald");
    let binary = binary
        .canonicalize()
        .with_context(|| format!("no {}", binary.display()))?;
    let work = std::env::temp_dir().join(format!("herald-start-order-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let ran = record(&binary, &work);
    let _ = std::fs::remove_dir_all(&work);
    let sizes = symbol_sizes(&binary)?;
    let script = render(&ran?, &sizes);
    std::fs::write(root.join(SCRIPT), &script.text).with_context(|| format!("writing {SCRIPT}"))?;
    println!(
        "wrote {SCRIPT}: {} patterns, {} bytes of code run at start",
        script.patterns, script.bytes
    );
    // The binary has its symbols now; the next release build relinks it stripped.
    Ok(())
}

/// The functions of `binary` that `herald serve` runs until ready, as callgrind names them.
fn record(binary: &Path, work: &Path) -> Result<BTreeSet<String>> {
    let manifests = manifests(work, "start", free_port()?)?;
    let out = work.join("callgrind.out");
    let health = free_port()?;
    let mut child = Command::new("valgrind")
        .args(["--tool=callgrind", "--demangle=no", "--dump-instr=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(binary)
        .args(["serve", "--manifests"])
        .arg(&manifests)
        .args(["--events-addr", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--health-addr", &format!("127.0.0.1:{health}")])
        .args(["--api-addr", &format!("127.0.0.1:{}", free_port()?)])
        .arg("--data-dir")
        .arg(work.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting herald serve under valgrind")?;
    let ready = wait_ready(health, Duration::from_secs(120));
    if ready.is_ok() {
        std::thread::sleep(Duration::from_secs(1));
    }
    // A clean exit, so that callgrind writes its profile.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            bail!("herald serve under valgrind did not exit within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ready?;
    let profile = std::fs::read_to_string(&out)
        .with_context(|| format!("reading callgrind's {}", out.display()))?;
    Ok(functions_of(&profile, &binary.to_string_lossy()))
}

/// The functions callgrind's profile lists as run in `object`. Names and objects are
/// compressed: `fn=(7) name` defines id 7, a later `fn=(7)` refers to it (the same holds for
/// `cfn`, `ob` and `cob`); a `fn` line belongs to the last `ob`.
fn functions_of(profile: &str, object: &str) -> BTreeSet<String> {
    let mut objects: HashMap<&str, &str> = HashMap::new();
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut current = "";
    let mut ran = BTreeSet::new();
    for line in profile.lines() {
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        let (id, name) = match rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((id, name)) => (id, name.trim_start()),
            None => continue,
        };
        let table = match key {
            "ob" | "cob" => &mut objects,
            "fn" | "cfn" => &mut names,
            _ => continue,
        };
        if !name.is_empty() {
            table.insert(id, name);
        }
        let resolved = table.get(id).copied().unwrap_or_default();
        match key {
            "ob" => current = resolved,
            "fn" if current == object && !resolved.is_empty() => {
                ran.insert(resolved.to_owned());
            }
            _ => {}
        }
    }
    ran
}

/// Symbol sizes of `binary`'s text, from `nm`.
fn symbol_sizes(binary: &Path) -> Result<HashMap<String, u64>> {
    let out = Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(binary)
        .output()
        .context("running nm")?;
    if !out.status.success() {
        bail!(
            "nm {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_, size, "t" | "T" | "W", name] => {
                    Some((name.to_owned(), u64::from_str_radix(size, 16).ok()?))
                }
                _ => None,
            },
        )
        .collect())
}

/// A name pattern for the function named `symbol`, to be matched against its section name
/// after the section kind (`.text.` or `.text.unlikely.`, where LLVM puts functions it deems
/// cold, such as `RawVec::grow_one`, though start runs them). For a v0 name (`_R...`) every
/// crate hash (`Cs<base-62>_`) becomes `*`, and a trailing `*` takes the `.llvm.<n>` suffix
/// LTO may give a local function. A plain C name (`main`, ring's assembly) is kept as it is.
/// Legacy Rust names (`_ZN...17h<hash>E`, the precompiled standard library's own functions)
/// get none: their hash is all that tells instances apart.
fn pattern(symbol: &str) -> Option<String> {
    let name = symbol.split_once(".llvm.").map_or(symbol, |(n, _)| n);
    if !name.starts_with("_R") {
        let plain =
            !name.starts_with("_ZN") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        return plain.then(|| name.to_owned());
    }
    let mut out = String::new();
    let mut rest = name;
    while let Some(at) = rest.find("Cs") {
        let after = &rest[at + 2..];
        let hash = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphanumeric())
                .len();
        if hash > 0 && after[hash..].starts_with('_') {
            out.push_str(&rest[..at]);
            out.push_str("Cs*_");
            rest = &after[hash + 1..];
        } else {
            out.push_str(&rest[..at + 2]);
            rest = after;
        }
    }
    out.push_str(rest);
    out.push('*');
    Some(out)
}

/// The script's text, and what it covers.
struct Script {
    text: String,
    patterns: usize,
    bytes: u64,
}

/// The linker script for the functions `ran` (sizes from the same binary).
fn render(ran: &BTreeSet<String>, sizes: &HashMap<String, u64>) -> Script {
    let mut bytes = 0;
    let mut patterns = BTreeSet::new();
    for name in ran {
        if let (Some(size), Some(p)) = (sizes.get(name), pattern(name)) {
            bytes += size;
            patterns.insert(p);
        }
    }
    let mut text = format!(
        "/* Written by `cargo xtask start-order`; do not edit. The functions `herald serve` runs\n   from start until ready, placed together in the release binary (crates/herald/build.rs).\n   {COVERS}{bytes} bytes */\nSECTIONS\n{{\n  {SECTION} : {{\n"
    );
    for p in &patterns {
        text.push_str(&format!("    *(.text.{p} .text.unlikely.{p})\n"));
    }
    text.push_str("  }\n}\nINSERT BEFORE .text;\n");
    Script {
        patterns: patterns.len(),
        text,
        bytes,
    }
}

/// Fails when `binary` (an all-families release build) places less than `STALE_BELOW` of what
/// the script covered when it was written. Returns the bytes placed and the bytes covered.
pub(crate) fn check(root: &Path, binary: &Path) -> Result<(u64, u64)> {
    let script =
        std::fs::read_to_string(root.join(SCRIPT)).with_context(|| format!("reading {SCRIPT}"))?;
    let covers: u64 = script
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(COVERS)?
                .strip_suffix(" bytes */")?
                .parse()
                .ok()
        })
        .with_context(|| format!("{SCRIPT} has no `{COVERS}N bytes` line"))?;
    let elf = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let placed = section_size(&elf, SECTION)
        .with_context(|| format!("reading the sections of {}", binary.display()))?
        .unwrap_or(0);
    if (placed as f64) < covers as f64 * STALE_BELOW {
        bail!(
            "{SCRIPT} is stale: {} places {placed} bytes of code in {SECTION}, where the script covered {covers} when it was written (at least {:.0}% must still match); rewrite it with `cargo xtask start-order`",
            binary.display(),
            STALE_BELOW * 100.0
        );
    }
    Ok((placed, covers))
}

/// The size of the section `name` of a 64-bit little-endian ELF file, if it has one.
fn section_size(elf: &[u8], name: &str) -> Result<Option<u64>> {
    let u16_at = |at: usize| -> Result<u64> {
        let b = elf.get(at..at + 2).context("truncated")?;
        Ok(u64::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |at: usize| -> Result<u64> {
        let b: [u8; 4] = elf.get(at..at + 4).context("truncated")?.try_into()?;
        Ok(u64::from(u32::from_le_bytes(b)))
    };
    let u64_at = |at: usize| -> Result<u64> {
        let b: [u8; 8] = elf.get(at..at + 8).context("truncated")?.try_into()?;
        Ok(u64::from_le_bytes(b))
    };
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let (shoff, shentsize) = (u64_at(0x28)?, u16_at(0x3a)?);
    let (shnum, shstrndx) = (u16_at(0x3c)?, u16_at(0x3e)?);
    let header = |i: u64| usize::try_from(shoff + i * shentsize).context("offset");
    let strings = usize::try_from(u64_at(header(shstrndx)? + 0x18)?)?;
    for i in 0..shnum {
        let at = header(i)?;
        let start = strings + usize::try_from(u32_at(at)?)?;
        let tail = elf.get(start..).context("truncated")?;
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .context("unterminated name")?;
        if &tail[..end] == name.as_bytes() {
            return Ok(Some(u64_at(at + 0x20)?));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_leave_crate_hashes_and_lto_suffixes_open() {
        let cases = [
            (
                "_RNvCskEc8NIuuBVK_6herald4main",
                Some("_RNvCs*_6herald4main*"),
            ),
            (
                "_RINvNtCsgEmfK2I1SDS_4core3ptr13drop_in_placeNtCs4X4t9plMPHF_9addr2line5FrameEB4_",
                Some("_RINvNtCs*_4core3ptr13drop_in_placeNtCs*_9addr2line5FrameEB4_*"),
            ),
            (
                "_RNvMs_NtCs1a2B_5tokio4taskNtB4_3Foo4poll.llvm.123456",
                Some("_RNvMs_NtCs*_5tokio4taskNtB4_3Foo4poll*"),
            ),
            // "Cs" not followed by a hash and `_` is part of a name.
            ("_RNvCs1_3fooCs", Some("_RNvCs*_3fooCs*")),
            ("_RNvNtCs1_3foo4Csvx", Some("_RNvNtCs*_3foo4Csvx*")),
            ("main", Some("main")),
            (
                "ring_core_0_17_sha256_block_data_order",
                Some("ring_core_0_17_sha256_block_data_order"),
            ),
            ("foo.cold", None),
            ("_ZN4core3ptr4drop17h0123456789abcdefE", None),
        ];
        for (symbol, want) in cases {
            assert_eq!(pattern(symbol).as_deref(), want, "{symbol}");
        }
    }

    #[test]
    fn callgrind_names_are_resolved_per_object() {
        let profile = "\
version: 1
ob=(1) /bin/herald
fl=(1) ???
fn=(1) _RNvCs1_6herald4main
0 10
cob=(2) /lib/libc.so.6
cfn=(2) malloc
calls=1 0
0 5
fn=(3) _RNvCs1_6herald5start
0 1
ob=(2)
fn=(2)
0 3
ob=(1)
fn=(4) _RNvCs1_6herald4stop
fn=(1)
0 2
";
        let ran: Vec<String> = functions_of(profile, "/bin/herald").into_iter().collect();
        assert_eq!(
            ran,
            [
                "_RNvCs1_6herald4main",
                "_RNvCs1_6herald4stop",
                "_RNvCs1_6herald5start"
            ]
        );
    }

    #[test]
    fn the_script_lists_each_pattern_once_and_what_it_covers() {
        let ran: BTreeSet<String> = [
            "_RNvCs1_3foo3bar",
            "_RNvCs2_3foo3bar",
            "_RNvCs1_3foo3baz.llvm.7",
            "main",
            "_RNvCs1_3foo7missing",
        ]
        .map(str::to_owned)
        .into();
        let sizes: HashMap<String, u64> = [
            ("_RNvCs1_3foo3bar", 10),
            ("_RNvCs2_3foo3bar", 20),
            ("_RNvCs1_3foo3baz.llvm.7", 30),
            ("main", 40),
        ]
        .map(|(n, s)| (n.to_owned(), s))
        .into();
        let script = render(&ran, &sizes);
        assert_eq!(script.patterns, 3);
        assert_eq!(script.bytes, 100);
        assert!(script.text.contains("   covers 100 bytes */\n"));
        assert!(script.text.ends_with(
            "  .text.herald_start : {\n    *(.text._RNvCs*_3foo3bar* .text.unlikely._RNvCs*_3foo3bar*)\n    *(.text._RNvCs*_3foo3baz* .text.unlikely._RNvCs*_3foo3baz*)\n    *(.text.main .text.unlikely.main)\n  }\n}\nINSERT BEFORE .text;\n"
        ));
    }

    #[test]
    fn section_sizes_are_read_from_elf_headers() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let text = section_size(&exe, ".text").unwrap();
        assert!(text.is_some_and(|s| s > 0), "{text:?}");
        assert_eq!(section_size(&exe, ".no-such-section").unwrap(), None);
        assert!(section_size(b"#!/bin/sh\n", ".text").is_err());
        assert!(section_size(&exe[..64], ".text").is_err());
    }
}
