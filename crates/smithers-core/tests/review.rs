//! Command tasks and Dagu-style review gates: the step runs, then waits for a reviewer who
//! approves (with inputs), pushes it back, or rejects it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use smithers_core::{
    DecisionRequest, Engine, GraphDescriptor, NewRun, Step, TaskResult, TaskToRun, command,
};

mod common;
use common::query;

fn result_schema() -> Value {
    json!({"type": "object", "properties": {
        "exitCode": {"type": "integer"}, "stdout": {"type": "string"}, "stderr": {"type": "string"}
    }, "required": ["exitCode", "stdout", "stderr"]})
}

fn graph(root: Value) -> GraphDescriptor {
    let plan =
        json!({"type": "object", "properties": {"rows": {"type": "number"}}, "required": ["rows"]});
    common::descriptor(
        "review-test",
        json!({"cmd": result_schema(), "plan": plan}),
        json!([]),
        root,
    )
}

fn cmd(id: &str, command: &str) -> Value {
    json!({"kind": "task", "id": id, "output": "cmd", "body": {"type": "command", "command": command}})
}

fn reviewed(id: &str, command: &str, input: &[&str], required: &[&str]) -> Value {
    let mut t = cmd(id, command);
    t["review"] = json!({"prompt": format!("Review {id}"), "input": input, "required": required});
    t
}

/// Runs a command task with the core's runner and reports its outcome, as the driver does.
fn run_command(t: &TaskToRun) -> TaskResult {
    let spec = t.command.as_ref().expect("only command tasks here");
    let outcome = command::run(spec);
    common::result(
        &t.node_id,
        t.attempt,
        json!({"iteration": t.iteration, "ok": outcome.succeeded(), "command": outcome}),
    )
}

/// Drives a claimed run the way the JS driver does, running command tasks with the core's
/// runner, until it parks or ends.
fn drive(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    common::drive(engine, run_id, || graph(root.clone()), run_command)
}

fn start(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    common::start(engine, run_id);
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
    let (dir, mut engine) = common::open();
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
    let (dir, mut engine) = common::open();
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
    let (dir, mut engine) = common::open();
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
fn reject_ends_the_run_rejected_cancels_dependents_and_sticks() {
    let (dir, mut engine) = common::open();
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
    assert_eq!(
        step.status, "rejected",
        "a run status of its own, not failed"
    );
    assert_eq!(step.error.unwrap().code, "APPROVAL_REJECTED");
    let run = engine.run_summary("r1").unwrap();
    let rejection = run.rejection.expect("who rejected which step, and why");
    assert_eq!(rejection.node_id, "gate-a");
    assert_eq!(rejection.rejected_by.as_deref(), Some("alice"));
    assert_eq!(rejection.rejection_reason.as_deref(), Some("wrong numbers"));
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
    assert_eq!(snap.status, "rejected");
}

#[test]
fn a_failing_reviewed_step_fails_and_never_waits() {
    let (_dir, mut engine) = common::open();
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
    let (_dir, mut engine) = common::open();
    let mut t = cmd("slow", "sleep 20");
    t["timeoutMs"] = json!(150);
    let root = json!({"kind": "sequence", "children": [t]});
    let step = start(&mut engine, "r1", &root);
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "TASK_TIMEOUT");
}

fn env_of(stdout: &Value, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    stdout
        .as_str()?
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&prefix).map(String::from))
}

/// Dagu's `ApplyPushBackRewindToResetsNamedStepAndDependents`, on our engine:
/// bootstrap -> prepare -> {sidecar, review(rewind_to prepare) -> deploy}, bootstrap -> notify.
#[test]
fn push_back_with_rewind_to_resets_the_target_and_its_dependents_and_nothing_else() {
    let (dir, mut engine) = common::open();
    let show = "echo FEEDBACK=${FEEDBACK:-}; echo DAG_PUSHBACK=${DAG_PUSHBACK:-}; echo PREV=${DAG_PUSHBACK_PREVIOUS_STDOUT_FILE:-}; echo STEP=$DAG_RUN_STEP_NAME RUN=$DAG_RUN_ID NAME=$DAG_NAME";
    let with = |id: &str, deps: &[&str]| {
        let mut t = cmd(id, show);
        t["dependsOn"] = json!(deps);
        t
    };
    let mut review = with("review", &["prepare"]);
    review["review"] = json!({"prompt": "Review", "input": ["FEEDBACK"], "rewindTo": "prepare"});
    let root = json!({"kind": "parallel", "children": [
        with("bootstrap", &[]), with("prepare", &["bootstrap"]), with("sidecar", &["prepare"]),
        review, with("deploy", &["review"]), with("notify", &["bootstrap"]),
    ]});
    assert_eq!(start(&mut engine, "r1", &root).status, "waiting-approval");
    let out = engine
        .push_back(req("r1", "review", &[("FEEDBACK", "try again")]))
        .unwrap();
    assert_eq!(out.approval_iteration, 1);
    assert_eq!(out.reset, vec!["prepare", "sidecar"]);
    let states = query(
        &dir,
        "SELECT node_id, state FROM _smithers_nodes ORDER BY node_id",
    );
    assert_eq!(
        states,
        vec![
            vec![json!("bootstrap"), json!("finished")],
            vec![json!("deploy"), json!("pending")],
            vec![json!("notify"), json!("finished")],
            vec![json!("prepare"), json!("pending")],
            vec![json!("review"), json!("pending")],
            vec![json!("sidecar"), json!("pending")],
        ]
    );
    // Their outputs are withdrawn; the untouched steps keep theirs.
    assert_eq!(
        query(&dir, "SELECT node_id FROM cmd ORDER BY node_id"),
        vec![vec![json!("bootstrap")], vec![json!("notify")]]
    );

    let step = resume(&mut engine, "r1", &root);
    assert_eq!(step.status, "waiting-approval");
    let attempts = query(
        &dir,
        "SELECT node_id, MAX(attempt) FROM _smithers_attempts GROUP BY node_id ORDER BY node_id",
    );
    assert_eq!(
        attempts,
        vec![
            vec![json!("bootstrap"), json!(1)],
            vec![json!("notify"), json!(1)],
            vec![json!("prepare"), json!(2)],
            vec![json!("review"), json!(2)],
            vec![json!("sidecar"), json!(2)],
        ]
    );
    let out = |node: &str| {
        query(
            &dir,
            &format!("SELECT stdout FROM cmd WHERE node_id = '{node}'"),
        )[0][0]
            .clone()
    };
    for node in ["prepare", "sidecar", "review"] {
        let stdout = out(node);
        assert_eq!(
            env_of(&stdout, "FEEDBACK").as_deref(),
            Some("try again"),
            "{node}"
        );
        let pb: Value = serde_json::from_str(&env_of(&stdout, "DAG_PUSHBACK").unwrap()).unwrap();
        assert_eq!(
            pb["iteration"],
            json!(1),
            "{node}: Dagu counts push-backs from 0"
        );
        assert_eq!(pb["by"], json!("alice"));
        assert_eq!(pb["inputs"], json!({"FEEDBACK": "try again"}));
        assert_eq!(pb["history"].as_array().map(Vec::len), Some(1));
        // Each rewound step gets its own previous stdout.
        let prev = env_of(&stdout, "PREV").unwrap();
        assert!(
            prev.ends_with(&format!("{node}.0.1.stdout.log")),
            "{node}: {prev}"
        );
        assert!(
            std::fs::read_to_string(&prev)
                .unwrap()
                .contains(&format!("STEP={node} "))
        );
        assert!(
            env_of(&stdout, "STEP")
                .unwrap()
                .ends_with("RUN=r1 NAME=review-test")
        );
    }
    assert_eq!(env_of(&out("notify"), "FEEDBACK").as_deref(), Some(""));
    engine.approve(req("r1", "review", &[])).unwrap();
    assert_eq!(resume(&mut engine, "r1", &root).status, "finished");
    // deploy never ran before: it sees the push-back, with no previous stdout of its own.
    let deploy = out("deploy");
    assert_eq!(env_of(&deploy, "FEEDBACK").as_deref(), Some("try again"));
    assert_eq!(env_of(&deploy, "PREV").as_deref(), Some(""));
    let pending = engine.pending_approvals(&smithers_core::ApprovalFilter {
        status: Some("all".into()),
        ..Default::default()
    });
    assert_eq!(pending.unwrap()[0].approval_iteration, 1);
}

#[test]
fn rewind_to_must_name_the_step_or_one_it_depends_on() {
    let (_dir, mut engine) = common::open();
    let mut review = cmd("review", "true");
    review["review"] = json!({"rewindTo": "sibling"});
    let root = json!({"kind": "parallel", "children": [cmd("sibling", "true"), review]});
    common::start(&mut engine, "r1");
    let err = engine.submit_graph("r1", graph(root)).unwrap_err();
    assert_eq!(err.code(), "INVALID_GRAPH");
    assert!(err.to_string().contains("rewindTo"), "{err}");
}

/// A step printing ~60 KB per round, pushed back four times: the environment stays small
/// (`DAG_PUSHBACK` and `SMITHERS_PUSHBACK` carry no outputs; the previous stdout is a file),
/// where inlining every round's stdout failed the 4th run with `Argument list too long`.
#[test]
fn a_step_with_large_output_is_pushed_back_many_times() {
    let (dir, mut engine) = common::open();
    let script = "head -c 61440 /dev/zero | tr '\\0' x; echo; echo ROUND=$SMITHERS_PUSHBACK_ROUND; echo ALIAS=$SMITHERS_PUSHBACK_ITERATION; echo SIZE=$(printf %s \"$SMITHERS_PUSHBACK$DAG_PUSHBACK\" | wc -c)";
    let root = json!({"kind": "sequence", "children": [reviewed("big", script, &["NOTE"], &[])]});
    assert_eq!(start(&mut engine, "r1", &root).status, "waiting-approval");
    for round in 1..=5 {
        engine
            .push_back(req("r1", "big", &[("NOTE", &format!("round {round}"))]))
            .unwrap();
        let step = resume(&mut engine, "r1", &root);
        assert_eq!(
            step.status, "waiting-approval",
            "round {round}: {:?}",
            step.error
        );
        let stdout = query(&dir, "SELECT stdout FROM cmd WHERE node_id = 'big'")[0][0].clone();
        assert_eq!(env_of(&stdout, "ROUND"), Some((round + 1).to_string()));
        // The old name of the variable stays an alias of the round.
        assert_eq!(env_of(&stdout, "ALIAS"), Some((round + 1).to_string()));
        let size: usize = env_of(&stdout, "SIZE").unwrap().trim().parse().unwrap();
        assert!(
            size < 8 * 1024,
            "round {round}: the push-back variables hold {size} bytes"
        );
    }
}

/// Creates `<parent>.call.0`, a sub-run of task `call` of run `parent`, and drives it until
/// it parks at its own review.
fn park_sub_run(engine: &mut Engine, parent: &str, child_root: &Value) {
    let id = format!("{parent}.call.0");
    let parent = smithers_core::engine::ParentRef {
        run_id: parent.into(),
        node_id: "call".into(),
        iteration: 0,
    };
    common::create(
        engine,
        &id,
        NewRun {
            parent: Some(parent),
            ..NewRun::default()
        },
    );
    assert_eq!(drive(engine, &id, child_root).status, "waiting-approval");
}

/// A task whose sub-run waits for its own decision waits with it, and runs again (reading
/// the sub-run's result) when the sub-run ends; a caller that ends takes its sub-runs along.
#[test]
fn a_task_waits_on_its_sub_run_and_is_woken_when_it_ends() {
    let (dir, mut engine) = common::open();
    let call = common::compute("call", "cmd");
    let root = json!({"kind": "sequence", "children": [call, cmd("after", "echo after")]});
    common::start(&mut engine, "p");
    let step = engine.submit_graph("p", graph(root.clone())).unwrap();
    let attempt = step.tasks[0].attempt;
    // The sub-run, linked to its caller, parks at its own review.
    let child_root =
        json!({"kind": "sequence", "children": [reviewed("sign", "echo ok", &[], &[])]});
    park_sub_run(&mut engine, "p", &child_root);
    let waiting = common::result(
        "call",
        attempt,
        json!({"ok": true, "waitingOn": "p.call.0"}),
    );
    let step = engine.complete_tasks("p", vec![waiting]).unwrap();
    assert_eq!(
        step.status, "waiting-approval",
        "the caller waits with its sub-run"
    );
    assert_eq!(step.waiting, vec!["call"]);
    // Its gate is listed with the caller.
    let listed = engine
        .pending_approvals(&smithers_core::ApprovalFilter {
            run_id: Some("p".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|a| (a.run_id.as_str(), a.node_id.as_str()))
            .collect::<Vec<_>>(),
        vec![("p.call.0", "sign")]
    );
    engine.approve(req("p.call.0", "sign", &[])).unwrap();
    assert_eq!(
        resume(&mut engine, "p.call.0", &child_root).status,
        "finished"
    );
    // The sub-run's end woke the caller: running, no owner, the task pending again.
    assert_eq!(engine.run_summary("p").unwrap().status, "running");
    assert_eq!(
        query(
            &dir,
            "SELECT state, sub_run_id FROM _smithers_nodes WHERE run_id = 'p' AND node_id = 'call'"
        ),
        vec![vec![json!("pending"), json!("p.call.0")]]
    );
    engine.claim_run("p", false).unwrap();
    let step = engine.submit_graph("p", graph(root.clone())).unwrap();
    assert_eq!(
        step.tasks[0].node_id, "call",
        "the task runs again to read the result"
    );
    assert_eq!(step.tasks[0].attempt, attempt + 1);

    // A caller that is cancelled cancels the sub-runs still open.
    common::start(&mut engine, "q");
    engine.release_run("q").unwrap();
    park_sub_run(&mut engine, "q", &child_root);
    engine.cancel_run("q").unwrap();
    assert_eq!(engine.run_summary("q.call.0").unwrap().status, "cancelled");
}

#[test]
fn a_push_back_never_resets_a_step_that_is_running() {
    let (_dir, mut engine) = common::open();
    let mut review = cmd("review", "true");
    review["dependsOn"] = json!(["prepare"]);
    review["review"] = json!({"rewindTo": "prepare"});
    let mut slow = cmd("slow", "true");
    slow["dependsOn"] = json!(["prepare"]);
    let root = json!({"kind": "parallel", "children": [cmd("prepare", "true"), review, slow]});
    common::start(&mut engine, "r1");
    // Run prepare, then start review and slow; finish only review.
    let step = engine.submit_graph("r1", graph(root)).unwrap();
    let step = engine
        .complete_tasks("r1", vec![run_command(&step.tasks[0])])
        .unwrap();
    let review_task = step.tasks.iter().find(|t| t.node_id == "review").unwrap();
    engine
        .complete_tasks("r1", vec![run_command(review_task)])
        .unwrap();
    let err = engine.push_back(req("r1", "review", &[])).unwrap_err();
    assert_eq!(err.code(), "PUSH_BACK_BUSY");
    assert_eq!(err.details()["busy"], json!("slow"));
}

/// A push-back whose scope holds a task waiting on its sub-run cancels that sub-run: the
/// task's next attempt makes a new one, and nothing is left waiting forever.
#[test]
fn a_push_back_cancels_the_sub_run_a_rewound_task_waited_on() {
    let (_dir, mut engine) = common::open();
    let mut call = common::compute("call", "cmd");
    call["dependsOn"] = json!(["prepare"]);
    let mut review = cmd("review", "true");
    review["dependsOn"] = json!(["prepare"]);
    review["review"] = json!({"rewindTo": "prepare"});
    let root = json!({"kind": "parallel", "children": [cmd("prepare", "true"), call, review]});
    common::start(&mut engine, "p");
    let step = engine.submit_graph("p", graph(root)).unwrap();
    let step = engine
        .complete_tasks("p", vec![run_command(&step.tasks[0])])
        .unwrap();
    let call_task = step.tasks.iter().find(|t| t.node_id == "call").unwrap();
    let review_task = step.tasks.iter().find(|t| t.node_id == "review").unwrap();
    let child_root =
        json!({"kind": "sequence", "children": [reviewed("sign", "echo ok", &[], &[])]});
    park_sub_run(&mut engine, "p", &child_root);
    let waiting = common::result(
        "call",
        call_task.attempt,
        json!({"ok": true, "waitingOn": "p.call.0"}),
    );
    let step = engine
        .complete_tasks("p", vec![waiting, run_command(review_task)])
        .unwrap();
    assert_eq!(step.status, "waiting-approval");
    let out = engine.push_back(req("p", "review", &[])).unwrap();
    assert_eq!(out.reset, vec!["prepare", "call"]);
    assert_eq!(engine.run_summary("p.call.0").unwrap().status, "cancelled");
    assert!(
        engine
            .pending_approvals(&Default::default())
            .unwrap()
            .is_empty()
    );
}
