//! Manifest loading: YAML documents of Providers, Alerts and Secrets (base64 `data` and
//! `stringData`), reference checks, and resolving every Provider with its Secrets into a
//! `ProviderConfig`. Nothing may panic; errors are collected.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (set, errors) = herald_core::manifest::parse_str(Path::new("fuzz.yaml"), text);
    for e in &errors {
        let _ = e.to_string();
    }
    let _ = set.check_references();
    for provider in &set.providers {
        if let Ok(config) = set.provider_config(provider) {
            let _ = config.masker().mask(text);
        }
    }
});
