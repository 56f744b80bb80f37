//! A job's rows in the store: the job, its items and their outcomes, and
//! its counters (blocking; call from `spawn_blocking`).

use serde_json::Value;

use super::{JobStart, JobStore};
use super::{JobStatus, JobSummary, MAX_ITEMS, SubmitError, validate_webhook_url};
use crate::clock::now_ms;
use crate::store::StoreError;

pub(super) fn new_job_id() -> Result<String, StoreError> {
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
    db: &dyn JobStore,
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
    let summary = JobSummary {
        job_id: new_job_id()?,
        status: JobStatus::Queued,
        total: items.len() as u64,
        processed: 0,
        ok: 0,
        errors: 0,
        created_ms: now_ms(),
        finished_ms: None,
        failure: None,
    };
    let items: Vec<String> = items.iter().map(Value::to_string).collect();
    db.insert_job(&summary, webhook_url, &items)?;
    Ok(summary)
}

/// A job's summary, or `None` if there is no such job.
pub fn summary(db: &dyn JobStore, id: &str) -> Result<Option<JobSummary>, StoreError> {
    db.job_summary(id)
}

/// What a runner needs to go on with a job.
pub(super) struct Start {
    pub(super) summary: JobSummary,
    pub(super) webhook_url: Option<String>,
    /// `(seq, request JSON)` of the items without a result, in order.
    pub(super) pending: Result<Vec<(i64, String)>, StoreError>,
}

/// A claimed job's start, its items checked: every item is either recorded
/// (counted in `processed`) or pending; anything else means items went
/// missing, and the job cannot go on.
pub(super) fn checked(start: JobStart) -> Start {
    let JobStart {
        summary,
        webhook_url,
        pending,
    } = start;
    let stored = summary.processed + pending.len() as u64;
    let pending = if stored == summary.total {
        Ok(pending)
    } else {
        Err(StoreError::Corrupt {
            table: "job_items",
            message: format!(
                "the job has {} item(s) processed and {} pending, but {} were submitted",
                summary.processed,
                pending.len(),
                summary.total
            ),
        })
    };
    Start {
        summary,
        webhook_url,
        pending,
    }
}

/// Ids of the jobs that have not ended, oldest first.
pub fn unfinished(db: &dyn JobStore) -> Result<Vec<String>, StoreError> {
    db.unfinished_jobs()
}
