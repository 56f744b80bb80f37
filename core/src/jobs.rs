//! Bulk link jobs: up to [`MAX_ITEMS`] link requests accepted at once and
//! made in the background, one row of outcome per submitted item.
//!
//! - **Accepting** ([`new_job`]): the job row and every item (its request as
//!   JSON) are committed in one transaction before the caller is told the job
//!   exists, so nothing accepted is ever lost.
//! - **Running** ([`run`], [`spawn`]): items are made in submission order by
//!   the same code as `POST /api/v1/links` (short-link expansion, request
//!   idempotency, the same errors), a few at a time: outcomes are taken in
//!   order, and an item that could interact with one still in flight (the
//!   same request or the same custom code) waits for it. Outcomes are
//!   committed together with the job's counters in batched transactions
//!   (every [`COMMIT_EVERY`] items or [`COMMIT_INTERVAL`], whichever comes
//!   first), so an item's result and the counters never disagree. Status: `queued` → `running` → `done`, or
//!   `failed` with a reason when the job's own storage breaks.
//! - **Restarts** ([`resume`]): every job still `queued` or `running` goes on
//!   from its first item without a result. An item made but not yet recorded
//!   when the process died is made again, and request idempotency answers
//!   the link made the first time: no duplicate links. A job whose items
//!   cannot be read is marked `failed` with the reason, never dropped.
//! - **Results** ([`result_csv`]): one CSV row per submitted item, in order.
//! - **Webhook**: when a job ends, its summary is POSTed to the job's
//!   `webhook_url` (if any), with bounded retries; a webhook failure is
//!   logged and never changes the job.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::{error, info, warn};

use crate::clock::now_ms;
use crate::error::{BuildError, ErrorCode};
use crate::links::{CreateLinkRequest, Created, LinkError, LinkService, Source};
use crate::store::{SqliteStore, StoreError};

/// Most items in one bulk job.
pub const MAX_ITEMS: usize = 5_000;

/// Largest bulk submission body (JSON or CSV).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Outcomes are committed at least every this many items...
pub const COMMIT_EVERY: usize = 100;

/// ...and at least this often, so progress stays visible when items are slow
/// (short links expanded over the network).
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(250);

/// Items in flight at once in a job (see [`make_items`]). Each item waits
/// twice on the store's thread pool; overlapping a few of them hides those
/// hand-offs; many more only contend for the store's one connection
/// (`cargo bench --bench bulk`, figures in benches/RESULTS.md).
const WINDOW: usize = 8;

/// Longest accepted webhook URL.
const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// Webhook delivery attempts, and the backoff before the second one (doubling).
const WEBHOOK_ATTEMPTS: u32 = 3;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(200);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The columns of the result CSV, in order.
pub const RESULT_COLUMNS: [&str; 7] = [
    "Input",
    "Marketplace",
    "Link Name",
    "Short URL",
    "Tracked URL",
    "Status",
    "Error",
];

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Accepted and stored; not started yet.
    Queued,
    /// Items are being made.
    Running,
    /// Every item has an outcome (each one `ok` or `error`).
    Done,
    /// The job itself broke (its storage failed); see `failure`.
    Failed,
}

impl JobStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            _ => return None,
        })
    }

    /// Whether the job has ended (`done` or `failed`).
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// A job's progress: what `GET /api/v1/jobs/{id}` answers and the webhook
/// sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    /// The job's id.
    pub job_id: String,
    /// Where the job is.
    pub status: JobStatus,
    /// Items submitted.
    pub total: u64,
    /// Items with an outcome (`ok + errors`).
    pub processed: u64,
    /// Items that produced a link.
    pub ok: u64,
    /// Items that failed.
    pub errors: u64,
    /// When the job was accepted, Unix milliseconds.
    pub created_ms: i64,
    /// When it ended, Unix milliseconds.
    pub finished_ms: Option<i64>,
    /// Why a `failed` job failed.
    pub failure: Option<String>,
}

/// One item's outcome as stored: the link made (what the result CSV shows
/// of it) or the error. The job's own record, independent of how the API
/// shows a link or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ItemOutcome {
    /// A link: made by this item (`new`), or by an identical earlier request.
    Link {
        /// Its code.
        code: String,
        /// True if this item made it.
        new: bool,
        /// Its marketplace.
        marketplace: Option<String>,
        /// Its name.
        name: Option<String>,
        /// Its template, the slot shown as `{click_id}`.
        template: String,
    },
    /// No link: the stable error code and the message.
    Error {
        /// The stable error code.
        code: String,
        /// What went wrong.
        message: String,
    },
}

impl ItemOutcome {
    /// The outcome of a link service call.
    pub fn of(result: Result<Created, LinkError>) -> ItemOutcome {
        match result {
            Ok(Created { link, new }) => ItemOutcome::Link {
                template: link.template().display(),
                code: link.code,
                new,
                marketplace: link.marketplace,
                name: link.name,
            },
            Err(e) => {
                if let LinkError::Store(inner) = &e {
                    error!(error = %inner, "bulk job item: store failed");
                }
                let message = match &e {
                    LinkError::Store(_) => "internal error".to_owned(),
                    other => other.message(),
                };
                ItemOutcome::Error {
                    code: e.code().as_str().to_owned(),
                    message,
                }
            }
        }
    }

    /// Whether the item has a link.
    pub fn is_ok(&self) -> bool {
        matches!(self, ItemOutcome::Link { .. })
    }

    /// Reads a stored outcome. Results stored before outcomes were typed
    /// (`{"status", "body"}` with the API's JSON) are read too, so a job
    /// that spans an upgrade keeps its earlier rows.
    fn parse(stored: &str) -> Option<ItemOutcome> {
        if let Ok(outcome) = serde_json::from_str(stored) {
            return Some(outcome);
        }
        let legacy: Value = serde_json::from_str(stored).ok()?;
        let body = legacy.get("body")?;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(if legacy.get("status")?.as_u64()? < 300 {
            ItemOutcome::Link {
                code: text(body, "code")?,
                new: legacy.get("status")?.as_u64()? == 201,
                marketplace: text(body, "marketplace"),
                name: text(body, "name"),
                template: text(body, "template").unwrap_or_default(),
            }
        } else {
            let detail = body.get("error")?;
            ItemOutcome::Error {
                code: text(detail, "code")?,
                message: text(detail, "message").unwrap_or_default(),
            }
        })
    }
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The submission is malformed (bad CSV, no items, bad webhook URL): the
    /// client must fix it.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The request field at fault.
        field: Option<&'static str>,
    },
    /// More than [`MAX_ITEMS`] items.
    #[error("a bulk job holds at most {MAX_ITEMS} items, got {0}")]
    TooMany(usize),
    /// The job could not be stored (internal; retrying may help).
    #[error("cannot store the job: {0}")]
    Store(#[from] StoreError),
}

impl SubmitError {
    fn invalid(message: impl Into<String>, field: Option<&'static str>) -> SubmitError {
        SubmitError::Invalid {
            message: message.into(),
            field,
        }
    }
}

/// Why a job could not be run or read (all internal).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store failed.
    #[error("job store: {0}")]
    Store(#[from] StoreError),
    /// A store task panicked or was cancelled.
    #[error("job store task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// No such job.
    #[error("no job with id `{0}`")]
    NotFound(String),
}

/// Why a result CSV could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// No such job.
    #[error("no job with id `{0}`")]
    NotFound(String),
    /// The job has not ended yet.
    #[error(
        "job `{}` is still {}: {} of {} items processed; fetch the result when its status is done",
        .0.job_id, .0.status.as_str(), .0.processed, .0.total
    )]
    NotFinished(JobSummary),
    /// The store failed.
    #[error("job store: {0}")]
    Store(#[from] StoreError),
    /// Writing the CSV failed.
    #[error("cannot write the result CSV: {0}")]
    Csv(#[from] csv::Error),
}

// ---------------------------------------------------------------------------
// CSV input
// ---------------------------------------------------------------------------

/// A column of the input CSV.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Column {
    /// `url` or `input`: a product URL or an ASIN.
    Url,
    Asin,
    Marketplace,
    Name,
    Code,
    Campaign,
    /// `|`-separated.
    Tags,
    Provider,
    /// `param:<name>`.
    Param(String),
}

impl Column {
    fn parse(header: &str) -> Option<Column> {
        let lower = header.to_ascii_lowercase();
        Some(match lower.as_str() {
            "url" | "input" => Column::Url,
            "asin" => Column::Asin,
            "marketplace" => Column::Marketplace,
            "name" => Column::Name,
            "code" => Column::Code,
            "campaign" => Column::Campaign,
            "tags" => Column::Tags,
            "provider" => Column::Provider,
            _ => {
                let name = lower.strip_prefix("param:").map(|_| header[6..].trim())?;
                if name.is_empty() {
                    return None;
                }
                Column::Param(name.to_owned())
            }
        })
    }

    /// The JSON key of a link request this column fills.
    fn key(&self) -> &'static str {
        match self {
            Column::Url => "url",
            Column::Asin => "asin",
            Column::Marketplace => "marketplace",
            Column::Name => "name",
            Column::Code => "code",
            Column::Campaign => "campaign",
            Column::Tags => "tags",
            Column::Provider => "provider",
            Column::Param(_) => "params",
        }
    }
}

/// Parses a bulk CSV into link requests (JSON objects shaped like
/// `POST /api/v1/links` bodies), one per data row.
///
/// A header row is required. Column names are case-insensitive and may come
/// in any order: `url` or `input` (a product URL or an ASIN), `asin`,
/// `marketplace`, `name`, `code`, `campaign`, `tags` (separated by `|`),
/// `provider`, and `param:<name>` for network parameters. Cells are trimmed;
/// empty cells are absent. Unknown or repeated columns, a missing input
/// column, rows of the wrong width, no rows, and more than [`MAX_ITEMS`] rows
/// are refused.
pub fn parse_csv(data: &[u8]) -> Result<Vec<Value>, SubmitError> {
    let invalid = |m: String| SubmitError::invalid(m, None);
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(data);
    let header = reader
        .headers()
        .map_err(|e| invalid(format!("malformed CSV header: {e}")))?
        .clone();
    if header.iter().all(str::is_empty) {
        return Err(invalid(
            "the CSV is empty: a header row naming the columns is required (e.g. `url,name`)"
                .into(),
        ));
    }
    let mut columns = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    let mut seen = HashSet::new();
    let mut repeated = Vec::new();
    for (i, name) in header.iter().enumerate() {
        match Column::parse(name) {
            Some(column) => {
                if !seen.insert(column.clone()) {
                    repeated.push(name.to_owned());
                }
                columns.push(column);
            }
            None if name.is_empty() => unknown.push(format!("(unnamed column {})", i + 1)),
            None => unknown.push(format!("`{name}`")),
        }
    }
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "unknown CSV column(s): {}; known columns are url (or input), asin, marketplace, name, code, campaign, tags, provider and param:<name>",
            unknown.join(", ")
        )));
    }
    if !repeated.is_empty() {
        return Err(invalid(format!(
            "CSV column(s) given more than once: {} (`url` and `input` are the same column)",
            repeated.join(", ")
        )));
    }
    if !columns
        .iter()
        .any(|c| matches!(c, Column::Url | Column::Asin))
    {
        return Err(invalid(
            "the CSV needs a `url` (or `input`) column or an `asin` column".into(),
        ));
    }

    let mut items = Vec::new();
    let mut rows = 0usize;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(invalid(format!("malformed CSV: {e}"))),
        }
        rows += 1;
        // Past the limit, only count (to say how many were sent).
        if rows <= MAX_ITEMS {
            items.push(row_request(&columns, &record));
        }
    }
    if rows > MAX_ITEMS {
        return Err(SubmitError::TooMany(rows));
    }
    if items.is_empty() {
        return Err(invalid("the CSV has a header but no rows".into()));
    }
    Ok(items)
}

fn row_request(columns: &[Column], record: &csv::StringRecord) -> Value {
    let mut object = Map::new();
    let mut params = Map::new();
    for (column, cell) in columns.iter().zip(record.iter()) {
        if cell.is_empty() {
            continue;
        }
        match column {
            Column::Tags => {
                let tags: Vec<Value> = cell
                    .split('|')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect();
                if !tags.is_empty() {
                    object.insert("tags".into(), Value::Array(tags));
                }
            }
            Column::Param(name) => {
                params.insert(name.clone(), Value::String(cell.to_owned()));
            }
            other => {
                object.insert(other.key().into(), Value::String(cell.to_owned()));
            }
        }
    }
    if !params.is_empty() {
        object.insert("params".into(), Value::Object(params));
    }
    Value::Object(object)
}

/// Checks a webhook URL: absolute `http` or `https` with a host.
pub fn validate_webhook_url(url: &str) -> Result<(), SubmitError> {
    let bad = |m: String| SubmitError::invalid(m, Some("webhook_url"));
    if url.len() > MAX_WEBHOOK_URL_LEN {
        return Err(bad(format!(
            "webhook_url is longer than {MAX_WEBHOOK_URL_LEN} characters"
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("webhook_url `{url}`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "webhook_url must be an http or https URL, not `{}:`",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("webhook_url `{url}` has no host")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Storage (blocking; call from spawn_blocking)
// ---------------------------------------------------------------------------

fn new_job_id() -> Result<String, StoreError> {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Io {
        path: "job id".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut id = String::with_capacity(24);
    id.push_str("job_");
    id.extend(
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])),
    );
    Ok(id)
}

/// Stores a new `queued` job with its items (and webhook URL), all in one
/// transaction, and returns its summary. Refuses zero items, more than
/// [`MAX_ITEMS`], and a webhook URL that is not http(s).
pub fn new_job(
    db: &SqliteStore,
    items: &[Value],
    webhook_url: Option<&str>,
) -> Result<JobSummary, SubmitError> {
    if items.is_empty() {
        return Err(SubmitError::invalid(
            "a bulk job needs at least one item",
            Some("items"),
        ));
    }
    if items.len() > MAX_ITEMS {
        return Err(SubmitError::TooMany(items.len()));
    }
    if let Some(url) = webhook_url {
        validate_webhook_url(url)?;
    }
    let id = new_job_id()?;
    let created_ms = now_ms();
    let total = items.len() as u64;
    db.with_conn(|conn| -> Result<(), StoreError> {
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO jobs (id, status, total, processed, ok, errors, webhook_url, created_ms)
             VALUES (?1, 'queued', ?2, 0, 0, 0, ?3, ?4)",
            params![id, total as i64, webhook_url, created_ms],
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO job_items (job_id, seq, request, result) VALUES (?1, ?2, ?3, NULL)",
            )?;
            for (seq, item) in items.iter().enumerate() {
                insert.execute(params![id, seq as i64, item.to_string()])?;
            }
        }
        tx.commit()?;
        Ok(())
    })?;
    Ok(JobSummary {
        job_id: id,
        status: JobStatus::Queued,
        total,
        processed: 0,
        ok: 0,
        errors: 0,
        created_ms,
        finished_ms: None,
        failure: None,
    })
}

fn summary_in(conn: &Connection, id: &str) -> Result<Option<JobSummary>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT status, total, processed, ok, errors, created_ms, finished_ms, failure
             FROM jobs WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })
        .optional()?;
    let Some((status, total, processed, ok, errors, created_ms, finished_ms, failure)) = row else {
        return Ok(None);
    };
    let status = JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        table: "jobs",
        message: format!("job `{id}` has unknown status `{status}`"),
    })?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Some(JobSummary {
        job_id: id.to_owned(),
        status,
        total: count(total),
        processed: count(processed),
        ok: count(ok),
        errors: count(errors),
        created_ms,
        finished_ms,
        failure,
    }))
}

/// A job's summary, or `None` if there is no such job.
pub fn summary(db: &SqliteStore, id: &str) -> Result<Option<JobSummary>, StoreError> {
    db.with_conn(|conn| summary_in(conn, id))
}

/// What a runner needs to go on with a job.
struct Start {
    summary: JobSummary,
    webhook_url: Option<String>,
    /// `(seq, request JSON)` of the items without a result, in order.
    pending: Result<Vec<(i64, String)>, StoreError>,
}

/// Marks a queued job running and reads its items without a result. A job
/// that has ended is returned as it is, with nothing pending.
fn start(db: &SqliteStore, id: &str) -> Result<Start, JobError> {
    db.with_conn(|conn| {
        conn.execute(
            "UPDATE jobs SET status = 'running' WHERE id = ?1 AND status = 'queued'",
            [id],
        )
        .map_err(StoreError::from)?;
        let summary = summary_in(conn, id)?.ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        let webhook_url: Option<String> = conn
            .query_row("SELECT webhook_url FROM jobs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(StoreError::from)?;
        let pending = if summary.status.is_finished() {
            Ok(Vec::new())
        } else {
            pending_items(conn, id).and_then(|items| {
                // Every item is either recorded (counted in `processed`) or
                // pending; anything else means items went missing.
                let stored = summary.processed + items.len() as u64;
                if stored == summary.total {
                    Ok(items)
                } else {
                    Err(StoreError::Corrupt {
                        table: "job_items",
                        message: format!(
                            "the job has {} item(s) processed and {} pending, but {} were submitted",
                            summary.processed,
                            items.len(),
                            summary.total
                        ),
                    })
                }
            })
        };
        Ok(Start {
            summary,
            webhook_url,
            pending,
        })
    })
}

fn pending_items(conn: &Connection, id: &str) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, request FROM job_items WHERE job_id = ?1 AND result IS NULL ORDER BY seq",
    )?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Records outcomes and bumps the job's counters, in one transaction. An item
/// that already has a result (another runner got there first) is neither
/// overwritten nor counted twice.
fn record(db: &SqliteStore, id: &str, outcomes: &[(i64, String, bool)]) -> Result<(), StoreError> {
    db.with_conn(|conn| {
        let tx = conn.unchecked_transaction()?;
        let (mut ok, mut errors) = (0i64, 0i64);
        {
            let mut update = tx.prepare_cached(
                "UPDATE job_items SET result = ?3 WHERE job_id = ?1 AND seq = ?2 AND result IS NULL",
            )?;
            for (seq, result, is_ok) in outcomes {
                if update.execute(params![id, seq, result])? == 1 {
                    if *is_ok {
                        ok += 1;
                    } else {
                        errors += 1;
                    }
                }
            }
        }
        tx.execute(
            "UPDATE jobs SET processed = processed + ?2, ok = ok + ?3, errors = errors + ?4,
                    status = CASE status WHEN 'queued' THEN 'running' ELSE status END
             WHERE id = ?1",
            params![id, ok + errors, ok, errors],
        )?;
        tx.commit()?;
        Ok(())
    })
}

/// Ends a job (`done`, or `failed` with a reason) and returns its summary.
fn finish(
    db: &SqliteStore,
    id: &str,
    status: JobStatus,
    failure: Option<&str>,
) -> Result<JobSummary, JobError> {
    db.with_conn(|conn| {
        conn.execute(
            "UPDATE jobs SET status = ?2, finished_ms = ?3, failure = ?4 WHERE id = ?1",
            params![id, status.as_str(), now_ms(), failure],
        )
        .map_err(StoreError::from)?;
        summary_in(conn, id)?.ok_or_else(|| JobError::NotFound(id.to_owned()))
    })
}

/// Ids of the jobs that have not ended, oldest first.
pub fn unfinished(db: &SqliteStore) -> Result<Vec<String>, StoreError> {
    db.with_conn(|conn| {
        let mut stmt = conn.prepare(
            "SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_ms, id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    })
}

// ---------------------------------------------------------------------------
// Result CSV
// ---------------------------------------------------------------------------

/// A cell a spreadsheet will not run as a formula: text starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (the OWASP
/// advice for CSV injection). Inputs, names and messages come from users.
fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The result CSV of an ended job: the header [`RESULT_COLUMNS`] and one row
/// per submitted item, in order. `short_url` turns a code into its short URL.
///
/// Input is the `url` or `asin` as submitted; Marketplace and Link Name are
/// the link's (for an error, the requested ones); Tracked URL is the link's
/// template with the slot shown as `{click_id}`; Status is `ok` or `error`;
/// Error is `code: message`. Items a `failed` job never reached are `error`
/// with the code `not_processed`.
pub fn result_csv(
    db: &SqliteStore,
    id: &str,
    short_url: &dyn Fn(&str) -> String,
) -> Result<Vec<u8>, ResultError> {
    let rows = db.with_conn(|conn| -> Result<_, ResultError> {
        let summary = summary_in(conn, id)?.ok_or_else(|| ResultError::NotFound(id.to_owned()))?;
        if !summary.status.is_finished() {
            return Err(ResultError::NotFinished(summary));
        }
        let mut stmt = conn
            .prepare("SELECT request, result FROM job_items WHERE job_id = ?1 ORDER BY seq")
            .map_err(StoreError::from)?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(StoreError::from)?;
        Ok(rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from)?)
    })?;
    let mut out = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 160 + 64));
    out.write_record(RESULT_COLUMNS)?;
    for (request, result) in &rows {
        out.write_record(
            result_row(request, result.as_deref(), short_url)
                .iter()
                .map(|cell| spreadsheet_safe(cell).into_owned()),
        )?;
    }
    out.into_inner()
        .map_err(|e| ResultError::Csv(csv::Error::from(e.into_error())))
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn result_row(
    request: &str,
    result: Option<&str>,
    short_url: &dyn Fn(&str) -> String,
) -> [String; 7] {
    let request: Value = serde_json::from_str(request).unwrap_or(Value::Null);
    let input = match request.get("url").and_then(Value::as_str) {
        Some(url) => url.to_owned(),
        None => text(&request, "asin"),
    };
    let error = |code: &str, message: &str| {
        [
            input.clone(),
            text(&request, "marketplace"),
            text(&request, "name"),
            String::new(),
            String::new(),
            "error".to_owned(),
            format!("{code}: {message}"),
        ]
    };
    let Some(result) = result else {
        return error(
            "not_processed",
            "the job failed before this item was processed",
        );
    };
    match ItemOutcome::parse(result) {
        Some(ItemOutcome::Link {
            code,
            marketplace,
            name,
            template,
            ..
        }) => [
            input.clone(),
            marketplace.unwrap_or_default(),
            name.unwrap_or_default(),
            short_url(&code),
            template,
            "ok".to_owned(),
            String::new(),
        ],
        Some(ItemOutcome::Error { code, message }) => error(&code, &message),
        None => error("internal", "the stored result of this item is unreadable"),
    }
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// Jobs a runner of this process is working on: a job is never run twice at
/// once (e.g. resumed at start-up while its submitter already started it).
fn active() -> &'static Mutex<HashSet<String>> {
    static ACTIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    ACTIVE.get_or_init(Default::default)
}

/// Holds a job's place in [`active`] until dropped.
struct Claim(String);

impl Claim {
    fn take(id: &str) -> Option<Claim> {
        let mut set = active().lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.to_owned()).then(|| Claim(id.to_owned()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        active()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// Runs bulk jobs: makes their items through the link service and keeps
/// their progress and outcomes in the store.
#[derive(Debug)]
pub struct JobRunner {
    db: Arc<SqliteStore>,
    links: Arc<LinkService>,
    source: Source,
}

impl JobRunner {
    /// A runner over this store and link service; `source` labels the links
    /// it makes (`api` for API jobs, `cli` for `links import`).
    pub fn new(db: Arc<SqliteStore>, links: Arc<LinkService>, source: Source) -> JobRunner {
        JobRunner { db, links, source }
    }

    /// Runs a store call off the async workers.
    async fn blocking<R: Send + 'static, E: From<tokio::task::JoinError> + Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db)).await?
    }

    /// Makes one item exactly as `POST /api/v1/links` would (same
    /// validation, expansion, idempotency and errors).
    async fn make(&self, request: &str) -> ItemOutcome {
        ItemOutcome::of(match serde_json::from_str::<CreateLinkRequest>(request) {
            Ok(req) => self.links.create(&req, self.source).await,
            Err(e) => Err(LinkError::Rejected(BuildError::new(
                ErrorCode::InvalidInput,
                format!("malformed item: {e}"),
            ))),
        })
    }

    /// Runs a job in the background (see [`JobRunner::run`]).
    pub fn spawn(self: Arc<Self>, id: String) {
        tokio::spawn(async move {
            if let Err(e) = self.run(&id, &|_, _| {}).await {
                error!(job_id = %id, error = %e, "bulk job stopped");
            }
        });
    }

    /// Resumes, in the background, jobs a previous run left unfinished.
    /// Must be called inside a tokio runtime.
    pub fn resume(self: &Arc<Self>, ids: Vec<String>) {
        for id in ids {
            info!(job_id = %id, "resuming bulk job");
            Arc::clone(self).spawn(id);
        }
    }

    /// Runs a job to its end: makes every item still without a result, in order,
    /// records the outcomes in batches, marks the job `done` (or `failed` with a
    /// reason if its storage breaks), then calls its webhook. Returns the final
    /// summary. `progress` is called with `(processed, total)` after each item.
    /// Returns an error only if the job cannot be found or even its
    /// failure cannot be recorded; the job then stays unfinished and is resumed
    /// at the next start.
    pub async fn run(
        self: &Arc<Self>,
        id: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<JobSummary, JobError> {
        let Some(_claim) = Claim::take(id) else {
            info!(job_id = %id, "bulk job is already running in this process");
            return self
                .blocking({
                    let id = id.to_owned();
                    move |db| summary(db, &id)?.ok_or(JobError::NotFound(id))
                })
                .await;
        };
        let _running = crate::metrics::job_running();
        let started = Instant::now();
        let owned = id.to_owned();
        let Start {
            summary: first,
            webhook_url,
            pending,
        } = self.blocking(move |db| start(db, &owned)).await?;
        if first.status.is_finished() {
            return Ok(first);
        }
        let outcome = match pending {
            Ok(items) => {
                self.make_items(id, first.processed, first.total, items, progress)
                    .await
            }
            Err(e) => Err(format!("cannot read the job's items: {e}")),
        };
        let owned = id.to_owned();
        let ended = match outcome {
            Ok(()) => {
                self.blocking(move |db| finish(db, &owned, JobStatus::Done, None))
                    .await
            }
            Err(reason) => {
                error!(job_id = %id, reason = %reason, "bulk job failed");
                self.blocking(move |db| finish(db, &owned, JobStatus::Failed, Some(&reason)))
                    .await
            }
        };
        let summary = match ended {
            Ok(summary) => summary,
            Err(e) => {
                error!(job_id = %id, error = %e, "cannot record the end of a bulk job; it resumes at the next start");
                return Err(e);
            }
        };
        crate::metrics::job_finished(if summary.status == JobStatus::Done {
            "done"
        } else {
            "failed"
        });
        info!(
            job_id = %id,
            status = summary.status.as_str(),
            total = summary.total,
            ok = summary.ok,
            errors = summary.errors,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "bulk job ended"
        );
        if let Some(url) = webhook_url {
            notify(&url, &summary).await;
        }
        Ok(summary)
    }
}

/// An item being made.
struct InFlight {
    seq: i64,
    request: String,
    code: Option<String>,
    task: tokio::task::JoinHandle<ItemOutcome>,
}

/// Makes the pending items in submission order, committing outcomes in
/// batches. Up to [`WINDOW`] items are in flight at once (their store calls
/// overlap), but outcomes are taken and recorded strictly in order, and an
/// item that could interact with one in flight (the same request, or the
/// same custom code) starts only after it: identical requests get the link
/// of the first, and a taken code goes to the first item that asked for it,
/// exactly as one by one. An error is the reason the job failed.
impl JobRunner {
    async fn make_items(
        self: &Arc<Self>,
        id: &str,
        already: u64,
        total: u64,
        items: Vec<(i64, String)>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<(), String> {
        let mut recorder = Recorder {
            runner: self,
            id,
            batch: Vec::with_capacity(COMMIT_EVERY),
            last_commit: Instant::now(),
            made: already,
            total,
            progress,
        };
        let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
        for (seq, request) in items {
            let code = serde_json::from_str::<Value>(&request)
                .ok()
                .and_then(|v| v.get("code")?.as_str().map(str::to_owned));
            while in_flight.len() >= WINDOW
                || in_flight
                    .iter()
                    .any(|f| f.request == request || (code.is_some() && f.code == code))
            {
                if let Some(first) = in_flight.pop_front() {
                    recorder.settle(first).await?;
                }
            }
            let task = tokio::spawn({
                let runner = Arc::clone(self);
                let request = request.clone();
                async move { runner.make(&request).await }
            });
            in_flight.push_back(InFlight {
                seq,
                request,
                code,
                task,
            });
        }
        while let Some(first) = in_flight.pop_front() {
            recorder.settle(first).await?;
        }
        recorder.commit().await
    }
}

/// Takes outcomes in order and commits them in batches.
struct Recorder<'a> {
    runner: &'a JobRunner,
    id: &'a str,
    batch: Vec<(i64, String, bool)>,
    last_commit: Instant,
    made: u64,
    total: u64,
    progress: &'a (dyn Fn(u64, u64) + Send + Sync),
}

impl Recorder<'_> {
    async fn settle(&mut self, item: InFlight) -> Result<(), String> {
        let result = match item.task.await {
            Ok(result) => result,
            Err(e) => {
                error!(error = %e, "bulk job item task failed");
                ItemOutcome::Error {
                    code: ErrorCode::Internal.as_str().to_owned(),
                    message: "internal error".to_owned(),
                }
            }
        };
        let json = serde_json::to_string(&result)
            .map_err(|e| format!("cannot encode the result of item {}: {e}", item.seq))?;
        self.batch.push((item.seq, json, result.is_ok()));
        crate::metrics::job_item(result.is_ok());
        self.made += 1;
        (self.progress)(self.made, self.total);
        if self.batch.len() >= COMMIT_EVERY || self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit().await?;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let outcomes = std::mem::take(&mut self.batch);
        let id = self.id.to_owned();
        self.runner
            .blocking(move |db| record(db, &id, &outcomes).map_err(JobError::from))
            .await
            .map_err(|e| format!("cannot record item results: {e}"))?;
        self.last_commit = Instant::now();
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Webhook
// ---------------------------------------------------------------------------

/// The one webhook client: 5 s connect and overall timeouts, no redirects.
fn webhook_client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(WEBHOOK_TIMEOUT)
                .timeout(WEBHOOK_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("linkwright/", env!("CARGO_PKG_VERSION")))
                .build()
                .inspect_err(|e| error!(error = %e, "cannot build the webhook HTTP client"))
                .ok()
        })
        .as_ref()
}

/// POSTs the job summary to its webhook: up to [`WEBHOOK_ATTEMPTS`] tries
/// with doubling backoff on connection errors, timeouts and 5xx. Only logs:
/// a webhook never changes the job.
async fn notify(url: &str, summary: &JobSummary) {
    {
        let Some(client) = webhook_client() else {
            return;
        };
        let job_id = summary.job_id.as_str();
        let mut backoff = WEBHOOK_BACKOFF;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            let retry = match client.post(url).json(summary).send().await {
                Ok(r) if r.status().is_success() => {
                    info!(
                        job_id,
                        status = r.status().as_u16(),
                        attempt,
                        "webhook delivered"
                    );
                    crate::metrics::webhook("delivered");
                    return;
                }
                Ok(r) if r.status().is_server_error() => format!("answered {}", r.status()),
                Ok(r) => {
                    warn!(
                        job_id,
                        status = r.status().as_u16(),
                        "webhook refused; not retried"
                    );
                    crate::metrics::webhook("refused");
                    return;
                }
                Err(e) if e.is_builder() => {
                    warn!(job_id, error = %e, "webhook request cannot be built; not retried");
                    crate::metrics::webhook("failed");
                    return;
                }
                Err(e) => e.to_string(),
            };
            if attempt == WEBHOOK_ATTEMPTS {
                warn!(job_id, attempts = attempt, error = %retry, "webhook failed; giving up");
                crate::metrics::webhook("failed");
                return;
            }
            info!(job_id, attempt, error = %retry, "webhook failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn result_cells_that_a_spreadsheet_would_run_are_defused() {
        for (cell, safe) in [
            (
                "=HYPERLINK(\"http://evil\")",
                "'=HYPERLINK(\"http://evil\")",
            ),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            (
                "https://www.amazon.com/dp/B08N5WRWNW",
                "https://www.amazon.com/dp/B08N5WRWNW",
            ),
            ("Echo review", "Echo review"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
        }
    }

    fn parse(text: &str) -> Result<Vec<Value>, String> {
        parse_csv(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn csv_columns_are_case_insensitive_in_any_order_and_empty_cells_are_absent() {
        let items = parse(
            "Name,INPUT,Tags,param:clickref2,Marketplace,asin\n\
             Video 1, https://example.com/p ,a| b ||,x,,\n\
             ,,,,amazon.de,B08N5WRWNW\n",
        )
        .unwrap();
        assert_eq!(
            items,
            vec![
                serde_json::json!({"name": "Video 1", "url": "https://example.com/p",
                    "tags": ["a", "b"], "params": {"clickref2": "x"}}),
                serde_json::json!({"marketplace": "amazon.de", "asin": "B08N5WRWNW"}),
            ]
        );
    }

    #[test]
    fn csv_problems_are_refused_with_what_is_wrong() {
        let cases = [
            ("url,colour\nx,red\n", "unknown CSV column(s): `colour`"),
            ("url,,name\nx,,y\n", "(unnamed column 2)"),
            ("url,param:\nx,y\n", "`param:`"),
            ("url,input\nx,y\n", "more than once: input"),
            ("name,code\nx,y\n", "needs a `url` (or `input`) column"),
            ("url\n", "no rows"),
            ("", "the CSV is empty"),
            ("url,name\nx\n", "malformed CSV"),
        ];
        for (csv, expected) in cases {
            let e = parse(csv).unwrap_err();
            assert!(e.contains(expected), "{csv:?}: {e}");
        }
    }

    #[test]
    fn more_than_max_rows_is_a_limit_error_with_the_count() {
        let mut csv = String::from("asin\n");
        for _ in 0..=MAX_ITEMS {
            csv.push_str("B08N5WRWNW\n");
        }
        match parse_csv(csv.as_bytes()) {
            Err(SubmitError::TooMany(n)) => assert_eq!(n, MAX_ITEMS + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn webhook_urls_must_be_http_or_https_with_a_host() {
        for ok in ["http://127.0.0.1:9/x", "https://hooks.example/a?b=c"] {
            assert!(validate_webhook_url(ok).is_ok(), "{ok}");
        }
        for bad in ["ftp://x/", "file:///etc/passwd", "nope", "http://", ""] {
            assert!(validate_webhook_url(bad).is_err(), "{bad}");
        }
    }

    /// Regression: outcomes were stored as the API's JSON of a link and
    /// read back by field name, so renaming a field of the API's link (say
    /// `template` to `tracked_url`) emptied the result CSV's Tracked URL.
    /// Now the job stores its own typed record of the link; the CSV is made
    /// from that, and the API's JSON of the same link plays no part.
    #[test]
    fn result_rows_come_from_the_typed_outcome_not_the_api_json_of_the_link() {
        use crate::store::Link;
        let link = Link {
            id: 1,
            code: "abc".into(),
            provider: "amazon".into(),
            input: "https://www.amazon.com/dp/B08N5WRWNW".into(),
            destination: "https://www.amazon.com/dp/B08N5WRWNW".into(),
            template_prefix: "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag=".into(),
            template_suffix: String::new(),
            subid_max_len: 64,
            subid_encoding: linkwright_plugin_sdk::SubIdEncoding::UrlSafe,
            name: Some("Echo".into()),
            marketplace: Some("amazon.com".into()),
            campaign: None,
            tags: vec![],
            params: vec![],
            source_key: None,
            created_ms: 0,
            disabled: false,
        };
        let outcome = ItemOutcome::of(Ok(Created { link, new: true }));
        let stored = serde_json::to_string(&outcome).expect("encode");
        let keys: Vec<String> = serde_json::from_str::<Map<String, Value>>(&stored)
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            ["code", "marketplace", "name", "new", "outcome", "template"]
        );
        let short = |code: &str| format!("https://s.example/{code}");
        assert_eq!(
            result_row(r#"{"asin":"B08N5WRWNW"}"#, Some(&stored), &short),
            [
                "B08N5WRWNW",
                "amazon.com",
                "Echo",
                "https://s.example/abc",
                "https://www.amazon.com/dp/B08N5WRWNW?tag=t-20&ascsubtag={click_id}",
                "ok",
                ""
            ]
        );
        let failed = ItemOutcome::of(Err(LinkError::Rejected(BuildError::new(
            ErrorCode::InvalidAsin,
            "\"B0\" is not a valid ASIN",
        ))));
        let stored = serde_json::to_string(&failed).expect("encode");
        assert_eq!(
            result_row(r#"{"asin":"B0"}"#, Some(&stored), &short)[5..],
            ["error", "invalid_asin: \"B0\" is not a valid ASIN"]
        );
    }

    /// Results stored by earlier versions (the API's status and JSON) are
    /// still read, so a job that spans an upgrade keeps its rows.
    #[test]
    fn result_rows_show_links_errors_and_unprocessed_items() {
        let short = |code: &str| format!("https://s.example/{code}");
        let ok =
            serde_json::json!({"status": 201, "body": {"code": "abc", "marketplace": "amazon.com",
            "name": "N", "template": "https://a/?t={click_id}"}})
            .to_string();
        let err = serde_json::json!({"status": 422, "body": {"error": {"code": "unsupported_host",
            "message": "no provider"}}})
        .to_string();
        assert_eq!(
            result_row(r#"{"url":" u "}"#, Some(&ok), &short),
            [
                " u ",
                "amazon.com",
                "N",
                "https://s.example/abc",
                "https://a/?t={click_id}",
                "ok",
                ""
            ]
        );
        assert_eq!(
            result_row(
                r#"{"asin":"X","marketplace":"amazon.de","name":"M"}"#,
                Some(&err),
                &short
            ),
            [
                "X",
                "amazon.de",
                "M",
                "",
                "",
                "error",
                "unsupported_host: no provider"
            ]
        );
        assert_eq!(
            result_row(r#"{"asin":"X"}"#, None, &short)[6],
            "not_processed: the job failed before this item was processed"
        );
    }
}
