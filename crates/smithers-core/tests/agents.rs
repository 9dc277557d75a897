//! Agent tasks in the core: handed out like compute tasks, answers checked without being
//! recorded (`check_output`), each attempt's call kept with its result, and a database of
//! schema v3 migrated to v4.

use serde_json::{Value, json};
use smithers_core::{Engine, GraphDescriptor, LogFilter, NewRun, TaskResult};

fn graph(children: Value) -> GraphDescriptor {
    let g = json!({
        "version": 1,
        "workflow": {"name": "agents"},
        "schemas": {"advice": {
            "type": "object",
            "properties": {"verdict": {"enum": ["ship", "hold"]}},
            "required": ["verdict"],
            "additionalProperties": false
        }},
        "renderDeps": [],
        "root": {"kind": "sequence", "children": children},
    });
    GraphDescriptor::parse(&g.to_string()).unwrap()
}

fn agent_task(id: &str, retries: u32) -> Value {
    json!({"kind": "task", "id": id, "output": "advice", "body": {"type": "agent", "agent": "advisor"}, "retries": retries})
}

fn result(node: &str, attempt: i64, ok: bool, value: Value, text: &str) -> TaskResult {
    let mut r = json!({
        "nodeId": node, "attempt": attempt, "ok": ok,
        "agent": {"agent": "advisor", "model": "mock", "prompt": format!("prompt {attempt}"), "text": text,
                  "usage": {"inputTokens": 10, "outputTokens": 3}, "toolCalls": 2}
    });
    if ok {
        r["value"] = value;
    } else {
        r["error"] = json!({"code": "INVALID_OUTPUT", "message": "no JSON"});
    }
    serde_json::from_value(r).unwrap()
}

#[test]
fn an_agent_attempt_keeps_its_call_with_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(dir.path().join("smithers.db")).unwrap();
    engine
        .create_run(NewRun {
            run_id: Some("a".into()),
            ..NewRun::default()
        })
        .unwrap();
    let step = engine
        .submit_graph("a", graph(json!([agent_task("advise", 1)])))
        .unwrap();
    assert_eq!(step.tasks.len(), 1, "handed out like a compute task");
    assert_eq!(step.tasks[0].attempt, 1);

    // Checking an answer records nothing.
    assert!(
        engine
            .check_output("a", "advise", &json!({"verdict": "ship"}))
            .is_ok()
    );
    let err = engine
        .check_output("a", "advise", &json!({"verdict": "maybe"}))
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_OUTPUT");
    assert_eq!(
        engine
            .check_output("a", "nope", &json!({}))
            .unwrap_err()
            .code(),
        "NODE_NOT_FOUND"
    );

    let step = engine
        .complete_tasks(
            "a",
            vec![result("advise", 1, false, Value::Null, "I think ship")],
        )
        .unwrap();
    assert_eq!(step.tasks[0].attempt, 2, "a failed answer is retried");
    let step = engine
        .complete_tasks(
            "a",
            vec![result(
                "advise",
                2,
                true,
                json!({"verdict": "ship"}),
                "```json\n{\"verdict\":\"ship\"}\n```",
            )],
        )
        .unwrap();
    assert_eq!(step.status, "finished");

    let info = engine.inspect("a").unwrap();
    let attempts: Vec<(i64, String, Option<String>)> = info
        .agent_attempts
        .iter()
        .map(|a| (a.attempt, a.state.clone(), a.response_text.clone()))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, "failed".into(), Some("I think ship".into())),
            (
                2,
                "finished".into(),
                Some("```json\n{\"verdict\":\"ship\"}\n```".into())
            )
        ]
    );
    let second = &info.agent_attempts[1];
    assert_eq!(second.prompt.as_deref(), Some("prompt 2"));
    assert_eq!(
        second.usage,
        Some(json!({"inputTokens": 10, "outputTokens": 3}))
    );
    assert_eq!(second.agent.as_ref().unwrap()["toolCalls"], 2);
    let logs = engine.attempt_logs("a", &LogFilter::default()).unwrap();
    assert_eq!(logs.len(), 2, "agent attempts are in the logs");
    let usage_events = engine
        .events("a", 0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "TokenUsageReported")
        .count();
    assert_eq!(usage_events, 2);
}

#[test]
fn a_version_3_database_gains_the_agent_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smithers.db");
    {
        // What schema v3 created for attempts, the tables later versions alter (v5: sub-run
        // callers; v6: leases, schemas per run) as far as they need them, and its version mark.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE _smithers_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO _smithers_meta VALUES ('schema_version', '3');
             CREATE TABLE _smithers_runs (run_id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL, workflow_path TEXT,
               status TEXT NOT NULL, input_json TEXT NOT NULL DEFAULT 'null', error_json TEXT, owner TEXT,
               created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL, finished_at_ms INTEGER, started_by TEXT);
             CREATE TABLE _smithers_nodes (run_id TEXT NOT NULL, node_id TEXT NOT NULL, iteration INTEGER NOT NULL DEFAULT 0,
               state TEXT NOT NULL, output_table TEXT NOT NULL, PRIMARY KEY (run_id, node_id, iteration)) WITHOUT ROWID;
             CREATE TABLE _smithers_schemas (table_key TEXT PRIMARY KEY, table_name TEXT NOT NULL, schema_json TEXT NOT NULL,
               updated_at_ms INTEGER NOT NULL);
             CREATE TABLE _smithers_attempts (run_id TEXT NOT NULL, node_id TEXT NOT NULL, iteration INTEGER NOT NULL,
               attempt INTEGER NOT NULL, state TEXT NOT NULL, started_at_ms INTEGER NOT NULL, finished_at_ms INTEGER,
               owner TEXT, error_json TEXT, exit_code INTEGER, stdout_path TEXT, stderr_path TEXT,
               PRIMARY KEY (run_id, node_id, iteration, attempt)) WITHOUT ROWID;
             INSERT INTO _smithers_attempts (run_id, node_id, iteration, attempt, state, started_at_ms)
               VALUES ('old', 'x', 0, 1, 'finished', 1);",
        )
        .unwrap();
    }
    drop(Engine::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM _smithers_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, smithers_core::store::SCHEMA_VERSION.to_string());
    let (prompt, old): (Option<String>, String) = conn
        .query_row(
            "SELECT prompt, node_id FROM _smithers_attempts WHERE run_id = 'old'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (prompt, old.as_str()),
        (None, "x"),
        "old rows stay, with no agent call"
    );
}
