//! Property tests of the core's inputs from outside (issue 12): graph descriptors, decision
//! requests and task results, generated near the valid ones and past them (hostile names,
//! duplicates, unknown kinds, junk values, control characters, deep nesting). Whatever comes in:
//! no panic, and a refusal writes nothing.

mod common;

use std::rc::Rc;

use common::{decision_schema, digest_db};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use smithers_core::{DecisionRequest, Engine, GraphDescriptor, NewRun, TaskResult};

// ---- values --------------------------------------------------------------------------------

/// Names drawn from a small pool, so generated graphs collide, refer to each other and hit the
/// edges the core checks (empty, spaces, quotes, reserved prefixes, one SQL name for two keys).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "gate", "step", "fooBar", "foo_bar", "loop1"]).prop_map(String::from),
        1 => prop::sample::select(vec![
            "", ".", "..", "a b", "x\";DROP TABLE t;--", "sqliteMaster", "_smithers_runs", "smithersRuns",
            "runId", "iteration", "\u{1b}[2J", "é", "1abc",
        ])
        .prop_map(String::from),
        1 => "[a-zA-Z][a-zA-Z0-9_]{0,70}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z ]{0,12}",
        1 => prop::sample::select(vec!["", "\u{0}", "a\u{1b}]0;x\u{7}", "line\nbreak", "tab\there", "\u{85}", "🚀"]).prop_map(String::from),
        1 => any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `depth` arrays around a number: past the output nesting limit when deep enough.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

// ---- graph descriptors ---------------------------------------------------------------------

fn field_schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "string"})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "integer"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "array"})),
        Just(json!({"anyOf": [{"type": "string"}, {"type": "null"}]})),
        Just(json!({"enum": ["x", "y"]})),
        Just(json!({"type": "nonsense"})),
        json_value(),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => (prop::collection::btree_map(name(), field_schema(), 0..4), any::<bool>()).prop_map(|(props, required)| {
            let keys: Vec<String> = props.keys().cloned().collect();
            let props: Map<String, Value> = props.into_iter().collect();
            if required {
                json!({"type": "object", "properties": props, "required": keys})
            } else {
                json!({"type": "object", "properties": props})
            }
        }),
        1 => Just(decision_schema()),
        1 => json_value(),
    ]
}

fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(json!({"type": "compute"})),
        2 => json_value().prop_map(|v| json!({"type": "static", "value": v})),
        2 => Just(json!({"type": "approval"})),
        1 => prop::option::of(text()).prop_map(|c| json!({"type": "command", "command": c, "cwd": "/tmp"})),
        1 => json_value().prop_map(|v| json!({"type": "wat", "value": v})),
    ]
}

fn approval_spec() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["gate", "decision", "select", "rank", "bogus"]),
        prop::sample::select(vec!["fail", "continue", "skip"]),
        text(),
        prop::collection::vec(name(), 0..3),
        prop::collection::vec(name(), 0..2),
        any::<bool>(),
    )
        .prop_map(|(mode, on_deny, title, input, required, options)| {
            let mut spec = json!({"mode": mode, "onDeny": on_deny, "request": {"title": title}, "input": input, "required": required});
            if options {
                spec["options"] = json!([{"key": "a", "label": "A"}, {"key": "b", "label": "B"}]);
            }
            spec
        })
}

fn task() -> impl Strategy<Value = Value> {
    (
        name(),
        name(),
        body(),
        prop::option::of(approval_spec()),
        prop::collection::vec(name(), 0..2),
        0u32..3,
        any::<bool>(),
        0i64..3,
    )
        .prop_map(|(id, output, body, approval, depends_on, retries, skip, iteration)| {
            let mut t = json!({"kind": "task", "id": id, "output": output, "body": body,
                               "dependsOn": depends_on, "retries": retries, "skip": skip, "iteration": iteration});
            if let Some(a) = approval {
                t["approval"] = a;
            }
            t
        })
}

fn plan_node() -> impl Strategy<Value = Value> {
    task().prop_recursive(4, 24, 4, |inner| {
        let children = prop::collection::vec(inner, 0..4);
        prop_oneof![
            children.clone().prop_map(|c| json!({"kind": "sequence", "children": c})),
            (children.clone(), prop::option::of(0u32..4)).prop_map(|(c, m)| json!({"kind": "parallel", "maxConcurrency": m, "children": c})),
            children.clone().prop_map(|c| json!({"kind": "group", "children": c})),
            (children.clone(), name(), any::<bool>(), 0u32..3).prop_map(|(c, id, until, max)| {
                json!({"kind": "loop", "id": id, "until": until, "maxIterations": max, "onMaxReached": "fail", "children": c})
            }),
            children.prop_map(|c| json!({"kind": "branchy", "children": c})),
        ]
    })
}

/// Makes a generated graph nearly valid, so most cases get past parsing to the engine: ids made
/// unique, outputs taken from the declared keys, bodies that fit their approval spec, loops
/// that can run, dependencies on nodes that exist. What stays random is the shape, the
/// schemas, the values, the names of keys and fields.
fn tidy(node: &mut Value, keys: &[String], ids: &mut Vec<String>) {
    let Some(kind) = node.get("kind").and_then(Value::as_str).map(String::from) else {
        return;
    };
    let n = ids.len();
    match kind.as_str() {
        "task" => {
            let id = format!("t{n}");
            node["id"] = json!(id);
            if !keys.is_empty() {
                node["output"] = json!(keys[n % keys.len()]);
            }
            let approval = node.get("approval").is_some();
            let body = node["body"]["type"].as_str().unwrap_or("").to_string();
            if approval {
                node["approval"]["mode"] = json!(["gate", "decision"][n % 2]);
                if node["body"]["type"] != "approval" && n % 2 == 1 {
                    node["body"] = json!({"type": "approval"});
                }
            } else if body == "approval" || (body == "command" && node["body"]["command"].is_null())
            {
                node["body"] = json!({"type": "compute"});
            }
            if body == "wat" {
                node["body"] = json!({"type": "compute"});
            }
            let deps: Vec<String> = ids
                .iter()
                .filter(|d| d.starts_with('t'))
                .take(1)
                .cloned()
                .collect();
            node["dependsOn"] = json!(if n % 3 == 0 { deps } else { vec![] });
            ids.push(id);
        }
        _ => {
            if kind == "branchy" {
                node["kind"] = json!("group");
            }
            if kind == "loop" {
                node["id"] = json!(format!("l{n}"));
                node["maxIterations"] = json!(node["maxIterations"].as_u64().unwrap_or(1).max(1));
                ids.push(format!("l{n}"));
            }
            if let Some(children) = node.get_mut("children").and_then(Value::as_array_mut) {
                for child in children {
                    tidy(child, keys, ids);
                }
            }
        }
    }
}

fn descriptor() -> impl Strategy<Value = Value> {
    (
        prop_oneof![9 => Just(1u32), 1 => any::<u32>()],
        text(),
        prop::collection::btree_map(name(), schema(), 0..4),
        prop_oneof![Just(json!("*")), prop::collection::vec(name(), 0..3).prop_map(|v| json!(v))],
        plan_node(),
        prop::sample::select(vec![true, true, true, false]),
    )
        .prop_map(|(version, wf, mut schemas, deps, mut root, tidied)| {
            if tidied && schemas.is_empty() {
                schemas.insert("step".into(), json!({"type": "object", "properties": {"v": {}}}));
            }
            let keys: Vec<String> = schemas.keys().cloned().collect();
            if tidied {
                tidy(&mut root, &keys, &mut Vec::new());
            }
            let schemas: Map<String, Value> = schemas.into_iter().collect();
            json!({"version": version, "workflow": {"name": wf}, "schemas": schemas, "renderDeps": deps, "root": root})
        })
}

// ---- an engine with a run ------------------------------------------------------------------

struct World {
    db: Rc<common::TestDb>,
    engine: Engine,
}

fn world() -> World {
    let (dir, mut engine) = common::open();
    let new = NewRun {
        workflow_name: Some("fuzz".into()),
        ..NewRun::default()
    };
    common::create(&mut engine, "r", new);
    World {
        db: Rc::new(dir),
        engine,
    }
}

/// Runs `f`; when it is refused, the database must be exactly as it was.
fn refused_writes_nothing<T>(
    db: &common::TestDb,
    what: &str,
    f: impl FnOnce() -> smithers_core::Result<T>,
) -> Option<T> {
    let before = digest_db(db);
    match f() {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(!e.code().is_empty());
            assert_eq!(
                digest_db(db),
                before,
                "{what} was refused ({}: {e}) but wrote",
                e.code()
            );
            None
        }
    }
}

/// A parked run with the gates decisions are aimed at: a decision gate with inputs, a select
/// gate, a reviewed step, all in parallel.
fn parked() -> World {
    let mut w = world();
    let g = json!({
        "version": 1, "workflow": {"name": "fuzz"}, "renderDeps": [],
        "schemas": {"gate": decision_schema(), "pick": {"type": "object", "properties": {"selected": {}, "notes": {}}},
                    "step": {"type": "object", "properties": {"v": {"type": "number"}}}},
        "root": {"kind": "parallel", "children": [
            {"kind": "task", "id": "a", "output": "gate", "body": {"type": "approval"},
             "approval": {"mode": "decision", "onDeny": "continue", "request": {"title": "a?"}, "input": ["WHY", "WHEN"], "required": ["WHY"]}},
            {"kind": "task", "id": "b", "output": "pick", "body": {"type": "approval"},
             "approval": {"mode": "select", "onDeny": "fail", "request": {"title": "b?"},
                          "options": [{"key": "x", "label": "X"}, {"key": "y", "label": "Y"}]}},
            {"kind": "task", "id": "c", "output": "step", "body": {"type": "static", "value": {"v": 1}},
             "review": {"prompt": "c?", "input": ["FEEDBACK"]}},
        ]},
    });
    let graph = GraphDescriptor::parse(&g.to_string()).expect("graph");
    let step = w.engine.submit_graph("r", graph).expect("submit");
    assert_eq!(step.status, "waiting-approval");
    w
}

fn decision_request() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["r", "r", "r", "nope", ""]),
        prop::option::of(prop::sample::select(vec!["a", "b", "c", "zzz", ""])),
        prop::option::of(prop_oneof![Just(0i64), -3i64..3, Just(i64::MAX)]),
        prop::option::of(text()),
        prop::option::of(prop_oneof![3 => Just("alice".to_string()), 1 => text()]),
        prop::collection::vec(text(), 0..2),
        prop::option::of(json_value()),
        prop::collection::btree_map(prop::sample::select(vec!["WHY", "WHEN", "FEEDBACK", "PATH", "x"]).prop_map(String::from), text(), 0..3),
        prop::option::of(text()),
        any::<bool>(),
    )
        .prop_map(|(run, node, it, note, by, scopes, decision, inputs, reason, forbid)| {
            json!({"runId": run, "nodeId": node, "iteration": it, "note": note, "decidedBy": by, "scopes": scopes,
                   "decision": decision, "inputs": inputs, "reason": reason, "forbidStarter": forbid})
        })
}

fn task_result() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["t0", "t1", "t2", "nope"]),
        -1i64..3,
        0i64..3,
        any::<bool>(),
        prop_oneof![4 => json_value(), 1 => (95usize..110).prop_map(|d| json!({"v": nested(d)}))],
        prop::option::of(text()),
    )
        .prop_map(|(node, it, attempt, ok, value, message)| {
            json!({"nodeId": node, "iteration": it, "attempt": attempt, "ok": ok, "value": value,
                   "error": message.map(|m| json!({"code": "X", "message": m}))})
        })
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn graph_descriptors_never_panic_and_a_refusal_writes_nothing(g in descriptor()) {
        let mut w = world();
        let Ok(graph) = GraphDescriptor::parse(&g.to_string()) else { return Ok(()) };
        let path = w.db.clone();
        refused_writes_nothing(&path, "validate_graph", || w.engine.validate_graph(&graph));
        let submitted = refused_writes_nothing(&path, "submit_graph", || w.engine.submit_graph("r", graph.clone()));
        if submitted.is_some() {
            // The same graph again (a re-render) is taken as it was.
            w.engine.submit_graph("r", graph).map(|_| ()).or_else(|e| if e.code() == "RUN_NOT_CLAIMED" { Ok(()) } else { Err(e) })
                .map_err(|e| TestCaseError::fail(format!("a resubmitted graph was refused: {}: {e}", e.code())))?;
        }
    }

}

proptest! {
    // Each case is a sequence of calls on one run.
    #![proptest_config(cases(96))]

    #[test]
    fn decision_requests_never_panic_and_a_refusal_writes_nothing(
        requests in prop::collection::vec((0u8..3, decision_request()), 1..6),
    ) {
        let mut w = parked();
        let path = w.db.clone();
        for (verdict, request) in requests {
            let Ok(req) = serde_json::from_value::<DecisionRequest>(request) else { continue };
            refused_writes_nothing(&path, "a decision", || match verdict {
                0 => w.engine.approve(req),
                1 => w.engine.deny(req),
                _ => w.engine.push_back(req),
            });
        }
    }

    #[test]
    fn task_results_never_panic_and_a_refusal_writes_nothing(
        results in prop::collection::vec(prop::collection::vec(task_result(), 1..4), 1..4),
    ) {
        let mut w = world();
        let g = json!({
            "version": 1, "workflow": {"name": "fuzz"}, "renderDeps": [],
            "schemas": {"step": {"type": "object", "properties": {"v": {}}, "required": ["v"]}},
            "root": {"kind": "parallel", "children": [
                {"kind": "task", "id": "t0", "output": "step", "body": {"type": "compute"}, "retries": 1},
                {"kind": "task", "id": "t1", "output": "step", "body": {"type": "compute"}},
                {"kind": "task", "id": "t2", "output": "step", "body": {"type": "compute"}, "continueOnFail": true},
            ]},
        });
        let graph = GraphDescriptor::parse(&g.to_string()).expect("graph");
        w.engine.submit_graph("r", graph).expect("submit");
        let path = w.db.clone();
        for batch in results {
            let Ok(batch) = batch.into_iter().map(serde_json::from_value).collect::<Result<Vec<TaskResult>, _>>() else { continue };
            refused_writes_nothing(&path, "a batch of results", || w.engine.complete_tasks("r", batch));
        }
    }
}
