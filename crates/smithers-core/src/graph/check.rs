//! Validation of a descriptor: everything that can be refused before a single row is
//! written (ids, output keys, gates' options and inputs, commands, references between nodes).

use std::collections::HashSet;

use serde_json::Value;

use super::{
    ApprovalMode, ApprovalSpec, CommandBody, GraphDescriptor, OnDeny, PlanNode, TaskBody, TaskNode,
    is_reserved_env,
};
use crate::error::{Error, Result};
use crate::ident;

/// Node ids become values in SQL rows (never identifiers), but they also appear in CLI
/// arguments and event streams: keep them printable and bounded.
fn check_node_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:@=,-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidGraph(format!(
            "node id {id:?} must be 1-128 characters of letters, digits and _ . : @ = , -"
        )))
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// `required ⊆ input`, names usable as environment variables, none reserved.
fn check_inputs(node_id: &str, input: &[String], required: &[String]) -> Result<()> {
    for name in input {
        if !is_env_name(name) {
            return Err(Error::InvalidInputName {
                node_id: node_id.into(),
                name: name.clone(),
                why: "must be letters, digits and _ (not starting with a digit)",
            });
        }
        if is_reserved_env(name) {
            return Err(Error::InvalidInputName {
                node_id: node_id.into(),
                name: name.clone(),
                why: "is reserved for the system or the engine",
            });
        }
    }
    let missing: Vec<String> = required
        .iter()
        .filter(|r| !input.contains(r))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Error::RequiredNotInInput {
            node_id: node_id.into(),
            keys: missing,
        });
    }
    Ok(())
}

/// Options that only some kinds of gate have.
fn check_approval_kind(node_id: &str, body: &TaskBody, approval: &ApprovalSpec) -> Result<()> {
    let invalid = |why: &str| Err(Error::InvalidGraph(format!("{node_id}: {why}")));
    let human = approval.mode == ApprovalMode::Human;
    if human && !matches!(body, TaskBody::Approval) {
        return invalid("a human task has the body type approval");
    }
    if approval.auto_approve.is_some()
        && matches!(approval.mode, ApprovalMode::Gate | ApprovalMode::Human)
    {
        return invalid("autoApprove is for approval nodes (mode decision, select or rank)");
    }
    if approval.max_attempts.is_some() && !human {
        return invalid("maxAttempts is for human tasks");
    }
    if approval.max_attempts == Some(0) {
        return invalid("maxAttempts must be at least 1");
    }
    if human && approval.on_deny() != OnDeny::Fail {
        return invalid("a human task fails when denied (onDeny fail)");
    }
    if approval.on_timeout == Some(crate::graph::OnTimeout::Approve)
        && matches!(
            approval.mode,
            ApprovalMode::Human | ApprovalMode::Select | ApprovalMode::Rank
        )
    {
        return invalid(
            "onTimeout approve needs an answer nobody gave: only for approve/deny gates",
        );
    }
    if approval.on_timeout.is_some()
        && approval.timeout_ms.is_none()
        && approval.deadline_ms.is_none()
    {
        return invalid("onTimeout without timeoutMs or deadline");
    }
    if let Some(q) = &approval.quorum {
        if !matches!(approval.mode, ApprovalMode::Gate | ApprovalMode::Decision) {
            return invalid("quorum is for approve/deny gates (mode gate or decision)");
        }
        if approval.auto_approve.is_some() {
            return invalid("a quorum gate is decided by people: no autoApprove");
        }
        if q.approvals == 0 {
            return invalid("quorum.approvals must be at least 1");
        }
        for name in q.from.iter().chain(&q.veto) {
            crate::ident::check_name("a quorum voter", name)
                .map_err(|e| Error::InvalidGraph(format!("{node_id}: {e}")))?;
        }
        let mut voters: Vec<&String> = q.from.iter().chain(&q.veto).collect();
        voters.sort();
        voters.dedup();
        if !q.from.is_empty() && (q.approvals as usize) > voters.len() {
            return invalid(&format!(
                "quorum.approvals is {} but only {} people (from and veto) may vote",
                q.approvals,
                voters.len()
            ));
        }
    }
    Ok(())
}

/// The fields of the row an `<Approval>` writes in each mode (`inputs` too when its table
/// has that field): see `decision_value`.
fn decision_fields(mode: ApprovalMode) -> &'static [&'static str] {
    match mode {
        ApprovalMode::Select => &["selected", "notes", "inputs"],
        ApprovalMode::Rank => &["ranked", "notes", "inputs"],
        ApprovalMode::Gate | ApprovalMode::Decision => {
            &["approved", "note", "decidedBy", "decidedAt", "inputs"]
        }
        // A human task's output is the person's answer, whatever its schema.
        ApprovalMode::Human => &[],
    }
}

/// An `<Approval>` whose output schema requires a field its decision row never has could
/// never be decided: refused before a person is asked (Smithers fails the run after the
/// decision, when the row does not validate).
fn check_decision_schema(task: &TaskNode, mode: ApprovalMode, schema: &Value) -> Result<()> {
    if mode == ApprovalMode::Human {
        return Ok(());
    }
    let fields = decision_fields(mode);
    let missing: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|f| !fields.contains(f))
        .map(String::from)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::ApprovalSchemaMismatch {
        node_id: task.id.clone(),
        output: task.output.clone(),
        missing,
        fields: fields
            .iter()
            .filter(|f| **f != "inputs")
            .map(|f| f.to_string())
            .collect(),
    })
}

fn check_command(node_id: &str, body: &CommandBody) -> Result<()> {
    let given = |s: &Option<String>| s.as_deref().is_some_and(|c| !c.trim().is_empty());
    if given(&body.command) == given(&body.script) {
        return Err(Error::InvalidGraph(format!(
            "{node_id}: a command task needs exactly one of command and script"
        )));
    }
    if let Some(parse) = &body.parse
        && parse != "json"
        && parse != "text"
    {
        return Err(Error::InvalidGraph(format!(
            "{node_id}: parse must be \"json\" or \"text\" (got {parse:?})"
        )));
    }
    if let Some(name) = body
        .env
        .keys()
        .chain(body.env_templates.iter().map(|(k, _)| k))
        .find(|k| !is_env_name(k))
    {
        return Err(Error::InvalidGraph(format!(
            "{node_id}: env name {name:?} must be letters, digits and _"
        )));
    }
    if body.cwd.as_deref().is_some_and(|c| !c.starts_with('/')) {
        return Err(Error::InvalidGraph(format!(
            "{node_id}: cwd must be an absolute path"
        )));
    }
    Ok(())
}

impl GraphDescriptor {
    /// Checks everything that can be checked before a single row is written.
    pub fn validate(&self) -> Result<()> {
        if self.version != 1 {
            return Err(Error::InvalidGraph(format!(
                "unsupported descriptor version {} (this engine reads version 1)",
                self.version
            )));
        }
        for (key, schema) in &self.schemas {
            ident::check_table_key(key)?;
            if !schema.is_object() {
                return Err(Error::InvalidSchema {
                    key: key.clone(),
                    message: "a schema must be a JSON object".into(),
                });
            }
        }
        let mut ids: HashSet<&str> = HashSet::new();
        let mut tasks: Vec<&TaskNode> = Vec::new();
        let mut loop_ids: HashSet<&str> = HashSet::new();
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            match node {
                PlanNode::Task(task) => {
                    check_node_id(&task.id)?;
                    if !ids.insert(&task.id) {
                        return Err(Error::DuplicateId(task.id.clone()));
                    }
                    if let TaskBody::Timer {
                        duration_ms,
                        until_ms,
                    } = &task.body
                    {
                        // A timer writes no output: it names no table.
                        if duration_ms.is_some() == until_ms.is_some() || !task.output.is_empty() {
                            return Err(Error::InvalidGraph(format!(
                                "timer {}: exactly one of durationMs and untilMs, and no output",
                                task.id
                            )));
                        }
                    } else if !self.schemas.contains_key(&task.output) {
                        return Err(Error::UnknownOutputSchema {
                            key: task.output.clone(),
                            node_id: task.id.clone(),
                        });
                    }
                    if let Some(approval) = &task.approval
                        && matches!(approval.mode, ApprovalMode::Select | ApprovalMode::Rank)
                        && approval.options.is_empty()
                    {
                        return Err(Error::ApprovalOptionsRequired {
                            node_id: task.id.clone(),
                            mode: format!("{:?}", approval.mode).to_lowercase(),
                        });
                    }
                    if matches!(task.body, TaskBody::Approval) && task.approval.is_none() {
                        return Err(Error::InvalidGraph(format!(
                            "approval node {} has no approval spec",
                            task.id
                        )));
                    }
                    if let Some(approval) = &task.approval {
                        check_inputs(&task.id, &approval.input, &approval.required)?;
                        check_approval_kind(&task.id, &task.body, approval)?;
                        if matches!(task.body, TaskBody::Approval)
                            && let Some(schema) = self.schemas.get(&task.output)
                        {
                            check_decision_schema(task, approval.mode, schema)?;
                        }
                    }
                    if let Some(review) = &task.review {
                        if task.approval.is_some() {
                            return Err(Error::InvalidGraph(format!(
                                "{}: a task is either approved before it runs (needsApproval) or reviewed after (approval), not both",
                                task.id
                            )));
                        }
                        check_inputs(&task.id, &review.input, &review.required)?;
                    }
                    if let TaskBody::Command(body) = &task.body {
                        check_command(&task.id, body)?;
                    }
                    tasks.push(task);
                }
                PlanNode::Loop {
                    id,
                    children,
                    max_iterations,
                    ..
                } => {
                    check_node_id(id)?;
                    if !loop_ids.insert(id) {
                        return Err(Error::DuplicateId(id.clone()));
                    }
                    if *max_iterations == 0 {
                        return Err(Error::InvalidGraph(format!(
                            "loop {id}: maxIterations must be at least 1"
                        )));
                    }
                    stack.extend(children.iter());
                }
                PlanNode::Sequence { children }
                | PlanNode::Parallel { children, .. }
                | PlanNode::Group { children } => stack.extend(children.iter()),
            }
        }
        for task in tasks {
            for dep in &task.depends_on {
                if !ids.contains(dep.as_str()) {
                    return Err(Error::InvalidGraph(format!(
                        "{} depends on {dep:?}, which is not in the workflow",
                        task.id
                    )));
                }
            }
            if let Some(target) = task.review.as_ref().and_then(|r| r.rewind_to.as_ref())
                && !ids.contains(target.as_str())
            {
                return Err(Error::InvalidGraph(format!(
                    "{}: rewindTo names {target:?}, which is not in the workflow",
                    task.id
                )));
            }
        }
        Ok(())
    }
}
