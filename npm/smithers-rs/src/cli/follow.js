// Watching a run as it goes: the command output of its tasks (`smithers up` on a terminal,
// `smithers logs --follow`) and its events (`smithers events --follow`), from the process that
// drives it or from any other. Both read what the core already keeps: the per-attempt log files
// the runner streams into (paths on the attempt rows) and the events table. Nothing is pushed
// between processes: a follower polls (every POLL_MS, and reads only what grew).
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export const POLL_MS = 100;
const READ_CHUNK = 64 * 1024;

/** `build`, `check#2`, `build (stderr)`: how a line of output is labelled. */
const label = (a, stream) => `${a.nodeId}${a.iteration ? `#${a.iteration}` : ""}${a.attempt > 1 ? ` (attempt ${a.attempt})` : ""}${stream === "stderr" ? " (stderr)" : ""}`;

/**
 * The command output of one run, read incrementally: each `poll()` returns the complete lines
 * written since the last one, `flush()` also the unterminated last line of each file.
 */
export class OutputTail {
  /**
   * @param {import("../native.js").NativeEngine} native
   * @param {string} runId
   * @param {{ nodeId?: string, iteration?: number, attempt?: number, streams?: ("stdout" | "stderr")[] }} [options]
   */
  constructor(native, runId, options = {}) {
    this.native = native;
    this.runId = runId;
    this.filter = { nodeId: options.nodeId, iteration: options.iteration, attempt: options.attempt };
    this.streams = options.streams ?? ["stdout", "stderr"];
    /** path → { offset, partial, label } */
    this.files = new Map();
  }

  /**
   * Complete lines, and the last line of an attempt that ended (its file is then whole: the
   * runner has written everything before the attempt's end is committed).
   * @returns {{ label: string, line: string }[]}
   */
  poll() {
    for (const a of this.native.call("attemptLogs", this.runId, JSON.stringify(this.filter))) {
      for (const stream of this.streams) {
        const path = stream === "stdout" ? a.stdoutPath : a.stderrPath;
        if (!path) continue;
        if (!this.files.has(path)) this.files.set(path, { offset: 0, partial: "", label: label(a, stream), ended: false });
        this.files.get(path).ended = a.state !== "running";
      }
    }
    const out = [];
    for (const [path, f] of this.files) {
      const text = readFrom(path, f);
      const lines = (f.partial + text).split("\n");
      f.partial = lines.pop();
      if (f.ended && f.partial) {
        lines.push(f.partial);
        f.partial = "";
      }
      for (const line of lines) out.push({ label: f.label, line });
    }
    return out;
  }

  /** What poll() returns, plus each file's last line when it has no newline yet. */
  flush() {
    const out = this.poll();
    for (const f of this.files.values()) {
      if (f.partial) out.push({ label: f.label, line: f.partial });
      f.partial = "";
    }
    return out;
  }
}

/** The bytes of `path` past `f.offset` (advancing it), as text; "" when none or no file yet. */
function readFrom(path, f) {
  let fd;
  try {
    fd = openSync(path, "r");
  } catch {
    return "";
  }
  try {
    const size = fstatSync(fd).size;
    if (size < f.offset) f.offset = 0; // the file was written anew
    const chunks = [];
    while (f.offset < size) {
      const buf = Buffer.alloc(Math.min(READ_CHUNK, size - f.offset));
      const n = readSync(fd, buf, 0, buf.length, f.offset);
      if (n <= 0) break;
      f.offset += n;
      chunks.push(buf.subarray(0, n));
    }
    return Buffer.concat(chunks).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

export const outputLine = ({ label: l, line }) => `${l} | ${line}`;

const EVENT_FIELDS = new Set(["runId", "seq", "type", "timestampMs", "feedId", "nodeId", "iteration"]);

/** One event as a line: `2026-12-03T14:30:18.123Z run-1 #4 NodeStarted build [attempt=1]`. */
export function eventLine(e) {
  const rest = Object.fromEntries(Object.entries(e).filter(([k, v]) => !EVENT_FIELDS.has(k) && v !== null && v !== undefined));
  const node = e.nodeId ? ` ${e.nodeId}${e.iteration ? `#${e.iteration}` : ""}` : "";
  const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
  return `${new Date(e.timestampMs).toISOString()} ${e.runId} #${e.seq} ${e.type}${node}${extra}`;
}

const TERMINAL = new Set(["finished", "failed", "cancelled"]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls until the run ends (or `stop()`), calling `each()` after every change; resolves with
 * the run's final status. A run that waits for approval is followed on: a decision resumes it.
 * @param {import("../native.js").NativeEngine} native
 * @param {string | null} runId null: never ends by itself
 * @param {() => void} each
 * @param {{ stopped: boolean }} control
 */
export async function pollUntilEnd(native, runId, each, control) {
  let version = null;
  for (;;) {
    const now = native.raw.dataVersion();
    const changed = now !== version;
    version = now;
    each();
    if (changed && runId) {
      const { status } = native.call("runSummary", runId);
      if (TERMINAL.has(status)) {
        each();
        return status;
      }
    }
    if (control.stopped) return null;
    await sleep(POLL_MS);
  }
}
