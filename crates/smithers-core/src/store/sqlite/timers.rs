//! Durable timers (`timers.rs`): `_smithers_timers` (schema v8).

use rusqlite::params;

use super::{SqliteStore, all, one};
use crate::error::Result;
use crate::machines::NodeKey;
use crate::store::TimerRows;
use crate::time::iso8601;
use crate::timers::{NewTimer, TimerKind, TimerRow};

const COLS: &str = "run_id, node_id, iteration, kind, round, due_at_ms, status, spec_json, \
     created_at_ms, fired_at_ms, fired_by, outcome";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TimerRow> {
    let due_at_ms: i64 = r.get(5)?;
    Ok(TimerRow {
        run_id: r.get(0)?,
        node_id: r.get(1)?,
        iteration: r.get(2)?,
        kind: r.get(3)?,
        round: r.get(4)?,
        due_at_ms,
        due_at: iso8601(due_at_ms),
        status: r.get(6)?,
        spec_json: r.get(7)?,
        created_at_ms: r.get(8)?,
        fired_at_ms: r.get(9)?,
        fired_by: r.get(10)?,
        outcome: r.get(11)?,
    })
}

impl TimerRows for SqliteStore {
    fn schedule_timer(&self, timer: &NewTimer, now: i64) -> Result<i64> {
        let k = &timer.key;
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO _smithers_timers (run_id, node_id, iteration, kind, round, \
                 due_at_ms, status, spec_json, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'scheduled', ?7, ?8)",
            )?
            .execute(params![
                k.run,
                k.node,
                k.iteration,
                timer.kind.as_str(),
                timer.round,
                timer.due_at_ms,
                timer.spec_json,
                now
            ])?;
        Ok(one(
            &self.conn,
            "SELECT due_at_ms FROM _smithers_timers WHERE run_id = ?1 AND node_id = ?2 \
             AND iteration = ?3 AND kind = ?4 AND round = ?5",
            params![k.run, k.node, k.iteration, timer.kind.as_str(), timer.round],
            |r| r.get(0),
        )?
        .unwrap_or(timer.due_at_ms))
    }

    fn next_timer_due(&self) -> Result<Option<i64>> {
        Ok(one(
            &self.conn,
            "SELECT MIN(due_at_ms) FROM _smithers_timers WHERE status = 'scheduled'",
            [],
            |r| r.get(0),
        )?
        .flatten())
    }

    fn due_timers(&self, now: i64, run: Option<&str>, limit: usize) -> Result<Vec<TimerRow>> {
        match run {
            None => all(
                &self.conn,
                &format!(
                    "SELECT {COLS} FROM _smithers_timers WHERE status = 'scheduled' AND due_at_ms <= ?1 \
                     ORDER BY due_at_ms LIMIT ?2"
                ),
                params![now, limit as i64],
                row,
            ),
            // Through the primary key (the run's few timers).
            Some(run_id) => all(
                &self.conn,
                &format!(
                    "SELECT {COLS} FROM _smithers_timers WHERE run_id = ?3 AND +status = 'scheduled' \
                     AND due_at_ms <= ?1 ORDER BY due_at_ms LIMIT ?2"
                ),
                params![now, limit as i64, run_id],
                row,
            ),
        }
    }

    fn take_timer(
        &self,
        key: &NodeKey,
        kind: TimerKind,
        round: i64,
        by: &str,
        now: i64,
    ) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE _smithers_timers SET status = 'fired', fired_at_ms = ?6, fired_by = ?7 \
                 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND kind = ?4 AND round = ?5 \
                 AND status = 'scheduled'",
            )?
            .execute(params![
                key.run,
                key.node,
                key.iteration,
                kind.as_str(),
                round,
                now,
                by
            ])?
            == 1)
    }

    fn set_timer_outcome(
        &self,
        key: &NodeKey,
        kind: TimerKind,
        round: i64,
        outcome: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE _smithers_timers SET outcome = ?6 WHERE run_id = ?1 AND node_id = ?2 \
                 AND iteration = ?3 AND kind = ?4 AND round = ?5",
            )?
            .execute(params![
                key.run,
                key.node,
                key.iteration,
                kind.as_str(),
                round,
                outcome
            ])?;
        Ok(())
    }

    fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRow>> {
        all(
            &self.conn,
            &format!(
                "SELECT {COLS} FROM _smithers_timers WHERE run_id = ?1 ORDER BY due_at_ms, node_id"
            ),
            [run_id],
            row,
        )
    }

    fn timer_nodes(&self, run_id: &str, fired: bool) -> Result<Vec<(String, i64)>> {
        let sql = if fired {
            "SELECT node_id, iteration FROM _smithers_timers WHERE run_id = ?1 AND kind = 'timer' \
             AND status = 'fired' AND outcome = 'finished'"
        } else {
            "SELECT node_id, iteration FROM _smithers_timers WHERE run_id = ?1 AND kind = 'timer' \
             AND status = 'scheduled'"
        };
        all(&self.conn, sql, [run_id], |r| Ok((r.get(0)?, r.get(1)?)))
    }
}
