//! What a started task gets besides its node: the approver inputs and the push-back that
//! reach it, and, for a command task, the process to run (its environment above all).

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use serde_json::{Value, json};

use super::Drive;
use crate::command::CommandSpec;
use crate::decision::reset_scope_of;
use crate::engine::RUN_LOG_FILE;
use crate::error::Result;
use crate::graph::{CommandBody, TaskNode};
use crate::machines::{ApprovalStatus, NodeKey};

/// `DAG_PARAMS_JSON` is set when the run's input is at most this big (a variable over
/// 128 KiB cannot be passed to a process at all); the input is in `smithers inspect`.
const MAX_PARAMS_ENV: usize = 64 * 1024;

impl Drive<'_, '_> {
    /// The tasks downstream of a gate, computed once per plan.
    fn downstream_of(&mut self, gate: usize) -> Rc<HashSet<usize>> {
        if let Some(set) = self.run.downstream.get(&gate) {
            return set.clone();
        }
        let set = Rc::new(
            self.run
                .plan
                .as_ref()
                .map(|p| p.downstream(gate))
                .unwrap_or_default(),
        );
        self.run.downstream.insert(gate, set.clone());
        set
    }

    /// The approver inputs that reach a task: those of every decided gate upstream of it (a
    /// push-back's, then the approval's), and, for a task in a push-back's reset scope (the
    /// step sent back, its `rewindTo` target and what depends on it), that push-back: its
    /// inputs and `{iteration, by, at, inputs, history, previousStdoutFile}`.
    pub(super) fn inputs_for(
        &mut self,
        idx: usize,
        task: &TaskNode,
        attempt: i64,
    ) -> Result<(BTreeMap<String, String>, Option<Value>)> {
        let mut inputs = BTreeMap::new();
        let mut push_back = None;
        if !self.run.plan.as_ref().is_some_and(|p| p.carries_inputs) {
            return Ok((inputs, push_back));
        }
        let parse = |json: &Option<String>| -> BTreeMap<String, String> {
            json.as_deref()
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
                .map(|v| v.get("inputs").cloned().unwrap_or(v))
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default()
        };
        for row in self.tx.store.input_rows(self.run_id)? {
            let (gate_idx, gate_in_loop) = {
                let Some(plan) = self.run.plan.as_ref() else {
                    break;
                };
                let Some(&gate_idx) = plan.task_index.get(&row.node_id) else {
                    continue;
                };
                if plan
                    .task(gate_idx)
                    .is_none_or(|g| g.iteration != row.iteration)
                {
                    continue;
                }
                (gate_idx, plan.nodes[gate_idx].loop_id.is_some())
            };
            let own = row.node_id == task.id;
            if !own && gate_in_loop && row.iteration != task.iteration {
                continue;
            }
            let downstream = !own && self.downstream_of(gate_idx).contains(&idx);
            if let Some(json) = &row.pushback_json {
                let request: Value = serde_json::from_str(&row.request_json).unwrap_or(Value::Null);
                let scope = reset_scope_of(&request);
                let in_scope = own
                    || if scope.is_empty() {
                        downstream
                    } else {
                        scope
                            .iter()
                            .any(|(id, it)| id == &task.id && *it == task.iteration)
                    };
                if in_scope {
                    inputs.extend(parse(&row.pushback_json));
                    let gate_key = NodeKey::new(self.run_id, &row.node_id, row.iteration);
                    let history = self.tx.store.review_history(&gate_key)?;
                    let mut value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                    if let Some(obj) = value.as_object_mut() {
                        obj.insert("iteration".into(), json!(row.round));
                        if !own {
                            obj.insert("gate".into(), json!(row.node_id));
                        }
                        let previous = if own {
                            history
                                .iter()
                                .rev()
                                .find_map(|h| h.get("stdoutPath").cloned())
                                .unwrap_or(Value::Null)
                        } else {
                            json!(self.tx.store.previous_stdout(&self.key(task), attempt)?)
                        };
                        obj.insert("previousStdoutFile".into(), previous);
                        obj.insert("history".into(), Value::Array(history));
                    }
                    push_back = Some(value);
                }
            }
            if downstream && row.status == ApprovalStatus::Approved {
                inputs.extend(parse(&row.inputs_json));
            }
        }
        Ok((inputs, push_back))
    }

    /// The process a command task runs: `shell -c <command>`, in its directory, with the
    /// task's env, then the approver inputs that reach it, then the engine's own variables
    /// (which nothing overrides): `SMITHERS_*`, and Dagu's names (`DAG_NAME`, `DAG_RUN_ID`,
    /// `DAG_RUN_STEP_NAME`, `DAG_PUSHBACK`, …) so a Dagu step runs unchanged. Big values
    /// travel as files: the push-back's history is in the variable without outputs, the
    /// previous stdout is a path.
    pub(super) fn command_spec(
        &self,
        task: &TaskNode,
        attempt: i64,
        body: &CommandBody,
        inputs: &BTreeMap<String, String>,
        push_back: Option<&Value>,
    ) -> CommandSpec {
        let run_id = self.run_id;
        let text = body
            .command
            .clone()
            .or_else(|| body.script.clone())
            .unwrap_or_default();
        let mut env: Vec<(String, String)> = body
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in inputs {
            if !crate::graph::is_reserved_env(k) {
                env.push((k.clone(), v.clone()));
            }
        }
        let dir = self.log_dir.join(run_id);
        let base = format!("{}.{}.{}", task.id, task.iteration, attempt);
        let path = |ext: &str| {
            dir.join(format!("{base}.{ext}"))
                .to_string_lossy()
                .into_owned()
        };
        let (stdout_path, stderr_path) = (path("stdout.log"), path("stderr.log"));
        if let Some(pb) = push_back {
            let round = pb.get("iteration").and_then(Value::as_i64).unwrap_or(1);
            let previous = pb
                .get("previousStdoutFile")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            env.push(("SMITHERS_PUSHBACK_ROUND".into(), round.to_string()));
            // The review round's earlier name, kept for steps written against it.
            env.push(("SMITHERS_PUSHBACK_ITERATION".into(), round.to_string()));
            env.push(("SMITHERS_PUSHBACK".into(), slim_push_back(pb).to_string()));
            env.push((
                "SMITHERS_PUSHBACK_PREVIOUS_STDOUT_FILE".into(),
                previous.clone(),
            ));
            env.push(("DAG_PUSHBACK_ITERATION".into(), (round - 1).to_string()));
            env.push(("DAG_PUSHBACK".into(), dagu_push_back(pb).to_string()));
            env.push(("DAG_PUSHBACK_PREVIOUS_STDOUT_FILE".into(), previous));
        }
        env.push(("SMITHERS_RUN_ID".into(), run_id.into()));
        env.push(("SMITHERS_NODE_ID".into(), task.id.clone()));
        env.push(("SMITHERS_ITERATION".into(), task.iteration.to_string()));
        env.push(("SMITHERS_ATTEMPT".into(), attempt.to_string()));
        let input_names: Vec<&str> = inputs.keys().map(String::as_str).collect();
        env.push(("SMITHERS_APPROVAL_INPUTS".into(), input_names.join(",")));
        env.push(("DAG_NAME".into(), self.run.workflow_name.clone()));
        env.push(("DAG_RUN_ID".into(), run_id.into()));
        env.push(("DAG_RUN_STEP_NAME".into(), task.id.clone()));
        env.push(("DAG_RUN_STEP_STDOUT_FILE".into(), stdout_path.clone()));
        env.push(("DAG_RUN_STEP_STDERR_FILE".into(), stderr_path.clone()));
        env.push((
            "DAG_RUN_LOG_FILE".into(),
            dir.join(RUN_LOG_FILE).to_string_lossy().into_owned(),
        ));
        if self.run.input_json.len() <= MAX_PARAMS_ENV {
            env.push(("DAG_PARAMS_JSON".into(), self.run.input_json.clone()));
        }
        CommandSpec {
            program: body.shell.clone().unwrap_or_else(|| "/bin/sh".into()),
            args: vec!["-c".into(), text],
            cwd: body.cwd.clone(),
            env,
            env_templates: body.env_templates.clone(),
            timeout_ms: task.timeout_ms,
            stdout_path,
            stderr_path,
            stdin: None,
            idle_timeout_ms: None,
            keep_stdin_open: false,
        }
    }
}

/// `SMITHERS_PUSHBACK`: the push-back without the outputs and notes of earlier rounds, so it
/// stays small however many rounds there were (the outputs are in the logs and history).
fn slim_push_back(pb: &Value) -> Value {
    let mut out = pb.clone();
    if let Some(obj) = out.as_object_mut()
        && let Some(Value::Array(history)) = obj.get_mut("history")
    {
        for h in history.iter_mut() {
            if let Some(h) = h.as_object_mut() {
                h.retain(|k, _| {
                    matches!(k.as_str(), "iteration" | "status" | "by" | "at" | "inputs")
                });
            }
        }
    }
    out
}

/// `DAG_PUSHBACK` in Dagu's shape: `iteration` counts push-backs from 0 (our review round
/// minus one), `history` has one entry per push-back `{iteration, by, at, inputs}`.
fn dagu_push_back(pb: &Value) -> Value {
    let round = pb.get("iteration").and_then(Value::as_i64).unwrap_or(1);
    let history: Vec<Value> = pb
        .get("history")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter(|h| h.get("status").and_then(Value::as_str) == Some("pushed-back"))
                .map(|h| {
                    json!({ "iteration": h.get("iteration"), "by": h.get("by"), "at": h.get("at"),
                            "inputs": h.get("inputs").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({})) })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "iteration": round - 1,
        "by": pb.get("by"),
        "at": pb.get("at"),
        "inputs": pb.get("inputs").cloned().unwrap_or_else(|| json!({})),
        "history": history,
    })
}
