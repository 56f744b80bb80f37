//! `linkwright store copy`: an embedded (SQLite) deployment's data moved
//! into PostgreSQL, table by table, in one PostgreSQL transaction (a copy
//! that fails leaves the target as it was), then each table's rows counted
//! and digested on both sides and compared.
//!
//! The digest of a table is order-free: the sum of a SHA-256 of each row's
//! canonical form (integers and booleans as numbers, JSON with sorted keys,
//! bytes as hex), so the two databases need not sort rows alike.

use sha2::{Digest, Sha256};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use crate::store::StoreError;

/// A column's type in PostgreSQL, which says how the SQLite value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `BIGINT`.
    Int8,
    /// `SMALLINT`.
    Int2,
    /// `BOOLEAN` (SQLite: 0 or 1).
    Bool,
    /// `TEXT`.
    Text,
    /// `JSONB` (SQLite: JSON text).
    Json,
    /// `BYTEA`.
    Bytes,
}

/// One value, as both databases give it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// Any integer column.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
    /// JSON.
    Json(serde_json::Value),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// A table and the columns copied, in the order they are written (parents
/// before the tables that refer to them).
pub(crate) struct Table {
    /// Its name in both databases.
    pub(crate) name: &'static str,
    /// Its columns and their PostgreSQL types.
    pub(crate) columns: &'static [(&'static str, Kind)],
}

use Kind::*;

/// What is copied. Not the journal of link changes (the target's triggers
/// write one entry per link copied) nor the schema version.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "links",
        columns: &[
            ("id", Int8),
            ("code", Text),
            ("provider", Text),
            ("input", Text),
            ("destination", Text),
            ("template_prefix", Text),
            ("template_suffix", Text),
            ("subid_max_len", Int8),
            ("subid_encoding", Text),
            ("name", Text),
            ("marketplace", Text),
            ("campaign", Text),
            ("tags", Json),
            ("params", Json),
            ("source_key", Text),
            ("created_ms", Int8),
            ("disabled", Bool),
            ("request_key", Text),
            ("deleted_ms", Int8),
            ("targeting", Json),
        ],
    },
    Table {
        name: "clicks_by_id",
        columns: &[
            ("click_id", Text),
            ("link_id", Int8),
            ("at_ms", Int8),
            ("bot", Bool),
            ("referrer_host", Text),
            ("ua", Int2),
            ("country", Text),
            ("target", Int2),
        ],
    },
    Table {
        name: "clicks_without_id",
        columns: &[
            ("link_id", Int8),
            ("at_ms", Int8),
            ("bot", Bool),
            ("referrer_host", Text),
            ("ua", Int2),
            ("country", Text),
            ("target", Int2),
        ],
    },
    Table {
        name: "click_rollup",
        columns: &[
            ("link_id", Int8),
            ("day", Int8),
            ("clicks", Int8),
            ("bot_hits", Int8),
        ],
    },
    Table {
        name: "conversions",
        columns: &[
            ("id", Int8),
            ("provider", Text),
            ("kind", Text),
            ("row_key", Text),
            ("sub_id", Text),
            ("click_id", Text),
            ("link_id", Int8),
            ("tracking_id", Text),
            ("event_ms", Int8),
            ("product_id", Text),
            ("product_name", Text),
            ("quantity", Int8),
            ("returns", Int8),
            ("price_micros", Int8),
            ("revenue_micros", Int8),
            ("commission_micros", Int8),
            ("status", Text),
            ("currency", Text),
            ("imported_ms", Int8),
            ("updated_ms", Int8),
        ],
    },
    Table {
        name: "api_keys",
        columns: &[
            ("id", Text),
            ("name", Text),
            ("secret_hash", Bytes),
            ("scopes", Json),
            ("created_ms", Int8),
            ("revoked_ms", Int8),
        ],
    },
    Table {
        name: "jobs",
        columns: &[
            ("id", Text),
            ("status", Text),
            ("total", Int8),
            ("processed", Int8),
            ("ok", Int8),
            ("errors", Int8),
            ("webhook_url", Text),
            ("created_ms", Int8),
            ("finished_ms", Int8),
            ("failure", Text),
        ],
    },
    Table {
        name: "job_items",
        columns: &[
            ("job_id", Text),
            ("seq", Int8),
            ("request", Text),
            ("result", Text),
        ],
    },
    Table {
        name: "availability",
        columns: &[
            ("asin", Text),
            ("marketplace", Text),
            ("available", Bool),
            ("title", Text),
            ("checked_ms", Int8),
        ],
    },
    Table {
        name: "meta",
        columns: &[("key", Text), ("value", Int8)],
    },
];

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: &'static str,
    /// Rows in the source.
    pub source_rows: u64,
    /// Rows in the target after the copy.
    pub target_rows: u64,
    /// The source's digest, hex.
    pub source_digest: String,
    /// The target's digest, hex.
    pub target_digest: String,
}

impl TableCopy {
    /// Both sides hold the same rows.
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_digest == self.target_digest
    }
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Either store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target holds data already.
    #[error("the target database holds {0} link(s) already: copy into an empty database")]
    TargetNotEmpty(i64),
    /// A source value is not what its column should hold.
    #[error("{table}.{column}: {message}")]
    Value {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Copies every table of `from` into `to` (which must hold no link), then
/// compares counts and digests per table.
pub fn copy(from: &SqliteStore, to: &PgStore) -> Result<Vec<TableCopy>, CopyError> {
    let existing = to.count_rows("links")?;
    if existing > 0 {
        return Err(CopyError::TargetNotEmpty(existing));
    }
    let mut data = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        data.push(read_sqlite(from, table)?);
    }
    let months = click_months(&data);
    to.copy_tables(TABLES, &data, &months)?;
    let mut outcome = Vec::with_capacity(TABLES.len());
    for (table, rows) in TABLES.iter().zip(&data) {
        let target = to.read_table(table)?;
        outcome.push(TableCopy {
            table: table.name,
            source_rows: rows.len() as u64,
            target_rows: target.len() as u64,
            source_digest: digest(rows),
            target_digest: digest(&target),
        });
    }
    Ok(outcome)
}

/// The click times of the source, for the months whose partitions the
/// target needs.
fn click_months(data: &[Vec<Vec<Cell>>]) -> Vec<i64> {
    let mut times = Vec::new();
    for (table, rows) in TABLES.iter().zip(data) {
        let Some(at) = table.columns.iter().position(|(c, _)| *c == "at_ms") else {
            continue;
        };
        times.extend(rows.iter().filter_map(|r| match r[at] {
            Cell::Int(ms) => Some(ms),
            _ => None,
        }));
    }
    times
}

fn read_sqlite(store: &SqliteStore, table: &Table) -> Result<Vec<Vec<Cell>>, CopyError> {
    use rusqlite::types::ValueRef;
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let sql = format!("SELECT {} FROM {}", columns.join(", "), table.name);
    let value_error = |column: &'static str, message: String| CopyError::Value {
        table: table.name,
        column,
        message,
    };
    store.with_conn(|conn| {
        let mut stmt = conn.prepare(&sql).map_err(StoreError::from)?;
        let mut rows = stmt.query([]).map_err(StoreError::from)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            let mut cells = Vec::with_capacity(table.columns.len());
            for (i, (column, kind)) in table.columns.iter().enumerate() {
                let value = row.get_ref(i).map_err(StoreError::from)?;
                let cell = match (value, kind) {
                    (ValueRef::Null, _) => Cell::Null,
                    (ValueRef::Integer(n), Bool) => Cell::Bool(n != 0),
                    (ValueRef::Integer(n), Int8 | Int2) => Cell::Int(n),
                    (ValueRef::Text(t), Text) => Cell::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|e| value_error(column, e.to_string()))?,
                    ),
                    (ValueRef::Text(t), Json) => Cell::Json(
                        serde_json::from_slice(t)
                            .map_err(|e| value_error(column, e.to_string()))?,
                    ),
                    (ValueRef::Blob(b), Bytes) => Cell::Bytes(b.to_vec()),
                    (other, kind) => {
                        return Err(value_error(
                            column,
                            format!("{:?} where {kind:?} was expected", other.data_type()),
                        ));
                    }
                };
                cells.push(cell);
            }
            out.push(cells);
        }
        Ok(out)
    })
}

/// The order-free digest of a table's rows.
pub(crate) fn digest(rows: &[Vec<Cell>]) -> String {
    let mut sum = 0u128;
    for row in rows {
        let mut hasher = Sha256::new();
        for cell in row {
            let canonical = match cell {
                Cell::Null => "N".to_owned(),
                Cell::Int(n) => format!("I{n}"),
                Cell::Bool(b) => format!("I{}", i64::from(*b)),
                Cell::Text(t) => format!("T{t}"),
                Cell::Json(v) => format!("J{}", canonical_json(v)),
                Cell::Bytes(b) => {
                    let mut s = String::from("B");
                    for byte in b {
                        s.push_str(&format!("{byte:02x}"));
                    }
                    s
                }
            };
            hasher.update((canonical.len() as u64).to_le_bytes());
            hasher.update(canonical.as_bytes());
        }
        let hash = hasher.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        sum = sum.wrapping_add(u128::from_le_bytes(first));
    }
    format!("{sum:032x}")
}

/// JSON with every object's keys sorted, so that SQLite's text and
/// PostgreSQL's JSONB (which orders keys its own way) compare equal.
fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_json(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_row_order_and_json_key_order_but_not_values() {
        let row = |n: i64, json: &str| {
            vec![
                Cell::Int(n),
                Cell::Json(serde_json::from_str(json).unwrap_or_default()),
                Cell::Null,
            ]
        };
        let a = vec![row(1, r#"{"a":1,"b":[2]}"#), row(2, "[]")];
        let b = vec![row(2, "[]"), row(1, r#"{"b":[2],"a":1}"#)];
        assert_eq!(digest(&a), digest(&b));
        let c = vec![row(2, "[]"), row(1, r#"{"b":[3],"a":1}"#)];
        assert_ne!(digest(&a), digest(&c));
        // A boolean and the integer SQLite stores for it are the same.
        assert_eq!(
            digest(&[vec![Cell::Bool(true)]]),
            digest(&[vec![Cell::Int(1)]])
        );
        assert_ne!(
            digest(&[vec![Cell::Null]]),
            digest(&[vec![Cell::Text("N".into())]])
        );
    }
}
