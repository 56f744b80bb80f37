//! Link pages: the list (search, filters, paging, copy, QR), one link
//! (destination, clicks, conversions and earnings, edit, disable/enable),
//! creating one link or a bulk CSV, and a bulk job's progress and result.
//! Every change goes through the link service, every bulk upload through
//! the job runner: the same calls as the admin API's.
//!
//! Targeting (device, country and A/B rules; Amazon localization) is a JSON
//! list of rules and a localization switch on the create and edit forms
//! ([`targets_fields`]), and the rules, destinations and per-country
//! preview on a link's page ([`targets_section`]), from the same
//! `TargetsPreview` as `GET /api/v1/links/{code}/targets`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;

use super::chart::{self, Bar};
use super::layout::{self, Ctx, count, datetime, error_page, field_error};
use super::overview::share_table;
use super::{Console, Signed};
use crate::clock::{Day, MS_PER_DAY, now_ms};
use crate::jobs::{self, JobSummary, ResultError};
use crate::links::{CreateLinkRequest, LinkError, PatchLinkRequest, Source};
use crate::store::{LinkFilter, LinkStats};
use crate::targeting::TargetRule;
use crate::view::{LinkView, ProviderView, TargetsPreview};

/// Links per page of the list.
const PAGE: usize = 25;

/// An error to show on a form: the field at fault (if any) and the message.
type FormError = (Option<String>, String);

/// The create form's fields.
const CREATE_FIELDS: &[&str] = &[
    "url",
    "asin",
    "marketplace",
    "name",
    "campaign",
    "tags",
    "code",
    "targets",
    "localize",
];
/// The edit form's fields.
const EDIT_FIELDS: &[&str] = &["url", "name", "campaign", "tags", "targets", "localize"];

/// An error placed on a form: by the field it names (`input`, the
/// provider's name for the product input, is `input_field`), or at the top
/// of the form when the form has no such field.
fn place(error: FormError, fields: &[&str], input_field: &str) -> FormError {
    let (field, message) = error;
    let field = match field.as_deref() {
        Some("input") => Some(input_field.to_owned()),
        Some(f) if fields.contains(&f) => field,
        _ => None,
    };
    (field, message)
}

/// How a link error reads on a form; internal failures go to the log.
fn form_error(e: &LinkError) -> FormError {
    if let LinkError::Store(s) = e {
        tracing::error!(error = %s, "console: link store failed");
        return (None, "The store failed; try again.".to_owned());
    }
    let code = e.code();
    if code == crate::error::ErrorCode::Internal {
        tracing::error!(error = %e, "console: link failed");
        return (
            None,
            "The provider failed; the log has the details.".to_owned(),
        );
    }
    let mut message = format!("{} ({})", e.message(), code.as_str());
    if code.retryable() {
        message.push_str(" — a temporary failure: try again.");
    }
    (e.field().map(str::to_owned), message)
}

/// The list's query: search, filters and the page cursor.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    q: Option<String>,
    provider: Option<String>,
    marketplace: Option<String>,
    campaign: Option<String>,
    tag: Option<String>,
    /// `yes`, `no` or empty.
    disabled: Option<String>,
    /// The last row id of the previous page.
    after: Option<i64>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl ListQuery {
    fn filter(&self) -> LinkFilter {
        LinkFilter {
            after_id: self.after,
            limit: PAGE + 1,
            provider: given(&self.provider),
            marketplace: given(&self.marketplace),
            campaign: given(&self.campaign),
            tag: given(&self.tag),
            name: None,
            search: given(&self.q),
            disabled: match self.disabled.as_deref() {
                Some("yes") => Some(true),
                Some("no") => Some(false),
                _ => None,
            },
        }
    }

    /// This query's URL with another cursor.
    fn with_after(&self, after: Option<i64>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("provider", &self.provider),
            ("marketplace", &self.marketplace),
            ("campaign", &self.campaign),
            ("tag", &self.tag),
            ("disabled", &self.disabled),
        ] {
            if let Some(v) = given(v) {
                parts.push(format!("{k}={}", layout::q(&v)));
            }
        }
        if let Some(a) = after {
            parts.push(format!("after={a}"));
        }
        format!("/links?{}", parts.join("&"))
    }
}

/// `GET /links`.
pub(super) async fn list(
    State(console): State<Arc<Console>>,
    signed: Signed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let mut links = match console.app.links.list(query.filter()).await {
        Ok(l) => l,
        Err(e) => return layout::internal("link list", &e),
    };
    let next = (links.len() > PAGE).then(|| {
        links.truncate(PAGE);
        links.last().map(|l| l.id)
    });
    let views: Vec<LinkView> = links
        .iter()
        .map(|l| LinkView::new(l, &console.app.short_urls))
        .collect();
    let providers = ProviderView::all(&console.app.providers);
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let content = html! {
        form.filters method="get" action="/links" role="search" {
            div.field.wide {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(value(&query.q)) placeholder="name, code or destination";
            }
            div.field {
                label for="provider" { "Provider" }
                select #provider name="provider" {
                    option value="" { "any" }
                    @for p in &providers {
                        option value=(p.name) selected[query.provider.as_deref() == Some(p.name.as_str())] { (p.name) }
                    }
                }
            }
            div.field {
                label for="marketplace" { "Marketplace" }
                input #marketplace name="marketplace" value=(value(&query.marketplace)) placeholder="amazon.de";
            }
            div.field {
                label for="campaign" { "Campaign" }
                input #campaign name="campaign" value=(value(&query.campaign));
            }
            div.field {
                label for="tag" { "Tag" }
                input #tag name="tag" value=(value(&query.tag));
            }
            div.field {
                label for="disabled" { "Status" }
                select #disabled name="disabled" {
                    option value="" { "any" }
                    option value="no" selected[query.disabled.as_deref() == Some("no")] { "enabled" }
                    option value="yes" selected[query.disabled.as_deref() == Some("yes")] { "disabled" }
                }
            }
            div.field.actions { button type="submit" { "Filter" } }
        }
        @if views.is_empty() {
            p.empty { "No links match." }
        } @else {
            div.table-wrap { table.links {
                thead { tr {
                    th { "Link" } th.dest { "Destination" } th { "Provider" } th { "Short URL" } th { "Status" }
                } }
                tbody {
                    @for v in &views {
                        tr {
                            td {
                                a href={ "/links/" (layout::q(&v.code)) } { (v.code) }
                                @if let Some(name) = &v.name { br; small { (name) } }
                                @if v.campaign.is_some() || !v.tags.is_empty() {
                                    br;
                                    @if let Some(c) = &v.campaign { span.badge { (c) } " " }
                                    @for t in &v.tags { span.badge.tag { (t) } " " }
                                }
                            }
                            td.dest { span title=(v.destination) { (v.destination) } }
                            td { (v.provider) @if let Some(m) = &v.marketplace { br; small { (m) } } }
                            td.short {
                                code { (v.short_url) }
                                " "
                                button.copy type="button" data-copy=(v.short_url) aria-label={ "Copy the short URL of " (v.code) } { "Copy" }
                                " "
                                a href={ "/links/" (layout::q(&v.code)) "/qr.svg?download=1" } download={ (v.code) ".svg" } aria-label={ "QR code of " (v.code) } { "QR" }
                            }
                            td { @if v.disabled { span.badge.off { "disabled" } } @else { "enabled" } }
                        }
                    }
                }
            } }
        }
        nav.paging aria-label="Pages" {
            @if query.after.is_some() { a href=(query.with_after(None)) { "First page" } }
            @if let Some(Some(after)) = next { a href=(query.with_after(Some(after))) rel="next" { "Next page" } }
        }
    };
    layout::page(signed.ctx(), "/links", "Links", content).into_response()
}

/// `GET /links/{code}`.
pub(super) async fn detail(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(code): Path<String>,
) -> Response {
    detail_with(&console, &signed, &code, None, StatusCode::OK).await
}

async fn detail_with(
    console: &Console,
    signed: &Signed,
    code: &str,
    error: Option<FormError>,
    status: StatusCode,
) -> Response {
    let link = match console.app.links.get(code).await {
        Ok(l) => l,
        Err(LinkError::NotFound(_)) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "No such link",
                &format!("There is no link with the code {code}."),
            );
        }
        Err(e) => return layout::internal("link", &e),
    };
    let since = now_ms() - 30 * MS_PER_DAY;
    let (stats, breakdown) = match tokio::join!(
        console.app.links.stats(link.id),
        console.app.links.breakdown(Some(link.id), since, 10)
    ) {
        (Ok(s), Ok(b)) => (s, b),
        (Err(e), _) | (_, Err(e)) => return layout::internal("link stats", &e),
    };
    let view = LinkView::new(&link, &console.app.short_urls);
    let ctx = signed.ctx();
    let t = &stats.total;
    let qr = format!("/links/{}/qr.svg", layout::q(&view.code));
    let content = html! {
        div.split {
            section {
                h2 { "Link" }
                dl.facts {
                    dt { "Short URL" }
                    dd { code { (view.short_url) } " " button.copy type="button" data-copy=(view.short_url) { "Copy" } }
                    dt { "Name" } dd { (view.name.as_deref().unwrap_or("—")) }
                    dt { "Destination" } dd.dest { (view.destination) }
                    dt { "Input" } dd.dest { (view.input) }
                    dt { "Tracked URL" } dd.dest { code { (view.template) } }
                    dt { "Provider" } dd { (view.provider) @if let Some(m) = &view.marketplace { " · " (m) } }
                    dt { "Campaign" } dd { (view.campaign.as_deref().unwrap_or("—")) }
                    dt { "Tags" } dd { @if view.tags.is_empty() { "—" } @for tag in &view.tags { span.badge.tag { (tag) } " " } }
                    dt { "Created" } dd { (datetime(view.created_ms)) " UTC" }
                    dt { "Status" } dd #status { @if view.disabled { span.badge.off { "disabled" } " (answers 410)" } @else { "enabled" } }
                }
                @if ctx.can_write {
                    form.inline method="post" action={ "/links/" (layout::q(&view.code)) (if view.disabled { "/enable" } else { "/disable" }) } {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        @if view.disabled {
                            button #toggle type="submit" { "Enable link" }
                        } @else {
                            button.danger #toggle type="submit" { "Disable link" }
                        }
                    }
                }
            }
            section.qr {
                h2 { "QR code" }
                img src=(qr) alt={ "QR code of " (view.short_url) } width="180" height="180";
                p { a href={ (qr) "?download=1" } download={ (view.code) ".svg" } { "Download SVG" } }
            }
        }
        (targets_section(&view, &TargetsPreview::new(&link)))
        section {
            h2 { "Clicks and earnings, all time" }
            dl.totals {
                div { dt { "Clicks" } dd #clicks { (count(t.clicks)) } }
                div { dt { "Bot hits" } dd { (count(t.bot_hits)) } }
                div { dt { "Conversions" } dd #conversions { (count(t.conversions)) } }
                div { dt { "Items" } dd { (t.items) } }
                div { dt { "Revenue" } dd { (t.revenue) } }
                div { dt { "Earnings" } dd #earnings { (t.commission) } }
                div { dt { "EPC" } dd { (t.earnings_per_click) } }
            }
        }
        section {
            h2 { "Clicks per day, last 30 days" }
            (chart::bars("Clicks per day, last 30 days", &last_30_days(&stats), "human clicks", "bot hits"))
        }
        (conversions_by_day(&stats))
        div.split.three {
            section { h2 { "By country" } (breakdown_or_empty("Country", &breakdown.countries)) }
            section { h2 { "By device" } (breakdown_or_empty("Device", &breakdown.devices)) }
            section { h2 { "By referrer" } (breakdown_or_empty("Referrer", &breakdown.referrers)) }
        }
        p.note { "Countries, devices and referrers: human clicks of the last 30 days." }
        @if ctx.can_write {
            (edit_form(&view, ctx, error.as_ref()))
        }
    };
    let title = format!("Link {}", view.code);
    (status, layout::page(ctx, "/links", &title, content)).into_response()
}

/// The link's targeting: its rules, every destination built for them, and
/// where a shopper from each country lands (countries that land on the
/// link's own destination are summed up in one line).
fn targets_section(view: &LinkView, preview: &TargetsPreview) -> Markup {
    let Some(t) = &view.targeting else {
        return html! {};
    };
    let elsewhere: Vec<_> = preview
        .countries
        .iter()
        .filter(|c| c.why != crate::targeting::Why::Own)
        .collect();
    let why = |w: crate::targeting::Why| {
        serde_json::to_value(w)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    html! {
        section #targets {
            h2 { "Targets" }
            @if t.localize {
                p { "Amazon localization is on; availability "
                    strong { (t.availability.unwrap_or("assumed")) }
                    @if t.availability == Some("assumed") { " (the same ASIN in every store until the catalog confirms it)" }
                    "." }
            }
            @if !t.rules.is_empty() {
                h3 { "Rules" }
                pre.rules { code { (serde_json::to_string_pretty(&t.rules).unwrap_or_default()) } }
            }
            @if !preview.devices.is_empty() {
                h3 { "By device (before any country)" }
                ul { @for d in &preview.devices { li { (d.device.as_str()) ": " span.url { (d.destination) } } } }
            }
            h3 { "By country" }
            p.note { (preview.countries.len() - elsewhere.len()) " countries land on the link's own destination." }
            @if !elsewhere.is_empty() {
                div.scroll {
                    table #preview {
                        thead { tr { th { "Country" } th { "Why" } th { "Marketplace" } th { "Lands on" } } }
                        tbody {
                            @for c in &elsewhere {
                                tr { td { (c.country) } td { (why(c.why)) } td { (c.marketplace.as_deref().unwrap_or("-")) } td.url { (c.destination) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn breakdown_or_empty(what: &str, rows: &[(String, u64)]) -> Markup {
    html! {
        @if rows.is_empty() { p.empty { "No clicks in 30 days." } } @else { (share_table(what, rows)) }
    }
}

/// The last 30 UTC days, every day, from the link's days with activity.
fn last_30_days(stats: &LinkStats) -> Vec<Bar> {
    let by_day: BTreeMap<&str, _> = stats
        .by_day
        .iter()
        .map(|d| (d.day.as_str(), &d.total))
        .collect();
    let today = now_ms().div_euclid(MS_PER_DAY);
    (today - 29..=today)
        .map(|d| {
            let label = Day::from_days(d).to_string();
            let (value, extra) = by_day
                .get(label.as_str())
                .map_or((0, 0), |t| (t.clicks, t.bot_hits));
            Bar {
                label,
                value,
                extra,
            }
        })
        .collect()
}

fn conversions_by_day(stats: &LinkStats) -> Markup {
    let days: Vec<_> = stats
        .by_day
        .iter()
        .rev()
        .filter(|d| d.total.conversions > 0)
        .take(60)
        .collect();
    html! {
        section {
            h2 { "Conversions by day" }
            @if days.is_empty() {
                p.empty { "No conversions yet. Upload a network report on the Conversions page." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th { "Day" } th.num { "Clicks" } th.num { "Conversions" } th.num { "Items" } th.num { "Revenue" } th.num { "Earnings" } } }
                    tbody { @for d in days { tr {
                        td { (d.day) } td.num { (count(d.total.clicks)) } td.num { (count(d.total.conversions)) }
                        td.num { (d.total.items) } td.num { (d.total.revenue) } td.num { (d.total.commission) }
                    } } }
                } }
            }
        }
    }
}

fn edit_form(view: &LinkView, ctx: Ctx<'_>, error: Option<&FormError>) -> Markup {
    html! {
        section #edit {
            h2 { "Edit" }
            @if let Some((None, message)) = error { p.error role="alert" { (message) } }
            form.stack method="post" action={ "/links/" (layout::q(&view.code)) "/edit" } {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="edit-name" { "Name" }
                input #edit-name name="name" value=(view.name.clone().unwrap_or_default());
                (field_error("name", error))
                label for="edit-campaign" { "Campaign" }
                input #edit-campaign name="campaign" value=(view.campaign.clone().unwrap_or_default());
                (field_error("campaign", error))
                label for="edit-tags" { "Tags" span.hint { " comma-separated" } }
                input #edit-tags name="tags" value=(view.tags.join(", "));
                (field_error("tags", error))
                label for="edit-url" { "New destination URL" span.hint { " leave empty to keep it" } }
                input #edit-url type="url" name="url" placeholder=(view.destination);
                (field_error("url", error))
                (targets_fields(
                    "edit-",
                    &view.targeting.as_ref().map(|t| serde_json::to_string_pretty(&t.rules).unwrap_or_default()).unwrap_or_default(),
                    view.targeting.as_ref().map(|t| t.localize),
                    error,
                ))
                button type="submit" { "Save changes" }
            }
        }
    }
}

/// The edit form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct EditForm {
    csrf: Option<String>,
    name: Option<String>,
    campaign: Option<String>,
    tags: Option<String>,
    url: Option<String>,
    targets: Option<String>,
    localize: Option<String>,
}

/// The rules typed into a form: a JSON list (empty text: none).
fn parse_rules(text: Option<&str>) -> Result<Vec<TargetRule>, FormError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            (
                Some("targets".to_owned()),
                format!("the rules are not a JSON list of rules: {e}"),
            )
        }),
    }
}

/// The localization select: `on`, `off`, or the provider's default.
fn parse_localize(value: Option<&str>) -> Option<bool> {
    match value {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    }
}

fn tags(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /links/{code}/edit`: a PATCH of the link through the link service.
pub(super) async fn edit(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(code): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    if let Err(refused) = signed.may_change(form.csrf.as_deref()) {
        return *refused;
    }
    let rules = match parse_rules(form.targets.as_deref()) {
        Ok(rules) => rules,
        Err(error) => {
            return detail_with(
                &console,
                &signed,
                &code,
                Some(error),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let patch = PatchLinkRequest {
        name: Some(given(&form.name)),
        campaign: Some(given(&form.campaign)),
        tags: Some(tags(form.tags.as_deref())),
        url: given(&form.url),
        targets: Some(rules),
        localize: parse_localize(form.localize.as_deref()),
        ..PatchLinkRequest::default()
    };
    match console.app.links.update(&code, patch).await {
        Ok(link) => Redirect::to(&format!("/links/{}", layout::q(&link.code))).into_response(),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let error = place(form_error(&e), EDIT_FIELDS, "url");
            detail_with(&console, &signed, &code, Some(error), status).await
        }
    }
}

/// `POST /links/{code}/disable`.
pub(super) async fn disable(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(code): Path<String>,
    Form(form): Form<super::auth::TokenForm>,
) -> Response {
    set_disabled(&console, &signed, &code, form.csrf.as_deref(), true).await
}

/// `POST /links/{code}/enable`.
pub(super) async fn enable(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(code): Path<String>,
    Form(form): Form<super::auth::TokenForm>,
) -> Response {
    set_disabled(&console, &signed, &code, form.csrf.as_deref(), false).await
}

async fn set_disabled(
    console: &Console,
    signed: &Signed,
    code: &str,
    csrf: Option<&str>,
    disabled: bool,
) -> Response {
    if let Err(refused) = signed.may_change(csrf) {
        return *refused;
    }
    let patch = PatchLinkRequest {
        disabled: Some(disabled),
        ..PatchLinkRequest::default()
    };
    match console.app.links.update(code, patch).await {
        Ok(_) => Redirect::to(&format!("/links/{}", layout::q(code))).into_response(),
        Err(LinkError::NotFound(_)) => error_page(
            StatusCode::NOT_FOUND,
            "No such link",
            &format!("There is no link with the code {code}."),
        ),
        Err(e) => layout::internal("disable link", &e),
    }
}

/// The QR code's query.
#[derive(Debug, Deserialize)]
pub(super) struct QrQuery {
    download: Option<String>,
}

/// `GET /links/{code}/qr.svg`: the short URL as a QR code (SVG); with
/// `?download=1`, as a file to save.
pub(super) async fn qr(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Path(code): Path<String>,
    query: Result<Query<QrQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let link = match console.app.links.get(&code).await {
        Ok(l) => l,
        Err(LinkError::NotFound(_)) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "No such link",
                "No link has this code.",
            );
        }
        Err(e) => return layout::internal("qr link", &e),
    };
    let url = console.app.short_url(&link.code);
    let svg = match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(e) => return layout::internal("qr code", &e),
    };
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("image/svg+xml"),
        )],
        svg,
    )
        .into_response();
    if query.is_ok_and(|Query(q)| q.download.is_some())
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.svg\"", link.code))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// The create form's fields.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CreateForm {
    csrf: Option<String>,
    url: Option<String>,
    asin: Option<String>,
    marketplace: Option<String>,
    name: Option<String>,
    campaign: Option<String>,
    tags: Option<String>,
    code: Option<String>,
    targets: Option<String>,
    localize: Option<String>,
}

impl CreateForm {
    /// The link request the form asks for: exactly what the API's `POST
    /// /api/v1/links` would take; rules that are not JSON are an error on
    /// their field.
    fn request(&self) -> Result<CreateLinkRequest, FormError> {
        let tags = tags(self.tags.as_deref());
        let rules = parse_rules(self.targets.as_deref())?;
        Ok(CreateLinkRequest {
            url: given(&self.url),
            asin: given(&self.asin),
            marketplace: given(&self.marketplace),
            name: given(&self.name),
            code: given(&self.code),
            campaign: given(&self.campaign),
            tags: (!tags.is_empty()).then_some(tags),
            params: None,
            provider: None,
            targets: (!rules.is_empty()).then_some(rules),
            localize: parse_localize(self.localize.as_deref()),
        })
    }
}

/// The targeting fields of the create and edit forms: the rules as JSON
/// and the localization switch. `id` prefixes the element ids.
fn targets_fields(
    id: &str,
    rules: &str,
    localize: Option<bool>,
    error: Option<&FormError>,
) -> Markup {
    let targets_id = format!("{id}targets");
    let localize_id = format!("{id}localize");
    html! {
        label for=(targets_id) { "Targets" span.hint { " JSON rules by device, country or A/B weight, e.g. "
            code { r#"[{"country": ["DE", "AT"], "url": "https://www.amazon.de/dp/…"}]"# } } }
        textarea id=(targets_id) name="targets" rows="4" spellcheck="false" { (rules) }
        (field_error("targets", error))
        label for=(localize_id) { "Amazon localization" }
        select id=(localize_id) name="localize" {
            option value="" selected[localize.is_none()] { "provider's setting" }
            option value="on" selected[localize == Some(true)] { "on: each shopper's own store" }
            option value="off" selected[localize == Some(false)] { "off" }
        }
        (field_error("localize", error))
    }
}

/// `GET /create`.
pub(super) async fn create_page(signed: Signed) -> Response {
    if !signed.can_write() {
        return error_page(
            StatusCode::FORBIDDEN,
            "Read-only key",
            "This key has the read scope only: it cannot create links.",
        );
    }
    create_form(&signed, &CreateForm::default(), None, None, StatusCode::OK)
}

fn create_form(
    signed: &Signed,
    form: &CreateForm,
    error: Option<&FormError>,
    bulk_error: Option<&str>,
    status: StatusCode,
) -> Response {
    let ctx = signed.ctx();
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let content = html! {
        div.split {
            section {
                h2 { "One link" }
                @if let Some((None, message)) = error { p.error role="alert" { (message) } }
                form.stack #create method="post" action="/create" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    label for="url" { "Product URL" }
                    input #url type="text" inputmode="url" name="url" value=(value(&form.url))
                        placeholder="https://www.amazon.com/dp/B08N5WRWNW" autofocus;
                    (field_error("url", error))
                    label for="asin" { "or an ASIN" }
                    input #asin name="asin" value=(value(&form.asin)) placeholder="B08N5WRWNW" maxlength="10";
                    (field_error("asin", error))
                    label for="marketplace" { "Marketplace" span.hint { " for an ASIN" } }
                    select #marketplace name="marketplace" {
                        option value="" { "default" }
                        @for m in linkwright_model::amazon::MARKETPLACES.iter() {
                            option value=(m) selected[form.marketplace.as_deref() == Some(*m)] { (m) }
                        }
                    }
                    (field_error("marketplace", error))
                    label for="name" { "Name" span.hint { " your own note: video title, channel, date" } }
                    input #name name="name" value=(value(&form.name));
                    (field_error("name", error))
                    label for="campaign" { "Campaign" }
                    input #campaign name="campaign" value=(value(&form.campaign));
                    (field_error("campaign", error))
                    label for="tags" { "Tags" span.hint { " comma-separated" } }
                    input #tags name="tags" value=(value(&form.tags));
                    (field_error("tags", error))
                    label for="code" { "Custom code" span.hint { " letters, digits, - and _; empty: generated" } }
                    input #code name="code" value=(value(&form.code)) pattern="[A-Za-z0-9_-]{1,64}";
                    (field_error("code", error))
                    (targets_fields("", &value(&form.targets), parse_localize(form.localize.as_deref()), error))
                    button type="submit" { "Create link" }
                }
            }
            section {
                h2 { "Bulk CSV" }
                p { "A header row naming the columns, in any order: "
                    code { "url" } " (or " code { "input" } "), " code { "asin" } ", " code { "marketplace" } ", "
                    code { "name" } ", " code { "code" } ", " code { "campaign" } ", " code { "tags" } " (separated by "
                    code { "|" } "), " code { "provider" } ", " code { "targets" } " (JSON rules), " code { "localize" }
                    " (true or false); up to 5,000 rows." }
                @if let Some(message) = bulk_error { p.error #bulk-error role="alert" { (message) } }
                form.stack #bulk method="post" action="/create/bulk" enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    label for="file" { "CSV file" }
                    input #file type="file" name="file" accept=".csv,text/csv" required;
                    button type="submit" { "Upload and create" }
                }
            }
        }
    };
    (
        status,
        layout::page(ctx, "/create", "Create links", content),
    )
        .into_response()
}

/// `POST /create`: one link through the link service; an error is shown
/// next to the field it names, with the form as it was sent.
pub(super) async fn create(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Err(refused) = signed.may_change(form.csrf.as_deref()) {
        return *refused;
    }
    let request = match form.request() {
        Ok(request) => request,
        Err(error) => {
            return create_form(&signed, &form, Some(&error), None, StatusCode::BAD_REQUEST);
        }
    };
    match console.app.links.create(&request, Source::Api).await {
        Ok(created) => {
            Redirect::to(&format!("/links/{}", layout::q(&created.link.code))).into_response()
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            // A provider names the product input `input`: on this form, the
            // URL or the ASIN field, whichever was filled in.
            let input = if given(&form.url).is_none() && given(&form.asin).is_some() {
                "asin"
            } else {
                "url"
            };
            let error = place(form_error(&e), CREATE_FIELDS, input);
            create_form(&signed, &form, Some(&error), None, status)
        }
    }
}

/// `POST /create/bulk`: the CSV becomes a bulk job through the job runner,
/// exactly as `POST /api/v1/links/bulk` with a CSV body.
pub(super) async fn bulk(
    State(console): State<Arc<Console>>,
    signed: Signed,
    mut multipart: Multipart,
) -> Response {
    let mut csrf = None;
    let mut file = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_owned();
                let Ok(bytes) = field.bytes().await else {
                    return bad_upload(&signed, "The upload was cut short; try again.");
                };
                match name.as_str() {
                    "csrf" => csrf = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "file" => file = Some(bytes),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return bad_upload(&signed, &format!("The upload could not be read: {e}")),
        }
    }
    if let Err(refused) = signed.may_change(csrf.as_deref()) {
        return *refused;
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return bad_upload(&signed, "Choose a CSV file to upload.");
    };
    let items = match jobs::parse_csv(&file) {
        Ok(items) => items,
        Err(e) => return bad_upload(&signed, &e.to_string()),
    };
    match console.app.jobs.submit(items, None).await {
        Ok(summary) => Redirect::to(&format!("/jobs/{}", summary.job_id)).into_response(),
        Err(e @ (jobs::SubmitError::Invalid { .. } | jobs::SubmitError::TooMany(_))) => {
            bad_upload(&signed, &e.to_string())
        }
        Err(e) => layout::internal("bulk submit", &e),
    }
}

fn bad_upload(signed: &Signed, message: &str) -> Response {
    create_form(
        signed,
        &CreateForm::default(),
        None,
        Some(message),
        StatusCode::BAD_REQUEST,
    )
}

async fn job(console: &Console, id: String) -> Result<JobSummary, Response> {
    let db = Arc::clone(&console.app.store);
    match tokio::task::spawn_blocking(move || jobs::summary(&*db, &id)).await {
        Ok(Ok(Some(s))) => Ok(s),
        Ok(Ok(None)) => Err(error_page(
            StatusCode::NOT_FOUND,
            "No such job",
            "No bulk job has this id.",
        )),
        Ok(Err(e)) => Err(layout::internal("job", &e)),
        Err(e) => Err(layout::internal("job task", &e)),
    }
}

/// `GET /jobs/{id}`: the job's progress bar (kept up to date by the
/// script, which polls `/jobs/{id}/progress`), and its result once done.
pub(super) async fn job_page(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let s = match job(&console, id).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let done = s.status.is_finished();
    let content = html! {
        section #job data-progress=(format!("/jobs/{}/progress", s.job_id)) data-status=(s.status.as_str()) {
            p { "Status: " strong #job-status { (s.status.as_str()) } }
            label for="job-progress" { "Items made" }
            progress #job-progress max=(s.total.max(1)) value=(s.processed) { (s.processed) " of " (s.total) }
            p #job-counts {
                span #job-processed { (s.processed) } " of " (s.total) " items · "
                span #job-ok { (s.ok) } " ok · " span #job-errors { (s.errors) } " errors"
            }
            @if let Some(f) = &s.failure { p.error { (f) } }
            p #job-result hidden[!done] {
                a.button href={ "/jobs/" (s.job_id) "/result.csv" } download={ (s.job_id) ".csv" } { "Download the result CSV" }
            }
            @if !done { noscript { p { "Reload the page to see the progress." } } }
        }
        p { a href="/links" { "See the links" } " · " a href="/create" { "Upload another" } }
    };
    layout::page(signed.ctx(), "/create", "Bulk job", content).into_response()
}

/// `GET /jobs/{id}/progress`: the job's summary as JSON, for the page's
/// script (the same body as the API's `GET /api/v1/jobs/{id}`).
pub(super) async fn job_progress(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match job(&console, id).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => e,
    }
}

/// `GET /jobs/{id}/result.csv`: the job's result, the API's CSV.
pub(super) async fn job_result(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let app = Arc::clone(&console.app);
    let task_id = id.clone();
    let csv = tokio::task::spawn_blocking(move || {
        jobs::result_csv(&*app.store, &task_id, &|code| app.short_url(code))
    })
    .await;
    match csv {
        Ok(Ok(csv)) => {
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{id}.csv\""))
                .unwrap_or(HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                csv,
            )
                .into_response()
        }
        Ok(Err(ResultError::NotFound(_))) => error_page(
            StatusCode::NOT_FOUND,
            "No such job",
            "No bulk job has this id.",
        ),
        Ok(Err(ResultError::NotFinished(_))) => error_page(
            StatusCode::CONFLICT,
            "Not finished",
            "The job is still running; its result is ready when it ends.",
        ),
        Ok(Err(e)) => layout::internal("job result", &e),
        Err(e) => layout::internal("job result task", &e),
    }
}
