//! The types of the engine's public calls: what JS sends (a new run, task results, claim
//! options) and what it gets back (snapshots and steps). Their serde shapes are the contract
//! with the binding; see ARCHITECTURE.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::{CommandOutcome, CommandSpec};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRun {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub workflow_path: Option<String>,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub input_schema: Option<Value>,
    /// Who started the run (recorded; a decision request may forbid them from approving it).
    #[serde(default)]
    pub started_by: Option<String>,
    /// The task whose sub-run this is: when the sub-run ends, that task (if it waits on it)
    /// runs again and its run moves on.
    #[serde(default)]
    pub parent: Option<ParentRef>,
}

/// The calling task of a sub-run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub run_id: String,
    pub node_id: String,
    #[serde(default)]
    pub iteration: i64,
}

/// How `claim_run_with` takes a run: over a live owner (`force`), and with which workflow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimOptions {
    #[serde(default)]
    pub force: bool,
    /// The workflow file the caller drives the run with (absolute).
    #[serde(default)]
    pub workflow_path: Option<String>,
    /// The name that workflow renders (`<Workflow name>`).
    #[serde(default)]
    pub workflow_name: Option<String>,
    /// Give up at once (`RUN_OWNED`) when another transaction holds the run's row now (a
    /// worker's claim of a ready run: another process is claiming or driving it; PostgreSQL's
    /// `FOR UPDATE SKIP LOCKED`) instead of waiting for it.
    #[serde(default)]
    pub skip_locked: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRow {
    pub table: String,
    pub node_id: String,
    pub iteration: i64,
    pub value: Value,
}

/// What JS needs to render a run: its input, loop positions and every output so far.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub run_id: String,
    pub status: &'static str,
    pub workflow_name: String,
    pub workflow_path: Option<String>,
    pub input: Value,
    pub loops: BTreeMap<String, i64>,
    pub node_loops: BTreeMap<String, String>,
    pub outputs: Vec<OutputRow>,
    pub error: Option<RunError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskToRun {
    pub node_id: String,
    pub iteration: i64,
    pub attempt: i64,
    pub output: String,
    pub timeout_ms: Option<u64>,
    /// A command task: the driver hands this to the core's runner and reports its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// Approver inputs that reach this task (from upstream gates, or its own push-back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BTreeMap<String, String>>,
    /// Set when a reviewer sent this step back: round, who, when, inputs, history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_back: Option<Value>,
}

/// The answer to every driving call: where the run is and what JS must do next.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub status: &'static str,
    pub needs_render: bool,
    pub tasks: Vec<TaskToRun>,
    pub outputs: Vec<OutputRow>,
    pub loops: BTreeMap<String, i64>,
    pub in_flight: usize,
    pub error: Option<RunError>,
    /// When the run parks: the nodes waiting for a decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// Outputs a push-back withdrew (its reset scope runs again): the driver forgets them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reset: Vec<OutputRef>,
    /// The id of the graph text the run's plan was built from (0: none, or not from text).
    /// A render that gives that text again is sent as this id (`submit_same_graph`,
    /// `RenderedGraph::Same`).
    pub graph_id: u64,
    /// `complete_and_submit`: whether the graph rendered with the results was applied (else
    /// the results alone were recorded, and a render is owed as after `complete_tasks`).
    pub graph_applied: bool,
}

/// Names one output row: table, node, iteration.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRef {
    pub table: String,
    pub node_id: String,
    pub iteration: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    pub node_id: String,
    #[serde(default)]
    pub iteration: i64,
    pub attempt: i64,
    pub ok: bool,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub error: Option<TaskError>,
    /// The outcome of a command task's process; the core turns it into output or failure.
    #[serde(default)]
    pub command: Option<CommandOutcome>,
    /// The task started a sub-run that now waits for a decision of its own: the task waits
    /// with it (until the sub-run ends) instead of finishing or failing.
    #[serde(default)]
    pub waiting_on: Option<String>,
    /// An agent task's call: kept on the attempt whether it succeeded or failed.
    #[serde(default)]
    pub agent: Option<AgentCall>,
}

/// What an agent attempt asked and answered (`_smithers_attempts`: `prompt`,
/// `response_text`, `usage_json`, `agent_json`, and the CLI agent's log paths).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCall {
    /// The agent's id, class or CLI, and its model when known.
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt as sent (with the output instructions).
    #[serde(default)]
    pub prompt: String,
    /// The raw text of the answer; absent when the call itself failed.
    #[serde(default)]
    pub text: Option<String>,
    /// Token counts (`inputTokens`, `outputTokens`, …), over every call of the attempt.
    #[serde(default)]
    pub usage: Option<Value>,
    /// The one follow-up asked when the answer had no valid JSON: `{prompt, text, reason}`.
    #[serde(default)]
    pub follow_up: Option<Value>,
    /// Tool calls the agent made through smithers' tools.
    #[serde(default)]
    pub tool_calls: Option<i64>,
    /// A CLI agent's process logs.
    #[serde(default)]
    pub stdout_path: Option<String>,
    #[serde(default)]
    pub stderr_path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl Step {
    /// A step of a run that is running, with nothing to do yet.
    pub(crate) fn new() -> Step {
        Step {
            status: "running",
            needs_render: false,
            tasks: Vec::new(),
            outputs: Vec::new(),
            loops: BTreeMap::new(),
            in_flight: 0,
            error: None,
            waiting: Vec::new(),
            reset: Vec::new(),
            graph_id: 0,
            graph_applied: false,
        }
    }
}

impl TaskError {
    /// The error a task gets from an engine error (an output that does not fit its schema).
    pub(crate) fn from_error(err: &crate::error::Error) -> TaskError {
        TaskError {
            code: Some(err.code().into()),
            name: None,
            message: err.to_string(),
            stack: None,
        }
    }

    pub(crate) fn coded(code: &str, message: String) -> TaskError {
        TaskError {
            code: Some(code.into()),
            name: None,
            message,
            stack: None,
        }
    }
}
