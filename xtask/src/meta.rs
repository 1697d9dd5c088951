//! What xtask knows about the workspace, read from `cargo metadata` (never from Cargo.toml by
//! hand): the binary's family features, the workspace version, the target directory, and the
//! resolved dependency graph for the tidy tests.

use std::collections::BTreeMap;
#[cfg(test)]
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cargo;

/// The parts of `cargo metadata --format-version 1` xtask reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    pub(crate) packages: Vec<Package>,
    pub(crate) target_directory: PathBuf,
    /// The dependency graph, which only the tidy tests read.
    #[cfg(test)]
    #[serde(default)]
    resolve: Option<Resolve>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) version: String,
    #[cfg(test)]
    id: String,
    /// Feature name → what it enables; cargo lists them sorted by name.
    pub(crate) features: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[cfg(test)]
#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[cfg(test)]
#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[cfg(test)]
#[derive(Debug, Deserialize)]
struct DepKind {
    /// `None` for a normal dependency, `"dev"` or `"build"` otherwise.
    kind: Option<String>,
}

/// The workspace's packages only (`--no-deps`): fast, no dependency resolution.
pub(crate) fn workspace(root: &Path) -> Result<Metadata> {
    load(root, &["--no-deps"])
}

#[cfg(test)]
/// The whole resolved graph with every feature on, for the host platform (as `cargo build`
/// there would compile it).
pub(crate) fn resolved(root: &Path) -> Result<Metadata> {
    let host = host_triple()?;
    load(root, &["--all-features", "--filter-platform", &host])
}

fn load(root: &Path, args: &[&str]) -> Result<Metadata> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(args)
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("reading cargo metadata's JSON")
}

impl Metadata {
    pub(crate) fn package(&self, name: &str) -> Result<&Package> {
        self.packages
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("no package {name} in the workspace"))
    }

    #[cfg(test)]
    /// The names of every package `name` reaches through normal (not dev or build)
    /// dependencies, transitively, without `name` itself.
    pub(crate) fn normal_dependencies(&self, name: &str) -> Result<BTreeSet<String>> {
        let resolve = self
            .resolve
            .as_ref()
            .context("cargo metadata ran without resolving dependencies")?;
        let nodes: BTreeMap<&str, &Node> =
            resolve.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let names: BTreeMap<&str, &str> = self
            .packages
            .iter()
            .map(|p| (p.id.as_str(), p.name.as_str()))
            .collect();
        let start = self.package(name)?.id.as_str();
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(id) = todo.pop() {
            let Some(node) = nodes.get(id) else { continue };
            for dep in &node.deps {
                let normal = dep.dep_kinds.iter().any(|k| k.kind.is_none());
                if normal && seen.insert(dep.pkg.as_str()) {
                    todo.push(dep.pkg.as_str());
                }
            }
        }
        Ok(seen
            .into_iter()
            .filter_map(|id| names.get(id).map(|n| (*n).to_owned()))
            .collect())
    }
}

/// The binary's features a build chooses from, in the order its `default` feature lists them
/// (the order of names such as `chat-git-alerting`), then any that is not a default: the
/// provider families and the optional parts (`templates`).
pub(crate) fn build_features(root: &Path) -> Result<Vec<String>> {
    build_features_of(workspace(root)?.package("herald")?)
}

/// The binary's provider-family features alone (see [`is_family`]), in the same order.
pub(crate) fn family_features(root: &Path) -> Result<Vec<String>> {
    let herald = workspace(root)?;
    let herald = herald.package("herald")?;
    Ok(build_features_of(herald)?
        .into_iter()
        .filter(|f| is_family(herald, f))
        .collect())
}

/// A family feature enables a family crate (`dep:herald-<family>`); the others switch a part
/// of herald on or off.
fn is_family(herald: &Package, feature: &str) -> bool {
    herald
        .features
        .get(feature)
        .is_some_and(|enables| enables.iter().any(|e| e.starts_with("dep:herald-")))
}

pub(crate) fn build_features_of(herald: &Package) -> Result<Vec<String>> {
    let mut out: Vec<String> = herald.features.get("default").cloned().unwrap_or_default();
    for name in herald.features.keys() {
        if name != "default" && !out.contains(name) {
            out.push(name.clone());
        }
    }
    if out.is_empty() {
        bail!("the herald package has no features");
    }
    Ok(out)
}

/// The workspace version (every crate inherits it; the binary's is read).
pub(crate) fn workspace_version(root: &Path) -> Result<String> {
    Ok(workspace(root)?.package("herald")?.version.clone())
}

/// Where cargo builds (`CARGO_TARGET_DIR` and config included).
pub(crate) fn target_dir(root: &Path) -> Result<PathBuf> {
    Ok(workspace(root)?.target_directory)
}

/// The target triple rustc builds for by default.
pub(crate) fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(&rustc)
        .args(["--print", "host-tuple"])
        .output()
        .with_context(|| format!("running {rustc} --print host-tuple"))?;
    let triple = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || triple.is_empty() {
        bail!("`{rustc} --print host-tuple` printed no triple");
    }
    Ok(triple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_default_feature_and_families_enable_a_crate() {
        let herald = Package {
            name: "herald".to_owned(),
            version: "0.1.0".to_owned(),
            id: "herald".to_owned(),
            features: [
                ("alerting", vec!["dep:herald-alerting"]),
                ("chat", vec!["dep:herald-chat"]),
                ("default", vec!["chat", "git", "templates", "alerting"]),
                ("extra", vec!["dep:herald-extra"]),
                ("git", vec!["dep:herald-git"]),
                ("templates", vec!["herald-core/templates"]),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect(),
        };
        let all = build_features_of(&herald).unwrap();
        assert_eq!(all, ["chat", "git", "templates", "alerting", "extra"]);
        let families: Vec<&String> = all.iter().filter(|f| is_family(&herald, f)).collect();
        assert_eq!(families, ["chat", "git", "alerting", "extra"]);
    }

    #[test]
    fn the_workspace_is_read_from_cargo_metadata() {
        let root = crate::root();
        let families = family_features(&root).unwrap();
        assert!(families.iter().any(|f| f == "chat"), "{families:?}");
        assert!(!families.iter().any(|f| f == "default" || f == "templates"));
        let features = build_features(&root).unwrap();
        assert!(features.iter().any(|f| f == "templates"), "{features:?}");
        assert!(!workspace_version(&root).unwrap().is_empty());
        assert!(target_dir(&root).unwrap().is_absolute());
        let deps = resolved(&root)
            .unwrap()
            .normal_dependencies("herald-http")
            .unwrap();
        assert!(
            deps.contains("hyper") && deps.contains("herald-core"),
            "{deps:?}"
        );
        // Dev-dependencies are not followed.
        assert!(!deps.contains("herald-testkit"), "{deps:?}");
    }
}
