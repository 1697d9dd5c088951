//! `herald validate`: every problem of every object in a set of manifests, in one run, or a
//! summary of what is there.

use std::process::ExitCode;

use herald_core::manifest::{Catalog, ManifestErrors};

use crate::{ManifestArgs, output, registry, report};

#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    manifests: ManifestArgs,
}

pub(crate) fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::new(
        herald_daemon::manifests::read(&args.manifests.paths),
        &registry::registry(),
    );
    for warning in catalog.warnings() {
        report(&format!("warning: {warning}"));
    }
    let set = catalog.set();
    let problems = catalog.problems();
    if !problems.is_empty() {
        let not_ready: Vec<String> = catalog.not_ready().map(|s| s.key.to_string()).collect();
        report(&ManifestErrors(problems.into_iter().cloned().collect()).to_string());
        report(&format!(
            "{} object(s) not ready: {}; `herald serve` would run every other one",
            not_ready.len(),
            not_ready.join(", ")
        ));
        return Ok(ExitCode::FAILURE);
    }
    output(&format!(
        "ok: {} provider(s), {} alert(s), {} secret(s), {} ConfigMap(s) in {} file(s); {} other \
         document(s) skipped",
        set.providers.len(),
        set.alerts.len(),
        set.secrets.len(),
        set.config_maps.len(),
        set.files.len(),
        set.skipped.len()
    ));
    Ok(ExitCode::SUCCESS)
}
