//! The read views of operators: runs, one run's parts, approvals, attempts.

use rusqlite::params;

use super::{SqliteStore, all, one};
use crate::error::Result;
use crate::store::shared::{
    APPROVAL_COLS, ATTEMPT_COLS, NODE_COLS, approval_summary, attempt_log, node_summary,
    run_summary, with_history,
};
use crate::store::{ListingParam, Views};
use crate::views::{
    ApprovalFilter, ApprovalSummary, AttemptLog, LogFilter, LoopSummary, NodeSummary, OrphanCursor,
    PendingCount, RunCount, RunFilter, RunSummary, StoreMetrics,
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
            |r| run_summary(r),
        )
    }

    fn run_summary(&self, run_id: &str) -> Result<Option<RunSummary>> {
        one(
            &self.conn,
            &format!("SELECT {RUN_COLS} FROM _smithers_runs r WHERE r.run_id = ?1"),
            [run_id],
            |r| run_summary(r),
        )
    }

    fn node_summaries(&self, run_id: &str) -> Result<Vec<NodeSummary>> {
        all(
            &self.conn,
            &format!(
                "SELECT {NODE_COLS} FROM _smithers_nodes WHERE run_id = ?1 ORDER BY iteration, ordinal, node_id"
            ),
            [run_id],
            |r| node_summary(r),
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
            |r| approval_summary(r),
        )?;
        with_history(self, rows)
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
            |r| attempt_log(r),
        )
    }

    fn approvals(
        &self,
        filter: &ApprovalFilter,
        status: Option<&str>,
    ) -> Result<Vec<ApprovalSummary>> {
        let (sql, values) = approval_listing(filter, status);
        let rows = all(&self.conn, &sql, rusqlite::params_from_iter(values), |r| {
            approval_summary(r)
        })?;
        with_history(self, rows)
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
            |r| attempt_log(r),
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

/// The approvals listing's SQL for SQLite and its parameters (the store's shared builder).
fn approval_listing(
    filter: &ApprovalFilter,
    status: Option<&str>,
) -> (String, Vec<rusqlite::types::Value>) {
    let (sql, params) =
        crate::store::approval_listing(APPROVAL_COLS, filter, status, "", &|n, _| format!("?{n}"));
    let values = params
        .into_iter()
        .map(|p| match p {
            ListingParam::Text(t) => rusqlite::types::Value::Text(t.to_owned()),
            ListingParam::Int(i) => rusqlite::types::Value::Integer(i),
        })
        .collect();
    (sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenOptions;
    use crate::views::ApprovalCursor;

    /// The plan of the approvals listing for `filter` and `status`, one line per step.
    fn plan(store: &SqliteStore, filter: &ApprovalFilter, status: Option<&str>) -> Vec<String> {
        let (sql, values) = approval_listing(filter, status);
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
