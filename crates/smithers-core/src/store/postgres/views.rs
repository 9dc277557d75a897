//! The read views of operators: runs, one run's parts, approvals, attempts.

use postgres::Row;
use serde_json::Value;

use super::{PgStore, col};
use crate::error::Result;
use crate::machines::NodeKey;
use crate::store::{ApprovalRows, AuditRows, ListingParam, Views};
use crate::time::{iso8601, now_ms};
use crate::views::{
    ApprovalFilter, ApprovalSummary, AttemptLog, LogFilter, LoopSummary, NodeSummary, OrphanCursor,
    PendingCount, Rejection, RunCount, RunFilter, RunSummary, StoreMetrics,
};

const RUN_COLS: &str = "r.run_id, r.workflow_name, r.workflow_path, r.status, r.owner, r.created_at_ms, r.updated_at_ms, \
     r.finished_at_ms, r.error_json, \
     (SELECT COUNT(*) FROM _smithers_approvals a WHERE a.run_id = r.run_id AND a.status = 'requested'), r.started_by, \
     r.parent_run_id, r.parent_node_id, r.parent_iteration, \
     CASE WHEN r.status = 'rejected' THEN (SELECT json_build_array(a.node_id, a.decided_at_ms, a.decided_by, a.reason)::text \
       FROM _smithers_approvals a WHERE a.run_id = r.run_id AND a.status = 'rejected' LIMIT 1) END, \
     r.lease_expires_at_ms, r.resume_error_json";

fn run_summary(r: &Row) -> Result<RunSummary> {
    let error: Option<String> = col(r, 8)?;
    let lease: Option<i64> = col(r, 15)?;
    let resume_error: Option<String> = col(r, 16)?;
    Ok(RunSummary {
        // Filled in by the engine (it knows its host and clock).
        owner_liveness: None,
        lease_expires_at: lease.map(iso8601),
        lease_expires_at_ms: lease,
        resume_error: resume_error.and_then(|e| serde_json::from_str(&e).ok()),
        owner: col(r, 4)?,
        run_id: col(r, 0)?,
        workflow_name: col(r, 1)?,
        workflow_path: col(r, 2)?,
        status: col(r, 3)?,
        created_at: iso8601(col(r, 5)?),
        updated_at: iso8601(col(r, 6)?),
        finished_at: col::<Option<i64>>(r, 7)?.map(iso8601),
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        pending_approvals: col(r, 9)?,
        started_by: col(r, 10)?,
        parent_run_id: col(r, 11)?,
        parent_node_id: col(r, 12)?,
        parent_iteration: col(r, 13)?,
        rejection: col::<Option<String>>(r, 14)?
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

fn approval_summary(r: &Row) -> Result<ApprovalSummary> {
    let request_json: String = col(r, 7)?;
    let request: Value = serde_json::from_str(&request_json).unwrap_or(Value::Null);
    let requested_at_ms: i64 = col(r, 8)?;
    let digest = crate::audit::view_digest(
        &col::<String>(r, 0)?,
        &col::<String>(r, 2)?,
        col(r, 3)?,
        &col::<String>(r, 12)?,
        col(r, 13)?,
        requested_at_ms,
        &request_json,
    );
    let decided_at_ms: Option<i64> = col(r, 9)?;
    let status: String = col(r, 4)?;
    let kind: String = col(r, 12)?;
    let round: i64 = col(r, 13)?;
    let field = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(String::from);
    Ok(ApprovalSummary {
        run_id: col(r, 0)?,
        workflow_name: col(r, 1)?,
        run_status: col(r, 16)?,
        node_id: col(r, 2)?,
        iteration: col(r, 3)?,
        waiting_ms: (status == "requested").then(|| now_ms() - requested_at_ms),
        status,
        mode: col(r, 5)?,
        on_deny: col(r, 6)?,
        title: text("title"),
        summary: text("summary"),
        metadata: field("metadata"),
        options: field("options"),
        allowed_users: field("allowedUsers"),
        allowed_scopes: field("allowedScopes"),
        requested_at: iso8601(requested_at_ms),
        requested_at_ms,
        decided_at: decided_at_ms.map(iso8601),
        decided_by: col(r, 10)?,
        note: col(r, 11)?,
        approval_iteration: if kind == "review" { round - 1 } else { 0 },
        rewind_to: text("rewindTo"),
        workflow_path: col(r, 17)?,
        parent_run_id: col(r, 18)?,
        kind,
        round,
        prompt: text("prompt"),
        input: request
            .get("input")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
        required: request
            .get("required")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
        inputs: col::<Option<String>>(r, 14)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| Value::Object(Default::default())),
        reason: col(r, 15)?,
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

const ATTEMPT_COLS: &str = "node_id, iteration, attempt, state, exit_code, stdout_path, stderr_path, started_at_ms, \
     finished_at_ms, prompt, response_text, usage_json, agent_json, error_json";

fn attempt_log(r: &Row) -> Result<AttemptLog> {
    let json = |i: usize| -> Result<Option<Value>> {
        Ok(col::<Option<String>>(r, i)?.and_then(|t| serde_json::from_str(&t).ok()))
    };
    Ok(AttemptLog {
        node_id: col(r, 0)?,
        iteration: col(r, 1)?,
        attempt: col(r, 2)?,
        state: col(r, 3)?,
        exit_code: col(r, 4)?,
        stdout_path: col(r, 5)?,
        stderr_path: col(r, 6)?,
        started_at: iso8601(col(r, 7)?),
        finished_at: col::<Option<i64>>(r, 8)?.map(iso8601),
        prompt: col(r, 9)?,
        response_text: col(r, 10)?,
        usage: json(11)?,
        agent: json(12)?,
        error: json(13)?,
    })
}

impl PgStore {
    /// Reviews get their earlier rounds, quorum gates their votes.
    fn with_history(&self, mut approvals: Vec<ApprovalSummary>) -> Result<Vec<ApprovalSummary>> {
        for a in approvals.iter_mut() {
            let key = NodeKey::new(&a.run_id, &a.node_id, a.iteration);
            if a.kind == "review" {
                a.history = self.review_history(&key)?;
            }
            if !a.quorum.is_null() {
                a.votes = self
                    .votes(&key, a.requested_at_ms)?
                    .into_iter()
                    .map(|v| crate::views::VoteSummary {
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
}

impl Views for PgStore {
    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let limit = filter.limit.unwrap_or(50).clamp(1, 10_000);
        self.all(
            &format!(
                "SELECT {RUN_COLS} FROM _smithers_runs r WHERE ($1::text IS NULL OR r.status = $1::text) \
                 AND ($3::text IS NULL OR r.workflow_name = $3::text) \
                 AND ($4::boolean IS NULL OR (r.resume_error_json IS NOT NULL) = $4::boolean) \
                 ORDER BY r.created_at_ms DESC, r.run_id DESC LIMIT $2"
            ),
            &[
                &filter.status,
                &limit,
                &filter.workflow_name,
                &filter.resume_failed,
            ],
            run_summary,
        )
    }

    fn run_summary(&self, run_id: &str) -> Result<Option<RunSummary>> {
        self.one(
            &format!("SELECT {RUN_COLS} FROM _smithers_runs r WHERE r.run_id = $1"),
            &[&run_id],
            run_summary,
        )
    }

    fn node_summaries(&self, run_id: &str) -> Result<Vec<NodeSummary>> {
        self.all(
            "SELECT node_id, iteration, state, output_table, label, attempts, skip_reason, error_json, updated_at_ms, sub_run_id \
             FROM _smithers_nodes WHERE run_id = $1 ORDER BY iteration, ordinal, node_id",
            &[&run_id],
            |r| {
                Ok(NodeSummary {
                    node_id: col(r, 0)?,
                    iteration: col(r, 1)?,
                    state: col(r, 2)?,
                    output: col(r, 3)?,
                    label: col(r, 4)?,
                    attempts: col(r, 5)?,
                    skip_reason: col(r, 6)?,
                    error: col::<Option<String>>(r, 7)?
                        .and_then(|e| serde_json::from_str(&e).ok()),
                    updated_at: iso8601(col(r, 8)?),
                    sub_run_id: col(r, 9)?,
                })
            },
        )
    }

    fn run_approvals(&self, run_id: &str) -> Result<Vec<ApprovalSummary>> {
        let rows = self.all(
            &format!(
                "SELECT {APPROVAL_COLS} FROM _smithers_approvals a JOIN _smithers_runs r ON r.run_id = a.run_id \
                 WHERE a.run_id = $1 ORDER BY a.requested_at_ms, a.node_id"
            ),
            &[&run_id],
            approval_summary,
        )?;
        self.with_history(rows)
    }

    fn loop_summaries(&self, run_id: &str) -> Result<Vec<LoopSummary>> {
        self.all(
            "SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = $1 ORDER BY loop_id",
            &[&run_id],
            |r| {
                Ok(LoopSummary {
                    loop_id: col(r, 0)?,
                    iteration: col(r, 1)?,
                    done: col(r, 2)?,
                })
            },
        )
    }

    fn agent_attempts(&self, run_id: &str) -> Result<Vec<AttemptLog>> {
        self.all(
            &format!(
                "SELECT {ATTEMPT_COLS} FROM _smithers_attempts WHERE run_id = $1 AND prompt IS NOT NULL \
                 ORDER BY started_at_ms, node_id, iteration, attempt"
            ),
            &[&run_id],
            attempt_log,
        )
    }

    fn approvals(
        &self,
        filter: &ApprovalFilter,
        status: Option<&str>,
    ) -> Result<Vec<ApprovalSummary>> {
        let (sql, params) = crate::store::approval_listing(
            APPROVAL_COLS,
            filter,
            status,
            " COLLATE \"C\"",
            &|n, p| match p {
                ListingParam::Text(_) => format!("${n}::text"),
                ListingParam::Int(_) => format!("${n}::bigint"),
            },
        );
        let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
            .into_iter()
            .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                match p {
                    ListingParam::Text(t) => Box::new(t.to_owned()),
                    ListingParam::Int(i) => Box::new(i),
                }
            })
            .collect();
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            values.iter().map(|v| v.as_ref()).collect();
        let rows = self.all(&sql, &refs, approval_summary)?;
        self.with_history(rows)
    }

    fn orphan_candidates(
        &self,
        include_dead: bool,
        after: Option<&OrphanCursor>,
        limit: usize,
        keep: &mut dyn FnMut(&mut RunSummary) -> bool,
    ) -> Result<Vec<(RunSummary, i64)>> {
        // Read a page at a time (SQLite's store streams the rows), then let `keep` choose.
        const PAGE: i64 = 500;
        // Without dead owners every row read is kept (`owner IS NULL`): read no more than asked
        // for. Workers ask on every commit they hear of, for a few runs.
        let page_size = if include_dead {
            PAGE
        } else {
            i64::try_from(limit).unwrap_or(PAGE).clamp(1, PAGE)
        };
        let mut cursor: Option<(i64, String)> = after.map(|c| (c.updated_at_ms, c.run_id.clone()));
        let mut out = Vec::new();
        loop {
            let page = self.all(
                &format!(
                    "SELECT {RUN_COLS} FROM _smithers_runs r WHERE r.status = 'running' AND ($1::boolean OR r.owner IS NULL) \
                     AND (r.resume_error_at_ms IS NULL OR r.resume_error_at_ms < r.updated_at_ms) \
                     AND ($2::bigint IS NULL OR (r.updated_at_ms, r.run_id) > ($2::bigint, $3::text)) \
                     ORDER BY r.updated_at_ms, r.run_id LIMIT $4"
                ),
                &[
                    &include_dead,
                    &cursor.as_ref().map(|c| c.0),
                    &cursor.as_ref().map(|c| c.1.as_str()),
                    &page_size,
                ],
                |r| Ok((run_summary(r)?, col::<i64>(r, 6)?)),
            )?;
            let full = page.len() as i64 == page_size;
            for (mut run, updated_at_ms) in page {
                cursor = Some((updated_at_ms, run.run_id.clone()));
                if keep(&mut run) {
                    out.push((run, updated_at_ms));
                    if out.len() >= limit.max(1) {
                        return Ok(out);
                    }
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    fn attempt_logs(&self, run_id: &str, filter: &LogFilter) -> Result<Vec<AttemptLog>> {
        self.all(
            &format!(
                "SELECT {ATTEMPT_COLS} \
                 FROM _smithers_attempts WHERE run_id = $1 AND (stdout_path IS NOT NULL OR prompt IS NOT NULL) \
                 AND ($2::text IS NULL OR node_id = $2::text) AND ($3::bigint IS NULL OR iteration = $3::bigint) \
                 AND ($4::bigint IS NULL OR attempt = $4::bigint) \
                 ORDER BY started_at_ms, node_id, iteration, attempt"
            ),
            &[&run_id, &filter.node_id, &filter.iteration, &filter.attempt],
            attempt_log,
        )
    }

    fn store_metrics(&self) -> Result<StoreMetrics> {
        let runs = self.all(
            "SELECT workflow_name, status, COUNT(*) FROM _smithers_runs GROUP BY workflow_name, status \
             ORDER BY workflow_name COLLATE \"C\", status COLLATE \"C\"",
            &[],
            |r| {
                Ok(RunCount {
                    workflow: col(r, 0)?,
                    status: col(r, 1)?,
                    count: col(r, 2)?,
                })
            },
        )?;
        let pending_approvals = self.all(
            "SELECT r.workflow_name, COUNT(*), MIN(a.requested_at_ms) FROM _smithers_approvals a \
             JOIN _smithers_runs r ON r.run_id = a.run_id WHERE a.status = 'requested' \
             GROUP BY r.workflow_name ORDER BY r.workflow_name COLLATE \"C\"",
            &[],
            |r| {
                Ok(PendingCount {
                    workflow: col(r, 0)?,
                    count: col(r, 1)?,
                    oldest_requested_at_ms: col(r, 2)?,
                })
            },
        )?;
        Ok(StoreMetrics {
            runs,
            pending_approvals,
        })
    }
}
