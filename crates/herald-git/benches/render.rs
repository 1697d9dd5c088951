//! Rendering of the status, comment (or dispatch) payload per provider type (`cargo xtask bench`).

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;

use herald_core::{Event, ProviderConfig, ProviderType, SecretString};
use herald_git::Renderer;
use herald_testkit::measure;

const EVENT: &str = r#"{"involvedObject":{"kind":"Kustomization","namespace":"flux-system","name":"apps","uid":"0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a","apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-11-28T10:00:00Z","message":"Reconciliation finished in 1.2s, next run in 10m0s; applied revision main@sha1:69b59063470310ebbd88a9156325322a124e55a3 to 42 objects in 3 namespaces","reason":"ReconciliationSucceeded","metadata":{"revision":"main@sha1:69b59063470310ebbd88a9156325322a124e55a3","summary":"Production cluster","env":"prod","change_request":"42"},"reportingController":"kustomize-controller","reportingInstance":"kustomize-controller-7c7b47f5f-8bhrp"}"#;

fn main() {
    let event: Event = serde_json::from_str(EVENT).unwrap();
    let cases = [
        (ProviderType::GitHub, "https://github.com/org/app", "ghp_x"),
        (
            ProviderType::GitHubDispatch,
            "https://github.com/org/app",
            "ghp_x",
        ),
        (
            ProviderType::GitLab,
            "https://gitlab.com/group/sub/app",
            "glpat-x",
        ),
        (
            ProviderType::Gitea,
            "https://gitea.example.com/org/app",
            "x",
        ),
        (
            ProviderType::Bitbucket,
            "https://bitbucket.org/org/app",
            "user:app-password",
        ),
        (
            ProviderType::BitbucketServer,
            "https://bitbucket.example.com/scm/PROJ/app.git",
            "x",
        ),
        (
            ProviderType::AzureDevOps,
            "https://dev.azure.com/org/proj/_git/app",
            "pat",
        ),
        (
            ProviderType::GitHubPullRequestComment,
            "https://github.com/org/app",
            "ghp_x",
        ),
        (
            ProviderType::GitLabMergeRequestComment,
            "https://gitlab.com/group/sub/app",
            "glpat-x",
        ),
        (
            ProviderType::GiteaPullRequestComment,
            "https://gitea.example.com/org/app",
            "x",
        ),
    ];
    for (ty, address, token) in cases {
        let mut config = ProviderConfig::new(ty, "flux-system", "forge", address);
        config.token = Some(SecretString::new(token));
        // The comment types mark their comments with the Provider UID.
        config.uid = Some("0c9c2e41-d2f5-4e4b-9c1a-2a6b1f0e7d3c".into());
        let renderer = Renderer::new(&config).unwrap();
        assert!(renderer.render(&event).unwrap().is_some());
        let ns = measure(|| {
            black_box(renderer.render(black_box(&event)).unwrap());
        });
        println!("{} render: {ns:.0} ns/event", ty.as_str());
    }
}
