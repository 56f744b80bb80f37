//! `linkwright conversions import|pull`: network reports into the store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use linkwright_core::conversions::ConversionStore;

use crate::{ConfigArg, DataDirArg, open_store};

#[derive(Debug, Subcommand)]
pub(crate) enum ConversionsCommand {
    /// Import a report file: every usable row is inserted or updated in one
    /// transaction, or nothing is (a malformed file). Prints the counts;
    /// exits 1 if the file could not be imported.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// amazon-earnings, amazon-orders, amazon-bounty, awin-csv or awin-json.
        #[arg(long, value_parser = parse_conversion_format)]
        format: linkwright_core::conversions::Format,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
        /// The report; `-` reads standard input.
        file: PathBuf,
    },
    /// Pull transactions from a network's API (Awin: the token is read from
    /// the environment variable named by conversions.awin.token_env) and
    /// import them, one window of at most 31 days per call.
    Pull {
        /// The network.
        #[arg(value_parser = ["awin"])]
        network: String,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// First UTC day, YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: linkwright_core::conversions::dates::Day,
        /// Last UTC day, included.
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: linkwright_core::conversions::dates::Day,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn parse_conversion_format(
    s: &str,
) -> Result<linkwright_core::conversions::Format, String> {
    use linkwright_core::conversions::Format;
    Format::parse(s).ok_or_else(|| format!("unknown format `{s}`; use one of {}", Format::names()))
}

pub(crate) fn print_import(summary: &linkwright_core::conversions::ImportSummary, details: bool) {
    println!(
        "{}: {} rows: {} inserted, {} updated, {} unchanged, {} rejected; {} unattributed",
        summary.format,
        summary.rows,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.rejected,
        summary.unattributed
    );
    if !details {
        return;
    }
    for r in &summary.rejections {
        println!("rejected line {}: {}", r.line, r.reason);
    }
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
}

pub(crate) fn conversions_command(command: ConversionsCommand) -> Result<ExitCode> {
    use linkwright_core::conversions::{self, ImportError, pull};
    match command {
        ConversionsCommand::Import {
            config,
            data,
            format,
            json,
            file,
        } => {
            let (config, store) = open_store(&config, &data)?;
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .context("cannot read the report from standard input")?;
                bytes
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            match conversions::import(&*store, &config.conversions, format, &bytes) {
                Ok(summary) => {
                    if json {
                        println!("{}", serde_json::to_string(&summary)?);
                    } else {
                        print_import(&summary, true);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ ImportError::Malformed { .. }) => {
                    eprintln!("error: {}: {e}; nothing was imported", file.display());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e).context("nothing was imported"),
            }
        }
        ConversionsCommand::Pull {
            network: _,
            config,
            data,
            from,
            to,
            json,
        } => {
            let (config, store) = open_store(&config, &data)?;
            let awin = &config.conversions.awin;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let outcome = pull::token_from_env(awin).map(|token| {
                runtime.block_on(pull::pull_awin(
                    &(store as Arc<dyn ConversionStore>),
                    awin,
                    &token,
                    from,
                    to,
                ))
            });
            match outcome.and_then(|r| r) {
                Ok(summary) => {
                    if json {
                        println!("{}", serde_json::to_string(&summary)?);
                    } else {
                        for w in &summary.windows {
                            print!("{}..{} ", w.from, w.to);
                            print_import(&w.summary, true);
                        }
                        print!("total ({} calls) ", summary.calls);
                        print_import(&summary.totals, false);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
