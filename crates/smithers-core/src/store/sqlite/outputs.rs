//! Output tables (one per output key, Smithers' layout) and the versions of their schemas.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params, params_from_iter};
use serde_json::{Map, Value};

use super::{SqliteStore, all, on_table, one};
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
    let placeholders = vec!["?"; t.columns.len() + 3].join(", ");
    let updates: Vec<String> = names
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    let table = quote(&t.table);
    let sep = if names.is_empty() { "" } else { ", " };
    let cols = names.join(", ");
    let select_run = format!("SELECT node_id, iteration{sep}{cols} FROM {table} WHERE run_id = ?");
    OutputSql {
        insert: format!(
            "INSERT INTO {table} (run_id, node_id, iteration{sep}{cols}) VALUES ({placeholders}) \
             ON CONFLICT(run_id, node_id, iteration) DO {}",
            if updates.is_empty() {
                "NOTHING".into()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            },
        ),
        select_one: format!("{select_run} AND node_id = ? AND iteration = ?"),
        select_run,
        delete: format!(
            "DELETE FROM {table} WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3"
        ),
    }
}

fn encode(codec: Codec, value: Option<&Value>) -> Result<SqlValue> {
    let Some(value) = value else {
        return Ok(SqlValue::Null);
    };
    Ok(match (codec, value) {
        (_, Value::Null) => SqlValue::Null,
        (Codec::Bool, Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        (Codec::Int, Value::Number(n)) if n.is_i64() => SqlValue::Integer(n.as_i64().unwrap_or(0)),
        (Codec::Int | Codec::Real, Value::Number(n)) => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        (Codec::Text, Value::String(s)) => SqlValue::Text(s.clone()),
        // Anything the schema allowed that does not fit the column is kept as JSON.
        (_, other) => SqlValue::Text(serde_json::to_string(other)?),
    })
}

fn decode(codec: Codec, value: SqlValue) -> Value {
    match (codec, value) {
        (_, SqlValue::Null) => Value::Null,
        (Codec::Bool, SqlValue::Integer(i)) => Value::Bool(i != 0),
        (_, SqlValue::Integer(i)) => Value::from(i),
        (_, SqlValue::Real(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        (_, SqlValue::Real(f)) => Value::from(f),
        (Codec::Json, SqlValue::Text(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        (_, SqlValue::Text(s)) => Value::String(s),
        (_, SqlValue::Blob(b)) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Creates the table, or adds the columns a newer schema declares.
fn ensure(conn: &Connection, t: &OutputTable) -> Result<()> {
    let existing: Vec<(String, i64)> = {
        let mut stmt = conn.prepare("SELECT name, pk FROM pragma_table_info(?1)")?;
        stmt.query_map([&t.table], |r| r.try_into())?
            .collect::<Result<_, _>>()?
    };
    if existing.is_empty() {
        let cols: String = t
            .columns
            .iter()
            .map(|c| format!(", {} {}", quote(&c.column), c.codec.sql_type()))
            .collect();
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} (run_id TEXT NOT NULL, node_id TEXT NOT NULL, \
             iteration INTEGER NOT NULL DEFAULT 0{cols}, PRIMARY KEY (run_id, node_id, iteration))",
            quote(&t.table)
        ))?;
        return Ok(());
    }
    let key_cols: Vec<&str> = existing
        .iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(n, _)| n.as_str())
        .collect();
    if key_cols != ["run_id", "node_id", "iteration"] {
        return Err(Error::TableConflict {
            table: t.table.clone(),
        });
    }
    for c in &t.columns {
        if !existing.iter().any(|(n, _)| *n == c.column) {
            conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {} {}",
                quote(&t.table),
                quote(&c.column),
                c.codec.sql_type()
            ))?;
        }
    }
    Ok(())
}

/// A row's fields as JSON (a null field that is not required is left out).
fn row_value(t: &OutputTable, row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let mut obj = Map::new();
    for (i, c) in t.columns.iter().enumerate() {
        let v = decode(c.codec, row.get(i + 2)?);
        if v.is_null() && !c.required {
            continue;
        }
        obj.insert(c.field.clone(), v);
    }
    Ok(Value::Object(obj))
}

impl SqliteStore {
    fn sql(&self, t: &OutputTable) -> Arc<OutputSql> {
        self.output_sql
            .borrow_mut()
            .entry(t.id)
            .or_insert_with(|| Arc::new(output_sql(t)))
            .clone()
    }
}

impl OutputRows for SqliteStore {
    fn ensure_table(&self, table: &OutputTable) -> Result<()> {
        ensure(&self.conn, table)
    }

    fn table_columns(&self, table: &str) -> Result<Vec<(String, String)>> {
        all(
            &self.conn,
            "SELECT name, type FROM pragma_table_info(?1)",
            [table],
            |r| r.try_into(),
        )
    }

    fn write_output(&self, t: &OutputTable, key: &NodeKey, value: &Value) -> Result<()> {
        let mut params: Vec<SqlValue> = Vec::with_capacity(t.columns.len() + 3);
        params.push(SqlValue::Text(key.run.clone()));
        params.push(SqlValue::Text(key.node.clone()));
        params.push(SqlValue::Integer(key.iteration));
        for c in &t.columns {
            params.push(encode(c.codec, value.get(&c.field))?);
        }
        self.conn
            .prepare_cached(&self.sql(t).insert)?
            .execute(params_from_iter(params))?;
        Ok(())
    }

    fn read_output(&self, t: &OutputTable, key: &NodeKey) -> Result<Option<Value>> {
        let sql = self.sql(t);
        on_table(&self.conn, &sql.select_one, None, |stmt| {
            Ok(rusqlite::OptionalExtension::optional(stmt.query_row(
                params![key.run, key.node, key.iteration],
                |r| row_value(t, r),
            ))?)
        })
    }

    fn read_outputs(&self, t: &OutputTable, run_id: &str) -> Result<Vec<(String, i64, Value)>> {
        let sql = self.sql(t);
        on_table(&self.conn, &sql.select_run, Vec::new(), |stmt| {
            let rows =
                stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, row_value(t, r)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn delete_output(&self, t: &OutputTable, key: &NodeKey) -> Result<()> {
        let sql = self.sql(t);
        on_table(&self.conn, &sql.delete, (), |stmt| {
            stmt.execute(params![key.run, key.node, key.iteration])?;
            Ok(())
        })
    }

    fn run_has_rows(&self, table: &str, run_id: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM {} WHERE run_id = ?1 LIMIT 1", quote(table));
        on_table(&self.conn, &sql, false, |stmt| {
            Ok(
                rusqlite::OptionalExtension::optional(stmt.query_row([run_id], |_| Ok(())))?
                    .is_some(),
            )
        })
    }

    fn schema_json(&self, key: &str, version: i64) -> Result<Option<String>> {
        one(
            &self.conn,
            "SELECT schema_json FROM _smithers_schema_versions WHERE table_key = ?1 AND version = ?2",
            params![key, version],
            |r| r.get(0),
        )
    }

    fn bound_version(&self, run_id: &str, key: &str) -> Result<Option<i64>> {
        one(
            &self.conn,
            "SELECT version FROM _smithers_run_schemas WHERE run_id = ?1 AND table_key = ?2",
            params![run_id, key],
            |r| r.get(0),
        )
    }

    fn latest_version(&self, key: &str) -> Result<Option<i64>> {
        one(
            &self.conn,
            "SELECT version FROM _smithers_schemas WHERE table_key = ?1",
            [key],
            |r| r.get(0),
        )
    }

    fn version_of_schema(&self, key: &str, schema_json: &str) -> Result<Option<i64>> {
        one(
            &self.conn,
            "SELECT version FROM _smithers_schema_versions WHERE table_key = ?1 AND schema_json = ?2",
            params![key, schema_json],
            |r| r.get(0),
        )
    }

    fn max_version(&self, key: &str) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE(MAX(version), 0) FROM _smithers_schema_versions WHERE table_key = ?1",
            )?
            .query_row([key], |r| r.get(0))?)
    }

    fn other_key_of_table(&self, table: &str, key: &str) -> Result<Option<String>> {
        one(
            &self.conn,
            "SELECT table_key FROM _smithers_schema_versions WHERE table_name = ?1 AND table_key != ?2 LIMIT 1",
            params![table, key],
            |r| r.get(0),
        )
    }

    fn insert_schema_version(
        &self,
        t: &OutputTable,
        version: i64,
        schema_json: &str,
        now: i64,
    ) -> Result<()> {
        self.conn.prepare_cached(
            "INSERT INTO _smithers_schema_versions (table_key, version, table_name, schema_json, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![t.key, version, t.table, schema_json, now])?;
        // `_smithers_schemas` keeps the latest schema of each key (for readers of the
        // Smithers layout, and runs that never bound the key).
        self.conn.prepare_cached(
            "INSERT INTO _smithers_schemas (table_key, table_name, schema_json, updated_at_ms, version) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(table_key) DO UPDATE SET \
             table_name = excluded.table_name, schema_json = excluded.schema_json, \
             updated_at_ms = excluded.updated_at_ms, version = excluded.version",
        )?
        .execute(params![t.key, t.table, schema_json, now, version])?;
        Ok(())
    }

    fn bind_schema(&self, run_id: &str, key: &str, version: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO _smithers_run_schemas (run_id, table_key, version) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(run_id, table_key) DO UPDATE SET version = excluded.version",
            )?
            .execute(params![run_id, key, version])?;
        Ok(())
    }

    fn schema_bindings(&self, run_id: &str) -> Result<HashMap<String, i64>> {
        Ok(all(
            &self.conn,
            "SELECT table_key, version FROM _smithers_run_schemas WHERE run_id = ?1",
            [run_id],
            |r| r.try_into(),
        )?
        .into_iter()
        .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenOptions;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), OpenOptions::default()).unwrap();
        (dir, store)
    }

    fn key(run: &str, node: &str) -> NodeKey {
        NodeKey::new(run, node, 0)
    }

    fn decision_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "approved": {"type": "boolean"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "decidedBy": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "decidedAt": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
            },
            "required": ["approved", "note", "decidedBy", "decidedAt"],
            "additionalProperties": false
        })
    }

    #[test]
    fn round_trips_a_decision_row() {
        let (_dir, s) = store();
        let t = OutputTable::new("publishApproval", &decision_schema()).unwrap();
        s.ensure_table(&t).unwrap();
        let v = json!({"approved": true, "note": "ship it", "decidedBy": "alice", "decidedAt": "2026-01-01T00:00:00Z"});
        s.write_output(&t, &key("r1", "gate"), &v).unwrap();
        assert_eq!(s.read_output(&t, &key("r1", "gate")).unwrap(), Some(v));
        let cols: Vec<String> = s
            .conn
            .prepare("SELECT name FROM pragma_table_info('publish_approval')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            cols,
            [
                "run_id",
                "node_id",
                "iteration",
                "approved",
                "note",
                "decided_by",
                "decided_at"
            ]
        );
    }

    #[test]
    fn adds_columns_for_a_grown_schema() {
        let (_dir, s) = store();
        let v1 = json!({"type": "object", "properties": {"a": {"type": "number"}}});
        s.ensure_table(&OutputTable::new("step", &v1).unwrap())
            .unwrap();
        let v2 = json!({"type": "object", "properties": {"a": {"type": "number"}, "tags": {"type": "array"}}});
        let t = OutputTable::new("step", &v2).unwrap();
        s.ensure_table(&t).unwrap();
        s.write_output(&t, &key("r", "n"), &json!({"a": 1.5, "tags": ["x"]}))
            .unwrap();
        assert_eq!(
            s.read_output(&t, &key("r", "n")).unwrap(),
            Some(json!({"a": 1.5, "tags": ["x"]}))
        );
    }
}
