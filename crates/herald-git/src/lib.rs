//! herald-git: the git-forge providers of herald (cargo feature `git`): commit statuses on
//! GitHub (`github`), GitLab (`gitlab`), Gitea (`gitea`), Bitbucket Cloud (`bitbucket`),
//! Bitbucket Server / Data Center (`bitbucketserver`) and Azure DevOps (`azuredevops`), and
//! GitHub `repository_dispatch` events (`githubdispatch`), wire-compatible with Flux's
//! notification-controller.
//!
//! A commit-status provider reads the commit from the event's metadata (`commit`, then
//! `originRevision`, then `revision`; see [`commit_sha`]), skips `Progressing` events (Gitea
//! posts `pending` instead), describes the event by its reason in words
//! (`ReconciliationSucceeded` → `reconciliation succeeded`), reads the statuses the commit
//! already has and posts only when the forge does not already show the same one. The status id
//! is [`status_id`]: lowercase `<kind>/<name>/<provider id>`, where herald derives the provider
//! id from the Provider's namespace and name ([`provider_id`]), having no Kubernetes UID.
//!
//! This crate is not an HTTP client (every request goes through [`herald_http`], so the
//! Provider's proxy, custom CA, client certificate and timeout apply), it does no event
//! matching (the daemon applies Flux's commit-status gate before a notifier sees an event),
//! and it implements neither the pull-request comment types nor GitHub App or workload-identity
//! authentication.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use herald_testkit::{Recorder, Reply};
//! use std::path::Path;
//!
//! // A stand-in for GitHub Enterprise on loopback: no statuses yet, then "201 Created".
//! let forge = Recorder::start().await;
//! forge.push_reply(Reply::status(200).body("[]"));
//! forge.push_reply(Reply::status(201).body("{}"));
//!
//! let manifests = format!(r#"
//! apiVersion: notification.toolkit.fluxcd.io/v1beta3
//! kind: Provider
//! metadata: {{name: github-status, namespace: flux-system}}
//! spec:
//!   type: github
//!   address: {}/org/app
//!   secretRef: {{name: github-token}}
//! ---
//! apiVersion: v1
//! kind: Secret
//! metadata: {{name: github-token, namespace: flux-system}}
//! stringData: {{token: ghp_example}}
//! "#, forge.url());
//! let (set, errors) = herald_core::manifest::parse_str(Path::new("inline.yaml"), &manifests);
//! assert!(errors.is_empty(), "{errors:?}");
//! let config = set.provider_config(&set.providers[0]).unwrap();
//!
//! let mut registry = herald_core::Registry::new();
//! herald_git::register(&mut registry);
//! let notifier = registry.build(&config).unwrap();
//!
//! let event: herald_core::Event = serde_json::from_str(r#"{
//!   "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
//!   "severity": "info", "timestamp": "2026-11-28T10:00:00Z",
//!   "message": "Reconciliation finished", "reason": "ReconciliationSucceeded",
//!   "metadata": {"revision": "main@sha1:69b59063470310ebbd88a9156325322a124e55a3"},
//!   "reportingController": "kustomize-controller"}"#).unwrap();
//! notifier.post(&event).await.unwrap();
//!
//! let sent = forge.requests();
//! assert_eq!(sent[1].path,
//!     "/api/v3/repos/org/app/statuses/69b59063470310ebbd88a9156325322a124e55a3");
//! assert_eq!(sent[1].body_str(), format!(
//!     r#"{{"state":"success","description":"reconciliation succeeded","context":"kustomization/apps/{}"}}"#,
//!     herald_git::provider_id("flux-system", "github-status")));
//! # }
//! ```

mod azuredevops;
mod bitbucket;
mod bitbucketserver;
mod common;
mod gitea;
mod github;
mod gitlab;

use std::sync::Arc;
use std::time::Duration;

use herald_core::{
    BuildError, DeliveryError, Event, Family, Notifier, NotifyFuture, ProviderConfig, ProviderType,
    Registry, TlsMaterial,
};
use herald_http::{HttpClient, RetryPolicy};

pub use common::{commit_sha, provider_id, revision, status_id};

/// The provider types this crate implements.
pub const TYPES: [ProviderType; 7] = [
    ProviderType::GitHub,
    ProviderType::GitHubDispatch,
    ProviderType::GitLab,
    ProviderType::Gitea,
    ProviderType::Bitbucket,
    ProviderType::BitbucketServer,
    ProviderType::AzureDevOps,
];

/// Registers the `git` family and its types (not the pull-request comment types, which herald
/// does not implement yet).
pub fn register(registry: &mut Registry) {
    registry.add_family(Family::Git);
    for ty in TYPES {
        registry.register(ty, build);
    }
}

/// Builds a notifier of one of [`TYPES`] from its configuration.
pub fn build(config: &ProviderConfig) -> Result<Arc<dyn Notifier>, BuildError> {
    build_with_retry_policy(config, RetryPolicy::default())
}

/// [`build`] with another retry policy than Flux's (2 s doubling, 4 retries).
pub fn build_with_retry_policy(
    config: &ProviderConfig,
    policy: RetryPolicy,
) -> Result<Arc<dyn Notifier>, BuildError> {
    let forge = Forge::from_config(config)?;
    let client = if matches!(forge, Forge::GitHub(_) | Forge::Dispatch(_))
        && github::is_github_com(config)
        && !config.tls.is_empty()
    {
        // As Flux: custom TLS material is for GitHub Enterprise; github.com uses the system
        // roots, even when the Secret carries a `ca.crt` for another purpose.
        let mut public = config.clone();
        public.tls = TlsMaterial::default();
        HttpClient::from_config(&public)?
    } else {
        HttpClient::from_config(config)?
    };
    Ok(Arc::new(GitNotifier {
        forge,
        client: client.with_retry_policy(policy),
        id: config.id(),
        timeout: config.timeout,
    }))
}

/// The request body a provider would post for an event, without any network I/O: for
/// benchmarks, tests and `herald` dry runs.
#[derive(Debug)]
pub struct Renderer {
    forge: Forge,
}

impl Renderer {
    /// Validates the configuration as [`build`] does (minus the HTTP client).
    pub fn new(config: &ProviderConfig) -> Result<Self, BuildError> {
        Ok(Renderer {
            forge: Forge::from_config(config)?,
        })
    }

    /// The body of the status (or dispatch) `POST`; `Ok(None)` when the event posts nothing
    /// (a `Progressing` event for most forges). Errors are those [`Notifier::post`] would
    /// return before any request (missing or malformed revision, unknown severity).
    pub fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        Ok(match &self.forge {
            Forge::GitHub(f) => f.plan(event)?.map(|p| p.body),
            Forge::Dispatch(_) => Some(github::Dispatch::render(event)?),
            Forge::GitLab(f) => f.plan(event)?.map(|p| p.body),
            Forge::Gitea(f) => f.plan(event)?.map(|p| p.body),
            Forge::Bitbucket(f) => f.plan(event)?.map(|p| p.body),
            Forge::BitbucketServer(f) => f.plan(event)?.map(|p| p.body),
            Forge::AzureDevOps(f) => f.plan(event)?.map(|p| p.body),
        })
    }
}

/// One configured forge.
#[derive(Debug)]
enum Forge {
    GitHub(github::Status),
    Dispatch(github::Dispatch),
    GitLab(gitlab::GitLab),
    Gitea(gitea::Gitea),
    Bitbucket(bitbucket::Bitbucket),
    BitbucketServer(bitbucketserver::BitbucketServer),
    AzureDevOps(azuredevops::AzureDevOps),
}

impl Forge {
    fn from_config(config: &ProviderConfig) -> Result<Self, BuildError> {
        let ty = config.provider_type;
        if config.commit_status_expr.is_some() && ty.is_commit_status() {
            return Err(BuildError::invalid(
                "spec.commitStatusExpr",
                "CEL expressions are not supported by herald; remove the field to use the \
                 default status id <kind>/<name>/<provider id>",
            ));
        }
        if config.service_account_name.is_some() {
            return Err(BuildError::invalid(
                "spec.serviceAccountName",
                "workload identity is not supported by herald's git providers; use a token in \
                 the Secret",
            ));
        }
        Ok(match ty {
            ProviderType::GitHub => Forge::GitHub(github::Status::from_config(config)?),
            ProviderType::GitHubDispatch => Forge::Dispatch(github::Dispatch::from_config(config)?),
            ProviderType::GitLab => Forge::GitLab(gitlab::GitLab::from_config(config)?),
            ProviderType::Gitea => Forge::Gitea(gitea::Gitea::from_config(config)?),
            ProviderType::Bitbucket => Forge::Bitbucket(bitbucket::Bitbucket::from_config(config)?),
            ProviderType::BitbucketServer => {
                Forge::BitbucketServer(bitbucketserver::BitbucketServer::from_config(config)?)
            }
            ProviderType::AzureDevOps => {
                Forge::AzureDevOps(azuredevops::AzureDevOps::from_config(config)?)
            }
            other => {
                return Err(BuildError::NotImplemented {
                    ty: other,
                    family: Family::Git,
                });
            }
        })
    }
}

/// A notifier of any of the types.
#[derive(Debug)]
struct GitNotifier {
    forge: Forge,
    client: HttpClient,
    /// `namespace/name` of the Provider, for messages.
    id: String,
    /// `spec.timeout`: bounds the whole delivery (listing and posting, retries included).
    timeout: Duration,
}

impl GitNotifier {
    async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let c = &self.client;
        match &self.forge {
            Forge::GitHub(f) => match f.plan(event)? {
                Some(plan) => f.deliver(c, plan).await,
                None => Ok(()),
            },
            Forge::Dispatch(f) => f.deliver(c, github::Dispatch::render(event)?).await,
            Forge::GitLab(f) => match f.plan(event)? {
                Some(plan) => f.deliver(c, plan).await,
                None => Ok(()),
            },
            Forge::Gitea(f) => match f.plan(event)? {
                Some(plan) => f.deliver(c, plan).await,
                None => Ok(()),
            },
            Forge::Bitbucket(f) => match f.plan(event)? {
                Some(plan) => f.deliver(c, plan).await,
                None => Ok(()),
            },
            Forge::BitbucketServer(f) => match f.plan(event)? {
                Some(plan) => f.deliver(c, plan).await,
                None => Ok(()),
            },
            Forge::AzureDevOps(f) => match f.plan(event)? {
                Some(plan) => f.deliver(c, plan).await,
                None => Ok(()),
            },
        }
    }
}

impl Notifier for GitNotifier {
    fn post<'a>(&'a self, event: &'a Event) -> NotifyFuture<'a> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.deliver(event)).await {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::transient(format!(
                    "provider {}: timed out after {:?} (spec.timeout bounds the whole delivery: \
                     reading the existing statuses and posting)",
                    self.id, self.timeout
                ))),
            }
        })
    }
}
