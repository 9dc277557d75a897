//! The plan and the scheduler on their own: plans built from descriptors, node states from a
//! fake lookup (a map), no store and no engine.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::{Action, NodeLookup, NodeView, Plan, Walk, WalkCache};
use crate::graph::GraphDescriptor;
use crate::machines::node::SkipReason;
use crate::machines::{ApprovalStatus, NodeState};

/// Node states by `(id, iteration)`, loops marked done, and how many node reads the walk made.
#[derive(Default)]
struct Fake {
    nodes: HashMap<(String, i64), NodeView>,
    done_loops: HashSet<String>,
    reads: Cell<usize>,
}

impl Fake {
    /// Every task of the plan `pending`, no approval row.
    fn pending(plan: &Plan) -> Fake {
        let mut fake = Fake::default();
        for (_, t) in plan.tasks() {
            fake.set(&t.id, NodeState::Pending);
        }
        fake
    }

    fn set(&mut self, id: &str, state: NodeState) {
        let approval = self.nodes.get(&(id.into(), 0)).and_then(|v| v.approval);
        self.nodes
            .insert((id.into(), 0), NodeView { state, approval });
    }

    fn approval(&mut self, id: &str, status: ApprovalStatus) {
        if let Some(v) = self.nodes.get_mut(&(id.into(), 0)) {
            v.approval = Some(status);
        }
    }
}

impl NodeLookup for Fake {
    fn node(&self, id: &str, iteration: i64) -> Option<NodeView> {
        self.reads.set(self.reads.get() + 1);
        self.nodes.get(&(id.to_string(), iteration)).copied()
    }

    fn loop_done(&self, loop_id: &str) -> bool {
        self.done_loops.contains(loop_id)
    }
}

fn plan(root: Value) -> Plan {
    let g: GraphDescriptor = serde_json::from_value(json!({
        "version": 1, "workflow": {"name": "plan"}, "renderDeps": ["a"], "root": root,
    }))
    .expect("a descriptor");
    Plan::build(g)
}

fn task(id: &str) -> Value {
    json!({"kind": "task", "id": id, "output": "out", "body": {"type": "compute"}})
}

fn with(mut node: Value, extra: Value) -> Value {
    if let (Some(n), Value::Object(extra)) = (node.as_object_mut(), extra) {
        n.extend(extra);
    }
    node
}

fn gate(id: &str, body: &str) -> Value {
    json!({"kind": "task", "id": id, "output": "gate", "body": {"type": body},
           "approval": {"mode": "decision", "request": {"title": id}}})
}

fn seq(children: Vec<Value>) -> Value {
    json!({"kind": "sequence", "children": children})
}

fn par(children: Vec<Value>, max: Option<u32>) -> Value {
    json!({"kind": "parallel", "maxConcurrency": max, "children": children})
}

/// One walk: the actions (by task id; `loop:<id>` for a loop's end) and whether all is terminal.
fn walk(plan: &Plan, lookup: &Fake, cache: &mut WalkCache) -> (Vec<String>, bool) {
    let mut w = Walk {
        plan,
        lookup,
        cache,
        actions: Vec::new(),
        provisional: false,
    };
    let done = w.run();
    let name = |i: usize| match plan.task(i) {
        Some(t) => t.id.clone(),
        None => match &plan.nodes[i].kind {
            super::EntryKind::Loop { id, .. } => format!("loop:{id}"),
            _ => format!("#{i}"),
        },
    };
    let actions = w
        .actions
        .iter()
        .map(|a| match *a {
            Action::RequestApproval(i) => format!("request {}", name(i)),
            Action::RunStatic(i) => format!("static {}", name(i)),
            Action::Start(i) => format!("start {}", name(i)),
            Action::Skip(i, SkipReason::SkipIf) => format!("skip {}", name(i)),
            Action::Skip(i, SkipReason::Denied) => format!("skip-denied {}", name(i)),
            Action::FinishFromDecision(i) => format!("decided {}", name(i)),
            Action::LoopEnd(i) => format!("end {}", name(i)),
        })
        .collect();
    (actions, done)
}

fn fresh_walk(plan: &Plan, lookup: &Fake) -> (Vec<String>, bool) {
    walk(plan, lookup, &mut WalkCache::new(plan))
}

#[test]
fn a_sequence_starts_one_task_at_a_time_and_ends_when_all_are_terminal() {
    let p = plan(seq(vec![task("a"), task("b"), task("c")]));
    let mut fake = Fake::pending(&p);
    let mut cache = WalkCache::new(&p);
    assert_eq!(walk(&p, &fake, &mut cache), (vec!["start a".into()], false));
    fake.set("a", NodeState::InProgress);
    assert_eq!(walk(&p, &fake, &mut cache), (vec![], false));
    fake.set("a", NodeState::Finished);
    assert_eq!(walk(&p, &fake, &mut cache), (vec!["start b".into()], false));
    fake.set("b", NodeState::Skipped);
    fake.set("c", NodeState::Failed);
    assert_eq!(
        walk(&p, &fake, &mut cache),
        (vec![], false),
        "a failed task holds the sequence"
    );
    fake.set("c", NodeState::Finished);
    assert_eq!(walk(&p, &fake, &mut cache), (vec![], true));
}

#[test]
fn a_failed_task_that_continues_on_fail_is_terminal() {
    let p = plan(seq(vec![
        with(task("a"), json!({"continueOnFail": true})),
        task("b"),
    ]));
    let mut fake = Fake::pending(&p);
    fake.set("a", NodeState::Failed);
    assert_eq!(fresh_walk(&p, &fake), (vec!["start b".into()], false));
}

#[test]
fn a_parallel_starts_all_its_children_up_to_its_concurrency() {
    let children = || vec![task("a"), task("b"), task("c")];
    let p = plan(par(children(), None));
    let fake = Fake::pending(&p);
    assert_eq!(fresh_walk(&p, &fake).0, ["start a", "start b", "start c"]);

    let p = plan(par(children(), Some(2)));
    let mut fake = Fake::pending(&p);
    assert_eq!(fresh_walk(&p, &fake).0, ["start a", "start b"]);
    fake.set("a", NodeState::InProgress);
    assert_eq!(
        fresh_walk(&p, &fake).0,
        ["start b"],
        "one slot left while a runs"
    );
    fake.set("a", NodeState::Finished);
    fake.set("b", NodeState::InProgress);
    assert_eq!(fresh_walk(&p, &fake).0, ["start c"]);
}

#[test]
fn an_inner_parallel_spends_the_outer_budget() {
    let p = plan(par(
        vec![par(vec![task("a"), task("b")], None), task("c")],
        Some(2),
    ));
    let fake = Fake::pending(&p);
    assert_eq!(fresh_walk(&p, &fake).0, ["start a", "start b"]);
}

#[test]
fn depends_on_waits_for_a_terminal_upstream_and_skip_if_skips() {
    let p = plan(par(
        vec![
            task("a"),
            with(task("b"), json!({"dependsOn": ["a"]})),
            with(task("c"), json!({"skip": true})),
        ],
        None,
    ));
    let mut fake = Fake::pending(&p);
    assert_eq!(fresh_walk(&p, &fake).0, ["start a", "skip c"]);
    fake.set("a", NodeState::Finished);
    fake.set("c", NodeState::Skipped);
    assert_eq!(fresh_walk(&p, &fake).0, ["start b"]);
}

#[test]
fn a_static_body_is_written_by_the_core() {
    let p = plan(seq(vec![json!(
        {"kind": "task", "id": "s", "output": "out", "body": {"type": "static", "value": 1}}
    )]));
    assert_eq!(fresh_walk(&p, &Fake::pending(&p)).0, ["static s"]);
}

#[test]
fn a_gate_is_requested_then_waits_then_lets_its_task_start() {
    let p = plan(seq(vec![gate("deploy", "compute"), gate("ok", "approval")]));
    let mut fake = Fake::pending(&p);
    assert_eq!(fresh_walk(&p, &fake).0, ["request deploy"]);
    fake.approval("deploy", ApprovalStatus::Requested);
    assert_eq!(fresh_walk(&p, &fake).0, Vec::<String>::new());
    fake.approval("deploy", ApprovalStatus::Denied);
    assert_eq!(
        fresh_walk(&p, &fake).0,
        Vec::<String>::new(),
        "a stale view of a decided gate waits for the decision's own move"
    );
    fake.approval("deploy", ApprovalStatus::PushedBack);
    assert_eq!(
        fresh_walk(&p, &fake).0,
        ["request deploy"],
        "a row that is not a decision asks again"
    );
    fake.approval("deploy", ApprovalStatus::Approved);
    assert_eq!(fresh_walk(&p, &fake).0, ["start deploy"]);
    fake.set("deploy", NodeState::Finished);
    fake.approval("ok", ApprovalStatus::Approved);
    assert_eq!(
        fresh_walk(&p, &fake).0,
        ["decided ok"],
        "an <Approval> with its decision is finished from it"
    );
}

#[test]
fn an_async_gate_does_not_hold_up_its_sequence_and_is_not_cached_as_terminal() {
    let mut g = gate("wait", "approval");
    g["approval"]["async"] = json!(true);
    let p = plan(seq(vec![
        g,
        task("next"),
        with(task("after"), json!({"dependsOn": ["wait"]})),
    ]));
    let mut fake = Fake::pending(&p);
    fake.set("wait", NodeState::WaitingApproval);
    fake.approval("wait", ApprovalStatus::Requested);
    let mut cache = WalkCache::new(&p);
    assert_eq!(walk(&p, &fake, &mut cache).0, ["start next"]);
    fake.set("next", NodeState::Finished);
    assert_eq!(
        walk(&p, &fake, &mut cache),
        (vec![], false),
        "dependsOn still waits for the gate"
    );
    // The decision puts the gate back to pending: the cached walk sees it again.
    fake.set("wait", NodeState::Pending);
    fake.approval("wait", ApprovalStatus::Approved);
    assert_eq!(walk(&p, &fake, &mut cache).0, ["decided wait"]);
}

#[test]
fn a_loop_ends_its_iteration_when_its_children_are_terminal() {
    let lp = |until: bool| json!({"kind": "loop", "id": "L", "until": until, "children": [task("x"), task("y")]});
    let p = plan(seq(vec![lp(false), task("after")]));
    let mut fake = Fake::pending(&p);
    assert_eq!(fresh_walk(&p, &fake), (vec!["start x".into()], false));
    fake.set("x", NodeState::Finished);
    fake.set("y", NodeState::Finished);
    assert_eq!(fresh_walk(&p, &fake), (vec!["end loop:L".into()], false));
    fake.done_loops.insert("L".into());
    assert_eq!(fresh_walk(&p, &fake), (vec!["start after".into()], false));

    let p = plan(seq(vec![lp(true)]));
    assert_eq!(
        fresh_walk(&p, &Fake::pending(&p)).0,
        ["end loop:L"],
        "a loop whose until holds ends at once"
    );
}

#[test]
fn a_task_the_lookup_does_not_know_holds_its_sequence() {
    let p = plan(seq(vec![task("a"), task("b")]));
    let fake = Fake::default();
    assert_eq!(fresh_walk(&p, &fake), (vec![], false));
}

#[test]
fn the_walk_caches_terminal_prefixes_so_a_long_sequence_costs_one_step_per_task() {
    let n = 200;
    let p = plan(seq((0..n).map(|i| task(&format!("t{i}"))).collect()));
    let mut fake = Fake::pending(&p);
    let mut cache = WalkCache::new(&p);
    let mut reads = Vec::new();
    for i in 0..n {
        fake.reads.set(0);
        let (actions, done) = walk(&p, &fake, &mut cache);
        assert_eq!(actions, [format!("start t{i}")]);
        assert!(!done);
        reads.push(fake.reads.get());
        fake.set(&format!("t{i}"), NodeState::Finished);
    }
    // Each walk reads the finished task once more and the next one: never the whole prefix.
    assert!(reads.iter().all(|&r| r <= 2), "{reads:?}");
    assert!(walk(&p, &fake, &mut cache).1);
}

#[test]
fn downstream_is_later_siblings_and_what_names_them_in_depends_on() {
    let p = plan(seq(vec![
        par(
            vec![
                task("a"),
                task("b"),
                with(task("c"), json!({"dependsOn": ["a"]})),
            ],
            None,
        ),
        task("d"),
        with(task("e"), json!({"dependsOn": ["d"]})),
    ]));
    let ids = |set: HashSet<usize>| {
        let mut v: Vec<String> = set
            .into_iter()
            .filter_map(|i| p.task(i).map(|t| t.id.clone()))
            .collect();
        v.sort();
        v
    };
    let idx = |id: &str| p.task_index[id];
    assert_eq!(ids(p.downstream(idx("a"))), ["c", "d", "e"]);
    assert_eq!(
        ids(p.downstream(idx("b"))),
        ["d", "e"],
        "a parallel sibling is not downstream"
    );
    assert_eq!(ids(p.downstream(idx("d"))), ["e"]);
    assert!(p.downstream(idx("e")).is_empty());
}

#[test]
fn a_push_back_resets_its_rewind_target_and_everything_after_it() {
    let reviewed = |rewind: Option<&str>| {
        with(
            task("review"),
            json!({"review": {"prompt": "ok?", "rewindTo": rewind}}),
        )
    };
    let p = plan(seq(vec![
        task("a"),
        task("b"),
        reviewed(Some("a")),
        task("z"),
    ]));
    p.check_rewinds().expect("a is upstream of review");
    let scope: Vec<String> = p
        .reset_scope(p.task_index["review"])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(scope, ["a", "b", "review", "z"]);

    let p = plan(seq(vec![task("a"), reviewed(None), task("z")]));
    let scope: Vec<String> = p
        .reset_scope(p.task_index["review"])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(scope, ["review", "z"], "by default the step itself");

    let p = plan(seq(vec![reviewed(Some("z")), task("z")]));
    let err = p.check_rewinds().expect_err("z runs after review");
    assert_eq!(err.code(), "INVALID_GRAPH");
}

#[test]
fn render_deps_say_which_outputs_need_a_new_render() {
    let p = plan(seq(vec![task("a"), task("b")]));
    assert!(p.render_depends_on("a"));
    assert!(!p.render_depends_on("b"));
    let all: GraphDescriptor = serde_json::from_value(
        json!({"version": 1, "renderDeps": "*", "root": seq(vec![task("a")])}),
    )
    .expect("a descriptor");
    assert!(Plan::build(all).render_depends_on("anything"));
}

#[test]
fn a_plan_carries_inputs_only_when_a_gate_or_review_can_send_them() {
    assert!(!plan(seq(vec![task("a"), gate("g", "approval")])).carries_inputs);
    let mut g = gate("g", "approval");
    g["approval"]["input"] = json!(["TICKET"]);
    assert!(plan(seq(vec![g])).carries_inputs);
    assert!(plan(seq(vec![with(task("r"), json!({"review": {}}))])).carries_inputs);
}
