//! Bulk jobs on PostgreSQL: the `jobs` and `job_items` tables.

use deadpool_postgres::{GenericClient, Pool};

use crate::jobs::{Claimed, JobItem, JobStart, JobStatus, JobSummary};
use crate::store::StoreError;

async fn summary_in(db: &impl GenericClient, id: &str) -> Result<Option<JobSummary>, StoreError> {
    let Some(r) = db
        .query_opt(
            "SELECT status, total, processed, ok, errors, created_ms, finished_ms, failure
             FROM jobs WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let status: String = r.try_get(0)?;
    let status = JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        table: "jobs",
        message: format!("job `{id}` has unknown status `{status}`"),
    })?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Some(JobSummary {
        job_id: id.to_owned(),
        status,
        total: count(r.try_get(1)?),
        processed: count(r.try_get(2)?),
        ok: count(r.try_get(3)?),
        errors: count(r.try_get(4)?),
        created_ms: r.try_get(5)?,
        finished_ms: r.try_get(6)?,
        failure: r.try_get(7)?,
    }))
}

pub(super) async fn insert_job(
    pool: &Pool,
    job: JobSummary,
    webhook_url: Option<String>,
    items: Vec<String>,
) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO jobs (id, status, total, processed, ok, errors, webhook_url, created_ms)
         VALUES ($1, $2, $3, 0, 0, 0, $4, $5)",
        &[
            &job.job_id,
            &job.status.as_str(),
            &(job.total as i64),
            &webhook_url,
            &job.created_ms,
        ],
    )
    .await?;
    let seqs: Vec<i64> = (0..items.len() as i64).collect();
    tx.execute(
        "INSERT INTO job_items (job_id, seq, request, result)
         SELECT $1, s, r, NULL FROM unnest($2::BIGINT[], $3::TEXT[]) AS t(s, r)",
        &[&job.job_id, &seqs, &items],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn job_summary(pool: &Pool, id: &str) -> Result<Option<JobSummary>, StoreError> {
    let client = pool.get().await?;
    summary_in(&client, id).await
}

/// Takes a job's claim for `$1` until `$3` (and marks it running); the
/// `WHERE` clause that follows names the job.
const CLAIM: &str = "UPDATE jobs SET claimed_by = $1, claimed_until_ms = $3,
        status = CASE status WHEN 'queued' THEN 'running' ELSE status END";

/// A job that has not ended and whose claim, if any, ran out before `$2`.
const CLAIMABLE: &str = "status IN ('queued', 'running')
        AND (claimed_until_ms IS NULL OR claimed_until_ms < $2)";

/// What a runner needs to go on with a job it claimed: its summary,
/// webhook, and the items without a result.
async fn start_in(db: &impl GenericClient, id: &str) -> Result<Option<JobStart>, StoreError> {
    let Some(summary) = summary_in(db, id).await? else {
        return Ok(None);
    };
    let webhook_url: Option<String> = db
        .query_one("SELECT webhook_url FROM jobs WHERE id = $1", &[&id])
        .await?
        .try_get(0)?;
    let pending = db
        .query(
            "SELECT seq, request FROM job_items WHERE job_id = $1 AND result IS NULL ORDER BY seq",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(JobStart {
        summary,
        webhook_url,
        pending,
    }))
}

pub(super) async fn start_job(
    pool: &Pool,
    id: &str,
    owner: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<Option<Claimed>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The row lock waits for a claimer holding it, then the condition is
    // checked again on the row it committed.
    let taken = tx
        .execute(
            &format!("{CLAIM} WHERE id = $4 AND {CLAIMABLE}"),
            &[&owner, &now_ms, &until_ms, &id],
        )
        .await?
        == 1;
    let found = if taken {
        start_in(&tx, id).await?.map(Claimed::Started)
    } else {
        summary_in(&tx, id).await?.map(Claimed::Elsewhere)
    };
    tx.commit().await?;
    Ok(found)
}

pub(super) async fn claim_job(
    pool: &Pool,
    owner: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<Option<JobStart>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // A job another claimer has locked is skipped, not waited for; one it
    // claimed and committed meanwhile fails the condition when it is
    // checked again on the locked row.
    let id: Option<String> = tx
        .query_opt(
            &format!(
                "{CLAIM} WHERE id = (SELECT id FROM jobs WHERE {CLAIMABLE}
                                     ORDER BY created_ms, id LIMIT 1
                                     FOR UPDATE SKIP LOCKED)
                 RETURNING id"
            ),
            &[&owner, &now_ms, &until_ms],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let start = match id {
        Some(id) => start_in(&tx, &id).await?,
        None => None,
    };
    tx.commit().await?;
    Ok(start)
}

pub(super) async fn renew_job_claim(
    pool: &Pool,
    id: &str,
    owner: &str,
    until_ms: i64,
) -> Result<bool, StoreError> {
    Ok(pool
        .get()
        .await?
        .execute(
            "UPDATE jobs SET claimed_until_ms = $3
             WHERE id = $1 AND claimed_by = $2 AND status IN ('queued', 'running')",
            &[&id, &owner, &until_ms],
        )
        .await?
        == 1)
}

pub(super) async fn release_job_claim(
    pool: &Pool,
    id: &str,
    owner: &str,
) -> Result<bool, StoreError> {
    Ok(pool
        .get()
        .await?
        .execute(
            "UPDATE jobs SET claimed_by = NULL, claimed_until_ms = NULL
             WHERE id = $1 AND claimed_by = $2",
            &[&id, &owner],
        )
        .await?
        == 1)
}

pub(super) async fn record_job_items(
    pool: &Pool,
    id: &str,
    owner: &str,
    outcomes: Vec<(i64, String, bool)>,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The job's row stays locked to the commit: its claim cannot change
    // hands while these outcomes are written.
    let holds = tx
        .query_opt(
            "SELECT 1 FROM jobs WHERE id = $1 AND claimed_by = $2 FOR UPDATE",
            &[&id, &owner],
        )
        .await?
        .is_some();
    if !holds {
        return Ok(false);
    }
    let (mut ok, mut errors) = (0i64, 0i64);
    let update = tx
        .prepare(
            "UPDATE job_items SET result = $3 WHERE job_id = $1 AND seq = $2 AND result IS NULL",
        )
        .await?;
    for (seq, result, is_ok) in &outcomes {
        if tx.execute(&update, &[&id, seq, result]).await? == 1 {
            if *is_ok {
                ok += 1;
            } else {
                errors += 1;
            }
        }
    }
    tx.execute(
        "UPDATE jobs SET processed = processed + $2, ok = ok + $3, errors = errors + $4,
                status = CASE status WHEN 'queued' THEN 'running' ELSE status END
         WHERE id = $1",
        &[&id, &(ok + errors), &ok, &errors],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn finish_job(
    pool: &Pool,
    id: &str,
    owner: &str,
    status: JobStatus,
    failure: Option<String>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(pool
        .get()
        .await?
        .execute(
            "UPDATE jobs SET status = $3, finished_ms = $4, failure = $5,
                    claimed_by = NULL, claimed_until_ms = NULL
             WHERE id = $1 AND claimed_by = $2",
            &[&id, &owner, &status.as_str(), &now_ms, &failure],
        )
        .await?
        == 1)
}

pub(super) async fn unfinished_jobs(pool: &Pool) -> Result<Vec<String>, StoreError> {
    pool.get()
        .await?
        .query(
            "SELECT id FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_ms, id",
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}

pub(super) async fn job_items(
    pool: &Pool,
    id: &str,
) -> Result<Option<(JobSummary, Vec<JobItem>)>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.build_transaction().read_only(true).start().await?;
    let Some(summary) = summary_in(&tx, id).await? else {
        return Ok(None);
    };
    let items = tx
        .query(
            "SELECT request, result FROM job_items WHERE job_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    tx.commit().await?;
    Ok(Some((summary, items)))
}
