//! The plan: a graph descriptor flattened into an arena the scheduler walks (`walk.rs`),
//! with what the engine asks of its shape (what is downstream of a node, what a push-back
//! resets).

mod walk;

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::graph::{GraphDescriptor, OnMaxReached, PlanNode, RenderDeps, TaskNode};

pub use walk::{Action, NodeLookup, NodeView, Walk, WalkCache};

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

#[cfg(test)]
mod tests;
