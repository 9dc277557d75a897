//! Attempts: one row per run of a task's body.

use super::{PgStore, col};
use crate::error::Result;
use crate::machines::{AgentRecord, AttemptState, NodeKey};
use crate::store::AttemptRows;

/// SQLite's `INSERT OR REPLACE`: the row is written anew, every column it does not name empty.
const REPLACE: &str = "DELETE FROM _smithers_attempts WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND attempt = $4";

impl AttemptRows for PgStore {
    fn open_attempt(&self, key: &NodeKey, attempt: i64, owner: &str, now: i64) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(REPLACE, &[&key.run, &key.node, &key.iteration, &attempt])?;
        self.exec(
            "INSERT INTO _smithers_attempts (run_id, node_id, iteration, attempt, state, started_at_ms, owner) \
             VALUES ($1, $2, $3, $4, 'running', $5, $6)",
            &[&key.run, &key.node, &key.iteration, &attempt, &now, &owner],
        )?;
        Ok(())
    }

    fn close_attempt(
        &self,
        key: &NodeKey,
        attempt: i64,
        state: AttemptState,
        error_json: Option<&str>,
        only_running: bool,
        now: i64,
    ) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "UPDATE _smithers_attempts SET state = $5, finished_at_ms = $6, error_json = COALESCE($7, error_json) \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND attempt = $4 AND (NOT $8::boolean OR state = 'running')",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &attempt,
                &state.as_str(),
                &now,
                &error_json,
                &only_running,
            ],
        )?;
        Ok(())
    }

    fn record_refused_answer(
        &self,
        key: &NodeKey,
        attempt: i64,
        error_json: &str,
        now: i64,
    ) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(REPLACE, &[&key.run, &key.node, &key.iteration, &attempt])?;
        self.exec(
            "INSERT INTO _smithers_attempts (run_id, node_id, iteration, attempt, state, started_at_ms, finished_at_ms, error_json) \
             VALUES ($1, $2, $3, $4, 'failed', $5, $5, $6)",
            &[&key.run, &key.node, &key.iteration, &attempt, &now, &error_json],
        )?;
        Ok(())
    }

    fn set_attempt_logs(
        &self,
        key: &NodeKey,
        attempt: i64,
        stdout: &str,
        stderr: &str,
    ) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "UPDATE _smithers_attempts SET stdout_path = $5, stderr_path = $6 \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND attempt = $4",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &attempt,
                &stdout,
                &stderr,
            ],
        )?;
        Ok(())
    }

    fn set_attempt_exit(&self, key: &NodeKey, attempt: i64, exit_code: Option<i32>) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "UPDATE _smithers_attempts SET exit_code = $5 \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND attempt = $4",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &attempt,
                &exit_code.map(i64::from),
            ],
        )?;
        Ok(())
    }

    fn set_attempt_agent(&self, key: &NodeKey, attempt: i64, record: &AgentRecord) -> Result<()> {
        self.lock_run(&key.run)?;
        self.exec(
            "UPDATE _smithers_attempts SET prompt = $5, response_text = $6, usage_json = $7, agent_json = $8, \
             stdout_path = COALESCE($9, stdout_path), stderr_path = COALESCE($10, stderr_path) \
             WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND attempt = $4",
            &[
                &key.run,
                &key.node,
                &key.iteration,
                &attempt,
                &record.prompt,
                &record.text,
                &record.usage_json,
                &record.agent_json,
                &record.stdout_path,
                &record.stderr_path,
            ],
        )?;
        Ok(())
    }

    fn cancel_attempts(&self, run_id: &str, now: i64) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_attempts SET state = 'cancelled', finished_at_ms = $2 WHERE run_id = $1 AND state = 'running'",
            &[&run_id, &now],
        )?;
        Ok(())
    }

    fn failed_attempts(&self, key: &NodeKey) -> Result<i64> {
        self.lock_run(&key.run)?;
        Ok(self
            .one(
                "SELECT COUNT(*) FROM _smithers_attempts \
                 WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND state = 'failed'",
                &[&key.run, &key.node, &key.iteration],
                |r| col(r, 0),
            )?
            .unwrap_or(0))
    }

    fn attempt_stdout(&self, key: &NodeKey, attempt: i64) -> Result<Option<String>> {
        self.lock_run(&key.run)?;
        Ok(self
            .one(
                "SELECT stdout_path FROM _smithers_attempts WHERE run_id = $1 AND node_id = $2 AND iteration = $3 AND attempt = $4",
                &[&key.run, &key.node, &key.iteration, &attempt],
                |r| col::<Option<String>>(r, 0),
            )?
            .flatten())
    }

    fn previous_stdout(&self, key: &NodeKey, attempt: i64) -> Result<Option<String>> {
        self.lock_run(&key.run)?;
        self.one(
            "SELECT stdout_path FROM _smithers_attempts WHERE run_id = $1 AND node_id = $2 AND iteration = $3 \
             AND attempt < $4 AND state = 'finished' AND stdout_path IS NOT NULL ORDER BY attempt DESC LIMIT 1",
            &[&key.run, &key.node, &key.iteration, &attempt],
            |r| col(r, 0),
        )
    }
}
