//! The read views of operators: runs, one run's parts, approvals, attempts.

use rusqlite::params;
use serde_json::Value;

use super::{SqliteStore, all, one};
use crate::error::Result;
use crate::machines::NodeKey;
use crate::store::{ApprovalRows, AuditRows, ListingParam, Views};
use crate::time::{iso8601, now_ms};
use crate::views::{
    ApprovalFilter, ApprovalSummary, AttemptLog, LogFilter, LoopSummary, NodeSummary, OrphanCursor,
    PendingCount, Rejection, RunCount, RunFilter, RunSummary, StoreMetrics,
};

// `+a.status`: the count must go through the primary key (this run's few approvals); left to
// itself SQLite prefers the covering listing index (status, requested_at_ms, …) and reads every pending
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
        // Filled in by the engine (it knows its host and clock).
        owner_liveness: None,
        lease_expires_at: lease.map(iso8601),
        lease_expires_at_ms: lease,
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
    let request_json: String = r.get(7)?;
    let request: Value = serde_json::from_str(&request_json).unwrap_or(Value::Null);
    let requested_at_ms: i64 = r.get(8)?;
    let decided_at_ms: Option<i64> = r.get(9)?;
    let status: String = r.get(4)?;
    let field = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
    let digest = crate::audit::view_digest(
        &r.get::<_, String>(0)?,
        &r.get::<_, String>(2)?,
        r.get(3)?,
        &r.get::<_, String>(12)?,
        r.get(13)?,
        requested_at_ms,
        &request_json,
    );
    Ok(ApprovalSummary {
        digest,
        quorum: field("quorum"),
        votes: Vec::new(),
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
        deadline_at_ms: request.get("deadlineAtMs").and_then(Value::as_i64),
        on_timeout: request
            .get("onTimeout")
            .and_then(Value::as_str)
            .map(String::from),
        escalated: field("escalated"),
    })
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

impl SqliteStore {
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

impl Views for SqliteStore {
    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let limit = filter.limit.unwrap_or(50).clamp(1, 10_000);
        all(
            &self.conn,
            &format!(
                "SELECT {RUN_COLS} FROM _smithers_runs r WHERE (?1 IS NULL OR r.status = ?1) \
                 AND (?3 IS NULL OR r.workflow_name = ?3) \
                 AND (?4 IS NULL OR (r.resume_error_json IS NOT NULL) = ?4) \
                 ORDER BY r.created_at_ms DESC, r.run_id DESC LIMIT ?2"
            ),
            params![
                filter.status,
                limit,
                filter.workflow_name,
                filter.resume_failed
            ],
            run_summary,
        )
    }

    fn run_summary(&self, run_id: &str) -> Result<Option<RunSummary>> {
        one(
            &self.conn,
            &format!("SELECT {RUN_COLS} FROM _smithers_runs r WHERE r.run_id = ?1"),
            [run_id],
            run_summary,
        )
    }

    fn node_summaries(&self, run_id: &str) -> Result<Vec<NodeSummary>> {
        all(
            &self.conn,
            "SELECT node_id, iteration, state, output_table, label, attempts, skip_reason, error_json, updated_at_ms, sub_run_id \
             FROM _smithers_nodes WHERE run_id = ?1 ORDER BY iteration, ordinal, node_id",
            [run_id],
            |r| {
                Ok(NodeSummary {
                    node_id: r.get(0)?,
                    iteration: r.get(1)?,
                    state: r.get(2)?,
                    output: r.get(3)?,
                    label: r.get(4)?,
                    attempts: r.get(5)?,
                    skip_reason: r.get(6)?,
                    error: r
                        .get::<_, Option<String>>(7)?
                        .and_then(|e| serde_json::from_str(&e).ok()),
                    updated_at: iso8601(r.get(8)?),
                    sub_run_id: r.get(9)?,
                })
            },
        )
    }

    fn run_approvals(&self, run_id: &str) -> Result<Vec<ApprovalSummary>> {
        let rows = all(
            &self.conn,
            &format!(
                "SELECT {APPROVAL_COLS} FROM _smithers_approvals a JOIN _smithers_runs r ON r.run_id = a.run_id \
                 WHERE a.run_id = ?1 ORDER BY a.requested_at_ms, a.node_id"
            ),
            [run_id],
            approval_summary,
        )?;
        self.with_history(rows)
    }

    fn loop_summaries(&self, run_id: &str) -> Result<Vec<LoopSummary>> {
        all(
            &self.conn,
            "SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = ?1 ORDER BY loop_id",
            [run_id],
            |r| {
                Ok(LoopSummary {
                    loop_id: r.get(0)?,
                    iteration: r.get(1)?,
                    done: r.get(2)?,
                })
            },
        )
    }

    fn agent_attempts(&self, run_id: &str) -> Result<Vec<AttemptLog>> {
        all(
            &self.conn,
            &format!(
                "SELECT {ATTEMPT_COLS} FROM _smithers_attempts WHERE run_id = ?1 AND prompt IS NOT NULL \
                 ORDER BY started_at_ms, node_id, iteration, attempt"
            ),
            [run_id],
            attempt_log,
        )
    }

    fn approvals(
        &self,
        filter: &ApprovalFilter,
        status: Option<&str>,
    ) -> Result<Vec<ApprovalSummary>> {
        let (sql, params) =
            crate::store::approval_listing(APPROVAL_COLS, filter, status, "", &|n, _| {
                format!("?{n}")
            });
        let values: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|p| match p {
                ListingParam::Text(t) => rusqlite::types::Value::Text(t.to_owned()),
                ListingParam::Int(i) => rusqlite::types::Value::Integer(i),
            })
            .collect();
        let rows = all(
            &self.conn,
            &sql,
            rusqlite::params_from_iter(values),
            approval_summary,
        )?;
        self.with_history(rows)
    }

    fn orphan_candidates(
        &self,
        include_dead: bool,
        after: Option<&OrphanCursor>,
        limit: usize,
        keep: &mut dyn FnMut(&mut RunSummary) -> bool,
    ) -> Result<Vec<(RunSummary, i64)>> {
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
            let (mut run, updated_at_ms) = row?;
            if keep(&mut run) {
                out.push((run, updated_at_ms));
                if out.len() >= limit.max(1) {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn attempt_logs(&self, run_id: &str, filter: &LogFilter) -> Result<Vec<AttemptLog>> {
        all(
            &self.conn,
            &format!(
                "SELECT {ATTEMPT_COLS} \
                 FROM _smithers_attempts WHERE run_id = ?1 AND (stdout_path IS NOT NULL OR prompt IS NOT NULL) \
                 AND (?2 IS NULL OR node_id = ?2) AND (?3 IS NULL OR iteration = ?3) AND (?4 IS NULL OR attempt = ?4) \
                 ORDER BY started_at_ms, node_id, iteration, attempt"
            ),
            params![run_id, filter.node_id, filter.iteration, filter.attempt],
            attempt_log,
        )
    }

    /// Two GROUP BY queries: a scan of the runs, and of the requested approvals through
    /// their status index.
    fn store_metrics(&self) -> Result<StoreMetrics> {
        let runs = all(
            &self.conn,
            "SELECT workflow_name, status, COUNT(*) FROM _smithers_runs GROUP BY workflow_name, status \
             ORDER BY workflow_name, status",
            [],
            |r| {
                Ok(RunCount {
                    workflow: r.get(0)?,
                    status: r.get(1)?,
                    count: r.get(2)?,
                })
            },
        )?;
        let pending_approvals = all(
            &self.conn,
            "SELECT r.workflow_name, COUNT(*), MIN(a.requested_at_ms) FROM _smithers_approvals a \
             JOIN _smithers_runs r ON r.run_id = a.run_id WHERE a.status = 'requested' \
             GROUP BY r.workflow_name ORDER BY r.workflow_name",
            [],
            |r| {
                Ok(PendingCount {
                    workflow: r.get(0)?,
                    count: r.get(1)?,
                    oldest_requested_at_ms: r.get(2)?,
                })
            },
        )?;
        Ok(StoreMetrics {
            runs,
            pending_approvals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenOptions;
    use crate::views::ApprovalCursor;

    /// The plan of the approvals listing for `filter` and `status`, one line per step.
    fn plan(store: &SqliteStore, filter: &ApprovalFilter, status: Option<&str>) -> Vec<String> {
        let (sql, params) =
            crate::store::approval_listing(APPROVAL_COLS, filter, status, "", &|n, _| {
                format!("?{n}")
            });
        let values: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|p| match p {
                ListingParam::Text(t) => rusqlite::types::Value::Text(t.to_owned()),
                ListingParam::Int(i) => rusqlite::types::Value::Integer(i),
            })
            .collect();
        all(
            &store.conn,
            &format!("EXPLAIN QUERY PLAN {sql}"),
            rusqlite::params_from_iter(values),
            |r| r.get::<_, String>(3),
        )
        .unwrap()
    }

    /// Every status at once walks the listing's index once per status from the cursor (it
    /// sorted every approval of the database: `SCAN a`, then a sort of all of them).
    #[test]
    fn the_all_listing_walks_the_index_once_per_status() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plan.db"), OpenOptions::default()).unwrap();
        let cursor = ApprovalCursor {
            requested_at_ms: 1,
            run_id: "r".into(),
            node_id: "n".into(),
            iteration: 0,
        };
        let filters = [
            ApprovalFilter::default(),
            ApprovalFilter {
                after: Some(cursor.clone()),
                ..ApprovalFilter::default()
            },
            ApprovalFilter {
                after: Some(cursor),
                workflow_name: Some("w".into()),
                node_id: Some("n".into()),
                ..ApprovalFilter::default()
            },
        ];
        for filter in &filters {
            let lines = plan(&store, filter, None);
            let walks = lines
                .iter()
                .filter(|l| l.contains("INDEX _smithers_approvals_listing (status=?"))
                .count();
            assert_eq!(
                walks,
                crate::machines::ApprovalStatus::ALL.len(),
                "{lines:#?}"
            );
            assert!(!lines.iter().any(|l| l.starts_with("SCAN a")), "{lines:#?}");
            // One status: one walk, and no sort of all its rows.
            let lines = plan(&store, filter, Some("approved"));
            let walks = lines
                .iter()
                .filter(|l| l.contains("INDEX _smithers_approvals_listing (status=?"))
                .count();
            assert_eq!(walks, 1, "{lines:#?}");
            assert!(
                !lines.iter().any(|l| l.contains("TEMP B-TREE FOR ORDER BY")),
                "{lines:#?}"
            );
        }
    }
}
