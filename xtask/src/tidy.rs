//! The workspace invariants of ARCHITECTURE.md, checked by `cargo test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::meta::{self, family_features};
use crate::root;

fn crates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    out.push(root().join("xtask"));
    out.sort();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_crate_opens_with_a_doc_paragraph() {
    for krate in crates() {
        for root_file in ["src/lib.rs", "src/main.rs"] {
            let path = krate.join(root_file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                assert!(
                    text.starts_with("//!"),
                    "{} must open with a `//!` paragraph",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn family_features_are_wired_in_one_file() {
    let families = family_features(&root()).unwrap();
    let allowed = root().join("crates/herald/src/registry.rs");
    assert!(
        allowed.exists(),
        "crates/herald/src/registry.rs is the wiring file"
    );
    let mut files = Vec::new();
    for krate in crates() {
        if krate.join("src").exists() {
            rust_files(&krate.join("src"), &mut files);
        }
    }
    for file in files {
        if file == allowed || file.starts_with(root().join("xtask")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for f in &families {
            assert!(
                !text.contains(&format!("feature = \"{f}\"")),
                "{} names the family feature {f:?}; only crates/herald/src/registry.rs may",
                file.display()
            );
        }
    }
}

/// The normal (non-dev) dependencies of a workspace crate, by name, transitively.
fn dependencies(krate: &str) -> BTreeSet<String> {
    meta::resolved(&root())
        .unwrap()
        .normal_dependencies(krate)
        .unwrap()
}

#[test]
fn herald_core_does_no_network_io() {
    let deps = dependencies("herald-core");
    for banned in [
        "hyper",
        "hyper-util",
        "tokio",
        "rustls",
        "reqwest",
        "mio",
        "socket2",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "herald-core depends on {banned}"
        );
    }
}

#[test]
fn families_never_depend_on_each_other_or_the_daemon() {
    let families = [
        "herald-webhook",
        "herald-chat",
        "herald-git",
        "herald-alerting",
        "herald-eventhub",
        "herald-nats",
        "herald-pubsub",
    ];
    for family in families {
        if !root().join("crates").join(family).exists() {
            continue;
        }
        let deps = dependencies(family);
        for other in families.iter().chain(&["herald-daemon", "herald"]) {
            if *other != family {
                assert!(
                    !deps.iter().any(|d| d == other),
                    "{family} depends on {other}"
                );
            }
        }
    }
}

/// The instructions of one stage of a Dockerfile (continuation lines joined, comments dropped).
fn docker_stage(text: &str, stage: &str) -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut in_stage = false;
    let mut out = Vec::new();
    for i in instructions {
        if i.starts_with("FROM ") {
            in_stage = i.to_lowercase().ends_with(&format!(" as {stage}"));
            continue;
        }
        if in_stage {
            out.push(i.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    out
}

/// A `RUN` instruction's `--mount=...` flags, and its commands (split at `&&`).
fn run_parts(run: &str) -> (Vec<&str>, Vec<&str>) {
    let mut rest = run;
    let mut mounts = Vec::new();
    while rest.starts_with("--mount=") {
        let end = rest.find(' ').unwrap_or(rest.len());
        mounts.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    (mounts, rest.split("&&").map(str::trim).collect())
}

/// No container engine runs in CI, so this is the check that the image is built the way release
/// tarballs are: its build stage's one cargo command is `cargo xtask dist` with the FEATURES
/// argument, nothing else compiles, the binary comes out of dist's tarball, and the cargo
/// registry and target directory are BuildKit caches (so a source change does not recompile
/// every dependency).
#[test]
fn dockerfile_builds_with_the_xtask_dist_command() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        text.starts_with("# syntax=docker/dockerfile:1\n"),
        "the Dockerfile names the BuildKit syntax its cache mounts need"
    );
    let build = docker_stage(&text, "build");
    assert!(!build.is_empty(), "the Dockerfile has no `AS build` stage");
    let runs: Vec<(Vec<&str>, Vec<&str>)> = build
        .iter()
        .filter_map(|i| i.strip_prefix("RUN "))
        .map(run_parts)
        .collect();
    let compiling: Vec<&str> = runs
        .iter()
        .flat_map(|(_, commands)| commands.iter().copied())
        .filter(|c| c.contains("cargo") || c.contains("rustc"))
        .collect();
    assert_eq!(
        compiling,
        [r#"cargo xtask dist --features "${FEATURES}""#],
        "the build stage must compile only through `cargo xtask dist`"
    );
    let (mounts, commands) = runs
        .iter()
        .find(|(_, commands)| commands.contains(&compiling[0]))
        .unwrap();
    for cached in [
        "target=/usr/local/cargo/registry",
        "target=/usr/local/cargo/git",
        "target=/src/target",
    ] {
        assert!(
            mounts
                .iter()
                .any(|m| m.starts_with("--mount=type=cache,") && m.contains(cached)),
            "the dist RUN has no cache mount {cached}: {mounts:?}"
        );
    }
    // The target directory is a cache, not a layer: the tarball is unpacked in the same RUN,
    // from where dist writes it, under dist's file name, and only this build's tarball is
    // there (the cache keeps earlier builds' otherwise).
    assert_eq!(
        commands.first(),
        Some(&"rm -rf target/dist"),
        "the dist RUN clears target/dist first: {commands:?}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("tar -xzf target/dist/herald-*.tar.gz")),
        "the dist RUN unpacks target/dist/herald-*.tar.gz: {commands:?}"
    );
    // The command's arguments are the ones `cargo xtask dist` takes.
    let known = meta::build_features(&root()).unwrap();
    let default = build
        .iter()
        .find_map(|i| i.strip_prefix("ARG FEATURES="))
        .expect("the build stage declares ARG FEATURES with a default");
    crate::dist::parse_args(&["--features".to_owned(), default.to_owned()], &known).unwrap();
    // The final stage runs as a non-root user and probes /readyz.
    assert!(
        text.contains("\nUSER 65532:65532\n"),
        "the image runs as non-root"
    );
    assert!(text.contains("HEALTHCHECK ") && text.contains("/readyz"));
    assert!(text.contains("VOLUME [\"/var/lib/herald\"]"));
}

#[test]
fn dockerfile_stages_are_read_with_continuations() {
    let text = "FROM a AS build\n# comment\nRUN one \\\n    two\nARG X=1\nFROM b\nRUN three\n";
    assert_eq!(docker_stage(text, "build"), ["RUN one two", "ARG X=1"]);
    assert!(docker_stage(text, "other").is_empty());
    let (mounts, commands) =
        run_parts("--mount=type=cache,target=/a --mount=type=cache,target=/b make x && tar y");
    assert_eq!(
        mounts,
        [
            "--mount=type=cache,target=/a",
            "--mount=type=cache,target=/b"
        ]
    );
    assert_eq!(commands, ["make x", "tar y"]);
}
