//! Running a job: its items made by the link service in chunks (one
//! `create_many` call, so one transaction of links, per chunk), the chunk's
//! outcomes committed together, by the one runner that holds the job's
//! claim in the store. A runner renews the claims of the jobs it runs, and
//! looks for jobs nobody holds (left by a runner that died, of any
//! instance sharing the store) to run them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{error, info, warn};

use super::storage::{Start, checked, new_job_id, summary};
use super::webhook::notify;
use super::{CHUNK, ItemOutcome, JobError, JobStatus, JobSummary, SubmitError};
use super::{Claimed, JobStart, JobStore, Lease};
use crate::clock::now_ms;
use crate::error::{BuildError, ErrorCode};
use crate::links::{CreateLinkRequest, LinkError, LinkService, Source};

/// A job's claim lives this many heartbeats unless renewed: a runner that
/// misses a few renewals (a slow store, a pause) keeps its jobs.
const LEASE_HEARTBEATS: u32 = 10;

/// Runs bulk jobs: makes their items through the link service and keeps
/// their progress and outcomes in the store.
#[derive(Debug)]
pub struct JobRunner {
    db: Arc<dyn JobStore>,
    links: Arc<LinkService>,
    source: Source,
    /// This runner's name in the jobs' claims: host, process, and a random
    /// part, so no two runners anywhere share it.
    owner: String,
    /// How often a runner renews its claims and looks for jobs to claim.
    heartbeat: Duration,
    /// Jobs this runner is working on: a job is never run twice at once by
    /// one runner (claimed again when its claim ran out while it ran).
    held: Mutex<HashSet<String>>,
    /// A job of `held` ended.
    ended: Notify,
    /// Set by [`JobRunner::stop`]: no job is claimed and no chunk started.
    stopping: AtomicBool,
    /// Wakes [`JobRunner::claim_loop`] to stop.
    wake: Notify,
}

/// Holds a job's place in [`JobRunner::held`] until dropped.
struct Held<'a> {
    runner: &'a JobRunner,
    id: String,
}

impl<'a> Held<'a> {
    fn take(runner: &'a JobRunner, id: &str) -> Option<Held<'a>> {
        let mut held = runner.held.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(id.to_owned()).then(|| Held {
            runner,
            id: id.to_owned(),
        })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.runner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.runner.ended.notify_waiters();
    }
}

/// Aborts a task when dropped (a job's heartbeat ends with its run).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How making a job's items ended, short of a failure.
enum Made {
    /// Every item has an outcome.
    All,
    /// The job's claim is not this runner's any more: another goes on.
    ClaimLost,
    /// The runner is stopping: the job waits for the next one.
    Stopping,
}

impl JobRunner {
    /// A runner over this store and link service; `source` labels the links
    /// it makes (`api` for API jobs, `cli` for `links import`). It renews
    /// its claims every `heartbeat`; a claim lives ten heartbeats.
    pub fn new(
        db: Arc<dyn JobStore>,
        links: Arc<LinkService>,
        source: Source,
        heartbeat: Duration,
    ) -> JobRunner {
        JobRunner {
            db,
            links,
            source,
            owner: runner_name(),
            heartbeat,
            held: Mutex::default(),
            ended: Notify::new(),
            stopping: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// A claim taken or renewed now.
    fn lease(&self) -> (String, i64, i64) {
        let now = now_ms();
        let lease =
            i64::try_from((self.heartbeat * LEASE_HEARTBEATS).as_millis()).unwrap_or(i64::MAX / 2);
        (self.owner.clone(), now, now.saturating_add(lease))
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
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

    /// Claims, every heartbeat, the jobs no runner holds (queued, or left
    /// by a runner that died: its claim ran out), and runs each in the
    /// background, until [`JobRunner::stop`]. Its first look is at once:
    /// the jobs a previous run left go on. Must be called inside a tokio
    /// runtime.
    pub async fn claim_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Made before the flag is read, so a stop in between wakes it.
            let wake = self.wake.notified();
            if self.is_stopping() {
                return;
            }
            tokio::select! {
                _ = tick.tick() => {}
                () = wake => return,
            }
            self.claim_all().await;
        }
    }

    /// Claims and starts jobs until none is left to claim.
    async fn claim_all(self: &Arc<Self>) {
        while !self.is_stopping() {
            let (owner, now_ms, until_ms) = self.lease();
            let claimed = self
                .blocking(move |db| {
                    db.claim_job(Lease {
                        owner: &owner,
                        now_ms,
                        until_ms,
                    })
                    .map_err(JobError::from)
                })
                .await;
            let start = match claimed {
                Ok(Some(start)) => start,
                Ok(None) => return,
                Err(e) => {
                    warn!(error = %e, "cannot look for bulk jobs to run; trying again");
                    return;
                }
            };
            let id = start.summary.job_id.clone();
            if self.is_stopping() {
                self.release(&id).await;
                return;
            }
            // A job this runner still runs, whose claim ran out: claiming
            // it renewed the claim, and its run goes on.
            let runner = Arc::clone(self);
            tokio::spawn(async move {
                let Some(held) = Held::take(&runner, &id) else {
                    return;
                };
                info!(job_id = %id, processed = start.summary.processed, total = start.summary.total, "claimed bulk job");
                if let Err(e) = runner.go(held, start, &|_, _| {}).await {
                    error!(job_id = %id, error = %e, "bulk job stopped");
                }
            });
        }
    }

    /// Stops claiming jobs and starting chunks; waits up to `grace` for the
    /// chunks being made to be recorded, then gives back the claims of this
    /// runner's jobs, so that another runner (this instance restarted,
    /// another one) goes on with them at once rather than when the claims
    /// run out.
    pub async fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_waiters();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let ended = self.ended.notified();
            if self.held_ids().is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        let left = self.held_ids();
        warn!(
            jobs = left.len(),
            "bulk jobs still making a chunk at shutdown; their claims are given back"
        );
        for id in left {
            self.release(&id).await;
        }
    }

    fn held_ids(&self) -> Vec<String> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Gives back this runner's claim on a job.
    async fn release(&self, id: &str) {
        let (owner, id) = (self.owner.clone(), id.to_owned());
        let released = {
            let db = Arc::clone(&self.db);
            let id = id.clone();
            tokio::task::spawn_blocking(move || db.release_job_claim(&id, &owner)).await
        };
        match released {
            Ok(Ok(_)) => info!(job_id = %id, "bulk job handed back"),
            Ok(Err(e)) => {
                warn!(job_id = %id, error = %e, "cannot give back a bulk job's claim; another runner takes it when it runs out")
            }
            Err(e) => {
                warn!(job_id = %id, error = %e, "cannot give back a bulk job's claim; another runner takes it when it runs out")
            }
        }
    }

    /// Runs a job to its end: claims it, makes every item still without a
    /// result, in order, records the outcomes in batches, marks the job
    /// `done` (or `failed` with a reason if its storage breaks), then calls
    /// its webhook. Returns the final summary; or, if another runner holds
    /// the job or takes it over, or this runner is stopping, the summary as
    /// it stands. `progress` is called with `(processed, total)` after each
    /// item. Returns an error only if the job cannot be found or even its
    /// failure cannot be recorded; the job then stays unfinished, and a
    /// runner claims it when its claim runs out.
    pub async fn run(
        self: &Arc<Self>,
        id: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<JobSummary, JobError> {
        let Some(held) = Held::take(self, id) else {
            info!(job_id = %id, "bulk job is already running in this process");
            return self.summary(id).await;
        };
        let (owner, now_ms, until_ms) = self.lease();
        let owned = id.to_owned();
        let claimed = self
            .blocking(move |db| {
                let lease = Lease {
                    owner: &owner,
                    now_ms,
                    until_ms,
                };
                db.start_job(&owned, lease)?
                    .ok_or(JobError::NotFound(owned.clone()))
            })
            .await?;
        match claimed {
            Claimed::Started(start) => self.go(held, start, progress).await,
            Claimed::Elsewhere(summary) => {
                if !summary.status.is_finished() {
                    info!(job_id = %id, "bulk job is held by another runner");
                }
                Ok(summary)
            }
        }
    }

    async fn summary(&self, id: &str) -> Result<JobSummary, JobError> {
        let id = id.to_owned();
        self.blocking(move |db| summary(db, &id)?.ok_or(JobError::NotFound(id)))
            .await
    }

    /// Runs a job this runner has claimed (see [`JobRunner::run`]),
    /// renewing its claim every heartbeat meanwhile.
    async fn go(
        self: &Arc<Self>,
        held: Held<'_>,
        start: JobStart,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<JobSummary, JobError> {
        let id = held.id.clone();
        let _running = crate::metrics::job_running();
        let started = Instant::now();
        let lost = Arc::new(AtomicBool::new(false));
        let _heartbeat = AbortOnDrop(tokio::spawn(
            Arc::clone(self).heartbeat(id.clone(), Arc::clone(&lost)),
        ));
        let Start {
            summary: first,
            webhook_url,
            pending,
        } = checked(start);
        let outcome = match pending {
            Ok(items) => {
                self.make_items(&id, &lost, first.processed, first.total, items, progress)
                    .await
            }
            Err(e) => Err(format!("cannot read the job's items: {e}")),
        };
        let (status, reason) = match outcome {
            Ok(Made::All) => (JobStatus::Done, None),
            Ok(Made::ClaimLost) => {
                info!(job_id = %id, "another runner took the bulk job over");
                return self.summary(&id).await;
            }
            Ok(Made::Stopping) => {
                self.release(&id).await;
                return self.summary(&id).await;
            }
            Err(reason) => {
                error!(job_id = %id, reason = %reason, "bulk job failed");
                (JobStatus::Failed, Some(reason))
            }
        };
        let owned = id.clone();
        let owner = self.owner.clone();
        let ended = self
            .blocking(move |db| {
                db.finish_job(&owned, &owner, status, reason.as_deref(), now_ms())
                    .map_err(JobError::from)
            })
            .await;
        match ended {
            Ok(true) => {}
            Ok(false) => {
                info!(job_id = %id, "another runner took the bulk job over before its end");
                return self.summary(&id).await;
            }
            Err(e) => {
                error!(job_id = %id, error = %e, "cannot record the end of a bulk job; a runner claims it again when its claim runs out");
                return Err(e);
            }
        }
        let summary = self.summary(&id).await?;
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

    /// Renews this runner's claim on a job every heartbeat; sets `lost`
    /// and ends if the claim is not this runner's any more. A store that
    /// does not answer is tried again at the next beat: the claim lives
    /// ten of them.
    async fn heartbeat(self: Arc<Self>, id: String, lost: Arc<AtomicBool>) {
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: the claim was just taken.
        tick.tick().await;
        loop {
            tick.tick().await;
            let (owner, _, until_ms) = self.lease();
            let job = id.clone();
            let renewed = self
                .blocking(move |db| {
                    db.renew_job_claim(&job, &owner, until_ms)
                        .map_err(JobError::from)
                })
                .await;
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    warn!(job_id = %id, "lost the claim on a bulk job; another runner goes on with it");
                    lost.store(true, Ordering::Release);
                    return;
                }
                Err(e) => {
                    warn!(job_id = %id, error = %e, "cannot renew the claim on a bulk job; trying again")
                }
            }
        }
    }
}

/// This process's runner names: the host, the process id, and a random
/// part (a restarted process may get the same id).
fn runner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    // The job id generator's random letters; a failing random source only
    // makes the name less unique than the host and pid already make it.
    let nonce = new_job_id()
        .map(|id| id.trim_start_matches("job_")[..8].to_owned())
        .unwrap_or_default();
    format!("{host}/{}/{nonce}", std::process::id())
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
    /// job's counters in another. A runner that dies between the two leaves
    /// the chunk to the runner that claims the job next, which makes it
    /// again: request idempotency (a request's key is a digest of it)
    /// answers the links made the first time, so there is no duplicate and
    /// no lost item. Before each chunk, stops if the claim was lost or the
    /// runner is stopping; outcomes are recorded only while this runner
    /// holds the claim. An error is the reason the job failed.
    async fn make_items(
        self: &Arc<Self>,
        id: &str,
        lost: &AtomicBool,
        already: u64,
        total: u64,
        items: Vec<(i64, String)>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Made, String> {
        let mut made = already;
        for chunk in items.chunks(CHUNK) {
            if lost.load(Ordering::Acquire) {
                return Ok(Made::ClaimLost);
            }
            if self.is_stopping() {
                return Ok(Made::Stopping);
            }
            let outcomes = self.make_chunk(chunk).await;
            let mut batch = Vec::with_capacity(chunk.len());
            for ((seq, _), outcome) in chunk.iter().zip(&outcomes) {
                let json = serde_json::to_string(outcome)
                    .map_err(|e| format!("cannot encode the result of item {seq}: {e}"))?;
                batch.push((*seq, json, outcome.is_ok()));
                crate::metrics::job_item(outcome.is_ok());
            }
            let (owned, owner) = (id.to_owned(), self.owner.clone());
            let recorded = self
                .blocking(move |db| {
                    db.record_job_items(&owned, &owner, &batch)
                        .map_err(JobError::from)
                })
                .await
                .map_err(|e| format!("cannot record item results: {e}"))?;
            if !recorded {
                return Ok(Made::ClaimLost);
            }
            for _ in chunk {
                made += 1;
                progress(made, total);
            }
        }
        Ok(Made::All)
    }
}
