//! herald-git: the git-forge providers of herald (cargo feature `git`): commit statuses on
//! GitHub (`github`), GitLab (`gitlab`), Gitea (`gitea`), Bitbucket Cloud (`bitbucket`),
//! Bitbucket Server / Data Center (`bitbucketserver`) and Azure DevOps (`azuredevops`),
//! upserted pull/merge-request comments (`githubpullrequestcomment`,
//! `gitlabmergerequestcomment`, `giteapullrequestcomment`), and GitHub `repository_dispatch`
//! events (`githubdispatch`), wire-compatible with Flux's notification-controller. The GitHub
//! types authenticate with a token or as a GitHub App (JWT, installation token cached until
//! near expiry and fetched again after a `401`).
//!
//! A comment provider writes one comment per object and Provider on the change request named
//! by the event's `change_request` metadata, marked with the Provider's `metadata.uid` (which it
//! therefore requires), and edits that comment on later events.
//!
//! A commit-status provider reads the commit from the event's metadata (`commit`, then
//! `originRevision`, then `revision`; see [`commit_sha`]), skips `Progressing` events (Gitea
//! posts `pending` instead), describes the event by its reason in words
//! (`ReconciliationSucceeded` → `reconciliation succeeded`), reads the statuses the commit
//! already has and posts only when the forge does not already show the same one. The status id
//! is [`status_id`]: lowercase `<kind>/<name>/<provider id>`, where the provider id is, as in
//! Flux, the first segment of the Provider's `metadata.uid` when the manifest has one, else an
//! id derived from the Provider's namespace and name ([`provider_id`], [`status_provider_part`]).
//!
//! This crate is not an HTTP client (every request goes through [`herald_http`], so the
//! Provider's proxy, custom CA, client certificate and timeout apply), it does no event
//! matching (the daemon applies Flux's commit-status and change-request gates before a notifier
//! sees an event), and it does not implement workload-identity authentication.
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
mod comment;
mod common;
mod delivery;
mod gitea;
mod giteapullrequestcomment;
mod github;
mod githubapp;
mod githubdispatch;
mod githubpullrequestcomment;
mod gitlab;
mod gitlabmergerequestcomment;
mod status;
mod status_expr;

use herald_core::{BuildError, DeliveryError, Event, Family, ProviderConfig, ProviderType};
use herald_http::provider::{Render, Table};

pub use common::{commit_sha, provider_id, revision, status_id, status_provider_part};

/// The providers of this crate: one line per type.
const PROVIDERS: Table<10> = Table::new(
    Family::Git,
    [
        status::entry::<github::GitHub>(ProviderType::GitHub),
        githubdispatch::ENTRY,
        comment::entry::<githubpullrequestcomment::GitHubPullRequestComment>(
            ProviderType::GitHubPullRequestComment,
        ),
        status::entry::<gitlab::GitLab>(ProviderType::GitLab),
        comment::entry::<gitlabmergerequestcomment::GitLabMergeRequestComment>(
            ProviderType::GitLabMergeRequestComment,
        ),
        status::entry::<gitea::Gitea>(ProviderType::Gitea),
        comment::entry::<giteapullrequestcomment::GiteaPullRequestComment>(
            ProviderType::GiteaPullRequestComment,
        ),
        status::entry::<bitbucket::Bitbucket>(ProviderType::Bitbucket),
        status::entry::<bitbucketserver::BitbucketServer>(ProviderType::BitbucketServer),
        status::entry::<azuredevops::AzureDevOps>(ProviderType::AzureDevOps),
    ],
);

herald_http::family_api!(PROVIDERS);

/// The request body a provider would post for an event, without any network I/O: for
/// benchmarks, tests and `herald` dry runs.
#[derive(Debug)]
pub struct Renderer {
    render: Box<dyn Render>,
}

impl Renderer {
    /// Validates the configuration as [`build`] does (minus the HTTP client).
    pub fn new(config: &ProviderConfig) -> Result<Self, BuildError> {
        Ok(Renderer {
            render: PROVIDERS.renderer(config)?,
        })
    }

    /// The body of the status (or dispatch) `POST`; `Ok(None)` when the event posts nothing
    /// (a `Progressing` event for most forges). Errors are those [`herald_core::Notifier::post`] would
    /// return before any request (missing or malformed revision, unknown severity).
    pub fn render(&self, event: &Event) -> Result<Option<Vec<u8>>, DeliveryError> {
        self.render.render(event)
    }
}
