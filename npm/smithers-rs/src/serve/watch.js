// The serve process's eye on the database. Other processes (the CLI, other engines) write to
// it too, and the only cheap signal SQLite gives across processes is PRAGMA data_version,
// which moves when another connection commits. So the watcher has a connection of its own
// (the serving engine's commits count as "another connection"), polls data_version, and on
// a change:
//   1. reads the database-wide event feed after its cursor and hands the events out
//      (server-sent events, mail on wait);
//   2. resumes runs that are `running` but driven by nobody — a decision recorded by
//      `smithers approve --no-resume` or by another process that did not resume, or a run
//      whose owner stopped holding it (its process died, its lease expired). It pages through
//      all of them; a run it cannot resume (its workflow file is gone, no longer loads, …) is
//      marked with the reason (`why`, the inbox and GET /v1/runs?resumeFailed=true show it)
//      and left out from then on, so it never hides the others.
// On PostgreSQL the database says when another connection commits (LISTEN/NOTIFY: every
// write transaction notifies as it commits): the watcher waits for that off the JS thread
// (`changeWaiter().wait`) instead of polling, and ticks at once — or every second regardless.
import { NativeEngine } from "../native.js";

/** Orphaned runs read per query. */
const PAGE = 100;
/** Failures that say nothing about the run (another process took it, the database was busy): tried again later. */
const TRANSIENT = new Set(["RUN_OWNED", "RUN_NOT_CLAIMED", "DB_ERROR", "IO_ERROR", "ENGINE_CLOSED"]);

export class Watcher {
  /**
   * @param {import("../engine.js").SmithersEngine} engine the serving engine (drives runs)
   * @param {{ intervalMs?: number, log?: (line: string) => void, onEvents?: (events: any[]) => void }} [options]
   */
  constructor(engine, options = {}) {
    this.engine = engine;
    this.native = new NativeEngine(engine.dbPath);
    this.intervalMs = options.intervalMs ?? 20;
    this.log = options.log ?? (() => {});
    this.onEvents = options.onEvents ?? (() => {});
    this.cursor = this.native.feedHead();
    this.version = null;
    /** runId -> updatedAt of a resume that failed for a passing reason: not retried until the run changes. */
    this.failed = new Map();
    this.timer = null;
    this.ticking = false;
    this.sweptAt = 0;
  }

  start() {
    this.tick();
    const waiter = this.native.changeWaiter();
    if (waiter) {
      this.listening = true;
      this.listen(waiter);
      return;
    }
    this.timer = setInterval(() => this.tick(), this.intervalMs);
  }

  /** Ticks when another connection commits (or a second passed), until stopped. */
  async listen(waiter) {
    while (this.listening) {
      try {
        await waiter.wait(1000);
      } catch (e) {
        const line = `watch: ${e.code ?? "ERROR"} ${e.message}`;
        if (line !== this.lastError) this.log(line);
        this.lastError = line;
        await new Promise((r) => setTimeout(r, 200));
      }
      if (this.listening) await this.tick();
    }
  }

  /** Never rejects; on PostgreSQL its reads wait on the engine's thread, not on this one. */
  async tick() {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const version = await this.native.dataVersionAsync();
      // A process that dies writes nothing: look for runs it left behind now and then too.
      const sweep = Date.now() - this.sweptAt > 5000;
      if (version === this.version && !sweep) return;
      if (version !== this.version) {
        this.version = version;
        await this.readFeed();
      }
      if (sweep) this.sweptAt = Date.now();
      await this.adoptOrphans(sweep);
      this.lastError = null;
    } catch (e) {
      // Said once, not at every tick while it lasts (a locked or vanished database).
      const line = `watch: ${e.code ?? "ERROR"} ${e.message}`;
      if (line !== this.lastError) this.log(line);
      this.lastError = line;
    } finally {
      this.ticking = false;
    }
  }

  async readFeed() {
    for (;;) {
      const events = await this.native.feedAsync(this.cursor, 1000);
      if (events.length === 0) return;
      this.cursor = events[events.length - 1].feedId;
      this.onEvents(events);
      if (events.length < 1000) return;
    }
  }

  /** Events after `afterId` (for a stream client reconnecting with Last-Event-ID). */
  async replay(afterId, limit = 1000) {
    return this.native.feedAsync(afterId, limit);
  }

  /** @param {boolean} includeDead also runs whose owner no longer holds them (process gone, lease expired) */
  async adoptOrphans(includeDead) {
    let after;
    for (;;) {
      const page = await this.native.orphanedRunsAsync(PAGE, includeDead, after);
      for (const { run } of page) this.adopt(run);
      if (page.length < PAGE) return;
      const last = page[page.length - 1];
      after = { updatedAtMs: last.updatedAtMs, runId: last.run.runId };
    }
  }

  adopt(run) {
    if (this.engine.driving.has(run.runId) || this.engine.resuming.has(run.runId)) return;
    if (this.failed.get(run.runId) === run.updatedAt) return;
    if (!run.workflowPath) {
      // Started by a service with a workflow object: only that service can resume it.
      this.markUnresumable(run.runId, {
        code: "WORKFLOW_NOT_FOUND",
        message: "no workflow file is recorded on the run (a service started it with a workflow object); that service resumes it",
      });
      return;
    }
    this.log(`resuming ${run.runId} (${run.owner ? "its owner is gone" : "decided elsewhere"})`);
    this.engine.resume(run.runId).then(
      (result) => {
        this.failed.delete(run.runId);
        this.log(`run ${run.runId}: ${result.status}${result.error ? ` (${result.error.code})` : ""}`);
      },
      (e) => {
        const code = typeof e?.code === "string" ? e.code : "INTERNAL";
        const message = String(e?.message ?? e);
        if (code === "RUN_OWNED") return; // another process took it first: it drives the run
        if (TRANSIENT.has(code)) {
          this.failed.set(run.runId, run.updatedAt);
          this.log(`cannot resume ${run.runId} now: ${code} ${message}`);
          return;
        }
        this.markUnresumable(run.runId, { code, message });
      },
    );
  }

  /** Never rejects (its callers do not wait for it). */
  async markUnresumable(runId, error) {
    this.log(`cannot resume ${runId}: ${error.code} ${error.message}`);
    try {
      await this.native.markUnresumableAsync(runId, error);
    } catch (e) {
      this.log(`cannot record why ${runId} was not resumed: ${e?.code ?? "ERROR"} ${e?.message ?? e}`);
    }
  }

  stop() {
    this.listening = false;
    clearInterval(this.timer);
    this.timer = null;
  }

  close() {
    this.stop();
    this.native.close();
  }
}
