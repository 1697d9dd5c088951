//! Flux's event-metadata pipeline (RFC 0008): what a notifier finally sees.
//!
//! 1. [`cleanup`] on receipt: keep only keys prefixed `event.toolkit.fluxcd.io/` (object
//!    annotations) or `<object group>/` (controller metadata), minus `checksum` and `digest`.
//! 2. [`drop_token`] after duplicate suppression (the token takes part in the key).
//! 3. [`combine`] per alert: annotations, then the Alert's `eventMetadata`, then its `summary`,
//!    then controller metadata, each prefix stripped, later sources winning.

use std::collections::BTreeMap;

use crate::Event;

/// The prefix of user metadata copied from object annotations.
pub const ANNOTATION_PREFIX: &str = "event.toolkit.fluxcd.io/";

/// Where a combined metadata key came from, in increasing precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// `event.toolkit.fluxcd.io/` annotations of the involved object.
    Annotations,
    /// The Alert's `spec.eventMetadata`.
    AlertEventMetadata,
    /// The Alert's deprecated `spec.summary`.
    AlertSummary,
    /// The controller's own metadata (`<group>/key`).
    ControllerMetadata,
}

impl Source {
    /// The name Flux uses in its conflict warning.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Annotations => "involved object annotations",
            Source::AlertEventMetadata => "Alert object .spec.eventMetadata",
            Source::AlertSummary => "Alert object .spec.summary",
            Source::ControllerMetadata => "involved object controller metadata",
        }
    }
}

/// A key that more than one source supplied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The stripped key.
    pub key: String,
    /// The sources that supplied it, in precedence order (the last one won).
    pub sources: Vec<Source>,
}

/// Whether `key` is `<group>/<name>`, compared as bytes or, with `any_case`, ignoring ASCII
/// case: the per-event checks build no key string.
fn is_group_key(key: &str, group: &str, name: &str, any_case: bool) -> bool {
    let (k, g, n) = (key.as_bytes(), group.as_bytes(), name.as_bytes());
    if k.len() != g.len() + 1 + n.len() || k[g.len()] != b'/' {
        return false;
    }
    let (head, tail) = (&k[..g.len()], &k[g.len() + 1..]);
    if any_case {
        head.eq_ignore_ascii_case(g) && tail.eq_ignore_ascii_case(n)
    } else {
        head == g && tail == n
    }
}

/// The entry of the controller key `<group>/<name>`: found by a range lookup from the group,
/// without building the key.
fn controller_entry<'a>(event: &'a Event, name: &str) -> Option<(&'a String, &'a String)> {
    use std::ops::Bound;
    let group = event.involved_object.group();
    event
        .metadata
        .range::<str, _>((Bound::Included(group), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(group))
        .find(|(k, _)| is_group_key(k, group, name, false))
}

/// Step 1: keeps only annotation and controller keys, without `checksum` and `digest`.
pub fn cleanup(event: &mut Event) {
    let group = event.involved_object.group().to_owned();
    event.metadata.retain(|k, _| {
        let controller = k
            .strip_prefix(group.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
        (k.starts_with(ANNOTATION_PREFIX) || controller)
            && !is_group_key(k, &group, "checksum", true)
            && !is_group_key(k, &group, "digest", true)
    });
}

/// The controller metadata value of `key` (`<group>/<key>`), before [`combine`].
pub fn controller_value<'a>(event: &'a Event, key: &str) -> Option<&'a str> {
    controller_entry(event, key).map(|(_, v)| v.as_str())
}

/// The value of the annotation `event.toolkit.fluxcd.io/<key>`, matched exactly.
pub fn annotation_value<'a>(event: &'a Event, key: &str) -> Option<&'a str> {
    event
        .metadata
        .iter()
        .find(|(k, _)| k.strip_prefix(ANNOTATION_PREFIX) == Some(key))
        .map(|(_, v)| v.as_str())
}

/// Step 2: removes the controller's `token` key.
pub fn drop_token(event: &mut Event) {
    if let Some((key, _)) = controller_entry(event, "token") {
        let key = key.clone();
        event.metadata.remove(&key);
    }
}

/// Step 3: combines the sources into un-prefixed keys, replacing the metadata when the result
/// is not empty. Returns the keys more than one source supplied.
pub fn combine(
    event: &mut Event,
    alert_event_metadata: &BTreeMap<String, String>,
    alert_summary: Option<&str>,
) -> Vec<Conflict> {
    let group = event.involved_object.group();
    // Borrowed while combining: only the result's keys and values are allocated.
    let mut combined: BTreeMap<&str, (&str, Sources)> = BTreeMap::new();
    let mut put = |key, value, source| {
        let entry = combined.entry(key).or_insert(("", Sources::default()));
        entry.0 = value;
        entry.1.add(source);
    };
    for (k, v) in &event.metadata {
        if let Some(key) = k.strip_prefix(ANNOTATION_PREFIX) {
            put(key, v.as_str(), Source::Annotations);
        }
    }
    for (k, v) in alert_event_metadata {
        put(k.as_str(), v.as_str(), Source::AlertEventMetadata);
    }
    if let Some(summary) = alert_summary.filter(|s| !s.is_empty()) {
        put("summary", summary, Source::AlertSummary);
    }
    for (k, v) in &event.metadata {
        // A group of `event.toolkit.fluxcd.io` would make both prefixes equal; Flux then
        // reads the key twice, and the controller source wins, as here.
        if let Some(key) = k
            .strip_prefix(group)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            put(key, v.as_str(), Source::ControllerMetadata);
        }
    }
    let conflicts = combined
        .iter()
        .filter(|(_, (_, sources))| sources.count() > 1)
        .map(|(key, (_, sources))| Conflict {
            key: (*key).to_owned(),
            sources: sources.to_vec(),
        })
        .collect();
    if !combined.is_empty() {
        event.metadata = combined
            .into_iter()
            .map(|(k, (v, _))| (k.to_owned(), v.to_owned()))
            .collect();
    }
    conflicts
}

/// The sources that supplied one combined key, as a set: each supplies a key at most once,
/// and [`combine`] reads them in precedence order, so the set in that order is the list.
#[derive(Default, Clone, Copy)]
struct Sources(u8);

impl Sources {
    const PRECEDENCE: [Source; 4] = [
        Source::Annotations,
        Source::AlertEventMetadata,
        Source::AlertSummary,
        Source::ControllerMetadata,
    ];

    fn add(&mut self, source: Source) {
        self.0 |= 1 << source as u8;
    }

    fn count(self) -> u32 {
        self.0.count_ones()
    }

    fn to_vec(self) -> Vec<Source> {
        Self::PRECEDENCE
            .into_iter()
            .filter(|s| self.0 & (1 << *s as u8) != 0)
            .collect()
    }
}

/// Steps 1 to 3 with no Alert: what a provider sees of an event sent with `herald send`.
pub fn prepare_without_alert(event: &mut Event) {
    cleanup(event);
    drop_token(event);
    combine(event, &BTreeMap::new(), None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectReference;

    fn event(meta: &[(&str, &str)]) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: "HelmRelease".into(),
                api_version: "helm.toolkit.fluxcd.io/v2".into(),
                ..Default::default()
            },
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn cleanup_keeps_only_known_prefixes() {
        let mut e = event(&[
            ("helm.toolkit.fluxcd.io/revision", "1.2.3"),
            ("helm.toolkit.fluxcd.io/Checksum", "x"),
            ("helm.toolkit.fluxcd.io/digest", "x"),
            ("helm.toolkit.fluxcd.io/token", "t"),
            ("kustomize.toolkit.fluxcd.io/revision", "other group"),
            ("event.toolkit.fluxcd.io/summary", "s"),
            ("plain", "dropped"),
        ]);
        cleanup(&mut e);
        let keys: Vec<_> = e.metadata.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "event.toolkit.fluxcd.io/summary",
                "helm.toolkit.fluxcd.io/revision",
                "helm.toolkit.fluxcd.io/token"
            ]
        );
        assert_eq!(controller_value(&e, "token"), Some("t"));
        drop_token(&mut e);
        assert_eq!(controller_value(&e, "token"), None);
    }

    #[test]
    fn controller_keys_are_found_exactly_among_lookalikes() {
        // Keys that share the group's text, sort around it, or differ in case or length.
        let mut e = event(&[
            ("helm.toolkit.fluxcd.io.evil/token", "other group"),
            ("helm.toolkit.fluxcd.io-x/token", "other group"),
            ("helm.toolkit.fluxcd.io/Token", "other case"),
            ("helm.toolkit.fluxcd.io/tokens", "longer"),
            ("helm.toolkit.fluxcd.io/revision", "1.2.3"),
            ("helm.toolkit.fluxcd.io/token", "t"),
        ]);
        assert_eq!(controller_value(&e, "token"), Some("t"));
        assert_eq!(controller_value(&e, "revision"), Some("1.2.3"));
        assert_eq!(controller_value(&e, "originRevision"), None);
        drop_token(&mut e);
        assert_eq!(controller_value(&e, "token"), None);
        assert_eq!(e.metadata.len(), 5, "only the exact key is dropped");
        // An apiVersion without a group: the controller keys are `/<key>`.
        e.involved_object.api_version = "v1".into();
        e.metadata.insert("/revision".into(), "r".into());
        assert_eq!(controller_value(&e, "revision"), Some("r"));
        // Checksum and digest go in any case, only as whole keys of the object's group.
        let mut e = event(&[
            ("helm.toolkit.fluxcd.io/DIGEST", "x"),
            ("helm.toolkit.fluxcd.io/digests", "kept"),
            (
                "HELM.toolkit.fluxcd.io/checksum",
                "other group: dropped as unknown",
            ),
        ]);
        cleanup(&mut e);
        let keys: Vec<_> = e.metadata.keys().map(String::as_str).collect();
        assert_eq!(keys, ["helm.toolkit.fluxcd.io/digests"]);
    }

    #[test]
    fn combine_follows_rfc_0008_precedence() {
        // The example of the compatibility contract, section 2.4.
        let mut e = event(&[
            ("event.toolkit.fluxcd.io/summary", "x"),
            ("helm.toolkit.fluxcd.io/revision", "1.2.3"),
        ]);
        let conflicts = combine(
            &mut e,
            &[("env".to_owned(), "prod".to_owned())].into(),
            None,
        );
        assert!(conflicts.is_empty());
        assert_eq!(
            e.metadata,
            [("env", "prod"), ("revision", "1.2.3"), ("summary", "x")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into()
        );

        let mut e = event(&[
            ("event.toolkit.fluxcd.io/summary", "annotation"),
            ("helm.toolkit.fluxcd.io/summary", "controller"),
        ]);
        let conflicts = combine(
            &mut e,
            &[("summary".to_owned(), "meta".to_owned())].into(),
            Some("alert"),
        );
        assert_eq!(e.metadata["summary"], "controller");
        assert_eq!(
            conflicts,
            [Conflict {
                key: "summary".into(),
                sources: vec![
                    Source::Annotations,
                    Source::AlertEventMetadata,
                    Source::AlertSummary,
                    Source::ControllerMetadata
                ]
            }]
        );
    }

    #[test]
    fn annotations_are_found_by_their_exact_key() {
        let e = event(&[
            ("event.toolkit.fluxcd.io/commit", "abc"),
            ("event.toolkit.fluxcd.io/Change_request", "7"),
            ("helm.toolkit.fluxcd.io/change_request", "8"),
        ]);
        for (key, want) in [
            ("commit", Some("abc")),
            ("change_request", None),
            ("Change_request", Some("7")),
            ("comm", None),
        ] {
            assert_eq!(annotation_value(&e, key), want, "{key}");
        }
    }

    #[test]
    fn empty_combination_keeps_metadata_empty() {
        let mut e = event(&[("plain", "x")]);
        prepare_without_alert(&mut e);
        assert!(e.metadata.is_empty());
    }
}
