// A task that runs another workflow file as a sub-run, with a review gate on the calling
// task: the sub-run completes first, then the caller waits; push-back makes a new sub-run.
import assert from "node:assert/strict";
import { test } from "node:test";
import { join } from "node:path";
import { EXAMPLES, sandbox, smithers } from "./helpers/cli.js";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";

test("a sub-workflow completes, then the calling task waits for review; push-back runs a new sub-run", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  const up = await smithers(["up", join(EXAMPLES, "release-subworkflow.tsx"), "--input", '{"version":"1.4.0"}', "--json"], { db: box.db });
  assert.equal(up.code, 3, up.stderr);
  const runId = up.json.runId;
  const engine = new SmithersEngine({ dbPath: box.db });
  t.after(() => engine.close());

  const child = engine.getRun(`${runId}.release.0`);
  assert.equal(child.status, "finished", "the sub-run ran to its end before the gate");
  const [pending] = engine.pendingApprovals({ runId });
  assert.equal(pending.nodeId, "release");
  assert.equal(pending.kind, "review");
  const proposed = engine.inspect(runId).outputs.find((o) => o.nodeId === "release");
  assert.equal(proposed.value.outputs.compile.stdout, "compiled 1.4.0\n");

  const back = await smithers(["push-back", runId, "--node", "release", "--input", "VERSION=1.4.1", "--json"], { db: box.db });
  assert.equal(back.code, 0, back.stderr);
  assert.equal(back.json.runStatus, "waiting-approval");
  const again = engine.inspect(runId).outputs.find((o) => o.nodeId === "release");
  assert.equal(again.value.subRunId, `${runId}.release.0.r2`);
  assert.equal(again.value.outputs.test.stdout, "tests passed for 1.4.1\n");

  const ok = await smithers(["approve", runId, "--node", "release", "--json"], { db: box.db });
  assert.equal(ok.code, 0, ok.stderr);
  const final = engine.inspect(runId);
  assert.equal(final.run.status, "finished");
  assert.equal(final.outputs.find((o) => o.nodeId === "announce").value.stdout, "released 1.4.0\n");
  const [history] = engine.inspect(runId).approvals.filter((a) => a.nodeId === "release").map((a) => a.history);
  assert.deepEqual(history.map((h) => h.status), ["pushed-back", "approved"]);
  assert.deepEqual(history[0].inputs, { VERSION: "1.4.1" });
  assert.equal(history[0].output.subRunId, `${runId}.release.0`, "the history keeps the output the reviewer judged");
});

test("a sub-workflow that fails fails the calling task with SUBRUN_FAILED", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  box.write(
    "child.tsx",
    `/** @jsxImportSource smithers-rs */
import { Sequence, Task, commandResultSchema, createSmithers } from "smithers-rs";
const { Workflow, smithers, outputs } = createSmithers({ step: commandResultSchema });
export default smithers(() => (
  <Workflow name="child"><Sequence><Task id="boom" output={outputs.step} command="echo broken >&2; exit 4" /></Sequence></Workflow>
));`,
  );
  const parent = box.write(
    "parent.tsx",
    `/** @jsxImportSource smithers-rs */
import { Sequence, Task, createSmithers, subRunResultSchema } from "smithers-rs";
const { Workflow, smithers, outputs } = createSmithers({ sub: subRunResultSchema });
export default smithers(() => (
  <Workflow name="parent"><Sequence><Task id="call" output={outputs.sub} workflow="./child.tsx" /></Sequence></Workflow>
));`,
  );
  const up = await smithers(["up", parent, "--json"], { db: box.db });
  assert.equal(up.code, 1, up.stderr);
  assert.equal(up.json.error.code, "SUBRUN_FAILED");
  assert.match(up.json.error.message, /exited with code 4: broken/);
});

test("a sub-workflow that waits for its own approval makes the calling task wait; approving it moves the caller on", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  box.write(
    "child.tsx",
    `/** @jsxImportSource smithers-rs */
import { Approval, Sequence, Task, approvalDecisionSchema, commandResultSchema, createSmithers } from "smithers-rs";
const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema, step: commandResultSchema });
export default smithers(() => (
  <Workflow name="child">
    <Sequence>
      <Approval id="sign-off" output={outputs.gate} request={{ title: "Sign off?" }} />
      <Task id="built" output={outputs.step} command="echo built" />
    </Sequence>
  </Workflow>
));`,
  );
  const parent = box.write(
    "parent.tsx",
    `/** @jsxImportSource smithers-rs */
import { Sequence, Task, commandResultSchema, createSmithers, subRunResultSchema } from "smithers-rs";
const { Workflow, smithers, outputs } = createSmithers({ sub: subRunResultSchema, step: commandResultSchema });
export default smithers(() => (
  <Workflow name="parent">
    <Sequence>
      <Task id="call" output={outputs.sub} workflow="./child.tsx" />
      <Task id="after" output={outputs.step} command="echo after" />
    </Sequence>
  </Workflow>
));`,
  );
  const up = await smithers(["up", parent, "--run-id", "p", "--json"], { db: box.db });
  assert.equal(up.code, 3, up.stdout + up.stderr);
  assert.equal(up.json.status, "waiting-approval", "the caller waits with its sub-run, not SUBRUN_WAITING");
  assert.deepEqual(up.json.pendingApprovals.map((a) => [a.runId, a.nodeId]), [["p.call.0", "sign-off"]]);
  const why = await smithers(["why", "p"], { db: box.db });
  assert.match(why.stdout, /call waits for its sub-run p\.call\.0/);
  const ok = await smithers(["approve", "p.call.0", "--json"], { db: box.db });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.json.run.caller.status, "finished");
  const engine = new SmithersEngine({ dbPath: box.db });
  t.after(() => engine.close());
  const info = engine.inspect("p");
  assert.deepEqual(info.nodes.map((n) => [n.nodeId, n.state]), [["call", "finished"], ["after", "finished"]]);
  assert.equal(info.outputs.find((o) => o.nodeId === "call").value.outputs.built.stdout, "built\n");
});
