// The `smithers` CLI. Exit codes (as Smithers): 0 finished, 3 waiting, 2 cancelled,
// 1 failed, 4 usage or lookup errors (including a decision whose --input can never fit the
// gate: MISSING_REQUIRED_INPUTS, UNDECLARED_INPUT, PUSH_BACK_UNSUPPORTED).
import { resolve } from "node:path";
import { isServerUrl, resolveDb, showDb } from "../database.cjs";
import { SmithersError, printable } from "../errors.js";
import { describeThrown, isSmithersError } from "../values.js";
import { tracesConfigured } from "../telemetry/env.cjs";

// Node's fs and util through getBuiltinModule, common.cjs through require: an ES import of a
// builtin builds its whole namespace (for node:fs that loads fs/promises and Node's streams),
// and one of a CommonJS file runs the CommonJS export lexer. Start-up: ARCHITECTURE.md.
const { existsSync } = process.getBuiltinModule("node:fs");
const { parseArgs } = process.getBuiltinModule("node:util");
const {
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
} = process.getBuiltinModule("node:module").createRequire(import.meta.url)("./common.cjs");

/**
 * The core's vocabulary (`contract.js`: statuses, exit codes, run ids), loaded when a command
 * needs it: it loads the native engine, which `--help` does not, and a CLI whose engine did
 * not load must still be able to say why.
 */
const vocabulary = () => import("../contract.js");

/**
 * Exit 4 (the core's error metadata, contract.rs): the command line names nothing that
 * exists, or asks what the named gate can never do (inputs it does not declare or lacks, a
 * push-back of a plain gate). The same command fixed by hand succeeds. State conflicts
 * (ALREADY_DECIDED, NOT_WAITING, RUN_REJECTED, FORBIDDEN) stay exit 1: the command was
 * right, the run said no. 1 as well when the engine itself did not load.
 */
async function exitFor(code) {
  try {
    return (await vocabulary()).errorMeta(code).exitCode;
  } catch {
    return 1;
  }
}

const COMMANDS = {
  up: {
    usage: "smithers up <workflow.tsx|.toon|dag.yaml> [--input JSON] [--run-id ID] [--by USER] [--resume [true|false|ID]] [--force] [--detach] [--live] [--db FILE] [--json] [-- NAME=VALUE …]",
    about: "Start a run of a workflow file (.tsx/.ts/.jsx/.js, .toon, or a Dagu DAG .yaml/.yml) and drive it until it finishes, fails, or waits at an approval.",
    details: [
      "--input JSON    the run's input (default {}); for a Dagu DAG, its params: {\"NAME\": \"value\"}",
      "-- NAME=VALUE   params after --, as Dagu takes them (merged into --input)",
      "--run-id ID     use this run id (default: generated)",
      "--by USER       who starts the run, recorded as its startedBy (default: $SMITHERS_USER, else the OS user)",
      "--resume        resume the run named by --run-id instead of starting one; Smithers' forms work too:",
      "                --resume true (false: start a run), --resume ID (= --resume --run-id ID).",
      "                A run of another workflow (another name) is refused with WORKFLOW_MISMATCH",
      "--force         with --resume: take the run over even if another live process drives it,",
      "                or resume it with this workflow even though it was started with another",
      "--detach        record the run and exit 0 without driving it: a `smithers worker` (or `smithers serve`)",
      "                on the same database drives it (prints the run id; see `smithers worker --help`)",
      "--db FILE|URL   database: a SQLite file or postgres://… (default: $SMITHERS_DB, the workflow's dbPath, or ./smithers.db)",
      "--live          show progress, command output and agents' answers on stderr as the run goes, each",
      "                line prefixed by its node (the default when stderr is a terminal and --json is not given)",
      "SMITHERS_LOG=debug (or info, or smithers_core::decision=debug, …) logs what the engine decides, to",
      "stderr or SMITHERS_LOG_FILE; see README.md.",
    ],
    options: { ...COMMON, input: { type: "string" }, "run-id": { type: "string" }, by: { type: "string" }, resume: { type: "boolean", default: false }, force: { type: "boolean", default: false }, detach: { type: "boolean", default: false }, live: { type: "boolean", default: false } },
    run: up,
  },
  resume: {
    usage: "smithers resume <runId> [--force] [--live] [--db FILE] [--json]",
    about: "Resume a run from where it stopped (after a crash, or after a decision recorded with --no-resume).",
    details: ["--force   take the run over even if another live process drives it", "--live    progress, command output and agents' answers on stderr (default on a terminal)"],
    options: { ...COMMON, force: { type: "boolean", default: false }, live: { type: "boolean", default: false } },
    run: resumeCmd,
  },
  approve: {
    usage: "smithers approve <runId> [<nodeId> | --node ID] [--iteration N] [--input KEY=VALUE]… [--note TEXT] [--by USER] [--expect-digest D] [--no-resume] [--json]",
    about: "Approve a pending gate or reviewed step, then resume the run to its next wait or its end.",
    details: [
      "<nodeId>, --node ID the gate (found automatically when exactly one is pending)",
      "--iteration N       the loop iteration of the gate (found automatically)",
      "--input, -i K=V     an input the gate declares (repeatable); reaches every later task",
      "                    as an environment variable, and JS bodies as ctx.approvalInputs",
      "--note TEXT         a note stored with the decision",
      "--by USER           who decides (default: $SMITHERS_USER, else the OS user)",
      "--scope S           a scope the decider holds (repeatable; checked against allowedScopes)",
      "--decision JSON     payload for select/rank gates, e.g. '{\"selected\":\"canary\"}'",
      "On a gate with a quorum, each approve or deny is one person's vote (\"vote recorded …\"):",
      "the gate is decided by the vote that makes up the quorum, or a veto holder's denial; a",
      "second vote by the same person is refused (ALREADY_VOTED, exit 1).",
      "--expect-digest D   the gate's digest as inspect / why printed it: refused (STALE_VIEW,",
      "                    exit 1, nothing recorded) when the gate shows something else now",
      "                    (the step ran again, the gate was asked again). Without it: not checked",
      "--no-resume         only record the decision",
      "A <HumanTask> is approved with its answer, JSON valid for its output: --note '<json>',",
      "--decision '<json>', or --input FIELD=VALUE (typed by the schema). An answer that does not",
      "fit counts as an attempt (exit 1); the task waits for another until maxAttempts.",
      "SMITHERS_FORBID_SELF_APPROVAL=1 refuses an approve by whoever started the run (FORBIDDEN).",
      "Exit code: 0 once the decision is recorded, whatever the resumed run then does (its status",
      "is printed, and in --json as runStatus); 4 when the inputs do not fit the gate",
      "(MISSING_REQUIRED_INPUTS, UNDECLARED_INPUT) or nothing matches: nothing is recorded.",
    ],
    options: DECIDE,
    run: (args) => decide("approve", args),
  },
  signal: {
    usage: "smithers signal <runId> <event> [--data JSON] [--correlation-id ID] [--by USER] [--no-resume] [--json]",
    about: "Send an event to a run waiting at <WaitForEvent event> (or <Signal id>): its payload becomes that node's output, then the run resumes.",
    details: [
      "--data JSON           the payload (default {}); it must fit the output's schema, else it is refused",
      "                      (exit 1) and the run keeps waiting",
      "--correlation-id ID   only a wait with this correlationId",
      "--by USER             who sends it (default: signal)",
      "--no-resume           only record it",
      "Exit code: 0 once it is recorded; 4 when the run waits for no such event (NO_PENDING_APPROVALS).",
    ],
    options: { ...COMMON, data: { type: "string" }, "correlation-id": { type: "string" }, by: { type: "string" }, "no-resume": { type: "boolean", default: false } },
    run: signalCmd,
  },
  deny: {
    usage: "smithers deny <runId> [<nodeId> | --node ID] [--iteration N] [--reason TEXT] [--note TEXT] [--by USER] [--expect-digest D] [--no-resume] [--json]",
    about: "Deny a pending gate (its onDeny decides), or reject a reviewed step (the run fails), then resume.",
    details: [
      "Options as for approve (--expect-digest too), without --input. --reason says why (for a reviewed step it is",
      "shown as the rejection's reason; --note defaults to it).",
      "Rejecting a reviewed step fails the run (APPROVAL_REJECTED): the steps after it are",
      "cancelled, other waiting gates withdrawn, the workflow's onFailure handler runs, and",
      "nothing else in the run can be decided any more (RUN_REJECTED).",
      "Exit code: 0 once the denial is recorded, as for approve.",
    ],
    options: DECIDE,
    run: (args) => decide("deny", args),
  },
  reject: {
    usage: "smithers reject <runId> [<nodeId> | --node ID] [--iteration N] [--reason TEXT] [--by USER] [--no-resume] [--json]",
    about: "Another name for deny, the word for reviewed steps: reject the step, the run fails.",
    details: ["Options and exit codes as for deny."],
    options: DECIDE,
    run: (args) => decide("deny", args, "reject"),
  },
  "push-back": {
    usage: "smithers push-back <runId> [<nodeId> | --node ID] [--iteration N] [--input KEY=VALUE]… [--note TEXT] [--by USER] [--no-resume] [--json]",
    about: "Send a reviewed step back: it runs again with the inputs, then waits for review in its next round.",
    details: [
      "--node, -n ID       the reviewed step (found automatically when exactly one gate is pending)",
      "--input, -i K=V     new parameters for the step (repeatable; only names it declares)",
      "--note TEXT         feedback, kept in the step's review history",
      "--by USER           who sends it back (default: $SMITHERS_USER, else the OS user)",
      "--no-resume         only record the push-back",
      "The step sees its inputs as environment variables, and SMITHERS_PUSHBACK_ROUND (also",
      "as SMITHERS_PUSHBACK_ITERATION), SMITHERS_PUSHBACK (JSON with the history) and",
      "SMITHERS_PUSHBACK_PREVIOUS_STDOUT_FILE.",
      "Other waiting gates are not disturbed. Only steps with approval={{…}} can be sent back",
      "(PUSH_BACK_UNSUPPORTED, exit 4, otherwise).",
      "Exit code: 0 once the push-back is recorded (the run's status is printed).",
    ],
    options: DECIDE,
    run: (args) => decide("pushBack", args, "push-back"),
  },
  logs: {
    usage: "smithers logs <runId> [--node ID] [--iteration N] [--attempt N] [--stderr | --both] [--follow] [--db FILE] [--json]",
    about:
      "Print what a run's command tasks wrote (stdout, or stderr) and what its agent tasks answered, per attempt, oldest first.",
    details: [
      "--node, -n ID    only this task",
      "--iteration N    only this loop iteration",
      "--attempt N      only this attempt (retries and push-backs run a task again)",
      "--stderr         print stderr instead of stdout (a CLI agent's stderr)",
      "--both           print stdout and stderr; for agent tasks also the prompt and the follow-up",
      "--follow, -f     print what the tasks write as they write it, and each agent's answer when it",
      "                 comes, each line prefixed by its node, until the run ends (exit code: the run's,",
      "                 0 finished, 1 failed or rejected, 2 cancelled); a run that waits for approval is",
      "                 followed on",
      "--json           the attempts (node, iteration, attempt, state, exit code, log paths; an agent's prompt,",
      "                 answer, token usage) with their text",
    ],
    options: {
      ...COMMON,
      follow: { type: "boolean", short: "f", default: false },
      node: { type: "string", short: "n" },
      iteration: { type: "string" },
      attempt: { type: "string" },
      stderr: { type: "boolean", default: false },
      both: { type: "boolean", default: false },
    },
    run: logs,
  },
  events: {
    usage: "smithers events [--run ID] [--after N] [--follow] [--db FILE] [--json]",
    about: "Print the events of one run or of every run, oldest first; --follow keeps printing new ones.",
    details: [
      "--run ID       only this run's events (--after counts its events: seq)",
      "--after N      only events after N (default 0: all); without --run, N is the feed position (feedId)",
      "--follow, -f   keep printing events as they are committed, by any process, until the run ends",
      "               (with --run; exit code: the run's) or until interrupted (without --run)",
      "With --json, each event is one JSON object on a line of its own (NDJSON).",
    ],
    options: { ...COMMON, run: { type: "string" }, after: { type: "string" }, follow: { type: "boolean", short: "f", default: false } },
    run: events,
  },
  ps: {
    usage: "smithers ps [--status STATUS] [--limit N] [--db FILE] [--json]",
    about: "List runs, newest first.",
    details: ["--status S   running | waiting-approval | finished | failed | cancelled"],
    options: PS,
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
  deliveries: {
    usage: "smithers deliveries [--status STATUS] [--run ID] [--target NAME] [--limit N] [--db FILE] [--json] | smithers deliveries retry <deliveryId>",
    about: "List the webhook deliveries of smithers serve (newest first), or make a failed one due again.",
    details: [
      "--status S     pending | sending | delivered | failed",
      "--run ID       only deliveries about this run",
      "--target NAME  only deliveries to this webhook (its name in the serve configuration)",
      "--limit N      at most N (default 50)",
      "--body         with --json: the body each delivery sends",
      "retry ID       a failed delivery becomes pending again (attempts from 0); a running serve sends it",
    ],
    options: { ...COMMON, status: { type: "string" }, run: { type: "string" }, target: { type: "string" }, limit: { type: "string" }, body: { type: "boolean", default: false } },
    run: deliveries,
  },
  audit: {
    usage: "smithers audit verify [--db FILE] [--json] | smithers audit export --json [--after N] [--db FILE]",
    about: "Check the decision log's hash chain, or write the log for auditors.",
    details: [
      "Every decision and every vote on a quorum gate is appended to a hash-chained log in the",
      "decision's own transaction: each entry carries the SHA-256 of its content and of the entry",
      "before it (ARCHITECTURE.md, \"The decision log\").",
      "verify      checks every entry from the first to the head recorded with the log; exit 0 when",
      "            the chain holds (prints the entry count and the head hash: keep it elsewhere), else",
      "            exit 1 with AUDIT_CHAIN_BROKEN naming the first entry that was altered or removed",
      "export      writes the entries (seq, kind, run, node, actor, time, data, the three hashes) as",
      "            JSON, oldest first, with the verification (--json is required: it is for tools);",
      "            exit 1 (AUDIT_CHAIN_BROKEN on stderr) when the chain does not hold",
      "--after N   export: only entries after seq N",
    ],
    options: { ...COMMON, after: { type: "string" } },
    run: audit,
  },
  migrate: {
    usage: "smithers migrate [--db FILE|URL] [--json] | smithers migrate --from FILE|URL --to FILE|URL [--json]",
    about: "Upgrade a database to this version's schema, or copy a database into another store (SQLite <-> PostgreSQL).",
    details: [
      "--db            upgrade the database in place (every command that writes does it too). Read commands",
      "                (ps, inspect, why, logs) never change a database: on one of an older schema they say",
      "                SCHEMA_OUTDATED. A database of a newer version is refused (SCHEMA_TOO_NEW), untouched.",
      "--from, --to    copy every run, node, attempt, approval and decision, vote, timer, event, the decision",
      "                log, the schema versions and the output tables from one database into another, e.g.",
      "                  smithers migrate --from smithers.db --to 'postgres://user@host/db?schema=wf'",
      "                The source is only read, in one consistent snapshot (run `smithers migrate --db` on it",
      "                first if it is of an older schema). The target is created if missing and must hold no",
      "                smithers data (TARGET_NOT_EMPTY). Everything is written in one transaction, committed",
      "                only when every table's row count equals the source's and the decision log verifies as",
      "                in the source (MIGRATE_VERIFY_FAILED); otherwise nothing is written. Refused while a run",
      "                of the source is being driven (SOURCE_IN_USE: stop serve, workers and `up`, or let the",
      "                runs park) and when anything commits to the source during the copy (SOURCE_CHANGED).",
      "                Runs waiting at a gate move as they are: approve them afterwards with --db <target>.",
      "                Prints progress on a terminal; --json prints the tables and counts copied.",
    ],
    options: { ...COMMON, from: { type: "string" }, to: { type: "string" } },
    run: migrate,
  },
  serve: {
    usage: "smithers serve [--port 7331] [--host 127.0.0.1] [--db FILE] [--config FILE] [--json] [--quiet]",
    about: "Serve the HTTP API and the web approval inbox over a database, and drive its runs.",
    details: [
      "--port N        port (default 7331; 0 picks a free one)",
      "--host H        address to bind (default 127.0.0.1, loopback only)",
      "--db FILE|URL   database: a SQLite file or postgres://… (default: $SMITHERS_DB, else ./smithers.db)",
      "--config FILE   JSON configuration (default: $SMITHERS_SERVE_CONFIG, else ./smithers.serve.json if present):",
      '                {"tokens": [{"user": "alice", "token": "…16+ chars…" | "tokenSha256": "…", "scopes": ["approve"]}],',
      '                 "forbidSelfApproval": true, "publicUrl": "https://…",',
      '                 "mailOnWait": {"smtp": {"host", "port", "secure", "starttls", "user", "pass" | "auth": {"type": "OAuth2", …}},',
      '                                "from", "to", "subjectPrefix", "links": {"approvers": {"<address>": "<user>"}}},',
      '                 "webhooks": [{"name", "url", "secret": "whsec_…", "events": ["gate.waiting", "gate.decided"],',
      '                               "format": "json" | "slack", "links": {"approver": "<user>"}, "retry": {…}}],',
      '                 "links": {"secret": "…32+ chars…", "ttlMs": 86400000}}',
      "                Webhook deliveries are rows: `smithers deliveries` lists them.",
      "                Tokens also come from $SMITHERS_TOKENS (the same JSON array) and $SMITHERS_API_KEY (user api, admin).",
      "                With no token configured, serve makes one for you (admin) and prints a sign-in link.",
      "--quiet         print only the address (and errors)",
      "Decisions made through the API record the token's user as decidedBy; runs resume in this process, and",
      "decisions recorded elsewhere (smithers approve --no-resume, another process) are picked up within milliseconds.",
      "Stops cleanly on SIGINT/SIGTERM: runs being driven reach their next wait or end (up to 10 s).",
    ],
    options: { ...COMMON, port: { type: "string" }, host: { type: "string" }, config: { type: "string" }, quiet: { type: "boolean", default: false } },
    run: serve,
  },
};
COMMANDS.worker = {
  usage: "smithers worker [--db FILE|URL] [--concurrency N] [--grace-ms MS] [--json]",
  about: "Drive ready runs and fire due timers, with no HTTP; run as many as you like on one database.",
  details: [
    "Ready runs: queued (smithers up --detach, engine.enqueue), decided or signalled with nobody",
    "driving them, woken by a timer, or left by a process that died or lost its lease. Each is",
    "driven by one process at a time (a claim takes a lease the worker renews); several workers",
    "(and serve processes) on one database share the work.",
    "--concurrency N   runs driven at once by this process (default 4)",
    "--grace-ms MS     on SIGTERM/SIGINT: how long runs driven here get to reach their next wait",
    "                  or end (default 10000) before they are released for another process to take",
    "                  at once; then exit 0",
    "--db FILE|URL     database: a SQLite file or postgres://… (default: $SMITHERS_DB, else ./smithers.db)",
    "Wake-ups: on PostgreSQL a commit anywhere (a decision, a queued run) wakes the worker at once",
    "(LISTEN/NOTIFY); on SQLite it polls the database for other processes' commits every 50 ms.",
    "Runs whose owner died or lost its lease are looked for every second.",
    "Logs one line per event on stderr (took, released, unresumable); with --json, one JSON object",
    "a line on stdout. SMITHERS_LEASE_MS sets the lease (default 30000).",
  ],
  options: { ...COMMON, concurrency: { type: "string" }, "grace-ms": { type: "string" } },
  run: workerCmd,
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
      .map(([name, c]) => `  ${name.padEnd(10)} ${c.about}`),
    "",
    "Every command takes --help, --json and --db FILE. `run` is another name for `up`;",
    "`reject` is another name for `deny`.",
    "Exit codes: 0 finished, 3 waiting for approval, 2 cancelled, 1 failed, 4 usage or lookup error",
    "(including --input that does not fit the gate).",
  ];
  return lines.join("\n");
}

function commandHelp(name, c) {
  return [c.about, "", `Usage: ${c.usage}`, "", ...c.details.map((d) => `  ${d}`), "  --db FILE|URL  database: a SQLite file or a postgres:// URL", "  --json      machine-readable output"]
    .join("\n");
}

export async function main(argv) {
  ignoreClosedStdio();
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    print(mainHelp());
    return name ? 0 : 4;
  }
  if (name === "--version" || name === "-v") {
    try {
      const { engineVersion } = await import("../native.js");
      print(engineVersion());
      return 0;
    } catch (e) {
      return report(e, false);
    }
  }
  const command = COMMANDS[name];
  if (!command) {
    printErr(`smithers: unknown command ${JSON.stringify(name)}\n\n${mainHelp()}`);
    return 4;
  }
  let args;
  try {
    const words = command.run === up ? resumeWords(rest) : rest;
    args = parseArgs({ args: words, options: command.options, allowPositionals: true, strict: true, tokens: true });
  } catch (e) {
    return report(new SmithersError("USAGE", `${e.message}\nUsage: ${command.usage}`), rest.includes("--json"));
  }
  if (args.values.help) {
    print(commandHelp(name, command));
    return 0;
  }
  try {
    return await command.run(args);
  } catch (e) {
    return report(e, args.values.json);
  } finally {
    // The spans this command made are exported before it exits (bounded: a collector that is
    // down or slow costs at most the export timeout). Nothing is loaded when traces are off.
    if (tracesConfigured()) await import("../engine.js").then((m) => m.flushTraces());
  }
}

/** Workflow files `up` loads; a word after `--resume` with one of these is the file, not a run id. */
const WORKFLOW_FILE = /\.(tsx|ts|jsx|js|mjs|mts|toon|ya?ml)$/;

/**
 * `up` takes `--resume` as Smithers' docs write it: `--resume true` / `--resume false`
 * (`--resume=true`), and `--resume <runId>` for `--resume --run-id <runId>`; `--resume`
 * alone still works. Rewritten to the boolean flag before parsing.
 */
function resumeWords(words) {
  const out = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    const inline = /^--resume=(.*)$/.exec(word);
    const value = inline ? inline[1] : word === "--resume" ? words[i + 1] : undefined;
    if (!inline && word !== "--resume") {
      out.push(word);
      continue;
    }
    if (value === "true" || value === "false") {
      if (value === "true") out.push("--resume");
      if (!inline) i++;
    } else if (inline) {
      out.push("--resume", "--run-id", value);
    } else if (value !== undefined && !value.startsWith("-") && !WORKFLOW_FILE.test(value)) {
      out.push("--resume", "--run-id", value);
      i++;
    } else {
      out.push("--resume");
    }
  }
  return out;
}

async function report(e, json) {
  const thrown = describeThrown(e);
  const field = (key) => {
    try {
      return e?.[key];
    } catch {
      return undefined;
    }
  };
  const code = thrown.code ?? "INTERNAL";
  // A message may quote what the user wrote (a TOON file, a name): escape sequences in it
  // are shown, not sent to the terminal.
  const message = json ? thrown.message : printable(thrown.message);
  if (json) {
    print(JSON.stringify({ ok: false, error: { code, message, details: field("details") ?? {} } }, null, 2));
  } else {
    printErr(`smithers: ${code}: ${message}`);
    const extra = hint(code, field("details") ?? {});
    if (extra) printErr(extra);
  }
  const exitCode = field("exitCode");
  return Number.isInteger(exitCode) ? exitCode : exitFor(code);
}


/** What to type instead, for errors where the details say it (text mode only). */
function hint(code, details) {
  if (code === "MISSING_REQUIRED_INPUTS" && Array.isArray(details.missing)) {
    return `  nothing was recorded; add ${details.missing.map((k) => `--input ${k}=VALUE`).join(" ")}`;
  }
  if (code === "UNDECLARED_INPUT" && Array.isArray(details.allowed)) {
    return `  nothing was recorded; leave out ${(details.keys ?? []).map((k) => `--input ${k}=…`).join(" ")}`;
  }
  return "";
}

function usage(message, command) {
  return new SmithersError("USAGE", `${message}\nUsage: ${COMMANDS[command].usage}`);
}

/** The database a command works on (common.cjs findDbPath); none is DB_NOT_FOUND. */
function findDb(values) {
  const found = findDbPath(values);
  if (found === null) throw new SmithersError("DB_NOT_FOUND", "no smithers.db found in this directory or above it; pass --db FILE");
  return found;
}

/**
 * The engine on `dbPath`. Only `up` creates a database (`create`): for every other command a
 * missing file is a mistyped path (DB_NOT_FOUND). Read commands (`readOnly`) never write, not
 * even a migration (SCHEMA_OUTDATED tells them to run `smithers migrate`).
 */
async function openEngine(dbPath, { create = false, readOnly = false } = {}) {
  const { SmithersEngine, prepareTracing } = await import("../engine.js");
  // Spans of what this command drives and decides, when OTEL_EXPORTER_OTLP_* configure traces
  // (README "Traces"): ready before the engine opens, so a command that ends at once has them.
  if (!readOnly) await prepareTracing();
  return new SmithersEngine({ dbPath, forbidSelfApproval: forbidSelfApproval(), mustExist: !create, readOnly, tracing: !readOnly });
}

function runId(args, command) {
  const [id, extra] = args.positionals;
  if (!id) throw usage("a run id is required", command);
  if (extra) throw usage(`unexpected argument ${JSON.stringify(extra)}`, command);
  return id;
}

// ---------------------------------------------------------------- up / resume

async function up(args) {
  const [file, ...extra] = args.positionals;
  if (!file) throw usage("a workflow file is required", "up");
  // `smithers up dag.yaml -- NAME=value …`: params the way Dagu's CLI takes them.
  const params = {};
  for (const word of extra) {
    const eq = word.indexOf("=");
    if (eq <= 0 || !args.tokens?.some((t) => t.kind === "option-terminator")) throw usage(`unexpected argument ${JSON.stringify(word)}`, "up");
    params[word.slice(0, eq)] = word.slice(eq + 1);
  }
  const id = args.values["run-id"];
  if (id !== undefined && !(await vocabulary()).isRunId(id)) {
    throw usage(`--run-id ${JSON.stringify(id)} must be 1-128 characters of letters, digits and _ . : - (not only dots)`, "up");
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
  if (Object.keys(params).length) {
    if (typeof input !== "object" || input === null || Array.isArray(input)) throw usage("params after -- need --input to be an object", "up");
    input = { ...input, ...params };
  }
  const [{ loadWorkflow }] = await Promise.all([import("../loader/load.js"), import("../loader/warm.js").then((m) => m.warm())]);
  let workflow;
  try {
    workflow = await loadWorkflow(path);
  } catch (e) {
    // A file that cannot be loaded (a malformed .toon or DAG file, a .tsx that does not
    // compile or throws while loading, an export we do not provide: TOON_PARSE,
    // DAGU_UNKNOWN_KEY, …) is the caller's input to fix, like a usage error: exit 4, and
    // nothing was written.
    if (isSmithersError(e)) e.exitCode = 4;
    throw e;
  }
  const dbPath = args.values.db
    ? resolveDb(args.values.db)
    : process.env.SMITHERS_DB
      ? resolveDb(process.env.SMITHERS_DB)
      : resolveDb(workflow.dbPath ?? "smithers.db");
  const engine = await openEngine(dbPath, { create: true });
  if (args.values.detach) {
    if (args.values.resume) throw usage("--detach starts a run for a worker; it does not go with --resume", "up");
    const startedBy = args.values.by ?? process.env.SMITHERS_USER ?? osUser();
    const queued = await engine.enqueue(workflow, { input, runId: args.values["run-id"], workflowPath: path, startedBy });
    if (args.values.json) print(JSON.stringify({ ok: true, ...queued }, null, 2));
    else print(`run ${queued.runId}: queued (a smithers worker${dbArg(engine.dbPath)} drives it)`);
    engine.close();
    return 0;
  }
  const live = await progress(engine, args.values);
  let result;
  if (args.values.resume) {
    if (!args.values["run-id"]) throw usage("--resume needs --run-id", "up");
    result = await engine.resume(args.values["run-id"], { workflow, workflowPath: path, force: args.values.force });
  } else {
    const startedBy = args.values.by ?? process.env.SMITHERS_USER ?? osUser();
    result = await engine.run(workflow, { input, runId: args.values["run-id"], workflowPath: path, startedBy });
  }
  // A run waiting only on timers is waited on here: one timeout for its earliest due time.
  result = await engine.waitOnTimers(result, timerNotice(result.runId, engine.dbPath, args.values.json));
  live?.stop();
  return finish(engine, result, args.values.json);
}

async function serve(args) {
  const v = args.values;
  const port = v.port === undefined ? 7331 : Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw usage("--port must be 0-65535", "serve");
  const host = v.host ?? "127.0.0.1";
  const dbPath = v.db ? resolveDb(v.db) : process.env.SMITHERS_DB ? resolveDb(process.env.SMITHERS_DB) : resolve("smithers.db");
  const { loadServeConfig, generatedToken } = await import("../serve/config.js");
  const { startServer } = await import("../serve/server.js");
  let config;
  try {
    config = loadServeConfig({ configPath: v.config });
  } catch (e) {
    e.exitCode = 4;
    throw e;
  }
  let signIn = null;
  let tokens = config.tokens;
  if (tokens.length === 0) {
    const generated = generatedToken(process.env.SMITHERS_USER ?? osUser() ?? "admin");
    tokens = [generated.entry];
    signIn = { user: generated.entry.user, token: generated.token };
  }
  const stamp = () => new Date().toISOString().slice(11, 23);
  const log = v.quiet ? () => {} : (line) => printErr(`${stamp()} ${line}`);
  const { prepareTracing } = await import("../engine.js");
  await prepareTracing();
  const server = await startServer({ dbPath, host, port, config, tokens, log, tracing: true });
  const signInUrl = signIn ? `${server.url}?token=${encodeURIComponent(signIn.token)}` : null;
  if (v.json) {
    print(JSON.stringify({ ok: true, url: server.url, db: showDb(dbPath), config: config.path, signInUrl, user: signIn?.user ?? null, token: signIn?.token ?? null }));
  } else {
    print(`smithers serve: ${server.url} (db ${showDb(dbPath)})`);
    if (!v.quiet) {
      print(`  inbox: ${server.url}   API: ${server.url}v1/…   OpenAPI: ${server.url}openapi.json`);
      if (signIn) {
        print(`  no tokens configured: sign in as ${signIn.user} (admin) with ${signInUrl}`);
        print(`  or: curl -H 'Authorization: Bearer ${signIn.token}' ${server.url}v1/approvals`);
      } else {
        print(`  ${config.tokens.length} token(s) from ${config.path ?? "the environment"}`);
      }
      if (config.mailOnWait) print(`  mail on wait: ${config.mailOnWait.to.join(", ")} via ${config.mailOnWait.smtp.host}`);
      for (const w of config.webhooks) print(`  webhook ${w.name}: ${w.events.join(", ")} to ${new URL(w.url).origin} (${w.format}${w.links ? `, links as ${w.links.approver}` : ""})`);
      if (config.links && !config.publicUrl) print(`  decision links point to ${server.url} (set publicUrl for the address people reach)`);
      if (!/^(127\.|::1$|localhost$)/.test(host)) print(`  listening beyond loopback (${host}): put TLS in front of it`);
    }
  }
  return new Promise((resolveExit) => {
    let stopping = false;
    const stop = (signal) => {
      if (stopping) {
        printErr(`smithers serve: ${signal} again, exiting now`);
        process.exit(130);
      }
      stopping = true;
      log(`${signal}: stopping`);
      server.close().then(
        () => {
          log("stopped");
          resolveExit(0);
        },
        (e) => {
          printErr(`smithers serve: ${e?.message ?? e}`);
          resolveExit(1);
        },
      );
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });
}

async function workerCmd(args) {
  const v = args.values;
  if (args.positionals.length) throw usage(`unexpected argument ${JSON.stringify(args.positionals[0])}`, "worker");
  const concurrency = v.concurrency === undefined ? 4 : Number(v.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) throw usage("--concurrency must be a whole number from 1 to 1000", "worker");
  const graceMs = v["grace-ms"] === undefined ? 10_000 : Number(v["grace-ms"]);
  if (!Number.isInteger(graceMs) || graceMs < 0) throw usage("--grace-ms must be a whole number of milliseconds ≥ 0", "worker");
  const dbPath = v.db ? resolveDb(v.db) : process.env.SMITHERS_DB ? resolveDb(process.env.SMITHERS_DB) : resolve("smithers.db");
  const [{ Worker }] = await Promise.all([import("../worker.js"), import("../loader/warm.js").then((m) => m.warm())]);
  const log = v.json
    ? (entry) => print(JSON.stringify({ ts: new Date().toISOString(), ...entry }))
    : (entry) => {
        const { event, runId, ...rest } = entry;
        const more = Object.entries(rest).map(([k, x]) => `${k}=${typeof x === "string" && !/\s/.test(x) ? x : JSON.stringify(x)}`);
        printErr([new Date().toISOString().slice(11, 23), event, runId ?? "", ...more].filter(Boolean).join(" "));
      };
  const { prepareTracing } = await import("../engine.js");
  await prepareTracing();
  const worker = new Worker({ database: dbPath, concurrency, log, tracing: true });
  log({ event: "started", db: showDb(dbPath), concurrency, pid: process.pid });
  worker.start();
  return new Promise((resolveExit) => {
    const stop = (signal) => {
      if (worker.stopping) {
        printErr(`smithers worker: ${signal} again, exiting now`);
        process.exit(130);
      }
      log({ event: "stopping", signal, driving: worker.active.size });
      worker.stop({ graceMs }).then(
        ({ finished, released }) => {
          log({ event: "stopped", taken: worker.taken, finished, released: released.length });
          resolveExit(0);
          // Task bodies of released runs may still be under way (another process runs them
          // again): they must not keep this process alive.
          setTimeout(() => process.exit(), 100).unref();
        },
        (e) => {
          printErr(`smithers worker: ${e?.code ?? "ERROR"}: ${e?.message ?? e}`);
          resolveExit(1);
        },
      );
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });
}

async function migrate(args) {
  const v = args.values;
  if (v.from !== undefined || v.to !== undefined) return copyDatabase(args);
  const dbPath = findDb(args.values);
  const { NativeEngine } = await import("../native.js");
  let before;
  try {
    new NativeEngine(dbPath, { readOnly: true }).close();
    before = "current";
  } catch (e) {
    if (e?.code !== "SCHEMA_OUTDATED") throw e;
    before = `v${e.details?.found}`;
  }
  const engine = new NativeEngine(dbPath, { mustExist: true });
  engine.close();
  const { engineVersion } = await import("../native.js");
  if (args.values.json) {
    print(JSON.stringify({ ok: true, db: showDb(dbPath), from: before, engine: engineVersion() }, null, 2));
  } else {
    print(before === "current" ? `${showDb(dbPath)}: up to date` : `${showDb(dbPath)}: upgraded from schema ${before}`);
  }
  return 0;
}

/** `smithers migrate --from A --to B`: the core copies (`migrate.rs`); this prints. */
async function copyDatabase(args) {
  const v = args.values;
  if (v.from === undefined || v.to === undefined) throw usage("a copy needs both --from and --to", "migrate");
  if (v.db !== undefined) throw usage("--db upgrades one database in place; a copy takes --from and --to, not --db", "migrate");
  if (args.positionals.length > 0) throw usage(`unexpected argument ${JSON.stringify(args.positionals[0])}`, "migrate");
  const from = resolveDb(v.from);
  const to = resolveDb(v.to);
  // A mistyped source is DB_NOT_FOUND, not an empty copy.
  if (!isServerUrl(from) && !existsSync(from)) throw new SmithersError("DB_NOT_FOUND", `no database at ${from}`, { dbPath: from });
  const { migrateDatabase } = await import("../native.js");
  const live = !v.json && isTerminal(2);
  let last = 0;
  const onProgress = live
    ? (p) => {
        const now = Date.now();
        if (now - last < 100 && p.tableRowsDone !== p.tableRows) return;
        last = now;
        const pct = p.rows > 0 ? Math.floor((100 * p.rowsDone) / p.rows) : 100;
        process.stderr.write(`\r\x1b[2K[${p.tableIndex}/${p.tables}] ${p.table}: ${p.tableRowsDone}/${p.tableRows} rows (${pct}% of ${p.rows})`);
      }
    : undefined;
  let report;
  try {
    report = migrateDatabase(from, to, onProgress);
  } finally {
    if (live) process.stderr.write("\r\x1b[2K");
  }
  if (v.json) {
    print(JSON.stringify({ ok: true, ...report }, null, 2));
    return 0;
  }
  const copied = report.tables.filter((t) => t.rows > 0);
  print(`copied ${showDb(from)} -> ${showDb(to)}: ${report.runs} run${report.runs === 1 ? "" : "s"}, ${report.rows} rows in ${copied.length} tables`);
  print(table(["TABLE", "ROWS"], copied.map((t) => [t.table + (t.output ? " (output)" : ""), String(t.rows)])));
  const a = report.audit;
  print(a.entries > 0 ? `decision log: ${a.entries} entr${a.entries === 1 ? "y" : "ies"}, ${a.ok ? "chain intact" : "chain broken (as in the source)"}; head ${a.headSeq} ${a.headHash}` : "decision log: empty");
  if (report.skipped.length > 0) print(`left behind (not smithers tables): ${report.skipped.join(", ")}`);
  print(`row counts verified; use --db ${showDb(to)} from now on`);
  return 0;
}

async function resumeCmd(args) {
  const id = runId(args, "resume");
  const engine = await openEngine(findDb(args.values));
  const live = await progress(engine, args.values);
  await import("../loader/warm.js").then((m) => m.warm());
  let result;
  try {
    // Timers due by now fire first (each once, whoever else races for them): this one's
    // run is resumed below, after its sub-runs a fire woke (a sub-run that ends resumes its
    // caller); others a fire woke are left to `smithers resume` or serve.
    const { fired } = await engine.fireDueTimers({ resume: false });
    await engine.resumeWokenSubRuns(id, fired);
    result = await engine.waitOnTimers(await engine.resume(id, { force: args.values.force }), timerNotice(id, engine.dbPath, args.values.json));
  } catch (e) {
    if (e?.code === "WORKFLOW_NOT_FOUND") e.message += `\n${resumeHint(id, e.code, engine.dbPath)}`;
    throw e;
  } finally {
    live?.stop();
  }
  return finish(engine, result, args.values.json);
}

/** What `up` / `resume` say on stderr while they wait on a run's timers. */
function timerNotice(id, dbPath, json) {
  if (json) return undefined;
  return (due) =>
    printErr(`run ${id} waits on a timer until ${new Date(due).toISOString()}; stopping this process leaves it waiting (npx smithers resume ${id}${dbArg(dbPath)} fires it when due)`);
}

/**
 * Progress on stderr while a run is driven here: its node events and agents' tool calls, what
 * its command tasks write as they write it, and each agent's answer when it comes, each line
 * prefixed by its node (`build | …`). On a terminal unless --json; always with --live. Returns a
 * handle whose stop() prints the last lines, or null.
 */
async function progress(engine, values) {
  if (!values.live && (values.json || !isTerminal(2))) return null;
  const { OutputTail, POLL_MS, outputLine } = await import("./follow.js");
  const tails = new Map();
  const write = (lines) => {
    for (const l of lines) printErr(`  ${outputLine(l)}`);
  };
  const pollAll = () => {
    for (const tail of tails.values()) write(tail.poll());
  };
  // Output is read from the log files the runner streams into, between the driver's calls
  // and on a timer while commands run. The timer also hands out events recorded while an
  // agent works (its tool calls), which would otherwise wait for the driver's next call.
  const timer = setInterval(() => {
    engine.dispatch();
    pollAll();
  }, POLL_MS);
  timer.unref();
  engine.on("*", (e) => {
    // Agents: their answers, not their prompts (`smithers logs --both` has those).
    if (!tails.has(e.runId)) tails.set(e.runId, new OutputTail(engine.native, e.runId, { agentView: {} }));
    // An attempt ended (a reviewed one waits): its last lines, or its agent's answer, come first.
    if (ATTEMPT_ENDS.has(e.type)) pollAll();
    const where = e.nodeId ? ` ${e.nodeId}${e.iteration ? ` [${e.iteration}]` : ""}` : "";
    if (PROGRESS_EVENTS.has(e.type)) {
      printErr(`  ${e.type}${where}${e.error ? `: ${e.error.message}` : ""}`);
    } else if (e.type === "ToolCallStarted" || (e.type === "ToolCallFinished" && !e.ok)) {
      printErr(`  ${e.type}${where}: ${e.tool}${e.error ? `: ${e.error.message}` : ""}`);
    }
  });
  return {
    stop() {
      clearInterval(timer);
      for (const tail of tails.values()) write(tail.flush());
    },
  };
}

const ATTEMPT_ENDS = new Set(["NodeFinished", "NodeFailed", "NodeRetrying", "ApprovalRequested"]);
/** The events `smithers up` shows as progress (with an error's message when they carry one). */
const PROGRESS_EVENTS = new Set([
  "NodeStarted",
  "NodeFinished",
  "NodeFailed",
  "ApprovalRequested",
  "NodeSkipped",
  "NodeRejected",
  "NodePushedBack",
  "NodeReset",
  "NodeWaitingSubRun",
  "NodeSubRunEnded",
  "LoopIteration",
]);

async function finish(engine, result, json) {
  const pending = result.status === "waiting-approval" ? engine.pendingApprovals({ runId: result.runId }) : [];
  if (json) {
    print(JSON.stringify({ ok: result.status !== "failed", ...result, pendingApprovals: pending }, null, 2));
  } else {
    print(`run ${result.runId}: ${result.status}`);
    if (result.error) print(`  error: ${result.error.code}: ${result.error.message}`);
    const db = dbArg(engine.dbPath);
    printPending(result.runId, pending, db);
    printDecisionCommands(pending, db);
  }
  engine.close();
  return (await vocabulary()).runExitCode(result.status);
}

const isReview = (a) => a.kind === "review";

/** "APPROVED_BY (required), MAINTENANCE_WINDOW" */
function inputList(a) {
  const required = new Set(a.required ?? []);
  return (a.input ?? []).map((k) => (required.has(k) ? `${k} (required)` : k)).join(", ");
}

/**
 * One line per pending gate; a reviewed step also says its round, inputs and where its
 * output is. A gate of a sub-run the run waits on names that sub-run.
 */
function printPending(runId, pending, db = "") {
  for (const a of pending) {
    if (a.runId !== runId) print(`  sub-run ${a.runId} (${a.workflowName}) waits:`);
    const event = a.metadata?.waitForEvent;
    if (event) {
      print(`  waiting for the event ${event.event}${event.correlationId ? ` (correlationId ${event.correlationId})` : ""}: ${a.nodeId}${a.iteration ? ` (iteration ${a.iteration})` : ""}`);
      const fields = Object.keys(a.schema?.properties ?? {});
      if (fields.length) print(`    payload fields: ${fields.join(", ")}`);
      continue;
    }
    if (a.mode === "human") {
      // A <HumanTask>: the answer is the output; say what to fill in.
      print(`  waiting for an answer: ${a.nodeId}${a.iteration ? ` (iteration ${a.iteration})` : ""} — ${a.prompt ?? a.title ?? ""}`);
      const required = new Set(a.schema?.required ?? []);
      const fields = Object.keys(a.schema?.properties ?? {}).map((k) => (required.has(k) ? `${k} (required)` : k));
      if (fields.length) print(`    fields: ${fields.join(", ")}`);
      continue;
    }
    if (!isReview(a)) {
      print(`  waiting for approval: ${a.nodeId}${a.iteration ? ` (iteration ${a.iteration})` : ""} — ${a.title ?? ""}`);
      if (a.summary && a.summary !== a.title) print(`    ${a.summary}`);
      if (a.input?.length) print(`    inputs: ${inputList(a)}; pass them as --input KEY=VALUE`);
      continue;
    }
    print(`  waiting for approval: ${a.nodeId} (${a.iteration ? `iteration ${a.iteration}, ` : ""}review, round ${a.round}) — ${a.prompt ?? a.title ?? ""}`);
    if (a.input?.length) print(`    inputs: ${inputList(a)}; pass them as --input KEY=VALUE`);
    const last = a.history?.at(-1);
    if (last) print(`    last round: ${historyLine(last)}`);
    print(`    its output: npx smithers logs ${a.runId} --node ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}${db}`);
  }
}

/** "round 1 pushed-back by bob at 2026-…: DAYS=30 (note: a month)" */
function historyLine(h) {
  const inputs = Object.entries(h.inputs ?? {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return `round ${h.iteration} ${h.status}${h.by ? ` by ${h.by}` : ""}${h.at ? ` at ${h.at}` : ""}${inputs ? `: ${inputs}` : ""}${h.note ? ` (note: ${h.note})` : ""}`;
}

/**
 * The commands that decide the pending gates: approve/deny for a gate, approve/push-back/
 * reject for a reviewed step; one set per gate (with --node) when several wait. Each names
 * the gate's own run (a sub-run's, when the run waits on one).
 */
function printDecisionCommands(pending, db = "") {
  for (const a of pending) {
    const sel = (pending.length > 1 ? ` --node ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}` : "") + db;
    const event = a.metadata?.waitForEvent;
    if (event) {
      print(`  send:    npx smithers signal ${a.runId} ${event.event}${event.correlationId ? ` --correlation-id ${event.correlationId}` : ""}${db} --data '<json>'`);
    } else if (a.mode === "human") {
      print(`  answer:  npx smithers approve ${a.runId} ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}${db} --note '<json>'`);
      print(`  deny:    npx smithers deny ${a.runId}${sel}`);
    } else if (isReview(a)) {
      print(`  approve:   npx smithers approve ${a.runId}${sel}`);
      print(`  push-back: npx smithers push-back ${a.runId}${sel}`);
      print(`  reject:    npx smithers reject ${a.runId}${sel}`);
    } else {
      print(`  approve: npx smithers approve ${a.runId}${sel}`);
      print(`  deny:    npx smithers deny ${a.runId}${sel}`);
    }
  }
}

// ---------------------------------------------------------------- decisions

/**
 * approve / deny (reject) / push-back.
 * @param {"approve" | "deny" | "pushBack"} kind the engine method
 * @param {any} args parsed arguments
 * @param {string} [command] the command typed, for usage messages (default: kind)
 */
async function decide(kind, args, command = kind) {
  const [id, positionalNode, extra] = args.positionals;
  if (!id) throw usage("a run id is required", command);
  if (extra !== undefined) throw usage(`unexpected argument ${JSON.stringify(extra)}`, command);
  const v = args.values;
  // `smithers approve <runId> <nodeId>` (as Smithers' docs write it) or --node.
  if (positionalNode !== undefined && v.node !== undefined && v.node !== positionalNode) {
    throw usage(`the node is given twice: ${JSON.stringify(positionalNode)} and --node ${JSON.stringify(v.node)}`, command);
  }
  const nodeId = positionalNode ?? v.node;
  let iteration;
  if (v.iteration !== undefined) {
    iteration = Number(v.iteration);
    if (!Number.isInteger(iteration) || iteration < 0) throw usage("--iteration must be a whole number ≥ 0", command);
  }
  let decision;
  if (v.decision !== undefined) {
    try {
      decision = JSON.parse(v.decision);
    } catch (e) {
      throw usage(`--decision is not valid JSON: ${e.message}`, command);
    }
  }
  if (kind === "deny" && v.input?.length) {
    throw usage(`${command} takes no --input: inputs go with approve or push-back`, command);
  }
  const inputs = parseInputs(v.input ?? [], command);
  const decidedBy = v.by ?? process.env.SMITHERS_USER ?? osUser();
  const engine = await openEngine(findDb(v));
  // A decision that resumes the run loads its workflow file.
  if (!v["no-resume"]) await import("../loader/warm.js").then((m) => m.warm());
  // Deadlines that passed are decided first (as system:timeout): a decision that comes after
  // its gate's deadline finds it decided (ALREADY_DECIDED), whether or not any process ran
  // since; this run, if a fire moved it, is resumed as after any decision.
  const fired = await firedFirst(engine, id, v["no-resume"]);
  const outcome = await fired.decide(() => engine[kind](id, {
    nodeId,
    iteration,
    note: v.note ?? v.reason,
    reason: kind === "deny" ? v.reason : undefined,
    decidedBy,
    scopes: v.scope ?? [],
    decision,
    inputs,
    expectDigest: v["expect-digest"],
    resume: !v["no-resume"],
  }));
  const { done, ...recorded } = outcome;
  if (recorded.status === "invalid") return refusedAnswer(engine, recorded, v.json, done);
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
  const runStatus = run?.status ?? (resumeError ? engine.getRun(id).status : recorded.runStatus);
  const pending = runStatus === "waiting-approval" ? engine.pendingApprovals({ runId: id }) : [];
  if (v.json) {
    const failed = resumeError ? { resumeError } : {};
    print(JSON.stringify({ ok: true, ...recorded, runStatus, run, pendingApprovals: pending, ...failed }, null, 2));
  } else {
    for (const line of decisionLines(id, recorded)) print(line);
    print(`run ${id}: ${runStatus}${run?.error ? ` (${run.error.code}: ${run.error.message})` : ""}`);
    if (resumeError) {
      printErr(`smithers: ${resumeError.code}: the decision is recorded, but the run could not be resumed: ${resumeError.message}`);
      if (runStatus === "running") printErr(resumeHint(id, resumeError.code, engine.dbPath));
    } else if (run) {
      const db = dbArg(engine.dbPath);
      printPending(id, pending, db);
      printDecisionCommands(pending, db);
      // A sub-run that ended woke its caller, which this process then drove on.
      const caller = run.caller;
      if (caller?.runId) {
        print(`caller run ${caller.runId}: ${caller.status}${caller.error ? ` (${caller.error.code}: ${caller.error.message})` : ""}`);
        if (caller.status === "waiting-approval") {
          const waiting = engine.pendingApprovals({ runId: caller.runId });
          printPending(caller.runId, waiting, db);
          printDecisionCommands(waiting, db);
        }
      }
    } else if (recorded.owner) {
      print(`run ${id} is driven by ${recorded.owner}; it picks the decision up`);
    } else if (recorded.needsResume) {
      print(notResumedLine(id, engine.dbPath));
    }
  }
  engine.close();
  // The decision is recorded: whatever the resumed run does next, the command did its job.
  return 0;
}

/**
 * Fires the timers due by now (other runs they move are left to `smithers resume` or serve),
 * and returns `decide(f)`: the decision `f()`; when it fails and a fire moved this run, the run is
 * resumed first (unless --no-resume), so the deadline's decision is carried through.
 */
async function firedFirst(engine, id, noResume) {
  const { fired } = await engine.fireDueTimers({ resume: false });
  const moved = !noResume && fired.some((t) => t.runId === id && t.needsResume);
  return {
    decide: async (decide) => {
      try {
        return await decide();
      } catch (e) {
        if (moved) await engine.resume(id).catch(() => {});
        throw e;
      }
    },
  };
}

/** `smithers signal <run> <event> --data '<json>'`: an event for a <WaitForEvent> / <Signal>. */
async function signalCmd(args) {
  const [id, name, extra] = args.positionals;
  if (!id || !name) throw usage("a run id and an event name are required", "signal");
  if (extra !== undefined) throw usage(`unexpected argument ${JSON.stringify(extra)}`, "signal");
  const v = args.values;
  let data = {};
  if (v.data !== undefined) {
    try {
      data = JSON.parse(v.data);
    } catch (e) {
      throw usage(`--data is not valid JSON: ${e.message}`, "signal");
    }
  }
  const engine = await openEngine(findDb(v));
  if (!v["no-resume"]) await import("../loader/warm.js").then((m) => m.warm());
  const fired = await firedFirst(engine, id, v["no-resume"]);
  const outcome = await fired.decide(() => engine.signal(id, name, data, { correlationId: v["correlation-id"], decidedBy: v.by, resume: !v["no-resume"] }));
  const { done, ...recorded } = outcome;
  if (recorded.status === "invalid") return refusedAnswer(engine, recorded, v.json, done);
  let run = null;
  let resumeError = null;
  if (done) {
    try {
      run = await done;
    } catch (e) {
      resumeError = { code: e?.code ?? "INTERNAL", message: String(e?.message ?? e) };
    }
  }
  const runStatus = run?.status ?? engine.getRun(id).status;
  if (v.json) {
    print(JSON.stringify({ ok: true, ...recorded, runStatus, run, ...(resumeError ? { resumeError } : {}) }, null, 2));
  } else {
    print(`event ${name} sent to ${recorded.nodeId} in run ${id}`);
    print(`run ${id}: ${runStatus}${run?.error ? ` (${run.error.code}: ${run.error.message})` : ""}`);
    if (resumeError) printErr(`smithers: ${resumeError.code}: the event is recorded, but the run could not be resumed: ${resumeError.message}`);
  }
  engine.close();
  return 0;
}

/**
 * A <HumanTask> answer that does not fit the task's schema: it counts as an attempt and the
 * task waits for another (until maxAttempts, then it fails). Exit 1: the answer was refused.
 */
async function refusedAnswer(engine, recorded, json, done) {
  // The last attempt failed the task: the resumed run ends (failed, unless continueOnFail).
  const run = done ? await done.catch(() => null) : null;
  if (run?.status) recorded.runStatus = run.status;
  const text = refusedAnswerText(recorded);
  if (json) {
    print(text.json);
  } else {
    printErr(text.stderr);
    for (const line of text.stdout) print(line);
    if (recorded.needsResume && !run) print(notResumedLine(recorded.runId, engine.dbPath));
  }
  engine.close();
  return 1;
}

/**
 * `--input KEY=VALUE`, repeatable, into `{KEY: "VALUE"}`. Split at the first "=" (values may
 * hold more); a word without "=", an empty key or a key given twice is a usage error. Which
 * keys a gate takes is the core's to check (UNDECLARED_INPUT).
 */
function parseInputs(words, command) {
  const inputs = {};
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq < 0) throw usage(`--input ${JSON.stringify(word)} must be KEY=VALUE`, command);
    const key = word.slice(0, eq);
    if (key === "") throw usage(`--input ${JSON.stringify(word)} has no key before "="`, command);
    if (Object.hasOwn(inputs, key)) throw usage(`--input ${key} is given twice`, command);
    inputs[key] = word.slice(eq + 1);
  }
  return inputs;
}

function resumeHint(id, code, dbPath) {
  return code === "WORKFLOW_NOT_FOUND"
    ? `  resume it with the workflow file: npx smithers up <workflow.tsx> --run-id ${id} --resume${dbArg(dbPath, { up: true })}`
    : `  resume it with: npx smithers resume ${id}${dbArg(dbPath)}`;
}

// ---------------------------------------------------------------- views

async function ps(args) {
  const v = args.values;
  const limit = v.limit === undefined ? 50 : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) throw usage("--limit must be a whole number ≥ 1", "ps");
  // The core filters on the string as given: a typo would list nothing, and exit 0.
  const { RUN_STATUSES } = await vocabulary();
  if (v.status !== undefined && !RUN_STATUSES.includes(v.status)) {
    throw usage(`--status must be one of ${RUN_STATUSES.join(", ")}; got ${JSON.stringify(v.status)}`, "ps");
  }
  const engine = await openEngine(findDb(v), { readOnly: true });
  const runs = engine.listRuns({ status: v.status, limit });
  if (v.json) {
    print(JSON.stringify({ ok: true, runs }, null, 2));
  } else if (runs.length === 0) {
    print("no runs");
  } else {
    print(runsTable(runs));
  }
  engine.close();
  return 0;
}


async function audit(args) {
  const v = args.values;
  const [word, extra] = args.positionals;
  if (extra !== undefined) throw usage(`unexpected argument ${JSON.stringify(extra)}`, "audit");
  if (word !== "verify" && word !== "export") throw usage("say what to do: audit verify, or audit export --json", "audit");
  if (word === "export" && !v.json) throw usage("audit export writes JSON for tools: add --json", "audit");
  let after = 0;
  if (v.after !== undefined) {
    after = Number(v.after);
    if (!Number.isInteger(after) || after < 0) throw usage("--after must be a whole number ≥ 0", "audit");
  }
  const engine = await openEngine(findDb(v), { readOnly: true });
  let report;
  const entries = [];
  try {
    report = engine.auditVerify();
    if (word === "export") {
      for (let page; (page = engine.auditEntries({ afterSeq: after, limit: 1000 })).length > 0; after = page.at(-1).seq) entries.push(...page);
    }
  } finally {
    engine.close();
  }
  const broken = report.broken
    ? new SmithersError("AUDIT_CHAIN_BROKEN", `the decision log does not hold at entry ${report.broken.seq} (${report.broken.problem}): ${report.broken.message}`, {
        seq: report.broken.seq,
        problem: report.broken.problem,
        entries: report.entries,
      })
    : null;
  if (word === "export") {
    // The entries as stored, whatever the check says; a broken chain still exits 1.
    print(JSON.stringify({ ok: !broken, verify: report, entries }, null, 2));
    if (broken) printErr(`smithers: ${broken.code}: ${broken.message}`);
    return broken ? 1 : 0;
  }
  if (broken) {
    if (v.json) {
      print(JSON.stringify({ ok: false, error: { code: broken.code, message: broken.message, details: broken.details }, ...report }, null, 2));
    } else {
      printErr(`smithers: ${broken.code}: ${broken.message}`);
    }
    return 1;
  }
  if (v.json) print(JSON.stringify({ ok: true, ...report }, null, 2));
  else print(`decision log: ${report.entries} entr${report.entries === 1 ? "y" : "ies"}, chain intact${report.headHash ? `; head ${report.headSeq} ${report.headHash}` : ""}`);
  return 0;
}

async function deliveries(args) {
  const v = args.values;
  const [word, id, extra] = args.positionals;
  if (word === "retry") {
    if (!id || extra !== undefined) throw usage("retry takes one delivery id", "deliveries");
    const engine = await openEngine(findDb(v));
    try {
      const row = engine.native.retryDelivery(id, Date.now());
      print(v.json ? JSON.stringify({ ok: true, delivery: row }, null, 2) : `delivery ${id}: pending again`);
    } finally {
      engine.close();
    }
    return 0;
  }
  if (word !== undefined) throw usage(`unexpected argument ${JSON.stringify(word)}`, "deliveries");
  const limit = v.limit === undefined ? 50 : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1) throw usage("--limit must be a whole number ≥ 1", "deliveries");
  const { DELIVERY_STATUSES } = await vocabulary();
  if (v.status !== undefined && !DELIVERY_STATUSES.includes(v.status)) {
    throw usage(`--status must be one of ${DELIVERY_STATUSES.join(", ")}; got ${JSON.stringify(v.status)}`, "deliveries");
  }
  const engine = await openEngine(findDb(v), { readOnly: true });
  let rows;
  try {
    rows = engine.native.listDeliveries({ status: v.status, runId: v.run, target: v.target, limit, withBody: v.body });
  } finally {
    engine.close();
  }
  if (v.json) {
    print(JSON.stringify({ ok: true, deliveries: rows }, null, 2));
  } else if (rows.length === 0) {
    print("no deliveries");
  } else {
    const when = (ms) => (ms ? new Date(ms).toISOString() : "");
    print(
      table(
        ["DELIVERY", "TARGET", "EVENT", "RUN", "STATUS", "ATTEMPTS", "LAST", "NEXT/DONE"],
        rows.map((d) => [
          d.deliveryId,
          d.target,
          d.eventType,
          d.runId ?? "",
          d.status,
          String(d.attempts),
          d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : printable(d.lastError ?? "").slice(0, 40),
          d.status === "delivered" ? when(d.deliveredAtMs) : d.status === "pending" ? when(d.nextAttemptAtMs) : "",
        ]),
      ),
    );
  }
  return 0;
}

async function inspect(args) {
  const id = runId(args, "inspect");
  const engine = await openEngine(findDb(args.values), { readOnly: true });
  const info = withTimers(engine, engine.inspect(id));
  engine.close();
  if (args.values.json) {
    print(JSON.stringify({ ok: true, ...info }, null, 2));
    return 0;
  }
  const r = info.run;
  say(`run ${r.runId} (${r.workflowName}): ${r.status}`);
  if (r.workflowPath) say(`  workflow: ${r.workflowPath}`);
  say(`  created ${r.createdAt}, updated ${r.updatedAt}${r.finishedAt ? `, ended ${r.finishedAt}` : ""}`);
  if (r.error) say(`  error: ${r.error.code}: ${r.error.message}`);
  say("\nnodes:");
  say(table(["NODE", "ITER", "STATE", "OUTPUT", "ATTEMPTS", "NOTE"], info.nodes.map((n) => [n.nodeId, String(n.iteration), n.state, n.output, String(n.attempts), n.error?.message ?? n.skipReason ?? ""])));
  if (info.approvals.length > 0) {
    say("\napprovals:");
    for (const a of info.approvals) {
      const who = a.decidedBy ? ` by ${a.decidedBy} at ${a.decidedAt}` : ` since ${a.requestedAt}`;
      if (!isReview(a)) {
        say(`  ${a.nodeId} [${a.iteration}] ${a.status}${who}: ${a.title ?? ""}${a.summary ? ` — ${a.summary}` : ""}${a.note ? ` (note: ${a.note})` : ""}`);
        if (a.status === "requested") say(`    digest: ${a.digest}`);
        if (a.quorum) {
          const from = a.quorum.from?.length ? ` from ${a.quorum.from.join(", ")}` : "";
          const veto = a.quorum.veto?.length ? `; veto: ${a.quorum.veto.join(", ")}` : "";
          say(`    quorum: ${a.quorum.approvals} approvals${from}${veto}`);
          for (const vote of a.votes ?? []) say(`      ${vote.verdict}${vote.veto ? " (veto)" : ""} by ${vote.voter} at ${vote.at}${vote.note ? ` (note: ${vote.note})` : ""}`);
        }
        if (a.input?.length) say(`    inputs: ${inputList(a)}`);
        const given = Object.entries(a.inputs ?? {});
        if (given.length) say(`    approved with: ${given.map(([k, v]) => `${k}=${v}`).join(", ")}`);
        continue;
      }
      // A reviewed step: its round, what it takes, what was decided, and the earlier rounds.
      say(`  ${a.nodeId} [${a.iteration}] ${a.status}${who} (review, round ${a.round}): ${a.prompt ?? a.title ?? ""}`);
      if (a.status === "requested") say(`    digest: ${a.digest}`);
      if (a.input?.length) say(`    inputs: ${inputList(a)}`);
      const sent = Object.entries(a.inputs ?? {});
      if (sent.length) say(`    approved with: ${sent.map(([k, v]) => `${k}=${v}`).join(", ")}`);
      if (a.status === "rejected" || a.status === "denied") {
        say(`    ${a.status} by ${a.decidedBy ?? "?"}: ${a.reason ?? a.note ?? "(no reason given)"}`);
      } else if (a.note) {
        say(`    note: ${a.note}`);
      }
      if (a.stdoutPath) say(`    output: ${a.stdoutPath}`);
      const earlier = (a.history ?? []).filter((h) => h.iteration < a.round);
      if (earlier.length) {
        say("    history:");
        for (const h of earlier) say(`      ${historyLine(h)}`);
      }
    }
  }
  if (info.timers.length > 0) {
    say("\ntimers:");
    for (const t of info.timers) {
      const what = t.kind === "timer" ? "timer" : "deadline";
      const fired = t.status === "fired" ? `, fired at ${new Date(t.firedAtMs).toISOString()} (${t.outcome})` : "";
      say(`  ${t.nodeId} [${t.iteration}] ${what} due ${t.dueAt}${fired}`);
    }
  }
  if (info.agentAttempts?.length > 0) {
    print("\nagent calls:");
    for (const a of info.agentAttempts) {
      const answer = (a.responseText ?? "").replace(/\s+/g, " ").trim();
      const shown = answer.length > 100 ? `${answer.slice(0, 100)}…` : answer || "(no answer)";
      print(`  ${a.nodeId} [${a.iteration}] attempt ${a.attempt} ${a.state}${agentNote(a)}: ${shown}`);
      if (a.agent?.followUp) print(`    follow-up asked: ${a.agent.followUp.reason}`);
    }
    print(`  (prompts and answers in full: npx smithers logs ${r.runId} --both)`);
  }
  if (info.outputs.length > 0) {
    say("\noutputs:");
    for (const o of info.outputs) say(`  ${o.table} ${o.nodeId} [${o.iteration}]: ${JSON.stringify(o.value)}`);
  }
  return 0;
}

/** An `inspect` answer with the run's durable timers (`timers`: its <Timer>s and deadlines). */
function withTimers(engine, info) {
  return { ...info, timers: engine.native.runTimers(info.run.runId) };
}

/**
 * What blocks a run, and the command that unblocks it.
 * @param {any} info an `inspect` answer
 * @param {string} [db] appended to the commands (` --db FILE` when they need it)
 * @param {((runId: string) => any) | null} [subRun] a sub-run's `inspect` answer (with its
 *   timers), or null: with it a sub-run blocker says what the sub-run waits on, recursively
 * @param {number} [depth] how deep in a run tree `info` is (internal)
 */
export function diagnose(info, db = "", subRun = null, depth = 0) {
  const r = info.run;
  const pending = info.approvals.filter((a) => a.status === "requested");
  const blockers = [];
  if (r.status === "waiting-approval" || pending.length > 0) {
    for (const a of pending) {
      const sel = (pending.length > 1 ? ` --node ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}` : "") + db;
      const blocker = {
        kind: "approval",
        approvalKind: a.kind ?? "gate",
        nodeId: a.nodeId,
        iteration: a.iteration,
        reason: `Approval requested — no decision yet: ${a.title ?? a.nodeId}${deadlineOf(info, a)}`,
        waitingSince: a.requestedAtMs,
        digest: a.digest,
        unblocker: `npx smithers approve ${r.runId}${sel}`,
        deny: `npx smithers deny ${r.runId}${sel}`,
      };
      if (a.mode === "human") {
        Object.assign(blocker, {
          reason: `Answer requested — none valid yet: ${a.prompt ?? a.title ?? a.nodeId}`,
          unblocker: `npx smithers approve ${r.runId} ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}${db} --note '<json>'`,
          schema: a.schema ?? null,
        });
      }
      if (isReview(a)) {
        Object.assign(blocker, {
          reason: `Review requested (round ${a.round}) — no decision yet: ${a.prompt ?? a.title ?? a.nodeId}`,
          deny: `npx smithers reject ${r.runId}${sel}`,
          pushBack: `npx smithers push-back ${r.runId}${sel}`,
          logs: `npx smithers logs ${r.runId} --node ${a.nodeId}${a.iteration ? ` --iteration ${a.iteration}` : ""}${db}`,
          round: a.round,
          prompt: a.prompt ?? null,
          input: a.input ?? [],
          required: a.required ?? [],
          history: a.history ?? [],
        });
      }
      blockers.push(blocker);
    }
  } else if (r.status === "waiting-timer") {
    for (const t of (info.timers ?? []).filter((x) => x.kind === "timer" && x.status === "scheduled")) {
      blockers.push({
        kind: "timer",
        nodeId: t.nodeId,
        iteration: t.iteration,
        dueAt: t.dueAt,
        reason: `${t.nodeId} waits until ${t.dueAt} (a <Timer>)`,
        // Any command that opens the database for writing fires it once it is due.
        unblocker: `npx smithers resume ${r.runId}${db}`,
      });
    }
  } else if (r.status === "running" && !r.owner && r.resumeError) {
    // A watcher (smithers serve) tried and could not: say why, and what to run once fixed.
    const { code, message } = r.resumeError;
    const unblocker =
      code === "WORKFLOW_NOT_FOUND" || code === "WORKFLOW_MISMATCH"
        ? `npx smithers up <workflow file> --run-id ${r.runId} --resume${db}`
        : `npx smithers resume ${r.runId}${db}`;
    blockers.push({ kind: "resume", reason: `smithers serve could not resume this run: ${code}: ${message}`, resumeError: r.resumeError, unblocker });
  } else if (r.status === "running" && !r.owner) {
    blockers.push({ kind: "resume", reason: "No process drives this run (it was interrupted, or a decision was recorded with --no-resume)", unblocker: `npx smithers resume ${r.runId}${db}` });
  } else if (r.status === "running" && r.ownerLiveness === "dead") {
    // kill -9, a crash, a container gone: the owner's process is gone or its lease expired;
    // resume takes over.
    blockers.push({ kind: "resume", reason: `The process that drove this run (${r.owner}) is gone (its process ended, or its lease expired${r.leaseExpiresAt ? ` at ${r.leaseExpiresAt}` : ""})`, unblocker: `npx smithers resume ${r.runId}${db}` });
  } else if (r.status === "running") {
    blockers.push({ kind: "running", reason: `Being driven by ${r.owner}${r.leaseExpiresAt ? ` (its lease runs to ${r.leaseExpiresAt} unless it renews it)` : ""}`, unblocker: null });
  }
  if (r.status === "waiting-approval" || r.status === "waiting-timer") {
    // A task parked on its sub-run (the caller follows the sub-run's wait kind): name the
    // sub-run and, with `subRun`, what it waits on, down to the deepest run that waits.
    for (const n of info.nodes.filter((x) => x.state === "waiting-approval" && x.subRunId)) {
      blockers.push(subRunBlocker(r, n, subRun, db, depth));
    }
  }
  // Who rejected which step, and why: the rejection is final (RUN_REJECTED for anything else).
  const rejected = info.approvals
    .filter((a) => a.status === "rejected")
    .map((a) => ({ nodeId: a.nodeId, iteration: a.iteration, round: a.round, by: a.decidedBy, at: a.decidedAt, reason: a.reason ?? a.note ?? null }));
  const summary =
    r.status === "finished" ? "The run finished." :
    r.status === "failed" ? `The run failed${r.error ? `: ${r.error.code}: ${r.error.message}` : "."}` :
    r.status === "cancelled" ? "The run was cancelled." :
    r.status === "rejected" ? `The run was rejected${r.rejection ? ` at ${r.rejection.nodeId} by ${r.rejection.rejectedBy ?? "?"}${r.rejection.rejectionReason ? `: ${r.rejection.rejectionReason}` : ""}` : "."}` :
    blockers.length > 0 ? blockers.map((b) => b.reason).join("; ") : `The run is ${r.status}.`;
  return { runId: r.runId, status: r.status, summary, blockers, ...(rejected.length ? { rejected } : {}) };
}

/**
 * The blocker of a task `n` of run `r` parked on its sub-run: the sub-run's own blockers under
 * `subRun` (as deep as runs nest), the deepest ones flattened in `waitsOn` (each with its
 * `runId`), and the command that moves the deepest wait on: its gate's approve command, or
 * for a timer `resume` of this run (which fires it once due and moves the callers on).
 */
function subRunBlocker(r, n, subRun, db, depth) {
  const blocker = {
    kind: "sub-run",
    nodeId: n.nodeId,
    iteration: n.iteration,
    subRunId: n.subRunId,
    reason: `${n.nodeId} waits for its sub-run ${n.subRunId}`,
    unblocker: `npx smithers why ${n.subRunId}${db}`,
  };
  let sub = null;
  if (subRun && depth < 64) {
    try {
      sub = subRun(n.subRunId);
    } catch {
      sub = null; // gone (deleted, pruned): say what we know
    }
  }
  if (!sub) return blocker;
  const inner = diagnose(sub, db, subRun, depth + 1);
  const waitsOn = inner.blockers.flatMap((b) => (b.kind === "sub-run" ? b.waitsOn ?? [] : [{ runId: inner.runId, ...b }]));
  const said = inner.blockers.length > 0 ? inner.blockers.map((b) => b.reason).join("; ") : `it is ${inner.status}`;
  Object.assign(blocker, {
    subRunStatus: inner.status,
    reason: `${n.nodeId} waits for its sub-run ${n.subRunId} (${inner.status}): ${said}`,
    subRun: { runId: inner.runId, status: inner.status, blockers: inner.blockers },
    waitsOn,
  });
  if (waitsOn.length === 1) {
    const [deepest] = waitsOn;
    blocker.unblocker = deepest.kind === "timer" ? `npx smithers resume ${r.runId}${db}` : deepest.unblocker ?? blocker.unblocker;
  }
  return blocker;
}

/** ", decided by system:timeout (onTimeout deny) at …" for a gate with a deadline still to come. */
function deadlineOf(info, a) {
  const t = (info.timers ?? []).find((x) => x.kind === "approval-timeout" && x.status === "scheduled" && x.nodeId === a.nodeId && x.iteration === a.iteration);
  if (!t) return "";
  const onTimeout = JSON.parse(t.specJson ?? "{}").onTimeout ?? "deny";
  return ` (deadline ${t.dueAt}: then ${onTimeout} by system:timeout)`;
}

async function why(args) {
  const id = runId(args, "why");
  const engine = await openEngine(findDb(args.values), { readOnly: true });
  let report;
  try {
    // A sub-run's wait is read from the same database, as deep as sub-runs nest.
    const subRun = (subId) => withTimers(engine, engine.inspect(subId));
    report = diagnose(withTimers(engine, engine.inspect(id)), dbArg(engine.dbPath), subRun);
  } finally {
    engine.close();
  }
  if (args.values.json) {
    print(JSON.stringify({ ok: true, ...report }, null, 2));
    return 0;
  }
  say(`run ${report.runId}: ${report.status}`);
  say(report.summary);
  for (const r of report.rejected ?? []) {
    say(`  Rejected: ${r.nodeId}${r.iteration ? ` (iteration ${r.iteration})` : ""} by ${r.by ?? "?"} at ${r.at}: ${r.reason ?? "(no reason given)"}`);
  }
  sayBlockers(report.blockers, "  ", null);
  return 0;
}

/**
 * `why`'s lines for `blockers`, indented by `ind`; `runId` is set for a sub-run's blockers
 * (nested under the task that waits for it), whose reasons it then prints too.
 */
function sayBlockers(blockers, ind, runId) {
  const gap = runId ? "" : "\n"; // a sub-run's lines stay with the task that waits for it
  const at = (b) => `${runId ? `${runId} ` : ""}${b.nodeId}${b.iteration ? ` (iteration ${b.iteration})` : ""}`;
  for (const b of blockers) {
    if (b.kind === "approval" && b.approvalKind === "review") {
      say(`${gap}${ind}${at(b)}: ${b.reason}`);
      say(`${ind}Waiting since: ${new Date(b.waitingSince).toISOString()}`);
      say(`${ind}Digest: ${b.digest}`);
      if (b.input.length) say(`${ind}Inputs: ${inputList(b)}`);
      for (const h of b.history) say(`${ind}Earlier: ${historyLine(h)}`);
      say(`${ind}Its output: ${b.logs}`);
      say(`${ind}Unblock: ${b.unblocker}`);
      say(`${ind}Push back: ${b.pushBack}`);
      say(`${ind}Reject instead: ${b.deny}`);
    } else if (b.kind === "approval") {
      say(`${gap}${ind}${at(b)}: ${b.reason}`);
      say(`${ind}Waiting since: ${new Date(b.waitingSince).toISOString()}`);
      say(`${ind}Digest: ${b.digest}`);
      say(`${ind}Unblock: ${b.unblocker}`);
      say(`${ind}Deny instead: ${b.deny}`);
    } else if (b.kind === "sub-run" && b.subRun) {
      say(`${gap}${ind}${at(b)}: waits for its sub-run ${b.subRunId} (${b.subRunStatus})`);
      sayBlockers(b.subRun.blockers, `${ind}  `, b.subRunId);
      // The command for the deepest wait, once, at the top (a gate's is under the gate).
      const gate = b.waitsOn.length === 1 && b.waitsOn[0].kind === "approval";
      if (!runId && !gate && b.unblocker) say(`${ind}Unblock: ${b.unblocker}`);
    } else if (runId) {
      // In a sub-run: what it waits on; the command is the calling task's (above).
      say(`${gap}${ind}${runId}${b.kind === "timer" ? " " : ": "}${b.reason}`);
    } else if (b.unblocker) {
      say(`${ind}Unblock: ${b.unblocker}`);
    }
  }
}

async function logs(args) {
  const id = runId(args, "logs");
  const v = args.values;
  if (v.stderr && v.both) throw usage("--stderr and --both cannot be used together", "logs");
  const whole = (name, min) => {
    if (v[name] === undefined) return undefined;
    const n = Number(v[name]);
    if (!Number.isInteger(n) || n < min) throw usage(`--${name} must be a whole number ≥ ${min}`, "logs");
    return n;
  };
  const filter = { nodeId: v.node, iteration: whole("iteration", 0), attempt: whole("attempt", 1) };
  if (v.follow) return followLogs(id, v, filter);
  const engine = await openEngine(findDb(v), { readOnly: true });
  let attempts;
  try {
    attempts = engine.logs(id, filter);
  } finally {
    engine.close();
  }
  if (v.json) {
    print(JSON.stringify({ ok: true, runId: id, attempts }, null, 2));
    return 0;
  }
  if (attempts.length === 0) {
    print(v.node ? `no command or agent output for ${v.node} in run ${id} (it ran none yet)` : `no command or agent output in run ${id}`);
    return 0;
  }
  const { agentLog } = await import("./follow.js");
  const text = (t) => (t === "" || t.endsWith("\n") ? t : `${t}\n`);
  for (const a of attempts) {
    // "exit 0", "exit 7", or the state when there is no exit code (killed, still running,
    // abandoned); both when they disagree (exit 0, but stdout was not the JSON it should be).
    const exited = a.exitCode !== null && a.exitCode !== undefined;
    const plain = exited && ((a.exitCode === 0 && a.state === "finished") || (a.exitCode !== 0 && a.state === "failed"));
    const how = !exited ? a.state : plain ? `exit ${a.exitCode}` : `exit ${a.exitCode}, ${a.state}`;
    const head = `== ${a.nodeId}${a.iteration ? ` [iteration ${a.iteration}]` : ""} (attempt ${a.attempt}, ${how}${agentNote(a)})`;
    if (a.prompt != null) {
      printRaw(`${head} ==\n${agentLog(a, v)}`);
    } else if (v.both) {
      printRaw(`${head} ==\n-- stdout --\n${text(a.stdout)}-- stderr --\n${text(a.stderr)}`);
    } else if (v.stderr) {
      printRaw(`${head} stderr ==\n${text(a.stderr)}`);
    } else {
      printRaw(`${head} ==\n${text(a.stdout)}`);
    }
  }
  return 0;
}

/** `smithers logs --follow`: the run's command output as it is written, until the run ends. */
async function followLogs(id, v, filter) {
  if (v.json) throw usage("--follow prints lines as they are written; leave out --json", "logs");
  const { OutputTail, outputLine, pollUntilEnd } = await import("./follow.js");
  const engine = await openEngine(findDb(v), { readOnly: true });
  try {
    const streams = v.both ? ["stdout", "stderr"] : v.stderr ? ["stderr"] : ["stdout"];
    const tail = new OutputTail(engine.native, id, { ...filter, streams });
    const write = (lines) => {
      for (const l of lines) print(outputLine(l));
    };
    const status = await pollUntilEnd(engine.native, id, () => write(tail.poll()), { stopped: false });
    write(tail.flush());
    return (await vocabulary()).runExitCode(status);
  } finally {
    engine.close();
  }
}

/** `smithers events`: a run's events (--run) or every run's (the feed), and with --follow, new ones. */
async function events(args) {
  const v = args.values;
  if (args.positionals.length > 0) throw usage(`unexpected argument ${JSON.stringify(args.positionals[0])}; name a run with --run ID`, "events");
  let cursor = 0;
  if (v.after !== undefined) {
    cursor = Number(v.after);
    if (!Number.isInteger(cursor) || cursor < 0) throw usage("--after must be a whole number ≥ 0", "events");
  }
  const { eventLine, pollUntilEnd } = await import("./follow.js");
  const engine = await openEngine(findDb(v), { readOnly: true });
  try {
    if (v.run) engine.getRun(v.run); // RUN_NOT_FOUND before anything is printed
    const drain = () => {
      for (;;) {
        const batch = v.run ? engine.events(v.run, { afterSeq: cursor, limit: 1000 }) : engine.feed(cursor, 1000);
        for (const e of batch) print(v.json ? JSON.stringify(e) : eventLine(e));
        if (batch.length > 0) cursor = v.run ? batch.at(-1).seq : batch.at(-1).feedId;
        if (batch.length < 1000) return;
      }
    };
    if (!v.follow) {
      drain();
      return 0;
    }
    const status = await pollUntilEnd(engine.native, v.run ?? null, drain, { stopped: false });
    return v.run ? (await vocabulary()).runExitCode(status) : 0;
  } finally {
    engine.close();
  }
}

/** `, agent X (model), N in / M out tokens` for an agent attempt's heading. */
function agentNote(a) {
  if (a.prompt == null) return "";
  const who = a.agent?.agent ? `, agent ${a.agent.agent}${a.agent.model ? ` (${a.agent.model})` : ""}` : "";
  const u = a.usage ?? {};
  const tokens = u.inputTokens != null || u.outputTokens != null ? `, ${u.inputTokens ?? "?"} in / ${u.outputTokens ?? "?"} out tokens` : "";
  const tools = a.agent?.toolCalls ? `, ${a.agent.toolCalls} tool call${a.agent.toolCalls === 1 ? "" : "s"}` : "";
  return `${who}${tokens}${tools}`;
}

async function cancel(args) {
  const id = runId(args, "cancel");
  const engine = await openEngine(findDb(args.values));
  const result = engine.cancel(id);
  engine.close();
  print(args.values.json ? JSON.stringify({ ok: true, ...result }, null, 2) : `run ${id}: ${result.status}`);
  return 0;
}

/** A line of text output that may hold what users wrote (notes, task errors, stderr lines). */
const say = (line = "") => print(printable(line));
