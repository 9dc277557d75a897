//! The graph descriptor (version 1) that every front end (JSX, TOON, builder) produces, and
//! its validation. See ARCHITECTURE.md for the format.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ident;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphDescriptor {
    pub version: u32,
    #[serde(default)]
    pub workflow: WorkflowInfo,
    #[serde(default)]
    pub schemas: BTreeMap<String, Value>,
    #[serde(default)]
    pub render_deps: RenderDeps,
    pub root: PlanNode,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WorkflowInfo {
    #[serde(default)]
    pub name: Option<String>,
}

/// Which node outputs the render read: a change to any of them needs a new render.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RenderDeps {
    Nodes(Vec<String>),
    /// `"*"`: the render read whole tables, so every output matters.
    All(String),
}

impl Default for RenderDeps {
    fn default() -> Self {
        RenderDeps::All("*".into())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum PlanNode {
    Sequence {
        #[serde(default)]
        children: Vec<PlanNode>,
    },
    #[serde(rename_all = "camelCase")]
    Parallel {
        #[serde(default)]
        max_concurrency: Option<u32>,
        #[serde(default)]
        children: Vec<PlanNode>,
    },
    Group {
        #[serde(default)]
        children: Vec<PlanNode>,
    },
    #[serde(rename_all = "camelCase")]
    Loop {
        id: String,
        #[serde(default)]
        until: bool,
        #[serde(default = "default_max_iterations")]
        max_iterations: u32,
        #[serde(default)]
        on_max_reached: OnMaxReached,
        #[serde(default)]
        children: Vec<PlanNode>,
    },
    Task(Box<TaskNode>),
}

fn default_max_iterations() -> u32 {
    5
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMaxReached {
    #[default]
    ReturnLast,
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskNode {
    pub id: String,
    #[serde(default)]
    pub iteration: i64,
    pub output: String,
    pub body: TaskBody,
    #[serde(default)]
    pub approval: Option<ApprovalSpec>,
    /// Review after the body ran (Dagu's `approval:` on a step): the output waits for a
    /// decision before the node finishes.
    #[serde(default)]
    pub review: Option<ReviewSpec>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub skip: bool,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub continue_on_fail: bool,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub meta: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum TaskBody {
    Static {
        value: Value,
    },
    Compute,
    /// `<Task agent>`: JS calls the agent (an LLM) and reports its answer with the prompt,
    /// raw text and token usage, which the core keeps on the attempt.
    Agent {
        /// What the agent is (its id, class or model), for inspect and the events.
        #[serde(default)]
        agent: Option<String>,
    },
    /// `<Approval>`: the decision itself is the output, written by the core.
    Approval,
    /// A shell command or script, run by the core as a child process.
    Command(CommandBody),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandBody {
    /// One command line, run with `shell -c`.
    #[serde(default)]
    pub command: Option<String>,
    /// A multi-line script, run with `shell -c` as well.
    #[serde(default)]
    pub script: Option<String>,
    /// Default `/bin/sh`.
    #[serde(default)]
    pub shell: Option<String>,
    /// Absolute working directory (the front end resolves it against the workflow file).
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables set before `env`, in order, whose `${VAR}` references the driver expands
    /// when the task runs (a Dagu step's `env`): `[[name, template], …]`.
    #[serde(default)]
    pub env_templates: Vec<(String, String)>,
    /// `"json"`: stdout is parsed as JSON and is the output; otherwise the output is
    /// `{exitCode, stdout, stderr}`.
    #[serde(default)]
    pub parse: Option<String>,
}

/// What a reviewer sees and may send back with a decision on a reviewed step.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewSpec {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub input: Vec<String>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    /// Where a push-back restarts (Dagu's `rewind_to`): this step or one it depends on,
    /// transitively. That node and everything downstream of it run again. Default: the
    /// step itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind_to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalMode {
    Gate,
    Decision,
    Select,
    Rank,
    /// `<HumanTask>`: a person submits the output itself (JSON valid for its schema).
    Human,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Gate => "gate",
            ApprovalMode::Decision => "decision",
            ApprovalMode::Select => "select",
            ApprovalMode::Rank => "rank",
            ApprovalMode::Human => "human",
        }
    }

    pub fn parse(s: &str) -> ApprovalMode {
        match s {
            "gate" => ApprovalMode::Gate,
            "select" => ApprovalMode::Select,
            "rank" => ApprovalMode::Rank,
            "human" => ApprovalMode::Human,
            _ => ApprovalMode::Decision,
        }
    }
}

/// What a denial does. `Continue` and `Skip` are the same for `<Approval>` (as in
/// Smithers' runtime): `approved: false` is the gate's output and the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OnDeny {
    Fail,
    Continue,
    Skip,
}

impl OnDeny {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDeny::Fail => "fail",
            OnDeny::Continue => "continue",
            OnDeny::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> OnDeny {
        match s {
            "continue" => OnDeny::Continue,
            "skip" => OnDeny::Skip,
            _ => OnDeny::Fail,
        }
    }
}

/// `<Approval autoApprove>`; `condition` and `revertOn` were evaluated by the renderer.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoApprove {
    /// Auto-approve once this many decisions in earlier runs of the workflow, newest
    /// first, were approvals by a person (a denial breaks the streak). None or 0: at once.
    #[serde(default)]
    pub after: Option<u32>,
    /// Keep the auto-approval in `_smithers_approvals` (listings, inspect). Default true.
    #[serde(default = "yes")]
    pub audit: bool,
    /// `condition(ctx)`; false: never auto-approve this time.
    #[serde(default)]
    pub condition_met: Option<bool>,
    /// `revertOn(ctx)`; true: never auto-approve this time.
    #[serde(default)]
    pub revert_on_met: Option<bool>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    pub mode: ApprovalMode,
    /// Unset: `fail` for a gate before a task (`needsApproval`) and for a `<HumanTask>`,
    /// `continue` for `<Approval>` (Smithers' runtime); see [`ApprovalSpec::on_deny`].
    #[serde(default, rename = "onDeny")]
    pub on_deny_given: Option<OnDeny>,
    pub request: ApprovalRequest,
    #[serde(default)]
    pub options: Vec<ApprovalOption>,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    /// Names of the values an approver may send (`--input K=V`); they reach every
    /// downstream task as environment variables and through ctx.
    #[serde(default)]
    pub input: Vec<String>,
    /// The inputs an approve must carry; a subset of `input`.
    #[serde(default)]
    pub required: Vec<String>,
    /// `async`: while it waits, later siblings run (it does not hold up a sequence, a
    /// parallel or a loop); tasks naming it in `dependsOn` still wait.
    #[serde(default, rename = "async")]
    pub wait_async: bool,
    #[serde(default)]
    pub auto_approve: Option<AutoApprove>,
    /// `<HumanTask>`: answers that are not valid for the output schema it takes before the
    /// task fails (default 10).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl ApprovalSpec {
    pub fn on_deny(&self) -> OnDeny {
        self.on_deny_given.unwrap_or(match self.mode {
            ApprovalMode::Gate | ApprovalMode::Human => OnDeny::Fail,
            _ => OnDeny::Continue,
        })
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(10)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    pub title: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalOption {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub summary: Option<String>,
}

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

/// Environment variables an approver's input may never set: the system's and the engine's.
pub const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "TMPDIR",
    "TMP",
    "TEMP",
    "LANG",
    "TERM",
    "IFS",
    "ENV",
    "BASH_ENV",
    "HOSTNAME",
    "NODE_OPTIONS",
    "PYTHONPATH",
];
/// … and names starting with these. DAG_ and DAGU_: the Dagu names the engine sets for
/// every step (DAG_RUN_ID, …).
pub const RESERVED_ENV_PREFIXES: &[&str] = &["SMITHERS_", "DAG_", "DAGU_", "LD_", "DYLD_", "LC_"];

pub fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name) || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
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
    pub fn parse(json: &str) -> Result<GraphDescriptor> {
        let graph: GraphDescriptor =
            serde_json::from_str(json).map_err(|e| Error::InvalidGraph(e.to_string()))?;
        graph.validate()?;
        Ok(graph)
    }

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
                    if !self.schemas.contains_key(&task.output) {
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

/// The plan tree flattened into an arena, with parents, so the scheduler can walk it without
/// recursion and cache what it learns (terminal subtrees, sequence cursors).
#[derive(Debug)]
pub struct Plan {
    pub nodes: Vec<PlanEntry>,
    pub task_index: HashMap<String, usize>,
    pub render_deps: Option<HashSet<String>>,
    /// Some gate or reviewed step declares approver inputs, or can be pushed back: starting
    /// a task then looks up the inputs that reach it.
    pub carries_inputs: bool,
}

#[derive(Debug)]
pub struct PlanEntry {
    pub kind: EntryKind,
    pub children: Vec<usize>,
    /// Innermost enclosing loop id, for tasks.
    pub loop_id: Option<String>,
    pub parent: Option<usize>,
    /// Position among the parent's children.
    pub position: usize,
}

#[derive(Debug)]
pub enum EntryKind {
    Sequence,
    Parallel {
        max_concurrency: Option<u32>,
    },
    Group,
    Loop {
        id: String,
        until: bool,
        max_iterations: u32,
        on_max_reached: OnMaxReached,
    },
    Task(Box<TaskNode>),
}

impl Plan {
    pub fn build(graph: GraphDescriptor) -> Plan {
        let mut plan = Plan {
            nodes: Vec::new(),
            task_index: HashMap::new(),
            render_deps: match graph.render_deps {
                RenderDeps::Nodes(ids) => Some(ids.into_iter().collect()),
                RenderDeps::All(_) => None,
            },
            carries_inputs: false,
        };
        plan.add(graph.root, None, None);
        let carries_inputs = plan.tasks().any(|(_, t)| {
            t.review.is_some() || t.approval.as_ref().is_some_and(|a| !a.input.is_empty())
        });
        plan.carries_inputs = carries_inputs;
        plan
    }

    fn add(&mut self, node: PlanNode, loop_id: Option<&str>, parent: Option<usize>) -> usize {
        let index = self.nodes.len();
        let (kind, children, inner_loop) = match node {
            PlanNode::Sequence { children } => (EntryKind::Sequence, children, None),
            PlanNode::Parallel {
                max_concurrency,
                children,
            } => (EntryKind::Parallel { max_concurrency }, children, None),
            PlanNode::Group { children } => (EntryKind::Group, children, None),
            PlanNode::Loop {
                id,
                until,
                max_iterations,
                on_max_reached,
                children,
            } => {
                let inner = Some(id.clone());
                (
                    EntryKind::Loop {
                        id,
                        until,
                        max_iterations,
                        on_max_reached,
                    },
                    children,
                    inner,
                )
            }
            PlanNode::Task(task) => {
                self.task_index.insert(task.id.clone(), index);
                (EntryKind::Task(task), Vec::new(), None)
            }
        };
        self.nodes.push(PlanEntry {
            kind,
            children: Vec::new(),
            loop_id: loop_id.map(String::from),
            parent,
            position: 0,
        });
        let child_loop = inner_loop.as_deref().or(loop_id).map(String::from);
        let child_indices: Vec<usize> = children
            .into_iter()
            .map(|c| self.add(c, child_loop.as_deref(), Some(index)))
            .collect();
        for (position, &c) in child_indices.iter().enumerate() {
            self.nodes[c].position = position;
        }
        self.nodes[index].children = child_indices;
        index
    }

    pub fn task(&self, index: usize) -> Option<&TaskNode> {
        match &self.nodes[index].kind {
            EntryKind::Task(t) => Some(t),
            _ => None,
        }
    }

    pub fn tasks(&self) -> impl Iterator<Item = (usize, &TaskNode)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.kind {
                EntryKind::Task(t) => Some((i, t.as_ref())),
                _ => None,
            })
    }

    /// The tasks that run only after this one is terminal: later siblings in every enclosing
    /// sequence or loop (and everything inside them), and, transitively, tasks whose
    /// `dependsOn` names one of those. Approver inputs of a gate reach exactly these.
    pub fn downstream(&self, idx: usize) -> HashSet<usize> {
        let mut named_by: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, t) in self.tasks() {
            for d in &t.depends_on {
                named_by.entry(d.as_str()).or_default().push(i);
            }
        }
        let mut found: HashSet<usize> = HashSet::new();
        let mut scanned_from: HashMap<usize, usize> = HashMap::new();
        let mut work = vec![idx];
        while let Some(n) = work.pop() {
            // Structural: what follows n in each enclosing sequence or loop.
            let mut child = n;
            let mut parent = self.nodes[n].parent;
            while let Some(p) = parent {
                let siblings = &self.nodes[p].children;
                let pos = self.nodes[child].position;
                // An earlier child of p was walked already: it covered all of this and up.
                if scanned_from.get(&p).is_some_and(|&done| done <= pos) {
                    break;
                }
                scanned_from.insert(p, pos);
                if matches!(
                    self.nodes[p].kind,
                    EntryKind::Sequence | EntryKind::Loop { .. }
                ) {
                    for &later in &siblings[pos + 1..] {
                        self.collect_tasks(later, &mut found, &mut work);
                    }
                }
                child = p;
                parent = self.nodes[p].parent;
            }
            // Explicit: tasks that name n in dependsOn.
            if let EntryKind::Task(task) = &self.nodes[n].kind {
                for &i in named_by.get(task.id.as_str()).into_iter().flatten() {
                    if found.insert(i) {
                        work.push(i);
                    }
                }
            }
        }
        found.remove(&idx);
        found
    }

    /// What a push-back of the reviewed step `idx` sends back to pending: its `rewindTo`
    /// target (default: itself) and everything downstream of that, as `(id, iteration)`.
    pub fn reset_scope(&self, idx: usize) -> Vec<(String, i64)> {
        let target = self
            .task(idx)
            .and_then(|t| t.review.as_ref())
            .and_then(|r| r.rewind_to.as_ref())
            .and_then(|id| self.task_index.get(id).copied())
            .unwrap_or(idx);
        let mut scope: Vec<usize> = self.downstream(target).into_iter().collect();
        scope.push(target);
        scope.sort_unstable();
        scope
            .into_iter()
            .filter_map(|i| self.task(i).map(|t| (t.id.clone(), t.iteration)))
            .collect()
    }

    /// A review's `rewindTo` must name the step itself or one it depends on (transitively):
    /// rewinding to anything else would run the step again without what it reviewed.
    pub fn check_rewinds(&self) -> Result<()> {
        for (idx, task) in self.tasks() {
            let Some(target) = task.review.as_ref().and_then(|r| r.rewind_to.as_ref()) else {
                continue;
            };
            let Some(&target_idx) = self.task_index.get(target) else {
                continue; // validate() reports a missing target
            };
            if target_idx != idx && !self.downstream(target_idx).contains(&idx) {
                return Err(Error::InvalidGraph(format!(
                    "{}: rewindTo {target:?} must be the step itself or a step it depends on",
                    task.id
                )));
            }
        }
        Ok(())
    }

    fn collect_tasks(&self, idx: usize, found: &mut HashSet<usize>, work: &mut Vec<usize>) {
        let mut stack = vec![idx];
        while let Some(n) = stack.pop() {
            if matches!(self.nodes[n].kind, EntryKind::Task(_)) {
                if found.insert(n) {
                    work.push(n);
                }
            } else {
                stack.extend(self.nodes[n].children.iter().copied());
            }
        }
    }

    /// Does a change to this node's output need a new render?
    pub fn render_depends_on(&self, node_id: &str) -> bool {
        self.render_deps
            .as_ref()
            .is_none_or(|deps| deps.contains(node_id))
    }
}
