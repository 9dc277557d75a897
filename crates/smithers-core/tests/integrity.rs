//! Approvals that cannot be faked (issue 15, items 4-6): decisions bound to the view their
//! decider saw (`expectDigest`, `STALE_VIEW`), the hash-chained decision log (`audit_verify`
//! finds an altered or removed entry), and quorum gates with a veto.

use serde_json::{Value, json};
use smithers_core::{
    DecisionRequest, Engine, GraphDescriptor, Step, TaskResult, TaskToRun, command,
};

mod common;
use common::{approval, decision_schema, query, req};

fn result_schema() -> Value {
    json!({"type": "object", "properties": {
        "exitCode": {"type": "integer"}, "stdout": {"type": "string"}, "stderr": {"type": "string"}
    }, "required": ["exitCode", "stdout", "stderr"]})
}

fn graph(root: Value) -> GraphDescriptor {
    common::descriptor(
        "integrity-test",
        json!({"cmd": result_schema(), "gate": decision_schema()}),
        json!([]),
        root,
    )
}

fn reviewed(id: &str, command: &str) -> Value {
    json!({"kind": "task", "id": id, "output": "cmd",
           "body": {"type": "command", "command": command},
           "review": {"prompt": format!("Review {id}")}})
}

fn run_command(t: &TaskToRun) -> TaskResult {
    let spec = t.command.as_ref().expect("only command tasks here");
    let outcome = command::run(spec);
    common::result(
        &t.node_id,
        t.attempt,
        json!({"iteration": t.iteration, "ok": outcome.succeeded(), "command": outcome}),
    )
}

fn drive(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    common::drive(engine, run_id, || graph(root.clone()), run_command)
}

fn resume(engine: &mut Engine, run_id: &str, root: &Value) -> Step {
    engine.claim_run(run_id, false).unwrap();
    drive(engine, run_id, root)
}

fn digest_of(engine: &Engine, run_id: &str, node: &str) -> String {
    engine
        .pending_approvals(&Default::default())
        .unwrap()
        .into_iter()
        .find(|a| a.run_id == run_id && a.node_id == node)
        .map(|a| a.digest)
        .expect("a pending approval")
}

fn expecting(mut r: DecisionRequest, digest: &str) -> DecisionRequest {
    r.expect_digest = Some(digest.into());
    r
}

#[test]
fn a_decision_on_a_view_that_changed_is_refused_and_records_nothing() {
    let (dir, mut engine) = common::open();
    let root = reviewed("build", "echo built round ${SMITHERS_PUSHBACK_ROUND:-1}");
    common::start(&mut engine, "r1");
    assert_eq!(drive(&mut engine, "r1", &root).status, "waiting-approval");
    let seen = digest_of(&engine, "r1", "build");
    assert!(seen.starts_with("sha256:") && seen.len() == 71, "{seen}");
    // The digest is the one the ApprovalRequested event carried, and it pins the stdout.
    let events = engine.events("r1", 0, 100).unwrap();
    let requested = events
        .iter()
        .find(|e| e.kind.as_str() == "ApprovalRequested")
        .unwrap();
    assert_eq!(requested.payload["digest"], json!(seen));

    // Bad digests are refused as bad input.
    let bad = engine.approve(expecting(req("r1", "build", "alice"), "abc"));
    assert_eq!(bad.unwrap_err().code(), "INVALID_DECISION");

    // Someone sends it back; it runs again and waits in round 2.
    engine
        .push_back(expecting(req("r1", "build", "bob"), &seen))
        .unwrap();
    assert_eq!(resume(&mut engine, "r1", &root).status, "waiting-approval");
    let now = digest_of(&engine, "r1", "build");
    assert_ne!(now, seen);

    // Alice approves what she saw in round 1: refused, nothing written.
    let before = common::digest(&dir.path().join("smithers.db"));
    let err = engine
        .approve(expecting(req("r1", "build", "alice"), &seen))
        .unwrap_err();
    assert_eq!(err.code(), "STALE_VIEW");
    assert_eq!(err.details()["currentDigest"], json!(now));
    assert_eq!(common::digest(&dir.path().join("smithers.db")), before);

    // On what it shows now: accepted. Without a digest: accepted too (not checked).
    let out = engine
        .approve(expecting(req("r1", "build", "alice"), &now))
        .unwrap();
    assert_eq!(out.status, "approved");
    assert_eq!(
        query(&dir, "SELECT status FROM _smithers_approvals")[0][0],
        json!("approved")
    );
}

#[test]
fn a_gate_asked_again_has_a_new_digest_and_no_digest_is_not_checked() {
    let (_dir, mut engine) = common::open();
    let root = approval("ship", json!({}));
    common::start(&mut engine, "r1");
    assert_eq!(drive(&mut engine, "r1", &root).status, "waiting-approval");
    let d1 = digest_of(&engine, "r1", "ship");
    assert_eq!(
        d1,
        digest_of(&engine, "r1", "ship"),
        "stable while it waits"
    );
    common::start(&mut engine, "r2");
    assert_eq!(drive(&mut engine, "r2", &root).status, "waiting-approval");
    let d2 = digest_of(&engine, "r2", "ship");
    assert_ne!(d1, d2, "another run's gate is another view");
    // r1's digest does not decide r2's gate.
    let err = engine
        .approve(expecting(req("r2", "ship", "alice"), &d1))
        .unwrap_err();
    assert_eq!(err.code(), "STALE_VIEW");
    engine.approve(req("r2", "ship", "alice")).unwrap();
    engine
        .approve(expecting(req("r1", "ship", "alice"), &d1))
        .unwrap();
}
