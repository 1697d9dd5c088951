//! `azuredevops` commit statuses against an Azure DevOps Server stub on loopback.
//!
//! API reference: <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/statuses/list?view=azure-devops-rest-6.0>
//! and <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/statuses/create?view=azure-devops-rest-6.0>
//! (`GET|POST {organization}/{project}/_apis/git/repositories/{repositoryId}/commits/{commitId}/statuses`;
//! the list answers `200` with `{"count":…,"value":[…]}`, the create `201`).

use herald_core::{ProviderConfig, ProviderType, SecretString};
use herald_testkit::{Recorder, Reply};

use crate::harness::{self, Existing, Forge, TOKEN, build_error};

fn config(url: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(
        ProviderType::AzureDevOps,
        "flux-system",
        "azure",
        format!("{url}/contoso/Platform%20Team/_git/fleet"),
    );
    cfg.token = Some(SecretString::new(TOKEN));
    cfg
}

fn existing(e: &Existing) -> Reply {
    let body = serde_json::json!({
        "count": 2,
        "value": [
            {"id": 2, "state": "pending", "description": "other genre",
             "context": {"name": e.id, "genre": "another-tool"}},
            {"id": 1, "state": e.state, "description": e.description,
             "context": {"name": e.id, "genre": e.genre},
             "creationDate": "2026-11-28T10:00:00Z"},
        ],
    });
    Reply::status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
}

pub(crate) const FORGE: Forge = Forge {
    dir: "azuredevops",
    config,
    none: || {
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"count":0,"value":[]}"#)
    },
    existing,
    success_state: "succeeded",
    failure_state: "error",
    lookup_404_is_none: false,
    progressing_posts: false,
    created: || {
        Reply::status(201)
            .header("content-type", "application/json")
            .body(r#"{"id":3}"#)
    },
};

#[tokio::test]
async fn standard_cases() {
    harness::standard_cases(&FORGE).await;
}

#[tokio::test]
async fn collection_paths_of_azure_devops_server() {
    let rec = Recorder::start().await;
    rec.push_reply((FORGE.none)());
    rec.push_reply(Reply::status(201));
    let mut cfg = config(&rec.url());
    cfg.address = SecretString::new(format!(
        "{}/tfs/DefaultCollection/proj/_git/repo",
        rec.url()
    ));
    herald_git::build(&cfg)
        .unwrap()
        .post(&harness::event("success"))
        .await
        .unwrap();
    assert_eq!(
        rec.requests()[1].path,
        format!(
            "/tfs/DefaultCollection/proj/_apis/git/repositories/repo/commits/{}/statuses",
            harness::SHA
        )
    );
}

#[test]
fn bad_configurations() {
    let mut cfg = config("http://127.0.0.1:1");
    cfg.token = None;
    assert!(build_error(&cfg).contains("personal access token is required"));
    let mut cfg = config("http://127.0.0.1:1");
    cfg.address = SecretString::new("https://dev.azure.com/org/proj/repo");
    assert!(build_error(&cfg).contains("expected <organization>/<project>/_git/<repository>"));
    cfg.address = SecretString::new("git@ssh.dev.azure.com:v3/org/proj/repo");
    assert!(herald_git::build(&cfg).is_ok());
    let mut cfg = config("http://127.0.0.1:1");
    cfg.service_account_name = Some("flux".into());
    assert!(build_error(&cfg).starts_with("spec.serviceAccountName:"));
}
