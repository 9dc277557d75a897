//! The napi binding: one `Engine` class over `smithers_core::Engine`, the command runner and
//! the shared vocabulary (`contract`). No logic lives here.
//!
//! The boundary is oxc's hybrid (ARCHITECTURE.md, "The boundary"): graphs go in as JSON text
//! (`submitGraph`, `validateGraph`: the bulk path, thousands of nodes in one string), the
//! output rows of a step or snapshot come out as JSON text (`outputsJson`), and every other
//! call takes and returns typed objects (`types.rs`), whose TypeScript napi generates into
//! `binding.d.cts`.
//!
//! A failing call throws an `Error` whose `code` is the core's stable code and whose
//! `details` are its structured fields; the JS layer (`native.js`) makes it a
//! `SmithersError`. An argument napi cannot convert throws napi's own error (code
//! `InvalidArg`, `StringExpected`, …), which the JS layer names with the call's stable code.

#![deny(clippy::all)]

mod contract;
mod logging;
mod types;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::{Value, json};
use smithers_core as core;

use types::*;

/// What a failed call throws: `code` (stable), the message, `details`.
fn throw(env: &Env, code: &str, message: String, details: Value) -> Error {
    let thrown = (|| {
        let mut error = env.create_error(Error::new(Status::GenericFailure, message))?;
        error.set_named_property("code", code)?;
        error.set_named_property("details", env.to_js_value(&details)?)?;
        env.throw(error)
    })();
    match thrown {
        Ok(()) => Error::new(Status::PendingException, String::new()),
        Err(e) => e,
    }
}

fn fail(env: &Env, err: core::Error) -> Error {
    throw(env, err.code(), err.to_string(), err.details())
}

/// A smithers-rs engine on one SQLite database file.
#[napi]
pub struct Engine {
    inner: Option<core::Engine>,
}

#[napi]
impl Engine {
    /// Opens (or creates) the database at `dbPath` (see `BindingEngineOptions`).
    #[napi(constructor)]
    pub fn new(env: &Env, db_path: String, options: Option<BindingEngineOptions>) -> Result<Self> {
        logging::init();
        let BindingEngineOptions {
            must_exist,
            read_only,
            lease_ms,
        } = options.unwrap_or_default();
        let open = core::OpenOptions {
            must_exist: must_exist.unwrap_or(false),
            read_only: read_only.unwrap_or(false),
        };
        let mut inner = core::Engine::open_with(&db_path, open).map_err(|e| fail(env, e))?;
        if let Some(ms) = lease_ms {
            inner.set_lease_ms(ms);
        }
        if let Some(offset) = test_clock_offset(env)? {
            inner.set_clock(core::time::offset_clock(offset));
        }
        Ok(Engine { inner: Some(inner) })
    }

    /// Calls the core engine; a closed engine is ENGINE_CLOSED.
    fn with<T>(
        &mut self,
        env: &Env,
        f: impl FnOnce(&mut core::Engine) -> core::Result<T>,
    ) -> Result<T> {
        match self.inner.as_mut() {
            Some(engine) => f(engine).map_err(|e| fail(env, e)),
            None => Err(throw(
                env,
                "ENGINE_CLOSED",
                "the engine is closed".into(),
                json!({}),
            )),
        }
    }

    /// This engine's owner id, as recorded on the runs it drives.
    #[napi]
    pub fn owner_id(&mut self, env: &Env) -> Result<String> {
        self.with(env, |e| Ok(e.owner_id().to_string()))
    }

    /// Records a new run, owned by this engine, and returns its first snapshot.
    #[napi]
    pub fn create_run(&mut self, env: &Env, run: BindingNewRun) -> Result<BindingSnapshot> {
        self.with(env, |e| {
            e.create_run(run.try_into()?).and_then(TryInto::try_into)
        })
    }

    /// Takes the run for this engine (RUN_OWNED while another live engine holds it, unless
    /// `force`) and returns its snapshot.
    #[napi]
    pub fn claim_run(
        &mut self,
        env: &Env,
        run_id: String,
        options: Option<BindingClaimOptions>,
    ) -> Result<BindingSnapshot> {
        let options: core::ClaimOptions = options.map(Into::into).unwrap_or_default();
        self.with(env, |e| {
            e.claim_run_with(&run_id, &options)
                .and_then(TryInto::try_into)
        })
    }

    #[napi]
    pub fn release_run(&mut self, env: &Env, run_id: String) -> Result<()> {
        self.with(env, |e| e.release_run(&run_id))
    }

    #[napi]
    pub fn is_driving(&mut self, run_id: String) -> bool {
        self.inner.as_ref().is_some_and(|e| e.is_driving(&run_id))
    }

    /// Reconciles a rendered graph descriptor (JSON text: the bulk path) with the run and
    /// advances it.
    #[napi]
    pub fn submit_graph(
        &mut self,
        env: &Env,
        run_id: String,
        graph_json: String,
    ) -> Result<BindingStep> {
        self.with(env, |e| {
            e.submit_graph_json(&run_id, &graph_json)
                .and_then(TryInto::try_into)
        })
    }

    /// Advances a run with the graph its plan was built from, named by `graphId` (a step's):
    /// `STALE_GRAPH`, nothing changed, when that is not the plan's graph now.
    #[napi]
    pub fn submit_same_graph(
        &mut self,
        env: &Env,
        run_id: String,
        graph_id: i64,
    ) -> Result<BindingStep> {
        self.with(env, |e| {
            e.submit_same_graph(&run_id, graph_id_arg(graph_id))
                .and_then(TryInto::try_into)
        })
    }

    /// Records the results of task bodies (a JSON array: the bulk path, each result encoded
    /// on its own by `values.js`) and advances the run. With `render`, the graph rendered
    /// with those results as stored: applied in the same transaction when recording them
    /// changed exactly that (`graphApplied`; ARCHITECTURE.md).
    #[napi]
    pub fn complete_tasks(
        &mut self,
        env: &Env,
        run_id: String,
        results_json: String,
        render: Option<BindingRender>,
    ) -> Result<BindingStep> {
        let graph = match &render {
            None => None,
            Some(BindingRender {
                graph_json: Some(text),
                graph_id: None,
            }) => Some(core::RenderedGraph::Text(text)),
            Some(BindingRender {
                graph_json: None,
                graph_id: Some(id),
            }) => Some(core::RenderedGraph::Same(graph_id_arg(*id))),
            Some(_) => {
                return Err(throw(
                    env,
                    "INVALID_ARGUMENT",
                    "completeTasks render: give graphJson or graphId, not both or neither".into(),
                    json!({ "runId": run_id }),
                ));
            }
        };
        self.with(env, |e| {
            let results = serde_json::from_str(&results_json)?;
            match graph {
                None => e.complete_tasks(&run_id, results),
                Some(graph) => e.complete_and_submit(&run_id, results, graph),
            }
            .and_then(TryInto::try_into)
        })
    }

    /// Checks an agent's answer (JSON text) against a task's output schema; records nothing.
    #[napi]
    pub fn check_output(
        &mut self,
        env: &Env,
        run_id: String,
        node_id: String,
        value_json: String,
    ) -> Result<()> {
        self.with(env, |e| {
            e.check_output(&run_id, &node_id, &parse_value(&value_json)?)
        })
    }

    #[napi]
    pub fn advance(&mut self, env: &Env, run_id: String) -> Result<BindingStep> {
        self.with(env, |e| e.advance(&run_id).and_then(TryInto::try_into))
    }

    #[napi]
    pub fn approve(
        &mut self,
        env: &Env,
        request: BindingDecisionRequest,
    ) -> Result<BindingDecisionOutcome> {
        self.with(env, |e| e.approve(request.try_into()?).map(Into::into))
    }

    /// Denies a gate (as its `onDeny` says) or rejects a reviewed step.
    #[napi]
    pub fn deny(
        &mut self,
        env: &Env,
        request: BindingDecisionRequest,
    ) -> Result<BindingDecisionOutcome> {
        self.with(env, |e| e.deny(request.try_into()?).map(Into::into))
    }

    /// Sends a reviewed step back to run again with the reviewer's inputs.
    #[napi]
    pub fn push_back(
        &mut self,
        env: &Env,
        request: BindingDecisionRequest,
    ) -> Result<BindingDecisionOutcome> {
        self.with(env, |e| e.push_back(request.try_into()?).map(Into::into))
    }

    #[napi]
    pub fn attempt_logs(
        &mut self,
        env: &Env,
        run_id: String,
        filter: Option<BindingLogFilter>,
    ) -> Result<Vec<BindingAttemptLog>> {
        let filter: core::LogFilter = filter.map(Into::into).unwrap_or_default();
        self.with(env, |e| {
            let logs = e.attempt_logs(&run_id, &filter)?;
            Ok(logs.into_iter().map(Into::into).collect())
        })
    }

    /// Records what a driver ran outside the core (a handler, mail, a tool call) in the
    /// run's events; `payloadJson` is the event's fields as JSON text.
    #[napi]
    pub fn record_driver_event(
        &mut self,
        env: &Env,
        run_id: String,
        kind: String,
        payload_json: String,
    ) -> Result<()> {
        self.with(env, |e| {
            e.record_driver_event(&run_id, &kind, parse_value(&payload_json)?)
        })
    }

    /// Where command tasks write their logs.
    #[napi]
    pub fn log_dir(&mut self, env: &Env) -> Result<String> {
        self.with(env, |e| Ok(e.log_dir().to_string_lossy().into_owned()))
    }

    #[napi]
    pub fn set_log_dir(&mut self, dir: String) {
        if let Some(e) = self.inner.as_mut() {
            e.set_log_dir(dir);
        }
    }

    /// Cancels the run; returns its status afterwards.
    #[napi(ts_return_type = "BindingRunStatus")]
    pub fn cancel_run(&mut self, env: &Env, run_id: String) -> Result<String> {
        self.with(env, |e| e.cancel_run(&run_id).map(str::to_string))
    }

    #[napi]
    pub fn list_runs(
        &mut self,
        env: &Env,
        filter: Option<BindingRunFilter>,
    ) -> Result<Vec<BindingRunSummary>> {
        let filter: core::RunFilter = filter.map(Into::into).unwrap_or_default();
        self.with(env, |e| {
            Ok(e.list_runs(&filter)?.into_iter().map(Into::into).collect())
        })
    }

    #[napi]
    pub fn run_summary(&mut self, env: &Env, run_id: String) -> Result<BindingRunSummary> {
        self.with(env, |e| e.run_summary(&run_id).map(Into::into))
    }

    #[napi]
    pub fn inspect(&mut self, env: &Env, run_id: String) -> Result<BindingRunInspection> {
        self.with(env, |e| e.inspect(&run_id).map(Into::into))
    }

    #[napi]
    pub fn pending_approvals(
        &mut self,
        env: &Env,
        filter: Option<BindingApprovalFilter>,
    ) -> Result<Vec<BindingApprovalSummary>> {
        let filter: core::ApprovalFilter = filter.map(Into::into).unwrap_or_default();
        self.with(env, |e| {
            let approvals = e.pending_approvals(&filter)?;
            Ok(approvals.into_iter().map(Into::into).collect())
        })
    }

    /// The run's events after `afterSeq`, oldest first: `{runId, seq, type, timestampMs,
    /// …}` and the fields of their type.
    #[napi]
    pub fn events(
        &mut self,
        env: &Env,
        run_id: String,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<serde_json::Map<String, Value>>> {
        self.with(env, |e| {
            Ok(e.events(&run_id, after_seq, limit)?
                .into_iter()
                .map(event)
                .collect())
        })
    }

    /// Events of every run after position `afterId` of the database-wide feed, in commit
    /// order.
    #[napi]
    pub fn feed(
        &mut self,
        env: &Env,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<serde_json::Map<String, Value>>> {
        self.with(env, |e| {
            Ok(e.feed(after_id, limit)?.into_iter().map(event).collect())
        })
    }

    /// Runs by workflow and status, pending approvals by workflow (for `/metrics`).
    #[napi]
    pub fn store_metrics(&mut self, env: &Env) -> Result<BindingStoreMetrics> {
        self.with(env, |e| e.store_metrics().map(Into::into))
    }

    #[napi]
    pub fn feed_head(&mut self, env: &Env) -> Result<i64> {
        self.with(env, |e| e.feed_head())
    }

    /// Checks the decision log's hash chain (`smithers audit verify`); nothing is written.
    #[napi]
    pub fn audit_verify(&mut self, env: &Env) -> Result<BindingAuditReport> {
        self.with(env, |e| e.audit_verify().map(Into::into))
    }

    /// Entries of the decision log after `afterSeq`, oldest first, at most `limit`.
    #[napi]
    pub fn audit_entries(
        &mut self,
        env: &Env,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<BindingAuditEntry>> {
        self.with(env, |e| {
            e.audit_entries(after_seq, limit)?
                .into_iter()
                .map(BindingAuditEntry::try_from)
                .collect()
        })
    }

    /// Runs that are `running` while nobody holds them, oldest first; page with `after`.
    #[napi]
    pub fn orphaned_runs(
        &mut self,
        env: &Env,
        limit: i64,
        include_dead: bool,
        after: Option<BindingOrphanCursor>,
    ) -> Result<Vec<BindingOrphanedRun>> {
        let after: Option<core::OrphanCursor> = after.map(Into::into);
        self.with(env, |e| {
            let runs = e.orphaned_runs(limit, include_dead, after.as_ref())?;
            Ok(runs.into_iter().map(Into::into).collect())
        })
    }

    /// Writes webhook deliveries (one that exists is kept: its id names the event and the
    /// target) and moves the feed cursor to `cursor`, in one transaction. Returns how many
    /// were new.
    #[napi]
    pub fn enqueue_deliveries(
        &mut self,
        env: &Env,
        rows: Vec<BindingNewDelivery>,
        cursor: Option<i64>,
        now_ms: i64,
    ) -> Result<u32> {
        let rows: Vec<core::NewDelivery> = rows.into_iter().map(Into::into).collect();
        self.with(env, |e| {
            let new = e.enqueue_deliveries(&rows, cursor, now_ms)?;
            Ok(u32::try_from(new).unwrap_or(u32::MAX))
        })
    }

    /// The feed position up to which gate events became deliveries (null: never).
    #[napi]
    pub fn delivery_cursor(&mut self, env: &Env) -> Result<Option<i64>> {
        self.with(env, |e| e.delivery_cursor())
    }

    /// Claims due deliveries to `targets` (names) for `claimer` until `nowMs + leaseMs`.
    #[napi]
    pub fn claim_deliveries(
        &mut self,
        env: &Env,
        claimer: String,
        targets: Vec<String>,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<BindingDelivery>> {
        self.with(env, |e| {
            let claimed = e.claim_deliveries(&claimer, &targets, now_ms, lease_ms, limit)?;
            Ok(claimed.into_iter().map(Into::into).collect())
        })
    }

    /// Settles a claimed delivery; false when the claim was lost.
    #[napi]
    pub fn settle_delivery(
        &mut self,
        env: &Env,
        delivery_id: String,
        claimer: String,
        outcome: BindingDeliveryOutcome,
        now_ms: i64,
    ) -> Result<bool> {
        let outcome: core::DeliveryOutcome = outcome.into();
        self.with(env, |e| {
            e.settle_delivery(&delivery_id, &claimer, &outcome, now_ms)
        })
    }

    /// Makes a delivery due again now (DELIVERY_NOT_FOUND when there is none).
    #[napi]
    pub fn retry_delivery(
        &mut self,
        env: &Env,
        delivery_id: String,
        now_ms: i64,
    ) -> Result<BindingDelivery> {
        self.with(env, |e| {
            e.retry_delivery(&delivery_id, now_ms).map(Into::into)
        })
    }

    #[napi]
    pub fn list_deliveries(
        &mut self,
        env: &Env,
        filter: Option<BindingDeliveryFilter>,
    ) -> Result<Vec<BindingDelivery>> {
        let filter: core::DeliveryFilter = filter.map(Into::into).unwrap_or_default();
        self.with(env, |e| {
            Ok(e.list_deliveries(&filter)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Records the first use of a decision link; LINK_USED when it was used before.
    #[napi]
    pub fn use_link(&mut self, env: &Env, link: BindingLinkUse, now_ms: i64) -> Result<()> {
        let link: core::LinkUse = link.into();
        self.with(env, |e| e.use_link(&link, now_ms))
    }

    /// Records what a used link's decision came to (`outcomeJson`: JSON text, as the
    /// decision's own error message may hold anything).
    #[napi]
    pub fn record_link_outcome(
        &mut self,
        env: &Env,
        link_id: String,
        outcome_json: String,
    ) -> Result<()> {
        self.with(env, |e| {
            e.record_link_outcome(&link_id, &parse_value(&outcome_json)?)
        })
    }

    /// Forgets a link's use (its decision failed for a reason that says nothing about the
    /// link), so that it works again.
    #[napi]
    pub fn release_link(&mut self, env: &Env, link_id: String) -> Result<()> {
        self.with(env, |e| e.release_link(&link_id))
    }

    /// Records why a watcher could not resume a run.
    #[napi]
    pub fn mark_unresumable(
        &mut self,
        env: &Env,
        run_id: String,
        error: BindingRunError,
    ) -> Result<()> {
        self.with(env, |e| e.mark_unresumable(&run_id, error.into()))
    }

    #[napi]
    pub fn fail_run(
        &mut self,
        env: &Env,
        run_id: String,
        error: BindingRunError,
    ) -> Result<BindingStep> {
        self.with(env, |e| {
            e.fail_run(&run_id, error.into())
                .and_then(TryInto::try_into)
        })
    }

    /// Checks a graph descriptor (JSON text) without a run (a dry render before
    /// `createRun`), against this database's output tables; writes nothing.
    #[napi]
    pub fn validate_graph(&mut self, env: &Env, graph_json: String) -> Result<()> {
        self.with(env, |e| {
            e.validate_graph(&core::GraphDescriptor::parse(&graph_json)?)
        })
    }

    /// A waiter woken when another connection commits, without polling (PostgreSQL's
    /// LISTEN/NOTIFY, on a connection of its own); null on SQLite: poll `dataVersion`.
    #[napi]
    pub fn change_waiter(&mut self, env: &Env) -> Result<Option<ChangeWaiter>> {
        let waiter = self.with(env, |e| e.change_waiter())?;
        Ok(waiter.map(|w| ChangeWaiter {
            inner: std::sync::Arc::new(std::sync::Mutex::new(w)),
        }))
    }

    /// "Now" as this engine sees it (its clock), in ms since the epoch.
    #[napi]
    pub fn now_ms(&mut self, env: &Env) -> Result<i64> {
        self.with(env, |e| Ok(e.now_ms()))
    }

    /// The earliest due time of a scheduled timer in the database (when to wake up next).
    #[napi]
    pub fn next_timer_due(&mut self, env: &Env) -> Result<Option<i64>> {
        self.with(env, |e| e.next_timer_due())
    }

    /// Fires the timers due now (at most `limit`, default 100; only run `runId`'s when given),
    /// each once whoever races for it; returns those this engine fired.
    #[napi]
    pub fn fire_due_timers(
        &mut self,
        env: &Env,
        limit: Option<u32>,
        run_id: Option<String>,
    ) -> Result<Vec<BindingFiredTimer>> {
        let limit = limit.map_or(core::timers::FIRE_BATCH, |l| l as usize);
        self.with(env, |e| {
            Ok(e.fire_due_timers_of(run_id.as_deref(), limit)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// The timers of a run, earliest due first.
    #[napi]
    pub fn run_timers(&mut self, env: &Env, run_id: String) -> Result<Vec<BindingTimer>> {
        self.with(env, |e| {
            Ok(e.run_timers(&run_id)?.into_iter().map(Into::into).collect())
        })
    }

    /// Changes when another process commits to the database.
    #[napi]
    pub fn data_version(&mut self) -> i64 {
        self.inner
            .as_ref()
            .and_then(|e| e.data_version().ok())
            .unwrap_or(-1)
    }

    #[napi]
    pub fn set_event_buffering(&mut self, on: bool) {
        if let Some(e) = self.inner.as_mut() {
            e.set_event_buffering(on);
        }
    }

    /// Events committed since the last call (for in-process subscribers).
    #[napi]
    pub fn take_events(&mut self, env: &Env) -> Result<Vec<serde_json::Map<String, Value>>> {
        self.with(env, |e| {
            Ok(e.take_events().into_iter().map(event).collect())
        })
    }

    /// Closes the database. Later calls fail with ENGINE_CLOSED.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}

/// Commands that can be cancelled, by the id their caller gave.
static CANCELLERS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, core::command::Canceller>>,
> = std::sync::LazyLock::new(Default::default);

/// Runs a command task's process (a step's `command`, or one a CLI agent or a tool builds)
/// on a thread of its own and resolves with how it ended. The JS thread never waits on it.
/// With `cancelId`, `cancelCommand(cancelId)` stops it.
#[napi(ts_return_type = "Promise<BindingCommandOutcome>")]
pub fn run_command<'env>(env: &'env Env, spec: BindingCommandSpec) -> Result<Object<'env>> {
    logging::init();
    let (spec, cancel_id) = spec.into_core()?;
    let canceller = cancel_id.clone().map(|id| {
        let c = core::command::Canceller::default();
        if let Ok(mut map) = CANCELLERS.lock() {
            map.insert(id, c.clone());
        }
        c
    });
    let (deferred, promise) = env.create_deferred::<BindingCommandOutcome, _>()?;
    std::thread::Builder::new()
        .name("smithers-command".into())
        .spawn(move || {
            let outcome = core::command::run_with(&spec, canceller.as_ref());
            if let (Some(id), Ok(mut map)) = (&cancel_id, CANCELLERS.lock()) {
                map.remove(id);
            }
            deferred.resolve(move |_| Ok(outcome.into()));
        })
        .map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("cannot start a thread: {e}"),
            )
        })?;
    Ok(promise)
}

/// Stops a command started with this `cancelId` (SIGTERM to its process group, SIGKILL two
/// seconds later). False when no such command is running.
#[napi]
pub fn cancel_command(cancel_id: String) -> bool {
    let canceller = CANCELLERS
        .lock()
        .ok()
        .and_then(|map| map.get(&cancel_id).cloned());
    canceller.map(|c| c.cancel()).is_some()
}

/// How the addon was compiled, as a marker that `scripts/publish-guard.js` also finds in the
/// binary itself (for platforms whose addon cannot be loaded here). Only this build's marker is
/// compiled in: the constant is evaluated at compile time.
const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "smithers-build-profile=debug"
} else {
    "smithers-build-profile=release"
};

/// Writes `text` to the stdin of a command started with this `cancelId` and
/// `keepStdinOpen` (queued, never blocking). False when its stdin is not open.
#[napi]
pub fn write_command_stdin(cancel_id: String, text: String) -> bool {
    let control = CANCELLERS
        .lock()
        .ok()
        .and_then(|map| map.get(&cancel_id).cloned());
    control.is_some_and(|c| c.write_stdin(text.into_bytes()))
}

/// How the addon was compiled.
#[napi(ts_return_type = "'debug' | 'release'")]
pub fn engine_build() -> String {
    BUILD_PROFILE
        .trim_start_matches("smithers-build-profile=")
        .to_string()
}

/// Copies the database `from` into the empty database `to` (`smithers migrate --from --to`;
/// either may be a SQLite file or a `postgres://` URL), calling `onProgress` at the start of
/// every table, every 1,000 rows and its end. Returns what was copied; throws with the core's
/// code (TARGET_NOT_EMPTY, SOURCE_IN_USE, SOURCE_CHANGED, MIGRATE_VERIFY_FAILED, …), having
/// changed nothing.
#[napi(
    ts_args_type = "from: string, to: string, onProgress?: (progress: { table: string; tableIndex: number; tables: number; tableRowsDone: number; tableRows: number; rowsDone: number; rows: number }) => void",
    ts_return_type = "{ from: string; to: string; tables: Array<{ table: string; rows: number; output: boolean }>; rows: number; runs: number; audit: BindingAuditReport; skipped: Array<string> }"
)]
pub fn migrate_database(
    env: &Env,
    from: String,
    to: String,
    on_progress: Option<Function<'_, Value, Unknown<'_>>>,
) -> Result<Value> {
    logging::init();
    let mut progress = |p: &core::migrate::MigrateProgress| {
        if let (Some(f), Ok(v)) = (&on_progress, serde_json::to_value(p)) {
            // Progress is for people: a callback that throws does not stop the copy.
            let _ = f.call(v);
        }
    };
    let report = core::migrate::migrate(from.as_ref(), to.as_ref(), &mut progress)
        .map_err(|e| fail(env, e))?;
    serde_json::to_value(&report).map_err(|e| Error::from_reason(e.to_string()))
}

/// The version of the native engine.
#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Waits for other connections' commits off the JS thread (`Engine.changeWaiter()`).
#[napi]
pub struct ChangeWaiter {
    inner: std::sync::Arc<std::sync::Mutex<core::ChangeWaiter>>,
}

#[napi]
impl ChangeWaiter {
    /// Resolves true when another connection committed within `timeoutMs`, false when the time
    /// ran out; waits on a thread of the pool, never on the JS thread. One wait at a time.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn wait(&self, timeout_ms: u32) -> AsyncTask<WaitForChange> {
        AsyncTask::new(WaitForChange {
            inner: self.inner.clone(),
            timeout_ms: u64::from(timeout_ms),
        })
    }
}

pub struct WaitForChange {
    inner: std::sync::Arc<std::sync::Mutex<core::ChangeWaiter>>,
    timeout_ms: u64,
}

impl Task for WaitForChange {
    type Output = bool;
    type JsValue = bool;

    fn compute(&mut self) -> Result<bool> {
        let mut waiter = self
            .inner
            .lock()
            .map_err(|_| Error::from_reason("DB_ERROR: the waiter's lock was poisoned"))?;
        waiter
            .wait(self.timeout_ms)
            .map_err(|e| Error::from_reason(format!("{}: {e}", e.code())))
    }

    fn resolve(&mut self, _env: Env, output: bool) -> Result<bool> {
        Ok(output)
    }
}

/// The variable tests set to shift every engine's clock (ms, may be negative): due times pass
/// without sleeping. Never set in production; an engine that reads it says so in its logs.
const TEST_CLOCK_VAR: &str = "SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS";

fn test_clock_offset(env: &Env) -> Result<Option<i64>> {
    let Ok(text) = std::env::var(TEST_CLOCK_VAR) else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    match text.trim().parse::<i64>() {
        Ok(offset) => {
            tracing::warn!(
                target: "smithers_node",
                offset_ms = offset,
                "{TEST_CLOCK_VAR} is set: this engine's clock is shifted (for tests only)"
            );
            Ok(Some(offset))
        }
        Err(_) => Err(throw(
            env,
            "INVALID_ARGUMENT",
            format!("{TEST_CLOCK_VAR}={text:?} is not a whole number of milliseconds"),
            json!({ "variable": TEST_CLOCK_VAR }),
        )),
    }
}

/// A graph id from JS: a negative one names no graph (0, which the core refuses as stale).
fn graph_id_arg(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}
