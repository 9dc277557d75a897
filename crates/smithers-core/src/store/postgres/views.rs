//! The read views of operators: runs, one run's parts, approvals, attempts.

use super::{PgStore, col};
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

const RUN_COLS: &str = "r.run_id, r.workflow_name, r.workflow_path, r.status, r.owner, r.created_at_ms, r.updated_at_ms, \
     r.finished_at_ms, r.error_json, \
     (SELECT COUNT(*) FROM _smithers_approvals a WHERE a.run_id = r.run_id AND a.status = 'requested'), r.started_by, \
     r.parent_run_id, r.parent_node_id, r.parent_iteration, \
     CASE WHEN r.status = 'rejected' THEN (SELECT json_build_array(a.node_id, a.decided_at_ms, a.decided_by, a.reason)::text \
       FROM _smithers_approvals a WHERE a.run_id = r.run_id AND a.status = 'rejected' LIMIT 1) END, \
     r.lease_expires_at_ms, r.resume_error_json";

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
            &format!(
                "SELECT {NODE_COLS} FROM _smithers_nodes WHERE run_id = $1 ORDER BY iteration, ordinal, node_id"
            ),
            &[&run_id],
            node_summary,
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
        with_history(self, rows)
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
        with_history(self, rows)
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
