//! Finding where a field sits in a YAML document, for error messages.

/// The 1-based line, within `doc`, of the block-style mapping key at `path`
/// (`["spec", "secretRef", "name"]`). When the full path is not present, the line of its
/// deepest present ancestor; `None` when not even the first key is found. Flow style
/// (`{a: b}`) and keys inside sequences are found only as far as their parent.
pub(crate) fn line_of(doc: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut parent_indent: Option<usize> = None;
    let mut from = 0;
    let mut found = None;
    'keys: for key in path {
        for (i, line) in lines.iter().enumerate().skip(from) {
            let trimmed = line.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                break 'keys;
            }
            let unquoted = trimmed
                .strip_prefix(key)
                .or_else(|| trimmed.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| trimmed.strip_prefix(&format!("'{key}'")));
            if unquoted.is_some_and(|rest| rest.trim_start().starts_with(':')) {
                found = Some(i + 1);
                parent_indent = Some(indent);
                from = i + 1;
                continue 'keys;
            }
        }
        break;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn finds_nested_keys() {
        let doc = "apiVersion: v1\nkind: X\nmetadata:\n  name: a\nspec:\n  # comment\n  name: not-this\n  secretRef:\n    name: s\n  timeout: 1h\n";
        assert_eq!(line_of(doc, &["spec", "secretRef", "name"]), Some(9));
        assert_eq!(line_of(doc, &["spec", "timeout"]), Some(10));
        assert_eq!(line_of(doc, &["metadata", "name"]), Some(4));
        assert_eq!(line_of(doc, &["spec", "address"]), Some(5));
        assert_eq!(line_of(doc, &["status"]), None);
    }
}
