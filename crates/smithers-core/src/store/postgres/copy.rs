//! Raw rows of any table of the schema, for copying a database to another store
//! (`crate::migrate`). Values travel as SQLite's storage classes (`Cell`); on the way in each
//! is converted to its column's type (the prepared statement's parameter types).

use postgres::Row;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};

use super::{PgStore, col};
use crate::error::{Error, Result};
use crate::ident::quote;
use crate::store::shared::{insert_columns, select_columns};
use crate::store::{Cell, CopyRows};

/// Rows per INSERT statement (PostgreSQL takes at most 65,535 parameters).
const PARAMS_PER_INSERT: usize = 2000;

fn cell(r: &Row, i: usize) -> Result<Cell> {
    let ty = r.columns().get(i).map(|c| c.type_().clone());
    Ok(match ty {
        Some(Type::INT8) => col::<Option<i64>>(r, i)?.map_or(Cell::Null, Cell::Int),
        Some(Type::INT4) => col::<Option<i32>>(r, i)?.map_or(Cell::Null, |v| Cell::Int(v.into())),
        Some(Type::INT2) => col::<Option<i16>>(r, i)?.map_or(Cell::Null, |v| Cell::Int(v.into())),
        Some(Type::FLOAT8) => col::<Option<f64>>(r, i)?.map_or(Cell::Null, Cell::Real),
        Some(Type::FLOAT4) => {
            col::<Option<f32>>(r, i)?.map_or(Cell::Null, |v| Cell::Real(v.into()))
        }
        Some(Type::BOOL) => {
            col::<Option<bool>>(r, i)?.map_or(Cell::Null, |v| Cell::Int(i64::from(v)))
        }
        _ => col::<Option<String>>(r, i)?.map_or(Cell::Null, Cell::Text),
    })
}

/// A value as a parameter of type `ty`; None when it does not fit.
fn param(ty: &Type, c: &Cell) -> Option<Box<dyn ToSql + Sync>> {
    let int = |c: &Cell| -> Option<i64> {
        match c {
            Cell::Int(i) => Some(*i),
            Cell::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Cell::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    };
    Some(if *ty == Type::INT8 {
        match c {
            Cell::Null => Box::new(None::<i64>),
            c => Box::new(int(c)?),
        }
    } else if *ty == Type::INT4 {
        match c {
            Cell::Null => Box::new(None::<i32>),
            c => Box::new(i32::try_from(int(c)?).ok()?),
        }
    } else if *ty == Type::FLOAT8 {
        match c {
            Cell::Null => Box::new(None::<f64>),
            Cell::Int(i) => Box::new(*i as f64),
            Cell::Real(f) => Box::new(*f),
            Cell::Text(t) => Box::new(t.trim().parse::<f64>().ok()?),
        }
    } else if *ty == Type::BOOL {
        match c {
            Cell::Null => Box::new(None::<bool>),
            Cell::Text(t) if t == "true" => Box::new(true),
            Cell::Text(t) if t == "false" => Box::new(false),
            c => Box::new(int(c)? != 0),
        }
    } else {
        match c {
            Cell::Null => Box::new(None::<String>),
            Cell::Int(i) => Box::new(i.to_string()),
            Cell::Real(f) => Box::new(f.to_string()),
            Cell::Text(t) => Box::new(t.clone()),
        }
    })
}

impl CopyRows for PgStore {
    fn begin_snapshot(&self) -> Result<()> {
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        self.in_tx.set(true);
        // The snapshot is taken at the first statement.
        if let Err(e) = self.row("SELECT 1", &[]) {
            self.end_snapshot();
            return Err(e);
        }
        Ok(())
    }

    fn end_snapshot(&self) {
        use super::Transactions;
        self.rollback();
    }

    fn table_names(&self) -> Result<Vec<String>> {
        self.all(
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY 1",
            &[],
            |r| col(r, 0),
        )
    }

    fn count_rows(&self, table: &str) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {}", quote(table));
        Ok(self
            .row(&sql, &[])?
            .map(|r| col(&r, 0))
            .transpose()?
            .unwrap_or(0))
    }

    fn scan_rows(
        &self,
        table: &str,
        columns: &[String],
        f: &mut dyn FnMut(Vec<Cell>) -> Result<()>,
    ) -> Result<()> {
        let sql = select_columns(table, columns);
        let statement = self.statement(&sql)?;
        let mut client = self.client.borrow_mut();
        // Streamed: a table is never held in memory whole.
        let mut rows = client.query_raw(&statement, std::iter::empty::<&(dyn ToSql + Sync)>())?;
        while let Some(r) = rows.next()? {
            let cells = (0..columns.len())
                .map(|i| cell(&r, i))
                .collect::<Result<Vec<_>>>()?;
            f(cells)?;
        }
        Ok(())
    }

    fn insert_rows(&self, table: &str, columns: &[String], rows: &[Vec<Cell>]) -> Result<()> {
        if columns.is_empty() {
            return Ok(());
        }
        let per = (PARAMS_PER_INSERT / columns.len()).max(1);
        for chunk in rows.chunks(per) {
            let tuples: Vec<String> = (0..chunk.len())
                .map(|r| {
                    let marks: Vec<String> = (1..=columns.len())
                        .map(|c| format!("${}", r * columns.len() + c))
                        .collect();
                    format!("({})", marks.join(", "))
                })
                .collect();
            let sql = format!(
                "{} VALUES {}",
                insert_columns(table, columns),
                tuples.join(", ")
            );
            let statement = self.statement(&sql)?;
            let types = statement.params();
            let mut params: Vec<Box<dyn ToSql + Sync>> =
                Vec::with_capacity(chunk.len() * columns.len());
            for row in chunk {
                for (c, v) in row.iter().enumerate() {
                    let ty = types.get(params.len()).unwrap_or(&Type::TEXT);
                    let p = param(ty, v).ok_or_else(|| Error::MigrateValueUnfit {
                        table: table.to_string(),
                        column: columns.get(c).cloned().unwrap_or_default(),
                        value: format!("{v:?}"),
                        target_type: ty.name().to_uppercase(),
                    })?;
                    params.push(p);
                }
            }
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p).collect();
            self.client.borrow_mut().execute(&statement, &refs)?;
        }
        Ok(())
    }
}
