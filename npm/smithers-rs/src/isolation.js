// Workflow code off the caller's thread: an engine created with `isolate` (smithers serve)
// drives each run in a worker thread of its own (driver-worker.js), so whatever a workflow does
// — a render that spins, a body that blocks, a module that throws from a timer — the thread
// that serves HTTP keeps answering. A watchdog on this side reads what each worker shares
// (heartbeat, render start) and stops a worker whose render does not return within
// `renderTimeoutMs` (RENDER_TIMEOUT), or whose event loop has not turned for
// `blockedTimeoutMs` (WORKFLOW_BLOCKED); a worker that dies on its own is WORKFLOW_CRASHED.
// Then this side fails the run with that code (it takes the run over to do so).
//
// A worker drives one run and ends. To keep a decision from waiting for a worker to start and
// a workflow module to load, a spare worker is kept per recently used workflow file, with that
// file already loaded; it is used if the file has not changed since.
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { SmithersError } from "./errors.js";
import { describeThrown } from "./values.js";

/** Slots of the Float64Array a worker shares (see driver-worker.js). */
export const HEARTBEAT = 0;
export const RENDER = 1;
export const OWNED = 2;
export const DONE = 3;
export const HEARTBEAT_MS = 50;

const WORKER_URL = new URL("./driver-worker.js", import.meta.url);
const ENDED = new Set(["finished", "failed", "cancelled"]);
/** Workflow files a spare worker is kept for (the most recently driven). */
const SPARE_FILES = 4;

export const ISOLATION_DEFAULTS = { renderTimeoutMs: 30_000, blockedTimeoutMs: 300_000, maxWorkers: 16 };

/** A run id for a run started in a worker (the caller must know it before the worker does). */
export const newRunId = () => `run-${randomBytes(6).toString("hex")}`;

export class DriverPool {
  /**
   * @param {import("./native.js").NativeEngine} native the calling engine's (to fail a run whose worker was stopped)
   * @param {{ engine: object, renderTimeoutMs?: number, blockedTimeoutMs?: number, maxWorkers?: number, log?: (line: string) => void }} options
   *   `engine`: the options each worker's engine is made with (dbPath, leaseMs, forbidSelfApproval)
   */
  constructor(native, options) {
    this.native = native;
    this.engineOptions = options.engine;
    this.renderTimeoutMs = options.renderTimeoutMs ?? ISOLATION_DEFAULTS.renderTimeoutMs;
    this.blockedTimeoutMs = options.blockedTimeoutMs ?? ISOLATION_DEFAULTS.blockedTimeoutMs;
    this.maxWorkers = options.maxWorkers ?? ISOLATION_DEFAULTS.maxWorkers;
    this.log = options.log ?? (() => {});
    /** @type {Set<any>} drives whose worker runs */
    this.active = new Set();
    /** @type {any[]} drives waiting for a worker */
    this.queue = [];
    /** @type {Map<string, { worker: Worker, watch: Float64Array, ready: Promise<void>, mtimeMs: number }>} */
    this.spares = new Map();
    this.watchdog = null;
    this.closed = false;
  }

  /**
   * Drives a run in a worker. `done` settles as the in-process drive's would; `started`
   * once a started run is recorded (with its id). `control.poke()` wakes the driver (a
   * decision was recorded on this run).
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
    const drive = { job, settle, markStarted, worker: null, watch: null, stopping: null, finished: false, poked: false };
    const control = {
      poke: () => {
        if (drive.worker) drive.worker.postMessage({ type: "poke" });
        else drive.poked = true;
      },
    };
    if (this.active.size < this.maxWorkers) this.#run(drive);
    else this.queue.push(drive);
    return { done, started, control };
  }

  #run(drive) {
    if (this.closed) {
      drive.settle.reject(new SmithersError("ENGINE_CLOSED", "the engine was closed"));
      return;
    }
    this.active.add(drive);
    const path = drive.job.path ?? null;
    const spare = path ? this.#takeSpare(path) : null;
    const { worker, watch, ready } = spare ?? this.#spawn(path);
    drive.worker = worker;
    drive.watch = watch;
    worker.on("message", (m) => this.#message(drive, m));
    worker.on("error", (e) => {
      drive.crash ??= e;
    });
    worker.on("exit", () => this.#exited(drive));
    ready.then(() => {
      if (drive.finished || drive.stopping) return;
      // The watchdog counts from now: a spare's idle time is not the drive's.
      watch[HEARTBEAT] = Math.max(watch[HEARTBEAT], Date.now());
      worker.postMessage({ type: "job", job: { ...drive.job, engine: this.engineOptions } });
      if (drive.poked) worker.postMessage({ type: "poke" });
    });
    this.#startWatchdog();
    if (path) this.#keepSpare(path);
  }

  #spawn(preload) {
    const shared = new SharedArrayBuffer(8 * 4);
    const watch = new Float64Array(shared);
    watch[HEARTBEAT] = Date.now();
    const worker = new Worker(WORKER_URL, { workerData: { watch: shared, preload } });
    let ready;
    const readyPromise = new Promise((resolve) => {
      ready = resolve;
    });
    const onReady = (m) => {
      if (m?.type === "ready") {
        worker.off("message", onReady);
        ready();
      }
    };
    worker.on("message", onReady);
    // A worker that dies before it is ready is handled by its drive's exit handler.
    worker.once("exit", () => ready());
    return { worker, watch, ready: readyPromise };
  }

  #takeSpare(path) {
    const spare = this.spares.get(path);
    if (!spare) return null;
    this.spares.delete(path);
    spare.worker.removeAllListeners("exit");
    if (mtime(path) !== spare.mtimeMs) {
      // The file changed since the spare loaded it.
      spare.worker.terminate();
      return null;
    }
    spare.worker.ref();
    return spare;
  }

  #keepSpare(path) {
    if (this.closed || this.spares.has(path)) return;
    const mtimeMs = mtime(path);
    if (mtimeMs === null) return;
    const spare = { ...this.#spawn(path), mtimeMs };
    // An idle spare does not keep the process alive.
    spare.worker.unref();
    spare.worker.on("error", () => {});
    spare.worker.once("exit", () => {
      if (this.spares.get(path) === spare) this.spares.delete(path);
    });
    this.spares.set(path, spare);
    while (this.spares.size > SPARE_FILES) {
      const [oldest, old] = this.spares.entries().next().value;
      this.spares.delete(oldest);
      old.worker.terminate();
    }
  }

  #message(drive, m) {
    if (m?.type === "started") drive.markStarted(m.runId);
    else if (m?.type === "done") this.#finish(drive, drive.job.runId, () => drive.settle.resolve(m.result));
    else if (m?.type === "error") {
      const { code, message, details } = m.error;
      this.#finish(drive, null, () => drive.settle.reject(new SmithersError(code ?? "INTERNAL", message, details ?? {})));
    }
  }

  /** `startedAs`: the run id when the drive got as far as a run (else null: nothing recorded). */
  #finish(drive, startedAs, settle) {
    if (drive.finished) return;
    drive.finished = true;
    drive.markStarted(startedAs);
    settle();
    // The drive is over; whatever the workflow left running in the worker (timers) goes too.
    drive.worker.terminate();
  }

  /** The worker ended: after its outcome (normal), stopped by the watchdog, or crashed. */
  #exited(drive) {
    this.active.delete(drive);
    if (!drive.finished) {
      const why =
        drive.stopping ??
        {
          code: "WORKFLOW_CRASHED",
          message: `the workflow's thread ended without finishing the drive${drive.crash ? `: ${describeThrown(drive.crash).message}` : ""}`,
        };
      drive.finished = true;
      if (drive.watch[OWNED] === 1) {
        const result = this.#failRun(drive.job.runId, why);
        drive.markStarted(drive.job.runId);
        drive.settle.resolve(result);
      } else {
        // The run was never this worker's (it stopped loading the workflow, or rendering
        // the first time): nothing of it is touched.
        drive.markStarted(null);
        drive.settle.reject(new SmithersError(why.code, why.message, { runId: drive.job.runId }));
      }
    }
    const next = this.queue.shift();
    if (next) this.#run(next);
    else if (this.active.size === 0) this.#stopWatchdog();
  }

  /** Takes the run over from the stopped worker and fails it with `error`. */
  #failRun(runId, error) {
    try {
      // Parked or ended before its worker went: the run is as its worker left it.
      const { status } = this.native.call("runSummary", runId);
      if (status !== "running") return { runId, status };
      const snapshot = this.native.call("claimRun", runId, true);
      if (ENDED.has(snapshot.status)) return { runId, status: snapshot.status, ...(snapshot.error ? { error: snapshot.error } : {}) };
      const step = this.native.call("failRun", runId, JSON.stringify(error));
      this.native.call("releaseRun", runId);
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
      const w = drive.watch;
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
    drive.worker.terminate();
  }

  /** Stops every worker (runs they drove stay running; their leases lapse and they are adopted). */
  close() {
    this.closed = true;
    this.#stopWatchdog();
    for (const drive of this.queue.splice(0)) drive.settle.reject(new SmithersError("ENGINE_CLOSED", "the engine was closed"));
    for (const drive of this.active) {
      drive.stopping ??= { code: "ENGINE_CLOSED", message: "the engine was closed while it drove the run" };
      drive.finished = true;
      drive.settle.reject(new SmithersError("ENGINE_CLOSED", "the engine was closed while it drove the run", { runId: drive.job.runId }));
      drive.worker.terminate();
    }
    for (const spare of this.spares.values()) spare.worker.terminate();
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
