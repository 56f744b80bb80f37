//! A job's rows in the store: the job, its items and their outcomes, and
//! its counters (blocking; call from `spawn_blocking`).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{JobError, JobStatus, JobSummary, MAX_ITEMS, SubmitError, validate_webhook_url};
use crate::clock::now_ms;
use crate::store::{SqliteStore, StoreError};

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
    db: &SqliteStore,
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
    let id = new_job_id()?;
    let created_ms = now_ms();
    let total = items.len() as u64;
    db.with_conn(|conn| -> Result<(), StoreError> {
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO jobs (id, status, total, processed, ok, errors, webhook_url, created_ms)
             VALUES (?1, 'queued', ?2, 0, 0, 0, ?3, ?4)",
            params![id, total as i64, webhook_url, created_ms],
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO job_items (job_id, seq, request, result) VALUES (?1, ?2, ?3, NULL)",
            )?;
            for (seq, item) in items.iter().enumerate() {
                insert.execute(params![id, seq as i64, item.to_string()])?;
            }
        }
        tx.commit()?;
        Ok(())
    })?;
    Ok(JobSummary {
        job_id: id,
        status: JobStatus::Queued,
        total,
        processed: 0,
        ok: 0,
        errors: 0,
        created_ms,
        finished_ms: None,
        failure: None,
    })
}

pub(super) fn summary_in(conn: &Connection, id: &str) -> Result<Option<JobSummary>, StoreError> {
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

/// A job's summary, or `None` if there is no such job.
pub fn summary(db: &SqliteStore, id: &str) -> Result<Option<JobSummary>, StoreError> {
    db.with_conn(|conn| summary_in(conn, id))
}

/// What a runner needs to go on with a job.
pub(super) struct Start {
    pub(super) summary: JobSummary,
    pub(super) webhook_url: Option<String>,
    /// `(seq, request JSON)` of the items without a result, in order.
    pub(super) pending: Result<Vec<(i64, String)>, StoreError>,
}

/// Marks a queued job running and reads its items without a result. A job
/// that has ended is returned as it is, with nothing pending.
pub(super) fn start(db: &SqliteStore, id: &str) -> Result<Start, JobError> {
    db.with_conn(|conn| {
        conn.execute(
            "UPDATE jobs SET status = 'running' WHERE id = ?1 AND status = 'queued'",
            [id],
        )
        .map_err(StoreError::from)?;
        let summary = summary_in(conn, id)?.ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        let webhook_url: Option<String> = conn
            .query_row("SELECT webhook_url FROM jobs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(StoreError::from)?;
        let pending = if summary.status.is_finished() {
            Ok(Vec::new())
        } else {
            pending_items(conn, id).and_then(|items| {
                // Every item is either recorded (counted in `processed`) or
                // pending; anything else means items went missing.
                let stored = summary.processed + items.len() as u64;
                if stored == summary.total {
                    Ok(items)
                } else {
                    Err(StoreError::Corrupt {
                        table: "job_items",
                        message: format!(
                            "the job has {} item(s) processed and {} pending, but {} were submitted",
                            summary.processed,
                            items.len(),
                            summary.total
                        ),
                    })
                }
            })
        };
        Ok(Start {
            summary,
            webhook_url,
            pending,
        })
    })
}

pub(super) fn pending_items(conn: &Connection, id: &str) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, request FROM job_items WHERE job_id = ?1 AND result IS NULL ORDER BY seq",
    )?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Records outcomes and bumps the job's counters, in one transaction. An item
/// that already has a result (another runner got there first) is neither
/// overwritten nor counted twice.
pub(super) fn record(
    db: &SqliteStore,
    id: &str,
    outcomes: &[(i64, String, bool)],
) -> Result<(), StoreError> {
    db.with_conn(|conn| {
        let tx = conn.unchecked_transaction()?;
        let (mut ok, mut errors) = (0i64, 0i64);
        {
            let mut update = tx.prepare_cached(
                "UPDATE job_items SET result = ?3 WHERE job_id = ?1 AND seq = ?2 AND result IS NULL",
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

/// Ends a job (`done`, or `failed` with a reason) and returns its summary.
pub(super) fn finish(
    db: &SqliteStore,
    id: &str,
    status: JobStatus,
    failure: Option<&str>,
) -> Result<JobSummary, JobError> {
    db.with_conn(|conn| {
        conn.execute(
            "UPDATE jobs SET status = ?2, finished_ms = ?3, failure = ?4 WHERE id = ?1",
            params![id, status.as_str(), now_ms(), failure],
        )
        .map_err(StoreError::from)?;
        summary_in(conn, id)?.ok_or_else(|| JobError::NotFound(id.to_owned()))
    })
}

/// Ids of the jobs that have not ended, oldest first.
pub fn unfinished(db: &SqliteStore) -> Result<Vec<String>, StoreError> {
    db.with_conn(|conn| {
        let mut stmt = conn.prepare(
            "SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_ms, id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    })
}
