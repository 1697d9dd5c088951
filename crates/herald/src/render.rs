//! `herald render`: the exact requests one Provider would send for one event, printed, with
//! secrets masked; nothing is sent and no connection is opened.
//!
//! It reads the manifests as `herald send` does, prepares the event with Flux's metadata
//! pipeline (unless `--raw`) for one Alert, and asks the Provider's notifier for its
//! [`herald_core::Notifier::preview`]: the same preparation a delivery runs. Which Alert:
//! `--alert`, else the one Alert that names the Provider when there is exactly one, else none
//! (the event as `herald send` delivers it). The Alert's own matching (severity, sources,
//! inclusion) is not applied: render shows what the Provider would send if the Alert delivered
//! the event.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use herald_core::manifest::{Alert, Catalog, Kind, ManifestErrors, ObjectKey};
use herald_core::{Event, Preview, metadata};

use crate::send::{namespace_name, read_event, ready_provider};
use crate::{ManifestArgs, output, registry, report};

#[derive(Debug, clap::Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    manifests: ManifestArgs,

    /// The provider whose requests to show, as NAMESPACE/NAME (or NAME in namespace `default`).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    provider: String,

    /// The Alert that delivers the event (its summary and eventMetadata apply, and providers
    /// that read the Alert see it), as NAMESPACE/NAME. Default: the one Alert naming the
    /// provider, if there is exactly one; otherwise none.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    alert: Option<String>,

    /// The Flux event, as a JSON file, or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    event: PathBuf,

    /// Use the event's metadata as given, without Flux's cleanup and prefix stripping.
    #[arg(long)]
    raw: bool,

    /// Output: an HTTP-like listing, or one JSON object per request and line.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Method and URL, headers, a blank line and the body, per request.
    Text,
    /// One object per line: {"method","url","headers":[[name,value],...],"body"}, with
    /// "body_base64" instead of "body" for a body that is not UTF-8.
    Json,
}

pub(crate) fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::new(
        herald_daemon::manifests::read(&args.manifests.paths),
        &registry::registry(),
    );
    let (namespace, name) = namespace_name(&args.provider);
    let Some(ready) = ready_provider(&catalog, namespace, name, "nothing rendered") else {
        return Ok(ExitCode::FAILURE);
    };
    let alert = match choose_alert(&catalog, namespace, name, args.alert.as_deref()) {
        Ok(alert) => alert,
        Err(why) => {
            report(&why);
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut event = read_event(&args.event)?;
    if !args.raw {
        prepare(&mut event, alert);
    }
    let object = alert.map_or(serde_json::Value::Null, |a| a.object.clone());
    let previews = match ready.notifier.preview(&event, &object) {
        Ok(previews) => previews,
        Err(e) => {
            report(&format!(
                "error: Provider {namespace}/{name} ({}) would send nothing: {}",
                ready.config.provider_type,
                ready.masker.mask(e.message())
            ));
            return Ok(ExitCode::FAILURE);
        }
    };
    if previews.is_empty() {
        report(&format!(
            "nothing would be sent: Provider {namespace}/{name} ({}) sends nothing for this event",
            ready.config.provider_type
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let shown = match args.format {
        Format::Text => text(&previews),
        Format::Json => json_lines(&previews),
    };
    output(shown.trim_end_matches('\n'));
    Ok(ExitCode::SUCCESS)
}

/// The Alert whose combination applies: `requested` (which must name this Provider), else
/// the only Alert naming the Provider, else none. Every choice but an explicit one is said on
/// stderr, so that the output is never a surprise.
fn choose_alert<'c>(
    catalog: &'c Catalog,
    namespace: &str,
    provider: &str,
    requested: Option<&str>,
) -> Result<Option<&'c Alert>, String> {
    let names_provider = |a: &Alert| a.namespace == namespace && a.spec.provider_ref == provider;
    let Some(requested) = requested else {
        let candidates: Vec<&Alert> = catalog
            .matchable_alerts()
            .filter(|&a| names_provider(a))
            .collect();
        return Ok(match candidates.as_slice() {
            [only] => {
                report(&format!(
                    "using Alert {}/{}, the one Alert of Provider {namespace}/{provider} \
                     (--alert to choose)",
                    only.namespace, only.name
                ));
                Some(*only)
            }
            _ => {
                report(&format!(
                    "no Alert applied ({} Alerts name Provider {namespace}/{provider}; --alert \
                     to choose one)",
                    candidates.len()
                ));
                None
            }
        });
    };
    let (alert_ns, alert_name) = namespace_name(requested);
    let key = ObjectKey::new(Kind::Alert, alert_ns, alert_name);
    let Some(status) = catalog.status(&key) else {
        return Err(format!(
            "error: no Alert {alert_ns}/{alert_name} in the manifests; nothing rendered"
        ));
    };
    let Some(alert) = catalog
        .matchable_alerts()
        .find(|a| a.namespace == alert_ns && a.name == alert_name)
    else {
        return Err(format!(
            "{}\nerror: Alert {alert_ns}/{alert_name} is not ready; nothing rendered",
            ManifestErrors(status.problems.clone())
        ));
    };
    if !names_provider(alert) {
        return Err(format!(
            "error: Alert {alert_ns}/{alert_name} sends to Provider {}/{}, not \
             {namespace}/{provider}; nothing rendered",
            alert.namespace, alert.spec.provider_ref
        ));
    }
    Ok(Some(alert))
}

/// Flux's metadata pipeline as the daemon runs it for `alert` (or without one); `herald send`
/// runs it too.
pub(crate) fn prepare(event: &mut Event, alert: Option<&Alert>) {
    match alert {
        None => metadata::prepare_without_alert(event),
        Some(alert) => {
            metadata::cleanup(event);
            metadata::drop_token(event);
            metadata::combine(
                event,
                &alert.spec.event_metadata,
                alert.spec.summary.as_deref(),
            );
        }
    }
}

/// The HTTP-like listing: `METHOD URL`, the headers, a blank line and the body, per request;
/// several requests are numbered.
fn text(previews: &[Preview]) -> String {
    let mut out = String::new();
    for (i, p) in previews.iter().enumerate() {
        if previews.len() > 1 {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "# request {} of {}", i + 1, previews.len());
        }
        let _ = writeln!(out, "{} {}", p.method, p.url);
        for (name, value) in &p.headers {
            let _ = writeln!(out, "{name}: {value}");
        }
        out.push('\n');
        match std::str::from_utf8(&p.body) {
            Ok(body) => out.push_str(body),
            Err(_) => {
                let _ = write!(
                    out,
                    "<{} bytes, not UTF-8; base64: {}>",
                    p.body.len(),
                    base64::engine::general_purpose::STANDARD.encode(&p.body)
                );
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// One JSON object per request and line, keys in the order `method`, `url`, `headers`,
/// `body` (or `body_base64`).
fn json_lines(previews: &[Preview]) -> String {
    let mut out = String::new();
    for p in previews {
        let (body_key, body) = match std::str::from_utf8(&p.body) {
            Ok(text) => ("body", text.to_owned()),
            Err(_) => (
                "body_base64",
                base64::engine::general_purpose::STANDARD.encode(&p.body),
            ),
        };
        let headers: Vec<[&str; 2]> = p
            .headers
            .iter()
            .map(|(n, v)| [n.as_str(), v.as_str()])
            .collect();
        let _ = writeln!(
            out,
            "{{\"method\":{},\"url\":{},\"headers\":{},\"{body_key}\":{}}}",
            serde_json::Value::from(p.method.as_str()),
            serde_json::Value::from(p.url.as_str()),
            serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into()),
            serde_json::Value::from(body),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(body: &[u8]) -> Preview {
        Preview {
            method: "POST".into(),
            url: "https://h.example/hook/*****".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Authorization".into(), "*****".into()),
            ],
            body: body.to_vec(),
        }
    }

    #[test]
    fn text_is_an_http_like_listing_numbered_when_several() {
        assert_eq!(
            text(&[preview(br#"{"a":"b"}"#)]),
            "POST https://h.example/hook/*****\nContent-Type: application/json\n\
             Authorization: *****\n\n{\"a\":\"b\"}\n"
        );
        let two = text(&[preview(b"one\n"), preview(&[0xff, 0x01])]);
        assert_eq!(
            two,
            "# request 1 of 2\nPOST https://h.example/hook/*****\nContent-Type: \
             application/json\nAuthorization: *****\n\none\n\n# request 2 of 2\nPOST \
             https://h.example/hook/*****\nContent-Type: application/json\nAuthorization: \
             *****\n\n<2 bytes, not UTF-8; base64: /wE=>\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line_with_base64_for_binary_bodies() {
        let out = json_lines(&[preview(b"{\"a\":\"\xc3\xa9\"}"), preview(&[0xff])]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"method":"POST","url":"https://h.example/hook/*****","headers":[["Content-Type","application/json"],["Authorization","*****"]],"body":"{\"a\":\"é\"}"}"#,
                r#"{"method":"POST","url":"https://h.example/hook/*****","headers":[["Content-Type","application/json"],["Authorization","*****"]],"body_base64":"/w=="}"#,
            ]
        );
    }

    /// A sample Provider of one type: its `spec` lines, its Secret's `stringData` lines, and
    /// the secret values its preview must never show.
    struct Sample {
        ty: &'static str,
        name: &'static str,
        spec: String,
        data: String,
        secrets: Vec<String>,
    }

    fn sample(ty: &'static str, spec: &str, data: &str, secrets: &[&str]) -> Sample {
        Sample {
            ty,
            name: ty,
            spec: spec.to_owned(),
            data: data.to_owned(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The private key as `stringData` lines, and its lines as secrets.
    fn pem_lines(key: &str) -> (String, Vec<String>) {
        let data = herald_testkit::RSA_PKCS8_PEM
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>();
        let secrets = herald_testkit::RSA_PKCS8_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned)
            .collect();
        (format!("  {key}: |\n{data}"), secrets)
    }

    /// One sample of every type herald knows, with distinctive secrets in every place a
    /// Secret can hold one.
    fn samples() -> Vec<Sample> {
        let mut all = vec![
            sample(
                "generic",
                "",
                "  address: https://hooks.example/hook/gen-addr-tok-1a2b\n  headers: |\n    X-Api-Key: gen-header-val-3c4d\n",
                &["gen-addr-tok-1a2b", "gen-header-val-3c4d"],
            ),
            sample(
                "generic-hmac",
                "  address: https://hooks.example/signed\n",
                "  token: hmac-key-9c0d\n",
                &["hmac-key-9c0d"],
            ),
            sample(
                "slack",
                "",
                "  address: https://hooks.slack.com/services/T01/B02/slack-hook-secret-1e2f\n  token: xoxb-slack-token-3a4b\n",
                &["slack-hook-secret-1e2f", "xoxb-slack-token-3a4b"],
            ),
            sample(
                "discord",
                "",
                "  address: https://discord.com/api/webhooks/1234/discord-hook-secret-5c6d\n",
                &["discord-hook-secret-5c6d"],
            ),
            sample(
                "msteams",
                "",
                "  address: https://teams.example/webhookb2/msteams-secret-7e8f\n",
                &["msteams-secret-7e8f"],
            ),
            sample(
                "rocket",
                "",
                "  address: https://rocket.example/hooks/rocket-secret-9a0b\n",
                &["rocket-secret-9a0b"],
            ),
            sample(
                "googlechat",
                "",
                "  address: \"https://chat.googleapis.com/v1/spaces/AAA/messages?key=gchat-key-1c2d&token=gchat-token-3e4f\"\n",
                &["gchat-key-1c2d", "gchat-token-3e4f"],
            ),
            sample(
                "webex",
                "  address: https://webexapis.com/v1/messages\n  channel: room-1\n",
                "  token: webex-token-5a6b\n",
                &["webex-token-5a6b"],
            ),
            sample(
                "telegram",
                "  address: https://api.telegram.org\n  channel: \"@herald\"\n",
                "  token: \"123456:telegram-token-7c8d\"\n",
                &["telegram-token-7c8d"],
            ),
            sample(
                "lark",
                "",
                "  address: https://open.feishu.cn/open-apis/bot/v2/hook/lark-secret-9e0f\n",
                &["lark-secret-9e0f"],
            ),
            sample(
                "matrix",
                "  address: https://matrix.example\n  channel: \"!room:example.org\"\n",
                "  token: matrix-token-1a3c\n",
                &["matrix-token-1a3c"],
            ),
            sample(
                "zulip",
                "  address: https://flux.zulipchat.com\n  channel: deployments/flux\n",
                "  username: flux-bot@flux.zulipchat.com\n  password: zulip-api-key-2b4d\n",
                &["zulip-api-key-2b4d"],
            ),
            sample(
                "zoom",
                "",
                "  address: https://integrations.zoom.us/chat/webhooks/incomingwebhook/zoom-hook-id-3c5e\n  token: zoom-verify-4d6f\n",
                &["zoom-hook-id-3c5e", "zoom-verify-4d6f"],
            ),
            sample(
                "github",
                "  address: https://github.com/acme/webapp\n",
                "  token: ghp-token-2b4d\n",
                &["ghp-token-2b4d"],
            ),
            sample(
                "githubdispatch",
                "  address: https://github.com/acme/webapp\n",
                "  token: ghd-token-8b0d\n",
                &["ghd-token-8b0d"],
            ),
            sample(
                "githubpullrequestcomment",
                "  address: https://github.com/acme/webapp\n",
                "  token: ghc-token-5e7a\n",
                &["ghc-token-5e7a"],
            ),
            sample(
                "gitlab",
                "  address: https://gitlab.com/acme/webapp\n",
                "  token: glpat-token-3c5e\n",
                &["glpat-token-3c5e"],
            ),
            sample(
                "gitlabmergerequestcomment",
                "  address: https://gitlab.com/acme/webapp\n",
                "  token: glmr-token-6f8b\n",
                &["glmr-token-6f8b"],
            ),
            sample(
                "gitea",
                "  address: https://gitea.example/acme/webapp\n",
                "  token: gitea-token-4d6f\n",
                &["gitea-token-4d6f"],
            ),
            sample(
                "giteapullrequestcomment",
                "  address: https://gitea.example/acme/webapp\n",
                "  token: giteapr-token-7a9c\n",
                &["giteapr-token-7a9c"],
            ),
            sample(
                "bitbucket",
                "  address: https://bitbucket.org/acme/webapp\n",
                "  token: \"bbuser:bb-app-pass-5e7a\"\n",
                &["bb-app-pass-5e7a"],
            ),
            sample(
                "bitbucketserver",
                "  address: https://bitbucket.example/scm/acme/webapp.git\n",
                "  username: bbs-user\n  password: bbs-pass-6f8b\n",
                &["bbs-pass-6f8b"],
            ),
            sample(
                "azuredevops",
                "  address: https://dev.azure.com/org/project/_git/repo\n",
                "  token: ado-pat-7a9c\n",
                &["ado-pat-7a9c"],
            ),
            sample(
                "alertmanager",
                "  address: https://am.example/api/v2/alerts\n",
                "  username: am-user\n  password: am-pass-9c1e\n",
                &["am-pass-9c1e"],
            ),
            sample(
                "opsgenie",
                "  address: https://api.opsgenie.com/v2/alerts\n",
                "  token: opsgenie-key-0d2f\n",
                &["opsgenie-key-0d2f"],
            ),
            sample(
                "grafana",
                "  address: https://grafana.example/api/annotations\n",
                "  token: grafana-token-1e3a\n",
                &["grafana-token-1e3a"],
            ),
            sample(
                "sentry",
                "",
                "  address: https://sentry-dsn-key-2f4b@sentry.example/42\n",
                &["sentry-dsn-key-2f4b"],
            ),
            sample(
                "pagerduty",
                "  address: https://events.pagerduty.com\n  channel: pd-routing-key\n",
                "  headers: |\n    X-Extra: pd-header-val-3a5c\n",
                &["pd-header-val-3a5c"],
            ),
            sample(
                "datadog",
                "  address: https://api.datadoghq.com\n",
                "  token: dd-api-key-4b6d\n",
                &["dd-api-key-4b6d"],
            ),
            sample(
                "incident.io",
                "  address: https://api.incident.io/v2/alert_events/http/src-1\n",
                "  token: incident-token-5c7e\n",
                &["incident-token-5c7e"],
            ),
            sample(
                "otel",
                "  address: https://otel.example/v1/traces\n",
                "  token: otel-token-8a1c\n  headers: |\n    X-Scope-OrgID: otel-tenant-9b2d\n",
                &["otel-token-8a1c", "otel-tenant-9b2d"],
            ),
            sample(
                "azureeventhub",
                "",
                "  address: \"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=eh-sas-key-3a5c;EntityPath=hub\"\n",
                &["eh-sas-key-3a5c"],
            ),
            sample(
                "nats",
                "  address: nats://127.0.0.1:4222\n  channel: flux.events\n",
                "  username: nats-user\n  password: nats-pass-6d8f\n",
                &["nats-pass-6d8f"],
            ),
        ];
        let (key, secrets) = pem_lines("githubAppPrivateKey");
        all.push(Sample {
            ty: "github",
            name: "github-app",
            spec: "  address: https://github.com/acme/webapp\n".to_owned(),
            data: format!("  githubAppID: \"1\"\n  githubAppInstallationID: \"2\"\n{key}"),
            secrets,
        });
        let account = serde_json::json!({
            "type": "service_account",
            "private_key_id": "pubsub-key-id-7e9a",
            "private_key": herald_testkit::RSA_PKCS8_PEM,
            "client_email": "flux@my-project.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        let (_, mut secrets) = pem_lines("");
        secrets.push("pubsub-key-id-7e9a".to_owned());
        all.push(Sample {
            ty: "googlepubsub",
            name: "googlepubsub",
            spec: "  address: my-project\n  channel: flux-events\n".to_owned(),
            data: format!(
                "  token: {}\n",
                serde_json::Value::from(account.to_string())
            ),
            secrets,
        });
        all
    }

    fn manifests(samples: &[&Sample]) -> String {
        samples
            .iter()
            .map(|c| {
                format!(
                    "---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\n\
                     metadata: {{name: {name}, namespace: apps, uid: 6f1c2a3b-uid-{name}}}\n\
                     spec:\n  type: {ty}\n  secretRef: {{name: {name}}}\n{spec}---\n\
                     apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: apps}}\n\
                     stringData:\n{data}",
                    name = c.name,
                    ty = c.ty,
                    spec = c.spec,
                    data = c.data,
                )
            })
            .collect()
    }

    /// An `info` event every type sends something for: a commit revision for the status
    /// forges, a change request for the comment types.
    fn event() -> Event {
        let mut event: Event = serde_json::from_str(
            r#"{"involvedObject":{"kind":"Kustomization","namespace":"flux-system","name":"apps","apiVersion":"kustomize.toolkit.fluxcd.io/v1"},
                "severity":"info","timestamp":"2026-11-28T10:00:00Z","message":"Reconciliation finished",
                "reason":"ReconciliationSucceeded","reportingController":"kustomize-controller",
                "metadata":{"kustomize.toolkit.fluxcd.io/revision":"main@sha1:69b59063470310ebbd88a9156325322a124e55a3",
                            "event.toolkit.fluxcd.io/change_request":"7"}}"#,
        )
        .unwrap();
        prepare(&mut event, None);
        event
    }

    #[test]
    fn every_registered_type_previews_without_showing_a_secret() {
        let registry = registry::registry();
        let samples = samples();
        let event = event();
        // The Alert's manifest object, which `otel` (whose trace is the Alert's) needs.
        let alert = serde_json::json!({
            "metadata": {"name": "on-call", "namespace": "apps", "uid": "0c9c2e41-alert"},
            "spec": {"providerRef": {"name": "any"}},
        });
        for ty in registry.types() {
            let of_type: Vec<&Sample> = samples.iter().filter(|s| s.ty == ty.as_str()).collect();
            assert!(
                !of_type.is_empty(),
                "no sample Provider of type {ty}: add one"
            );
            let mut set = herald_core::manifest::ManifestSet::default();
            set.add_file(std::path::Path::new("samples.yaml"), &manifests(&of_type));
            let catalog = Catalog::new(set, &registry);
            for s in of_type {
                let ready = catalog
                    .provider("apps", s.name)
                    .unwrap_or_else(|| panic!("{}: {:?}", s.name, catalog.problems()));
                let previews = ready
                    .notifier
                    .preview(&event, &alert)
                    .unwrap_or_else(|e| panic!("{}: {e}", s.name));
                assert!(!previews.is_empty(), "{}: nothing previewed", s.name);
                let shown = format!("{}{}", text(&previews), json_lines(&previews));
                for secret in &s.secrets {
                    assert!(
                        !shown.contains(secret.as_str()),
                        "{} shows {secret:?}:\n{shown}",
                        s.name
                    );
                }
                let http = !matches!(s.ty, "azureeventhub" | "nats");
                for p in &previews {
                    assert_eq!(p.method == "PUBLISH", !http, "{}: {shown}", s.name);
                    if http {
                        assert!(p.url.starts_with("https://"), "{}: {shown}", s.name);
                        assert!(
                            p.headers.iter().any(|(n, _)| n == "User-Agent"),
                            "{}: {shown}",
                            s.name
                        );
                    }
                }
            }
        }
    }
}
