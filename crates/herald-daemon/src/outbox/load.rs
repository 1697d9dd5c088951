//! What replicas sharing a backend tell each other about the deliveries they hold: each
//! replica's [`Load`] (per Provider, pending and in flight), published in its heartbeat, and
//! the [`ClusterLoad`] a replica combines from the others' last heartbeats, so that its status
//! API and its quotas count the cluster's deliveries and not only its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One Provider's deliveries held by one replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting (pending, or failed and retried later), the ones in flight included.
    pub pending: u64,
    /// Being attempted now.
    pub in_flight: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.pending = self.pending.saturating_add(other.pending);
        self.in_flight = self.in_flight.saturating_add(other.in_flight);
    }
}

/// One Provider's entry in a [`Load`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderLoad {
    /// The Provider's type (so that a replica that does not know the Provider can list it).
    pub provider_type: String,
    /// Its deliveries.
    pub counts: Counts,
}

/// The deliveries one replica holds, per Provider (`namespace/name`); Providers with none are
/// left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Load {
    /// Per Provider.
    pub providers: BTreeMap<String, ProviderLoad>,
}

impl Load {
    /// Counts `n` more pending deliveries of `provider`.
    pub fn add_pending(&mut self, provider: &str, provider_type: &str, n: u64) {
        let entry = self
            .providers
            .entry(provider.to_owned())
            .or_insert_with(|| ProviderLoad {
                provider_type: provider_type.to_owned(),
                counts: Counts::default(),
            });
        entry.counts.pending = entry.counts.pending.saturating_add(n);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Load) {
        for (provider, load) in &other.providers {
            self.providers
                .entry(provider.clone())
                .or_insert_with(|| ProviderLoad {
                    provider_type: load.provider_type.clone(),
                    counts: Counts::default(),
                })
                .counts
                .add(load.counts);
        }
    }

    /// Pending deliveries over all Providers.
    pub fn pending(&self) -> u64 {
        self.providers
            .values()
            .fold(0u64, |n, p| n.saturating_add(p.counts.pending))
    }
}

/// Where a shared backend reads this replica's current [`Load`] at each heartbeat; it must be
/// quick and must not wait on the delivery path.
pub type LoadSource = Arc<dyn Fn() -> Load + Send + Sync>;

/// What a replica knows of the deliveries held elsewhere in the cluster: the other live
/// replicas' last heartbeats (at most one heartbeat interval old), and the deliveries this
/// replica accepted for partitions others hold that no heartbeat counts yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterLoad {
    /// This replica's name.
    pub me: String,
    /// The other live replicas' last reported loads, by name.
    pub others: Arc<BTreeMap<String, Load>>,
    /// Accepted here for a partition another replica holds, not in its heartbeat yet.
    pub in_transit: Load,
    /// `others` summed per Provider.
    others_sum: Arc<HashMap<String, Counts>>,
    /// `others`' pending deliveries over all Providers.
    others_pending: u64,
}

impl ClusterLoad {
    /// Combines the others' loads and what is in transit.
    pub fn new(me: String, others: BTreeMap<String, Load>, in_transit: Load) -> ClusterLoad {
        let mut sum = Load::default();
        for load in others.values() {
            sum.merge(load);
        }
        ClusterLoad {
            me,
            others: Arc::new(others),
            in_transit,
            others_pending: sum.pending(),
            others_sum: Arc::new(
                sum.providers
                    .into_iter()
                    .map(|(provider, load)| (provider, load.counts))
                    .collect(),
            ),
        }
    }

    /// The same others, with `in_transit` instead (cheap: the others are shared).
    pub fn with_transit(&self, in_transit: Load) -> ClusterLoad {
        ClusterLoad {
            in_transit,
            ..self.clone_others()
        }
    }

    fn clone_others(&self) -> ClusterLoad {
        ClusterLoad {
            me: self.me.clone(),
            others: self.others.clone(),
            in_transit: Load::default(),
            others_sum: self.others_sum.clone(),
            others_pending: self.others_pending,
        }
    }

    /// `provider`'s deliveries held elsewhere.
    pub fn elsewhere(&self, provider: &str) -> Counts {
        let mut counts = self.others_sum.get(provider).copied().unwrap_or_default();
        if let Some(transit) = self.in_transit.providers.get(provider) {
            counts.add(transit.counts);
        }
        counts
    }

    /// Pending deliveries held elsewhere, over all Providers.
    pub fn elsewhere_pending(&self) -> u64 {
        self.others_pending
            .saturating_add(self.in_transit.pending())
    }

    /// The Providers held elsewhere, with their types (a Provider may come more than once).
    pub fn providers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.others
            .values()
            .chain(std::iter::once(&self.in_transit))
            .flat_map(|l| l.providers.iter())
            .map(|(p, l)| (p.as_str(), l.provider_type.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(entries: &[(&str, u64, u64)]) -> Load {
        Load {
            providers: entries
                .iter()
                .map(|(p, pending, in_flight)| {
                    let counts = Counts {
                        pending: *pending,
                        in_flight: *in_flight,
                    };
                    let provider_type = "generic".to_owned();
                    (
                        (*p).to_owned(),
                        ProviderLoad {
                            provider_type,
                            counts,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_cluster_sums_the_others_and_what_is_in_transit() {
        let others = BTreeMap::from([
            (
                "b".to_owned(),
                load(&[("apps/hook", 3, 2), ("apps/slack", 1, 1)]),
            ),
            ("c".to_owned(), load(&[("apps/hook", 4, 0)])),
        ]);
        let cluster = ClusterLoad::new("a".into(), others, load(&[("apps/hook", 5, 0)]));
        assert_eq!(
            cluster.elsewhere("apps/hook"),
            Counts {
                pending: 12,
                in_flight: 2
            }
        );
        assert_eq!(
            cluster.elsewhere("apps/slack"),
            Counts {
                pending: 1,
                in_flight: 1
            }
        );
        assert_eq!(cluster.elsewhere("apps/none"), Counts::default());
        assert_eq!(cluster.elsewhere_pending(), 13);
        let mut providers: Vec<&str> = cluster.providers().map(|(p, _)| p).collect();
        providers.sort_unstable();
        providers.dedup();
        assert_eq!(providers, ["apps/hook", "apps/slack"]);
        let settled = cluster.with_transit(Load::default());
        assert_eq!(settled.elsewhere("apps/hook").pending, 7);
        assert_eq!(settled.elsewhere_pending(), 8);
        assert_eq!(settled.others, cluster.others);
    }

    #[test]
    fn alone_nothing_is_elsewhere() {
        let cluster = ClusterLoad::new("a".into(), BTreeMap::new(), Load::default());
        assert_eq!(cluster.elsewhere("apps/hook"), Counts::default());
        assert_eq!(cluster.elsewhere_pending(), 0);
    }

    #[test]
    fn counts_saturate() {
        let mut a = load(&[("p/x", u64::MAX, 1)]);
        a.merge(&load(&[("p/x", 1, 1)]));
        assert_eq!(a.pending(), u64::MAX);
        a.add_pending("p/x", "generic", 1);
        assert_eq!(a.providers["p/x"].counts.in_flight, 2);
    }
}
