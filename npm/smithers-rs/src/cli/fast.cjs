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
// through the ESM loader. What it prints, and how, comes from common.cjs, which main.js prints
// with too.
const { parseArgs } = require("node:util");
const { DECIDE, PS, decisionLines, findDbPath, forbidSelfApproval, notResumedLine, osUser, print, printErr, refusedAnswerText, runsTable } =
  require("./common.cjs");
const { tracesConfigured } = require("../telemetry/env.cjs");

/** The options the short path takes: the full CLI's, but --help and --input (theirs to handle). */
const shortPath = ({ help, input, ...options }) => options;
const FAST_DECIDE = shortPath(DECIDE);
const FAST_PS = shortPath(PS);

/**
 * Runs the command if the short path covers it, and returns its exit code; else null.
 * @param {string[]} argv
 * @returns {number | null}
 */
function fast(argv) {
  if (process.env.SMITHERS_CLI_FULL) return null;
  const [name, ...rest] = argv;
  if (name === "approve" || name === "deny") return tracesConfigured(process.env) ? null : decide(name, rest);
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

/** One native call: its value, or undefined on an engine error. */
function call(engine, method, ...args) {
  try {
    return engine[method](...args);
  } catch {
    return undefined;
  }
}

function decide(kind, rest) {
  const args = parse(rest, FAST_DECIDE);
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
  const dbPath = findDbPath(v);
  if (dbPath === null) return null;
  const engine = open(dbPath, false);
  if (engine === null) return null;
  const decidedBy = v.by ?? process.env.SMITHERS_USER ?? osUser();
  let recorded;
  try {
    // The request SmithersEngine sends (engine.js #decide) for what main.js passes it.
    const request = { runId: id, nodeId, iteration, note: v.note ?? v.reason, decidedBy, scopes: v.scope ?? [], decisionJson: decision === undefined ? undefined : JSON.stringify(decision),
      reason: kind === "deny" ? v.reason : undefined, forbidStarter: forbidSelfApproval(), expectDigest: v["expect-digest"] };
    recorded = call(engine, kind, request);
  } finally {
    if (recorded === undefined) engine.close();
  }
  if (recorded === undefined) return null;
  if (recorded.status === "invalid") {
    // A <HumanTask> answer that does not fit its schema (as main.js refusedAnswer).
    const text = refusedAnswerText(recorded);
    if (v.json) {
      print(text.json);
    } else {
      printErr(text.stderr);
      for (const line of text.stdout) print(line);
      if (recorded.needsResume) print(notResumedLine(id, dbPath));
    }
    engine.close();
    return 1;
  }
  if (v.json) {
    print(JSON.stringify({ ok: true, ...recorded, run: null, pendingApprovals: [] }, null, 2));
  } else {
    for (const line of decisionLines(id, recorded)) print(line);
    print(`run ${id}: ${recorded.runStatus}`);
    if (recorded.owner) {
      print(`run ${id} is driven by ${recorded.owner}; it picks the decision up`);
    } else if (recorded.needsResume) {
      print(notResumedLine(id, dbPath));
    }
  }
  engine.close();
  return 0;
}

function ps(rest) {
  const args = parse(rest, FAST_PS);
  if (!args || args.positionals.length > 0) return null;
  const v = args.values;
  const limit = v.limit === undefined ? 50 : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) return null;
  const dbPath = findDbPath(v);
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
    print(runsTable(runs));
  }
  return 0;
}

module.exports = { fast };
