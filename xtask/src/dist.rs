//! `cargo xtask dist` and `cargo xtask sizes`: release builds per feature set, their tarballs,
//! and the size table of docs/benchmarks.md that CI holds them to.
//!
//! `dist --features LIST` builds the `herald` binary with `--no-default-features` and only the
//! families listed (generic webhooks are always in), with the workspace's `release` profile, and
//! packs `target/dist/herald-<version>-<set>-<target>.tar.gz` with the binary, LICENSE, a README
//! naming the compiled families, the shell completions and the man pages (generated from clap and
//! kept in `docs/cli/`, see `cargo xtask docs`). Every feature set is built in the one target
//! directory, one after the other, so the dependencies they share are compiled once.
//!
//! The size table lives between two marker comments in docs/benchmarks.md; this module is the
//! only code that reads or writes it. It does not run or benchmark the binary. `cargo xtask ci`
//! holds only the generic-only and all-families builds to it (two fat-LTO builds); `cargo xtask
//! sizes` builds every set of the table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::meta::{build_features, family_features, host_triple, target_dir, workspace_version};
use crate::{cargo, run};

/// Where the size table starts and ends in docs/benchmarks.md.
pub(crate) const TABLE_BEGIN: &str = "<!-- dist-sizes:begin";
pub(crate) const TABLE_END: &str = "<!-- dist-sizes:end -->";
const BENCHMARKS: &str = "docs/benchmarks.md";

/// A size may grow by this fraction over the table before CI fails.
pub(crate) const ALLOWED_GROWTH: f64 = 0.10;

/// The generated files that go into every tarball (from `docs/cli/`).
const CLI_DOCS: &str = "docs/cli";

/// A set of the binary's features to build (families and optional parts such as
/// `templates`): empty means generic webhooks only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeatureSet {
    pub(crate) features: Vec<String>,
}

impl FeatureSet {
    /// Parses `--features` as users write it (`chat,git`, or `` / `generic` for none), checking
    /// each name against the binary's features and putting them in Cargo.toml's order.
    pub(crate) fn parse(list: &str, known: &[String]) -> Result<FeatureSet> {
        let mut wanted = Vec::new();
        for name in list.split([',', ' ']).map(str::trim) {
            if name.is_empty() || name == "generic" {
                continue;
            }
            if name == "all" {
                wanted.extend(known.iter().cloned());
                continue;
            }
            if !known.iter().any(|k| k == name) {
                bail!(
                    "unknown feature {name:?}: herald's features are {} (generic webhooks are always built in)",
                    known.join(", ")
                );
            }
            wanted.push(name.to_owned());
        }
        let features = known
            .iter()
            .filter(|k| wanted.contains(k))
            .cloned()
            .collect();
        Ok(FeatureSet { features })
    }

    /// The set's name in file names and in the size table: `generic`, `all`, or the families
    /// joined by `-` (`chat-git`).
    pub(crate) fn name(&self, known: &[String]) -> String {
        if self.features.is_empty() {
            "generic".to_owned()
        } else if self.features.len() == known.len() {
            "all".to_owned()
        } else {
            self.features.join("-")
        }
    }

    /// The cargo arguments that select exactly this set.
    pub(crate) fn cargo_args(&self) -> Vec<String> {
        let mut args = vec!["--no-default-features".to_owned()];
        if !self.features.is_empty() {
            args.push("--features".to_owned());
            args.push(self.features.join(","));
        }
        args
    }
}

/// The sets the size table holds: generic only, each family alone, all families, and all but
/// the last family (`eventhub`, whose AMQP stack is the largest).
pub(crate) fn table_sets(known: &[String]) -> Vec<FeatureSet> {
    let mut sets = vec![FeatureSet { features: vec![] }];
    for f in known {
        sets.push(FeatureSet {
            features: vec![f.clone()],
        });
    }
    sets.push(FeatureSet {
        features: known.to_vec(),
    });
    let without_eventhub: Vec<String> = known
        .iter()
        .filter(|f| f.as_str() != "eventhub")
        .cloned()
        .collect();
    if without_eventhub.len() > 1 && without_eventhub.len() < known.len() {
        sets.push(FeatureSet {
            features: without_eventhub,
        });
    }
    sets
}

/// The sets `cargo xtask ci` builds: generic webhooks alone (the slimmest image) and every
/// family (the largest), the two ends of the table.
pub(crate) fn gate_sets(known: &[String]) -> Vec<FeatureSet> {
    vec![
        FeatureSet { features: vec![] },
        FeatureSet {
            features: known.to_vec(),
        },
    ]
}

/// What one dist build produced.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) set: String,
    pub(crate) bytes: u64,
    pub(crate) tarball: PathBuf,
    /// The binary in the tarball's folder.
    pub(crate) binary: PathBuf,
    pub(crate) took: Duration,
}

/// The command line of `cargo xtask dist`.
pub(crate) fn main(root: &Path, args: &[String]) -> Result<()> {
    let known = build_features(root)?;
    let set = parse_args(args, &known)?;
    let built = build(root, &set, &known)?;
    report(&built);
    Ok(())
}

/// `[--features LIST]` (or `--features=LIST`); without it, every family, as `cargo build` does.
pub(crate) fn parse_args(args: &[String], known: &[String]) -> Result<FeatureSet> {
    let mut features = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--features" => {
                features = Some(
                    it.next()
                        .context("--features needs a list (chat,git,... or generic)")?
                        .clone(),
                )
            }
            other => match other.strip_prefix("--features=") {
                Some(list) => features = Some(list.to_owned()),
                None => {
                    bail!("unknown argument {other:?}; usage: cargo xtask dist [--features LIST]")
                }
            },
        }
    }
    FeatureSet::parse(features.as_deref().unwrap_or("all"), known)
}

fn report(built: &Built) {
    println!(
        "herald ({}): {} bytes = {:.2} MiB stripped, built in {:.0} s\n  {}",
        built.set,
        thousands(built.bytes),
        mib(built.bytes),
        built.took.as_secs_f64(),
        built.tarball.display()
    );
}

/// Builds one feature set and packs its tarball.
pub(crate) fn build(root: &Path, set: &FeatureSet, known: &[String]) -> Result<Built> {
    let name = set.name(known);
    let started = Instant::now();
    let mut args: Vec<String> = [
        "build",
        "--release",
        "--locked",
        "-p",
        "herald",
        "--bin",
        "herald",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(set.cargo_args());
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&cargo(), &args_ref)?;
    let took = started.elapsed();

    let target_dir = target_dir(root)?;
    let binary = target_dir.join("release/herald");
    let version = workspace_version(root)?;
    let triple = host_triple()?;
    let stem = format!("herald-{version}-{name}-{triple}");
    let dist = target_dir.join("dist");
    let stage = dist.join(&stem);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("removing the old {}", stage.display()))?;
    }
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let staged_binary = stage.join("herald");
    std::fs::copy(&binary, &staged_binary)
        .with_context(|| format!("copying {} into {}", binary.display(), stage.display()))?;
    std::fs::copy(root.join("LICENSE"), stage.join("LICENSE")).context("copying LICENSE")?;
    let version_text = binary_version(&staged_binary)?;
    std::fs::write(
        stage.join("README.md"),
        readme(&version_text, set, &family_features(root)?, &triple, &args),
    )
    .context("writing the tarball's README.md")?;
    for sub in ["completions", "man"] {
        copy_dir(&root.join(CLI_DOCS).join(sub), &stage.join(sub))?;
    }
    let tarball = dist.join(format!("{stem}.tar.gz"));
    // Owner and order fixed, so the same binary gives the same archive listing anywhere.
    run(
        "tar",
        &[
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-czf",
            &tarball.to_string_lossy(),
            "-C",
            &dist.to_string_lossy(),
            &stem,
        ],
    )?;
    let bytes = std::fs::metadata(&staged_binary)
        .with_context(|| format!("no {}", staged_binary.display()))?
        .len();
    Ok(Built {
        set: name,
        bytes,
        tarball,
        binary: staged_binary,
        took,
    })
}

/// The tarball's README: what was compiled in, how, and what else is in the archive.
fn readme(
    version_text: &str,
    set: &FeatureSet,
    families_of: &[String],
    triple: &str,
    cargo_args: &[String],
) -> String {
    let mut families =
        vec!["generic webhooks (`generic`, `generic-hmac`; always built in)".to_owned()];
    families.extend(
        set.features
            .iter()
            .filter(|f| families_of.contains(f))
            .map(|f| format!("`{f}`")),
    );
    let missing: Vec<String> = families_of
        .iter()
        .filter(|k| !set.features.contains(k))
        .map(|k| format!("`{k}`"))
        .collect();
    let missing = if missing.is_empty() {
        "none".to_owned()
    } else {
        format!(
            "{} (a Provider of a type from these families is rejected at load, naming the feature to build with)",
            missing.join(", ")
        )
    };
    let templates = if set.features.iter().any(|f| f == "templates") {
        "built in (`templates`)"
    } else {
        "not built in (a templated Provider or Alert is not ready, naming the feature `templates`)"
    };
    let patterns = if set.features.iter().any(|f| f == "unicode-regex") {
        "Go's RE2 syntax with Unicode classes and case folding (`unicode-regex`)"
    } else {
        "Go's RE2 syntax, ASCII only (a pattern with a Unicode class, or `(?i)` on a non-ASCII letter, makes its Alert not ready, naming the feature `unicode-regex`)"
    };
    format!(
        "# herald\n\n\
         A notifier for Flux events: it reads Flux's Provider, Alert and Secret manifests, \
         receives the events Flux controllers post and delivers them to the providers.\n\n\
         `herald --version` of this binary:\n\n```\n{version}\n```\n\n\
         - Provider families compiled in: {families}.\n\
         - Families not compiled in: {missing}.\n\
         - Message templates: {templates}.\n\
         - Alert inclusion and exclusion patterns: {patterns}.\n\
         - Target: `{triple}`.\n\
         - Built with `cargo {cargo}` (the workspace's `release` profile: fat LTO, one codegen \
         unit, stripped, `opt-level = \"s\"` with the per-event hot path at 3 and the code off it \
         (start-up, commands, YAML, TLS) at `\"z\"`, and panic = unwind \
         so that a panicking delivery task cannot take accepted events down with the daemon).\n\n\
         ## Contents\n\n\
         - `herald`: the binary (`herald --help`, `herald serve --help`).\n\
         - `LICENSE`: Apache License 2.0.\n\
         - `completions/`: bash (`herald.bash`), zsh (`_herald`) and fish (`herald.fish`) completions.\n\
         - `man/`: man pages (`man -l man/herald-serve.1`).\n\n\
         The operator documentation (configuration reference, migrating from Flux's \
         notification-controller, troubleshooting) is in the `docs/` folder of the source \
         repository.\n",
        version = version_text.trim_end(),
        families = families.join(", "),
        cargo = cargo_args.join(" "),
    )
}

/// `herald --version` of the built binary (the families it really has).
fn binary_version(binary: &Path) -> Result<String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{} --version failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let entries = std::fs::read_dir(from).with_context(|| {
        format!(
            "reading {} (generated by `cargo xtask docs`)",
            from.display()
        )
    })?;
    let mut copied = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            let file = path.file_name().context("a file without a name")?;
            std::fs::copy(&path, to.join(file))
                .with_context(|| format!("copying {}", path.display()))?;
            copied += 1;
        }
    }
    if copied == 0 {
        bail!(
            "{} is empty; run `cargo xtask docs` to generate it",
            from.display()
        );
    }
    Ok(())
}

/// One row of the size table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) set: String,
    pub(crate) bytes: u64,
}

/// The rows between the markers of docs/benchmarks.md.
pub(crate) fn parse_table(text: &str) -> Result<Vec<Row>> {
    let start = text
        .find(TABLE_BEGIN)
        .with_context(|| format!("{BENCHMARKS} has no `{TABLE_BEGIN}` marker"))?;
    let end = text[start..]
        .find(TABLE_END)
        .map(|e| start + e)
        .with_context(|| format!("{BENCHMARKS} has no `{TABLE_END}` marker after the first"))?;
    let mut rows = Vec::new();
    for (i, line) in text[start..end].lines().enumerate() {
        let line = line.trim();
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if !line.starts_with('|') || cells.len() < 2 || cells[0].starts_with("---") {
            continue;
        }
        let set = cells[0].trim_matches('`');
        if set == "Feature set" {
            continue;
        }
        let digits: String = cells[1]
            .trim_end_matches("bytes")
            .trim()
            .chars()
            .filter(|c| *c != ',')
            .collect();
        let bytes = digits.parse().with_context(|| {
            format!(
                "{BENCHMARKS}, size table line {}: {:?} is not a byte count",
                i + 1,
                cells[1]
            )
        })?;
        rows.push(Row {
            set: set.to_owned(),
            bytes,
        });
    }
    if rows.is_empty() {
        bail!("the size table of {BENCHMARKS} has no rows");
    }
    Ok(rows)
}

/// The table as written into docs/benchmarks.md, markers included.
pub(crate) fn render_table(rows: &[(FeatureSet, u64)], known: &[String]) -> String {
    let mut out = format!(
        "{TABLE_BEGIN} written by `cargo xtask sizes --update`; `cargo xtask ci` fails when a build grows more than {:.0}% over its row -->\n\
         | Feature set | Stripped size | MiB | Build |\n|---|---|---|---|\n",
        ALLOWED_GROWTH * 100.0
    );
    for (set, bytes) in rows {
        out.push_str(&format!(
            "| `{}` | {} bytes | {:.2} MiB | `{}` |\n",
            set.name(known),
            thousands(*bytes),
            mib(*bytes),
            set.cargo_args().join(" ")
        ));
    }
    out.push_str(TABLE_END);
    out
}

/// Replaces the table between the markers (markers included) with `table`.
pub(crate) fn replace_table(text: &str, table: &str) -> Result<String> {
    let start = text
        .find(TABLE_BEGIN)
        .with_context(|| format!("{BENCHMARKS} has no `{TABLE_BEGIN}` marker"))?;
    let end = text[start..]
        .find(TABLE_END)
        .map(|e| start + e + TABLE_END.len())
        .with_context(|| format!("{BENCHMARKS} has no `{TABLE_END}` marker"))?;
    Ok(format!("{}{table}{}", &text[..start], &text[end..]))
}

/// Compares built sizes with the table: the problems, one line each (empty when all is well).
/// With `complete`, every row of the table must have been built too.
pub(crate) fn regressions(table: &[Row], built: &[(String, u64)], complete: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (set, bytes) in built {
        match table.iter().find(|r| &r.set == set) {
            None => problems.push(format!(
                "`{set}` has no row in the size table of {BENCHMARKS}"
            )),
            Some(row) => {
                let limit = row.bytes as f64 * (1.0 + ALLOWED_GROWTH);
                if *bytes as f64 > limit {
                    problems.push(format!(
                        "`{set}` is {} bytes ({:.2} MiB), {:+.1}% over the table's {} bytes (at most {:.0}% is allowed)",
                        thousands(*bytes),
                        mib(*bytes),
                        (*bytes as f64 / row.bytes as f64 - 1.0) * 100.0,
                        thousands(row.bytes),
                        ALLOWED_GROWTH * 100.0
                    ));
                }
            }
        }
    }
    for row in table.iter().filter(|_| complete) {
        if !built.iter().any(|(set, _)| *set == row.set) {
            problems.push(format!(
                "the size table of {BENCHMARKS} has a row `{}` that is no feature set built",
                row.set
            ));
        }
    }
    problems
}

/// Which sets to build, and what to do with their sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sizes {
    /// `cargo xtask ci`: the [`gate_sets`], checked against their rows.
    Gate,
    /// `cargo xtask sizes`: every set of the table, checked against it.
    All,
    /// `cargo xtask sizes --update`: every set, written into the table.
    Update,
}

/// Builds the sets through `build`, then checks each size against the table or rewrites the
/// table.
pub(crate) fn sizes(root: &Path, which: Sizes) -> Result<()> {
    let update = which == Sizes::Update;
    let known = build_features(root)?;
    let path = root.join(BENCHMARKS);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {BENCHMARKS}"))?;
    // Read the table first: a broken table fails before the builds, not after them.
    let table = if update {
        replace_table(&text, "")?;
        Vec::new()
    } else {
        parse_table(&text)?
    };
    let started = Instant::now();
    let mut built = Vec::new();
    let sets = match which {
        Sizes::Gate => gate_sets(&known),
        Sizes::All | Sizes::Update => table_sets(&known),
    };
    for set in sets {
        let b = build(root, &set, &known)?;
        report(&b);
        built.push((set, b));
    }
    println!(
        "\n== dist builds: {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    for (_, b) in &built {
        println!(
            "   {:<22} {:>12} bytes  {:>6.2} MiB  built in {:>4.0} s",
            b.set,
            thousands(b.bytes),
            mib(b.bytes),
            b.took.as_secs_f64()
        );
    }
    if update {
        let rows: Vec<(FeatureSet, u64)> =
            built.iter().map(|(s, b)| (s.clone(), b.bytes)).collect();
        let new = replace_table(&text, &render_table(&rows, &known))?;
        std::fs::write(&path, new).with_context(|| format!("writing {BENCHMARKS}"))?;
        println!("wrote the size table of {BENCHMARKS}");
        return Ok(());
    }
    let sizes: Vec<(String, u64)> = built
        .iter()
        .map(|(_, b)| (b.set.clone(), b.bytes))
        .collect();
    let problems = regressions(&table, &sizes, which == Sizes::All);
    if let Some((_, all)) = built.iter().find(|(s, _)| s.features.len() == known.len()) {
        let (placed, covers) = crate::start_order::check(root, &all.binary)?;
        println!(
            "start-up code placed together in the {} build: {} bytes ({} when {} was written)",
            all.set,
            thousands(placed),
            thousands(covers),
            crate::start_order::SCRIPT
        );
    }
    if !problems.is_empty() {
        bail!(
            "binary sizes against {BENCHMARKS}:\n  {}\n(if the growth is deliberate: `cargo xtask sizes --update`, and say why in the commit)",
            problems.join("\n  ")
        );
    }
    println!(
        "every size built is within {:.0}% of {BENCHMARKS}{}",
        ALLOWED_GROWTH * 100.0,
        if which == Sizes::Gate {
            " (the other sets: `cargo xtask sizes`)"
        } else {
            ""
        }
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

/// 5051904 as `5,051,904`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["chat", "git", "alerting", "eventhub"]
            .map(str::to_owned)
            .to_vec()
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn feature_lists_are_checked_and_ordered() {
        let k = known();
        let set = parse_args(&args("--features git,chat"), &k).unwrap();
        assert_eq!(set.features, ["chat", "git"]);
        assert_eq!(set.name(&k), "chat-git");
        assert_eq!(
            set.cargo_args(),
            ["--no-default-features", "--features", "chat,git"]
        );
        let generic = parse_args(&args("--features="), &k).unwrap();
        assert_eq!(generic.name(&k), "generic");
        assert_eq!(generic.cargo_args(), ["--no-default-features"]);
        assert_eq!(
            parse_args(&args("--features generic"), &k).unwrap(),
            generic
        );
        assert_eq!(parse_args(&[], &k).unwrap().name(&k), "all");
        assert_eq!(parse_args(&args("--features all"), &k).unwrap().features, k);
        let err = parse_args(&args("--features chat,slack"), &k).unwrap_err();
        assert!(
            err.to_string().contains("unknown feature \"slack\""),
            "{err}"
        );
        assert!(parse_args(&args("--release"), &k).is_err());
        assert!(parse_args(&args("--features"), &k).is_err());
    }

    #[test]
    fn the_table_has_generic_each_family_all_and_all_but_eventhub() {
        let k = known();
        let names: Vec<String> = table_sets(&k).iter().map(|s| s.name(&k)).collect();
        assert_eq!(
            names,
            [
                "generic",
                "chat",
                "git",
                "alerting",
                "eventhub",
                "all",
                "chat-git-alerting"
            ]
        );
    }

    #[test]
    fn tables_round_trip_and_regressions_are_caught() {
        let k = known();
        let rows: Vec<(FeatureSet, u64)> = table_sets(&k)
            .into_iter()
            .zip([
                5_051_904, 5_500_000, 5_300_000, 5_400_000, 6_500_000, 7_554_552, 6_077_224,
            ])
            .collect();
        let doc = format!("# Sizes\n\ntext\n\n{TABLE_BEGIN} -->\nold\n{TABLE_END}\n\nafter\n");
        let doc = replace_table(&doc, &render_table(&rows, &k)).unwrap();
        assert!(doc.starts_with("# Sizes\n\ntext\n\n<!-- dist-sizes:begin"));
        assert!(doc.ends_with(&format!("{TABLE_END}\n\nafter\n")));
        assert!(
            doc.contains("| `generic` | 5,051,904 bytes | 4.82 MiB | `--no-default-features` |")
        );
        let table = parse_table(&doc).unwrap();
        assert_eq!(table.len(), 7);
        assert_eq!(
            table[0],
            Row {
                set: "generic".to_owned(),
                bytes: 5_051_904
            }
        );

        let built = |generic: u64| -> Vec<(String, u64)> {
            table
                .iter()
                .map(|r| {
                    (
                        r.set.clone(),
                        if r.set == "generic" { generic } else { r.bytes },
                    )
                })
                .collect()
        };
        // 10% is allowed; one byte more is not.
        assert!(regressions(&table, &built(5_557_094), true).is_empty());
        let problems = regressions(&table, &built(5_557_095), true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("`generic` is 5,557,095 bytes"),
            "{problems:?}"
        );
        // Smaller is fine.
        assert!(regressions(&table, &built(4_000_000), true).is_empty());
        // A set without a row, and a row without a set, are both problems.
        let mut extra = built(5_051_904);
        extra.push(("chat-git".to_owned(), 1));
        extra.retain(|(s, _)| s != "all");
        let problems = regressions(&table, &extra, true);
        assert_eq!(problems.len(), 2, "{problems:?}");
        // The gate builds two sets: the rows it did not build are no problem, a growth is.
        let gate: Vec<(String, u64)> = vec![
            ("generic".to_owned(), 5_557_095),
            ("all".to_owned(), 7_554_552),
        ];
        let problems = regressions(&table, &gate, false);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("`generic` is"), "{problems:?}");
    }

    #[test]
    fn broken_tables_are_errors() {
        assert!(parse_table("no markers").is_err());
        let no_rows =
            format!("{TABLE_BEGIN} -->\n| Feature set | Stripped size |\n|---|---|\n{TABLE_END}");
        assert!(parse_table(&no_rows).is_err());
        let bad = format!("{TABLE_BEGIN} -->\n| `generic` | five MiB |\n{TABLE_END}");
        let err = parse_table(&bad).unwrap_err().to_string();
        assert!(err.contains("is not a byte count"), "{err}");
    }

    #[test]
    fn the_gate_builds_the_two_ends_of_the_table() {
        let k = known();
        let names: Vec<String> = gate_sets(&k).iter().map(|s| s.name(&k)).collect();
        assert_eq!(names, ["generic", "all"]);
        let table: Vec<String> = table_sets(&k).iter().map(|s| s.name(&k)).collect();
        assert!(names.iter().all(|n| table.contains(n)));
    }

    /// The table CI holds builds to is there, and holds exactly the sets `sizes` builds.
    #[test]
    fn the_benchmarks_table_holds_every_set() {
        let root = crate::root();
        let k = build_features(&root).unwrap();
        let text = std::fs::read_to_string(root.join(BENCHMARKS)).unwrap();
        let table = parse_table(&text).unwrap();
        let mut rows: Vec<String> = table.iter().map(|r| r.set.clone()).collect();
        let mut sets: Vec<String> = table_sets(&k).iter().map(|s| s.name(&k)).collect();
        rows.sort();
        sets.sort();
        assert_eq!(rows, sets, "run `cargo xtask sizes --update`");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(7_554_552), "7,554,552");
    }
}
