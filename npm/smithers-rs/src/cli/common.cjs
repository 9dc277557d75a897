// What the `smithers` CLI (main.js) and its short path (fast.cjs) share: option tables, how a
// command finds its database and who decides, the lines a decision and `ps` print, and how
// anything is printed (writeSync to fd 1/2: no process.stdout, whose streams cost more than
// most commands). One copy, so both paths print the same by construction. CommonJS, so that
// both load it with a synchronous require.
"use strict";
const { existsSync, fstatSync, statSync, writeSync } = require("node:fs");
const { dirname, isAbsolute, join, relative, resolve } = require("node:path");
const { isServerUrl, resolveDb } = require("../database.cjs");

const COMMON = {
  db: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};
const DECIDE = {
  ...COMMON,
  node: { type: "string", short: "n" },
  iteration: { type: "string" },
  note: { type: "string" },
  reason: { type: "string" },
  by: { type: "string" },
  scope: { type: "string", multiple: true },
  decision: { type: "string" },
  input: { type: "string", short: "i", multiple: true },
  "expect-digest": { type: "string" },
  "no-resume": { type: "boolean", default: false },
  force: { type: "boolean", default: false },
};
const PS = { ...COMMON, status: { type: "string" }, limit: { type: "string" } };

/** --db, else $SMITHERS_DB, else the nearest smithers.db from the working directory up; else null. */
function findDbPath(values) {
  if (values.db) return resolveDb(values.db);
  if (process.env.SMITHERS_DB) return resolveDb(process.env.SMITHERS_DB);
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    const candidate = join(dir, "smithers.db");
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

/**
 * ` --db FILE` for the commands the CLI prints, when a command typed here without --db
 * would not find `dbPath` (a --db or workflow dbPath other than the nearest smithers.db).
 * With `{ up: true }`, for `smithers up`, which defaults to $SMITHERS_DB or ./smithers.db.
 */
function dbArg(dbPath, { up = false } = {}) {
  const found = up ? resolveDb(process.env.SMITHERS_DB ?? "smithers.db") : findDbPath({});
  if (found === dbPath) return "";
  if (isServerUrl(dbPath)) return ` --db ${shellQuote(dbPath)}`;
  const rel = relative(process.cwd(), dbPath);
  const shown = rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : dbPath;
  return ` --db ${shellQuote(shown)}`;
}

function shellQuote(word) {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** $USER / $USERNAME, else the account the process runs as (containers and CI often set neither). */
function osUser() {
  if (process.env.USER || process.env.USERNAME) return process.env.USER || process.env.USERNAME;
  try {
    return require("node:os").userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

/**
 * console.log without process.stdout: creating that stream loads Node's streams, which costs
 * more than most commands do. Writes to fd 1 as the stream does for files and pipes
 * (synchronously); a reader that went away (`smithers ps | head -1`) is not a failure.
 */
function print(text) {
  writeAll(1, `${text}\n`);
}

/** console.error's counterpart of print (fd 2). */
function printErr(text) {
  try {
    writeAll(2, `${text}\n`);
  } catch {
    // stderr closed: nothing to tell
  }
}

/** `process.stdout.write`'s counterpart of print: `text` as it is. */
function printRaw(text) {
  writeAll(1, text);
}

/** `text` to file descriptor `fd`, all of it: a full non-blocking pipe is waited for, a closed one ends the write. */
function writeAll(fd, text) {
  const buf = Buffer.from(text);
  let at = 0;
  while (at < buf.length) {
    try {
      at += writeSync(fd, buf, at);
    } catch (e) {
      if (e?.code === "EPIPE") return;
      if (e?.code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // wait 1 ms
    }
  }
}

/**
 * Whether `fd` is a terminal, without creating process.stdout/stderr for it (their `isTTY`):
 * node:tty (which loads Node's streams, ~10 ms of a start) only for a character device, which
 * a pipe or a file is not, and which /dev/null (`2>/dev/null`, a service's stdio) is but is
 * no terminal.
 */
function isTerminal(fd) {
  try {
    const stat = fstatSync(fd);
    if (!stat.isCharacterDevice() || stat.rdev === devNullRdev()) return false;
    return require("node:tty").isatty(fd);
  } catch {
    return false;
  }
}

let devNull;
/** The device number of /dev/null, or null where there is none. */
function devNullRdev() {
  if (devNull === undefined) {
    try {
      devNull = statSync("/dev/null").rdev;
    } catch {
      devNull = null;
    }
  }
  return devNull;
}

/**
 * `smithers up … | head -1`: a reader that goes away is not a failure of the command, also
 * when a workflow's own code writes to process.stdout. The guard is set when a stream is
 * first used: creating it loads Node's streams, which the CLI's own output (print) does not.
 */
function ignoreClosedStdio() {
  for (const name of ["stdout", "stderr"]) {
    const own = Object.getOwnPropertyDescriptor(process, name);
    if (!own?.get || !own.configurable) continue;
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: own.enumerable,
      get() {
        Object.defineProperty(process, name, own);
        const stream = process[name];
        if (stream.listenerCount("error") === 0) {
          stream.on("error", (e) => {
            if (e?.code !== "EPIPE") throw e;
          });
        }
        return stream;
      },
    });
  }
}

/** SMITHERS_FORBID_SELF_APPROVAL=1: whoever started a run may not approve it. */
function forbidSelfApproval() {
  return /^(1|true|yes)$/i.test(process.env.SMITHERS_FORBID_SELF_APPROVAL ?? "");
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** `smithers ps`'s table. */
function runsTable(runs) {
  return table(["RUN", "WORKFLOW", "STATUS", "PENDING", "CREATED"], runs.map((r) => [r.runId, r.workflowName, r.status, String(r.pendingApprovals), r.createdAt]));
}

/**
 * "approved deploy in run r1 by alice"; a review names its round once it has had several:
 * "pushed-back metrics (round 1) …", "approved check (iteration 2, round 3) …"; then the
 * inputs sent, if any.
 */
function decisionLines(id, recorded) {
  const where = [];
  if (recorded.iteration) where.push(`iteration ${recorded.iteration}`);
  if (recorded.kind === "review" && (recorded.round > 1 || recorded.status === "pushed-back")) where.push(`round ${recorded.round}`);
  const q = recorded.quorum;
  const lines = [
    q && !q.decided
      ? `vote recorded on ${recorded.nodeId}${where.length ? ` (${where.join(", ")})` : ""} in run ${id} by ${recorded.decidedBy ?? "?"}: ${q.approvals.length} of ${q.needed} approvals`
      : `${recorded.status} ${recorded.nodeId}${where.length ? ` (${where.join(", ")})` : ""} in run ${id} by ${recorded.decidedBy ?? "?"}`,
  ];
  if (q) {
    const parts = [`approved by ${q.approvals.join(", ") || "nobody yet"}`];
    if (q.denials.length) parts.push(`denied by ${q.denials.join(", ")}`);
    if (q.vetoedBy) parts.push(`vetoed by ${q.vetoedBy}`);
    lines.push(`  quorum: ${parts.join("; ")} (${q.needed} needed)`);
  }
  const sent = Object.entries(recorded.inputs ?? {});
  if (sent.length) lines.push(`  inputs: ${sent.map(([k, val]) => `${k}=${val}`).join(", ")}`);
  return lines;
}

/** What a <HumanTask> answer that did not fit its schema prints: --json, else stderr and stdout lines. */
function refusedAnswerText(recorded) {
  const { attempt, maxAttempts, error, nodeId } = recorded;
  const json = JSON.stringify({ ok: false, error: { ...error, details: { nodeId, attempt, maxAttempts } }, ...recorded }, null, 2);
  const left = maxAttempts - attempt;
  const stdout = [
    left > 0
      ? `answer ${attempt} of ${maxAttempts} for ${nodeId} refused; it waits for another answer (${left} left)`
      : `answer ${attempt} of ${maxAttempts} for ${nodeId} refused; no attempts left: the task failed`,
    `run ${recorded.runId}: ${recorded.runStatus}`,
  ];
  return { json, stderr: `smithers: ${error.code}: ${error.message}`, stdout };
}

/** The line telling how to resume a run a decision did not resume. */
const notResumedLine = (id, dbPath) => `not resumed; run: npx smithers resume ${id}${dbArg(dbPath)}`;

module.exports = {
  COMMON,
  DECIDE,
  PS,
  dbArg,
  decisionLines,
  findDbPath,
  forbidSelfApproval,
  ignoreClosedStdio,
  isTerminal,
  notResumedLine,
  osUser,
  print,
  printErr,
  printRaw,
  refusedAnswerText,
  runsTable,
  table,
};
