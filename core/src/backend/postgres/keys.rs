//! API keys on PostgreSQL: the `api_keys` table.

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use crate::keys::{ApiKey, Scope};
use crate::store::StoreError;

fn key_from_row(row: &Row) -> Result<ApiKey, StoreError> {
    let scopes: serde_json::Value = row.try_get(2)?;
    let scopes: Vec<Scope> = serde_json::from_value(scopes).map_err(|e| StoreError::Corrupt {
        table: "api_keys",
        message: format!("scopes: {e}"),
    })?;
    Ok(ApiKey {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        scopes,
        created_ms: row.try_get(3)?,
        revoked: row.try_get::<_, Option<i64>>(4)?.is_some(),
    })
}

pub(super) async fn insert_key(pool: &Pool, key: ApiKey, hash: [u8; 32]) -> Result<(), StoreError> {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let scopes = serde_json::json!(scopes);
    pool.get()
        .await?
        .execute(
            "INSERT INTO api_keys (id, name, secret_hash, scopes, created_ms, revoked_ms)
             VALUES ($1, $2, $3, $4, $5, NULL)",
            &[&key.id, &key.name, &&hash[..], &scopes, &key.created_ms],
        )
        .await?;
    Ok(())
}

pub(super) async fn keys(pool: &Pool) -> Result<Vec<ApiKey>, StoreError> {
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT id, name, scopes, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id",
            &[],
        )
        .await?;
    rows.iter().map(key_from_row).collect()
}

pub(super) async fn key_by_id(
    pool: &Pool,
    id: &str,
) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError> {
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT id, name, scopes, created_ms, revoked_ms, secret_hash FROM api_keys WHERE id = $1",
            &[&id],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some((key_from_row(&row)?, row.try_get(5)?))),
    }
}

pub(super) async fn revoke_key(pool: &Pool, id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let changed = pool
        .get()
        .await?
        .execute(
            "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2",
            &[&now_ms, &id],
        )
        .await?;
    Ok(changed > 0)
}
