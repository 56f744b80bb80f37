//! The `linkwright` command: a thin CLI over `linkwright-core`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use linkwright_core::config::{Config, ConfigError, DEFAULT_CONFIG_FILE};
use linkwright_core::keys::{self, Scope};
use linkwright_core::links::{CreateLink, create};
use linkwright_core::server::{App, Server};
use linkwright_core::store::{LinkFilter, SqliteStore, Store};
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
    /// Open the store and apply its migrations, then exit (run before a new
    /// version starts: the service's ExecStartPre). Loads no plugin, binds no port.
    Migrate {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
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
        /// link, campaign, provider, marketplace or day.
        #[arg(long, default_value = "link")]
        group_by: String,
        /// table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConversionsCommand {
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

fn parse_conversion_format(s: &str) -> Result<linkwright_core::conversions::Format, String> {
    use linkwright_core::conversions::Format;
    Format::parse(s).ok_or_else(|| format!("unknown format `{s}`; use one of {}", Format::names()))
}

fn print_import(summary: &linkwright_core::conversions::ImportSummary, details: bool) {
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

fn conversions_command(command: ConversionsCommand) -> Result<ExitCode> {
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
            match conversions::import(&store, &config.conversions, format, &bytes) {
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
                runtime.block_on(pull::pull_awin(store.path(), awin, &token, from, to))
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

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it once (it cannot be shown again).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
        /// `read` or `write` (repeatable; write implies read). Default: read and write.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// List keys (ids, names, scopes; never secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Revoke a key by its id.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// The key's id (from `keys list`).
        id: String,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse::<Scope>().map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum LinksCommand {
    /// Create links in bulk from a CSV file (the same columns and the same
    /// job as `POST /api/v1/links/bulk`) and write the result CSV.
    ///
    /// Exits 0 if every row made a link, 1 if any row failed.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// Write the result CSV here (default: standard output).
        #[arg(long, short = 'o', value_name = "RESULT.csv")]
        output: Option<PathBuf>,
        /// The CSV: a header row (url or input, asin, marketplace, name,
        /// code, campaign, tags, provider, param:<name>), then one link per
        /// row; `-` reads standard input.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
    /// Create a link and print its short URL.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// Your own name for the link (campaign, video title, …).
        #[arg(long)]
        name: Option<String>,
        /// A custom code (letters, digits, `-`, `_`); default: generated.
        #[arg(long)]
        code: Option<String>,
        /// Campaign.
        #[arg(long)]
        campaign: Option<String>,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Marketplace for a bare ASIN.
        #[arg(long)]
        marketplace: Option<String>,
        /// Use this provider instead of routing by host.
        #[arg(long)]
        provider: Option<String>,
        /// A network parameter, KEY=VALUE.
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Print the link as JSON.
        #[arg(long)]
        json: bool,
        /// Product URL or ASIN.
        input: String,
    },
    /// List links, oldest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// Only this provider's links.
        #[arg(long)]
        provider: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one link.
    Get {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The link's code.
        code: String,
    },
    /// Disable a link: it answers 410 from then on.
    Disable {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// The link's code.
        code: String,
    },
    /// Enable a disabled link again.
    Enable {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        data: DataDirArg,
        /// The link's code.
        code: String,
    },
}

#[derive(Debug, clap::Args)]
struct DataDirArg {
    /// Folder of the embedded store (overrides server.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
    }
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
        Command::Migrate { config, data } => {
            let (_, store) = open_store(&config, &data)?;
            println!(
                "{}: schema version {}",
                store.path().display(),
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
            serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Links { command } => links(command),
        Command::Keys { command } => keys_command(command),
        Command::Conversions { command } => conversions_command(command),
        Command::Report {
            config,
            data,
            from,
            to,
            group_by,
            format,
        } => {
            use linkwright_core::reports::{self, Format, ReportQuery};
            let query = ReportQuery::parse(Some(&from), Some(&to), Some(&group_by))
                .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field.replace('_', "-")))?;
            let format: Format = format
                .parse()
                .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
            let (_, store) = open_store(&config, &data)?;
            let report = reports::run(&store, &query)?;
            print!("{}", report.render(format)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn keys_command(command: KeysCommand) -> Result<ExitCode> {
    match command {
        KeysCommand::Create {
            config,
            data,
            name,
            scopes,
        } => {
            let (_, store) = open_store(&config, &data)?;
            let scopes = if scopes.is_empty() {
                vec![Scope::Read, Scope::Write]
            } else {
                scopes
            };
            let (key, secret) = keys::create_key(&store, &name, &scopes)?;
            eprintln!(
                "created key {} ({}) with scopes {}; store it now, it is not shown again:",
                key.id,
                key.name,
                key.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("{secret}");
        }
        KeysCommand::List { config, data } => {
            let (_, store) = open_store(&config, &data)?;
            for key in keys::list_keys(&store)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    key.id,
                    key.name,
                    key.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    if key.revoked { "revoked" } else { "active" }
                );
            }
        }
        KeysCommand::Revoke { config, data, id } => {
            let (_, store) = open_store(&config, &data)?;
            keys::revoke_key(&store, &id)?;
            println!("{id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(config: Config) -> Result<()> {
    let providers = Arc::new(Providers::load(&config));
    for r in providers.refused() {
        tracing::warn!(provider = %r.name, reason = %r.error, "provider refused; serving without it");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let app = Arc::new(App::new(&config, providers)?);
        let server = Server::bind(config, app)?;
        println!("public http://{}", server.public_addr());
        println!("admin http://{}", server.admin_addr());
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; use SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// The short URL of a code.
fn short_url(config: &Config, code: &str) -> String {
    match &config.server.public_base_url {
        Some(base) => format!("{base}/{code}"),
        None => format!("http://{}/{code}", config.server.public_addr),
    }
}

fn open_store(config: &ConfigArg, data: &DataDirArg) -> Result<(Config, SqliteStore)> {
    let mut config = config.load()?;
    data.apply(&mut config);
    let store = SqliteStore::open(&config.server.data_dir)?;
    Ok((config, store))
}

fn links(command: LinksCommand) -> Result<ExitCode> {
    match command {
        LinksCommand::Import {
            config,
            data,
            output,
            file,
        } => {
            use linkwright_core::jobs;
            use std::io::{IsTerminal, Read, Write};
            let mut config = config.load()?;
            data.apply(&mut config);
            let mut csv = Vec::new();
            if file.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut csv)
                    .context("cannot read the CSV from standard input")?;
            } else {
                csv = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
            }
            let items = jobs::parse_csv(&csv).with_context(|| file.display().to_string())?;
            let providers = Arc::new(Providers::load(&config));
            for r in providers.refused() {
                eprintln!("warning: provider `{}` refused: {}", r.name, r.error);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let app = Arc::new(App::new(&config, providers)?);
            let bar = if std::io::stderr().is_terminal() {
                indicatif::ProgressBar::new(items.len() as u64)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} links ({per_sec}, {eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let outcome = runtime.block_on(async {
                let db = Arc::clone(&app.db);
                let job =
                    tokio::task::spawn_blocking(move || jobs::new_job(&db, &items, None)).await??;
                let progress = |done: u64, _total: u64| bar.set_position(done);
                let summary = jobs::run(&app, &job.job_id, &progress).await?;
                let db = Arc::clone(&app.db);
                let result_config = config.clone();
                let job_id = summary.job_id.clone();
                let result = tokio::task::spawn_blocking(move || {
                    jobs::result_csv(&db, &job_id, &|code| short_url(&result_config, code))
                })
                .await??;
                anyhow::Ok((summary, result))
            });
            bar.finish_and_clear();
            app.clicklog.shutdown();
            let (summary, result) = outcome?;
            match &output {
                Some(path) => std::fs::write(path, &result)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout()
                    .write_all(&result)
                    .context("cannot write the result CSV")?,
            }
            eprintln!(
                "job {}: {} of {} rows made a link, {} failed{}",
                summary.job_id,
                summary.ok,
                summary.total,
                summary.errors,
                summary
                    .failure
                    .as_deref()
                    .map(|f| format!(" (job failed: {f})"))
                    .unwrap_or_default()
            );
            let all_ok = summary.status == jobs::JobStatus::Done && summary.errors == 0;
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        LinksCommand::Create {
            config,
            data,
            name,
            code,
            campaign,
            tags,
            marketplace,
            provider,
            params,
            json,
            input,
        } => {
            let (config, store) = open_store(&config, &data)?;
            let providers = Providers::load(&config);
            let req = CreateLink {
                input,
                marketplace,
                provider,
                code,
                name,
                campaign,
                tags,
                params,
            };
            match create(&providers, &store, req, "cli") {
                Ok(link) => {
                    let url = short_url(&config, &link.code);
                    if json {
                        let mut value = serde_json::to_value(&link)?;
                        value["short_url"] = json!(url);
                        value["template"] = json!(link.template().display());
                        println!("{value}");
                    } else {
                        println!("{url}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        LinksCommand::List {
            config,
            data,
            provider,
            limit,
            json,
        } => {
            let (config, store) = open_store(&config, &data)?;
            let links = store.list_links(&LinkFilter {
                limit,
                provider,
                ..Default::default()
            })?;
            for link in links {
                let url = short_url(&config, &link.code);
                if json {
                    let mut value = serde_json::to_value(&link)?;
                    value["short_url"] = json!(url);
                    println!("{value}");
                } else {
                    println!(
                        "{}\t{}\t{}\t{}{}\t{}",
                        link.code,
                        link.provider,
                        url,
                        link.destination,
                        if link.disabled { " (disabled)" } else { "" },
                        link.name.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LinksCommand::Get {
            config,
            data,
            json,
            code,
        } => {
            let (config, store) = open_store(&config, &data)?;
            let Some(link) = store.link_by_code(&code)? else {
                eprintln!("error: no link with code `{code}`");
                return Ok(ExitCode::FAILURE);
            };
            let url = short_url(&config, &link.code);
            if json {
                let mut value = serde_json::to_value(&link)?;
                value["short_url"] = json!(url);
                value["template"] = json!(link.template().display());
                println!("{value}");
            } else {
                println!("code:        {}", link.code);
                println!("short url:   {url}");
                println!("provider:    {}", link.provider);
                println!(
                    "marketplace: {}",
                    link.marketplace.as_deref().unwrap_or("-")
                );
                println!("destination: {}", link.destination);
                println!("template:    {}", link.template().display());
                println!("name:        {}", link.name.as_deref().unwrap_or("-"));
                println!("campaign:    {}", link.campaign.as_deref().unwrap_or("-"));
                println!("tags:        {}", link.tags.join(", "));
                println!("disabled:    {}", link.disabled);
            }
            Ok(ExitCode::SUCCESS)
        }
        LinksCommand::Disable { config, data, code } => set_disabled(&config, &data, &code, true),
        LinksCommand::Enable { config, data, code } => set_disabled(&config, &data, &code, false),
    }
}

fn set_disabled(
    config: &ConfigArg,
    data: &DataDirArg,
    code: &str,
    disabled: bool,
) -> Result<ExitCode> {
    let (_, store) = open_store(config, data)?;
    if store.set_disabled(code, disabled)? {
        println!("{code} {}", if disabled { "disabled" } else { "enabled" });
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: no link with code `{code}`");
        Ok(ExitCode::FAILURE)
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
