//! The integration tests' one harness (each test file uses some of it): an engine on a
//! temporary database, descriptors and their nodes, task results, a driver loop that drives a
//! run the way the JS driver does, and reads of the raw database.
#![allow(dead_code)]

use std::path::Path;

use rusqlite::Connection;
use serde_json::{Value, json};
use smithers_core::{
    DecisionRequest, Engine, GraphDescriptor, NewRun, Snapshot, Step, TaskResult, TaskToRun,
};

// ---- engines and runs ----------------------------------------------------------------------

/// An engine on `<temporary dir>/smithers.db`; the directory lives as long as the guard.
pub fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let engine = Engine::open(dir.path().join("smithers.db")).expect("an engine");
    (dir, engine)
}

/// Creates (and claims) run `run_id` with `new`'s other fields.
pub fn create(engine: &mut Engine, run_id: &str, new: NewRun) -> Snapshot {
    engine
        .create_run(NewRun {
            run_id: Some(run_id.into()),
            ..new
        })
        .expect("a new run")
}

/// Creates (and claims) run `run_id` with nothing else set.
pub fn start(engine: &mut Engine, run_id: &str) -> Snapshot {
    create(engine, run_id, NewRun::default())
}

/// Drives a claimed run the way the JS driver does: submits `render()` whenever a render is
/// owed, hands every task out to `run_task` and reports its results, until the run parks or
/// ends (no task handed out, no render owed).
pub fn drive(
    engine: &mut Engine,
    run_id: &str,
    render: impl Fn() -> GraphDescriptor,
    mut run_task: impl FnMut(&TaskToRun) -> TaskResult,
) -> Step {
    let mut step = engine.submit_graph(run_id, render()).expect("submit");
    loop {
        if step.needs_render {
            step = engine.submit_graph(run_id, render()).expect("submit");
            continue;
        }
        if step.tasks.is_empty() {
            return step;
        }
        let results = step.tasks.iter().map(&mut run_task).collect();
        step = engine.complete_tasks(run_id, results).expect("complete");
    }
}

// ---- descriptors ---------------------------------------------------------------------------

/// A version 1 descriptor of workflow `name` (`renderDeps`: `[]` when `deps` is null).
pub fn descriptor(name: &str, schemas: Value, deps: Value, root: Value) -> GraphDescriptor {
    let deps = if deps.is_null() { json!([]) } else { deps };
    let g = json!({
        "version": 1,
        "workflow": {"name": name},
        "schemas": schemas,
        "renderDeps": deps,
        "root": root,
    });
    GraphDescriptor::parse(&g.to_string()).expect("a valid descriptor")
}

/// `node` with the fields of `extra` added (or replaced).
pub fn with(mut node: Value, extra: Value) -> Value {
    if let (Some(n), Value::Object(extra)) = (node.as_object_mut(), extra) {
        n.extend(extra);
    }
    node
}

pub fn seq(children: Vec<Value>) -> Value {
    json!({"kind": "sequence", "children": children})
}

/// A compute task writing to `output`.
pub fn compute(id: &str, output: &str) -> Value {
    json!({"kind": "task", "id": id, "output": output, "body": {"type": "compute"}})
}

/// A static task writing `value` to `output`.
pub fn static_task(id: &str, output: &str, value: Value) -> Value {
    json!({"kind": "task", "id": id, "output": output, "body": {"type": "static", "value": value}})
}

/// An `<Approval>` writing its decision to `gate`; `spec` adds to (or replaces) its approval
/// spec (`onDeny`, `autoApprove`, `allowedUsers`, …).
pub fn approval(id: &str, spec: Value) -> Value {
    let base = json!({"mode": "decision", "request": {"title": format!("Approve {id}?")}});
    json!({"kind": "task", "id": id, "output": "gate", "body": {"type": "approval"},
           "approval": with(base, spec)})
}

/// A `<HumanTask>` whose answer is the output `answer`, after at most `max_attempts` answers.
pub fn human(id: &str, max_attempts: u32) -> Value {
    json!({"kind": "task", "id": id, "output": "answer", "body": {"type": "approval"},
           "approval": {"mode": "human", "request": {"title": format!("human:{id}"), "summary": "Score it"},
                        "maxAttempts": max_attempts}})
}

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

// ---- results and decisions -----------------------------------------------------------------

/// A result JS reports: `{nodeId, attempt, ...fields}`.
pub fn result(node: &str, attempt: i64, fields: Value) -> TaskResult {
    serde_json::from_value(with(json!({"nodeId": node, "attempt": attempt}), fields))
        .expect("a task result")
}

/// A successful result with `value`.
pub fn ok(node: &str, attempt: i64, value: Value) -> TaskResult {
    result(node, attempt, json!({"ok": true, "value": value}))
}

/// A failed result with `message`.
pub fn failed(node: &str, attempt: i64, message: &str) -> TaskResult {
    result(
        node,
        attempt,
        json!({"ok": false, "error": {"message": message}}),
    )
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

// ---- the raw database ----------------------------------------------------------------------

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
