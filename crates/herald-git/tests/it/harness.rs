//! The cases every commit-status forge goes through, against a scripted loopback stub.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_core::{DeliveryError, Event, ProviderConfig, Severity};
use herald_git::{provider_id, status_id, status_provider_part};
use herald_http::RetryPolicy;
pub(crate) use herald_testkit::fixture;
use herald_testkit::{Recorded, Recorder, Reply, assert_golden};

/// The commit of the fixture event's revision.
pub(crate) const SHA: &str = "69b59063470310ebbd88a9156325322a124e55a3";
/// The commit the unicode case names through the `commit` annotation.
pub(crate) const SHA2: &str = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1";
/// A token distinctive enough to be searched for in messages.
pub(crate) const TOKEN: &str = "s3cr3t-7e1d2c3b4a5f-token";

/// The events of the standard cases, by case name.
pub(crate) fn event(case: &str) -> Event {
    let mut e = fixture("kustomization-revision.json");
    match case {
        "success" => {}
        "failure" => {
            e.severity = Severity::Error;
            e.reason = "HealthCheckFailed".into();
            e.message = "health check failed after 30s".into();
        }
        "progressing" => e.reason = "Progressing".into(),
        "bad-revision" => {
            e.metadata
                .insert("revision".into(), "main@sha1:not-a-commit".into());
        }
        "unicode" => {
            // A HelmRelease with non-ASCII names; the commit comes from the `commit`
            // annotation, which wins over `revision` (1.2.3, not a commit).
            e = fixture("unicode.json");
            e.metadata.insert("commit".into(), format!("sha1:{SHA2}"));
        }
        other => panic!("unknown case {other}"),
    }
    e
}

pub(crate) fn golden(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(path)
}

/// Method, target and the headers that matter, one request after the other.
pub(crate) fn summary(requests: &[Recorded]) -> String {
    let mut out = String::new();
    for r in requests {
        out.push_str(&format!("{} {}\n", r.method, r.path));
        for name in [
            "content-type",
            "accept",
            "authorization",
            "private-token",
            "x-github-api-version",
            "x-atlassian-token",
            "x-requested-with",
        ] {
            if let Some(v) = r.header(name) {
                out.push_str(&format!("{name}: {v}\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// What a forge already shows for a commit, for its stub to render.
#[derive(Debug)]
pub(crate) struct Existing {
    pub(crate) id: String,
    pub(crate) sha: String,
    pub(crate) state: &'static str,
    pub(crate) description: String,
    /// `lower(kind/name)`.
    pub(crate) name_lc: String,
    /// Azure DevOps genre.
    pub(crate) genre: String,
}

/// A forge's stub: its provider configuration and the answers of its status lookup.
#[derive(Debug)]
pub(crate) struct Forge {
    /// The golden directory.
    pub(crate) dir: &'static str,
    /// The configuration for a stub at `url` (with [`TOKEN`] as the credential).
    pub(crate) config: fn(&str) -> ProviderConfig,
    /// The lookup's answer when the commit has no status of ours.
    pub(crate) none: fn() -> Reply,
    /// The lookup's answer when the commit has this status.
    pub(crate) existing: fn(&Existing) -> Reply,
    /// The forge's state for a success.
    pub(crate) success_state: &'static str,
    /// The forge's state for a failure.
    pub(crate) failure_state: &'static str,
    /// Whether a 404 from the lookup means "none" (Bitbucket).
    pub(crate) lookup_404_is_none: bool,
    /// Gitea posts `pending` for Progressing events.
    pub(crate) progressing_posts: bool,
    /// The forge's answer to a created status.
    pub(crate) created: fn() -> Reply,
}

impl Forge {
    fn existing_for(&self, cfg: &ProviderConfig, event: &Event, state: &'static str) -> Existing {
        Existing {
            id: status_id(event, &status_provider_part(cfg)),
            sha: SHA.into(),
            state,
            description: herald_core::text::reason_words(&event.reason),
            name_lc: herald_core::text::name_lc(event),
            genre: match event.metadata.get("summary") {
                Some(s) => format!("fluxcd:{s}"),
                None => "fluxcd".into(),
            },
        }
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }
}

async fn run(
    forge: &Forge,
    event: &Event,
    replies: Vec<Reply>,
) -> (Result<(), DeliveryError>, Vec<Recorded>, String) {
    run_with(forge, |_| {}, event, replies).await
}

/// [`run`] with a change to the stub's configuration.
async fn run_with(
    forge: &Forge,
    change: impl FnOnce(&mut ProviderConfig),
    event: &Event,
    replies: Vec<Reply>,
) -> (Result<(), DeliveryError>, Vec<Recorded>, String) {
    let rec = Recorder::start().await;
    for r in replies {
        rec.push_reply(r);
    }
    let mut cfg = (forge.config)(&rec.url());
    change(&mut cfg);
    let notifier = herald_git::build_with_retry_policy(&cfg, fast()).unwrap();
    let result = notifier.post(event).await;
    (result, rec.requests(), rec.url())
}

/// Posts the case's event to a fresh stub that knows no status and checks the goldens.
async fn posts(forge: &Forge, case: &str) {
    let event = event(case);
    let (result, got, url) = run(forge, &event, vec![(forge.none)(), (forge.created)()]).await;
    result.unwrap_or_else(|e| panic!("{} {case}: {e}", forge.dir));
    assert_eq!(
        got.len(),
        2,
        "{} {case}: a lookup, then the status",
        forge.dir
    );
    assert_eq!(got[0].method, "GET");
    assert_eq!(got[1].method, "POST");
    assert!(got[1].header("user-agent").unwrap().starts_with("herald/"));
    assert_golden(
        &golden(&format!("{}/{case}.request.txt", forge.dir)),
        &summary(&got),
    );
    assert_golden(
        &golden(&format!("{}/{case}.json", forge.dir)),
        // The stub's port changes from run to run (Bitbucket Server posts the clone URL).
        &got[1].body_str().replace(&url, "http://127.0.0.1:PORT"),
    );
}

/// The UID of a Provider exported with `kubectl get -o yaml`.
const UID: &str = "0c9c2e41-d2f9-4f9b-9c41-bebc1984d67a";

/// A Provider with a `metadata.uid` uses Flux's status id, `<kind>/<name>/<first UID segment>`,
/// both to find the status the commit already has and to post a new one.
async fn uid_cases(forge: &Forge) {
    let with_uid = |cfg: &mut ProviderConfig| cfg.uid = Some(UID.into());
    let success = event("success");
    let mut probe = (forge.config)("http://127.0.0.1:1");
    with_uid(&mut probe);
    let same = forge.existing_for(&probe, &success, forge.success_state);
    assert_eq!(same.id, "kustomization/gitops-system/0c9c2e41");
    let (result, got, _) = run_with(forge, with_uid, &success, vec![(forge.existing)(&same)]).await;
    result.unwrap();
    assert_eq!(
        got.len(),
        1,
        "{}: the status with the UID id is there: {got:?}",
        forge.dir
    );

    // The status of the namespace/name id does not count for a Provider with a UID.
    let by_name = forge.existing_for(
        &(forge.config)("http://127.0.0.1:1"),
        &success,
        forge.success_state,
    );
    if !forge.lookup_404_is_none {
        let replies = vec![(forge.existing)(&by_name), (forge.created)()];
        let (result, got, _) = run_with(forge, with_uid, &success, replies).await;
        result.unwrap();
        assert_eq!(got.len(), 2, "{}: {got:?}", forge.dir);
        assert!(
            got[1].body_str().contains(&same.id),
            "{}: {}",
            forge.dir,
            got[1].body_str()
        );
    }
}

/// Every standard case of a commit-status forge.
pub(crate) async fn standard_cases(forge: &Forge) {
    posts(forge, "success").await;
    posts(forge, "failure").await;
    posts(forge, "unicode").await;

    // Progressing: nothing at all, or (Gitea) a pending status.
    if forge.progressing_posts {
        posts(forge, "progressing").await;
    } else {
        let (result, got, _) = run(forge, &event("progressing"), vec![]).await;
        result.unwrap();
        assert!(got.is_empty(), "{}: {got:?}", forge.dir);
    }

    // A bad revision: a clear error, no request.
    let (result, got, _) = run(forge, &event("bad-revision"), vec![]).await;
    let err = result.unwrap_err();
    assert!(got.is_empty(), "{}: {got:?}", forge.dir);
    assert!(!err.is_retryable());
    assert_golden(
        &golden(&format!("{}/bad-revision.error.txt", forge.dir)),
        &format!("{err}\n"),
    );

    // No revision at all.
    let mut bare = event("success");
    bare.metadata.clear();
    let (result, got, _) = run(forge, &bare, vec![]).await;
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("missing revision metadata"), "{err}");
    assert!(got.is_empty());

    // A trace event cannot be mapped to a state.
    let mut trace = event("success");
    trace.severity = Severity::Trace;
    let (result, got, _) = run(forge, &trace, vec![]).await;
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("can't convert to "), "{err}");
    assert!(got.is_empty());

    // The identical status is already there: the lookup only.
    let success = event("success");
    let probe = (forge.config)("http://127.0.0.1:1");
    let same = forge.existing_for(&probe, &success, forge.success_state);
    let (result, got, _) = run(forge, &success, vec![(forge.existing)(&same)]).await;
    result.unwrap();
    assert_eq!(got.len(), 1, "{}: {got:?}", forge.dir);
    assert_golden(
        &golden(&format!("{}/identical.request.txt", forge.dir)),
        &summary(&got),
    );

    // The same status with another state (the last run failed): posted again.
    let stale = forge.existing_for(&probe, &success, forge.failure_state);
    let (result, got, _) = run(
        forge,
        &success,
        vec![(forge.existing)(&stale), (forge.created)()],
    )
    .await;
    result.unwrap();
    assert_eq!(got.len(), 2, "{}: {got:?}", forge.dir);

    // A status with another id (another Provider) does not count.
    let mut other = forge.existing_for(&probe, &success, forge.success_state);
    other.id = format!("kustomization/gitops-system/{}", provider_id("other", "p"));
    if !forge.lookup_404_is_none {
        // (Bitbucket looks statuses up by key: another id is another key, i.e. a 404.)
        let (result, got, _) = run(
            forge,
            &success,
            vec![(forge.existing)(&other), (forge.created)()],
        )
        .await;
        result.unwrap();
        assert_eq!(got.len(), 2, "{}: {got:?}", forge.dir);
    }

    uid_cases(forge).await;

    // 5xx is retried.
    let (result, got, _) = run(
        forge,
        &success,
        vec![
            Reply::status(503).body("busy"),
            (forge.none)(),
            (forge.created)(),
        ],
    )
    .await;
    result.unwrap();
    assert_eq!(got.len(), 3, "{}: {got:?}", forge.dir);

    // 401: the forge's message, never the token, no retry.
    let (result, got, _) = run(
        forge,
        &success,
        vec![
            Reply::status(401)
                .header("content-type", "application/json")
                .body(format!(r#"{{"message":"Bad credentials: {TOKEN}"}}"#)),
        ],
    )
    .await;
    let err = result.unwrap_err();
    let text = format!("{err} {err:?}");
    assert_eq!(got.len(), 1, "{}: 401 is not retried", forge.dir);
    assert!(!err.is_retryable(), "{text}");
    assert_eq!(err.status(), Some(401));
    assert!(text.contains("Bad credentials"), "{text}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");

    // 404: reported, not retried (for Bitbucket the lookup's 404 means "none", so it is the
    // status POST that fails).
    let not_found = || {
        Reply::status(404)
            .header("content-type", "application/json")
            .body(r#"{"message":"Not Found"}"#)
    };
    let (result, got, _) = run(forge, &success, vec![not_found(), not_found()]).await;
    let err = result.unwrap_err();
    let want = if forge.lookup_404_is_none { 2 } else { 1 };
    assert_eq!(got.len(), want, "{}: {got:?}", forge.dir);
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("Not Found"), "{err}");

    // spec.timeout bounds the lookup and the post together.
    let rec = Recorder::start().await;
    rec.push_reply((forge.none)());
    rec.push_reply((forge.created)().delay(Duration::from_secs(3)));
    let mut cfg = (forge.config)(&rec.url());
    cfg.timeout = Duration::from_millis(400);
    let notifier = herald_git::build(&cfg).unwrap();
    let err = notifier.post(&success).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("timed out"), "{err}");
}

/// Builds `cfg` and returns the error text.
pub(crate) fn build_error(cfg: &ProviderConfig) -> String {
    herald_git::build(cfg).unwrap_err().to_string()
}
