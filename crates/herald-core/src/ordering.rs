//! Which deliveries of one Provider must go out one after another.
//!
//! Order matters per thing a message is about, not per Provider: two chat messages about one
//! Kustomization must arrive in the order they happened, but a message about another object can
//! go out beside them. For commit-status providers the thing is one status on one commit (the
//! status id is derived from the object's kind and name): statuses of different commits, or of
//! different objects on one commit, are independent.

use crate::{Event, ProviderType};

/// Deliveries of one Provider with equal keys are delivered strictly one after another, in the
/// order they were accepted; deliveries with different keys may be delivered at the same time.
///
/// The key is a stable 64-bit hash (FNV-1a), the same in every herald process and version of
/// this crate, so that it can also name a partition. Two different things may, rarely, share a
/// key: they are then only ordered more strictly than needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderingKey(pub u64);

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `part` followed by a byte that never occurs in UTF-8, so that `("ab", "c")` and
    /// `("a", "bc")` differ.
    fn part(mut self, part: &[u8]) -> Self {
        for &b in part.iter().chain(&[0xff]) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }
}

impl OrderingKey {
    /// The key of a delivery of `event` (as it will be posted: metadata combined and stripped)
    /// to a Provider of type `ty`.
    ///
    /// - commit-status types: the commit (the SHA of metadata `commit`, `originRevision` or
    ///   `revision`, as the status is posted on it) and the status id's parts, the object's kind
    ///   and name, compared without case;
    /// - every other type: the involved object (kind, namespace, name).
    pub fn of(ty: ProviderType, event: &Event) -> OrderingKey {
        let o = &event.involved_object;
        let commit = ty
            .is_commit_status()
            .then(|| {
                ["commit", "originRevision", "revision"]
                    .iter()
                    .find_map(|k| event.metadata.get(*k))
            })
            .flatten();
        let hash = match commit {
            Some(revision) => Fnv::new()
                .part(b"commit-status")
                .part(commit_part(revision).as_bytes())
                .part(o.kind.to_lowercase().as_bytes())
                .part(o.name.to_lowercase().as_bytes()),
            None => Fnv::new()
                .part(b"object")
                .part(o.kind.as_bytes())
                .part(o.namespace.as_bytes())
                .part(o.name.as_bytes()),
        };
        OrderingKey(hash.0)
    }

    /// What the key of a Provider of type `ty` is made of, for people.
    pub fn describe(ty: ProviderType) -> &'static str {
        if ty.is_commit_status() {
            "the commit and the status id (object kind and name)"
        } else {
            "the involved object (kind, namespace and name)"
        }
    }
}

/// The part of a revision that names the commit: after the last `:` (`main@sha1:<h>`), else
/// after the last `/` (`main/<h>`), else all of it; the same rule the forges' status uses.
fn commit_part(revision: &str) -> &str {
    match revision.rfind([':', '/']) {
        Some(i) => &revision[i + 1..],
        None => revision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectReference;

    fn event(kind: &str, ns: &str, name: &str, meta: &[(&str, &str)]) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
                ..Default::default()
            },
            message: "m".into(),
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn objects_key_chat_and_webhooks() {
        let key = |e: &Event| OrderingKey::of(ProviderType::Slack, e);
        let a = event("Kustomization", "apps", "web", &[]);
        let mut a2 = a.clone();
        a2.message = "other message".into();
        a2.metadata.insert("revision".into(), "main@sha1:1".into());
        assert_eq!(key(&a), key(&a2), "the object alone decides");
        assert_ne!(key(&a), key(&event("Kustomization", "apps", "db", &[])));
        assert_ne!(key(&a), key(&event("Kustomization", "prod", "web", &[])));
        assert_ne!(key(&a), key(&event("HelmRelease", "apps", "web", &[])));
        // Parts cannot run into each other.
        assert_ne!(
            key(&event("K", "ab", "c", &[])),
            key(&event("K", "a", "bc", &[]))
        );
        assert_eq!(
            OrderingKey::of(ProviderType::Generic, &a),
            key(&a),
            "the same for every non-commit-status type"
        );
    }

    #[test]
    fn commit_statuses_key_on_the_commit_and_the_status_id() {
        let key = |e: &Event| OrderingKey::of(ProviderType::GitHub, e);
        let sha = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1";
        let rev = format!("main@sha1:{sha}");
        let a = event("Kustomization", "apps", "web", &[("revision", &rev)]);
        // Same commit and status id: another namespace, another spelling of the revision.
        assert_eq!(
            key(&a),
            key(&event("kustomization", "prod", "Web", &[("commit", sha)]))
        );
        assert_eq!(
            key(&a),
            key(&event(
                "Kustomization",
                "apps",
                "web",
                &[("revision", &format!("main/{sha}"))]
            ))
        );
        // Another commit, or another object on the same commit: independent.
        assert_ne!(
            key(&a),
            key(&event(
                "Kustomization",
                "apps",
                "web",
                &[("revision", "main@sha1:0")]
            ))
        );
        assert_ne!(
            key(&a),
            key(&event("Kustomization", "apps", "db", &[("revision", &rev)]))
        );
        // `commit` wins over `revision`, as for the status itself.
        assert_eq!(
            key(&event(
                "Kustomization",
                "apps",
                "web",
                &[("commit", sha), ("revision", "main@sha1:0")]
            )),
            key(&a)
        );
        // Without a revision the delivery fails anyway; it keys on the object.
        assert_eq!(
            key(&event("Kustomization", "apps", "web", &[])),
            OrderingKey::of(
                ProviderType::Slack,
                &event("Kustomization", "apps", "web", &[])
            )
        );
    }

    #[test]
    fn keys_are_stable() {
        // Persisted and shared between processes: the hash must never change.
        let e = event("Kustomization", "apps", "web", &[]);
        assert_eq!(
            OrderingKey::of(ProviderType::Generic, &e).0,
            0x7613_1fd2_400e_64d9
        );
    }
}
