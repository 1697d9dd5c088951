//! Reading manifests from disk: the files and folders of `--manifests`, parsed by herald-core
//! (which parses text only).
//!
//! Folders are read recursively for `.yaml` and `.yml` files, in name order; hidden entries
//! are skipped (Kubernetes mounts ConfigMaps through `..data` links). A path named explicitly
//! is read whatever its extension. A path or file that cannot be read is a problem of that
//! file, never the end of loading: the others are read all the same.

use std::path::{Path, PathBuf};

use herald_core::manifest::{ManifestError, ManifestSet};

/// Reads and parses every manifest file under `paths`.
pub fn read(paths: &[PathBuf]) -> ManifestSet {
    let mut set = ManifestSet::default();
    let mut files = Vec::new();
    for path in paths {
        collect(path, true, &mut files, &mut set.problems);
    }
    for file in files {
        match std::fs::read(&file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => set.add_file(&file, &text),
                Err(e) => {
                    set.problems.push(ManifestError::file(
                        &file,
                        format!(
                            "not UTF-8 text (invalid byte at offset {})",
                            e.utf8_error().valid_up_to()
                        ),
                    ));
                    set.files.push(file);
                }
            },
            Err(e) => {
                set.problems
                    .push(ManifestError::file(&file, format!("cannot read: {e}")));
                set.files.push(file);
            }
        }
    }
    set
}

/// The manifest files `paths` name, as [`read`] would read them (unreadable paths are left
/// out). Used to notice changes.
pub fn files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut ignored = Vec::new();
    for path in paths {
        collect(path, true, &mut files, &mut ignored);
    }
    files
}

fn collect(path: &Path, explicit: bool, out: &mut Vec<PathBuf>, errors: &mut Vec<ManifestError>) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errors.push(ManifestError::file(path, format!("cannot read: {e}")));
            return;
        }
    };
    if !meta.is_dir() {
        if explicit || is_yaml(path) {
            out.push(path.to_owned());
        }
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(ManifestError::file(
                path,
                format!("cannot list folder: {e}"),
            ));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        let hidden = child
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden {
            collect(&child, false, out, errors);
        }
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_read_recursively_and_problems_kept_per_file() {
        let dir = std::env::temp_dir().join(format!("herald-manifests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub/..data")).unwrap();
        let write = |name: &str, text: &[u8]| std::fs::write(dir.join(name), text).unwrap();
        write(
            "a.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n",
        );
        write(
            "sub/b.yml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n",
        );
        write("sub/notes.txt", b"not yaml");
        write(
            "sub/..data/c.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: c}\n",
        );
        write("sub/latin1.yaml", b"a: \xe9\n");
        let set = read(&[dir.clone(), dir.join("nope.yaml")]);
        let names: Vec<_> = set.secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let problems: Vec<String> = set.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("nope.yaml: cannot read:"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("latin1.yaml: not UTF-8 text (invalid byte at offset 3)"),
            "{problems:?}"
        );
        assert_eq!(set.files.len(), 3, "{:?}", set.files);
        assert_eq!(files(std::slice::from_ref(&dir)).len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
