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

#[test]
fn tidy_every_type_has_a_module_goldens_and_a_readme_section() {
    herald_testkit::assert_family_layout(env!("CARGO_MANIFEST_DIR"), &herald_git::TYPES);
}

#[tokio::test]
async fn tokens_lose_surrounding_whitespace_as_in_every_family() {
    // The trailing newline of `echo token | kubectl create secret`: Go refuses it in a header,
    // so Flux never delivers; herald sends what Flux sends for the token without it.
    use herald_testkit::{Recorder, Reply};
    let rec = Recorder::start().await;
    rec.push_reply(Reply::status(200).body("[]"));
    rec.push_reply(Reply::status(201));
    let mut cfg = herald_core::ProviderConfig::new(
        herald_core::ProviderType::GitHub,
        "flux-system",
        "github",
        format!("{}/org/app", rec.url()),
    );
    cfg.token = Some(" ghp_token\n".into());
    herald_git::build(&cfg)
        .unwrap()
        .post(&harness::event("success"))
        .await
        .unwrap();
    let got = rec.requests();
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(r.header("authorization"), Some("Bearer ghp_token"));
    }
}
