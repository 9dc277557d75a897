//! Transition coverage: the scenarios below, driven through the engine's public calls the
//! way the JS driver and the CLI drive it, take every move of every machine's table
//! (`machines::*::MOVES`) at least once. A move added to a table without a scenario that
//! takes it, or one the engine stopped taking, fails `every_move_of_every_machine_is_taken`.
//! The moves counted are process-wide, so this file keeps all its scenarios in one test.

mod common;

use common::{approval, create, failed, human, ok, req, with};
use serde_json::{Value, json};
use smithers_core::engine::ParentRef;
use smithers_core::machines;
use smithers_core::time::ManualClock;
use smithers_core::{Engine, GraphDescriptor, NewRun, Step, TaskResult};

fn graph(root: Value) -> GraphDescriptor {
    common::descriptor(
        "transitions",
        json!({
            "step": {"type": "object", "properties": {"v": {"type": "number"}}, "required": ["v"]},
            "gate": common::decision_schema(),
            "answer": {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]},
        }),
        json!([]),
        root,
    )
}

fn compute(id: &str, extra: Value) -> Value {
    with(common::compute(id, "step"), extra)
}

fn gate(id: &str, on_deny: &str, extra: Value) -> Value {
    approval(id, with(json!({"onDeny": on_deny}), extra))
}

fn after(mut task: Value, upstream: &str) -> Value {
    task["dependsOn"] = json!([upstream]);
    task
}

fn reviewed(id: &str, rewind_to: Option<&str>) -> Value {
    compute(id, json!({"review": {"prompt": id, "rewindTo": rewind_to}}))
}

fn new_run(engine: &mut Engine, run_id: &str, parent: Option<ParentRef>) {
    let new = NewRun {
        workflow_name: Some("transitions".into()),
        parent,
        ..NewRun::default()
    };
    create(engine, run_id, new);
}

fn result(node: &str, attempt: i64, succeeded: bool) -> TaskResult {
    if succeeded {
        ok(node, attempt, json!({"v": 1}))
    } else {
        failed(node, attempt, "no")
    }
}

/// Drives a claimed run: every task handed out succeeds, unless `fails` names it.
fn drive(engine: &mut Engine, run_id: &str, root: &Value, fails: &[&str]) -> Step {
    common::drive(
        engine,
        run_id,
        || graph(root.clone()),
        |t| result(&t.node_id, t.attempt, !fails.contains(&t.node_id.as_str())),
    )
}

fn resume(engine: &mut Engine, run_id: &str, root: &Value, fails: &[&str]) -> Step {
    engine.claim_run(run_id, false).expect("claim");
    drive(engine, run_id, root, fails)
}

/// Start, finish, retry, fail (continueOnFail), skip; a late result and one for a node no
/// render has.
fn tasks_finish_retry_fail_and_skip() {
    let (_dir, mut engine) = common::open();
    new_run(&mut engine, "basics", None);
    let root = json!({"kind": "sequence", "children": [
        common::static_task("s", "step", json!({"v": 1})),
        compute("c1", json!({"retries": 1})),
        compute("c2", json!({"continueOnFail": true})),
        compute("k", json!({"skip": true})),
    ]});
    let step = engine.submit_graph("basics", graph(root)).expect("submit");
    assert_eq!(step.tasks[0].node_id, "c1");
    let step = engine
        .complete_tasks("basics", vec![result("c1", 1, false)])
        .expect("retry");
    assert_eq!(
        (step.tasks[0].node_id.as_str(), step.tasks[0].attempt),
        ("c1", 2)
    );
    let late = vec![
        result("c1", 1, true),
        result("ghost", 1, true),
        result("c1", 2, true),
    ];
    let step = engine.complete_tasks("basics", late).expect("finish");
    assert_eq!(step.tasks[0].node_id, "c2");
    let step = engine
        .complete_tasks("basics", vec![result("c2", 1, false)])
        .expect("fail");
    assert_eq!(step.status, "finished");
}

/// Gates approved, denied without failing, before a task (approved, denied), auto-approved;
/// a parked run claimed before any decision.
fn gates_are_decided_every_way() {
    let (_dir, mut engine) = common::open();
    new_run(&mut engine, "gates", None);
    let gated = |id: &str, on_deny: &str| {
        compute(
            id,
            json!({"approval": {"mode": "gate", "onDeny": on_deny, "request": {"title": id}}}),
        )
    };
    let root = json!({"kind": "parallel", "children": [
        gate("a1", "continue", json!({})),
        gate("a2", "continue", json!({})),
        gated("t1", "skip"),
        gated("t2", "fail"),
        gate("a3", "fail", json!({"autoApprove": {"audit": true}})),
    ]});
    assert_eq!(
        drive(&mut engine, "gates", &root, &[]).status,
        "waiting-approval"
    );
    assert_eq!(
        resume(&mut engine, "gates", &root, &[]).status,
        "waiting-approval"
    );
    engine
        .approve(req("gates", "a1", "ann"))
        .expect("approve a1");
    engine.deny(req("gates", "a2", "ann")).expect("deny a2");
    engine.deny(req("gates", "t1", "ann")).expect("deny t1");
    engine
        .approve(req("gates", "t2", "ann"))
        .expect("approve t2");
    assert_eq!(resume(&mut engine, "gates", &root, &[]).status, "finished");

    new_run(&mut engine, "denied", None);
    let root = json!({"kind": "sequence", "children": [gate("g", "fail", json!({}))]});
    drive(&mut engine, "denied", &root, &[]);
    engine.deny(req("denied", "g", "ann")).expect("deny");
    assert_eq!(resume(&mut engine, "denied", &root, &[]).status, "failed");
}

/// A run cancelled while it runs (nodes pending, in progress, waiting) and while it waits.
fn runs_are_cancelled_running_and_waiting() {
    let (_dir, mut engine) = common::open();
    new_run(&mut engine, "busy", None);
    let root = json!({"kind": "parallel", "children": [
        compute("a", json!({})), after(compute("b", json!({})), "a"), gate("g", "fail", json!({})),
    ]});
    let step = engine.submit_graph("busy", graph(root)).expect("submit");
    assert_eq!(step.status, "running");
    assert_eq!(engine.cancel_run("busy").expect("cancel"), "cancelled");

    new_run(&mut engine, "parked", None);
    let root = json!({"kind": "sequence", "children": [gate("g", "fail", json!({}))]});
    assert_eq!(
        drive(&mut engine, "parked", &root, &[]).status,
        "waiting-approval"
    );
    assert_eq!(engine.cancel_run("parked").expect("cancel"), "cancelled");
}

/// Another engine takes over a run whose attempt is open: the attempt is abandoned.
fn an_open_attempt_is_abandoned_when_another_engine_takes_over() {
    let (dir, mut first) = common::open();
    new_run(&mut first, "taken", None);
    let root = json!({"kind": "sequence", "children": [compute("a", json!({}))]});
    assert_eq!(drive_once(&mut first, "taken", &root).tasks.len(), 1);
    let mut second = dir.engine();
    second.claim_run("taken", true).expect("forced claim");
    assert_eq!(drive(&mut second, "taken", &root, &[]).status, "finished");
}

fn drive_once(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    engine
        .submit_graph(run_id, graph(root.clone()))
        .expect("submit")
}

/// A push-back whose `rewindTo` scope holds a node in every state a rewind starts from, and
/// approval rows in every status one is forgotten or reopened from; then the step is
/// reviewed again and rejected.
fn a_push_back_rewinds_every_kind_of_node_and_a_rejection_ends_the_run() {
    let (_dir, mut engine) = common::open();
    new_run(&mut engine, "rev", None);
    let root = json!({"kind": "parallel", "children": [
        compute("p", json!({})),
        after(compute("f", json!({"continueOnFail": true})), "p"),
        after(compute("s", json!({"skip": true})), "p"),
        after(gate("w", "continue", json!({})), "p"),
        after(gate("g", "continue", json!({})), "p"),
        after(gate("d", "continue", json!({})), "p"),
        after(with(human("h", 2), json!({"continueOnFail": true})), "p"),
        after(reviewed("r0", None), "p"),
        after(reviewed("r2", None), "p"),
        after(reviewed("r", Some("p")), "p"),
    ]});
    assert_eq!(
        drive(&mut engine, "rev", &root, &["f"]).status,
        "waiting-approval"
    );
    engine.approve(req("rev", "r0", "ann")).expect("approve r0");
    engine.approve(req("rev", "g", "ann")).expect("approve g");
    engine.deny(req("rev", "d", "ann")).expect("deny d");
    for _ in 0..2 {
        let mut answer = req("rev", "h", "ann");
        answer.note = Some("not json".into());
        assert_eq!(engine.approve(answer).expect("an answer").status, "invalid");
    }
    let out = engine.push_back(req("rev", "r", "ann")).expect("push back");
    assert!(out.reset.len() >= 8, "{:?}", out.reset);
    assert_eq!(
        resume(&mut engine, "rev", &root, &[]).status,
        "waiting-approval"
    );
    engine.deny(req("rev", "r", "ann")).expect("reject");
    assert_eq!(resume(&mut engine, "rev", &root, &[]).status, "rejected");
}

/// A task waits on its sub-run, which parks at its own gate; the sub-run ends and the
/// task runs again.
fn a_task_waits_on_its_sub_run_until_it_ends() {
    let (_dir, mut engine) = common::open();
    new_run(&mut engine, "p", None);
    let root = json!({"kind": "sequence", "children": [compute("call", json!({}))]});
    let step = drive_once(&mut engine, "p", &root);
    let attempt = step.tasks[0].attempt;
    let parent = ParentRef {
        run_id: "p".into(),
        node_id: "call".into(),
        iteration: 0,
    };
    new_run(&mut engine, "p.call.0", Some(parent));
    let child = json!({"kind": "sequence", "children": [gate("g", "fail", json!({}))]});
    assert_eq!(
        drive(&mut engine, "p.call.0", &child, &[]).status,
        "waiting-approval"
    );
    let waiting = common::result(
        "call",
        attempt,
        json!({"ok": true, "waitingOn": "p.call.0"}),
    );
    let step = engine.complete_tasks("p", vec![waiting]).expect("wait");
    assert_eq!(step.status, "waiting-approval");
    engine
        .approve(req("p.call.0", "g", "ann"))
        .expect("approve");
    assert_eq!(
        resume(&mut engine, "p.call.0", &child, &[]).status,
        "finished"
    );
    assert_eq!(resume(&mut engine, "p", &root, &[]).status, "finished");
}

/// A `<Timer>` parks its run `waiting-timer`; a run claimed while it waits parks again, one
/// whose timer fires wakes, and one cancelled while it waits is cancelled.
fn timers_park_wake_claim_and_cancel() {
    let clock = ManualClock::new(1_000_000);
    let (_dir, mut engine) = common::open();
    engine.set_clock(clock.clock());
    let root = json!({"kind": "sequence", "children": [
        {"kind": "task", "id": "t", "output": "", "body": {"type": "timer", "durationMs": 1000}},
        common::static_task("s", "step", json!({"v": 1})),
    ]});
    for run in ["timed", "cancelled"] {
        new_run(&mut engine, run, None);
        assert_eq!(drive(&mut engine, run, &root, &[]).status, "waiting-timer");
    }
    assert_eq!(
        resume(&mut engine, "timed", &root, &[]).status,
        "waiting-timer"
    );
    assert_eq!(engine.cancel_run("cancelled").expect("cancel"), "cancelled");
    clock.advance(1000);
    let fired = engine.fire_due_timers(10).expect("fire");
    assert_eq!(fired.len(), 2);
    assert_eq!(resume(&mut engine, "timed", &root, &[]).status, "finished");
}

/// A caller parked on its sub-run follows what the sub-run waits on: a timer, then (fired) a
/// gate, then (decided) another timer; the sub-run's end wakes it.
fn a_parked_caller_follows_its_sub_run_s_wait() {
    let clock = ManualClock::new(1_000_000);
    let (_dir, mut engine) = common::open();
    engine.set_clock(clock.clock());
    new_run(&mut engine, "f", None);
    let root = json!({"kind": "sequence", "children": [compute("call", json!({}))]});
    let attempt = drive_once(&mut engine, "f", &root).tasks[0].attempt;
    let parent = ParentRef {
        run_id: "f".into(),
        node_id: "call".into(),
        iteration: 0,
    };
    new_run(&mut engine, "f.call.0", Some(parent));
    let timer = |id: &str| json!({"kind": "task", "id": id, "output": "", "body": {"type": "timer", "durationMs": 1000}});
    let child = json!({"kind": "sequence", "children": [timer("t1"), gate("g", "fail", json!({})), timer("t2")]});
    assert_eq!(
        drive(&mut engine, "f.call.0", &child, &[]).status,
        "waiting-timer"
    );
    let waiting = common::result(
        "call",
        attempt,
        json!({"ok": true, "waitingOn": "f.call.0"}),
    );
    let step = engine.complete_tasks("f", vec![waiting]).expect("wait");
    assert_eq!(step.status, "waiting-timer");
    let status = |engine: &Engine| engine.run_summary("f").expect("the caller").status;
    clock.advance(1000);
    assert_eq!(engine.fire_due_timers(10).expect("fire").len(), 1);
    assert_eq!(
        resume(&mut engine, "f.call.0", &child, &[]).status,
        "waiting-approval"
    );
    assert_eq!(status(&engine), "waiting-approval");
    engine
        .approve(req("f.call.0", "g", "ann"))
        .expect("approve");
    assert_eq!(
        resume(&mut engine, "f.call.0", &child, &[]).status,
        "waiting-timer"
    );
    assert_eq!(status(&engine), "waiting-timer");
    clock.advance(1000);
    assert_eq!(engine.fire_due_timers(10).expect("fire").len(), 1);
    assert_eq!(
        resume(&mut engine, "f.call.0", &child, &[]).status,
        "finished"
    );
    assert_eq!(resume(&mut engine, "f", &root, &[]).status, "finished");
}

#[test]
fn every_move_of_every_machine_is_taken() {
    tasks_finish_retry_fail_and_skip();
    gates_are_decided_every_way();
    runs_are_cancelled_running_and_waiting();
    an_open_attempt_is_abandoned_when_another_engine_takes_over();
    a_push_back_rewinds_every_kind_of_node_and_a_rejection_ends_the_run();
    a_task_waits_on_its_sub_run_until_it_ends();

    timers_park_wake_claim_and_cancel();
    a_parked_caller_follows_its_sub_run_s_wait();

    let untaken: Vec<String> = machines::moves_taken()
        .into_iter()
        .filter(|m| m.count == 0)
        .map(|m| format!("{}: {} --{}--> {}", m.machine, m.from, m.event, m.to))
        .collect();
    assert!(
        untaken.is_empty(),
        "moves no scenario takes:\n{}",
        untaken.join("\n")
    );
}
