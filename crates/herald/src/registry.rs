//! The one place where provider families are wired in, each behind its cargo feature.
//!
//! Every `cfg(feature = ...)` for a family lives in this file and nowhere else: adding a
//! family is one line here and one in `Cargo.toml`.

use herald_core::{Family, Registry};

/// The registry of every provider this build can construct.
pub(crate) fn registry() -> Registry {
    let mut registry = Registry::new();
    herald_webhook::register(&mut registry);
    #[cfg(feature = "chat")]
    herald_chat::register(&mut registry);
    #[cfg(feature = "git")]
    herald_git::register(&mut registry);
    #[cfg(feature = "alerting")]
    herald_alerting::register(&mut registry);
    #[cfg(feature = "eventhub")]
    herald_eventhub::register(&mut registry);
    #[cfg(feature = "nats")]
    herald_nats::register(&mut registry);
    #[cfg(feature = "googlepubsub")]
    herald_pubsub::register(&mut registry);
    registry
}

/// The compiled families, for `--version` and the start-up log.
pub(crate) fn families() -> Vec<Family> {
    registry().families().collect()
}

#[cfg(test)]
mod tests {
    use herald_core::ProviderType;

    use super::*;

    /// The types README.md promises for each family, and nothing else.
    #[test]
    fn every_promised_type_of_a_compiled_family_is_registered() {
        let registry = registry();
        let promised = |family: Family| -> Vec<&'static str> {
            match family {
                Family::Generic => vec!["generic", "generic-hmac"],
                Family::Chat => vec![
                    "slack",
                    "discord",
                    "msteams",
                    "rocket",
                    "googlechat",
                    "webex",
                    "telegram",
                    "lark",
                    "matrix",
                    "zulip",
                    "zoom",
                ],
                Family::Git => vec![
                    "github",
                    "githubdispatch",
                    "gitlab",
                    "gitea",
                    "bitbucket",
                    "bitbucketserver",
                    "azuredevops",
                    "githubpullrequestcomment",
                    "gitlabmergerequestcomment",
                    "giteapullrequestcomment",
                ],
                Family::Alerting => vec![
                    "sentry",
                    "opsgenie",
                    "alertmanager",
                    "grafana",
                    "pagerduty",
                    "datadog",
                    "incident.io",
                    "otel",
                ],
                Family::EventHub => vec!["azureeventhub"],
                Family::Nats => vec!["nats"],
                Family::PubSub => vec!["googlepubsub"],
            }
        };
        let mut want: Vec<&str> = registry.families().flat_map(promised).collect();
        want.sort_unstable();
        let mut got: Vec<&str> = registry.types().map(ProviderType::as_str).collect();
        got.sort_unstable();
        assert_eq!(got, want);
        assert!(registry.families().any(|f| f == Family::Generic));
    }
}
