//! What a walk of the plan asks for, carried out: a static body written, a compute task
//! started and handed to JS, an approval requested (or decided at once by `autoApprove`), a
//! node skipped, a decided `<Approval>` finished, a loop moved on.

use serde_json::{Value, json};

use super::Drive;
use crate::api::{RunError, TaskToRun};
use crate::decision::{AUTO_DECIDER, AUTO_NOTE, decision_value};
use crate::error::{Error, Result, codes};
use crate::events::EventKind;
use crate::graph::{ApprovalMode, ApprovalSpec, OnMaxReached, TaskBody, TaskNode, deadline_at};
use crate::logs::DECISION;
use crate::machines::node;
use crate::machines::{ApprovalRequest, ApprovalStatus, DecisionRow, Effect, NodeState};
use crate::plan::{Action, EntryKind};
use crate::time::iso8601;
use crate::timers::{NewTimer, TimerKind};

impl Drive<'_, '_> {
    pub(super) fn act(&mut self, action: Action) -> Result<()> {
        match action {
            Action::RunStatic(idx) => {
                let task = self.plan_task(idx)?;
                let TaskBody::Static { value } = &task.body else {
                    return Ok(());
                };
                let table = self.table(&task.output)?;
                let attempt = self.start_task(&task)?;
                self.settle(&task, attempt, &table, value.clone())
            }
            Action::Start(idx) => {
                let task = self.plan_task(idx)?;
                let attempt = self.start_task(&task)?;
                if let TaskBody::Timer {
                    duration_ms,
                    until_ms,
                } = &task.body
                {
                    return self.start_timer(&task, attempt, *duration_ms, *until_ms);
                }
                let (inputs, push_back) = self.inputs_for(idx, &task, attempt)?;
                let command = match &task.body {
                    TaskBody::Command(body) => {
                        Some(self.command_spec(&task, attempt, body, &inputs, push_back.as_ref()))
                    }
                    _ => None,
                };
                if let Some(spec) = &command {
                    self.apply(vec![Effect::SetAttemptLogs {
                        node: self.key(&task),
                        attempt,
                        stdout_path: spec.stdout_path.clone(),
                        stderr_path: spec.stderr_path.clone(),
                    }])?;
                }
                let carries = !inputs.is_empty() || push_back.is_some();
                self.step.tasks.push(TaskToRun {
                    node_id: task.id.clone(),
                    iteration: task.iteration,
                    attempt,
                    output: task.output.clone(),
                    timeout_ms: task.timeout_ms,
                    command,
                    inputs: carries.then_some(inputs),
                    push_back,
                });
                Ok(())
            }
            Action::RequestApproval(idx) => {
                let task = self.plan_task(idx)?;
                self.request_approval(&task)
            }
            Action::Skip(idx, reason) => {
                let task = self.plan_task(idx)?;
                let (_, effects) = node::skip(&self.key(&task), NodeState::Pending, reason)?;
                self.apply(effects)
            }
            Action::FinishFromDecision(idx) => {
                let task = self.plan_task(idx)?;
                self.finish_from_decision(&task)
            }
            Action::LoopEnd(idx) => self.end_loop_iteration(idx),
        }
    }

    /// pending → in-progress, with a new attempt row. Returns the attempt number.
    fn start_task(&mut self, task: &TaskNode) -> Result<i64> {
        let rec = self
            .run
            .record(&task.id, task.iteration)
            .ok_or_else(|| Error::NodeNotFound {
                run_id: self.run_id.into(),
                node_id: task.id.clone(),
                iteration: task.iteration,
            })?;
        let (from, attempt) = (rec.state, rec.attempts + 1);
        let (_, effects) = node::start(&self.key(task), from, attempt, self.owner)?;
        self.apply(effects)?;
        Ok(attempt)
    }

    fn request_approval(&mut self, task: &TaskNode) -> Result<()> {
        let Some(spec) = &task.approval else {
            return Ok(());
        };
        if self.auto_approve(task, spec)? {
            return Ok(());
        }
        let key = self.key(task);
        if let Some(row) = self.tx.store.approval(&key)? {
            // A row exists already (this process learned of it late): the store decides.
            let node = self.tx.store.node(&key)?;
            if let Some(rec) = self.run.record_mut(&task.id, task.iteration) {
                rec.approval = Some(row.status);
            }
            if let Some(node) = node {
                self.run.set_state(&task.id, task.iteration, node.state);
                if let Some(rec) = self.run.record_mut(&task.id, task.iteration) {
                    rec.attempts = node.attempts;
                }
            }
            return Ok(());
        }
        let mut request = request_json(task, spec);
        if spec.mode == ApprovalMode::Human {
            // What the person fills in: the inbox renders its fields.
            request["schema"] = self.table(&task.output)?.schema.clone();
        }
        let deadline = deadline_at(self.tx.now, spec.timeout_ms, spec.deadline_ms);
        let on_timeout = spec.on_timeout.unwrap_or_default();
        if let Some(due) = deadline {
            // Shown by listings and the inbox: when the gate decides itself, and how.
            request["deadlineAtMs"] = json!(due);
            request["deadlineAt"] = json!(iso8601(due));
            request["onTimeout"] = json!(on_timeout.as_str());
        }
        let request = gate_request(task, spec, &request)?;
        let digest = crate::audit::view_digest(
            &key.run,
            &key.node,
            key.iteration,
            request.kind,
            request.round,
            self.tx.now,
            &request.request_json,
        );
        let mut shown = json!({ "title": spec.request.title, "summary": spec.request.summary,
                                "digest": digest });
        if let Some(due) = deadline {
            shown["deadlineAtMs"] = json!(due);
            shown["onTimeout"] = json!(on_timeout.as_str());
        }
        let (_, mut effects) = node::request_approval(&key, NodeState::Pending, request, shown)?;
        effects.extend(crate::timers::request_timers(
            &key,
            1,
            self.tx.now,
            deadline.map(|due| (due, on_timeout)),
            spec.remind.as_ref(),
            &spec.escalate,
        ));
        self.apply(effects)
    }

    /// `<Timer>`: its row is scheduled (or found, after a restart: the due time stays), and
    /// the node waits for it with no thread; a due time already past finishes it at once.
    fn start_timer(
        &mut self,
        task: &TaskNode,
        attempt: i64,
        duration_ms: Option<u64>,
        until_ms: Option<i64>,
    ) -> Result<()> {
        let key = self.key(task);
        let now = self.tx.now;
        let due = until_ms
            .or_else(|| deadline_at(now, duration_ms, None))
            .unwrap_or(now);
        let timer = NewTimer {
            key: key.clone(),
            kind: TimerKind::Timer,
            round: attempt,
            due_at_ms: due,
            spec_json: Some(json!({ "durationMs": duration_ms, "untilMs": until_ms }).to_string()),
        };
        let mut effects = vec![Effect::ScheduleTimer(Box::new(timer))];
        let (_, waiting) = node::await_timer(&key, NodeState::InProgress, attempt, due)?;
        effects.extend(waiting);
        self.apply(effects)
    }

    /// `<Approval autoApprove>`: decides the gate the moment it is reached, without a person,
    /// when its conditions hold (as Smithers' tests assert): `revertOn` did not match,
    /// `condition` (if any) did, and the last `after` decisions on this node in earlier runs
    /// of the workflow were approvals by a person. The decision is `smithers:auto`'s; with
    /// `audit` (the default) it is kept in the approvals table like any other. Returns
    /// whether it did.
    fn auto_approve(&mut self, task: &TaskNode, spec: &ApprovalSpec) -> Result<bool> {
        let Some(auto) = &spec.auto_approve else {
            return Ok(false);
        };
        if auto.revert_on_met == Some(true) || auto.condition_met == Some(false) {
            return Ok(false);
        }
        let after = auto.after.unwrap_or(0);
        if after > 0 {
            let statuses =
                self.tx
                    .store
                    .decisions_elsewhere(self.run_id, &task.id, AUTO_DECIDER, after)?;
            let streak = statuses.len() >= after as usize
                && statuses.iter().all(|s| *s == ApprovalStatus::Approved);
            if !streak {
                return Ok(false);
            }
        }
        let table = self.table(&task.output)?;
        let request = request_json(task, spec);
        let decided_at = iso8601(self.tx.now);
        let keys: Vec<&str> = spec.options.iter().map(|o| o.key.as_str()).collect();
        let payload = match spec.mode {
            ApprovalMode::Select => keys
                .first()
                .map(|k| json!({ "selected": k, "notes": "Automatically selected" })),
            ApprovalMode::Rank => Some(json!({ "ranked": keys, "notes": "Automatically ranked" })),
            _ => None,
        };
        let value = decision_value(
            spec.mode,
            &request,
            true,
            Some(AUTO_NOTE),
            Some(AUTO_DECIDER),
            &decided_at,
            payload.as_ref(),
        )?;
        // An output schema the decision does not fit: a person decides (and meets the error).
        if table.validate(&task.id, &value).is_err() {
            return Ok(false);
        }
        let key = self.key(task);
        let mut effects = Vec::new();
        if auto.audit {
            crate::machines::approval::next(None, crate::machines::ApprovalEvent::AutoApprove)?;
            effects.push(Effect::RecordAutoApproval {
                node: key.clone(),
                request: Box::new(gate_request(task, spec, &request)?),
                decision: Box::new(DecisionRow {
                    status: ApprovalStatus::Approved,
                    decided_by: Some(AUTO_DECIDER.into()),
                    note: Some(AUTO_NOTE.into()),
                    decision_json: payload.as_ref().map(Value::to_string),
                    inputs_json: None,
                    reason: None,
                    pushback_json: None,
                }),
            });
        }
        // Every decision is in the decision log, smithers:auto's too (audit or not).
        effects.push(Effect::AppendAudit(Box::new(crate::audit::NewAuditEntry {
            kind: crate::audit::kinds::DECISION,
            run_id: key.run.clone(),
            node_id: Some(key.node.clone()),
            iteration: Some(key.iteration),
            actor: Some(AUTO_DECIDER.into()),
            at_ms: self.tx.now,
            data: json!({ "status": "approved", "kind": "gate", "round": 1, "note": AUTO_NOTE,
                          "decision": payload, "auto": { "after": auto.after, "audit": auto.audit } }),
        })));
        effects.push(key.emit(
            EventKind::ApprovalAutoApproved,
            json!({ "decidedBy": AUTO_DECIDER, "audit": auto.audit, "after": auto.after }),
        ));
        let (_, finished) = node::finish_decided(&key, NodeState::Pending, &table, value)?;
        effects.extend(finished);
        self.apply(effects)?;
        tracing::info!(
            target: DECISION,
            run_id = self.run_id,
            node_id = task.id.as_str(),
            iteration = task.iteration,
            after,
            audit = auto.audit,
            "gate auto-approved"
        );
        Ok(true)
    }

    /// Writes the output of an `<Approval>` whose decision exists but whose node did not get
    /// it (a decision recorded by an older engine, or a crash between two writes).
    fn finish_from_decision(&mut self, task: &TaskNode) -> Result<()> {
        let key = self.key(task);
        let Some(row) = self.tx.store.approval(&key)? else {
            return Ok(());
        };
        if row.status != ApprovalStatus::Approved {
            return Ok(());
        }
        let Some(spec) = &task.approval else {
            return Ok(());
        };
        let table = self.table(&task.output)?;
        let request: Value = serde_json::from_str(&row.request_json).unwrap_or(Value::Null);
        let payload: Option<Value> = row
            .decision_json
            .and_then(|d| serde_json::from_str(&d).ok());
        let decided_at = iso8601(row.decided_at_ms.unwrap_or(self.tx.now));
        let value = match (spec.mode, payload) {
            (ApprovalMode::Human, Some(answer)) => answer,
            (mode, payload) => decision_value(
                mode,
                &request,
                true,
                row.note.as_deref(),
                row.decided_by.as_deref(),
                &decided_at,
                payload.as_ref(),
            )?,
        };
        let from = self
            .state_of(&task.id, task.iteration)
            .unwrap_or(NodeState::Pending);
        let (_, effects) = node::finish_decided(&key, from, &table, value)?;
        self.apply(effects)
    }

    /// Every child of a loop is terminal for this iteration: the loop moves to its next one,
    /// or is done (its `until` held, or it reached `maxIterations`, which may fail the run).
    fn end_loop_iteration(&mut self, idx: usize) -> Result<()> {
        let Some(EntryKind::Loop {
            id,
            until,
            max_iterations,
            on_max_reached,
        }) = self.run.plan.as_ref().map(|p| &p.nodes[idx].kind)
        else {
            return Ok(());
        };
        let (id, until, max, on_max_reached) =
            (id.clone(), *until, *max_iterations, *on_max_reached);
        let current = self.run.loops.get(&id).map(|l| l.iteration).unwrap_or(0);
        let last = until || current + 1 >= i64::from(max);
        let fails = !until && last && on_max_reached == OnMaxReached::Fail;
        let (iteration, kind) = if last {
            (current, EventKind::LoopFinished)
        } else {
            (current + 1, EventKind::LoopIteration)
        };
        let mut effects = vec![
            Effect::SetLoop {
                run: self.run_id.into(),
                loop_id: id.clone(),
                iteration,
                done: last,
            },
            Effect::Emit {
                run: self.run_id.into(),
                kind,
                payload: json!({ "loopId": id, "iteration": iteration }),
            },
        ];
        if fails {
            effects.push(Effect::FailRun(RunError {
                code: codes::LOOP_MAX_REACHED.into(),
                message: format!(
                    "Loop {id} reached maxIterations ({max}) without its until condition"
                ),
                node_id: Some(id.clone()),
            }));
        }
        self.apply(effects)
    }
}

/// A gate's approval row, asking `request`.
fn gate_request(task: &TaskNode, spec: &ApprovalSpec, request: &Value) -> Result<ApprovalRequest> {
    Ok(ApprovalRequest {
        kind: "gate",
        mode: spec.mode.as_str(),
        on_deny: spec.on_deny().as_str(),
        output_table: task.output.clone(),
        request_json: serde_json::to_string(request)?,
        round: 1,
    })
}

/// What a gate asks, as stored on its approval row (`request_json`) and shown by listings.
pub(crate) fn request_json(task: &TaskNode, spec: &ApprovalSpec) -> Value {
    let mut request = json!({
        "title": spec.request.title,
        "summary": spec.request.summary,
        "metadata": spec.request.metadata,
        "label": task.label,
        "options": spec.options,
        "allowedUsers": spec.allowed_users,
        "allowedScopes": spec.allowed_scopes,
        "input": spec.input,
        "required": spec.required,
        "meta": task.meta,
    });
    if spec.wait_async {
        request["async"] = json!(true);
    }
    if let Some(q) = &spec.quorum {
        request["quorum"] = json!(q);
    }
    if spec.mode == ApprovalMode::Human {
        request["prompt"] = json!(spec.request.summary);
        request["maxAttempts"] = json!(spec.max_attempts());
    }
    request
}
