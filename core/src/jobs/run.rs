//! Running a job: its items made by the link service a few at a time,
//! outcomes taken in order and committed in batches, one runner per job.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde_json::Value;
use tracing::{error, info};

use super::storage::{Start, finish, record, start, summary};
use super::webhook::notify;
use super::{COMMIT_EVERY, COMMIT_INTERVAL, ItemOutcome, JobError, JobStatus, JobSummary, WINDOW};
use crate::error::{BuildError, ErrorCode};
use crate::links::{CreateLinkRequest, LinkError, LinkService, Source};
use crate::store::SqliteStore;

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
pub(super) struct InFlight {
    seq: i64,
    request: String,
    code: Option<String>,
    task: tokio::task::JoinHandle<ItemOutcome>,
}

impl JobRunner {
    /// Makes the pending items in submission order, committing outcomes in
    /// batches. Up to [`WINDOW`] items are in flight at once (their store
    /// calls overlap), but outcomes are taken and recorded strictly in
    /// order, and an item that could interact with one in flight (the same
    /// request, or the same custom code) starts only after it: identical
    /// requests get the link of the first, and a taken code goes to the
    /// first item that asked for it, exactly as one by one. An error is the
    /// reason the job failed.
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
pub(super) struct Recorder<'a> {
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
