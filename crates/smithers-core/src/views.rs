//! What operators see: runs, one run in detail, approvals, attempts and the filters that
//! select them. Built by the store's views (`Views`), finished by `inspect.rs`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{OutputRow, RunError};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFilter {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    /// Only runs a watcher could not resume (true), or only the others (false).
    #[serde(default)]
    pub resume_failed: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run_id: String,
    pub workflow_name: String,
    pub workflow_path: Option<String>,
    pub status: String,
    pub owner: Option<String>,
    /// Whether the owner still holds the run: "alive" (its process runs, or its lease is
    /// current), "dead" (its process is gone, or its lease expired), or "unknown" (another
    /// host, and no lease recorded: a row written before leases existed).
    pub owner_liveness: Option<&'static str>,
    /// When the owner's lease expires unless it renews it.
    pub lease_expires_at: Option<String>,
    #[serde(skip)]
    pub(crate) lease_expires_at_ms: Option<i64>,
    /// Why a watcher (`smithers serve`) could not resume this run; cleared when it is claimed.
    pub resume_error: Option<RunError>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub pending_approvals: i64,
    pub error: Option<RunError>,
    pub started_by: Option<String>,
    /// A sub-run's caller: run, task and iteration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_iteration: Option<i64>,
    /// A rejected run: which step, who rejected it, when and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub node_id: String,
    pub rejected_at: String,
    pub rejected_by: Option<String>,
    pub rejection_reason: Option<String>,
}

/// A run `orphaned_runs` found, with its position for the next page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedRun {
    #[serde(flatten)]
    pub run: RunSummary,
    pub updated_at_ms: i64,
}

/// Where the previous page of `orphaned_runs` ended.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanCursor {
    pub updated_at_ms: i64,
    pub run_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub node_id: String,
    pub iteration: i64,
    pub state: String,
    pub output: String,
    pub label: Option<String>,
    pub attempts: i64,
    pub skip_reason: Option<String>,
    pub error: Option<Value>,
    pub updated_at: String,
    /// The sub-run the task waits on (or last waited on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_run_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSummary {
    pub run_id: String,
    pub workflow_name: String,
    pub run_status: String,
    pub node_id: String,
    pub iteration: i64,
    pub status: String,
    pub mode: String,
    pub on_deny: String,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub metadata: Value,
    pub options: Value,
    pub allowed_users: Value,
    pub allowed_scopes: Value,
    pub requested_at: String,
    pub requested_at_ms: i64,
    pub waiting_ms: Option<i64>,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    /// `gate` (decided before the step runs) or `review` (after it ran, Dagu-style).
    pub kind: String,
    /// The review round (1, then +1 per push-back).
    pub round: i64,
    /// Dagu's `approvalIteration`: how many times the step was pushed back (round − 1).
    pub approval_iteration: i64,
    /// Where a push-back restarts (`rewindTo`), when not the step itself.
    pub rewind_to: Option<String>,
    /// The run's workflow file, and its caller when the run is a sub-run.
    pub workflow_path: Option<String>,
    pub parent_run_id: Option<String>,
    pub prompt: Option<String>,
    /// Inputs the approver may send, and those an approve must carry.
    pub input: Value,
    pub required: Value,
    /// Inputs sent with the decision.
    pub inputs: Value,
    pub reason: Option<String>,
    /// Where the reviewed attempt's stdout is.
    pub stdout_path: Option<String>,
    /// The reviewed step's output (reviews only).
    pub output: Value,
    /// Earlier rounds of a review (push-backs), oldest first.
    pub history: Vec<Value>,
    /// A `<HumanTask>`: the JSON Schema its answer must fit, and how many answers it takes.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    /// `async`: the run goes on around the gate while it waits.
    #[serde(rename = "async", skip_serializing_if = "std::ops::Not::not")]
    pub wait_async: bool,
    /// The view digest of the request (`audit::view_digest`): what a decider saw, sent back
    /// with a decision (`expectDigest`) so that a decision on a stale view is refused.
    pub digest: String,
    /// A quorum gate's quorum (`{approvals, from, veto}`), and its votes on this request,
    /// oldest first.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub quorum: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<crate::views::VoteSummary>,
    /// A gate's deadline (`timeoutMs` / `deadline`): when it decides itself, and how
    /// (`onTimeout`: deny, approve, fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
    /// Escalation steps that fired (`escalate`): each `{ step, at, added }`; `allowedUsers` and
    /// `allowedScopes` above are who may decide now.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub escalated: Value,
}

/// One vote on a quorum gate.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteSummary {
    pub voter: String,
    /// `approve` or `deny`.
    pub verdict: String,
    /// A denial by a veto holder (it decided the gate).
    pub veto: bool,
    pub note: Option<String>,
    pub at: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInspection {
    pub run: RunSummary,
    pub input: Value,
    pub nodes: Vec<NodeSummary>,
    pub approvals: Vec<ApprovalSummary>,
    pub outputs: Vec<OutputRow>,
    pub loops: Vec<LoopSummary>,
    /// Every attempt of an agent task: prompt, answer, usage.
    pub agent_attempts: Vec<AttemptLog>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopSummary {
    pub loop_id: String,
    pub iteration: i64,
    pub done: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalFilter {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub node_id: Option<String>,
    /// `requested` (the default), `approved`, `denied`, `rejected`, `pushed-back`, or `all`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
    /// Keyset paging: only approvals after this one in the listing's order.
    #[serde(default)]
    pub after: Option<ApprovalCursor>,
}

/// A position in the approvals listing (its sort key), for paging without OFFSET.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalCursor {
    pub requested_at_ms: i64,
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptLog {
    pub node_id: String,
    pub iteration: i64,
    pub attempt: i64,
    pub state: String,
    pub exit_code: Option<i64>,
    pub stdout_path: Option<String>,
    pub stderr_path: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Agent attempts: the prompt sent, the raw answer, token usage, and the agent
    /// (`{agent, model, followUp, toolCalls}`); null for command tasks.
    pub prompt: Option<String>,
    pub response_text: Option<String>,
    pub usage: Option<Value>,
    pub agent: Option<Value>,
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFilter {
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub iteration: Option<i64>,
    #[serde(default)]
    pub attempt: Option<i64>,
}

/// Counts over the whole database for `smithers serve`'s `/metrics`: runs by workflow and
/// status, pending approvals by workflow with the oldest one's request time.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreMetrics {
    pub runs: Vec<RunCount>,
    pub pending_approvals: Vec<PendingCount>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCount {
    pub workflow: String,
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingCount {
    pub workflow: String,
    pub count: i64,
    pub oldest_requested_at_ms: i64,
}
