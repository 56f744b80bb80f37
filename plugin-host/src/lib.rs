//! The plugin host: finds plugin files, loads and checks them
//! ([`loader`]), makes one instance per configured provider, and routes an
//! input to the provider that accepts it.
//!
//! A provider that fails to load is *refused*, with an error naming the file
//! and the problem, and every other provider keeps working. A provider whose
//! plugin panics, or whose call overruns the time budget ([`budget`]), is
//! *poisoned*: it is never called again and routing skips it. Before a
//! plugin is loaded into this process it can be *probed* in a child process
//! ([`probe`]), so one that crashes or hangs on ordinary inputs is refused
//! instead of taking the server down.
//!
//! This crate and the SDK's FFI layer are the only places with `unsafe`
//! code, all of it in [`loader`]. It builds without any HTTP, storage or
//! API dependency.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod budget;
pub mod loader;
pub mod probe;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use linkwright_model::click::CLICK_ID_LEN;
use linkwright_model::error::{BuildError, ErrorCode};
use linkwright_model::template::Template;
use linkwright_plugin_sdk::Status;
use tracing::{error, warn};

pub use loader::{Disabled, Instance, Library};
pub use probe::ProbeCommand;

/// One provider instance, as the config declares it.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Position in the config's `providers` array, for key paths in errors.
    pub index: usize,
    /// The provider's name.
    pub name: String,
    /// The plugin: a name or a resolved path.
    pub plugin: PluginRef,
    /// The provider's table, as JSON for the plugin.
    pub settings: serde_json::Value,
    /// The hosts its tracked links may point at (each with its subdomains);
    /// empty: those the plugin declares (`link_hosts` in its description).
    pub link_hosts: Vec<String>,
}

/// How plugins are loaded and called.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The time budget of one plugin call (`build`, `describe`): a call past
    /// it fails, and its provider is quarantined.
    pub call_budget: Duration,
    /// Probe each plugin in a child process before loading it here; `None`:
    /// load without probing.
    pub probe: Option<ProbeCommand>,
}

/// The default time budget of a plugin call.
pub const DEFAULT_CALL_BUDGET: Duration = Duration::from_secs(2);

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            call_budget: DEFAULT_CALL_BUDGET,
            probe: None,
        }
    }
}

/// How a provider names its plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginRef {
    /// Found by name in the plugin folders.
    Name(String),
    /// An explicit file.
    Path(PathBuf),
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::Name(n) => f.write_str(n),
            PluginRef::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Why a plugin or a provider instance could not be loaded. Every message
/// names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// No file for a plugin name in any plugin folder.
    #[error(
        "plugin `{plugin}` not found: no {file_name} in {}",
        list_dirs(searched)
    )]
    NotFound {
        /// The plugin name from the config.
        plugin: String,
        /// The file name looked for.
        file_name: String,
        /// The folders searched.
        searched: Vec<PathBuf>,
    },
    /// An explicit plugin path does not exist or cannot be read.
    #[error("plugin file {} cannot be opened: {reason}", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not a loadable shared library.
    #[error("{} is not a plugin: it is not a loadable shared library ({reason})", path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library exports no entry symbol of any ABI major.
    #[error(
        "{} is not a linkwright plugin: it exports no `{}` symbol",
        path.display(),
        linkwright_plugin_sdk::abi::ENTRY_SYMBOL
    )]
    NoEntrySymbol {
        /// The file.
        path: PathBuf,
    },
    /// The plugin speaks another ABI major version.
    #[error(
        "{} speaks another plugin ABI: it exports {exports}; this host expects `{}` (ABI major {})",
        path.display(),
        linkwright_plugin_sdk::abi::ENTRY_SYMBOL,
        linkwright_plugin_sdk::abi::ABI_MAJOR
    )]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// What the file exports instead.
        exports: String,
    },
    /// The entry symbol returned a null descriptor.
    #[error("{} returned a null plugin descriptor", path.display())]
    NullDescriptor {
        /// The file.
        path: PathBuf,
    },
    /// The descriptor is not aligned as a `lw_plugin_descriptor` must be.
    #[error(
        "{} returned a plugin descriptor at {address:#x}, not aligned to {align} bytes",
        path.display()
    )]
    MisalignedDescriptor {
        /// The file.
        path: PathBuf,
        /// The address returned.
        address: usize,
        /// The alignment the descriptor needs.
        align: usize,
    },
    /// The descriptor's magic number is wrong.
    #[error(
        "{} has a bad plugin descriptor: magic is {found:#010x}, expected {:#010x}",
        path.display(),
        linkwright_plugin_sdk::abi::PLUGIN_MAGIC
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic found.
        found: u32,
    },
    /// The descriptor is smaller than ABI 1.0's.
    #[error(
        "{} has a plugin descriptor of {size} bytes; this host needs at least {expected}",
        path.display()
    )]
    DescriptorTooSmall {
        /// The file.
        path: PathBuf,
        /// The size the plugin declares.
        size: u32,
        /// The size this host needs.
        expected: usize,
    },
    /// A required function pointer (or the name) is missing.
    #[error("{} has an incomplete plugin descriptor: `{which}` is missing", path.display())]
    MissingFunction {
        /// The file.
        path: PathBuf,
        /// The missing entry.
        which: &'static str,
    },
    /// The plugin's `init` failed.
    #[error("{} failed to initialise: {message}", path.display())]
    InitFailed {
        /// The file.
        path: PathBuf,
        /// The plugin's message.
        message: String,
    },
    /// The plugin rejected the provider's configuration.
    #[error("plugin {} rejected the configuration of provider `{provider}`: {message}", path.display())]
    ConfigRejected {
        /// The provider name.
        provider: String,
        /// The file.
        path: PathBuf,
        /// The plugin's own message.
        message: String,
    },
    /// The plugin panicked while making the instance.
    #[error("plugin {} panicked while configuring provider `{provider}`: {message}", path.display())]
    Panicked {
        /// The provider name.
        provider: String,
        /// The file.
        path: PathBuf,
        /// The panic message.
        message: String,
    },
    /// Probed in a child process, the plugin crashed, hung or failed there.
    #[error(
        "plugin {} failed its probe for provider `{provider}` (run in a child process before loading it here): {reason}",
        path.display()
    )]
    ProbeFailed {
        /// The provider name.
        provider: String,
        /// The file.
        path: PathBuf,
        /// What happened in the child, and at which step.
        reason: String,
    },
}

fn list_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "(no plugin folders configured)".to_owned();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file name of a plugin: `amazon` → `liblinkwright_amazon.so` on Linux.
pub fn plugin_file_name(plugin: &str) -> String {
    format!(
        "{}linkwright_{}{}",
        std::env::consts::DLL_PREFIX,
        plugin.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Finds the file for a plugin reference.
pub fn resolve(plugin: &PluginRef, dirs: &[PathBuf]) -> Result<PathBuf, LoadError> {
    match plugin {
        PluginRef::Path(p) => Ok(p.clone()),
        PluginRef::Name(name) => {
            let file_name = plugin_file_name(name);
            dirs.iter()
                .map(|d| d.join(&file_name))
                .find(|p| p.is_file())
                .ok_or_else(|| LoadError::NotFound {
                    plugin: name.clone(),
                    file_name,
                    searched: dirs.to_vec(),
                })
        }
    }
}

/// A configured, working provider instance.
#[derive(Debug)]
pub struct Provider {
    /// The provider name from the config.
    pub name: String,
    /// Its position in the config.
    pub index: usize,
    instance: Arc<Instance>,
    /// Hosts (with their subdomains) its templates may point at; empty: not
    /// checked (neither the config nor the plugin names any).
    link_hosts: Vec<String>,
    call_budget: Duration,
}

impl Provider {
    /// The plugin library behind it.
    pub fn library(&self) -> &Arc<Library> {
        self.instance.library()
    }

    /// Whether a panic or a call past its time budget has disabled it.
    pub fn is_poisoned(&self) -> bool {
        self.instance.is_poisoned()
    }

    /// Why it is disabled, if it is.
    pub fn disabled(&self) -> Option<Disabled> {
        self.instance.disabled()
    }

    /// The hosts its tracked links may point at (empty: not checked).
    pub fn link_hosts(&self) -> &[String] {
        &self.link_hosts
    }

    /// What the provider serves, as the plugin describes it (JSON).
    pub fn describe(&self) -> Option<serde_json::Value> {
        if self.is_poisoned() {
            return None;
        }
        match self.describe_text() {
            Ok(Some(text)) => serde_json::from_str(&text).ok(),
            Ok(None) => None,
            Err(e) => {
                warn!(provider = %self.name, error = %e.message, "describe failed");
                None
            }
        }
    }

    /// The plugin's `describe`, within the time budget.
    fn describe_text(&self) -> Result<Option<String>, BuildError> {
        let instance = Arc::clone(&self.instance);
        self.within_budget("describe", move || instance.describe())?
            .map_err(|e| BuildError::from_plugin(&self.name, e.status, e.code, e.message))
    }

    /// Runs one call of the plugin on a worker thread within the time
    /// budget; past it, the provider is quarantined and the call abandoned.
    fn within_budget<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, BuildError> {
        budget::run(self.call_budget, f).map_err(|overrun| match overrun {
            budget::Overrun::TimedOut => self.overran(what),
            budget::Overrun::NoWorker => BuildError::new(
                ErrorCode::Internal,
                format!(
                    "provider `{}`: no thread to run its plugin call ({what})",
                    self.name
                ),
            )
            .provider(&self.name),
        })
    }

    /// A call of `what` overran the time budget: quarantines the provider
    /// (counted as a `timeout` build) and says so, naming it.
    fn overran(&self, what: &str) -> BuildError {
        let name = self.name.as_str();
        self.instance.quarantine();
        record_build(name, self.call_budget, "timeout");
        error!(provider = %name, call = what, budget_ms = self.call_budget.as_millis() as u64,
            "plugin call overran its time budget; provider disabled until restart");
        BuildError::new(
            ErrorCode::Internal,
            format!(
                "provider `{name}` did not answer within {} ms ({what}) and is disabled until restart",
                self.call_budget.as_millis()
            ),
        )
        .provider(name)
    }
}

/// A provider that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The provider name from the config.
    pub name: String,
    /// Its position in the config.
    pub index: usize,
    /// The plugin as the config names it.
    pub plugin: String,
    /// The file, if one was found.
    pub file: Option<PathBuf>,
    /// Why it was refused.
    pub error: LoadError,
}

/// What to build a template for.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildRequest<'a> {
    /// A product URL, or a bare product id (an ASIN).
    pub input: &'a str,
    /// The requested marketplace (`amazon.co.uk`), if any.
    pub marketplace: Option<&'a str>,
    /// Network parameters (Awin `clickref2`, Amazon `tag`, …).
    pub params: &'a [(String, String)],
    /// A provider to use instead of routing by host.
    pub provider: Option<&'a str>,
}

/// Longest input accepted, in bytes.
pub const MAX_INPUT_LEN: usize = 8 * 1024;

/// Every configured provider: the loaded ones, in routing order, and the
/// refused ones with their reasons.
#[derive(Debug, Default)]
pub struct Providers {
    loaded: Arc<Vec<Provider>>,
    refused: Vec<Refused>,
    call_budget: Duration,
}

impl Providers {
    /// Loads every enabled provider in the config with the default
    /// [`LoadOptions`] (no probe). Failures are recorded, not fatal: see
    /// [`refused`](Self::refused).
    pub fn load(configured: &[ProviderConfig], dirs: &[PathBuf]) -> Providers {
        Providers::load_with(configured, dirs, &LoadOptions::default())
    }

    /// Loads every enabled provider in the config: each plugin probed in a
    /// child process first when `options` say so (all probes at once), then
    /// loaded here. Failures are recorded, not fatal.
    pub fn load_with(
        configured: &[ProviderConfig],
        dirs: &[PathBuf],
        options: &LoadOptions,
    ) -> Providers {
        let probed: Vec<Result<(), (Option<PathBuf>, LoadError)>> = match &options.probe {
            Some(command) => std::thread::scope(|s| {
                let probes: Vec<_> = configured
                    .iter()
                    .map(|pc| s.spawn(|| probe_provider(command, pc, dirs, options.call_budget)))
                    .collect();
                probes
                    .into_iter()
                    .zip(configured)
                    .map(|(p, pc)| {
                        p.join().unwrap_or_else(|_| {
                            Err((
                                None,
                                LoadError::ProbeFailed {
                                    provider: pc.name.clone(),
                                    path: PathBuf::new(),
                                    reason: "the probe's thread panicked".to_owned(),
                                },
                            ))
                        })
                    })
                    .collect()
            }),
            None => configured.iter().map(|_| Ok(())).collect(),
        };
        let mut providers = Providers {
            call_budget: options.call_budget,
            ..Providers::default()
        };
        let mut loaded = Vec::new();
        for (pc, probed) in configured.iter().zip(probed) {
            match probed.and_then(|()| load_provider(pc, dirs)) {
                Ok(instance) => {
                    let mut provider = Provider {
                        name: pc.name.clone(),
                        index: pc.index,
                        instance: Arc::new(instance),
                        link_hosts: pc.link_hosts.clone(),
                        call_budget: options.call_budget,
                    };
                    if provider.link_hosts.is_empty() {
                        provider.link_hosts = declared_link_hosts(provider.describe().as_ref());
                    }
                    loaded.push(provider);
                }
                Err((file, error)) => {
                    error!(provider = %pc.name, error = %error, "provider refused");
                    providers.refused.push(Refused {
                        name: pc.name.clone(),
                        index: pc.index,
                        plugin: pc.plugin.to_string(),
                        file,
                        error,
                    });
                }
            }
        }
        providers.loaded = Arc::new(loaded);
        providers
    }

    /// The loaded providers, in routing order.
    pub fn loaded(&self) -> &[Provider] {
        &self.loaded
    }

    /// The providers that could not be loaded.
    pub fn refused(&self) -> &[Refused] {
        &self.refused
    }

    /// A loaded provider by name.
    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.loaded.iter().find(|p| p.name == name)
    }

    /// Builds a template: with the named provider, or with the first provider
    /// (in config order) that accepts the input. The plugin calls run on a
    /// worker thread, each within the time budget (see [`build_many`](Self::build_many)).
    pub fn build(&self, req: &BuildRequest<'_>) -> Result<Template, BuildError> {
        self.build_many(std::slice::from_ref(req))
            .pop()
            .unwrap_or_else(|| Err(BuildError::new(ErrorCode::Internal, "no answer")))
    }

    /// Builds a template as [`build`](Self::build) does (the same checks,
    /// routing and template checks), but on the calling thread and without
    /// the time budget: a plugin call that hangs, hangs the caller. For a
    /// caller that bounds the time itself, such as a fuzz target under
    /// libFuzzer's `-timeout`, where handing every call to a worker thread
    /// would cost more than the call; the servers use [`build`](Self::build).
    pub fn build_on_this_thread(&self, req: &BuildRequest<'_>) -> Result<Template, BuildError> {
        route(&self.loaded, req, &Watch::default())
    }

    /// Builds many templates, each as [`build`](Self::build) would, in
    /// order, on one worker thread (one hand-off for the lot, not one per
    /// call). The caller watches the worker: a plugin call still running
    /// when its time budget is spent fails its request naming the provider,
    /// the provider is quarantined, and the requests after it go on on a
    /// fresh worker while the stuck one is abandoned with its call.
    pub fn build_many(&self, reqs: &[BuildRequest<'_>]) -> Vec<Result<Template, BuildError>> {
        let items: Arc<Vec<OwnedRequest>> = Arc::new(reqs.iter().map(OwnedRequest::new).collect());
        let mut results = Vec::with_capacity(items.len());
        while results.len() < items.len() {
            let start = results.len();
            let watch = Arc::new(Watch::default());
            // One message when the worker is done: the answers themselves
            // go in `watch`, so the caller is not woken once per item.
            let (done, finished) = mpsc::sync_channel::<()>(1);
            let job = {
                let (loaded, items, watch) = (
                    Arc::clone(&self.loaded),
                    Arc::clone(&items),
                    Arc::clone(&watch),
                );
                move || {
                    for item in &items[start..] {
                        if watch.abandoned.load(std::sync::atomic::Ordering::Acquire) {
                            return;
                        }
                        let built = route(&loaded, &item.request(), &watch);
                        watch.answers().push(built);
                    }
                    let _ = done.send(());
                }
            };
            if budget::spawn(job).is_err() {
                results.push(Err(BuildError::new(
                    ErrorCode::Internal,
                    "no thread to run the plugin call on",
                )));
                continue;
            }
            loop {
                let wait = match watch.current() {
                    Some((_, since)) => {
                        (since + self.call_budget).saturating_duration_since(Instant::now())
                    }
                    None => self.call_budget,
                };
                match finished.recv_timeout(wait) {
                    Ok(()) => {
                        results.append(&mut watch.answers());
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // While the answers are locked the worker cannot
                        // move on: a call it is in belongs to the next item.
                        let mut answers = watch.answers();
                        if let Some((at, since)) = watch.current()
                            && since.elapsed() >= self.call_budget
                        {
                            watch
                                .abandoned
                                .store(true, std::sync::atomic::Ordering::Release);
                            results.append(&mut answers);
                            results.push(Err(self.loaded[at].overran("build")));
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        // The worker died without finishing (a host bug).
                        results.append(&mut watch.answers());
                        results.push(Err(BuildError::new(
                            ErrorCode::Internal,
                            "the plugin call's worker thread failed",
                        )));
                        break;
                    }
                }
            }
        }
        results
    }
}

/// A build request, owned, to hand to a worker thread.
#[derive(Debug)]
struct OwnedRequest {
    input: String,
    marketplace: Option<String>,
    params: Vec<(String, String)>,
    provider: Option<String>,
}

impl OwnedRequest {
    fn new(req: &BuildRequest<'_>) -> OwnedRequest {
        OwnedRequest {
            input: req.input.to_owned(),
            marketplace: req.marketplace.map(str::to_owned),
            params: req.params.to_vec(),
            provider: req.provider.map(str::to_owned),
        }
    }

    fn request(&self) -> BuildRequest<'_> {
        BuildRequest {
            input: &self.input,
            marketplace: self.marketplace.as_deref(),
            params: &self.params,
            provider: self.provider.as_deref(),
        }
    }
}

/// What a worker shares with the caller watching it: the answers so far,
/// the plugin call it is in (which provider, by position, and since when),
/// and whether the caller gave up on it.
#[derive(Debug, Default)]
struct Watch {
    answers: Mutex<Vec<Result<Template, BuildError>>>,
    call: Mutex<Option<(usize, Instant)>>,
    abandoned: std::sync::atomic::AtomicBool,
}

impl Watch {
    fn answers(&self) -> std::sync::MutexGuard<'_, Vec<Result<Template, BuildError>>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, call: Option<(usize, Instant)>) {
        *self.call.lock().unwrap_or_else(|p| p.into_inner()) = call;
    }

    fn current(&self) -> Option<(usize, Instant)> {
        *self.call.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds one template on a worker: the checks on the input, then the named
/// provider or the first (in config order) that accepts it.
fn route(
    loaded: &[Provider],
    req: &BuildRequest<'_>,
    watch: &Watch,
) -> Result<Template, BuildError> {
    let input = req.input.trim();
    if input.is_empty() {
        return Err(BuildError::new(ErrorCode::InvalidInput, "the input is empty").field("input"));
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(BuildError::new(
            ErrorCode::InvalidInput,
            format!(
                "the input is {} bytes; the limit is {MAX_INPUT_LEN}",
                input.len()
            ),
        )
        .field("input"));
    }
    if let Some(name) = req.provider {
        let (at, provider) = loaded
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = loaded.iter().map(|p| p.name.as_str()).collect();
                BuildError::new(
                    ErrorCode::InvalidInput,
                    format!("no provider named `{name}`; loaded: {}", known.join(", ")),
                )
                .field("provider")
            })?;
        return match call(provider, at, input, req, watch)? {
            Some(t) => Ok(t),
            None => Err(BuildError::new(
                ErrorCode::UnsupportedHost,
                format!(
                    "provider `{name}` does not handle {}",
                    describe_input(input)
                ),
            )
            .provider(name)),
        };
    }
    let mut poisoned: Vec<(Disabled, &str)> = Vec::new();
    for (at, provider) in loaded.iter().enumerate() {
        if let Some(why) = provider.disabled() {
            poisoned.push((why, provider.name.as_str()));
            continue;
        }
        if let Some(t) = call(provider, at, input, req, watch)? {
            return Ok(t);
        }
    }
    let mut message = format!("no provider handles {}", describe_input(input));
    for why in [Disabled::Panicked, Disabled::TimedOut] {
        let names: Vec<&str> = poisoned
            .iter()
            .filter(|(w, _)| *w == why)
            .map(|(_, n)| *n)
            .collect();
        if !names.is_empty() {
            message.push_str(&format!(
                " (disabled after a plugin {}: {})",
                why.as_str(),
                names.join(", ")
            ));
        }
    }
    Err(BuildError::new(ErrorCode::UnsupportedHost, message).field("input"))
}

/// `host example.com` for a URL, the input itself otherwise.
fn describe_input(input: &str) -> String {
    match url::Url::parse(input) {
        Ok(u) if u.host_str().is_some() => format!("host `{}`", u.host_str().unwrap_or_default()),
        _ => format!("`{input}` (neither a URL of a known host nor a product id)"),
    }
}

/// Calls one provider (at position `at`), marking the call in `watch` while
/// it runs: `Ok(None)` when it declines.
fn call(
    provider: &Provider,
    at: usize,
    input: &str,
    req: &BuildRequest<'_>,
    watch: &Watch,
) -> Result<Option<Template>, BuildError> {
    let name = provider.name.as_str();
    match provider.disabled() {
        None => {}
        Some(Disabled::Panicked) => {
            return Err(BuildError::new(
                ErrorCode::Internal,
                format!("provider `{name}` is disabled: its plugin panicked earlier"),
            )
            .provider(name));
        }
        Some(Disabled::TimedOut) => {
            return Err(BuildError::new(
                ErrorCode::Internal,
                format!(
                    "provider `{name}` is disabled: a call to its plugin took longer than {} ms earlier",
                    provider.call_budget.as_millis()
                ),
            )
            .provider(name));
        }
    }
    let started = Instant::now();
    watch.set(Some((at, started)));
    let built = provider.instance.build(input, req.marketplace, req.params);
    watch.set(None);
    let result = match &built {
        Ok(_) => "ok",
        Err(e) if e.status == Some(Status::Declined) => "declined",
        Err(e) if e.status == Some(Status::Panic) => "panic",
        Err(_) => "error",
    };
    record_build(name, started.elapsed(), result);
    let built = match built {
        Ok(b) => b,
        Err(e) if e.status == Some(Status::Declined) => return Ok(None),
        Err(e) => {
            if e.status == Some(Status::Panic) {
                error!(provider = %name, error = %e.message, "plugin panicked; provider disabled");
            }
            return Err(BuildError::from_plugin(name, e.status, e.code, e.message));
        }
    };
    let template = Template {
        provider: name.to_owned(),
        built,
    };
    check_template(&template, &provider.link_hosts)?;
    Ok(Some(template))
}

/// Counts a template build through a plugin and times it (`ok`, `declined`,
/// `error`, `panic`); described and exported by the host's metrics.
fn record_build(provider: &str, elapsed: std::time::Duration, result: &'static str) {
    metrics::histogram!("linkwright_plugin_build_duration_seconds", "provider" => provider.to_owned())
        .record(elapsed.as_secs_f64());
    metrics::counter!("linkwright_plugin_builds_total", "provider" => provider.to_owned(), "result" => result)
        .increment(1);
}

/// The host's own checks on what a plugin returned: an http(s) URL with no
/// control characters, whose sub-ID slot holds a whole click ID, on one of
/// the provider's link hosts when it has any.
fn check_template(t: &Template, link_hosts: &[String]) -> Result<(), BuildError> {
    let bad =
        |message: String| Err(BuildError::new(ErrorCode::Internal, message).provider(&t.provider));
    if t.subid_max_len != 0 && (t.subid_max_len as usize) < CLICK_ID_LEN {
        return bad(format!(
            "provider `{}` keeps sub-IDs of at most {} characters; click IDs need {CLICK_ID_LEN}",
            t.provider, t.subid_max_len
        ));
    }
    let sample = t.fill_str("0000000000000");
    if sample.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return bad(format!(
            "provider `{}` built a URL with spaces or control characters",
            t.provider
        ));
    }
    let url = match url::Url::parse(&sample) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            return bad(format!(
                "provider `{}` built `{}`, which is not an http(s) URL",
                t.provider,
                t.display()
            ));
        }
    };
    let host = url.host_str().unwrap_or_default();
    if !link_hosts.is_empty() && !link_hosts.iter().any(|h| host_within(host, h)) {
        return bad(format!(
            "provider `{}` built `{}`, on host `{host}`, which is not one of its link hosts ({})",
            t.provider,
            t.display(),
            link_hosts.join(", ")
        ));
    }
    Ok(())
}

/// Whether `host` is `owned` or one of its subdomains (ASCII case and a
/// trailing dot aside).
pub fn host_within(host: &str, owned: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let owned = owned.trim_end_matches('.').to_ascii_lowercase();
    !owned.is_empty()
        && (host == owned
            || host
                .strip_suffix(owned.as_str())
                .is_some_and(|rest| rest.ends_with('.')))
}

/// The link hosts a plugin declares in its description
/// (`{"link_hosts": ["www.awin1.com"]}`), if any.
fn declared_link_hosts(description: Option<&serde_json::Value>) -> Vec<String> {
    description
        .and_then(|d| d.get("link_hosts"))
        .and_then(serde_json::Value::as_array)
        .map(|hosts| {
            hosts
                .iter()
                .filter_map(serde_json::Value::as_str)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Probes one provider's plugin in a child process (see [`probe`]).
fn probe_provider(
    command: &ProbeCommand,
    pc: &ProviderConfig,
    dirs: &[PathBuf],
    budget: Duration,
) -> Result<(), (Option<PathBuf>, LoadError)> {
    let path = resolve(&pc.plugin, dirs).map_err(|e| (None, e))?;
    // A file that cannot be opened is refused by the load itself, with its
    // own error.
    let Ok(canonical) = std::fs::canonicalize(&path) else {
        return Ok(());
    };
    probe::run(command, &canonical, &pc.settings.to_string(), budget).map_err(|reason| {
        error!(provider = %pc.name, file = %canonical.display(), reason = %reason, "plugin failed its probe");
        (
            Some(canonical.clone()),
            LoadError::ProbeFailed {
                provider: pc.name.clone(),
                path: canonical.clone(),
                reason,
            },
        )
    })
}

fn load_provider(
    pc: &ProviderConfig,
    dirs: &[PathBuf],
) -> Result<Instance, (Option<PathBuf>, LoadError)> {
    let path = resolve(&pc.plugin, dirs).map_err(|e| (None, e))?;
    let library = loader::load(&path).map_err(|e| (Some(path.clone()), e))?;
    let config_json = pc.settings.to_string();
    Instance::new(Arc::clone(&library), &config_json).map_err(|e| {
        let path = library.path.clone();
        let error = if e.status == Some(Status::Panic) {
            LoadError::Panicked {
                provider: pc.name.clone(),
                path: path.clone(),
                message: e.message,
            }
        } else {
            LoadError::ConfigRejected {
                provider: pc.name.clone(),
                path: path.clone(),
                message: e.message,
            }
        };
        (Some(path), error)
    })
}
