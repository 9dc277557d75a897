//! The scheduler: given the plan and the node states, what can happen next.
//!
//! It is a pure walk: it reads states through [`NodeLookup`] and returns [`Action`]s; the
//! engine applies them, one transaction each. Within one plan, terminal subtrees stay
//! terminal, so the walk caches them and keeps a cursor per sequence: a long sequence costs
//! O(1) per step, not O(n).

use super::{EntryKind, Plan};
use crate::graph::{TaskBody, TaskNode};
use crate::machines::{ApprovalStatus, NodeState, node::SkipReason};

/// What the scheduler needs to know of one node.
#[derive(Debug, Clone, Copy)]
pub struct NodeView {
    pub state: NodeState,
    pub approval: Option<ApprovalStatus>,
}

pub trait NodeLookup {
    fn node(&self, id: &str, iteration: i64) -> Option<NodeView>;
    fn loop_done(&self, loop_id: &str) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A reachable gate without a decision: request it.
    RequestApproval(usize),
    /// A static body: the core writes it.
    RunStatic(usize),
    /// A compute body: hand it to JS.
    Start(usize),
    Skip(usize, SkipReason),
    /// An `<Approval>` whose decision exists but whose node was not finished with it.
    FinishFromDecision(usize),
    /// Every child of the loop is terminal for this iteration.
    LoopEnd(usize),
}

/// Per-plan caches; reset whenever a new plan is submitted.
#[derive(Debug, Default)]
pub struct WalkCache {
    terminal: Vec<bool>,
    cursor: Vec<usize>,
}

impl WalkCache {
    pub fn new(plan: &Plan) -> WalkCache {
        WalkCache {
            terminal: vec![false; plan.nodes.len()],
            cursor: vec![0; plan.nodes.len()],
        }
    }
}

pub fn is_terminal(view: &NodeView, task: &TaskNode) -> bool {
    match view.state {
        NodeState::Finished | NodeState::Skipped => true,
        NodeState::Failed => task.continue_on_fail,
        _ => false,
    }
}

/// An `async` gate that waits for its decision: it does not hold up the sequence, parallel
/// or loop it is in (Smithers' `waitAsync`), but `dependsOn` still waits for it.
fn waits_async(view: &NodeView, task: &TaskNode) -> bool {
    view.state == NodeState::WaitingApproval && task.approval.as_ref().is_some_and(|a| a.wait_async)
}

pub struct Walk<'a, L: NodeLookup> {
    pub plan: &'a Plan,
    pub lookup: &'a L,
    pub cache: &'a mut WalkCache,
    pub actions: Vec<Action>,
    /// The subtree being walked holds an `async` gate that still waits: it counts as
    /// terminal for this walk, but must not be cached as such (the decision may put the
    /// gate's task back to pending).
    pub provisional: bool,
}

impl<L: NodeLookup> Walk<'_, L> {
    /// Walks from the root; returns whether the whole plan is terminal.
    pub fn run(&mut self) -> bool {
        if self.plan.nodes.is_empty() {
            return true;
        }
        let mut budget = None;
        self.walk(0, &mut budget)
    }

    fn walk(&mut self, idx: usize, budget: &mut Option<usize>) -> bool {
        if self.cache.terminal[idx] {
            return true;
        }
        let outer = std::mem::replace(&mut self.provisional, false);
        let terminal = self.walk_uncached(idx, budget);
        if terminal && !self.provisional {
            self.cache.terminal[idx] = true;
        }
        self.provisional |= outer;
        terminal
    }

    fn walk_uncached(&mut self, idx: usize, budget: &mut Option<usize>) -> bool {
        let plan = self.plan;
        match &plan.nodes[idx].kind {
            EntryKind::Task(task) => self.walk_task(idx, task, budget),
            EntryKind::Sequence => self.walk_sequence(idx, budget),
            EntryKind::Group => self.walk_all(idx, budget),
            EntryKind::Parallel { max_concurrency } => match max_concurrency {
                Some(max) => {
                    let running = self.running_in(idx);
                    let mut local = Some((*max as usize).saturating_sub(running));
                    if let Some(outer) = *budget {
                        local = local.map(|l| l.min(outer));
                    }
                    let before = local;
                    let t = self.walk_all(idx, &mut local);
                    if let (Some(outer), Some(b), Some(after)) = (budget.as_mut(), before, local) {
                        *outer = outer.saturating_sub(b - after);
                    }
                    t
                }
                None => self.walk_all(idx, budget),
            },
            EntryKind::Loop { id, until, .. } => {
                if self.lookup.loop_done(id) {
                    true
                } else if *until {
                    // As in Smithers: a loop whose `until` holds is done at once; children
                    // that appeared since (ids that depend on outputs) are not run.
                    self.actions.push(Action::LoopEnd(idx));
                    false
                } else {
                    if self.walk_sequence(idx, budget) {
                        self.actions.push(Action::LoopEnd(idx));
                    }
                    // A loop is terminal only once marked done.
                    false
                }
            }
        }
    }

    fn walk_task(&mut self, idx: usize, task: &TaskNode, budget: &mut Option<usize>) -> bool {
        let Some(view) = self.lookup.node(&task.id, task.iteration) else {
            return false;
        };
        if view.state != NodeState::Pending {
            if waits_async(&view, task) {
                self.provisional = true;
                return true;
            }
            return is_terminal(&view, task);
        }
        for dep in &task.depends_on {
            let Some(dep_task) = self
                .plan
                .task_index
                .get(dep)
                .and_then(|&i| self.plan.task(i))
            else {
                continue;
            };
            let Some(dep_view) = self.lookup.node(&dep_task.id, dep_task.iteration) else {
                return false;
            };
            if !is_terminal(&dep_view, dep_task) {
                return false;
            }
        }
        if task.skip {
            self.actions.push(Action::Skip(idx, SkipReason::SkipIf));
            return false;
        }
        if task.approval.is_some() {
            match view.approval {
                Some(ApprovalStatus::Approved) => {}
                // A decided or requested gate whose node is still pending: the decision
                // transaction moves the node itself, so this is a stale view; wait.
                Some(ApprovalStatus::Requested | ApprovalStatus::Denied) => return false,
                // Not asked yet (a row that is not a gate's decision asks again).
                None
                | Some(
                    ApprovalStatus::Rejected
                    | ApprovalStatus::PushedBack
                    | ApprovalStatus::Cancelled,
                ) => {
                    self.actions.push(Action::RequestApproval(idx));
                    return false;
                }
            }
        }
        match task.body {
            TaskBody::Static { .. } => self.actions.push(Action::RunStatic(idx)),
            TaskBody::Approval => self.actions.push(Action::FinishFromDecision(idx)),
            // A timer holds no slot of a parallel's `maxConcurrency`: it only waits.
            TaskBody::Timer { .. } => self.actions.push(Action::Start(idx)),
            TaskBody::Compute | TaskBody::Agent { .. } | TaskBody::Command(_) => match budget {
                Some(0) => {}
                Some(b) => {
                    *b -= 1;
                    self.actions.push(Action::Start(idx));
                }
                None => self.actions.push(Action::Start(idx)),
            },
        }
        false
    }

    fn walk_sequence(&mut self, idx: usize, budget: &mut Option<usize>) -> bool {
        let plan = self.plan;
        let children = &plan.nodes[idx].children;
        let mut i = self.cache.cursor[idx];
        // The cursor only moves past children that stay terminal.
        let mut settled = true;
        while i < children.len() {
            let child = children[i];
            let before = std::mem::replace(&mut self.provisional, false);
            let terminal = self.walk(child, budget);
            settled &= !self.provisional;
            self.provisional |= before;
            if !terminal {
                return false;
            }
            i += 1;
            if settled {
                self.cache.cursor[idx] = i;
            }
        }
        true
    }

    fn walk_all(&mut self, idx: usize, budget: &mut Option<usize>) -> bool {
        let plan = self.plan;
        let children = &plan.nodes[idx].children;
        let start = self.cache.cursor[idx];
        let mut all = true;
        let mut prefix = true;
        for (offset, &child) in children[start..].iter().enumerate() {
            let before = std::mem::replace(&mut self.provisional, false);
            let t = self.walk(child, budget);
            let settled = t && !self.provisional;
            self.provisional |= before;
            all &= t;
            if prefix && settled {
                self.cache.cursor[idx] = start + offset + 1;
            } else {
                prefix = false;
            }
        }
        all
    }

    fn running_in(&self, idx: usize) -> usize {
        let plan = self.plan;
        match &plan.nodes[idx].kind {
            EntryKind::Task(task) => usize::from(
                self.lookup
                    .node(&task.id, task.iteration)
                    .is_some_and(|v| v.state == NodeState::InProgress),
            ),
            _ => plan.nodes[idx]
                .children
                .iter()
                .map(|&c| self.running_in(c))
                .sum(),
        }
    }
}
