//! The drive layer: the only code that loops. A driving call (`submit_graph`,
//! `complete_tasks`, `advance`, `fail_run`) takes the run it drives out of memory, opens one
//! transaction and builds one [`Drive`]: the transaction, the run, and the step being built.
//! It walks the plan, turns what the walk asks for into moves of the machines, and has the
//! applier carry them out; it never looks the run up again, and the machines and the applier
//! never call back into it.
//!
//! - `act.rs`: the actions of a walk (start a task, request an approval, skip, end a loop).
//! - `complete.rs`: the results of tasks JS ran.
//! - `env.rs`: what a started task gets: approver inputs, push-backs, a command's process.
//! - `refresh.rs`: what other writers changed (a cancel, decisions, ended sub-runs), and
//!   parking a run that can only wait.
//! - `render.rs`: a render that travels with the results it read (`complete_and_submit`),
//!   and a render that is the plan's graph again (`submit_same_graph`).

mod act;
mod complete;
mod env;
mod refresh;
mod render;

pub use render::RenderedGraph;

use std::path::Path;
use std::rc::Rc;

use serde_json::Value;

use crate::api::{RunError, Step, TaskResult};
use crate::apply::{Driven, Tx};
use crate::engine::Engine;
use crate::error::{Error, Result, codes};
use crate::graph::{GraphDescriptor, TaskNode};
use crate::logs::ENGINE;
use crate::machines::{Effect, NodeKey, NodeState, RunEvent};
use crate::memory::ActiveRun;
use crate::memory::{LoopRecord, NodeRecord};
use crate::output::OutputTable;
use crate::plan::{EntryKind, Plan, Walk, WalkCache};
use crate::store::NodeInsert;

/// One driving call: its transaction, the run it drives, the step it answers with.
pub(crate) struct Drive<'a, 'e> {
    pub tx: &'a mut Tx<'e>,
    pub run_id: &'a str,
    pub run: &'a mut ActiveRun,
    pub step: Step,
    /// This engine (recorded on the attempts it starts).
    pub owner: &'a str,
    /// Where command tasks' logs go.
    pub log_dir: &'a Path,
}

impl Engine {
    /// Runs one driving call on a run this engine drives, in one transaction: the moves inside
    /// it are all committed before JS sees the answer, or none is. On an error the run's
    /// in-memory copy is dropped; claiming the run again reloads it from the store. A run
    /// that ended or waits for decisions is no longer driven here after the call.
    fn drive(
        &mut self,
        run_id: &str,
        f: impl FnOnce(&mut Drive<'_, '_>) -> Result<()>,
    ) -> Result<Step> {
        let mut run = self
            .runs
            .remove(run_id)
            .ok_or_else(|| Error::RunNotClaimed {
                run_id: run_id.into(),
            })?;
        let owner = self.config.owner.clone();
        let log_dir = self.config.log_dir.clone();
        let mut step = self
            .transaction(|tx| {
                let mut drive = Drive {
                    tx,
                    run_id,
                    run: &mut run,
                    step: Step::new(),
                    owner: &owner,
                    log_dir: &log_dir,
                };
                f(&mut drive)?;
                drive.advance()?;
                Ok(drive.step)
            })
            .inspect_err(|_| {
                self.unsure.insert(run_id.into());
            })?;
        step.graph_id = run.graph_id;
        if tracing::enabled!(target: ENGINE, tracing::Level::DEBUG) {
            let tasks: Vec<&str> = step.tasks.iter().map(|t| t.node_id.as_str()).collect();
            tracing::debug!(
                target: ENGINE,
                run_id,
                status = step.status,
                tasks = ?tasks,
                in_flight = step.in_flight,
                needs_render = step.needs_render,
                waiting = ?step.waiting,
                "scheduled"
            );
        }
        if !run.status.is_terminal() && !run.status.is_waiting() {
            self.runs.insert(run_id.into(), run);
        }
        Ok(step)
    }

    fn driven(&self, run_id: &str) -> Result<&ActiveRun> {
        self.runs.get(run_id).ok_or_else(|| Error::RunNotClaimed {
            run_id: run_id.into(),
        })
    }

    /// Takes a freshly rendered graph and advances the run with it.
    pub fn submit_graph(
        &mut self,
        run_id: &str,
        graph: GraphDescriptor,
    ) -> Result<crate::api::Step> {
        self.submit_graph_from(run_id, graph, None)
    }

    /// [`Engine::submit_graph`] of a descriptor parsed from `source`, which the run keeps
    /// with its plan (`plan_source`, with a new `graph_id`).
    fn submit_graph_from(
        &mut self,
        run_id: &str,
        graph: GraphDescriptor,
        source: Option<&str>,
    ) -> Result<crate::api::Step> {
        let bound = self.driven(run_id)?.schema_versions.clone();
        graph.validate()?;
        // Everything about the schemas that can be refused is refused before a write.
        let schemas = self
            .schemas
            .plan(&*self.store, Some((run_id, &bound)), &graph.schemas)
            .inspect_err(|e| {
                tracing::info!(
                    target: ENGINE,
                    run_id,
                    code = e.code(),
                    error = e.to_string().as_str(),
                    "output schemas refused"
                )
            })?;
        let step = self.drive(run_id, |d| {
            d.tx.schemas.apply(
                d.tx.store,
                run_id,
                &mut d.run.schema_versions,
                &schemas,
                d.tx.now,
            )?;
            d.submit(graph)?;
            if let Some(source) = source {
                d.run.plan_source = Some(source.into());
                d.run.graph_id = render::next_graph_id();
            }
            Ok(())
        })?;
        schemas.log_written(run_id);
        Ok(step)
    }

    /// [`Engine::submit_graph`] from the descriptor's JSON text. A render whose text is the
    /// one the run's plan was built from (the usual case when a render reads outputs only
    /// inside task bodies) reuses the plan and the walk's caches: nothing is parsed, checked or
    /// built again, and the run advances as after any render.
    pub fn submit_graph_json(&mut self, run_id: &str, json: &str) -> Result<Step> {
        let same = self
            .runs
            .get(run_id)
            .and_then(|run| run.plan_source.as_deref())
            .is_some_and(|source| source == json);
        if same {
            return self.drive(run_id, |d| {
                d.run.fresh = true;
                Ok(())
            });
        }
        self.submit_graph_from(run_id, GraphDescriptor::parse(json)?, Some(json))
    }

    /// Records results of compute tasks JS ran, then advances.
    pub fn complete_tasks(&mut self, run_id: &str, results: Vec<TaskResult>) -> Result<Step> {
        self.drive(run_id, |d| {
            // A cancel made by another process must win over results that arrive after it.
            d.refresh()?;
            d.fence_late_results()?;
            for result in results {
                d.complete(result)?;
            }
            Ok(())
        })
    }

    /// Advances a run as far as it can go without JS: requests reachable approvals, runs
    /// static bodies, hands out compute tasks, moves loops, and settles the run's status.
    pub fn advance(&mut self, run_id: &str) -> Result<Step> {
        self.drive(run_id, |_| Ok(()))
    }

    /// Fails a run this engine drives, for a reason found outside the core (the workflow
    /// could not be rendered, say).
    pub fn fail_run(&mut self, run_id: &str, error: RunError) -> Result<Step> {
        self.drive(run_id, |d| d.end_run(RunEvent::Fail, Some(error)))
    }

    /// Checks a value against the output schema of a task of a run this engine drives,
    /// without recording anything: the driver asks before it reports an agent's answer, so
    /// an answer that does not fit gets one follow-up before the attempt fails.
    pub fn check_output(&mut self, run_id: &str, node_id: &str, value: &Value) -> Result<()> {
        let run = self.driven(run_id)?;
        let key = run
            .plan
            .as_ref()
            .and_then(|p| p.task_index.get(node_id).and_then(|&i| p.task(i)))
            .ok_or_else(|| Error::NodeNotFound {
                run_id: run_id.into(),
                node_id: node_id.into(),
                iteration: 0,
            })?
            .output
            .clone();
        let bound = run.schema_versions.clone();
        self.schemas
            .run_table(&*self.store, run_id, Some(&bound), &key)?
            .validate(node_id, value)
    }

    /// Everything `submit_graph` would refuse, checked without a run and without writing:
    /// the descriptor and every output schema (identifiers, column names, JSON Schema
    /// compilation, SQL names and column types that clash with this database's).
    pub fn validate_graph(&mut self, graph: &GraphDescriptor) -> Result<()> {
        graph.validate()?;
        if graph.has_rewinds() {
            Plan::build(graph.clone()).check_rewinds()?;
        }
        self.schemas
            .plan(&*self.store, None, &graph.schemas)
            .inspect_err(|e| {
                tracing::info!(
                    target: ENGINE,
                    code = e.code(),
                    error = e.to_string().as_str(),
                    "output schemas refused"
                )
            })?;
        Ok(())
    }
}

impl Drive<'_, '_> {
    /// Carries out effects, with the run's memory and the step following.
    pub(crate) fn apply(&mut self, effects: Vec<Effect>) -> Result<()> {
        self.tx
            .applier(Some(Driven {
                run_id: self.run_id,
                run: self.run,
                step: &mut self.step,
            }))
            .apply(effects)
    }

    pub(crate) fn key(&self, task: &TaskNode) -> NodeKey {
        NodeKey::new(self.run_id, &task.id, task.iteration)
    }

    /// The table of an output key, through the version this run is bound to.
    pub(crate) fn table(&mut self, key: &str) -> Result<Rc<OutputTable>> {
        self.tx
            .table(self.run_id, Some(&self.run.schema_versions), key)
    }

    /// A task of the current plan (by arena index).
    pub(crate) fn plan_task(&self, idx: usize) -> Result<TaskNode> {
        self.run
            .plan
            .as_ref()
            .and_then(|p| p.task(idx))
            .cloned()
            .ok_or_else(|| Error::RunNotClaimed {
                run_id: self.run_id.into(),
            })
    }

    /// A task of the current plan (by id).
    pub(crate) fn task_named(&self, node_id: &str) -> Option<&TaskNode> {
        self.run
            .plan
            .as_ref()
            .and_then(|p| p.task_index.get(node_id).and_then(|&i| p.task(i)))
    }

    /// The node's state in memory.
    pub(crate) fn state_of(&self, node_id: &str, iteration: i64) -> Option<NodeState> {
        self.run.record(node_id, iteration).map(|r| r.state)
    }

    /// A new plan: the nodes and loops it adds are stored (pending), a node the plan keeps
    /// that failed (or was rejected) fails the run, and the walk starts over.
    fn submit(&mut self, graph: GraphDescriptor) -> Result<()> {
        let workflow_name = graph.workflow.name.clone();
        let plan = Plan::build(graph);
        plan.check_rewinds()?;
        self.submit_plan(plan, workflow_name)
    }

    /// [`Drive::submit`] of a plan already built and checked.
    fn submit_plan(&mut self, plan: Plan, workflow_name: Option<String>) -> Result<()> {
        if let Some(name) = workflow_name
            && name != self.run.workflow_name
        {
            self.tx.store.set_workflow_name(self.run_id, &name)?;
            self.run.workflow_name = name;
        }
        let mut nodes = Vec::new();
        let mut loops = Vec::new();
        for (idx, entry) in plan.nodes.iter().enumerate() {
            match &entry.kind {
                EntryKind::Task(task) if self.run.record(&task.id, task.iteration).is_none() => {
                    nodes.push(NodeInsert {
                        node_id: &task.id,
                        iteration: task.iteration,
                        output_table: &task.output,
                        loop_id: entry.loop_id.as_deref(),
                        label: task.label.as_deref(),
                        ordinal: idx as i64,
                    });
                }
                EntryKind::Loop { id, .. } if !self.run.loops.contains_key(id) => {
                    loops.push(id.as_str());
                }
                _ => {}
            }
        }
        self.tx
            .store
            .insert_nodes(self.run_id, &nodes, self.tx.now)?;
        self.tx.store.insert_loops(self.run_id, &loops)?;
        for n in &nodes {
            self.run.insert(
                n.node_id,
                n.iteration,
                NodeRecord {
                    state: NodeState::Pending,
                    approval: None,
                    attempts: 0,
                },
            );
        }
        for id in loops {
            self.run.loops.insert(
                id.to_string(),
                LoopRecord {
                    iteration: 0,
                    done: false,
                },
            );
        }
        drop(nodes);
        if self.run.failure.is_none() {
            self.find_failed(&plan)?;
        }
        self.run.cache = WalkCache::new(&plan);
        self.run.downstream.clear();
        self.run.plan = Some(plan);
        self.run.plan_source = None;
        self.run.graph_id = 0;
        self.run.fresh = true;
        Ok(())
    }

    /// A node the plan holds that failed (without `continueOnFail`) or was rejected ends the
    /// run; the node's own error says why (a denial, a task error) when it has one.
    fn find_failed(&mut self, plan: &Plan) -> Result<()> {
        for (_, task) in plan.tasks() {
            let Some(state) = self.state_of(&task.id, task.iteration) else {
                continue;
            };
            if !(state == NodeState::Rejected
                || (state == NodeState::Failed && !task.continue_on_fail))
            {
                continue;
            }
            let stored = self.stored_error(&self.key(task))?;
            let field = |k: &str| error_field(stored.as_ref(), k);
            self.run.fail(RunError {
                code: field("code").unwrap_or_else(|| codes::TASK_FAILED.into()),
                message: field("message").unwrap_or_else(|| format!("Task failed: {}", task.id)),
                node_id: Some(task.id.clone()),
            });
            return Ok(());
        }
        Ok(())
    }

    /// The error stored on a node, as JSON.
    pub(crate) fn stored_error(&self, key: &NodeKey) -> Result<Option<Value>> {
        Ok(self
            .tx
            .store
            .node(key)?
            .and_then(|n| n.error_json)
            .and_then(|e| serde_json::from_str(&e).ok()))
    }

    /// Walks the plan until nothing more can happen without JS (or a decision), then
    /// settles the step's answer.
    fn advance(&mut self) -> Result<()> {
        self.refresh()?;
        loop {
            if self.run.status.is_terminal() {
                break;
            }
            if let Some(failure) = self.run.failure.clone() {
                // A reviewer's rejection ends the run `rejected`, not `failed`.
                let event = if failure.code == codes::APPROVAL_REJECTED {
                    RunEvent::Reject
                } else {
                    RunEvent::Fail
                };
                self.end_run(event, Some(failure))?;
                break;
            }
            if self.run.plan.is_none() || !self.run.fresh {
                self.step.needs_render = true;
                break;
            }
            let (actions, root_terminal) = self.walk();
            if actions.is_empty() {
                let run = &*self.run;
                // An `async` gate that still waits lets the rest of the plan end, not the run.
                if root_terminal && run.in_flight == 0 && !run.waits_async() {
                    self.end_run(RunEvent::Finish, None)?;
                } else if run.in_flight == 0 && run.waiting > 0 {
                    if self.park()? {
                        continue;
                    }
                } else if run.in_flight == 0 {
                    let failure = RunError {
                        code: codes::RUN_STUCK.into(),
                        message: "no task can run and nothing is waiting for a decision".into(),
                        node_id: None,
                    };
                    self.end_run(RunEvent::Fail, Some(failure))?;
                }
                break;
            }
            for action in actions {
                self.act(action)?;
            }
        }
        let run = &*self.run;
        self.step.status = run.status.as_str();
        self.step.in_flight = run.in_flight;
        if run.status.is_terminal() {
            self.step.error = run.failure.clone();
            self.step.tasks.clear();
            self.step.needs_render = false;
        } else if run.status.is_waiting() {
            self.step.waiting = run.waiting_nodes();
        }
        Ok(())
    }

    /// One walk of the plan: the actions it asks for, and whether the whole plan is terminal.
    fn walk(&mut self) -> (Vec<crate::plan::Action>, bool) {
        let Some(plan) = self.run.plan.take() else {
            return (Vec::new(), false);
        };
        let mut cache = std::mem::take(&mut self.run.cache);
        let (actions, terminal) = {
            let mut walk = Walk {
                plan: &plan,
                lookup: &*self.run,
                cache: &mut cache,
                actions: Vec::new(),
                provisional: false,
            };
            let terminal = walk.run();
            (walk.actions, terminal)
        };
        self.run.cache = cache;
        self.run.plan = Some(plan);
        (actions, terminal)
    }

    /// Ends the run this call drives.
    pub(crate) fn end_run(&mut self, event: RunEvent, failure: Option<RunError>) -> Result<()> {
        let from = self.run.status;
        let memory = Driven {
            run_id: self.run_id,
            run: self.run,
            step: &mut self.step,
        };
        crate::runs::end_run(self.tx, self.run_id, from, Some(memory), event, failure)
    }
}

/// A text field (`code`, `message`) of an error stored as JSON on a node.
pub(crate) fn error_field(error: Option<&Value>, key: &str) -> Option<String> {
    error
        .and_then(|e| e.get(key))
        .and_then(Value::as_str)
        .map(String::from)
}
