//! Every provider type Flux knows, and which herald family implements it.

use std::fmt;
use std::str::FromStr;

/// A family of providers: one crate, one cargo feature of the `herald` binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `generic` and `generic-hmac` (crate `herald-webhook`), always compiled in.
    Generic,
    /// Chat services (crate `herald-chat`, feature `chat`).
    Chat,
    /// Commit statuses and repository dispatch (crate `herald-git`, feature `git`).
    Git,
    /// Alerting tools and OpenTelemetry traces (crate `herald-alerting`, feature `alerting`).
    Alerting,
    /// Azure Event Hubs (crate `herald-eventhub`, feature `eventhub`).
    EventHub,
    /// NATS (crate `herald-nats`, feature `nats`).
    Nats,
    /// Google Cloud Pub/Sub (crate `herald-pubsub`, feature `googlepubsub`).
    PubSub,
}

impl Family {
    /// Every family, in display order.
    pub const ALL: [Family; 7] = [
        Family::Generic,
        Family::Chat,
        Family::Git,
        Family::Alerting,
        Family::EventHub,
        Family::Nats,
        Family::PubSub,
    ];

    /// The family's name, which is also its cargo feature (except `generic`, which has none).
    pub fn name(self) -> &'static str {
        match self {
            Family::Generic => "generic",
            Family::Chat => "chat",
            Family::Git => "git",
            Family::Alerting => "alerting",
            Family::EventHub => "eventhub",
            Family::Nats => "nats",
            Family::PubSub => "googlepubsub",
        }
    }

    /// The cargo feature of the `herald` binary that compiles this family in; `None` for the
    /// always-on generic webhooks.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Family::Generic => None,
            other => Some(other.name()),
        }
    }

    /// The crate that implements the family.
    pub fn crate_name(self) -> &'static str {
        match self {
            Family::Generic => "herald-webhook",
            Family::Chat => "herald-chat",
            Family::Git => "herald-git",
            Family::Alerting => "herald-alerting",
            Family::EventHub => "herald-eventhub",
            Family::Nats => "herald-nats",
            Family::PubSub => "herald-pubsub",
        }
    }

    /// The provider types of this family.
    pub fn types(self) -> impl Iterator<Item = ProviderType> {
        ProviderType::ALL
            .iter()
            .copied()
            .filter(move |t| t.family() == self)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! provider_types {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal => $family:expr ),* $(,)?) => {
        /// A provider `spec.type`, as named by Flux (every upstream type, compiled in or not).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ProviderType {
            $( $(#[$doc])* $variant, )*
        }

        impl ProviderType {
            /// Every type Flux's notification-controller knows.
            pub const ALL: &'static [ProviderType] = &[ $( ProviderType::$variant, )* ];

            /// The `spec.type` string.
            pub fn as_str(self) -> &'static str {
                match self { $( ProviderType::$variant => $name, )* }
            }

            /// The herald family that implements this type.
            pub fn family(self) -> Family {
                match self { $( ProviderType::$variant => $family, )* }
            }
        }

        impl FromStr for ProviderType {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $name => Ok(ProviderType::$variant), )*
                    other => Err(format!(
                        "unknown provider type {other:?}; known types: {}",
                        ProviderType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                }
            }
        }
    };
}

provider_types! {
    /// Plain JSON webhook.
    Generic = "generic" => Family::Generic,
    /// JSON webhook signed with HMAC-SHA256.
    GenericHmac = "generic-hmac" => Family::Generic,
    /// Slack incoming webhook or `chat.postMessage`.
    Slack = "slack" => Family::Chat,
    /// Discord (Slack-compatible endpoint).
    Discord = "discord" => Family::Chat,
    /// Microsoft Teams.
    MsTeams = "msteams" => Family::Chat,
    /// Rocket.Chat.
    Rocket = "rocket" => Family::Chat,
    /// Google Chat.
    GoogleChat = "googlechat" => Family::Chat,
    /// Webex.
    Webex = "webex" => Family::Chat,
    /// Telegram.
    Telegram = "telegram" => Family::Chat,
    /// Lark.
    Lark = "lark" => Family::Chat,
    /// Matrix.
    Matrix = "matrix" => Family::Chat,
    /// Zulip.
    Zulip = "zulip" => Family::Chat,
    /// Zoom.
    Zoom = "zoom" => Family::Chat,
    /// GitHub commit status.
    GitHub = "github" => Family::Git,
    /// GitHub `repository_dispatch`.
    GitHubDispatch = "githubdispatch" => Family::Git,
    /// GitHub pull-request comment.
    GitHubPullRequestComment = "githubpullrequestcomment" => Family::Git,
    /// GitLab commit status.
    GitLab = "gitlab" => Family::Git,
    /// GitLab merge-request comment.
    GitLabMergeRequestComment = "gitlabmergerequestcomment" => Family::Git,
    /// Gitea commit status.
    Gitea = "gitea" => Family::Git,
    /// Gitea pull-request comment.
    GiteaPullRequestComment = "giteapullrequestcomment" => Family::Git,
    /// Bitbucket Cloud build status.
    Bitbucket = "bitbucket" => Family::Git,
    /// Bitbucket Server / Data Center build status.
    BitbucketServer = "bitbucketserver" => Family::Git,
    /// Azure DevOps commit status.
    AzureDevOps = "azuredevops" => Family::Git,
    /// Sentry.
    Sentry = "sentry" => Family::Alerting,
    /// Opsgenie.
    Opsgenie = "opsgenie" => Family::Alerting,
    /// Prometheus Alertmanager.
    Alertmanager = "alertmanager" => Family::Alerting,
    /// Grafana annotations.
    Grafana = "grafana" => Family::Alerting,
    /// PagerDuty.
    PagerDuty = "pagerduty" => Family::Alerting,
    /// Datadog events.
    Datadog = "datadog" => Family::Alerting,
    /// incident.io alert events.
    IncidentIo = "incident.io" => Family::Alerting,
    /// Azure Event Hubs.
    AzureEventHub = "azureeventhub" => Family::EventHub,
    /// Google Cloud Pub/Sub.
    GooglePubSub = "googlepubsub" => Family::PubSub,
    /// NATS.
    Nats = "nats" => Family::Nats,
    /// OpenTelemetry traces over OTLP/HTTP.
    Otel = "otel" => Family::Alerting,
}

impl ProviderType {
    /// Whether this type posts commit statuses (Flux's gate of section 2.6 applies to it).
    pub fn is_commit_status(self) -> bool {
        matches!(
            self,
            ProviderType::GitHub
                | ProviderType::GitLab
                | ProviderType::Gitea
                | ProviderType::Bitbucket
                | ProviderType::BitbucketServer
                | ProviderType::AzureDevOps
        )
    }

    /// Whether this type comments on pull or merge requests.
    pub fn is_change_request(self) -> bool {
        matches!(
            self,
            ProviderType::GitHubPullRequestComment
                | ProviderType::GitLabMergeRequestComment
                | ProviderType::GiteaPullRequestComment
        )
    }

    /// Whether this type is `generic` or `generic-hmac`.
    pub fn is_generic(self) -> bool {
        matches!(self, ProviderType::Generic | ProviderType::GenericHmac)
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        assert_eq!(ProviderType::ALL.len(), 34);
        for t in ProviderType::ALL {
            assert_eq!(t.as_str().parse::<ProviderType>().unwrap(), *t);
        }
        let mut names: Vec<_> = ProviderType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 34);
    }

    #[test]
    fn families_and_features() {
        assert_eq!(ProviderType::GenericHmac.family(), Family::Generic);
        assert_eq!(Family::Generic.feature(), None);
        assert_eq!(ProviderType::Matrix.family().feature(), Some("chat"));
        assert_eq!(
            ProviderType::AzureEventHub.family().feature(),
            Some("eventhub")
        );
        assert_eq!(ProviderType::Nats.family().feature(), Some("nats"));
        assert_eq!(
            ProviderType::GooglePubSub.family().feature(),
            Some("googlepubsub")
        );
        assert_eq!(ProviderType::Otel.family(), Family::Alerting);
        assert_eq!(Family::Git.types().count(), 10);
        let err = "slak".parse::<ProviderType>().unwrap_err();
        assert!(
            err.contains("unknown provider type \"slak\"") && err.contains("slack"),
            "{err}"
        );
    }
}
