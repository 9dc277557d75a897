// The `smithers` CLI. Exit codes (as Smithers): 0 finished, 3 waiting, 2 cancelled,
// 1 failed, 4 usage or lookup errors.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SmithersError } from "../errors.js";
import { LOOKUP_CODES } from "../native.js";

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
    usage: "smithers up <workflow.tsx> [--input JSON] [--run-id ID] [--resume] [--force] [--db FILE] [--json]",
    about: "Start a run of a workflow file and drive it until it finishes, fails, or waits at an approval.",
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

export async function main(argv) {
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
  return LOOKUP_CODES.has(code) ? 4 : 1;
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
  const workflow = await loadWorkflow(path);
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
  const result = await engine.resume(id, { force: args.values.force });
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
    if (pending.length > 0) {
      const node = pending.length > 1 ? ` --node ${pending[0].nodeId}` : "";
      console.log(`  approve: npx smithers approve ${result.runId}${node}`);
      console.log(`  deny:    npx smithers deny ${result.runId}${node}`);
    }
  }
  engine.close();
  return EXIT[result.status] ?? 1;
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
  let run = outcome.done ? await outcome.done : null;
  const { done: _done, ...recorded } = outcome;
  if (run?.owner) {
    // Another live process claimed the run after our decision: it picks the decision up.
    recorded.owner = run.owner;
    recorded.needsResume = false;
    run = null;
  }
  const pending = run?.status === "waiting-approval" ? engine.pendingApprovals({ runId: id }) : [];
  if (v.json) {
    console.log(JSON.stringify({ ok: true, ...recorded, run, pendingApprovals: pending }, null, 2));
  } else {
    console.log(`${recorded.status} ${recorded.nodeId}${recorded.iteration ? ` (iteration ${recorded.iteration})` : ""} in run ${id} by ${recorded.decidedBy ?? "?"}`);
    if (run) {
      console.log(`run ${id}: ${run.status}${run.error ? ` (${run.error.code}: ${run.error.message})` : ""}`);
      for (const a of pending) console.log(`  waiting for approval: ${a.nodeId} — ${a.title ?? ""}`);
    } else if (recorded.owner) {
      console.log(`run ${id} is driven by ${recorded.owner}; it picks the decision up`);
    } else if (recorded.needsResume) {
      console.log(`not resumed; run: npx smithers resume ${id}`);
    }
  }
  engine.close();
  return run ? (EXIT[run.status] ?? 1) : 0;
}

function osUser() {
  try {
    return process.env.USER || process.env.USERNAME || undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- views

async function ps(args) {
  const v = args.values;
  const limit = v.limit === undefined ? 50 : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) throw usage("--limit must be a whole number ≥ 1", "ps");
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

/** What blocks a run, and the command that unblocks it. */
export function diagnose(info) {
  const r = info.run;
  const pending = info.approvals.filter((a) => a.status === "requested");
  const blockers = [];
  if (r.status === "waiting-approval" || pending.length > 0) {
    for (const a of pending) {
      const sel = pending.length > 1 ? ` --node ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}` : "";
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
    blockers.push({ kind: "resume", reason: "No process drives this run (it was interrupted, or a decision was recorded with --no-resume)", unblocker: `npx smithers resume ${r.runId}` });
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
  const report = diagnose(engine.inspect(id));
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
