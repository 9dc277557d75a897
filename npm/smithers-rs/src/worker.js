// `smithers worker`: a process with no HTTP that drives ready runs and fires due timers, so
// work is spread over as many processes (on as many hosts, on PostgreSQL) as share a database.
//
// Ready work is what the store already knows as "running, driven by nobody" (orphanedRuns):
//   - a run queued by `smithers up --detach` / `engine.enqueue` (created, then let go);
//   - a run whose gate was decided, or whose event was signalled, where nobody resumed it;
//   - a run whose timer fired (this worker fires timers without resuming: it claims the runs
//     they woke like any other ready run, within its limit);
//   - a run whose owner died or lost its lease (checked every `sweepMs`).
// Claiming one is `engine.resume`: a conditional write under the store's write lock, so a run
// is driven by one process at a time whoever races for it; a loser gets RUN_OWNED and tries
// another. Each worker tries the ready runs in a random order, so workers racing over one
// queue mostly claim different runs (ARCHITECTURE.md, "Workers").
//
// Wake-ups: on PostgreSQL the worker LISTENs (every write transaction notifies as it commits:
// a decision, a signal, a queued run, a released run on any host wakes it in milliseconds);
// on SQLite it polls PRAGMA data_version every `pollMs` (cheap: it moves only when another
// connection commits).
import { SmithersEngine } from "./engine.js";
import { NativeEngine } from "./native.js";

/** Failures that say nothing about the run: tried again once it changes. */
const TRANSIENT = new Set(["RUN_NOT_CLAIMED", "DB_ERROR", "IO_ERROR", "ENGINE_CLOSED"]);

export class Worker {
  /**
   * @param {{ database: string, concurrency?: number, leaseMs?: number, pollMs?: number, sweepMs?: number,
   *   log?: (entry: Record<string, unknown>) => void, tracing?: boolean }} options
   *   `concurrency`: runs driven at once (default 4); `pollMs`: SQLite's poll of the database
   *   for commits by other processes (default 50); `sweepMs`: how often runs whose owner died
   *   or lost its lease are looked for (default 1000); `log`: told what the worker takes,
   *   releases and cannot drive (one object per event); `tracing`: OpenTelemetry spans of the
   *   runs it drives, when configured (SmithersEngine's option; `smithers worker` turns it on).
   */
  constructor(options) {
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
      throw Object.assign(new Error(`concurrency must be a whole number from 1 to 1000 (got ${concurrency})`), { code: "INVALID_ARGUMENT" });
    }
    this.concurrency = concurrency;
    this.pollMs = options.pollMs ?? 50;
    this.sweepMs = options.sweepMs ?? 1000;
    this.log = options.log ?? (() => {});
    this.engine = new SmithersEngine({ database: options.database, leaseMs: options.leaseMs, tracing: options.tracing });
    // A connection of its own to hear other processes' commits (as serve's watcher has).
    this.watch = new NativeEngine(this.engine.dbPath);
    /** Runs claimed or being claimed here: runId -> promise of the drive's end. */
    this.active = new Map();
    /**
     * runId -> { updatedAt, at } of a claim that failed for a passing reason: not tried again
     * until the run changes, or `sweepMs` later (the database was out of reach: nothing
     * changes the run, and it must not be left behind).
     */
    this.failed = new Map();
    this.stopping = false;
    /** Runs stop() let go while their drive was under way. */
    this.releasedOnStop = new Set();
    this.sweptAt = 0;
    this.version = null;
    this.ticking = false;
    this.again = false;
    this.changed = false;
    this.slotFreed = false;
    this.taken = 0;
  }

  /** Starts taking work. */
  start() {
    this.engine.startTimers({ resume: false });
    const waiter = this.watch.changeWaiter();
    this.tick();
    if (waiter) {
      this.listening = this.listen(waiter);
    } else {
      this.timer = setInterval(() => this.tick(), this.pollMs);
    }
  }

  /** PostgreSQL: ticks when another connection commits, or every `sweepMs` regardless. */
  async listen(waiter) {
    while (!this.stopping) {
      let changed = true;
      try {
        changed = await waiter.wait(this.sweepMs);
      } catch (e) {
        this.say({ event: "watch-error", code: e?.code ?? "ERROR", message: String(e?.message ?? e) });
        await new Promise((r) => setTimeout(r, 200));
      }
      // A notification is the news (no counter to read); a wait that timed out only sweeps.
      if (!this.stopping) this.tick(changed);
    }
  }

  /** Says an error once while it lasts, not at every tick. */
  say(entry) {
    const key = JSON.stringify(entry);
    if (entry.event === "watch-error" && key === this.lastError) return;
    this.lastError = entry.event === "watch-error" ? key : null;
    this.log(entry);
  }

  /**
   * @param {boolean} [changed] known to have changed (PostgreSQL's notification); else the counter is read
   * Never rejects; on PostgreSQL its reads wait on the engine's thread, not on this one.
   */
  async tick(changed) {
    if (this.stopping) return;
    if (changed) this.changed = true;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      do {
        this.again = false;
        await this.#take();
      } while (this.again && !this.stopping);
    } catch (e) {
      this.say({ event: "watch-error", code: e?.code ?? "ERROR", message: String(e?.message ?? e) });
    } finally {
      this.ticking = false;
    }
  }

  async #take() {
    const sweep = Date.now() - this.sweptAt >= this.sweepMs;
    let changed = this.changed || this.slotFreed;
    this.changed = false;
    this.slotFreed = false;
    if (!changed && !this.listening) {
      const version = await this.watch.dataVersionAsync();
      changed = version !== this.version;
      this.version = version;
    }
    if (!changed && !sweep) return;
    const free = this.concurrency - this.active.size;
    if (sweep) {
      this.sweptAt = Date.now();
      // Timers another process scheduled: the wake-up moves to the earliest. (The process
      // that schedules one arms its own wake-up at once; this is for the others.)
      this.engine.armTimers();
    }
    if (free <= 0) return;
    // A page larger than the free slots, tried in a random order: workers reading the same
    // queue at once mostly pick different runs.
    const page = await this.engine.native.orphanedRunsAsync(Math.min(100, free * 4 + 8), sweep);
    if (this.stopping) return;
    const ready = page.map((p) => p.run).filter((run) => !this.active.has(run.runId) && !this.#failedRecently(run));
    for (let i = ready.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [ready[i], ready[j]] = [ready[j], ready[i]];
    }
    for (const run of ready.slice(0, free)) this.#claim(run);
  }

  #claim(run) {
    const { runId } = run;
    if (!run.workflowPath) {
      this.#unresumable(runId, {
        code: "WORKFLOW_NOT_FOUND",
        message: "no workflow file is recorded on the run (a service started it with a workflow object); that service resumes it",
      });
      return;
    }
    const why = run.owner ? "owner-gone" : "ready";
    const t0 = Date.now();
    let took = false;
    const claimed = (snapshot) => {
      took = true;
      this.taken += 1;
      this.log({ event: "took", runId, workflow: snapshot.workflowName, why, ...(run.owner ? { previousOwner: run.owner } : {}) });
    };
    const done = this.engine.resume(runId, { onlyIfReady: true, onClaimed: claimed }).then(
      (result) => {
        this.failed.delete(runId);
        // Not claimed: another process had ended the run by the time this one tried.
        if (!took) return;
        this.log({ event: "released", runId, status: result.status, ...(result.error ? { code: result.error.code } : {}), ms: Date.now() - t0 });
      },
      (e) => {
        const code = typeof e?.code === "string" ? e.code : "INTERNAL";
        const message = String(e?.message ?? e);
        // Released by stop() (logged there): the drive then fails, whatever it meets next.
        if (this.releasedOnStop.has(runId)) return;
        if (this.stopping && code === "ENGINE_CLOSED") return;
        // Claimed, then lost while driving it (taken over after a lapsed lease: RUN_OWNED).
        if (took) this.log({ event: "released", runId, status: "lost", code, message, ms: Date.now() - t0 });
        // Another process claimed it first: it drives the run.
        if (code === "RUN_OWNED") return;
        if (TRANSIENT.has(code)) {
          this.failed.set(runId, { updatedAt: run.updatedAt, at: Date.now() });
          this.log({ event: "claim-failed", runId, code, message });
          return;
        }
        this.#unresumable(runId, { code, message });
      },
    );
    this.active.set(runId, done);
    done.finally(() => {
      this.active.delete(runId);
      // A slot is free: more ready work may be waiting (no commit may come to say so).
      this.slotFreed = true;
      if (!this.stopping) setImmediate(() => this.tick());
    });
  }

  #failedRecently(run) {
    const failed = this.failed.get(run.runId);
    return failed !== undefined && failed.updatedAt === run.updatedAt && Date.now() - failed.at < this.sweepMs;
  }

  #unresumable(runId, error) {
    this.log({ event: "unresumable", runId, code: error.code, message: error.message });
    try {
      this.engine.markUnresumable(runId, error);
    } catch (e) {
      this.log({ event: "error", runId, code: e?.code ?? "ERROR", message: `cannot record why the run was not resumed: ${e?.message ?? e}` });
    }
  }

  /**
   * Stops taking work; runs driven here get `graceMs` to reach their next wait or their end,
   * then the ones still driven, and the sub-runs they drive, are released (their lease let go
   * at once, so another process takes them now, not when the lease would have expired).
   * Closes the engine. `released` lists them all; `finished`: runs that ended or parked.
   * @param {{ graceMs?: number }} [options]
   * @returns {Promise<{ finished: number, released: string[] }>}
   */
  async stop({ graceMs = 10_000 } = {}) {
    if (this.stopping) return this.stopped;
    this.stopping = true;
    this.stopped = (async () => {
      clearInterval(this.timer);
      this.engine.stopTimers();
      const running = [...this.active.values()];
      let timeout;
      await Promise.race([Promise.allSettled(running), new Promise((r) => (timeout = setTimeout(r, graceMs)))]);
      clearTimeout(timeout);
      const released = [];
      // The sub-runs those drives drive (held here, not among the engine's runs) go too, and
      // first: the process that takes a caller then claims its sub-run at once, rather than
      // waiting for the sub-run's lease to expire (another host cannot see this process end).
      const subRuns = this.engine.native.heldRuns().filter((runId) => !this.engine.driving.has(runId));
      for (const runId of [...subRuns, ...this.engine.driving.keys()]) {
        try {
          this.releasedOnStop.add(runId);
          this.engine.native.releaseRun(runId);
          released.push(runId);
          this.log({ event: "released", runId, status: "running", why: "stopping" });
        } catch (e) {
          this.log({ event: "error", runId, code: e?.code ?? "ERROR", message: `cannot release the run: ${e?.message ?? e}` });
        }
      }
      await this.listening;
      this.watch.close();
      this.engine.close();
      return { finished: running.length - released.filter((runId) => !subRuns.includes(runId)).length, released };
    })();
    return this.stopped;
  }
}
