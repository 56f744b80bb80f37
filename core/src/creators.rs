//! The Amazon Creators API client (the successor of PA-API 5.0): whether an
//! ASIN is sold in a marketplace, and its title, behind the small
//! [`Catalog`] trait that Amazon localization asks.
//!
//! # The API as implemented, and where its shape comes from
//!
//! Amazon documents the Creators API at
//! `https://affiliate-program.amazon.com/creatorsapi/docs/en-us/introduction`
//! (operations under `…/api-reference/operations/get-items`). Those pages are
//! rendered by script, so the shape below was read from public clients that
//! follow them, which agree with each other: the Go library `goark/pa-api`
//! (`auth.go`: the client-credentials grant, the scope, the token leeway and
//! the `Bearer <token>, Version <version>` header), the .NET client
//! `nager/Nager.AmazonCreatorsApi` (README: GetItems with `itemIds`,
//! `partnerTag`, `resources`), `OscarWeijman/n8n-amazon-creators-api`
//! (`docs/RESOURCES.md`: lowerCamelCase resource names;
//! `tests/fixtures/getItems.json`: the answer), and several smaller public
//! scripts for the per-version token endpoints. The PA-API 5.0 pages
//! (`webservices.amazon.com/paapi5/documentation/`) fill in what the
//! Creators API kept from it: at most ten item IDs per GetItems, unknown or
//! inaccessible IDs reported under `errors` rather than `itemsResult`,
//! items that are not buyable having no offer listings, and the initial
//! limit of one request per second.
//!
//! - **Token**: OAuth 2.0 client credentials, `POST` to the endpoint of the
//!   credential's version. Versions `2.1`/`2.2`/`2.3` (NA/EU/FE) are Amazon
//!   Cognito (`https://creatorsapi.auth.{us-east-1,eu-south-2,us-west-2}
//!   .amazoncognito.com/oauth2/token`): a form body with `grant_type`,
//!   `client_id`, `client_secret` and `scope=creatorsapi/default`. Versions
//!   `3.1`/`3.2`/`3.3` are Login with Amazon (`https://api.amazon.{com,co.uk,
//!   co.jp}/auth/o2/token`): the same fields as a JSON body, with
//!   `scope=creatorsapi::default`. The answer has `access_token` and
//!   `expires_in` (seconds; one hour if absent).
//! - **GetItems**: `POST {api}/catalog/v1/getItems` (default API base
//!   `https://creatorsapi.amazon`) with `Authorization: Bearer <token>,
//!   Version <version>` (2.x) or `Bearer <token>` (3.x), `x-marketplace:
//!   www.<marketplace>`, and the JSON body `{"itemIds": […], "partnerTag":
//!   "…", "resources": ["itemInfo.title", "offersV2.listings.availability"]}`.
//! - **Answer**: `itemsResult.items[]`, each with `asin`,
//!   `itemInfo.title.displayValue` and `offersV2.listings[]`; IDs the API
//!   does not know or will not show are listed under `errors[]`
//!   (`code`, `message`) instead.
//!
//! Assumed, not confirmed by Amazon's own text: an item counts as sold in the
//! marketplace when the answer lists it with at least one offer listing (an
//! item without listings is not buyable there; an out-of-stock listing still
//! counts, since its product page sells it); the partner tag must be one of
//! that marketplace's store IDs, as in PA-API 5.0 (hence
//! [`CreatorsConfig::partner_tags`]); a credential serves only its own
//! region's marketplaces, so a caller holds one client per region.
//!
//! # Fences
//!
//! Like `expand.rs`: only the two configured endpoints are contacted
//! (`https`, or `http` on a loopback address for tests; redirects are never
//! followed); every request has a timeout; token answers are read up to
//! 64 KiB and GetItems answers up to [`MAX_RESPONSE_BYTES`]; the credential
//! secret and the tokens never appear in `Debug` output, logs or errors.
//! Calls are spaced to [`CreatorsConfig::requests_per_second`] by one
//! limiter shared by every caller of a client (no busy waiting), at most
//! [`CreatorsConfig::max_concurrent`] lookups are in flight, and transient
//! failures (timeouts, connection errors, 408, 429, 5xx) are retried through
//! `retry.rs`, honouring `Retry-After`, then reported as
//! [`CatalogError::Unavailable`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use url::{Host, Url};

use crate::retry::{Backoff, Retries};
use linkwright_model::amazon::{MARKETPLACES, is_asin, marketplace_index};

/// The most ASINs one GetItems request (and one [`Catalog::lookup`]) takes.
pub const MAX_ITEMS_PER_REQUEST: usize = 10;

/// The API base used when [`CreatorsConfig::api_url`] is not set.
pub const DEFAULT_API_URL: &str = "https://creatorsapi.amazon";

/// The most bytes of a GetItems answer read; a longer one is refused.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The longest `Retry-After` waited for; a longer one ends the lookup as
/// [`CatalogError::Unavailable`] at once.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The most bytes of a token answer read.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The GetItems operation, below the API base.
const GET_ITEMS_PATH: &str = "/catalog/v1/getItems";

/// What GetItems is asked for: the title, and the offers whose presence
/// says the item is sold there.
const RESOURCES: [&str; 2] = ["itemInfo.title", "offersV2.listings.availability"];

/// The User-Agent sent with every request.
const USER_AGENT: &str = concat!("linkwright/", env!("CARGO_PKG_VERSION"));

/// Token lifetime assumed when the answer has no `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// What the catalog says about one ASIN in one marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInfo {
    /// The ASIN as requested (uppercase).
    pub asin: String,
    /// Whether the marketplace sells it (the API lists it with offers).
    pub available: bool,
    /// The product's title in that marketplace, when the API gave one.
    pub title: Option<String>,
}

/// Why a lookup gave no answer. Either way the caller assumes the ASIN is
/// available (the same product in every store) until a later lookup.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The API could not be reached or kept failing (5xx, timeouts, 429
    /// after retries): assume available, retry later.
    #[error("the Creators API is unavailable: {0}")]
    Unavailable(String),
    /// Credentials or request refused (401/403/400, a bad marketplace or
    /// ASIN): a configuration problem; assume available, log it.
    #[error("the Creators API refused the request: {0}")]
    Rejected(String),
}

impl CatalogError {
    /// Whether the same lookup may succeed later without a change of
    /// configuration (only [`CatalogError::Unavailable`]).
    pub fn retryable(&self) -> bool {
        matches!(self, CatalogError::Unavailable(_))
    }
}

/// A product catalog: the Creators API in production, anything in tests.
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Looks up `asins` (at most [`MAX_ITEMS_PER_REQUEST`]) in `marketplace`
    /// (a domain such as `"amazon.de"`). Every requested ASIN appears in the
    /// answer, in the order asked: one the API does not know, or reports as
    /// not sold there, is `available: false`.
    fn lookup<'a>(
        &'a self,
        marketplace: &'a str,
        asins: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<ItemInfo>, CatalogError>> + Send + 'a>>;
}

/// Settings of a [`CreatorsClient`]: one credential (so one region), read
/// from the `[localize.creators]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatorsConfig {
    /// The credential ID shown by Associates Central (Creators API →
    /// credentials).
    pub credential_id: String,
    /// The credential secret (shown once when the credential is made).
    /// Never logged nor printed by `Debug`.
    pub credential_secret: String,
    /// The credential's version, shown next to it: `2.1`, `2.2`, `2.3`
    /// (NA, EU, FE; Cognito) or `3.1`, `3.2`, `3.3` (the same regions;
    /// Login with Amazon). It picks the token endpoint, the token request's
    /// form and the `Authorization` header.
    pub version: String,
    /// The partner tag (store ID) sent with every GetItems request whose
    /// marketplace has none in [`CreatorsConfig::partner_tags`]. Default:
    /// none.
    #[serde(default)]
    pub partner_tag: Option<String>,
    /// Partner tags by marketplace domain (`"amazon.de" = "mytag-21"`): a
    /// store ID belongs to one marketplace. Default: empty.
    #[serde(default)]
    pub partner_tags: BTreeMap<String, String>,
    /// The token endpoint, instead of the version's (tests point it at a
    /// stand-in). `https`, or `http` on a loopback address.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The API base, instead of [`DEFAULT_API_URL`] (tests). `https`, or
    /// `http` on a loopback address; GetItems is `/catalog/v1/getItems`
    /// below it.
    #[serde(default)]
    pub api_url: Option<String>,
    /// GetItems requests per second, for every caller of the client together
    /// (retries included). Default 1, the API's initial limit (it grows with
    /// the account's sales). Between 0.001 and 1000.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: f64,
    /// Time limit of one request, connect included, in milliseconds.
    /// Default 5000; not zero.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The most lookups in flight at once (a lookup holds its place while it
    /// retries). Default 2; at least 1.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// How many times a transient failure of one lookup is retried before it
    /// is [`CatalogError::Unavailable`]. Default 3.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The wait before the first retry, in milliseconds; it doubles for each
    /// further one, and a longer `Retry-After` wins. Default 1000.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

fn default_requests_per_second() -> f64 {
    1.0
}

fn default_timeout_ms() -> u64 {
    5000
}

fn default_max_concurrent() -> usize {
    2
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    1000
}

impl CreatorsConfig {
    /// A configuration with the given credential and every default.
    pub fn new(
        credential_id: impl Into<String>,
        credential_secret: impl Into<String>,
        version: impl Into<String>,
    ) -> CreatorsConfig {
        CreatorsConfig {
            credential_id: credential_id.into(),
            credential_secret: credential_secret.into(),
            version: version.into(),
            partner_tag: None,
            partner_tags: BTreeMap::new(),
            token_url: None,
            api_url: None,
            requests_per_second: default_requests_per_second(),
            timeout_ms: default_timeout_ms(),
            max_concurrent: default_max_concurrent(),
            retries: default_retries(),
            backoff_ms: default_backoff_ms(),
        }
    }
}

impl fmt::Debug for CreatorsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatorsConfig")
            .field("credential_id", &self.credential_id)
            .field("credential_secret", &Secret::REDACTED)
            .field("version", &self.version)
            .field("partner_tag", &self.partner_tag)
            .field("partner_tags", &self.partner_tags)
            .field("token_url", &self.token_url)
            .field("api_url", &self.api_url)
            .field("requests_per_second", &self.requests_per_second)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_concurrent", &self.max_concurrent)
            .field("retries", &self.retries)
            .field("backoff_ms", &self.backoff_ms)
            .finish()
    }
}

/// A string that `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl Secret {
    const REDACTED: &'static str = "<redacted>";
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Secret::REDACTED)
    }
}

/// The two kinds of credential, by version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// `2.x`: Amazon Cognito, form-encoded token request, the version in the
    /// `Authorization` header.
    Cognito,
    /// `3.x`: Login with Amazon, JSON token request, a plain bearer token.
    LoginWithAmazon,
}

impl Flavour {
    fn of(version: &str) -> Option<Flavour> {
        let (major, minor) = version.split_once('.')?;
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match major {
            "2" => Some(Flavour::Cognito),
            "3" => Some(Flavour::LoginWithAmazon),
            _ => None,
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Flavour::Cognito => "creatorsapi/default",
            Flavour::LoginWithAmazon => "creatorsapi::default",
        }
    }
}

/// The token endpoint of each known credential version.
fn default_token_url(version: &str) -> Option<&'static str> {
    Some(match version {
        "2.1" => "https://creatorsapi.auth.us-east-1.amazoncognito.com/oauth2/token",
        "2.2" => "https://creatorsapi.auth.eu-south-2.amazoncognito.com/oauth2/token",
        "2.3" => "https://creatorsapi.auth.us-west-2.amazoncognito.com/oauth2/token",
        "3.1" => "https://api.amazon.com/auth/o2/token",
        "3.2" => "https://api.amazon.co.uk/auth/o2/token",
        "3.3" => "https://api.amazon.co.jp/auth/o2/token",
        _ => return None,
    })
}

/// The Creators API client: cheap to clone; clones share the token, the
/// rate limiter and the concurrency bound.
#[derive(Debug, Clone)]
pub struct CreatorsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// No redirects, timeouts, our User-Agent.
    http: reqwest::Client,
    credential_id: String,
    credential_secret: Secret,
    version: String,
    flavour: Flavour,
    token_url: Url,
    get_items_url: Url,
    /// The default partner tag.
    partner_tag: Option<String>,
    /// Partner tags by lowercase marketplace domain.
    partner_tags: BTreeMap<String, String>,
    backoff: Backoff,
    limiter: RateLimiter,
    in_flight: Semaphore,
    /// The cached token; locked while one is fetched, so callers share one
    /// fetch.
    token: Mutex<Option<Token>>,
}

/// An access token and until when it is used.
#[derive(Debug)]
struct Token {
    value: Secret,
    /// A little before it expires.
    fresh_until: Instant,
}

impl CreatorsClient {
    /// Validates `config` (every problem at once, each naming its field) and
    /// builds the HTTP client. No request is made.
    pub fn new(config: &CreatorsConfig) -> Result<CreatorsClient, String> {
        let mut problems = Vec::new();
        if config.credential_id.trim().is_empty() {
            problems.push("credential_id: must not be empty".to_owned());
        }
        if config.credential_secret.is_empty() {
            problems.push("credential_secret: must not be empty".to_owned());
        }
        let version = config.version.trim();
        let flavour = Flavour::of(version);
        if flavour.is_none() {
            problems.push(format!(
                "version: `{}` is not a Creators API credential version (2.1, 2.2, 2.3, 3.1, 3.2, 3.3)",
                config.version
            ));
        }
        let token_url = match (&config.token_url, default_token_url(version)) {
            (Some(url), _) => endpoint("token_url", url, &mut problems),
            (None, Some(url)) => endpoint("token_url", url, &mut problems),
            (None, None) => {
                if flavour.is_some() {
                    problems.push(format!(
                        "token_url: version `{version}` has no known token endpoint; set token_url"
                    ));
                }
                None
            }
        };
        let api_base = config.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        let get_items_url = endpoint("api_url", api_base, &mut problems).map(|mut url| {
            let prefix = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{prefix}{GET_ITEMS_PATH}"));
            url
        });
        if let Some(tag) = &config.partner_tag
            && tag.trim().is_empty()
        {
            problems.push("partner_tag: must not be empty when set".to_owned());
        }
        let mut partner_tags = BTreeMap::new();
        for (marketplace, tag) in &config.partner_tags {
            match marketplace_domain(marketplace) {
                Some(domain) if !tag.trim().is_empty() => {
                    partner_tags.insert(domain.to_owned(), tag.trim().to_owned());
                }
                Some(_) => problems.push(format!("partner_tags.{marketplace}: must not be empty")),
                None => problems.push(format!(
                    "partner_tags: `{marketplace}` is not an Amazon marketplace domain"
                )),
            }
        }
        let rps = config.requests_per_second;
        let spacing = (0.001..=1000.0)
            .contains(&rps)
            .then(|| Duration::try_from_secs_f64(1.0 / rps).ok())
            .flatten();
        if spacing.is_none() {
            problems.push(format!(
                "requests_per_second: must be between 0.001 and 1000, not {rps}"
            ));
        }
        if config.timeout_ms == 0 {
            problems.push("timeout_ms: must not be zero".to_owned());
        }
        if config.max_concurrent == 0 {
            problems.push("max_concurrent: must be at least 1".to_owned());
        }
        // Every `None` here has its problem pushed above.
        let (flavour, token_url, get_items_url, spacing) =
            match (flavour, token_url, get_items_url, spacing) {
                (Some(f), Some(t), Some(g), Some(s)) if problems.is_empty() => (f, t, g, s),
                _ => {
                    return Err(format!(
                        "invalid Creators API settings: {}",
                        problems.join("; ")
                    ));
                }
            };

        let timeout = Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .referer(false)
            .build()
            .map_err(|e| format!("cannot build the Creators API HTTP client: {e}"))?;
        Ok(CreatorsClient {
            inner: Arc::new(Inner {
                http,
                credential_id: config.credential_id.trim().to_owned(),
                credential_secret: Secret(config.credential_secret.clone()),
                version: version.to_owned(),
                flavour,
                token_url,
                get_items_url,
                partner_tag: config.partner_tag.as_ref().map(|t| t.trim().to_owned()),
                partner_tags,
                backoff: Backoff {
                    retries: config.retries,
                    first: Duration::from_millis(config.backoff_ms),
                },
                limiter: RateLimiter::new(spacing),
                in_flight: Semaphore::new(config.max_concurrent),
                token: Mutex::new(None),
            }),
        })
    }

    /// GetItems for `asins` in `marketplace`: see [`Catalog::lookup`].
    pub async fn get_items(
        &self,
        marketplace: &str,
        asins: &[String],
    ) -> Result<Vec<ItemInfo>, CatalogError> {
        let Some(domain) = marketplace_domain(marketplace) else {
            return Err(CatalogError::Rejected(format!(
                "`{marketplace}` is not an Amazon marketplace"
            )));
        };
        if asins.is_empty() {
            return Ok(Vec::new());
        }
        if asins.len() > MAX_ITEMS_PER_REQUEST {
            return Err(CatalogError::Rejected(format!(
                "{} ASINs asked at once; at most {MAX_ITEMS_PER_REQUEST}",
                asins.len()
            )));
        }
        let mut wanted: Vec<String> = Vec::with_capacity(asins.len());
        for asin in asins {
            let asin = asin.trim().to_ascii_uppercase();
            if !is_asin(&asin) {
                return Err(CatalogError::Rejected(format!("`{asin}` is not an ASIN")));
            }
            wanted.push(asin);
        }
        let Some(partner_tag) = self
            .inner
            .partner_tags
            .get(domain)
            .or(self.inner.partner_tag.as_ref())
        else {
            return Err(CatalogError::Rejected(format!(
                "no partner tag for {domain}: set partner_tag or partner_tags.\"{domain}\""
            )));
        };
        let mut item_ids: Vec<&str> = Vec::with_capacity(wanted.len());
        for asin in &wanted {
            if !item_ids.contains(&asin.as_str()) {
                item_ids.push(asin);
            }
        }
        let body = serde_json::to_vec(&GetItemsRequest {
            item_ids,
            partner_tag,
            resources: &RESOURCES,
        })
        .map_err(|e| CatalogError::Rejected(format!("cannot encode the request: {e}")))?;
        let marketplace_header = format!("www.{domain}");

        let _permit = self
            .inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| CatalogError::Unavailable("the client is shutting down".to_owned()))?;
        let answer = self
            .get_items_with_retries(domain, &marketplace_header, &body)
            .await?;
        if !answer.errors.is_empty() {
            let codes: Vec<&str> = answer
                .errors
                .iter()
                .filter_map(|e| e.code.as_deref())
                .collect();
            tracing::debug!(marketplace = domain, codes = ?codes, "Creators API reported item errors");
        }
        let items = answer.items_result.map(|r| r.items).unwrap_or_default();
        Ok(wanted
            .into_iter()
            .map(|asin| {
                let item = items.iter().find(|item| {
                    item.asin
                        .as_deref()
                        .is_some_and(|a| a.trim().eq_ignore_ascii_case(&asin))
                });
                ItemInfo {
                    available: item.is_some_and(Item::has_offers),
                    title: item.and_then(Item::title),
                    asin,
                }
            })
            .collect())
    }

    /// GetItems, retrying transient failures and one 401 of a cached token.
    async fn get_items_with_retries(
        &self,
        domain: &str,
        marketplace_header: &str,
        body: &[u8],
    ) -> Result<GetItemsResponse, CatalogError> {
        let mut retries = Retries::new(self.inner.backoff, "Creators API GetItems");
        let mut refreshed = false;
        loop {
            match self.attempt(marketplace_header, body).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Unauthorized { token, fetched_now }) => {
                    if fetched_now || refreshed {
                        return Err(CatalogError::Rejected(format!(
                            "GetItems in {domain}: 401 Unauthorized with a fresh token \
                             (check the credential's version and region)"
                        )));
                    }
                    refreshed = true;
                    self.forget_token(&token).await;
                }
                Err(Failure::Transient { reason, after }) => {
                    if retries.left() && after.is_some_and(|d| d > MAX_RETRY_AFTER) {
                        return Err(CatalogError::Unavailable(format!(
                            "GetItems in {domain}: {reason}; the API asks to wait more than {} s",
                            MAX_RETRY_AFTER.as_secs()
                        )));
                    }
                    retries.failed(reason, after).await.map_err(|e| {
                        CatalogError::Unavailable(format!("GetItems in {domain}: {e}"))
                    })?;
                }
            }
        }
    }

    /// One GetItems request (after a token, if needed, and the limiter).
    async fn attempt(
        &self,
        marketplace_header: &str,
        body: &[u8],
    ) -> Result<GetItemsResponse, Failure> {
        let (token, fetched_now) = self.token().await?;
        self.inner.limiter.wait().await;
        let response = self
            .inner
            .http
            .post(self.inner.get_items_url.clone())
            .header(AUTHORIZATION, self.authorization(&token))
            .header("x-marketplace", marketplace_header)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Failure::transient(describe(&e, "the API")))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized { token, fetched_now });
        }
        let after = retry_after(&response);
        let bytes = read_capped(response, MAX_RESPONSE_BYTES).await;
        if !status.is_success() {
            let detail = bytes.as_deref().map(error_detail).unwrap_or_default();
            return Err(classify("GetItems", status, &detail, after));
        }
        let bytes = bytes.map_err(|e| match e {
            ReadError::TooLarge => Failure::Final(CatalogError::Unavailable(format!(
                "the GetItems answer is larger than {MAX_RESPONSE_BYTES} bytes"
            ))),
            ReadError::Failed(e) => Failure::transient(describe(&e, "the API")),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Final(CatalogError::Unavailable(format!(
                "the GetItems answer is not the expected JSON: {e}"
            )))
        })
    }

    /// The `Authorization` header for `token`.
    fn authorization(&self, token: &Secret) -> String {
        match self.inner.flavour {
            Flavour::Cognito => format!("Bearer {}, Version {}", token.0, self.inner.version),
            Flavour::LoginWithAmazon => format!("Bearer {}", token.0),
        }
    }

    /// The cached token while it is fresh, else a new one (one fetch shared
    /// by concurrent callers); and whether it was fetched by this call.
    async fn token(&self) -> Result<(Secret, bool), Failure> {
        let mut cached = self.inner.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.fresh_until
        {
            return Ok((token.value.clone(), false));
        }
        *cached = None;
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok((value, true))
    }

    /// Drops the cached token if it is still `refused` (another caller may
    /// have replaced it already).
    async fn forget_token(&self, refused: &Secret) {
        let mut cached = self.inner.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == *refused) {
            *cached = None;
        }
    }

    /// Asks the token endpoint for a new token.
    async fn fetch_token(&self) -> Result<Token, Failure> {
        let inner = &*self.inner;
        let scope = inner.flavour.scope();
        let request = inner.http.post(inner.token_url.clone());
        let request = match inner.flavour {
            Flavour::Cognito => request
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("grant_type", "client_credentials")
                        .append_pair("client_id", &inner.credential_id)
                        .append_pair("client_secret", &inner.credential_secret.0)
                        .append_pair("scope", scope)
                        .finish(),
                ),
            Flavour::LoginWithAmazon => request.json(&TokenRequest {
                grant_type: "client_credentials",
                client_id: &inner.credential_id,
                client_secret: &inner.credential_secret.0,
                scope,
            }),
        };
        let asked = Instant::now();
        let response = request
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| Failure::transient(describe(&e, "the token endpoint")))?;
        let status = response.status();
        let after = retry_after(&response);
        let bytes = read_capped(response, MAX_TOKEN_BYTES).await;
        if !status.is_success() {
            let detail = bytes.as_deref().map(error_detail).unwrap_or_default();
            return Err(match status {
                StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    Failure::Final(CatalogError::Rejected(format!(
                        "the token endpoint refused the credential ({status}{detail}): \
                         check credential_id, credential_secret and version"
                    )))
                }
                _ => classify("the token request", status, &detail, after),
            });
        }
        let bytes = bytes.map_err(|e| match e {
            ReadError::TooLarge => Failure::Final(CatalogError::Unavailable(format!(
                "the token answer is larger than {MAX_TOKEN_BYTES} bytes"
            ))),
            ReadError::Failed(e) => Failure::transient(describe(&e, "the token endpoint")),
        })?;
        let answer: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Final(CatalogError::Unavailable(format!(
                "the token answer is not the expected JSON: {e}"
            )))
        })?;
        let value = answer.access_token.unwrap_or_default();
        if value.is_empty() || value.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
            return Err(Failure::Final(CatalogError::Unavailable(
                "the token answer has no usable access_token".to_owned(),
            )));
        }
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            "Creators API token fetched"
        );
        Ok(Token {
            value: Secret(value),
            fresh_until: asked + lifetime.saturating_sub(refresh_margin(lifetime)),
        })
    }
}

impl Catalog for CreatorsClient {
    fn lookup<'a>(
        &'a self,
        marketplace: &'a str,
        asins: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<ItemInfo>, CatalogError>> + Send + 'a>> {
        Box::pin(self.get_items(marketplace, asins))
    }
}

/// How long before its expiry a token is replaced: a tenth of its lifetime,
/// at most a minute (so a request never starts with a token about to lapse).
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// Spaces requests `spacing` apart, start to start, across every caller:
/// each caller takes the next free slot and sleeps until it.
#[derive(Debug)]
struct RateLimiter {
    spacing: Duration,
    /// The first instant not yet taken.
    next: std::sync::Mutex<Option<Instant>>,
}

impl RateLimiter {
    fn new(spacing: Duration) -> RateLimiter {
        RateLimiter {
            spacing,
            next: std::sync::Mutex::new(None),
        }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.spacing);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// How one attempt failed.
enum Failure {
    /// Worth retrying, after at least `after` (a `Retry-After`).
    Transient {
        reason: String,
        after: Option<Duration>,
    },
    /// The API answered 401 to `token`.
    Unauthorized { token: Secret, fetched_now: bool },
    /// Final for this lookup.
    Final(CatalogError),
}

impl Failure {
    fn transient(reason: String) -> Failure {
        Failure::Transient {
            reason,
            after: None,
        }
    }
}

/// A non-success, non-401 answer of `what`.
fn classify(what: &str, status: StatusCode, detail: &str, after: Option<Duration>) -> Failure {
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Failure::Transient {
            reason: format!("{what} answered {status}{detail}"),
            after,
        },
        s if s.is_server_error() => Failure::Transient {
            reason: format!("{what} answered {status}{detail}"),
            after,
        },
        s if s.is_redirection() => Failure::Final(CatalogError::Rejected(format!(
            "{what} answered {status}: redirects are not followed (check the configured URL)"
        ))),
        _ => Failure::Final(CatalogError::Rejected(format!(
            "{what} answered {status}{detail}"
        ))),
    }
}

/// A `Retry-After` in seconds (the HTTP-date form is ignored: the backoff
/// applies).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// `": code: message"` from an error answer (`{"errors": [{code, message}]}`,
/// `{code, message}` or OAuth's `{error, error_description}`), else the
/// start of its text; empty if there is nothing.
fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<ApiError>,
        #[serde(default, alias = "error")]
        code: Option<String>,
        #[serde(default, alias = "error_description")]
        message: Option<String>,
    }
    let parts: Vec<String> = match serde_json::from_slice::<Body>(body) {
        Ok(b) => match b.errors.into_iter().next() {
            Some(e) => [e.code, e.message].into_iter().flatten().collect(),
            None => [b.code, b.message].into_iter().flatten().collect(),
        },
        Err(_) => vec![String::from_utf8_lossy(body).trim().to_owned()],
    };
    let text = parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    if text.is_empty() {
        return text;
    }
    format!(": {}", text.chars().take(300).collect::<String>())
}

/// What went wrong with a request, for messages: never its URL.
fn describe(e: &reqwest::Error, whom: &str) -> String {
    if e.is_timeout() {
        format!("{whom} did not answer in time")
    } else if e.is_connect() {
        format!("could not connect to {whom}")
    } else {
        format!("the request to {whom} failed")
    }
}

enum ReadError {
    TooLarge,
    Failed(reqwest::Error),
}

/// The body, or an error once it exceeds `max` bytes.
async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Failed)? {
        if body.len().saturating_add(chunk.len()) > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `input` as a validated endpoint: `https`, or `http` on a loopback
/// address; a host; no credentials, query or fragment.
fn endpoint(field: &str, input: &str, problems: &mut Vec<String>) -> Option<Url> {
    let why = match Url::parse(input.trim()) {
        Err(_) => "is not a URL",
        Ok(url) => {
            let loopback = match url.host() {
                Some(Host::Ipv4(ip)) => ip.is_loopback(),
                Some(Host::Ipv6(ip)) => ip.is_loopback(),
                Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if url.host().is_none() {
                "has no host"
            } else if !(url.scheme() == "https" || url.scheme() == "http" && loopback) {
                "must be https (http only on a loopback address)"
            } else if !url.username().is_empty() || url.password().is_some() {
                "must not carry credentials"
            } else if url.query().is_some() || url.fragment().is_some() {
                "must not have a query or fragment"
            } else {
                return Some(url);
            }
        }
    };
    problems.push(format!("{field}: `{input}` {why}"));
    None
}

/// The marketplace domain (one of the model's table) that `input` names,
/// ignoring case, a `www.` prefix and a trailing dot.
fn marketplace_domain(input: &str) -> Option<&'static str> {
    let input = input.trim();
    let input = input.strip_suffix('.').unwrap_or(input);
    let bare = match input.get(..4) {
        Some(www) if www.eq_ignore_ascii_case("www.") => &input[4..],
        _ => input,
    };
    marketplace_index(bare).map(|i| MARKETPLACES[i])
}

/// The token request of 3.x credentials (2.x send the same as a form).
#[derive(Serialize)]
struct TokenRequest<'a> {
    grant_type: &'static str,
    client_id: &'a str,
    client_secret: &'a str,
    scope: &'static str,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GetItemsRequest<'a> {
    item_ids: Vec<&'a str>,
    partner_tag: &'a str,
    resources: &'a [&'a str],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetItemsResponse {
    #[serde(default)]
    items_result: Option<ItemsResult>,
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ItemsResult {
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    asin: Option<String>,
    #[serde(default, rename = "itemInfo")]
    item_info: Option<ItemInfoResource>,
    #[serde(default, rename = "offersV2")]
    offers: Option<Offers>,
}

impl Item {
    fn has_offers(&self) -> bool {
        self.offers.as_ref().is_some_and(|o| !o.listings.is_empty())
    }

    fn title(&self) -> Option<String> {
        let title = self.item_info.as_ref()?.title.as_ref()?;
        let title = title.display_value.as_deref()?.trim();
        (!title.is_empty()).then(|| title.to_owned())
    }
}

#[derive(Deserialize)]
struct ItemInfoResource {
    #[serde(default)]
    title: Option<DisplayValue>,
}

#[derive(Deserialize)]
struct DisplayValue {
    #[serde(default, rename = "displayValue")]
    display_value: Option<String>,
}

#[derive(Deserialize)]
struct Offers {
    #[serde(default)]
    listings: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default, alias = "Code")]
    code: Option<String>,
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

#[cfg(test)]
mod tests;
