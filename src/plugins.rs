//! `linkwright plugins` and `linkwright check-config`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use linkwright_core::config::{Config, ConfigError};
use linkwright_core::view::ProviderView;

/// Prints each loaded and refused provider; `--json`: the API's provider
/// list (`GET /api/v1/providers`).
pub(crate) fn plugins(config: &Config, as_json: bool) -> Result<ExitCode> {
    let providers = config.load_providers_probed(crate::probe_command());
    if as_json {
        let all = ProviderView::all(&providers);
        println!("{}", serde_json::json!({ "providers": all }));
        return Ok(ExitCode::SUCCESS);
    }
    for p in providers.loaded() {
        let lib = p.library();
        println!(
            "loaded   {:<12} plugin {} {} (ABI {}.{})  {}",
            p.name,
            lib.name,
            lib.version,
            lib.abi_major,
            lib.abi_minor,
            lib.path.display()
        );
    }
    for r in providers.refused() {
        println!("refused  {:<12} plugin {}: {}", r.name, r.plugin, r.error);
    }
    if providers.loaded().is_empty() && providers.refused().is_empty() {
        println!("no providers configured");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn check_config(path: &std::path::Path) -> Result<ExitCode> {
    let origin = path.display();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e @ ConfigError::Read { .. }) => {
            return Err(e).context("check-config");
        }
        Err(e) => {
            for p in e.problems() {
                println!("{origin}: {p}");
            }
            println!("{origin}: {} problem(s)", e.problems().len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let providers = config.load_providers_probed(crate::probe_command());
    for r in providers.refused() {
        println!("{origin}: providers[{}]: {}", r.index, r.error);
    }
    if providers.refused().is_empty() {
        println!(
            "{origin}: ok ({} provider(s) loaded)",
            providers.loaded().len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{origin}: {} problem(s)", providers.refused().len());
        Ok(ExitCode::FAILURE)
    }
}
