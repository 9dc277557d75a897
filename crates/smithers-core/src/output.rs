//! Output tables: one SQL table per output key, one column per schema property, rows keyed by
//! `(run_id, node_id, iteration)` as Smithers lays them out. Values are validated against the
//! key's JSON Schema before they are written.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ident::{self, quote, snake_case};

/// How deep an output value may nest (arrays and objects). A JSON reader has a limit (serde's
/// is 128 for a whole document); outputs travel inside other documents (results, snapshots),
/// so they get a limit of their own, well below it. The JS driver checks the same number.
pub const MAX_OUTPUT_DEPTH: usize = 100;

/// How deeply arrays and objects nest in `value` (a scalar is 0), without recursion.
pub fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    deepest
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Bool,
    Int,
    Real,
    Text,
    Json,
}

impl Codec {
    fn of(prop: &Value) -> Codec {
        let non_null = |alts: &Vec<Value>| -> Vec<Value> {
            alts.iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .cloned()
                .collect()
        };
        match prop.get("type") {
            Some(Value::String(t)) => return Codec::of_type(t),
            Some(Value::Array(types)) => {
                let named: Vec<&str> = types
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                    .collect();
                return if named.len() == 1 {
                    Codec::of_type(named[0])
                } else {
                    Codec::Json
                };
            }
            _ => {}
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alts)) = prop.get(key) {
                let rest = non_null(alts);
                return if rest.len() == 1 {
                    Codec::of(&rest[0])
                } else {
                    Codec::Json
                };
            }
        }
        let all_strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if prop.get("enum").is_some_and(all_strings)
            || prop.get("const").is_some_and(Value::is_string)
        {
            return Codec::Text;
        }
        Codec::Json
    }

    fn of_type(t: &str) -> Codec {
        match t {
            "boolean" => Codec::Bool,
            "integer" => Codec::Int,
            "number" => Codec::Real,
            "string" => Codec::Text,
            _ => Codec::Json,
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            Codec::Bool | Codec::Int => "INTEGER",
            Codec::Real => "REAL",
            Codec::Text | Codec::Json => "TEXT",
        }
    }

    fn encode(self, value: Option<&Value>) -> Result<SqlValue> {
        let Some(value) = value else {
            return Ok(SqlValue::Null);
        };
        Ok(match (self, value) {
            (_, Value::Null) => SqlValue::Null,
            (Codec::Bool, Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
            (Codec::Int, Value::Number(n)) if n.is_i64() => {
                SqlValue::Integer(n.as_i64().unwrap_or(0))
            }
            (Codec::Int | Codec::Real, Value::Number(n)) => {
                SqlValue::Real(n.as_f64().unwrap_or(0.0))
            }
            (Codec::Text, Value::String(s)) => SqlValue::Text(s.clone()),
            // Anything the schema allowed that does not fit the column is kept as JSON.
            (_, other) => SqlValue::Text(serde_json::to_string(other)?),
        })
    }

    fn decode(self, value: SqlValue) -> Value {
        match (self, value) {
            (_, SqlValue::Null) => Value::Null,
            (Codec::Bool, SqlValue::Integer(i)) => Value::Bool(i != 0),
            (_, SqlValue::Integer(i)) => Value::from(i),
            (_, SqlValue::Real(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            (_, SqlValue::Real(f)) => Value::from(f),
            (Codec::Json, SqlValue::Text(s)) => {
                serde_json::from_str(&s).unwrap_or(Value::String(s))
            }
            (_, SqlValue::Text(s)) => Value::String(s),
            (_, SqlValue::Blob(b)) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        }
    }
}

#[derive(Debug)]
struct Column {
    field: String,
    column: String,
    codec: Codec,
    required: bool,
}

/// One output key: its table, columns and compiled validator.
pub struct OutputTable {
    pub key: String,
    pub table: String,
    pub schema: Value,
    columns: Vec<Column>,
    validator: jsonschema::Validator,
    insert_sql: String,
    select_sql: String,
}

impl std::fmt::Debug for OutputTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputTable")
            .field("key", &self.key)
            .field("table", &self.table)
            .finish()
    }
}

impl OutputTable {
    pub fn new(key: &str, schema: &Value) -> Result<OutputTable> {
        ident::check_table_key(key)?;
        let invalid = |message: String| Error::InvalidSchema {
            key: key.into(),
            message,
        };
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("an output schema must be an object with properties".into()))?;
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut columns = Vec::with_capacity(props.len());
        let mut seen = std::collections::HashSet::new();
        for (field, prop) in props {
            ident::check_field(field)?;
            let column = snake_case(field);
            if !seen.insert(column.clone()) {
                return Err(invalid(format!("fields collide on column {column}")));
            }
            columns.push(Column {
                field: field.clone(),
                column,
                codec: Codec::of(prop),
                required: required.contains(&field.as_str()),
            });
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| invalid(e.to_string()))?;
        let table = snake_case(key);
        let names: Vec<String> = columns.iter().map(|c| quote(&c.column)).collect();
        let placeholders = vec!["?"; columns.len() + 3].join(", ");
        let updates: Vec<String> = names
            .iter()
            .map(|n| format!("{n} = excluded.{n}"))
            .collect();
        let insert_sql = format!(
            "INSERT INTO {t} (run_id, node_id, iteration{sep}{cols}) VALUES ({placeholders}) \
             ON CONFLICT(run_id, node_id, iteration) DO {upd}",
            t = quote(&table),
            sep = if names.is_empty() { "" } else { ", " },
            cols = names.join(", "),
            upd = if updates.is_empty() {
                "NOTHING".into()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            },
        );
        let select_sql = format!(
            "SELECT node_id, iteration{sep}{cols} FROM {t} WHERE run_id = ?",
            t = quote(&table),
            sep = if names.is_empty() { "" } else { ", " },
            cols = names.join(", "),
        );
        Ok(OutputTable {
            key: key.into(),
            table,
            schema: schema.clone(),
            columns,
            validator,
            insert_sql,
            select_sql,
        })
    }

    /// Creates the table, or adds the columns a newer schema declares.
    pub fn ensure(&self, conn: &Connection) -> Result<()> {
        let existing: Vec<(String, i64)> = {
            let mut stmt = conn.prepare("SELECT name, pk FROM pragma_table_info(?1)")?;
            stmt.query_map([&self.table], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        if existing.is_empty() {
            let cols: String = self
                .columns
                .iter()
                .map(|c| format!(", {} {}", quote(&c.column), c.codec.sql_type()))
                .collect();
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (run_id TEXT NOT NULL, node_id TEXT NOT NULL, \
                 iteration INTEGER NOT NULL DEFAULT 0{cols}, PRIMARY KEY (run_id, node_id, iteration))",
                quote(&self.table)
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
                table: self.table.clone(),
            });
        }
        for c in &self.columns {
            if !existing.iter().any(|(n, _)| *n == c.column) {
                conn.execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    quote(&self.table),
                    quote(&c.column),
                    c.codec.sql_type()
                ))?;
            }
        }
        Ok(())
    }

    /// `(field, column, SQL type)` of each column this schema declares.
    pub fn columns_sql(&self) -> impl Iterator<Item = (&str, &str, &'static str)> {
        self.columns
            .iter()
            .map(|c| (c.field.as_str(), c.column.as_str(), c.codec.sql_type()))
    }

    pub fn validate(&self, node_id: &str, value: &Value) -> Result<()> {
        if nesting(value) > MAX_OUTPUT_DEPTH {
            return Err(Error::InvalidOutput {
                node_id: node_id.into(),
                key: self.key.clone(),
                errors: vec![format!(
                    "the value nests deeper than {MAX_OUTPUT_DEPTH} levels"
                )],
            });
        }
        let errors: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(8)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidOutput {
                node_id: node_id.into(),
                key: self.key.clone(),
                errors,
            })
        }
    }

    pub fn has_field(&self, field: &str) -> bool {
        self.columns.iter().any(|c| c.field == field)
    }

    /// A value typed on a command line (`--input field=value`) as the field's JSON: text
    /// fields take it as it is, others parse it (`true`, `3`, `["a"]`), falling back to text
    /// so that validation reports the mismatch.
    pub fn typed_field(&self, field: &str, text: &str) -> Value {
        let text_field = self
            .columns
            .iter()
            .any(|c| c.field == field && c.codec == Codec::Text);
        if text_field {
            return Value::String(text.into());
        }
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
    }

    /// Removes one row (a reviewed step sent back: its output is no longer proposed).
    pub fn delete(
        &self,
        conn: &Connection,
        run_id: &str,
        node_id: &str,
        iteration: i64,
    ) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            quote(&self.table)
        );
        match conn.prepare_cached(&sql) {
            Ok(mut stmt) => {
                stmt.execute(rusqlite::params![run_id, node_id, iteration])?;
                Ok(())
            }
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Validates and writes one row.
    pub fn write(
        &self,
        conn: &Connection,
        run_id: &str,
        node_id: &str,
        iteration: i64,
        value: &Value,
    ) -> Result<()> {
        self.validate(node_id, value)?;
        let mut params: Vec<SqlValue> = Vec::with_capacity(self.columns.len() + 3);
        params.push(SqlValue::Text(run_id.into()));
        params.push(SqlValue::Text(node_id.into()));
        params.push(SqlValue::Integer(iteration));
        for c in &self.columns {
            params.push(c.codec.encode(value.get(&c.field))?);
        }
        conn.prepare_cached(&self.insert_sql)?
            .execute(params_from_iter(params))?;
        Ok(())
    }

    /// Every row of a run, as `(node_id, iteration, value)`.
    pub fn read_run(&self, conn: &Connection, run_id: &str) -> Result<Vec<(String, i64, Value)>> {
        let mut stmt = match conn.prepare_cached(&self.select_sql) {
            Ok(s) => s,
            // The table is created when a graph using it is first submitted.
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        let rows = stmt.query_map([run_id], |row| {
            let node_id: String = row.get(0)?;
            let iteration: i64 = row.get(1)?;
            let mut obj = Map::new();
            for (i, c) in self.columns.iter().enumerate() {
                let raw: SqlValue = row.get(i + 2)?;
                let v = c.codec.decode(raw);
                if v.is_null() && !c.required {
                    continue;
                }
                obj.insert(c.field.clone(), v);
            }
            Ok((node_id, iteration, Value::Object(obj)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn read_one(
        &self,
        conn: &Connection,
        run_id: &str,
        node_id: &str,
        iteration: i64,
    ) -> Result<Option<Value>> {
        let sql = format!("{} AND node_id = ? AND iteration = ?", self.select_sql);
        let mut stmt = match conn.prepare_cached(&sql) {
            Ok(s) => s,
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let row = stmt
            .query_row(rusqlite::params![run_id, node_id, iteration], |row| {
                let mut obj = Map::new();
                for (i, c) in self.columns.iter().enumerate() {
                    let v = c.codec.decode(row.get(i + 2)?);
                    if v.is_null() && !c.required {
                        continue;
                    }
                    obj.insert(c.field.clone(), v);
                }
                Ok(Value::Object(obj))
            })
            .optional()?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let conn = Connection::open_in_memory().unwrap();
        let t = OutputTable::new("publishApproval", &decision_schema()).unwrap();
        t.ensure(&conn).unwrap();
        let v = json!({"approved": true, "note": "ship it", "decidedBy": "alice", "decidedAt": "2026-01-01T00:00:00Z"});
        t.write(&conn, "r1", "gate", 0, &v).unwrap();
        assert_eq!(t.read_one(&conn, "r1", "gate", 0).unwrap(), Some(v));
        let cols: Vec<String> = conn
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
    fn rejects_values_that_do_not_match() {
        let t = OutputTable::new("gate", &decision_schema()).unwrap();
        let bad =
            json!({"approved": "yes", "note": null, "decidedBy": null, "decidedAt": "not-a-date"});
        let err = t.validate("gate", &bad).unwrap_err();
        assert_eq!(err.code(), "INVALID_OUTPUT");
        assert!(err.to_string().contains("approved"), "{err}");
        assert!(err.to_string().contains("decidedAt"), "{err}");
    }

    #[test]
    fn adds_columns_for_a_grown_schema() {
        let conn = Connection::open_in_memory().unwrap();
        let v1 = json!({"type": "object", "properties": {"a": {"type": "number"}}});
        OutputTable::new("step", &v1)
            .unwrap()
            .ensure(&conn)
            .unwrap();
        let v2 = json!({"type": "object", "properties": {"a": {"type": "number"}, "tags": {"type": "array"}}});
        let t = OutputTable::new("step", &v2).unwrap();
        t.ensure(&conn).unwrap();
        t.write(&conn, "r", "n", 0, &json!({"a": 1.5, "tags": ["x"]}))
            .unwrap();
        assert_eq!(
            t.read_one(&conn, "r", "n", 0).unwrap(),
            Some(json!({"a": 1.5, "tags": ["x"]}))
        );
    }
}
