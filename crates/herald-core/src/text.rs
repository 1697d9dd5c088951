//! Message pieces that many providers share, named as in Flux.

use crate::Event;

/// `<lower(kind)>/<name>.<namespace>`: the heading of Slack, Discord, Teams, Matrix, and more.
pub fn obj_dot(event: &Event) -> String {
    let o = &event.involved_object;
    format!("{}/{}.{}", o.kind.to_lowercase(), o.name, o.namespace)
}

/// `<lower(kind)>/<name>/<namespace>`: the Telegram heading.
pub fn obj_slash3(event: &Event) -> String {
    let o = &event.involved_object;
    format!("{}/{}/{}", o.kind.to_lowercase(), o.name, o.namespace)
}

/// `<Kind>/<namespace>/<name>`, original case: Markdown posts.
pub fn obj_md(event: &Event) -> String {
    let o = &event.involved_object;
    format!("{}/{}/{}", o.kind, o.namespace, o.name)
}

/// The metadata key that names a pull or merge request; it is the comment's target, so the
/// Markdown post leaves it out.
pub const CHANGE_REQUEST_KEY: &str = "change_request";

/// Flux's Markdown post, shared by the Zulip message and the pull/merge-request comments:
/// `## Flux Status`, `ℹ️` (or `⚠️` for an error) and `<Kind>/<namespace>/<name>`, the message,
/// then `Metadata:` and one `` * `key`: value `` line per key in key order, `change_request`
/// excepted. The list is empty, not omitted, when there is no metadata (as in Flux).
pub fn flux_status_markdown(event: &Event) -> String {
    let emoji = if event.severity.is_error() {
        "\u{26a0}\u{fe0f}"
    } else {
        "\u{2139}\u{fe0f}"
    };
    let mut post = format!(
        "## Flux Status\n\n{emoji} {}\n\n{}\n\nMetadata:\n",
        obj_md(event),
        event.message
    );
    // BTreeMap: already in key order, as Flux sorts them.
    for (key, value) in &event.metadata {
        if key != CHANGE_REQUEST_KEY {
            post.push_str(&format!("* `{key}`: {value}\n"));
        }
    }
    post
}

/// `<Kind>/<name>.<namespace>`, original case: the GitHub dispatch `event_type`.
pub fn kind_name_dot_namespace(event: &Event) -> String {
    let o = &event.involved_object;
    format!("{}/{}.{}", o.kind, o.name, o.namespace)
}

/// `<Kind>: <namespace>/<name>`: the Sentry transaction name.
pub fn summary(event: &Event) -> String {
    let o = &event.involved_object;
    format!("{}: {}/{}", o.kind, o.namespace, o.name)
}

/// `lower(<Kind>/<name>)`: commit-status names.
pub fn name_lc(event: &Event) -> String {
    let o = &event.involved_object;
    format!("{}/{}", o.kind, o.name).to_lowercase()
}

/// The reason in lower-case words: `ReconciliationSucceeded` → `reconciliation succeeded`,
/// `PDFLoader2` → `pdf loader 2`.
pub fn reason_words(reason: &str) -> String {
    split_camel_case(reason).join(" ").to_lowercase()
}

/// Splits at camel-case boundaries the way Flux does: runs of lower-case letters, upper-case
/// letters, digits and other characters; an upper-case run followed by a lower-case run gives
/// its last letter to the next word (`PDFLoader` → `PDF`, `Loader`).
pub fn split_camel_case(s: &str) -> Vec<String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Digit,
        Other,
    }
    fn class(c: char) -> Class {
        if c.is_lowercase() {
            Class::Lower
        } else if c.is_uppercase() {
            Class::Upper
        } else if c.is_numeric() {
            Class::Digit
        } else {
            Class::Other
        }
    }
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last = None;
    for c in s.chars() {
        let k = class(c);
        match runs.last_mut() {
            Some(run) if last == Some(k) => run.push(c),
            _ => runs.push(vec![c]),
        }
        last = Some(k);
    }
    for i in 0..runs.len().saturating_sub(1) {
        let upper_then_lower = runs[i].first().is_some_and(|c| c.is_uppercase())
            && runs[i + 1].first().is_some_and(|c| c.is_lowercase());
        if upper_then_lower && let Some(moved) = runs[i].pop() {
            runs[i + 1].insert(0, moved);
        }
    }
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.into_iter().collect())
        .collect()
}

/// The first line of a message (Slack's fallback text).
pub fn first_line(message: &str) -> &str {
    message.split('\n').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flux_status_markdown_matches_flux() {
        // flux-compat.md section 5.21: Flux's own golden.
        let mut e: Event = serde_json::from_str(
            r#"{"involvedObject":{"kind":"Kustomization","namespace":"default","name":"test-ks"},
                "severity":"info","message":"Test event message","reason":"r",
                "metadata":{"key2":"value2","key1":"value1","change_request":"7"}}"#,
        )
        .unwrap();
        assert_eq!(
            flux_status_markdown(&e),
            "## Flux Status\n\n\u{2139}\u{fe0f} Kustomization/default/test-ks\n\nTest event message\n\nMetadata:\n* `key1`: value1\n* `key2`: value2\n"
        );
        e.severity = crate::Severity::Error;
        e.metadata.clear();
        assert_eq!(
            flux_status_markdown(&e),
            "## Flux Status\n\n\u{26a0}\u{fe0f} Kustomization/default/test-ks\n\nTest event message\n\nMetadata:\n"
        );
    }
    use crate::ObjectReference;

    #[test]
    fn reasons_become_words() {
        for (reason, want) in [
            ("ReconciliationSucceeded", "reconciliation succeeded"),
            ("ApplySucceeded", "apply succeeded"),
            ("PDFLoader", "pdf loader"),
            ("HealthCheckFailed2", "health check failed 2"),
            ("GL11Version", "gl 11 version"),
            ("lowercase", "lowercase"),
            ("Health_Check", "health _ check"),
            ("", ""),
        ] {
            assert_eq!(reason_words(reason), want, "{reason}");
        }
    }

    #[test]
    fn object_names() {
        let e = Event {
            involved_object: ObjectReference {
                kind: "GitRepository".into(),
                namespace: "gitops-system".into(),
                name: "webapp".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(obj_dot(&e), "gitrepository/webapp.gitops-system");
        assert_eq!(obj_slash3(&e), "gitrepository/webapp/gitops-system");
        assert_eq!(obj_md(&e), "GitRepository/gitops-system/webapp");
        assert_eq!(
            kind_name_dot_namespace(&e),
            "GitRepository/webapp.gitops-system"
        );
        assert_eq!(summary(&e), "GitRepository: gitops-system/webapp");
        assert_eq!(name_lc(&e), "gitrepository/webapp");
        assert_eq!(first_line("a\nb"), "a");
    }

    #[test]
    fn flux_status_markdown_is_flux_s_post() {
        // Flux's TestZulip_Post expectations, verbatim.
        let mut e = Event {
            involved_object: ObjectReference {
                kind: "Kustomization".into(),
                namespace: "default".into(),
                name: "test-ks".into(),
                ..Default::default()
            },
            severity: crate::Severity::Info,
            message: "Test event message".into(),
            metadata: [
                ("key2", "value2"),
                ("key1", "value1"),
                ("change_request", "7"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
            ..Default::default()
        };
        let body = "Kustomization/default/test-ks\n\nTest event message\n\nMetadata:\n* `key1`: value1\n* `key2`: value2\n";
        assert_eq!(
            flux_status_markdown(&e),
            format!("## Flux Status\n\nℹ️ {body}")
        );
        e.severity = crate::Severity::Error;
        assert_eq!(
            flux_status_markdown(&e),
            format!("## Flux Status\n\n⚠️ {body}")
        );
        e.metadata.clear();
        assert!(flux_status_markdown(&e).ends_with("message\n\nMetadata:\n"));
    }
}
