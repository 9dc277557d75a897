//! Approval requests (gates and reviews), their decisions and the history of review rounds.

use postgres::Row;
use serde_json::{Value, json};

use super::{PgStore, col, json_col, typed};
use crate::error::Result;
use crate::machines::{
    ApprovalRequest, ApprovalStatus, DecisionRow, HistoryRow, NodeKey, NodeState,
};
use crate::store::{ApprovalRow, ApprovalRows, DecidedRow, InputRow};
use crate::time::iso8601;

const COLS: &str = "node_id, iteration, status, mode, on_deny, output_table, request_json, decided_by, \
     decided_at_ms, note, decision_json, kind, round, requested_at_ms";

fn approval_row(r: &Row) -> Result<ApprovalRow> {
    Ok(ApprovalRow {
        node_id: col(r, 0)?,
        iteration: col(r, 1)?,
        status: typed(col(r, 2)?)?,
        mode: col(r, 3)?,
        on_deny: col(r, 4)?,
        output_table: col(r, 5)?,
        request_json: col(r, 6)?,
        decided_by: col(r, 7)?,
        decided_at_ms: col(r, 8)?,
        note: col(r, 9)?,
        decision_json: col(r, 10)?,
        kind: col(r, 11)?,
        round: col(r, 12)?,
        requested_at_ms: col(r, 13)?,
    })
}

impl ApprovalRows for PgStore {
    fn approval(&self, key: &NodeKey) -> Result<Option<ApprovalRow>> {
        self.lock_run(&key.run)?;
        // In a write transaction the row is locked: a decision reads it, then writes it.
        let lock = if self.in_tx.get() { " FOR UPDATE" } else { "" };
        self.one(
            &format!(
                "SELECT {COLS} FROM _smithers_approvals WHERE run_id = $1 AND node_id = $2 AND iteration = $3{lock}"
            ),
            &[&key.run, &key.node, &key.iteration],
            approval_row,
        )
    }

    fn approval_of_node(
        &self,
        run_id: &str,
        node_id: &str,
        iteration: Option<i64>,
    ) -> Result<Option<ApprovalRow>> {
        self.lock_run(run_id)?;
        self.one(
            &format!(
                "SELECT {COLS} FROM _smithers_approvals WHERE run_id = $1 AND node_id = $2 \
                 AND ($3::bigint IS NULL OR iteration = $3::bigint) \
                 ORDER BY (status = 'requested') DESC, iteration DESC LIMIT 1"
            ),
            &[&run_id, &node_id, &iteration],
            approval_row,
        )
    }

    fn open_requests(&self, run_id: &str, iteration: Option<i64>) -> Result<Vec<ApprovalRow>> {
        self.lock_run(run_id)?;
        self.all(
            &format!(
                "SELECT {COLS} FROM _smithers_approvals WHERE run_id = $1 AND status = 'requested' \
                 AND ($2::bigint IS NULL OR iteration = $2::bigint) ORDER BY requested_at_ms, node_id"
            ),
            &[&run_id, &iteration],
            approval_row,
        )
    }

    fn node_state_named(
        &self,
        run_id: &str,
        node_id: &str,
        iteration: Option<i64>,
    ) -> Result<Option<NodeState>> {
        self.lock_run(run_id)?;
        self.one(
            "SELECT state FROM _smithers_nodes WHERE run_id = $1 AND node_id = $2 \
             AND ($3::bigint IS NULL OR iteration = $3::bigint) ORDER BY iteration DESC LIMIT 1",
            &[&run_id, &node_id, &iteration],
            |r| typed(col(r, 0)?),
        )
    }

    fn request_approval(
        &self,
        key: &NodeKey,
        request: &ApprovalRequest,
        status: ApprovalStatus,
        now: i64,
    ) -> Result<()> {
        self.lock_run(&key.run)?;
        if request.kind == "review" {
            // A step sent back comes here again: its row moves to the next round.
            self.exec(
                "INSERT INTO _smithers_approvals (run_id, node_id, iteration, status, mode, on_deny, output_table, requested_at_ms, request_json, kind, round) \
                 VALUES ($1, $2, $3, 'requested', 'review', 'fail', $4, $5, $6, 'review', $7) \
                 ON CONFLICT (run_id, node_id, iteration) DO UPDATE SET status = 'requested', \
                   requested_at_ms = excluded.requested_at_ms, request_json = excluded.request_json, \
                   decided_at_ms = NULL, decided_by = NULL, note = NULL, reason = NULL, inputs_json = NULL \
                 WHERE _smithers_approvals.status = 'pushed-back'",
                &[
                    &key.run,
                    &key.node,
                    &key.iteration,
                    &request.output_table,
                    &now,
                    &request.request_json,
                    &request.round,
                ],
            )?;
            return Ok(());
        }
        self.exec(
            "INSERT INTO _smithers_approvals (run_id, node_id, iteration, status, mode, on_deny, output_table, requested_at_ms, request_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &status.as_str(),
                &request.mode,
                &request.on_deny,
                &request.output_table,
                &now,
                &request.request_json,
            ],
        )?;
        Ok(())
    }

    fn decide(&self, key: &NodeKey, d: &DecisionRow, now: i64) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "UPDATE _smithers_approvals SET status = $4::text, decided_at_ms = $5, note = $6, decided_by = $7, decision_json = $8, \
               inputs_json = CASE WHEN $4::text = 'approved' THEN $9::text ELSE inputs_json END, \
               reason = CASE WHEN $4::text IN ('rejected', 'denied') THEN $10::text ELSE reason END, \
               pushback_json = COALESCE($11::text, pushback_json), \
               round = round + CASE WHEN $4::text = 'pushed-back' THEN 1 ELSE 0 END \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &d.status.as_str(),
                &now,
                &d.note,
                &d.decided_by,
                &d.decision_json,
                &d.inputs_json,
                &d.reason,
                &d.pushback_json,
            ],
        )?;
        Ok(())
    }

    fn withdraw_approval(
        &self,
        key: &NodeKey,
        decided_by: Option<&str>,
        note: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "UPDATE _smithers_approvals SET status = 'cancelled', decided_at_ms = $4, decided_by = $5, note = $6 \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3",
            &[&key.run, &key.node, &key.iteration, &now, &decided_by, &note],
        )?;
        Ok(())
    }

    fn withdraw_requests(&self, run_id: &str) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_approvals SET status = 'cancelled' WHERE run_id = $1 AND status = 'requested'",
            &[&run_id],
        )?;
        Ok(())
    }

    fn forget_gate(&self, key: &NodeKey) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "DELETE FROM _smithers_approvals WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND kind = 'gate'",
            &[&key.run, &key.node, &key.iteration],
        )?;
        Ok(())
    }

    fn reopen_review(&self, key: &NodeKey) -> Result<()> {
        self.lock_run(&key.run)?;
        // A decided review keeps its round in the history and opens the next one.
        self.exec(
            "UPDATE _smithers_approvals SET round = round + CASE WHEN status <> 'requested' THEN 1 ELSE 0 END, \
               status = 'pushed-back', decided_at_ms = NULL, decided_by = NULL, note = NULL, inputs_json = NULL \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND kind = 'review'",
            &[&key.run, &key.node, &key.iteration],
        )?;
        Ok(())
    }

    fn set_request_json(&self, key: &NodeKey, request_json: &str) -> Result<bool> {
        self.lock_run(&key.run)?;
        Ok(self.exec(
            "UPDATE _smithers_approvals SET request_json = $4 \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND status = 'requested'",
            &[&key.run, &key.node, &key.iteration, &request_json],
        )? == 1)
    }

    fn append_history(&self, key: &NodeKey, h: &HistoryRow, now: i64) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "INSERT INTO _smithers_approval_history (run_id, node_id, iteration, round, status, requested_at_ms, \
               decided_at_ms, decided_by, note, inputs_json, output_json, stdout_path) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (run_id, node_id, iteration, round) DO UPDATE SET status = excluded.status, \
               requested_at_ms = excluded.requested_at_ms, decided_at_ms = excluded.decided_at_ms, \
               decided_by = excluded.decided_by, note = excluded.note, inputs_json = excluded.inputs_json, \
               output_json = excluded.output_json, stdout_path = excluded.stdout_path",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &h.round,
                &h.status.as_str(),
                &h.requested_at_ms,
                &now,
                &h.decided_by,
                &h.note,
                &h.inputs_json,
                &h.output_json,
                &h.stdout_path,
            ],
        )?;
        Ok(())
    }

    fn review_history(&self, key: &NodeKey) -> Result<Vec<Value>> {
        self.lock_run(&key.run)?;
        self.all(
            "SELECT round, status, requested_at_ms, decided_at_ms, decided_by, note, inputs_json, output_json, stdout_path \
             FROM _smithers_approval_history WHERE run_id = $1 AND node_id = $2 AND iteration = $3 ORDER BY round",
            &[&key.run, &key.node, &key.iteration],
            |r| {
                Ok(json!({
                    "iteration": col::<i64>(r, 0)?,
                    "status": col::<String>(r, 1)?,
                    "requestedAt": iso8601(col(r, 2)?),
                    "at": iso8601(col(r, 3)?),
                    "by": col::<Option<String>>(r, 4)?,
                    "note": col::<Option<String>>(r, 5)?,
                    "inputs": json_col(col(r, 6)?).unwrap_or(Value::Null),
                    "output": json_col(col(r, 7)?).unwrap_or(Value::Null),
                    "stdoutPath": col::<Option<String>>(r, 8)?,
                }))
            },
        )
    }

    fn decided(&self, run_id: &str) -> Result<Vec<DecidedRow>> {
        self.lock_run(run_id)?;
        self.all(
            "SELECT a.node_id, a.iteration, n.state, a.status, a.output_table, n.error_json, a.request_json \
             FROM _smithers_approvals a JOIN _smithers_nodes n \
               ON n.run_id = a.run_id AND n.node_id = a.node_id AND n.iteration = a.iteration \
             WHERE a.run_id = $1 AND a.status <> 'requested'",
            &[&run_id],
            |r| {
                Ok(DecidedRow {
                    node_id: col(r, 0)?,
                    iteration: col(r, 1)?,
                    node_state: typed(col(r, 2)?)?,
                    status: typed(col(r, 3)?)?,
                    output_table: col(r, 4)?,
                    node_error_json: col(r, 5)?,
                    request_json: col(r, 6)?,
                })
            },
        )
    }

    fn input_rows(&self, run_id: &str) -> Result<Vec<InputRow>> {
        self.lock_run(run_id)?;
        self.all(
            "SELECT node_id, iteration, status, round, inputs_json, pushback_json, request_json FROM _smithers_approvals \
             WHERE run_id = $1 AND (inputs_json IS NOT NULL OR pushback_json IS NOT NULL) \
             ORDER BY COALESCE(decided_at_ms, requested_at_ms)",
            &[&run_id],
            |r| {
                Ok(InputRow {
                    node_id: col(r, 0)?,
                    iteration: col(r, 1)?,
                    status: typed(col(r, 2)?)?,
                    round: col(r, 3)?,
                    inputs_json: col(r, 4)?,
                    pushback_json: col(r, 5)?,
                    request_json: col(r, 6)?,
                })
            },
        )
    }
}
