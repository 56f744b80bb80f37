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

/// A runner's claim on a job: who holds it, and until when (Unix
/// milliseconds) unless renewed. A claim that has run out may be taken by
/// any runner, of any instance.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The runner holding the claim (one name per runner and process).
    pub owner: &'a str,
    /// The time the claim is taken or renewed at.
    pub now_ms: i64,
    /// When it runs out.
    pub until_ms: i64,
}

/// What asking for a given job found.
#[derive(Debug)]
pub enum Claimed {
    /// The job is the caller's now: what its runner needs.
    Started(JobStart),
    /// The job has ended, or another runner holds a live claim on it: its
    /// summary.
    Elsewhere(JobSummary),
}

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
    /// Claims a job for `lease` unless it has ended or another runner
    /// holds a live claim on it; a claimed job is marked running, and what
    /// its runner needs is read in the same transaction. `None` if there is
    /// no such job.
    fn start_job(&self, id: &str, lease: Lease<'_>) -> Result<Option<Claimed>, StoreError>;
    /// Claims the oldest job that has not ended and that no runner holds a
    /// live claim on, as [`JobStore::start_job`] does; `None` if there is
    /// none. Two runners claiming at once never get the same job.
    fn claim_job(&self, lease: Lease<'_>) -> Result<Option<JobStart>, StoreError>;
    /// Extends `owner`'s claim on a job to `until_ms`; false if the claim
    /// is not `owner`'s any more (it ran out and another runner took it, or
    /// the job has ended).
    fn renew_job_claim(&self, id: &str, owner: &str, until_ms: i64) -> Result<bool, StoreError>;
    /// Gives up `owner`'s claim on a job, so any runner may take it at once;
    /// false if it was not `owner`'s.
    fn release_job_claim(&self, id: &str, owner: &str) -> Result<bool, StoreError>;
    /// Records outcomes `(seq, result JSON, ok)` and bumps the job's
    /// counters, in one transaction, if `owner` holds the job's claim;
    /// false (nothing recorded) if not. An item that has a result already
    /// is neither overwritten nor counted twice.
    fn record_job_items(
        &self,
        id: &str,
        owner: &str,
        outcomes: &[(i64, String, bool)],
    ) -> Result<bool, StoreError>;
    /// Ends a job (`done`, or `failed` with a reason) at `now_ms` and drops
    /// its claim, if `owner` holds it; false (nothing changed) if not,
    /// or if there is no such job.
    fn finish_job(
        &self,
        id: &str,
        owner: &str,
        status: JobStatus,
        failure: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Ids of the jobs that have not ended, oldest first.
    fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError>;
    /// A job's summary and every item's `(request JSON, result JSON)`, in
    /// order; `None` if there is no such job.
    fn job_items(&self, id: &str) -> Result<Option<(JobSummary, Vec<JobItem>)>, StoreError>;
}
