//! Output tables (one per output key, Smithers' layout) and the versions of their schemas.
//!
//! Columns get SQLite's types in PostgreSQL's words: `boolean`/`integer` → BIGINT (0/1 for a
//! boolean, as in SQLite), `number` → DOUBLE PRECISION, `string` and anything else → TEXT
//! (JSON). Values are bound in the type each column has now (the statement's parameter
//! types), so a column an earlier schema version created keeps working, and read back as text
//! that the field's codec decodes.

use std::collections::HashMap;
use std::sync::Arc;

use postgres::Row;
use postgres::types::{ToSql, Type};
use serde_json::{Map, Value};

use super::{PgStore, col};
use crate::error::{Error, Result};
use crate::ident::quote;
use crate::machines::NodeKey;
use crate::output::{Codec, OutputTable};
use crate::store::OutputRows;

/// The statements of one output table, built once per table object.
pub(super) struct OutputSql {
    insert: String,
    select_run: String,
    select_one: String,
    delete: String,
}

fn output_sql(t: &OutputTable) -> OutputSql {
    let names: Vec<String> = t.columns.iter().map(|c| quote(&c.column)).collect();
    let placeholders: Vec<String> = (1..=t.columns.len() + 3).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = names
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    let table = quote(&t.table);
    let sep = if names.is_empty() { "" } else { ", " };
    let cols = names.join(", ");
    let read: Vec<String> = names.iter().map(|n| format!("{n}::text")).collect();
    let read = read.join(", ");
    let select_run = format!("SELECT node_id, iteration{sep}{read} FROM {table} WHERE run_id = $1");
    OutputSql {
        insert: format!(
            "INSERT INTO {table} (run_id, node_id, iteration{sep}{cols}) VALUES ({}) \
             ON CONFLICT (run_id, node_id, iteration) DO {}",
            placeholders.join(", "),
            if updates.is_empty() {
                "NOTHING".into()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            },
        ),
        select_one: format!("{select_run} AND node_id = $2 AND iteration = $3"),
        select_run,
        delete: format!(
            "DELETE FROM {table} WHERE run_id = $1 AND node_id = $2 AND iteration = $3"
        ),
    }
}

fn pg_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Bool | Codec::Int => "BIGINT",
        Codec::Real => "DOUBLE PRECISION",
        Codec::Text | Codec::Json => "TEXT",
    }
}

/// A column's type as the engine's schema checks name it (SQLite's words).
fn engine_type(data_type: &str) -> String {
    match data_type {
        "bigint" | "integer" | "smallint" | "boolean" => "INTEGER".into(),
        "double precision" | "real" | "numeric" => "REAL".into(),
        "text" | "character varying" | "character" => "TEXT".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// A value as the parameter type of its column.
fn encode(ty: &Type, value: Option<&Value>) -> Result<Box<dyn ToSql + Sync>> {
    let value = match value {
        None | Some(Value::Null) => {
            return Ok(if *ty == Type::INT8 {
                Box::new(None::<i64>)
            } else if *ty == Type::FLOAT8 {
                Box::new(None::<f64>)
            } else {
                Box::new(None::<String>)
            });
        }
        Some(v) => v,
    };
    let number = |v: &Value| -> Option<f64> {
        match v {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    };
    let misfit = || Error::InvalidOutput {
        node_id: String::new(),
        key: String::new(),
        errors: vec![format!("{value} does not fit a {ty} column")],
    };
    Ok(if *ty == Type::INT8 {
        let i = match value {
            Value::Bool(b) => i64::from(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => i,
                None => {
                    let f = n.as_f64().ok_or_else(misfit)?;
                    if f.fract() != 0.0 || f.abs() >= 9.2e18 {
                        return Err(misfit());
                    }
                    f as i64
                }
            },
            _ => return Err(misfit()),
        };
        Box::new(i)
    } else if *ty == Type::FLOAT8 {
        Box::new(number(value).ok_or_else(misfit)?)
    } else {
        Box::new(match value {
            Value::String(s) => s.clone(),
            // Anything the schema allowed that does not fit the column is kept as JSON.
            other => serde_json::to_string(other)?,
        })
    })
}

/// A column read as text, decoded by its field's codec.
fn decode(codec: Codec, text: Option<String>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    let number = |s: &str| -> Option<Value> {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Value::from(i));
        }
        let f = s.parse::<f64>().ok()?;
        Some(if f.fract() == 0.0 && f.abs() < 9.0e15 {
            Value::from(f as i64)
        } else {
            Value::from(f)
        })
    };
    match codec {
        Codec::Bool => match text.as_str() {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            s => match s.parse::<f64>() {
                Ok(f) => Value::Bool(f != 0.0),
                Err(_) => Value::String(text),
            },
        },
        Codec::Int | Codec::Real => number(&text).unwrap_or(Value::String(text)),
        Codec::Json => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Codec::Text => Value::String(text),
    }
}

/// A row's fields as JSON (a null field that is not required is left out).
fn row_value(t: &OutputTable, row: &Row) -> Result<Value> {
    let mut obj = Map::new();
    for (i, c) in t.columns.iter().enumerate() {
        let v = decode(c.codec, col(row, i + 2)?);
        if v.is_null() && !c.required {
            continue;
        }
        obj.insert(c.field.clone(), v);
    }
    Ok(Value::Object(obj))
}

impl PgStore {
    fn sql(&self, t: &OutputTable) -> Arc<OutputSql> {
        self.output_sql
            .borrow_mut()
            .entry(t.id)
            .or_insert_with(|| Arc::new(output_sql(t)))
            .clone()
    }

    /// `(column, data_type)` of a table of the schema.
    fn columns(&self, table: &str) -> Result<Vec<(String, String)>> {
        self.all(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
            |r| Ok((col(r, 0)?, col(r, 1)?)),
        )
    }
}

impl OutputRows for PgStore {
    fn ensure_table(&self, t: &OutputTable) -> Result<()> {
        self.lock_schema()?;
        let existing = self.columns(&t.table)?;
        let table = quote(&t.table);
        if existing.is_empty() {
            let cols: String = t
                .columns
                .iter()
                .map(|c| format!(", {} {}", quote(&c.column), pg_type(c.codec)))
                .collect();
            self.batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (run_id TEXT COLLATE \"C\" NOT NULL, node_id TEXT COLLATE \"C\" NOT NULL, \
                 iteration BIGINT NOT NULL DEFAULT 0{cols}, PRIMARY KEY (run_id, node_id, iteration))"
            ))?;
            return Ok(());
        }
        let key_cols: Vec<String> = self.all(
            "SELECT k.column_name::text FROM information_schema.table_constraints c \
             JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name \
               AND k.table_schema = c.table_schema AND k.table_name = c.table_name \
             WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema() AND c.table_name = $1 \
             ORDER BY k.ordinal_position",
            &[&t.table],
            |r| col(r, 0),
        )?;
        if key_cols != ["run_id", "node_id", "iteration"] {
            return Err(Error::TableConflict {
                table: t.table.clone(),
            });
        }
        for c in &t.columns {
            match existing.iter().find(|(n, _)| *n == c.column) {
                None => self.batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    quote(&c.column),
                    pg_type(c.codec)
                ))?,
                // A number field on a column an integer field made: the column widens (SQLite
                // keeps such a value in an INTEGER column as it is).
                Some((_, ty)) if c.codec == Codec::Real && ty == "bigint" => {
                    self.batch(&format!(
                        "ALTER TABLE {table} ALTER COLUMN {} TYPE DOUBLE PRECISION",
                        quote(&c.column)
                    ))?;
                    // Statements prepared on the old type are planned again.
                    self.statements.borrow_mut().clear();
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn table_columns(&self, table: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .columns(table)?
            .into_iter()
            .map(|(name, ty)| (name, engine_type(&ty)))
            .collect())
    }

    fn write_output(&self, t: &OutputTable, key: &NodeKey, value: &Value) -> Result<()> {
        self.lock_run(&key.run)?;
        let sql = self.sql(t);
        let statement = self.statement(&sql.insert)?;
        let types = statement.params();
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(t.columns.len() + 3);
        params.push(Box::new(key.run.clone()));
        params.push(Box::new(key.node.clone()));
        params.push(Box::new(key.iteration));
        for (i, c) in t.columns.iter().enumerate() {
            let ty = types.get(i + 3).unwrap_or(&Type::TEXT);
            params.push(encode(ty, value.get(&c.field)).map_err(|e| match e {
                Error::InvalidOutput { errors, .. } => Error::InvalidOutput {
                    node_id: key.node.clone(),
                    key: t.key.clone(),
                    errors,
                },
                other => other,
            })?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p).collect();
        self.client.borrow_mut().execute(&statement, &refs)?;
        Ok(())
    }

    fn read_output(&self, t: &OutputTable, key: &NodeKey) -> Result<Option<Value>> {
        self.lock_run(&key.run)?;
        if !self.table_exists(&t.table)? {
            return Ok(None);
        }
        let sql = self.sql(t);
        self.one(
            &sql.select_one,
            &[&key.run, &key.node, &key.iteration],
            |r| row_value(t, r),
        )
    }

    fn read_outputs(&self, t: &OutputTable, run_id: &str) -> Result<Vec<(String, i64, Value)>> {
        self.lock_run(run_id)?;
        if !self.table_exists(&t.table)? {
            return Ok(Vec::new());
        }
        let sql = self.sql(t);
        self.all(&sql.select_run, &[&run_id], |r| {
            Ok((col(r, 0)?, col(r, 1)?, row_value(t, r)?))
        })
    }

    fn delete_output(&self, t: &OutputTable, key: &NodeKey) -> Result<()> {
        self.lock_run(&key.run)?;
        if !self.table_exists(&t.table)? {
            return Ok(());
        }
        let sql = self.sql(t);
        self.exec(&sql.delete, &[&key.run, &key.node, &key.iteration])?;
        Ok(())
    }

    fn run_has_rows(&self, table: &str, run_id: &str) -> Result<bool> {
        self.lock_run(run_id)?;
        if !self.table_exists(table)? {
            return Ok(false);
        }
        let sql = format!("SELECT 1 FROM {} WHERE run_id = $1 LIMIT 1", quote(table));
        Ok(self.row(&sql, &[&run_id])?.is_some())
    }

    fn schema_json(&self, key: &str, version: i64) -> Result<Option<String>> {
        self.one(
            "SELECT schema_json FROM _smithers_schema_versions WHERE table_key = $1 AND version = $2",
            &[&key, &version],
            |r| col(r, 0),
        )
    }

    fn bound_version(&self, run_id: &str, key: &str) -> Result<Option<i64>> {
        self.lock_run(run_id)?;
        self.one(
            "SELECT version FROM _smithers_run_schemas WHERE run_id = $1 AND table_key = $2",
            &[&run_id, &key],
            |r| col(r, 0),
        )
    }

    fn latest_version(&self, key: &str) -> Result<Option<i64>> {
        self.one(
            "SELECT version FROM _smithers_schemas WHERE table_key = $1",
            &[&key],
            |r| col(r, 0),
        )
    }

    fn version_of_schema(&self, key: &str, schema_json: &str) -> Result<Option<i64>> {
        self.lock_schema()?;
        self.one(
            "SELECT version FROM _smithers_schema_versions WHERE table_key = $1 AND schema_json = $2",
            &[&key, &schema_json],
            |r| col(r, 0),
        )
    }

    fn max_version(&self, key: &str) -> Result<i64> {
        self.lock_schema()?;
        Ok(self
            .one(
                "SELECT COALESCE(MAX(version), 0) FROM _smithers_schema_versions WHERE table_key = $1",
                &[&key],
                |r| col(r, 0),
            )?
            .unwrap_or(0))
    }

    fn other_key_of_table(&self, table: &str, key: &str) -> Result<Option<String>> {
        self.lock_schema()?;
        self.one(
            "SELECT table_key FROM _smithers_schema_versions WHERE table_name = $1 AND table_key <> $2 LIMIT 1",
            &[&table, &key],
            |r| col(r, 0),
        )
    }

    fn insert_schema_version(
        &self,
        t: &OutputTable,
        version: i64,
        schema_json: &str,
        now: i64,
    ) -> Result<()> {
        self.lock_schema()?;
        self.exec(
            "INSERT INTO _smithers_schema_versions (table_key, version, table_name, schema_json, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&t.key, &version, &t.table, &schema_json, &now],
        )?;
        self.exec(
            "INSERT INTO _smithers_schemas (table_key, table_name, schema_json, updated_at_ms, version) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (table_key) DO UPDATE SET \
             table_name = excluded.table_name, schema_json = excluded.schema_json, \
             updated_at_ms = excluded.updated_at_ms, version = excluded.version",
            &[&t.key, &t.table, &schema_json, &now, &version],
        )?;
        Ok(())
    }

    fn bind_schema(&self, run_id: &str, key: &str, version: i64) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "INSERT INTO _smithers_run_schemas (run_id, table_key, version) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id, table_key) DO UPDATE SET version = excluded.version",
            &[&run_id, &key, &version],
        )?;
        Ok(())
    }

    fn schema_bindings(&self, run_id: &str) -> Result<HashMap<String, i64>> {
        self.lock_run(run_id)?;
        Ok(self
            .all(
                "SELECT table_key, version FROM _smithers_run_schemas WHERE run_id = $1",
                &[&run_id],
                |r| Ok((col(r, 0)?, col(r, 1)?)),
            )?
            .into_iter()
            .collect())
    }
}
