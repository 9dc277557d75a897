//! Smithers' runtime semantics the core carries: the default `onDeny`, `async` gates,
//! `autoApprove`, and human tasks (`<HumanTask>`: a person's answer is the output).

use serde_json::{Value, json};
use smithers_core::{Engine, GraphDescriptor, NewRun, Step};

mod common;
use common::{approval, decision_schema, human, req};

fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "score": {"type": "integer"},
            "comment": {"type": "string"},
            "ok": {"type": "boolean"}
        },
        "required": ["score", "ok"],
        "additionalProperties": false
    })
}

fn graph(workflow: &str, root: Value) -> GraphDescriptor {
    let pick = json!({"type": "object", "properties": {"selected": {"type": "string"}, "notes": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["selected", "notes"]});
    let schemas = json!({
        "step": {"type": "object", "properties": {"v": {"type": "number"}}, "required": ["v"]},
        "gate": decision_schema(),
        "answer": answer_schema(),
        "pick": pick,
    });
    common::descriptor(workflow, schemas, json!([]), root)
}

fn task(id: &str, v: i64) -> Value {
    common::static_task(id, "step", json!({"v": v}))
}

struct Db {
    dir: common::TestDb,
    engine: Engine,
}

impl Db {
    fn new() -> Db {
        let (dir, engine) = common::open();
        Db { dir, engine }
    }

    fn start(&mut self, run_id: &str, g: GraphDescriptor) -> Step {
        let new = NewRun {
            workflow_name: g.workflow.name.clone(),
            ..NewRun::default()
        };
        common::create(&mut self.engine, run_id, new);
        self.engine.submit_graph(run_id, g).unwrap()
    }

    fn resume(&mut self, run_id: &str, g: GraphDescriptor) -> Step {
        self.engine.claim_run(run_id, false).unwrap();
        self.engine.submit_graph(run_id, g).unwrap()
    }

    fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        common::query(&self.dir, sql)
    }
}

// ---------------------------------------------------------------- onDeny

#[test]
fn approval_without_on_deny_records_the_denial_and_goes_on() {
    let mut db = Db::new();
    let g = || {
        graph(
            "d",
            json!({"kind": "sequence", "children": [approval("g", json!({})), task("after", 1)]}),
        )
    };
    assert_eq!(db.start("r", g()).status, "waiting-approval");
    let outcome = db.engine.deny(req("r", "g", "bob")).unwrap();
    assert_eq!(outcome.status, "denied");
    assert_eq!(db.resume("r", g()).status, "finished");
    assert_eq!(
        db.query("SELECT approved, decided_by FROM gate"),
        vec![vec![json!(0), json!("bob")]]
    );
    assert_eq!(
        db.query("SELECT on_deny FROM _smithers_approvals"),
        vec![vec![json!("continue")]]
    );
    assert_eq!(
        db.query("SELECT node_id FROM step"),
        vec![vec![json!("after")]]
    );
}

#[test]
fn a_gate_before_a_task_fails_when_denied_without_on_deny() {
    let mut db = Db::new();
    let gated = json!({"kind": "task", "id": "deploy", "output": "step", "body": {"type": "static", "value": {"v": 1}},
                       "approval": {"mode": "gate", "request": {"title": "Deploy?"}}});
    let g = || {
        graph(
            "gate",
            json!({"kind": "sequence", "children": [gated.clone()]}),
        )
    };
    db.start("r", g());
    db.engine.deny(req("r", "deploy", "bob")).unwrap();
    let step = db.resume("r", g());
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "APPROVAL_DENIED");
}

// ---------------------------------------------------------------- async

#[test]
fn an_async_gate_lets_later_siblings_run_but_not_its_dependents() {
    let mut db = Db::new();
    let root = json!({"kind": "sequence", "children": [
        approval("g", json!({"async": true})),
        task("after", 1),
        {"kind": "task", "id": "needs-g", "output": "step", "body": {"type": "static", "value": {"v": 2}}, "dependsOn": ["g"]}
    ]});
    let step = db.start("r", graph("async", root.clone()));
    assert_eq!(
        step.status, "waiting-approval",
        "the run waits once nothing else can run"
    );
    assert_eq!(
        db.query("SELECT node_id FROM step"),
        vec![vec![json!("after")]],
        "the later sibling ran while the gate waits"
    );
    assert_eq!(
        db.query("SELECT state FROM _smithers_nodes WHERE node_id = 'needs-g'"),
        vec![vec![json!("pending")]]
    );
    db.engine.approve(req("r", "g", "ann")).unwrap();
    assert_eq!(db.resume("r", graph("async", root)).status, "finished");
    assert_eq!(
        db.query("SELECT node_id FROM step ORDER BY node_id"),
        vec![vec![json!("after")], vec![json!("needs-g")]]
    );
}

#[test]
fn an_async_gate_before_a_task_runs_the_task_once_approved() {
    let mut db = Db::new();
    let gated = json!({"kind": "task", "id": "deploy", "output": "step", "body": {"type": "static", "value": {"v": 7}},
                       "approval": {"mode": "gate", "request": {"title": "Deploy?"}, "async": true}});
    let root = json!({"kind": "sequence", "children": [gated, task("next", 1)]});
    assert_eq!(
        db.start("r", graph("ag", root.clone())).status,
        "waiting-approval"
    );
    assert_eq!(
        db.query("SELECT node_id FROM step"),
        vec![vec![json!("next")]]
    );
    db.engine.approve(req("r", "deploy", "ann")).unwrap();
    assert_eq!(db.resume("r", graph("ag", root)).status, "finished");
    assert_eq!(
        db.query("SELECT node_id, v FROM step WHERE node_id = 'deploy'"),
        vec![vec![json!("deploy"), json!(7.0)]]
    );
}

// ---------------------------------------------------------------- autoApprove

#[test]
fn auto_approve_without_after_decides_at_once_as_smithers_auto() {
    let mut db = Db::new();
    let root = json!({"kind": "sequence", "children": [approval("g", json!({"autoApprove": {"audit": true}})), task("after", 1)]});
    let step = db.start("r", graph("auto", root));
    assert_eq!(step.status, "finished");
    assert_eq!(
        db.query("SELECT approved, note, decided_by FROM gate"),
        vec![vec![
            json!(1),
            json!("Auto-approved"),
            json!("smithers:auto")
        ]]
    );
    assert_eq!(
        db.query("SELECT status, decided_by FROM _smithers_approvals"),
        vec![vec![json!("approved"), json!("smithers:auto")]]
    );
    assert_eq!(
        db.query("SELECT COUNT(*) FROM _smithers_events WHERE type = 'ApprovalAutoApproved'"),
        vec![vec![json!(1)]]
    );
    assert_eq!(
        db.query("SELECT COUNT(*) FROM _smithers_events WHERE type = 'ApprovalRequested'"),
        vec![vec![json!(0)]]
    );
}

#[test]
fn auto_approve_without_audit_keeps_no_approval_row() {
    let mut db = Db::new();
    let root = json!({"kind": "sequence", "children": [approval("g", json!({"autoApprove": {"audit": false}}))]});
    assert_eq!(db.start("r", graph("quiet", root)).status, "finished");
    assert_eq!(
        db.query("SELECT COUNT(*) FROM _smithers_approvals"),
        vec![vec![json!(0)]]
    );
    assert_eq!(db.query("SELECT approved FROM gate"), vec![vec![json!(1)]]);
}

#[test]
fn auto_approve_condition_and_revert_on_leave_it_to_a_person() {
    let mut db = Db::new();
    for (run, auto) in [
        ("cond", json!({"audit": true, "conditionMet": false})),
        (
            "revert",
            json!({"audit": true, "conditionMet": true, "revertOnMet": true}),
        ),
    ] {
        let root =
            json!({"kind": "sequence", "children": [approval("g", json!({"autoApprove": auto}))]});
        assert_eq!(
            db.start(run, graph("c", root)).status,
            "waiting-approval",
            "{run}"
        );
    }
    let root = json!({"kind": "sequence", "children": [approval("g", json!({"autoApprove": {"audit": true, "conditionMet": true}}))]});
    assert_eq!(db.start("yes", graph("c", root)).status, "finished");
}

/// Smithers' approval-extended.test.jsx: two runs approved by people, the third is
/// auto-approved; a denial breaks the streak; auto-approvals do not count towards it.
#[test]
fn auto_approve_after_consecutive_manual_approvals() {
    let mut db = Db::new();
    let g = || {
        graph(
            "checkout",
            json!({"kind": "sequence", "children": [approval("checkout", json!({"autoApprove": {"after": 2, "audit": true}}))]}),
        )
    };
    let manual = |db: &mut Db, run: &str, approve: bool| {
        assert_eq!(db.start(run, g()).status, "waiting-approval", "{run} waits");
        if approve {
            db.engine.approve(req(run, "checkout", "human")).unwrap();
        } else {
            db.engine.deny(req(run, "checkout", "human")).unwrap();
        }
        assert_eq!(db.resume(run, g()).status, "finished");
    };
    manual(&mut db, "r1", true);
    manual(&mut db, "r2", false);
    manual(&mut db, "r3", true);
    // r2's denial: only one approval in a row so far.
    manual(&mut db, "r4", true);
    assert_eq!(
        db.start("r5", g()).status,
        "finished",
        "two approvals in a row"
    );
    assert_eq!(
        db.start("r6", g()).status,
        "finished",
        "auto-approvals neither count nor break the streak"
    );
    assert_eq!(
        db.query("SELECT run_id FROM _smithers_approvals WHERE decided_by = 'smithers:auto' ORDER BY run_id"),
        vec![vec![json!("r5")], vec![json!("r6")]]
    );
    // Another workflow with the same node id has its own history.
    let other = graph(
        "other",
        json!({"kind": "sequence", "children": [approval("checkout", json!({"autoApprove": {"after": 1}}))]}),
    );
    assert_eq!(db.start("o1", other).status, "waiting-approval");
}

#[test]
fn auto_approve_of_a_select_gate_picks_the_first_option() {
    let mut db = Db::new();
    let pick = json!({"kind": "task", "id": "pick", "output": "pick", "body": {"type": "approval"},
        "approval": {"mode": "select", "request": {"title": "Plan?"}, "options": [{"key": "canary", "label": "Canary"}, {"key": "all", "label": "All"}],
                     "autoApprove": {"audit": true}}});
    assert_eq!(
        db.start(
            "r",
            graph("sel", json!({"kind": "sequence", "children": [pick]}))
        )
        .status,
        "finished"
    );
    assert_eq!(
        db.query("SELECT selected, notes FROM pick"),
        vec![vec![json!("canary"), json!("Automatically selected")]]
    );
}

#[test]
fn nobody_may_decide_as_the_engine() {
    let mut db = Db::new();
    db.start(
        "r",
        graph(
            "x",
            json!({"kind": "sequence", "children": [approval("g", json!({}))]}),
        ),
    );
    let err = db
        .engine
        .approve(req("r", "g", "smithers:auto"))
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_DECISION");
    assert_eq!(
        db.query("SELECT status FROM _smithers_approvals"),
        vec![vec![json!("requested")]]
    );
}

#[test]
fn auto_approve_is_refused_on_gates_before_tasks() {
    let g = json!({"version": 1, "schemas": {"step": {"type": "object"}}, "root": {"kind": "task", "id": "t", "output": "step",
        "body": {"type": "static", "value": {}}, "approval": {"mode": "gate", "request": {"title": "t"}, "autoApprove": {}}}});
    let err = GraphDescriptor::parse(&g.to_string()).unwrap_err();
    assert_eq!(err.code(), "INVALID_GRAPH");
}

// ---------------------------------------------------------------- human tasks

#[test]
fn a_human_task_waits_for_a_valid_answer_and_it_is_the_output() {
    let mut db = Db::new();
    let g = || {
        graph(
            "h",
            json!({"kind": "sequence", "children": [human("review", 3), task("after", 1)]}),
        )
    };
    assert_eq!(db.start("r", g()).status, "waiting-approval");
    let pending = db.engine.pending_approvals(&Default::default()).unwrap();
    assert_eq!(pending[0].mode, "human");
    assert_eq!(pending[0].max_attempts, Some(3));
    assert_eq!(pending[0].schema, answer_schema());

    // Not JSON; then JSON that does not fit: each an attempt, the task still waits.
    let mut r = req("r", "review", "kim");
    r.note = Some("{oops".into());
    let bad = db.engine.approve(r).unwrap();
    assert_eq!(bad.status, "invalid");
    assert_eq!(bad.attempt, Some(1));
    assert_eq!(
        bad.error.as_ref().unwrap()["code"],
        "HUMAN_TASK_INVALID_JSON"
    );
    assert_eq!(bad.run_status, "waiting-approval");
    assert!(!bad.needs_resume);
    let mut r = req("r", "review", "kim");
    r.note = Some(r#"{"score": "high", "ok": true}"#.into());
    let bad = db.engine.approve(r).unwrap();
    assert_eq!(bad.attempt, Some(2));
    assert_eq!(
        bad.error.as_ref().unwrap()["code"],
        "HUMAN_TASK_VALIDATION_FAILED"
    );
    assert_eq!(
        db.query("SELECT status FROM _smithers_approvals"),
        vec![vec![json!("requested")]]
    );
    assert_eq!(
        db.query("SELECT attempt, state, error_json FROM _smithers_attempts ORDER BY attempt")
            .into_iter()
            .map(|mut row| {
                let error: Value = serde_json::from_str(row[2].as_str().unwrap()).unwrap();
                row[2] = error["code"].clone();
                row
            })
            .collect::<Vec<_>>(),
        vec![
            vec![json!(1), json!("failed"), json!("HUMAN_TASK_INVALID_JSON")],
            vec![
                json!(2),
                json!("failed"),
                json!("HUMAN_TASK_VALIDATION_FAILED")
            ]
        ]
    );

    // Inputs typed by the schema: score an integer, ok a boolean, comment text.
    let mut r = req("r", "review", "kim");
    r.inputs = [("score", "7"), ("ok", "true"), ("comment", "123")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let good = db.engine.approve(r).unwrap();
    assert_eq!(good.status, "approved");
    assert_eq!(
        good.output.unwrap().value,
        json!({"score": 7, "ok": true, "comment": "123"})
    );
    assert_eq!(db.resume("r", g()).status, "finished");
    assert_eq!(
        db.query("SELECT score, ok, comment FROM answer"),
        vec![vec![json!(7), json!(1), json!("123")]]
    );
}

#[test]
fn a_human_task_fails_after_max_attempts_invalid_answers() {
    let mut db = Db::new();
    let g = || {
        graph(
            "h",
            json!({"kind": "sequence", "children": [human("review", 2), task("after", 1)]}),
        )
    };
    db.start("r", g());
    let mut last = None;
    for note in ["[]", r#"{"score": 1}"#] {
        let mut r = req("r", "review", "kim");
        r.note = Some(note.into());
        last = Some(db.engine.approve(r).unwrap());
    }
    let last = last.unwrap();
    assert_eq!(
        (last.status, last.attempt, last.max_attempts),
        ("invalid", Some(2), Some(2))
    );
    assert_eq!(last.run_status, "running");
    assert!(
        last.needs_resume,
        "the task failed: the run must be resumed to end it"
    );
    let step = db.resume("r", g());
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "HUMAN_TASK_VALIDATION_FAILED");
    // Nothing more to answer.
    let mut r = req("r", "review", "kim");
    r.note = Some(r#"{"score": 1, "ok": true}"#.into());
    assert_eq!(db.engine.approve(r).unwrap_err().code(), "NOT_WAITING");
}

#[test]
fn a_human_task_without_an_answer_is_refused_and_changes_nothing() {
    let mut db = Db::new();
    db.start(
        "r",
        graph(
            "h",
            json!({"kind": "sequence", "children": [human("review", 2)]}),
        ),
    );
    let err = db.engine.approve(req("r", "review", "kim")).unwrap_err();
    assert_eq!(err.code(), "INVALID_DECISION");
    assert_eq!(
        db.query("SELECT COUNT(*) FROM _smithers_attempts"),
        vec![vec![json!(0)]]
    );
    // A denial fails it.
    db.engine.deny(req("r", "review", "kim")).unwrap();
    let step = db.resume(
        "r",
        graph(
            "h",
            json!({"kind": "sequence", "children": [human("review", 2)]}),
        ),
    );
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "APPROVAL_DENIED");
}

#[test]
fn a_decision_answer_object_is_taken_as_it_is() {
    let mut db = Db::new();
    db.start(
        "r",
        graph(
            "h",
            json!({"kind": "sequence", "children": [human("review", 1)]}),
        ),
    );
    let mut r = req("r", "review", "kim");
    r.decision = Some(json!({"score": 3, "ok": false}));
    let outcome = db.engine.approve(r).unwrap();
    assert_eq!(outcome.status, "approved");
    assert_eq!(
        db.query("SELECT decision_json FROM _smithers_approvals"),
        vec![vec![json!(r#"{"score":3,"ok":false}"#)]]
    );
}

#[test]
fn an_approval_whose_schema_requires_fields_no_decision_has_is_refused() {
    // lead-router-with-approval: { approved, reviewer, note } as the approval's output.
    let own = json!({
        "type": "object",
        "properties": {"approved": {"type": "boolean"}, "reviewer": {"type": "string"}, "note": {"type": "string"}},
        "required": ["approved", "reviewer", "note"],
        "additionalProperties": false
    });
    let g = json!({
        "version": 1,
        "schemas": {"approval": own, "gate": decision_schema()},
        "root": {"kind": "sequence", "children": [
            {"kind": "task", "id": "approve-route", "output": "approval", "body": {"type": "approval"},
             "approval": {"mode": "decision", "request": {"title": "Route?"}}}
        ]}
    });
    let err = GraphDescriptor::parse(&g.to_string()).unwrap_err();
    assert_eq!(err.code(), "APPROVAL_SCHEMA_MISMATCH");
    assert_eq!(err.details()["missing"], json!(["reviewer"]));
    assert!(err.to_string().contains("approve-route"), "{err}");
    // A decision schema, or a select gate's own fields, are accepted; a human task's
    // schema is its answer's.
    graph(
        "ok",
        json!({"kind": "sequence", "children": [approval("g", json!({})), human("h", 3)]}),
    );
    let select = json!({
        "version": 1,
        "schemas": {"pick": {"type": "object", "properties": {"selected": {"type": "string"}, "notes": {}}, "required": ["selected", "notes"]}},
        "root": {"kind": "task", "id": "p", "output": "pick", "body": {"type": "approval"},
                 "approval": {"mode": "select", "request": {"title": "Pick"}, "options": [{"key": "a", "label": "A"}]}}
    });
    GraphDescriptor::parse(&select.to_string()).unwrap();
}
