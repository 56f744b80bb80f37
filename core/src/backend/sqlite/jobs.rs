//! [`JobStore`] on SQLite: the `jobs` and `job_items` tables.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::jobs::{JobItem, JobStart, JobStatus, JobStore, JobSummary};
use crate::store::StoreError;

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

    fn start_job(&self, id: &str) -> Result<Option<JobStart>, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                "UPDATE jobs SET status = 'running' WHERE id = ?1 AND status = 'queued'",
                [id],
            )?;
            let Some(summary) = summary_in(&tx, id)? else {
                return Ok(None);
            };
            let webhook_url: Option<String> =
                tx.query_row("SELECT webhook_url FROM jobs WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            let pending = if summary.status.is_finished() {
                Vec::new()
            } else {
                let mut stmt = tx.prepare_cached(
                    "SELECT seq, request FROM job_items
                     WHERE job_id = ?1 AND result IS NULL ORDER BY seq",
                )?;
                let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            Ok(Some(JobStart {
                summary,
                webhook_url,
                pending,
            }))
        })
    }

    fn record_job_items(
        &self,
        id: &str,
        outcomes: &[(i64, String, bool)],
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            let tx = conn.unchecked_transaction()?;
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
            Ok(())
        })
    }

    fn finish_job(
        &self,
        id: &str,
        status: JobStatus,
        failure: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<JobSummary>, StoreError> {
        self.with_conn(|conn| {
            conn.execute(
                "UPDATE jobs SET status = ?2, finished_ms = ?3, failure = ?4 WHERE id = ?1",
                params![id, status.as_str(), now_ms, failure],
            )?;
            summary_in(conn, id)
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
