//! herald-git's providers against loopback stubs that follow each forge's published REST API
//! reference (cited at the top of each module). No public forge is reachable from the tests.

// Test helpers unwrap: a panic there is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod azuredevops;
mod bitbucket;
mod bitbucketserver;
mod gitea;
mod github;
mod githubdispatch;
mod gitlab;
mod harness;

#[test]
fn register_adds_the_git_family_without_the_comment_types() {
    use herald_core::{BuildError, Family, ProviderConfig, ProviderType, Registry};
    let mut registry = Registry::new();
    herald_git::register(&mut registry);
    assert_eq!(registry.families().collect::<Vec<_>>(), [Family::Git]);
    let types: Vec<_> = registry.types().collect();
    assert_eq!(types.len(), 7);
    for ty in herald_git::TYPES {
        assert!(registry.supports(ty), "{ty:?}");
        assert_eq!(ty.family(), Some(Family::Git));
    }
    for ty in [
        ProviderType::GitHubPullRequestComment,
        ProviderType::GitLabMergeRequestComment,
        ProviderType::GiteaPullRequestComment,
    ] {
        let cfg = ProviderConfig::new(ty, "ns", "p", "https://github.com/o/r");
        assert!(matches!(
            registry.build(&cfg),
            Err(BuildError::NotImplemented { .. })
        ));
        assert!(matches!(
            herald_git::build(&cfg),
            Err(BuildError::NotImplemented { .. })
        ));
    }
}
