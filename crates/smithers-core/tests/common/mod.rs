//! Helpers shared by the integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::Path;

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
