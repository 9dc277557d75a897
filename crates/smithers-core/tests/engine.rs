//! The engine driven the way the JS driver drives it: create/claim, submit graphs, complete
//! compute tasks, decide gates.

mod common;

use common::{decision_schema, open, start};
use serde_json::{Value, json};
use smithers_core::{DecisionRequest, GraphDescriptor, Step, TaskResult};

fn step_schema() -> Value {
    json!({"type": "object", "properties": {"v": {"type": "number"}}, "required": ["v"], "additionalProperties": false})
}

fn graph(root: Value, deps: Value) -> GraphDescriptor {
    let schemas = json!({"step": step_schema(), "gate": decision_schema(), "publishApproval": decision_schema()});
    common::descriptor("test", schemas, deps, root)
}

fn static_task(id: &str, v: i64) -> Value {
    common::static_task(id, "step", json!({"v": v}))
}

fn compute_task(id: &str) -> Value {
    common::compute(id, "step")
}

fn approval(id: &str, on_deny: &str) -> Value {
    common::approval(
        id,
        json!({"onDeny": on_deny, "request": {"title": format!("Approve {id}?"), "summary": "s"}}),
    )
}

fn ok(node: &str, attempt: i64, v: i64) -> TaskResult {
    common::ok(node, attempt, json!({"v": v}))
}

fn decide(run_id: &str, node: Option<&str>, by: &str) -> DecisionRequest {
    DecisionRequest {
        run_id: run_id.into(),
        node_id: node.map(String::from),
        decided_by: Some(by.into()),
        note: Some("ship it".into()),
        ..DecisionRequest::default()
    }
}

fn count(db: &common::TestDb, sql: &str) -> i64 {
    common::query(db, sql)[0][0].as_i64().unwrap()
}

#[test]
fn publish_with_approval_end_to_end() {
    let (dir, mut engine) = open();
    start(&mut engine, "r1");
    let g = || {
        graph(
            json!({"kind": "sequence", "children": [static_task("build", 1), approval("publish", "fail"), compute_task("deploy")]}),
            json!([]),
        )
    };
    let step = engine.submit_graph("r1", g()).unwrap();
    assert_eq!(step.status, "waiting-approval");
    assert_eq!(step.outputs.len(), 1, "the static build output is returned");
    assert!(step.tasks.is_empty());
    let pending = engine.pending_approvals(&Default::default()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].title.as_deref(), Some("Approve publish?"));

    let outcome = engine.approve(decide("r1", None, "alice")).unwrap();
    assert_eq!(outcome.node_id, "publish");
    assert!(outcome.needs_resume);
    assert_eq!(outcome.run_status, "running");
    let db = &dir;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM gate WHERE approved = 1 AND decided_by = 'alice'"
        ),
        1
    );

    let snap = engine.claim_run("r1", false).unwrap();
    assert_eq!(snap.outputs.len(), 2);
    let step = engine.submit_graph("r1", g()).unwrap();
    assert_eq!(step.tasks.len(), 1);
    assert_eq!(step.tasks[0].node_id, "deploy");
    let step = engine
        .complete_tasks("r1", vec![ok("deploy", 1, 3)])
        .unwrap();
    assert_eq!(step.status, "finished");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM step WHERE run_id = 'r1'"),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM _smithers_attempts WHERE run_id = 'r1' AND node_id = 'build'"
        ),
        1
    );
}

#[test]
fn a_second_decision_is_refused_and_names_the_first() {
    let (_dir, mut engine) = open();
    start(&mut engine, "r");
    engine
        .submit_graph(
            "r",
            graph(
                json!({"kind": "sequence", "children": [approval("g", "fail")]}),
                json!([]),
            ),
        )
        .unwrap();
    engine.approve(decide("r", Some("g"), "alice")).unwrap();
    let err = engine.deny(decide("r", Some("g"), "bob")).unwrap_err();
    assert_eq!(err.code(), "ALREADY_DECIDED");
    assert!(err.to_string().contains("alice"), "{err}");
    assert_eq!(err.details()["decidedBy"], "alice");
}

#[test]
fn lookup_errors_have_codes() {
    let (_dir, mut engine) = open();
    assert_eq!(
        engine
            .approve(decide("nope", None, "a"))
            .unwrap_err()
            .code(),
        "RUN_NOT_FOUND"
    );
    start(&mut engine, "r");
    engine
        .submit_graph(
            "r",
            graph(json!({"kind": "parallel", "children": [approval("a", "fail"), approval("b", "fail"), compute_task("c")]}), json!([])),
        )
        .unwrap();
    let err = engine.approve(decide("r", None, "x")).unwrap_err();
    assert_eq!(err.code(), "AMBIGUOUS_APPROVAL");
    assert!(err.to_string().contains("a (iteration 0)"), "{err}");
    assert_eq!(
        engine
            .approve(decide("r", Some("c"), "x"))
            .unwrap_err()
            .code(),
        "NOT_WAITING"
    );
    assert_eq!(
        engine
            .approve(decide("r", Some("zzz"), "x"))
            .unwrap_err()
            .code(),
        "NODE_NOT_FOUND"
    );
}

#[test]
fn parallel_gates_are_requested_together_and_move_independently() {
    let (_dir, mut engine) = open();
    start(&mut engine, "p");
    let g = || {
        graph(
            json!({"kind": "parallel", "children": [
                {"kind": "sequence", "children": [approval("gateA", "fail"), compute_task("afterA")]},
                {"kind": "sequence", "children": [approval("gateB", "fail"), compute_task("afterB")]}
            ]}),
            json!([]),
        )
    };
    let step = engine.submit_graph("p", g()).unwrap();
    assert_eq!(step.status, "waiting-approval");
    assert_eq!(
        engine.pending_approvals(&Default::default()).unwrap().len(),
        2
    );
    engine.approve(decide("p", Some("gateA"), "alice")).unwrap();
    engine.claim_run("p", false).unwrap();
    let step = engine.submit_graph("p", g()).unwrap();
    assert_eq!(
        step.tasks
            .iter()
            .map(|t| t.node_id.as_str())
            .collect::<Vec<_>>(),
        ["afterA"]
    );
    let step = engine
        .complete_tasks("p", vec![ok("afterA", 1, 1)])
        .unwrap();
    assert_eq!(step.status, "waiting-approval", "gateB still waits");
    let pending = engine.pending_approvals(&Default::default()).unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| p.node_id.as_str())
            .collect::<Vec<_>>(),
        ["gateB"]
    );
}

#[test]
fn a_decision_while_the_driver_has_work_in_flight_is_picked_up() {
    let (_dir, mut engine) = open();
    start(&mut engine, "f");
    let g = graph(
        json!({"kind": "parallel", "children": [
            {"kind": "sequence", "children": [approval("gate", "fail"), compute_task("after")]},
            compute_task("slow")
        ]}),
        json!([]),
    );
    let step = engine.submit_graph("f", g).unwrap();
    assert_eq!(step.status, "running");
    assert_eq!(step.tasks.len(), 1);
    let outcome = engine.approve(decide("f", Some("gate"), "alice")).unwrap();
    assert!(!outcome.needs_resume, "this engine drives the run");
    let step = engine.advance("f").unwrap();
    assert_eq!(
        step.tasks
            .iter()
            .map(|t| t.node_id.as_str())
            .collect::<Vec<_>>(),
        ["after"]
    );
    assert_eq!(step.outputs.len(), 1, "the decision row reaches the driver");
}

#[test]
fn deny_with_fail_fails_the_run_and_writes_no_row() {
    let (dir, mut engine) = open();
    start(&mut engine, "d");
    let g = || {
        graph(
            json!({"kind": "sequence", "children": [approval("g", "fail"), compute_task("after")]}),
            json!([]),
        )
    };
    engine.submit_graph("d", g()).unwrap();
    engine.deny(decide("d", None, "bob")).unwrap();
    engine.claim_run("d", false).unwrap();
    let step = engine.submit_graph("d", g()).unwrap();
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "APPROVAL_DENIED");
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM gate"), 0);
}

/// Smithers' runtime and contract tests (deferred-contract.test.js): "skip" records the
/// denial and the run goes on, as "continue" does; nothing that depends on the gate is skipped.
#[test]
fn deny_with_skip_records_the_denial_and_runs_what_follows() {
    let (dir, mut engine) = open();
    start(&mut engine, "s");
    let g = || {
        graph(
            json!({"kind": "parallel", "children": [
                {"kind": "sequence", "children": [approval("g", "skip"), static_task("deploy", 1)]},
                {"kind": "task", "id": "notify", "output": "step", "body": {"type": "static", "value": {"v": 2}}, "dependsOn": ["g"]},
                static_task("cleanup", 3)
            ]}),
            json!([]),
        )
    };
    engine.submit_graph("s", g()).unwrap();
    engine.deny(decide("s", None, "bob")).unwrap();
    engine.claim_run("s", false).unwrap();
    let step = engine.submit_graph("s", g()).unwrap();
    assert_eq!(step.status, "finished");
    let db = &dir;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM _smithers_nodes WHERE state = 'skipped'"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM gate WHERE approved = 0"),
        1
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM step"), 3);
}

#[test]
fn deny_with_continue_records_the_denial_and_goes_on() {
    let (dir, mut engine) = open();
    start(&mut engine, "c");
    let g = || {
        graph(
            json!({"kind": "sequence", "children": [approval("g", "continue"), static_task("next", 1)]}),
            json!([]),
        )
    };
    engine.submit_graph("c", g()).unwrap();
    engine.deny(decide("c", None, "bob")).unwrap();
    engine.claim_run("c", false).unwrap();
    assert_eq!(engine.submit_graph("c", g()).unwrap().status, "finished");
    let db = &dir;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM gate WHERE approved = 0 AND decided_by = 'bob'"
        ),
        1
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM step"), 1);
}

#[test]
fn needs_approval_gate_runs_its_body_after_approval() {
    let (_dir, mut engine) = open();
    start(&mut engine, "n");
    let gated = json!({"kind": "task", "id": "deploy", "output": "step", "body": {"type": "compute"},
        "approval": {"mode": "gate", "onDeny": "fail", "request": {"title": "Deploy?"}}});
    let g = || {
        graph(
            json!({"kind": "sequence", "children": [gated.clone()]}),
            json!([]),
        )
    };
    assert_eq!(
        engine.submit_graph("n", g()).unwrap().status,
        "waiting-approval"
    );
    engine.approve(decide("n", None, "a")).unwrap();
    engine.claim_run("n", false).unwrap();
    let step = engine.submit_graph("n", g()).unwrap();
    assert_eq!(step.tasks.len(), 1);
    assert_eq!(
        engine
            .complete_tasks("n", vec![ok("deploy", 1, 9)])
            .unwrap()
            .status,
        "finished"
    );
}

#[test]
fn a_sequence_whose_render_reads_nothing_runs_in_one_submission() {
    let (_dir, mut engine) = open();
    start(&mut engine, "seq");
    let children: Vec<Value> = (0..200).map(|i| static_task(&format!("t{i}"), i)).collect();
    let step = engine
        .submit_graph(
            "seq",
            graph(json!({"kind": "sequence", "children": children}), json!([])),
        )
        .unwrap();
    assert_eq!(step.status, "finished");
    assert_eq!(step.outputs.len(), 200);
}

#[test]
fn an_output_the_render_reads_asks_for_a_new_render() {
    let (_dir, mut engine) = open();
    start(&mut engine, "rr");
    let g = graph(
        json!({"kind": "sequence", "children": [static_task("a", 1), static_task("b", 2)]}),
        json!(["a"]),
    );
    let step = engine.submit_graph("rr", g).unwrap();
    assert!(step.needs_render);
    assert_eq!(step.outputs.len(), 1);
    assert_eq!(step.status, "running");
}

/// A render whose descriptor text is the one the plan was built from (a render that reads
/// outputs only inside task bodies) reuses the plan: the run goes on as after a full submit,
/// and other text is parsed and checked as always.
#[test]
fn a_render_that_gives_the_same_text_reuses_the_plan() {
    let (_dir, mut engine) = open();
    start(&mut engine, "same");
    let root = json!({"kind": "sequence", "children": [compute_task("a"), compute_task("b"), compute_task("c")]});
    let text = json!({
        "version": 1,
        "workflow": {"name": "test"},
        "schemas": {"step": step_schema()},
        "renderDeps": ["a", "b"],
        "root": root,
    })
    .to_string();
    let mut step = engine.submit_graph_json("same", &text).unwrap();
    let mut ran = Vec::new();
    while let Some(task) = step.tasks.first() {
        ran.push(task.node_id.clone());
        step = engine
            .complete_tasks("same", vec![ok(&task.node_id, task.attempt, 1)])
            .unwrap();
        if step.needs_render {
            step = engine.submit_graph_json("same", &text).unwrap();
        }
    }
    assert_eq!(ran, ["a", "b", "c"]);
    assert_eq!(step.status, "finished");

    start(&mut engine, "other");
    engine.submit_graph_json("other", &text).unwrap();
    let err = engine.submit_graph_json("other", "{not json").unwrap_err();
    assert_eq!(err.code(), "INVALID_GRAPH");
}

#[test]
fn invalid_outputs_fail_the_task_and_the_run() {
    let (_dir, mut engine) = open();
    start(&mut engine, "bad");
    let step = engine
        .submit_graph(
            "bad",
            graph(
                json!({"kind": "sequence", "children": [compute_task("x")]}),
                json!([]),
            ),
        )
        .unwrap();
    let attempt = step.tasks[0].attempt;
    let result = common::ok("x", attempt, json!({"v": "nope"}));
    let step = engine.complete_tasks("bad", vec![result]).unwrap();
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "INVALID_OUTPUT");
}

#[test]
fn retries_run_a_failed_task_again() {
    let (_dir, mut engine) = open();
    start(&mut engine, "retry");
    let task = common::with(compute_task("flaky"), json!({"retries": 1}));
    let step = engine
        .submit_graph(
            "retry",
            graph(json!({"kind": "sequence", "children": [task]}), json!([])),
        )
        .unwrap();
    assert_eq!(step.tasks[0].attempt, 1);
    let fail = common::failed("flaky", 1, "boom");
    let step = engine.complete_tasks("retry", vec![fail]).unwrap();
    assert_eq!(step.tasks[0].attempt, 2);
    assert_eq!(
        engine
            .complete_tasks("retry", vec![ok("flaky", 2, 1)])
            .unwrap()
            .status,
        "finished"
    );
}

#[test]
fn malformed_graphs_are_refused_before_anything_is_written() {
    let (dir, mut engine) = open();
    start(&mut engine, "m");
    let parse = |v: Value| GraphDescriptor::parse(&v.to_string()).unwrap_err().code();
    let base =
        |root: Value, schemas: Value| json!({"version": 1, "schemas": schemas, "root": root});
    assert_eq!(
        parse(base(
            json!({"kind": "sequence", "children": [static_task("a", 1), static_task("a", 2)]}),
            json!({"step": step_schema()})
        )),
        "DUPLICATE_ID"
    );
    assert_eq!(
        parse(base(static_task("a", 1), json!({}))),
        "UNKNOWN_OUTPUT_SCHEMA"
    );
    assert_eq!(
        parse(base(
            json!({"kind": "task", "id": "a", "output": "x; DROP TABLE t", "body": {"type": "compute"}}),
            json!({"x; DROP TABLE t": step_schema()})
        )),
        "INVALID_IDENTIFIER"
    );
    assert_eq!(
        parse(base(json!({"kind": "widget"}), json!({}))),
        "INVALID_GRAPH"
    );
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM _smithers_nodes"), 0);
}

#[test]
fn a_run_left_by_a_dead_owner_resumes_without_rerunning_finished_tasks() {
    let (dir, mut engine) = open();
    start(&mut engine, "k");
    let g = || {
        graph(
            json!({"kind": "sequence", "children": [compute_task("a"), compute_task("b")]}),
            json!([]),
        )
    };
    let step = engine.submit_graph("k", g()).unwrap();
    let step2 = engine
        .complete_tasks("k", vec![ok("a", step.tasks[0].attempt, 1)])
        .unwrap();
    assert_eq!(step2.tasks[0].node_id, "b");
    drop(engine);
    let db = &dir;
    common::execute(
        db,
        "UPDATE _smithers_runs SET owner = 'localhost-gone:999999:1:0'",
    );
    let mut engine = db.engine();
    // Another host: liveness unknown, so the claim needs force.
    assert_eq!(
        engine.claim_run("k", false).unwrap_err().code(),
        "RUN_OWNED"
    );
    let snap = engine.claim_run("k", true).unwrap();
    assert_eq!(snap.outputs.len(), 1);
    let step = engine.submit_graph("k", g()).unwrap();
    assert_eq!(
        step.tasks
            .iter()
            .map(|t| (t.node_id.as_str(), t.attempt))
            .collect::<Vec<_>>(),
        [("b", 2)]
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM _smithers_attempts WHERE node_id = 'b' AND state = 'abandoned'"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM _smithers_attempts WHERE node_id = 'a'"
        ),
        1
    );
}

#[test]
fn loops_run_until_max_iterations_and_ask_for_a_render_each_pass() {
    let (_dir, mut engine) = open();
    start(&mut engine, "l");
    let g = |iteration: i64| {
        graph(
            json!({"kind": "loop", "id": "review", "maxIterations": 3, "until": false, "children": [
                {"kind": "task", "id": "pass", "iteration": iteration, "output": "step", "body": {"type": "static", "value": {"v": iteration}}}
            ]}),
            json!([]),
        )
    };
    let mut step: Step = engine.submit_graph("l", g(0)).unwrap();
    for expected in 1..3 {
        assert!(step.needs_render);
        assert_eq!(step.loops.get("review"), Some(&expected));
        step = engine.submit_graph("l", g(expected)).unwrap();
    }
    assert_eq!(step.status, "finished");
}

#[test]
fn select_approvals_validate_the_choice() {
    let (_dir, mut engine) = open();
    start(&mut engine, "sel");
    let g = json!({
        "version": 1,
        "schemas": {"pick": {"type": "object", "properties": {"selected": {"type": "string"}, "notes": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["selected", "notes"]}},
        "root": {"kind": "task", "id": "pick", "output": "pick", "body": {"type": "approval"},
                 "approval": {"mode": "select", "request": {"title": "Pick"}, "options": [{"key": "a", "label": "A"}, {"key": "b", "label": "B"}],
                              "allowedUsers": ["alice"]}}
    });
    engine
        .submit_graph("sel", GraphDescriptor::parse(&g.to_string()).unwrap())
        .unwrap();
    let mut req = decide("sel", None, "mallory");
    req.decision = Some(json!({"selected": "b"}));
    assert_eq!(engine.approve(req.clone()).unwrap_err().code(), "FORBIDDEN");
    req.decided_by = Some("alice".into());
    req.decision = Some(json!({"selected": "zzz"}));
    assert_eq!(
        engine.approve(req.clone()).unwrap_err().code(),
        "INVALID_DECISION"
    );
    req.decision = Some(json!({"selected": "b", "notes": "safest"}));
    let outcome = engine.approve(req).unwrap();
    assert_eq!(
        outcome.output.unwrap().value,
        json!({"selected": "b", "notes": "safest"})
    );
}
