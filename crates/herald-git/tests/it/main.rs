//! herald-git's providers against loopback stubs that follow each forge's published REST API
//! reference (cited at the top of each module). No public forge is reachable from the tests.

// Test helpers unwrap: a panic there is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod azuredevops;
mod bitbucket;
mod bitbucketserver;
mod comments;
mod gitea;
mod giteapullrequestcomment;
mod github;
mod githubapp;
mod githubdispatch;
mod githubpullrequestcomment;
mod gitlab;
mod gitlabmergerequestcomment;
mod harness;
mod templates;

#[test]
fn register_adds_the_git_family_with_every_type() {
    use herald_core::{Family, Registry};
    let mut registry = Registry::new();
    herald_git::register(&mut registry);
    assert_eq!(registry.families().collect::<Vec<_>>(), [Family::Git]);
    assert_eq!(registry.types().count(), 10);
    assert_eq!(herald_git::TYPES.len(), Family::Git.types().count());
    for ty in herald_git::TYPES {
        assert!(registry.supports(ty), "{ty:?}");
        assert_eq!(ty.family(), Family::Git);
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
