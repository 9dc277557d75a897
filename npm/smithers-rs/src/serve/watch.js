// The serve process's eye on the database. Other processes (the CLI, other engines) write to
// it too, and the only cheap signal SQLite gives across processes is PRAGMA data_version,
// which moves when another connection commits. So the watcher has a connection of its own
// (the serving engine's commits count as "another connection"), polls data_version, and on
// a change:
//   1. reads the database-wide event feed after its cursor and hands the events out
//      (server-sent events, mail on wait);
//   2. resumes runs that are `running` but driven by nobody — a decision recorded by
//      `smithers approve --no-resume` or by another process that did not resume, or a run
//      whose process died.
import { NativeEngine } from "../native.js";

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
    this.cursor = this.native.call("feedHead");
    this.version = null;
    /** runId -> updatedAt of a resume that failed: not retried until the run changes. */
    this.failed = new Map();
    this.timer = null;
    this.ticking = false;
    this.sweptAt = 0;
  }

  start() {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
  }

  tick() {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const version = this.native.raw.dataVersion();
      // A process that dies writes nothing: look for runs it left behind now and then too.
      const sweep = Date.now() - this.sweptAt > 5000;
      if (version === this.version && !sweep) return;
      if (version !== this.version) {
        this.version = version;
        this.readFeed();
      }
      if (sweep) this.sweptAt = Date.now();
      this.adoptOrphans(sweep);
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

  readFeed() {
    for (;;) {
      const events = this.native.call("feed", this.cursor, 1000);
      if (events.length === 0) return;
      this.cursor = events[events.length - 1].feedId;
      this.onEvents(events);
      if (events.length < 1000) return;
    }
  }

  /** Events after `afterId` (for a stream client reconnecting with Last-Event-ID). */
  replay(afterId, limit = 1000) {
    return this.native.call("feed", afterId, limit);
  }

  /** @param {boolean} includeDead also runs whose owner's process died (checks each owner) */
  adoptOrphans(includeDead) {
    const orphans = this.native.call("orphanedRuns", 100, includeDead);
    for (const run of orphans) {
      if (this.engine.driving.has(run.runId) || this.engine.resuming.has(run.runId)) continue;
      if (!run.workflowPath) continue; // started by a service with a workflow object: it resumes its own
      if (this.failed.get(run.runId) === run.updatedAt) continue;
      this.log(`resuming ${run.runId} (${run.owner ? "its process died" : "decided elsewhere"})`);
      this.engine.resume(run.runId).then(
        (result) => {
          this.failed.delete(run.runId);
          this.log(`run ${run.runId}: ${result.status}${result.error ? ` (${result.error.code})` : ""}`);
        },
        (e) => {
          if (e?.code === "RUN_OWNED") return; // another process took it first: it drives the run
          this.failed.set(run.runId, run.updatedAt);
          this.log(`cannot resume ${run.runId}: ${e?.code ?? "ERROR"} ${e?.message ?? e}`);
        },
      );
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  close() {
    this.stop();
    this.native.close();
  }
}
