//! `smithers migrate --from --to` (`smithers_core::migrate`): a database copied into an
//! empty one of the other store — on the PostgreSQL pass SQLite → PostgreSQL and PostgreSQL →
//! SQLite, on the SQLite pass SQLite → SQLite — carries every table, verifies (row counts,
//! the decision log), and a run parked at a gate in the source is approved and finished in
//! the copy. A target that holds data, a source with a run being driven and a source that
//! changes during the copy are refused, and nothing is written.

mod common;

use std::path::{Path, PathBuf};

use common::{approval, compute, decision_schema, digest, ok, query_at, req, seq, with};
use serde_json::{Value, json};
use smithers_core::migrate::migrate;
use smithers_core::views::RunFilter;
use smithers_core::{Engine, GraphDescriptor, NewRun};

fn schemas() -> Value {
    json!({
        "gate": decision_schema(),
        "build": {"type": "object",
                  "properties": {"version": {"type": "string"}, "size": {"type": "integer"},
                                 "score": {"type": "number"}, "ok": {"type": "boolean"},
                                 "tags": {"type": "array", "items": {"type": "string"}}},
                  "required": ["version"]},
        "publish": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}
    })
}

fn graph() -> GraphDescriptor {
    let gate = approval("g", with(json!({"onDeny": "fail"}), json!({})));
    let root = seq(vec![
        compute("build", "build"),
        gate,
        compute("publish", "publish"),
    ]);
    common::descriptor("release", schemas(), Value::Null, root)
}

fn run_task(t: &smithers_core::TaskToRun) -> smithers_core::TaskResult {
    match t.node_id.as_str() {
        "build" => ok(
            "build",
            t.attempt,
            json!({"version": "1.2.0", "size": 42, "score": 0.5, "ok": true, "tags": ["a", "b"]}),
        ),
        _ => ok(
            &t.node_id,
            t.attempt,
            json!({"url": "https://example.test/1.2.0"}),
        ),
    }
}

/// Drives `run` until it parks or ends.
fn drive(engine: &mut Engine, run: &str) -> smithers_core::Step {
    common::drive(engine, run, graph, run_task)
}

/// A database holding r1 (parked at gate `g`), r2 (approved and finished: two decision-log
/// entries with r3) and r3 (denied: failed).
fn fill(db: &Path) {
    let mut e = Engine::open(db).unwrap();
    for run in ["r1", "r2", "r3"] {
        common::create(&mut e, run, NewRun::default());
        assert_eq!(drive(&mut e, run).status, "waiting-approval");
        e.release_run(run).unwrap();
    }
    e.approve(req("r2", "g", "ann")).unwrap();
    e.claim_run("r2", false).unwrap();
    assert_eq!(drive(&mut e, "r2").status, "finished");
    e.deny(req("r3", "g", "bob")).unwrap();
    e.claim_run("r3", false).unwrap();
    assert_eq!(drive(&mut e, "r3").status, "failed");
}

fn sqlite_file(dir: &common::TestDb, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn count(db: &Path, table: &str) -> i64 {
    query_at(db, &format!("SELECT COUNT(*) FROM {table}"))[0][0]
        .as_i64()
        .unwrap()
}

/// What operators see of a database: runs, their nodes and outputs, the inbox, the log.
fn view(db: &Path) -> Value {
    let mut e = Engine::open(db).unwrap();
    let runs: Vec<Value> = e
        .list_runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| json!([r.run_id, r.status, r.workflow_name, r.pending_approvals]))
        .collect();
    let mut inspected = Vec::new();
    for id in ["r1", "r2", "r3"] {
        let i = e.inspect(id).unwrap();
        inspected.push(json!({
            "nodes": i.nodes.iter().map(|n| json!([n.node_id, n.state, n.attempts])).collect::<Vec<_>>(),
            "outputs": i.outputs.iter().map(|o| json!([o.node_id, o.value])).collect::<Vec<_>>(),
            "approvals": i.approvals.iter().map(|a| json!([a.node_id, a.status, a.decided_by])).collect::<Vec<_>>(),
        }));
    }
    let events: Vec<Value> = e
        .feed(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|ev| json!([ev.run_id, ev.seq, ev.kind.as_str(), ev.feed_id]))
        .collect();
    let audit = e.audit_verify().unwrap();
    json!({"runs": runs, "inspected": inspected, "events": events,
           "audit": [audit.ok, audit.entries, audit.head_hash]})
}

/// Copies `from` into the fresh `to` and checks the copy; then finishes r1 in the copy.
fn copies_and_finishes_there(from: &Path, to: &Path) {
    fill(from);
    let before = digest(from);
    let mut seen = Vec::new();
    let report = migrate(from, to, &mut |p| seen.push(p.clone())).unwrap();
    assert_eq!(digest(from), before, "the source is only read");

    // Counts, table by table, equal the source's; the log verifies the same.
    for t in &report.tables {
        assert_eq!(count(from, &t.table), t.rows, "{}", t.table);
        assert_eq!(count(to, &t.table), t.rows, "{}", t.table);
    }
    let outputs: Vec<&str> = report
        .tables
        .iter()
        .filter(|t| t.output)
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(outputs, ["build", "gate", "publish"]);
    assert_eq!(report.runs, 3);
    assert!(report.audit.ok);
    assert_eq!(report.audit.entries, 2, "two decisions");
    assert!(report.rows > 20, "{}", report.rows);
    let last = seen.last().unwrap();
    assert_eq!((last.rows_done, last.rows), (report.rows, report.rows));
    assert_eq!(view(to), view(from));

    // The parked run is approved and finished in the copy.
    let mut e = Engine::open(to).unwrap();
    let outcome = e.approve(req("r1", "g", "carol")).unwrap();
    assert!(outcome.needs_resume);
    e.claim_run("r1", false).unwrap();
    let step = drive(&mut e, "r1");
    assert_eq!(step.status, "finished");
    assert_eq!(e.audit_verify().unwrap().entries, 3);
    let publish = e.inspect("r1").unwrap().outputs;
    assert!(
        publish
            .iter()
            .any(|o| o.node_id == "publish" && o.value["url"] == "https://example.test/1.2.0"),
        "{publish:?}"
    );
    // New runs number their events after the copied ones.
    common::create(&mut e, "r4", NewRun::default());
    assert_eq!(drive(&mut e, "r4").status, "waiting-approval");
    let feed = e.feed(0, 10_000).unwrap();
    let ids: Vec<i64> = feed.iter().filter_map(|ev| ev.feed_id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    drop(e);

    // Into a database that holds data: refused, nothing written.
    let other = common::TestDb::new();
    let third = sqlite_file(&other, "third.db");
    Engine::open(&third).unwrap();
    let snapshot = digest(to);
    let err = migrate(&third, to, &mut |_| {}).unwrap_err();
    assert_eq!(err.code(), "TARGET_NOT_EMPTY", "{err}");
    assert_eq!(digest(to), snapshot);
    let err = migrate(to, to, &mut |_| {}).unwrap_err();
    assert_eq!(err.code(), "SAME_DATABASE", "{err}");
}

#[test]
fn a_sqlite_database_moves_to_the_store_under_test() {
    let db = common::TestDb::new();
    let from = sqlite_file(&db, "from.db");
    copies_and_finishes_there(&from, db.db());
}

#[test]
fn the_store_under_test_moves_to_a_sqlite_database() {
    let db = common::TestDb::new();
    let to = sqlite_file(&db, "to.db");
    copies_and_finishes_there(db.db(), &to);
}

#[test]
fn a_source_with_a_run_being_driven_is_refused_and_nothing_is_written() {
    let db = common::TestDb::new();
    let to = sqlite_file(&db, "to.db");
    let mut e = db.engine();
    common::create(&mut e, "r1", NewRun::default());
    // Claimed and driven: the build task is handed out and not finished yet.
    let step = e.submit_graph("r1", graph()).unwrap();
    assert_eq!(step.tasks.len(), 1);
    let err = migrate(db.db(), &to, &mut |_| {}).unwrap_err();
    assert_eq!(err.code(), "SOURCE_IN_USE", "{err}");
    assert_eq!(err.details()["runs"], json!(["r1"]));
    assert_eq!(count(&to, "_smithers_runs"), 0, "nothing copied");
    assert_eq!(count(&to, "_smithers_meta"), 1, "only its schema version");
    // Once it parks (no owner), it moves.
    let step = e
        .complete_tasks("r1", step.tasks.iter().map(run_task).collect())
        .unwrap();
    assert_eq!(step.status, "waiting-approval");
    e.release_run("r1").unwrap();
    let report = migrate(db.db(), &to, &mut |_| {}).unwrap();
    assert_eq!(report.runs, 1);
}

#[test]
fn a_source_that_changes_during_the_copy_is_rolled_back() {
    let db = common::TestDb::new();
    let to = sqlite_file(&db, "to.db");
    fill(db.db());
    let mut other = db.engine();
    let mut decided = false;
    // A decision made by another process while the copy runs.
    let err = migrate(db.db(), &to, &mut |p| {
        if !decided && p.table == "_smithers_events" {
            other.approve(req("r1", "g", "dave")).unwrap();
            decided = true;
        }
    })
    .unwrap_err();
    assert!(decided);
    assert_eq!(err.code(), "SOURCE_CHANGED", "{err}");
    assert_eq!(count(&to, "_smithers_runs"), 0, "rolled back");
    // Again, with nothing writing: it moves, decision included.
    let report = migrate(db.db(), &to, &mut |_| {}).unwrap();
    assert_eq!(report.audit.entries, 3);
}

#[test]
fn an_output_table_with_rows_in_the_target_is_refused() {
    let db = common::TestDb::new();
    fill(db.db());
    let to = sqlite_file(&db, "to.db");
    // Something else's `build` table, with a row, in an otherwise empty database.
    Engine::open(&to).unwrap();
    rusqlite::Connection::open(&to)
        .unwrap()
        .execute_batch(
            "CREATE TABLE build (run_id TEXT, node_id TEXT, iteration INTEGER, version TEXT);
             INSERT INTO build VALUES ('x', 'build', 0, '0.1');",
        )
        .unwrap();
    let before = digest(&to);
    let err = migrate(db.db(), &to, &mut |_| {}).unwrap_err();
    assert_eq!(err.code(), "TARGET_NOT_EMPTY", "{err}");
    assert_eq!(err.details()["table"], "build");
    assert_eq!(digest(&to), before, "nothing written");
}
