//! Helpers shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::Path;

use rusqlite::Connection;
use serde_json::{Value, json};
use smithers_core::DecisionRequest;

/// `approvalDecisionSchema` as the JS layer sends it.
pub fn decision_schema() -> Value {
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

/// A decision on `node` of `run_id` by `by`.
pub fn req(run_id: &str, node: &str, by: &str) -> DecisionRequest {
    DecisionRequest {
        run_id: run_id.into(),
        node_id: Some(node.into()),
        decided_by: Some(by.into()),
        ..DecisionRequest::default()
    }
}

/// The rows of `sql` on `<dir>/smithers.db`, as JSON values.
pub fn query(dir: impl AsRef<Path>, sql: &str) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open(dir.as_ref().join("smithers.db")).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(v) => json!(v),
                rusqlite::types::ValueRef::Real(v) => json!(v),
                rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                rusqlite::types::ValueRef::Blob(_) => Value::Null,
            })
            .collect())
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Every row of every table of the database at `path`, in a stable order: equal digests mean
/// nothing was written in between.
pub fn digest(path: &Path) -> String {
    let conn = Connection::open(path).expect("open the database");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("list tables");
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1, 2"))
            .expect("select");
        let n = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n).map(|i| format!("{:?}", r.get_ref(i))).collect();
                Ok(cells.join("|"))
            })
            .and_then(|rows| rows.collect())
            .expect("rows");
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}
