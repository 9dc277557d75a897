//! Helpers shared by the integration tests that check "nothing was written".
// Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::Path;

use rusqlite::Connection;
use serde_json::{Value, json};

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
