//! The `linkwright` command: a thin CLI over `linkwright-core`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use linkwright_core::config::{Config, ConfigError, DEFAULT_CONFIG_FILE};
use linkwright_core::{BuildRequest, ClickIdGenerator, Providers};
use serde_json::json;

/// Self-hosted affiliate link proxy.
#[derive(Debug, Parser)]
#[command(name = "linkwright", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turn product URLs (or ASINs) into tracked affiliate URLs, each with a
    /// fresh click ID in its sub-ID slot.
    Rewrite {
        #[command(flatten)]
        config: ConfigArg,
        /// Marketplace for bare ASINs (default: the provider's, amazon.com).
        #[arg(long)]
        marketplace: Option<String>,
        /// Use this provider instead of routing by host.
        #[arg(long)]
        provider: Option<String>,
        /// A network parameter, KEY=VALUE (Awin `clickref2=…`, Amazon `tag=…`).
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// One JSON object per line: {"input","provider","url","template","error"}.
        #[arg(long)]
        json: bool,
        /// Product URLs or ASINs.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// List the loaded plugins and the refused ones with their reasons.
    Plugins {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config, load every provider, report every problem; exit 0 or 1.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The config file.
    #[arg(long = "config", short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG_FILE)]
    path: PathBuf,
}

impl ConfigArg {
    fn load(&self) -> Result<Config> {
        Config::load(&self.path).map_err(anyhow::Error::from)
    }
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LINKWRIGHT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Rewrite {
            config,
            marketplace,
            provider,
            params,
            json,
            inputs,
        } => {
            let config = config.load()?;
            let providers = Providers::load(&config);
            for r in providers.refused() {
                eprintln!("warning: provider `{}` refused: {}", r.name, r.error);
            }
            let ids = ClickIdGenerator::new(config.node_id);
            let mut failed = false;
            for input in &inputs {
                let req = BuildRequest {
                    input,
                    marketplace: marketplace.as_deref(),
                    params: &params,
                    provider: provider.as_deref(),
                };
                let result = providers.build(&req);
                failed |= result.is_err();
                match (result, json) {
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
        Command::Plugins { config, json } => {
            let config = config.load()?;
            let providers = Providers::load(&config);
            print_plugins(&providers, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => check_config(&config.path),
    }
}

fn print_plugins(providers: &Providers, as_json: bool) {
    if as_json {
        let loaded: Vec<_> = providers
            .loaded()
            .iter()
            .map(|p| {
                let lib = p.library();
                json!({
                    "provider": p.name,
                    "plugin": lib.name,
                    "version": lib.version,
                    "abi": format!("{}.{}", lib.abi_major, lib.abi_minor),
                    "file": lib.path,
                    "poisoned": p.is_poisoned(),
                })
            })
            .collect();
        let refused: Vec<_> = providers
            .refused()
            .iter()
            .map(|r| {
                json!({
                    "provider": r.name,
                    "plugin": r.plugin,
                    "file": r.file,
                    "reason": r.error.to_string(),
                })
            })
            .collect();
        println!("{}", json!({"loaded": loaded, "refused": refused}));
        return;
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
}

fn check_config(path: &std::path::Path) -> Result<ExitCode> {
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
    let providers = Providers::load(&config);
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
