//! Link routes: create (one, batch), list, get, patch, delete, stats; and
//! the providers listing and rewrite.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson};
use crate::error::{BuildError, ErrorCode};
use crate::metrics;
use crate::plugin::BuildRequest;
use crate::server::App;
use crate::store::{
    Link, LinkFilter, LinkStats, LinkUpdate, NewLink, Store, StoreError, validate_code,
};
use crate::template::Template;

/// Most items in a synchronous batch (and in a rewrite call).
pub const MAX_BATCH: usize = 100;

/// A link to create: a product URL, or an ASIN and a marketplace.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
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
}

impl CreateLinkRequest {
    pub(crate) fn input(&self) -> Result<&str, ApiError> {
        match (self.url.as_deref(), self.asin.as_deref()) {
            (Some(u), None) if !u.trim().is_empty() => Ok(u.trim()),
            (None, Some(a)) if !a.trim().is_empty() => Ok(a.trim()),
            (Some(_), Some(_)) => {
                Err(ApiError::invalid("give either `url` or `asin`, not both").field("url"))
            }
            _ => Err(
                ApiError::invalid("give a product `url`, or an `asin` and a `marketplace`")
                    .field("url"),
            ),
        }
    }

    fn params(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A digest of everything that shapes the link: the same request twice
    /// has the same key.
    fn key(&self) -> String {
        let canonical = serde_json::to_string(self).unwrap_or_default();
        let digest = Sha256::digest(canonical.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A link as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkBody {
    /// Short code.
    pub code: String,
    /// Short URL on the public host.
    pub short_url: String,
    /// Provider that built the template.
    pub provider: String,
    /// Marketplace, region or advertiser key.
    pub marketplace: Option<String>,
    /// The input as given.
    pub input: String,
    /// Canonical destination.
    pub destination: String,
    /// Tracked URL template; `{click_id}` marks the per-click sub-ID.
    pub template: String,
    /// Your name for the link.
    pub name: Option<String>,
    /// Campaign.
    pub campaign: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Network parameters.
    pub params: BTreeMap<String, String>,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Disabled links answer 410.
    pub disabled: bool,
}

impl LinkBody {
    pub(crate) fn new(app: &App, link: &Link) -> LinkBody {
        LinkBody {
            code: link.code.clone(),
            short_url: app.short_url(&link.code),
            provider: link.provider.clone(),
            marketplace: link.marketplace.clone(),
            input: link.input.clone(),
            destination: link.destination.clone(),
            template: link.template().display(),
            name: link.name.clone(),
            campaign: link.campaign.clone(),
            tags: link.tags.clone(),
            params: link.params.iter().cloned().collect(),
            created_ms: link.created_ms,
            disabled: link.disabled,
        }
    }
}

/// Runs a store call off the async workers.
async fn blocking<R: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    let store = Arc::clone(&app.store);
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal("store task", &e)),
    }
}

/// Builds a template, expanding short links (amzn.to, …) first.
pub(crate) async fn build(
    app: &Arc<App>,
    input: &str,
    marketplace: Option<&str>,
    params: &[(String, String)],
    provider: Option<&str>,
) -> Result<Template, ApiError> {
    let req = |input| BuildRequest {
        input,
        marketplace,
        params,
        provider,
    };
    match app.providers.build(&req(input)) {
        Err(e) if e.code == ErrorCode::NeedsExpansion && app.expander.is_short_link(input) => {
            let expanded = app.expander.expand(input).await.map_err(|e| {
                let code = if e.retryable() {
                    ErrorCode::UpstreamUnavailable
                } else {
                    ErrorCode::InvalidInput
                };
                ApiError::from(BuildError::new(code, e.to_string()).field("url"))
            })?;
            app.providers
                .build(&req(&expanded))
                .map_err(|e| report(e).into())
        }
        result => result.map_err(|e| report(e).into()),
    }
}

fn report(e: BuildError) -> BuildError {
    if let Some(p) = &e.provider {
        metrics::plugin_error(p, e.code.as_str());
    }
    e
}

/// Creates one link: 201 with the new link, or 200 with the link an
/// identical earlier request made.
pub(super) async fn create_one(
    app: &Arc<App>,
    req: CreateLinkRequest,
) -> Result<(StatusCode, Link), ApiError> {
    let input = req.input()?.to_owned();
    if let Some(code) = &req.code {
        validate_code(code).map_err(|m| ApiError::invalid(m).field("code"))?;
    }
    let key = req.key();
    if let Some(code) = app.request_keys.get(&key).map(|c| c.value().clone())
        && let Some(link) = blocking(app, move |s| s.link_by_code(&code)).await?
    {
        return Ok((StatusCode::OK, link));
    }
    let lookup = key.clone();
    if let Some(link) = blocking(app, move |s| s.link_by_request_key(&lookup)).await? {
        app.request_keys.insert(key, link.code.clone());
        return Ok((StatusCode::OK, link));
    }
    let params = req.params();
    let template = build(
        app,
        &input,
        req.marketplace.as_deref(),
        &params,
        req.provider.as_deref(),
    )
    .await?;
    let new = NewLink {
        code: req.code.clone(),
        input,
        template,
        name: req.name.clone(),
        campaign: req.campaign.clone(),
        tags: req.tags.clone().unwrap_or_default(),
        params,
        source_key: None,
        request_key: Some(key.clone()),
    };
    let retry_key = key.clone();
    let created = blocking(app, move |s| match s.create_link(new) {
        // The same request raced us and won: answer with its link.
        Err(StoreError::Database(e)) if e.to_string().contains("request_key") => s
            .link_by_request_key(&retry_key)?
            .map(|l| (StatusCode::OK, l))
            .ok_or(StoreError::Database(e)),
        other => other.map(|l| (StatusCode::CREATED, l)),
    })
    .await?;
    if created.0 == StatusCode::CREATED {
        metrics::link_created(&created.1.provider, "api");
    }
    app.request_keys.insert(key, created.1.code.clone());
    Ok(created)
}

/// Create a link.
#[utoipa::path(post, path = "/api/v1/links", request_body = CreateLinkRequest,
    responses(
        (status = 201, description = "Created", body = LinkBody),
        (status = 200, description = "An identical request made this link before", body = LinkBody),
        (status = "4XX", description = "Bad input", body = super::ErrorBody),
        (status = "5XX", description = "Upstream or internal failure", body = super::ErrorBody),
    ))]
pub(super) async fn create_link(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<CreateLinkRequest>,
) -> Result<Response, ApiError> {
    let (status, link) = create_one(&app, req).await?;
    Ok((status, Json(LinkBody::new(&app, &link))).into_response())
}

/// A batch of link requests.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 100 link requests.
    pub items: Vec<serde_json::Value>,
}

/// One batch item's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// The HTTP status the item would have had alone.
    pub status: u16,
    /// The link, or the error body.
    pub body: serde_json::Value,
    /// The request, echoed.
    pub request: serde_json::Value,
}

/// A batch's outcome: one item per request, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// The items.
    pub results: Vec<BatchItem>,
}

/// Create up to 100 links at once; one result per item, in order.
#[utoipa::path(post, path = "/api/v1/links/batch", request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per item", body = BatchResponse),
        (status = "4XX", description = "Bad input or more than 100 items", body = super::ErrorBody),
    ))]
pub(super) async fn create_batch(
    State(app): State<Arc<App>>,
    ApiJson(batch): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if batch.items.len() > MAX_BATCH {
        return Err(ApiError::limit(format!(
            "a batch holds at most {MAX_BATCH} items, got {}; use /api/v1/links/bulk",
            batch.items.len()
        ))
        .field("items"));
    }
    let mut results = Vec::with_capacity(batch.items.len());
    for request in batch.items {
        let outcome = match serde_json::from_value::<CreateLinkRequest>(request.clone()) {
            Ok(req) => create_one(&app, req).await,
            Err(e) => Err(ApiError::invalid(format!("malformed item: {e}"))),
        };
        results.push(match outcome {
            Ok((status, link)) => BatchItem {
                status: status.as_u16(),
                body: serde_json::to_value(LinkBody::new(&app, &link)).unwrap_or_default(),
                request,
            },
            Err(e) => BatchItem {
                status: e.status.as_u16(),
                body: e.body(),
                request,
            },
        });
    }
    Ok(Json(BatchResponse { results }))
}

/// Filters and paging of the link list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<usize>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this marketplace (default: all).
    pub marketplace: Option<String>,
    /// Only this campaign.
    pub campaign: Option<String>,
    /// Only links with this tag.
    pub tag: Option<String>,
    /// Only links whose name contains this text.
    pub name: Option<String>,
}

/// A page of links.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkPage {
    /// The links, oldest first.
    pub items: Vec<LinkBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// List links, page by page.
#[utoipa::path(get, path = "/api/v1/links", params(ListQuery),
    responses((status = 200, body = LinkPage), (status = "4XX", body = super::ErrorBody)))]
pub(super) async fn list_links(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LinkPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 500").field("limit"));
    }
    let after_id = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("malformed cursor").field("cursor"))?,
        ),
    };
    let filter = LinkFilter {
        after_id,
        limit: limit + 1,
        provider: q.provider,
        marketplace: q.marketplace,
        campaign: q.campaign,
        tag: q.tag,
        name: q.name,
    };
    let mut links = blocking(&app, move |s| s.list_links(&filter)).await?;
    let next_cursor = (links.len() > limit).then(|| {
        links.truncate(limit);
        links.last().map(|l| l.id.to_string()).unwrap_or_default()
    });
    Ok(Json(LinkPage {
        items: links.iter().map(|l| LinkBody::new(&app, l)).collect(),
        next_cursor,
    }))
}

async fn find(app: &Arc<App>, code: String) -> Result<Link, ApiError> {
    let shown = code.clone();
    blocking(app, move |s| s.link_by_code(&code))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no link with code `{shown}`")))
}

/// Get one link.
#[utoipa::path(get, path = "/api/v1/links/{code}", params(("code" = String, Path, description = "Short code")),
    responses((status = 200, body = LinkBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn get_link(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
) -> Result<Json<LinkBody>, ApiError> {
    let link = find(&app, code).await?;
    Ok(Json(LinkBody::new(&app, &link)))
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a link; absent fields stay, `null` clears `name` and `campaign`.
#[derive(Debug, Default, Deserialize, ToSchema)]
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
}

/// Change a link. A new destination rebuilds its template and drops it from
/// every cache of this instance at once.
#[utoipa::path(patch, path = "/api/v1/links/{code}", request_body = PatchLinkRequest,
    params(("code" = String, Path, description = "Short code")),
    responses((status = 200, body = LinkBody), (status = "4XX", body = super::ErrorBody)))]
pub(super) async fn patch_link(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    ApiJson(patch): ApiJson<PatchLinkRequest>,
) -> Result<Json<LinkBody>, ApiError> {
    let current = find(&app, code.clone()).await?;
    let destination = match (patch.url.as_deref(), patch.asin.as_deref()) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("give either `url` or `asin`, not both").field("url"));
        }
        (Some(input), None) | (None, Some(input)) => {
            let marketplace = patch
                .marketplace
                .as_deref()
                .or(current.marketplace.as_deref());
            let template = build(&app, input.trim(), marketplace, &current.params, None).await?;
            Some((input.trim().to_owned(), template))
        }
    };
    let update = LinkUpdate {
        name: patch.name,
        campaign: patch.campaign,
        tags: patch.tags,
        disabled: patch.disabled,
        destination,
    };
    let key = code.clone();
    let link = blocking(&app, move |s| s.update_link(&key, &update))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no link with code `{code}`")))?;
    app.forget(&link.code);
    Ok(Json(LinkBody::new(&app, &link)))
}

/// Delete a link; its clicks stay for reports.
#[utoipa::path(delete, path = "/api/v1/links/{code}", params(("code" = String, Path, description = "Short code")),
    responses((status = 204, description = "Deleted"), (status = 404, body = super::ErrorBody)))]
pub(super) async fn delete_link(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = code.clone();
    if !blocking(&app, move |s| s.delete_link(&key)).await? {
        return Err(ApiError::not_found(format!("no link with code `{code}`")));
    }
    app.forget(&code);
    Ok(StatusCode::NO_CONTENT)
}

/// A link's clicks and conversions.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsBody {
    /// Short code.
    pub code: String,
    /// Clicks, bot hits, conversions, items, revenue, commission and
    /// earnings per click, total and by day.
    #[serde(flatten)]
    pub stats: LinkStats,
}

/// Clicks, bot hits and attributed conversions of a link (all time), total
/// and by UTC day: conversions, items, revenue, commission and earnings per
/// click, money as exact decimal strings. Declined and deleted conversions
/// are not counted.
#[utoipa::path(get, path = "/api/v1/links/{code}/stats", params(("code" = String, Path, description = "Short code")),
    responses((status = 200, body = StatsBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn link_stats(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
) -> Result<Json<StatsBody>, ApiError> {
    let link = find(&app, code).await?;
    let id = link.id;
    let stats = blocking(&app, move |s| s.link_stats(id)).await?;
    Ok(Json(StatsBody {
        code: link.code,
        stats,
    }))
}

/// A provider and its status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderBody {
    /// Provider name from the config.
    pub name: String,
    /// `ok`, `poisoned` or `refused`.
    pub status: &'static str,
    /// The plugin.
    pub plugin: String,
    /// Plugin version (loaded providers).
    pub version: Option<String>,
    /// ABI version (loaded providers).
    pub abi: Option<String>,
    /// Why it was refused.
    pub reason: Option<String>,
    /// What it serves (marketplaces, advertisers, networks), as the plugin describes it.
    pub serves: serde_json::Value,
}

/// The providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersBody {
    /// Every configured provider.
    pub providers: Vec<ProviderBody>,
}

/// List providers: loaded, poisoned and refused, and what each serves.
#[utoipa::path(get, path = "/api/v1/providers", responses((status = 200, body = ProvidersBody)))]
pub(super) async fn providers(State(app): State<Arc<App>>) -> Json<ProvidersBody> {
    let mut providers: Vec<(usize, ProviderBody)> = app
        .providers
        .loaded()
        .iter()
        .map(|p| {
            let lib = p.library();
            (
                p.index,
                ProviderBody {
                    name: p.name.clone(),
                    status: if p.is_poisoned() { "poisoned" } else { "ok" },
                    plugin: lib.name.clone(),
                    version: Some(lib.version.clone()),
                    abi: Some(format!("{}.{}", lib.abi_major, lib.abi_minor)),
                    reason: None,
                    serves: p.describe().unwrap_or(serde_json::Value::Null),
                },
            )
        })
        .collect();
    providers.extend(app.providers.refused().iter().map(|r| {
        (
            r.index,
            ProviderBody {
                name: r.name.clone(),
                status: "refused",
                plugin: r.plugin.clone(),
                version: None,
                abi: None,
                reason: Some(r.error.to_string()),
                serves: serde_json::Value::Null,
            },
        )
    }));
    providers.sort_by_key(|(i, _)| *i);
    Json(ProvidersBody {
        providers: providers.into_iter().map(|(_, p)| p).collect(),
    })
}

/// URLs to rewrite without creating links.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteRequest {
    /// Up to 100 items, each like a link request (url or asin, marketplace, params, provider).
    pub items: Vec<serde_json::Value>,
}

/// A rewritten URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct RewriteBody {
    /// Provider.
    pub provider: String,
    /// Template; `{click_id}` marks the sub-ID slot.
    pub template: String,
    /// Canonical destination.
    pub destination: String,
    /// Marketplace.
    pub marketplace: Option<String>,
}

/// Turn up to 100 URLs into tracked templates without creating links.
#[utoipa::path(post, path = "/api/v1/rewrite", request_body = RewriteRequest,
    responses((status = 200, body = BatchResponse), (status = "4XX", body = super::ErrorBody)))]
pub(super) async fn rewrite(
    State(app): State<Arc<App>>,
    ApiJson(batch): ApiJson<RewriteRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if batch.items.len() > MAX_BATCH {
        return Err(ApiError::limit(format!(
            "a rewrite call holds at most {MAX_BATCH} items, got {}",
            batch.items.len()
        ))
        .field("items"));
    }
    let mut results = Vec::with_capacity(batch.items.len());
    for request in batch.items {
        let outcome = match serde_json::from_value::<CreateLinkRequest>(request.clone()) {
            Ok(req) => match req.input() {
                Ok(input) => {
                    build(
                        &app,
                        input,
                        req.marketplace.as_deref(),
                        &req.params(),
                        req.provider.as_deref(),
                    )
                    .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(ApiError::invalid(format!("malformed item: {e}"))),
        };
        results.push(match outcome {
            Ok(t) => BatchItem {
                status: 200,
                body: serde_json::to_value(RewriteBody {
                    template: t.display(),
                    provider: t.provider,
                    destination: t.destination,
                    marketplace: t.marketplace,
                })
                .unwrap_or_default(),
                request,
            },
            Err(e) => BatchItem {
                status: e.status.as_u16(),
                body: e.body(),
                request,
            },
        });
    }
    Ok(Json(BatchResponse { results }))
}
