//! Raw rows of any table, for copying a database to another store (`crate::migrate`).

use rusqlite::types::{Value as SqlValue, ValueRef};

use super::SqliteStore;
use crate::error::{Error, Result};
use crate::ident::quote;
use crate::store::shared::{insert_columns, select_columns};
use crate::store::{Cell, CopyRows};

fn cell(v: ValueRef<'_>, column: &str) -> Result<Cell> {
    Ok(match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => {
            Cell::Text(
                String::from_utf8(t.to_vec()).map_err(|_| Error::UnreadableRow {
                    column: column.to_string(),
                    why: "holds text that is not UTF-8".into(),
                })?,
            )
        }
        // The engine writes no blobs.
        ValueRef::Blob(_) => {
            return Err(Error::UnreadableRow {
                column: column.to_string(),
                why: "holds a blob, which the engine never writes".into(),
            });
        }
    })
}

fn value(c: &Cell) -> SqlValue {
    match c {
        Cell::Null => SqlValue::Null,
        Cell::Int(i) => SqlValue::Integer(*i),
        Cell::Real(f) => SqlValue::Real(*f),
        Cell::Text(t) => SqlValue::Text(t.clone()),
    }
}

impl CopyRows for SqliteStore {
    fn begin_snapshot(&self) -> Result<()> {
        // A deferred transaction takes its WAL snapshot at its first read.
        self.conn.execute_batch("BEGIN")?;
        if let Err(e) = self
            .conn
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
        {
            self.end_snapshot();
            return Err(e.into());
        }
        Ok(())
    }

    fn end_snapshot(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn table_names(&self) -> Result<Vec<String>> {
        super::all(
            &self.conn,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            [],
            |r| r.get(0),
        )
    }

    fn count_rows(&self, table: &str) -> Result<i64> {
        Ok(self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", quote(table)), [], |r| {
                r.get(0)
            })?)
    }

    fn scan_rows(
        &self,
        table: &str,
        columns: &[String],
        f: &mut dyn FnMut(Vec<Cell>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(&select_columns(table, columns))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(columns.len());
            for (i, c) in columns.iter().enumerate() {
                cells.push(cell(r.get_ref(i)?, c)?);
            }
            f(cells)?;
        }
        Ok(())
    }

    fn insert_rows(&self, table: &str, columns: &[String], rows: &[Vec<Cell>]) -> Result<()> {
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let mut stmt = self.conn.prepare_cached(&format!(
            "{} VALUES ({})",
            insert_columns(table, columns),
            marks.join(", ")
        ))?;
        for row in rows {
            stmt.execute(rusqlite::params_from_iter(row.iter().map(value)))?;
        }
        Ok(())
    }
}
