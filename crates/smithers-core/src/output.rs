//! Output tables: one SQL table per output key, one column per schema property, rows keyed by
//! `(run_id, node_id, iteration)` as Smithers lays them out. Values are validated against the
//! key's JSON Schema before they are written.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ident::{self, snake_case};
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

/// How a field is stored: the column type it gets and how its JSON goes in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
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

    pub fn sql_type(self) -> &'static str {
        match self {
            Codec::Bool | Codec::Int => "INTEGER",
            Codec::Real => "REAL",
            Codec::Text | Codec::Json => "TEXT",
        }
    }
}

#[derive(Debug)]
pub struct Column {
    pub field: String,
    pub column: String,
    pub codec: Codec,
    /// A null value of a field that is not required is left out when read back.
    pub required: bool,
}

/// One output key: its table, columns and compiled validator.
pub struct OutputTable {
    pub key: String,
    pub table: String,
    pub schema: Value,
    pub columns: Vec<Column>,
    validator: jsonschema::Validator,
    /// Tells one table object from another (a store caches its statements by it).
    pub id: u64,
}

static TABLE_IDS: AtomicU64 = AtomicU64::new(1);

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
        Ok(OutputTable {
            key: key.into(),
            table,
            schema: schema.clone(),
            columns,
            validator,
            id: TABLE_IDS.fetch_add(1, Ordering::Relaxed),
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_values_that_do_not_match() {
        let schema = json!({
            "type": "object",
            "properties": {
                "approved": {"type": "boolean"},
                "decidedAt": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
            },
            "required": ["approved"],
        });
        let t = OutputTable::new("gate", &schema).unwrap();
        let bad = json!({"approved": "yes", "decidedAt": "not-a-date"});
        let err = t.validate("gate", &bad).unwrap_err();
        assert_eq!(err.code(), "INVALID_OUTPUT");
        assert!(err.to_string().contains("approved"), "{err}");
        assert!(err.to_string().contains("decidedAt"), "{err}");
    }

    #[test]
    fn fields_get_codecs_by_their_type() {
        let schema = json!({"type": "object", "properties": {
            "ok": {"type": "boolean"}, "n": {"type": "integer"}, "x": {"type": "number"},
            "name": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "tags": {"type": "array"},
            "kind": {"enum": ["a", "b"]}}});
        let t = OutputTable::new("step", &schema).unwrap();
        let codec = |f: &str| t.columns.iter().find(|c| c.field == f).unwrap().codec;
        assert_eq!(codec("ok"), Codec::Bool);
        assert_eq!(codec("n"), Codec::Int);
        assert_eq!(codec("x"), Codec::Real);
        assert_eq!(codec("name"), Codec::Text);
        assert_eq!(codec("tags"), Codec::Json);
        assert_eq!(codec("kind"), Codec::Text);
    }
}
