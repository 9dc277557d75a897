// <Worktree>: the git worktree a task runs in, created by the driver before the first task
// inside it runs (as Smithers' engine does). git runs through the core's command runner
// (its own process group, a timeout, logs next to the run's task logs).
import { join } from "node:path";
import { SmithersError } from "./errors.js";
import { runCommand } from "./native.js";

// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { existsSync } = process.getBuiltinModule("node:fs");

/** One git command may take this long (a checkout of a large repository). */
const GIT_TIMEOUT_MS = 120_000;

/**
 * Creations in this process run one at a time: `git worktree add` takes locks in the
 * repository, and two tasks of one worktree must not both create it.
 */
let queue = Promise.resolve();

/**
 * Makes sure the worktree exists: a directory that exists is used as it is; otherwise `git
 * worktree add [-B branch] <path> <ref>` in the repository around `rootDir`, from the first
 * ref that works of `baseBranch` (default `main`), `origin/<baseBranch>`, `HEAD`.
 * @param {import("./render.js").WorktreeSpec} spec
 * @param {{ rootDir: string, logDir: string, runId: string, record: (type: string, payload: object) => void }} where
 * @returns {Promise<{ created: boolean }>}
 */
export function ensureWorktree(spec, where) {
  const next = queue.then(() => create(spec, where));
  queue = next.catch(() => {});
  return next;
}

async function create(spec, { rootDir, logDir, runId, record }) {
  if (existsSync(spec.path)) return { created: false };
  let calls = 0;
  const git = (args, cwd) => {
    calls += 1;
    const base = join(logDir, runId, `${spec.id.replace(/[^A-Za-z0-9_.-]/g, "_")}.${Date.now()}.${calls}`);
    return runCommand({
      program: "git",
      args,
      cwd,
      env: [],
      timeoutMs: GIT_TIMEOUT_MS,
      stdoutPath: `${base}.stdout.log`,
      stderrPath: `${base}.stderr.log`,
    });
  };
  const why = (o) => o.spawnError ?? (o.timedOut ? "timed out" : o.stderr.trim().split("\n").pop() || `exit ${o.exitCode}`);
  const top = await git(["rev-parse", "--show-toplevel"], rootDir);
  if (top.exitCode !== 0 || top.timedOut || top.spawnError) {
    throw new SmithersError(
      "VCS_NOT_FOUND",
      `<Worktree id="${spec.id}">: no git repository around ${rootDir} to make a worktree from (${why(top)})`,
      { worktree: spec.id, rootDir },
    );
  }
  const repo = top.stdout.trim();
  const base = spec.baseBranch ?? "main";
  const refs = [base, `origin/${base}`, "HEAD"];
  const failures = [];
  for (const ref of refs) {
    const outcome = await git(["worktree", "add", ...(spec.branch ? ["-B", spec.branch] : []), spec.path, ref], repo);
    if (outcome.exitCode === 0 && !outcome.timedOut && !outcome.spawnError) {
      record("WorktreeCreated", { worktree: spec.id, path: spec.path, branch: spec.branch ?? null, ref });
      return { created: true };
    }
    failures.push(`${ref}: ${why(outcome)}`);
  }
  throw new SmithersError(
    "WORKTREE_CREATE_FAILED",
    `<Worktree id="${spec.id}">: git worktree add ${spec.path}${spec.branch ? ` on branch ${spec.branch}` : ""} failed from ${failures.join("; ")}`,
    { worktree: spec.id, path: spec.path, branch: spec.branch ?? null },
  );
}
