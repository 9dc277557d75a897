//! The results of tasks JS ran (and of the bodies the core runs itself): an output that
//! finishes the node (or waits for its reviewer), a failure that retries or fails it, a
//! sub-run the task waits on, a command's exit.

use std::rc::Rc;

use serde_json::{Value, json};

use super::Drive;
use crate::api::{AgentCall, TaskError, TaskResult};
use crate::command::CommandOutcome;
use crate::error::{Result, codes};
use crate::events::EventKind;
use crate::graph::{TaskBody, TaskNode, deadline_at};
use crate::ident::check_run_id;
use crate::logs::ENGINE;
use crate::machines::{AgentRecord, ApprovalRequest, Effect, NodeKey, NodeState, node};
use crate::output::OutputTable;

impl Drive<'_, '_> {
    /// One task's result.
    pub(super) fn complete(&mut self, result: TaskResult) -> Result<()> {
        let key = NodeKey::new(self.run_id, &result.node_id, result.iteration);
        if let Some(call) = &result.agent {
            // In the driving call's transaction, so it commits with the result it explains.
            self.record_agent_call(&key, result.attempt, result.ok, call)?;
        }
        let Some(task) = self.task_named(&result.node_id).cloned() else {
            // The node was unmounted by a later render; nothing depends on its output now.
            return self.apply(vec![node::close_late(&key, result.attempt, true)?]);
        };
        let Some(rec) = self.run.record(&result.node_id, result.iteration).cloned() else {
            return Ok(());
        };
        if self.run.status.is_terminal()
            || rec.state != NodeState::InProgress
            || rec.attempts != result.attempt
        {
            // A late result for an attempt the run no longer waits for (cancelled, failed).
            return self.apply(vec![node::close_late(&key, result.attempt, false)?]);
        }
        let attempt = rec.attempts;
        if let Some(sub_run) = &result.waiting_on {
            return self.await_sub_run(&task, attempt, sub_run);
        }
        let table = self.table(&task.output)?;
        if let Some(outcome) = &result.command {
            return self.complete_command(&task, attempt, &table, outcome);
        }
        if result.ok {
            self.settle(&task, attempt, &table, result.value)
        } else {
            let error = result.error.unwrap_or_else(|| TaskError {
                message: "the task failed without an error".into(),
                ..TaskError::default()
            });
            self.fail_task(&task, attempt, error, true)
        }
    }

    /// A value for the task's output: it finishes the node if it fits the schema; one that
    /// does not will not fit on a retry either.
    pub(super) fn settle(
        &mut self,
        task: &TaskNode,
        attempt: i64,
        table: &Rc<OutputTable>,
        value: Value,
    ) -> Result<()> {
        match table.validate(&task.id, &value) {
            Ok(()) => self.finish_task(task, attempt, table, value),
            Err(err) => self.fail_task(task, attempt, TaskError::from_error(&err), false),
        }
    }

    /// Keeps an agent attempt's prompt, answer and usage on its attempt row, and reports the
    /// tokens it used (`TokenUsageReported`).
    fn record_agent_call(
        &mut self,
        key: &NodeKey,
        attempt: i64,
        ok: bool,
        call: &AgentCall,
    ) -> Result<()> {
        let meta = json!({
            "agent": call.agent,
            "model": call.model,
            "followUp": call.follow_up,
            "toolCalls": call.tool_calls,
        });
        let mut effects = vec![Effect::SetAttemptAgent {
            node: key.clone(),
            attempt,
            record: Box::new(AgentRecord {
                prompt: call.prompt.clone(),
                text: call.text.clone(),
                usage_json: call.usage.as_ref().map(Value::to_string),
                agent_json: meta.to_string(),
                stdout_path: call.stdout_path.clone(),
                stderr_path: call.stderr_path.clone(),
            }),
        }];
        if let Some(usage) = call
            .usage
            .as_ref()
            .and_then(Value::as_object)
            .filter(|u| !u.is_empty())
        {
            let mut payload = json!({
                "attempt": attempt,
                "agent": call.agent,
                "model": call.model,
            });
            if let Some(p) = payload.as_object_mut() {
                p.extend(usage.clone());
            }
            effects.push(key.emit(EventKind::TokenUsageReported, payload));
        }
        self.apply(effects)?;
        if tracing::enabled!(target: ENGINE, tracing::Level::DEBUG) {
            let tokens = |name: &str| {
                call.usage
                    .as_ref()
                    .and_then(|u| u.get(name))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            tracing::debug!(
                target: ENGINE,
                run_id = self.run_id,
                node_id = key.node.as_str(),
                iteration = key.iteration,
                attempt,
                ok,
                agent = call.agent.as_deref().unwrap_or(""),
                model = call.model.as_deref().unwrap_or(""),
                follow_up = call.follow_up.is_some(),
                tool_calls = call.tool_calls.unwrap_or(0),
                input_tokens = tokens("inputTokens"),
                output_tokens = tokens("outputTokens"),
                answer_bytes = call.text.as_deref().map_or(0, str::len),
                "agent attempt recorded"
            );
        }
        Ok(())
    }

    /// A command's exit becomes the task's output (`{exitCode, stdout, stderr}`, or stdout
    /// parsed as JSON) or its failure.
    fn complete_command(
        &mut self,
        task: &TaskNode,
        attempt: i64,
        table: &Rc<OutputTable>,
        outcome: &CommandOutcome,
    ) -> Result<()> {
        let key = self.key(task);
        self.apply(vec![Effect::SetAttemptExit {
            node: key.clone(),
            attempt,
            exit_code: outcome.exit_code,
        }])?;
        if !outcome.succeeded() {
            return self.fail_task(task, attempt, command_error(task, outcome), true);
        }
        let parse_json =
            matches!(&task.body, TaskBody::Command(b) if b.parse.as_deref() == Some("json"));
        let value = if parse_json {
            let stdout = if outcome.stdout_truncated {
                self.stdout_of(&key, attempt)?
            } else {
                outcome.stdout.clone()
            };
            match serde_json::from_str::<Value>(stdout.trim()) {
                Ok(v) => v,
                Err(e) => {
                    let error = TaskError::coded(
                        codes::INVALID_OUTPUT,
                        format!("stdout is not JSON ({e})"),
                    );
                    return self.fail_task(task, attempt, error, false);
                }
            }
        } else {
            json!({ "exitCode": outcome.exit_code.unwrap_or(0), "stdout": outcome.stdout, "stderr": outcome.stderr })
        };
        self.settle(task, attempt, table, value)
    }

    /// The whole stdout of an attempt, from its log (at most 16 MiB).
    fn stdout_of(&self, key: &NodeKey, attempt: i64) -> Result<String> {
        let Some(path) = self.tx.store.attempt_stdout(key, attempt)? else {
            return Ok(String::new());
        };
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(&path)?
            .take(16 * 1024 * 1024)
            .read_to_string(&mut text)?;
        Ok(text)
    }

    fn finish_task(
        &mut self,
        task: &TaskNode,
        attempt: i64,
        table: &Rc<OutputTable>,
        value: Value,
    ) -> Result<()> {
        if task.review.is_some() {
            return self.await_review(task, attempt, table, value);
        }
        let (_, effects) = node::finish(
            &self.key(task),
            NodeState::InProgress,
            attempt,
            table,
            value,
        )?;
        self.apply(effects)
    }

    /// A reviewed step ran: its output is written (so the reviewer sees it) and the node waits
    /// for a decision. Dependents stay blocked, and no render is asked for, until approval.
    fn await_review(
        &mut self,
        task: &TaskNode,
        attempt: i64,
        table: &Rc<OutputTable>,
        value: Value,
    ) -> Result<()> {
        let Some(review) = &task.review else {
            return Ok(());
        };
        let key = self.key(task);
        let reset_scope = self
            .run
            .plan
            .as_ref()
            .and_then(|p| p.task_index.get(&task.id).map(|&i| p.reset_scope(i)))
            .unwrap_or_else(|| vec![(task.id.clone(), task.iteration)]);
        let stdout_path = self.tx.store.attempt_stdout(&key, attempt)?;
        let title = task
            .label
            .clone()
            .or_else(|| review.prompt.clone())
            .unwrap_or_else(|| format!("Review {}", task.id));
        let deadline = deadline_at(self.tx.now, review.timeout_ms, review.deadline_ms);
        let on_timeout = review.on_timeout.unwrap_or_default();
        let mut request = json!({
            "title": title,
            "summary": review.prompt,
            "prompt": review.prompt,
            "input": review.input,
            "required": review.required,
            "allowedUsers": review.allowed_users,
            "allowedScopes": review.allowed_scopes,
            "label": task.label,
            "meta": task.meta,
            "attempt": attempt,
            "stdoutPath": stdout_path,
            // The stdout the reviewer may read, pinned for the view digest (audit.rs).
            "stdoutSha256": stdout_path.as_deref().and_then(crate::audit::file_sha256),
            // What the reviewer decides on, shown by the inbox next to the prompt.
            "output": value,
            "rewindTo": review.rewind_to,
            // What a push-back sends back to pending (the decision has no plan to ask).
            "resetScope": reset_scope,
        });
        // A step sent back comes here again: its row moves to the next round (the push-back
        // counted it).
        let prior = self.tx.store.approval(&key)?;
        let round = prior.as_ref().map_or(1, |row| row.round);
        if let Some(due) = deadline {
            request["deadlineAtMs"] = json!(due);
            request["deadlineAt"] = json!(crate::time::iso8601(due));
            request["onTimeout"] = json!(on_timeout.as_str());
        }
        let request = ApprovalRequest {
            kind: "review",
            mode: "review",
            on_deny: "fail",
            output_table: task.output.clone(),
            request_json: serde_json::to_string(&request)?,
            round,
        };
        let digest = crate::audit::view_digest(
            &key.run,
            &key.node,
            key.iteration,
            "review",
            round,
            self.tx.now,
            &request.request_json,
        );
        let mut shown = json!({ "title": title, "summary": review.prompt, "kind": "review", "round": round,
                                "digest": digest });
        if let Some(due) = deadline {
            shown["deadlineAtMs"] = json!(due);
            shown["onTimeout"] = json!(on_timeout.as_str());
        }
        let (_, mut effects) = node::await_review(
            &key,
            NodeState::InProgress,
            attempt,
            (table, value),
            request,
            prior.map(|row| row.status),
            shown,
        )?;
        effects.extend(crate::timers::request_timers(
            &key,
            round,
            self.tx.now,
            deadline.map(|due| (due, on_timeout)),
            review.remind.as_ref(),
            &review.escalate,
        ));
        self.apply(effects)
    }

    /// The task's sub-run waits for a decision of its own: the task waits with it, holding
    /// no thread, until the sub-run ends (`runs::wake_caller`).
    fn await_sub_run(&mut self, task: &TaskNode, attempt: i64, sub_run: &str) -> Result<()> {
        check_run_id(sub_run)?;
        let Some(sub) = self.tx.store.run(sub_run)? else {
            let error = TaskError::coded(
                codes::SUBRUN_FAILED,
                format!("sub-run {sub_run} does not exist"),
            );
            return self.fail_task(task, attempt, error, false);
        };
        // It ended between its driver's return and this call (decided elsewhere): the task
        // runs again at once and reads its result.
        let (next, effects) = node::await_sub_run(
            &self.key(task),
            NodeState::InProgress,
            attempt,
            sub_run,
            sub.status.is_terminal(),
        )?;
        self.apply(effects)?;
        tracing::debug!(
            target: ENGINE,
            run_id = self.run_id,
            node_id = task.id.as_str(),
            iteration = task.iteration,
            sub_run,
            sub_run_status = sub.status.as_str(),
            waits = next != NodeState::Pending,
            "task waits on its sub-run"
        );
        Ok(())
    }

    pub(super) fn fail_task(
        &mut self,
        task: &TaskNode,
        attempt: i64,
        error: TaskError,
        retryable: bool,
    ) -> Result<()> {
        let key = self.key(task);
        let failures_before = self.tx.store.failed_attempts(&key)?;
        let retry = retryable && failures_before < i64::from(task.retries);
        tracing::debug!(
            target: ENGINE,
            run_id = self.run_id,
            node_id = task.id.as_str(),
            iteration = task.iteration,
            attempt,
            retries = task.retries,
            failures_before,
            retry,
            error = error.message.as_str(),
            "task failed"
        );
        let (_, effects) = node::fail(
            &key,
            NodeState::InProgress,
            attempt,
            &error,
            retry,
            task.continue_on_fail,
        )?;
        self.apply(effects)
    }
}

/// Why a command that did not succeed failed: not started, timed out, or its exit (with the
/// last line it wrote).
fn command_error(task: &TaskNode, outcome: &CommandOutcome) -> TaskError {
    let last_line = |s: &str| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.chars().take(500).collect::<String>())
    };
    if let Some(e) = &outcome.spawn_error {
        return TaskError::coded(codes::COMMAND_NOT_STARTED, e.clone());
    }
    if outcome.timed_out {
        return TaskError::coded(
            codes::TASK_TIMEOUT,
            format!("timed out after {} ms", task.timeout_ms.unwrap_or(0)),
        );
    }
    let how = match (outcome.exit_code, outcome.signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended abnormally".into(),
    };
    let detail = last_line(&outcome.stderr)
        .or_else(|| last_line(&outcome.stdout))
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    TaskError::coded(codes::COMMAND_FAILED, format!("the command {how}{detail}"))
}
