//! Pulling transactions from Awin's publisher API
//! (`GET {api_base}/publishers/{id}/transactions/`) and importing them like
//! an `awin-json` file.
//!
//! - The date range is split into windows of at most [`MAX_WINDOW_DAYS`]
//!   days (the API's limit), one call each, from the oldest; each window is
//!   stored in its own transaction as soon as it arrives, so a failure part
//!   way keeps the windows before it (and says so).
//! - Calls, retries included, start at least `60 s / calls_per_minute`
//!   apart (Awin allows about 20 calls per minute per token).
//! - Transient failures (timeouts, connection errors, 408, 429, 5xx) are
//!   retried with doubling backoff; a 429's `Retry-After` is honoured (up to
//!   [`MAX_RETRY_AFTER`]). Other refusals (401, 403, 404, 400) are final.
//! - The OAuth token comes from an environment variable, never the config
//!   file, and is sent only as `Authorization: Bearer`; redirects are
//!   followed only on the API's own host; an answer is read up to
//!   `max_response_bytes`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, RETRY_AFTER};
use serde::Serialize;
use tokio::time::Instant;

use super::ConversionStore;
use super::dates::Day;
use super::settings::{AwinPullConfig, Format, FormatSettings, Provider};
use super::{ImportError, ImportSummary, import_failed, parse, store_report};
use crate::retry::{Backoff, Retries};

/// The API's longest date range per call.
pub const MAX_WINDOW_DAYS: i64 = 31;

/// The longest `Retry-After` waited for; a longer one fails the pull
/// (retryable) rather than hanging it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

const USER_AGENT: &str = concat!("linkwright/", env!("CARGO_PKG_VERSION"));

/// Splits `[from, to]` (inclusive) into consecutive windows of at most
/// [`MAX_WINDOW_DAYS`] days.
pub fn windows(from: Day, to: Day) -> Vec<(Day, Day)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = start.plus(MAX_WINDOW_DAYS - 1).min(to);
        out.push((start, end));
        start = end.plus(1);
    }
    out
}

/// One window's import.
#[derive(Debug, Clone, Serialize)]
pub struct WindowSummary {
    /// First day (UTC).
    pub from: String,
    /// Last day (UTC), inclusive.
    pub to: String,
    /// What the window's transactions did.
    #[serde(flatten)]
    pub summary: ImportSummary,
}

/// The outcome of a pull.
#[derive(Debug, Clone, Serialize)]
pub struct PullSummary {
    /// First day (UTC).
    pub from: String,
    /// Last day (UTC), inclusive.
    pub to: String,
    /// API calls made, retries included.
    pub calls: u32,
    /// Per window, oldest first.
    pub windows: Vec<WindowSummary>,
    /// The windows' counts added up.
    pub totals: ImportSummary,
}

/// Why a pull stopped. Windows before the failed one stay imported.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The pull cannot start: settings or arguments (operator input).
    #[error("{0}")]
    Setup(String),
    /// The API could not be reached or kept failing (upstream; retry later).
    #[error(
        "Awin API unavailable for {window}: {message} (windows before it were imported; retry later)"
    )]
    Unavailable {
        /// The window, `from..to`.
        window: String,
        /// What happened on the last attempt.
        message: String,
    },
    /// The API refused the call (upstream; a retry will not help until the
    /// token, publisher id or dates are fixed).
    #[error("Awin API refused {window}: {message} (windows before it were imported)")]
    Refused {
        /// The window, `from..to`.
        window: String,
        /// The status and what it means.
        message: String,
    },
    /// The answer could not be imported (upstream data, or the store).
    #[error("cannot import Awin's answer for {window}: {source} (windows before it were imported)")]
    Import {
        /// The window, `from..to`.
        window: String,
        /// Why.
        source: ImportError,
    },
}

impl PullError {
    /// Whether the same pull may succeed later without changes.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            PullError::Unavailable { .. }
                | PullError::Import {
                    source: ImportError::Store(_),
                    ..
                }
        )
    }
}

/// Reads the token from the environment variable the config names.
pub fn token_from_env(config: &AwinPullConfig) -> Result<String, PullError> {
    match std::env::var(&config.token_env) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => Err(PullError::Setup(format!(
            "no Awin API token: set the environment variable {} (conversions.awin.token_env) to your OAuth token",
            config.token_env
        ))),
    }
}

/// Spaces calls at least `spacing` apart (start to start).
#[derive(Debug)]
struct Pacer {
    spacing: Duration,
    last: Option<Instant>,
}

impl Pacer {
    async fn wait(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.spacing).await;
        }
        self.last = Some(Instant::now());
    }
}

/// How one call ended when it brought no transactions.
enum Failure {
    /// Worth retrying, after at least this long (a `Retry-After`).
    Transient(String, Option<Duration>),
    /// Final.
    Refused(String),
}

/// Pulls the publisher's transactions of `[from, to]` and imports them into
/// the store at `db` (window by window).
pub async fn pull_awin(
    db: &Arc<dyn ConversionStore>,
    config: &AwinPullConfig,
    token: &str,
    from: Day,
    to: Day,
) -> Result<PullSummary, PullError> {
    let result = pull(db, config, token, from, to).await;
    if result.is_err() {
        import_failed("pull", Provider::Awin);
    }
    result
}

async fn pull(
    db: &Arc<dyn ConversionStore>,
    config: &AwinPullConfig,
    token: &str,
    from: Day,
    to: Day,
) -> Result<PullSummary, PullError> {
    if from > to {
        return Err(PullError::Setup(format!(
            "--from {from} is after --to {to}"
        )));
    }
    let publisher = config.publisher_id.as_deref().ok_or_else(|| {
        PullError::Setup(
            "set conversions.awin.publisher_id (your Awin publisher id) to pull transactions"
                .to_owned(),
        )
    })?;
    let client = client(config)?;
    let mut pacer = Pacer {
        spacing: config.spacing(),
        last: None,
    };
    let mut summary = PullSummary {
        from: from.to_string(),
        to: to.to_string(),
        calls: 0,
        windows: Vec::new(),
        totals: ImportSummary {
            format: Format::AwinJson.name().to_owned(),
            provider: "awin".to_owned(),
            kind: "transaction".to_owned(),
            ..ImportSummary::default()
        },
    };
    for (start, end) in windows(from, to) {
        let window = format!("{start}..{end}");
        let url = format!(
            "{}/publishers/{publisher}/transactions/?startDate={start}T00:00:00&endDate={end}T23:59:59&timezone=UTC",
            config.api_base
        );
        let body = fetch_with_retries(&client, config, &mut pacer, &mut summary.calls, &url, token)
            .await
            .map_err(|f| match f {
                Failure::Transient(message, _) => PullError::Unavailable {
                    window: window.clone(),
                    message,
                },
                Failure::Refused(message) => PullError::Refused {
                    window: window.clone(),
                    message,
                },
            })?;
        let db = Arc::clone(db);
        let imported = tokio::task::spawn_blocking(move || {
            let settings = FormatSettings::defaults(Format::AwinJson);
            let report = parse(Format::AwinJson, &settings, &body)?;
            store_report(&*db, &report)
        })
        .await
        .map_err(|e| PullError::Import {
            window: window.clone(),
            source: ImportError::Malformed {
                line: 0,
                message: format!("import task failed: {e}"),
            },
        })?
        .map_err(|source| PullError::Import {
            window: window.clone(),
            source,
        })?;
        tracing::info!(
            window = %window,
            inserted = imported.inserted,
            updated = imported.updated,
            unchanged = imported.unchanged,
            rejected = imported.rejected,
            "Awin transactions imported"
        );
        summary.totals.add(&imported);
        summary.windows.push(WindowSummary {
            from: start.to_string(),
            to: end.to_string(),
            summary: imported,
        });
    }
    Ok(summary)
}

fn client(config: &AwinPullConfig) -> Result<reqwest::Client, PullError> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
                && first.scheme() == attempt.url().scheme()
        });
        if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .redirect(policy)
        .connect_timeout(config.timeout)
        .timeout(config.timeout)
        .user_agent(USER_AGENT)
        .referer(false)
        .build()
        .map_err(|e| PullError::Setup(format!("cannot build the HTTP client: {e}")))
}

async fn fetch_with_retries(
    client: &reqwest::Client,
    config: &AwinPullConfig,
    pacer: &mut Pacer,
    calls: &mut u32,
    url: &str,
    token: &str,
) -> Result<Vec<u8>, Failure> {
    let mut retries = Retries::new(
        Backoff {
            retries: config.retries,
            first: config.backoff,
        },
        "Awin API call",
    );
    loop {
        pacer.wait().await;
        *calls += 1;
        let (message, retry_after) = match fetch_once(client, config, url, token).await {
            Ok(body) => return Ok(body),
            Err(Failure::Refused(m)) => return Err(Failure::Refused(m)),
            Err(Failure::Transient(m, after)) => (m, after),
        };
        if retries.left() && retry_after.is_some_and(|d| d > MAX_RETRY_AFTER) {
            return Err(Failure::Transient(
                format!(
                    "{message}; the API asks to wait more than {} s",
                    MAX_RETRY_AFTER.as_secs()
                ),
                None,
            ));
        }
        if let Err(e) = retries.failed(message, retry_after).await {
            return Err(Failure::Transient(e.to_string(), None));
        }
    }
}

async fn fetch_once(
    client: &reqwest::Client,
    config: &AwinPullConfig,
    url: &str,
    token: &str,
) -> Result<Vec<u8>, Failure> {
    let mut response = client
        .get(url)
        .bearer_auth(token)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            Failure::Transient(format!("{what}: {}", without_url(&e)), None)
        })?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let detail = read_capped(&mut response, 512)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(|s| format!(": {}", s.chars().take(300).collect::<String>()))
            .unwrap_or_default();
        return Err(match status {
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                Failure::Transient(format!("HTTP {status}{detail}"), retry_after)
            }
            s if s.is_server_error() => {
                Failure::Transient(format!("HTTP {s}{detail}"), retry_after)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Failure::Refused(format!(
                "HTTP {status}: the token was refused or lacks access to this publisher \
                 (check {} and conversions.awin.publisher_id){detail}",
                config.token_env
            )),
            s if s.is_redirection() => Failure::Refused(format!(
                "HTTP {s}: redirected to another host, which is not followed"
            )),
            s => Failure::Refused(format!("HTTP {s}{detail}")),
        });
    }
    match read_capped(&mut response, config.max_response_bytes).await {
        Ok(body) => Ok(body),
        Err(ReadError::TooLarge) => Err(Failure::Refused(format!(
            "the answer is larger than {} bytes (conversions.awin.max_response_bytes); pull a shorter range",
            config.max_response_bytes
        ))),
        Err(ReadError::Failed(e)) => Err(Failure::Transient(
            format!("reading the answer failed: {}", without_url(&e)),
            None,
        )),
    }
}

enum ReadError {
    TooLarge,
    Failed(reqwest::Error),
}

/// The body, or an error once it exceeds `max` bytes.
async fn read_capped(response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Failed)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error's text without its URL (which is fine to show, but long).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "the API");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        s.parse().expect("day")
    }

    #[test]
    fn ranges_split_into_windows_of_at_most_31_days() {
        // 2026-01-01..2026-03-16 is 75 days: 31 + 31 + 13.
        let w = windows(day("2026-01-01"), day("2026-03-16"));
        let shown: Vec<(String, String)> = w
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("2026-01-01".into(), "2026-01-31".into()),
                ("2026-02-01".into(), "2026-03-03".into()),
                ("2026-03-04".into(), "2026-03-16".into()),
            ]
        );
        assert_eq!(windows(day("2026-01-01"), day("2026-01-01")).len(), 1);
        assert_eq!(windows(day("2026-01-01"), day("2026-01-31")).len(), 1);
        assert_eq!(windows(day("2026-01-01"), day("2026-02-01")).len(), 2);
        assert!(windows(day("2026-01-02"), day("2026-01-01")).is_empty());
    }
}
