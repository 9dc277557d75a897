//! Durable timers (`timers.rs`): `_smithers_timers` (schema v8). A timer is fired once: the
//! fire is an `UPDATE … WHERE status = 'scheduled'` in the transaction that carries out its
//! effect, so of several processes racing for it one changes the row.

use postgres::Row;

use super::{PgStore, col};
use crate::error::Result;
use crate::machines::NodeKey;
use crate::store::TimerRows;
use crate::time::iso8601;
use crate::timers::{NewTimer, TimerKind, TimerRow};

const COLS: &str = "run_id, node_id, iteration, kind, round, due_at_ms, status, spec_json, \
     created_at_ms, fired_at_ms, fired_by, outcome";

fn row(r: &Row) -> Result<TimerRow> {
    let due_at_ms: i64 = col(r, 5)?;
    Ok(TimerRow {
        run_id: col(r, 0)?,
        node_id: col(r, 1)?,
        iteration: col(r, 2)?,
        kind: col(r, 3)?,
        round: col(r, 4)?,
        due_at_ms,
        due_at: iso8601(due_at_ms),
        status: col(r, 6)?,
        spec_json: col(r, 7)?,
        created_at_ms: col(r, 8)?,
        fired_at_ms: col(r, 9)?,
        fired_by: col(r, 10)?,
        outcome: col(r, 11)?,
    })
}

impl TimerRows for PgStore {
    fn schedule_timer(&self, timer: &NewTimer, now: i64) -> Result<i64> {
        self.lock_run(&timer.key.run)?;
        let k = &timer.key;
        self.exec(
            "INSERT INTO _smithers_timers (run_id, node_id, iteration, kind, round, \
             due_at_ms, status, spec_json, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, 'scheduled', $7, $8) \
             ON CONFLICT DO NOTHING",
            &[
                &k.run,
                &k.node,
                &k.iteration,
                &timer.kind.as_str(),
                &timer.round,
                &timer.due_at_ms,
                &timer.spec_json,
                &now,
            ],
        )?;
        Ok(self
            .one(
                "SELECT due_at_ms FROM _smithers_timers WHERE run_id = $1 AND node_id = $2 \
                 AND iteration = $3 AND kind = $4 AND round = $5",
                &[
                    &k.run,
                    &k.node,
                    &k.iteration,
                    &timer.kind.as_str(),
                    &timer.round,
                ],
                |r| col(r, 0),
            )?
            .unwrap_or(timer.due_at_ms))
    }

    fn next_timer_due(&self) -> Result<Option<i64>> {
        Ok(self
            .one(
                "SELECT MIN(due_at_ms) FROM _smithers_timers WHERE status = 'scheduled'",
                &[],
                |r| col::<Option<i64>>(r, 0),
            )?
            .flatten())
    }

    fn due_timers(&self, now: i64, run: Option<&str>, limit: usize) -> Result<Vec<TimerRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match run {
            None => self.all(
                &format!(
                    "SELECT {COLS} FROM _smithers_timers WHERE status = 'scheduled' AND due_at_ms <= $1 \
                     ORDER BY due_at_ms LIMIT $2"
                ),
                &[&now, &limit],
                row,
            ),
            Some(run_id) => self.all(
                &format!(
                    "SELECT {COLS} FROM _smithers_timers WHERE run_id = $3 AND status = 'scheduled' \
                     AND due_at_ms <= $1 ORDER BY due_at_ms LIMIT $2"
                ),
                &[&now, &limit, &run_id],
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
        self.lock_run(&key.run)?;
        Ok(self.exec(
            "UPDATE _smithers_timers SET status = 'fired', fired_at_ms = $6, fired_by = $7 \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND kind = $4 AND round = $5 \
             AND status = 'scheduled'",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &kind.as_str(),
                &round,
                &now,
                &by,
            ],
        )? == 1)
    }

    fn set_timer_outcome(
        &self,
        key: &NodeKey,
        kind: TimerKind,
        round: i64,
        outcome: &str,
    ) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "UPDATE _smithers_timers SET outcome = $6 WHERE run_id = $1 AND node_id = $2 \
             AND iteration = $3 AND kind = $4 AND round = $5",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &kind.as_str(),
                &round,
                &outcome,
            ],
        )?;
        Ok(())
    }

    fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRow>> {
        self.lock_run(run_id)?;
        self.all(
            &format!(
                "SELECT {COLS} FROM _smithers_timers WHERE run_id = $1 ORDER BY due_at_ms, node_id"
            ),
            &[&run_id],
            row,
        )
    }

    fn timer_nodes(&self, run_id: &str, fired: bool) -> Result<Vec<(String, i64)>> {
        self.lock_run(run_id)?;
        let sql = if fired {
            "SELECT node_id, iteration FROM _smithers_timers WHERE run_id = $1 AND kind = 'timer' \
             AND status = 'fired' AND outcome = 'finished'"
        } else {
            "SELECT node_id, iteration FROM _smithers_timers WHERE run_id = $1 AND kind = 'timer' \
             AND status = 'scheduled'"
        };
        self.all(sql, &[&run_id], |r| Ok((col(r, 0)?, col(r, 1)?)))
    }
}
