//! The golden and recording harness the provider families' tests share, and the tidy check
//! that keeps a family's layout true to ARCHITECTURE.md's "adding a provider" recipe.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herald_core::{Event, Notifier, ProviderConfig, ProviderType};

use crate::{Recorded, Recorder, Reply, fixture, fixture_event};

/// The golden cases every HTTP provider renders: Flux's test event (`info`, one metadata
/// entry), an error with revision and summary metadata (`error`), the test event without
/// metadata (`no-metadata`), and unicode with markup-special characters (`<`, `>`, `&`, `"`,
/// U+2028, emoji; `unicode`).
pub fn golden_cases() -> Vec<(&'static str, Event)> {
    let mut bare = fixture_event();
    bare.metadata.clear();
    vec![
        ("info", fixture_event()),
        ("error", fixture("kustomization-error.json")),
        ("no-metadata", bare),
        ("unicode", fixture("unicode.json")),
    ]
}

/// `<crate_dir>/tests/golden/<name>`; pass `env!("CARGO_MANIFEST_DIR")`.
pub fn golden_path(crate_dir: &str, name: &str) -> PathBuf {
    Path::new(crate_dir).join("tests/golden").join(name)
}

/// A configuration of `ty` named `flux-system/<type>`, posting to `address`.
pub fn provider_config(ty: ProviderType, address: &str) -> ProviderConfig {
    ProviderConfig::new(ty, "flux-system", ty.as_str(), address)
}

/// Method, path and query, and the named headers that are present, one a line: the
/// `<case>.request.txt` goldens.
pub fn request_summary(r: &Recorded, headers: &[&str]) -> String {
    let mut out = format!("{} {}\n", r.method, r.path);
    for name in headers {
        if let Some(v) = r.header(name) {
            out.push_str(&format!("{name}: {v}\n"));
        }
    }
    out
}

/// A family's providers as its tests build them, for the checks every HTTP provider passes.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The types to check.
    pub types: &'static [ProviderType],
    /// A working configuration of a type against the server at `url` (second argument), with
    /// the token (third argument) wherever the type takes a credential.
    pub working_config: fn(ProviderType, &str, &str) -> ProviderConfig,
    /// Builds a notifier that retries twice, quickly.
    pub build: fn(&ProviderConfig) -> Arc<dyn Notifier>,
}

impl Family {
    /// Posts `event` and returns the one request `rec` got for it.
    pub async fn deliver(&self, cfg: &ProviderConfig, event: &Event, rec: &Recorder) -> Recorded {
        let before = rec.requests().len();
        (self.build)(cfg)
            .post(event)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", cfg.provider_type));
        let mut got = rec.wait_for(before + 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), before + 1, "exactly one request");
        got.pop().expect("one request")
    }

    /// A `4xx` is a permanent failure with its status, tried once.
    pub async fn client_errors_are_permanent_and_not_retried(&self) {
        for &ty in self.types {
            let rec = Recorder::start().await;
            rec.push_reply(Reply::status(400).body("bad request"));
            let notifier = (self.build)(&(self.working_config)(ty, &rec.url(), "tok-400-abcdef"));
            let err = notifier
                .post(&fixture("kustomization-error.json"))
                .await
                .expect_err("a 400 fails");
            assert!(!err.is_retryable(), "{ty}: {err}");
            assert_eq!(err.status(), Some(400), "{ty}");
            assert!(err.to_string().contains("HTTP 400"), "{ty}: {err}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(rec.requests().len(), 1, "{ty}: a 4xx is not retried");
        }
    }

    /// `503` and `429` are retried with the same request; exhausted retries are a transient
    /// failure with the last status.
    pub async fn server_errors_and_rate_limits_are_retried(&self) {
        for &ty in self.types {
            let rec = Recorder::start().await;
            rec.push_reply(Reply::status(503).body("down"));
            rec.push_reply(Reply::status(429).header("retry-after", "0"));
            let notifier = (self.build)(&(self.working_config)(ty, &rec.url(), "tok-503-abcdef"));
            notifier
                .post(&fixture("kustomization-error.json"))
                .await
                .unwrap_or_else(|e| panic!("{ty}: {e}"));
            let got = rec.requests();
            assert_eq!(got.len(), 3, "{ty}: 503, 429, then 200");
            assert_eq!(got[0].body, got[2].body, "{ty}: the same body each time");
            assert_eq!(got[0].path, got[2].path, "{ty}: the same path each time");

            let rec = Recorder::start().await;
            for _ in 0..3 {
                rec.push_reply(Reply::status(500).body("boom"));
            }
            let notifier = (self.build)(&(self.working_config)(ty, &rec.url(), "tok-500-abcdef"));
            let err = notifier
                .post(&fixture_event())
                .await
                .expect_err("three 500s fail");
            assert!(err.is_retryable(), "{ty}: {err}");
            assert_eq!(err.status(), Some(500), "{ty}");
            assert_eq!(rec.requests().len(), 3, "{ty}: 1 + 2 retries");
        }
    }

    /// A service that echoes the credential back (in its answer, in the path it names) never
    /// gets it into an error or a `Debug` output; the credential did reach the service (in
    /// the path, a header, a `Basic` header's credentials, or the body: PagerDuty's routing
    /// key).
    pub async fn failures_never_show_a_secret(&self, token: &str) {
        for &ty in self.types {
            let rec = Recorder::start().await;
            rec.push_reply(
                Reply::status(401).body(format!("invalid credentials {token} for /bot{token}/x")),
            );
            let mut cfg = (self.working_config)(ty, &rec.url(), token);
            cfg.address_from_secret = true;
            let notifier = (self.build)(&cfg);
            let err = notifier
                .post(&fixture("kustomization-error.json"))
                .await
                .expect_err("a 401 fails");
            let text = format!("{err} {err:?} {notifier:?}");
            for part in std::iter::once(token).chain(token.split(':').filter(|p| p.len() >= 8)) {
                assert!(!text.contains(part), "{ty}: {part:?} in {text}");
            }
            assert!(err.message().contains("401"), "{ty}: {err}");
            let got = rec.requests().pop().expect("one request");
            assert!(
                got.path.contains(token)
                    || got
                        .headers
                        .iter()
                        .any(|(_, v)| v.contains(token) || basic_credentials(v).contains(token))
                    || String::from_utf8_lossy(&got.body).contains(token),
                "{ty}: the credential never reached the service: {got:?}"
            );
        }
    }
}

/// The `user:password` of a `Basic` header value, or nothing.
fn basic_credentials(value: &str) -> String {
    use base64::Engine as _;
    value
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The layout ARCHITECTURE.md's recipe promises for every type of a family's table: a module
/// `src/<type>.rs` (`-` and `.` written `_`), a golden folder `tests/golden/<type>/` with at least one
/// `<case>.request.txt`, and a `## <type>` section in the crate's README.md. Every golden
/// folder belongs to a type of the table (`<type>` or a variant `<type>-<variant>`). Panics
/// with every missing piece; pass `env!("CARGO_MANIFEST_DIR")` and the family's table.
pub fn assert_family_layout(crate_dir: &str, types: &[ProviderType]) {
    let dir = Path::new(crate_dir);
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
    let mut missing = Vec::new();
    for ty in types {
        let module = dir
            .join("src")
            .join(format!("{}.rs", ty.as_str().replace(['-', '.'], "_")));
        if !module.is_file() {
            missing.push(format!("{ty}: no module {}", module.display()));
        }
        let goldens = dir.join("tests/golden").join(ty.as_str());
        let cases = std::fs::read_dir(&goldens)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".request.txt"))
                    .count()
            })
            .unwrap_or(0);
        if cases == 0 {
            missing.push(format!("{ty}: no golden case in {}", goldens.display()));
        }
        let heading = format!("## {ty}");
        if !readme
            .lines()
            .any(|l| l == heading || l.starts_with(&format!("{heading} ")))
        {
            missing.push(format!("{ty}: no `{heading}` section in README.md"));
        }
    }
    for entry in std::fs::read_dir(dir.join("tests/golden"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let known = types
            .iter()
            .any(|t| name == t.as_str() || name.starts_with(&format!("{t}-")));
        if entry.path().is_dir() && !known {
            missing.push(format!(
                "tests/golden/{name}: not a type of the family's table"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "the family at {crate_dir} does not follow the provider recipe:\n{}",
        missing.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_list_the_named_headers_present() {
        let r = Recorded {
            method: "POST".into(),
            path: "/x?y=1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Vec::new(),
            answered: 200,
        };
        assert_eq!(
            request_summary(&r, &["content-type", "authorization"]),
            "POST /x?y=1\ncontent-type: application/json\n"
        );
        assert_eq!(golden_cases().len(), 4);
    }

    #[test]
    fn the_layout_check_names_what_is_missing() {
        let dir =
            std::env::temp_dir().join(format!("herald-testkit-layout-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("tests/golden/slack")).unwrap();
        std::fs::create_dir_all(dir.join("tests/golden/stray")).unwrap();
        std::fs::write(dir.join("src/slack.rs"), "").unwrap();
        std::fs::write(dir.join("tests/golden/slack/info.request.txt"), "").unwrap();
        std::fs::write(dir.join("README.md"), "# x\n## slack\n").unwrap();
        let crate_dir = dir.to_str().unwrap().to_owned();
        let err = std::panic::catch_unwind(|| {
            assert_family_layout(&crate_dir, &[ProviderType::Slack, ProviderType::MsTeams]);
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("msteams: no module"), "{msg}");
        assert!(msg.contains("msteams: no golden case"), "{msg}");
        assert!(msg.contains("msteams: no `## msteams` section"), "{msg}");
        assert!(msg.contains("tests/golden/stray: not a type"), "{msg}");
        assert!(!msg.contains("slack"), "{msg}");
        std::fs::remove_dir_all(dir.join("tests/golden/stray")).unwrap();
        assert_family_layout(&crate_dir, &[ProviderType::Slack]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
