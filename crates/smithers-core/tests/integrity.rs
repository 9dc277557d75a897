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
    let before = common::digest(dir.db());
    let err = engine
        .approve(expecting(req("r1", "build", "alice"), &seen))
        .unwrap_err();
    assert_eq!(err.code(), "STALE_VIEW");
    assert_eq!(err.details()["currentDigest"], json!(now));
    assert_eq!(common::digest(dir.db()), before);

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

/// Three runs each decided once (one of them twice: a push-back, then an approval).
fn decided_log() -> (common::TestDb, Engine) {
    let (dir, mut engine) = common::open();
    let root = approval("ship", json!({}));
    for run in ["a", "b", "c"] {
        common::start(&mut engine, run);
        assert_eq!(drive(&mut engine, run, &root).status, "waiting-approval");
    }
    engine.approve(req("a", "ship", "alice")).unwrap();
    engine.deny(req("b", "ship", "bob")).unwrap();
    engine.approve(req("c", "ship", "carol")).unwrap();
    (dir, engine)
}

fn exec(dir: &common::TestDb, sql: &str) {
    common::execute_batch(dir, sql);
}

#[test]
fn every_decision_is_appended_to_a_hash_chain_that_verifies() {
    let (dir, engine) = decided_log();
    let log = engine.audit_entries(0, 100).unwrap();
    let who: Vec<_> = log
        .iter()
        .map(|e| {
            (
                e.seq,
                e.kind.as_str(),
                e.actor.clone().unwrap(),
                e.data["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        who,
        vec![
            (1, "decision", "alice".into(), json!("approved")),
            (2, "decision", "bob".into(), json!("denied")),
            (3, "decision", "carol".into(), json!("approved")),
        ]
    );
    assert_eq!(log[1].prev_hash, log[0].entry_hash);
    assert!(
        log[0].data["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let report = engine.audit_verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, 3);
    assert_eq!(
        report.head_hash.as_deref(),
        Some(log[2].entry_hash.as_str())
    );
    // The log is written in the decision's transaction: a refused decision adds nothing.
    let mut engine = engine;
    assert!(engine.approve(req("a", "ship", "mallory")).is_err());
    assert_eq!(engine.audit_entries(0, 100).unwrap().len(), 3);
    drop(dir);
}

#[test]
fn an_entry_altered_with_plain_sql_is_named_by_verify() {
    let (dir, engine) = decided_log();
    exec(
        &dir,
        "UPDATE _smithers_audit_log SET actor = 'mallory' WHERE seq = 2",
    );
    let report = engine.audit_verify().unwrap();
    assert!(!report.ok);
    let broken = report.broken.unwrap();
    assert_eq!((broken.seq, broken.problem.as_str()), (2, "altered"));

    // Changing the data (approved → denied) is found the same way.
    let (dir, engine) = decided_log();
    exec(
        &dir,
        "UPDATE _smithers_audit_log SET data_json = replace(data_json, 'approved', 'denied') WHERE seq = 3",
    );
    let broken = engine.audit_verify().unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.problem.as_str()), (3, "altered"));
}

#[test]
fn an_entry_deleted_with_plain_sql_is_named_by_verify_even_the_last() {
    let (dir, engine) = decided_log();
    exec(&dir, "DELETE FROM _smithers_audit_log WHERE seq = 2");
    let broken = engine.audit_verify().unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.problem.as_str()), (2, "removed"));

    let (dir, mut engine) = decided_log();
    exec(&dir, "DELETE FROM _smithers_audit_log WHERE seq = 3");
    let broken = engine.audit_verify().unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.problem.as_str()), (3, "removed"));
    // A decision after the removal chains to the head, so the gap stays visible.
    let root = approval("ship", json!({}));
    common::start(&mut engine, "d");
    drive(&mut engine, "d", &root);
    engine.approve(req("d", "ship", "dave")).unwrap();
    let broken = engine.audit_verify().unwrap().broken.unwrap();
    assert_eq!((broken.seq, broken.problem.as_str()), (3, "removed"));
}

#[test]
fn a_database_from_before_the_log_starts_its_chain_from_the_decisions_it_holds() {
    let (dir, mut engine) = decided_log();
    if dir.is_postgres() {
        // SQLite's v7 -> v9 migration: a PostgreSQL schema starts with the log (no schema of
        // this store held decisions before v9).
        return;
    }
    // A push-back and the approval after it: two rounds of a review.
    let root = reviewed("build", "echo built");
    common::start(&mut engine, "r");
    drive(&mut engine, "r", &root);
    engine.push_back(req("r", "build", "bob")).unwrap();
    resume(&mut engine, "r", &root);
    engine.approve(req("r", "build", "alice")).unwrap();
    drop(engine);
    // Back to v7 as it was: no log, no votes.
    exec(
        &dir,
        "DROP TABLE _smithers_audit_log; DROP TABLE _smithers_votes;
         DELETE FROM _smithers_meta WHERE key = 'audit_head';
         UPDATE _smithers_meta SET value = '7' WHERE key = 'schema_version';",
    );
    let engine = dir.engine();
    let log = engine.audit_entries(0, 100).unwrap();
    let seen: Vec<_> = log
        .iter()
        .map(|e| {
            (
                e.kind.as_str(),
                e.run_id.clone(),
                e.actor.clone().unwrap(),
                e.data["status"].as_str().unwrap().to_string(),
                e.data["round"].clone(),
            )
        })
        .collect();
    let m = "migrated-decision";
    assert_eq!(
        seen,
        vec![
            (m, "a".into(), "alice".into(), "approved".into(), json!(1)),
            (m, "b".into(), "bob".into(), "denied".into(), json!(1)),
            (m, "c".into(), "carol".into(), "approved".into(), json!(1)),
            (m, "r".into(), "bob".into(), "pushed-back".into(), json!(1)),
            (m, "r".into(), "alice".into(), "approved".into(), json!(2)),
        ]
    );
    assert!(engine.audit_verify().unwrap().ok);
}

fn quorum_gate(quorum: Value, on_deny: &str) -> Value {
    approval("release", json!({"quorum": quorum, "onDeny": on_deny}))
}

fn open_gate(engine: &mut Engine, run: &str, root: &Value) {
    common::start(engine, run);
    assert_eq!(drive(engine, run, root).status, "waiting-approval");
}

#[test]
fn a_quorum_of_two_is_decided_by_the_second_distinct_approver() {
    let (dir, mut engine) = common::open();
    let root = quorum_gate(
        json!({"approvals": 2, "from": ["alice", "bob", "carol"], "veto": ["sec"]}),
        "continue",
    );
    open_gate(&mut engine, "r", &root);

    let first = engine.approve(req("r", "release", "alice")).unwrap();
    assert_eq!(first.status, "voted");
    assert!(!first.needs_resume);
    let tally = first.quorum.unwrap();
    assert_eq!(
        (tally.needed, tally.approvals.clone(), tally.decided),
        (2, vec!["alice".to_string()], false)
    );
    // One person counts once: alice again (approve or deny) is refused, nothing written.
    let before = common::digest(dir.db());
    for again in [
        engine.approve(req("r", "release", "alice")),
        engine.deny(req("r", "release", "alice")),
    ] {
        let err = again.unwrap_err();
        assert_eq!(err.code(), "ALREADY_VOTED");
        assert_eq!(err.details()["verdict"], json!("approve"));
    }
    // Someone outside `from` and `veto` may not vote.
    assert_eq!(
        engine
            .approve(req("r", "release", "mallory"))
            .unwrap_err()
            .code(),
        "FORBIDDEN"
    );
    assert_eq!(common::digest(dir.db()), before);
    // The waiting gate shows its votes.
    let pending = engine.pending_approvals(&Default::default()).unwrap();
    assert_eq!(
        pending[0]
            .votes
            .iter()
            .map(|v| v.voter.as_str())
            .collect::<Vec<_>>(),
        vec!["alice"]
    );
    assert_eq!(pending[0].quorum["approvals"], json!(2));

    // A non-veto denial is a vote: the gate still waits (two of alice, bob, sec can approve).
    let carol = engine.deny(req("r", "release", "carol")).unwrap();
    assert_eq!(carol.status, "voted");
    assert_eq!(carol.quorum.unwrap().denials, vec!["carol".to_string()]);

    let bob = engine.approve(req("r", "release", "bob")).unwrap();
    assert_eq!(bob.status, "approved");
    assert!(bob.needs_resume);
    let tally = bob.quorum.unwrap();
    assert_eq!(
        tally.approvals,
        vec!["alice".to_string(), "bob".to_string()]
    );
    assert!(tally.decided);
    // The decision row says who made up the quorum; the output row is the usual one.
    let row = query(
        &dir,
        "SELECT decided_by, decision_json FROM _smithers_approvals",
    );
    assert_eq!(row[0][0], json!("bob"));
    let decision: Value = serde_json::from_str(row[0][1].as_str().unwrap()).unwrap();
    assert_eq!(decision["quorum"]["approvals"], json!(["alice", "bob"]));
    assert_eq!(
        query(&dir, "SELECT approved, decided_by FROM gate"),
        vec![vec![json!(1), json!("bob")]]
    );
    // After the decision a vote is a second decision.
    assert_eq!(
        engine
            .approve(req("r", "release", "sec"))
            .unwrap_err()
            .code(),
        "ALREADY_DECIDED"
    );
    // Every vote and the decision are in the log, chained.
    let log = engine.audit_entries(0, 100).unwrap();
    let kinds: Vec<_> = log
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.clone().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("vote", "alice".into()),
            ("vote", "carol".into()),
            ("vote", "bob".into()),
            ("decision", "bob".into())
        ]
    );
    assert_eq!(log[3].data["quorum"]["approvals"], json!(["alice", "bob"]));
    assert!(engine.audit_verify().unwrap().ok);
    // The run goes on: the gate finished with approved: true.
    assert_eq!(resume(&mut engine, "r", &root).status, "finished");
}

#[test]
fn a_veto_holder_denial_denies_the_gate_at_once() {
    let (dir, mut engine) = common::open();
    let root = quorum_gate(json!({"approvals": 2, "veto": ["sec"]}), "continue");
    open_gate(&mut engine, "r", &root);
    assert_eq!(
        engine.approve(req("r", "release", "alice")).unwrap().status,
        "voted"
    );
    let out = engine.deny(req("r", "release", "sec")).unwrap();
    assert_eq!(out.status, "denied");
    let tally = out.quorum.unwrap();
    assert_eq!(tally.vetoed_by.as_deref(), Some("sec"));
    assert!(tally.denials.is_empty());
    assert_eq!(
        query(&dir, "SELECT approved, decided_by FROM gate"),
        vec![vec![json!(0), json!("sec")]]
    );
    assert_eq!(resume(&mut engine, "r", &root).status, "finished");
    let votes = query(
        &dir,
        "SELECT voter, verdict, veto FROM _smithers_votes ORDER BY at_ms, voter",
    );
    assert_eq!(
        votes,
        vec![
            vec![json!("alice"), json!("approve"), json!(0)],
            vec![json!("sec"), json!("deny"), json!(1)]
        ]
    );
    // Without `from`, anyone allowed may vote; a veto holder may also approve (and counts).
    open_gate(&mut engine, "s", &root);
    engine.approve(req("s", "release", "sec")).unwrap();
    assert_eq!(
        engine.approve(req("s", "release", "dave")).unwrap().status,
        "approved"
    );
}

#[test]
fn a_quorum_gate_is_denied_when_too_few_voters_are_left_and_the_starter_may_not_vote() {
    let (_dir, mut engine) = common::open();
    let root = quorum_gate(
        json!({"approvals": 2, "from": ["alice", "bob", "carol"]}),
        "fail",
    );
    common::create(
        &mut engine,
        "r",
        smithers_core::NewRun {
            started_by: Some("alice".into()),
            ..Default::default()
        },
    );
    assert_eq!(drive(&mut engine, "r", &root).status, "waiting-approval");
    // forbidSelfApproval applies per vote.
    let mut own = req("r", "release", "alice");
    own.forbid_starter = true;
    assert_eq!(engine.approve(own).unwrap_err().code(), "FORBIDDEN");
    assert_eq!(
        engine.deny(req("r", "release", "bob")).unwrap().status,
        "voted"
    );
    // carol's denial leaves alice alone: two approvals can no longer be made up.
    let out = engine.deny(req("r", "release", "carol")).unwrap();
    assert_eq!(out.status, "denied");
    assert_eq!(
        out.quorum.unwrap().denials,
        vec!["bob".to_string(), "carol".to_string()]
    );
    assert_eq!(resume(&mut engine, "r", &root).status, "failed");
}

#[test]
fn a_quorum_that_cannot_be_met_or_fit_its_gate_is_refused_with_the_graph() {
    let (_dir, mut engine) = common::open();
    for (i, (q, why)) in [
        (json!({"approvals": 0}), "at least 1"),
        (json!({"approvals": 3, "from": ["a", "b"]}), "only 2 people"),
        (json!({"approvals": 1, "who": ["a"]}), "unknown field"),
        (json!({"approvals": 1, "from": [""]}), "quorum voter"),
    ]
    .into_iter()
    .enumerate()
    {
        let g = json!({"version": 1, "workflow": {"name": "q"}, "schemas": {"gate": decision_schema()},
                       "renderDeps": [], "root": quorum_gate(q, "continue")});
        let err = match GraphDescriptor::parse(&g.to_string()) {
            Err(e) => e,
            Ok(graph) => {
                let run = format!("x{i}");
                common::start(&mut engine, &run);
                engine.submit_graph(&run, graph).unwrap_err()
            }
        };
        assert!(err.to_string().contains(why), "{err}");
    }
}
