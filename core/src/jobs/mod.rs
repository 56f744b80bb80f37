//! Bulk link jobs: up to [`MAX_ITEMS`] link requests accepted at once and
//! made in the background, one row of outcome per submitted item.
//!
//! - **Accepting** ([`new_job`]): the job row and every item (its request as
//!   JSON) are committed in one transaction before the caller is told the job
//!   exists, so nothing accepted is ever lost.
//! - **Running** ([`JobRunner::run`], [`JobRunner::spawn`]): items are made in submission order by
//!   the link service (`LinkService::create_many`: the same checks,
//!   short-link expansion, request idempotency and errors as `POST
//!   /api/v1/links`, with the outcome of making them one by one), [`CHUNK`]
//!   at a time: a chunk's templates are built with bounded parallelism and
//!   its links written in one transaction; then its outcomes are committed
//!   together with the job's counters, so an item's result and the counters
//!   never disagree. Status: `queued` → `running` → `done`, or `failed` with
//!   a reason when the job's own storage breaks.
//! - **Claims** ([`JobRunner::claim_loop`], [`JobStore::claim_job`]): a job
//!   is run by the one runner holding its claim in the store, a lease the
//!   runner renews every heartbeat; the instance a job is submitted to
//!   claims it at once, and every instance claims, as often, the jobs no
//!   runner holds: queued, handed back by a runner that stopped
//!   ([`JobRunner::stop`]), or left by one that died, once its lease has
//!   run out. A claimed job goes on from its first item without a result.
//!   A chunk whose links were committed but whose outcomes were not when
//!   its runner died is made again, and request idempotency answers the
//!   links made the first time: no duplicate links, no lost item. Outcomes
//!   are recorded only by the claim's holder: a runner whose claim ran out
//!   stops. A job whose items cannot be read is marked `failed` with the
//!   reason, never dropped.
//! - **Results** ([`result_csv`]): one CSV row per submitted item, in order.
//! - **Webhook**: when a job ends, its summary is POSTed to the job's
//!   `webhook_url` (if any), with bounded retries; a webhook failure is
//!   logged and never changes the job.

mod input;
mod result;
mod run;
mod storage;
mod store;
mod webhook;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::error;

use crate::links::{Created, LinkError};
use crate::store::StoreError;

pub use input::{MAX_CSV_CELL_BYTES, MAX_CSV_COLUMNS, parse_csv, validate_webhook_url};
pub use result::result_csv;
pub use run::JobRunner;
pub use storage::{new_job, summary, unfinished};
pub use store::{Claimed, JobItem, JobStart, JobStore, Lease};

/// Most items in one bulk job.
pub const MAX_ITEMS: usize = 5_000;

/// Largest bulk submission body (JSON or CSV).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Items made together (see `run.rs`): one transaction of links, then one
/// of outcomes, per chunk. Larger chunks cost fewer commits and hand-offs;
/// smaller ones show progress sooner and redo less after a crash
/// (`cargo bench --bench bulk`, figures in benches/RESULTS.md).
pub const CHUNK: usize = 250;

/// Longest accepted webhook URL.
const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// Webhook delivery retries after the first attempt, and the backoff before
/// the first retry (doubling).
const WEBHOOK_RETRIES: u32 = 2;
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

    pub(crate) fn parse(s: &str) -> Option<JobStatus> {
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

impl From<tokio::task::JoinError> for SubmitError {
    fn from(e: tokio::task::JoinError) -> Self {
        SubmitError::Store(StoreError::Task(e.to_string()))
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
