//! The in-memory copy of a run this engine drives: its plan, the walk's caches, and the
//! state of every node and loop. Loaded from the store when the run is claimed; changed
//! only by the applier (moves) and by the drive's refresh (what other writers changed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::api::RunError;
use crate::machines::{ApprovalStatus, NodeState, RunStatus};
use crate::plan::{NodeLookup, NodeView, Plan, WalkCache};

#[derive(Debug, Clone)]
pub(crate) struct NodeRecord {
    pub state: NodeState,
    pub approval: Option<ApprovalStatus>,
    pub attempts: i64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopRecord {
    pub iteration: i64,
    pub done: bool,
}

pub(crate) struct ActiveRun {
    pub status: RunStatus,
    /// For the environment of command tasks (DAG_NAME, DAG_PARAMS_JSON).
    pub workflow_name: String,
    pub input_json: String,
    pub plan: Option<Plan>,
    /// The descriptor text the plan was built from, when it came as text
    /// (`submit_graph_json`): a render that gives the same text again reuses the plan.
    pub plan_source: Option<Box<str>>,
    /// The id this engine gave `plan_source` (`Step::graph_id`; 0: none): a driver whose
    /// render gives that text again says so with the id instead of sending the text.
    pub graph_id: u64,
    pub cache: WalkCache,
    /// No output the render read has changed since the plan was submitted.
    pub fresh: bool,
    nodes: HashMap<String, BTreeMap<i64, NodeRecord>>,
    pub loops: HashMap<String, LoopRecord>,
    /// Why the run must end (the first reason found); the drive ends it at its next turn.
    pub failure: Option<RunError>,
    pub in_flight: usize,
    pub waiting: usize,
    /// Per plan: the tasks downstream of a gate (see `Plan::downstream`).
    pub downstream: HashMap<usize, Rc<HashSet<usize>>>,
    /// The schema version of each output key this run reads and writes through.
    pub schema_versions: HashMap<String, i64>,
}

impl NodeLookup for ActiveRun {
    fn node(&self, id: &str, iteration: i64) -> Option<NodeView> {
        self.record(id, iteration).map(|n| NodeView {
            state: n.state,
            approval: n.approval,
        })
    }

    fn loop_done(&self, loop_id: &str) -> bool {
        self.loops.get(loop_id).is_some_and(|l| l.done)
    }
}

impl ActiveRun {
    pub(crate) fn new(status: RunStatus, workflow_name: String, input_json: String) -> ActiveRun {
        ActiveRun {
            status,
            workflow_name,
            input_json,
            plan: None,
            plan_source: None,
            graph_id: 0,
            cache: WalkCache::default(),
            fresh: false,
            nodes: HashMap::new(),
            loops: HashMap::new(),
            failure: None,
            in_flight: 0,
            waiting: 0,
            downstream: HashMap::new(),
            schema_versions: HashMap::new(),
        }
    }

    pub(crate) fn record(&self, id: &str, iteration: i64) -> Option<&NodeRecord> {
        self.nodes.get(id).and_then(|its| its.get(&iteration))
    }

    pub(crate) fn record_mut(&mut self, id: &str, iteration: i64) -> Option<&mut NodeRecord> {
        self.nodes
            .get_mut(id)
            .and_then(|its| its.get_mut(&iteration))
    }

    /// Moves a node, keeping the in-flight and waiting counters true to the node states.
    pub(crate) fn set_state(&mut self, id: &str, iteration: i64, next: NodeState) {
        let Some(rec) = self.record_mut(id, iteration) else {
            return;
        };
        let prev = std::mem::replace(&mut rec.state, next);
        self.count(prev, -1);
        self.count(next, 1);
    }

    fn count(&mut self, state: NodeState, by: isize) {
        let counter = match state {
            NodeState::InProgress => &mut self.in_flight,
            NodeState::WaitingApproval => &mut self.waiting,
            _ => return,
        };
        *counter = counter.saturating_add_signed(by);
    }

    pub(crate) fn insert(&mut self, id: &str, iteration: i64, rec: NodeRecord) {
        self.count(rec.state, 1);
        self.nodes
            .entry(id.to_string())
            .or_default()
            .insert(iteration, rec);
    }

    /// An `async` gate of the current plan waits for its decision.
    pub(crate) fn waits_async(&self) -> bool {
        self.waiting > 0
            && self.plan.as_ref().is_some_and(|plan| {
                plan.tasks().any(|(_, t)| {
                    t.approval.as_ref().is_some_and(|a| a.wait_async)
                        && self
                            .node(&t.id, t.iteration)
                            .is_some_and(|v| v.state == NodeState::WaitingApproval)
                })
            })
    }

    /// An output of this node changed: a render that read it is owed.
    pub(crate) fn output_changed(&mut self, node_id: &str) {
        if let Some(plan) = &self.plan
            && plan.render_depends_on(node_id)
        {
            self.fresh = false;
        }
    }

    /// The nodes that wait for a decision (`id`, or `id#iteration` in a loop), sorted.
    pub(crate) fn waiting_nodes(&self) -> Vec<String> {
        let mut waiting: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|(id, its)| {
                its.iter()
                    .filter(|(_, r)| r.state == NodeState::WaitingApproval)
                    .map(move |(it, _)| {
                        if *it == 0 {
                            id.clone()
                        } else {
                            format!("{id}#{it}")
                        }
                    })
            })
            .collect();
        waiting.sort();
        waiting
    }

    /// Records why the run must end, unless a reason was found first.
    pub(crate) fn fail(&mut self, error: RunError) {
        if self.failure.is_none() {
            self.failure = Some(error);
        }
    }
}
