//! [`JobStore`] on SQLite: the `jobs` and `job_items` tables.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::SqliteStore;
use crate::jobs::{Claimed, JobItem, JobStart, JobStatus, JobStore, JobSummary, Lease};
use crate::store::StoreError;

/// Takes a job's claim for `?1` until `?3` (and marks it running); the
/// `WHERE` clause that follows names the job.
const CLAIM: &str = "UPDATE jobs SET claimed_by = ?1, claimed_until_ms = ?3,
        status = CASE status WHEN 'queued' THEN 'running' ELSE status END";

/// A job that has not ended and whose claim, if any, ran out before `?2`.
const CLAIMABLE: &str = "status IN ('queued', 'running')
        AND (claimed_until_ms IS NULL OR claimed_until_ms < ?2)";

impl JobStore for SqliteStore {
    fn insert_job(
        &self,
        job: &JobSummary,
        webhook_url: Option<&str>,
        items: &[String],
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO jobs (id, status, total, processed, ok, errors, webhook_url, created_ms)
                 VALUES (?1, ?2, ?3, 0, 0, 0, ?4, ?5)",
                params![
                    job.job_id,
                    job.status.as_str(),
                    job.total as i64,
                    webhook_url,
                    job.created_ms
                ],
            )?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO job_items (job_id, seq, request, result) VALUES (?1, ?2, ?3, NULL)",
                )?;
                for (seq, item) in items.iter().enumerate() {
                    insert.execute(params![job.job_id, seq as i64, item])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn job_summary(&self, id: &str) -> Result<Option<JobSummary>, StoreError> {
        self.with_conn(|conn| summary_in(conn, id))
    }

    fn start_job(&self, id: &str, lease: Lease<'_>) -> Result<Option<Claimed>, StoreError> {
        self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let taken = tx.execute(
                &format!("{CLAIM} WHERE id = ?4 AND {CLAIMABLE}"),
                params![lease.owner, lease.now_ms, lease.until_ms, id],
            )? == 1;
            let found = if taken {
                start_in(&tx, id)?.map(Claimed::Started)
            } else {
                summary_in(&tx, id)?.map(Claimed::Elsewhere)
            };
            tx.commit()?;
            Ok(found)
        })
    }

    fn claim_job(&self, lease: Lease<'_>) -> Result<Option<JobStart>, StoreError> {
        self.with_conn(|conn| {
            // Immediate: the write lock first, so that two processes on the
            // file claim one after the other.
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let id: Option<String> = tx
                .query_row(
                    &format!(
                        "{CLAIM} WHERE id = (SELECT id FROM jobs WHERE {CLAIMABLE}
                                             ORDER BY created_ms, id LIMIT 1)
                         RETURNING id"
                    ),
                    params![lease.owner, lease.now_ms, lease.until_ms],
                    |r| r.get(0),
                )
                .optional()?;
            let start = match id {
                Some(id) => start_in(&tx, &id)?,
                None => None,
            };
            tx.commit()?;
            Ok(start)
        })
    }

    fn renew_job_claim(&self, id: &str, owner: &str, until_ms: i64) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            Ok(conn.execute(
                "UPDATE jobs SET claimed_until_ms = ?3
                 WHERE id = ?1 AND claimed_by = ?2 AND status IN ('queued', 'running')",
                params![id, owner, until_ms],
            )? == 1)
        })
    }

    fn release_job_claim(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            Ok(conn.execute(
                "UPDATE jobs SET claimed_by = NULL, claimed_until_ms = NULL
                 WHERE id = ?1 AND claimed_by = ?2",
                params![id, owner],
            )? == 1)
        })
    }

    fn record_job_items(
        &self,
        id: &str,
        owner: &str,
        outcomes: &[(i64, String, bool)],
    ) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let holds: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND claimed_by = ?2)",
                params![id, owner],
                |r| r.get(0),
            )?;
            if !holds {
                return Ok(false);
            }
            let (mut ok, mut errors) = (0i64, 0i64);
            {
                let mut update = tx.prepare_cached(
                    "UPDATE job_items SET result = ?3
                     WHERE job_id = ?1 AND seq = ?2 AND result IS NULL",
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
            Ok(true)
        })
    }

    fn finish_job(
        &self,
        id: &str,
        owner: &str,
        status: JobStatus,
        failure: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            Ok(conn.execute(
                "UPDATE jobs SET status = ?3, finished_ms = ?4, failure = ?5,
                        claimed_by = NULL, claimed_until_ms = NULL
                 WHERE id = ?1 AND claimed_by = ?2",
                params![id, owner, status.as_str(), now_ms, failure],
            )? == 1)
        })
    }

    fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_ms, id",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
    }

    fn job_items(&self, id: &str) -> Result<Option<(JobSummary, Vec<JobItem>)>, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.unchecked_transaction()?;
            let Some(summary) = summary_in(&tx, id)? else {
                return Ok(None);
            };
            let mut stmt =
                tx.prepare("SELECT request, result FROM job_items WHERE job_id = ?1 ORDER BY seq")?;
            let rows = stmt
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            drop(stmt);
            tx.commit()?;
            Ok(Some((summary, rows)))
        })
    }
}

/// What a runner needs to go on with a job it claimed: its summary,
/// webhook, and the items without a result.
fn start_in(conn: &Connection, id: &str) -> Result<Option<JobStart>, StoreError> {
    let Some(summary) = summary_in(conn, id)? else {
        return Ok(None);
    };
    let webhook_url: Option<String> =
        conn.query_row("SELECT webhook_url FROM jobs WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, request FROM job_items WHERE job_id = ?1 AND result IS NULL ORDER BY seq",
    )?;
    let pending = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(JobStart {
        summary,
        webhook_url,
        pending,
    }))
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
