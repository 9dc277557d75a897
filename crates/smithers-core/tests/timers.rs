//! Durable timers with a manual clock: `<Timer>` nodes and approval deadlines fire once, after
//! a restart, and when two engines on one database race for them. No test sleeps.

mod common;

use common::*;
use serde_json::{Value, json};
use smithers_core::time::ManualClock;
use smithers_core::{Engine, EventKind, GraphDescriptor};

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn timer(id: &str, duration_ms: i64) -> Value {
    json!({"kind": "task", "id": id, "output": "", "body": {"type": "timer", "durationMs": duration_ms}})
}

fn timer_flow() -> GraphDescriptor {
    descriptor(
        "timers",
        json!({"out": {"type": "object", "properties": {"n": {"type": "integer"}}}}),
        json!([]),
        seq(vec![
            static_task("before", "out", json!({"n": 1})),
            timer("wait", HOUR),
            static_task("after", "out", json!({"n": 2})),
        ]),
    )
}

fn clocked(dir: &TestDb, clock: &ManualClock) -> Engine {
    let mut engine = Engine::open(dir.db()).expect("an engine");
    engine.set_clock(clock.clock());
    engine
}

fn gate_flow(spec: Value) -> GraphDescriptor {
    descriptor(
        "deadline",
        json!({"gate": decision_schema(), "out": {"type": "object", "properties": {"done": {"type": "boolean"}}}}),
        json!([]),
        seq(vec![
            approval("deploy", spec),
            static_task("after", "out", json!({"done": true})),
        ]),
    )
}

fn status(engine: &Engine, run: &str) -> String {
    engine.run_summary(run).expect("a run").status.to_string()
}

fn resume(engine: &mut Engine, run: &str, graph: fn() -> GraphDescriptor) -> String {
    engine.claim_run(run, false).expect("claim");
    drive(engine, run, graph, |t| {
        panic!("no task to run: {}", t.node_id)
    })
    .status
    .to_string()
}

#[test]
fn a_timer_parks_the_run_waiting_timer_and_fires_once_when_due() {
    let clock = ManualClock::new(T0);
    let dir = TestDb::new();
    let mut engine = clocked(&dir, &clock);
    start(&mut engine, "r1");
    let step = drive(&mut engine, "r1", timer_flow, |t| panic!("{}", t.node_id));
    assert_eq!(step.status, "waiting-timer");
    assert_eq!(engine.next_timer_due().unwrap(), Some(T0 + HOUR));
    // Not due yet: nothing fires.
    clock.advance(HOUR - 1);
    assert!(engine.fire_due_timers(10).unwrap().is_empty());
    assert_eq!(status(&engine, "r1"), "waiting-timer");
    clock.advance(1);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].outcome, "finished");
    assert!(fired[0].needs_resume);
    assert_eq!(fired[0].lag_ms, 0);
    assert_eq!(status(&engine, "r1"), "running");
    // A second call finds nothing: it fired once.
    assert!(engine.fire_due_timers(10).unwrap().is_empty());
    assert_eq!(engine.next_timer_due().unwrap(), None);
    assert_eq!(resume(&mut engine, "r1", timer_flow), "finished");
    let fired_events: Vec<_> = engine
        .events("r1", 0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::TimerFired)
        .collect();
    assert_eq!(fired_events.len(), 1);
    let rows = query(
        &dir,
        "SELECT status, outcome, due_at_ms FROM _smithers_timers",
    );
    assert_eq!(
        rows,
        vec![vec![json!("fired"), json!("finished"), json!(T0 + HOUR)]]
    );
}

#[test]
fn a_restart_keeps_the_due_time_and_a_new_engine_fires_it() {
    let clock = ManualClock::new(T0);
    let dir = TestDb::new();
    {
        let mut engine = clocked(&dir, &clock);
        start(&mut engine, "r1");
        drive(&mut engine, "r1", timer_flow, |t| panic!("{}", t.node_id));
    }
    // Half an hour later, another engine resumes the run before the timer is due: it parks
    // again and the due time is still the first one.
    clock.advance(HOUR / 2);
    let mut engine = clocked(&dir, &clock);
    assert_eq!(resume(&mut engine, "r1", timer_flow), "waiting-timer");
    assert_eq!(engine.next_timer_due().unwrap(), Some(T0 + HOUR));
    drop(engine);
    clock.advance(HOUR);
    let mut engine = clocked(&dir, &clock);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].lag_ms, HOUR / 2);
    assert_eq!(resume(&mut engine, "r1", timer_flow), "finished");
}

#[test]
fn two_engines_racing_for_one_timer_fire_it_once() {
    let clock = ManualClock::new(T0);
    let dir = TestDb::new();
    let mut engine = clocked(&dir, &clock);
    for i in 0..20 {
        start(&mut engine, &format!("r{i}"));
        drive(&mut engine, &format!("r{i}"), timer_flow, |t| {
            panic!("{}", t.node_id)
        });
    }
    drop(engine);
    clock.advance(HOUR);
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let path = dir.db().to_path_buf();
            let clock = clock.clone();
            std::thread::spawn(move || {
                let mut engine = Engine::open(path).unwrap();
                engine.set_clock(clock.clock());
                let mut fired = Vec::new();
                loop {
                    let batch = engine.fire_due_timers(3).unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    fired.extend(batch.into_iter().map(|f| f.run_id));
                }
                fired
            })
        })
        .collect();
    let mut all: Vec<String> = racers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "every timer fired, none twice");
    let events = query(
        &dir,
        "SELECT COUNT(*) FROM _smithers_events WHERE type = 'TimerFired'",
    );
    assert_eq!(events, vec![vec![json!(20)]]);
}

fn gate_run(spec: Value) -> (TestDb, ManualClock, Engine) {
    let clock = ManualClock::new(T0);
    let dir = TestDb::new();
    let mut engine = clocked(&dir, &clock);
    start(&mut engine, "g1");
    let step = drive(
        &mut engine,
        "g1",
        move || gate_flow(spec.clone()),
        |t| panic!("{}", t.node_id),
    );
    assert_eq!(step.status, "waiting-approval");
    (dir, clock, engine)
}

fn gate_output(dir: &TestDb) -> Vec<Vec<Value>> {
    query(
        dir,
        "SELECT approved, decided_by FROM gate WHERE node_id = 'deploy'",
    )
}

#[test]
fn an_approval_deadline_denies_by_default_as_system_timeout_and_the_run_goes_on() {
    let (dir, clock, mut engine) = gate_run(json!({"timeoutMs": HOUR}));
    clock.advance(HOUR);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].outcome, "denied");
    assert!(fired[0].needs_resume);
    // The same row as a person's denial, decided by system:timeout.
    assert_eq!(
        gate_output(&dir),
        vec![vec![json!(0), json!("system:timeout")]]
    );
    let approvals = query(&dir, "SELECT status, decided_by FROM _smithers_approvals");
    assert_eq!(
        approvals,
        vec![vec![json!("denied"), json!("system:timeout")]]
    );
    let kinds: Vec<EventKind> = engine
        .events("g1", 0, 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::ApprovalDenied));
    assert!(kinds.contains(&EventKind::ApprovalTimedOut));
    // A person who comes late finds it decided.
    let late = engine.approve(req("g1", "deploy", "alice")).unwrap_err();
    assert_eq!(late.code(), "ALREADY_DECIDED");
    engine.claim_run("g1", false).unwrap();
    let step = drive(
        &mut engine,
        "g1",
        || gate_flow(json!({"timeoutMs": HOUR})),
        |t| panic!("{}", t.node_id),
    );
    assert_eq!(step.status, "finished");
}

#[test]
fn an_approval_deadline_can_approve() {
    let (dir, clock, mut engine) = gate_run(json!({"timeoutMs": HOUR, "onTimeout": "approve"}));
    clock.advance(HOUR + 5);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired[0].outcome, "approved");
    assert_eq!(fired[0].lag_ms, 5);
    assert_eq!(
        gate_output(&dir),
        vec![vec![json!(1), json!("system:timeout")]]
    );
}

#[test]
fn an_approval_deadline_can_fail_the_run() {
    let (dir, clock, mut engine) = gate_run(json!({"deadlineMs": T0 + 10, "onTimeout": "fail"}));
    clock.advance(10);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired[0].outcome, "failed");
    // onDeny fail: no output row, the node and then the run fail.
    assert!(gate_output(&dir).is_empty());
    engine.claim_run("g1", false).unwrap();
    let step = drive(
        &mut engine,
        "g1",
        || gate_flow(json!({"deadlineMs": T0 + 10, "onTimeout": "fail"})),
        |t| panic!("{}", t.node_id),
    );
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "APPROVAL_DENIED");
}

#[test]
fn a_gate_decided_before_its_deadline_is_left_alone() {
    let (dir, clock, mut engine) = gate_run(json!({"timeoutMs": HOUR}));
    engine.approve(req("g1", "deploy", "alice")).unwrap();
    clock.advance(2 * HOUR);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired[0].outcome, "obsolete");
    assert!(!fired[0].needs_resume);
    assert_eq!(gate_output(&dir), vec![vec![json!(1), json!("alice")]]);
}

#[test]
fn nobody_may_decide_as_the_system() {
    let (_dir, _clock, mut engine) = gate_run(json!({"timeoutMs": HOUR}));
    let err = engine
        .deny(req("g1", "deploy", "system:timeout"))
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_DECISION");
}

#[test]
fn timer_props_are_checked() {
    let bad = json!({"version": 1, "schemas": {}, "root":
        {"kind": "task", "id": "t", "output": "", "body": {"type": "timer", "durationMs": 1, "untilMs": 2}}});
    assert!(GraphDescriptor::parse(&bad.to_string()).is_err());
    let on_timeout_alone = json!({"version": 1, "schemas": {"gate": decision_schema()}, "root":
        approval("a", json!({"onTimeout": "approve"}))});
    assert!(GraphDescriptor::parse(&on_timeout_alone.to_string()).is_err());
}

fn kinds_of(engine: &Engine, run: &str, kind: EventKind) -> Vec<smithers_core::Event> {
    engine
        .events(run, 0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

#[test]
fn reminders_come_every_interval_up_to_max_and_stop_when_decided() {
    let quarter = HOUR / 4;
    let (_dir, clock, mut engine) =
        gate_run(json!({"timeoutMs": HOUR, "remind": {"everyMs": quarter, "max": 3}}));
    // Three reminders at 15, 30 and 45 minutes; then the deadline at 60.
    for n in 1..=3 {
        clock.advance(quarter);
        let fired = engine.fire_due_timers(10).unwrap();
        assert_eq!(fired.len(), 1, "reminder {n}");
        assert_eq!(fired[0].kind, "approval-reminder");
        assert_eq!(fired[0].outcome, "reminded");
    }
    let reminders = kinds_of(&engine, "g1", EventKind::ApprovalReminder);
    let ns: Vec<i64> = reminders
        .iter()
        .map(|e| e.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![1, 2, 3]);
    clock.advance(quarter);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired.len(), 1, "no fourth reminder, only the deadline");
    assert_eq!(fired[0].kind, "approval-timeout");

    // Decided before its first reminder: the reminder finds nothing to do and none follows.
    let (_dir, clock, mut engine) = gate_run(json!({"remind": {"everyMs": quarter}}));
    engine.approve(req("g1", "deploy", "alice")).unwrap();
    clock.advance(quarter);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired[0].outcome, "obsolete");
    assert_eq!(engine.next_timer_due().unwrap(), None);
    assert!(kinds_of(&engine, "g1", EventKind::ApprovalReminder).is_empty());
}

#[test]
fn an_escalation_widens_who_may_decide_after_its_delay() {
    let (_dir, clock, mut engine) = gate_run(json!({
        "allowedUsers": ["alice"],
        "escalate": [{"afterMs": HOUR, "allowedUsers": ["bob"]}]
    }));
    let early = engine.approve(req("g1", "deploy", "bob")).unwrap_err();
    assert_eq!(early.code(), "FORBIDDEN");
    clock.advance(HOUR);
    let fired = engine.fire_due_timers(10).unwrap();
    assert_eq!(fired[0].outcome, "escalated");
    let escalated = kinds_of(&engine, "g1", EventKind::ApprovalEscalated);
    assert_eq!(escalated.len(), 1);
    assert_eq!(
        escalated[0].payload["added"]["allowedUsers"],
        json!(["bob"])
    );
    assert_eq!(
        escalated[0].payload["allowedUsers"],
        json!(["alice", "bob"])
    );
    let decided = engine.approve(req("g1", "deploy", "bob")).unwrap();
    assert_eq!(decided.status, "approved");
    // The decision log has the escalation, then bob's decision, and holds.
    let log: Vec<(String, Option<String>)> = engine
        .audit_entries(0, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.actor))
        .collect();
    assert_eq!(
        log,
        vec![
            ("escalation".into(), Some("system:escalation".into())),
            ("decision".into(), Some("bob".into())),
        ]
    );
    assert!(engine.audit_verify().unwrap().ok);
}

#[test]
fn a_deadline_s_decision_is_in_the_decision_log_as_system_timeout() {
    let (_dir, clock, mut engine) = gate_run(json!({"timeoutMs": HOUR}));
    clock.advance(HOUR);
    engine.fire_due_timers(10).unwrap();
    let log = engine.audit_entries(0, 100).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].kind, "decision");
    assert_eq!(log[0].actor.as_deref(), Some("system:timeout"));
    assert_eq!(log[0].data["status"], json!("denied"));
    assert!(engine.audit_verify().unwrap().ok);
}

// ---- a caller follows what its sub-run waits on ---------------------------------------------

fn sub_flow(children: Vec<Value>) -> GraphDescriptor {
    descriptor(
        "sub-waits",
        json!({"gate": decision_schema(), "out": {"type": "object", "properties": {"n": {"type": "integer"}}}}),
        json!([]),
        seq(children),
    )
}

/// A run whose task `call` waits on a sub-run (`caller_flow`): its tasks answer `{n: 1}`.
fn caller_flow() -> GraphDescriptor {
    sub_flow(vec![
        compute("call", "out"),
        static_task("after", "out", json!({"n": 3})),
    ])
}

/// Drives `run` (claimed) with `graph`: `call` waits on `<run>.call.0` while that run is not
/// ended, and answers `{n: 1}` once it is.
fn drive_caller(engine: &mut Engine, run: &str, graph: &dyn Fn() -> GraphDescriptor) -> String {
    let sub = format!("{run}.call.0");
    let ended = engine.run_summary(&sub).is_ok_and(|s| {
        ["finished", "failed", "cancelled", "rejected"].contains(&s.status.as_str())
    });
    drive(engine, run, graph, |t| {
        if ended {
            ok(&t.node_id, t.attempt, json!({"n": 1}))
        } else {
            result(&t.node_id, t.attempt, json!({"ok": true, "waitingOn": sub}))
        }
    })
    .status
    .to_string()
}

/// Creates `<parent>.call.0`, the sub-run of `parent`'s task `call`.
fn create_sub(engine: &mut Engine, parent: &str) -> String {
    let id = format!("{parent}.call.0");
    create(
        engine,
        &id,
        smithers_core::NewRun {
            parent: Some(smithers_core::engine::ParentRef {
                run_id: parent.into(),
                node_id: "call".into(),
                iteration: 0,
            }),
            ..smithers_core::NewRun::default()
        },
    );
    id
}

fn statuses_changed(engine: &Engine, run: &str) -> Vec<String> {
    kinds_of(engine, run, EventKind::RunStatusChanged)
        .iter()
        .filter_map(|e| {
            e.payload
                .get("status")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect()
}

/// Issue 15's leftover: a sub-run decided on that now waits on a `<Timer>` makes its parked
/// caller `waiting-timer` in the same transaction (it stayed `waiting-approval`), and the
/// caller moves on once the timer fired and the sub-run ended.
#[test]
fn a_caller_follows_its_sub_run_from_a_gate_to_a_timer() {
    let clock = ManualClock::new(T0);
    let dir = TestDb::new();
    let mut engine = clocked(&dir, &clock);
    let child = || {
        sub_flow(vec![
            approval("g", json!({})),
            timer("cool-down", HOUR),
            static_task("after-cool-down", "out", json!({"n": 2})),
        ])
    };
    start(&mut engine, "p");
    let sub = create_sub(&mut engine, "p");
    let step = drive(&mut engine, &sub, child, |t| panic!("{}", t.node_id));
    assert_eq!(step.status, "waiting-approval");
    assert_eq!(
        drive_caller(&mut engine, "p", &caller_flow),
        "waiting-approval"
    );

    engine.approve(req(&sub, "g", "ann")).expect("approve");
    engine.claim_run(&sub, false).expect("claim the sub-run");
    let step = drive(&mut engine, &sub, child, |t| panic!("{}", t.node_id));
    assert_eq!(step.status, "waiting-timer");
    assert_eq!(
        status(&engine, "p"),
        "waiting-timer",
        "the caller waits on what its sub-run waits on now"
    );
    assert_eq!(
        statuses_changed(&engine, "p").last().map(String::as_str),
        Some("waiting-timer")
    );
    assert_eq!(
        engine.run_summary("p").unwrap().owner,
        None,
        "nobody drives the caller"
    );

    clock.advance(HOUR);
    assert_eq!(engine.fire_due_timers(10).unwrap().len(), 1);
    engine.claim_run(&sub, false).expect("claim the sub-run");
    let step = drive(&mut engine, &sub, child, |t| panic!("{}", t.node_id));
    assert_eq!(step.status, "finished");
    assert_eq!(
        status(&engine, "p"),
        "running",
        "the sub-run's end woke its caller"
    );
    engine.claim_run("p", false).expect("claim the caller");
    assert_eq!(drive_caller(&mut engine, "p", &caller_flow), "finished");
}

/// The other way, two levels deep: a sub-sub-run whose timer fired and that now waits on a
/// gate makes its caller and its caller's caller `waiting-approval` again (they stayed
/// `waiting-timer`, and nothing listed them as waiting for a decision).
#[test]
fn callers_up_the_chain_follow_a_sub_run_from_a_timer_to_a_gate() {
    let clock = ManualClock::new(T0);
    let dir = TestDb::new();
    let mut engine = clocked(&dir, &clock);
    let leaf = || sub_flow(vec![timer("cool-down", HOUR), approval("g", json!({}))]);
    start(&mut engine, "p");
    let mid = create_sub(&mut engine, "p");
    let sub = create_sub(&mut engine, &mid);
    assert_eq!(
        drive(&mut engine, &sub, leaf, |t| panic!("{}", t.node_id)).status,
        "waiting-timer"
    );
    assert_eq!(
        drive_caller(&mut engine, &mid, &caller_flow),
        "waiting-timer"
    );
    assert_eq!(
        drive_caller(&mut engine, "p", &caller_flow),
        "waiting-timer"
    );

    clock.advance(HOUR);
    assert_eq!(engine.fire_due_timers(10).unwrap().len(), 1);
    engine
        .claim_run(&sub, false)
        .expect("claim the sub-sub-run");
    let step = drive(&mut engine, &sub, leaf, |t| panic!("{}", t.node_id));
    assert_eq!(step.status, "waiting-approval");
    assert_eq!(status(&engine, &mid), "waiting-approval");
    assert_eq!(status(&engine, "p"), "waiting-approval");
    for run in [mid.as_str(), "p"] {
        let changed = statuses_changed(&engine, run);
        assert!(
            changed.ends_with(&["waiting-timer", "waiting-approval"].map(String::from)),
            "{run}: {changed:?}"
        );
    }
    // The gate is listed with the top caller, which is waiting-approval now.
    let listed = engine
        .pending_approvals(&smithers_core::ApprovalFilter {
            run_id: Some("p".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].run_id, sub);

    engine.approve(req(&sub, "g", "ann")).expect("approve");
    engine.claim_run(&sub, false).expect("claim");
    assert_eq!(
        drive(&mut engine, &sub, leaf, |t| panic!("{}", t.node_id)).status,
        "finished"
    );
    engine.claim_run(&mid, false).expect("claim");
    assert_eq!(drive_caller(&mut engine, &mid, &caller_flow), "finished");
    engine.claim_run("p", false).expect("claim");
    assert_eq!(drive_caller(&mut engine, "p", &caller_flow), "finished");
}
