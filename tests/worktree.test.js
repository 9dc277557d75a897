// <Worktree> and <MergeQueue> end to end, with real git: a worktree is made (on its branch,
// from the base branch) before the first task inside it runs, and command tasks, agents and
// their tools work in it; a merge queue runs its tasks one at a time.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ToolLoopAgent } from "ai";
import { z } from "zod";
import { MergeQueue, Parallel, SmithersEngine, Worktree, commandResultSchema, createSmithers } from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";
import { read, write } from "../npm/smithers-rs/src/tools.js";
import { freshDir, removeDirs } from "./helpers/durability.js";
import { json, scriptedModel, toolCall } from "./helpers/models.js";

after(() => removeDirs());

const h = (type, props, ...children) =>
  jsx(type, children.length === 0 ? { ...props } : { ...props, children: children.length === 1 ? children[0] : children });

const { Workflow, Sequence, Task, smithers, outputs } = createSmithers({
  cmd: commandResultSchema,
  note: z.object({ text: z.string() }),
});

const git = (cwd, ...args) =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@localhost", ...args], { cwd, encoding: "utf8" }).trim();

/** A repository with one commit on main (README.md), and an engine on a database beside it. */
function repoAndEngine(t) {
  const dir = freshDir("smithers-worktree-");
  const repo = join(dir, "repo");
  execFileSync("git", ["init", "-q", "-b", "main", repo]);
  writeFileSync(join(repo, "README.md"), "main\n");
  writeFileSync(join(repo, ".gitignore"), ".worktrees/\n");
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "first");
  const engine = new SmithersEngine({ dbPath: join(dir, "smithers.db") });
  t.after(() => engine.close());
  return { dir, repo, engine, workflowPath: join(repo, "wf.tsx") };
}

const stdoutOf = (info, id) => info.outputs.find((o) => o.nodeId === id)?.value.stdout;

describe("<Worktree>", () => {
  test("its tasks run in a git worktree made on first use, on its branch from main; later tasks reuse it", async (t) => {
    const { repo, engine, workflowPath } = repoAndEngine(t);
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "in-a-worktree" },
        h(
          Worktree,
          { path: ".worktrees/feature", branch: "feature/a" },
          h(
            Sequence,
            {},
            h(Task, { id: "where", output: outputs.cmd, command: "git rev-parse --abbrev-ref HEAD; pwd; cat README.md" }),
            h(Task, { id: "change", output: outputs.cmd, command: "echo work > work.txt && git add work.txt && git -c user.name=t -c user.email=t@localhost commit -qm work && git log --format=%s" }),
            h(Task, { id: "later", output: outputs.note }, () => ({ text: "after" })),
          ),
        ),
        h(Task, { id: "outside", output: outputs.cmd, command: "git rev-parse --abbrev-ref HEAD; pwd" }),
      ),
    );
    const { runId, done } = await engine.start(wf, { workflowPath });
    assert.equal((await done).status, "finished");
    const info = engine.inspect(runId);
    const tree = join(repo, ".worktrees/feature");
    assert.equal(stdoutOf(info, "where"), `feature/a\n${tree}\nmain\n`);
    assert.equal(stdoutOf(info, "change"), "work\nfirst\n");
    assert.equal(stdoutOf(info, "outside"), `main\n${repo}\n`, "a task outside the worktree runs in the workflow's directory");
    // The commit is on the worktree's branch; main and the main checkout are untouched.
    assert.equal(git(repo, "log", "--format=%s", "feature/a"), "work\nfirst");
    assert.equal(git(repo, "log", "--format=%s", "main"), "first");
    assert.equal(existsSync(join(repo, "work.txt")), false);
    const created = engine.events(runId).filter((e) => e.type === "WorktreeCreated");
    assert.equal(created.length, 1, "made once, for the first task");
    assert.equal(created[0].path, tree);
    assert.equal(created[0].branch, "feature/a");
    assert.equal(created[0].ref, "main");
  });

  test("an agent in a worktree works there: its tools are confined to the worktree", async (t) => {
    const { repo, engine, workflowPath } = repoAndEngine(t);
    const model = scriptedModel((_o, n) =>
      n === 1 ? toolCall("write", { path: "PLAN.md", content: "step 1\n" }, "w1") : n === 2 ? toolCall("read", { path: "../../README.md" }, "r1") : json({ text: "planned" }),
    );
    const agent = new ToolLoopAgent({ model, tools: { read, write } });
    const wf = smithers(() =>
      h(Workflow, { name: "agent-worktree" }, h(Worktree, { path: ".worktrees/plan", branch: "plan" }, h(Task, { id: "plan", output: outputs.note, agent }, "Write the plan."))),
    );
    const { runId, done } = await engine.start(wf, { workflowPath });
    assert.equal((await done).status, "finished");
    assert.equal(readFileSync(join(repo, ".worktrees/plan/PLAN.md"), "utf8"), "step 1\n");
    assert.equal(existsSync(join(repo, "PLAN.md")), false);
    const results = model.doGenerateCalls.at(-1).prompt.filter((m) => m.role === "tool").flatMap((m) => m.content);
    const readResult = results.find((r) => r.toolCallId === "r1").output;
    assert.equal(readResult.type, "error-text", "the main checkout is outside the task's directory");
    assert.deepEqual(engine.inspect(runId).outputs[0].value, { text: "planned" });
  });

  test("two tasks of one worktree in parallel make it once; another base branch is taken when given", async (t) => {
    const { repo, engine, workflowPath } = repoAndEngine(t);
    git(repo, "checkout", "-q", "-b", "release");
    writeFileSync(join(repo, "README.md"), "release\n");
    git(repo, "commit", "-qam", "release");
    git(repo, "checkout", "-q", "main");
    const wf = smithers(() =>
      h(
        Workflow,
        { name: "parallel-worktree" },
        h(
          Worktree,
          { path: ".worktrees/hotfix", branch: "hotfix", baseBranch: "release" },
          h(Parallel, {}, h(Task, { id: "a", output: outputs.cmd, command: "cat README.md" }), h(Task, { id: "b", output: outputs.cmd, command: "cat README.md" })),
        ),
      ),
    );
    const { runId, done } = await engine.start(wf, { workflowPath });
    assert.equal((await done).status, "finished");
    const info = engine.inspect(runId);
    assert.deepEqual([stdoutOf(info, "a"), stdoutOf(info, "b")], ["release\n", "release\n"]);
    assert.equal(engine.events(runId).filter((e) => e.type === "WorktreeCreated").length, 1);
  });

  test("outside a git repository the task fails with VCS_NOT_FOUND; a bad path or prop is refused", async (t) => {
    const dir = freshDir("smithers-no-git-");
    const engine = new SmithersEngine({ dbPath: join(dir, "smithers.db") });
    t.after(() => engine.close());
    const wf = smithers(() => h(Workflow, {}, h(Worktree, { path: "wt" }, h(Task, { id: "x", output: outputs.cmd, command: "true" }))));
    const run = await engine.run(wf, { workflowPath: join(dir, "wf.tsx") });
    assert.equal(run.status, "failed");
    assert.equal(run.error.code, "VCS_NOT_FOUND", JSON.stringify(run.error));
    assert.equal(existsSync(join(dir, "wt")), false);

    const bad = (props) => smithers(() => h(Workflow, {}, h(Worktree, props, h(Task, { id: "x", output: outputs.note }, { text: "x" }))));
    await assert.rejects(engine.run(bad({ path: "  " }), {}), (e) => e.code === "INVALID_PROP");
    await assert.rejects(engine.run(bad({ path: "wt", sync: true }), {}), (e) => e.code === "UNSUPPORTED_PROP" && e.details.prop === "sync");
  });
});

describe("<MergeQueue>", () => {
  /** Compute tasks that note how many of them run at once. */
  function counted(n, queueProps) {
    const seen = { now: 0, max: 0 };
    const body = async () => {
      seen.now += 1;
      seen.max = Math.max(seen.max, seen.now);
      await new Promise((r) => setTimeout(r, 30));
      seen.now -= 1;
      return { text: "merged" };
    };
    const tasks = Array.from({ length: n }, (_, i) => h(Task, { id: `merge-${i}`, output: outputs.note }, body));
    const wf = smithers(() => h(Workflow, { name: "queue" }, h(MergeQueue, queueProps, ...tasks)));
    return { wf, seen };
  }

  test("runs its tasks one at a time by default, maxConcurrency at a time when given", async (t) => {
    const engine = new SmithersEngine({ dbPath: join(freshDir("smithers-queue-"), "smithers.db") });
    t.after(() => engine.close());
    const one = counted(4, {});
    assert.equal((await engine.run(one.wf, {})).status, "finished");
    assert.equal(one.seen.max, 1);
    const two = counted(4, { maxConcurrency: 2 });
    assert.equal((await engine.run(two.wf, {})).status, "finished");
    assert.equal(two.seen.max, 2);
    await assert.rejects(engine.run(counted(1, { maxConcurrency: 0 }).wf, {}), (e) => e.code === "INVALID_PROP");
  });
});
