//! The link service: the one way links are created, changed, deleted and
//! rewritten, whoever asks (the CLI, the admin API, bulk jobs, `/go`).
//!
//! Creating a link: check the request (a `url` or an `asin`, a valid custom
//! code), find a link an identical earlier request made (its request key,
//! a digest of the request, is unique in the store), build the template
//! through the providers (expanding `amzn.to`-style short links first),
//! commit the link, count it, and drop its code from this instance's
//! negative cache. Two identical requests that race each other meet at the
//! store's unique request key and both answer the first one's link.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::cache::Caches;
use crate::error::{BuildError, ErrorCode};
use crate::expand::Expander;
use crate::metrics;
use crate::plugin::{BuildRequest, Providers};
use crate::store::{
    ClickBreakdown, Link, LinkFilter, LinkStats, LinkStore, LinkUpdate, NewLink, StoreError,
};
use crate::targeting::{TargetRule, Targeting};
use crate::template::Template;

mod targets;

pub use self::targets::{Localizer, RegionalCatalog};
pub use crate::store::validate_code;

/// A link to create: a product URL, or an ASIN and a marketplace.
///
/// Its JSON form is also its identity: the same request twice has the same
/// digest ([`CreateLinkRequest::key`]) and gets the same link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkRequest {
    /// A product URL (any Amazon URL shape, an advertiser page, a short link).
    pub url: Option<String>,
    /// An Amazon ASIN, instead of `url`.
    pub asin: Option<String>,
    /// Marketplace for an ASIN (default `amazon.com`).
    pub marketplace: Option<String>,
    /// Free text for your own bookkeeping (campaign, video title, channel + date).
    pub name: Option<String>,
    /// A custom short code (letters, digits, `-`, `_`); default: generated.
    pub code: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Network parameters: Awin `campaign`, `clickref2`..`clickref6`; Amazon `tag`.
    pub params: Option<BTreeMap<String, String>>,
    /// A provider to use instead of routing by host.
    pub provider: Option<String>,
    /// Targeting rules: by device, country or an A/B split, each with a
    /// destination built like the link's own (see `targeting`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetRule>>,
    /// Amazon localization on or off for this link (default: the
    /// provider's `localize` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localize: Option<bool>,
}

impl CreateLinkRequest {
    /// The product input: the URL, or the ASIN (checked to look like one).
    pub fn input(&self) -> Result<&str, BuildError> {
        check_fields(
            self.name.as_deref(),
            self.campaign.as_deref(),
            self.tags.as_deref(),
        )?;
        let params = self.params.iter().flatten();
        if params.clone().count() > MAX_PARAMS {
            return Err(too_many("params", MAX_PARAMS, "network parameters"));
        }
        for (k, v) in params {
            too_long("params", k, MAX_PARAM_LEN)?;
            too_long("params", v, MAX_PARAM_LEN)?;
        }
        match (given(&self.url), given(&self.asin)) {
            (Some(url), None) => Ok(url),
            (None, Some(asin)) if linkwright_model::amazon::is_asin(asin) => Ok(asin),
            (None, Some(asin)) => Err(BuildError::new(
                ErrorCode::InvalidAsin,
                format!("{asin:?} is not a valid ASIN: 10 letters or digits"),
            )
            .field("asin")),
            (Some(_), Some(_)) => Err(BuildError::new(
                ErrorCode::InvalidInput,
                "give either `url` or `asin`, not both",
            )
            .field("url")),
            (None, None) => Err(BuildError::new(
                ErrorCode::InvalidInput,
                "give a product `url`, or an `asin` and a `marketplace`",
            )
            .field("url")),
        }
    }

    /// The network parameters as pairs, in key order.
    pub fn params(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The link to store for this request: its input, the template built
    /// for it, its parameters as pairs, and its key.
    fn new_link(
        &self,
        input: String,
        template: Template,
        params: Vec<(String, String)>,
        key: String,
        targeting: Option<Targeting>,
    ) -> NewLink {
        NewLink {
            targeting,
            code: self.code.clone(),
            input,
            template,
            name: self.name.clone(),
            campaign: self.campaign.clone(),
            tags: self.tags.clone().unwrap_or_default(),
            params,
            source_key: None,
            request_key: Some(key),
        }
    }

    /// A digest of everything that shapes the link: the same request twice
    /// has the same key.
    pub fn key(&self) -> String {
        let canonical = serde_json::to_string(self).unwrap_or_default();
        let digest = Sha256::digest(canonical.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A request's input, after the checks every new link passes (a `url` or
/// an `asin`, a valid custom code).
fn checked(req: &CreateLinkRequest) -> Result<String, LinkError> {
    let input = req.input()?.to_owned();
    if let Some(code) = &req.code {
        validate_code(code)
            .map_err(|m| BuildError::new(ErrorCode::InvalidInput, m).field("code"))?;
    }
    Ok(input)
}

/// Most tags on a link.
pub const MAX_TAGS: usize = 50;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 100;
/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 500;
/// Longest campaign, in bytes.
pub const MAX_CAMPAIGN_LEN: usize = 200;
/// Most network parameters on a link.
pub const MAX_PARAMS: usize = 20;
/// Longest network parameter name or value, in bytes.
pub const MAX_PARAM_LEN: usize = 1_000;

/// `limit_exceeded` on `field` for a text longer than `max` bytes.
fn too_long(field: &'static str, text: &str, max: usize) -> Result<(), BuildError> {
    if text.len() > max {
        return Err(BuildError::new(
            ErrorCode::LimitExceeded,
            format!(
                "`{field}` holds at most {max} bytes per value, got {}",
                text.len()
            ),
        )
        .field(field));
    }
    Ok(())
}

/// `limit_exceeded` on `field` for more than `max` entries.
fn too_many(field: &'static str, max: usize, what: &str) -> BuildError {
    BuildError::new(
        ErrorCode::LimitExceeded,
        format!("a link has at most {max} {what}"),
    )
    .field(field)
}

/// The bounds on a link's own fields (name, campaign, tags), for a new link
/// and a change alike.
fn check_fields(
    name: Option<&str>,
    campaign: Option<&str>,
    tags: Option<&[String]>,
) -> Result<(), BuildError> {
    too_long("name", name.unwrap_or(""), MAX_NAME_LEN)?;
    too_long("campaign", campaign.unwrap_or(""), MAX_CAMPAIGN_LEN)?;
    let tags = tags.unwrap_or(&[]);
    if tags.len() > MAX_TAGS {
        return Err(too_many("tags", MAX_TAGS, "tags"));
    }
    for tag in tags {
        too_long("tags", tag, MAX_TAG_LEN)?;
    }
    Ok(())
}

/// A field's text, trimmed, if it is present and not blank.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a link; absent fields stay, `null` clears `name` and `campaign`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchLinkRequest {
    /// New name, or null to clear.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// New campaign, or null to clear.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub campaign: Option<Option<String>>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// Disable (410) or enable the link.
    pub disabled: Option<bool>,
    /// A new destination URL: the template is rebuilt.
    pub url: Option<String>,
    /// A new ASIN: the template is rebuilt.
    pub asin: Option<String>,
    /// Marketplace for a new ASIN.
    pub marketplace: Option<String>,
    /// New targeting rules (an empty list removes them).
    pub targets: Option<Vec<TargetRule>>,
    /// Amazon localization on or off.
    pub localize: Option<bool>,
}

/// Who asked for a link: the `source` label of `linkwright_links_created_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The command line (`links create`, `links import`).
    Cli,
    /// The admin API (single, batch and bulk).
    Api,
    /// Middleware mode on the public host (`/go?url=`).
    Go,
}

impl Source {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::Api => "api",
            Source::Go => "go",
        }
    }
}

/// A link the service answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The link.
    pub link: Link,
    /// True if this call made it; false if an identical earlier request had.
    pub new: bool,
}

/// Why a link operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The request cannot become a link (bad input, or a provider refused
    /// it): a stable code, a message and the field at fault.
    #[error(transparent)]
    Rejected(#[from] BuildError),
    /// No link has this code.
    #[error("no link with code `{0}`")]
    NotFound(String),
    /// The custom code is taken by another link.
    #[error("the code `{0}` is taken by another link")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(code) => LinkError::Conflict(code),
            other => LinkError::Store(other),
        }
    }
}

impl LinkError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            LinkError::Rejected(e) => e.code,
            LinkError::NotFound(_) => ErrorCode::NotFound,
            LinkError::Conflict(_) => ErrorCode::Conflict,
            LinkError::Store(_) => ErrorCode::Internal,
        }
    }

    /// The message for a person, without the code.
    pub fn message(&self) -> String {
        match self {
            LinkError::Rejected(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            LinkError::Rejected(e) => e.field,
            LinkError::Conflict(_) => Some("code"),
            LinkError::NotFound(_) | LinkError::Store(_) => None,
        }
    }
}

/// Blocking threads a batch's template builds are spread over, at most
/// (fewer on a machine with fewer cores).
const BUILD_THREADS: usize = 4;

/// Short links of a batch expanded at once, at most: their outbound calls
/// overlap, and a batch of many short links does not wait on each in turn.
const EXPAND_WINDOW: usize = 8;

/// One template to build in a batch: what [`Builder::build`] takes, owned.
#[derive(Debug, Clone)]
struct BuildItem {
    input: String,
    marketplace: Option<String>,
    params: Vec<(String, String)>,
    provider: Option<String>,
}

impl BuildItem {
    fn request(&self) -> BuildRequest<'_> {
        BuildRequest {
            input: &self.input,
            marketplace: self.marketplace.as_deref(),
            params: &self.params,
            provider: self.provider.as_deref(),
        }
    }
}

/// Builds templates through the providers, expanding short links first:
/// the part of the link service that needs no store (`rewrite`).
#[derive(Debug)]
pub struct Builder {
    providers: Arc<Providers>,
    expander: Expander,
}

impl Builder {
    /// A builder over these providers.
    pub fn new(providers: Arc<Providers>, expander: Expander) -> Builder {
        Builder {
            providers,
            expander,
        }
    }

    /// Builds a template through the providers. With `expand`, a short link
    /// (`amzn.to`, …) a provider asks to expand is expanded first.
    async fn build(
        &self,
        input: &str,
        marketplace: Option<&str>,
        params: &[(String, String)],
        provider: Option<&str>,
        expand: bool,
    ) -> Result<Template, BuildError> {
        let request = |input| BuildRequest {
            input,
            marketplace,
            params,
            provider,
        };
        let result = match build_blocking(&self.providers, &request(input)).await {
            Err(e) if expand && self.wants_expansion(&e, input) => {
                expand_then_build(&self.providers, &self.expander, &request(input)).await
            }
            result => result,
        };
        result.inspect_err(count_plugin_error)
    }

    /// Whether a build error asks to expand this input first (a short link).
    fn wants_expansion(&self, e: &BuildError, input: &str) -> bool {
        e.code == ErrorCode::NeedsExpansion && self.expander.is_short_link(input)
    }

    /// Builds many templates, each exactly as [`Builder::build`] with
    /// expansion would, in order: the plugin builds spread over up to
    /// [`BUILD_THREADS`] blocking threads, then the inputs a provider asks
    /// to expand (short links) expanded [`EXPAND_WINDOW`] at a time.
    async fn build_many(&self, items: Vec<BuildItem>) -> Vec<Result<Template, BuildError>> {
        let items = Arc::new(items);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, BUILD_THREADS);
        let per_thread = items.len().div_ceil(threads).max(1);
        let mut tasks = Vec::with_capacity(threads);
        for start in (0..items.len()).step_by(per_thread) {
            let providers = Arc::clone(&self.providers);
            let items = Arc::clone(&items);
            let end = (start + per_thread).min(items.len());
            tasks.push((
                end - start,
                tokio::task::spawn_blocking(move || {
                    let requests: Vec<BuildRequest<'_>> =
                        items[start..end].iter().map(BuildItem::request).collect();
                    providers.build_many(&requests)
                }),
            ));
        }
        let mut results = Vec::with_capacity(items.len());
        for (len, task) in tasks {
            match task.await {
                Ok(built) => results.extend(built),
                Err(e) => results.extend((0..len).map(|_| {
                    Err(BuildError::new(
                        ErrorCode::Internal,
                        format!("template build task failed: {e}"),
                    ))
                })),
            }
        }
        // Short links: expanded, then built again, a few at a time.
        let mut expansions = tokio::task::JoinSet::new();
        let mut waiting = results
            .iter()
            .enumerate()
            .filter(|(i, r)| matches!(r, Err(e) if self.wants_expansion(e, &items[*i].input)))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
            .into_iter();
        loop {
            while expansions.len() < EXPAND_WINDOW
                && let Some(i) = waiting.next()
            {
                let (providers, expander) = (Arc::clone(&self.providers), self.expander.clone());
                let items = Arc::clone(&items);
                expansions.spawn(async move {
                    let built = expand_then_build(&providers, &expander, &items[i].request()).await;
                    (i, built)
                });
            }
            let Some(done) = expansions.join_next().await else {
                break;
            };
            match done {
                Ok((i, built)) => results[i] = built,
                Err(e) => {
                    // The task's index is lost with it: fail what is left.
                    for r in results
                        .iter_mut()
                        .filter(|r| matches!(r, Err(e) if e.code == ErrorCode::NeedsExpansion))
                    {
                        *r = Err(BuildError::new(
                            ErrorCode::Internal,
                            format!("short-link expansion task failed: {e}"),
                        ));
                    }
                }
            }
        }
        for r in &results {
            if let Err(e) = r {
                count_plugin_error(e);
            }
        }
        results
    }

    /// The template a request would get, without storing a link (rewrite).
    pub async fn template(&self, req: &CreateLinkRequest) -> Result<Template, BuildError> {
        let input = req.input()?;
        self.build(
            input,
            req.marketplace.as_deref(),
            &req.params(),
            req.provider.as_deref(),
            true,
        )
        .await
    }
}

/// Builds one template on a blocking thread: a plugin call may take up to
/// its time budget (`plugins.call_timeout_ms`), never on an async worker.
async fn build_blocking(
    providers: &Arc<Providers>,
    req: &BuildRequest<'_>,
) -> Result<Template, BuildError> {
    let providers = Arc::clone(providers);
    let item = BuildItem {
        input: req.input.to_owned(),
        marketplace: req.marketplace.map(str::to_owned),
        params: req.params.to_vec(),
        provider: req.provider.map(str::to_owned),
    };
    tokio::task::spawn_blocking(move || providers.build(&item.request()))
        .await
        .unwrap_or_else(|e| {
            Err(BuildError::new(
                ErrorCode::Internal,
                format!("template build task failed: {e}"),
            ))
        })
}

/// Expands a short link, then builds the template of what it leads to
/// (the other fields of `req` as they are).
async fn expand_then_build(
    providers: &Arc<Providers>,
    expander: &Expander,
    req: &BuildRequest<'_>,
) -> Result<Template, BuildError> {
    let expanded = expander.expand(req.input).await.map_err(|e| {
        let code = if e.retryable() {
            ErrorCode::UpstreamUnavailable
        } else {
            ErrorCode::InvalidInput
        };
        BuildError::new(code, e.to_string()).field("url")
    })?;
    build_blocking(
        providers,
        &BuildRequest {
            input: &expanded,
            ..*req
        },
    )
    .await
}

/// Counts a provider's refusal in the metrics.
fn count_plugin_error(e: &BuildError) {
    if let Some(p) = &e.provider {
        metrics::plugin_error(p, e.code.as_str());
    }
}

/// The link service of one process.
#[derive(Debug)]
pub struct LinkService {
    builder: Builder,
    /// Amazon localization's settings and catalog.
    localizer: Localizer,
    store: Arc<dyn LinkStore>,
    /// This instance's caches, if it serves redirects.
    caches: Option<Arc<Caches>>,
    /// Bound on the public host's store calls (`/go`): a visitor waits no
    /// longer.
    store_timeout: Duration,
}

impl LinkService {
    /// A service over these providers and store. `caches`: the caches a
    /// change must reach at once (a server's); other processes learn of
    /// changes from the store's journal.
    pub fn new(
        builder: Builder,
        store: Arc<dyn LinkStore>,
        caches: Option<Arc<Caches>>,
        store_timeout: Duration,
    ) -> LinkService {
        LinkService {
            builder,
            localizer: Localizer::default(),
            store,
            caches,
            store_timeout,
        }
    }

    /// With localization settings and a catalog.
    pub fn with_localizer(mut self, localizer: Localizer) -> LinkService {
        self.localizer = localizer;
        self
    }

    /// The providers links are built with.
    pub fn providers(&self) -> &Arc<Providers> {
        &self.builder.providers
    }

    /// Runs a store call on the blocking pool and waits for it: a write
    /// that was started is answered with its outcome (a timeout here would
    /// report a failure for a write that may still commit).
    async fn store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn LinkStore) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Task(e.to_string())),
        }
    }

    /// [`LinkService::store`] for the public host, which must not keep a
    /// visitor waiting longer than the store timeout. (A write that times
    /// out may still commit: `/go`'s writes are keyed by URL, so the next
    /// visitor finds that link.)
    async fn store_bounded<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn LinkStore) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        match tokio::time::timeout(self.store_timeout, self.store(f)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.store_timeout)),
        }
    }

    /// The template a request would get, without storing a link (rewrite).
    pub async fn template(&self, req: &CreateLinkRequest) -> Result<Template, LinkError> {
        Ok(self.builder.template(req).await?)
    }

    /// Creates a link, or answers the link an identical earlier request made.
    pub async fn create(
        &self,
        req: &CreateLinkRequest,
        source: Source,
    ) -> Result<Created, LinkError> {
        let input = checked(req)?;
        let key = req.key();
        let lookup = key.clone();
        if let Some(link) = self.store(move |s| s.link_by_request_key(&lookup)).await? {
            return Ok(Created { link, new: false });
        }
        let params = req.params();
        let template = self
            .builder
            .build(
                &input,
                req.marketplace.as_deref(),
                &params,
                req.provider.as_deref(),
                true,
            )
            .await?;
        let targeting = self
            .targeting(
                req.targets.as_deref().unwrap_or_default(),
                req.localize,
                &template,
                true,
            )
            .await?;
        self.insert(
            req.new_link(input, template, params, key, targeting),
            source,
        )
        .await
    }

    /// Creates links for many requests (a bulk job's chunk), answering each
    /// exactly as [`LinkService::create`] would have, in order, as if they
    /// were made one by one: the same checks and errors; a link an identical
    /// earlier request made (in the store, or earlier in `reqs`) is the
    /// answer; a custom code goes to the first request that asks for it.
    /// The earlier requests are looked up in one store call, the templates
    /// built with bounded parallelism ([`Builder::build_many`]), and the new
    /// links written in one transaction ([`LinkStore::create_links`]). An error
    /// here is the store failing for the whole batch: no link of it is made.
    pub async fn create_many(
        &self,
        reqs: &[CreateLinkRequest],
        source: Source,
    ) -> Result<Vec<Result<Created, LinkError>>, LinkError> {
        let mut answers: Vec<Option<Result<Created, LinkError>>> =
            reqs.iter().map(|_| None).collect();
        let mut pending = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            match checked(req) {
                Ok(input) => pending.push((i, input, req.key())),
                Err(e) => answers[i] = Some(Err(e)),
            }
        }
        let keys: Vec<String> = pending.iter().map(|(_, _, key)| key.clone()).collect();
        let earlier = self
            .store(move |s| {
                keys.iter()
                    .map(|key| s.link_by_request_key(key))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let mut to_build = Vec::with_capacity(pending.len());
        for (item, link) in pending.into_iter().zip(earlier) {
            match link {
                Some(link) => answers[item.0] = Some(Ok(Created { link, new: false })),
                None => to_build.push(item),
            }
        }
        let items = to_build
            .iter()
            .map(|(i, input, _)| BuildItem {
                input: input.clone(),
                marketplace: reqs[*i].marketplace.clone(),
                params: reqs[*i].params(),
                provider: reqs[*i].provider.clone(),
            })
            .collect();
        let built = self.builder.build_many(items).await;
        let mut new_links = Vec::with_capacity(to_build.len());
        let mut slots = Vec::with_capacity(to_build.len());
        for ((i, input, key), template) in to_build.into_iter().zip(built) {
            let req = &reqs[i];
            let targeting = match &template {
                Ok(t) => {
                    self.targeting(
                        req.targets.as_deref().unwrap_or_default(),
                        req.localize,
                        t,
                        true,
                    )
                    .await
                }
                Err(_) => Ok(None),
            };
            match (template, targeting) {
                (Err(e), _) | (_, Err(e)) => answers[i] = Some(Err(e.into())),
                (Ok(template), Ok(targeting)) => {
                    new_links.push(req.new_link(input, template, req.params(), key, targeting));
                    slots.push(i);
                }
            }
        }
        if !new_links.is_empty() {
            let made = self.store(move |s| s.create_links(new_links)).await?;
            let mut codes = HashSet::new();
            for (i, result) in slots.into_iter().zip(made) {
                answers[i] = Some(match result {
                    Ok(link) => {
                        metrics::link_created(&link.provider, source.as_str());
                        codes.insert(link.code.clone());
                        Ok(Created { link, new: true })
                    }
                    // An identical request made it first: answer with its link.
                    Err(StoreError::Duplicate(link)) => Ok(Created {
                        link: *link,
                        new: false,
                    }),
                    Err(e) => Err(e.into()),
                });
            }
            if let Some(caches) = &self.caches {
                caches.forget_created(&codes.iter().map(String::as_str).collect());
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| Err(LinkError::Store(StoreError::Task("no answer".into()))))
            })
            .collect())
    }

    /// The link of a middleware-mode URL (already normalised): the one made
    /// for it before, or a new one. Never expands short links: the public
    /// host makes no outbound call for a visitor.
    pub async fn for_url(&self, url: &str) -> Result<Created, LinkError> {
        let lookup = url.to_owned();
        if let Some(link) = self
            .store_bounded(move |s| s.link_by_source_key(&lookup))
            .await?
        {
            return Ok(Created { link, new: false });
        }
        let template = self.builder.build(url, None, &[], None, false).await?;
        let targeting = self.targeting(&[], None, &template, false).await?;
        let new = NewLink {
            targeting,
            code: None,
            input: url.to_owned(),
            template,
            name: None,
            campaign: None,
            tags: Vec::new(),
            params: Vec::new(),
            source_key: Some(url.to_owned()),
            request_key: None,
        };
        self.insert(new, Source::Go).await
    }

    async fn insert(&self, new: NewLink, source: Source) -> Result<Created, LinkError> {
        let created = if source == Source::Go {
            self.store_bounded(move |s| s.create_link(new)).await
        } else {
            self.store(move |s| s.create_link(new)).await
        };
        match created {
            Ok(link) => {
                metrics::link_created(&link.provider, source.as_str());
                if let Some(caches) = &self.caches {
                    caches.forget_created(&HashSet::from([link.code.as_str()]));
                }
                Ok(Created { link, new: true })
            }
            // An identical request won the race: answer with its link.
            Err(StoreError::Duplicate(link)) => Ok(Created {
                link: *link,
                new: false,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// One link.
    pub async fn get(&self, code: &str) -> Result<Link, LinkError> {
        let key = code.to_owned();
        self.store(move |s| s.link_by_code(&key))
            .await?
            .ok_or_else(|| LinkError::NotFound(code.to_owned()))
    }

    /// A page of links.
    pub async fn list(&self, filter: LinkFilter) -> Result<Vec<Link>, LinkError> {
        Ok(self.store(move |s| s.list_links(&filter)).await?)
    }

    /// A link's clicks and conversions.
    pub async fn stats(&self, link_id: i64) -> Result<LinkStats, LinkError> {
        Ok(self.store(move |s| s.link_stats(link_id)).await?)
    }

    /// Human clicks since `since_ms` (of one link, or of all) by country,
    /// device class and referrer, at most `top` groups each.
    pub async fn breakdown(
        &self,
        link_id: Option<i64>,
        since_ms: i64,
        top: usize,
    ) -> Result<ClickBreakdown, LinkError> {
        Ok(self
            .store(move |s| s.click_breakdown(link_id, since_ms, top))
            .await?)
    }

    /// Changes a link. A new destination rebuilds its template; every cache
    /// of this instance forgets the old one at once.
    pub async fn update(&self, code: &str, patch: PatchLinkRequest) -> Result<Link, LinkError> {
        check_fields(
            patch.name.as_ref().and_then(Option::as_deref),
            patch.campaign.as_ref().and_then(Option::as_deref),
            patch.tags.as_deref(),
        )?;
        let retarget = patch.targets.is_some() || patch.localize.is_some();
        let destination = match (given(&patch.url), given(&patch.asin)) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(BuildError::new(
                    ErrorCode::InvalidInput,
                    "give either `url` or `asin`, not both",
                )
                .field("url")
                .into());
            }
            (url, asin) => {
                // The same checks as a new link's input.
                let as_request = CreateLinkRequest {
                    url: url.map(str::to_owned),
                    asin: asin.map(str::to_owned),
                    ..Default::default()
                };
                let input = as_request.input()?;
                let current = self.get(code).await?;
                let marketplace = patch
                    .marketplace
                    .as_deref()
                    .or(current.marketplace.as_deref());
                let template = self
                    .builder
                    .build(input, marketplace, &current.params, None, true)
                    .await?;
                Some((input.to_owned(), template))
            }
        };
        // New rules, a new localization setting or a new destination:
        // the targets are built again (the rules and setting kept unless
        // given).
        let targeting = if retarget || destination.is_some() {
            let current = self.get(code).await?;
            let old = current.targeting.clone().unwrap_or_default();
            let own = match &destination {
                Some((_, t)) => t.clone(),
                None => current.template(),
            };
            let rules = patch.targets.as_deref().unwrap_or(&old.rules);
            // A change never turns localization on or off by itself: the
            // link keeps what it has unless the patch says.
            let localize = patch
                .localize
                .or(Some(current.targeting.as_ref().is_some_and(|t| t.localize)));
            Some(self.targeting(rules, localize, &own, true).await?)
        } else {
            None
        };
        let update = LinkUpdate {
            name: patch.name,
            campaign: patch.campaign,
            tags: patch.tags,
            disabled: patch.disabled,
            destination,
            targeting,
            forget_request: retarget,
        };
        let key = code.to_owned();
        let link = self
            .store(move |s| s.update_link(&key, &update))
            .await?
            .ok_or_else(|| LinkError::NotFound(code.to_owned()))?;
        self.forget(code);
        Ok(link)
    }

    /// Disables (410) or enables a link.
    pub async fn set_disabled(&self, code: &str, disabled: bool) -> Result<Link, LinkError> {
        let patch = PatchLinkRequest {
            disabled: Some(disabled),
            ..Default::default()
        };
        self.update(code, patch).await
    }

    /// Deletes a link; its clicks stay for reports.
    pub async fn delete(&self, code: &str) -> Result<(), LinkError> {
        let key = code.to_owned();
        if !self.store(move |s| s.delete_link(&key)).await? {
            return Err(LinkError::NotFound(code.to_owned()));
        }
        self.forget(code);
        Ok(())
    }

    fn forget(&self, code: &str) {
        if let Some(caches) = &self.caches {
            caches.forget(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: Option<&str>, asin: Option<&str>) -> CreateLinkRequest {
        CreateLinkRequest {
            url: url.map(str::to_owned),
            asin: asin.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn an_asin_that_is_not_one_is_invalid_asin_on_the_asin_field() {
        let e = request(None, Some("B0-NOT-ONE"))
            .input()
            .expect_err("refused");
        assert_eq!((e.code, e.field), (ErrorCode::InvalidAsin, Some("asin")));
        assert_eq!(
            request(None, Some(" B08N5WRWNW ")).input().ok(),
            Some("B08N5WRWNW")
        );
    }

    #[test]
    fn oversized_fields_are_limit_exceeded_on_their_field() {
        let ok = request(Some("https://www.amazon.com/dp/B08N5WRWNW"), None);
        let cases: [(CreateLinkRequest, &str); 5] = [
            (
                CreateLinkRequest {
                    name: Some("n".repeat(MAX_NAME_LEN + 1)),
                    ..ok.clone()
                },
                "name",
            ),
            (
                CreateLinkRequest {
                    campaign: Some("c".repeat(MAX_CAMPAIGN_LEN + 1)),
                    ..ok.clone()
                },
                "campaign",
            ),
            (
                CreateLinkRequest {
                    tags: Some(vec!["t".into(); MAX_TAGS + 1]),
                    ..ok.clone()
                },
                "tags",
            ),
            (
                CreateLinkRequest {
                    tags: Some(vec!["t".repeat(MAX_TAG_LEN + 1)]),
                    ..ok.clone()
                },
                "tags",
            ),
            (
                CreateLinkRequest {
                    params: Some(
                        (0..=MAX_PARAMS)
                            .map(|i| (format!("k{i}"), "v".into()))
                            .collect(),
                    ),
                    ..ok.clone()
                },
                "params",
            ),
        ];
        for (req, field) in cases {
            let e = req.input().expect_err("refused");
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::LimitExceeded, Some(field)),
                "{e}"
            );
        }
        let at_the_limit = CreateLinkRequest {
            name: Some("n".repeat(MAX_NAME_LEN)),
            tags: Some(vec!["t".repeat(MAX_TAG_LEN); MAX_TAGS]),
            ..ok.clone()
        };
        assert!(at_the_limit.input().is_ok());
    }

    #[test]
    fn a_request_needs_exactly_one_of_url_and_asin() {
        for (url, asin) in [
            (None, None),
            (Some("https://a.test/"), Some("B08N5WRWNW")),
            (Some(" "), None),
        ] {
            let e = request(url, asin).input().expect_err("refused");
            assert_eq!((e.code, e.field), (ErrorCode::InvalidInput, Some("url")));
        }
    }

    #[test]
    fn the_same_request_has_the_same_key_and_any_change_another() {
        let a = request(Some("https://www.amazon.com/dp/B08N5WRWNW"), None);
        assert_eq!(a.key(), a.clone().key());
        let named = CreateLinkRequest {
            name: Some("Echo".into()),
            ..a.clone()
        };
        assert_ne!(a.key(), named.key());
    }
}
