#!/usr/bin/env node
// Runs every workflow of Smithers' own `examples/` folder, unmodified, on smithers-rs, with
// scripted models standing in for the providers, and reports pass/fail per example with
// the reason.
//
//   node scripts/smithers-examples.js [DIR] [--repo GIT_DIR] [--only NAME,…] [--jobs N] [--json]
//
// The examples (examples/*.jsx, _example-kit.js, prompts/) are extracted from a git copy of
// smithersai/smithers (default: the mirror at /work/.mirror/smithersai+smithers/repo, or
// $SMITHERS_REPO) into DIR (default: a new temporary directory). Models: a loopback
// server speaking Anthropic's Messages API (ANTHROPIC_BASE_URL) for the `anthropic("…")`
// models of `ai` ToolLoopAgents, and stand-in CLIs on PATH for Smithers' CLI agents. Each
// example runs with `smithers up` in a child process; a run that waits for approval is
// approved, and the approval examples run a second time to be denied, and each end is
// checked against what the example intends. DIR is made a git repository (a commit on
// `main`), as Smithers' examples live in one: <Worktree> makes its worktrees from it.
//
// Some examples fail in Smithers itself (FAILS_IN_SMITHERS: checked with
// smithers-orchestrator 0.32.0 on bun, with the same scripted model): they are reported
// apart, as "fails in Smithers too", when ours refuses them with the code listed there.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startAnthropicStandIn } from "./lib/anthropic-stand-in.js";
import { installCliStandIns } from "./lib/cli-stand-in.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "npm/smithers-rs/bin/smithers.js");
const DEFAULT_REPO = "/work/.mirror/smithersai+smithers/repo";
/** One example (with its approvals) may take this long. */
const EXAMPLE_TIMEOUT_MS = 300_000;

/**
 * What each approval example intends, after an approve and after a deny: a check over the
 * run's final outputs (`out(table, nodeId)` is that row, or undefined).
 */
const INTENDED = {
  "rollback-advisor": {
    approve: (out) => out("action", "act")?.action === "rollback" || "the approved rollback is not the action taken",
    deny: (out) => out("action", "act")?.action === "observe" || "a denied rollback should leave the service observed",
  },
  "lead-router-with-approval": {
    approve: (out) => (out("approval", "approve-route")?.approved === true && out("sink", "sink") !== undefined) || "the approved lead was not written",
    deny: (out) => out("approval", "approve-route")?.approved === false || "the denial is not recorded",
  },
  "ransomware-isolation-coordinator": {
    approve: (out) => out("containment", "contain") !== undefined || "approved containment did not run",
    deny: (out) => (out("containment", "contain") === undefined && out("report", "report") !== undefined) || "containment ran without approval, or no report",
  },
  "runbook-executor": {
    // The risky steps run in a second loop of "execute" tasks once approved; the review sees them.
    approve: (out) => out("approval", "approve-risky")?.approved === true || "the risky steps were not approved",
    deny: (out) => (out("approval", "approve-risky")?.approved === false && out("review", "review") !== undefined) || "the denial is not recorded, or no review",
  },
};

/**
 * Examples that fail in Smithers 0.32.0 too, each with the code our runtime refuses it with
 * and why Smithers fails (file:line in the npm packages @smithers-orchestrator/*@0.32.0).
 */
const ELEMENT_AS_OUTPUT =
  "a <Task> with an MDX prompt as children but no agent: Smithers stores the React element as the task's output " +
  "(components/src/components/taskCore.js:309, graph/src/dom/extract.js:971), which fails the output schema " +
  "(engine/src/effect/static-task-bridge.js:155-163: INVALID_OUTPUT, not retried) and the run";
const DECISION_MISSES_FIELD = (field) =>
  `its <Approval> writes {approved, note, decidedBy, decidedAt} (components/src/components/Approval.js:80-93) to a schema ` +
  `that requires ${field}: the decision fails validation after it is made (engine/src/effect/compute-task-bridge.js:843-851) and the run fails`;
const FAILS_IN_SMITHERS = {
  ...Object.fromEntries(
    [
      "alert-suppressor", "bisect-guide", "change-blast-radius", "collector-probe", "config-diff-explainer",
      "contract-drift-sentinel", "dynamic-schema-enricher", "feedback-pulse", "financial-inbox-guard",
      "form-filler-assistant", "lead-enricher", "meeting-briefer", "pr-shepherd", "slo-breach-explainer",
      "social-inbox-router", "threat-intel-enricher", "trace-explainer", "trust-safety-moderator",
    ].map((name) => [name, { code: "INVALID_PROP", why: ELEMENT_AS_OUTPUT }]),
  ),
  "lead-router-with-approval": { code: "APPROVAL_SCHEMA_MISMATCH", why: DECISION_MISSES_FIELD("reviewer") },
  "ransomware-isolation-coordinator": { code: "APPROVAL_SCHEMA_MISMATCH", why: DECISION_MISSES_FIELD("approvedBy") },
  "runbook-executor": { code: "APPROVAL_SCHEMA_MISMATCH", why: DECISION_MISSES_FIELD("approvedBy") },
};

/** The input of examples that read a field with no default (as a user would pass it with --input). */
const INPUTS = {
  gastown: { goal: "Add a /healthz endpoint and document it", directory: ".", maxAgents: 2 },
};

function run(args, { env, cwd, timeoutMs }) {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      let json = null;
      try {
        json = JSON.parse(stdout);
      } catch {
        // not --json, or cut off
      }
      done({ code: signal ? `killed (${signal})` : code, stdout, stderr, json });
    });
  });
}

const lastLine = (s) => s.trim().split("\n").filter(Boolean).pop() ?? "";

/**
 * One run of an example to its end: `up`, then while it waits, decide every pending gate
 * (approve, or deny the first one when `deny`). Returns the final inspection or a failure.
 */
async function runExample(file, { env, dir, deny, deadline }) {
  const name = basename(file, ".jsx");
  const db = join(dir, "dbs", `${name}${deny ? ".deny" : ""}.db`);
  const left = () => Math.max(1_000, deadline - Date.now());
  const input = INPUTS[name] ? ["--input", JSON.stringify(INPUTS[name])] : [];
  let result = await run(["up", file, "--db", db, "--json", ...input], { env, cwd: dir, timeoutMs: left() });
  const runId = result.json?.runId;
  let decided = 0;
  while (result.code === 3 && runId) {
    const why = await run(["inspect", runId, "--db", db, "--json"], { env, cwd: dir, timeoutMs: left() });
    const pending = (why.json?.approvals ?? []).filter((a) => a.status === "requested");
    if (pending.length === 0) return { ok: false, reason: "waits, but no approval is pending" };
    for (const a of pending) {
      const verb = deny && decided === 0 ? "deny" : "approve";
      decided += 1;
      const decision = await run([verb, runId, "--node", a.nodeId, "--iteration", String(a.iteration), "--by", "examples-script", "--db", db, "--json"], {
        env,
        cwd: dir,
        timeoutMs: left(),
      });
      // Refused (nothing recorded): an error and no decision in the answer.
      if (decision.json?.error && !decision.json?.status) {
        const e = decision.json.error;
        return { ok: false, reason: `${verb} ${a.nodeId} refused: ${e.code}: ${e.message}` };
      }
    }
    // The decision resumed the run; read where it ended.
    const after = await run(["inspect", runId, "--db", db, "--json"], { env, cwd: dir, timeoutMs: left() });
    const status = after.json?.run?.status;
    result = { code: status === "finished" ? 0 : status === "waiting-approval" ? 3 : status === "cancelled" ? 2 : 1, json: after.json, stderr: "" };
    if (decided > 20) return { ok: false, reason: "more than 20 approvals asked" };
  }
  if (!runId) {
    const err = result.json?.error;
    return { ok: false, code: err?.code ?? null, reason: `${result.code}: ${err ? `${err.code}: ${err.message}` : lastLine(result.stderr) || lastLine(result.stdout)}` };
  }
  const info = (await run(["inspect", runId, "--db", db, "--json"], { env, cwd: dir, timeoutMs: left() })).json;
  if (info?.run?.status !== "finished") {
    const err = info?.run?.error;
    return { ok: false, code: err?.code ?? null, reason: `run ${info?.run?.status ?? "?"}${err ? `: ${err.code}: ${err.message}` : ""}`, info, decided };
  }
  return { ok: true, info, decided };
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      repo: { type: "string" },
      only: { type: "string" },
      jobs: { type: "string", default: "2" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    // The usage is the comment at the top of this file.
    const head = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1);
    const end = head.findIndex((l) => !l.startsWith("//"));
    process.stdout.write(`${head.slice(0, end).map((l) => l.replace(/^\/\/ ?/, "")).join("\n")}\n`);
    return;
  }
  const repo = values.repo ?? process.env.SMITHERS_REPO ?? DEFAULT_REPO;
  const dir = resolve(positionals[0] ?? mkdtempSync(join(tmpdir(), "smithers-examples-")));
  mkdirSync(join(dir, "dbs"), { recursive: true });
  if (!existsSync(join(dir, "examples"))) {
    const tar = execFileSync("git", [`--git-dir=${repo}`, "archive", "HEAD", "examples"], { maxBuffer: 256 * 1024 * 1024 });
    execFileSync("tar", ["-x", "-C", dir], { input: tar });
  }
  if (!existsSync(join(dir, ".git"))) {
    const git = (...args) => execFileSync("git", ["-C", dir, "-c", "user.name=examples", "-c", "user.email=examples@localhost", ...args], { stdio: "ignore" });
    writeFileSync(join(dir, ".gitignore"), "dbs/\ncache/\nbin/\n.worktrees/\n*.db*\n*.logs/\n");
    git("init", "-q", "-b", "main");
    git("add", "-A");
    git("commit", "-q", "-m", "Smithers' examples");
  }
  const examplesDir = join(dir, "examples");
  let files = readdirSync(examplesDir)
    .filter((f) => f.endsWith(".jsx"))
    .sort();
  if (values.only) {
    const only = new Set(values.only.split(",").map((s) => s.trim()));
    files = files.filter((f) => only.has(basename(f, ".jsx")));
  }
  const model = await startAnthropicStandIn({ readPath: "_example-kit.js" });
  const bin = installCliStandIns(join(dir, "bin"));
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    ANTHROPIC_BASE_URL: model.url,
    ANTHROPIC_API_KEY: "scripted-stand-in",
    SMITHERS_CACHE_DIR: join(dir, "cache"),
  };
  delete env.SMITHERS_DB;

  const results = [];
  const queue = [...files];
  const worker = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      const name = basename(file, ".jsx");
      const path = join(examplesDir, file);
      const deadline = Date.now() + EXAMPLE_TIMEOUT_MS;
      const started = Date.now();
      const first = await runExample(path, { env, dir, deny: false, deadline });
      let outcome = first;
      const intended = INTENDED[name];
      if (first.ok && intended) {
        const checked = check(intended.approve, first.info);
        if (checked !== true) outcome = { ok: false, reason: `approve: ${checked}` };
        else {
          const second = await runExample(path, { env, dir, deny: true, deadline });
          const denied = second.ok ? check(intended.deny, second.info) : second.reason;
          outcome = denied === true ? { ok: true, decided: first.decided + second.decided } : { ok: false, reason: `deny: ${denied}` };
        }
      } else if (first.ok && first.decided > 0) {
        outcome = { ...first, note: `${first.decided} approval(s) approved` };
      }
      const known = FAILS_IN_SMITHERS[name];
      const asInSmithers = !outcome.ok && known !== undefined && outcome.code === known.code;
      const row = {
        example: name,
        ok: outcome.ok,
        failsInSmithers: asInSmithers ? known.why : null,
        reason: outcome.reason ?? null,
        approvals: outcome.decided ?? 0,
        ms: Date.now() - started,
      };
      results.push(row);
      const verdict = row.ok ? "pass" : asInSmithers ? "fails in Smithers too" : "FAIL";
      if (!values.json) {
        const why = asInSmithers ? `\n      in Smithers 0.32: ${known.why}` : "";
        console.log(`${verdict}  ${name}${row.approvals ? ` (${row.approvals} decisions)` : ""}${row.reason ? `  — ${row.reason}` : ""}${why}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Number(values.jobs) || 1) }, worker));
  await model.close();
  results.sort((a, b) => a.example.localeCompare(b.example));
  const passed = results.filter((r) => r.ok).length;
  const asInSmithers = results.filter((r) => r.failsInSmithers).length;
  const failed = results.length - passed - asInSmithers;
  if (values.json) console.log(JSON.stringify({ dir, passed, failsInSmithersToo: asInSmithers, failed, results }, null, 2));
  else {
    console.log(`\n${passed} passed, ${asInSmithers} fail in Smithers too (refused here with a stable code), ${failed} failed (examples in ${examplesDir})`);
  }
  return failed === 0 ? 0 : 1;
}

function check(fn, info) {
  const rows = info?.outputs ?? [];
  const out = (table, nodeId) => rows.find((r) => r.table === table && r.nodeId === nodeId)?.value;
  try {
    return fn(out, rows);
  } catch (e) {
    return String(e?.message ?? e);
  }
}

process.exitCode = await main();
