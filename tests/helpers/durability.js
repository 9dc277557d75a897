// Shared helpers for the durability and Node API tests: temp dirs, CLI child processes
// (all tracked so an `after` hook can kill whatever is still alive), effect files.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "..", "..");
export const PKG = join(ROOT, "npm", "smithers-rs");
export const CLI = join(PKG, "bin", "smithers.js");
/** file: URL of the package entry, for scripts written to temp dirs. */
export const PKG_INDEX_URL = new URL(`file://${join(PKG, "src", "index.js")}`).href;

const dirs = new Set();

/** A new temp dir, removed by `removeDirs()` (kept when $SMITHERS_KEEP_TMP is set). */
export function freshDir(prefix = "smithers-dur-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/** Removes the temp dirs made by `freshDir`. Use in `after` hooks, after `killAll`. */
export function removeDirs() {
  if (process.env.SMITHERS_KEEP_TMP) return;
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

/** Every child process spawned through these helpers, so tests can kill leftovers. */
const children = new Set();

/** Kills (SIGKILL) every child still running. Use in `after` hooks. */
export function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

/**
 * Spawns `node <args>` and returns the child plus a promise of its end.
 * @param {string[]} args arguments after `node`
 * @param {{ env?: Record<string, string>, cwd?: string }} [opts]
 */
export function spawnNode(args, opts = {}) {
  const child = spawn(process.execPath, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  const done = new Promise((resolveDone) => {
    child.on("close", (code, signal) => {
      children.delete(child);
      resolveDone({ code, signal, stdout, stderr });
    });
  });
  return { child, done, output: () => ({ stdout, stderr }) };
}

/** Spawns the smithers CLI. */
export const spawnCli = (args, opts) => spawnNode([CLI, ...args], opts);

/** Runs the smithers CLI to its end: { code, signal, stdout, stderr }. */
export const cli = (args, opts) => spawnCli(args, opts).done;

/** Runs `smithers <cmd> … --json` and parses stdout. */
export async function cliJson(args, opts) {
  const r = await cli([...args, "--json"], opts);
  let json;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(`smithers ${args.join(" ")} --json printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { ...r, json };
}

/**
 * Polls until `predicate()` is truthy. Rejects after `timeoutMs` with `what`, so a test that
 * waits for an effect fails instead of hanging.
 */
export async function waitFor(predicate, { timeoutMs = 30_000, what = "condition", intervalMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Lines of an effects file as [{ what, pid }]; [] when the file does not exist yet. */
export function readEffects(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [what, pid] = line.split(" ");
      return { what, pid: Number(pid) };
    });
}

/** How many times each effect was recorded: { pre: 1, "slow-start": 2, … }. */
export function countEffects(file) {
  const counts = {};
  for (const { what } of readEffects(file)) counts[what] = (counts[what] ?? 0) + 1;
  return counts;
}

/** Writes a file into `dir` and returns its path. */
export function writeIn(dir, name, text) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/**
 * The kill -9 workflow (Smithers style .tsx, zod). Each compute body appends
 * `<what> <pid>` to $EFFECTS. `slow` blocks until $RELEASE exists.
 *   pre -> slow -> <Approval gate> -> after
 */
export const KILLMID_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { appendFileSync, existsSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  step: z.object({ v: z.number() }),
  gate: approvalDecisionSchema,
});

const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);
const until = async (file: string) => {
  while (!existsSync(file)) await new Promise((r) => setTimeout(r, 20));
};

export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="killmid">
      <Sequence>
        <Task id="pre" output={outputs.step}>
          {() => {
            mark("pre");
            return { v: 1 };
          }}
        </Task>
        <Task id="slow" output={outputs.step}>
          {async () => {
            mark("slow-start");
            await until(process.env.RELEASE as string);
            mark("slow-end");
            return { v: 2 };
          }}
        </Task>
        <Approval id="gate" output={outputs.gate} request={{ title: "Continue?", summary: "after slow" }} onDeny="continue" />
        {decision ? (
          <Task id="after" output={outputs.step}>
            {() => {
              mark("after");
              return { v: 3 };
            }}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
`;

/**
 * A gate-only workflow for the racing approvers: `pre` -> <Approval gate> -> `after`
 * (`after` runs only when approved). Effects go to $EFFECTS.
 */
export const GATE_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  step: z.object({ v: z.number() }),
  gate: approvalDecisionSchema,
});

const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);

export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="race">
      <Sequence>
        <Task id="pre" output={outputs.step}>
          {() => {
            mark("pre");
            return { v: 1 };
          }}
        </Task>
        <Approval id="gate" output={outputs.gate} request={{ title: "Race?" }} onDeny="continue" />
        {decision?.approved ? (
          <Task id="after" output={outputs.step}>
            {() => {
              mark("after");
              return { v: 3 };
            }}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
`;

/** Two gates in parallel, each followed by its own task (a1, a2). Effects go to $EFFECTS. */
export const TWO_GATES_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Parallel, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  step: z.object({ v: z.number() }),
  gate: approvalDecisionSchema,
});

const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);

export default smithers((ctx) => {
  const g1 = ctx.outputMaybe(outputs.gate, { nodeId: "g1" });
  const g2 = ctx.outputMaybe(outputs.gate, { nodeId: "g2" });
  return (
    <Workflow name="two-gates">
      <Parallel>
        <Sequence>
          <Approval id="g1" output={outputs.gate} request={{ title: "one" }} />
          {g1 ? (
            <Task id="a1" output={outputs.step}>
              {() => {
                mark("a1");
                return { v: 1 };
              }}
            </Task>
          ) : null}
        </Sequence>
        <Sequence>
          <Approval id="g2" output={outputs.gate} request={{ title: "two" }} />
          {g2 ? (
            <Task id="a2" output={outputs.step}>
              {() => {
                mark("a2");
                return { v: 2 };
              }}
            </Task>
          ) : null}
        </Sequence>
      </Parallel>
    </Workflow>
  );
});
`;

/**
 * `pre` -> `slow` (until $RELEASE exists) -> `after`, each appending `<what> <pid>` to
 * $EFFECTS: a run that can be held mid-task from outside (leases, worker faults).
 * @param {string} name the workflow's name
 */
export const slowTsx = (name) => `/** @jsxImportSource smithers-orchestrator */
import { Sequence, Task, createSmithers } from "smithers-orchestrator";
import { appendFileSync, existsSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ pid: z.number() }) });
const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);
const until = async (file: string) => {
  while (!existsSync(file)) await new Promise((r) => setTimeout(r, 20));
};

export default smithers(() => (
  <Workflow name="${name}">
    <Sequence>
      <Task id="pre" output={outputs.step}>{() => { mark("pre"); return { pid: process.pid }; }}</Task>
      <Task id="slow" output={outputs.step}>
        {async () => {
          mark("slow-start");
          await until(process.env.RELEASE as string);
          mark("slow-end");
          return { pid: process.pid };
        }}
      </Task>
      <Task id="after" output={outputs.step}>{() => { mark("after"); return { pid: process.pid }; }}</Task>
    </Sequence>
  </Workflow>
));
`;
