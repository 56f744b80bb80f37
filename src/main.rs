//! The `linkwright` command: a thin CLI over `linkwright-core`. This file
//! holds the command line and dispatches; each subcommand has its module.
#![forbid(unsafe_code)]

mod conversions;
mod keys;
mod links;
mod plugins;
mod report;
mod rewrite;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use linkwright_core::backend::{self, Store};
use linkwright_core::config::{Config, DEFAULT_CONFIG_FILE};
use linkwright_core::links::CreateLinkRequest;

use conversions::ConversionsCommand;
use keys::KeysCommand;
use links::LinksCommand;

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
        #[command(flatten)]
        build: BuildArgs,
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
    /// Open the store and apply its migrations, then exit (run before a new
    /// version starts: the service's ExecStartPre). Loads no plugin, binds no port.
    Migrate {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Move the data of an embedded (SQLite) store into PostgreSQL.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Probe one plugin in this (child) process for a server about to load
    /// it: load it, describe it, build the probe inputs, report each step
    /// on stdout. The provider's settings (JSON) come on stdin. Internal.
    #[command(hide = true)]
    PluginProbe {
        /// The plugin file.
        #[arg(long)]
        file: PathBuf,
        /// Time budget of one plugin call, in milliseconds.
        #[arg(long)]
        budget_ms: u64,
    },
    /// Run the public redirect host and the admin listener.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Public redirect host address (overrides server.public_addr).
        #[arg(long, value_name = "ADDR")]
        public_addr: Option<SocketAddr>,
        /// Admin listener address (overrides server.admin_addr).
        #[arg(long, value_name = "ADDR")]
        admin_addr: Option<SocketAddr>,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Create, list, disable and enable links in the store.
    Links {
        #[command(subcommand)]
        command: LinksCommand,
    },
    /// Manage admin API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import the networks' conversion reports and join them to clicks.
    Conversions {
        #[command(subcommand)]
        command: ConversionsCommand,
    },
    /// Print an attribution report: clicks, bot hits, conversions, items,
    /// revenue, commission, conversion rate and earnings per click over an
    /// inclusive range of UTC days (the same report as `GET /api/v1/reports`).
    Report {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// First UTC day, YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: String,
        /// Last UTC day, included (at most 366 days).
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: String,
        /// link, campaign, provider, marketplace, day, country or target.
        #[arg(long, default_value = "link")]
        group_by: String,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct DataDirArg {
    /// Folder of the embedded store (overrides server.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDirArg {
    pub(crate) fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArg {
    /// The config file.
    #[arg(long = "config", short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG_FILE)]
    pub(crate) path: PathBuf,
}

impl ConfigArg {
    pub(crate) fn load(&self) -> Result<Config> {
        Config::load(&self.path).map_err(anyhow::Error::from)
    }
}

/// How to build a link's template: the same three options for `rewrite` and
/// `links create`.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// Marketplace for a bare ASIN (default: the provider's, amazon.com).
    #[arg(long)]
    marketplace: Option<String>,
    /// Use this provider instead of routing by host.
    #[arg(long)]
    provider: Option<String>,
    /// A network parameter, KEY=VALUE (Awin `clickref2=…`, Amazon `tag=…`).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
}

impl BuildArgs {
    /// A link request for `input` (a URL, or else an ASIN) with these options.
    pub(crate) fn request(&self, input: String) -> CreateLinkRequest {
        let mut req = if input.contains([':', '/', '.']) {
            CreateLinkRequest {
                url: Some(input),
                ..Default::default()
            }
        } else {
            CreateLinkRequest {
                asin: Some(input),
                ..Default::default()
            }
        };
        req.marketplace = self.marketplace.clone();
        req.provider = self.provider.clone();
        if !self.params.is_empty() {
            req.params = Some(self.params.iter().cloned().collect());
        }
        req
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
    init_logging(if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "error"
    });
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LINKWRIGHT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Rewrite {
            config,
            build,
            json,
            inputs,
        } => rewrite::rewrite(&config, &build, json, inputs),
        Command::Plugins { config, json } => plugins::plugins(&config.load()?, json),
        Command::CheckConfig { config } => plugins::check_config(&config.path),
        Command::PluginProbe { file, budget_ms } => {
            use std::io::Read;
            let mut settings = String::new();
            std::io::stdin()
                .take(linkwright_core::config::MAX_CONFIG_BYTES)
                .read_to_string(&mut settings)?;
            let code = linkwright_core::plugin::probe::serve(
                &file,
                &settings,
                std::time::Duration::from_millis(budget_ms),
                &mut std::io::stdout().lock(),
            );
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Store {
            command: StoreCommand::Copy { from, to },
        } => store_copy(&from, &to),
        Command::Migrate { config, data } => {
            let (_, store) = open_store(&config, &data)?;
            println!(
                "{}: schema version {}",
                store.location(),
                store.schema_version()?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config,
            public_addr,
            admin_addr,
            data,
        } => {
            let mut config = config.load()?;
            data.apply(&mut config);
            if let Some(addr) = public_addr {
                config.server.public_addr = addr;
            }
            if let Some(addr) = admin_addr {
                config.server.admin_addr = addr;
            }
            serve::serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Links { command } => links::links(command),
        Command::Keys { command } => keys::keys_command(command),
        Command::Conversions { command } => conversions::conversions_command(command),
        Command::Report {
            config,
            data,
            from,
            to,
            group_by,
            format,
        } => report::report(&config, &data, &from, &to, &group_by, &format),
    }
}

/// How the commands that serve (`serve`, `plugins`, `check-config`) probe
/// each plugin before loading it: this executable again, with the hidden
/// `plugin-probe` subcommand, in a child process. One-shot commands
/// (`rewrite`, `links`) load plugins without a probe: a crash there ends
/// only that command.
pub(crate) fn probe_command() -> Option<linkwright_core::plugin::ProbeCommand> {
    let program = std::env::current_exe().ok()?;
    Some(linkwright_core::plugin::ProbeCommand {
        program,
        args: vec!["plugin-probe".into()],
    })
}

/// `linkwright store …`.
#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy every link, click, rollup, conversion, key, job and catalog
    /// answer of an embedded store into an empty PostgreSQL database, in
    /// one transaction; then count and digest each table on both sides
    /// and print them. Stop the instances using the source first.
    Copy {
        /// The embedded store's data folder (its `server.data_dir`).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database: `postgres://user:password@host:port/db`.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

fn store_copy(from: &std::path::Path, to: &str) -> Result<ExitCode> {
    use linkwright_core::backend::{Backend, PgStore, SqliteStore, copy};
    anyhow::ensure!(
        from.join(linkwright_core::backend::SQLITE_FILE).is_file(),
        "{} holds no linkwright store ({} is missing)",
        from.display(),
        linkwright_core::backend::SQLITE_FILE
    );
    let source = SqliteStore::open(from)?;
    let target = PgStore::connect(to)?;
    let tables = copy::copy(&source, &target)?;
    println!("{:<18} {:>10} {:>10}  digest", "table", "source", "target");
    let mut all = true;
    for t in &tables {
        let verdict = if t.matches() { "match" } else { "DIFFER" };
        all &= t.matches();
        println!(
            "{:<18} {:>10} {:>10}  {} {verdict}",
            t.table, t.source_rows, t.target_rows, t.target_digest
        );
        if !t.matches() {
            println!("{:<18} source digest {}", "", t.source_digest);
        }
    }
    if all {
        println!("copied into {}: every table matches", target.location());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: some tables differ after the copy (see above)");
        Ok(ExitCode::FAILURE)
    }
}

/// The config (with `--data-dir` applied) and its store.
pub(crate) fn open_store(
    config: &ConfigArg,
    data: &DataDirArg,
) -> Result<(Config, Arc<dyn Store>)> {
    let mut config = config.load()?;
    data.apply(&mut config);
    let store = backend::open(&config)?;
    Ok((config, store))
}
