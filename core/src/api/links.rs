//! Link routes: create (one, batch), list, get, patch, delete, stats; and
//! the providers listing and rewrite. Each handler only translates HTTP to
//! a call of the link service ([`crate::links`]) and back.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson};
use crate::app::App;
use crate::links::{CreateLinkRequest, Created, PatchLinkRequest, Source};
use crate::store::{LinkFilter, LinkStats};
use crate::view::{LinkView, ProviderView, TargetsPreview};

/// Most items in a synchronous batch (and in a rewrite call).
pub const MAX_BATCH: usize = 100;

/// Creates one link through the link service: 201 with the new link, or
/// 200 with the link an identical earlier request made.
async fn create_one(
    app: &App,
    req: &CreateLinkRequest,
) -> Result<(StatusCode, LinkView), ApiError> {
    let Created { link, new } = app.links.create(req, Source::Api).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, LinkView::new(&link, &app.short_urls)))
}

/// Create a link.
#[utoipa::path(post, path = "/api/v1/links", request_body = CreateLinkRequest,
    responses(
        (status = 201, description = "Created", body = LinkView),
        (status = 200, description = "An identical request made this link before", body = LinkView),
        (status = "4XX", description = "Bad input", body = super::ErrorBody),
        (status = "5XX", description = "Upstream or internal failure", body = super::ErrorBody),
    ))]
pub(super) async fn create_link(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<CreateLinkRequest>,
) -> Result<Response, ApiError> {
    let (status, link) = create_one(&app, &req).await?;
    Ok((status, Json(link)).into_response())
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
    each_item(batch.items, "a batch", "; use /api/v1/links/bulk", |req| {
        let app = Arc::clone(&app);
        async move {
            let (status, link) = create_one(&app, &req).await?;
            Ok((status, serde_json::to_value(link).unwrap_or_default()))
        }
    })
    .await
}

/// Runs `each` on every item of a batch of link requests (at most
/// [`MAX_BATCH`]): one result per item, in order, each with the status it
/// would have had alone and the request echoed. `what` and `hint` word the
/// limit error.
async fn each_item<F, Fut>(
    items: Vec<serde_json::Value>,
    what: &str,
    hint: &str,
    each: F,
) -> Result<Json<BatchResponse>, ApiError>
where
    F: Fn(CreateLinkRequest) -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    if items.len() > MAX_BATCH {
        return Err(ApiError::limit(format!(
            "{what} holds at most {MAX_BATCH} items, got {}{hint}",
            items.len()
        ))
        .field("items"));
    }
    let mut results = Vec::with_capacity(items.len());
    for request in items {
        let outcome = match serde_json::from_value::<CreateLinkRequest>(request.clone()) {
            Ok(req) => each(req).await,
            Err(e) => Err(ApiError::invalid(format!("malformed item: {e}"))),
        };
        results.push(match outcome {
            Ok((status, body)) => BatchItem {
                status: status.as_u16(),
                body,
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
    pub items: Vec<LinkView>,
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
    let mut links = app.links.list(filter).await?;
    let next_cursor = (links.len() > limit).then(|| {
        links.truncate(limit);
        links.last().map(|l| l.id.to_string()).unwrap_or_default()
    });
    Ok(Json(LinkPage {
        items: links
            .iter()
            .map(|l| LinkView::new(l, &app.short_urls))
            .collect(),
        next_cursor,
    }))
}

/// Get one link.
#[utoipa::path(get, path = "/api/v1/links/{code}", params(("code" = String, Path, description = "Short code")),
    responses((status = 200, body = LinkView), (status = 404, body = super::ErrorBody)))]
pub(super) async fn get_link(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
) -> Result<Json<LinkView>, ApiError> {
    let link = app.links.get(&code).await?;
    Ok(Json(LinkView::new(&link, &app.short_urls)))
}

/// Where a shopper from each country lands, and why: a rule of the
/// link's, localization (the same product in their store, or a search
/// there), the link's own store, or an A/B split. Device rules, which
/// come before any country, are listed apart.
#[utoipa::path(get, path = "/api/v1/links/{code}/targets", params(("code" = String, Path, description = "Short code")),
    responses((status = 200, body = TargetsPreview), (status = 404, body = super::ErrorBody)))]
pub(super) async fn link_targets(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
) -> Result<Json<TargetsPreview>, ApiError> {
    let link = app.links.get(&code).await?;
    Ok(Json(TargetsPreview::new(&link)))
}

/// Change a link. A new destination rebuilds its template and drops it from
/// every cache of this instance at once.
#[utoipa::path(patch, path = "/api/v1/links/{code}", request_body = PatchLinkRequest,
    params(("code" = String, Path, description = "Short code")),
    responses((status = 200, body = LinkView), (status = "4XX", body = super::ErrorBody)))]
pub(super) async fn patch_link(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    ApiJson(patch): ApiJson<PatchLinkRequest>,
) -> Result<Json<LinkView>, ApiError> {
    let link = app.links.update(&code, patch).await?;
    Ok(Json(LinkView::new(&link, &app.short_urls)))
}

/// Delete a link; its clicks stay for reports.
#[utoipa::path(delete, path = "/api/v1/links/{code}", params(("code" = String, Path, description = "Short code")),
    responses((status = 204, description = "Deleted"), (status = 404, body = super::ErrorBody)))]
pub(super) async fn delete_link(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.links.delete(&code).await?;
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
    let link = app.links.get(&code).await?;
    let stats = app.links.stats(link.id).await?;
    Ok(Json(StatsBody {
        code: link.code,
        stats,
    }))
}

/// The providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersBody {
    /// Every configured provider.
    pub providers: Vec<ProviderView>,
}

/// List providers: loaded, poisoned and refused, and what each serves.
#[utoipa::path(get, path = "/api/v1/providers", responses((status = 200, body = ProvidersBody)))]
pub(super) async fn providers(State(app): State<Arc<App>>) -> Json<ProvidersBody> {
    Json(ProvidersBody {
        providers: ProviderView::all(&app.providers),
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
    each_item(batch.items, "a rewrite call", "", |req| {
        let app = Arc::clone(&app);
        async move {
            let t = app.links.template(&req).await?;
            let body = RewriteBody {
                template: t.display(),
                provider: t.provider,
                destination: t.built.destination,
                marketplace: t.built.marketplace,
            };
            Ok((
                StatusCode::OK,
                serde_json::to_value(body).unwrap_or_default(),
            ))
        }
    })
    .await
}
