//! The binding's mirror types (rolldown's `Binding*` style): `#[napi(object)]` structs with
//! `From` conversions to and from the core's types, so napi converts them field by field and
//! generates their TypeScript (`binding.d.cts`). The core stays napi-free.
//!
//! Shapes follow the core's serde shapes exactly: a field the core always writes (`null` when
//! empty) is `Either<T, Null>`; one it leaves out when empty is an `Option`. Fields JS sends
//! are `Option<Either<T, Null>>`: left out and `null` both mean "not given".
//!
//! Conversions from the core destructure every field (no `..`), so a field added to a core
//! type fails to compile here until its mirror carries it too.
//!
//! Values a user wrote (a run's input, a decision's payload, a task's output) cross from JS
//! as JSON text: `values.js` encodes them and refuses what JSON cannot carry (a lone
//! surrogate, a cycle, a BigInt) with a stable code, where a field-by-field conversion would
//! silently replace a lone surrogate. From the core to JS they are converted by napi.

use std::collections::BTreeMap;

use napi::bindgen_prelude::{Either, Null};
use napi_derive::napi;
use serde_json::Value;
use smithers_core as core;

/// `Some(v)` → `v`, `None` → `null`.
pub fn nullable<T>(value: Option<T>) -> Either<T, Null> {
    value.map_or(Either::B(Null), Either::A)
}

/// A field JS may leave out or set to `null`: both are `None`.
pub fn given<T>(value: Option<Either<T, Null>>) -> Option<T> {
    match value {
        Some(Either::A(v)) => Some(v),
        _ => None,
    }
}

/// Argument errors found while converting what JS sent (napi's own conversion errors have
/// the same status): the JS layer turns them into the call's stable code.
pub fn invalid(message: String) -> napi::Error {
    napi::Error::new(napi::Status::InvalidArg, message)
}

/// JSON text JS encoded (a user's value), as a `Value` (INVALID_JSON when it is not JSON).
pub fn parse_value(json: &str) -> core::Result<Value> {
    Ok(serde_json::from_str(json)?)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ------------------------------------------------------------------ runs and steps

/// How `new Engine(dbPath, options)` opens its database: a missing file is DB_NOT_FOUND
/// (`mustExist`); read only never migrates nor writes; `leaseMs` is how long a claim on a
/// run lasts unless renewed.
#[napi(object)]
#[derive(Default)]
pub struct BindingEngineOptions {
    pub must_exist: Option<bool>,
    pub read_only: Option<bool>,
    pub lease_ms: Option<i64>,
}

/// The task whose sub-run a new run is.
#[napi(object)]
pub struct BindingParentRef {
    pub run_id: String,
    pub node_id: String,
    pub iteration: Option<i64>,
}

/// A run to record: `inputJson` is the run's input as JSON text, `inputSchemaJson` the
/// workflow's input schema (JSON Schema) as JSON text.
#[napi(object)]
pub struct BindingNewRun {
    pub run_id: Option<Either<String, Null>>,
    pub workflow_name: Option<Either<String, Null>>,
    pub workflow_path: Option<Either<String, Null>>,
    pub input_json: Option<String>,
    pub input_schema_json: Option<Either<String, Null>>,
    pub started_by: Option<Either<String, Null>>,
    pub parent: Option<Either<BindingParentRef, Null>>,
}

impl TryFrom<BindingNewRun> for core::NewRun {
    type Error = core::Error;
    fn try_from(run: BindingNewRun) -> core::Result<Self> {
        let BindingNewRun {
            run_id,
            workflow_name,
            workflow_path,
            input_json,
            input_schema_json,
            started_by,
            parent,
        } = run;
        Ok(core::NewRun {
            run_id: given(run_id),
            workflow_name: given(workflow_name),
            workflow_path: given(workflow_path),
            input: match input_json {
                Some(json) => parse_value(&json)?,
                None => Value::Null,
            },
            input_schema: given(input_schema_json)
                .map(|json| parse_value(&json))
                .transpose()?,
            started_by: given(started_by),
            parent: given(parent).map(|p| core::engine::ParentRef {
                run_id: p.run_id,
                node_id: p.node_id,
                iteration: p.iteration.unwrap_or(0),
            }),
        })
    }
}

/// How a run is claimed: over a live owner (`force`), and with which workflow (the file and
/// the name it renders; another name than the run's is WORKFLOW_MISMATCH unless `force`).
#[napi(object)]
pub struct BindingClaimOptions {
    pub force: Option<bool>,
    pub workflow_path: Option<Either<String, Null>>,
    pub workflow_name: Option<Either<String, Null>>,
    /// Refuse at once (RUN_OWNED) when another transaction holds the run now (PostgreSQL's
    /// SKIP LOCKED): a worker's claim of a ready run.
    pub skip_locked: Option<bool>,
}

impl From<BindingClaimOptions> for core::ClaimOptions {
    fn from(o: BindingClaimOptions) -> Self {
        let BindingClaimOptions {
            force,
            workflow_path,
            workflow_name,
            skip_locked,
        } = o;
        core::ClaimOptions {
            force: force.unwrap_or(false),
            workflow_path: given(workflow_path),
            workflow_name: given(workflow_name),
            skip_locked: skip_locked.unwrap_or(false),
        }
    }
}

/// Why a run failed (or could not be resumed).
#[napi(object)]
pub struct BindingRunError {
    pub code: String,
    pub message: String,
    pub node_id: Option<String>,
}

impl From<core::RunError> for BindingRunError {
    fn from(e: core::RunError) -> Self {
        let core::RunError {
            code,
            message,
            node_id,
        } = e;
        BindingRunError {
            code,
            message,
            node_id,
        }
    }
}

impl From<BindingRunError> for core::RunError {
    fn from(e: BindingRunError) -> Self {
        let BindingRunError {
            code,
            message,
            node_id,
        } = e;
        core::RunError {
            code,
            message,
            node_id,
        }
    }
}

/// One output row: its table key, node, iteration and value (fields camelCase as in the
/// schema).
#[napi(object)]
pub struct BindingOutputRow {
    pub table: String,
    pub node_id: String,
    pub iteration: i64,
    pub value: Value,
}

impl From<core::OutputRow> for BindingOutputRow {
    fn from(r: core::OutputRow) -> Self {
        let core::OutputRow {
            table,
            node_id,
            iteration,
            value,
        } = r;
        BindingOutputRow {
            table,
            node_id,
            iteration,
            value,
        }
    }
}

/// Output rows as JSON text: the bulk path out of the core, as graphs are the bulk path in. A
/// step of a sequence of static tasks carries every row, a snapshot every row of the run, each
/// with a user's value; V8's `JSON.parse` builds them several times faster than napi sets
/// their fields one call at a time (ARCHITECTURE.md, "The boundary"). Rows hold JSON values
/// under string keys, which serialize; were one not to, the call fails (`INVALID_JSON`) rather
/// than hand JS fewer rows than the core has.
fn outputs_json(rows: &[core::OutputRow]) -> core::Result<String> {
    Ok(serde_json::to_string(rows)?)
}

/// Names one output row.
#[napi(object)]
pub struct BindingOutputRef {
    pub table: String,
    pub node_id: String,
    pub iteration: i64,
}

impl From<core::engine::OutputRef> for BindingOutputRef {
    fn from(r: core::engine::OutputRef) -> Self {
        let core::engine::OutputRef {
            table,
            node_id,
            iteration,
        } = r;
        BindingOutputRef {
            table,
            node_id,
            iteration,
        }
    }
}

/// What JS needs to render a run: its input, loop positions and every output so far.
#[napi(object)]
pub struct BindingSnapshot {
    pub run_id: String,
    #[napi(ts_type = "BindingRunStatus")]
    pub status: String,
    pub workflow_name: String,
    pub workflow_path: Either<String, Null>,
    pub input: Value,
    pub loops: BTreeMap<String, i64>,
    pub node_loops: BTreeMap<String, String>,
    /// Every output row so far, as JSON text (`JSON.parse` gives `BindingOutputRow[]`): the
    /// bulk path out of the core.
    pub outputs_json: String,
    pub error: Either<BindingRunError, Null>,
}

impl TryFrom<core::Snapshot> for BindingSnapshot {
    type Error = core::Error;

    fn try_from(s: core::Snapshot) -> core::Result<Self> {
        let core::Snapshot {
            run_id,
            status,
            workflow_name,
            workflow_path,
            input,
            loops,
            node_loops,
            outputs,
            error,
        } = s;
        Ok(BindingSnapshot {
            run_id,
            status: status.to_string(),
            workflow_name,
            workflow_path: nullable(workflow_path),
            input,
            loops,
            node_loops,
            outputs_json: outputs_json(&outputs)?,
            error: nullable(error.map(Into::into)),
        })
    }
}

/// The answer to every driving call: where the run is and what JS must do next.
#[napi(object)]
pub struct BindingStep {
    #[napi(ts_type = "BindingRunStatus")]
    pub status: String,
    pub needs_render: bool,
    pub tasks: Vec<BindingTaskToRun>,
    /// The rows this step wrote, as JSON text (`JSON.parse` gives `BindingOutputRow[]`): the
    /// bulk path out of the core.
    pub outputs_json: String,
    pub loops: BTreeMap<String, i64>,
    pub in_flight: u32,
    pub error: Either<BindingRunError, Null>,
    /// When the run parks: the nodes waiting for a decision.
    pub waiting: Option<Vec<String>>,
    /// Outputs a push-back withdrew (its reset scope runs again): the driver forgets them.
    pub reset: Option<Vec<BindingOutputRef>>,
    /// The id of the graph text the run's plan was built from (0: none): a render that gives
    /// that text again is sent as this id (`submitSameGraph`, `completeTasks` `render.graphId`).
    pub graph_id: i64,
    /// `completeTasks` with a `render`: whether that graph was applied (else only the
    /// results were recorded, and `needsRender` says whether to render again).
    pub graph_applied: bool,
}

/// A graph rendered with the results `completeTasks` reports: its JSON text, or the id of
/// the text the run's plan was built from (`BindingStep.graphId`). Exactly one of the two.
#[napi(object)]
pub struct BindingRender {
    pub graph_json: Option<String>,
    pub graph_id: Option<i64>,
}

impl TryFrom<core::Step> for BindingStep {
    type Error = core::Error;

    fn try_from(s: core::Step) -> core::Result<Self> {
        let core::Step {
            status,
            needs_render,
            tasks,
            outputs,
            loops,
            in_flight,
            error,
            waiting,
            reset,
            graph_id,
            graph_applied,
        } = s;
        Ok(BindingStep {
            status: status.to_string(),
            needs_render,
            tasks: tasks.into_iter().map(Into::into).collect(),
            outputs_json: outputs_json(&outputs)?,
            loops,
            in_flight: count(in_flight),
            error: nullable(error.map(Into::into)),
            waiting: (!waiting.is_empty()).then_some(waiting),
            reset: (!reset.is_empty()).then(|| reset.into_iter().map(Into::into).collect()),
            // Ids count up from 1 in this process: far below 2^53, exact as a JS number.
            graph_id: i64::try_from(graph_id).unwrap_or(i64::MAX),
            graph_applied,
        })
    }
}

/// A task JS must run: a compute or agent body, or a command (`command`, for the runner).
#[napi(object)]
pub struct BindingTaskToRun {
    pub node_id: String,
    pub iteration: i64,
    pub attempt: i64,
    pub output: String,
    pub timeout_ms: Either<i64, Null>,
    pub command: Option<BindingCommandSpec>,
    /// Approver inputs that reach this task (from upstream gates, or its own push-back).
    pub inputs: Option<BTreeMap<String, String>>,
    /// Set when a reviewer sent this step back: round, who, when, inputs, history.
    pub push_back: Option<Value>,
}

impl From<core::TaskToRun> for BindingTaskToRun {
    fn from(t: core::TaskToRun) -> Self {
        let core::TaskToRun {
            node_id,
            iteration,
            attempt,
            output,
            timeout_ms,
            command,
            inputs,
            push_back,
        } = t;
        BindingTaskToRun {
            node_id,
            iteration,
            attempt,
            output,
            timeout_ms: nullable(timeout_ms.map(millis)),
            command: command.map(Into::into),
            inputs,
            push_back,
        }
    }
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn to_millis(field: &str, ms: Option<Either<i64, Null>>) -> napi::Result<Option<u64>> {
    given(ms)
        .map(|ms| u64::try_from(ms).map_err(|_| invalid(format!("{field} must not be negative"))))
        .transpose()
}

// ------------------------------------------------------------------ commands

/// A command task's process, as the core built it (or as a CLI agent or a tool asks for
/// one): `env` pairs are added to the engine's environment; `envTemplates` are set before
/// them, as written (the driver expands them first).
#[napi(object)]
pub struct BindingCommandSpec {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: Option<Either<String, Null>>,
    pub env: Option<Vec<(String, String)>>,
    pub env_templates: Option<Vec<(String, String)>>,
    pub timeout_ms: Option<Either<i64, Null>>,
    /// Stops the command when it writes nothing (stdout or stderr) for this long.
    pub idle_timeout_ms: Option<Either<i64, Null>>,
    pub stdout_path: String,
    pub stderr_path: String,
    /// Written to the process's stdin, which is then closed (unless `keepStdinOpen`).
    pub stdin: Option<Either<String, Null>>,
    /// Keep stdin open until the process ends: `writeCommandStdin(cancelId, text)` writes
    /// more (a CLI spoken to over JSON lines).
    pub keep_stdin_open: Option<bool>,
    /// `runCommand` only: the id under which `cancelCommand` can stop it.
    pub cancel_id: Option<Either<String, Null>>,
}

impl From<core::CommandSpec> for BindingCommandSpec {
    fn from(c: core::CommandSpec) -> Self {
        let core::CommandSpec {
            program,
            args,
            cwd,
            env,
            env_templates,
            timeout_ms,
            idle_timeout_ms,
            stdout_path,
            stderr_path,
            stdin,
            keep_stdin_open,
        } = c;
        BindingCommandSpec {
            program,
            args,
            cwd: Some(nullable(cwd)),
            env: Some(env),
            env_templates: (!env_templates.is_empty()).then_some(env_templates),
            timeout_ms: Some(nullable(timeout_ms.map(millis))),
            idle_timeout_ms: Some(nullable(idle_timeout_ms.map(millis))),
            stdout_path,
            stderr_path,
            stdin: Some(nullable(stdin)),
            keep_stdin_open: keep_stdin_open.then_some(true),
            cancel_id: None,
        }
    }
}

impl BindingCommandSpec {
    /// The core's spec and the cancel id.
    pub fn into_core(self) -> napi::Result<(core::CommandSpec, Option<String>)> {
        let BindingCommandSpec {
            program,
            args,
            cwd,
            env,
            env_templates,
            timeout_ms,
            idle_timeout_ms,
            stdout_path,
            stderr_path,
            stdin,
            keep_stdin_open,
            cancel_id,
        } = self;
        let spec = core::CommandSpec {
            program,
            args,
            cwd: given(cwd),
            env: env.unwrap_or_default(),
            env_templates: env_templates.unwrap_or_default(),
            timeout_ms: to_millis("timeoutMs", timeout_ms)?,
            idle_timeout_ms: to_millis("idleTimeoutMs", idle_timeout_ms)?,
            stdout_path,
            stderr_path,
            stdin: given(stdin),
            keep_stdin_open: keep_stdin_open.unwrap_or(false),
        };
        Ok((spec, given(cancel_id)))
    }
}

/// How a command's process ended: exit code or signal, whether it timed out or was
/// cancelled, the tails of its output.
#[napi(object)]
pub struct BindingCommandOutcome {
    pub exit_code: Either<i32, Null>,
    pub signal: Either<i32, Null>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: i64,
    pub spawn_error: Either<String, Null>,
    pub cancelled: bool,
}

impl From<core::CommandOutcome> for BindingCommandOutcome {
    fn from(o: core::CommandOutcome) -> Self {
        let core::CommandOutcome {
            exit_code,
            signal,
            timed_out,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
            duration_ms,
            spawn_error,
            cancelled,
        } = o;
        BindingCommandOutcome {
            exit_code: nullable(exit_code),
            signal: nullable(signal),
            timed_out,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
            duration_ms: millis(duration_ms),
            spawn_error: nullable(spawn_error),
            cancelled,
        }
    }
}

// ------------------------------------------------------------------ decisions

/// A decision on a gate of `runId`: the gate (`nodeId`, `iteration`; found when the run has
/// one waiting), who decides with which scopes, and what they send. `decisionJson` is the
/// payload of a select / rank gate or a human task's answer, as JSON text.
#[napi(object)]
pub struct BindingDecisionRequest {
    pub run_id: String,
    pub node_id: Option<Either<String, Null>>,
    pub iteration: Option<Either<i64, Null>>,
    pub note: Option<Either<String, Null>>,
    pub decided_by: Option<Either<String, Null>>,
    /// Scopes the decider holds (checked against a gate's `allowedScopes`).
    pub scopes: Option<Either<Vec<String>, Null>>,
    pub decision_json: Option<Either<String, Null>>,
    /// Approver inputs: only names the gate declares in `input`.
    pub inputs: Option<Either<BTreeMap<String, String>, Null>>,
    /// Why a reviewed step is rejected; defaults to the note.
    pub reason: Option<Either<String, Null>>,
    /// Refuse an approve by the user who started the run (four-eyes rule).
    pub forbid_starter: Option<bool>,
    /// The view digest the decider saw (`digest` of the approval): refused with STALE_VIEW
    /// when the gate shows something else now.
    pub expect_digest: Option<Either<String, Null>>,
}

impl TryFrom<BindingDecisionRequest> for core::DecisionRequest {
    type Error = core::Error;
    fn try_from(r: BindingDecisionRequest) -> core::Result<Self> {
        let BindingDecisionRequest {
            run_id,
            node_id,
            iteration,
            note,
            decided_by,
            scopes,
            decision_json,
            inputs,
            reason,
            forbid_starter,
            expect_digest,
        } = r;
        let decision = given(decision_json)
            .map(|json| {
                serde_json::from_str(&json).map_err(|e| {
                    core::Error::InvalidDecision(format!("the decision cannot be read: {e}"))
                })
            })
            .transpose()?;
        Ok(core::DecisionRequest {
            run_id,
            node_id: given(node_id),
            iteration: given(iteration),
            note: given(note),
            decided_by: given(decided_by),
            scopes: given(scopes).unwrap_or_default(),
            decision,
            inputs: given(inputs).unwrap_or_default(),
            reason: given(reason),
            forbid_starter: forbid_starter.unwrap_or(false),
            expect_digest: given(expect_digest),
        })
    }
}

/// What a decision recorded, and where the run stands after it.
#[napi(object)]
pub struct BindingDecisionOutcome {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    #[napi(ts_type = "'approved' | 'denied' | 'rejected' | 'pushed-back' | 'invalid' | 'voted'")]
    pub status: String,
    pub decided_by: Either<String, Null>,
    pub decided_at: String,
    #[napi(ts_type = "BindingRunStatus")]
    pub run_status: String,
    #[napi(ts_type = "'gate' | 'review'")]
    pub kind: String,
    /// The review round the decision closed (1 unless the step was pushed back before).
    pub round: i64,
    /// Dagu's count of push-backs of the step, from 0: after this decision.
    pub approval_iteration: i64,
    /// Nodes a push-back sent back to pending besides the step itself.
    pub reset: Option<Vec<String>>,
    pub inputs: BTreeMap<String, String>,
    /// Another live process that drives the run and will pick the decision up.
    pub owner: Either<String, Null>,
    /// Nobody drives the run: the caller should resume it.
    pub needs_resume: bool,
    pub output: Either<BindingOutputRow, Null>,
    /// A human task's answer that was not valid: which attempt it was, how many the task
    /// takes, and why it was refused.
    pub attempt: Option<i64>,
    pub max_attempts: Option<i64>,
    #[napi(
        ts_type = "{ code: 'HUMAN_TASK_INVALID_JSON' | 'HUMAN_TASK_VALIDATION_FAILED'; message: string }"
    )]
    pub error: Option<Value>,
    /// A quorum gate: the votes on it after this one (`status` is `voted` while it stays open).
    pub quorum: Option<BindingTally>,
}

/// Where a quorum gate stands after a vote.
#[napi(object)]
pub struct BindingTally {
    /// Approvals it needs.
    pub needed: u32,
    /// Who approved, in the order they voted.
    pub approvals: Vec<String>,
    /// Who denied without a veto.
    pub denials: Vec<String>,
    /// The veto holder whose denial decided it.
    pub vetoed_by: Either<String, Null>,
    /// Whether this vote decided the gate.
    pub decided: bool,
}

impl From<core::decision::Tally> for BindingTally {
    fn from(t: core::decision::Tally) -> Self {
        let core::decision::Tally {
            needed,
            approvals,
            denials,
            vetoed_by,
            decided,
        } = t;
        BindingTally {
            needed,
            approvals,
            denials,
            vetoed_by: nullable(vetoed_by),
            decided,
        }
    }
}

impl From<core::DecisionOutcome> for BindingDecisionOutcome {
    fn from(o: core::DecisionOutcome) -> Self {
        let core::DecisionOutcome {
            run_id,
            node_id,
            iteration,
            status,
            decided_by,
            decided_at,
            run_status,
            kind,
            round,
            approval_iteration,
            reset,
            inputs,
            owner,
            needs_resume,
            output,
            attempt,
            max_attempts,
            error,
            quorum,
        } = o;
        BindingDecisionOutcome {
            run_id,
            node_id,
            iteration,
            status: status.to_string(),
            decided_by: nullable(decided_by),
            decided_at,
            run_status: run_status.to_string(),
            kind,
            round,
            approval_iteration,
            reset: (!reset.is_empty()).then_some(reset),
            inputs,
            owner: nullable(owner),
            needs_resume,
            output: nullable(output.map(Into::into)),
            attempt,
            max_attempts,
            error,
            quorum: quorum.map(Into::into),
        }
    }
}

// ------------------------------------------------------------------ reading runs

/// Which runs `listRuns` returns (newest first).
#[napi(object)]
pub struct BindingRunFilter {
    #[napi(ts_type = "BindingRunStatus | null")]
    pub status: Option<Either<String, Null>>,
    pub workflow_name: Option<Either<String, Null>>,
    pub limit: Option<Either<i64, Null>>,
    /// Only runs a watcher could not resume.
    pub resume_failed: Option<Either<bool, Null>>,
}

impl From<BindingRunFilter> for core::RunFilter {
    fn from(f: BindingRunFilter) -> Self {
        let BindingRunFilter {
            status,
            workflow_name,
            limit,
            resume_failed,
        } = f;
        core::RunFilter {
            status: given(status),
            workflow_name: given(workflow_name),
            limit: given(limit),
            resume_failed: given(resume_failed),
        }
    }
}

/// A run as `ps`, `getRun` and the API show it.
#[napi(object)]
pub struct BindingRunSummary {
    pub run_id: String,
    pub workflow_name: String,
    pub workflow_path: Either<String, Null>,
    #[napi(ts_type = "BindingRunStatus")]
    pub status: String,
    pub owner: Either<String, Null>,
    /// Whether the owner still holds the run: its lease is current ("alive"), its process is
    /// gone or its lease expired ("dead": anyone may resume it), or a row from before leases.
    #[napi(ts_type = "'alive' | 'dead' | 'unknown' | null")]
    pub owner_liveness: Either<String, Null>,
    /// When the owner's lease expires unless it renews it.
    pub lease_expires_at: Either<String, Null>,
    /// Why a watcher could not resume the run (cleared when it is claimed).
    pub resume_error: Either<BindingRunError, Null>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Either<String, Null>,
    pub pending_approvals: i64,
    pub error: Either<BindingRunError, Null>,
    /// Who started the run.
    pub started_by: Either<String, Null>,
    /// A sub-run's caller: its run, task and iteration.
    pub parent_run_id: Option<String>,
    pub parent_node_id: Option<String>,
    pub parent_iteration: Option<i64>,
    /// A rejected run: who rejected which step, when, and why.
    pub rejection: Option<BindingRejection>,
}

impl From<core::RunSummary> for BindingRunSummary {
    fn from(s: core::RunSummary) -> Self {
        let core::RunSummary {
            run_id,
            workflow_name,
            workflow_path,
            status,
            owner,
            owner_liveness,
            lease_expires_at,
            resume_error,
            created_at,
            updated_at,
            finished_at,
            pending_approvals,
            error,
            started_by,
            parent_run_id,
            parent_node_id,
            parent_iteration,
            rejection,
            ..
        } = s;
        BindingRunSummary {
            run_id,
            workflow_name,
            workflow_path: nullable(workflow_path),
            status,
            owner: nullable(owner),
            owner_liveness: nullable(owner_liveness.map(str::to_string)),
            lease_expires_at: nullable(lease_expires_at),
            resume_error: nullable(resume_error.map(Into::into)),
            created_at,
            updated_at,
            finished_at: nullable(finished_at),
            pending_approvals,
            error: nullable(error.map(Into::into)),
            started_by: nullable(started_by),
            parent_run_id,
            parent_node_id,
            parent_iteration,
            rejection: rejection.map(Into::into),
        }
    }
}

#[napi(object)]
pub struct BindingRejection {
    pub node_id: String,
    pub rejected_at: String,
    pub rejected_by: Either<String, Null>,
    pub rejection_reason: Either<String, Null>,
}

impl From<core::views::Rejection> for BindingRejection {
    fn from(r: core::views::Rejection) -> Self {
        let core::views::Rejection {
            node_id,
            rejected_at,
            rejected_by,
            rejection_reason,
        } = r;
        BindingRejection {
            node_id,
            rejected_at,
            rejected_by: nullable(rejected_by),
            rejection_reason: nullable(rejection_reason),
        }
    }
}

/// A run nobody holds that a watcher should resume, and its `updatedAtMs` (the page key).
#[napi(object)]
pub struct BindingOrphanedRun {
    pub run: BindingRunSummary,
    pub updated_at_ms: i64,
}

impl From<core::OrphanedRun> for BindingOrphanedRun {
    fn from(o: core::OrphanedRun) -> Self {
        let core::OrphanedRun { run, updated_at_ms } = o;
        BindingOrphanedRun {
            run: run.into(),
            updated_at_ms,
        }
    }
}

/// Where the previous page of `orphanedRuns` ended.
#[napi(object)]
pub struct BindingOrphanCursor {
    pub updated_at_ms: i64,
    pub run_id: String,
}

impl From<BindingOrphanCursor> for core::OrphanCursor {
    fn from(c: BindingOrphanCursor) -> Self {
        let BindingOrphanCursor {
            updated_at_ms,
            run_id,
        } = c;
        core::OrphanCursor {
            updated_at_ms,
            run_id,
        }
    }
}

#[napi(object)]
pub struct BindingNodeSummary {
    pub node_id: String,
    pub iteration: i64,
    #[napi(ts_type = "BindingNodeState")]
    pub state: String,
    pub output: String,
    pub label: Either<String, Null>,
    pub attempts: i64,
    pub skip_reason: Either<String, Null>,
    /// `{code?, message, name?, stack?}` of the last failure.
    #[napi(
        ts_type = "{ code?: string | null; message: string; name?: string | null; stack?: string | null } | null"
    )]
    pub error: Value,
    pub updated_at: String,
    /// The sub-run the task waits on (or last waited on).
    pub sub_run_id: Option<String>,
}

impl From<core::views::NodeSummary> for BindingNodeSummary {
    fn from(n: core::views::NodeSummary) -> Self {
        let core::views::NodeSummary {
            node_id,
            iteration,
            state,
            output,
            label,
            attempts,
            skip_reason,
            error,
            updated_at,
            sub_run_id,
        } = n;
        BindingNodeSummary {
            node_id,
            iteration,
            state,
            output,
            label: nullable(label),
            attempts,
            skip_reason: nullable(skip_reason),
            error: error.unwrap_or_default(),
            updated_at,
            sub_run_id,
        }
    }
}

/// An approval (a gate or a review) as the inbox, `pendingApprovals` and `inspect` show it.
#[napi(object)]
pub struct BindingApprovalSummary {
    pub run_id: String,
    pub workflow_name: String,
    /// The status of the approval's run.
    #[napi(ts_type = "BindingRunStatus")]
    pub run_status: String,
    pub node_id: String,
    pub iteration: i64,
    #[napi(ts_type = "BindingApprovalStatus")]
    pub status: String,
    #[napi(ts_type = "'gate' | 'decision' | 'select' | 'rank' | 'human' | 'review'")]
    pub mode: String,
    #[napi(ts_type = "'fail' | 'continue' | 'skip'")]
    pub on_deny: String,
    pub title: Either<String, Null>,
    pub summary: Either<String, Null>,
    #[napi(ts_type = "Record<string, unknown> | null")]
    pub metadata: Value,
    #[napi(ts_type = "Array<{ key: string; label: string; summary?: string }>")]
    pub options: Value,
    #[napi(ts_type = "Array<string>")]
    pub allowed_users: Value,
    #[napi(ts_type = "Array<string>")]
    pub allowed_scopes: Value,
    pub requested_at: String,
    pub requested_at_ms: i64,
    pub waiting_ms: Either<i64, Null>,
    pub decided_at: Either<String, Null>,
    pub decided_by: Either<String, Null>,
    pub note: Either<String, Null>,
    /// "gate": decided before the step runs; "review": after it ran.
    #[napi(ts_type = "'gate' | 'review'")]
    pub kind: String,
    /// The review round: 1, then +1 per push-back.
    pub round: i64,
    /// Dagu's approvalIteration: push-backs so far (round - 1).
    pub approval_iteration: i64,
    /// Where a push-back restarts, when not the step itself.
    pub rewind_to: Either<String, Null>,
    pub workflow_path: Either<String, Null>,
    /// Set when the approval belongs to a sub-run (listed with its caller's).
    pub parent_run_id: Either<String, Null>,
    pub prompt: Either<String, Null>,
    #[napi(ts_type = "Array<string>")]
    pub input: Value,
    #[napi(ts_type = "Array<string>")]
    pub required: Value,
    /// Inputs sent with the decision.
    #[napi(ts_type = "Record<string, string>")]
    pub inputs: Value,
    /// Why a reviewed step was rejected.
    pub reason: Either<String, Null>,
    pub stdout_path: Either<String, Null>,
    /// The reviewed step's output (reviews only).
    pub output: Value,
    /// Earlier review rounds, oldest first.
    #[napi(
        ts_type = "Array<{ iteration: number; status: 'pushed-back' | 'approved' | 'rejected'; by: string | null; at: string; requestedAt: string; inputs: Record<string, string> | null; note: string | null; output: Record<string, unknown> | null; stdoutPath: string | null }>"
    )]
    pub history: Vec<Value>,
    /// A human task's answer schema.
    pub schema: Option<Value>,
    pub max_attempts: Option<i64>,
    /// An `async` gate: what follows it goes on while it waits.
    #[napi(js_name = "async")]
    pub wait_async: Option<bool>,
    /// The view digest (`sha256:…`): send it back with a decision as `expectDigest`.
    pub digest: String,
    /// A quorum gate's quorum, and its votes on this request, oldest first.
    #[napi(ts_type = "{ approvals: number; from?: string[]; veto?: string[] }")]
    pub quorum: Option<Value>,
    pub votes: Option<Vec<BindingVote>>,
    /// A gate's deadline, ms since the epoch, and what it decides then.
    pub deadline_at_ms: Option<i64>,
    #[napi(ts_type = "'deny' | 'approve' | 'fail'")]
    pub on_timeout: Option<String>,
    /// Escalation steps that fired, oldest first: `allowedUsers` / `allowedScopes` are who may
    /// decide now.
    #[napi(
        ts_type = "Array<{ step: number; at: string; added: { allowedUsers?: string[]; allowedScopes?: string[] } }>"
    )]
    pub escalated: Option<Value>,
}

/// One vote on a quorum gate.
#[napi(object)]
pub struct BindingVote {
    pub voter: String,
    #[napi(ts_type = "'approve' | 'deny'")]
    pub verdict: String,
    /// A denial by a veto holder (it decided the gate).
    pub veto: bool,
    pub note: Either<String, Null>,
    pub at: String,
    pub at_ms: i64,
}

impl From<core::VoteSummary> for BindingVote {
    fn from(v: core::VoteSummary) -> Self {
        let core::VoteSummary {
            voter,
            verdict,
            veto,
            note,
            at,
            at_ms,
        } = v;
        BindingVote {
            voter,
            verdict,
            veto,
            note: nullable(note),
            at,
            at_ms,
        }
    }
}

impl From<core::ApprovalSummary> for BindingApprovalSummary {
    fn from(a: core::ApprovalSummary) -> Self {
        let core::ApprovalSummary {
            run_id,
            workflow_name,
            run_status,
            node_id,
            iteration,
            status,
            mode,
            on_deny,
            title,
            summary,
            metadata,
            options,
            allowed_users,
            allowed_scopes,
            requested_at,
            requested_at_ms,
            waiting_ms,
            decided_at,
            decided_by,
            note,
            kind,
            round,
            approval_iteration,
            rewind_to,
            workflow_path,
            parent_run_id,
            prompt,
            input,
            required,
            inputs,
            reason,
            stdout_path,
            output,
            history,
            schema,
            max_attempts,
            wait_async,
            digest,
            quorum,
            votes,
            deadline_at_ms,
            on_timeout,
            escalated,
        } = a;
        BindingApprovalSummary {
            run_id,
            workflow_name,
            run_status,
            node_id,
            iteration,
            status,
            mode,
            on_deny,
            title: nullable(title),
            summary: nullable(summary),
            metadata,
            options,
            allowed_users,
            allowed_scopes,
            requested_at,
            requested_at_ms,
            waiting_ms: nullable(waiting_ms),
            decided_at: nullable(decided_at),
            decided_by: nullable(decided_by),
            note: nullable(note),
            kind,
            round,
            approval_iteration,
            rewind_to: nullable(rewind_to),
            workflow_path: nullable(workflow_path),
            parent_run_id: nullable(parent_run_id),
            prompt: nullable(prompt),
            input,
            required,
            inputs,
            reason: nullable(reason),
            stdout_path: nullable(stdout_path),
            output,
            history,
            schema: (!schema.is_null()).then_some(schema),
            max_attempts,
            wait_async: wait_async.then_some(true),
            digest,
            quorum: (!quorum.is_null()).then_some(quorum),
            votes: (!votes.is_empty()).then(|| votes.into_iter().map(Into::into).collect()),
            deadline_at_ms,
            on_timeout,
            escalated: (!escalated.is_null()).then_some(escalated),
        }
    }
}

/// Which approvals `pendingApprovals` returns: waiting ones unless `status` says otherwise
/// (`all` for every status), oldest request first; page with `after` (or `offset`).
#[napi(object)]
pub struct BindingApprovalFilter {
    pub run_id: Option<Either<String, Null>>,
    pub workflow_name: Option<Either<String, Null>>,
    pub node_id: Option<Either<String, Null>>,
    #[napi(ts_type = "BindingApprovalStatus | 'all' | null")]
    pub status: Option<Either<String, Null>>,
    pub limit: Option<Either<i64, Null>>,
    pub offset: Option<Either<i64, Null>>,
    pub after: Option<Either<BindingApprovalCursor, Null>>,
}

/// Where a page of `pendingApprovals` ended: the last row's sort key.
#[napi(object)]
pub struct BindingApprovalCursor {
    pub requested_at_ms: i64,
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
}

impl From<BindingApprovalFilter> for core::ApprovalFilter {
    fn from(f: BindingApprovalFilter) -> Self {
        let BindingApprovalFilter {
            run_id,
            workflow_name,
            node_id,
            status,
            limit,
            offset,
            after,
        } = f;
        core::ApprovalFilter {
            run_id: given(run_id),
            workflow_name: given(workflow_name),
            node_id: given(node_id),
            status: given(status),
            limit: given(limit),
            offset: given(offset),
            after: given(after).map(|c| {
                let BindingApprovalCursor {
                    requested_at_ms,
                    run_id,
                    node_id,
                    iteration,
                } = c;
                core::views::ApprovalCursor {
                    requested_at_ms,
                    run_id,
                    node_id,
                    iteration,
                }
            }),
        }
    }
}

#[napi(object)]
pub struct BindingLoopSummary {
    pub loop_id: String,
    pub iteration: i64,
    pub done: bool,
}

/// Everything stored about a run.
#[napi(object)]
pub struct BindingRunInspection {
    pub run: BindingRunSummary,
    pub input: Value,
    pub nodes: Vec<BindingNodeSummary>,
    pub approvals: Vec<BindingApprovalSummary>,
    pub outputs: Vec<BindingOutputRow>,
    pub loops: Vec<BindingLoopSummary>,
    /// Every attempt of an agent task: what it asked, answered and used.
    pub agent_attempts: Vec<BindingAttemptLog>,
}

impl From<core::RunInspection> for BindingRunInspection {
    fn from(i: core::RunInspection) -> Self {
        let core::RunInspection {
            run,
            input,
            nodes,
            approvals,
            outputs,
            loops,
            agent_attempts,
        } = i;
        BindingRunInspection {
            run: run.into(),
            input,
            nodes: nodes.into_iter().map(Into::into).collect(),
            approvals: approvals.into_iter().map(Into::into).collect(),
            outputs: outputs.into_iter().map(Into::into).collect(),
            loops: loops
                .into_iter()
                .map(|l| {
                    let core::views::LoopSummary {
                        loop_id,
                        iteration,
                        done,
                    } = l;
                    BindingLoopSummary {
                        loop_id,
                        iteration,
                        done,
                    }
                })
                .collect(),
            agent_attempts: agent_attempts.into_iter().map(Into::into).collect(),
        }
    }
}

/// Counts over the whole database for `/metrics`: runs by workflow and status, pending
/// approvals by workflow with the oldest one's request time.
#[napi(object)]
pub struct BindingStoreMetrics {
    pub runs: Vec<BindingRunCount>,
    pub pending_approvals: Vec<BindingPendingCount>,
}

#[napi(object)]
pub struct BindingRunCount {
    pub workflow: String,
    #[napi(ts_type = "BindingRunStatus")]
    pub status: String,
    pub count: i64,
}

#[napi(object)]
pub struct BindingPendingCount {
    pub workflow: String,
    pub count: i64,
    pub oldest_requested_at_ms: i64,
}

impl From<core::StoreMetrics> for BindingStoreMetrics {
    fn from(m: core::StoreMetrics) -> Self {
        let core::StoreMetrics {
            runs,
            pending_approvals,
        } = m;
        BindingStoreMetrics {
            runs: runs
                .into_iter()
                .map(|r| {
                    let core::views::RunCount {
                        workflow,
                        status,
                        count,
                    } = r;
                    BindingRunCount {
                        workflow,
                        status,
                        count,
                    }
                })
                .collect(),
            pending_approvals: pending_approvals
                .into_iter()
                .map(|p| {
                    let core::views::PendingCount {
                        workflow,
                        count,
                        oldest_requested_at_ms,
                    } = p;
                    BindingPendingCount {
                        workflow,
                        count,
                        oldest_requested_at_ms,
                    }
                })
                .collect(),
        }
    }
}

/// Which attempts `attemptLogs` returns.
#[napi(object)]
pub struct BindingLogFilter {
    pub node_id: Option<Either<String, Null>>,
    pub iteration: Option<Either<i64, Null>>,
    pub attempt: Option<Either<i64, Null>>,
}

impl From<BindingLogFilter> for core::LogFilter {
    fn from(f: BindingLogFilter) -> Self {
        let BindingLogFilter {
            node_id,
            iteration,
            attempt,
        } = f;
        core::LogFilter {
            node_id: given(node_id),
            iteration: given(iteration),
            attempt: given(attempt),
        }
    }
}

/// One attempt of a task: a command's exit code and log paths, or an agent's call.
#[napi(object)]
pub struct BindingAttemptLog {
    pub node_id: String,
    pub iteration: i64,
    pub attempt: i64,
    pub state: String,
    pub exit_code: Either<i64, Null>,
    pub stdout_path: Either<String, Null>,
    pub stderr_path: Either<String, Null>,
    pub started_at: String,
    pub finished_at: Either<String, Null>,
    /// Agent attempts: the prompt sent, the raw answer, token usage, the agent
    /// (`{agent, model, followUp, toolCalls}`); null for command tasks.
    pub prompt: Either<String, Null>,
    pub response_text: Either<String, Null>,
    #[napi(
        ts_type = "{ inputTokens?: number; outputTokens?: number; totalTokens?: number; reasoningTokens?: number; cacheReadTokens?: number; cacheWriteTokens?: number } | null"
    )]
    pub usage: Value,
    #[napi(
        ts_type = "{ agent: string | null; model: string | null; followUp: { reason: string; prompt: string; text: string } | null; toolCalls: number | null } | null"
    )]
    pub agent: Value,
    #[napi(ts_type = "{ code?: string | null; message: string } | null")]
    pub error: Value,
}

impl From<core::AttemptLog> for BindingAttemptLog {
    fn from(a: core::AttemptLog) -> Self {
        let core::AttemptLog {
            node_id,
            iteration,
            attempt,
            state,
            exit_code,
            stdout_path,
            stderr_path,
            started_at,
            finished_at,
            prompt,
            response_text,
            usage,
            agent,
            error,
        } = a;
        BindingAttemptLog {
            node_id,
            iteration,
            attempt,
            state,
            exit_code: nullable(exit_code),
            stdout_path: nullable(stdout_path),
            stderr_path: nullable(stderr_path),
            started_at,
            finished_at: nullable(finished_at),
            prompt: nullable(prompt),
            response_text: nullable(response_text),
            usage: usage.unwrap_or_default(),
            agent: agent.unwrap_or_default(),
            error: error.unwrap_or_default(),
        }
    }
}

/// An event as JS sees it: `{runId, seq, type, timestampMs, feedId?, …its payload}` (the
/// payload's fields depend on the type: an open record).
pub fn event(e: core::Event) -> serde_json::Map<String, Value> {
    let core::Event {
        run_id,
        seq,
        kind,
        timestamp_ms,
        feed_id,
        payload,
    } = e;
    let mut out = serde_json::Map::with_capacity(payload.len() + 5);
    out.insert("runId".into(), run_id.into());
    out.insert("seq".into(), seq.into());
    out.insert("type".into(), kind.as_str().into());
    out.insert("timestampMs".into(), timestamp_ms.into());
    if let Some(id) = feed_id {
        out.insert("feedId".into(), id.into());
    }
    out.extend(payload);
    out
}

/// A webhook delivery to write (`enqueueDeliveries`).
#[napi(object)]
pub struct BindingNewDelivery {
    pub delivery_id: String,
    pub target: String,
    pub url: String,
    pub event_type: String,
    pub feed_id: Option<Either<i64, Null>>,
    pub run_id: Option<Either<String, Null>>,
    pub node_id: Option<Either<String, Null>>,
    pub iteration: Option<Either<i64, Null>>,
    /// The exact bytes that are sent (and signed).
    pub body: String,
}

impl From<BindingNewDelivery> for core::NewDelivery {
    fn from(d: BindingNewDelivery) -> Self {
        let BindingNewDelivery {
            delivery_id,
            target,
            url,
            event_type,
            feed_id,
            run_id,
            node_id,
            iteration,
            body,
        } = d;
        core::NewDelivery {
            delivery_id,
            target,
            url,
            event_type,
            feed_id: given(feed_id),
            run_id: given(run_id),
            node_id: given(node_id),
            iteration: given(iteration),
            body,
        }
    }
}

/// A delivery row, as `claimDeliveries`, `retryDelivery` and `listDeliveries` return it.
#[napi(object)]
pub struct BindingDelivery {
    pub delivery_id: String,
    pub target: String,
    pub url: String,
    pub event_type: String,
    pub feed_id: Either<i64, Null>,
    pub run_id: Either<String, Null>,
    pub node_id: Either<String, Null>,
    pub iteration: Either<i64, Null>,
    /// The body sent: on claimed rows, and listed ones when `withBody`.
    pub body: Option<String>,
    #[napi(ts_type = "'pending' | 'sending' | 'delivered' | 'failed'")]
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub claimed_by: Either<String, Null>,
    pub last_status_code: Either<i64, Null>,
    pub last_error: Either<String, Null>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub delivered_at_ms: Either<i64, Null>,
}

impl From<core::Delivery> for BindingDelivery {
    fn from(d: core::Delivery) -> Self {
        let core::Delivery {
            delivery_id,
            target,
            url,
            event_type,
            feed_id,
            run_id,
            node_id,
            iteration,
            body,
            status,
            attempts,
            next_attempt_at_ms,
            claimed_by,
            last_status_code,
            last_error,
            created_at_ms,
            updated_at_ms,
            delivered_at_ms,
        } = d;
        BindingDelivery {
            delivery_id,
            target,
            url,
            event_type,
            feed_id: nullable(feed_id),
            run_id: nullable(run_id),
            node_id: nullable(node_id),
            iteration: nullable(iteration),
            body,
            status,
            attempts,
            next_attempt_at_ms,
            claimed_by: nullable(claimed_by),
            last_status_code: nullable(last_status_code),
            last_error: nullable(last_error),
            created_at_ms,
            updated_at_ms,
            delivered_at_ms: nullable(delivered_at_ms),
        }
    }
}

/// What became of one attempt (`settleDelivery`).
#[napi(object)]
pub struct BindingDeliveryOutcome {
    /// The receiver answered 2xx.
    pub delivered: bool,
    pub status_code: Option<Either<i64, Null>>,
    pub error: Option<Either<String, Null>>,
    /// When to try again; none (and not delivered) gives up: `failed`.
    pub next_attempt_at_ms: Option<Either<i64, Null>>,
}

impl From<BindingDeliveryOutcome> for core::DeliveryOutcome {
    fn from(o: BindingDeliveryOutcome) -> Self {
        let BindingDeliveryOutcome {
            delivered,
            status_code,
            error,
            next_attempt_at_ms,
        } = o;
        core::DeliveryOutcome {
            delivered,
            status_code: given(status_code),
            error: given(error),
            next_attempt_at_ms: given(next_attempt_at_ms),
        }
    }
}

/// `listDeliveries`: newest first, paged with `before` (the last row's sort key).
#[napi(object)]
#[derive(Default)]
pub struct BindingDeliveryFilter {
    #[napi(ts_type = "'pending' | 'sending' | 'delivered' | 'failed' | null")]
    pub status: Option<Either<String, Null>>,
    pub run_id: Option<Either<String, Null>>,
    pub target: Option<Either<String, Null>>,
    pub limit: Option<Either<i64, Null>>,
    pub before: Option<Either<BindingDeliveryCursor, Null>>,
    /// Include the body sent.
    pub with_body: Option<bool>,
}

/// Where a page of `listDeliveries` ended.
#[napi(object)]
pub struct BindingDeliveryCursor {
    pub created_at_ms: i64,
    pub delivery_id: String,
}

impl From<BindingDeliveryFilter> for core::DeliveryFilter {
    fn from(f: BindingDeliveryFilter) -> Self {
        let BindingDeliveryFilter {
            status,
            run_id,
            target,
            limit,
            before,
            with_body,
        } = f;
        core::DeliveryFilter {
            status: given(status),
            run_id: given(run_id),
            target: given(target),
            limit: given(limit),
            before: given(before).map(|c| {
                let BindingDeliveryCursor {
                    created_at_ms,
                    delivery_id,
                } = c;
                core::deliveries::DeliveryCursor {
                    created_at_ms,
                    delivery_id,
                }
            }),
            with_body: with_body.unwrap_or(false),
        }
    }
}

/// The first use of a signed decision link (`useLink`).
#[napi(object)]
pub struct BindingLinkUse {
    pub link_id: String,
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    #[napi(ts_type = "'approve' | 'deny'")]
    pub action: String,
    pub approver: String,
}

impl From<BindingLinkUse> for core::LinkUse {
    fn from(l: BindingLinkUse) -> Self {
        let BindingLinkUse {
            link_id,
            run_id,
            node_id,
            iteration,
            action,
            approver,
        } = l;
        core::LinkUse {
            link_id,
            run_id,
            node_id,
            iteration,
            action,
            approver,
        }
    }
}

/// A durable timer (`runTimers`): a `<Timer>`'s or a gate's deadline.
#[napi(object)]
pub struct BindingTimer {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    #[napi(ts_type = "'timer' | 'approval-timeout'")]
    pub kind: String,
    pub round: i64,
    pub due_at_ms: i64,
    pub due_at: String,
    #[napi(ts_type = "'scheduled' | 'fired'")]
    pub status: String,
    pub spec_json: Option<String>,
    pub created_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub fired_by: Option<String>,
    pub outcome: Option<String>,
}

impl From<core::timers::TimerRow> for BindingTimer {
    fn from(t: core::timers::TimerRow) -> Self {
        let core::timers::TimerRow {
            run_id,
            node_id,
            iteration,
            kind,
            round,
            due_at_ms,
            due_at,
            status,
            spec_json,
            created_at_ms,
            fired_at_ms,
            fired_by,
            outcome,
        } = t;
        BindingTimer {
            run_id,
            node_id,
            iteration,
            kind,
            round,
            due_at_ms,
            due_at,
            status,
            spec_json,
            created_at_ms,
            fired_at_ms,
            fired_by,
            outcome,
        }
    }
}

/// A timer this engine fired (`fireDueTimers`).
#[napi(object)]
pub struct BindingFiredTimer {
    pub run_id: String,
    pub node_id: String,
    pub iteration: i64,
    #[napi(ts_type = "'timer' | 'approval-timeout'")]
    pub kind: String,
    pub due_at_ms: i64,
    pub lag_ms: i64,
    /// `finished`, `approved`, `denied`, `rejected`, `failed` or `obsolete`.
    pub outcome: String,
    #[napi(ts_type = "BindingRunStatus")]
    pub run_status: String,
    /// The run can move and nobody drives it: resume it.
    pub needs_resume: bool,
}

impl From<core::timers::FiredTimer> for BindingFiredTimer {
    fn from(t: core::timers::FiredTimer) -> Self {
        let core::timers::FiredTimer {
            run_id,
            node_id,
            iteration,
            kind,
            due_at_ms,
            lag_ms,
            outcome,
            run_status,
            needs_resume,
        } = t;
        BindingFiredTimer {
            run_id,
            node_id,
            iteration,
            kind,
            due_at_ms,
            lag_ms,
            outcome,
            run_status,
            needs_resume,
        }
    }
}

// ------------------------------------------------------------------ the decision log

/// One entry of the decision log, as stored: its content (`dataJson`: what was decided, as
/// JSON text) and the hashes that chain it to the entry before.
#[napi(object)]
pub struct BindingAuditEntry {
    pub seq: i64,
    /// `decision` (by a person, `smithers:auto` or `system:timeout`), `vote`, `escalation`,
    /// `migrated-decision`.
    pub kind: String,
    pub run_id: String,
    pub node_id: Either<String, Null>,
    pub iteration: Either<i64, Null>,
    pub actor: Either<String, Null>,
    pub at_ms: i64,
    pub data_json: String,
    pub content_hash: String,
    pub prev_hash: String,
    pub entry_hash: String,
}

impl TryFrom<core::audit::AuditEntry> for BindingAuditEntry {
    type Error = core::Error;
    fn try_from(e: core::audit::AuditEntry) -> core::Result<Self> {
        let core::audit::AuditEntry {
            seq,
            kind,
            run_id,
            node_id,
            iteration,
            actor,
            at_ms,
            data,
            content_hash,
            prev_hash,
            entry_hash,
        } = e;
        Ok(BindingAuditEntry {
            seq,
            kind,
            run_id,
            node_id: nullable(node_id),
            iteration: nullable(iteration),
            actor: nullable(actor),
            at_ms,
            data_json: serde_json::to_string(&data)?,
            content_hash,
            prev_hash,
            entry_hash,
        })
    }
}

/// The first entry of the log that does not hold.
#[napi(object)]
pub struct BindingAuditBreak {
    pub seq: i64,
    #[napi(ts_type = "'altered' | 'removed'")]
    pub problem: String,
    pub message: String,
}

/// What `auditVerify` found.
#[napi(object)]
pub struct BindingAuditReport {
    pub ok: bool,
    pub entries: i64,
    pub head_seq: Either<i64, Null>,
    pub head_hash: Either<String, Null>,
    pub broken: Either<BindingAuditBreak, Null>,
}

impl From<core::audit::AuditReport> for BindingAuditReport {
    fn from(r: core::audit::AuditReport) -> Self {
        let core::audit::AuditReport {
            ok,
            entries,
            head_seq,
            head_hash,
            broken,
        } = r;
        BindingAuditReport {
            ok,
            entries,
            head_seq: nullable(head_seq),
            head_hash: nullable(head_hash),
            broken: nullable(broken.map(|b| {
                let core::audit::AuditBreak {
                    seq,
                    problem,
                    message,
                } = b;
                BindingAuditBreak {
                    seq,
                    problem,
                    message,
                }
            })),
        }
    }
}
