//! The engine: creates and claims runs, takes graphs from the front end, advances runs with
//! the scheduler, applies each transition in one transaction, records task results.
//!
//! See ARCHITECTURE.md for the contract with the JS driver.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{Level, debug, enabled};

use crate::command::{CommandOutcome, CommandSpec};
use crate::error::{Error, Result};
use crate::events::{Event, EventBatch, log_committed};
use crate::graph::{
    ApprovalMode, ApprovalSpec, CommandBody, EntryKind, GraphDescriptor, OnMaxReached, Plan,
    TaskBody, TaskNode,
};
use crate::output::OutputTable;
use crate::owner::{self, LeaseKeeper};
use crate::plan::{Action, ApprovalStatus, NodeLookup, NodeView, Walk, WalkCache};
use crate::schemas::SchemaCache;
use crate::state::{NodeEvent, NodeState, RunEvent, RunStatus};
use crate::store::{self, now_ms};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRun {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub workflow_path: Option<String>,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub input_schema: Option<Value>,
    /// Who started the run (recorded; a decision request may forbid them from approving it).
    #[serde(default)]
    pub started_by: Option<String>,
    /// The task whose sub-run this is: when the sub-run ends, that task (if it waits on it)
    /// runs again and its run moves on.
    #[serde(default)]
    pub parent: Option<ParentRef>,
}

/// The calling task of a sub-run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub run_id: String,
    pub node_id: String,
    #[serde(default)]
    pub iteration: i64,
}

/// How `claim_run_with` takes a run: over a live owner (`force`), and with which workflow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimOptions {
    #[serde(default)]
    pub force: bool,
    /// The workflow file the caller drives the run with (absolute).
    #[serde(default)]
    pub workflow_path: Option<String>,
    /// The name that workflow renders (`<Workflow name>`).
    #[serde(default)]
    pub workflow_name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRow {
    pub table: String,
    pub node_id: String,
    pub iteration: i64,
    pub value: Value,
}

/// What JS needs to render a run: its input, loop positions and every output so far.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub run_id: String,
    pub status: &'static str,
    pub workflow_name: String,
    pub workflow_path: Option<String>,
    pub input: Value,
    pub loops: BTreeMap<String, i64>,
    pub node_loops: BTreeMap<String, String>,
    pub outputs: Vec<OutputRow>,
    pub error: Option<RunError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskToRun {
    pub node_id: String,
    pub iteration: i64,
    pub attempt: i64,
    pub output: String,
    pub timeout_ms: Option<u64>,
    /// A command task: the driver hands this to the core's runner and reports its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSpec>,
    /// Approver inputs that reach this task (from upstream gates, or its own push-back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BTreeMap<String, String>>,
    /// Set when a reviewer sent this step back: round, who, when, inputs, history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_back: Option<Value>,
}

/// The answer to every driving call: where the run is and what JS must do next.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub status: &'static str,
    pub needs_render: bool,
    pub tasks: Vec<TaskToRun>,
    pub outputs: Vec<OutputRow>,
    pub loops: BTreeMap<String, i64>,
    pub in_flight: usize,
    pub error: Option<RunError>,
    /// When the run parks: the nodes waiting for a decision.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// Outputs a push-back withdrew (its reset scope runs again): the driver forgets them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reset: Vec<OutputRef>,
}

/// Names one output row: table, node, iteration.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRef {
    pub table: String,
    pub node_id: String,
    pub iteration: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    pub node_id: String,
    #[serde(default)]
    pub iteration: i64,
    pub attempt: i64,
    pub ok: bool,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub error: Option<TaskError>,
    /// The outcome of a command task's process; the core turns it into output or failure.
    #[serde(default)]
    pub command: Option<CommandOutcome>,
    /// The task started a sub-run that now waits for a decision of its own: the task waits
    /// with it (until the sub-run ends) instead of finishing or failing.
    #[serde(default)]
    pub waiting_on: Option<String>,
    /// An agent task's call: kept on the attempt whether it succeeded or failed.
    #[serde(default)]
    pub agent: Option<AgentCall>,
}

/// What an agent attempt asked and answered (`_smithers_attempts`: `prompt`,
/// `response_text`, `usage_json`, `agent_json`, and the CLI agent's log paths).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCall {
    /// The agent's id, class or CLI, and its model when known.
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt as sent (with the output instructions).
    #[serde(default)]
    pub prompt: String,
    /// The raw text of the answer; absent when the call itself failed.
    #[serde(default)]
    pub text: Option<String>,
    /// Token counts (`inputTokens`, `outputTokens`, …), over every call of the attempt.
    #[serde(default)]
    pub usage: Option<Value>,
    /// The one follow-up asked when the answer had no valid JSON: `{prompt, text, reason}`.
    #[serde(default)]
    pub follow_up: Option<Value>,
    /// Tool calls the agent made through smithers' tools.
    #[serde(default)]
    pub tool_calls: Option<i64>,
    /// A CLI agent's process logs.
    #[serde(default)]
    pub stdout_path: Option<String>,
    #[serde(default)]
    pub stderr_path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

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
    workflow_name: String,
    input_json: String,
    plan: Option<Plan>,
    cache: WalkCache,
    /// No output the render read has changed since the plan was submitted.
    fresh: bool,
    pub nodes: HashMap<String, BTreeMap<i64, NodeRecord>>,
    pub loops: HashMap<String, LoopRecord>,
    failure: Option<RunError>,
    in_flight: usize,
    waiting: usize,
    /// Per plan: the tasks downstream of a gate (see `Plan::downstream`).
    downstream: HashMap<usize, Rc<HashSet<usize>>>,
    /// The schema version of each output key this run reads and writes through.
    pub(crate) schema_versions: HashMap<String, i64>,
}

impl NodeLookup for ActiveRun {
    fn node(&self, id: &str, iteration: i64) -> Option<NodeView> {
        self.nodes
            .get(id)
            .and_then(|its| its.get(&iteration))
            .map(|n| NodeView {
                state: n.state,
                approval: n.approval,
            })
    }
    fn loop_done(&self, loop_id: &str) -> bool {
        self.loops.get(loop_id).is_some_and(|l| l.done)
    }
}

impl ActiveRun {
    fn record(&mut self, id: &str, iteration: i64) -> Option<&mut NodeRecord> {
        self.nodes
            .get_mut(id)
            .and_then(|its| its.get_mut(&iteration))
    }

    /// Keeps the in-flight and waiting counters true to the node states.
    fn set_state(&mut self, id: &str, iteration: i64, next: NodeState) {
        let Some(rec) = self
            .nodes
            .get_mut(id)
            .and_then(|its| its.get_mut(&iteration))
        else {
            return;
        };
        let prev = rec.state;
        rec.state = next;
        match prev {
            NodeState::InProgress => self.in_flight -= 1,
            NodeState::WaitingApproval => self.waiting -= 1,
            _ => {}
        }
        match next {
            NodeState::InProgress => self.in_flight += 1,
            NodeState::WaitingApproval => self.waiting += 1,
            _ => {}
        }
    }

    fn insert(&mut self, id: &str, iteration: i64, rec: NodeRecord) {
        match rec.state {
            NodeState::InProgress => self.in_flight += 1,
            NodeState::WaitingApproval => self.waiting += 1,
            _ => {}
        }
        self.nodes
            .entry(id.to_string())
            .or_default()
            .insert(iteration, rec);
    }

    /// An `async` gate of the current plan waits for its decision.
    fn waits_async(&self) -> bool {
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

    fn output_changed(&mut self, node_id: &str) {
        if let Some(plan) = &self.plan
            && plan.render_depends_on(node_id)
        {
            self.fresh = false;
        }
    }
}

pub struct Engine {
    pub(crate) conn: Connection,
    db_path: PathBuf,
    /// Where command tasks' stdout/stderr logs go: `<db stem>.logs/<run id>/`.
    pub(crate) log_dir: PathBuf,
    pub(crate) owner: String,
    /// How long a claim on a run lasts without renewal (see `owner.rs`).
    lease_ms: i64,
    /// Renews this engine's leases while it lives; started when it first owns a run.
    lease_keeper: Option<LeaseKeeper>,
    pub(crate) schemas: SchemaCache,
    pub(crate) runs: HashMap<String, ActiveRun>,
    pub(crate) events: Vec<Event>,
    /// Keep committed events for `take_events` (on while someone in-process listens).
    pub(crate) buffer_events: bool,
    /// Inside a driving call's transaction (see `batched`).
    pub(crate) batching: bool,
    pending_events: Vec<Event>,
}

/// A write transaction, or a part of the driving call's transaction when one is open.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    owned: bool,
    done: bool,
}

pub(crate) fn begin(conn: &Connection, batching: bool) -> Result<Tx<'_>> {
    if !batching {
        conn.execute_batch("BEGIN IMMEDIATE")?;
    }
    Ok(Tx {
        conn,
        owned: !batching,
        done: false,
    })
}

impl Tx<'_> {
    pub(crate) fn commit(mut self) -> Result<()> {
        if self.owned {
            self.conn.execute_batch("COMMIT")?;
        }
        self.done = true;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.owned && !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

pub fn check_run_id(run_id: &str) -> Result<()> {
    if crate::contract::is_run_id(run_id) {
        Ok(())
    } else {
        Err(Error::InvalidRunId(run_id.into()))
    }
}

/// Why a claim could take a run another engine had owned, for the `run claimed` log line:
/// "" (nobody held it, or this engine did), "owner process dead", "lease expired", "forced".
fn taken_over(
    previous: Option<&str>,
    me: &str,
    lease_expires_at_ms: Option<i64>,
    force: bool,
    now: i64,
) -> &'static str {
    match previous {
        None => "",
        Some(p) if p == me => "",
        Some(p) if owner::liveness(p) == owner::Liveness::Dead => "owner process dead",
        Some(_) if lease_expires_at_ms.is_some_and(|t| t <= now) => "lease expired",
        Some(_) if force => "forced",
        Some(_) => "",
    }
}

impl Engine {
    /// Opens (or creates) a database for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(path, store::OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: store::OpenOptions) -> Result<Engine> {
        let path = path.as_ref();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "smithers".into());
        let log_dir = std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .with_file_name(format!("{stem}.logs"));
        Ok(Engine {
            conn: store::open(path, options)?,
            db_path: path.to_path_buf(),
            log_dir,
            owner: owner::new_owner_id(),
            lease_ms: owner::DEFAULT_LEASE_MS,
            lease_keeper: None,
            schemas: SchemaCache::default(),
            runs: HashMap::new(),
            events: Vec::new(),
            buffer_events: false,
            batching: false,
            pending_events: Vec::new(),
        })
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn set_log_dir(&mut self, dir: impl Into<PathBuf>) {
        self.log_dir = dir.into();
    }

    /// In-process subscribers turn this on; events are always persisted either way.
    pub fn set_event_buffering(&mut self, on: bool) {
        self.buffer_events = on;
        if !on {
            self.events.clear();
        }
    }

    /// Changes whenever another connection commits (`PRAGMA data_version`): a cheap way for a
    /// driver to notice decisions made by other processes.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Everything `submit_graph` would refuse, checked without a run and without writing:
    /// the descriptor and every output schema (identifiers, column names, JSON Schema
    /// compilation, SQL names and column types that clash with this database's).
    pub fn validate_graph(&mut self, graph: &GraphDescriptor) -> Result<()> {
        graph.validate()?;
        if graph_has_rewinds(&graph.root) {
            Plan::build(graph.clone()).check_rewinds()?;
        }
        self.plan_schemas(None, &graph.schemas).inspect_err(|e| {
            tracing::info!(
                code = e.code(),
                error = e.to_string().as_str(),
                "output schemas refused"
            )
        })?;
        Ok(())
    }

    /// How long a claim lasts without renewal; renewed every third of it.
    pub fn set_lease_ms(&mut self, lease_ms: i64) {
        self.lease_ms = lease_ms.max(30);
        self.lease_keeper = None;
    }

    /// The expiry of a lease taken now, and the thread that renews it started.
    fn lease_until(&mut self) -> Result<i64> {
        if self.lease_keeper.is_none() {
            self.lease_keeper = Some(LeaseKeeper::start(
                self.db_path.clone(),
                self.owner.clone(),
                self.lease_ms,
            )?);
            debug!(
                owner = self.owner.as_str(),
                lease_ms = self.lease_ms,
                "lease keeper started"
            );
        }
        Ok(now_ms() + self.lease_ms)
    }

    /// Fails a run this engine drives, for a reason found outside the core (the workflow
    /// could not be rendered, say).
    pub fn fail_run(&mut self, run_id: &str, error: RunError) -> Result<Step> {
        if !self.runs.contains_key(run_id) {
            return Err(Error::RunNotClaimed {
                run_id: run_id.into(),
            });
        }
        self.end_run(run_id, RunEvent::Fail, Some(error))?;
        self.advance(run_id)
    }

    pub fn owner_id(&self) -> &str {
        &self.owner
    }

    pub(crate) fn publish(&mut self, batch: EventBatch) {
        if self.batching {
            self.pending_events.extend(batch.events);
        } else {
            log_committed(&batch.events);
            if self.buffer_events {
                self.events.extend(batch.events);
            }
        }
    }

    /// Runs one driving call (submit, complete, advance) as one transaction: the transitions
    /// inside it are all committed before JS sees the answer, or none is. On an error the
    /// run's in-memory state is dropped; claiming the run again reloads it from the store.
    fn batched<T>(&mut self, run_id: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.batching {
            return f(self);
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.batching = true;
        let result = f(self);
        self.batching = false;
        let result = result.and_then(|v| {
            self.conn.execute_batch("COMMIT")?;
            Ok(v)
        });
        let events = std::mem::take(&mut self.pending_events);
        match result {
            Ok(v) => {
                log_committed(&events);
                if self.buffer_events {
                    self.events.extend(events);
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.runs.remove(run_id);
                // Schema versions registered inside the rolled-back transaction do not exist.
                self.schemas.clear();
                Err(e)
            }
        }
    }

    /// Events committed since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    // ---- runs ------------------------------------------------------------------------------

    /// Creates a run owned by this engine and returns its first snapshot.
    pub fn create_run(&mut self, new: NewRun) -> Result<Snapshot> {
        let run_id = match new.run_id {
            Some(id) => id,
            None => format!("run-{}", random_suffix()),
        };
        check_run_id(&run_id)?;
        if let Some(schema) = &new.input_schema {
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(schema)
                .map_err(|e| Error::InvalidSchema {
                    key: "input".into(),
                    message: e.to_string(),
                })?;
            let errors: Vec<String> = validator
                .iter_errors(&new.input)
                .take(8)
                .map(|e| e.to_string())
                .collect();
            if !errors.is_empty() {
                return Err(Error::InvalidInput { errors });
            }
        }
        if let Some(by) = &new.started_by {
            crate::decision::check_name("startedBy", by)?;
        }
        let name = new.workflow_name.unwrap_or_else(|| "workflow".into());
        let owner = self.owner.clone();
        let lease = self.lease_until()?;
        let tx = begin(&self.conn, self.batching)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM _smithers_runs WHERE run_id = ?1",
                [&run_id],
                |_| Ok(true),
            )
            .optional()?
            .is_some();
        if exists {
            return Err(Error::RunExists { run_id });
        }
        let now = now_ms();
        let input_json = serde_json::to_string(&new.input)?;
        let parent = new.parent.as_ref();
        tx.execute(
            "INSERT INTO _smithers_runs (run_id, workflow_name, workflow_path, status, input_json, owner, created_at_ms, updated_at_ms, started_by, \
               parent_run_id, parent_node_id, parent_iteration, lease_expires_at_ms) \
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![run_id, name, new.workflow_path, input_json, owner, now, new.started_by,
                    parent.map(|p| &p.run_id), parent.map(|p| &p.node_id), parent.map(|p| p.iteration), lease],
        )?;
        let mut batch = EventBatch::default();
        batch.emit(
            &tx,
            &run_id,
            "RunStarted",
            json!({ "workflowName": name, "status": "running" }),
        )?;
        tx.commit()?;
        self.publish(batch);
        debug!(
            run_id = run_id.as_str(),
            owner = self.owner.as_str(),
            workflow = name.as_str(),
            "run created and claimed"
        );
        let mut active = new_active(RunStatus::Running);
        active.workflow_name = name.clone();
        active.input_json = input_json;
        self.runs.insert(run_id.clone(), active);
        Ok(Snapshot {
            run_id,
            status: RunStatus::Running.as_str(),
            workflow_name: name,
            workflow_path: new.workflow_path,
            input: new.input,
            loops: BTreeMap::new(),
            node_loops: BTreeMap::new(),
            outputs: Vec::new(),
            error: None,
        })
    }

    /// Takes a run over to drive it (resume). Nodes a dead owner left in progress go back to
    /// pending: their tasks never completed, so running them again loses nothing, and a
    /// completed task is never run again. A finished, failed or cancelled run is returned as
    /// it is, without being claimed.
    pub fn claim_run(&mut self, run_id: &str, force: bool) -> Result<Snapshot> {
        self.claim_run_with(
            run_id,
            &ClaimOptions {
                force,
                ..ClaimOptions::default()
            },
        )
    }

    /// [`Engine::claim_run`], saying which workflow the caller will drive the run with: a run
    /// recorded with another workflow name (or another file, when the name is not given) is
    /// refused (`WORKFLOW_MISMATCH`, nothing written) unless `force`, which also records the
    /// new workflow on the run. Another file with the run's workflow name is recorded as the
    /// run's file from now on (the file was moved).
    pub fn claim_run_with(&mut self, run_id: &str, options: &ClaimOptions) -> Result<Snapshot> {
        let force = options.force;
        let me = self.owner.clone();
        let lease = self.lease_until()?;
        let now = now_ms();
        let tx = begin(&self.conn, self.batching)?;
        type RunRow = (
            String,
            Option<String>,
            String,
            Option<String>,
            String,
            Option<String>,
            Option<i64>,
        );
        let row: Option<RunRow> = tx
            .query_row(
                "SELECT status, owner, workflow_name, workflow_path, input_json, error_json, lease_expires_at_ms FROM _smithers_runs WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()?;
        let Some((
            status,
            owner,
            mut workflow_name,
            mut workflow_path,
            input_json,
            error_json,
            lease_expires,
        )) = row
        else {
            return Err(Error::RunNotFound {
                run_id: run_id.into(),
            });
        };
        let status = RunStatus::parse(&status).unwrap_or(RunStatus::Failed);
        let error: Option<RunError> = error_json
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok());
        let input: Value = serde_json::from_str(&input_json)?;
        if status.is_terminal() {
            drop(tx);
            let outputs = self.read_outputs(run_id)?;
            return Ok(Snapshot {
                run_id: run_id.into(),
                status: status.as_str(),
                workflow_name,
                workflow_path,
                input,
                loops: BTreeMap::new(),
                node_loops: BTreeMap::new(),
                outputs,
                error,
            });
        }
        if self.runs.contains_key(run_id) {
            return Err(Error::RunOwned {
                run_id: run_id.into(),
                owner: me,
            });
        }
        if let Some(owner) = owner.as_deref()
            && owner != me
            && !force
            && owner::holds(owner, lease_expires, now)
        {
            debug!(
                run_id,
                owner,
                lease_expires_at_ms = lease_expires,
                "claim refused: another live process owns the run"
            );
            return Err(Error::RunOwned {
                run_id: run_id.into(),
                owner: owner.into(),
            });
        }
        // A workflow is known by its name (`<Workflow name>`): another name is another
        // workflow. Another file with the same name is the same workflow moved or copied (the
        // way to resume a run whose file is gone); a file alone, with no name to tell, is not
        // trusted.
        let other_path = options.workflow_path.as_ref().filter(|p| {
            workflow_path
                .as_ref()
                .is_some_and(|recorded| recorded != *p)
        });
        let other_name = options
            .workflow_name
            .as_ref()
            .filter(|n| **n != workflow_name);
        let unverified = other_path.is_some() && options.workflow_name.is_none();
        if !force && (other_name.is_some() || unverified) {
            let shown = |name: &str, path: Option<&String>| match path {
                Some(p) => format!("{name} ({p})"),
                None => name.to_string(),
            };
            let recorded = shown(&workflow_name, workflow_path.as_ref());
            let given = shown(
                options
                    .workflow_name
                    .as_deref()
                    .unwrap_or("a workflow of unknown name"),
                options.workflow_path.as_ref(),
            );
            debug!(
                run_id,
                recorded = recorded.as_str(),
                given = given.as_str(),
                "claim refused: the run is another workflow's (WORKFLOW_MISMATCH)"
            );
            return Err(Error::WorkflowMismatch {
                run_id: run_id.into(),
                recorded,
                given,
            });
        }
        if force || other_path.is_some() {
            // Resumed from the file given (moved, or taken over on purpose): the run records it.
            if let Some(p) = &options.workflow_path {
                workflow_path = Some(p.clone());
            }
            if let Some(n) = options.workflow_name.as_ref().filter(|_| force) {
                workflow_name = n.clone();
            }
            tx.execute(
                "UPDATE _smithers_runs SET workflow_path = ?2, workflow_name = ?3 WHERE run_id = ?1",
                params![run_id, workflow_path, workflow_name],
            )?;
            debug!(
                run_id,
                workflow = workflow_name.as_str(),
                workflow_path = workflow_path.as_deref().unwrap_or(""),
                forced = force,
                "run's workflow recorded anew (moved, or resumed with another on purpose)"
            );
        }
        let mut batch = EventBatch::default();
        // Attempts that were open when the previous owner died.
        let abandoned: Vec<(String, i64, i64)> = tx
            .prepare("SELECT node_id, iteration, attempts FROM _smithers_nodes WHERE run_id = ?1 AND state = 'in-progress'")?
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (node_id, iteration, attempt) in &abandoned {
            let next = NodeState::InProgress.apply(NodeEvent::Abandon)?;
            tx.execute(
                "UPDATE _smithers_nodes SET state = ?4, updated_at_ms = ?5 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
                params![run_id, node_id, iteration, next.as_str(), now],
            )?;
            tx.execute(
                "UPDATE _smithers_attempts SET state = 'abandoned', finished_at_ms = ?5 \
                 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
                params![run_id, node_id, iteration, attempt, now],
            )?;
            batch.emit(
                &tx,
                run_id,
                "NodeAbandoned",
                json!({ "nodeId": node_id, "iteration": iteration, "attempt": attempt }),
            )?;
        }
        let next_status = status.apply(RunEvent::Wake)?;
        // Claimed: whatever kept a watcher from resuming it is history.
        tx.execute(
            "UPDATE _smithers_runs SET owner = ?2, status = ?3, updated_at_ms = ?4, lease_expires_at_ms = ?5, \
             resume_error_json = NULL, resume_error_at_ms = NULL WHERE run_id = ?1",
            params![run_id, me, next_status.as_str(), now, lease],
        )?;
        if next_status != status {
            batch.emit(
                &tx,
                run_id,
                "RunStatusChanged",
                json!({ "status": next_status.as_str(), "previous": status.as_str() }),
            )?;
        }
        tx.commit()?;
        self.publish(batch);
        debug!(
            run_id,
            owner = me.as_str(),
            previous_owner = owner.as_deref().unwrap_or(""),
            taken_over = taken_over(owner.as_deref(), &me, lease_expires, force, now),
            forced = force,
            abandoned = abandoned.len(),
            status = next_status.as_str(),
            "run claimed"
        );

        let mut run = new_active(next_status);
        run.workflow_name = workflow_name.clone();
        run.input_json = input_json;
        let mut node_loops = BTreeMap::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT n.node_id, n.iteration, n.state, n.attempts, n.loop_id, a.status \
                 FROM _smithers_nodes n LEFT JOIN _smithers_approvals a \
                   ON a.run_id = n.run_id AND a.node_id = n.node_id AND a.iteration = n.iteration \
                 WHERE n.run_id = ?1",
            )?;
            let rows = stmt.query_map([run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })?;
            for row in rows {
                let (node_id, iteration, state, attempts, loop_id, approval) = row?;
                if let Some(loop_id) = loop_id {
                    node_loops.insert(node_id.clone(), loop_id);
                }
                run.insert(
                    &node_id,
                    iteration,
                    NodeRecord {
                        state: NodeState::parse(&state).unwrap_or(NodeState::Pending),
                        approval: approval.as_deref().and_then(ApprovalStatus::parse),
                        attempts,
                    },
                );
            }
        }
        let mut loops = BTreeMap::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = ?1",
            )?;
            for row in stmt.query_map([run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })? {
                let (loop_id, iteration, done) = row?;
                loops.insert(loop_id.clone(), iteration);
                run.loops.insert(loop_id, LoopRecord { iteration, done });
            }
        }
        run.schema_versions = self.run_bindings(run_id)?;
        self.runs.insert(run_id.into(), run);
        let outputs = self.read_outputs(run_id)?;
        Ok(Snapshot {
            run_id: run_id.into(),
            status: next_status.as_str(),
            workflow_name,
            workflow_path,
            input,
            loops,
            node_loops,
            outputs,
            error,
        })
    }

    /// Lets go of a run this engine drives (the process is about to stop driving it). A run
    /// that is still running stays `running` with no owner: `resume` picks it up.
    pub fn release_run(&mut self, run_id: &str) -> Result<()> {
        if self.runs.remove(run_id).is_some() {
            self.conn.execute(
                "UPDATE _smithers_runs SET owner = NULL, lease_expires_at_ms = NULL WHERE run_id = ?1 AND owner = ?2",
                params![run_id, self.owner],
            )?;
            debug!(run_id, owner = self.owner.as_str(), "run released");
        }
        Ok(())
    }

    pub fn is_driving(&self, run_id: &str) -> bool {
        self.runs.contains_key(run_id)
    }

    fn active(&mut self, run_id: &str) -> Result<&mut ActiveRun> {
        self.runs
            .get_mut(run_id)
            .ok_or_else(|| Error::RunNotClaimed {
                run_id: run_id.into(),
            })
    }

    // ---- driving ---------------------------------------------------------------------------

    /// Takes a freshly rendered graph and advances the run with it.
    pub fn submit_graph(&mut self, run_id: &str, graph: GraphDescriptor) -> Result<Step> {
        self.active(run_id)?;
        graph.validate()?;
        // Everything about the schemas that can be refused is refused before a write.
        let schemas = self
            .plan_schemas(Some(run_id), &graph.schemas)
            .inspect_err(|e| {
                tracing::info!(
                    run_id,
                    code = e.code(),
                    error = e.to_string().as_str(),
                    "output schemas refused"
                )
            })?;
        self.batched(run_id, |engine| {
            engine.apply_schemas(run_id, schemas)?;
            engine.submit_graph_inner(run_id, graph)
        })
    }

    fn submit_graph_inner(&mut self, run_id: &str, graph: GraphDescriptor) -> Result<Step> {
        let workflow_name = graph.workflow.name.clone();
        let plan = Plan::build(graph);
        plan.check_rewinds()?;
        let now = now_ms();
        let run = self
            .runs
            .get_mut(run_id)
            .ok_or_else(|| Error::RunNotClaimed {
                run_id: run_id.into(),
            })?;
        let tx = begin(&self.conn, self.batching)?;
        if let Some(name) = &workflow_name {
            tx.prepare_cached("UPDATE _smithers_runs SET workflow_name = ?2 WHERE run_id = ?1 AND workflow_name != ?2")?
                .execute(params![run_id, name])?;
            run.workflow_name.clone_from(name);
        }
        {
            let mut insert_node = tx.prepare_cached(
                "INSERT OR IGNORE INTO _smithers_nodes (run_id, node_id, iteration, state, output_table, loop_id, label, ordinal, updated_at_ms) \
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut insert_loop =
                tx.prepare_cached("INSERT OR IGNORE INTO _smithers_loops (run_id, loop_id, iteration, done) VALUES (?1, ?2, 0, 0)")?;
            for (idx, entry) in plan.nodes.iter().enumerate() {
                match &entry.kind {
                    EntryKind::Task(task) if run.node(&task.id, task.iteration).is_none() => {
                        insert_node.execute(params![
                            run_id,
                            task.id,
                            task.iteration,
                            task.output,
                            plan.nodes[idx].loop_id,
                            task.label,
                            idx as i64,
                            now
                        ])?;
                        run.insert(
                            &task.id,
                            task.iteration,
                            NodeRecord {
                                state: NodeState::Pending,
                                approval: None,
                                attempts: 0,
                            },
                        );
                    }
                    EntryKind::Loop { id, .. } if !run.loops.contains_key(id) => {
                        insert_loop.execute(params![run_id, id])?;
                        run.loops.insert(
                            id.clone(),
                            LoopRecord {
                                iteration: 0,
                                done: false,
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
        tx.commit()?;
        for (_, task) in plan.tasks() {
            if let Some(rec) = run.node(&task.id, task.iteration)
                && (rec.state == NodeState::Rejected
                    || (rec.state == NodeState::Failed && !task.continue_on_fail))
                && run.failure.is_none()
            {
                // The node's own error says why (a denial, a task error) when it has one.
                let stored: Option<Value> = self
                    .conn
                    .query_row(
                        "SELECT error_json FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
                        params![run_id, task.id, task.iteration],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .optional()?
                    .flatten()
                    .and_then(|e| serde_json::from_str(&e).ok());
                let field = |k: &str| error_field(stored.as_ref(), k);
                run.failure = Some(RunError {
                    code: field("code").unwrap_or_else(|| "TASK_FAILED".into()),
                    message: field("message")
                        .unwrap_or_else(|| format!("Task failed: {}", task.id)),
                    node_id: Some(task.id.clone()),
                });
            }
        }
        run.cache = WalkCache::new(&plan);
        run.downstream.clear();
        run.plan = Some(plan);
        run.fresh = true;
        self.advance(run_id)
    }

    /// Records results of compute tasks JS ran, then advances.
    pub fn complete_tasks(&mut self, run_id: &str, results: Vec<TaskResult>) -> Result<Step> {
        self.active(run_id)?;
        self.batched(run_id, |engine| {
            engine.complete_tasks_inner(run_id, results)
        })
    }

    fn complete_tasks_inner(&mut self, run_id: &str, results: Vec<TaskResult>) -> Result<Step> {
        let mut step = empty_step();
        // A cancel made by another process must win over results that arrive after it.
        self.refresh_from_store(run_id, &mut step)?;
        for result in results {
            self.complete_one(run_id, result, &mut step)?;
        }
        let mut next = self.advance(run_id)?;
        step.outputs.append(&mut next.outputs);
        next.outputs = step.outputs;
        Ok(next)
    }

    fn complete_one(&mut self, run_id: &str, result: TaskResult, step: &mut Step) -> Result<()> {
        if let Some(call) = &result.agent {
            // In the driving call's transaction, so it commits with the result it explains.
            self.record_agent_call(run_id, &result, call)?;
        }
        let run = self.runs.get(run_id).ok_or_else(|| Error::RunNotClaimed {
            run_id: run_id.into(),
        })?;
        let Some(task) = run
            .plan
            .as_ref()
            .and_then(|p| p.task_index.get(&result.node_id).and_then(|&i| p.task(i)))
            .cloned()
        else {
            // The node was unmounted by a later render; nothing depends on its output now.
            return self.close_attempt(run_id, &result, "orphaned");
        };
        let current = run
            .nodes
            .get(&result.node_id)
            .and_then(|its| its.get(&result.iteration))
            .cloned();
        let Some(rec) = current else { return Ok(()) };
        if run.status.is_terminal()
            || rec.state != NodeState::InProgress
            || rec.attempts != result.attempt
        {
            // A late result for an attempt the run no longer waits for (cancelled, failed).
            return self.close_attempt(run_id, &result, "ignored");
        }
        if let Some(sub_run) = &result.waiting_on {
            return self.await_sub_run(run_id, &task, rec.attempts, sub_run);
        }
        let table = self.run_table(run_id, &task.output)?;
        if let Some(outcome) = &result.command {
            return self.complete_command(run_id, &task, rec.attempts, &table, outcome, step);
        }
        if result.ok {
            match table.validate(&task.id, &result.value) {
                Ok(()) => self.finish_task(run_id, &task, rec.attempts, &table, result.value, step),
                // An output that does not match its schema will not match on a retry either.
                Err(err) => self.fail_task(run_id, &task, rec.attempts, task_error(&err), false),
            }
        } else {
            let error = result.error.unwrap_or_else(|| TaskError {
                message: "the task failed without an error".into(),
                ..TaskError::default()
            });
            self.fail_task(run_id, &task, rec.attempts, error, true)
        }
    }

    /// Keeps an agent attempt's prompt, answer and usage on its attempt row, and reports the
    /// tokens it used (`TokenUsageReported`).
    fn record_agent_call(
        &mut self,
        run_id: &str,
        result: &TaskResult,
        call: &AgentCall,
    ) -> Result<()> {
        let meta = json!({
            "agent": call.agent,
            "model": call.model,
            "followUp": call.follow_up,
            "toolCalls": call.tool_calls,
        });
        let usage = call.usage.as_ref().map(Value::to_string);
        let tx = begin(&self.conn, self.batching)?;
        tx.prepare_cached(
            "UPDATE _smithers_attempts SET prompt = ?5, response_text = ?6, usage_json = ?7, agent_json = ?8, \
             stdout_path = COALESCE(?9, stdout_path), stderr_path = COALESCE(?10, stderr_path) \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
        )?
        .execute(params![
            run_id,
            result.node_id,
            result.iteration,
            result.attempt,
            call.prompt,
            call.text,
            usage,
            meta.to_string(),
            call.stdout_path,
            call.stderr_path
        ])?;
        let mut batch = EventBatch::default();
        if let Some(usage) = call
            .usage
            .as_ref()
            .filter(|u| u.as_object().is_some_and(|o| !o.is_empty()))
        {
            let mut payload = json!({
                "nodeId": result.node_id,
                "iteration": result.iteration,
                "attempt": result.attempt,
                "agent": call.agent,
                "model": call.model,
            });
            if let (Some(p), Some(u)) = (payload.as_object_mut(), usage.as_object()) {
                p.extend(u.clone());
            }
            batch.emit(&tx, run_id, "TokenUsageReported", payload)?;
        }
        tx.commit()?;
        self.publish(batch);
        if enabled!(Level::DEBUG) {
            let tokens = |key: &str| {
                call.usage
                    .as_ref()
                    .and_then(|u| u.get(key))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            debug!(
                run_id,
                node_id = result.node_id.as_str(),
                iteration = result.iteration,
                attempt = result.attempt,
                ok = result.ok,
                agent = call.agent.as_deref().unwrap_or(""),
                model = call.model.as_deref().unwrap_or(""),
                follow_up = call.follow_up.is_some(),
                tool_calls = call.tool_calls.unwrap_or(0),
                input_tokens = tokens("inputTokens"),
                output_tokens = tokens("outputTokens"),
                answer_bytes = call.text.as_deref().map_or(0, str::len),
                "agent attempt recorded"
            );
        }
        Ok(())
    }

    /// Checks a value against the output schema of a task of a run this engine drives,
    /// without recording anything: the driver asks before it reports an agent's answer, so
    /// an answer that does not fit gets one follow-up before the attempt fails.
    pub fn check_output(&mut self, run_id: &str, node_id: &str, value: &Value) -> Result<()> {
        let key = {
            let run = self.active(run_id)?;
            let task = run
                .plan
                .as_ref()
                .and_then(|p| p.task_index.get(node_id).and_then(|&i| p.task(i)))
                .ok_or_else(|| Error::NodeNotFound {
                    run_id: run_id.into(),
                    node_id: node_id.into(),
                    iteration: 0,
                })?;
            task.output.clone()
        };
        self.run_table(run_id, &key)?.validate(node_id, value)
    }

    /// A command's exit becomes the task's output (`{exitCode, stdout, stderr}`, or stdout
    /// parsed as JSON) or its failure.
    fn complete_command(
        &mut self,
        run_id: &str,
        task: &TaskNode,
        attempt: i64,
        table: &OutputTable,
        outcome: &CommandOutcome,
        step: &mut Step,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE _smithers_attempts SET exit_code = ?5 \
                 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
            )?
            .execute(params![
                run_id,
                task.id,
                task.iteration,
                attempt,
                outcome.exit_code
            ])?;
        if !outcome.succeeded() {
            let last_line = |s: &str| {
                s.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.chars().take(500).collect::<String>())
            };
            let (code, message) = if let Some(e) = &outcome.spawn_error {
                ("COMMAND_NOT_STARTED", e.clone())
            } else if outcome.timed_out {
                (
                    "TASK_TIMEOUT",
                    format!("timed out after {} ms", task.timeout_ms.unwrap_or(0)),
                )
            } else {
                let how = match (outcome.exit_code, outcome.signal) {
                    (Some(code), _) => format!("exited with code {code}"),
                    (None, Some(sig)) => format!("was killed by signal {sig}"),
                    _ => "ended abnormally".into(),
                };
                let detail = last_line(&outcome.stderr)
                    .or_else(|| last_line(&outcome.stdout))
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default();
                ("COMMAND_FAILED", format!("the command {how}{detail}"))
            };
            let error = TaskError {
                code: Some(code.into()),
                name: None,
                message,
                stack: None,
            };
            return self.fail_task(run_id, task, attempt, error, true);
        }
        let parse_json =
            matches!(&task.body, TaskBody::Command(b) if b.parse.as_deref() == Some("json"));
        let value = if parse_json {
            let stdout = if outcome.stdout_truncated {
                self.stdout_of(run_id, task, attempt)?
            } else {
                outcome.stdout.clone()
            };
            match serde_json::from_str::<Value>(stdout.trim()) {
                Ok(v) => v,
                Err(e) => {
                    let error = TaskError {
                        code: Some("INVALID_OUTPUT".into()),
                        name: None,
                        message: format!("stdout is not JSON ({e})"),
                        stack: None,
                    };
                    return self.fail_task(run_id, task, attempt, error, false);
                }
            }
        } else {
            json!({ "exitCode": outcome.exit_code.unwrap_or(0), "stdout": outcome.stdout, "stderr": outcome.stderr })
        };
        match table.validate(&task.id, &value) {
            Ok(()) => self.finish_task(run_id, task, attempt, table, value, step),
            Err(err) => self.fail_task(run_id, task, attempt, task_error(&err), false),
        }
    }

    /// The whole stdout of an attempt, from its log (at most 16 MiB).
    fn stdout_of(&self, run_id: &str, task: &TaskNode, attempt: i64) -> Result<String> {
        let path: Option<String> = self
            .conn
            .query_row(
                "SELECT stdout_path FROM _smithers_attempts WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
                params![run_id, task.id, task.iteration, attempt],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(path) = path else {
            return Ok(String::new());
        };
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(&path)?
            .take(16 * 1024 * 1024)
            .read_to_string(&mut text)?;
        Ok(text)
    }

    fn close_attempt(&mut self, run_id: &str, result: &TaskResult, state: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE _smithers_attempts SET state = ?5, finished_at_ms = ?6 \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4 AND state = 'running'",
            params![run_id, result.node_id, result.iteration, result.attempt, state, now_ms()],
        )?;
        Ok(())
    }

    fn finish_task(
        &mut self,
        run_id: &str,
        task: &TaskNode,
        attempt: i64,
        table: &OutputTable,
        value: Value,
        step: &mut Step,
    ) -> Result<()> {
        if task.review.is_some() {
            return self.await_review(run_id, task, attempt, table, value);
        }
        let next = NodeState::InProgress.apply(NodeEvent::Finish)?;
        let tx = begin(&self.conn, self.batching)?;
        write_result(&tx, run_id, task, attempt, next, table, &value)?;
        let mut batch = EventBatch::default();
        batch.emit(
            &tx,
            run_id,
            "NodeFinished",
            json!({ "nodeId": task.id, "iteration": task.iteration, "attempt": attempt }),
        )?;
        tx.commit()?;
        self.publish(batch);
        let run = self.active(run_id)?;
        run.set_state(&task.id, task.iteration, next);
        run.output_changed(&task.id);
        step.outputs.push(OutputRow {
            table: task.output.clone(),
            node_id: task.id.clone(),
            iteration: task.iteration,
            value,
        });
        Ok(())
    }

    /// A reviewed step ran: its output is written (so the reviewer sees it) and the node waits
    /// for a decision. Dependents stay blocked, and no render is asked for, until approval.
    fn await_review(
        &mut self,
        run_id: &str,
        task: &TaskNode,
        attempt: i64,
        table: &OutputTable,
        value: Value,
    ) -> Result<()> {
        let Some(review) = &task.review else {
            return Ok(());
        };
        let reset_scope = self
            .active(run_id)?
            .plan
            .as_ref()
            .and_then(|p| p.task_index.get(&task.id).map(|&i| p.reset_scope(i)))
            .unwrap_or_else(|| vec![(task.id.clone(), task.iteration)]);
        let now = now_ms();
        let next = NodeState::InProgress.apply(NodeEvent::AwaitReview)?;
        let tx = begin(&self.conn, self.batching)?;
        write_result(&tx, run_id, task, attempt, next, table, &value)?;
        let stdout_path: Option<String> = tx
            .query_row(
                "SELECT stdout_path FROM _smithers_attempts WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
                params![run_id, task.id, task.iteration, attempt],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let title = task
            .label
            .clone()
            .or_else(|| review.prompt.clone())
            .unwrap_or_else(|| format!("Review {}", task.id));
        let request = json!({
            "title": title,
            "summary": review.prompt,
            "prompt": review.prompt,
            "input": review.input,
            "required": review.required,
            "allowedUsers": review.allowed_users,
            "allowedScopes": review.allowed_scopes,
            "label": task.label,
            "meta": task.meta,
            "attempt": attempt,
            "stdoutPath": stdout_path,
            // What the reviewer decides on, shown by the inbox next to the prompt.
            "output": value,
            "rewindTo": review.rewind_to,
            // What a push-back sends back to pending (the decision has no plan to ask).
            "resetScope": reset_scope,
        });
        // A step sent back comes here again: its row moves to the next round.
        tx.prepare_cached(
            "INSERT INTO _smithers_approvals (run_id, node_id, iteration, status, mode, on_deny, output_table, requested_at_ms, request_json, kind, round) \
             VALUES (?1, ?2, ?3, 'requested', 'review', 'fail', ?4, ?5, ?6, 'review', 1) \
             ON CONFLICT(run_id, node_id, iteration) DO UPDATE SET status = 'requested', \
               requested_at_ms = excluded.requested_at_ms, request_json = excluded.request_json, \
               decided_at_ms = NULL, decided_by = NULL, note = NULL, reason = NULL, inputs_json = NULL \
             WHERE _smithers_approvals.status = 'pushed-back'",
        )?
        .execute(params![
            run_id,
            task.id,
            task.iteration,
            task.output,
            now,
            serde_json::to_string(&request)?
        ])?;
        let round: i64 = tx
            .prepare_cached(
                "SELECT round FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
            )?
            .query_row(params![run_id, task.id, task.iteration], |r| r.get(0))?;
        let batch = waiting_events(
            &tx,
            run_id,
            task,
            json!({ "title": title, "summary": review.prompt, "kind": "review", "round": round }),
        )?;
        tx.commit()?;
        self.entered_waiting(run_id, task, next, batch)
    }

    /// After a transaction that decided a node of a run this engine drives (an auto-approval).
    pub(crate) fn decided_here(
        &mut self,
        run_id: &str,
        task: &TaskNode,
        next: NodeState,
        approval: Option<ApprovalStatus>,
        output: OutputRow,
        step: &mut Step,
    ) -> Result<()> {
        let run = self.active(run_id)?;
        run.set_state(&task.id, task.iteration, next);
        if let Some(rec) = run.record(&task.id, task.iteration) {
            rec.approval = approval;
        }
        run.output_changed(&task.id);
        step.outputs.push(output);
        Ok(())
    }

    /// The task's sub-run waits for a decision of its own: the task waits with it, holding
    /// no thread, until the sub-run ends (`wake_caller`). Its attempt is closed as `waiting`.
    fn await_sub_run(
        &mut self,
        run_id: &str,
        task: &TaskNode,
        attempt: i64,
        sub_run: &str,
    ) -> Result<()> {
        check_run_id(sub_run)?;
        let now = now_ms();
        let tx = begin(&self.conn, self.batching)?;
        let sub_status: Option<RunStatus> = tx
            .query_row(
                "SELECT status FROM _smithers_runs WHERE run_id = ?1",
                [sub_run],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .as_deref()
            .and_then(RunStatus::parse);
        let Some(sub_status) = sub_status else {
            drop(tx);
            let error = TaskError {
                code: Some("SUBRUN_FAILED".into()),
                name: None,
                message: format!("sub-run {sub_run} does not exist"),
                stack: None,
            };
            return self.fail_task(run_id, task, attempt, error, false);
        };
        // It ended between its driver's return and this call (decided elsewhere): the task
        // runs again at once and reads its result.
        let next = NodeState::InProgress.apply(if sub_status.is_terminal() {
            NodeEvent::Retry
        } else {
            NodeEvent::AwaitSubRun
        })?;
        set_node_row(
            &tx,
            run_id,
            &task.id,
            task.iteration,
            next,
            attempt,
            None,
            None,
        )?;
        tx.prepare_cached(
            "UPDATE _smithers_nodes SET sub_run_id = ?4 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
        )?
        .execute(params![run_id, task.id, task.iteration, sub_run])?;
        tx.prepare_cached(
            "UPDATE _smithers_attempts SET state = 'waiting', finished_at_ms = ?5 \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
        )?
        .execute(params![run_id, task.id, task.iteration, attempt, now])?;
        let mut batch = EventBatch::default();
        batch.emit(
            &tx,
            run_id,
            if next == NodeState::Pending {
                "NodeSubRunEnded"
            } else {
                "NodeWaitingSubRun"
            },
            json!({ "nodeId": task.id, "iteration": task.iteration, "subRunId": sub_run }),
        )?;
        tx.commit()?;
        self.publish(batch);
        debug!(
            run_id,
            node_id = task.id.as_str(),
            iteration = task.iteration,
            sub_run,
            sub_run_status = sub_status.as_str(),
            waits = next != NodeState::Pending,
            "task waits on its sub-run"
        );
        self.active(run_id)?
            .set_state(&task.id, task.iteration, next);
        Ok(())
    }

    /// After the transaction that made a node wait for a decision committed.
    fn entered_waiting(
        &mut self,
        run_id: &str,
        task: &TaskNode,
        next: NodeState,
        batch: EventBatch,
    ) -> Result<()> {
        self.publish(batch);
        let run = self.active(run_id)?;
        run.set_state(&task.id, task.iteration, next);
        if let Some(rec) = run.record(&task.id, task.iteration) {
            rec.approval = Some(ApprovalStatus::Requested);
        }
        Ok(())
    }

    fn fail_task(
        &mut self,
        run_id: &str,
        task: &TaskNode,
        attempt: i64,
        error: TaskError,
        retryable: bool,
    ) -> Result<()> {
        let failures_before: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM _smithers_attempts \
                 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND state = 'failed'",
            )?
            .query_row(params![run_id, task.id, task.iteration], |r| r.get(0))?;
        let retry = retryable && failures_before < i64::from(task.retries);
        debug!(
            run_id,
            node_id = task.id.as_str(),
            iteration = task.iteration,
            attempt,
            retries = task.retries,
            failures_before,
            retry,
            error = error.message.as_str(),
            "task failed"
        );
        let next = NodeState::InProgress.apply(if retry {
            NodeEvent::Retry
        } else {
            NodeEvent::Fail
        })?;
        let now = now_ms();
        let error_json = serde_json::to_string(&error)?;
        let tx = begin(&self.conn, self.batching)?;
        set_node_row(
            &tx,
            run_id,
            &task.id,
            task.iteration,
            next,
            attempt,
            None,
            Some(&error_json),
        )?;
        tx.prepare_cached(
            "UPDATE _smithers_attempts SET state = 'failed', finished_at_ms = ?5, error_json = ?6 \
             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
        )?
        .execute(params![
            run_id,
            task.id,
            task.iteration,
            attempt,
            now,
            error_json
        ])?;
        let mut batch = EventBatch::default();
        let kind = if retry { "NodeRetrying" } else { "NodeFailed" };
        batch.emit(
            &tx,
            run_id,
            kind,
            json!({ "nodeId": task.id, "iteration": task.iteration, "attempt": attempt, "error": error }),
        )?;
        tx.commit()?;
        self.publish(batch);
        let run = self.active(run_id)?;
        run.set_state(&task.id, task.iteration, next);
        if next == NodeState::Failed && !task.continue_on_fail && run.failure.is_none() {
            run.failure = Some(RunError {
                code: error.code.clone().unwrap_or_else(|| "TASK_FAILED".into()),
                message: format!("Task {} failed: {}", task.id, error.message),
                node_id: Some(task.id.clone()),
            });
        }
        Ok(())
    }

    /// Advances a run as far as it can go without JS: requests reachable approvals, runs
    /// static bodies, hands out compute tasks, moves loops, and settles the run's status.
    pub fn advance(&mut self, run_id: &str) -> Result<Step> {
        self.active(run_id)?;
        self.batched(run_id, |engine| engine.advance_inner(run_id))
    }

    fn advance_inner(&mut self, run_id: &str) -> Result<Step> {
        let mut step = empty_step();
        self.refresh_from_store(run_id, &mut step)?;
        loop {
            let run = self.active(run_id)?;
            if run.status.is_terminal() {
                break;
            }
            if let Some(failure) = run.failure.clone() {
                // A reviewer's rejection ends the run `rejected`, not `failed`.
                let event = if failure.code == "APPROVAL_REJECTED" {
                    RunEvent::Reject
                } else {
                    RunEvent::Fail
                };
                self.end_run(run_id, event, Some(failure))?;
                break;
            }
            if run.plan.is_none() || !run.fresh {
                step.needs_render = true;
                break;
            }
            let (actions, root_terminal) = {
                let run = self
                    .runs
                    .get_mut(run_id)
                    .ok_or_else(|| Error::RunNotClaimed {
                        run_id: run_id.into(),
                    })?;
                let plan = run.plan.take().ok_or_else(|| Error::RunNotClaimed {
                    run_id: run_id.into(),
                })?;
                let mut cache = std::mem::take(&mut run.cache);
                let (actions, terminal) = {
                    let mut walk = Walk {
                        plan: &plan,
                        lookup: &*run,
                        cache: &mut cache,
                        actions: Vec::new(),
                        provisional: false,
                    };
                    let terminal = walk.run();
                    (walk.actions, terminal)
                };
                run.cache = cache;
                run.plan = Some(plan);
                (actions, terminal)
            };
            if actions.is_empty() {
                let run = self.active(run_id)?;
                // An `async` gate that still waits lets the rest of the plan end, not the run.
                if root_terminal && run.in_flight == 0 && !run.waits_async() {
                    self.end_run(run_id, RunEvent::Finish, None)?;
                } else if run.in_flight == 0 && run.waiting > 0 {
                    if self.park(run_id, &mut step)? {
                        continue;
                    }
                } else if run.in_flight == 0 {
                    let failure = RunError {
                        code: "RUN_STUCK".into(),
                        message: "no task can run and nothing is waiting for a decision".into(),
                        node_id: None,
                    };
                    self.end_run(run_id, RunEvent::Fail, Some(failure))?;
                }
                break;
            }
            for action in actions {
                self.apply(run_id, action, &mut step)?;
            }
        }
        let run = self.active(run_id)?;
        step.status = run.status.as_str();
        step.in_flight = run.in_flight;
        if run.status.is_terminal() {
            step.error = run.failure.clone();
            step.tasks.clear();
            step.needs_render = false;
            self.runs.remove(run_id);
        } else if run.status == RunStatus::WaitingApproval {
            let mut waiting: Vec<String> = run
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
            step.waiting = waiting;
            self.runs.remove(run_id);
        }
        if enabled!(Level::DEBUG) {
            let tasks: Vec<&str> = step.tasks.iter().map(|t| t.node_id.as_str()).collect();
            debug!(
                run_id,
                status = step.status,
                tasks = ?tasks,
                in_flight = step.in_flight,
                needs_render = step.needs_render,
                waiting = ?step.waiting,
                "scheduled"
            );
        }
        Ok(step)
    }

    fn plan_task(&self, run_id: &str, idx: usize) -> Result<TaskNode> {
        self.runs
            .get(run_id)
            .and_then(|r| r.plan.as_ref())
            .and_then(|p| p.task(idx))
            .cloned()
            .ok_or_else(|| Error::RunNotClaimed {
                run_id: run_id.into(),
            })
    }

    fn apply(&mut self, run_id: &str, action: Action, step: &mut Step) -> Result<()> {
        match action {
            Action::RunStatic(idx) => {
                let task = self.plan_task(run_id, idx)?;
                let TaskBody::Static { value } = &task.body else {
                    return Ok(());
                };
                let table = self.run_table(run_id, &task.output)?;
                self.start_task(run_id, &task)?;
                let attempt = self
                    .active(run_id)?
                    .record(&task.id, task.iteration)
                    .map(|r| r.attempts)
                    .unwrap_or(1);
                match table.validate(&task.id, value) {
                    Ok(()) => {
                        self.finish_task(run_id, &task, attempt, &table, value.clone(), step)?
                    }
                    Err(err) => self.fail_task(run_id, &task, attempt, task_error(&err), false)?,
                }
            }
            Action::Start(idx) => {
                let task = self.plan_task(run_id, idx)?;
                let attempt = self.start_task(run_id, &task)?;
                let (inputs, push_back) = self.inputs_for(run_id, idx, &task, attempt)?;
                let command = match &task.body {
                    TaskBody::Command(body) => Some(self.command_spec(
                        run_id,
                        &task,
                        attempt,
                        body,
                        &inputs,
                        push_back.as_ref(),
                    )?),
                    _ => None,
                };
                if let Some(spec) = &command {
                    self.conn
                        .prepare_cached(
                            "UPDATE _smithers_attempts SET stdout_path = ?5, stderr_path = ?6 \
                             WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
                        )?
                        .execute(params![
                            run_id,
                            task.id,
                            task.iteration,
                            attempt,
                            spec.stdout_path,
                            spec.stderr_path
                        ])?;
                }
                let carries = !inputs.is_empty() || push_back.is_some();
                step.tasks.push(TaskToRun {
                    node_id: task.id.clone(),
                    iteration: task.iteration,
                    attempt,
                    output: task.output.clone(),
                    timeout_ms: task.timeout_ms,
                    command,
                    inputs: carries.then_some(inputs),
                    push_back,
                });
            }
            Action::RequestApproval(idx) => {
                let task = self.plan_task(run_id, idx)?;
                self.request_approval(run_id, &task, step)?;
            }
            Action::Skip(idx, reason) => {
                let task = self.plan_task(run_id, idx)?;
                let next = NodeState::Pending.apply(NodeEvent::Skip)?;
                let tx = begin(&self.conn, self.batching)?;
                set_node_row(
                    &tx,
                    run_id,
                    &task.id,
                    task.iteration,
                    next,
                    0,
                    Some(reason.as_str()),
                    None,
                )?;
                let mut batch = EventBatch::default();
                batch.emit(&tx, run_id, "NodeSkipped", json!({ "nodeId": task.id, "iteration": task.iteration, "reason": reason.as_str() }))?;
                tx.commit()?;
                self.publish(batch);
                self.active(run_id)?
                    .set_state(&task.id, task.iteration, next);
            }
            Action::FinishFromDecision(idx) => {
                let task = self.plan_task(run_id, idx)?;
                let row = crate::decision::finish_from_decision(self, run_id, &task)?;
                if let Some(row) = row {
                    let run = self.active(run_id)?;
                    run.set_state(&task.id, task.iteration, NodeState::Finished);
                    run.output_changed(&task.id);
                    step.outputs.push(row);
                }
            }
            Action::LoopEnd(idx) => self.end_loop_iteration(run_id, idx, step)?,
        }
        Ok(())
    }

    fn downstream_of(&mut self, run_id: &str, gate: usize) -> Result<Rc<HashSet<usize>>> {
        let run = self.active(run_id)?;
        if let Some(set) = run.downstream.get(&gate) {
            return Ok(set.clone());
        }
        let set = Rc::new(
            run.plan
                .as_ref()
                .map(|p| p.downstream(gate))
                .unwrap_or_default(),
        );
        run.downstream.insert(gate, set.clone());
        Ok(set)
    }

    /// The approver inputs that reach a task: those of every decided gate upstream of it (a
    /// push-back's, then the approval's), and, for a task in a push-back's reset scope (the
    /// step sent back, its `rewindTo` target and what depends on it), that push-back: its
    /// inputs and `{iteration, by, at, inputs, history, previousStdoutFile}`.
    fn inputs_for(
        &mut self,
        run_id: &str,
        idx: usize,
        task: &TaskNode,
        attempt: i64,
    ) -> Result<(BTreeMap<String, String>, Option<Value>)> {
        let mut inputs = BTreeMap::new();
        let mut push_back = None;
        let carries = self
            .runs
            .get(run_id)
            .and_then(|r| r.plan.as_ref())
            .is_some_and(|p| p.carries_inputs);
        if !carries {
            return Ok((inputs, push_back));
        }
        type Row = (
            String,
            i64,
            String,
            i64,
            Option<String>,
            Option<String>,
            String,
        );
        let rows: Vec<Row> = self
            .conn
            .prepare_cached(
                "SELECT node_id, iteration, status, round, inputs_json, pushback_json, request_json FROM _smithers_approvals \
                 WHERE run_id = ?1 AND (inputs_json IS NOT NULL OR pushback_json IS NOT NULL) \
                 ORDER BY COALESCE(decided_at_ms, requested_at_ms)",
            )?
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })?
            .collect::<Result<_, _>>()?;
        let parse = |json: &Option<String>| -> BTreeMap<String, String> {
            json.as_deref()
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
                .map(|v| v.get("inputs").cloned().unwrap_or(v))
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default()
        };
        for (gate_id, gate_iteration, status, round, inputs_json, pushback_json, request) in rows {
            let (gate_idx, gate_in_loop) = {
                let Some(plan) = self.runs.get(run_id).and_then(|r| r.plan.as_ref()) else {
                    break;
                };
                let Some(&gate_idx) = plan.task_index.get(&gate_id) else {
                    continue;
                };
                let gate_task = plan.task(gate_idx);
                if gate_task.is_none_or(|g| g.iteration != gate_iteration) {
                    continue;
                }
                (gate_idx, plan.nodes[gate_idx].loop_id.is_some())
            };
            let own = gate_id == task.id;
            if !own && gate_in_loop && gate_iteration != task.iteration {
                continue;
            }
            let downstream = !own && self.downstream_of(run_id, gate_idx)?.contains(&idx);
            if let Some(json) = &pushback_json {
                let scope = crate::engine::reset_scope(&request);
                let in_scope = own
                    || if scope.is_empty() {
                        downstream
                    } else {
                        scope
                            .iter()
                            .any(|(id, it)| id == &task.id && *it == task.iteration)
                    };
                if in_scope {
                    inputs.extend(parse(&pushback_json));
                    let history = crate::decision::review_history(
                        &self.conn,
                        run_id,
                        &gate_id,
                        gate_iteration,
                    )?;
                    let mut value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                    if let Some(obj) = value.as_object_mut() {
                        obj.insert("iteration".into(), json!(round));
                        if !own {
                            obj.insert("gate".into(), json!(gate_id));
                        }
                        let previous = if own {
                            history
                                .iter()
                                .rev()
                                .find_map(|h| h.get("stdoutPath").cloned())
                                .unwrap_or(Value::Null)
                        } else {
                            json!(self.previous_stdout(run_id, task, attempt)?)
                        };
                        obj.insert("previousStdoutFile".into(), previous);
                        obj.insert("history".into(), Value::Array(history));
                    }
                    push_back = Some(value);
                }
            }
            if downstream && status == "approved" {
                inputs.extend(parse(&inputs_json));
            }
        }
        Ok((inputs, push_back))
    }

    /// The stdout log of a task's latest finished attempt before `attempt` (what it printed
    /// before a push-back sent it back).
    fn previous_stdout(
        &self,
        run_id: &str,
        task: &TaskNode,
        attempt: i64,
    ) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT stdout_path FROM _smithers_attempts WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 \
                 AND attempt < ?4 AND state = 'finished' AND stdout_path IS NOT NULL ORDER BY attempt DESC LIMIT 1",
            )?
            .query_row(params![run_id, task.id, task.iteration, attempt], |r| r.get(0))
            .optional()?)
    }

    /// The process a command task runs: `shell -c <command>`, in its directory, with the
    /// task's env, then the approver inputs that reach it, then the engine's own variables
    /// (which nothing overrides): `SMITHERS_*`, and Dagu's names (`DAG_NAME`, `DAG_RUN_ID`,
    /// `DAG_RUN_STEP_NAME`, `DAG_PUSHBACK`, …) so a Dagu step runs unchanged. Big values
    /// travel as files: the push-back's history is in the variable without outputs, the
    /// previous stdout is a path.
    fn command_spec(
        &self,
        run_id: &str,
        task: &TaskNode,
        attempt: i64,
        body: &CommandBody,
        inputs: &BTreeMap<String, String>,
        push_back: Option<&Value>,
    ) -> Result<CommandSpec> {
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
        let run = self.runs.get(run_id);
        env.push((
            "DAG_NAME".into(),
            run.map(|r| r.workflow_name.clone()).unwrap_or_default(),
        ));
        env.push(("DAG_RUN_ID".into(), run_id.into()));
        env.push(("DAG_RUN_STEP_NAME".into(), task.id.clone()));
        env.push(("DAG_RUN_STEP_STDOUT_FILE".into(), stdout_path.clone()));
        env.push(("DAG_RUN_STEP_STDERR_FILE".into(), stderr_path.clone()));
        env.push((
            "DAG_RUN_LOG_FILE".into(),
            dir.join(RUN_LOG_FILE).to_string_lossy().into_owned(),
        ));
        let params = run.map(|r| r.input_json.as_str()).unwrap_or("null");
        if params.len() <= MAX_PARAMS_ENV {
            env.push(("DAG_PARAMS_JSON".into(), params.into()));
        }
        Ok(CommandSpec {
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
        })
    }

    /// pending → in-progress, with a new attempt row. Returns the attempt number.
    fn start_task(&mut self, run_id: &str, task: &TaskNode) -> Result<i64> {
        let run = self.runs.get(run_id).ok_or_else(|| Error::RunNotClaimed {
            run_id: run_id.into(),
        })?;
        let rec = run
            .node(&task.id, task.iteration)
            .ok_or_else(|| Error::NodeNotFound {
                run_id: run_id.into(),
                node_id: task.id.clone(),
                iteration: task.iteration,
            })?;
        let next = rec.state.apply(NodeEvent::Start)?;
        let attempt = run
            .nodes
            .get(&task.id)
            .and_then(|its| its.get(&task.iteration))
            .map(|r| r.attempts)
            .unwrap_or(0)
            + 1;
        let now = now_ms();
        let tx = begin(&self.conn, self.batching)?;
        set_node_row(
            &tx,
            run_id,
            &task.id,
            task.iteration,
            next,
            attempt,
            None,
            None,
        )?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO _smithers_attempts (run_id, node_id, iteration, attempt, state, started_at_ms, owner) \
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
        )?
        .execute(params![run_id, task.id, task.iteration, attempt, now, self.owner])?;
        let mut batch = EventBatch::default();
        batch.emit(
            &tx,
            run_id,
            "NodeStarted",
            json!({ "nodeId": task.id, "iteration": task.iteration, "attempt": attempt }),
        )?;
        tx.commit()?;
        self.publish(batch);
        let run = self.active(run_id)?;
        run.set_state(&task.id, task.iteration, next);
        if let Some(rec) = run.record(&task.id, task.iteration) {
            rec.attempts = attempt;
        }
        Ok(attempt)
    }

    fn request_approval(&mut self, run_id: &str, task: &TaskNode, step: &mut Step) -> Result<()> {
        let Some(spec) = &task.approval else {
            return Ok(());
        };
        if crate::decision::auto_approve(self, run_id, task, step)? {
            return Ok(());
        }
        let next = NodeState::Pending.apply(NodeEvent::RequestApproval)?;
        let now = now_ms();
        let mut request = request_json(task, spec);
        if spec.mode == ApprovalMode::Human {
            // What the person fills in: the inbox renders its fields.
            request["schema"] = self.run_table(run_id, &task.output)?.schema.clone();
        }
        let tx = begin(&self.conn, self.batching)?;
        let inserted = tx.prepare_cached(
            "INSERT OR IGNORE INTO _smithers_approvals (run_id, node_id, iteration, status, mode, on_deny, output_table, requested_at_ms, request_json) \
             VALUES (?1, ?2, ?3, 'requested', ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            run_id,
            task.id,
            task.iteration,
            spec.mode.as_str(),
            spec.on_deny().as_str(),
            task.output,
            now,
            serde_json::to_string(&request)?
        ])?;
        if inserted == 0 {
            // A row exists already (this process learned of it late): let the store decide.
            drop(tx);
            let status: Option<String> = self
                .conn
                .query_row(
                    "SELECT status FROM _smithers_approvals WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
                    params![run_id, task.id, task.iteration],
                    |r| r.get(0),
                )
                .optional()?;
            let run = self.active(run_id)?;
            if let Some(rec) = run.record(&task.id, task.iteration) {
                rec.approval = status.as_deref().and_then(ApprovalStatus::parse);
            }
            return self.reload_node(run_id, &task.id, task.iteration);
        }
        set_node_row(&tx, run_id, &task.id, task.iteration, next, 0, None, None)?;
        let batch = waiting_events(
            &tx,
            run_id,
            task,
            json!({ "title": spec.request.title, "summary": spec.request.summary }),
        )?;
        tx.commit()?;
        self.entered_waiting(run_id, task, next, batch)
    }

    fn reload_node(&mut self, run_id: &str, node_id: &str, iteration: i64) -> Result<()> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT state, attempts FROM _smithers_nodes WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
                params![run_id, node_id, iteration],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((state, attempts)) = row {
            let state = NodeState::parse(&state).unwrap_or(NodeState::Pending);
            let run = self.active(run_id)?;
            run.set_state(node_id, iteration, state);
            if let Some(rec) = run.record(node_id, iteration) {
                rec.attempts = attempts;
            }
        }
        Ok(())
    }

    /// Picks up what other writers changed: a cancel, or decisions on gates this run waits
    /// on (made by the CLI in another process, or through this engine's `decide`).
    fn refresh_from_store(&mut self, run_id: &str, step: &mut Step) -> Result<()> {
        let row: Option<(String, Option<String>)> = self
            .conn
            .prepare_cached("SELECT status, owner FROM _smithers_runs WHERE run_id = ?1")?
            .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (status, owner) = row.unzip();
        let lost = owner.flatten().filter(|o| *o != self.owner);
        let run = self.active(run_id)?;
        if status.as_deref() == Some("cancelled") && run.status != RunStatus::Cancelled {
            run.status = RunStatus::Cancelled;
            return Ok(());
        }
        // Fencing: another engine took the run over (this one's lease had expired, or it was
        // forced); nothing more may be written for it from here.
        if let Some(other) = lost {
            tracing::warn!(
                run_id,
                owner = self.owner.as_str(),
                new_owner = other.as_str(),
                "run lost: another engine took it over (this one's lease expired, or --force)"
            );
            return Err(Error::RunOwned {
                run_id: run_id.into(),
                owner: other,
            });
        }
        if run.waiting == 0 {
            return Ok(());
        }
        type Decided = (String, i64, String, String, String, Option<String>, String);
        let decided: Vec<Decided> = self
            .conn
            .prepare_cached(
                "SELECT a.node_id, a.iteration, n.state, a.status, a.output_table, n.error_json, a.request_json \
                 FROM _smithers_approvals a JOIN _smithers_nodes n \
                   ON n.run_id = a.run_id AND n.node_id = a.node_id AND n.iteration = a.iteration \
                 WHERE a.run_id = ?1 AND a.status != 'requested'",
            )?
            .query_map([run_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        for (node_id, iteration, state, approval, output_table, error_json, request) in decided {
            let run = self.active(run_id)?;
            let Some(rec) = run.record(&node_id, iteration) else {
                continue;
            };
            if rec.state != NodeState::WaitingApproval {
                continue;
            }
            rec.approval = ApprovalStatus::parse(&approval);
            let next = NodeState::parse(&state).unwrap_or(NodeState::Pending);
            run.set_state(&node_id, iteration, next);
            let continue_on_fail = run
                .plan
                .as_ref()
                .and_then(|p| p.task_index.get(&node_id).and_then(|&i| p.task(i)))
                .is_some_and(|t| t.continue_on_fail);
            // The decision wrote why on the node (who denied or rejected it, a human task's
            // last invalid answer).
            let stored = error_json
                .as_deref()
                .and_then(|e| serde_json::from_str::<Value>(e).ok());
            let field = |k: &str| error_field(stored.as_ref(), k);
            if next == NodeState::Failed && !continue_on_fail && run.failure.is_none() {
                run.failure = Some(RunError {
                    code: field("code").unwrap_or_else(|| "APPROVAL_DENIED".into()),
                    message: field("message")
                        .unwrap_or_else(|| format!("Approval {node_id} was denied")),
                    node_id: Some(node_id.clone()),
                });
            }
            if next == NodeState::Rejected && run.failure.is_none() {
                run.failure = Some(RunError {
                    code: "APPROVAL_REJECTED".into(),
                    message: field("message")
                        .unwrap_or_else(|| format!("{node_id} was rejected by its reviewer")),
                    node_id: Some(node_id.clone()),
                });
            }
            if approval == "pushed-back" {
                step.reset.push(OutputRef {
                    table: output_table.clone(),
                    node_id: node_id.clone(),
                    iteration,
                });
                let scope = reset_scope(&request);
                self.reload_reset_scope(run_id, &scope, step)?;
            }
            if next == NodeState::Finished {
                let run = self.active(run_id)?;
                run.output_changed(&node_id);
                let table = self.run_table(run_id, &output_table)?;
                if let Some(value) = table.read_one(&self.conn, run_id, &node_id, iteration)? {
                    step.outputs.push(OutputRow {
                        table: output_table,
                        node_id,
                        iteration,
                        value,
                    });
                }
            }
        }
        // Tasks that waited on a sub-run which has ended since (`wake_caller`).
        let woken: Vec<(String, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT node_id, iteration, state FROM _smithers_nodes WHERE run_id = ?1 \
                 AND sub_run_id IS NOT NULL AND state != 'waiting-approval'",
            )?
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let run = self.active(run_id)?;
        for (node_id, iteration, state) in woken {
            if run
                .node(&node_id, iteration)
                .is_some_and(|v| v.state == NodeState::WaitingApproval)
            {
                let next = NodeState::parse(&state).unwrap_or(NodeState::Pending);
                run.set_state(&node_id, iteration, next);
            }
        }
        Ok(())
    }

    /// A push-back decided while this engine drives the run took its reset scope back to
    /// pending in the store: the in-memory states follow, the walk's caches (which assume
    /// terminal stays terminal) start over, the withdrawn outputs go to the driver, and the
    /// workflow renders again (it may have read them).
    fn reload_reset_scope(
        &mut self,
        run_id: &str,
        scope: &[(String, i64)],
        step: &mut Step,
    ) -> Result<()> {
        for (node_id, iteration) in scope {
            let before = self
                .active(run_id)?
                .node(node_id, *iteration)
                .map(|v| v.state);
            let Some(before) = before else { continue };
            self.reload_node(run_id, node_id, *iteration)?;
            let run = self.active(run_id)?;
            let after = run.node(node_id, *iteration).map(|v| v.state);
            if before != NodeState::Pending && after == Some(NodeState::Pending) {
                if let Some(rec) = run.record(node_id, *iteration) {
                    rec.approval = None;
                }
                let table = run
                    .plan
                    .as_ref()
                    .and_then(|p| p.task_index.get(node_id).and_then(|&i| p.task(i)))
                    .map(|t| t.output.clone());
                if let Some(table) = table {
                    step.reset.push(OutputRef {
                        table,
                        node_id: node_id.clone(),
                        iteration: *iteration,
                    });
                }
            }
        }
        let run = self.active(run_id)?;
        if let Some(plan) = &run.plan {
            run.cache = WalkCache::new(plan);
        }
        run.fresh = false;
        Ok(())
    }

    /// Lets go of a run that can only wait for decisions. The check for decisions made in
    /// the meantime happens inside the same transaction, so none is missed. Returns true when
    /// a decision arrived and the run should advance again instead.
    fn park(&mut self, run_id: &str, step: &mut Step) -> Result<bool> {
        let tx = begin(&self.conn, self.batching)?;
        let changed: i64 = {
            let run = self.runs.get(run_id).ok_or_else(|| Error::RunNotClaimed {
                run_id: run_id.into(),
            })?;
            let mut n = 0;
            let mut stmt = tx.prepare_cached(
                "SELECT node_id, iteration FROM _smithers_approvals WHERE run_id = ?1 AND status != 'requested'",
            )?;
            for row in stmt.query_map([run_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })? {
                let (node_id, iteration) = row?;
                if run
                    .node(&node_id, iteration)
                    .is_some_and(|v| v.state == NodeState::WaitingApproval)
                {
                    n += 1;
                }
            }
            // A sub-run this run waits on ended meanwhile.
            let mut stmt = tx.prepare_cached(
                "SELECT node_id, iteration FROM _smithers_nodes WHERE run_id = ?1 \
                 AND sub_run_id IS NOT NULL AND state != 'waiting-approval'",
            )?;
            for row in stmt.query_map([run_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })? {
                let (node_id, iteration) = row?;
                if run
                    .node(&node_id, iteration)
                    .is_some_and(|v| v.state == NodeState::WaitingApproval)
                {
                    n += 1;
                }
            }
            n
        };
        if changed > 0 {
            drop(tx);
            debug!(
                run_id,
                decided = changed,
                "not parking: decisions arrived meanwhile"
            );
            self.refresh_from_store(run_id, step)?;
            return Ok(true);
        }
        let run = self.runs.get(run_id).ok_or_else(|| Error::RunNotClaimed {
            run_id: run_id.into(),
        })?;
        let next = run.status.apply(RunEvent::Park)?;
        tx.execute(
            "UPDATE _smithers_runs SET status = ?2, owner = NULL, lease_expires_at_ms = NULL, updated_at_ms = ?3 WHERE run_id = ?1",
            params![run_id, next.as_str(), now_ms()],
        )?;
        let mut batch = EventBatch::default();
        batch.emit(
            &tx,
            run_id,
            "RunStatusChanged",
            json!({ "status": next.as_str(), "previous": run.status.as_str() }),
        )?;
        tx.commit()?;
        self.publish(batch);
        self.active(run_id)?.status = next;
        Ok(false)
    }

    /// Finishes or fails a run: open nodes are cancelled, open approval requests withdrawn.
    fn end_run(&mut self, run_id: &str, event: RunEvent, failure: Option<RunError>) -> Result<()> {
        let run = self.runs.get(run_id).ok_or_else(|| Error::RunNotClaimed {
            run_id: run_id.into(),
        })?;
        let next = run.status.apply(event)?;
        let previous = run.status;
        let now = now_ms();
        let tx = begin(&self.conn, self.batching)?;
        let mut batch = EventBatch::default();
        let open: Vec<(String, i64)> = tx
            .prepare_cached(
                "SELECT node_id, iteration FROM _smithers_nodes WHERE run_id = ?1 \
                 AND state IN ('pending', 'in-progress', 'waiting-approval')",
            )?
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (node_id, iteration) in &open {
            tx.execute(
                "UPDATE _smithers_nodes SET state = 'cancelled', updated_at_ms = ?4 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
                params![run_id, node_id, iteration, now],
            )?;
            batch.emit(
                &tx,
                run_id,
                "NodeCancelled",
                json!({ "nodeId": node_id, "iteration": iteration }),
            )?;
        }
        tx.execute(
            "UPDATE _smithers_approvals SET status = 'cancelled' WHERE run_id = ?1 AND status = 'requested'",
            [run_id],
        )?;
        tx.execute(
            "UPDATE _smithers_attempts SET state = 'cancelled', finished_at_ms = ?2 WHERE run_id = ?1 AND state = 'running'",
            params![run_id, now],
        )?;
        let error_json = failure.as_ref().map(serde_json::to_string).transpose()?;
        tx.execute(
            "UPDATE _smithers_runs SET status = ?2, owner = NULL, lease_expires_at_ms = NULL, \
             error_json = COALESCE(?3, error_json), updated_at_ms = ?4, finished_at_ms = ?4 WHERE run_id = ?1",
            params![run_id, next.as_str(), error_json, now],
        )?;
        batch.emit(
            &tx,
            run_id,
            "RunStatusChanged",
            json!({ "status": next.as_str(), "previous": previous.as_str() }),
        )?;
        match next {
            RunStatus::Finished => batch.emit(&tx, run_id, "RunFinished", json!({}))?,
            RunStatus::Failed => {
                batch.emit(&tx, run_id, "RunFailed", json!({ "error": failure }))?
            }
            RunStatus::Rejected => {
                batch.emit(&tx, run_id, "RunRejected", json!({ "error": failure }))?
            }
            _ => {}
        }
        if next != RunStatus::Finished {
            cancel_sub_runs(&tx, SubRuns::Of(run_id), now, &mut batch)?;
        }
        let woken = wake_caller(&tx, run_id, now, &mut batch)?;
        tx.commit()?;
        self.publish(batch);
        debug!(
            run_id,
            status = next.as_str(),
            cancelled_nodes = open.len(),
            woke_caller = woken.as_deref().unwrap_or(""),
            "run ended"
        );
        let run = self.active(run_id)?;
        for (node_id, iteration) in open {
            run.set_state(&node_id, iteration, NodeState::Cancelled);
        }
        run.status = next;
        if failure.is_some() {
            run.failure = failure;
        }
        Ok(())
    }

    fn end_loop_iteration(&mut self, run_id: &str, idx: usize, step: &mut Step) -> Result<()> {
        let run = self.runs.get(run_id).ok_or_else(|| Error::RunNotClaimed {
            run_id: run_id.into(),
        })?;
        let Some(EntryKind::Loop {
            id,
            until,
            max_iterations,
            on_max_reached,
        }) = run.plan.as_ref().map(|p| &p.nodes[idx].kind)
        else {
            return Ok(());
        };
        let id = id.clone();
        let current = run.loops.get(&id).map(|l| l.iteration).unwrap_or(0);
        enum Outcome {
            Done,
            Next,
            Fail,
        }
        let outcome = if *until {
            Outcome::Done
        } else if current + 1 >= i64::from(*max_iterations) {
            if *on_max_reached == OnMaxReached::Fail {
                Outcome::Fail
            } else {
                Outcome::Done
            }
        } else {
            Outcome::Next
        };
        let max = *max_iterations;
        let tx = begin(&self.conn, self.batching)?;
        let mut batch = EventBatch::default();
        match outcome {
            Outcome::Done | Outcome::Fail => {
                tx.execute(
                    "UPDATE _smithers_loops SET done = 1 WHERE run_id = ?1 AND loop_id = ?2",
                    params![run_id, id],
                )?;
                batch.emit(
                    &tx,
                    run_id,
                    "LoopFinished",
                    json!({ "loopId": id, "iteration": current }),
                )?;
            }
            Outcome::Next => {
                tx.execute(
                    "UPDATE _smithers_loops SET iteration = ?3 WHERE run_id = ?1 AND loop_id = ?2",
                    params![run_id, id, current + 1],
                )?;
                batch.emit(
                    &tx,
                    run_id,
                    "LoopIteration",
                    json!({ "loopId": id, "iteration": current + 1 }),
                )?;
            }
        }
        tx.commit()?;
        self.publish(batch);
        let run = self.active(run_id)?;
        let rec = run.loops.entry(id.clone()).or_insert(LoopRecord {
            iteration: 0,
            done: false,
        });
        match outcome {
            Outcome::Done => rec.done = true,
            Outcome::Fail => {
                rec.done = true;
                run.failure = Some(RunError {
                    code: "LOOP_MAX_REACHED".into(),
                    message: format!(
                        "Loop {id} reached maxIterations ({max}) without its until condition"
                    ),
                    node_id: Some(id),
                });
            }
            Outcome::Next => {
                rec.iteration = current + 1;
                step.loops.insert(id, current + 1);
                // The loop's children at the next iteration exist only after a render.
                run.fresh = false;
            }
        }
        Ok(())
    }

    /// Cancels a run (from any process). A driver of the run stops at its next step.
    pub fn cancel_run(&mut self, run_id: &str) -> Result<&'static str> {
        let status: Option<String> = self
            .conn
            .query_row(
                "SELECT status FROM _smithers_runs WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(status) = status else {
            return Err(Error::RunNotFound {
                run_id: run_id.into(),
            });
        };
        let status = RunStatus::parse(&status).unwrap_or(RunStatus::Failed);
        if status.is_terminal() {
            return Ok(status.as_str());
        }
        // A run this engine drives stays in memory: its driver learns of the cancel at its
        // next call and stops there.
        let driving = self.runs.contains_key(run_id);
        if !driving {
            self.runs.insert(run_id.into(), new_active(status));
        }
        self.end_run(run_id, RunEvent::Cancel, None)?;
        if !driving {
            self.runs.remove(run_id);
        }
        Ok(RunStatus::Cancelled.as_str())
    }
}

/// A text field (`code`, `message`) of an error stored as JSON on a node.
fn error_field(error: Option<&Value>, key: &str) -> Option<String> {
    error
        .and_then(|e| e.get(key))
        .and_then(Value::as_str)
        .map(String::from)
}

/// Which runs `cancel_sub_runs` ends: the sub-runs of a run, or a sub-run and its own.
#[derive(Clone, Copy)]
pub(crate) enum SubRuns<'a> {
    /// A run that ends early takes its open sub-runs with it.
    Of(&'a str),
    /// A task a push-back sent back no longer waits on its sub-run: the next attempt makes a
    /// new one.
    Tree(&'a str),
}

/// Cancels open sub-runs, their nodes and requests too (a driver of one learns it at its
/// next call).
pub(crate) fn cancel_sub_runs(
    tx: &Connection,
    which: SubRuns<'_>,
    now: i64,
    batch: &mut EventBatch,
) -> Result<()> {
    let (root, tree, reason) = match which {
        SubRuns::Of(run_id) => (run_id, false, "its caller ended"),
        SubRuns::Tree(sub) => (sub, true, "its caller was sent back"),
    };
    let open: Vec<(String, String)> = tx
        .prepare_cached(
            "WITH RECURSIVE sub(id) AS (SELECT run_id FROM _smithers_runs WHERE (?2 AND run_id = ?1) OR (NOT ?2 AND parent_run_id = ?1) \
               UNION SELECT r.run_id FROM _smithers_runs r JOIN sub ON r.parent_run_id = sub.id) \
             SELECT run_id, status FROM _smithers_runs WHERE run_id IN sub \
               AND status IN ('running', 'waiting-approval', 'waiting-timer')",
        )?
        .query_map(params![root, tree], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (sub, status) in open {
        tx.execute(
            "UPDATE _smithers_nodes SET state = 'cancelled', updated_at_ms = ?2 WHERE run_id = ?1 \
             AND state IN ('pending', 'in-progress', 'waiting-approval')",
            params![sub, now],
        )?;
        tx.execute(
            "UPDATE _smithers_approvals SET status = 'cancelled' WHERE run_id = ?1 AND status = 'requested'",
            [&sub],
        )?;
        tx.execute(
            "UPDATE _smithers_attempts SET state = 'cancelled', finished_at_ms = ?2 WHERE run_id = ?1 AND state = 'running'",
            params![sub, now],
        )?;
        tx.execute(
            "UPDATE _smithers_runs SET status = 'cancelled', owner = NULL, lease_expires_at_ms = NULL, updated_at_ms = ?2, finished_at_ms = ?2 WHERE run_id = ?1",
            params![sub, now],
        )?;
        batch.emit(
            tx,
            &sub,
            "RunStatusChanged",
            json!({ "status": "cancelled", "previous": status, "reason": reason }),
        )?;
    }
    Ok(())
}

/// A sub-run ended: the task that waits on it goes back to pending (it runs again and reads
/// the sub-run's result) and its run wakes up. A run nobody drives is then `running` with no
/// owner, which `resume` (or serve's watcher) picks up; a live driver of it sees the node
/// move at its next call. Returns the caller's run id when it woke one.
fn wake_caller(
    tx: &Connection,
    run_id: &str,
    now: i64,
    batch: &mut EventBatch,
) -> Result<Option<String>> {
    type Caller = (Option<String>, Option<String>, Option<i64>);
    let caller: Option<Caller> = tx
        .prepare_cached(
            "SELECT parent_run_id, parent_node_id, parent_iteration FROM _smithers_runs WHERE run_id = ?1",
        )?
        .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((Some(parent), Some(node), iteration)) = caller else {
        return Ok(None);
    };
    let iteration = iteration.unwrap_or(0);
    let next = NodeState::WaitingApproval.apply(NodeEvent::SubRunEnded)?;
    let moved = tx.execute(
        "UPDATE _smithers_nodes SET state = ?5, updated_at_ms = ?6 WHERE run_id = ?1 AND node_id = ?2 \
         AND iteration = ?3 AND state = 'waiting-approval' AND sub_run_id = ?4",
        params![parent, node, iteration, run_id, next.as_str(), now],
    )?;
    if moved == 0 {
        return Ok(None);
    }
    batch.emit(
        tx,
        &parent,
        "NodeSubRunEnded",
        json!({ "nodeId": node, "iteration": iteration, "subRunId": run_id }),
    )?;
    let status: Option<String> = tx
        .query_row(
            "SELECT status FROM _smithers_runs WHERE run_id = ?1",
            [&parent],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(status) = status.as_deref().and_then(RunStatus::parse) {
        crate::decision::wake_run(tx, &parent, status, now, batch)?;
    }
    Ok(Some(parent))
}

fn task_error(err: &Error) -> TaskError {
    TaskError {
        code: Some(err.code().into()),
        name: None,
        message: err.to_string(),
        stack: None,
    }
}

fn graph_has_rewinds(node: &crate::graph::PlanNode) -> bool {
    use crate::graph::PlanNode;
    match node {
        PlanNode::Task(t) => t.review.as_ref().is_some_and(|r| r.rewind_to.is_some()),
        PlanNode::Sequence { children }
        | PlanNode::Parallel { children, .. }
        | PlanNode::Group { children }
        | PlanNode::Loop { children, .. } => children.iter().any(graph_has_rewinds),
    }
}

/// The run's log in its log directory (`DAG_RUN_LOG_FILE`): the driver appends a line per
/// command step and handler it runs.
pub const RUN_LOG_FILE: &str = "run.log";

/// `DAG_PARAMS_JSON` is set when the run's input is at most this big (a variable over
/// 128 KiB cannot be passed to a process at all); the input is in `smithers inspect`.
const MAX_PARAMS_ENV: usize = 64 * 1024;

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

/// The nodes a push-back of a review resets (stored on its request when it was made):
/// `[[nodeId, iteration], …]`.
pub(crate) fn reset_scope(request_json: &str) -> Vec<(String, i64)> {
    serde_json::from_str::<Value>(request_json)
        .map(|r| reset_scope_of(&r))
        .unwrap_or_default()
}

pub(crate) fn reset_scope_of(request: &Value) -> Vec<(String, i64)> {
    request
        .get("resetScope")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn new_active(status: RunStatus) -> ActiveRun {
    ActiveRun {
        status,
        workflow_name: String::new(),
        input_json: "null".into(),
        plan: None,
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

fn empty_step() -> Step {
    Step {
        status: RunStatus::Running.as_str(),
        needs_render: false,
        tasks: Vec::new(),
        outputs: Vec::new(),
        loops: BTreeMap::new(),
        in_flight: 0,
        error: None,
        waiting: Vec::new(),
        reset: Vec::new(),
    }
}

/// What a gate asks, as stored on its approval row (`request_json`) and shown by listings.
pub(crate) fn request_json(task: &TaskNode, spec: &ApprovalSpec) -> Value {
    let mut request = json!({
        "title": spec.request.title,
        "summary": spec.request.summary,
        "metadata": spec.request.metadata,
        "label": task.label,
        "options": spec.options,
        "allowedUsers": spec.allowed_users,
        "allowedScopes": spec.allowed_scopes,
        "input": spec.input,
        "required": spec.required,
        "meta": task.meta,
    });
    if spec.wait_async {
        request["async"] = json!(true);
    }
    if spec.mode == ApprovalMode::Human {
        request["prompt"] = json!(spec.request.summary);
        request["maxAttempts"] = json!(spec.max_attempts());
    }
    request
}

/// `ApprovalRequested` (with `request`: title, summary, and for reviews kind and round) and
/// `NodeWaitingApproval`, in the transaction that made the node wait.
fn waiting_events(
    tx: &Connection,
    run_id: &str,
    task: &TaskNode,
    request: Value,
) -> Result<EventBatch> {
    let mut batch = EventBatch::default();
    let mut requested = json!({ "nodeId": task.id, "iteration": task.iteration });
    let mut waiting = requested.clone();
    if let (Some(r), Value::Object(extra)) = (requested.as_object_mut(), request) {
        for (k, v) in extra {
            if k == "kind" || k == "round" {
                waiting[&k] = v.clone();
            }
            r.insert(k, v);
        }
    }
    batch.emit(tx, run_id, "ApprovalRequested", requested)?;
    batch.emit(tx, run_id, "NodeWaitingApproval", waiting)?;
    Ok(batch)
}

/// The writes a successful attempt makes, whether the node then finishes or waits for review:
/// the output row, the node's new state, the attempt closed as finished.
fn write_result(
    tx: &Connection,
    run_id: &str,
    task: &TaskNode,
    attempt: i64,
    next: NodeState,
    table: &OutputTable,
    value: &Value,
) -> Result<()> {
    table.write(tx, run_id, &task.id, task.iteration, value)?;
    set_node_row(
        tx,
        run_id,
        &task.id,
        task.iteration,
        next,
        attempt,
        None,
        None,
    )?;
    tx.prepare_cached(
        "UPDATE _smithers_attempts SET state = 'finished', finished_at_ms = ?5 \
         WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3 AND attempt = ?4",
    )?
    .execute(params![run_id, task.id, task.iteration, attempt, now_ms()])?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn set_node_row(
    conn: &Connection,
    run_id: &str,
    node_id: &str,
    iteration: i64,
    state: NodeState,
    attempts: i64,
    skip_reason: Option<&str>,
    error_json: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE _smithers_nodes SET state = ?4, attempts = MAX(attempts, ?5), skip_reason = COALESCE(?6, skip_reason), \
         error_json = ?7, updated_at_ms = ?8 WHERE run_id = ?1 AND node_id = ?2 AND iteration = ?3",
    )?
    .execute(params![run_id, node_id, iteration, state.as_str(), attempts, skip_reason, error_json, now_ms()])?;
    Ok(())
}
