//! The graph descriptor (version 1) that every front end (JSX, TOON, builder) produces, and
//! its validation. See ARCHITECTURE.md for the format.

mod check;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

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
    /// `<Timer duration|until>`: the node waits, with no thread and no process, until a
    /// durable timer (`timers.rs`) fires; it finishes with no output.
    #[serde(rename_all = "camelCase")]
    Timer {
        /// `duration`, in milliseconds from when the timer starts.
        #[serde(default)]
        duration_ms: Option<u64>,
        /// `until`, in milliseconds since the epoch (a past time fires at once).
        #[serde(default)]
        until_ms: Option<i64>,
    },
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
    /// A deadline for the review, from when it is requested (`timeoutMs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// An absolute deadline, ms since the epoch (`deadline`); the earlier of the two counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind: Option<Remind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate: Vec<Escalation>,
}

/// `remind: { every, max }`: the gate's approvers are reminded every `everyMs` while it waits,
/// at most `max` times (unbounded when unset).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Remind {
    pub every_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// One step of `escalate: [{ after, allowedUsers | allowedScopes }]`: `afterMs` after the
/// request, these users (scopes) may decide too.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Escalation {
    pub after_ms: u64,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
}

/// What a gate's deadline decides when it passes undecided (recorded as `system:timeout`).
/// Default `deny`: the denial then does what the gate's `onDeny` says, as a person's would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OnTimeout {
    #[default]
    Deny,
    Approve,
    /// Denied, and the node fails (and the run with it) whatever `onDeny` says.
    Fail,
}

impl OnTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Deny => "deny",
            OnTimeout::Approve => "approve",
            OnTimeout::Fail => "fail",
        }
    }
}

/// The due time of a deadline requested at `now`: the earlier of `now + timeoutMs` and
/// `deadline`, if either is set.
pub fn deadline_at(now: i64, timeout_ms: Option<u64>, deadline_ms: Option<i64>) -> Option<i64> {
    let relative = timeout_ms.map(|t| now.saturating_add(i64::try_from(t).unwrap_or(i64::MAX)));
    match (relative, deadline_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
    /// A deadline from when the gate is requested (`timeoutMs`); see [`OnTimeout`].
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// An absolute deadline, ms since the epoch (`deadline`); the earlier of the two counts.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    #[serde(default)]
    pub on_timeout: Option<OnTimeout>,
    /// Reminders while it waits.
    #[serde(default)]
    pub remind: Option<Remind>,
    /// Who else may decide, and after how long.
    #[serde(default)]
    pub escalate: Vec<Escalation>,
    /// Decided by several people: `approvals` distinct approvers, any veto holder's denial.
    #[serde(default)]
    pub quorum: Option<Quorum>,
}

/// `quorum: { approvals, from?, veto? }` of a gate (`decision.rs`' vote path): the gate is
/// approved once `approvals` distinct people approved it; a denial by one of `veto` denies it;
/// with `from`, only those (and the veto holders) vote, and the gate is denied once too few of
/// them are left to make up the quorum.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quorum {
    pub approvals: u32,
    #[serde(default)]
    pub from: Vec<String>,
    #[serde(default)]
    pub veto: Vec<String>,
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

impl GraphDescriptor {
    pub fn parse(json: &str) -> Result<GraphDescriptor> {
        let graph: GraphDescriptor =
            serde_json::from_str(json).map_err(|e| Error::InvalidGraph(e.to_string()))?;
        graph.validate()?;
        Ok(graph)
    }

    /// Some reviewed step names a `rewindTo` target (which the plan must check).
    pub fn has_rewinds(&self) -> bool {
        fn any(node: &PlanNode) -> bool {
            match node {
                PlanNode::Task(t) => t.review.as_ref().is_some_and(|r| r.rewind_to.is_some()),
                PlanNode::Sequence { children }
                | PlanNode::Parallel { children, .. }
                | PlanNode::Group { children }
                | PlanNode::Loop { children, .. } => children.iter().any(any),
            }
        }
        any(&self.root)
    }
}
