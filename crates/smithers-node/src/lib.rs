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
mod remote;
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

/// A failed call's error object (`code`, message, `details`), made on the JS thread: a
/// promise of an `…Async` method is rejected with it.
fn rejection(env: &Env, failure: remote::Failure) -> Error {
    let made = (|| {
        let mut error = env.create_error(Error::new(Status::GenericFailure, failure.message))?;
        error.set_named_property("code", failure.code)?;
        error.set_named_property("details", env.to_js_value(&failure.details)?)?;
        Ok::<_, Error>(Error::from(error.to_unknown()))
    })();
    made.unwrap_or_else(|e| e)
}

/// Where an engine lives: on the JS thread (SQLite: a call is a local file's transaction,
/// fastest run in place) or on a thread of its own (PostgreSQL: a call waits on the network).
enum Inner {
    Local(Box<core::Engine>),
    Remote(remote::Remote),
    Closed,
}

/// A promise's settling function (napi calls it on the JS thread).
type Settle<T> = Box<dyn FnOnce(Env) -> Result<T> + Send>;

/// A smithers-rs engine on one database: a SQLite file, run on the JS thread, or a
/// `postgres://` URL, run on a thread of its own. Every call that reads or writes the database
/// has an `…Async` twin that resolves a promise instead of returning: on PostgreSQL the JS
/// thread never waits on the network there (the synchronous form blocks it for its round
/// trips); on SQLite it runs in place and resolves at once.
#[napi]
pub struct Engine {
    inner: Inner,
}

impl Engine {
    /// Calls the core engine and waits for the answer; a closed engine is ENGINE_CLOSED.
    fn with<T: Send + 'static>(
        &mut self,
        env: &Env,
        f: impl FnOnce(&mut core::Engine) -> core::Result<T> + Send + 'static,
    ) -> Result<T> {
        let failure = match &mut self.inner {
            Inner::Local(engine) => return f(engine).map_err(|e| fail(env, e)),
            Inner::Remote(remote) => match remote.blocking(f) {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            },
            Inner::Closed => remote::Failure::closed(),
        };
        Err(throw(env, &failure.code, failure.message, failure.details))
    }

    /// Calls the core engine and returns a promise of the answer: on the engine's thread
    /// (PostgreSQL), in place (SQLite). A failure rejects it with the core's code.
    fn call<'env, T: ToNapiValue + Send + 'static>(
        &mut self,
        env: &'env Env,
        f: impl FnOnce(&mut core::Engine) -> core::Result<T> + Send + 'static,
    ) -> Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred::<T, Settle<T>>()?;
        let settle = |result: std::result::Result<T, remote::Failure>| -> Settle<T> {
            Box::new(move |env: Env| result.map_err(|failure| rejection(&env, failure)))
        };
        match &mut self.inner {
            Inner::Local(engine) => deferred.resolve(settle(remote::run(Some(engine), f))),
            Inner::Remote(remote) => {
                // The deferred moves into the job. When the engine thread is gone (nothing
                // can run the job), the call throws instead and its promise is never seen.
                let queued = remote.send(move |e| {
                    deferred.resolve(settle(remote::run(e, f)));
                });
                if !queued {
                    return Err(throw(
                        env,
                        "ENGINE_CLOSED",
                        "the engine is closed".into(),
                        json!({}),
                    ));
                }
            }
            Inner::Closed => deferred.resolve(settle(Err(remote::Failure::closed()))),
        }
        Ok(promise)
    }
}

/// The calls that read or write the database, each twice: `name` (returns the answer) and
/// `name_async` (a promise of it; see `Engine`). `|e| body` runs on the core engine.
macro_rules! engine_calls {
    ($(
        $(#[doc = $doc:tt])*
        fn $name:ident / $async_name:ident ( $($arg:ident : [$($ty:tt)*]),* ) -> [$($ret:tt)*] , $ts:tt , $promise:tt
            => |$e:ident| $body:expr;
    )*) => {
        #[napi]
        impl Engine {
            $(
                $(#[doc = $doc])*
                #[napi(ts_return_type = $ts)]
                pub fn $name(&mut self, env: &Env, $($arg: $($ty)*),*) -> Result<$($ret)*> {
                    self.with(env, move |$e: &mut core::Engine| $body)
                }

                $(#[doc = $doc])*
                #[napi(ts_return_type = $promise)]
                pub fn $async_name<'env>(
                    &mut self,
                    env: &'env Env,
                    $($arg: $($ty)*),*
                ) -> Result<Object<'env>> {
                    self.call(env, move |$e: &mut core::Engine| -> core::Result<$($ret)*> { $body })
                }
            )*
        }
    };
}

/// The graph a `completeTasks` call sends with its results.
enum RenderArg {
    None,
    Text(String),
    Same(i64),
}

impl RenderArg {
    /// INVALID_ARGUMENT (thrown at once, nothing sent) for both or neither.
    fn parse(env: &Env, render: Option<BindingRender>, run_id: &str) -> Result<RenderArg> {
        match render {
            None => Ok(RenderArg::None),
            Some(BindingRender {
                graph_json: Some(text),
                graph_id: None,
            }) => Ok(RenderArg::Text(text)),
            Some(BindingRender {
                graph_json: None,
                graph_id: Some(id),
            }) => Ok(RenderArg::Same(id)),
            Some(_) => Err(throw(
                env,
                "INVALID_ARGUMENT",
                "completeTasks render: give graphJson or graphId, not both or neither".into(),
                json!({ "runId": run_id }),
            )),
        }
    }
}

fn complete_tasks(
    e: &mut core::Engine,
    run_id: &str,
    results_json: &str,
    render: RenderArg,
) -> core::Result<BindingStep> {
    let results = serde_json::from_str(results_json)?;
    match render {
        RenderArg::None => e.complete_tasks(run_id, results),
        RenderArg::Text(text) => {
            e.complete_and_submit(run_id, results, core::RenderedGraph::Text(&text))
        }
        RenderArg::Same(id) => {
            e.complete_and_submit(run_id, results, core::RenderedGraph::Same(graph_id_arg(id)))
        }
    }
    .and_then(TryInto::try_into)
}

#[napi]
impl Engine {
    /// Opens (or creates) the database at `dbPath` (see `BindingEngineOptions`): a SQLite file,
    /// or a `postgres://` URL (then the engine lives on a thread of its own).
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
        let offset = test_clock_offset(env)?;
        if core::store::is_postgres_url(&db_path) {
            let remote = remote::Remote::open(db_path, open, lease_ms, offset)
                .map_err(|f| throw(env, &f.code, f.message, f.details))?;
            return Ok(Engine {
                inner: Inner::Remote(remote),
            });
        }
        let mut inner = core::Engine::open_with(&db_path, open).map_err(|e| fail(env, e))?;
        if let Some(ms) = lease_ms {
            inner.set_lease_ms(ms);
        }
        if let Some(offset) = offset {
            inner.set_clock(core::time::offset_clock(offset));
        }
        Ok(Engine {
            inner: Inner::Local(Box::new(inner)),
        })
    }

    /// Whether this engine lives on a thread of its own (PostgreSQL): its `…Async` calls
    /// never block the JS thread, its synchronous ones wait for the network.
    #[napi(getter)]
    pub fn is_remote(&self) -> bool {
        matches!(self.inner, Inner::Remote(_))
    }

    /// This engine's owner id, as recorded on the runs it drives.
    #[napi]
    pub fn owner_id(&mut self, env: &Env) -> Result<String> {
        match &self.inner {
            Inner::Remote(remote) => Ok(remote.owner.clone()),
            _ => self.with(env, |e| Ok(e.owner_id().to_string())),
        }
    }

    #[napi]
    pub fn is_driving(&mut self, run_id: String) -> bool {
        match &self.inner {
            Inner::Local(e) => e.is_driving(&run_id),
            Inner::Remote(remote) => remote
                .blocking(move |e| Ok(e.is_driving(&run_id)))
                .unwrap_or(false),
            Inner::Closed => false,
        }
    }

    /// Where command tasks write their logs.
    #[napi]
    pub fn log_dir(&mut self, env: &Env) -> Result<String> {
        match &self.inner {
            Inner::Remote(remote) => Ok(remote.log_dir.clone()),
            _ => self.with(env, |e| Ok(e.log_dir().to_string_lossy().into_owned())),
        }
    }

    #[napi]
    pub fn set_log_dir(&mut self, dir: String) {
        match &mut self.inner {
            Inner::Local(e) => e.set_log_dir(dir),
            Inner::Remote(remote) => {
                remote.log_dir = dir.clone();
                remote.send(move |e| {
                    if let Some(e) = e {
                        e.set_log_dir(dir);
                    }
                });
            }
            Inner::Closed => {}
        }
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
        let render = RenderArg::parse(env, render, &run_id)?;
        self.with(env, move |e| {
            complete_tasks(e, &run_id, &results_json, render)
        })
    }

    /// `completeTasks`, resolving a promise (see `Engine`).
    #[napi(ts_return_type = "Promise<BindingStep>")]
    pub fn complete_tasks_async<'env>(
        &mut self,
        env: &'env Env,
        run_id: String,
        results_json: String,
        render: Option<BindingRender>,
    ) -> Result<Object<'env>> {
        let render = RenderArg::parse(env, render, &run_id)?;
        self.call(env, move |e| {
            complete_tasks(e, &run_id, &results_json, render)
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
        match &self.inner {
            Inner::Remote(remote) => Ok(core::time::now_ms().saturating_add(remote.clock_offset)),
            _ => self.with(env, |e| Ok(e.now_ms())),
        }
    }

    /// Changes when another process commits to the database (-1: it cannot be read).
    #[napi]
    pub fn data_version(&mut self) -> i64 {
        match &mut self.inner {
            Inner::Local(e) => e.data_version().unwrap_or(-1),
            Inner::Remote(remote) => remote.blocking(|e| e.data_version()).unwrap_or(-1),
            Inner::Closed => -1,
        }
    }

    /// `dataVersion`, resolving a promise (see `Engine`); -1 when it cannot be read.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn data_version_async<'env>(&mut self, env: &'env Env) -> Result<Object<'env>> {
        self.call(env, |e| Ok(e.data_version().unwrap_or(-1)))
    }

    #[napi]
    pub fn set_event_buffering(&mut self, on: bool) {
        match &mut self.inner {
            Inner::Local(e) => e.set_event_buffering(on),
            Inner::Remote(remote) => {
                if !on {
                    remote.clear_events();
                }
                remote.send(move |e| {
                    if let Some(e) = e {
                        e.set_event_buffering(on);
                    }
                });
            }
            Inner::Closed => {}
        }
    }

    /// Events committed since the last call (for in-process subscribers). On PostgreSQL:
    /// those of the calls that have ended, read without waiting for calls under way.
    #[napi]
    pub fn take_events(&mut self, env: &Env) -> Result<Vec<serde_json::Map<String, Value>>> {
        match &mut self.inner {
            Inner::Local(e) => Ok(e.take_events().into_iter().map(event).collect()),
            Inner::Remote(remote) => Ok(remote.take_events()),
            Inner::Closed => self.with(env, |_| Ok(Vec::new())),
        }
    }

    /// Closes the database. Later calls fail with ENGINE_CLOSED; on PostgreSQL, so do the
    /// `…Async` calls still waiting for their turn (the one under way ends as it ends).
    #[napi]
    pub fn close(&mut self) {
        if let Inner::Remote(remote) = &mut self.inner {
            remote.close();
        }
        self.inner = Inner::Closed;
    }
}

engine_calls! {
    #[doc = " Records a new run, owned by this engine, and returns its first snapshot."]
    fn create_run / create_run_async (run: [BindingNewRun]) -> [BindingSnapshot],
        "BindingSnapshot", "Promise<BindingSnapshot>"
        => |e| e.create_run(run.try_into()?).and_then(TryInto::try_into);

    #[doc = " Takes the run for this engine (RUN_OWNED while another live engine holds it, unless"]
    #[doc = " `force`) and returns its snapshot."]
    fn claim_run / claim_run_async (run_id: [String], options: [Option<BindingClaimOptions>])
        -> [BindingSnapshot], "BindingSnapshot", "Promise<BindingSnapshot>"
        => |e| {
            let options: core::ClaimOptions = options.map(Into::into).unwrap_or_default();
            e.claim_run_with(&run_id, &options).and_then(TryInto::try_into)
        };

    fn release_run / release_run_async (run_id: [String]) -> [()], "void", "Promise<void>"
        => |e| e.release_run(&run_id);

    #[doc = " Reconciles a rendered graph descriptor (JSON text: the bulk path) with the run and"]
    #[doc = " advances it."]
    fn submit_graph / submit_graph_async (run_id: [String], graph_json: [String])
        -> [BindingStep], "BindingStep", "Promise<BindingStep>"
        => |e| e.submit_graph_json(&run_id, &graph_json).and_then(TryInto::try_into);

    #[doc = " Advances a run with the graph its plan was built from, named by `graphId` (a step's):"]
    #[doc = " `STALE_GRAPH`, nothing changed, when that is not the plan's graph now."]
    fn submit_same_graph / submit_same_graph_async (run_id: [String], graph_id: [i64])
        -> [BindingStep], "BindingStep", "Promise<BindingStep>"
        => |e| e.submit_same_graph(&run_id, graph_id_arg(graph_id)).and_then(TryInto::try_into);

    #[doc = " Checks an agent's answer (JSON text) against a task's output schema; records nothing."]
    fn check_output / check_output_async (run_id: [String], node_id: [String], value_json: [String])
        -> [()], "void", "Promise<void>"
        => |e| e.check_output(&run_id, &node_id, &parse_value(&value_json)?);

    fn advance / advance_async (run_id: [String]) -> [BindingStep], "BindingStep", "Promise<BindingStep>"
        => |e| e.advance(&run_id).and_then(TryInto::try_into);

    fn approve / approve_async (request: [BindingDecisionRequest]) -> [BindingDecisionOutcome],
        "BindingDecisionOutcome", "Promise<BindingDecisionOutcome>"
        => |e| e.approve(request.try_into()?).map(Into::into);

    #[doc = " Denies a gate (as its `onDeny` says) or rejects a reviewed step."]
    fn deny / deny_async (request: [BindingDecisionRequest]) -> [BindingDecisionOutcome],
        "BindingDecisionOutcome", "Promise<BindingDecisionOutcome>"
        => |e| e.deny(request.try_into()?).map(Into::into);

    #[doc = " Sends a reviewed step back to run again with the reviewer's inputs."]
    fn push_back / push_back_async (request: [BindingDecisionRequest]) -> [BindingDecisionOutcome],
        "BindingDecisionOutcome", "Promise<BindingDecisionOutcome>"
        => |e| e.push_back(request.try_into()?).map(Into::into);

    fn attempt_logs / attempt_logs_async (run_id: [String], filter: [Option<BindingLogFilter>])
        -> [Vec<BindingAttemptLog>], "Array<BindingAttemptLog>", "Promise<Array<BindingAttemptLog>>"
        => |e| {
            let filter: core::LogFilter = filter.map(Into::into).unwrap_or_default();
            Ok(e.attempt_logs(&run_id, &filter)?.into_iter().map(Into::into).collect())
        };

    #[doc = " Records what a driver ran outside the core (a handler, mail, a tool call) in the"]
    #[doc = " run's events; `payloadJson` is the event's fields as JSON text."]
    fn record_driver_event / record_driver_event_async (run_id: [String], kind: [String], payload_json: [String])
        -> [()], "void", "Promise<void>"
        => |e| e.record_driver_event(&run_id, &kind, parse_value(&payload_json)?);

    #[doc = " Cancels the run; returns its status afterwards."]
    fn cancel_run / cancel_run_async (run_id: [String]) -> [String],
        "BindingRunStatus", "Promise<BindingRunStatus>"
        => |e| e.cancel_run(&run_id).map(str::to_string);

    fn list_runs / list_runs_async (filter: [Option<BindingRunFilter>]) -> [Vec<BindingRunSummary>],
        "Array<BindingRunSummary>", "Promise<Array<BindingRunSummary>>"
        => |e| {
            let filter: core::RunFilter = filter.map(Into::into).unwrap_or_default();
            Ok(e.list_runs(&filter)?.into_iter().map(Into::into).collect())
        };

    fn run_summary / run_summary_async (run_id: [String]) -> [BindingRunSummary],
        "BindingRunSummary", "Promise<BindingRunSummary>"
        => |e| e.run_summary(&run_id).map(Into::into);

    fn inspect / inspect_async (run_id: [String]) -> [BindingRunInspection],
        "BindingRunInspection", "Promise<BindingRunInspection>"
        => |e| e.inspect(&run_id).map(Into::into);

    fn pending_approvals / pending_approvals_async (filter: [Option<BindingApprovalFilter>])
        -> [Vec<BindingApprovalSummary>], "Array<BindingApprovalSummary>", "Promise<Array<BindingApprovalSummary>>"
        => |e| {
            let filter: core::ApprovalFilter = filter.map(Into::into).unwrap_or_default();
            Ok(e.pending_approvals(&filter)?.into_iter().map(Into::into).collect())
        };

    #[doc = " The run's events after `afterSeq`, oldest first: `{runId, seq, type, timestampMs,"]
    #[doc = " …}` and the fields of their type."]
    fn events / events_async (run_id: [String], after_seq: [i64], limit: [i64])
        -> [Vec<serde_json::Map<String, Value>>], "Array<Record<string, any>>", "Promise<Array<Record<string, any>>>"
        => |e| Ok(e.events(&run_id, after_seq, limit)?.into_iter().map(event).collect());

    #[doc = " Events of every run after position `afterId` of the database-wide feed, in commit"]
    #[doc = " order."]
    fn feed / feed_async (after_id: [i64], limit: [i64])
        -> [Vec<serde_json::Map<String, Value>>], "Array<Record<string, any>>", "Promise<Array<Record<string, any>>>"
        => |e| Ok(e.feed(after_id, limit)?.into_iter().map(event).collect());

    #[doc = " Runs by workflow and status, pending approvals by workflow (for `/metrics`)."]
    fn store_metrics / store_metrics_async () -> [BindingStoreMetrics],
        "BindingStoreMetrics", "Promise<BindingStoreMetrics>"
        => |e| e.store_metrics().map(Into::into);

    fn feed_head / feed_head_async () -> [i64], "number", "Promise<number>"
        => |e| e.feed_head();

    #[doc = " Checks the decision log's hash chain (`smithers audit verify`); nothing is written."]
    fn audit_verify / audit_verify_async () -> [BindingAuditReport],
        "BindingAuditReport", "Promise<BindingAuditReport>"
        => |e| e.audit_verify().map(Into::into);

    #[doc = " Entries of the decision log after `afterSeq`, oldest first, at most `limit`."]
    fn audit_entries / audit_entries_async (after_seq: [i64], limit: [i64])
        -> [Vec<BindingAuditEntry>], "Array<BindingAuditEntry>", "Promise<Array<BindingAuditEntry>>"
        => |e| e.audit_entries(after_seq, limit)?.into_iter().map(BindingAuditEntry::try_from).collect();

    #[doc = " Runs that are `running` while nobody holds them, oldest first; page with `after`."]
    fn orphaned_runs / orphaned_runs_async (limit: [i64], include_dead: [bool], after: [Option<BindingOrphanCursor>])
        -> [Vec<BindingOrphanedRun>], "Array<BindingOrphanedRun>", "Promise<Array<BindingOrphanedRun>>"
        => |e| {
            let after: Option<core::OrphanCursor> = after.map(Into::into);
            Ok(e.orphaned_runs(limit, include_dead, after.as_ref())?.into_iter().map(Into::into).collect())
        };

    #[doc = " Writes webhook deliveries (one that exists is kept: its id names the event and the"]
    #[doc = " target) and moves the feed cursor to `cursor`, in one transaction. Returns how many"]
    #[doc = " were new."]
    fn enqueue_deliveries / enqueue_deliveries_async (rows: [Vec<BindingNewDelivery>], cursor: [Option<i64>], now_ms: [i64])
        -> [u32], "number", "Promise<number>"
        => |e| {
            let rows: Vec<core::NewDelivery> = rows.into_iter().map(Into::into).collect();
            let new = e.enqueue_deliveries(&rows, cursor, now_ms)?;
            Ok(u32::try_from(new).unwrap_or(u32::MAX))
        };

    #[doc = " The feed position up to which gate events became deliveries (null: never)."]
    fn delivery_cursor / delivery_cursor_async () -> [Option<i64>], "number | null", "Promise<number | null>"
        => |e| e.delivery_cursor();

    #[doc = " Claims due deliveries to `targets` (names) for `claimer` until `nowMs + leaseMs`."]
    fn claim_deliveries / claim_deliveries_async (claimer: [String], targets: [Vec<String>], now_ms: [i64], lease_ms: [i64], limit: [i64])
        -> [Vec<BindingDelivery>], "Array<BindingDelivery>", "Promise<Array<BindingDelivery>>"
        => |e| Ok(e.claim_deliveries(&claimer, &targets, now_ms, lease_ms, limit)?.into_iter().map(Into::into).collect());

    #[doc = " Settles a claimed delivery; false when the claim was lost."]
    fn settle_delivery / settle_delivery_async (delivery_id: [String], claimer: [String], outcome: [BindingDeliveryOutcome], now_ms: [i64])
        -> [bool], "boolean", "Promise<boolean>"
        => |e| {
            let outcome: core::DeliveryOutcome = outcome.into();
            e.settle_delivery(&delivery_id, &claimer, &outcome, now_ms)
        };

    #[doc = " Makes a delivery due again now (DELIVERY_NOT_FOUND when there is none)."]
    fn retry_delivery / retry_delivery_async (delivery_id: [String], now_ms: [i64])
        -> [BindingDelivery], "BindingDelivery", "Promise<BindingDelivery>"
        => |e| e.retry_delivery(&delivery_id, now_ms).map(Into::into);

    fn list_deliveries / list_deliveries_async (filter: [Option<BindingDeliveryFilter>])
        -> [Vec<BindingDelivery>], "Array<BindingDelivery>", "Promise<Array<BindingDelivery>>"
        => |e| {
            let filter: core::DeliveryFilter = filter.map(Into::into).unwrap_or_default();
            Ok(e.list_deliveries(&filter)?.into_iter().map(Into::into).collect())
        };

    #[doc = " Records the first use of a decision link; LINK_USED when it was used before."]
    fn use_link / use_link_async (link: [BindingLinkUse], now_ms: [i64]) -> [()], "void", "Promise<void>"
        => |e| {
            let link: core::LinkUse = link.into();
            e.use_link(&link, now_ms)
        };

    #[doc = " Records what a used link's decision came to (`outcomeJson`: JSON text, as the"]
    #[doc = " decision's own error message may hold anything)."]
    fn record_link_outcome / record_link_outcome_async (link_id: [String], outcome_json: [String])
        -> [()], "void", "Promise<void>"
        => |e| e.record_link_outcome(&link_id, &parse_value(&outcome_json)?);

    #[doc = " Forgets a link's use (its decision failed for a reason that says nothing about the"]
    #[doc = " link), so that it works again."]
    fn release_link / release_link_async (link_id: [String]) -> [()], "void", "Promise<void>"
        => |e| e.release_link(&link_id);

    #[doc = " Records why a watcher could not resume a run."]
    fn mark_unresumable / mark_unresumable_async (run_id: [String], error: [BindingRunError])
        -> [()], "void", "Promise<void>"
        => |e| e.mark_unresumable(&run_id, error.into());

    fn fail_run / fail_run_async (run_id: [String], error: [BindingRunError])
        -> [BindingStep], "BindingStep", "Promise<BindingStep>"
        => |e| e.fail_run(&run_id, error.into()).and_then(TryInto::try_into);

    #[doc = " Checks a graph descriptor (JSON text) without a run (a dry render before"]
    #[doc = " `createRun`), against this database's output tables; writes nothing."]
    fn validate_graph / validate_graph_async (graph_json: [String]) -> [()], "void", "Promise<void>"
        => |e| e.validate_graph(&core::GraphDescriptor::parse(&graph_json)?);

    #[doc = " The earliest due time of a scheduled timer in the database (when to wake up next)."]
    fn next_timer_due / next_timer_due_async () -> [Option<i64>], "number | null", "Promise<number | null>"
        => |e| e.next_timer_due();

    #[doc = " Fires the timers due now (at most `limit`, default 100; only run `runId`'s when given),"]
    #[doc = " each once whoever races for it; returns those this engine fired."]
    fn fire_due_timers / fire_due_timers_async (limit: [Option<u32>], run_id: [Option<String>])
        -> [Vec<BindingFiredTimer>], "Array<BindingFiredTimer>", "Promise<Array<BindingFiredTimer>>"
        => |e| {
            let limit = limit.map_or(core::timers::FIRE_BATCH, |l| l as usize);
            Ok(e.fire_due_timers_of(run_id.as_deref(), limit)?.into_iter().map(Into::into).collect())
        };

    #[doc = " The timers of a run, earliest due first."]
    fn run_timers / run_timers_async (run_id: [String]) -> [Vec<BindingTimer>],
        "Array<BindingTimer>", "Promise<Array<BindingTimer>>"
        => |e| Ok(e.run_timers(&run_id)?.into_iter().map(Into::into).collect());
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
