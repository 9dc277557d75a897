//! The integration tests' one harness (each test file uses some of it): an engine on a
//! temporary database, descriptors and their nodes, task results, a driver loop that drives a
//! run the way the JS driver does, and reads of the raw database.
//!
//! **Both stores.** The store the tests run on is `$SMITHERS_TEST_STORE`: `sqlite` (the
//! default) or `postgres` (a server of the tests' own, `pg.rs`; a schema per test).
//! `npm run test:rust` runs the engine's tests once on each. A test that is about SQLite
//! itself (its files, its pragmas) opens a file with `Engine::open` and runs on SQLite in
//! both passes.
#![allow(dead_code)]

pub mod pg;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::{Value, json};
use smithers_core::{
    DecisionRequest, Engine, GraphDescriptor, NewRun, Snapshot, Step, TaskResult, TaskToRun,
};

// ---- engines and runs ----------------------------------------------------------------------

/// Whether the tests run on PostgreSQL (`SMITHERS_TEST_STORE=postgres`) or SQLite.
pub fn on_postgres() -> bool {
    match std::env::var("SMITHERS_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("SMITHERS_TEST_STORE is sqlite or postgres, not {other:?}"),
    }
}

/// A test's database: `<temporary dir>/smithers.db`, or a schema of its own on the test
/// server; the directory (for logs and files) lives as long as the guard.
pub struct TestDb {
    dir: tempfile::TempDir,
    db: PathBuf,
}

impl TestDb {
    pub fn new() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = if on_postgres() {
            PathBuf::from(pg::fresh_url())
        } else {
            dir.path().join("smithers.db")
        };
        TestDb { dir, db }
    }

    /// The temporary directory (logs, workflow files).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database string: a file path or a `postgres://` URL.
    pub fn db(&self) -> &Path {
        &self.db
    }

    pub fn is_postgres(&self) -> bool {
        self.db
            .to_str()
            .is_some_and(|d| d.starts_with("postgres://"))
    }

    /// Another engine on the same database (its command logs in the temporary directory).
    pub fn engine(&self) -> Engine {
        let mut engine = Engine::open(&self.db).expect("an engine");
        engine.set_log_dir(self.dir.path().join("smithers.logs"));
        engine
    }
}

/// An engine on a fresh database of the store under test; the database lives as long as the
/// guard.
pub fn open() -> (TestDb, Engine) {
    let db = TestDb::new();
    let engine = db.engine();
    (db, engine)
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

/// The rows of `sql` on the test's database, as JSON values.
pub fn query(db: &TestDb, sql: &str) -> Vec<Vec<Value>> {
    query_at(db.db(), sql)
}

fn pg_url(db: &Path) -> Option<&str> {
    db.to_str().filter(|d| d.starts_with("postgres://"))
}

/// Whether the database exists: the file, or the schema on the server.
pub fn exists(db: &Path) -> bool {
    match pg_url(db) {
        Some(url) => {
            let schema = url
                .rsplit_once("schema=")
                .map(|(_, s)| s)
                .unwrap_or("public");
            pg::client(url)
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
                .unwrap()
                .is_some()
        }
        None => db.exists(),
    }
}

/// The rows of `sql` on the database `db` (a file or a URL), as JSON values.
pub fn query_at(db: &Path, sql: &str) -> Vec<Vec<Value>> {
    if let Some(url) = pg_url(db) {
        let mut client = pg::client(url);
        return client
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| (0..r.len()).map(|i| pg_cell(r, i)).collect())
            .collect();
    }
    let conn = rusqlite::Connection::open(db).unwrap();
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

/// A PostgreSQL cell as SQLite's would read (booleans as 0/1).
fn pg_cell(r: &postgres::Row, i: usize) -> Value {
    use postgres::types::Type;
    let ty = r.columns()[i].type_().clone();
    if ty == Type::INT8 {
        json!(r.get::<_, Option<i64>>(i))
    } else if ty == Type::INT4 {
        json!(r.get::<_, Option<i32>>(i))
    } else if ty == Type::FLOAT8 {
        json!(r.get::<_, Option<f64>>(i))
    } else if ty == Type::BOOL {
        json!(r.get::<_, Option<bool>>(i).map(i64::from))
    } else {
        json!(r.get::<_, Option<String>>(i))
    }
}

/// Every row of every table of the database, in a stable order: equal digests mean nothing
/// was written in between.
pub fn digest_db(db: &TestDb) -> String {
    digest(db.db())
}

fn digest_pg(url: &str) -> String {
    let mut client = pg::client(url);
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let rows = client
            .query(&format!("SELECT x::text FROM \"{t}\" x ORDER BY 1"), &[])
            .unwrap();
        for r in rows {
            out.push_str(&r.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}

/// Every row of every table of the database at `path` (a file or a URL), in a stable order:
/// equal digests mean nothing was written in between.
pub fn digest(path: &Path) -> String {
    if let Some(url) = pg_url(path) {
        return digest_pg(url);
    }
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

/// Runs a statement on the test's database (a test reaching behind the engine's back).
pub fn execute(db: &TestDb, sql: &str) -> u64 {
    execute_at(db.db(), sql)
}

/// Runs statements on the database `db` (a file or a URL).
pub fn execute_at(db: &Path, sql: &str) -> u64 {
    if let Some(url) = pg_url(db) {
        return pg::client(url).execute(sql, &[]).unwrap();
    }
    rusqlite::Connection::open(db)
        .unwrap()
        .execute(sql, [])
        .unwrap() as u64
}

/// Runs several statements on the test's database (a test reaching behind the engine's back).
pub fn execute_batch(db: &TestDb, sql: &str) {
    if let Some(url) = pg_url(db.db()) {
        pg::client(url).batch_execute(sql).unwrap();
        return;
    }
    rusqlite::Connection::open(db.db())
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}
