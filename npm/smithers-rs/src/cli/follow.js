// Watching a run as it goes: the command output of its tasks and its agents' answers
// (`smithers up` on a terminal, `smithers logs --follow`) and its events (`smithers events
// --follow`), from the process that drives it or from any other. All read what the core already
// keeps: the per-attempt log files the runner streams into (paths on the attempt rows), the
// answer an agent attempt commits with its result, and the events table. Nothing is pushed
// between processes: a follower polls (every POLL_MS, and reads only what grew).
// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { closeSync, fstatSync, openSync, readSync, statSync } = process.getBuiltinModule("node:fs");

export const POLL_MS = 100;
const READ_CHUNK = 64 * 1024;
const MAX_AGENT_LOG = 1024 * 1024;

/** `build`, `check#2`, `build (stderr)`: how a line of output is labelled. */
const label = (a, stream) => `${a.nodeId}${a.iteration ? `#${a.iteration}` : ""}${a.attempt > 1 ? ` (attempt ${a.attempt})` : ""}${stream === "stderr" ? " (stderr)" : ""}`;

/**
 * An agent attempt as `smithers logs` prints it: its answer (and the follow-up's), or with
 * `stderr` a CLI agent's stderr, or with `both` the prompts, answers and a CLI's logs too.
 * @param {any} a an attempt of `engine.logs` (with `stdout`/`stderr` text)
 * @param {{ stderr?: boolean, both?: boolean }} v
 */
export function agentLog(a, v) {
  const text = (t) => (t === "" || t.endsWith("\n") ? t : `${t}\n`);
  const follow = a.agent?.followUp;
  const error = a.error?.message ? `-- error --\n${text(`${a.error.code ? `${a.error.code}: ` : ""}${a.error.message}`)}` : "";
  if (v.stderr) return text(a.stderr ?? "");
  if (!v.both) {
    const answer = a.responseText == null ? "(no answer)" : a.responseText;
    return `${text(answer)}${follow ? `-- follow-up answer (${follow.reason}) --\n${text(follow.text ?? "")}` : ""}${error}`;
  }
  let out = `-- prompt --\n${text(a.prompt)}-- answer --\n${text(a.responseText ?? "(no answer)")}`;
  if (follow) out += `-- follow-up prompt --\n${text(follow.prompt ?? "")}-- follow-up answer --\n${text(follow.text ?? "")}`;
  if (a.stdoutPath) out += `-- stdout --\n${text(a.stdout)}-- stderr --\n${text(a.stderr)}`;
  return out + error;
}

/**
 * The output of one run, read incrementally: each `poll()` returns the complete lines command
 * tasks wrote since the last one, and the answer of each agent attempt that ended since (an
 * agent's answer is committed with its result, so it comes whole, when the agent gives it);
 * `flush()` also the unterminated last line of each file.
 */
export class OutputTail {
  /**
   * @param {import("../native.js").NativeEngine} native
   * @param {string} runId
   * @param {{ nodeId?: string, iteration?: number, attempt?: number, streams?: ("stdout" | "stderr")[],
   *   agentView?: { stderr?: boolean, both?: boolean } }} [options] `agentView`: what of an agent
   *   attempt to print, as `agentLog` takes it (default: as `streams` asks, the prompts with both)
   */
  constructor(native, runId, options = {}) {
    this.native = native;
    this.runId = runId;
    this.filter = { nodeId: options.nodeId, iteration: options.iteration, attempt: options.attempt };
    this.streams = options.streams ?? ["stdout", "stderr"];
    const stderrOnly = !this.streams.includes("stdout");
    this.agentView = options.agentView ?? { stderr: stderrOnly, both: !stderrOnly && this.streams.includes("stderr") };
    /** path → { offset, partial, label } */
    this.files = new Map();
    /** agent attempts already printed: `node\0iteration\0attempt` */
    this.agentsShown = new Set();
  }

  /**
   * Complete lines, and the last line of an attempt that ended (its file is then whole: the
   * runner has written everything before the attempt's end is committed).
   * @returns {{ label: string, line: string }[]}
   */
  poll() {
    const out = [];
    for (const a of this.native.attemptLogs(this.runId, this.filter)) {
      if (a.prompt != null) {
        // An agent attempt is listed once it ended, with its answer: printed once, whole.
        const key = `${a.nodeId}\0${a.iteration}\0${a.attempt}`;
        if (this.agentsShown.has(key)) continue;
        this.agentsShown.add(key);
        const view = this.agentView;
        const whole = { ...a, stdout: view.both ? readLast(a.stdoutPath) : "", stderr: view.both || view.stderr ? readLast(a.stderrPath) : "" };
        const text = agentLog(whole, view);
        const where = label(a, view.stderr ? "stderr" : "stdout");
        if (text) for (const line of text.replace(/\n$/, "").split("\n")) out.push({ label: where, line });
        continue;
      }
      for (const stream of this.streams) {
        const path = stream === "stdout" ? a.stdoutPath : a.stderrPath;
        if (!path) continue;
        if (!this.files.has(path)) this.files.set(path, { offset: 0, partial: "", label: label(a, stream), ended: false });
        this.files.get(path).ended = a.state !== "running";
      }
    }
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
  if (!path) return "";
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

/** The last MAX_AGENT_LOG bytes of a finished file (a CLI agent's log), as `engine.logs` reads it. */
function readLast(path) {
  let size = 0;
  try {
    size = path ? statSync(path).size : 0;
  } catch {
    return "";
  }
  return readFrom(path, { offset: Math.max(0, size - MAX_AGENT_LOG) });
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
  // Loaded here, not with the module: the CLI imports this file before it needs the engine.
  const { isTerminal } = await import("../contract.js");
  let version = null;
  for (;;) {
    const now = native.dataVersion();
    const changed = now !== version;
    version = now;
    each();
    if (changed && runId) {
      const { status } = native.runSummary(runId);
      if (isTerminal(status)) {
        each();
        return status;
      }
    }
    if (control.stopped) return null;
    await sleep(POLL_MS);
  }
}
