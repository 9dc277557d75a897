//! Runs: their rows, ownership and leases, sub-runs.

use super::{PgStore, col, typed};
use crate::api::{ParentRef, RunError};
use crate::error::Result;
use crate::machines::{ApprovalStatus, RunChange, RunInsert, RunStatus};
use crate::store::{RunRow, RunRows};

impl RunRows for PgStore {
    fn try_lock_run(&self, run_id: &str) -> Result<bool> {
        PgStore::try_lock_run(self, run_id)
    }

    fn run_exists(&self, run_id: &str) -> Result<bool> {
        self.lock_run(run_id)?;
        Ok(self
            .row("SELECT 1 FROM _smithers_runs WHERE run_id = $1", &[&run_id])?
            .is_some())
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRow>> {
        self.lock_run(run_id)?;
        // Inside a write transaction the row is locked until it ends (`lock_run`, above):
        // claims, decisions and fencing read it here.
        let sql = "SELECT status, owner, lease_expires_at_ms, workflow_name, workflow_path, input_json, error_json, started_by \
             FROM _smithers_runs WHERE run_id = $1";
        self.one(sql, &[&run_id], |r| {
            Ok(RunRow {
                status: typed(col(r, 0)?)?,
                owner: col(r, 1)?,
                lease_expires_at_ms: col(r, 2)?,
                workflow_name: col(r, 3)?,
                workflow_path: col(r, 4)?,
                input_json: col(r, 5)?,
                error: col::<Option<String>>(r, 6)?
                    .and_then(|e| serde_json::from_str::<RunError>(&e).ok()),
                started_by: col(r, 7)?,
            })
        })
    }

    fn insert_run(&self, run: &RunInsert, now: i64) -> Result<()> {
        let parent = run.parent.as_ref();
        self.exec(
            "INSERT INTO _smithers_runs (run_id, workflow_name, workflow_path, status, input_json, owner, created_at_ms, updated_at_ms, started_by, \
               parent_run_id, parent_node_id, parent_iteration, lease_expires_at_ms) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $6, $7, $8, $9, $10, $11)",
            &[
                &run.run_id,
                &run.workflow_name,
                &run.workflow_path,
                &run.input_json,
                &run.owner,
                &now,
                &run.started_by,
                &parent.map(|p| &p.0),
                &parent.map(|p| &p.1),
                &parent.map(|p| p.2),
                &run.lease_until,
            ],
        )?;
        Ok(())
    }

    fn set_run_workflow(&self, run_id: &str, name: &str, path: Option<&str>) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_runs SET workflow_path = $2, workflow_name = $3 WHERE run_id = $1",
            &[&run_id, &path, &name],
        )?;
        Ok(())
    }

    fn set_workflow_name(&self, run_id: &str, name: &str) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_runs SET workflow_name = $2 WHERE run_id = $1 AND workflow_name <> $2",
            &[&run_id, &name],
        )?;
        Ok(())
    }

    fn set_run(&self, run_id: &str, status: RunStatus, change: &RunChange, now: i64) -> Result<()> {
        self.lock_run(run_id)?;
        let status = status.as_str();
        match change {
            RunChange::Status => self.exec(
                "UPDATE _smithers_runs SET status = $2, updated_at_ms = $3 WHERE run_id = $1",
                &[&run_id, &status, &now],
            )?,
            RunChange::Claim { owner, lease_until } => self.exec(
                "UPDATE _smithers_runs SET owner = $2, status = $3, updated_at_ms = $4, lease_expires_at_ms = $5, \
                 resume_error_json = NULL, resume_error_at_ms = NULL WHERE run_id = $1",
                &[&run_id, owner, &status, &now, lease_until],
            )?,
            RunChange::Release => self.exec(
                "UPDATE _smithers_runs SET status = $2, owner = NULL, lease_expires_at_ms = NULL, updated_at_ms = $3 WHERE run_id = $1",
                &[&run_id, &status, &now],
            )?,
            RunChange::End { error } => {
                let error_json = error.as_ref().map(serde_json::to_string).transpose()?;
                self.exec(
                    "UPDATE _smithers_runs SET status = $2, owner = NULL, lease_expires_at_ms = NULL, \
                     error_json = COALESCE($3, error_json), updated_at_ms = $4, finished_at_ms = $4 WHERE run_id = $1",
                    &[&run_id, &status, &error_json, &now],
                )?
            }
        };
        Ok(())
    }

    fn release_run(&self, run_id: &str, owner: &str) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_runs SET owner = NULL, lease_expires_at_ms = NULL WHERE run_id = $1 AND owner = $2",
            &[&run_id, &owner],
        )?;
        Ok(())
    }

    fn mark_unresumable(&self, run_id: &str, error: &RunError, now: i64) -> Result<()> {
        self.lock_run(run_id)?;
        self.exec(
            "UPDATE _smithers_runs SET resume_error_json = $2, resume_error_at_ms = GREATEST($3, updated_at_ms) WHERE run_id = $1",
            &[&run_id, &serde_json::to_string(error)?, &now],
        )?;
        Ok(())
    }

    fn caller(&self, run_id: &str) -> Result<Option<ParentRef>> {
        let row = self.row(
            "SELECT parent_run_id, parent_node_id, parent_iteration FROM _smithers_runs WHERE run_id = $1",
            &[&run_id],
        )?;
        let Some(r) = row else {
            return Ok(None);
        };
        let run_id: Option<String> = col(&r, 0)?;
        let node_id: Option<String> = col(&r, 1)?;
        let iteration: Option<i64> = col(&r, 2)?;
        Ok(run_id.zip(node_id).map(|(run_id, node_id)| ParentRef {
            run_id,
            node_id,
            iteration: iteration.unwrap_or(0),
        }))
    }

    fn open_sub_runs(&self, root: &str, tree: bool) -> Result<Vec<(String, RunStatus)>> {
        self.all(
            "WITH RECURSIVE sub(id) AS (SELECT run_id FROM _smithers_runs \
                 WHERE ($2::boolean AND run_id = $1) OR (NOT $2::boolean AND parent_run_id = $1) \
               UNION SELECT r.run_id FROM _smithers_runs r JOIN sub ON r.parent_run_id = sub.id) \
             SELECT run_id, status FROM _smithers_runs WHERE run_id IN (SELECT id FROM sub) \
               AND status IN ('running', 'waiting-approval', 'waiting-timer')",
            &[&root, &tree],
            |r| Ok((col(r, 0)?, typed(col(r, 1)?)?)),
        )
    }

    fn decisions_elsewhere(
        &self,
        run_id: &str,
        node_id: &str,
        except_by: &str,
        limit: u32,
    ) -> Result<Vec<ApprovalStatus>> {
        self.lock_run(run_id)?;
        self.all(
            "SELECT a.status FROM _smithers_approvals a \
             JOIN _smithers_runs r ON r.run_id = a.run_id \
             WHERE a.node_id = $2 AND a.run_id <> $1 \
               AND r.workflow_name = (SELECT workflow_name FROM _smithers_runs WHERE run_id = $1) \
               AND a.status IN ('approved', 'denied') AND COALESCE(a.decided_by, '') <> $3 \
             ORDER BY r.created_at_ms DESC, a.decided_at_ms DESC LIMIT $4",
            &[&run_id, &node_id, &except_by, &i64::from(limit)],
            |r| typed(col(r, 0)?),
        )
    }
}
