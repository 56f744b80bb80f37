//! `linkwright rewrite`: product URLs (or ASINs) to tracked URLs, each with a
//! fresh click ID, built like the API's rewrite (short links expanded).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use linkwright_core::ClickIdGenerator;
use linkwright_core::app::builder;
use serde_json::json;

use crate::{BuildArgs, ConfigArg};

pub(crate) fn rewrite(
    config: &ConfigArg,
    build: &BuildArgs,
    as_json: bool,
    inputs: Vec<String>,
) -> Result<ExitCode> {
    let config = config.load()?;
    let providers = Arc::new(config.load_providers());
    for r in providers.refused() {
        eprintln!("warning: provider `{}` refused: {}", r.name, r.error);
    }
    let builder = builder(&config, providers)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // These IDs are printed, not recorded as clicks: no node ID is leased
    // for them.
    let ids = ClickIdGenerator::new(config.click_ids.node_id.unwrap_or(0));
    let mut failed = false;
    for input in inputs {
        let req = build.request(input.clone());
        let result = runtime.block_on(builder.template(&req));
        failed |= result.is_err();
        match (result, as_json) {
            (Ok(t), false) => println!("{}\t{}", t.provider, t.fill(&ids.next_id())),
            (Err(e), false) => println!("error\t{}: {} ({input})", e.code, e.message),
            (Ok(t), true) => println!(
                "{}",
                json!({
                    "input": input,
                    "provider": t.provider,
                    "url": t.fill(&ids.next_id()),
                    "template": t.display(),
                    "error": null,
                })
            ),
            (Err(e), true) => println!(
                "{}",
                json!({
                    "input": input,
                    "provider": e.provider,
                    "url": null,
                    "template": null,
                    "error": {"code": e.code.as_str(), "message": e.message},
                })
            ),
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
