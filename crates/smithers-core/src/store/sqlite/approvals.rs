//! Approval requests (gates and reviews), their decisions and the history of review rounds.

use rusqlite::params;
use serde_json::{Value, json};

use super::{SqliteStore, all, json_col, one, typed};
use crate::error::Result;
use crate::machines::{
    ApprovalRequest, ApprovalStatus, DecisionRow, HistoryRow, NodeKey, NodeState,
};
use crate::store::{ApprovalRow, ApprovalRows, DecidedRow, InputRow};
use crate::time::iso8601;

const COLS: &str = "node_id, iteration, status, mode, on_deny, output_table, request_json, decided_by, \
     decided_at_ms, note, decision_json, kind, round, requested_at_ms";

/// A run's open requests. `+status` keeps the status out of index choice: with
/// `status = 'requested'` SQLite picks the listing index (status, requested_at_ms, …), which
/// avoids the sort but walks every open request of every run, so deciding cost grew with the
/// number of waiting runs (8 ms each at 10,000). The primary key finds the run's few rows.
const OPEN_REQUESTS_WHERE: &str = "WHERE run_id = ?1 AND +status = 'requested' \
     AND (?2 IS NULL OR iteration = ?2) ORDER BY requested_at_ms, node_id";

type Row = (
    (String, i64, String, String, String, String, String),
    (Option<String>, Option<i64>, Option<String>, Option<String>),
    (String, i64, i64),
);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ),
        (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
        (r.get(11)?, r.get(12)?, r.get(13)?),
    ))
}

fn typed_row(row: Row) -> Result<ApprovalRow> {
    let (
        (node_id, iteration, status, mode, on_deny, output_table, request_json),
        (decided_by, decided_at_ms, note, decision_json),
        (kind, round, requested_at_ms),
    ) = row;
    Ok(ApprovalRow {
        node_id,
        iteration,
        status: typed(status)?,
        mode,
        on_deny,
        output_table,
        request_json,
        decided_by,
        decided_at_ms,
        note,
        decision_json,
        kind,
        round,
        requested_at_ms,
    })
}

impl ApprovalRows for SqliteStore {
    fn approval(&self, key: &NodeKey) -> Result<Option<ApprovalRow>> {
        one(
            &self.conn,
            &format!(
                "SELECT {COLS} FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3"
            ),
            params![key.run, key.node, key.iteration],
            row,
        )?
        .map(typed_row)
        .transpose()
    }

    fn approval_of_node(
        &self,
        run_id: &str,
        node_id: &str,
        iteration: Option<i64>,
    ) -> Result<Option<ApprovalRow>> {
        one(
            &self.conn,
            &format!(
                "SELECT {COLS} FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 \
                 AND (?3 IS NULL OR iteration = ?3) ORDER BY (status = 'requested') DESC, iteration DESC LIMIT 1"
            ),
            params![run_id, node_id, iteration],
            row,
        )?
        .map(typed_row)
        .transpose()
    }

    fn open_requests(&self, run_id: &str, iteration: Option<i64>) -> Result<Vec<ApprovalRow>> {
        all(
            &self.conn,
            &format!("SELECT {COLS} FROM _smithers_approvals {OPEN_REQUESTS_WHERE}"),
            params![run_id, iteration],
            row,
        )?
        .into_iter()
        .map(typed_row)
        .collect()
    }

    fn node_state_named(
        &self,
        run_id: &str,
        node_id: &str,
        iteration: Option<i64>,
    ) -> Result<Option<NodeState>> {
        one(
            &self.conn,
            "SELECT state FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 \
             AND (?3 IS NULL OR iteration = ?3) ORDER BY iteration DESC LIMIT 1",
            params![run_id, node_id, iteration],
            |r| r.get::<_, String>(0),
        )?
        .map(typed)
        .transpose()
    }

    fn request_approval(
        &self,
        key: &NodeKey,
        request: &ApprovalRequest,
        status: ApprovalStatus,
        now: i64,
    ) -> Result<()> {
        if request.kind == "review" {
            // A step sent back comes here again: its row moves to the next round.
            self.conn.prepare_cached(
                "INSERT INTO _smithers_approvals (run_id, node_id, iteration, status, mode, on_deny, output_table, requested_at_ms, request_json, kind, round) \
                 VALUES (?1, ?2, ?3, 'requested', 'review', 'fail', ?4, ?5, ?6, 'review', ?7) \
                 ON CONFLICT(run_id, node_id, iteration) DO UPDATE SET status = 'requested', \
                   requested_at_ms = excluded.requested_at_ms, request_json = excluded.request_json, \
                   decided_at_ms = NULL, decided_by = NULL, note = NULL, reason = NULL, inputs_json = NULL \
                 WHERE _smithers_approvals.status = 'pushed-back'",
            )?
            .execute(params![key.run, key.node, key.iteration, request.output_table, now, request.request_json, request.round])?;
            return Ok(());
        }
        self.conn.prepare_cached(
            "INSERT OR IGNORE INTO _smithers_approvals (run_id, node_id, iteration, status, mode, on_deny, output_table, requested_at_ms, request_json) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            key.run,
            key.node,
            key.iteration,
            status.as_str(),
            request.mode,
            request.on_deny,
            request.output_table,
            now,
            request.request_json
        ])?;
        Ok(())
    }

    fn decide(&self, key: &NodeKey, d: &DecisionRow, now: i64) -> Result<()> {
        self.conn.prepare_cached(
            "UPDATE _smithers_approvals SET status = ?4, decided_at_ms = ?5, note = ?6, decided_by = ?7, decision_json = ?8, \
               inputs_json = CASE WHEN ?4 = 'approved' THEN ?9 ELSE inputs_json END, \
               reason = CASE WHEN ?4 IN ('rejected', 'denied') THEN ?10 ELSE reason END, \
               pushback_json = COALESCE(?11, pushback_json), \
               round = round + (?4 = 'pushed-back') \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
        )?
        .execute(params![
            key.run,
            key.node,
            key.iteration,
            d.status.as_str(),
            now,
            d.note,
            d.decided_by,
            d.decision_json,
            d.inputs_json,
            d.reason,
            d.pushback_json
        ])?;
        Ok(())
    }

    fn withdraw_approval(
        &self,
        key: &NodeKey,
        decided_by: Option<&str>,
        note: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE _smithers_approvals SET status = 'cancelled', decided_at_ms = ?4, decided_by = ?5, note = ?6 \
                 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            )?
            .execute(params![key.run, key.node, key.iteration, now, decided_by, note])?;
        Ok(())
    }

    fn withdraw_requests(&self, run_id: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE _smithers_approvals SET status = 'cancelled' WHERE run_id = ?1 AND status = 'requested'",
            )?
            .execute([run_id])?;
        Ok(())
    }

    fn forget_gate(&self, key: &NodeKey) -> Result<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND kind = 'gate'",
            )?
            .execute(params![key.run, key.node, key.iteration])?;
        Ok(())
    }

    fn reopen_review(&self, key: &NodeKey) -> Result<()> {
        // A decided review keeps its round in the history and opens the next one.
        self.conn
            .prepare_cached(
                "UPDATE _smithers_approvals SET round = round + (status != 'requested'), status = 'pushed-back', \
                   decided_at_ms = NULL, decided_by = NULL, note = NULL, inputs_json = NULL \
                 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND kind = 'review'",
            )?
            .execute(params![key.run, key.node, key.iteration])?;
        Ok(())
    }

    fn set_request_json(&self, key: &NodeKey, request_json: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE _smithers_approvals SET request_json = ?4 \
                 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND status = 'requested'",
            )?
            .execute(params![key.run, key.node, key.iteration, request_json])?
            == 1)
    }

    fn append_history(&self, key: &NodeKey, h: &HistoryRow, now: i64) -> Result<()> {
        self.conn.prepare_cached(
            "INSERT OR REPLACE INTO _smithers_approval_history (run_id, node_id, iteration, round, status, requested_at_ms, \
               decided_at_ms, decided_by, note, inputs_json, output_json, stdout_path) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            key.run,
            key.node,
            key.iteration,
            h.round,
            h.status.as_str(),
            h.requested_at_ms,
            now,
            h.decided_by,
            h.note,
            h.inputs_json,
            h.output_json,
            h.stdout_path
        ])?;
        Ok(())
    }

    fn review_history(&self, key: &NodeKey) -> Result<Vec<Value>> {
        all(
            &self.conn,
            "SELECT round, status, requested_at_ms, decided_at_ms, decided_by, note, inputs_json, output_json, stdout_path \
             FROM _smithers_approval_history WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 ORDER BY round",
            params![key.run, key.node, key.iteration],
            |r| {
                Ok(json!({
                    "iteration": r.get::<_, i64>(0)?,
                    "status": r.get::<_, String>(1)?,
                    "requestedAt": iso8601(r.get(2)?),
                    "at": iso8601(r.get(3)?),
                    "by": r.get::<_, Option<String>>(4)?,
                    "note": r.get::<_, Option<String>>(5)?,
                    "inputs": json_col(r.get(6)?).unwrap_or(Value::Null),
                    "output": json_col(r.get(7)?).unwrap_or(Value::Null),
                    "stdoutPath": r.get::<_, Option<String>>(8)?,
                }))
            },
        )
    }

    fn decided(&self, run_id: &str) -> Result<Vec<DecidedRow>> {
        type Row = (String, i64, String, String, String, Option<String>, String);
        let rows: Vec<Row> = all(
            &self.conn,
            "SELECT a.node_id, a.iteration, n.state, a.status, a.output_table, n.error_json, a.request_json \
             FROM _smithers_approvals a JOIN _smithers_nodes n \
               ON n.run_id = a.run_id AND n.node_id = a.node_id AND n.iteration = a.iteration \
             WHERE a.run_id = ?1 AND a.status != 'requested'",
            [run_id],
            |r| r.try_into(),
        )?;
        rows.into_iter()
            .map(
                |(node_id, iteration, state, status, output_table, error, request)| {
                    Ok(DecidedRow {
                        node_id,
                        iteration,
                        node_state: typed(state)?,
                        status: typed(status)?,
                        output_table,
                        node_error_json: error,
                        request_json: request,
                    })
                },
            )
            .collect()
    }

    fn input_rows(&self, run_id: &str) -> Result<Vec<InputRow>> {
        type Row = (
            String,
            i64,
            String,
            i64,
            Option<String>,
            Option<String>,
            String,
        );
        let rows: Vec<Row> = all(
            &self.conn,
            "SELECT node_id, iteration, status, round, inputs_json, pushback_json, request_json FROM _smithers_approvals \
             WHERE run_id = ?1 AND (inputs_json IS NOT NULL OR pushback_json IS NOT NULL) \
             ORDER BY COALESCE(decided_at_ms, requested_at_ms)",
            [run_id],
            |r| r.try_into(),
        )?;
        rows.into_iter()
            .map(
                |(node_id, iteration, status, round, inputs_json, pushback_json, request_json)| {
                    Ok(InputRow {
                        node_id,
                        iteration,
                        status: typed(status)?,
                        round,
                        inputs_json,
                        pushback_json,
                        request_json,
                    })
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenOptions;

    /// What SQLite plans for `sql` on a store whose tables hold open requests of many runs.
    fn plan(store: &SqliteStore, sql: &str) -> String {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = stmt
            .query_map(params!["r1", Option::<i64>::None], |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn a_runs_open_requests_are_found_by_its_key_not_by_walking_every_open_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), OpenOptions::default()).unwrap();
        let sql = format!("SELECT {COLS} FROM _smithers_approvals {OPEN_REQUESTS_WHERE}");
        let detail = plan(&store, &sql);
        assert!(
            detail.contains("USING PRIMARY KEY (run_id=?)") && !detail.contains("listing"),
            "open requests of one run should be found through the primary key, planned: {detail}"
        );
        // The unguarded condition is what SQLite would walk the listing index for.
        let unguarded = sql.replace("+status", "status");
        assert!(plan(&store, &unguarded).contains("_smithers_approvals_listing"));
    }
}
