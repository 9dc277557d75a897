//! A render that travels with the results it read, and a render that is the plan's graph
//! again (ARCHITECTURE.md, "A render sent with the results it read").
//!
//! A driver whose last render read the output of a task that just finished must render again
//! before the run can go on. Instead of `complete_tasks` (one transaction, whose step asks for
//! the render) and then `submit_graph` (another), it renders at once with the values it is
//! about to report, as the core will store them, and sends both: [`Engine::complete_and_submit`]
//! records the results and, in the same transaction, applies the graph only when recording
//! them changed exactly what the driver assumed. Otherwise the results are recorded as
//! `complete_tasks` would, the graph is dropped, and the step asks for a render as usual.
//!
//! A render whose text is the one the run's plan was built from is named by the id the core
//! gave that text (`Step::graph_id`) rather than sent again: nothing of it crosses the boundary.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::{Step, TaskResult};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::GraphDescriptor;
use crate::logs::ENGINE;
use crate::machines::RunStatus;
use crate::plan::Plan;

use super::Drive;

/// A new id for a graph text a plan was built from: unique in this process, never 0.
pub(super) fn next_graph_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The graph a driver rendered, for [`Engine::complete_and_submit`].
#[derive(Debug, Clone, Copy)]
pub enum RenderedGraph<'a> {
    /// The descriptor's JSON text.
    Text(&'a str),
    /// The text the run's plan was built from, named by its `Step::graph_id`.
    Same(u64),
}

/// A graph checked before the transaction: everything about it that can be refused is.
enum Prepared {
    /// The plan's own graph: nothing to build.
    Same,
    New {
        plan: Plan,
        workflow_name: Option<String>,
        source: Box<str>,
    },
}

impl Engine {
    /// Advances a run with the graph its plan was built from, named by its id (see
    /// [`RenderedGraph::Same`]). An id that is not the plan's now is `STALE_GRAPH`, and
    /// nothing changes: the driver sends the text instead.
    pub fn submit_same_graph(&mut self, run_id: &str, graph_id: u64) -> Result<Step> {
        self.check_graph_id(run_id, graph_id)?;
        self.drive(run_id, |d| {
            d.run.fresh = true;
            Ok(())
        })
    }

    /// Records results of tasks JS ran (as [`Engine::complete_tasks`]) together with the graph
    /// JS rendered assuming them, in one transaction.
    ///
    /// An id that is not the plan's graph now is `STALE_GRAPH`, before anything is written.
    /// Otherwise the results are recorded, exactly as `complete_tasks` records them, and the
    /// graph is applied only when
    /// - every result was a value (`ok`, no command, no sub-run to wait on),
    /// - recording them published exactly those rows, in their order, and nothing else a
    ///   render reads (no output withdrawn, no loop moved), with the run still running: the
    ///   driver rendered from the state the run is now in,
    /// - and the graph is one `submit_graph` takes.
    ///
    /// Otherwise (a value the schema refused, a late or fenced result, a reviewed step that
    /// waits, a cancel, a graph `submit_graph` would refuse) the graph is dropped, nothing of
    /// it is written, and the step owes a render (`needs_render`, no task handed out): the
    /// driver forgets what it assumed, renders from what the step says and submits that, as
    /// after `complete_tasks` (a graph refused comes back refused then, by `submit_graph`).
    pub fn complete_and_submit(
        &mut self,
        run_id: &str,
        results: Vec<TaskResult>,
        graph: RenderedGraph<'_>,
    ) -> Result<Step> {
        if let RenderedGraph::Same(id) = graph {
            self.check_graph_id(run_id, id)?;
        }
        self.driven(run_id)?;
        // A graph submit_graph would refuse is not applied; the render it owes then meets
        // the refusal the usual way.
        let (prepared, schemas) = match self.prepare_graph(run_id, graph) {
            Ok((prepared, schemas)) => (Some(prepared), schemas),
            Err(e) => {
                tracing::debug!(target: ENGINE, run_id, code = e.code(), "graph rendered with the results refused");
                (None, None)
            }
        };
        // The rows the driver rendered with: one per result, each the value it reports.
        let expected: Option<Vec<(String, i64)>> = results
            .iter()
            .map(|r| {
                (r.ok && r.command.is_none() && r.waiting_on.is_none())
                    .then(|| (r.node_id.clone(), r.iteration))
            })
            .collect();
        let step = self.drive(run_id, |d| {
            // As complete_tasks: a cancel made by another process wins over these results.
            d.refresh()?;
            d.fence_late_results()?;
            for result in results {
                d.complete(result)?;
            }
            let prepared = match prepared {
                Some(prepared) if expected.is_some_and(|rows| d.published_only(&rows)) => prepared,
                _ => {
                    tracing::debug!(
                        target: ENGINE,
                        run_id,
                        "graph rendered with the results not applied: a render is owed"
                    );
                    d.run.fresh = false;
                    return Ok(());
                }
            };
            match prepared {
                Prepared::Same => d.run.fresh = true,
                Prepared::New {
                    plan,
                    workflow_name,
                    source,
                } => {
                    if let Some(schemas) = &schemas {
                        d.tx.schemas.apply(
                            d.tx.store,
                            run_id,
                            &mut d.run.schema_versions,
                            schemas,
                            d.tx.now,
                        )?;
                    }
                    d.submit_plan(plan, workflow_name)?;
                    d.run.plan_source = Some(source);
                    d.run.graph_id = next_graph_id();
                }
            }
            d.step.graph_applied = true;
            Ok(())
        })?;
        if step.graph_applied
            && let Some(schemas) = &schemas
        {
            schemas.log_written(run_id);
        }
        Ok(step)
    }

    /// Refuses an id that does not name the run's plan's graph now.
    fn check_graph_id(&self, run_id: &str, graph_id: u64) -> Result<()> {
        let current = self.driven(run_id)?.graph_id;
        if graph_id == 0 || graph_id != current {
            return Err(Error::StaleGraph {
                run_id: run_id.into(),
                given: graph_id,
                current,
            });
        }
        Ok(())
    }

    /// Everything `submit_graph` would refuse about a graph, checked before a write; the plan
    /// built from a new text, with what its schemas need written.
    fn prepare_graph(
        &mut self,
        run_id: &str,
        graph: RenderedGraph<'_>,
    ) -> Result<(Prepared, Option<crate::schemas::SchemaPlan>)> {
        let text = match graph {
            RenderedGraph::Same(id) => {
                self.check_graph_id(run_id, id)?;
                return Ok((Prepared::Same, None));
            }
            RenderedGraph::Text(text) => text,
        };
        let run = self.driven(run_id)?;
        if run.plan_source.as_deref() == Some(text) {
            return Ok((Prepared::Same, None));
        }
        let bound = run.schema_versions.clone();
        let graph = GraphDescriptor::parse(text)?;
        graph.validate()?;
        let schemas = self
            .schemas
            .plan(&*self.store, Some((run_id, &bound)), &graph.schemas)?;
        let workflow_name = graph.workflow.name.clone();
        let plan = Plan::build(graph);
        plan.check_rewinds()?;
        Ok((
            Prepared::New {
                plan,
                workflow_name,
                source: text.into(),
            },
            Some(schemas),
        ))
    }
}

impl Drive<'_, '_> {
    /// Whether recording results published exactly `rows` (node, iteration), in order, and
    /// nothing else a render reads, with the run still running.
    fn published_only(&self, rows: &[(String, i64)]) -> bool {
        self.run.status == RunStatus::Running
            && self.run.failure.is_none()
            && self.step.reset.is_empty()
            && self.step.loops.is_empty()
            && self.step.outputs.len() == rows.len()
            && self
                .step
                .outputs
                .iter()
                .zip(rows)
                .all(|(out, (node, iteration))| out.node_id == *node && out.iteration == *iteration)
    }
}
