//! Golden files: expected outputs kept in the repository, re-blessed with `UPDATE_GOLDEN=1`.

use std::path::Path;

/// How many differing lines a mismatch report shows at most.
const MAX_REPORTED_LINES: usize = 20;

/// Compares `actual` with the content of the golden file at `path`.
///
/// With `UPDATE_GOLDEN=1` in the environment it (re)writes the file instead, creating its
/// directory if needed. Otherwise a missing file or any difference panics with the differing
/// lines and the command hint to bless the new output.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(path, actual)
            .unwrap_or_else(|e| panic!("cannot write golden file {}: {e}", path.display()));
        return;
    }
    let expected = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => panic!(
            "golden file {} cannot be read ({e}); if this is a new golden, create it by running \
             the test with UPDATE_GOLDEN=1 and review the written file",
            path.display()
        ),
    };
    if expected != actual {
        panic!(
            "output differs from golden file {}:\n{}\nIf the new output is right, bless it: \
             UPDATE_GOLDEN=1 cargo test ... and review the diff with git.",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// The lines that differ, as `-expected` / `+actual` pairs with 1-based line numbers.
fn line_diff(expected: &str, actual: &str) -> String {
    let exp: Vec<&str> = expected.split('\n').collect();
    let act: Vec<&str> = actual.split('\n').collect();
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..exp.len().max(act.len()) {
        let (e, a) = (exp.get(i), act.get(i));
        if e == a {
            continue;
        }
        if shown == MAX_REPORTED_LINES {
            out.push_str("  ... (more differing lines not shown)\n");
            break;
        }
        shown += 1;
        out.push_str(&format!("line {}:\n", i + 1));
        match e {
            Some(e) => out.push_str(&format!("  -{e:?}\n")),
            None => out.push_str("  - (no such line in the golden file)\n"),
        }
        match a {
            Some(a) => out.push_str(&format!("  +{a:?}\n")),
            None => out.push_str("  + (no such line in the output)\n"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_the_lines_that_differ() {
        let d = line_diff("a\nb\nc", "a\nB\nc\nd");
        assert_eq!(
            d,
            "line 2:\n  -\"b\"\n  +\"B\"\nline 4:\n  - (no such line in the golden file)\n  +\"d\"\n"
        );
    }

    #[test]
    fn matching_golden_passes_and_mismatch_panics_with_the_bless_hint() {
        // Runs only when the variable is not set for the whole test run, so that the
        // comparison branch is what is exercised.
        if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            return;
        }
        let dir =
            std::env::temp_dir().join(format!("herald-testkit-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.txt");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_golden(&path, "one\ntwo\n");
        let err = std::panic::catch_unwind(|| assert_golden(&path, "one\nthree\n")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("line 2:") && msg.contains("UPDATE_GOLDEN=1"),
            "{msg}"
        );
        let missing = dir.join("missing.txt");
        let err = std::panic::catch_unwind(|| assert_golden(&missing, "x")).unwrap_err();
        assert!(
            err.downcast_ref::<String>()
                .unwrap()
                .contains("UPDATE_GOLDEN=1")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
