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
    /// `<Approval>`: the decision itself is the output, written by the core.
    Approval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalMode {
    Gate,
    Decision,
    Select,
    Rank,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OnDeny {
    #[default]
    Fail,
    Continue,
    Skip,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    pub mode: ApprovalMode,
    #[serde(default)]
    pub on_deny: OnDeny,
    pub request: ApprovalRequest,
    #[serde(default)]
    pub options: Vec<ApprovalOption>,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
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
}

#[derive(Debug)]
pub struct PlanEntry {
    pub kind: EntryKind,
    pub children: Vec<usize>,
    /// Innermost enclosing loop id, for tasks.
    pub loop_id: Option<String>,
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
        };
        plan.add(graph.root, None);
        plan
    }

    fn add(&mut self, node: PlanNode, loop_id: Option<&str>) -> usize {
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
        });
        let child_loop = inner_loop.as_deref().or(loop_id).map(String::from);
        let child_indices: Vec<usize> = children
            .into_iter()
            .map(|c| self.add(c, child_loop.as_deref()))
            .collect();
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

    /// Does a change to this node's output need a new render?
    pub fn render_depends_on(&self, node_id: &str) -> bool {
        self.render_deps
            .as_ref()
            .is_none_or(|deps| deps.contains(node_id))
    }
}
