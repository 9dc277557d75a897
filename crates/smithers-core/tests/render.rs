//! A render sent with the results it read (`complete_and_submit`) and a render named by its
//! graph id (`submit_same_graph`): applied only when recording the results changed exactly
//! what the driver assumed; refused, with nothing written, for an id that is not the plan's.

mod common;

use common::{decision_schema, digest_db, open, query, start};
use serde_json::{Value, json};
use smithers_core::{Engine, RenderedGraph, Step, TaskResult};

fn step_schema() -> Value {
    json!({"type": "object", "properties": {"v": {"type": "number"}}, "required": ["v"], "additionalProperties": false})
}

/// The descriptor text of a sequence of compute tasks `ids` whose render reads `deps`.
fn text(ids: &[&str], deps: Value) -> String {
    let children: Vec<Value> = ids.iter().map(|id| common::compute(id, "step")).collect();
    json!({
        "version": 1,
        "workflow": {"name": "test"},
        "schemas": {"step": step_schema(), "gate": decision_schema()},
        "renderDeps": deps,
        "root": {"kind": "sequence", "children": children},
    })
    .to_string()
}

fn ok(node: &str, attempt: i64, v: Value) -> TaskResult {
    common::ok(node, attempt, json!({ "v": v }))
}

fn nodes(db: &common::TestDb, run_id: &str) -> Vec<String> {
    query(
        db,
        &format!("SELECT node_id FROM _smithers_nodes WHERE run_id = '{run_id}' ORDER BY node_id"),
    )
    .into_iter()
    .map(|row| row[0].as_str().unwrap_or_default().to_string())
    .collect()
}

fn first_task(step: &Step) -> (String, i64) {
    let t = step.tasks.first().expect("a task handed out");
    (t.node_id.clone(), t.attempt)
}

/// Submits the first text and returns its step.
fn begin(engine: &mut Engine, run_id: &str, graph: &str) -> Step {
    start(engine, run_id);
    let step = engine.submit_graph_json(run_id, graph).unwrap();
    assert_ne!(step.graph_id, 0, "a plan built from text has an id");
    step
}

/// A sequence whose render reads each output goes on with one call per task, whether the
/// render comes as the id of the plan's text or as new text, and ends as the usual drive does.
#[test]
fn a_render_sent_with_the_results_it_read_goes_on_in_one_call() {
    let (db, mut engine) = open();
    let deps = json!(["a", "b"]);
    let first = text(&["a", "b", "c"], deps.clone());
    let mut step = begin(&mut engine, "seq", &first);
    let id = step.graph_id;
    let mut ran = Vec::new();

    // a: the same graph again, by its id.
    let (node, attempt) = first_task(&step);
    ran.push(node.clone());
    step = engine
        .complete_and_submit(
            "seq",
            vec![ok(&node, attempt, json!(1))],
            RenderedGraph::Same(id),
        )
        .unwrap();
    assert!(step.graph_applied && !step.needs_render);
    assert_eq!(step.graph_id, id, "the plan's text is unchanged");
    assert_eq!(
        step.outputs.len(),
        1,
        "the row the driver rendered with is reported"
    );

    // b: a render that adds a task, as new text.
    let second = text(&["a", "b", "c", "d"], deps);
    let (node, attempt) = first_task(&step);
    ran.push(node.clone());
    step = engine
        .complete_and_submit(
            "seq",
            vec![ok(&node, attempt, json!(2))],
            RenderedGraph::Text(&second),
        )
        .unwrap();
    assert!(step.graph_applied && !step.needs_render);
    assert!(
        step.graph_id != id && step.graph_id != 0,
        "new text, new id"
    );
    assert_eq!(nodes(&db, "seq"), ["a", "b", "c", "d"]);

    // c and d: their outputs are not read; the usual call.
    while let Some((node, attempt)) = step.tasks.first().map(|t| (t.node_id.clone(), t.attempt)) {
        ran.push(node.clone());
        step = engine
            .complete_tasks("seq", vec![ok(&node, attempt, json!(3))])
            .unwrap();
        assert!(!step.needs_render);
    }
    assert_eq!(ran, ["a", "b", "c", "d"]);
    assert_eq!(step.status, "finished");

    // The text of the plan, named by an id, again: accepted by submit_same_graph too.
    let step = begin(&mut engine, "again", &first);
    let again = engine.submit_same_graph("again", step.graph_id).unwrap();
    assert_eq!(again.graph_id, step.graph_id);
}

/// A value the schema refuses: the result is recorded as complete_tasks records it (the task
/// fails), the graph sent with it is not applied (its new node is not written), and no task
/// is handed out.
#[test]
fn a_refused_value_leaves_the_graph_unapplied() {
    let (db, mut engine) = open();
    let step = begin(&mut engine, "bad", &text(&["a", "b"], json!(["a"])));
    let (node, attempt) = first_task(&step);
    let with_extra = text(&["a", "b", "extra"], json!(["a"]));
    let step = engine
        .complete_and_submit(
            "bad",
            vec![ok(&node, attempt, json!("not a number"))],
            RenderedGraph::Text(&with_extra),
        )
        .unwrap();
    assert!(!step.graph_applied);
    assert!(step.tasks.is_empty());
    assert_eq!(step.status, "failed");
    assert_eq!(step.error.unwrap().code, "INVALID_OUTPUT");
    assert_eq!(
        nodes(&db, "bad"),
        ["a", "b"],
        "nothing of the graph was written"
    );
}

/// A late result (an attempt already reported, so the node is finished): nothing is published,
/// the graph is not applied, and the step owes a render; the render that follows is taken as
/// usual.
#[test]
fn a_late_result_leaves_the_graph_unapplied_and_owes_a_render() {
    let (db, mut engine) = open();
    let first = text(&["a", "b", "c"], json!(["b"]));
    let step = begin(&mut engine, "late", &first);
    let (a, attempt) = first_task(&step);
    let step = engine
        .complete_tasks("late", vec![ok(&a, attempt, json!(1))])
        .unwrap();
    let (b, b_attempt) = first_task(&step);
    assert_eq!(b, "b");

    let with_extra = text(&["a", "b", "c", "extra"], json!(["b"]));
    let step = engine
        .complete_and_submit(
            "late",
            vec![ok(&a, attempt, json!(9))],
            RenderedGraph::Text(&with_extra),
        )
        .unwrap();
    assert!(!step.graph_applied);
    assert!(step.needs_render && step.tasks.is_empty());
    assert!(step.outputs.is_empty());
    assert_eq!(nodes(&db, "late"), ["a", "b", "c"]);
    let stored = query(&db, "SELECT v FROM step WHERE node_id = 'a'");
    assert_eq!(stored[0][0].as_f64(), Some(1.0), "the first value stays");

    // The render owed, as the plan's text: b is still running, and finishes.
    let step = engine.submit_graph_json("late", &first).unwrap();
    assert!(step.tasks.is_empty() && step.in_flight == 1);
    let step = engine
        .complete_and_submit(
            "late",
            vec![ok(&b, b_attempt, json!(2))],
            RenderedGraph::Same(step.graph_id),
        )
        .unwrap();
    assert!(step.graph_applied);
    assert_eq!(first_task(&step).0, "c");
}

/// A graph submit_graph would refuse, sent with results: the results are recorded, the graph
/// is not applied, and the render owed meets the refusal from submit_graph.
#[test]
fn an_invalid_graph_sent_with_results_is_refused_by_the_render_it_owes() {
    let (db, mut engine) = open();
    let step = begin(&mut engine, "inv", &text(&["a", "b"], json!(["a"])));
    let (a, attempt) = first_task(&step);
    let step = engine
        .complete_and_submit(
            "inv",
            vec![ok(&a, attempt, json!(1))],
            RenderedGraph::Text("{not json"),
        )
        .unwrap();
    assert!(!step.graph_applied);
    assert!(step.needs_render && step.tasks.is_empty());
    assert_eq!(step.outputs.len(), 1, "the result was recorded");
    assert_eq!(
        query(&db, "SELECT COUNT(*) FROM step")[0][0].as_i64(),
        Some(1)
    );
    let err = engine.submit_graph_json("inv", "{not json").unwrap_err();
    assert_eq!(err.code(), "INVALID_GRAPH");
}

/// An id that is not the plan's graph (never given, or the plan was rebuilt since) is refused
/// with STALE_GRAPH before anything is written; the run is still driven and goes on.
#[test]
fn a_stale_graph_id_is_refused_and_changes_nothing() {
    let (db, mut engine) = open();
    let first = text(&["a", "b"], json!(["a"]));
    let step = begin(&mut engine, "stale", &first);
    let old_id = step.graph_id;
    let (a, attempt) = first_task(&step);
    let before = digest_db(&db);

    for id in [0, old_id + 1_000_000] {
        let err = engine
            .complete_and_submit(
                "stale",
                vec![ok(&a, attempt, json!(1))],
                RenderedGraph::Same(id),
            )
            .unwrap_err();
        assert_eq!(err.code(), "STALE_GRAPH");
        assert_eq!(err.details()["currentGraphId"], json!(old_id));
        let err = engine.submit_same_graph("stale", id).unwrap_err();
        assert_eq!(err.code(), "STALE_GRAPH");
    }
    assert_eq!(digest_db(&db), before, "nothing was written");

    // A new text replaces the plan: the old id is stale now.
    let second = text(&["a", "b", "c"], json!(["a"]));
    let step = engine
        .complete_and_submit(
            "stale",
            vec![ok(&a, attempt, json!(1))],
            RenderedGraph::Text(&second),
        )
        .unwrap();
    assert!(step.graph_applied);
    let err = engine.submit_same_graph("stale", old_id).unwrap_err();
    assert_eq!(err.code(), "STALE_GRAPH");
    let (b, attempt) = first_task(&step);
    let step = engine
        .complete_and_submit(
            "stale",
            vec![ok(&b, attempt, json!(2))],
            RenderedGraph::Same(step.graph_id),
        )
        .unwrap();
    assert_eq!(first_task(&step).0, "c");
}

/// A result that is not a value (a failure) never carries a graph that is applied, even when
/// the failure is retried and nothing else changed.
#[test]
fn a_failure_sent_with_a_graph_leaves_it_unapplied() {
    let (_db, mut engine) = open();
    let retried = json!({
        "version": 1,
        "workflow": {"name": "test"},
        "schemas": {"step": step_schema()},
        "renderDeps": ["a"],
        "root": {"kind": "sequence", "children": [common::with(common::compute("a", "step"), json!({"retries": 1}))]},
    })
    .to_string();
    let step = begin(&mut engine, "fail", &retried);
    let (a, attempt) = first_task(&step);
    let step = engine
        .complete_and_submit(
            "fail",
            vec![common::failed(&a, attempt, "boom")],
            RenderedGraph::Same(step.graph_id),
        )
        .unwrap();
    assert!(!step.graph_applied);
    assert!(
        step.needs_render && step.tasks.is_empty(),
        "the retry waits for the render owed"
    );
    let step = engine.submit_same_graph("fail", step.graph_id).unwrap();
    assert_eq!(first_task(&step), ("a".to_string(), 2));
}
