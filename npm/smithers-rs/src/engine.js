// The Node API: an engine on one database file, for services that embed smithers-rs and
// for the CLI. Runs are driven in this process; decisions resume them at once.
import { resolve } from "node:path";
import { SmithersError } from "./errors.js";
import { isTerminal } from "./contract.js";
import { NativeEngine } from "./native.js";
import { resolveDb } from "./database.cjs";
import { tracesConfigured } from "./telemetry/env.cjs";

// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { readFileSync } = process.getBuiltinModule("node:fs");
/** Due timers fired per call (the core's FIRE_BATCH). */
const FIRE_BATCH = 100;
/** The longest delay setTimeout keeps (about 24.8 days); a later due time is re-armed then. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The half that runs workflows (loader, renderer, driver), loaded on first use: commands
 * that only read or decide (`ps`, `approve --no-resume`) never pay for it at start-up.
 */
let runtime;
const loadRuntime = () =>
  (runtime ??= Promise.all([import("./driver.js"), import("./loader/load.js")]).then(
    ([driver, loader]) => ({
      driveRun: driver.driveRun,
      createRun: driver.createRun,
      renderedName: driver.renderedName,
      loadWorkflow: loader.loadWorkflow,
    }),
  ));

/**
 * telemetry/trace.js, loaded only by an engine made with `tracing` while traces are configured
 * (OTEL_EXPORTER_OTLP_ENDPOINT, …: telemetry/env.cjs).
 */
let traceModule = null;
let traceLoading = null;
const loadTraceModule = () => (traceLoading ??= import("./telemetry/trace.js").then((m) => (traceModule = m)));

/**
 * Loads what an engine made with `tracing` needs, when traces are configured (the CLI awaits it
 * before it opens its engine, so that the spans of a command that ends at once are made);
 * nothing otherwise.
 */
export async function prepareTracing() {
  if (tracesConfigured()) await loadTraceModule();
}

/**
 * Exports the spans this process made so far (a service calls it before it exits; the CLI
 * does after every command): at most `timeoutMs` (default: the OTLP export timeout). Nothing
 * when traces are not configured.
 * @param {number} [timeoutMs]
 */
export async function flushTraces(timeoutMs) {
  if (traceLoading) await traceLoading.catch(() => {});
  if (traceModule) await traceModule.flushTraces(timeoutMs);
}

/** The kind a graph's task node is of: its body's type, `sub-run` for a sub-workflow. */
function nodeKinds(rendered) {
  const kinds = new Map();
  const walk = (node) => {
    if (!node) return;
    if (node.kind === "task") {
      kinds.set(node.id, rendered.computeFns?.get(node.id)?.subWorkflow ? "sub-run" : (node.body?.type ?? "task"));
    }
    for (const child of node.children ?? []) walk(child);
  };
  walk(rendered.graph?.root);
  return kinds;
}

/** The last `maxBytes` of a log file, as text; "" for none or one that cannot be read. */
function readTail(path, maxBytes) {
  if (!path) return "";
  try {
    const buf = readFileSync(path);
    return buf.subarray(Math.max(0, buf.length - maxBytes)).toString("utf8");
  } catch {
    return "";
  }
}

/**
 * The workflow file a new run records (another process loads it to drive the run): the path
 * given, else `workflowPath` beside an object, else none.
 * @param {any} workflow @param {{ workflowPath?: string }} options
 */
const workflowFile = (workflow, options) =>
  typeof workflow === "string" ? resolve(workflow) : options.workflowPath ? resolve(options.workflowPath) : null;

export class SmithersEngine {
  /**
   * The pool of an isolating engine (isolation.js), made when the first run is driven in it:
   * only such an engine (`smithers serve`) imports isolation.js and node:worker_threads.
   * @type {Promise<import("./isolation.js").DriverPool> | null}
   */
  #poolMade = null;
  /** That pool once made. */
  #driverPool = null;
  /**
   * The options of that pool (the engine's `isolate`), or null: runs are driven in this thread.
   * @type {object | null}
   */
  #isolate;
  #closed = false;
  /**
   * Traces (`tracing`): `{ sink, queue }` (spans made here: telemetry/trace.js, the events
   * queued while it loads) or `{ forward }` (a serve worker's engine: events go to the serving
   * thread); null when off.
   */
  #tracing = null;
  /** While tracing: runId -> { rendered, kinds, indexed } of the runs driven here (node kinds). */
  #rendered = null;

  /**
   * @param {{ database?: string, dbPath?: string, forbidSelfApproval?: boolean, mustExist?: boolean, readOnly?: boolean, leaseMs?: number,
   *   isolate?: boolean | { renderTimeoutMs?: number, blockedTimeoutMs?: number, maxWorkers?: number },
   *   onRender?: (rendering: boolean, owned: boolean) => void, log?: (line: string) => void,
   *   tracing?: boolean | { forward: (events: any[], kinds: Record<string, string>) => void } }} [options]
   *   `mustExist`: a missing database is DB_NOT_FOUND instead of a new one; `readOnly`: never
   *   writes (not even a migration); `leaseMs`: how long a claim on a run lasts unless renewed
   *   (default $SMITHERS_LEASE_MS, else 30 s); `isolate`: runs of workflow files are driven in
   *   worker threads with a watchdog (isolation.js), never on this thread; `onRender`: told when
   *   a render starts and ends (`owned`: of a run this engine drives, not the check before a start);
   *   `tracing`: export OpenTelemetry spans of the runs this engine drives and decides, when
   *   the standard variables configure traces (OTEL_EXPORTER_OTLP_ENDPOINT, …; README
   *   "Traces"); off by default
   */
  constructor(options = {}) {
    // `database` and `dbPath` are one option: a SQLite file, or a postgres:// URL.
    this.dbPath = resolveDb(options.database ?? options.dbPath ?? "smithers.db");
    /** Refuse an approve by the user who started the run (`startedBy`). */
    this.forbidSelfApproval = Boolean(options.forbidSelfApproval);
    const leaseMs = options.leaseMs ?? (process.env.SMITHERS_LEASE_MS ? Number(process.env.SMITHERS_LEASE_MS) : undefined);
    if (leaseMs !== undefined && !(Number.isInteger(leaseMs) && leaseMs >= 30)) {
      throw new SmithersError("INVALID_ARGUMENT", `leaseMs must be a whole number of milliseconds ≥ 30 (got ${leaseMs})`);
    }
    this.native = new NativeEngine(this.dbPath, { mustExist: options.mustExist, readOnly: options.readOnly, leaseMs });
    this.onRender = options.onRender;
    this.#setUpTracing(options.tracing);
    this.#isolate = options.isolate
      ? {
          ...(typeof options.isolate === "object" ? options.isolate : {}),
          engine: { dbPath: this.dbPath, leaseMs, forbidSelfApproval: this.forbidSelfApproval, tracing: this.#tracing ? "forward" : false },
          log: options.log,
          // A worker's drive sends its events here, with the kinds of their nodes.
          onTrace: this.#tracing ? (events, kinds) => this.#traceEvents(events, kinds) : undefined,
        }
      : null;
    /** @type {Map<string, Set<(event: any) => void>>} */
    this.listeners = new Map();
    /** Workflows of runs started here, so a decision can resume them without a file. */
    this.workflows = new Map();
    /** Runs this engine is driving now: runId -> { done, control }. */
    this.driving = new Map();
    /** Resumes under way (loading the workflow, not yet claimed): runId -> promise. */
    this.resuming = new Map();
  }

  #setUpTracing(option) {
    if (typeof option === "object" && option !== null && typeof option.forward === "function") {
      this.#tracing = { forward: option.forward };
    } else if (option && tracesConfigured()) {
      const native = this.native;
      // The reads a run's span needs when it ends: in place on SQLite, promises on PostgreSQL.
      const reads = {
        remote: native.remote,
        summary: (runId) => native.runSummaryAsync(runId),
        events: (runId, afterSeq, limit) => native.eventsAsync(runId, afterSeq, limit),
      };
      const tracing = { sink: traceModule?.traceSink(reads) ?? null, queue: [], loading: null };
      this.#tracing = tracing;
      if (!tracing.sink) {
        // The engine's driving and deciding calls wait for it (`loading`), so the sink
        // sees their events, and makes the reads a run's end needs, while the engine is open.
        tracing.loading = loadTraceModule().then(
          (m) => {
            tracing.sink = m.traceSink(reads);
            for (const [events, kinds] of tracing.queue.splice(0)) tracing.sink.events(events, kinds);
            tracing.loading = null;
          },
          () => {
            tracing.queue = null;
            tracing.loading = null;
          },
        );
      }
    } else {
      return;
    }
    this.#rendered = new Map();
    this.native.setEventBuffering(true);
  }

  #traceEvents(events, kinds) {
    const tracing = this.#tracing;
    try {
      if (tracing.forward) tracing.forward(events, kinds ?? {});
      else if (tracing.sink) tracing.sink.events(events, kinds);
      else tracing.queue?.push([events, kinds]);
    } catch {
      // Tracing never fails what is traced.
    }
  }

  /** The kinds of the nodes `events` name, as the renders of the runs driven here have them. */
  #kindsOf(events) {
    let kinds;
    for (const e of events) {
      if (typeof e.nodeId !== "string" || !e.type.startsWith("Node")) continue;
      const run = this.#rendered.get(e.runId);
      if (!run) continue;
      let kind = run.kinds.get(e.nodeId);
      if (kind === undefined && run.indexed !== run.rendered.graph) {
        for (const [id, k] of nodeKinds(run.rendered)) run.kinds.set(id, k);
        run.indexed = run.rendered.graph;
        kind = run.kinds.get(e.nodeId);
      }
      if (kind !== undefined) (kinds ??= {})[`${e.runId}\u0000${e.nodeId}`] = kind;
    }
    return kinds;
  }

  /** @param {string} dbPath */
  static open(dbPath) {
    return new SmithersEngine({ dbPath });
  }

  /**
   * Subscribes to events (`"ApprovalRequested"`, `"NodeFinished"`, …, or `"*"` for all).
   * Returns a function that unsubscribes.
   */
  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    this.native.setEventBuffering(true);
    return () => {
      this.listeners.get(type)?.delete(listener);
      if (!this.#tracing && [...this.listeners.values()].every((s) => s.size === 0)) this.native.setEventBuffering(false);
    };
  }

  dispatch() {
    if (this.listeners.size === 0 && !this.#tracing) return;
    const events = this.native.takeEvents();
    if (this.#tracing && events.length) this.#traceEvents(events, this.#kindsOf(events));
    for (const event of events) {
      for (const key of [event.type, "*"]) {
        for (const listener of this.listeners.get(key) ?? []) {
          try {
            listener(event);
          } catch (e) {
            // A listener's failure must not break the run that emitted the event.
            queueMicrotask(() => {
              throw e;
            });
          }
        }
      }
    }
  }

  /**
   * Starts a run and returns once it is recorded; `done` settles when this process stops
   * driving it (finished, failed, cancelled, or waiting for a decision).
   * @param {any} workflow a `smithers(...)` workflow, or the path of a workflow file
   * @param {{ input?: unknown, runId?: string, workflowPath?: string, startedBy?: string }} [options]
   */
  async start(workflow, options = {}) {
    if (this.#tracing?.loading) await this.#tracing.loading;
    if (this.#isolate && typeof workflow === "string") return this.#startIsolated(resolve(workflow), options);
    const { driveRun } = await loadRuntime();
    const { wf, snapshot } = await this.#create(workflow, workflowFile(workflow, options), options);
    this.workflows.set(snapshot.runId, wf);
    return { runId: snapshot.runId, done: this.#drive(driveRun, wf, snapshot) };
  }

  /**
   * Loads the workflow (a file's path, or an object) and records its run, claimed by this
   * engine; its events are dispatched.
   * @param {any} workflow @param {string | null} path the file recorded on the run
   * @param {{ input?: unknown, runId?: string, startedBy?: string }} options
   */
  async #create(workflow, path, options) {
    const { createRun, loadWorkflow } = await loadRuntime();
    const wf = typeof workflow === "string" ? await loadWorkflow(path) : workflow;
    const runId = options.runId;
    let snapshot;
    try {
      snapshot = await createRun(this.native, wf, {
        runId,
        input: options.input ?? {},
        workflowPath: path,
        startedBy: options.startedBy,
        onRender: this.onRender,
      });
    } catch (e) {
      // The create may have committed before the database went out of reach (the run owned
      // by this engine): let go of it, again later if need be. (A run named by the core is
      // not known here: its lease keeper holds it until this engine closes.)
      if (runId !== undefined && (e?.code === "DB_ERROR" || e?.code === "IO_ERROR")) void this.native.releaseRunRetrying(runId);
      throw e;
    }
    this.dispatch();
    return { wf, snapshot };
  }

  /**
   * Records a run for another process to drive (`smithers worker`, `smithers serve`) and
   * returns its id without driving it: the run is created (its input checked, its graph
   * validated) and let go at once, so it is `running` with no owner — ready work, which the
   * first worker with a free slot claims. Its workflow must be a file (the worker loads it
   * from the path recorded on the run): pass its path, or `workflowPath` with an object.
   * @param {any} workflow @param {{ input?: unknown, runId?: string, workflowPath?: string, startedBy?: string }} [options]
   * @returns {Promise<{ runId: string, status: "queued" }>}
   */
  async enqueue(workflow, options = {}) {
    if (this.#tracing?.loading) await this.#tracing.loading;
    const path = workflowFile(workflow, options);
    if (!path) {
      throw new SmithersError("WORKFLOW_NOT_FOUND", "a queued run needs a workflow file (another process loads it from the path recorded on the run): pass its path, or workflowPath", {});
    }
    const { snapshot } = await this.#create(workflow, path, options);
    // Let go, again while the database is out of reach: else the queued run would stay owned
    // by this live process and no worker would take it.
    await this.native.releaseRunRetrying(snapshot.runId);
    return { runId: snapshot.runId, status: "queued" };
  }

  /** The pool of worker threads of an isolating engine, made on first use. */
  #pool() {
    this.#poolMade ??= import("./isolation.js").then(({ DriverPool }) => {
      this.#driverPool = new DriverPool(this.native, this.#isolate);
      // Closed while isolation.js loaded: the pool refuses every drive (ENGINE_CLOSED).
      if (this.#closed) this.#driverPool.close();
      return this.#driverPool;
    });
    return this.#poolMade;
  }

  /** `start` of a workflow file in a worker thread: returns once the run is recorded. */
  async #startIsolated(path, options) {
    const [pool, { newRunId }] = await Promise.all([this.#pool(), import("./isolation.js")]);
    const runId = options.runId ?? newRunId();
    const drive = pool.drive({ kind: "start", runId, path, input: options.input ?? {}, startedBy: options.startedBy });
    const done = this.#track(runId, drive);
    // Not recorded (the workflow did not load, or refused its input): the reason is `done`'s.
    if ((await drive.started) === null) await done;
    return { runId, done };
  }

  /** Registers a drive under way in a worker as driven here (for decisions, the watcher). */
  #track(runId, drive) {
    const entry = { done: drive.done, control: drive.control };
    this.driving.set(runId, entry);
    const stop = () => {
      if (this.driving.get(runId) === entry) this.driving.delete(runId);
    };
    drive.done.then(stop, stop);
    return drive.done;
  }

  /** Starts a run and waits until this process stops driving it. */
  async run(workflow, options = {}) {
    const { done } = await this.start(workflow, options);
    return done;
  }

  /**
   * Resumes a run: claims it and drives it to its next wait or its end. The workflow is the
   * one the run was started with here, or the file recorded on the run. A `workflow` given
   * here (an object, or a file path; `workflowPath` names the file of an object) must be the
   * run's: another workflow name is refused with WORKFLOW_MISMATCH and the run
   * is left as it was, unless `force` (which also takes it over from a live owner).
   * @param {string} runId
   * `onlyIfReady`: claim only if the run still is `running` with nobody holding it, read again
   * just before the claim (else its status is returned, unclaimed; for workers).
   * `onClaimed` is told once the run is claimed here (not when it was ended, driven here
   * already, or taken by another process).
   * @param {{ force?: boolean, workflow?: any, workflowPath?: string, onlyIfReady?: boolean, onClaimed?: (snapshot: any) => void }} [options]
   */
  resume(runId, options = {}) {
    // One resume per run at a time: a second caller (the serve watcher, another decision)
    // while the first loads the workflow file gets the first one's outcome.
    const pending = this.resuming.get(runId);
    if (pending) return pending;
    const started = this.#resume(runId, options);
    this.resuming.set(runId, started);
    const clear = () => {
      if (this.resuming.get(runId) === started) this.resuming.delete(runId);
    };
    started.then(clear, clear);
    return started;
  }

  async #resume(runId, options) {
    if (this.#tracing?.loading) await this.#tracing.loading;
    const given = options.workflow;
    const fileOrNone = given === undefined || typeof given === "string";
    // Loaded before the checks below, so no await sits between them and the claim.
    const [{ driveRun, loadWorkflow, renderedName }, pool] = await Promise.all([loadRuntime(), this.#isolate && fileOrNone ? this.#pool() : null]);
    // A workflow file is loaded (its code run) in the worker that drives the run, if isolated.
    const isolated = pool !== null && !this.workflows.has(runId);
    const givenPath = typeof given === "string" ? resolve(given) : options.workflowPath ? resolve(options.workflowPath) : null;
    const givenWorkflow = typeof given === "string" && !isolated ? await loadWorkflow(givenPath) : given;
    const active = this.driving.get(runId);
    if (active) return active.done;
    const summary = await this.native.runSummaryAsync(runId);
    if (isTerminal(summary.status)) {
      return summary.error ? { runId, status: summary.status, error: summary.error } : { runId, status: summary.status };
    }
    if (isolated) {
      if (!summary.workflowPath && !givenPath) {
        throw new SmithersError("WORKFLOW_NOT_FOUND", `run ${runId} has no workflow file recorded; pass the workflow to resume it`, { runId });
      }
      // The worker's engine checks a given file against the run's, as below.
      const drive = pool.drive({ kind: "resume", runId, path: givenPath ?? summary.workflowPath, force: Boolean(options.force), workflowPath: givenPath ?? undefined });
      return this.#track(runId, drive);
    }
    let wf = givenWorkflow ?? this.workflows.get(runId);
    // A workflow given by the caller is checked against the run's (by the core, at the claim).
    const expect =
      givenWorkflow === undefined
        ? undefined
        : { workflowPath: givenPath, workflowName: renderedName(givenWorkflow, await this.native.inspectAsync(runId)) };
    if (!wf) {
      if (!summary.workflowPath) {
        throw new SmithersError("WORKFLOW_NOT_FOUND", `run ${runId} has no workflow file recorded; pass the workflow to resume it`, { runId });
      }
      wf = await loadWorkflow(summary.workflowPath);
      // Another resume() may have claimed the run while the file loaded: claiming it again
      // from this engine would abandon that drive's in-flight tasks and run them twice.
      const started = this.driving.get(runId);
      if (started) return started.done;
    }
    if (options.onlyIfReady) {
      // Read again after the await: another process may have driven the run on and parked
      // it (waiting for a decision) meanwhile; claiming it then would only park it again.
      const now = await this.native.runSummaryAsync(runId);
      if (now.status !== "running" || (now.owner && now.ownerLiveness !== "dead")) {
        return now.error ? { runId, status: now.status, error: now.error } : { runId, status: now.status };
      }
    }
    // Started here during the awaits above (on PostgreSQL they wait on the network): claiming
    // it again would abandon that drive's in-flight tasks.
    const driven = this.driving.get(runId);
    if (driven) return driven.done;
    // A worker's claim gives up at once when another process holds the run's row now
    // (claiming or driving it: PostgreSQL's SKIP LOCKED) rather than queueing behind it.
    // Held from before the claim: a release of the run still being retried here (its last
    // drive's) must not let it go under the drive that starts now.
    const unhold = this.native.hold(runId);
    let snapshot;
    try {
      snapshot = await this.native.claimRunAsync(runId, { ...expect, force: Boolean(options.force), skipLocked: Boolean(options.onlyIfReady) });
    } catch (e) {
      unhold();
      // The claim may have committed before the database went out of reach: let go of the
      // run (again later if need be), or this engine's lease keeper would hold it forever.
      if (e?.code === "DB_ERROR" || e?.code === "IO_ERROR") void this.native.releaseRunRetrying(runId);
      throw e;
    }
    try {
      this.workflows.set(runId, wf);
      // An ended run comes back as it is, unclaimed (another process finished it meanwhile).
      if (!isTerminal(snapshot.status)) options.onClaimed?.(snapshot);
      return this.#drive(driveRun, wf, snapshot);
    } finally {
      // #drive holds it from here.
      unhold();
    }
  }

  #drive(driveRun, workflow, snapshot) {
    const control = {};
    const runId = snapshot.runId;
    // Registered before the driver's first (synchronous) steps: listeners called from them
    // may decide or resume this run, and must see that it is driven here.
    let settle;
    const done = new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
    // start() hands `done` out; one who does not await it must not get an unhandled rejection.
    done.catch(() => {});
    const entry = { done, control };
    this.driving.set(runId, entry);
    const unhold = this.native.hold(runId);
    // While tracing: each render of the run (and of the sub-runs it drives in place), for the
    // kinds of the nodes its events name.
    const rendered = this.#rendered;
    const renderedRuns = new Set();
    const onRendered = rendered
      ? (id, r) => {
          const run = rendered.get(id);
          if (run) run.rendered = r;
          else rendered.set(id, { rendered: r, kinds: new Map(), indexed: null });
          renderedRuns.add(id);
        }
      : undefined;
    const stop = async () => {
      if (this.driving.get(runId) === entry) this.driving.delete(runId);
      for (const id of renderedRuns) if (!this.driving.has(id)) this.#rendered.delete(id);
      unhold();
      // Tried again while the database is out of reach, unless the run is driven here again.
      await this.native.releaseRunRetrying(runId);
      // The run may have scheduled timers (a <Timer>, a gate's deadline).
      this.#armTimers();
    };
    driveRun(this.native, workflow, snapshot, { afterCall: () => this.dispatch(), control, onRender: this.onRender, onRendered }).then(
      async (result) => {
        await stop();
        // An ended run is never resumed: forget its workflow, or an engine that lives long
        // keeps one entry for every run it ever drove.
        if (isTerminal(result.status)) this.workflows.delete(runId);
        settle.resolve(isTerminal(result.status) ? await this.#resumeCaller(runId, result) : result);
      },
      async (error) => {
        await stop();
        settle.reject(error);
      },
    );
    return done;
  }

  /**
   * Approves a gate. The decision is recorded in one transaction; then the run resumes in
   * this process (unless `resume: false`, or another live process drives it).
   * `done` settles when the resumed run stops again.
   */
  async approve(runId, options = {}) {
    return this.#decide("approve", runId, options);
  }

  /**
   * Denies a gate (per its `onDeny`), or rejects a reviewed step with `reason`: the run then
   * fails and its `onFailure` handler runs. See `approve`.
   */
  async deny(runId, options = {}) {
    return this.#decide("deny", runId, options);
  }

  /** `deny` under the name reviewers use for reviewed steps. */
  async reject(runId, options = {}) {
    return this.#decide("deny", runId, options);
  }

  /**
   * Sends a reviewed step back: it runs again (with `inputs` in its environment / ctx) and
   * waits for review in its next round. Other waiting gates are not disturbed.
   */
  async pushBack(runId, options = {}) {
    return this.#decide("pushBack", runId, options);
  }

  /**
   * The logs of a run's command tasks, per attempt (oldest first), with their text.
   * @param {string} runId
   * @param {{ nodeId?: string, iteration?: number, attempt?: number, maxBytes?: number }} [filter]
   */
  logs(runId, filter = {}) {
    const { maxBytes = 1024 * 1024, ...where } = filter;
    return this.native
      .attemptLogs(runId, where)
      .map((a) => ({ ...a, stdout: readTail(a.stdoutPath, maxBytes), stderr: readTail(a.stderrPath, maxBytes) }));
  }

  /** `logs`, its attempts read without waiting on this thread (PostgreSQL). */
  async logsAsync(runId, filter = {}) {
    const { maxBytes = 1024 * 1024, ...where } = filter;
    const attempts = await this.native.attemptLogsAsync(runId, where);
    return attempts.map((a) => ({ ...a, stdout: readTail(a.stdoutPath, maxBytes), stderr: readTail(a.stderrPath, maxBytes) }));
  }

  async #decide(kind, runId, options) {
    if (this.#tracing?.loading) await this.#tracing.loading;
    const { nodeId, iteration, note, decidedBy, scopes, decision, inputs, reason, expectDigest, resume = true, workflow } = options;
    const forbidStarter = Boolean(options.forbidSelfApproval ?? this.forbidSelfApproval);
    // Text the core cannot hold (a lone surrogate: a string cut inside an emoji) is a bad
    // decision, named by its field; nothing is recorded.
    const fields = { note, reason, decidedBy, nodeId, ...Object.fromEntries(Object.entries(inputs ?? {}).flatMap(([k, v]) => [[`input name ${k}`, k], [`input ${k}`, v]])) };
    for (const [field, value] of Object.entries(fields)) {
      if (typeof value === "string" && !value.isWellFormed()) {
        throw new SmithersError("INVALID_DECISION", `${field} is not valid Unicode text (it holds a lone surrogate, as a string cut inside an emoji does)`, { field });
      }
    }
    // The payload of a select / rank gate or a human task's answer is the person's value:
    // it crosses as JSON text, like every value a user wrote.
    const decisionJson = decision === undefined ? undefined : JSON.stringify(decision);
    const outcome = await this.native[`${kind}Async`]({ runId, nodeId, iteration, note, decidedBy, scopes, decisionJson, inputs, reason, forbidStarter, expectDigest });
    this.dispatch();
    const active = this.driving.get(runId);
    if (active) {
      if (outcome.needsResume) {
        // The driver here has already parked the run (it is returning "waiting-approval"),
        // e.g. the decision came from an ApprovalRequested listener: resume once it stops.
        const done = resume ? active.done.then(() => this.#resumeAfterDecision(runId, workflow)) : active.done;
        done.catch(() => {});
        return { ...outcome, done };
      }
      // The run is driven here: wake the driver so the decided branch moves now.
      active.control.poke?.();
      return { ...outcome, done: active.done };
    }
    if (outcome.needsResume && resume) {
      const done = this.#resumeAfterDecision(runId, workflow);
      // The decision is recorded whatever happens to the resume: a caller that does not
      // await `done` must not be crashed by an unhandled rejection (awaiting it still throws).
      done.catch(() => {});
      return { ...outcome, done };
    }
    return { ...outcome, done: null };
  }

  /**
   * Resumes a run after a decision. Another live process may claim it between the decision
   * and our claim (another approver of another gate, a `resume`): it claimed after the
   * decision was committed, so it picks the decision up. Then `done` reports who drives the
   * run: `{ runId, status: "running", owner }`, instead of failing with RUN_OWNED.
   */
  async #resumeAfterDecision(runId, workflow) {
    try {
      return await this.resume(runId, { workflow });
    } catch (e) {
      if (e?.code !== "RUN_OWNED") throw e;
      return { runId, status: "running", owner: e.details?.owner ?? null };
    }
  }

  /**
   * A sub-run ended: the task that waited on it runs again and its run moves on. The caller
   * is resumed here (unless another live process drives it), and its outcome is reported as
   * `caller` on the sub-run's result.
   */
  async #resumeCaller(runId, result) {
    let caller;
    try {
      const { parentRunId } = await this.native.runSummaryAsync(runId);
      if (!parentRunId) return result;
      const parent = await this.native.runSummaryAsync(parentRunId);
      if (parent.status !== "running" || (parent.owner && parent.ownerLiveness !== "dead")) return result;
      caller = await this.#resumeAfterDecision(parentRunId);
    } catch (e) {
      caller = { runId: null, status: "not-resumed", error: { code: e?.code ?? "INTERNAL", message: String(e?.message ?? e) } };
    }
    return { ...result, caller };
  }

  /**
   * Sends the event `name` to a run: the `<WaitForEvent event={name}>` (or `<Signal id={name}>`)
   * it waits at, matching `correlationId` when given, takes `data` as its output (checked
   * against its schema; one that does not fit is refused and the wait goes on), as decided by
   * `decidedBy` (default "signal"). Then the run resumes, as after a decision.
   * NO_PENDING_APPROVALS when the run waits for no such event.
   * @param {string} runId @param {string} name @param {unknown} data
   * @param {{ correlationId?: string, decidedBy?: string, resume?: boolean }} [options]
   */
  async signal(runId, name, data, options = {}) {
    const waits = (await this.native.pendingApprovalsAsync({ runId })).filter((a) => {
      const w = a.metadata?.waitForEvent;
      return w && w.event === name && (options.correlationId == null || w.correlationId === options.correlationId);
    });
    if (waits.length === 0) {
      throw new SmithersError("NO_PENDING_APPROVALS", `run ${runId} waits for no event ${JSON.stringify(name)}${options.correlationId ? ` with correlationId ${JSON.stringify(options.correlationId)}` : ""}`, { runId, event: name });
    }
    const [wait] = waits;
    return this.approve(runId, {
      nodeId: wait.nodeId,
      iteration: wait.iteration,
      decision: data ?? {},
      decidedBy: options.decidedBy ?? "signal",
      resume: options.resume ?? true,
    });
  }

  /**
   * Fires the durable timers due now (`timers.rs`), each once whoever races for it, in
   * batches until none is due. With `resume` (default), runs a fire woke that nobody drives
   * are resumed here (their outcomes in `resumed`; one that cannot be resumed has `error`).
   * @param {{ resume?: boolean }} [options]
   * @returns {Promise<{ fired: import("./native.js").BindingFiredTimer[], resumed: any[] }>}
   */
  async fireDueTimers({ resume = true } = {}) {
    if (this.#tracing?.loading) await this.#tracing.loading;
    const fired = [];
    for (;;) {
      const batch = await this.native.fireDueTimersAsync(FIRE_BATCH);
      this.dispatch();
      fired.push(...batch);
      if (batch.length < FIRE_BATCH) break;
    }
    const resumed = [];
    if (resume) {
      const runs = [...new Set(fired.filter((t) => t.needsResume).map((t) => t.runId))];
      for (const runId of runs) {
        resumed.push(
          await this.#resumeAfterDecision(runId).catch((e) => ({ runId, status: "not-resumed", error: { code: e?.code ?? "INTERNAL", message: String(e?.message ?? e) } })),
        );
      }
    }
    this.#armTimers();
    return { fired, resumed };
  }

  /**
   * Keeps one wake-up armed for the earliest due timer in the database and fires what is due
   * then (resuming the runs it wakes), until `stopTimers()` or `close()`. For a service that
   * embeds the engine, and `smithers serve`. The wake-up does not keep the process alive.
   * Timers this engine schedules re-arm it; ones another process schedules are found when
   * `armTimers()` is called (serve's watcher does on every commit it sees). With
   * `resume: false` a fire only records (a `smithers worker` claims the runs it woke as ready
   * work, within its concurrency limit).
   * @param {{ resume?: boolean }} [options]
   */
  startTimers({ resume = true } = {}) {
    this.#timers = { handle: null, due: null, resume };
    this.#armTimers();
  }

  stopTimers() {
    if (this.#timers?.handle) clearTimeout(this.#timers.handle);
    this.#timers = null;
  }

  /** Re-reads the earliest due time and moves the wake-up to it (started engines only). */
  armTimers() {
    this.#armTimers();
  }

  #timers = null;

  async #armTimers() {
    const timers = this.#timers;
    if (!timers || this.#closed) return;
    let due;
    try {
      due = await this.native.nextTimerDueAsync();
    } catch {
      return;
    }
    // Stopped (or restarted) while the due time was read (on PostgreSQL, over the network).
    if (this.#timers !== timers || this.#closed) return;
    if (due === timers.due && timers.handle) return;
    if (timers.handle) clearTimeout(timers.handle);
    timers.handle = null;
    timers.due = due;
    if (due === null || due === undefined) return;
    let now;
    try {
      now = this.native.nowMs();
    } catch {
      return;
    }
    const delay = Math.min(Math.max(0, due - now), MAX_TIMEOUT_MS);
    timers.handle = setTimeout(() => {
      timers.handle = null;
      timers.due = null;
      this.fireDueTimers({ resume: timers.resume }).catch(() => this.#armTimers());
    }, delay);
    timers.handle.unref();
  }

  /**
   * A run that waits only on timers (`waiting-timer`) after `result`: waits here for its
   * earliest due time (one timeout, no polling), fires what is due and drives the run on,
   * until it stops otherwise (finished, waiting for a decision, …). For `smithers up` and
   * `resume`, which stay with the run while its timers run.
   * @param {{ runId: string, status: string }} result
   * @param {(dueAtMs: number) => void} [onWait] told each time it starts waiting (the due time)
   */
  async waitOnTimers(result, onWait) {
    const { runId } = result;
    while (result.status === "waiting-timer" && !this.#closed) {
      // The run's own timers and those of the sub-runs it waits on (a sub-run waiting on a
      // <Timer> makes its caller `waiting-timer` too).
      const ids = [runId, ...(await this.#waitedSubRuns(runId))];
      const due = (await Promise.all(ids.map((id) => this.native.runTimersAsync(id))))
        .flat()
        .filter((t) => t.status === "scheduled")
        .reduce((min, t) => Math.min(min, t.dueAtMs), Infinity);
      if (due !== Infinity) {
        const delay = due - this.native.nowMs();
        if (delay > 0) onWait?.(due);
        if (delay > 0) await new Promise((r) => setTimeout(r, Math.min(delay, MAX_TIMEOUT_MS)));
        const { fired } = await this.fireDueTimers({ resume: false });
        await this.resumeWokenSubRuns(runId, fired);
      }
      const now = await this.native.runSummaryAsync(runId);
      if (now.status === "waiting-timer" && due === Infinity) break;
      if (now.status !== "running" && now.status !== "waiting-timer") {
        return now.error ? { runId, status: now.status, error: now.error } : { runId, status: now.status };
      }
      if (now.status === "waiting-timer") continue;
      result = await this.#resumeAfterDecision(runId);
    }
    return result;
  }

  /**
   * The sub-runs (at any depth) that run `runId` waits on now: tasks waiting on a sub-run.
   * @param {string} runId @returns {Promise<string[]>}
   */
  async #waitedSubRuns(runId) {
    const out = [];
    const walk = async (id, depth) => {
      if (depth > 32) return;
      for (const n of (await this.native.inspectAsync(id)).nodes) {
        if (n.state === "waiting-approval" && n.subRunId && !out.includes(n.subRunId)) {
          out.push(n.subRunId);
          await walk(n.subRunId, depth + 1);
        }
      }
    };
    await walk(runId, 0);
    return out;
  }

  /**
   * After timers fired (`fired`, from `fireDueTimers({resume: false})`): resumes the sub-runs
   * of `runId` (at any depth) a fire woke and nobody drives. A sub-run that ends resumes its
   * caller, as after a decision in it, so the caller goes on. Returns their outcomes.
   * @param {string} runId @param {import("./native.js").BindingFiredTimer[]} fired
   */
  async resumeWokenSubRuns(runId, fired) {
    const isBelow = async (id) => {
      for (let depth = 0, at = id; depth < 32; depth++) {
        const parent = (await this.native.runSummaryAsync(at)).parentRunId;
        if (!parent) return false;
        if (parent === runId) return true;
        at = parent;
      }
      return false;
    };
    const woken = [];
    for (const id of new Set(fired.filter((t) => t.needsResume && t.runId !== runId).map((t) => t.runId))) {
      if (await isBelow(id)) woken.push(id);
    }
    const outcomes = [];
    for (const sub of woken) {
      outcomes.push(await this.#resumeAfterDecision(sub).catch((e) => ({ runId: sub, status: "not-resumed", error: { code: e?.code ?? "INTERNAL", message: String(e?.message ?? e) } })));
    }
    return outcomes;
  }

  /** Settles when this process stops driving the run; otherwise reports its status. */
  async waitForRun(runId) {
    const active = this.driving.get(runId);
    if (active) return active.done;
    // Still loading the workflow file to resume it: that resume's outcome.
    const resuming = this.resuming.get(runId);
    if (resuming) return resuming;
    const { status, error } = await this.native.runSummaryAsync(runId);
    return error ? { runId, status, error } : { runId, status };
  }

  /**
   * Approvals waiting for a decision (or decided ones, with `status`), oldest request first.
   * Page with `after`: the `{requestedAtMs, runId, nodeId, iteration}` of the last row seen.
   * @param {{ runId?: string, workflowName?: string, nodeId?: string, status?: string, limit?: number, offset?: number, after?: { requestedAtMs: number, runId: string, nodeId: string, iteration: number } }} [filter]
   */
  pendingApprovals(filter = {}) {
    return this.native.pendingApprovals(filter);
  }

  /** Events of every run after position `afterId` of the database-wide feed (commit order). */
  feed(afterId = 0, limit = 1000) {
    return this.native.feed(afterId, limit);
  }

  /** The newest position of the feed. */
  feedHead() {
    return this.native.feedHead();
  }

  /**
   * Checks the decision log's hash chain: `{ ok, entries, headSeq, headHash, broken }`, where
   * `broken` names the first entry altered or removed (`{ seq, problem, message }`).
   */
  auditVerify() {
    return this.native.auditVerify();
  }

  /** Entries of the decision log after `afterSeq`, oldest first (`data` parsed from `dataJson`). */
  auditEntries({ afterSeq = 0, limit = 1000 } = {}) {
    return this.native.auditEntries(afterSeq, limit).map(({ dataJson, ...e }) => ({ ...e, data: JSON.parse(dataJson) }));
  }

  /**
   * Runs that are `running` while nobody holds them (a decision nobody resumed, an owner whose
   * process died or whose lease expired), oldest first; page with `after` (the last run's
   * `{ updatedAtMs, runId }`). Runs marked unresumable are left out.
   */
  orphanedRuns(limit = 100, { includeDead = true, after } = {}) {
    return this.native.orphanedRuns(limit, includeDead, after).map(({ run, updatedAtMs }) => ({ ...run, updatedAtMs }));
  }

  /** Records why a run cannot be resumed (shown by `why`, `resumeError`); a claim clears it. */
  markUnresumable(runId, error) {
    this.native.markUnresumable(runId, { code: error.code, message: error.message });
    this.dispatch();
  }

  /** @param {{ status?: string, workflowName?: string, limit?: number }} [filter] */
  listRuns(filter = {}) {
    return this.native.listRuns(filter);
  }

  getRun(runId) {
    return this.native.runSummary(runId);
  }

  inspect(runId) {
    return this.native.inspect(runId);
  }

  events(runId, { afterSeq = 0, limit = 1000 } = {}) {
    return this.native.events(runId, afterSeq, limit);
  }

  cancel(runId) {
    const status = this.native.cancelRun(runId);
    this.dispatch();
    return { runId, status };
  }

  // The getters' twins that do not wait on this thread: on PostgreSQL the read runs on the
  // engine's own thread (ARCHITECTURE.md, "The binding on PostgreSQL"); on SQLite they are
  // the synchronous getters. `smithers serve` reads through them.

  /** @param {{ status?: string, workflowName?: string, limit?: number }} [filter] */
  async listRunsAsync(filter = {}) {
    return this.native.listRunsAsync(filter);
  }

  async getRunAsync(runId) {
    return this.native.runSummaryAsync(runId);
  }

  async inspectAsync(runId) {
    return this.native.inspectAsync(runId);
  }

  /** @param {Parameters<SmithersEngine["pendingApprovals"]>[0]} [filter] */
  async pendingApprovalsAsync(filter = {}) {
    return this.native.pendingApprovalsAsync(filter);
  }

  async cancelAsync(runId) {
    const status = await this.native.cancelRunAsync(runId);
    this.dispatch();
    return { runId, status };
  }

  close() {
    this.stopTimers();
    this.#closed = true;
    this.#driverPool?.close();
    if (this.#tracing) {
      // Events no call dispatched yet are traced; reads a run's span needs (PostgreSQL) end
      // before the database is closed.
      try {
        const events = this.native.takeEvents();
        if (events.length) this.#traceEvents(events, this.#kindsOf(events));
      } catch {
        // closed already
      }
      const reading = this.#tracing.sink?.reading();
      if (reading) {
        reading.finally(() => this.native.close());
        return;
      }
    }
    this.native.close();
  }
}
