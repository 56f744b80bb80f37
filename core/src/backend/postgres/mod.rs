//! The shared store: PostgreSQL, for several linkwright instances on one
//! database.
//!
//! The store traits are synchronous (its callers run on tokio's blocking
//! pool or on plain threads), the driver is asynchronous: [`PgStore`] owns a
//! small runtime of its own where the pool's connections live, and each
//! call runs its queries there while the calling thread waits for the
//! answer. That works from any thread, inside another runtime's blocking
//! pool or outside any runtime. The SQL is organised by concern, one module
//! each: links, availability, the link journal, clicks, stats, reports.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::Backend;
use crate::conversions::{Conversion, ConversionStore, Written};
use crate::jobs::{Claimed, JobItem, JobStart, JobStatus, JobStore, JobSummary, Lease};
use crate::keys::{ApiKey, KeyStore};
use crate::nodes::{Leased, NodeStore};
use crate::reports::{Report, ReportQuery, ReportStore};
use crate::store::{
    Availability, ClickBreakdown, ClickEvent, ClickStore, Link, LinkChange, LinkFilter, LinkStats,
    LinkStore, LinkUpdate, NewLink, OnLinkChange, StoreError, StoredClick,
};

mod availability;
mod clicks;
mod conversions;
mod copy;
mod jobs;
mod journal;
mod keys;
mod links;
mod listen;
mod nodes;
mod partitions;
mod reports;
mod schema;
mod stats;
#[cfg(test)]
mod tests;

/// Worker threads of the store's runtime: they only drive sockets.
const WORKER_THREADS: usize = 2;
/// Connections in the pool, at most.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection (from the pool, or a new one).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL-backed [`Store`](super::Store).
pub struct PgStore {
    /// `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// How to connect, for connections outside the pool (the link change
    /// listener's). Holds the password: never printed.
    config: tokio_postgres::Config,
    /// The database, for people: the URL without its password.
    location: String,
    /// The raw click tables' monthly partitions.
    partitions: std::sync::Arc<partitions::Partitions>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the pool's config: it holds the password.
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("connections", &status.size)
            .field("idle", &status.available)
            .finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Without waiting: a runtime dropped the ordinary way blocks, which
        // panics when the last owner of the store is an async task.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`
    /// or libpq's `key=value` form) and applies the migrations it lacks.
    /// Fails with [`StoreError::SchemaTooNew`] if a newer linkwright
    /// migrated it.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with(url, 0)
    }

    /// [`PgStore::connect`], keeping raw clicks for `click_retention_months`
    /// months, the current one included (0: all); older months' partitions
    /// are dropped.
    pub fn connect_with(url: &str, click_retention_months: u32) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("linkwright");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("linkwright-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Task(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Task(format!("cannot build the PostgreSQL pool: {e}")))?;
        let location = describe_config(&config);
        let store = PgStore {
            runtime: Some(runtime),
            pool,
            config,
            location,
            partitions: std::sync::Arc::new(partitions::Partitions::new(click_retention_months)),
        };
        store.run(|pool| async move { schema::migrate(&pool).await })?;
        store.ensure_partitions()?;
        Ok(store)
    }

    /// The number of migrations applied; after [`PgStore::connect`], all
    /// that this build knows.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|pool| async move { schema::version(&pool).await })
    }

    /// Makes this month's and the next month's click partitions (and drops
    /// those past the retention) if that was not done this month.
    fn ensure_partitions(&self) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        if self.partitions.ready_for(now) {
            return Ok(());
        }
        let partitions = std::sync::Arc::clone(&self.partitions);
        self.run(|pool| async move { partitions.maintain(&pool, now).await })
    }

    /// [`PgStore::ensure_partitions`] before a click batch: a failure is
    /// logged, not the batch's (a click of a month without its partition
    /// lands in the default one; the next batch tries again).
    fn ensure_partitions_for_clicks(&self) {
        if let Err(e) = self.ensure_partitions() {
            tracing::warn!(error = %e, "cannot make or drop click partitions; will retry");
        }
    }

    /// Runs `task` on the store's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, task: F) -> Result<T, StoreError>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Task("the PostgreSQL store is closed".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let future = task(self.pool.clone());
        runtime.spawn(async move {
            // The caller waits on `rx`; it cannot have gone.
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Task("a PostgreSQL store task panicked".into()))?
    }

    /// Runs SQL as it is, for tests that change the database behind the
    /// store's back.
    #[cfg(test)]
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        self.run(|pool| async move {
            pool.get().await?.batch_execute(&sql).await?;
            Ok(())
        })
    }

    /// The first column of a query's rows, as integers, for tests that
    /// look behind the store's back.
    #[cfg(test)]
    pub(crate) fn query_integers(&self, sql: &str) -> Result<Vec<i64>, StoreError> {
        let sql = sql.to_owned();
        self.run(|pool| async move {
            let rows = pool.get().await?.query(sql.as_str(), &[]).await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?)
        })
    }
}

impl LinkStore for PgStore {
    fn create_link(&self, link: NewLink) -> Result<Link, StoreError> {
        self.run(|pool| async move { links::create_link(&pool, link).await })
    }

    fn create_links(&self, new: Vec<NewLink>) -> Result<Vec<Result<Link, StoreError>>, StoreError> {
        self.run(|pool| async move { links::create_links(&pool, new).await })
    }

    fn link_by_code(&self, code: &str) -> Result<Option<Link>, StoreError> {
        let code = code.to_owned();
        self.run(|pool| async move { links::link_by(&pool, links::By::Code, &code).await })
    }

    fn link_by_source_key(&self, key: &str) -> Result<Option<Link>, StoreError> {
        let key = key.to_owned();
        self.run(|pool| async move { links::link_by(&pool, links::By::SourceKey, &key).await })
    }

    fn list_links(&self, filter: &LinkFilter) -> Result<Vec<Link>, StoreError> {
        let filter = filter.clone();
        self.run(|pool| async move { links::list_links(&pool, &filter).await })
    }

    fn link_by_request_key(&self, key: &str) -> Result<Option<Link>, StoreError> {
        let key = key.to_owned();
        self.run(|pool| async move { links::link_by(&pool, links::By::RequestKey, &key).await })
    }

    fn set_disabled(&self, code: &str, disabled: bool) -> Result<bool, StoreError> {
        let code = code.to_owned();
        self.run(|pool| async move { links::set_disabled(&pool, &code, disabled).await })
    }

    fn update_link(&self, code: &str, update: &LinkUpdate) -> Result<Option<Link>, StoreError> {
        let code = code.to_owned();
        let update = update.clone();
        self.run(|pool| async move { links::update_link(&pool, &code, &update).await })
    }

    fn delete_link(&self, code: &str) -> Result<bool, StoreError> {
        let code = code.to_owned();
        self.run(|pool| async move { links::delete_link(&pool, &code).await })
    }

    fn link_stats(&self, link_id: i64) -> Result<LinkStats, StoreError> {
        self.run(|pool| async move { stats::link_stats(&pool, link_id).await })
    }

    fn availability(&self, asin: &str) -> Result<Vec<Availability>, StoreError> {
        let asin = asin.to_owned();
        self.run(|pool| async move { availability::availability(&pool, &asin).await })
    }

    fn save_availability(&self, answers: &[Availability]) -> Result<(), StoreError> {
        let answers = answers.to_vec();
        self.run(|pool| async move { availability::save_availability(&pool, &answers).await })
    }

    fn localized_links(
        &self,
        checked_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<Link>, StoreError> {
        self.run(
            |pool| async move { links::localized_links(&pool, checked_before_ms, limit).await },
        )
    }

    fn click_breakdown(
        &self,
        link_id: Option<i64>,
        since_ms: i64,
        top: usize,
    ) -> Result<ClickBreakdown, StoreError> {
        self.run(|pool| async move { stats::click_breakdown(&pool, link_id, since_ms, top).await })
    }

    fn last_link_change(&self) -> Result<i64, StoreError> {
        self.run(|pool| async move { journal::last_link_change(&pool).await })
    }

    fn link_changes(&self, after: i64, limit: usize) -> Result<Vec<LinkChange>, StoreError> {
        self.run(|pool| async move { journal::link_changes(&pool, after, limit).await })
    }

    fn prune_link_changes(&self, keep: usize, limit: usize) -> Result<usize, StoreError> {
        self.run(|pool| async move { journal::prune_link_changes(&pool, keep, limit).await })
    }

    fn push_link_changes(&self, on_change: OnLinkChange) -> bool {
        let Some(runtime) = &self.runtime else {
            return false;
        };
        // Ends with the store's runtime.
        runtime.spawn(listen::listen(self.config.clone(), on_change));
        true
    }
}

impl ClickStore for PgStore {
    fn insert_clicks(&self, events: &[ClickEvent]) -> Result<(), StoreError> {
        self.ensure_partitions_for_clicks();
        let batch = clicks::Batch::new(events);
        self.run(|pool| async move { clicks::insert_clicks(&pool, batch).await })
    }

    fn insert_new_clicks(&self, events: &[ClickEvent]) -> Result<usize, StoreError> {
        self.ensure_partitions_for_clicks();
        let events = events.to_vec();
        self.run(|pool| async move { clicks::insert_new_clicks(&pool, events).await })
    }

    fn clicks(&self, limit: usize) -> Result<Vec<StoredClick>, StoreError> {
        self.run(|pool| async move { clicks::clicks(&pool, limit).await })
    }

    fn load_click_state(&self) -> Result<u64, StoreError> {
        self.run(|pool| async move { clicks::load_click_state(&pool).await })
    }

    fn save_click_state(&self, state: u64) -> Result<(), StoreError> {
        self.run(|pool| async move { clicks::save_click_state(&pool, state).await })
    }
}

impl Backend for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        PgStore::schema_version(self)
    }
}

impl KeyStore for PgStore {
    fn insert_key(&self, key: &ApiKey, secret_hash: &[u8; 32]) -> Result<(), StoreError> {
        let (key, hash) = (key.clone(), *secret_hash);
        self.run(|pool| async move { keys::insert_key(&pool, key, hash).await })
    }

    fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.run(|pool| async move { keys::keys(&pool).await })
    }

    fn key_by_id(&self, id: &str) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError> {
        let id = id.to_owned();
        self.run(|pool| async move { keys::key_by_id(&pool, &id).await })
    }

    fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(|pool| async move { keys::revoke_key(&pool, &id, now_ms).await })
    }
}

impl JobStore for PgStore {
    fn insert_job(
        &self,
        job: &JobSummary,
        webhook_url: Option<&str>,
        items: &[String],
    ) -> Result<(), StoreError> {
        let (job, webhook_url, items) =
            (job.clone(), webhook_url.map(str::to_owned), items.to_vec());
        self.run(|pool| async move { jobs::insert_job(&pool, job, webhook_url, items).await })
    }

    fn job_summary(&self, id: &str) -> Result<Option<JobSummary>, StoreError> {
        let id = id.to_owned();
        self.run(|pool| async move { jobs::job_summary(&pool, &id).await })
    }

    fn start_job(&self, id: &str, lease: Lease<'_>) -> Result<Option<Claimed>, StoreError> {
        let (id, owner) = (id.to_owned(), lease.owner.to_owned());
        let (now_ms, until_ms) = (lease.now_ms, lease.until_ms);
        self.run(|pool| async move { jobs::start_job(&pool, &id, &owner, now_ms, until_ms).await })
    }

    fn claim_job(&self, lease: Lease<'_>) -> Result<Option<JobStart>, StoreError> {
        let owner = lease.owner.to_owned();
        let (now_ms, until_ms) = (lease.now_ms, lease.until_ms);
        self.run(|pool| async move { jobs::claim_job(&pool, &owner, now_ms, until_ms).await })
    }

    fn renew_job_claim(&self, id: &str, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.run(|pool| async move { jobs::renew_job_claim(&pool, &id, &owner, until_ms).await })
    }

    fn release_job_claim(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.run(|pool| async move { jobs::release_job_claim(&pool, &id, &owner).await })
    }

    fn record_job_items(
        &self,
        id: &str,
        owner: &str,
        outcomes: &[(i64, String, bool)],
    ) -> Result<bool, StoreError> {
        let (id, owner, outcomes) = (id.to_owned(), owner.to_owned(), outcomes.to_vec());
        self.run(|pool| async move { jobs::record_job_items(&pool, &id, &owner, outcomes).await })
    }

    fn finish_job(
        &self,
        id: &str,
        owner: &str,
        status: JobStatus,
        failure: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (id, owner, failure) = (id.to_owned(), owner.to_owned(), failure.map(str::to_owned));
        self.run(|pool| async move {
            jobs::finish_job(&pool, &id, &owner, status, failure, now_ms).await
        })
    }

    fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        self.run(|pool| async move { jobs::unfinished_jobs(&pool).await })
    }

    fn job_items(&self, id: &str) -> Result<Option<(JobSummary, Vec<JobItem>)>, StoreError> {
        let id = id.to_owned();
        self.run(|pool| async move { jobs::job_items(&pool, &id).await })
    }
}

impl ConversionStore for PgStore {
    fn upsert_conversions(
        &self,
        rows: &[(u64, Conversion)],
        now_ms: i64,
    ) -> Result<Written, StoreError> {
        let rows = rows.to_vec();
        self.run(|pool| async move { conversions::upsert_conversions(&pool, rows, now_ms).await })
    }
}

impl NodeStore for PgStore {
    fn lease_node(
        &self,
        owner: &str,
        wanted: Option<u16>,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Leased, StoreError> {
        let owner = owner.to_owned();
        self.run(
            |pool| async move { nodes::lease_node(&pool, owner, wanted, now_ms, until_ms).await },
        )
    }

    fn renew_node(&self, node: u16, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        let owner = owner.to_owned();
        self.run(|pool| async move { nodes::renew_node(&pool, node, owner, until_ms).await })
    }

    fn release_node(&self, node: u16, owner: &str) -> Result<bool, StoreError> {
        let owner = owner.to_owned();
        self.run(|pool| async move { nodes::release_node(&pool, node, owner).await })
    }
}

impl ReportStore for PgStore {
    fn report(&self, query: &ReportQuery) -> Result<Report, StoreError> {
        let query = *query;
        self.run(|pool| async move { reports::report(&pool, query).await })
    }
}

/// A connection config as a URL without the password.
fn describe_config(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// Limits and counts as PostgreSQL's `BIGINT`.
fn bigint(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
