//! The applier: the only code that carries out the effects of moves. Each effect is written
//! through the store (inside the caller's transaction), events are appended, and, when the
//! effect concerns the run this call drives, its in-memory copy and the step being built
//! follow at once, so the store and memory cannot drift.

use std::collections::HashMap;
use std::rc::Rc;

use crate::api::{OutputRow, Step};
use crate::error::Result;
use crate::events::Event;
use crate::machines::{ApprovalStatus, Effect, NodeKey, RunChange};
use crate::memory::{ActiveRun, LoopRecord};
use crate::output::OutputTable;
use crate::schemas::SchemaCache;
use crate::store::Store;

/// One write transaction of the engine: the store (inside the transaction), the schema cache,
/// the events written so far and the time of the call.
pub(crate) struct Tx<'e> {
    pub store: &'e dyn Store,
    pub schemas: &'e mut SchemaCache,
    pub events: Vec<Event>,
    pub now: i64,
}

impl Tx<'_> {
    /// Carries out effects that concern no run this call drives.
    pub(crate) fn apply(&mut self, effects: Vec<Effect>) -> Result<()> {
        self.applier(None).apply(effects)
    }

    pub(crate) fn applier<'a>(&'a mut self, driven: Option<Driven<'a>>) -> Applier<'a> {
        Applier {
            store: self.store,
            events: &mut self.events,
            now: self.now,
            driven,
        }
    }

    /// The table of an output key as a run sees it (`bound`: its bindings, when driven here).
    pub(crate) fn table(
        &mut self,
        run_id: &str,
        bound: Option<&HashMap<String, i64>>,
        key: &str,
    ) -> Result<Rc<OutputTable>> {
        self.schemas.run_table(self.store, run_id, bound, key)
    }
}

/// The run a driving call drives, and the step it builds.
pub(crate) struct Driven<'a> {
    pub run_id: &'a str,
    pub run: &'a mut ActiveRun,
    pub step: &'a mut Step,
}

pub(crate) struct Applier<'a> {
    pub store: &'a dyn Store,
    /// The events of the transaction; subscribers get them once it commits.
    pub events: &'a mut Vec<Event>,
    pub now: i64,
    pub driven: Option<Driven<'a>>,
}

impl<'a> Applier<'a> {
    pub(crate) fn apply(&mut self, effects: Vec<Effect>) -> Result<()> {
        for effect in effects {
            self.one(effect)?;
        }
        Ok(())
    }

    /// The driven run, when `run` is it.
    fn driven(&mut self, run: &str) -> Option<&mut Driven<'a>> {
        self.driven.as_mut().filter(|d| d.run_id == run)
    }

    fn node_memory(&mut self, node: &NodeKey) -> Option<&mut ActiveRun> {
        self.driven(&node.run).map(|d| &mut *d.run)
    }

    fn one(&mut self, effect: Effect) -> Result<()> {
        let store = self.store;
        let now = self.now;
        match effect {
            Effect::CreateRun(insert) => store.insert_run(&insert, now)?,
            Effect::ScheduleTimer(timer) => {
                let due_at_ms = store.schedule_timer(&timer, now)?;
                tracing::debug!(
                    target: crate::logs::TIMER,
                    run_id = timer.key.run.as_str(),
                    node_id = timer.key.node.as_str(),
                    iteration = timer.key.iteration,
                    kind = timer.kind.as_str(),
                    round = timer.round,
                    due_at_ms,
                    due_in_ms = due_at_ms - now,
                    "timer scheduled"
                );
                let mut payload = timer.key.payload();
                payload.insert("kind".into(), timer.kind.as_str().into());
                payload.insert("round".into(), timer.round.into());
                payload.insert("dueAtMs".into(), due_at_ms.into());
                payload.insert("dueAt".into(), crate::time::iso8601(due_at_ms).into());
                self.one(Effect::Emit {
                    run: timer.key.run.clone(),
                    kind: crate::events::EventKind::TimerScheduled,
                    payload: serde_json::Value::Object(payload),
                })?;
            }
            Effect::SetRunWorkflow { run, name, path } => {
                store.set_run_workflow(&run, &name, path.as_deref())?;
                if let Some(d) = self.driven(&run) {
                    d.run.workflow_name = name;
                }
            }
            Effect::SetRun {
                run,
                status,
                change,
            } => {
                store.set_run(&run, status, &change, now)?;
                if let Some(d) = self.driven(&run) {
                    d.run.status = status;
                    if let RunChange::End { error: Some(error) } = change {
                        d.run.failure = Some(error);
                    }
                }
            }
            Effect::MarkUnresumable { run, error } => store.mark_unresumable(&run, &error, now)?,
            Effect::SetNode {
                node,
                state,
                change,
            } => {
                store.set_node(&node, state, &change, now)?;
                if let Some(run) = self.node_memory(&node) {
                    run.set_state(&node.node, node.iteration, state);
                    if let (Some(attempts), Some(rec)) =
                        (change.attempts, run.record_mut(&node.node, node.iteration))
                    {
                        rec.attempts = rec.attempts.max(attempts);
                    }
                }
            }
            Effect::CancelOpenNodes { run } => store.cancel_open_nodes(&run, now)?,
            Effect::WriteOutput {
                node,
                table,
                value,
                publish,
            } => {
                table.validate(&node.node, &value)?;
                store.write_output(&table, &node, &value)?;
                if let Some(d) = self.driven(&node.run).filter(|_| publish) {
                    d.run.output_changed(&node.node);
                    d.step.outputs.push(OutputRow {
                        table: table.key.clone(),
                        node_id: node.node,
                        iteration: node.iteration,
                        value,
                    });
                }
            }
            Effect::DeleteOutput { node, table } => store.delete_output(&table, &node)?,
            Effect::OpenAttempt {
                node,
                attempt,
                owner,
            } => store.open_attempt(&node, attempt, &owner, now)?,
            Effect::CloseAttempt {
                node,
                attempt,
                state,
                error,
                only_running,
            } => store.close_attempt(&node, attempt, state, error.as_deref(), only_running, now)?,
            Effect::RecordRefusedAnswer {
                node,
                attempt,
                error,
            } => store.record_refused_answer(&node, attempt, &error, now)?,
            Effect::SetAttemptLogs {
                node,
                attempt,
                stdout_path,
                stderr_path,
            } => store.set_attempt_logs(&node, attempt, &stdout_path, &stderr_path)?,
            Effect::SetAttemptExit {
                node,
                attempt,
                exit_code,
            } => store.set_attempt_exit(&node, attempt, exit_code)?,
            Effect::SetAttemptAgent {
                node,
                attempt,
                record,
            } => store.set_attempt_agent(&node, attempt, &record)?,
            Effect::CancelAttempts { run } => store.cancel_attempts(&run, now)?,
            Effect::RequestApproval { node, request } => {
                store.request_approval(&node, &request, ApprovalStatus::Requested, now)?;
                self.set_approval(&node, Some(ApprovalStatus::Requested));
            }
            Effect::Decide { node, decision } => {
                store.decide(&node, &decision, now)?;
                self.set_approval(&node, Some(decision.status));
            }
            Effect::RecordAutoApproval {
                node,
                request,
                decision,
            } => {
                store.request_approval(&node, &request, ApprovalStatus::Approved, now)?;
                store.decide(&node, &decision, now)?;
                self.set_approval(&node, Some(ApprovalStatus::Approved));
            }
            Effect::WithdrawApproval {
                node,
                decided_by,
                note,
            } => {
                store.withdraw_approval(&node, decided_by.as_deref(), note.as_deref(), now)?;
                self.set_approval(&node, Some(ApprovalStatus::Cancelled));
            }
            Effect::WithdrawRequests { run } => store.withdraw_requests(&run)?,
            Effect::ForgetGate { node } => {
                store.forget_gate(&node)?;
                self.set_approval(&node, None);
            }
            Effect::ReopenReview { node } => {
                store.reopen_review(&node)?;
                self.set_approval(&node, None);
            }
            Effect::AppendHistory { node, row } => store.append_history(&node, &row, now)?,
            Effect::SetLoop {
                run,
                loop_id,
                iteration,
                done,
            } => {
                store.set_loop(&run, &loop_id, iteration, done)?;
                if let Some(d) = self.driven(&run) {
                    let rec = d.run.loops.entry(loop_id.clone()).or_insert(LoopRecord {
                        iteration: 0,
                        done: false,
                    });
                    if rec.iteration != iteration {
                        // The loop's children at the next iteration exist only after a render.
                        d.step.loops.insert(loop_id, iteration);
                        d.run.fresh = false;
                    }
                    rec.iteration = iteration;
                    rec.done = done;
                }
            }
            Effect::Emit { run, kind, payload } => {
                let payload = match payload {
                    serde_json::Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                };
                let json = serde_json::to_string(&payload)?;
                let (seq, feed_id) = store.insert_event(&run, kind, now, &json)?;
                self.events.push(Event {
                    run_id: run,
                    seq,
                    kind,
                    timestamp_ms: now,
                    feed_id: Some(feed_id),
                    payload,
                });
            }
            Effect::AppendAudit(entry) => {
                let sealed = crate::audit::seal(store.audit_tail()?, *entry);
                store.insert_audit(&sealed)?;
            }
            Effect::RecordVote { node, vote } => {
                store.insert_vote(&node, &vote)?;
            }
            Effect::FailRun(error) => {
                if let Some(d) = self.driven.as_mut() {
                    d.run.fail(error);
                }
            }
        }
        Ok(())
    }

    fn set_approval(&mut self, node: &NodeKey, status: Option<ApprovalStatus>) {
        if let Some(rec) = self
            .node_memory(node)
            .and_then(|run| run.record_mut(&node.node, node.iteration))
        {
            rec.approval = status;
        }
    }
}
