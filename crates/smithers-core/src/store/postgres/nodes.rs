//! Nodes and loops of runs.

use super::{PgStore, col, typed, typed_opt};
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

impl NodeRows for PgStore {
    fn insert_nodes(&self, run_id: &str, nodes: &[NodeInsert<'_>], now: i64) -> Result<()> {
        self.lock_run(run_id)?;
        if nodes.is_empty() {
            return Ok(());
        }
        // One statement for the whole graph: a round trip per node would dominate.
        let ids: Vec<&str> = nodes.iter().map(|n| n.node_id).collect();
        let iterations: Vec<i64> = nodes.iter().map(|n| n.iteration).collect();
        let tables: Vec<&str> = nodes.iter().map(|n| n.output_table).collect();
        let loops: Vec<Option<&str>> = nodes.iter().map(|n| n.loop_id).collect();
        let labels: Vec<Option<&str>> = nodes.iter().map(|n| n.label).collect();
        let ordinals: Vec<i64> = nodes.iter().map(|n| n.ordinal).collect();
        self.exec(
            "INSERT INTO _smithers_nodes (run_id, node_id, iteration, state, output_table, loop_id, label, ordinal, updated_at_ms) \
             SELECT $1, n.node_id, n.iteration, 'pending', n.output_table, n.loop_id, n.label, n.ordinal, $8 \
             FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[]) \
               AS n(node_id, iteration, output_table, loop_id, label, ordinal) \
             ON CONFLICT DO NOTHING",
            &[
                &run_id,
                &ids,
                &iterations,
                &tables,
                &loops,
                &labels,
                &ordinals,
                &now,
            ],
        )?;
        Ok(())
    }

    fn insert_loops(&self, run_id: &str, loop_ids: &[&str]) -> Result<()> {
        self.lock_run(run_id)?;
        if loop_ids.is_empty() {
            return Ok(());
        }
        self.exec(
            "INSERT INTO _smithers_loops (run_id, loop_id, iteration, done) \
             SELECT $1, id, 0, false FROM unnest($2::text[]) AS l(id) ON CONFLICT DO NOTHING",
            &[&run_id, &loop_ids],
        )?;
        Ok(())
    }

    fn nodes(&self, run_id: &str) -> Result<Vec<NodeRow>> {
        self.lock_run(run_id)?;
        self.all(
            "SELECT n.node_id, n.iteration, n.state, n.attempts, n.loop_id, a.status \
             FROM _smithers_nodes n LEFT JOIN _smithers_approvals a \
               ON a.run_id = n.run_id AND a.node_id = n.node_id AND a.iteration = n.iteration \
             WHERE n.run_id = $1",
            &[&run_id],
            |r| {
                Ok(NodeRow {
                    node_id: col(r, 0)?,
                    iteration: col(r, 1)?,
                    state: typed(col(r, 2)?)?,
                    attempts: col(r, 3)?,
                    loop_id: col(r, 4)?,
                    approval: typed_opt(col(r, 5)?)?,
                })
            },
        )
    }

    fn loops(&self, run_id: &str) -> Result<Vec<(String, i64, bool)>> {
        self.lock_run(run_id)?;
        self.all(
            "SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = $1",
            &[&run_id],
            |r| Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?)),
        )
    }

    fn node(&self, key: &NodeKey) -> Result<Option<NodeDetail>> {
        self.lock_run(&key.run)?;
        self.one(
            "SELECT state, attempts, output_table, error_json, sub_run_id FROM _smithers_nodes \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3",
            &[&key.run, &key.node, &key.iteration],
            |r| {
                Ok(NodeDetail {
                    state: typed(col(r, 0)?)?,
                    attempts: col(r, 1)?,
                    output_table: col(r, 2)?,
                    error_json: col(r, 3)?,
                    sub_run_id: col(r, 4)?,
                })
            },
        )
    }

    fn nodes_in(
        &self,
        run_id: &str,
        states: &[NodeState],
    ) -> Result<Vec<(String, i64, NodeState, i64)>> {
        self.lock_run(run_id)?;
        let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        self.all(
            "SELECT node_id, iteration, state, attempts FROM _smithers_nodes WHERE run_id = $1 \
             AND state = ANY($2::text[])",
            &[&run_id, &names],
            |r| Ok((col(r, 0)?, col(r, 1)?, typed(col(r, 2)?)?, col(r, 3)?)),
        )
    }

    fn set_node(
        &self,
        key: &NodeKey,
        state: NodeState,
        change: &NodeChange,
        now: i64,
    ) -> Result<()> {
        self.lock_run(&key.run)?;
        let (skip_set, skip) = field(&change.skip_reason);
        let (error_set, error) = field(&change.error);
        let (sub_set, sub) = field(&change.sub_run);
        self.exec(
            "UPDATE _smithers_nodes SET state = $4, attempts = GREATEST(attempts, COALESCE($5::bigint, 0)), \
             skip_reason = CASE WHEN $6::boolean THEN $7::text ELSE skip_reason END, \
             error_json = CASE WHEN $8::boolean THEN $9::text ELSE error_json END, \
             sub_run_id = CASE WHEN $10::boolean THEN $11::text ELSE sub_run_id END, \
             updated_at_ms = $12 WHERE run_id = $1 AND node_id = $2 AND iteration = $3",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &state.as_str(),
                &change.attempts,
                &skip_set,
                &skip,
                &error_set,
                &error,
                &sub_set,
                &sub,
                &now,
            ],
        )?;
        Ok(())
    }

    fn cancel_open_nodes(&self, run_id: &str, now: i64) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_nodes SET state = 'cancelled', updated_at_ms = $2 WHERE run_id = $1 \
             AND state IN ('pending', 'in-progress', 'waiting-approval')",
            &[&run_id, &now],
        )?;
        Ok(())
    }

    fn woken_nodes(&self, run_id: &str) -> Result<Vec<(String, i64, NodeState)>> {
        self.lock_run(run_id)?;
        self.all(
            "SELECT node_id, iteration, state FROM _smithers_nodes WHERE run_id = $1 \
             AND sub_run_id IS NOT NULL AND state <> 'waiting-approval'",
            &[&run_id],
            |r| Ok((col(r, 0)?, col(r, 1)?, typed(col(r, 2)?)?)),
        )
    }

    fn nodes_on_timer_sub_runs(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        self.lock_run(run_id)?;
        self.all(
            "SELECT n.node_id, n.iteration FROM _smithers_nodes n JOIN _smithers_runs s ON s.run_id = n.sub_run_id \
             WHERE n.run_id = $1 AND n.sub_run_id IS NOT NULL AND n.state = 'waiting-approval' \
             AND s.status = 'waiting-timer'",
            &[&run_id],
            |r| Ok((col(r, 0)?, col(r, 1)?)),
        )
    }

    fn rejected_node(&self, run_id: &str) -> Result<Option<String>> {
        self.lock_run(run_id)?;
        self.one(
            "SELECT node_id FROM _smithers_nodes WHERE run_id = $1 AND state = 'rejected' LIMIT 1",
            &[&run_id],
            |r| col(r, 0),
        )
    }

    fn has_node(&self, run_id: &str, node_id: &str) -> Result<bool> {
        self.lock_run(run_id)?;
        Ok(self
            .row(
                "SELECT 1 FROM _smithers_nodes WHERE run_id = $1 AND node_id = $2 LIMIT 1",
                &[&run_id, &node_id],
            )?
            .is_some())
    }

    fn set_loop(&self, run_id: &str, loop_id: &str, iteration: i64, done: bool) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_loops SET iteration = $3, done = $4 WHERE run_id = $1 AND loop_id = $2",
            &[&run_id, &loop_id, &iteration, &done],
        )?;
        Ok(())
    }
}
