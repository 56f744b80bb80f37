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
