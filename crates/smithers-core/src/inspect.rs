//! Read-only views for operators: runs, one run in detail, pending approvals, events.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{Engine, OutputRow, RunError};
use crate::error::{Error, Result};
use crate::events::{Event, read_events};
use crate::owner::{self, Liveness};
use crate::store;
use crate::store::{iso8601, now_ms};

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

const APPROVAL_STATUSES: &[&str] = &[
    "requested",
    "approved",
    "denied",
    "rejected",
    "pushed-back",
    "all",
];

// `+a.status`: the count must go through the primary key (this run's few approvals); left to
// itself SQLite prefers the covering (status, requested_at_ms) index and reads every pending
// approval of the database once per listed run (200 ms for `smithers ps` on 20,000 waiting runs).
const RUN_COLS: &str = "r.run_id, r.workflow_name, r.workflow_path, r.status, r.owner, r.created_at_ms, r.updated_at_ms, \
     r.finished_at_ms, r.error_json, \
     (SELECT COUNT(*) FROM _smithers_approvals a WHERE a.run_id = r.run_id AND +a.status = 'requested'), r.started_by, \
     r.parent_run_id, r.parent_node_id, r.parent_iteration, \
     CASE WHEN r.status = 'rejected' THEN (SELECT json_array(a.node_id, a.decided_at_ms, a.decided_by, a.reason) \
       FROM _smithers_approvals a WHERE a.run_id = r.run_id AND a.status = 'rejected' LIMIT 1) END, \
     r.lease_expires_at_ms, r.resume_error_json";

fn run_summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    let error: Option<String> = r.get(8)?;
    let owner: Option<String> = r.get(4)?;
    let lease: Option<i64> = r.get(15)?;
    let resume_error: Option<String> = r.get(16)?;
    Ok(RunSummary {
        owner_liveness: owner.as_deref().map(|o| {
            if owner::holds(o, lease, now_ms()) {
                match (owner::liveness(o), lease) {
                    (Liveness::Unknown, None) => "unknown",
                    _ => "alive",
                }
            } else {
                "dead"
            }
        }),
        lease_expires_at: lease.map(iso8601),
        resume_error: resume_error.and_then(|e| serde_json::from_str(&e).ok()),
        owner,
        run_id: r.get(0)?,
        workflow_name: r.get(1)?,
        workflow_path: r.get(2)?,
        status: r.get(3)?,
        created_at: iso8601(r.get(5)?),
        updated_at: iso8601(r.get(6)?),
        finished_at: r.get::<_, Option<i64>>(7)?.map(iso8601),
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        pending_approvals: r.get(9)?,
        started_by: r.get(10)?,
        parent_run_id: r.get(11)?,
        parent_node_id: r.get(12)?,
        parent_iteration: r.get(13)?,
        rejection: r
            .get::<_, Option<String>>(14)?
            .and_then(|j| {
                serde_json::from_str::<(String, i64, Option<String>, Option<String>)>(&j).ok()
            })
            .map(|(node_id, at, by, reason)| Rejection {
                node_id,
                rejected_at: iso8601(at),
                rejected_by: by,
                rejection_reason: reason,
            }),
    })
}

const APPROVAL_COLS: &str = "a.run_id, r.workflow_name, a.node_id, a.iteration, a.status, a.mode, a.on_deny, a.request_json, \
     a.requested_at_ms, a.decided_at_ms, a.decided_by, a.note, a.kind, a.round, a.inputs_json, a.reason, r.status, \
     r.workflow_path, r.parent_run_id";

fn approval_summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalSummary> {
    let request: Value = serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or(Value::Null);
    let requested_at_ms: i64 = r.get(8)?;
    let decided_at_ms: Option<i64> = r.get(9)?;
    let status: String = r.get(4)?;
    let field = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
    Ok(ApprovalSummary {
        run_id: r.get(0)?,
        workflow_name: r.get(1)?,
        run_status: r.get(16)?,
        node_id: r.get(2)?,
        iteration: r.get(3)?,
        waiting_ms: (status == "requested").then(|| now_ms() - requested_at_ms),
        status,
        mode: r.get(5)?,
        on_deny: r.get(6)?,
        title: request
            .get("title")
            .and_then(Value::as_str)
            .map(String::from),
        summary: request
            .get("summary")
            .and_then(Value::as_str)
            .map(String::from),
        metadata: field("metadata"),
        options: field("options"),
        allowed_users: field("allowedUsers"),
        allowed_scopes: field("allowedScopes"),
        requested_at: iso8601(requested_at_ms),
        requested_at_ms,
        decided_at: decided_at_ms.map(iso8601),
        decided_by: r.get(10)?,
        note: r.get(11)?,
        approval_iteration: if r.get::<_, String>(12)? == "review" {
            r.get::<_, i64>(13)? - 1
        } else {
            0
        },
        rewind_to: request
            .get("rewindTo")
            .and_then(Value::as_str)
            .map(String::from),
        workflow_path: r.get(17)?,
        parent_run_id: r.get(18)?,
        kind: r.get(12)?,
        round: r.get(13)?,
        prompt: request
            .get("prompt")
            .and_then(Value::as_str)
            .map(String::from),
        input: request
            .get("input")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
        required: request
            .get("required")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
        inputs: r
            .get::<_, Option<String>>(14)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| Value::Object(Default::default())),
        reason: r.get(15)?,
        stdout_path: request
            .get("stdoutPath")
            .and_then(Value::as_str)
            .map(String::from),
        output: field("output"),
        history: Vec::new(),
        schema: field("schema"),
        max_attempts: request.get("maxAttempts").and_then(Value::as_i64),
        wait_async: request
            .get("async")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn with_history(
    conn: &rusqlite::Connection,
    mut approvals: Vec<ApprovalSummary>,
) -> Result<Vec<ApprovalSummary>> {
    for a in approvals.iter_mut().filter(|a| a.kind == "review") {
        a.history = crate::decision::review_history(conn, &a.run_id, &a.node_id, a.iteration)?;
    }
    Ok(approvals)
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

const ATTEMPT_COLS: &str = "node_id, iteration, attempt, state, exit_code, stdout_path, stderr_path, started_at_ms, \
     finished_at_ms, prompt, response_text, usage_json, agent_json, error_json";

fn attempt_log(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptLog> {
    let json = |i: usize| -> rusqlite::Result<Option<Value>> {
        Ok(r.get::<_, Option<String>>(i)?
            .and_then(|t| serde_json::from_str(&t).ok()))
    };
    Ok(AttemptLog {
        node_id: r.get(0)?,
        iteration: r.get(1)?,
        attempt: r.get(2)?,
        state: r.get(3)?,
        exit_code: r.get(4)?,
        stdout_path: r.get(5)?,
        stderr_path: r.get(6)?,
        started_at: iso8601(r.get(7)?),
        finished_at: r.get::<_, Option<i64>>(8)?.map(iso8601),
        prompt: r.get(9)?,
        response_text: r.get(10)?,
        usage: json(11)?,
        agent: json(12)?,
        error: json(13)?,
    })
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

/// Events a driver may record about what it ran outside the core (wait/failure handlers,
/// mail). Tool calls an agent makes through smithers' tools, and the git worktrees the driver
/// makes for `<Worktree>`, are recorded the same way.
const DRIVER_EVENTS: &[&str] = &[
    "HandlerStarted",
    "HandlerFinished",
    "HandlerFailed",
    "WaitMailSent",
    "WaitMailFailed",
    "FailureMailSent",
    "FailureMailFailed",
    "ToolCallStarted",
    "ToolCallFinished",
    "WorktreeCreated",
];

impl Engine {
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let limit = filter.limit.unwrap_or(50).clamp(1, 10_000);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLS} FROM _smithers_runs r WHERE (?1 IS NULL OR r.status = ?1) \
             AND (?3 IS NULL OR r.workflow_name = ?3) \
             AND (?4 IS NULL OR (r.resume_error_json IS NOT NULL) = ?4) \
             ORDER BY r.created_at_ms DESC, r.run_id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![
                filter.status,
                limit,
                filter.workflow_name,
                filter.resume_failed
            ],
            run_summary,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn run_summary(&self, run_id: &str) -> Result<RunSummary> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM _smithers_runs r WHERE r.run_id = ?1"
            ))?
            .query_row([run_id], run_summary)
            .optional()?
            .ok_or_else(|| Error::RunNotFound {
                run_id: run_id.into(),
            })
    }

    pub fn inspect(&mut self, run_id: &str) -> Result<RunInspection> {
        let run = self.run_summary(run_id)?;
        let input: String = self.conn.query_row(
            "SELECT input_json FROM _smithers_runs WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )?;
        let nodes = self
            .conn
            .prepare_cached(
                "SELECT node_id, iteration, state, output_table, label, attempts, skip_reason, error_json, updated_at_ms, sub_run_id \
                 FROM _smithers_nodes WHERE run_id = ?1 ORDER BY iteration, ordinal, node_id",
            )?
            .query_map([run_id], |r| {
                Ok(NodeSummary {
                    node_id: r.get(0)?,
                    iteration: r.get(1)?,
                    state: r.get(2)?,
                    output: r.get(3)?,
                    label: r.get(4)?,
                    attempts: r.get(5)?,
                    skip_reason: r.get(6)?,
                    error: r.get::<_, Option<String>>(7)?.and_then(|e| serde_json::from_str(&e).ok()),
                    updated_at: iso8601(r.get(8)?),
                    sub_run_id: r.get(9)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let approvals = self
            .conn
            .prepare_cached(&format!(
                "SELECT {APPROVAL_COLS} FROM _smithers_approvals a JOIN _smithers_runs r ON r.run_id = a.run_id \
                 WHERE a.run_id = ?1 ORDER BY a.requested_at_ms, a.node_id"
            ))?
            .query_map([run_id], approval_summary)?
            .collect::<Result<Vec<_>, _>>()?;
        let approvals = with_history(&self.conn, approvals)?;
        let loops = self
            .conn
            .prepare_cached("SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = ?1 ORDER BY loop_id")?
            .query_map([run_id], |r| Ok(LoopSummary { loop_id: r.get(0)?, iteration: r.get(1)?, done: r.get(2)? }))?
            .collect::<Result<_, _>>()?;
        let outputs = self.read_outputs(run_id)?;
        let agent_attempts = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLS} FROM _smithers_attempts WHERE run_id = ?1 AND prompt IS NOT NULL \
                 ORDER BY started_at_ms, node_id, iteration, attempt"
            ))?
            .query_map([run_id], attempt_log)?
            .collect::<Result<_, _>>()?;
        Ok(RunInspection {
            run,
            input: serde_json::from_str(&input)?,
            nodes,
            approvals,
            outputs,
            loops,
            agent_attempts,
        })
    }

    /// Approvals waiting for a decision (or, with `status`, decided ones), oldest request
    /// first, across runs or for one run and its sub-runs (a caller waits on its sub-run's
    /// gates, so they are listed with it). Page with `after` (the last row's sort key): its
    /// cost does not grow with the depth of the page, unlike `offset`.
    pub fn pending_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<ApprovalSummary>> {
        let limit = filter.limit.unwrap_or(100).clamp(1, 10_000);
        let offset = filter.offset.unwrap_or(0).max(0);
        let status = filter.status.as_deref().unwrap_or("requested");
        if !APPROVAL_STATUSES.contains(&status) {
            return Err(Error::InvalidDecision(format!(
                "unknown approval status {status:?} (one of: {})",
                APPROVAL_STATUSES.join(", ")
            )));
        }
        let status = (status != "all").then_some(status);
        let after = filter.after.as_ref();
        // Row values compare lexicographically: (t, run, node, iteration) > the cursor.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {APPROVAL_COLS} FROM _smithers_approvals a JOIN _smithers_runs r ON r.run_id = a.run_id \
             WHERE (?1 IS NULL OR a.status = ?1) AND (?3 IS NULL OR r.workflow_name = ?3) \
             AND (?2 IS NULL OR a.run_id IN (WITH RECURSIVE sub(id) AS (SELECT ?2 \
                    UNION SELECT s.run_id FROM _smithers_runs s JOIN sub ON s.parent_run_id = sub.id) SELECT id FROM sub)) \
             AND (?4 IS NULL OR a.node_id = ?4) \
             AND (?5 IS NULL OR (a.requested_at_ms, a.run_id, a.node_id, a.iteration) > (?5, ?6, ?7, ?8)) \
             ORDER BY a.requested_at_ms, a.run_id, a.node_id, a.iteration LIMIT ?9 OFFSET ?10"
        ))?;
        let rows = stmt.query_map(
            params![
                status,
                filter.run_id,
                filter.workflow_name,
                filter.node_id,
                after.map(|c| c.requested_at_ms),
                after.map(|c| c.run_id.as_str()),
                after.map(|c| c.node_id.as_str()),
                after.map(|c| c.iteration),
                limit,
                offset
            ],
            approval_summary,
        )?;
        with_history(&self.conn, rows.collect::<Result<_, _>>()?)
    }

    /// Runs that are `running` but driven by nobody: a decision was recorded while no process
    /// drove them (`--no-resume`, another process), or (with `include_dead`) their owner no
    /// longer holds them (its process died, or its lease expired). Oldest first; page with
    /// `after` (the last run's `updatedAtMs` and id). Runs a watcher could not resume
    /// (`mark_unresumable`) are left out until something changes them or they are claimed.
    pub fn orphaned_runs(
        &self,
        limit: i64,
        include_dead: bool,
        after: Option<&OrphanCursor>,
    ) -> Result<Vec<OrphanedRun>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLS} FROM _smithers_runs r WHERE r.status = 'running' AND (?1 OR r.owner IS NULL) \
             AND (r.resume_error_at_ms IS NULL OR r.resume_error_at_ms < r.updated_at_ms) \
             AND (?2 IS NULL OR (r.updated_at_ms, r.run_id) > (?2, ?3)) \
             ORDER BY r.updated_at_ms, r.run_id"
        ))?;
        let rows = stmt.query_map(
            params![
                include_dead,
                after.map(|c| c.updated_at_ms),
                after.map(|c| c.run_id.as_str())
            ],
            |r| Ok((run_summary(r)?, r.get::<_, i64>(6)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (run, updated_at_ms) = row?;
            if run.owner.is_none() || run.owner_liveness == Some("dead") {
                tracing::debug!(
                    run_id = run.run_id.as_str(),
                    previous_owner = run.owner.as_deref().unwrap_or(""),
                    lease_expires_at = run.lease_expires_at.as_deref().unwrap_or(""),
                    "orphaned run found: nobody drives it"
                );
                out.push(OrphanedRun { run, updated_at_ms });
                if out.len() as i64 >= limit.max(1) {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Records why a watcher could not resume a run (its workflow file is gone, it no longer
    /// loads, …): `orphaned_runs` leaves it out from then on, and `why` and the inbox say so.
    /// Claiming the run (`smithers resume` once the cause is fixed) clears it.
    pub fn mark_unresumable(&mut self, run_id: &str, error: RunError) -> Result<()> {
        self.run_summary(run_id)?;
        let now = store::now_ms();
        let tx = crate::engine::begin(&self.conn, self.batching)?;
        tx.execute(
            "UPDATE _smithers_runs SET resume_error_json = ?2, resume_error_at_ms = MAX(?3, updated_at_ms) WHERE run_id = ?1",
            params![run_id, serde_json::to_string(&error)?, now],
        )?;
        let mut batch = crate::events::EventBatch::default();
        batch.emit(
            &tx,
            run_id,
            "ResumeFailed",
            serde_json::json!({ "error": error }),
        )?;
        tx.commit()?;
        self.publish(batch);
        tracing::info!(
            run_id,
            code = error.code.as_str(),
            error = error.message.as_str(),
            "run marked unresumable: watchers leave it until it changes or is claimed"
        );
        Ok(())
    }

    /// Events of every run after position `after_id` of the database-wide feed.
    pub fn feed(&self, after_id: i64, limit: i64) -> Result<Vec<Event>> {
        crate::events::read_feed(&self.conn, after_id, limit.clamp(1, 100_000))
    }

    /// The newest position of the feed.
    pub fn feed_head(&self) -> Result<i64> {
        crate::events::feed_head(&self.conn)
    }

    /// The attempts of a run that have logs (command tasks), oldest first.
    pub fn attempt_logs(&self, run_id: &str, filter: &LogFilter) -> Result<Vec<AttemptLog>> {
        self.run_summary(run_id)?;
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ATTEMPT_COLS} \
                 FROM _smithers_attempts WHERE run_id = ?1 AND (stdout_path IS NOT NULL OR prompt IS NOT NULL) \
                 AND (?2 IS NULL OR node_id = ?2) AND (?3 IS NULL OR iteration = ?3) AND (?4 IS NULL OR attempt = ?4) \
                 ORDER BY started_at_ms, node_id, iteration, attempt"
            ))?
            .query_map(
                params![run_id, filter.node_id, filter.iteration, filter.attempt],
                attempt_log,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        if rows.is_empty()
            && let Some(node_id) = &filter.node_id
        {
            let known: bool = self
                .conn
                .query_row(
                    "SELECT 1 FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 LIMIT 1",
                    params![run_id, node_id],
                    |_| Ok(true),
                )
                .optional()?
                .is_some();
            if !known {
                return Err(Error::NodeNotFound {
                    run_id: run_id.into(),
                    node_id: node_id.clone(),
                    iteration: filter.iteration.unwrap_or(0),
                });
            }
        }
        Ok(rows)
    }

    /// Records what a driver ran outside the core (a wait or failure handler, a wait mail)
    /// in the run's event log. Only those event types are accepted.
    pub fn record_driver_event(&mut self, run_id: &str, kind: &str, payload: Value) -> Result<()> {
        if !DRIVER_EVENTS.contains(&kind) {
            return Err(Error::InvalidDecision(format!(
                "{kind:?} is not an event a driver may record ({})",
                DRIVER_EVENTS.join(", ")
            )));
        }
        self.run_summary(run_id)?;
        let tx = crate::engine::begin(&self.conn, self.batching)?;
        let mut batch = crate::events::EventBatch::default();
        batch.emit(&tx, run_id, kind, payload)?;
        tx.commit()?;
        self.publish(batch);
        Ok(())
    }

    /// Runs by workflow and status, and pending approvals by workflow (two GROUP BY queries:
    /// a scan of the runs, and of the requested approvals through their status index).
    pub fn store_metrics(&self) -> Result<StoreMetrics> {
        let runs = self
            .conn
            .prepare_cached(
                "SELECT workflow_name, status, COUNT(*) FROM _smithers_runs GROUP BY workflow_name, status \
                 ORDER BY workflow_name, status",
            )?
            .query_map([], |r| {
                Ok(RunCount {
                    workflow: r.get(0)?,
                    status: r.get(1)?,
                    count: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let pending_approvals = self
            .conn
            .prepare_cached(
                "SELECT r.workflow_name, COUNT(*), MIN(a.requested_at_ms) FROM _smithers_approvals a \
                 JOIN _smithers_runs r ON r.run_id = a.run_id WHERE a.status = 'requested' \
                 GROUP BY r.workflow_name ORDER BY r.workflow_name",
            )?
            .query_map([], |r| {
                Ok(PendingCount {
                    workflow: r.get(0)?,
                    count: r.get(1)?,
                    oldest_requested_at_ms: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StoreMetrics {
            runs,
            pending_approvals,
        })
    }

    pub fn events(&self, run_id: &str, after_seq: i64, limit: i64) -> Result<Vec<Event>> {
        self.run_summary(run_id)?;
        read_events(&self.conn, run_id, after_seq, limit.clamp(1, 100_000))
    }
}
