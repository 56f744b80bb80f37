//! `linkwright links …`: create, import, list, show, disable and enable
//! links, through the same link service as the admin API.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use linkwright_core::app::link_service;
use linkwright_core::backend::{self, Store};
use linkwright_core::config::Config;
use linkwright_core::jobs::{self, JobRunner};
use linkwright_core::links::{CreateLinkRequest, LinkError, LinkService, Source};
use linkwright_core::store::LinkFilter;
use linkwright_core::targeting::TargetRule;
use linkwright_core::view::{LinkView, ShortUrls, TargetsPreview};

use crate::{BuildArgs, ConfigArg, DataDirArg};

#[derive(Debug, Subcommand)]
pub(crate) enum LinksCommand {
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
        #[command(flatten)]
        build: BuildArgs,
        /// Targeting rules as JSON, e.g.
        /// '[{"country": ["DE", "AT"], "url": "https://www.amazon.de/dp/B08N5WRWNW"}]'.
        #[arg(long, value_name = "JSON")]
        targets: Option<String>,
        /// Amazon localization on (true) or off (false); default: the
        /// provider's `localize` setting.
        #[arg(long, value_name = "BOOL")]
        localize: Option<bool>,
        /// Print the link as JSON.
        #[arg(long)]
        json: bool,
        /// Product URL or ASIN.
        input: String,
    },
    /// Where a shopper from each country lands for a link, and why.
    Targets {
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

/// The link service of a command: the store, the providers (refusals
/// reported), no caches (a running server learns of changes from the
/// store's journal), and a runtime to drive it.
struct Links {
    config: Config,
    db: Arc<dyn Store>,
    service: Arc<LinkService>,
    short_urls: ShortUrls,
    runtime: tokio::runtime::Runtime,
}

impl Links {
    fn open(config: &ConfigArg, data: &DataDirArg) -> Result<Links> {
        let mut config = config.load()?;
        data.apply(&mut config);
        let db = backend::open(&config)?;
        let providers = Arc::new(config.load_providers());
        for r in providers.refused() {
            eprintln!("warning: provider `{}` refused: {}", r.name, r.error);
        }
        let service = Arc::new(link_service(&config, providers, Arc::clone(&db), None)?);
        let short_urls = ShortUrls::new(
            config.server.public_base_url.as_deref(),
            config.server.public_addr,
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Links {
            config,
            db,
            service,
            short_urls,
            runtime,
        })
    }

    fn view(&self, link: &linkwright_core::store::Link) -> LinkView {
        LinkView::new(link, &self.short_urls)
    }
}

/// Prints a link service error the way the API names it; exit code 1.
fn failed(e: &LinkError) -> ExitCode {
    match e.field() {
        Some(field) => eprintln!("error: {} ({field}): {}", e.code(), e.message()),
        None => eprintln!("error: {}: {}", e.code(), e.message()),
    }
    ExitCode::FAILURE
}

pub(crate) fn links(command: LinksCommand) -> Result<ExitCode> {
    match command {
        LinksCommand::Import {
            config,
            data,
            output,
            file,
        } => import(&Links::open(&config, &data)?, output, &file),
        LinksCommand::Create {
            config,
            data,
            name,
            code,
            campaign,
            tags,
            build,
            targets,
            localize,
            json,
            input,
        } => {
            let targets = targets.as_deref().map(parse_targets).transpose()?;
            let links = Links::open(&config, &data)?;
            let req = CreateLinkRequest {
                name,
                code,
                campaign,
                tags: (!tags.is_empty()).then_some(tags),
                targets,
                localize,
                ..build.request(input)
            };
            match links
                .runtime
                .block_on(links.service.create(&req, Source::Cli))
            {
                Ok(created) => {
                    let view = links.view(&created.link);
                    if json {
                        println!("{}", serde_json::to_string(&view)?);
                    } else {
                        println!("{}", view.short_url);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(failed(&e)),
            }
        }
        LinksCommand::List {
            config,
            data,
            provider,
            limit,
            json,
        } => {
            let links = Links::open(&config, &data)?;
            let filter = LinkFilter {
                limit,
                provider,
                ..Default::default()
            };
            let list = links.runtime.block_on(links.service.list(filter))?;
            for link in list {
                let view = links.view(&link);
                if json {
                    println!("{}", serde_json::to_string(&view)?);
                } else {
                    println!(
                        "{}\t{}\t{}\t{}{}\t{}",
                        view.code,
                        view.provider,
                        view.short_url,
                        view.destination,
                        if view.disabled { " (disabled)" } else { "" },
                        view.name.as_deref().unwrap_or("")
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
            let links = Links::open(&config, &data)?;
            let link = match links.runtime.block_on(links.service.get(&code)) {
                Ok(link) => link,
                Err(e) => return Ok(failed(&e)),
            };
            let view = links.view(&link);
            if json {
                println!("{}", serde_json::to_string(&view)?);
            } else {
                println!("code:        {}", view.code);
                println!("short url:   {}", view.short_url);
                println!("provider:    {}", view.provider);
                println!(
                    "marketplace: {}",
                    view.marketplace.as_deref().unwrap_or("-")
                );
                println!("destination: {}", view.destination);
                println!("template:    {}", view.template);
                println!("name:        {}", view.name.as_deref().unwrap_or("-"));
                println!("campaign:    {}", view.campaign.as_deref().unwrap_or("-"));
                println!("tags:        {}", view.tags.join(", "));
                println!("disabled:    {}", view.disabled);
                if let Some(t) = &view.targeting {
                    println!("rules:       {}", serde_json::to_string(&t.rules)?);
                    if let Some(a) = t.availability {
                        println!("localized:   yes, availability {a}");
                    }
                    for d in &t.destinations {
                        println!(
                            "target {:<4} {} ({:?}, {})",
                            d.target,
                            d.destination,
                            d.why,
                            d.marketplace.as_deref().unwrap_or("-")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LinksCommand::Targets {
            config,
            data,
            json,
            code,
        } => {
            let links = Links::open(&config, &data)?;
            let link = match links.runtime.block_on(links.service.get(&code)) {
                Ok(link) => link,
                Err(e) => return Ok(failed(&e)),
            };
            let preview = TargetsPreview::new(&link);
            if json {
                println!("{}", serde_json::to_string(&preview)?);
            } else {
                for d in &preview.devices {
                    println!(
                        "device {:<8} target {:<3} {}",
                        d.device.as_str(),
                        d.target,
                        d.destination
                    );
                }
                for c in &preview.countries {
                    let why = serde_json::to_value(c.why)?;
                    println!(
                        "{}\t{}\t{}\t{}",
                        c.country,
                        why.as_str().unwrap_or_default(),
                        c.marketplace.as_deref().unwrap_or("-"),
                        c.destination
                    );
                }
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
    let links = Links::open(config, data)?;
    match links
        .runtime
        .block_on(links.service.set_disabled(code, disabled))
    {
        Ok(_) => {
            println!("{code} {}", if disabled { "disabled" } else { "enabled" });
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&e)),
    }
}

/// `links import`: the bulk job of `POST /api/v1/links/bulk`, run here by
/// the link service (no server, no click log), with a progress bar.
fn import(links: &Links, output: Option<PathBuf>, file: &std::path::Path) -> Result<ExitCode> {
    let mut csv = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut csv)
            .context("cannot read the CSV from standard input")?;
    } else {
        csv = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    let items = jobs::parse_csv(&csv).with_context(|| file.display().to_string())?;
    let runner = Arc::new(JobRunner::new(
        Arc::clone(&links.db) as Arc<dyn linkwright_core::jobs::JobStore>,
        Arc::clone(&links.service),
        Source::Cli,
        links.config.api.job_claim_interval,
    ));
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
    let outcome = links.runtime.block_on(async {
        let db = Arc::clone(&links.db);
        let job = tokio::task::spawn_blocking(move || jobs::new_job(&*db, &items, None)).await??;
        let progress = |done: u64, _total: u64| bar.set_position(done);
        let mut summary = runner.run(&job.job_id, &progress).await?;
        // A server sharing the store may have claimed the job before this
        // command did (it looks for unclaimed jobs every few seconds): it
        // makes the links then, and the result is read once it is done.
        while !summary.status.is_finished() {
            bar.set_position(summary.processed);
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let db = Arc::clone(&links.db);
            let id = job.job_id.clone();
            summary = tokio::task::spawn_blocking(move || jobs::summary(&*db, &id))
                .await??
                .ok_or_else(|| anyhow::anyhow!("the job {} is gone from the store", job.job_id))?;
        }
        let db = Arc::clone(&links.db);
        let short_urls = ShortUrls::new(
            links.config.server.public_base_url.as_deref(),
            links.config.server.public_addr,
        );
        let job_id = summary.job_id.clone();
        let result = tokio::task::spawn_blocking(move || {
            jobs::result_csv(&*db, &job_id, &|code| short_urls.of(code))
        })
        .await??;
        anyhow::Ok((summary, result))
    });
    bar.finish_and_clear();
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

fn parse_targets(s: &str) -> Result<Vec<TargetRule>> {
    serde_json::from_str(s).context("--targets is not a JSON list of targeting rules")
}
