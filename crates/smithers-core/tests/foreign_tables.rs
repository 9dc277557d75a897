//! A `_smithers_*` table that is not the engine's — made by something else, or altered behind
//! its back: a column of another type, a column missing — is refused with `CORRUPT_STORE`
//! by every call that reads it, on both stores, and the call changes nothing. Nothing panics
//! (PostgreSQL's `Row::get` would, on a type it cannot convert).

mod common;

use common::{approval, decision_schema, digest_db, execute_batch, req, with};
use serde_json::{Value, json};
use smithers_core::views::{ApprovalFilter, RunFilter};
use smithers_core::{Engine, GraphDescriptor, NewRun};

fn graph() -> GraphDescriptor {
    let gate = approval("g", with(json!({"onDeny": "fail"}), json!({})));
    let root = json!({"kind": "sequence", "children": [gate]});
    common::descriptor(
        "foreign",
        json!({"gate": decision_schema()}),
        Value::Null,
        root,
    )
}

/// A database holding run `r1`, parked at gate `g`, with no engine open on it.
fn parked() -> common::TestDb {
    let db = common::TestDb::new();
    let mut engine = db.engine();
    common::create(&mut engine, "r1", NewRun::default());
    let step = engine.submit_graph("r1", graph()).unwrap();
    assert_eq!(step.status, "waiting-approval");
    engine.release_run("r1").unwrap();
    db
}

/// The code of a call's error (a call that succeeded is a test failure).
fn code<T: std::fmt::Debug>(what: &str, r: smithers_core::Result<T>) -> String {
    match r {
        Ok(v) => panic!("{what} read a foreign table as the engine's: {v:?}"),
        Err(e) => {
            assert!(e.to_string().contains("nothing was changed"), "{what}: {e}");
            e.code().to_string()
        }
    }
}

#[test]
fn a_column_of_another_type_is_corrupt_store_and_changes_nothing() {
    let db = parked();
    // Something else replaced the run's status (text) with a number.
    execute_batch(
        &db,
        "DROP INDEX _smithers_runs_by_status;
         ALTER TABLE _smithers_runs DROP COLUMN status;
         ALTER TABLE _smithers_runs ADD COLUMN status INTEGER;
         UPDATE _smithers_runs SET status = 7;",
    );
    let before = digest_db(&db);
    let mut engine = Engine::open(db.db()).unwrap();
    let calls: Vec<(&str, String)> = vec![
        ("ps", code("ps", engine.list_runs(&RunFilter::default()))),
        ("summary", code("summary", engine.run_summary("r1"))),
        ("inspect", code("inspect", engine.inspect("r1"))),
        (
            "inbox",
            code(
                "inbox",
                engine.pending_approvals(&ApprovalFilter::default()),
            ),
        ),
        (
            "approve",
            code("approve", engine.approve(req("r1", "g", "ann"))),
        ),
        ("claim", code("claim", engine.claim_run("r1", false))),
        ("cancel", code("cancel", engine.cancel_run("r1"))),
    ];
    for (what, code) in &calls {
        assert_eq!(code, "CORRUPT_STORE", "{what}");
    }
    let err = engine.list_runs(&RunFilter::default()).unwrap_err();
    assert_eq!(err.details()["what"], "column", "{err}");
    if !db.is_postgres() {
        // PostgreSQL refuses the statement comparing the column with a status before any row
        // is read, and does not say which column it was.
        assert_eq!(err.details()["value"], "status", "{err}");
    }
    drop(engine);
    assert_eq!(digest_db(&db), before, "nothing was written");
}

#[test]
fn a_missing_column_is_corrupt_store_and_changes_nothing() {
    let db = parked();
    execute_batch(
        &db,
        "ALTER TABLE _smithers_approvals DROP COLUMN decided_by;",
    );
    let before = digest_db(&db);
    let mut engine = Engine::open(db.db()).unwrap();
    assert_eq!(
        code("approve", engine.approve(req("r1", "g", "ann"))),
        "CORRUPT_STORE"
    );
    assert_eq!(
        code(
            "inbox",
            engine.pending_approvals(&ApprovalFilter::default())
        ),
        "CORRUPT_STORE"
    );
    let err = engine.approve(req("r1", "g", "ann")).unwrap_err();
    assert_eq!(err.details()["value"], "decided_by", "{err}");
    let err = engine
        .pending_approvals(&ApprovalFilter::default())
        .unwrap_err();
    assert_eq!(err.details()["value"], "decided_by", "{err}");
    drop(engine);
    assert_eq!(digest_db(&db), before, "nothing was written");
}

#[test]
fn a_foreign_smithers_table_in_a_new_database_is_refused_when_opened() {
    let db = common::TestDb::new();
    // Something else made `_smithers_runs` first, in a database (schema) the engine never
    // opened.
    let create = "CREATE TABLE _smithers_runs (run_id TEXT PRIMARY KEY, status INTEGER);
                  INSERT INTO _smithers_runs VALUES ('x', 3);";
    if db.is_postgres() {
        let url = db.db().to_str().unwrap();
        let schema = url.rsplit_once("schema=").unwrap().1;
        common::pg::client(url)
            .batch_execute(&format!("CREATE SCHEMA \"{schema}\"; {create}"))
            .unwrap();
    } else {
        execute_batch(&db, create);
    }
    let before = digest_db(&db);
    let err = Engine::open(db.db()).err().expect("refused");
    assert_eq!(err.code(), "CORRUPT_STORE", "{err}");
    assert_eq!(digest_db(&db), before, "nothing was written");
    // Again: the same refusal, not a half-made schema taken for the engine's.
    let err = Engine::open(db.db()).err().expect("refused");
    assert_eq!(err.code(), "CORRUPT_STORE", "{err}");
}
