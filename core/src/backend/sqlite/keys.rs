//! [`KeyStore`] on SQLite: the `api_keys` table.

use rusqlite::OptionalExtension;

use super::SqliteStore;
use crate::keys::{ApiKey, KeyStore, Scope};
use crate::store::StoreError;

impl KeyStore for SqliteStore {
    fn insert_key(&self, key: &ApiKey, secret_hash: &[u8; 32]) -> Result<(), StoreError> {
        // 62^12 ≈ 2^71 ids: a collision is astronomically unlikely and would
        // surface as a primary-key constraint error, not an overwrite.
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO api_keys (id, name, secret_hash, scopes, created_ms, revoked_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                rusqlite::params![
                    key.id,
                    key.name,
                    &secret_hash[..],
                    scopes_to_json(&key.scopes),
                    key.created_ms
                ],
            )
        })?;
        Ok(())
    }

    fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, scopes, created_ms, revoked_ms
                 FROM api_keys ORDER BY created_ms, id",
            )?;
            let rows = stmt.query_map([], key_from_row)?;
            rows.collect::<Result<Vec<_>, _>>()
        })?)
    }

    fn key_by_id(&self, id: &str) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError> {
        Ok(self.with_conn(|conn| {
            conn.query_row(
                "SELECT id, name, scopes, created_ms, revoked_ms, secret_hash
                 FROM api_keys WHERE id = ?1",
                [id],
                |row| Ok((key_from_row(row)?, row.get::<_, Vec<u8>>(5)?)),
            )
            .optional()
        })?)
    }

    fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let changed = self.with_conn(|conn| {
            conn.execute(
                "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, ?1) WHERE id = ?2",
                rusqlite::params![now_ms, id],
            )
        })?;
        Ok(changed > 0)
    }
}

/// Scopes as stored: a JSON list of their names.
fn scopes_to_json(scopes: &[Scope]) -> String {
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    // A list of plain strings always serialises.
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned())
}

/// Reads columns 0–4 (`id, name, scopes, created_ms, revoked_ms`).
fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let scopes_json: String = row.get(2)?;
    let scopes: Vec<Scope> = serde_json::from_str(&scopes_json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        scopes,
        created_ms: row.get(3)?,
        revoked: row.get::<_, Option<i64>>(4)?.is_some(),
    })
}
