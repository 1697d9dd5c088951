//! `herald validate`: every problem in a set of manifests, or a summary of what is there.

use std::process::ExitCode;

use herald_core::manifest::{self, ManifestError};

use crate::{ManifestArgs, output, registry, report};

#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    manifests: ManifestArgs,
}

pub(crate) fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let set = match manifest::load_paths(&args.manifests.paths) {
        Ok(set) => set,
        Err(errors) => {
            report(&errors.to_string());
            return Ok(ExitCode::FAILURE);
        }
    };
    let registry = registry::registry();
    let mut problems: Vec<ManifestError> = Vec::new();
    for provider in &set.providers {
        let built = set.provider_config(provider).and_then(|config| {
            registry.build(&config).map(drop).map_err(|e| {
                ManifestError::at(&provider.origin, &["spec", "type"])
                    .object("Provider", &provider.namespace, &provider.name)
                    .message(config.masker().mask(&e.to_string()))
            })
        });
        if let Err(e) = built {
            problems.push(e);
        }
    }
    if !problems.is_empty() {
        report(&manifest::ManifestErrors(problems).to_string());
        return Ok(ExitCode::FAILURE);
    }
    output(&format!(
        "ok: {} provider(s), {} alert(s), {} secret(s) in {} file(s); {} other document(s) skipped",
        set.providers.len(),
        set.alerts.len(),
        set.secrets.len(),
        set.files.len(),
        set.skipped.len()
    ));
    Ok(ExitCode::SUCCESS)
}
