//! The PostgreSQL side of `store copy`: rows written by binary `COPY` in
//! one transaction, identity counters moved past the copied ids, and
//! tables read back for the comparison.

use std::sync::Arc;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::PgStore;
use crate::backend::copy::{Cell, Kind, Table};
use crate::store::StoreError;

fn pg_type(kind: Kind) -> Type {
    match kind {
        Kind::Int8 => Type::INT8,
        Kind::Int2 => Type::INT2,
        Kind::Bool => Type::BOOL,
        Kind::Text => Type::TEXT,
        Kind::Json => Type::JSONB,
        Kind::Bytes => Type::BYTEA,
    }
}

/// A cell as the value `COPY` writes for a column of `kind`.
fn value(cell: &Cell, kind: Kind) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    Ok(match (cell, kind) {
        (Cell::Null, Kind::Int8) => Box::new(None::<i64>),
        (Cell::Null, Kind::Int2) => Box::new(None::<i16>),
        (Cell::Null, Kind::Bool) => Box::new(None::<bool>),
        (Cell::Null, Kind::Text) => Box::new(None::<String>),
        (Cell::Null, Kind::Json) => Box::new(None::<serde_json::Value>),
        (Cell::Null, Kind::Bytes) => Box::new(None::<Vec<u8>>),
        (Cell::Int(n), Kind::Int8) => Box::new(*n),
        (Cell::Int(n), Kind::Int2) => {
            Box::new(i16::try_from(*n).map_err(|_| format!("{n} does not fit SMALLINT"))?)
        }
        (Cell::Bool(b), Kind::Bool) => Box::new(*b),
        (Cell::Text(t), Kind::Text) => Box::new(t.clone()),
        (Cell::Json(v), Kind::Json) => Box::new(v.clone()),
        (Cell::Bytes(b), Kind::Bytes) => Box::new(b.clone()),
        (cell, kind) => return Err(format!("{cell:?} for a {kind:?} column")),
    })
}

impl PgStore {
    /// The number of rows in a table.
    pub(crate) fn count_rows(&self, table: &'static str) -> Result<i64, StoreError> {
        self.run(|pool| async move {
            Ok(pool
                .get()
                .await?
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .try_get(0)?)
        })
    }

    /// Writes `data` (one list of rows per table) into `tables` in one
    /// transaction, after making the click partitions of `click_times`'
    /// months.
    pub(crate) fn copy_tables(
        &self,
        tables: &'static [Table],
        data: &[Vec<Vec<Cell>>],
        click_times: &[i64],
    ) -> Result<(), StoreError> {
        let mut months: Vec<i64> = click_times
            .iter()
            .map(|ms| super::partitions::month_of(*ms))
            .collect();
        months.sort_unstable();
        months.dedup();
        for month in months {
            let partitions = Arc::clone(&self.partitions);
            let at = super::partitions::month_start_ms(month);
            self.run(|pool| async move { partitions.make_month(&pool, at).await })?;
        }
        let mut batches = Vec::with_capacity(tables.len());
        for (table, rows) in tables.iter().zip(data) {
            let mut values = Vec::with_capacity(rows.len());
            for row in rows {
                let mut out = Vec::with_capacity(row.len());
                for (cell, (column, kind)) in row.iter().zip(table.columns) {
                    out.push(value(cell, *kind).map_err(|message| StoreError::Corrupt {
                        table: table.name,
                        message: format!("{column}: {message}"),
                    })?);
                }
                values.push(out);
            }
            batches.push(values);
        }
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            for (table, rows) in tables.iter().zip(&batches) {
                let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
                let types: Vec<Type> = table.columns.iter().map(|(_, k)| pg_type(*k)).collect();
                // `meta` has a row from the store's start (the click ID
                // state): the source's replaces it.
                if table.name == "meta" {
                    tx.execute("DELETE FROM meta", &[]).await?;
                }
                let sink = tx
                    .copy_in(&format!(
                        "COPY {} ({}) FROM STDIN BINARY",
                        table.name,
                        columns.join(", ")
                    ))
                    .await?;
                let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
                for row in rows {
                    let refs: Vec<&(dyn ToSql + Sync)> = row
                        .iter()
                        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    writer.as_mut().write(&refs).await?;
                }
                writer.finish().await?;
            }
            for table in ["links", "conversions"] {
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                    ),
                    &[],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every row of a table, as cells.
    pub(crate) fn read_table(&self, table: &'static Table) -> Result<Vec<Vec<Cell>>, StoreError> {
        self.run(|pool| async move {
            let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
            let rows = pool
                .get()
                .await?
                .query(
                    &format!("SELECT {} FROM {}", columns.join(", "), table.name),
                    &[],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut cells = Vec::with_capacity(columns.len());
                for (i, (_, kind)) in table.columns.iter().enumerate() {
                    let cell = match kind {
                        Kind::Int8 => row.try_get::<_, Option<i64>>(i)?.map(Cell::Int),
                        Kind::Int2 => row
                            .try_get::<_, Option<i16>>(i)?
                            .map(|n| Cell::Int(i64::from(n))),
                        Kind::Bool => row.try_get::<_, Option<bool>>(i)?.map(Cell::Bool),
                        Kind::Text => row.try_get::<_, Option<String>>(i)?.map(Cell::Text),
                        Kind::Json => row
                            .try_get::<_, Option<serde_json::Value>>(i)?
                            .map(Cell::Json),
                        Kind::Bytes => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Cell::Bytes),
                    };
                    cells.push(cell.unwrap_or(Cell::Null));
                }
                out.push(cells);
            }
            Ok(out)
        })
    }
}
