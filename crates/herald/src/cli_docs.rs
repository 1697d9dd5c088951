//! Everything generated from the clap command line, checked here and regenerated with
//! `cargo xtask docs` (which runs these tests with `UPDATE_GOLDEN=1`):
//!
//! - the flag reference in docs/configuration.md (between marker comments), which lists every
//!   flag and environment variable of every subcommand;
//! - shell completions (`docs/cli/completions/`) and man pages (`docs/cli/man/`), which
//!   `cargo xtask dist` packs into the tarball.
//!
//! It also checks the deployment files under `deploy/` and the Dockerfile: every YAML document
//! parses, and every `--flag` and `HERALD_*` variable they give herald exists in this CLI.
//! Nothing here is compiled into the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Command;
use herald_testkit::assert_golden;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

/// The built command (globals propagated, help subcommand off), as the generators see it.
fn built() -> Command {
    let mut cmd = crate::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

// ---------------------------------------------------------------------------------------------
// The flag reference.

const REFERENCE: &str = "docs/configuration.md";
const BEGIN: &str = "<!-- cli-reference:begin (generated from the command line by `cargo xtask docs`; do not edit) -->";
const END: &str = "<!-- cli-reference:end -->";

/// One table cell: on one line, with `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The flags of `cmd` that are its own (no globals, no help/version), as table rows.
/// Table rows of `cmd`'s flags: with `globals`, only its global ones; otherwise every flag but
/// those in `skip` (the top level's global flags, listed once in their own table). A
/// subcommand's own global flags (those of `herald outbox`) are listed with every subcommand
/// they apply to.
fn rows(cmd: &Command, globals: bool, skip: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let listed = if globals {
            arg.is_global_set()
        } else {
            !skip.iter().any(|s| s == id)
        };
        if arg.is_hide_set() || id == "help" || id == "version" || !listed {
            continue;
        }
        let value = arg
            .get_value_names()
            .map(|names| {
                names
                    .iter()
                    .map(|n| format!("<{n}>"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|_| arg.get_action().takes_values())
            .or_else(|| {
                arg.get_action()
                    .takes_values()
                    .then(|| format!("<{}>", id.to_uppercase()))
            });
        let name = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => String::new(),
        };
        let usage = match (name.is_empty(), value) {
            (true, Some(v)) => v,
            (true, None) => id.to_owned(),
            (false, Some(v)) => format!("{name} {v}"),
            (false, None) => name,
        };
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() {
            String::new()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let mut meaning = arg
            .get_long_help()
            .or(arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        // clap drops a help text's final period; put it back so that sentences can follow.
        if !meaning.is_empty() && !meaning.ends_with('.') {
            meaning.push('.');
        }
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        if !possible.is_empty() && arg.get_action().takes_values() {
            meaning.push_str(&format!(" One of {}.", possible.join(", ")));
        }
        if arg.is_required_set() {
            meaning.push_str(" Required.");
        }
        out.push(format!(
            "| `{}` | {} | {} | {} |",
            cell(&usage),
            env,
            default,
            cell(&meaning)
        ));
    }
    out
}

fn table(rows: &[String]) -> String {
    let mut out =
        String::from("| Flag | Environment variable | Default | Meaning |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(row);
        out.push('\n');
    }
    out
}

/// Every subcommand, depth first, with its full name (`herald outbox list`).
fn subcommands(cmd: &Command, prefix: &str, out: &mut Vec<(String, Command)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix} {}", sub.get_name());
        out.push((name.clone(), sub.clone()));
        subcommands(sub, &name, out);
    }
}

/// The generated part of docs/configuration.md, markers included.
fn reference() -> String {
    let cmd = built();
    let mut out = format!("{BEGIN}\n\n");
    out.push_str("### Global flags (every subcommand)\n\n");
    out.push_str(&table(&rows(&cmd, true, &[])));
    let top_globals: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().as_str().to_owned())
        .collect();
    let mut subs = Vec::new();
    subcommands(&cmd, "herald", &mut subs);
    for (name, sub) in subs {
        out.push_str(&format!("\n### `{name}`\n\n"));
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            let about = cell(&about.to_string());
            out.push_str(&about);
            out.push_str(if about.ends_with('.') {
                "\n\n"
            } else {
                ".\n\n"
            });
        }
        let own = rows(&sub, false, &top_globals);
        if own.is_empty() {
            out.push_str("No flags of its own.\n");
        } else {
            out.push_str(&table(&own));
        }
    }
    out.push('\n');
    out.push_str(END);
    out
}

/// Every `--long` flag of every (sub)command, with the commands that have it.
fn every_flag() -> BTreeMap<String, Vec<String>> {
    let cmd = built();
    let mut all = vec![("herald".to_owned(), cmd.clone())];
    subcommands(&cmd, "herald", &mut all);
    let mut flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, c) in &all {
        for arg in c.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                flags
                    .entry(format!("--{long}"))
                    .or_default()
                    .push(name.clone());
            }
        }
    }
    flags
}

#[test]
fn cli_docs_configuration_reference_is_current() {
    let path = repo().join(REFERENCE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("{REFERENCE} lacks the markers `{BEGIN}` and `{END}`");
    };
    assert!(start < end, "{REFERENCE}: the end marker comes first");
    let current = &text[start..end + END.len()];
    let generated = reference();
    if updating() {
        let new = format!("{}{generated}{}", &text[..start], &text[end + END.len()..]);
        std::fs::write(&path, new).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    assert!(
        current == generated,
        "the flag reference in {REFERENCE} is out of date with the command line: run `cargo xtask docs` and commit the result"
    );
}

/// Independent of the generator: every flag of every subcommand is named in the reference.
#[test]
fn cli_docs_configuration_reference_lists_every_flag() {
    let text = std::fs::read_to_string(repo().join(REFERENCE)).unwrap_or_default();
    for (flag, commands) in every_flag() {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        assert!(
            text.contains(&format!("`{flag}")),
            "{REFERENCE} does not list {flag} (of {}); run `cargo xtask docs`",
            commands.join(", ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Completions and man pages.

const CLI_DIR: &str = "docs/cli";

/// Checks (or, when updating, writes) every file of `dir` against `files`; a file in `dir` that
/// is no longer generated is an error (or is removed).
fn assert_dir(dir: &Path, files: &BTreeMap<String, String>) {
    for (name, content) in files {
        assert_golden(&dir.join(name), content);
    }
    let present: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for name in present {
        if !files.contains_key(&name) {
            let path = dir.join(&name);
            if updating() {
                std::fs::remove_file(&path)
                    .unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
            } else {
                panic!(
                    "{} is no longer generated: run `cargo xtask docs` (it removes it)",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn cli_docs_completions_are_current() {
    use clap_complete::Shell;
    let mut files = BTreeMap::new();
    for (shell, file) in [
        (Shell::Bash, "herald.bash"),
        (Shell::Zsh, "_herald"),
        (Shell::Fish, "herald.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut crate::command(), "herald", &mut buf);
        let text = String::from_utf8(buf).unwrap_or_else(|e| panic!("{shell} completion: {e}"));
        assert!(
            text.contains("serve") && text.contains("events-addr"),
            "the {shell} completion misses subcommands or flags"
        );
        files.insert(file.to_owned(), text);
    }
    assert_dir(&repo().join(CLI_DIR).join("completions"), &files);
}

#[test]
fn cli_docs_man_pages_are_current() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    clap_mangen::generate_to(crate::command(), dir.path())
        .unwrap_or_else(|e| panic!("generating man pages: {e}"));
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        files.insert(name, text);
    }
    assert!(
        files.contains_key("herald.1") && files.contains_key("herald-serve.1"),
        "man pages: {:?}",
        files.keys()
    );
    assert_dir(&repo().join(CLI_DIR).join("man"), &files);
}

// ---------------------------------------------------------------------------------------------
// Deployment files.

/// Checks one herald command line (`serve --flag=value ...`, without the program): its first
/// word is a subcommand, and every `--flag` is one of that subcommand's or a global one.
fn check_command_line(words: &[String], place: &str) -> Vec<String> {
    let cmd = built();
    let mut problems = Vec::new();
    let Some(sub_name) = words.iter().find(|w| !w.starts_with('-')) else {
        return vec![format!("{place}: no herald subcommand in {words:?}")];
    };
    let Some(sub) = cmd.find_subcommand(sub_name) else {
        return vec![format!("{place}: `{sub_name}` is no herald subcommand")];
    };
    for word in words.iter().filter(|w| w.starts_with("--")) {
        let flag = word.split('=').next().unwrap_or(word);
        let known = sub
            .get_arguments()
            .chain(cmd.get_arguments())
            .any(|a| a.get_long().is_some_and(|l| format!("--{l}") == flag));
        if !known {
            problems.push(format!("{place}: `herald {sub_name}` has no flag {flag}"));
        }
    }
    problems
}

/// Every `HERALD_*` environment variable herald reads.
fn env_vars() -> Vec<String> {
    let cmd = built();
    let mut all = vec![("herald".to_owned(), cmd.clone())];
    subcommands(&cmd, "herald", &mut all);
    all.iter()
        .flat_map(|(_, c)| c.get_arguments())
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
    {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The herald containers of a YAML document: mappings with an `image` naming herald.
fn herald_containers<'a>(value: &'a serde_yaml_ng::Value, out: &mut Vec<&'a serde_yaml_ng::Value>) {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) => {
            let image = map.get("image").and_then(Value::as_str).unwrap_or_default();
            if image.contains("herald") {
                out.push(value);
            }
            for v in map.values() {
                herald_containers(v, out);
            }
        }
        Value::Sequence(seq) => seq.iter().for_each(|v| herald_containers(v, out)),
        Value::Tagged(tagged) => herald_containers(&tagged.value, out),
        _ => {}
    }
}

fn strings(value: Option<&serde_yaml_ng::Value>) -> Vec<String> {
    value
        .and_then(serde_yaml_ng::Value::as_sequence)
        .map(|seq| {
            seq.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn deploy_yaml_parses_and_names_only_real_flags() {
    use serde::Deserialize as _;
    let mut files = Vec::new();
    files_under(&repo().join("deploy"), &mut files);
    let env = env_vars();
    let mut problems = Vec::new();
    let mut yaml_files = 0;
    // The Flux manifests that ConfigMaps and Secrets carry, as the pod would see them.
    let mounted = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let mut carried = 0;
    let mut herald_commands = 0;
    for file in files {
        let place = file
            .strip_prefix(repo())
            .unwrap_or(&file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{place}: {e}"));
        let is_yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml {
            yaml_files += 1;
            let mut documents = 0;
            for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
                let value = match serde_yaml_ng::Value::deserialize(doc) {
                    Ok(v) => v,
                    Err(e) => {
                        problems.push(format!("{place}, document {}: {e}", i + 1));
                        continue;
                    }
                };
                documents += 1;
                for key in ["data", "stringData"] {
                    let Some(map) = value.get(key).and_then(serde_yaml_ng::Value::as_mapping)
                    else {
                        continue;
                    };
                    for (name, content) in map {
                        if let (Some(name), Some(content)) = (name.as_str(), content.as_str())
                            && name.ends_with(".yaml")
                        {
                            carried += 1;
                            let file = mounted.path().join(format!("{carried}-{name}"));
                            std::fs::write(&file, content)
                                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                        }
                    }
                }
                let mut containers = Vec::new();
                herald_containers(&value, &mut containers);
                for c in containers {
                    let mut words = strings(c.get("command"));
                    // The image's entrypoint is the binary; `command`, when set, starts with it.
                    if words.first().is_some_and(|w| w.ends_with("herald")) {
                        words.remove(0);
                    }
                    words.extend(strings(c.get("args")));
                    if !words.is_empty() {
                        herald_commands += 1;
                        problems.extend(check_command_line(&words, &place));
                    }
                    for var in c
                        .get("env")
                        .and_then(serde_yaml_ng::Value::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.get("name").and_then(serde_yaml_ng::Value::as_str))
                    {
                        if var.starts_with("HERALD_") && !env.iter().any(|e| e == var) {
                            problems.push(format!("{place}: herald reads no {var}"));
                        }
                    }
                }
            }
            if documents == 0 {
                problems.push(format!("{place}: no YAML document"));
            }
        } else if file.extension().is_some_and(|e| e == "service") {
            for line in text.lines().map(str::trim) {
                if let Some(exec) = line.strip_prefix("ExecStart=") {
                    let words: Vec<String> = exec
                        .split_whitespace()
                        .skip(1)
                        .filter(|w| *w != "\\")
                        .map(str::to_owned)
                        .collect();
                    herald_commands += 1;
                    problems.extend(check_command_line(&words, &place));
                }
                if let Some(var) = line
                    .strip_prefix("Environment=")
                    .and_then(|v| v.trim_matches('"').split('=').next())
                    && var.starts_with("HERALD_")
                    && !env.iter().any(|e| e == var)
                {
                    problems.push(format!("{place}: herald reads no {var}"));
                }
            }
        }
    }
    assert!(yaml_files > 0, "no YAML under deploy/");
    assert!(
        carried > 0,
        "no Flux manifests in the ConfigMaps and Secrets under deploy/"
    );
    let set = herald_daemon::manifests::read(&[mounted.path().to_owned()]);
    let errors: Vec<_> = set
        .problems
        .iter()
        .chain(&set.check_references())
        .cloned()
        .collect();
    if !errors.is_empty() {
        problems.push(format!(
            "the Flux manifests in deploy/'s ConfigMaps and Secrets do not load:\n{}",
            herald_core::manifest::ManifestErrors(errors)
        ));
    }
    assert!(!set.providers.is_empty() && !set.alerts.is_empty());
    let registry = crate::registry::registry();
    for provider in &set.providers {
        let built = set
            .provider_config(provider)
            .map_err(|e| e.to_string())
            .and_then(|config| match registry.build(&config) {
                // A build without that family (a feature-matrix test run).
                Ok(_) | Err(herald_core::BuildError::NotCompiledIn { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            });
        if let Err(e) = built {
            problems.push(format!(
                "deploy/: Provider {}/{}: {e}",
                provider.namespace, provider.name
            ));
        }
    }
    assert!(
        herald_commands >= 2,
        "found {herald_commands} herald command lines under deploy/ (a Deployment and a systemd unit expected)"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn command_lines_with_unknown_flags_are_caught() {
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert!(check_command_line(&words("serve --manifests=/m --log-format=json"), "t").is_empty());
    let problems = check_command_line(&words("serve --events-adr=:9090"), "t");
    assert_eq!(problems, ["t: `herald serve` has no flag --events-adr"]);
    assert_eq!(
        check_command_line(&words("serv --x"), "t"),
        ["t: `serv` is no herald subcommand"]
    );
    // A flag of another subcommand is not one of serve's.
    assert_eq!(
        check_command_line(&words("serve --hmac-key-file=/k"), "t"),
        ["t: `herald serve` has no flag --hmac-key-file"]
    );
}

/// The Dockerfile's CMD and HEALTHCHECK use real subcommands and flags, its ENV real variables.
#[test]
fn dockerfile_commands_name_only_real_flags() {
    let path = repo().join("Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("Dockerfile: {e}"));
    let env = env_vars();
    let mut problems = Vec::new();
    let mut checked = 0;
    for line in text.lines().map(str::trim) {
        if let Some(var) = line
            .strip_prefix("ENV ")
            .and_then(|v| v.split(['=', ' ']).next())
            && var.starts_with("HERALD_")
            && !env.iter().any(|e| e == var)
        {
            problems.push(format!("Dockerfile: herald reads no {var}"));
        }
        let json = line
            .strip_prefix("CMD ")
            .or_else(|| line.split_once(" CMD ").map(|(_, j)| j));
        let Some(json) = json else { continue };
        let words: Vec<String> = serde_json::from_str(json.trim())
            .unwrap_or_else(|e| panic!("Dockerfile: `{line}` is not an exec-form JSON array: {e}"));
        let words: Vec<String> = match words.first() {
            Some(first) if first.ends_with("herald") => words[1..].to_vec(),
            _ => words,
        };
        checked += 1;
        problems.extend(check_command_line(&words, "Dockerfile"));
    }
    assert!(
        checked >= 2,
        "the Dockerfile should have a CMD and a HEALTHCHECK CMD"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
