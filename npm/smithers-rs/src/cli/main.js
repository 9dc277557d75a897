// The `smithers` CLI. Exit codes (as Smithers): 0 finished, 3 waiting, 2 cancelled,
// 1 failed, 4 usage or lookup errors.
import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, extname, isAbsolute, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SmithersError } from "../errors.js";
import { LOOKUP_CODES } from "../native.js";

const RUN_STATUSES = ["running", "waiting-approval", "waiting-timer", "finished", "failed", "cancelled"];
// The core's rule for run ids (engine.rs check_run_id).
const RUN_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const EXIT = { finished: 0, "waiting-approval": 3, "waiting-timer": 3, cancelled: 2, failed: 1, running: 1 };

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
  "no-resume": { type: "boolean", default: false },
  force: { type: "boolean", default: false },
};

const COMMANDS = {
  up: {
    usage: "smithers up <workflow.tsx|workflow.toon> [--input JSON] [--run-id ID] [--resume] [--force] [--db FILE] [--json]",
    about: "Start a run of a workflow file (.tsx/.ts/.jsx/.js or .toon) and drive it until it finishes, fails, or waits at an approval.",
    details: [
      "--input JSON    the run's input (default {})",
      "--run-id ID     use this run id (default: generated)",
      "--resume        resume the run named by --run-id instead of starting one",
      "--force         with --resume: take the run over even if another live process drives it",
      "--db FILE       database (default: $SMITHERS_DB, the workflow's dbPath, or ./smithers.db)",
    ],
    options: { ...COMMON, input: { type: "string" }, "run-id": { type: "string" }, resume: { type: "boolean", default: false }, force: { type: "boolean", default: false } },
    run: up,
  },
  resume: {
    usage: "smithers resume <runId> [--force] [--db FILE] [--json]",
    about: "Resume a run from where it stopped (after a crash, or after a decision recorded with --no-resume).",
    details: ["--force   take the run over even if another live process drives it"],
    options: { ...COMMON, force: { type: "boolean", default: false } },
    run: resumeCmd,
  },
  approve: {
    usage: "smithers approve <runId> [--node ID] [--iteration N] [--note TEXT] [--by USER] [--no-resume] [--json]",
    about: "Approve a pending gate, then resume the run to its next wait or its end.",
    details: [
      "--node, -n ID     the gate (found automatically when exactly one is pending)",
      "--iteration N     the loop iteration of the gate (found automatically)",
      "--note TEXT       a note stored with the decision",
      "--by USER         who decides (default: $SMITHERS_USER, else the OS user)",
      "--scope S         a scope the decider holds (repeatable; checked against allowedScopes)",
      "--decision JSON   payload for select/rank gates, e.g. '{\"selected\":\"canary\"}'",
      "--no-resume       only record the decision",
      "Exit code: the run's status after resuming (0 finished, 3 waiting, 1 failed); 0 with --no-resume.",
    ],
    options: DECIDE,
    run: (args) => decide("approve", args),
  },
  deny: {
    usage: "smithers deny <runId> [--node ID] [--iteration N] [--note TEXT | --reason TEXT] [--by USER] [--no-resume] [--json]",
    about: "Deny a pending gate, then resume the run (onDeny decides: fail the run, continue, or skip dependents).",
    details: ["Options as for approve; --reason is another name for --note."],
    options: DECIDE,
    run: (args) => decide("deny", args),
  },
  ps: {
    usage: "smithers ps [--status STATUS] [--limit N] [--db FILE] [--json]",
    about: "List runs, newest first.",
    details: ["--status S   running | waiting-approval | finished | failed | cancelled"],
    options: { ...COMMON, status: { type: "string" }, limit: { type: "string" } },
    run: ps,
  },
  inspect: {
    usage: "smithers inspect <runId> [--db FILE] [--json]",
    about: "Show a run: its nodes and their states, pending approvals, outputs.",
    details: [],
    options: COMMON,
    run: inspect,
  },
  why: {
    usage: "smithers why <runId> [--db FILE] [--json]",
    about: "Say what blocks a run and the command that unblocks it.",
    details: [],
    options: COMMON,
    run: why,
  },
  cancel: {
    usage: "smithers cancel <runId> [--db FILE] [--json]",
    about: "Cancel a run: open nodes are cancelled and pending approvals withdrawn.",
    details: [],
    options: COMMON,
    run: cancel,
  },
};
COMMANDS.run = COMMANDS.up;

function mainHelp() {
  const lines = [
    "smithers — durable workflows with human approval gates (smithers-rs)",
    "",
    "Usage: smithers <command> [options]",
    "",
    ...Object.entries(COMMANDS)
      .filter(([name]) => name !== "run")
      .map(([name, c]) => `  ${name.padEnd(9)} ${c.about}`),
    "",
    "Every command takes --help, --json and --db FILE. `run` is another name for `up`.",
    "Exit codes: 0 finished, 3 waiting for approval, 2 cancelled, 1 failed, 4 usage or lookup error.",
  ];
  return lines.join("\n");
}

function commandHelp(name, c) {
  return [c.about, "", `Usage: ${c.usage}`, "", ...c.details.map((d) => `  ${d}`), "  --db FILE   database file", "  --json      machine-readable output"]
    .join("\n");
}

/** `smithers up … | head -1`: a reader that goes away is not a failure of the command. */
function ignoreClosedStdout() {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listenerCount("error") > 0) continue;
    stream.on("error", (e) => {
      if (e?.code !== "EPIPE") throw e;
    });
  }
}

export async function main(argv) {
  ignoreClosedStdout();
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(mainHelp());
    return name ? 0 : 4;
  }
  if (name === "--version" || name === "-v") {
    const { engineVersion } = await import("../native.js");
    console.log(engineVersion());
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`smithers: unknown command ${JSON.stringify(name)}\n\n${mainHelp()}`);
    return 4;
  }
  let args;
  try {
    args = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
  } catch (e) {
    return report(new SmithersError("USAGE", `${e.message}\nUsage: ${command.usage}`), rest.includes("--json"));
  }
  if (args.values.help) {
    console.log(commandHelp(name, command));
    return 0;
  }
  try {
    return await command.run(args);
  } catch (e) {
    return report(e, args.values.json);
  }
}

function report(e, json) {
  const code = e?.code ?? "INTERNAL";
  const message = String(e?.message ?? e);
  if (json) {
    console.log(JSON.stringify({ ok: false, error: { code, message, details: e?.details ?? {} } }, null, 2));
  } else {
    console.error(`smithers: ${code}: ${message}`);
  }
  return e?.exitCode ?? (LOOKUP_CODES.has(code) ? 4 : 1);
}

function usage(message, command) {
  return new SmithersError("USAGE", `${message}\nUsage: ${COMMANDS[command].usage}`);
}

/** --db, else $SMITHERS_DB, else the nearest smithers.db from the working directory up. */
function findDb(values, { create = false } = {}) {
  if (values.db) return resolve(values.db);
  if (process.env.SMITHERS_DB) return resolve(process.env.SMITHERS_DB);
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    const candidate = join(dir, "smithers.db");
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  if (create) return resolve("smithers.db");
  throw new SmithersError("DB_NOT_FOUND", "no smithers.db found in this directory or above it; pass --db FILE");
}

/**
 * ` --db FILE` for the commands the CLI prints, when a command typed here without --db
 * would not find `dbPath` (a --db or workflow dbPath other than the nearest smithers.db).
 * With `{ up: true }`, for `smithers up`, which defaults to $SMITHERS_DB or ./smithers.db.
 */
function dbArg(dbPath, { up = false } = {}) {
  let found = null;
  if (up) {
    found = resolve(process.env.SMITHERS_DB ?? "smithers.db");
  } else {
    try {
      found = findDb({});
    } catch {
      // none found: the command needs --db
    }
  }
  if (found === dbPath) return "";
  const rel = relative(process.cwd(), dbPath);
  const shown = rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : dbPath;
  return ` --db ${shellQuote(shown)}`;
}

function shellQuote(word) {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

async function openEngine(dbPath) {
  const { SmithersEngine } = await import("../engine.js");
  return new SmithersEngine({ dbPath });
}

function runId(args, command) {
  const [id, extra] = args.positionals;
  if (!id) throw usage("a run id is required", command);
  if (extra) throw usage(`unexpected argument ${JSON.stringify(extra)}`, command);
  return id;
}

// ---------------------------------------------------------------- up / resume

async function up(args) {
  const [file, extra] = args.positionals;
  if (!file) throw usage("a workflow file is required", "up");
  if (extra) throw usage(`unexpected argument ${JSON.stringify(extra)}`, "up");
  const id = args.values["run-id"];
  if (id !== undefined && !RUN_ID.test(id)) {
    throw usage(`--run-id ${JSON.stringify(id)} must be 1-128 characters of letters, digits and _ . : -`, "up");
  }
  const path = resolve(file);
  if (!existsSync(path)) throw new SmithersError("WORKFLOW_NOT_FOUND", `no such workflow file: ${path}`);
  let input = {};
  if (args.values.input !== undefined) {
    try {
      input = JSON.parse(args.values.input);
    } catch (e) {
      throw usage(`--input is not valid JSON: ${e.message}`, "up");
    }
  }
  const { loadWorkflow } = await import("../loader/load.js");
  process.setSourceMapsEnabled?.(true);
  let workflow;
  try {
    workflow = await loadWorkflow(path);
  } catch (e) {
    // A malformed .toon file (TOON_PARSE, TOON_UNKNOWN_NEED, …) is the caller's input to
    // fix, like a usage error: exit 4, and nothing was written.
    if (extname(path) === ".toon" && e instanceof SmithersError) e.exitCode = 4;
    throw e;
  }
  const dbPath = args.values.db
    ? resolve(args.values.db)
    : process.env.SMITHERS_DB
      ? resolve(process.env.SMITHERS_DB)
      : resolve(workflow.dbPath ?? "smithers.db");
  const engine = await openEngine(dbPath);
  progress(engine, args.values.json);
  let result;
  if (args.values.resume) {
    if (!args.values["run-id"]) throw usage("--resume needs --run-id", "up");
    result = await engine.resume(args.values["run-id"], { workflow, force: args.values.force });
  } else {
    result = await engine.run(workflow, { input, runId: args.values["run-id"], workflowPath: path });
  }
  return finish(engine, result, args.values.json);
}

async function resumeCmd(args) {
  const id = runId(args, "resume");
  const engine = await openEngine(findDb(args.values));
  progress(engine, args.values.json);
  let result;
  try {
    result = await engine.resume(id, { force: args.values.force });
  } catch (e) {
    if (e?.code === "WORKFLOW_NOT_FOUND") e.message += `\n${resumeHint(id, e.code, engine.dbPath)}`;
    throw e;
  }
  return finish(engine, result, args.values.json);
}

/** Progress on stderr while a run is driven (not in --json mode). */
function progress(engine, json) {
  if (json || !process.stderr.isTTY) return;
  engine.on("*", (e) => {
    const where = e.nodeId ? ` ${e.nodeId}${e.iteration ? ` [${e.iteration}]` : ""}` : "";
    if (["NodeStarted", "NodeFinished", "NodeFailed", "ApprovalRequested", "NodeSkipped", "LoopIteration"].includes(e.type)) {
      process.stderr.write(`  ${e.type}${where}${e.error ? `: ${e.error.message}` : ""}\n`);
    }
  });
}

function finish(engine, result, json) {
  const pending = result.status === "waiting-approval" ? engine.pendingApprovals({ runId: result.runId }) : [];
  if (json) {
    console.log(JSON.stringify({ ok: result.status !== "failed", ...result, pendingApprovals: pending }, null, 2));
  } else {
    console.log(`run ${result.runId}: ${result.status}`);
    if (result.error) console.log(`  error: ${result.error.code}: ${result.error.message}`);
    for (const a of pending) {
      console.log(`  waiting for approval: ${a.nodeId}${a.iteration ? ` (iteration ${a.iteration})` : ""} — ${a.title ?? ""}`);
      if (a.summary) console.log(`    ${a.summary}`);
    }
    printDecisionCommands(result.runId, pending, dbArg(engine.dbPath));
  }
  engine.close();
  return EXIT[result.status] ?? 1;
}

/** The approve/deny commands of the pending gates: one pair per gate when several wait. */
function printDecisionCommands(runId, pending, db = "") {
  if (pending.length === 1) {
    console.log(`  approve: npx smithers approve ${runId}${db}`);
    console.log(`  deny:    npx smithers deny ${runId}${db}`);
    return;
  }
  for (const a of pending) {
    const sel = ` --node ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}${db}`;
    console.log(`  approve: npx smithers approve ${runId}${sel}`);
    console.log(`  deny:    npx smithers deny ${runId}${sel}`);
  }
}

// ---------------------------------------------------------------- decisions

async function decide(kind, args) {
  const id = runId(args, kind);
  const v = args.values;
  let iteration;
  if (v.iteration !== undefined) {
    iteration = Number(v.iteration);
    if (!Number.isInteger(iteration) || iteration < 0) throw usage("--iteration must be a whole number ≥ 0", kind);
  }
  let decision;
  if (v.decision !== undefined) {
    try {
      decision = JSON.parse(v.decision);
    } catch (e) {
      throw usage(`--decision is not valid JSON: ${e.message}`, kind);
    }
  }
  const decidedBy = v.by ?? process.env.SMITHERS_USER ?? osUser();
  const engine = await openEngine(findDb(v));
  const outcome = await engine[kind](id, {
    nodeId: v.node,
    iteration,
    note: v.note ?? v.reason,
    decidedBy,
    scopes: v.scope ?? [],
    decision,
    resume: !v["no-resume"],
  });
  const { done, ...recorded } = outcome;
  // The decision is committed by now: if resuming fails (say the workflow file is gone),
  // say so, rather than an error that reads as if the decision had not been taken.
  let run = null;
  let resumeError = null;
  if (done) {
    try {
      run = await done;
    } catch (e) {
      resumeError = { code: e?.code ?? "INTERNAL", message: String(e?.message ?? e), details: e?.details ?? {} };
    }
  }
  if (run?.owner) {
    // Another live process claimed the run after our decision: it picks the decision up.
    recorded.owner = run.owner;
    recorded.needsResume = false;
    run = null;
  }
  const pending = run?.status === "waiting-approval" ? engine.pendingApprovals({ runId: id }) : [];
  if (v.json) {
    const failed = resumeError ? { error: resumeError, runStatus: engine.getRun(id).status } : {};
    console.log(JSON.stringify({ ok: !resumeError, ...recorded, run, pendingApprovals: pending, ...failed }, null, 2));
  } else {
    console.log(`${recorded.status} ${recorded.nodeId}${recorded.iteration ? ` (iteration ${recorded.iteration})` : ""} in run ${id} by ${recorded.decidedBy ?? "?"}`);
    if (resumeError) {
      const status = engine.getRun(id).status;
      console.log(`run ${id}: ${status}`);
      console.error(`smithers: ${resumeError.code}: the decision is recorded, but the run could not be resumed: ${resumeError.message}`);
      if (status === "running") console.error(resumeHint(id, resumeError.code, engine.dbPath));
    } else if (run) {
      console.log(`run ${id}: ${run.status}${run.error ? ` (${run.error.code}: ${run.error.message})` : ""}`);
      for (const a of pending) console.log(`  waiting for approval: ${a.nodeId} — ${a.title ?? ""}`);
      printDecisionCommands(id, pending, dbArg(engine.dbPath));
    } else if (recorded.owner) {
      console.log(`run ${id} is driven by ${recorded.owner}; it picks the decision up`);
    } else if (recorded.needsResume) {
      console.log(`not resumed; run: npx smithers resume ${id}${dbArg(engine.dbPath)}`);
    }
  }
  engine.close();
  if (resumeError) return LOOKUP_CODES.has(resumeError.code) ? 4 : 1;
  return run ? (EXIT[run.status] ?? 1) : 0;
}

function resumeHint(id, code, dbPath) {
  return code === "WORKFLOW_NOT_FOUND"
    ? `  resume it with the workflow file: npx smithers up <workflow.tsx> --run-id ${id} --resume${dbArg(dbPath, { up: true })}`
    : `  resume it with: npx smithers resume ${id}${dbArg(dbPath)}`;
}

/** $USER / $USERNAME, else the account the process runs as (containers and CI often set neither). */
function osUser() {
  if (process.env.USER || process.env.USERNAME) return process.env.USER || process.env.USERNAME;
  try {
    return userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- views

async function ps(args) {
  const v = args.values;
  const limit = v.limit === undefined ? 50 : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) throw usage("--limit must be a whole number ≥ 1", "ps");
  // The core filters on the string as given: a typo would list nothing, and exit 0.
  if (v.status !== undefined && !RUN_STATUSES.includes(v.status)) {
    throw usage(`--status must be one of ${RUN_STATUSES.join(", ")}; got ${JSON.stringify(v.status)}`, "ps");
  }
  const engine = await openEngine(findDb(v));
  const runs = engine.listRuns({ status: v.status, limit });
  if (v.json) {
    console.log(JSON.stringify({ ok: true, runs }, null, 2));
  } else if (runs.length === 0) {
    console.log("no runs");
  } else {
    console.log(table(["RUN", "WORKFLOW", "STATUS", "PENDING", "CREATED"], runs.map((r) => [r.runId, r.workflowName, r.status, String(r.pendingApprovals), r.createdAt])));
  }
  engine.close();
  return 0;
}

async function inspect(args) {
  const id = runId(args, "inspect");
  const engine = await openEngine(findDb(args.values));
  const info = engine.inspect(id);
  engine.close();
  if (args.values.json) {
    console.log(JSON.stringify({ ok: true, ...info }, null, 2));
    return 0;
  }
  const r = info.run;
  console.log(`run ${r.runId} (${r.workflowName}): ${r.status}`);
  if (r.workflowPath) console.log(`  workflow: ${r.workflowPath}`);
  console.log(`  created ${r.createdAt}, updated ${r.updatedAt}${r.finishedAt ? `, ended ${r.finishedAt}` : ""}`);
  if (r.error) console.log(`  error: ${r.error.code}: ${r.error.message}`);
  console.log("\nnodes:");
  console.log(table(["NODE", "ITER", "STATE", "OUTPUT", "ATTEMPTS", "NOTE"], info.nodes.map((n) => [n.nodeId, String(n.iteration), n.state, n.output, String(n.attempts), n.error?.message ?? n.skipReason ?? ""])));
  if (info.approvals.length > 0) {
    console.log("\napprovals:");
    for (const a of info.approvals) {
      const who = a.decidedBy ? ` by ${a.decidedBy} at ${a.decidedAt}` : ` since ${a.requestedAt}`;
      console.log(`  ${a.nodeId} [${a.iteration}] ${a.status}${who}: ${a.title ?? ""}${a.summary ? ` — ${a.summary}` : ""}${a.note ? ` (note: ${a.note})` : ""}`);
    }
  }
  if (info.outputs.length > 0) {
    console.log("\noutputs:");
    for (const o of info.outputs) console.log(`  ${o.table} ${o.nodeId} [${o.iteration}]: ${JSON.stringify(o.value)}`);
  }
  return 0;
}

/**
 * What blocks a run, and the command that unblocks it.
 * @param {any} info an `inspect` answer
 * @param {string} [db] appended to the commands (` --db FILE` when they need it)
 */
export function diagnose(info, db = "") {
  const r = info.run;
  const pending = info.approvals.filter((a) => a.status === "requested");
  const blockers = [];
  if (r.status === "waiting-approval" || pending.length > 0) {
    for (const a of pending) {
      const sel = (pending.length > 1 ? ` --node ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}` : "") + db;
      blockers.push({
        kind: "approval",
        nodeId: a.nodeId,
        iteration: a.iteration,
        reason: `Approval requested — no decision yet: ${a.title ?? a.nodeId}`,
        waitingSince: a.requestedAtMs,
        unblocker: `npx smithers approve ${r.runId}${sel}`,
        deny: `npx smithers deny ${r.runId}${sel}`,
      });
    }
  } else if (r.status === "running" && !r.owner) {
    blockers.push({ kind: "resume", reason: "No process drives this run (it was interrupted, or a decision was recorded with --no-resume)", unblocker: `npx smithers resume ${r.runId}${db}` });
  } else if (r.status === "running" && r.ownerLiveness === "dead") {
    // kill -9, a crash: the owner is recorded but its process is gone; resume takes over.
    blockers.push({ kind: "resume", reason: `The process that drove this run (${r.owner}) is gone (killed or crashed)`, unblocker: `npx smithers resume ${r.runId}${db}` });
  } else if (r.status === "running") {
    blockers.push({ kind: "running", reason: `Being driven by ${r.owner}`, unblocker: null });
  }
  const summary =
    r.status === "finished" ? "The run finished." :
    r.status === "failed" ? `The run failed${r.error ? `: ${r.error.code}: ${r.error.message}` : "."}` :
    r.status === "cancelled" ? "The run was cancelled." :
    blockers.length > 0 ? blockers.map((b) => b.reason).join("; ") : `The run is ${r.status}.`;
  return { runId: r.runId, status: r.status, summary, blockers };
}

async function why(args) {
  const id = runId(args, "why");
  const engine = await openEngine(findDb(args.values));
  const report = diagnose(engine.inspect(id), dbArg(engine.dbPath));
  engine.close();
  if (args.values.json) {
    console.log(JSON.stringify({ ok: true, ...report }, null, 2));
    return 0;
  }
  console.log(`run ${report.runId}: ${report.status}`);
  console.log(report.summary);
  for (const b of report.blockers) {
    if (b.kind === "approval") {
      console.log(`\n  ${b.nodeId}${b.iteration ? ` (iteration ${b.iteration})` : ""}: ${b.reason}`);
      console.log(`  Waiting since: ${new Date(b.waitingSince).toISOString()}`);
      console.log(`  Unblock: ${b.unblocker}`);
      console.log(`  Deny instead: ${b.deny}`);
    } else if (b.unblocker) {
      console.log(`  Unblock: ${b.unblocker}`);
    }
  }
  return 0;
}

async function cancel(args) {
  const id = runId(args, "cancel");
  const engine = await openEngine(findDb(args.values));
  const result = engine.cancel(id);
  engine.close();
  console.log(args.values.json ? JSON.stringify({ ok: true, ...result }, null, 2) : `run ${id}: ${result.status}`);
  return 0;
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
