//! The napi binding: one `Engine` class over `smithers_core::Engine`. No logic lives here.
//!
//! Every method takes and returns JSON text. A result is `{"ok":true,"value":…}` or
//! `{"ok":false,"error":{"code","message","details"}}`: errors are values at the boundary (as in
//! oxc and rolldown), and the JS layer turns them into `SmithersError`s with stable codes.
//! JSON text is also the fastest way across for graphs of thousands of nodes.

#![deny(clippy::all)]

use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::json;
use smithers_core as core;

mod logging;

fn ok<T: serde::Serialize>(value: T) -> String {
    match serde_json::to_string(&value) {
        Ok(v) => format!("{{\"ok\":true,\"value\":{v}}}"),
        Err(e) => fail(core::Error::Json(e)),
    }
}

fn fail(err: core::Error) -> String {
    json!({ "ok": false, "error": { "code": err.code(), "message": err.to_string(), "details": err.details(), "lookup": err.is_lookup() } })
        .to_string()
}

fn answer<T: serde::Serialize>(result: core::Result<T>) -> String {
    match result {
        Ok(v) => ok(v),
        Err(e) => fail(e),
    }
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> core::Result<T> {
    Ok(serde_json::from_str(json)?)
}

/// A decision request that is not valid JSON (a lone surrogate in a note, from a client that
/// sent `"\ud83d"`) is a bad decision, not a bad program.
fn parse_decision(json: &str) -> core::Result<core::DecisionRequest> {
    serde_json::from_str(json).map_err(|e| {
        core::Error::InvalidDecision(format!(
            "the request cannot be read: {e} (text must be valid Unicode, without lone surrogates)"
        ))
    })
}

/// How `new Engine(dbPath, options)` opens its database.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EngineOptions {
    #[serde(default)]
    must_exist: bool,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    lease_ms: Option<i64>,
}

/// A smithers-rs engine on one SQLite database file.
#[napi]
pub struct Engine {
    inner: Option<core::Engine>,
}

#[napi]
impl Engine {
    /// Opens (or creates) the database at `dbPath`. `optionsJson`: `{mustExist, readOnly,
    /// leaseMs}` (a missing file is DB_NOT_FOUND; read only never migrates or writes).
    #[napi(constructor)]
    pub fn new(db_path: String, options_json: Option<String>) -> Result<Self> {
        logging::init();
        let failed =
            |e: core::Error| Error::new(Status::GenericFailure, format!("{}: {}", e.code(), e));
        let options: EngineOptions = match options_json.as_deref() {
            Some(json) => parse(json).map_err(failed)?,
            None => EngineOptions::default(),
        };
        let mut inner = core::Engine::open_with(
            &db_path,
            core::OpenOptions {
                must_exist: options.must_exist,
                read_only: options.read_only,
            },
        )
        .map_err(failed)?;
        if let Some(ms) = options.lease_ms {
            inner.set_lease_ms(ms);
        }
        Ok(Engine { inner: Some(inner) })
    }

    fn engine(&mut self) -> core::Result<&mut core::Engine> {
        self.inner
            .as_mut()
            .ok_or_else(|| core::Error::InvalidGraph("the engine is closed".into()))
    }

    fn with<T: serde::Serialize>(
        &mut self,
        f: impl FnOnce(&mut core::Engine) -> core::Result<T>,
    ) -> String {
        answer(self.engine().and_then(f))
    }

    /// This engine's owner id, as recorded on the runs it drives.
    #[napi]
    pub fn owner_id(&mut self) -> String {
        self.with(|e| Ok(e.owner_id().to_string()))
    }

    #[napi]
    pub fn create_run(&mut self, new_run_json: String) -> String {
        self.with(|e| e.create_run(parse(&new_run_json)?))
    }

    /// `expectJson`: `{workflowPath, workflowName}` the caller drives the run with
    /// (WORKFLOW_MISMATCH unless `force`).
    #[napi]
    pub fn claim_run(
        &mut self,
        run_id: String,
        force: bool,
        expect_json: Option<String>,
    ) -> String {
        self.with(|e| {
            let mut options: core::ClaimOptions = match expect_json.as_deref() {
                Some(json) => parse(json)?,
                None => core::ClaimOptions::default(),
            };
            options.force = force;
            e.claim_run_with(&run_id, &options)
        })
    }

    #[napi]
    pub fn release_run(&mut self, run_id: String) -> String {
        self.with(|e| e.release_run(&run_id))
    }

    #[napi]
    pub fn is_driving(&mut self, run_id: String) -> bool {
        self.inner.as_ref().is_some_and(|e| e.is_driving(&run_id))
    }

    #[napi]
    pub fn submit_graph(&mut self, run_id: String, graph_json: String) -> String {
        self.with(|e| e.submit_graph_json(&run_id, &graph_json))
    }

    #[napi]
    pub fn complete_tasks(&mut self, run_id: String, results_json: String) -> String {
        self.with(|e| e.complete_tasks(&run_id, parse(&results_json)?))
    }

    /// Checks an agent's answer against a task's output schema; records nothing.
    #[napi]
    pub fn check_output(&mut self, run_id: String, node_id: String, value_json: String) -> String {
        self.with(|e| e.check_output(&run_id, &node_id, &parse(&value_json)?))
    }

    #[napi]
    pub fn advance(&mut self, run_id: String) -> String {
        self.with(|e| e.advance(&run_id))
    }

    #[napi]
    pub fn approve(&mut self, request_json: String) -> String {
        self.with(|e| e.approve(parse_decision(&request_json)?))
    }

    #[napi]
    pub fn deny(&mut self, request_json: String) -> String {
        self.with(|e| e.deny(parse_decision(&request_json)?))
    }

    #[napi]
    pub fn push_back(&mut self, request_json: String) -> String {
        self.with(|e| e.push_back(parse_decision(&request_json)?))
    }

    #[napi]
    pub fn attempt_logs(&mut self, run_id: String, filter_json: String) -> String {
        self.with(|e| e.attempt_logs(&run_id, &parse(&filter_json)?))
    }

    /// Records a wait/failure handler's start or end in the run's events.
    #[napi]
    pub fn record_driver_event(
        &mut self,
        run_id: String,
        kind: String,
        payload_json: String,
    ) -> String {
        self.with(|e| e.record_driver_event(&run_id, &kind, parse(&payload_json)?))
    }

    /// Where command tasks write their logs.
    #[napi]
    pub fn log_dir(&mut self) -> String {
        self.with(|e| Ok(e.log_dir().to_string_lossy().into_owned()))
    }

    #[napi]
    pub fn set_log_dir(&mut self, dir: String) {
        if let Some(e) = self.inner.as_mut() {
            e.set_log_dir(dir);
        }
    }

    #[napi]
    pub fn cancel_run(&mut self, run_id: String) -> String {
        self.with(|e| e.cancel_run(&run_id))
    }

    #[napi]
    pub fn list_runs(&mut self, filter_json: String) -> String {
        self.with(|e| e.list_runs(&parse(&filter_json)?))
    }

    #[napi]
    pub fn run_summary(&mut self, run_id: String) -> String {
        self.with(|e| e.run_summary(&run_id))
    }

    #[napi]
    pub fn inspect(&mut self, run_id: String) -> String {
        self.with(|e| e.inspect(&run_id))
    }

    #[napi]
    pub fn pending_approvals(&mut self, filter_json: String) -> String {
        self.with(|e| e.pending_approvals(&parse(&filter_json)?))
    }

    #[napi]
    pub fn events(&mut self, run_id: String, after_seq: i64, limit: i64) -> String {
        self.with(|e| e.events(&run_id, after_seq, limit))
    }

    #[napi]
    pub fn feed(&mut self, after_id: i64, limit: i64) -> String {
        self.with(|e| e.feed(after_id, limit))
    }

    /// Runs by workflow and status, pending approvals by workflow (for `/metrics`).
    #[napi]
    pub fn store_metrics(&mut self) -> String {
        self.with(|e| e.store_metrics())
    }

    #[napi]
    pub fn feed_head(&mut self) -> String {
        self.with(|e| e.feed_head())
    }

    /// `afterJson`: `{updatedAtMs, runId}` of the last run of the previous page.
    #[napi]
    pub fn orphaned_runs(
        &mut self,
        limit: i64,
        include_dead: bool,
        after_json: Option<String>,
    ) -> String {
        self.with(|e| {
            let after: Option<core::OrphanCursor> = after_json.as_deref().map(parse).transpose()?;
            e.orphaned_runs(limit, include_dead, after.as_ref())
        })
    }

    /// Writes webhook deliveries (`[{deliveryId, target, url, eventType, feedId?, runId?,
    /// nodeId?, iteration?, body}]`; one that exists is kept) and moves the feed cursor to
    /// `cursor`, in one transaction. Returns how many were new.
    #[napi]
    pub fn enqueue_deliveries(
        &mut self,
        rows_json: String,
        cursor: Option<i64>,
        now_ms: i64,
    ) -> String {
        self.with(|e| {
            let rows: Vec<core::NewDelivery> = parse(&rows_json)?;
            e.enqueue_deliveries(&rows, cursor, now_ms)
        })
    }

    /// The feed position up to which gate events became deliveries (null: never).
    #[napi]
    pub fn delivery_cursor(&mut self) -> String {
        self.with(|e| e.delivery_cursor())
    }

    /// Claims due deliveries to `targetsJson` (names) for `claimer` until `nowMs + leaseMs`.
    #[napi]
    pub fn claim_deliveries(
        &mut self,
        claimer: String,
        targets_json: String,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> String {
        self.with(|e| {
            let targets: Vec<String> = parse(&targets_json)?;
            e.claim_deliveries(&claimer, &targets, now_ms, lease_ms, limit)
        })
    }

    /// `outcomeJson`: `{delivered, statusCode?, error?, nextAttemptAtMs?}`. False when the
    /// claim was lost.
    #[napi]
    pub fn settle_delivery(
        &mut self,
        delivery_id: String,
        claimer: String,
        outcome_json: String,
        now_ms: i64,
    ) -> String {
        self.with(|e| e.settle_delivery(&delivery_id, &claimer, &parse(&outcome_json)?, now_ms))
    }

    #[napi]
    pub fn retry_delivery(&mut self, delivery_id: String, now_ms: i64) -> String {
        self.with(|e| e.retry_delivery(&delivery_id, now_ms))
    }

    /// `filterJson`: `{status?, runId?, target?, limit?, before?: {createdAtMs, deliveryId}, withBody?}`.
    #[napi]
    pub fn list_deliveries(&mut self, filter_json: String) -> String {
        self.with(|e| e.list_deliveries(&parse(&filter_json)?))
    }

    /// Records the first use of a decision link (`{linkId, runId, nodeId, iteration, action,
    /// approver}`); LINK_USED when it was used before.
    #[napi]
    pub fn use_link(&mut self, link_json: String, now_ms: i64) -> String {
        self.with(|e| e.use_link(&parse(&link_json)?, now_ms))
    }

    #[napi]
    pub fn record_link_outcome(&mut self, link_id: String, outcome_json: String) -> String {
        self.with(|e| e.record_link_outcome(&link_id, &parse(&outcome_json)?))
    }

    #[napi]
    pub fn release_link(&mut self, link_id: String) -> String {
        self.with(|e| e.release_link(&link_id))
    }

    /// Records why a watcher could not resume a run (`{code, message}`).
    #[napi]
    pub fn mark_unresumable(&mut self, run_id: String, error_json: String) -> String {
        self.with(|e| e.mark_unresumable(&run_id, parse(&error_json)?))
    }

    #[napi]
    pub fn fail_run(&mut self, run_id: String, error_json: String) -> String {
        self.with(|e| e.fail_run(&run_id, parse(&error_json)?))
    }

    /// Checks a graph descriptor without a run (a dry render before `createRun`), against
    /// this database's output tables; writes nothing.
    #[napi]
    pub fn validate_graph(&mut self, graph_json: String) -> String {
        self.with(|e| e.validate_graph(&core::GraphDescriptor::parse(&graph_json)?))
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
    pub fn take_events(&mut self) -> String {
        self.with(|e| Ok(e.take_events()))
    }

    /// Closes the database. Later calls fail.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}

/// A `CommandSpec`, plus the id under which `cancelCommand` can stop it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommandRequest {
    #[serde(flatten)]
    spec: core::CommandSpec,
    #[serde(default)]
    cancel_id: Option<String>,
}

/// Commands that can be cancelled, by the id their caller gave.
static CANCELLERS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, core::command::Canceller>>,
> = std::sync::LazyLock::new(Default::default);

/// Runs a command task's process (a `CommandSpec` from a step's task) on a thread of its
/// own and resolves with its `CommandOutcome` as JSON. The JS thread never waits on it.
/// With `cancelId`, `cancelCommand(cancelId)` stops it.
#[napi(ts_return_type = "Promise<string>")]
pub fn run_command<'env>(env: &'env Env, spec_json: String) -> Result<Object<'env>> {
    logging::init();
    let request: CommandRequest = serde_json::from_str(&spec_json)
        .map_err(|e| Error::new(Status::InvalidArg, format!("INVALID_JSON: {e}")))?;
    let canceller = request.cancel_id.clone().map(|id| {
        let c = core::command::Canceller::default();
        if let Ok(mut map) = CANCELLERS.lock() {
            map.insert(id, c.clone());
        }
        c
    });
    let (deferred, promise) = env.create_deferred::<String, _>()?;
    std::thread::Builder::new()
        .name("smithers-command".into())
        .spawn(move || {
            let outcome = core::command::run_with(&request.spec, canceller.as_ref());
            if let (Some(id), Ok(mut map)) = (&request.cancel_id, CANCELLERS.lock()) {
                map.remove(id);
            }
            let text = serde_json::to_string(&outcome).unwrap_or_else(|e| {
                format!("{{\"spawnError\":\"cannot encode the outcome: {e}\"}}")
            });
            deferred.resolve(move |_| Ok(text));
        })
        .map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("cannot start a thread: {e}"),
            )
        })?;
    Ok(promise)
}

/// Environment variable names an approver's input or a workflow's param may never use:
/// `{"exact": [...], "prefixes": [...]}`.
#[napi]
pub fn reserved_env() -> String {
    json!({ "exact": core::graph::RESERVED_ENV, "prefixes": core::graph::RESERVED_ENV_PREFIXES })
        .to_string()
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

/// How the addon was compiled: "debug" or "release".
#[napi]
pub fn engine_build() -> String {
    BUILD_PROFILE
        .trim_start_matches("smithers-build-profile=")
        .to_string()
}

/// The version of the native engine.
#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
