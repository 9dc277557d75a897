//! Command tasks and Dagu-style review gates: the step runs, then waits for a reviewer who
//! approves (with inputs), pushes it back, or rejects it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use smithers_core::{DecisionRequest, Engine, GraphDescriptor, NewRun, Step, TaskResult, command};

mod common;
use common::query;

fn result_schema() -> Value {
    json!({"type": "object", "properties": {
        "exitCode": {"type": "integer"}, "stdout": {"type": "string"}, "stderr": {"type": "string"}
    }, "required": ["exitCode", "stdout", "stderr"]})
}

fn graph(root: Value) -> GraphDescriptor {
    let g = json!({
        "version": 1,
        "workflow": {"name": "review-test"},
        "schemas": {"cmd": result_schema(), "plan": {"type": "object", "properties": {"rows": {"type": "number"}}, "required": ["rows"]}},
        "renderDeps": [],
        "root": root,
    });
    GraphDescriptor::parse(&g.to_string()).unwrap()
}

fn cmd(id: &str, command: &str) -> Value {
    json!({"kind": "task", "id": id, "output": "cmd", "body": {"type": "command", "command": command}})
}

fn reviewed(id: &str, command: &str, input: &[&str], required: &[&str]) -> Value {
    let mut t = cmd(id, command);
    t["review"] = json!({"prompt": format!("Review {id}"), "input": input, "required": required});
    t
}

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("smithers.db")).unwrap();
    (dir, engine)
}

/// Drives a claimed run the way the JS driver does, running command tasks with the core's
/// runner, until it parks or ends.
fn drive(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    let mut step = engine.submit_graph(run_id, graph(root.clone())).unwrap();
    loop {
        if step.needs_render {
            step = engine.submit_graph(run_id, graph(root.clone())).unwrap();
            continue;
        }
        if step.tasks.is_empty() {
            return step;
        }
        let results: Vec<TaskResult> = step
            .tasks
            .iter()
            .map(|t| {
                let spec = t.command.as_ref().expect("only command tasks here");
                let outcome = command::run(spec);
                serde_json::from_value(json!({
                    "nodeId": t.node_id, "iteration": t.iteration, "attempt": t.attempt,
                    "ok": outcome.succeeded(), "command": outcome,
                }))
                .unwrap()
            })
            .collect();
        step = engine.complete_tasks(run_id, results).unwrap();
    }
}

fn start(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    engine
        .create_run(NewRun {
            run_id: Some(run_id.into()),
            ..NewRun::default()
        })
        .unwrap();
    drive(engine, run_id, root)
}

fn resume(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    engine.claim_run(run_id, false).unwrap();
    drive(engine, run_id, root)
}

fn req(run_id: &str, node: &str, inputs: &[(&str, &str)]) -> DecisionRequest {
    DecisionRequest {
        run_id: run_id.into(),
        node_id: Some(node.into()),
        decided_by: Some("alice".into()),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..DecisionRequest::default()
    }
}

#[test]
fn a_command_task_runs_in_the_core_and_its_logs_are_kept() {
    let (dir, mut engine) = open();
    let root = json!({"kind": "sequence", "children": [
        cmd("hello", "echo hello $SMITHERS_NODE_ID; echo warn >&2"),
        cmd("boom", "echo about to fail; echo 'disk full' >&2; exit 7"),
    ]});
    let step = start(&mut engine, "r1", &root);
    assert_eq!(step.status, "failed");
    let error = step.error.unwrap();
    assert_eq!(error.code, "COMMAND_FAILED");
    assert!(
        error.message.contains("exited with code 7: disk full"),
        "{}",
        error.message
    );
    let rows = query(
        &dir,
        "SELECT exit_code, stdout, stderr FROM cmd WHERE node_id = 'hello'",
    );
    assert_eq!(
        rows,
        vec![vec![json!(0), json!("hello hello\n"), json!("warn\n")]]
    );
    let logs = engine.attempt_logs("r1", &Default::default()).unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[1].exit_code, Some(7));
    let text = std::fs::read_to_string(logs[1].stdout_path.as_ref().unwrap()).unwrap();
    assert_eq!(text, "about to fail\n");
    assert!(
        logs[0]
            .stdout_path
            .as_ref()
            .unwrap()
            .contains("smithers.logs/r1/hello.0.1")
    );
}

#[test]
fn required_inputs_must_be_declared_and_reserved_names_are_refused() {
    let bad = json!({"kind": "sequence", "children": [reviewed("plan", "true", &["A"], &["B"])]});
    let g = json!({"version": 1, "schemas": {"cmd": result_schema()}, "root": bad});
    let err = GraphDescriptor::parse(&g.to_string()).unwrap_err();
    assert_eq!(err.code(), "REQUIRED_NOT_IN_INPUT");
    let home = json!({"kind": "sequence", "children": [reviewed("plan", "true", &["HOME"], &[])]});
    let g = json!({"version": 1, "schemas": {"cmd": result_schema()}, "root": home});
    assert_eq!(
        GraphDescriptor::parse(&g.to_string()).unwrap_err().code(),
        "INVALID_INPUT_NAME"
    );
}

#[test]
fn a_reviewed_step_runs_first_then_waits_and_its_inputs_reach_downstream_commands() {
    let (dir, mut engine) = open();
    let root = json!({"kind": "sequence", "children": [
        reviewed("migrate-plan", "echo 'plan: add column'", &["APPROVED_BY", "MAINTENANCE_WINDOW"], &["APPROVED_BY"]),
        cmd("migrate", "echo by=$APPROVED_BY window=$MAINTENANCE_WINDOW home=$HOME run=$SMITHERS_RUN_ID"),
    ]});
    let step = start(&mut engine, "r1", &root);
    assert_eq!(step.status, "waiting-approval");
    assert_eq!(step.waiting, vec!["migrate-plan"]);
    // The reviewer sees the output while the step waits.
    let pending = engine.pending_approvals(&Default::default()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].kind, "review");
    assert_eq!(pending[0].round, 1);
    assert_eq!(pending[0].required, json!(["APPROVED_BY"]));
    assert!(pending[0].stdout_path.is_some());
    assert_eq!(
        query(
            &dir,
            "SELECT stdout FROM cmd WHERE node_id = 'migrate-plan'"
        ),
        vec![vec![json!("plan: add column\n")]]
    );

    let before = query(&dir, "SELECT status, decided_by FROM _smithers_approvals");
    let err = engine
        .approve(req("r1", "migrate-plan", &[("MAINTENANCE_WINDOW", "sat")]))
        .unwrap_err();
    assert_eq!(err.code(), "MISSING_REQUIRED_INPUTS");
    assert_eq!(err.details()["missing"], json!(["APPROVED_BY"]));
    let err = engine
        .approve(req(
            "r1",
            "migrate-plan",
            &[("APPROVED_BY", "alice"), ("HOME", "/tmp/evil")],
        ))
        .unwrap_err();
    assert_eq!(err.code(), "UNDECLARED_INPUT");
    assert_eq!(err.details()["keys"], json!(["HOME"]));
    assert_eq!(
        query(&dir, "SELECT status, decided_by FROM _smithers_approvals"),
        before,
        "nothing recorded"
    );

    let outcome = engine
        .approve(req(
            "r1",
            "migrate-plan",
            &[("APPROVED_BY", "alice"), ("MAINTENANCE_WINDOW", "sat")],
        ))
        .unwrap();
    assert_eq!(outcome.kind, "review");
    let step = resume(&mut engine, "r1", &root);
    assert_eq!(step.status, "finished");
    let out = query(&dir, "SELECT stdout FROM cmd WHERE node_id = 'migrate'");
    let line = out[0][0].as_str().unwrap().to_string();
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(line, format!("by=alice window=sat home={home} run=r1\n"));
}

#[test]
fn push_back_reruns_the_step_with_feedback_and_keeps_the_history() {
    let (dir, mut engine) = open();
    let root = json!({"kind": "parallel", "children": [
        {"kind": "sequence", "children": [
            reviewed("metrics", "echo rows for ${DAYS:-7} days, round $SMITHERS_PUSHBACK_ITERATION", &["DAYS"], &[]),
            cmd("report", "echo report from $DAYS days"),
        ]},
        reviewed("other", "echo other", &[], &[]),
    ]});
    let step = start(&mut engine, "r1", &root);
    assert_eq!(step.status, "waiting-approval");
    assert_eq!(step.waiting, vec!["metrics", "other"]);

    let err = engine
        .push_back(req("r1", "metrics", &[("WEEKS", "2")]))
        .unwrap_err();
    assert_eq!(err.code(), "UNDECLARED_INPUT");
    let out = engine
        .push_back(req("r1", "metrics", &[("DAYS", "30")]))
        .unwrap();
    assert_eq!(out.status, "pushed-back");
    assert_eq!(out.round, 1);
    // A second decision on the same round is refused.
    assert_eq!(
        engine
            .approve(req("r1", "metrics", &[]))
            .unwrap_err()
            .code(),
        "NOT_WAITING"
    );

    let step = resume(&mut engine, "r1", &root);
    assert_eq!(step.status, "waiting-approval");
    let rows = query(&dir, "SELECT stdout FROM cmd WHERE node_id = 'metrics'");
    assert_eq!(rows[0][0], json!("rows for 30 days, round 2\n"));
    let pending = engine.pending_approvals(&Default::default()).unwrap();
    let metrics = pending.iter().find(|a| a.node_id == "metrics").unwrap();
    assert_eq!(metrics.round, 2);
    assert_eq!(metrics.history.len(), 1);
    assert_eq!(metrics.history[0]["status"], json!("pushed-back"));
    assert_eq!(metrics.history[0]["inputs"], json!({"DAYS": "30"}));
    assert_eq!(
        metrics.history[0]["output"]["stdout"],
        json!("rows for 7 days, round\n")
    );
    // The other gate was not disturbed.
    let other = pending.iter().find(|a| a.node_id == "other").unwrap();
    assert_eq!((other.status.as_str(), other.round), ("requested", 1));

    engine.approve(req("r1", "metrics", &[])).unwrap();
    let step = resume(&mut engine, "r1", &root);
    assert_eq!(step.status, "waiting-approval", "other still waits");
    assert_eq!(
        query(&dir, "SELECT stdout FROM cmd WHERE node_id = 'report'"),
        vec![vec![json!("report from 30 days\n")]]
    );
    engine.approve(req("r1", "other", &[])).unwrap();
    assert_eq!(resume(&mut engine, "r1", &root).status, "finished");
    let history = query(
        &dir,
        "SELECT round, status FROM _smithers_approval_history WHERE node_id = 'metrics' ORDER BY round",
    );
    assert_eq!(
        history,
        vec![
            vec![json!(1), json!("pushed-back")],
            vec![json!(2), json!("approved")]
        ]
    );
}

#[test]
fn reject_fails_the_run_cancels_dependents_and_sticks() {
    let (dir, mut engine) = open();
    let root = json!({"kind": "parallel", "children": [
        {"kind": "sequence", "children": [reviewed("gate-a", "echo a", &[], &[]), cmd("after-a", "echo ran-a")]},
        {"kind": "sequence", "children": [reviewed("gate-b", "echo b", &[], &[]), cmd("after-b", "echo ran-b")]},
    ]});
    assert_eq!(start(&mut engine, "r1", &root).status, "waiting-approval");
    let mut deny = req("r1", "gate-a", &[]);
    deny.reason = Some("wrong numbers".into());
    let out = engine.deny(deny).unwrap();
    assert_eq!(out.status, "rejected");
    // Approving the other gate afterwards is refused: the rejection sticks.
    assert_eq!(
        engine.approve(req("r1", "gate-b", &[])).unwrap_err().code(),
        "RUN_REJECTED"
    );
    let step = resume(&mut engine, "r1", &root);
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "APPROVAL_REJECTED");
    let nodes = query(
        &dir,
        "SELECT node_id, state FROM _smithers_nodes ORDER BY node_id",
    );
    assert_eq!(
        nodes,
        vec![
            vec![json!("after-a"), json!("cancelled")],
            vec![json!("after-b"), json!("cancelled")],
            vec![json!("gate-a"), json!("rejected")],
            vec![json!("gate-b"), json!("cancelled")],
        ]
    );
    assert_eq!(
        query(
            &dir,
            "SELECT reason, decided_by FROM _smithers_approvals WHERE node_id = 'gate-a'"
        ),
        vec![vec![json!("wrong numbers"), json!("alice")]]
    );
    assert!(query(&dir, "SELECT 1 FROM cmd WHERE node_id LIKE 'after-%'").is_empty());
    // Resuming again does not re-run anything.
    let snap = engine.claim_run("r1", false).unwrap();
    assert_eq!(snap.status, "failed");
}

#[test]
fn a_failing_reviewed_step_fails_and_never_waits() {
    let (_dir, mut engine) = open();
    let root = json!({"kind": "sequence", "children": [reviewed("deploy", "exit 2", &[], &[])]});
    let step = start(&mut engine, "r1", &root);
    assert_eq!(step.status, "failed");
    assert!(
        engine
            .pending_approvals(&Default::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_timeout_fails_a_command_task() {
    let (_dir, mut engine) = open();
    let mut t = cmd("slow", "sleep 20");
    t["timeoutMs"] = json!(150);
    let root = json!({"kind": "sequence", "children": [t]});
    let step = start(&mut engine, "r1", &root);
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "TASK_TIMEOUT");
}
