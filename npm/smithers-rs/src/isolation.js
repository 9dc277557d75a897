// Workflow code off the caller's thread: an engine created with `isolate` (smithers serve)
// drives each run in a worker thread (driver-worker.js), so whatever a workflow does — a
// render that spins, a body that blocks, a module that throws from a timer — the thread that
// serves HTTP keeps answering. A watchdog on this side reads what each worker shares
// (heartbeat, render start) and stops a worker whose render does not return within
// `renderTimeoutMs` (RENDER_TIMEOUT), or whose event loop has not turned for
// `blockedTimeoutMs` (WORKFLOW_BLOCKED); a worker that dies on its own is WORKFLOW_CRASHED.
// Then this side fails the run with that code (it takes the run over to do so).
//
// A worker drives one run at a time. To keep a decision from waiting for a worker to start
// and a workflow module to load, a spare worker is kept per recently driven workflow file,
// with that file loaded: the worker of a drive that ended cleanly (nothing of the workflow
// left running in it) becomes the spare, else a new one is started when the drive ends. A
// spare is used while its file has not changed (mtime).
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { isTerminal } from "./contract.js";
import { SmithersError } from "./errors.js";
import { logFileFd, logger } from "./log.js";
import { describeThrown } from "./values.js";

const log = logger("smithers_js::isolation");

/** Slots of the Float64Array a worker shares (see driver-worker.js). */
export const HEARTBEAT = 0;
export const RENDER = 1;
export const OWNED = 2;
export const DONE = 3;
export const HEARTBEAT_MS = 50;

const WORKER_URL = new URL("./driver-worker.js", import.meta.url);
/** Workflow files a spare worker is kept for (the most recently driven). */
const SPARE_FILES = 4;

export const ISOLATION_DEFAULTS = { renderTimeoutMs: 30_000, blockedTimeoutMs: 300_000, maxWorkers: 16 };

/** A run id for a run started in a worker (the caller must know it before the worker does). */
export const newRunId = () => `run-${randomBytes(6).toString("hex")}`;

export class DriverPool {
  /**
   * @param {import("./native.js").NativeEngine} native the calling engine's (to fail a run whose worker was stopped)
   * @param {{ engine: object, renderTimeoutMs?: number, blockedTimeoutMs?: number, maxWorkers?: number, log?: (line: string) => void, onTrace?: (events: any[], kinds: Record<string, string>) => void }} options
   *   `engine`: the options each worker's engine is made with (dbPath, leaseMs, forbidSelfApproval,
   *   `tracing: "forward"`: its events come back as `trace` messages, for `onTrace`)
   */
  constructor(native, options) {
    this.native = native;
    this.engineOptions = options.engine;
    this.renderTimeoutMs = options.renderTimeoutMs ?? ISOLATION_DEFAULTS.renderTimeoutMs;
    this.blockedTimeoutMs = options.blockedTimeoutMs ?? ISOLATION_DEFAULTS.blockedTimeoutMs;
    this.maxWorkers = options.maxWorkers ?? ISOLATION_DEFAULTS.maxWorkers;
    this.log = options.log ?? (() => {});
    /** Told the events a worker's drive committed (an engine that traces: `tracing`). */
    this.onTrace = options.onTrace ?? null;
    /** @type {Set<any>} drives whose worker runs */
    this.active = new Set();
    /** @type {any[]} drives waiting for a worker */
    this.queue = [];
    /** @type {Map<string, any>} path -> an idle worker with that workflow loaded */
    this.spares = new Map();
    this.watchdog = null;
    this.closed = false;
  }

  /**
   * Drives a run in a worker. `done` settles as the in-process drive's would; `started`
   * once a started run is recorded (with its id; null if it never was). `control.poke()`
   * wakes the driver (a decision was recorded on this run).
   * @param {{ kind: "start" | "resume", runId: string, path?: string | null, input?: unknown, startedBy?: string, force?: boolean, workflowPath?: string }} job
   */
  drive(job) {
    let settle;
    const done = new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
    done.catch(() => {});
    let markStarted;
    const started = new Promise((resolve) => {
      markStarted = resolve;
    });
    const drive = { job, settle, markStarted, slot: null, stopping: null, finished: false, poked: false, crash: null };
    const control = {
      poke: () => {
        if (drive.slot) drive.slot.worker.postMessage({ type: "poke" });
        else drive.poked = true;
      },
    };
    if (this.active.size < this.maxWorkers) this.#run(drive);
    else {
      this.queue.push(drive);
      log.debug("drive queued: every worker is busy", { run_id: job.runId, kind: job.kind, workers: this.active.size, queued: this.queue.length });
    }
    return { done, started, control };
  }

  #run(drive) {
    if (this.closed) {
      drive.markStarted(null);
      drive.settle.reject(new SmithersError("ENGINE_CLOSED", "the engine was closed"));
      return;
    }
    this.active.add(drive);
    const path = drive.job.path ?? null;
    const spare = path ? this.#takeSpare(path) : null;
    const slot = spare ?? this.#spawn(path);
    drive.slot = slot;
    log.debug("drive handed to a worker", { run_id: drive.job.runId, kind: drive.job.kind, workflow_path: path, spare: spare !== null, workers: this.active.size });
    const { worker, watch } = slot;
    slot.onMessage = (m) => this.#message(drive, m);
    slot.onError = (e) => {
      drive.crash ??= e;
    };
    slot.onExit = () => this.#exited(drive);
    worker.on("message", slot.onMessage);
    worker.on("error", slot.onError);
    worker.on("exit", slot.onExit);
    slot.ready.then(() => {
      if (drive.finished || drive.stopping) return;
      // The watchdog counts from now: the idle time of a spare is not the drive's.
      watch[HEARTBEAT] = Math.max(watch[HEARTBEAT], Date.now());
      watch[RENDER] = 0;
      watch[OWNED] = 0;
      watch[DONE] = 0;
      worker.postMessage({ type: "job", job: { ...drive.job, engine: this.engineOptions } });
      if (drive.poked) worker.postMessage({ type: "poke" });
    });
    this.#startWatchdog();
  }

  /** A new worker; with `path`, it loads that workflow file while it waits for a job. */
  #spawn(path) {
    const shared = new SharedArrayBuffer(8 * 4);
    const watch = new Float64Array(shared);
    watch[HEARTBEAT] = Date.now();
    const worker = new Worker(WORKER_URL, { workerData: { watch: shared, preload: path, smithersLogFd: logFileFd() } });
    let ready;
    const slot = { worker, watch, path, mtimeMs: path ? mtime(path) : null, ready: new Promise((r) => (ready = r)) };
    const onReady = (m) => {
      if (m?.type === "ready") {
        worker.off("message", onReady);
        ready();
      }
    };
    worker.on("message", onReady);
    // One that dies before it is ready is handled by its drive's exit handler.
    worker.once("exit", () => ready());
    return slot;
  }

  #takeSpare(path) {
    const slot = this.spares.get(path);
    if (!slot) return null;
    this.spares.delete(path);
    slot.worker.off("exit", slot.onIdleExit);
    slot.worker.off("error", slot.onIdleError);
    if (mtime(path) !== slot.mtimeMs) {
      // The file changed since the spare loaded it.
      slot.worker.terminate();
      return null;
    }
    slot.worker.ref();
    return slot;
  }

  /** Keeps `slot` (its worker idle, `path` loaded) for the next drive of `path`. */
  #keepSpare(slot) {
    const path = slot.path;
    if (this.closed || this.spares.has(path) || slot.mtimeMs === null || mtime(path) !== slot.mtimeMs) {
      slot.worker.terminate();
      return;
    }
    // An idle spare does not keep the process alive.
    slot.worker.unref();
    slot.onIdleError = () => {};
    slot.onIdleExit = () => {
      if (this.spares.get(path) === slot) this.spares.delete(path);
    };
    slot.worker.on("error", slot.onIdleError);
    slot.worker.once("exit", slot.onIdleExit);
    this.spares.set(path, slot);
    while (this.spares.size > SPARE_FILES) {
      const [oldest, old] = this.spares.entries().next().value;
      this.spares.delete(oldest);
      old.worker.terminate();
    }
  }

  #message(drive, m) {
    if (m?.type === "trace") this.onTrace?.(m.events, m.kinds);
    else if (m?.type === "started") drive.markStarted(m.runId);
    else if (m?.type === "done") this.#finish(drive, m.clean, drive.job.runId, () => drive.settle.resolve(m.result));
    else if (m?.type === "error") {
      const { code, message, details } = m.error;
      this.#finish(drive, m.clean, null, () => drive.settle.reject(new SmithersError(code ?? "INTERNAL", message, details ?? {})));
    }
  }

  /**
   * The drive's outcome came. A worker the workflow left nothing running in (`clean`) waits
   * for the next drive of its file; any other is stopped, whatever the workflow left in it.
   * `startedAs`: the run id when the drive got as far as a run (else null: nothing recorded).
   */
  #finish(drive, clean, startedAs, settle) {
    if (drive.finished) return;
    drive.finished = true;
    drive.markStarted(startedAs);
    settle();
    const slot = drive.slot;
    slot.worker.off("message", slot.onMessage);
    slot.worker.off("error", slot.onError);
    slot.worker.off("exit", slot.onExit);
    this.#release(drive);
    const reused = Boolean(clean && slot.path && !drive.crash);
    log.debug("drive ended in its worker", { run_id: drive.job.runId, started: startedAs !== null, clean: Boolean(clean), worker_kept: reused });
    if (reused) this.#keepSpare(slot);
    else {
      slot.worker.terminate();
      if (slot.path) this.#replaceSpare(slot.path);
    }
  }

  /** After a drive whose worker is not kept: a fresh spare for its file (if none is kept). */
  #replaceSpare(path) {
    if (this.closed || this.spares.has(path)) return;
    this.#keepSpare(this.#spawn(path));
  }

  /** The drive no longer holds a worker: the next queued one may run. */
  #release(drive) {
    this.active.delete(drive);
    const next = this.queue.shift();
    if (next) this.#run(next);
    else if (this.active.size === 0) this.#stopWatchdog();
  }

  /** The worker ended before the drive's outcome: stopped by the watchdog, or crashed. */
  #exited(drive) {
    if (drive.finished) return;
    drive.finished = true;
    const why = drive.stopping ?? {
      code: "WORKFLOW_CRASHED",
      message: `the workflow's thread ended without finishing the drive${drive.crash ? `: ${describeThrown(drive.crash).message}` : ""}`,
    };
    log.warn("worker ended before its drive did", { run_id: drive.job.runId, code: why.code, owned: drive.slot.watch[OWNED] === 1 });
    if (drive.slot.watch[OWNED] === 1) {
      const result = this.#failRun(drive.job.runId, why);
      drive.markStarted(drive.job.runId);
      drive.settle.resolve(result);
    } else {
      // The run was never this worker's (it stopped while loading the workflow, or in the
      // check before a start): nothing of it is touched.
      drive.markStarted(null);
      drive.settle.reject(new SmithersError(why.code, why.message, { runId: drive.job.runId }));
    }
    this.#release(drive);
    if (drive.slot.path && !drive.stopping) this.#replaceSpare(drive.slot.path);
  }

  /** Takes the run over from the stopped worker and fails it with `error`. */
  #failRun(runId, error) {
    try {
      // Parked or ended before its worker went: the run is as its worker left it.
      const { status } = this.native.runSummary(runId);
      if (status !== "running") return { runId, status };
      const snapshot = this.native.claimRun(runId, { force: true });
      if (isTerminal(snapshot.status)) return { runId, status: snapshot.status, ...(snapshot.error ? { error: snapshot.error } : {}) };
      const step = this.native.failRun(runId, error);
      this.native.releaseRun(runId);
      this.log(`run ${runId}: failed (${error.code}: ${error.message})`);
      return { runId, status: step.status, error: step.error ?? error };
    } catch (e) {
      return { runId, status: "running", error: { code: e?.code ?? "INTERNAL", message: e?.message ?? String(e) } };
    }
  }

  #startWatchdog() {
    if (this.watchdog) return;
    const every = Math.max(10, Math.min(250, Math.floor(Math.min(this.renderTimeoutMs, this.blockedTimeoutMs) / 4)));
    this.watchdog = setInterval(() => this.#check(), every);
    this.watchdog.unref();
  }

  #stopWatchdog() {
    clearInterval(this.watchdog);
    this.watchdog = null;
  }

  #check() {
    const now = Date.now();
    for (const drive of this.active) {
      const w = drive.slot.watch;
      if (drive.stopping || drive.finished || w[DONE] === 1) continue;
      if (w[RENDER] > 0 && now - w[RENDER] > this.renderTimeoutMs) {
        this.#stop(drive, { code: "RENDER_TIMEOUT", message: `the workflow's render did not return within ${this.renderTimeoutMs} ms` });
      } else if (now - w[HEARTBEAT] > this.blockedTimeoutMs) {
        this.#stop(drive, {
          code: "WORKFLOW_BLOCKED",
          message: `the workflow's code kept its thread busy for more than ${this.blockedTimeoutMs} ms (a task body or handler that never yields)`,
        });
      }
    }
  }

  #stop(drive, why) {
    drive.stopping = why;
    this.log(`stopping the worker of run ${drive.job.runId}: ${why.code}`);
    log.warn("stopping a worker", { run_id: drive.job.runId, code: why.code });
    drive.slot.worker.terminate();
  }

  /** Stops every worker (runs they drove stay running; their leases lapse and they are adopted). */
  close() {
    this.closed = true;
    this.#stopWatchdog();
    const closed = () => new SmithersError("ENGINE_CLOSED", "the engine was closed while it drove the run");
    for (const drive of this.queue.splice(0)) {
      drive.markStarted(null);
      drive.settle.reject(closed());
    }
    for (const drive of this.active) {
      drive.finished = true;
      drive.markStarted(null);
      drive.settle.reject(closed());
      drive.slot.worker.terminate();
    }
    this.active.clear();
    for (const slot of this.spares.values()) slot.worker.terminate();
    this.spares.clear();
  }
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}
