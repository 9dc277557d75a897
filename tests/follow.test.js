// Watching a run as it goes: `smithers up --live` shows command output while the command still
// runs, and an agent's tool calls and answer as they come, prefixed by node; `smithers logs
// --follow` and `smithers events --follow --run` tail the run from other processes until it
// ends (finished, or rejected), across a wait for approval.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { BIN, REPO, expectExit, sandbox, smithers } from "./helpers/cli.js";
import { waitFor } from "./helpers/durability.js";

const WORKFLOW = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, commandResultSchema, createSmithers } from "smithers-orchestrator";

const { Workflow, smithers, outputs } = createSmithers({
  out: commandResultSchema,
  gate: approvalDecisionSchema,
});

export default smithers(() => (
  <Workflow name="follow">
    <Sequence>
      <Task id="slow" output={outputs.out} command={"echo one; sleep 1; echo two; echo oops >&2; sleep 1; printf three"} />
      <Approval id="gate" output={outputs.gate} request={{ title: "Go on?" }} />
      <Task id="after" output={outputs.out} command="echo done" />
    </Sequence>
  </Workflow>
));
`;

// An agent of the workflow's own (Smithers' AgentLike, no model): it reads notes.txt with
// smithers' read tool, works a while, then answers with the JSON its task asks for. Its task is
// reviewed, so a reviewer can reject it.
const AGENT_WORKFLOW = `/** @jsxImportSource smithers-orchestrator */
import { Task, createSmithers } from "smithers-orchestrator";
import { read } from "smithers-orchestrator/tools";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ draft: z.object({ title: z.string() }) });

const writer = {
  id: "writer",
  async generate() {
    const notes = await read.execute({ path: "notes.txt" }, { toolCallId: "call-1", messages: [] });
    await new Promise((r) => setTimeout(r, 1500));
    return { text: "Drafted from the notes.\\n" + JSON.stringify({ title: notes.trim() }) };
  },
};

export default smithers(() => (
  <Workflow name="follow-agent">
    <Task id="draft" output={outputs.draft} agent={writer} approval={{ prompt: "Review the title" }}>
      Draft a title from notes.txt.
    </Task>
  </Workflow>
));
`;

/** A CLI process whose output is collected as it comes, with the time each chunk arrived. */
function start(args, db) {
  const { SMITHERS_DB: _db, SMITHERS_USER: _u, SMITHERS_LOG: _l, ...env } = process.env;
  const child = spawn(process.execPath, [BIN, ...args, "--db", db], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
  const p = { child, stdout: "", stderr: "" };
  child.stdout.on("data", (d) => {
    p.stdout += d;
  });
  child.stderr.on("data", (d) => {
    p.stderr += d;
  });
  p.exit = new Promise((resolve) => child.on("close", (code) => resolve(code)));
  return p;
}

describe("following a run", () => {
  let box;
  let file;
  before(() => {
    box = sandbox("smithers-follow-");
    file = box.write("follow.tsx", WORKFLOW);
  });
  after(() => box?.cleanup());

  test("up --live streams command output by node while it runs; logs --follow and events --follow tail it from other processes", async () => {
    const up = start(["up", file, "--run-id", "f1", "--live"], box.db);
    // While `slow` still runs (before it finished), its first line is already shown.
    await waitFor(() => up.stderr.includes("  slow | one\n"), { timeoutMs: 20_000, what: "live output" });
    assert.doesNotMatch(up.stderr, /NodeFinished slow/, `the first line came before the command ended:\n${up.stderr}`);

    const logs = start(["logs", "f1", "--follow", "--both"], box.db);
    const events = start(["events", "--run", "f1", "--follow", "--json"], box.db);
    assert.equal(await up.exit, 3, up.stderr);
    assert.match(up.stderr, /  slow \| one\n(.|\n)*  slow \| two\n(.|\n)*  slow \(stderr\) \| oops\n(.|\n)*  slow \| three\n/);
    assert.match(up.stderr, /  NodeFinished slow\n/);

    // The followers keep following while the run waits, and end with it.
    await waitFor(() => logs.stdout.includes("slow | three\n"), { what: "logs --follow to catch up" });
    assert.equal(logs.child.exitCode, null, "logs --follow goes on while the run waits for approval");
    await expectExit(assert, 0, ["approve", "f1", "--by", "alice"], { db: box.db });
    assert.equal(await logs.exit, 0, logs.stderr);
    // Each file's lines in order (stdout and stderr are separate files: they interleave by poll).
    const lines = logs.stdout.split("\n");
    assert.equal(lines.pop(), "", "ends with a newline");
    assert.deepEqual(lines.filter((l) => l.startsWith("slow | ")), ["slow | one", "slow | two", "slow | three"]);
    assert.deepEqual(lines.filter((l) => l.startsWith("slow (stderr) | ")), ["slow (stderr) | oops"]);
    assert.equal(lines.at(-1), "after | done");
    assert.equal(lines.length, 5, logs.stdout);

    assert.equal(await events.exit, 0, events.stderr);
    const seen = events.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(seen.map((e) => e.seq), seen.map((_, i) => i + 1), "every event once, in order");
    const types = seen.map((e) => `${e.type}${e.nodeId ? ` ${e.nodeId}` : ""}`);
    for (const t of ["RunStarted", "NodeStarted slow", "NodeFinished slow", "ApprovalRequested gate", "ApprovalGranted gate", "NodeFinished after", "RunFinished"]) {
      assert.ok(types.includes(t), `${t} in ${types.join(", ")}`);
    }
  });

  test("events without --follow prints what there is, as text; bad usage is refused", async () => {
    const all = await expectExit(assert, 0, ["events"], { db: box.db });
    assert.match(all.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z f1 #1 RunStarted \{"workflowName":"follow","status":"running"\}$/m);
    assert.match(all.stdout, /^\S+ f1 #\d+ ApprovalGranted gate \{.*"decidedBy":"alice"/m);
    const unknown = await smithers(["events", "--run", "nope"], { db: box.db });
    assert.equal(unknown.code, 4);
    assert.match(unknown.stderr, /RUN_NOT_FOUND/);
    const json = await smithers(["logs", "f1", "--follow", "--json"], { db: box.db });
    assert.equal(json.code, 4);
    assert.equal(json.json.error.code, "USAGE");
    assert.match(json.json.error.message, /^--follow prints lines as they are written; leave out --json/);
    const positional = await smithers(["events", "f1"], { db: box.db });
    assert.equal(positional.code, 4);
    assert.match(positional.stderr, /name a run with --run ID/);
  });

  test("an agent task: up --live shows its tool call while it works and its answer when it comes; logs --follow ends with a rejected run", async () => {
    const agentFile = box.write("follow-agent.tsx", AGENT_WORKFLOW);
    box.write("notes.txt", "Smithers on Rust\n");
    const up = start(["up", agentFile, "--run-id", "f2", "--live"], box.db);
    await waitFor(() => up.stderr.includes("  ToolCallStarted draft: read\n"), { timeoutMs: 20_000, what: "the tool call, live" });
    assert.doesNotMatch(up.stderr, /draft \| /, `the tool call came before the answer:\n${up.stderr}`);
    const logs = start(["logs", "f2", "--follow"], box.db);
    assert.equal(await up.exit, 3, up.stderr);
    assert.match(up.stderr, /  draft \| Drafted from the notes\.\n  draft \| \{"title":"Smithers on Rust"\}\n/);

    await waitFor(() => logs.stdout.includes('draft | {"title":"Smithers on Rust"}\n'), { what: "logs --follow to show the answer" });
    assert.equal(logs.child.exitCode, null, "logs --follow goes on while the draft waits for review");
    await expectExit(assert, 0, ["reject", "f2", "--reason", "too plain", "--by", "alice"], { db: box.db });
    assert.equal(await logs.exit, 1, `a rejected run ends the follower with exit 1: ${logs.stderr}`);
    assert.equal(logs.stdout, 'draft | Drafted from the notes.\ndraft | {"title":"Smithers on Rust"}\n', "the answer once");
  });
});
