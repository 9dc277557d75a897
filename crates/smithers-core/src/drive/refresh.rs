//! What other writers changed while this engine drove the run: a cancel, another engine
//! that took the run over, decisions on gates it waits on (made by the CLI in another
//! process, or through this engine's `decide`), sub-runs that ended. And parking: letting go
//! of a run that can only wait for decisions, checking for decisions in the same
//! transaction so that none is missed.

use serde_json::Value;

use super::{Drive, error_field};
use crate::api::{OutputRef, OutputRow, RunError};
use crate::decision::reset_scope_of;
use crate::error::{Error, Result, codes};
use crate::logs::ENGINE;
use crate::machines::{ApprovalStatus, NodeKey, NodeState, RunStatus, run};
use crate::plan::WalkCache;

impl Drive<'_, '_> {
    /// Results of an engine whose run was taken over and then let go of by the engine that
    /// took it (ended, or parked: no owner, not running) are refused: the attempts they
    /// report were abandoned by that takeover, and a task that finished is never recorded
    /// twice. (`refresh` fences a run another engine holds now.)
    pub(super) fn fence_late_results(&mut self) -> Result<()> {
        let Some(row) = self.tx.store.run(self.run_id)? else {
            return Ok(());
        };
        if row.owner.is_none()
            && row.status != RunStatus::Running
            && row.status != RunStatus::Cancelled
            && self.run.status == RunStatus::Running
        {
            tracing::warn!(
                target: ENGINE,
                run_id = self.run_id,
                owner = self.owner,
                status = row.status.as_str(),
                "late results refused: another engine took the run over and let go of it"
            );
            return Err(Error::RunOwned {
                run_id: self.run_id.into(),
                owner: "none now: another engine took it over and let go of it".into(),
            });
        }
        Ok(())
    }

    pub(super) fn refresh(&mut self) -> Result<()> {
        let row = self.tx.store.run(self.run_id)?;
        let (status, owner) = row.map(|r| (r.status, r.owner)).unzip();
        if status == Some(RunStatus::Cancelled) && self.run.status != RunStatus::Cancelled {
            self.run.status = RunStatus::Cancelled;
            return Ok(());
        }
        // Fencing: another engine took the run over (this one's lease had expired, or it was
        // forced); nothing more may be written for it from here.
        if let Some(other) = owner.flatten().filter(|o| o != self.owner) {
            tracing::warn!(
                target: ENGINE,
                run_id = self.run_id,
                owner = self.owner,
                new_owner = other.as_str(),
                "run lost: another engine took it over (this one's lease expired, or --force)"
            );
            return Err(Error::RunOwned {
                run_id: self.run_id.into(),
                owner: other,
            });
        }
        if self.run.waiting == 0 {
            return Ok(());
        }
        for row in self.tx.store.decided(self.run_id)? {
            let (node_id, iteration) = (row.node_id, row.iteration);
            if self.state_of(&node_id, iteration) != Some(NodeState::WaitingApproval) {
                continue;
            }
            if let Some(rec) = self.run.record_mut(&node_id, iteration) {
                rec.approval = Some(row.status);
            }
            let next = row.node_state;
            self.run.set_state(&node_id, iteration, next);
            let continue_on_fail = self
                .task_named(&node_id)
                .is_some_and(|t| t.continue_on_fail);
            // The decision wrote why on the node (who denied or rejected it, a human task's
            // last invalid answer).
            let stored = row
                .node_error_json
                .as_deref()
                .and_then(|e| serde_json::from_str::<Value>(e).ok());
            let field = |k: &str| error_field(stored.as_ref(), k);
            if next == NodeState::Failed && !continue_on_fail {
                self.run.fail(RunError {
                    code: field("code").unwrap_or_else(|| codes::APPROVAL_DENIED.into()),
                    message: field("message")
                        .unwrap_or_else(|| format!("Approval {node_id} was denied")),
                    node_id: Some(node_id.clone()),
                });
            }
            if next == NodeState::Rejected {
                self.run.fail(RunError {
                    code: codes::APPROVAL_REJECTED.into(),
                    message: field("message")
                        .unwrap_or_else(|| format!("{node_id} was rejected by its reviewer")),
                    node_id: Some(node_id.clone()),
                });
            }
            if row.status == ApprovalStatus::PushedBack {
                self.step.reset.push(OutputRef {
                    table: row.output_table.clone(),
                    node_id: node_id.clone(),
                    iteration,
                });
                let request: Value = serde_json::from_str(&row.request_json).unwrap_or(Value::Null);
                self.reload_reset_scope(&reset_scope_of(&request))?;
            }
            if next == NodeState::Finished {
                self.run.output_changed(&node_id);
                let table = self.table(&row.output_table)?;
                let key = NodeKey::new(self.run_id, &node_id, iteration);
                if let Some(value) = self.tx.store.read_output(&table, &key)? {
                    self.step.outputs.push(OutputRow {
                        table: row.output_table,
                        node_id,
                        iteration,
                        value,
                    });
                }
            }
        }
        // Tasks that waited on a sub-run which has ended since (`runs::wake_caller`).
        for (node_id, iteration, state) in self.tx.store.woken_nodes(self.run_id)? {
            if self.state_of(&node_id, iteration) == Some(NodeState::WaitingApproval) {
                self.run.set_state(&node_id, iteration, state);
            }
        }
        // `<Timer>`s fired since (by this engine or another: `timers.rs`).
        for (node_id, iteration) in self.tx.store.timer_nodes(self.run_id, true)? {
            if self.state_of(&node_id, iteration) == Some(NodeState::WaitingApproval) {
                self.run.set_state(&node_id, iteration, NodeState::Finished);
            }
        }
        Ok(())
    }

    /// Reads a node's state and attempts back from the store.
    fn reload_node(&mut self, node_id: &str, iteration: i64) -> Result<()> {
        let key = NodeKey::new(self.run_id, node_id, iteration);
        if let Some(row) = self.tx.store.node(&key)? {
            self.run.set_state(node_id, iteration, row.state);
            if let Some(rec) = self.run.record_mut(node_id, iteration) {
                rec.attempts = row.attempts;
            }
        }
        Ok(())
    }

    /// A push-back decided while this engine drives the run took its reset scope back to
    /// pending in the store: the in-memory states follow, the walk's caches (which assume
    /// terminal stays terminal) start over, the withdrawn outputs go to the driver, and the
    /// workflow renders again (it may have read them).
    fn reload_reset_scope(&mut self, scope: &[(String, i64)]) -> Result<()> {
        for (node_id, iteration) in scope {
            let Some(before) = self.state_of(node_id, *iteration) else {
                continue;
            };
            self.reload_node(node_id, *iteration)?;
            let after = self.state_of(node_id, *iteration);
            if before != NodeState::Pending && after == Some(NodeState::Pending) {
                if let Some(rec) = self.run.record_mut(node_id, *iteration) {
                    rec.approval = None;
                }
                if let Some(table) = self.task_named(node_id).map(|t| t.output.clone()) {
                    self.step.reset.push(OutputRef {
                        table,
                        node_id: node_id.clone(),
                        iteration: *iteration,
                    });
                }
            }
        }
        if let Some(plan) = &self.run.plan {
            self.run.cache = WalkCache::new(plan);
        }
        self.run.fresh = false;
        Ok(())
    }

    /// Lets go of a run that can only wait for decisions. Returns true when a decision (or a
    /// sub-run's end) arrived meanwhile and the run should advance again instead.
    pub(super) fn park(&mut self) -> Result<bool> {
        let decided = self
            .tx
            .store
            .decided(self.run_id)?
            .into_iter()
            .map(|r| (r.node_id, r.iteration));
        let woken = self
            .tx
            .store
            .woken_nodes(self.run_id)?
            .into_iter()
            .map(|(n, i, _)| (n, i));
        let fired = self.tx.store.timer_nodes(self.run_id, true)?.into_iter();
        let changed = decided
            .chain(woken)
            .chain(fired)
            .filter(|(n, i)| self.state_of(n, *i) == Some(NodeState::WaitingApproval))
            .count();
        if changed > 0 {
            tracing::debug!(
                target: ENGINE,
                run_id = self.run_id,
                decided = changed,
                "not parking: decisions arrived meanwhile"
            );
            self.refresh()?;
            return Ok(true);
        }
        // Waiting only on `<Timer>`s: `waiting-timer` (a timer's fire wakes it). A task that
        // waits on a sub-run which itself waits only on timers counts as one: firing the
        // sub-run's timer moves it, and its end wakes this run (`runs::wake_caller`).
        let active = &*self.run;
        let kind = crate::runs::wait_kind(
            self.tx,
            self.run_id,
            |n, i| {
                active
                    .record(n, i)
                    .is_some_and(|r| r.state == NodeState::WaitingApproval)
            },
            active.waiting,
        )?;
        let (_, effects) = if kind == RunStatus::WaitingTimer {
            run::park_on_timer(self.run_id, self.run.status)?
        } else {
            run::park(self.run_id, self.run.status)?
        };
        self.apply(effects)?;
        // Its parked callers now wait on what it waits on.
        crate::runs::follow_sub_run(self.tx, self.run_id)?;
        Ok(false)
    }
}
