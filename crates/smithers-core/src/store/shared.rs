//! What both stores share above their drivers: the operators' views (runs, nodes, approvals,
//! attempts) mapped once from a row of the same columns, read through [`Columns`] (SQLite's
//! and PostgreSQL's rows implement it), and the statements that copy any table.

use serde_json::Value;

use crate::ident::quote;
use crate::machines::NodeKey;
use crate::store::{ApprovalRows, AuditRows};
use crate::time::{iso8601, now_ms};
use crate::views::{ApprovalSummary, AttemptLog, NodeSummary, Rejection, RunSummary, VoteSummary};

/// A row of either store, read by column position. The errors are the driver's (SQLite's
/// row mappers return rusqlite's), so a mapper fits either store's query helpers.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;

    /// A JSON text column read leniently: text another writer left unreadable is no value.
    fn opt_json<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<Option<T>, Self::Error> {
        Ok(self
            .opt_text(i)?
            .and_then(|t| serde_json::from_str(&t).ok()))
    }
}

/// `SELECT "c1", "c2", … FROM "table"`: every row of a table, the columns named (quoted).
pub(crate) fn select_columns(table: &str, columns: &[String]) -> String {
    format!("SELECT {} FROM {}", quoted(columns), quote(table))
}

/// `INSERT INTO "table" ("c1", "c2", …)`, for the store to follow with its `VALUES`.
pub(crate) fn insert_columns(table: &str, columns: &[String]) -> String {
    format!("INSERT INTO {} ({})", quote(table), quoted(columns))
}

fn quoted(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns [`run_summary`] reads, after the store's `RUN_COLS` (which differ in how the
/// pending count and the rejection are computed: see each store's `views.rs`):
/// run_id, workflow_name, workflow_path, status, owner, created_at_ms, updated_at_ms,
/// finished_at_ms, error_json, pending approvals, started_by, parent_run_id, parent_node_id,
/// parent_iteration, rejection (a JSON array `[node_id, at_ms, by, reason]`),
/// lease_expires_at_ms, resume_error_json.
pub(crate) fn run_summary<R: Columns>(r: &R) -> Result<RunSummary, R::Error> {
    let lease = r.opt_int(15)?;
    Ok(RunSummary {
        // Filled in by the engine (it knows its host and clock).
        owner_liveness: None,
        lease_expires_at: lease.map(iso8601),
        lease_expires_at_ms: lease,
        resume_error: r.opt_json(16)?,
        owner: r.opt_text(4)?,
        run_id: r.text(0)?,
        workflow_name: r.text(1)?,
        workflow_path: r.opt_text(2)?,
        status: r.text(3)?,
        created_at: iso8601(r.int(5)?),
        updated_at: iso8601(r.int(6)?),
        finished_at: r.opt_int(7)?.map(iso8601),
        error: r.opt_json(8)?,
        pending_approvals: r.int(9)?,
        started_by: r.opt_text(10)?,
        parent_run_id: r.opt_text(11)?,
        parent_node_id: r.opt_text(12)?,
        parent_iteration: r.opt_int(13)?,
        rejection: r
            .opt_json::<(String, i64, Option<String>, Option<String>)>(14)?
            .map(|(node_id, at, by, reason)| Rejection {
                node_id,
                rejected_at: iso8601(at),
                rejected_by: by,
                rejection_reason: reason,
            }),
    })
}

/// The columns [`node_summary`] reads (`FROM _smithers_nodes`).
pub(crate) const NODE_COLS: &str = "node_id, iteration, state, output_table, label, attempts, skip_reason, error_json, \
     updated_at_ms, sub_run_id";

pub(crate) fn node_summary<R: Columns>(r: &R) -> Result<NodeSummary, R::Error> {
    Ok(NodeSummary {
        node_id: r.text(0)?,
        iteration: r.int(1)?,
        state: r.text(2)?,
        output: r.text(3)?,
        label: r.opt_text(4)?,
        attempts: r.int(5)?,
        skip_reason: r.opt_text(6)?,
        error: r.opt_json(7)?,
        updated_at: iso8601(r.int(8)?),
        sub_run_id: r.opt_text(9)?,
    })
}

/// The columns [`approval_summary`] reads (`_smithers_approvals a JOIN _smithers_runs r`).
pub(crate) const APPROVAL_COLS: &str = "a.run_id, r.workflow_name, a.node_id, a.iteration, a.status, a.mode, a.on_deny, a.request_json, \
     a.requested_at_ms, a.decided_at_ms, a.decided_by, a.note, a.kind, a.round, a.inputs_json, a.reason, r.status, \
     r.workflow_path, r.parent_run_id";

pub(crate) fn approval_summary<R: Columns>(r: &R) -> Result<ApprovalSummary, R::Error> {
    let request_json = r.text(7)?;
    let request: Value = serde_json::from_str(&request_json).unwrap_or(Value::Null);
    let run_id = r.text(0)?;
    let node_id = r.text(2)?;
    let iteration = r.int(3)?;
    let status = r.text(4)?;
    let requested_at_ms = r.int(8)?;
    let kind = r.text(12)?;
    let round = r.int(13)?;
    let digest = crate::audit::view_digest(
        &run_id,
        &node_id,
        iteration,
        &kind,
        round,
        requested_at_ms,
        &request_json,
    );
    let field = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(String::from);
    let list = |k: &str| {
        request
            .get(k)
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new()))
    };
    Ok(ApprovalSummary {
        run_id,
        workflow_name: r.text(1)?,
        run_status: r.text(16)?,
        node_id,
        iteration,
        waiting_ms: (status == "requested").then(|| now_ms() - requested_at_ms),
        status,
        mode: r.text(5)?,
        on_deny: r.text(6)?,
        title: text("title"),
        summary: text("summary"),
        metadata: field("metadata"),
        options: field("options"),
        allowed_users: field("allowedUsers"),
        allowed_scopes: field("allowedScopes"),
        requested_at: iso8601(requested_at_ms),
        requested_at_ms,
        decided_at: r.opt_int(9)?.map(iso8601),
        decided_by: r.opt_text(10)?,
        note: r.opt_text(11)?,
        approval_iteration: if kind == "review" { round - 1 } else { 0 },
        rewind_to: text("rewindTo"),
        workflow_path: r.opt_text(17)?,
        parent_run_id: r.opt_text(18)?,
        kind,
        round,
        prompt: text("prompt"),
        input: list("input"),
        required: list("required"),
        inputs: r
            .opt_json(14)?
            .unwrap_or_else(|| Value::Object(Default::default())),
        reason: r.opt_text(15)?,
        stdout_path: text("stdoutPath"),
        output: field("output"),
        history: Vec::new(),
        schema: field("schema"),
        max_attempts: request.get("maxAttempts").and_then(Value::as_i64),
        wait_async: request
            .get("async")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        digest,
        quorum: field("quorum"),
        votes: Vec::new(),
        deadline_at_ms: request.get("deadlineAtMs").and_then(Value::as_i64),
        on_timeout: text("onTimeout"),
        escalated: field("escalated"),
    })
}

/// Reviews get their earlier rounds, quorum gates their votes.
pub(crate) fn with_history<S: ApprovalRows + AuditRows + ?Sized>(
    store: &S,
    mut approvals: Vec<ApprovalSummary>,
) -> crate::error::Result<Vec<ApprovalSummary>> {
    for a in approvals.iter_mut() {
        let key = NodeKey::new(&a.run_id, &a.node_id, a.iteration);
        if a.kind == "review" {
            a.history = store.review_history(&key)?;
        }
        if !a.quorum.is_null() {
            a.votes = store
                .votes(&key, a.requested_at_ms)?
                .into_iter()
                .map(|v| VoteSummary {
                    voter: v.voter,
                    verdict: v.verdict,
                    veto: v.veto,
                    note: v.note,
                    at: iso8601(v.at_ms),
                    at_ms: v.at_ms,
                })
                .collect();
        }
    }
    Ok(approvals)
}

/// The columns [`attempt_log`] reads (`FROM _smithers_attempts`).
pub(crate) const ATTEMPT_COLS: &str = "node_id, iteration, attempt, state, exit_code, stdout_path, stderr_path, started_at_ms, \
     finished_at_ms, prompt, response_text, usage_json, agent_json, error_json";

pub(crate) fn attempt_log<R: Columns>(r: &R) -> Result<AttemptLog, R::Error> {
    Ok(AttemptLog {
        node_id: r.text(0)?,
        iteration: r.int(1)?,
        attempt: r.int(2)?,
        state: r.text(3)?,
        exit_code: r.opt_int(4)?,
        stdout_path: r.opt_text(5)?,
        stderr_path: r.opt_text(6)?,
        started_at: iso8601(r.int(7)?),
        finished_at: r.opt_int(8)?.map(iso8601),
        prompt: r.opt_text(9)?,
        response_text: r.opt_text(10)?,
        usage: r.opt_json(11)?,
        agent: r.opt_json(12)?,
        error: r.opt_json(13)?,
    })
}
