//! Bulk jobs' rows: the job, its items and their outcomes, its counters.

use std::fmt;

use super::{JobStatus, JobSummary};
use crate::store::StoreError;

/// A job as a runner starts it: its summary, its webhook, and the items
/// without an outcome, in order.
#[derive(Debug)]
pub struct JobStart {
    /// The job's summary after starting it.
    pub summary: JobSummary,
    /// Where to report its end.
    pub webhook_url: Option<String>,
    /// `(seq, request JSON)` of the items without a result (empty for a job
    /// that has ended).
    pub pending: Vec<(i64, String)>,
}

/// One submitted item: its request JSON and, once made, its result JSON.
pub type JobItem = (String, Option<String>);

/// Bulk job storage. The rules (limits, outcomes, the result CSV) live in
/// this module; a backend only keeps rows.
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Stores a new `queued` job and its items (request JSON, in order), in
    /// one transaction.
    fn insert_job(
        &self,
        job: &JobSummary,
        webhook_url: Option<&str>,
        items: &[String],
    ) -> Result<(), StoreError>;
    /// A job's summary, or `None` if there is no such job.
    fn job_summary(&self, id: &str) -> Result<Option<JobSummary>, StoreError>;
    /// Marks a queued job running and reads what a runner needs to go on
    /// with it; `None` if there is no such job.
    fn start_job(&self, id: &str) -> Result<Option<JobStart>, StoreError>;
    /// Records outcomes `(seq, result JSON, ok)` and bumps the job's
    /// counters, in one transaction. An item that has a result already
    /// (another runner got there first) is neither overwritten nor counted
    /// twice.
    fn record_job_items(
        &self,
        id: &str,
        outcomes: &[(i64, String, bool)],
    ) -> Result<(), StoreError>;
    /// Ends a job (`done`, or `failed` with a reason) at `now_ms`; its
    /// summary, or `None` if there is no such job.
    fn finish_job(
        &self,
        id: &str,
        status: JobStatus,
        failure: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<JobSummary>, StoreError>;
    /// Ids of the jobs that have not ended, oldest first.
    fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError>;
    /// A job's summary and every item's `(request JSON, result JSON)`, in
    /// order; `None` if there is no such job.
    fn job_items(&self, id: &str) -> Result<Option<(JobSummary, Vec<JobItem>)>, StoreError>;
}
