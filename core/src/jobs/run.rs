//! Running a job: its items made by the link service in chunks (one
//! `create_many` call, so one transaction of links, per chunk), the chunk's
//! outcomes committed together, one runner per job.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tracing::{error, info};

use super::JobStore;
use super::storage::{Start, finish, record, start, summary};
use super::webhook::notify;
use super::{CHUNK, ItemOutcome, JobError, JobStatus, JobSummary, SubmitError};
use crate::error::{BuildError, ErrorCode};
use crate::links::{CreateLinkRequest, LinkError, LinkService, Source};

/// Jobs a runner of this process is working on: a job is never run twice at
/// once (e.g. resumed at start-up while its submitter already started it).
pub(super) fn active() -> &'static Mutex<HashSet<String>> {
    static ACTIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    ACTIVE.get_or_init(Default::default)
}

/// Holds a job's place in [`active`] until dropped.
pub(super) struct Claim(String);

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
    db: Arc<dyn JobStore>,
    links: Arc<LinkService>,
    source: Source,
}

impl JobRunner {
    /// A runner over this store and link service; `source` labels the links
    /// it makes (`api` for API jobs, `cli` for `links import`).
    pub fn new(db: Arc<dyn JobStore>, links: Arc<LinkService>, source: Source) -> JobRunner {
        JobRunner { db, links, source }
    }

    /// Runs a store call off the async workers.
    async fn blocking<R: Send + 'static, E: From<tokio::task::JoinError> + Send + 'static>(
        &self,
        f: impl FnOnce(&dyn JobStore) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&*db)).await?
    }

    /// Makes a chunk of items, each exactly as `POST /api/v1/links` would
    /// (same validation, expansion, idempotency and errors) and as if one by
    /// one, through [`LinkService::create_many`]: its links are written in
    /// one transaction. If the store fails for the whole chunk, every item
    /// of it is an internal error, as each would have been alone.
    async fn make_chunk(&self, requests: &[(i64, String)]) -> Vec<ItemOutcome> {
        let mut outcomes: Vec<Option<ItemOutcome>> = requests.iter().map(|_| None).collect();
        let mut parsed = Vec::with_capacity(requests.len());
        let mut slots = Vec::with_capacity(requests.len());
        for (i, (_, request)) in requests.iter().enumerate() {
            match serde_json::from_str::<CreateLinkRequest>(request) {
                Ok(req) => {
                    parsed.push(req);
                    slots.push(i);
                }
                Err(e) => {
                    outcomes[i] = Some(ItemOutcome::of(Err(LinkError::Rejected(BuildError::new(
                        ErrorCode::InvalidInput,
                        format!("malformed item: {e}"),
                    )))));
                }
            }
        }
        match self.links.create_many(&parsed, self.source).await {
            Ok(made) => {
                for (i, result) in slots.into_iter().zip(made) {
                    outcomes[i] = Some(ItemOutcome::of(result));
                }
            }
            Err(e) => {
                error!(error = %e, items = slots.len(), "bulk job chunk: store failed");
                for i in slots {
                    outcomes[i] = Some(internal_error());
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(internal_error))
            .collect()
    }

    /// Submits a job (the API's `POST /links/bulk`, the console's bulk
    /// upload): stores it with its items ([`super::new_job`]), counts it,
    /// and starts running it in the background. Answers once it is stored.
    pub async fn submit(
        self: &Arc<Self>,
        items: Vec<serde_json::Value>,
        webhook_url: Option<String>,
    ) -> Result<JobSummary, SubmitError> {
        let summary = self
            .blocking(move |db| super::new_job(db, &items, webhook_url.as_deref()))
            .await?;
        crate::metrics::job_submitted();
        Arc::clone(self).spawn(summary.job_id.clone());
        Ok(summary)
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

/// An item that has no outcome for an internal reason.
fn internal_error() -> ItemOutcome {
    ItemOutcome::Error {
        code: ErrorCode::Internal.as_str().to_owned(),
        message: "internal error".to_owned(),
    }
}

impl JobRunner {
    /// Makes the pending items in submission order, [`CHUNK`] at a time:
    /// each chunk's links in one transaction, then its outcomes and the
    /// job's counters in another. A process that dies between the two makes
    /// the chunk again at its next start, and request idempotency answers
    /// the links made the first time: no duplicate, no lost item. An error
    /// is the reason the job failed.
    async fn make_items(
        self: &Arc<Self>,
        id: &str,
        already: u64,
        total: u64,
        items: Vec<(i64, String)>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<(), String> {
        let mut made = already;
        for chunk in items.chunks(CHUNK) {
            let outcomes = self.make_chunk(chunk).await;
            let mut batch = Vec::with_capacity(chunk.len());
            for ((seq, _), outcome) in chunk.iter().zip(&outcomes) {
                let json = serde_json::to_string(outcome)
                    .map_err(|e| format!("cannot encode the result of item {seq}: {e}"))?;
                batch.push((*seq, json, outcome.is_ok()));
                crate::metrics::job_item(outcome.is_ok());
            }
            let owned = id.to_owned();
            self.blocking(move |db| record(db, &owned, &batch).map_err(JobError::from))
                .await
                .map_err(|e| format!("cannot record item results: {e}"))?;
            for _ in chunk {
                made += 1;
                progress(made, total);
            }
        }
        Ok(())
    }
}
