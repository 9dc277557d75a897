//! Nodes and loops of runs.

use rusqlite::params;

use super::{SqliteStore, all, one, typed, typed_opt};
use crate::error::Result;
use crate::machines::{Field, NodeChange, NodeKey, NodeState};
use crate::store::{NodeDetail, NodeInsert, NodeRow, NodeRows};

/// A field as two parameters: whether it is written, and the value written (NULL clears).
fn field<T: Clone>(f: &Field<T>) -> (bool, Option<T>) {
    match f {
        Field::Keep => (false, None),
        Field::Set(v) => (true, Some(v.clone())),
        Field::Clear => (true, None),
    }
}

impl NodeRows for SqliteStore {
    fn insert_nodes(&self, run_id: &str, nodes: &[NodeInsert<'_>], now: i64) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO _smithers_nodes (run_id, node_id, iteration, state, output_table, loop_id, label, ordinal, updated_at_ms) \
             VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8)",
        )?;
        for n in nodes {
            stmt.execute(params![
                run_id,
                n.node_id,
                n.iteration,
                n.output_table,
                n.loop_id,
                n.label,
                n.ordinal,
                now
            ])?;
        }
        Ok(())
    }

    fn insert_loops(&self, run_id: &str, loop_ids: &[&str]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO _smithers_loops (run_id, loop_id, iteration, done) VALUES (?1, ?2, 0, 0)",
        )?;
        for id in loop_ids {
            stmt.execute(params![run_id, id])?;
        }
        Ok(())
    }

    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRow>> {
        type Row = (String, i64, String, i64, Option<String>, Option<String>);
        let rows: Vec<Row> = all(
            &self.conn,
            "SELECT n.node_id, n.iteration, n.state, n.attempts, n.loop_id, a.status \
             FROM _smithers_nodes n LEFT JOIN _smithers_approvals a \
               ON a.run_id = n.run_id AND a.node_id = n.node_id AND a.iteration = n.iteration \
             WHERE n.run_id = ?1",
            [run_id],
            |r| r.try_into(),
        )?;
        rows.into_iter()
            .map(|(node_id, iteration, state, attempts, loop_id, approval)| {
                Ok(NodeRow {
                    node_id,
                    iteration,
                    state: typed(state)?,
                    attempts,
                    loop_id,
                    approval: typed_opt(approval)?,
                })
            })
            .collect()
    }

    fn loops(&self, run_id: &str) -> Result<Vec<(String, i64, bool)>> {
        all(
            &self.conn,
            "SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = ?1",
            [run_id],
            |r| r.try_into(),
        )
    }

    fn node(&self, key: &NodeKey) -> Result<Option<NodeDetail>> {
        type Row = (String, i64, String, Option<String>, Option<String>);
        let row: Option<Row> = one(
            &self.conn,
            "SELECT state, attempts, output_table, error_json, sub_run_id FROM _smithers_nodes \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            params![key.run, key.node, key.iteration],
            |r| r.try_into(),
        )?;
        row.map(|(state, attempts, output_table, error_json, sub_run_id)| {
            Ok(NodeDetail {
                state: typed(state)?,
                attempts,
                output_table,
                error_json,
                sub_run_id,
            })
        })
        .transpose()
    }

    fn nodes_in(
        &self,
        run_id: &str,
        states: &[NodeState],
    ) -> Result<Vec<(String, i64, NodeState, i64)>> {
        let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let rows: Vec<(String, i64, String, i64)> = all(
            &self.conn,
            "SELECT node_id, iteration, state, attempts FROM _smithers_nodes WHERE run_id = ?1 \
             AND state IN (SELECT value FROM json_each(?2))",
            params![run_id, serde_json::to_string(&names)?],
            |r| r.try_into(),
        )?;
        rows.into_iter()
            .map(|(n, i, s, a)| Ok((n, i, typed(s)?, a)))
            .collect()
    }

    fn set_node(
        &self,
        key: &NodeKey,
        state: NodeState,
        change: &NodeChange,
        now: i64,
    ) -> Result<()> {
        let (skip_set, skip) = field(&change.skip_reason);
        let (error_set, error) = field(&change.error);
        let (sub_set, sub) = field(&change.sub_run);
        self.conn
            .prepare_cached(
                "UPDATE _smithers_nodes SET state = ?4, attempts = MAX(attempts, COALESCE(?5, 0)), \
                 skip_reason = CASE WHEN ?6 THEN ?7 ELSE skip_reason END, \
                 error_json = CASE WHEN ?8 THEN ?9 ELSE error_json END, \
                 sub_run_id = CASE WHEN ?10 THEN ?11 ELSE sub_run_id END, \
                 updated_at_ms = ?12 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            )?
            .execute(params![
                key.run,
                key.node,
                key.iteration,
                state.as_str(),
                change.attempts,
                skip_set,
                skip,
                error_set,
                error,
                sub_set,
                sub,
                now
            ])?;
        Ok(())
    }

    fn cancel_open_nodes(&self, run_id: &str, now: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE _smithers_nodes SET state = 'cancelled', updated_at_ms = ?2 WHERE run_id = ?1 \
                 AND state IN ('pending', 'in-progress', 'waiting-approval')",
            )?
            .execute(params![run_id, now])?;
        Ok(())
    }

    fn woken_nodes(&self, run_id: &str) -> Result<Vec<(String, i64, NodeState)>> {
        let rows: Vec<(String, i64, String)> = all(
            &self.conn,
            "SELECT node_id, iteration, state FROM _smithers_nodes WHERE run_id = ?1 \
             AND sub_run_id IS NOT NULL AND state != 'waiting-approval'",
            [run_id],
            |r| r.try_into(),
        )?;
        rows.into_iter()
            .map(|(n, i, s)| Ok((n, i, typed(s)?)))
            .collect()
    }

    fn nodes_on_timer_sub_runs(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        // Through the run's nodes (primary key prefix), then each sub-run by its key.
        all(
            &self.conn,
            "SELECT n.node_id, n.iteration FROM _smithers_nodes n JOIN _smithers_runs s ON s.run_id = n.sub_run_id \
             WHERE n.run_id = ?1 AND n.sub_run_id IS NOT NULL AND n.state = 'waiting-approval' \
             AND s.status = 'waiting-timer'",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn rejected_node(&self, run_id: &str) -> Result<Option<String>> {
        one(
            &self.conn,
            "SELECT node_id FROM _smithers_nodes WHERE run_id = ?1 AND state = 'rejected' LIMIT 1",
            [run_id],
            |r| r.get(0),
        )
    }

    fn has_node(&self, run_id: &str, node_id: &str) -> Result<bool> {
        Ok(one(
            &self.conn,
            "SELECT 1 FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 LIMIT 1",
            params![run_id, node_id],
            |_| Ok(()),
        )?
        .is_some())
    }

    fn set_loop(&self, run_id: &str, loop_id: &str, iteration: i64, done: bool) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE _smithers_loops SET iteration = ?3, done = ?4 WHERE run_id = ?1 AND loop_id = ?2",
            )?
            .execute(params![run_id, loop_id, iteration, done])?;
        Ok(())
    }
}
