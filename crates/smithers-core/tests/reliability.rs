//! What one bad workflow or one operator mistake must not do to a run (issue 12): schemas of
//! other workflows, databases of other versions, owners on other hosts, another workflow
//! resuming a run, hostile names.

mod common;

use std::path::{Path, PathBuf};

use common::{compute, create, decision_schema, digest, ok as result, seq};
use serde_json::{Value, json};
use smithers_core::{
    ClaimOptions, DecisionRequest, Engine, GraphDescriptor, NewRun, OpenOptions, OrphanCursor,
    RunError,
};

fn object(props: Value) -> Value {
    let required: Vec<String> = props
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({"type": "object", "properties": props, "required": required})
}

fn graph_with(name: &str, schemas: Value, root: Value) -> GraphDescriptor {
    common::descriptor(name, schemas, json!([]), root)
}

fn gate(id: &str) -> Value {
    common::approval(id, json!({"onDeny": "fail"}))
}

const READ_ONLY: OpenOptions = OpenOptions {
    read_only: true,
    must_exist: false,
};
const MUST_EXIST: OpenOptions = OpenOptions {
    read_only: false,
    must_exist: true,
};

/// A fresh database of the store under test, and its database string.
fn db() -> (common::TestDb, PathBuf) {
    let dir = common::TestDb::new();
    let path = dir.db().to_path_buf();
    (dir, path)
}

fn start(engine: &mut Engine, run_id: &str, name: &str, path: Option<&str>) {
    let new = NewRun {
        workflow_name: Some(name.into()),
        workflow_path: path.map(String::from),
        ..NewRun::default()
    };
    create(engine, run_id, new);
}

/// An engine that created run `r1` and let go of it (it is `running` with no owner).
fn released(path: &Path, name: &str, workflow: Option<&str>) -> Engine {
    let mut engine = Engine::open(path).unwrap();
    start(&mut engine, "r1", name, workflow);
    engine.release_run("r1").unwrap();
    engine
}

/// The error an open gives (`Engine` is not `Debug`, so no `unwrap_err`).
fn open_err(path: &Path, options: OpenOptions) -> smithers_core::Error {
    match Engine::open_with(path, options) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

fn schema_version(path: &Path) -> String {
    common::query_at(
        path,
        "SELECT value FROM _smithers_meta WHERE key = 'schema_version'",
    )[0][0]
        .as_str()
        .unwrap()
        .to_string()
}

// ---- run ids and output keys -------------------------------------------------------------

#[test]
fn run_ids_made_of_dots_are_refused() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    for id in [".", "..", "...."] {
        let err = engine
            .create_run(NewRun {
                run_id: Some(id.into()),
                ..NewRun::default()
            })
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_RUN_ID", "{id}");
    }
    for id in ["a.b", ".hidden", "v1..2"] {
        start(&mut engine, id, "w", None);
    }
}

#[test]
fn output_keys_that_name_sqlite_tables_are_refused_at_validation() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    let before = digest(&path);
    for key in ["sqliteMaster", "sqliteSequence", "sqlite_stat1"] {
        let g = json!({"version": 1, "schemas": {key: object(json!({"v": {"type": "number"}}))},
                       "root": compute("a", key)});
        let err = GraphDescriptor::parse(&g.to_string())
            .and_then(|g| engine.validate_graph(&g))
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_IDENTIFIER", "{key}");
    }
    assert_eq!(digest(&path), before);
}

// ---- database versions -------------------------------------------------------------------

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_as_it_is() {
    let (_dir, path) = db();
    drop(Engine::open(&path).unwrap());
    common::execute_at(
        &path,
        "UPDATE _smithers_meta SET value = '99' WHERE key = 'schema_version'",
    );
    let before = digest(&path);
    for options in [OpenOptions::default(), READ_ONLY, MUST_EXIST] {
        let err = open_err(&path, options);
        assert_eq!(err.code(), "SCHEMA_TOO_NEW", "{options:?}");
        assert!(err.to_string().contains("v99"), "{err}");
    }
    assert_eq!(schema_version(&path), "99");
    assert_eq!(digest(&path), before);
}

#[test]
fn read_only_opening_never_creates_nor_migrates() {
    let (dir, path) = db();
    let missing = if dir.is_postgres() {
        PathBuf::from(common::pg::fresh_url())
    } else {
        dir.path().join("typo.db")
    };
    for options in [READ_ONLY, MUST_EXIST] {
        let err = open_err(&missing, options);
        assert_eq!(err.code(), "DB_NOT_FOUND");
        assert!(
            !common::exists(&missing),
            "a mistyped path must not become a database"
        );
    }
    drop(Engine::open(&path).unwrap());
    common::execute_at(
        &path,
        "UPDATE _smithers_meta SET value = '3' WHERE key = 'schema_version'",
    );
    let err = open_err(&path, READ_ONLY);
    assert_eq!(err.code(), "SCHEMA_OUTDATED");
    assert_eq!(schema_version(&path), "3");
    // A file that is some other program's database is not taken for an empty smithers one.
    let other = if dir.is_postgres() {
        let url = common::pg::fresh_url();
        let schema = url.rsplit_once("schema=").unwrap().1.to_string();
        common::pg::client(&url)
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; CREATE TABLE {schema}.notes (body TEXT)"
            ))
            .unwrap();
        PathBuf::from(url)
    } else {
        let file = dir.path().join("other.db");
        common::execute_at(&file, "CREATE TABLE notes (body TEXT)");
        file
    };
    let err = open_err(&other, MUST_EXIST);
    assert_eq!(err.code(), "DB_NOT_FOUND");
}

// ---- output schemas per run ----------------------------------------------------------------

#[test]
fn a_parked_run_reads_its_rows_through_the_schema_it_was_started_with() {
    let (_dir, path) = db();
    let mut b = Engine::open(&path).unwrap();
    let b_schemas = json!({"result": object(json!({"ok": {"type": "boolean"}, "extra": {"type": "boolean"}})),
                           "gate": decision_schema()});
    start(&mut b, "run-b", "b", None);
    let step = b
        .submit_graph(
            "run-b",
            graph_with(
                "b",
                b_schemas.clone(),
                seq(vec![compute("produce", "result"), gate("g")]),
            ),
        )
        .unwrap();
    assert_eq!(step.tasks.len(), 1);
    let step = b
        .complete_tasks(
            "run-b",
            vec![result("produce", 1, json!({"ok": true, "extra": true}))],
        )
        .unwrap();
    assert_eq!(step.status, "waiting-approval");

    // Another workflow, the same key, another schema: it runs to its end in between.
    let mut a = Engine::open(&path).unwrap();
    let a_schemas = json!({"result": object(json!({"ok": {"type": "boolean"}}))});
    start(&mut a, "run-a", "a", None);
    a.submit_graph(
        "run-a",
        graph_with("a", a_schemas, compute("produce", "result")),
    )
    .unwrap();
    let step = a
        .complete_tasks("run-a", vec![result("produce", 1, json!({"ok": false}))])
        .unwrap();
    assert_eq!(step.status, "finished");

    let mut again = Engine::open(&path).unwrap();
    again
        .approve(DecisionRequest {
            run_id: "run-b".into(),
            decided_by: Some("alice".into()),
            ..DecisionRequest::default()
        })
        .unwrap();
    let snapshot = again.claim_run("run-b", false).unwrap();
    let row = snapshot
        .outputs
        .iter()
        .find(|o| o.node_id == "produce")
        .unwrap();
    assert_eq!(row.value, json!({"ok": true, "extra": true}));
    let inspected = again.inspect("run-a").unwrap();
    assert_eq!(inspected.outputs.len(), 1);
    assert_eq!(inspected.outputs[0].value, json!({"ok": false}));
}

#[test]
fn two_keys_that_map_to_one_table_are_refused_before_anything_is_written() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    let schema = object(json!({"v": {"type": "number"}}));
    let both = graph_with(
        "w",
        json!({"fooBar": schema, "foo_bar": schema}),
        seq(vec![compute("a", "fooBar"), compute("b", "foo_bar")]),
    );
    let before = digest(&path);
    let err = engine.validate_graph(&both).unwrap_err();
    assert_eq!(err.code(), "TABLE_NAME_CONFLICT");
    assert!(err.to_string().contains("fooBar") && err.to_string().contains("foo_bar"));
    assert_eq!(digest(&path), before);

    // Across workflows: `fooBar` owns the table once a run used it.
    start(&mut engine, "r1", "w", None);
    engine
        .submit_graph(
            "r1",
            graph_with("w", json!({"fooBar": schema}), compute("a", "fooBar")),
        )
        .unwrap();
    start(&mut engine, "r2", "w", None);
    let before = digest(&path);
    let other = graph_with("w", json!({"foo_bar": schema}), compute("b", "foo_bar"));
    assert_eq!(
        engine.validate_graph(&other).unwrap_err().code(),
        "TABLE_NAME_CONFLICT"
    );
    assert_eq!(
        engine.submit_graph("r2", other).unwrap_err().code(),
        "TABLE_NAME_CONFLICT"
    );
    assert_eq!(digest(&path), before);
}

#[test]
fn a_field_whose_column_cannot_hold_the_new_type_is_refused_naming_both() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    start(&mut engine, "r1", "w", None);
    engine
        .submit_graph(
            "r1",
            graph_with(
                "w",
                json!({"result": object(json!({"extra": {"type": "boolean"}}))}),
                compute("a", "result"),
            ),
        )
        .unwrap();
    let before = digest(&path);
    let changed = graph_with(
        "w",
        json!({"result": object(json!({"extra": {"type": "string"}}))}),
        compute("a", "result"),
    );
    let err = engine.validate_graph(&changed).unwrap_err();
    assert_eq!(err.code(), "SCHEMA_CONFLICT");
    let text = err.to_string();
    assert!(
        text.contains("INTEGER") && text.contains("TEXT") && text.contains("extra"),
        "{text}"
    );
    assert_eq!(digest(&path), before);
    // A compatible change (a new field, a number that was an integer) is a new version.
    let grown = graph_with(
        "w",
        json!({"result": object(json!({"extra": {"type": "boolean"}, "more": {"type": "string"}}))}),
        compute("a", "result"),
    );
    engine.validate_graph(&grown).unwrap();
}

#[test]
fn a_render_that_changes_a_key_s_schema_after_the_run_wrote_rows_is_refused() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    let v1 = json!({"result": object(json!({"v": {"type": "number"}}))});
    let v2 = json!({"result": object(json!({"v": {"type": "number"}, "w": {"type": "number"}}))});
    start(&mut engine, "r1", "w", None);
    // No rows yet: a new schema simply replaces the first.
    engine
        .submit_graph(
            "r1",
            graph_with(
                "w",
                v1.clone(),
                seq(vec![compute("a", "result"), compute("b", "result")]),
            ),
        )
        .unwrap();
    engine
        .submit_graph(
            "r1",
            graph_with(
                "w",
                v2.clone(),
                seq(vec![compute("a", "result"), compute("b", "result")]),
            ),
        )
        .unwrap();
    engine
        .complete_tasks("r1", vec![result("a", 1, json!({"v": 1, "w": 2}))])
        .unwrap();
    let before = digest(&path);
    let err = engine
        .submit_graph(
            "r1",
            graph_with(
                "w",
                v1,
                seq(vec![compute("a", "result"), compute("b", "result")]),
            ),
        )
        .unwrap_err();
    assert_eq!(err.code(), "SCHEMA_CHANGED");
    assert_eq!(digest(&path), before);
}

// ---- leases ------------------------------------------------------------------------------

#[test]
fn an_owner_on_another_host_holds_its_run_until_its_lease_expires() {
    let (_dir, path) = db();
    let _a = released(&path, "w", None);
    let far = smithers_core::time::now_ms() + 60_000;
    common::execute_at(
        &path,
        &format!(
            "UPDATE _smithers_runs SET owner = 'pod-7f9c:1:1:0', lease_expires_at_ms = {far} WHERE run_id = 'r1'"
        ),
    );
    let mut b = Engine::open(&path).unwrap();
    assert_eq!(b.claim_run("r1", false).unwrap_err().code(), "RUN_OWNED");
    assert!(b.orphaned_runs(100, true, None).unwrap().is_empty());
    assert_eq!(b.run_summary("r1").unwrap().owner_liveness, Some("alive"));

    // The owner stops renewing (its container is gone): once the lease expires, anyone may
    // take the run over, no force needed.
    common::execute_at(
        &path,
        &format!(
            "UPDATE _smithers_runs SET lease_expires_at_ms = {} WHERE run_id = 'r1'",
            far - 120_000
        ),
    );
    assert_eq!(b.run_summary("r1").unwrap().owner_liveness, Some("dead"));
    let orphans = b.orphaned_runs(100, true, None).unwrap();
    assert_eq!(orphans.len(), 1);
    b.claim_run("r1", false).unwrap();
    assert_eq!(
        b.run_summary("r1").unwrap().owner.as_deref(),
        Some(b.owner_id())
    );
}

#[test]
fn an_owner_renews_its_lease_while_it_lives() {
    let (_dir, path) = db();
    let mut a = Engine::open(&path).unwrap();
    a.set_lease_ms(90);
    start(&mut a, "r1", "w", None);
    let lease = |path: &Path| -> i64 {
        common::query_at(
            path,
            "SELECT lease_expires_at_ms FROM _smithers_runs WHERE run_id = 'r1'",
        )[0][0]
            .as_i64()
            .unwrap()
    };
    let first = lease(&path);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lease(&path) == first {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was never renewed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(lease(&path) > first);
}

#[test]
fn an_engine_that_lost_its_run_writes_nothing_more_for_it() {
    let (_dir, path) = db();
    let schemas = json!({"result": object(json!({"v": {"type": "number"}}))});
    let mut a = Engine::open(&path).unwrap();
    start(&mut a, "r1", "w", None);
    let step = a
        .submit_graph("r1", graph_with("w", schemas, compute("a", "result")))
        .unwrap();
    assert_eq!(step.tasks.len(), 1);
    // Taken over (A's lease expired, or an operator forced it).
    let mut b = Engine::open(&path).unwrap();
    b.claim_run("r1", true).unwrap();
    let before = digest(&path);
    let err = a
        .complete_tasks("r1", vec![result("a", 1, json!({"v": 1}))])
        .unwrap_err();
    assert_eq!(err.code(), "RUN_OWNED");
    assert_eq!(digest(&path), before);
}

/// The engine that took the run over finished it (and let go of it: no owner now) before the
/// old owner reported its late result: it is refused (RUN_OWNED) and nothing is written.
#[test]
fn a_late_result_after_the_adopter_ended_the_run_is_refused() {
    let (_dir, path) = db();
    let schemas = json!({"result": object(json!({"v": {"type": "number"}}))});
    let g = || graph_with("w", schemas.clone(), compute("a", "result"));
    let mut a = Engine::open(&path).unwrap();
    start(&mut a, "r1", "w", None);
    assert_eq!(a.submit_graph("r1", g()).unwrap().tasks.len(), 1);
    let mut b = Engine::open(&path).unwrap();
    b.claim_run("r1", true).unwrap();
    let step = b.submit_graph("r1", g()).unwrap();
    let attempt = step.tasks[0].attempt;
    let done = b
        .complete_tasks("r1", vec![result("a", attempt, json!({"v": 2}))])
        .unwrap();
    assert_eq!(done.status, "finished");
    let before = digest(&path);
    let err = a
        .complete_tasks("r1", vec![result("a", 1, json!({"v": 1}))])
        .unwrap_err();
    assert_eq!(err.code(), "RUN_OWNED");
    assert_eq!(digest(&path), before);
    assert_eq!(b.inspect("r1").unwrap().outputs[0].value, json!({"v": 2}));
}

// ---- resuming with another workflow -------------------------------------------------------

#[test]
fn claiming_a_run_for_another_workflow_is_refused_unless_forced() {
    let (_dir, path) = db();
    let mut engine = released(&path, "deploy", Some("/srv/deploy.tsx"));
    let before = digest(&path);
    let claim = |engine: &mut Engine, path: &str, name: &str, force: bool| {
        engine.claim_run_with(
            "r1",
            &ClaimOptions {
                force,
                workflow_path: Some(path.into()),
                workflow_name: Some(name.into()),
                ..ClaimOptions::default()
            },
        )
    };
    let err = claim(&mut engine, "/srv/other.tsx", "other", false).unwrap_err();
    assert_eq!(err.code(), "WORKFLOW_MISMATCH");
    assert!(
        err.to_string().contains("/srv/other.tsx") && err.to_string().contains("deploy"),
        "{err}"
    );
    let err = claim(&mut engine, "/srv/deploy.tsx", "other", false).unwrap_err();
    assert_eq!(err.code(), "WORKFLOW_MISMATCH");
    // A file alone (no name to tell which workflow it holds) is not taken on trust.
    let err = engine
        .claim_run_with(
            "r1",
            &ClaimOptions {
                workflow_path: Some("/srv/other.tsx".into()),
                ..ClaimOptions::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), "WORKFLOW_MISMATCH");
    assert_eq!(digest(&path), before);
    // The same workflow from another file (moved): resumed, and the run records the file.
    let snapshot = claim(&mut engine, "/srv/moved/deploy.tsx", "deploy", false).unwrap();
    assert_eq!(
        snapshot.workflow_path.as_deref(),
        Some("/srv/moved/deploy.tsx")
    );
    engine.release_run("r1").unwrap();
    let snapshot = claim(&mut engine, "/srv/other.tsx", "other", true).unwrap();
    assert_eq!(snapshot.workflow_path.as_deref(), Some("/srv/other.tsx"));
    assert_eq!(engine.run_summary("r1").unwrap().workflow_name, "other");
}

// ---- orphaned runs -----------------------------------------------------------------------

#[test]
fn orphaned_runs_page_through_all_and_unresumable_ones_do_not_hide_the_rest() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    for i in 0..150 {
        let id = format!("r{i:03}");
        start(&mut engine, &id, "w", Some("/gone.tsx"));
        engine.release_run(&id).unwrap();
    }
    let mut seen = 0;
    let mut after: Option<OrphanCursor> = None;
    loop {
        let page = engine.orphaned_runs(100, true, after.as_ref()).unwrap();
        if page.is_empty() {
            break;
        }
        seen += page.len();
        let last = page.last().unwrap();
        after = Some(OrphanCursor {
            updated_at_ms: last.updated_at_ms,
            run_id: last.run.run_id.clone(),
        });
    }
    assert_eq!(seen, 150);
    for i in 0..120 {
        engine
            .mark_unresumable(
                &format!("r{i:03}"),
                RunError {
                    code: "WORKFLOW_NOT_FOUND".into(),
                    message: "no such workflow file: /gone.tsx".into(),
                    node_id: None,
                },
            )
            .unwrap();
    }
    let left = engine.orphaned_runs(100, true, None).unwrap();
    assert_eq!(left.len(), 30);
    assert_eq!(left[0].run.run_id, "r120");
    let marked = engine.run_summary("r000").unwrap();
    assert_eq!(
        marked.resume_error.map(|e| e.code).as_deref(),
        Some("WORKFLOW_NOT_FOUND")
    );
    // Claiming it (the operator fixed the cause) clears the mark.
    engine.claim_run("r000", false).unwrap();
    assert!(engine.run_summary("r000").unwrap().resume_error.is_none());
}

// ---- decisions ---------------------------------------------------------------------------

#[test]
fn control_characters_in_names_and_notes_are_refused_and_nothing_is_recorded() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    start(&mut engine, "r1", "w", None);
    let step = engine
        .submit_graph(
            "r1",
            graph_with("w", json!({"gate": decision_schema()}), gate("g")),
        )
        .unwrap();
    assert_eq!(step.status, "waiting-approval");
    let before = digest(&path);
    let bad = [
        (Some("eve\u{1b}[2J"), None),
        (Some("eve\nmallory"), None),
        (Some("alice"), Some("ok\u{1b}]0;pwned\u{7}")),
        (Some("alice"), Some("nul\u{0}")),
    ];
    for (by, note) in bad {
        let err = engine
            .approve(DecisionRequest {
                run_id: "r1".into(),
                decided_by: by.map(String::from),
                note: note.map(String::from),
                ..DecisionRequest::default()
            })
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_DECISION", "{by:?} {note:?}");
    }
    assert_eq!(digest(&path), before);
    engine
        .approve(DecisionRequest {
            run_id: "r1".into(),
            decided_by: Some("alice".into()),
            note: Some("line one\nline two\ttabbed".into()),
            ..DecisionRequest::default()
        })
        .unwrap();
}

#[test]
fn an_output_nested_deeper_than_the_limit_fails_its_task() {
    let (_dir, path) = db();
    let mut engine = Engine::open(&path).unwrap();
    start(&mut engine, "r1", "w", None);
    let schemas = json!({"result": {"type": "object", "properties": {"v": {}}}});
    engine
        .submit_graph("r1", graph_with("w", schemas, compute("a", "result")))
        .unwrap();
    let mut deep = json!(1);
    for _ in 0..101 {
        deep = json!([deep]);
    }
    let step = engine
        .complete_tasks("r1", vec![result("a", 1, json!({"v": deep}))])
        .unwrap();
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "INVALID_OUTPUT");
}

/// PostgreSQL: the server ends the engine's connections (a restart, a network cut, an
/// operator's pg_terminate_backend): the call that meets the lost connection fails with
/// DB_ERROR and changes nothing; the engine connects again and nothing committed is lost.
/// (SQLite has no connection to lose.)
#[test]
fn an_engine_connects_again_after_its_connections_were_ended() {
    let dir = common::TestDb::new();
    if !dir.is_postgres() {
        return;
    }
    let app = format!("reconnect_{}", std::process::id());
    let url = format!("{}&application_name={app}", dir.db().display());
    let mut engine = Engine::open(&url).unwrap();
    start(&mut engine, "r1", "w", None);
    engine
        .submit_graph(
            "r1",
            graph_with("w", json!({"gate": decision_schema()}), gate("g")),
        )
        .unwrap();
    let ended = common::query(
        &dir,
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{app}'"
        ),
    );
    assert!(ended[0][0].as_i64().unwrap() >= 1, "{ended:?}");
    let decide = |engine: &mut Engine| {
        engine.approve(DecisionRequest {
            run_id: "r1".into(),
            decided_by: Some("alice".into()),
            ..DecisionRequest::default()
        })
    };
    let outcome = match decide(&mut engine) {
        Ok(outcome) => outcome,
        Err(e) => {
            assert_eq!(e.code(), "DB_ERROR");
            decide(&mut engine).unwrap()
        }
    };
    assert_eq!(outcome.node_id, "g");
    let inspected = engine.inspect("r1").unwrap();
    assert_eq!(inspected.approvals[0].status, "approved");
}

/// Processes that start runs of a new workflow at once on a new database: each registers the
/// same output schema, planned before its write lock. One version is registered, every run
/// starts (the loader-cache test's four parallel `smithers up` met UNIQUE constraint failures).
#[test]
fn engines_registering_one_new_schema_at_once_agree_on_its_version() {
    for round in 0..8 {
        let (_dir, path) = db();
        Engine::open(&path).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut engine = Engine::open(&path).unwrap();
                    let run = format!("r{n}");
                    start(&mut engine, &run, "same", None);
                    barrier.wait();
                    let graph = graph_with(
                        "same",
                        json!({ "build": object(json!({"v": {"type": "number"}})) }),
                        seq(vec![compute("build", "build")]),
                    );
                    engine.submit_graph(&run, graph).map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let versions = common::query_at(
            &path,
            "SELECT version FROM _smithers_schema_versions WHERE table_key = 'build'",
        );
        assert_eq!(versions, vec![vec![json!(1)]], "round {round}");
        let bound = common::query_at(
            &path,
            "SELECT COUNT(*) FROM _smithers_run_schemas WHERE table_key = 'build' AND version = 1",
        );
        assert_eq!(bound, vec![vec![json!(4)]], "round {round}");
    }
}

/// Engines writing different runs at once (on PostgreSQL their transactions run side by side,
/// each locking only its runs' rows) never let a reader of the feed skip an event: at every
/// read, the ids after the reader's cursor are the next ones with no gap (an id committed
/// "behind" a cursor would show as a gap first), and in the end every event is in the feed
/// once, numbered 1..N.
#[test]
fn concurrent_writers_keep_the_feed_gapless_for_a_reader() {
    let (_dir, path) = db();
    Engine::open(&path).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut engine = Engine::open(&path).unwrap();
                for i in 0..12 {
                    let run = format!("w{w}r{i}");
                    start(&mut engine, &run, "feed", None);
                    engine
                        .submit_graph(
                            &run,
                            graph_with("feed", json!({"gate": decision_schema()}), gate("g")),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    let reader = Engine::open(&path).unwrap();
    let mut cursor = 0;
    let mut seen = std::collections::HashSet::new();
    let mut read = |cursor: &mut i64| {
        for e in reader.feed(*cursor, 1000).unwrap() {
            let id = e.feed_id.unwrap();
            assert_eq!(
                id,
                *cursor + 1,
                "a gap after {cursor}: {} {}",
                e.run_id,
                e.seq
            );
            assert!(
                seen.insert((e.run_id.clone(), e.seq)),
                "{} {} twice",
                e.run_id,
                e.seq
            );
            *cursor = id;
        }
    };
    while writers.iter().any(|h| !h.is_finished()) {
        read(&mut cursor);
    }
    for h in writers {
        h.join().unwrap();
    }
    read(&mut cursor);
    assert_eq!(cursor, reader.feed_head().unwrap());
    assert_eq!(i64::try_from(seen.len()).unwrap(), cursor);
    // Every run's events are numbered 1..n in its own order too.
    for w in 0..4 {
        for i in 0..12 {
            let run = format!("w{w}r{i}");
            let seqs: Vec<i64> = reader
                .events(&run, 0, 1000)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert!(!seqs.is_empty());
            assert_eq!(
                seqs,
                (1..=i64::try_from(seqs.len()).unwrap()).collect::<Vec<_>>()
            );
        }
    }
}

/// A claim that committed but whose reads after the COMMIT failed (on PostgreSQL: the
/// connection lost right then, a server restarting) has the run owned by this engine in the
/// database: `release_run` lets it go. Otherwise the engine's lease keeper renews a run it
/// never drives, and nobody else may take it (a worker's run stuck at a server restart).
#[test]
fn a_claim_that_failed_after_its_commit_is_let_go_by_release_run() {
    let (_dir, path) = db();
    let schemas = json!({"result": object(json!({"v": {"type": "number"}}))});
    let mut a = Engine::open(&path).unwrap();
    start(&mut a, "r1", "w", None);
    a.submit_graph("r1", graph_with("w", schemas, compute("a", "result")))
        .unwrap();
    a.release_run("r1").unwrap();
    // A node row the engine cannot read back: the claim's transaction never reads it (it
    // commits), the reads that load the run after the COMMIT fail.
    common::execute_at(
        &path,
        "UPDATE _smithers_nodes SET state = 'unreadable' WHERE run_id = 'r1'",
    );
    let owner = |path: &Path| -> Value {
        common::query_at(path, "SELECT owner FROM _smithers_runs WHERE run_id = 'r1'")[0][0].clone()
    };
    let mut b = Engine::open(&path).unwrap();
    let Err(err) = b.claim_run("r1", false) else {
        panic!("a run whose nodes cannot be read was claimed");
    };
    assert_eq!(err.code(), "CORRUPT_STORE", "{err}");
    assert!(!b.is_driving("r1"));
    // The claim committed: the run is B's in the database…
    assert_eq!(owner(&path), json!(b.owner_id()));
    // …until B lets go of it, as the binding's caller does after a failed claim.
    b.release_run("r1").unwrap();
    assert_eq!(owner(&path), Value::Null);
}

/// Processes creating one new SQLite file at the same moment (two `smithers serve`, parallel
/// `up`s): each switches it to WAL, which SQLite answers with SQLITE_BUSY at once rather than
/// waiting (the busy handler is not called there). Every opener gets an engine; none fails
/// with "database is locked" (it did in 19 of 30 rounds of three processes).
#[test]
fn openers_racing_to_create_one_sqlite_file_all_get_an_engine() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smithers.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    Engine::open(&path).map(|_| ())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {} {e}", e.code()));
        }
    }
}
