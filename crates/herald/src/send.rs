//! `herald send`: one event to one provider, synchronously, with a clear outcome. A failure
//! worth retrying is retried as Flux's client does ([`RetryPolicy::flux`]: 4 retries, 2 s
//! doubling to 30 s, or the service's `Retry-After`), each step said on stderr.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use herald_core::manifest::{self, Catalog, Kind, ManifestErrors, ObjectKey, ReadyProvider};
use herald_core::retry::Verdict;
use herald_core::{DeliveryError, Event, Masker, Notifier, RetryPolicy};

use crate::{ManifestArgs, output, registry, report};

#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    manifests: ManifestArgs,

    /// The provider to deliver to, as NAMESPACE/NAME (or NAME in namespace `default`).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    provider: String,

    /// The Flux event, as a JSON file, or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    event: PathBuf,

    /// Send the event's metadata as given, without Flux's cleanup and prefix stripping.
    #[arg(long)]
    raw: bool,

    /// Deliver for this Alert, as NAMESPACE/NAME (or NAME in the Provider's namespace): its
    /// `eventMetadata` and `summary` join the event's metadata as in the daemon, and providers
    /// that name the Alert see it (`otel`, whose trace is the Alert's, needs it).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    alert: Option<String>,
}

pub(crate) fn run(args: &SendArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::new(
        herald_daemon::manifests::read(&args.manifests.paths),
        &registry::registry(),
    );
    let (namespace, name) = namespace_name(&args.provider);
    let Some(ready) = ready_provider(&catalog, namespace, name, "nothing sent") else {
        return Ok(ExitCode::FAILURE);
    };
    let alert = match &args.alert {
        Some(id) => Some(find_alert(&catalog, id, namespace)?),
        None => None,
    };
    let mut event = read_event(&args.event)?;
    if !args.raw {
        crate::render::prepare(&mut event, alert);
    }
    let alert_object = alert.map_or(&serde_json::Value::Null, |a| &a.object);
    let (config, masker, notifier) = (&ready.config, &ready.masker, &ready.notifier);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let outcome = runtime.block_on(post_with_retries(
        notifier.as_ref(),
        &event,
        alert_object,
        &RetryPolicy::flux(),
        masker,
    ));
    let elapsed = started.elapsed();
    match outcome {
        Ok(()) => {
            output(&format!(
                "delivered to {namespace}/{name} ({}) in {} ms",
                config.provider_type,
                elapsed.as_millis()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let kind = if e.is_retryable() {
                "transient"
            } else {
                "permanent"
            };
            report(&format!(
                "error: delivery to {namespace}/{name} ({}) failed after {} ms ({kind}): {}",
                config.provider_type,
                elapsed.as_millis(),
                masker.mask(e.message())
            ));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Posts `event`, retrying what `policy` says is worth retrying, and says so on stderr.
async fn post_with_retries(
    notifier: &dyn Notifier,
    event: &Event,
    alert: &serde_json::Value,
    policy: &RetryPolicy,
    masker: &Masker,
) -> Result<(), DeliveryError> {
    let mut failures = 0;
    loop {
        let Err(e) = notifier.post_for(event, alert).await else {
            return Ok(());
        };
        failures += 1;
        let Verdict::RetryIn(wait) = policy.verdict(failures, &e) else {
            return Err(e);
        };
        report(&format!(
            "attempt {failures} failed, retrying in {}: {}",
            herald_core::duration::format(wait),
            masker.mask(e.message())
        ));
        tokio::time::sleep(wait).await;
    }
}

/// The Alert `id` (`NAMESPACE/NAME`, or `NAME` in `namespace`) of the manifests, whether or
/// not it is ready: only its metadata and `eventMetadata` matter here.
fn find_alert<'a>(
    catalog: &'a Catalog,
    id: &str,
    namespace: &str,
) -> anyhow::Result<&'a manifest::Alert> {
    let (alert_namespace, name) = id.split_once('/').unwrap_or((namespace, id));
    let alerts = &catalog.set().alerts;
    if let Some(alert) = alerts
        .iter()
        .find(|a| a.namespace == alert_namespace && a.name == name)
    {
        return Ok(alert);
    }
    let known: Vec<String> = alerts
        .iter()
        .map(|a| format!("{}/{}", a.namespace, a.name))
        .collect();
    bail!(
        "no Alert {alert_namespace}/{name} in the manifests (alerts found: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    );
}

/// `NAMESPACE/NAME`, or `NAME` in namespace `default`.
pub(crate) fn namespace_name(reference: &str) -> (&str, &str) {
    reference
        .split_once('/')
        .unwrap_or((manifest::DEFAULT_NAMESPACE, reference))
}

/// The ready Provider `namespace/name`; else says on stderr why not (no such Provider, with
/// those there are; or its problems, with file, line and field) ending with `nothing`, and
/// gives `None`. Only this Provider matters: problems of other objects do not stop it.
pub(crate) fn ready_provider<'c>(
    catalog: &'c Catalog,
    namespace: &str,
    name: &str,
    nothing: &str,
) -> Option<&'c ReadyProvider> {
    let key = ObjectKey::new(Kind::Provider, namespace, name);
    let Some(status) = catalog.status(&key) else {
        let known: Vec<String> = catalog
            .statuses()
            .filter(|s| s.key.kind == Kind::Provider)
            .map(|s| format!("{}/{}", s.key.namespace, s.key.name))
            .collect();
        report(&format!(
            "error: no Provider {namespace}/{name} in the manifests (providers found: {}); \
             {nothing}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
        return None;
    };
    let ready = catalog.provider(namespace, name);
    if ready.is_none() {
        report(&ManifestErrors(status.problems.clone()).to_string());
        report(&format!(
            "error: Provider {namespace}/{name} is not ready; {nothing}"
        ));
    }
    ready
}

/// Reads a Flux event from a JSON file, or from standard input for `-`.
pub(crate) fn read_event(path: &PathBuf) -> anyhow::Result<Event> {
    let (name, bytes) = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the event from standard input")?;
        ("standard input".to_owned(), buf)
    } else {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the event file {}", path.display()))?;
        (path.display().to_string(), bytes)
    };
    serde_json::from_slice(&bytes).with_context(|| format!("{name} is not a Flux event"))
}
