// The short path of the `smithers` CLI, for the operator commands that only record or read:
// `approve`/`deny --no-resume` and `ps` (not `reject`, `push-back` or `--input`: those go to
// the full CLI). It loads the native binding and nothing else of the package (no module graph
// of the full CLI, no Node API, no renderer), which is most of what these commands cost over
// Node's own start (bench/README.md).
//
// It handles only the plain success path, and prints exactly what the full CLI (main.js) prints.
// For anything else it returns null and bin/smithers.js runs the full CLI: a flag it does not
// know, --help, a value the full CLI would refuse, no database found, or any error from the
// engine (an engine error changes nothing in the database, so the full CLI meets the same error
// and reports it in its own words). SMITHERS_CLI_FULL=1 turns the short path off.
// tests/cli-fast.test.js checks that both paths print the same.
"use strict";
// CommonJS, like bin/smithers.js: loading it costs a synchronous read, where an ES module goes
// through the ESM loader.
const { existsSync, writeSync } = require("node:fs");
const { userInfo } = require("node:os");
const { dirname, isAbsolute, join, relative, resolve } = require("node:path");
const { parseArgs } = require("node:util");

const COMMON = {
  db: { type: "string" },
  json: { type: "boolean", default: false },
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
  "no-resume": { type: "boolean", default: false },
  force: { type: "boolean", default: false },
};
const PS = { ...COMMON, status: { type: "string" }, limit: { type: "string" } };

/**
 * Runs the command if the short path covers it, and returns its exit code; else null.
 * @param {string[]} argv
 * @returns {number | null}
 */
function fast(argv) {
  if (process.env.SMITHERS_CLI_FULL) return null;
  const [name, ...rest] = argv;
  if (name === "approve" || name === "deny") return decide(name, rest);
  if (name === "ps") return ps(rest);
  return null;
}

function parse(rest, options) {
  try {
    return parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch {
    return null;
  }
}

/**
 * The native binding. The addon built next to this package is loaded directly: napi-rs's
 * loader (binding.cjs) works out the platform first, which costs a few milliseconds; it is
 * the fallback for everything else (other platforms, an addon from a platform package,
 * NAPI_RS_NATIVE_LIBRARY_PATH).
 */
function binding() {
  if (process.platform === "linux" && process.arch === "x64" && !process.env.NAPI_RS_NATIVE_LIBRARY_PATH) {
    try {
      return require("../../smithers.linux-x64-gnu.node");
    } catch {}
  }
  return require("../binding-load.cjs").loadBinding();
}

/**
 * The native engine on an existing `dbPath` (read only for `ps`), or null when it cannot open
 * (the full CLI reports why: DB_NOT_FOUND, SCHEMA_TOO_NEW, …).
 */
function open(dbPath, readOnly) {
  try {
    return new (binding().Engine)(dbPath, readOnly ? { readOnly: true } : { mustExist: true });
  } catch {
    return null;
  }
}

/**
 * console.log without process.stdout: creating that stream costs 4-6 ms, more than the
 * rest of the command. Writes to fd 1 as the stream does for files and pipes (synchronously);
 * a reader that went away (`smithers ps | head -1`) is not a failure, as in the full CLI.
 */
function print(text) {
  const buf = Buffer.from(`${text}\n`);
  let at = 0;
  while (at < buf.length) {
    try {
      at += writeSync(1, buf, at);
    } catch (e) {
      if (e?.code === "EPIPE") return;
      if (e?.code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // a full non-blocking pipe: wait 1 ms
    }
  }
}

/** console.error's counterpart of print (fd 2). */
function printErr(text) {
  try {
    writeSync(2, `${text}\n`);
  } catch {
    // stderr closed: nothing to tell
  }
}

/** One native call: its value, or undefined on an engine error. */
function call(engine, method, ...args) {
  try {
    return engine[method](...args);
  } catch {
    return undefined;
  }
}

function decide(kind, rest) {
  const args = parse(rest, DECIDE);
  if (!args) return null;
  const v = args.values;
  const [id, positionalNode, extra] = args.positionals;
  if (!v["no-resume"] || !id || extra !== undefined) return null;
  if (positionalNode !== undefined && v.node !== undefined && v.node !== positionalNode) return null;
  const nodeId = positionalNode ?? v.node;
  let iteration;
  if (v.iteration !== undefined) {
    iteration = Number(v.iteration);
    if (!Number.isInteger(iteration) || iteration < 0) return null;
  }
  let decision;
  if (v.decision !== undefined) {
    try {
      decision = JSON.parse(v.decision);
    } catch {
      return null;
    }
  }
  const dbPath = findDb(v);
  if (dbPath === null) return null;
  const engine = open(dbPath, false);
  if (engine === null) return null;
  const decidedBy = v.by ?? process.env.SMITHERS_USER ?? osUser();
  let recorded;
  try {
    // The request SmithersEngine sends (engine.js #decide) for what main.js passes it.
    const request = { runId: id, nodeId, iteration, note: v.note ?? v.reason, decidedBy, scopes: v.scope ?? [], decisionJson: decision === undefined ? undefined : JSON.stringify(decision),
      reason: kind === "deny" ? v.reason : undefined, forbidStarter: /^(1|true|yes)$/i.test(process.env.SMITHERS_FORBID_SELF_APPROVAL ?? "") };
    recorded = call(engine, kind, request);
  } finally {
    if (recorded === undefined) engine.close();
  }
  if (recorded === undefined) return null;
  if (recorded.status === "invalid") {
    // A <HumanTask> answer that does not fit its schema (as main.js refusedAnswer).
    const { attempt, maxAttempts, error } = recorded;
    const left = maxAttempts - attempt;
    if (v.json) {
      print(JSON.stringify({ ok: false, error: { ...error, details: { nodeId: recorded.nodeId, attempt, maxAttempts } }, ...recorded }, null, 2));
    } else {
      printErr(`smithers: ${error.code}: ${error.message}`);
      print(
        left > 0
          ? `answer ${attempt} of ${maxAttempts} for ${recorded.nodeId} refused; it waits for another answer (${left} left)`
          : `answer ${attempt} of ${maxAttempts} for ${recorded.nodeId} refused; no attempts left: the task failed`,
      );
      print(`run ${id}: ${recorded.runStatus}`);
      if (recorded.needsResume) print(`not resumed; run: npx smithers resume ${id}${dbArg(dbPath)}`);
    }
    engine.close();
    return 1;
  }
  if (v.json) {
    print(JSON.stringify({ ok: true, ...recorded, run: null, pendingApprovals: [] }, null, 2));
  } else {
    const where = [];
    if (recorded.iteration) where.push(`iteration ${recorded.iteration}`);
    if (recorded.kind === "review" && (recorded.round > 1 || recorded.status === "pushed-back")) where.push(`round ${recorded.round}`);
    print(`${recorded.status} ${recorded.nodeId}${where.length ? ` (${where.join(", ")})` : ""} in run ${id} by ${recorded.decidedBy ?? "?"}`);
    const sent = Object.entries(recorded.inputs ?? {});
    if (sent.length) print(`  inputs: ${sent.map(([k, val]) => `${k}=${val}`).join(", ")}`);
    print(`run ${id}: ${recorded.runStatus}`);
    if (recorded.owner) {
      print(`run ${id} is driven by ${recorded.owner}; it picks the decision up`);
    } else if (recorded.needsResume) {
      print(`not resumed; run: npx smithers resume ${id}${dbArg(dbPath)}`);
    }
  }
  engine.close();
  return 0;
}

function ps(rest) {
  const args = parse(rest, PS);
  if (!args || args.positionals.length > 0) return null;
  const v = args.values;
  const limit = v.limit === undefined ? 50 : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) return null;
  const dbPath = findDb(v);
  if (dbPath === null) return null;
  const engine = open(dbPath, true);
  if (engine === null) return null;
  // A status the core does not know is the full CLI's usage error.
  if (v.status !== undefined && !binding().contract().runStatuses.some((s) => s.status === v.status)) {
    engine.close();
    return null;
  }
  const runs = call(engine, "listRuns", { status: v.status, limit });
  engine.close();
  if (runs === undefined) return null;
  if (v.json) {
    print(JSON.stringify({ ok: true, runs }, null, 2));
  } else if (runs.length === 0) {
    print("no runs");
  } else {
    print(table(["RUN", "WORKFLOW", "STATUS", "PENDING", "CREATED"], runs.map((r) => [r.runId, r.workflowName, r.status, String(r.pendingApprovals), r.createdAt])));
  }
  return 0;
}

// The helpers below repeat main.js's, so that this path loads nothing of it.

/** --db, else $SMITHERS_DB, else the nearest smithers.db from the working directory up; else null. */
function findDb(values) {
  if (values.db) return resolve(values.db);
  if (process.env.SMITHERS_DB) return resolve(process.env.SMITHERS_DB);
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    const candidate = join(dir, "smithers.db");
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

/** ` --db FILE` when a command typed here without --db would not find `dbPath`. */
function dbArg(dbPath) {
  if (findDb({}) === dbPath) return "";
  const rel = relative(process.cwd(), dbPath);
  const shown = rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : dbPath;
  return ` --db ${/^[A-Za-z0-9_./:@%+=,-]+$/.test(shown) ? shown : `'${shown.replaceAll("'", `'\\''`)}'`}`;
}

function osUser() {
  if (process.env.USER || process.env.USERNAME) return process.env.USER || process.env.USERNAME;
  try {
    return userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

module.exports = { fast };
