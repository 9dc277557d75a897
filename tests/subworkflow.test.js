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

// A sub-run that waits on a <Timer>: its caller is `waiting-timer` (not waiting-approval),
// and firing the sub-run's timer moves the caller on, whichever command fires it.
const TIMER_CHILD_TSX = `/** @jsxImportSource smithers-rs */
import { Sequence, Task, Timer, createSmithers } from "smithers-rs";
import { z } from "zod";
const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ v: z.number() }) });
export default smithers(() => (
  <Workflow name="child"><Sequence>
    <Timer id="cool-down" duration="1h" />
    <Task id="after-cool-down" output={outputs.step}>{{ v: 7 }}</Task>
  </Sequence></Workflow>
));`;
const TIMER_PARENT_TSX = `/** @jsxImportSource smithers-rs */
import { Sequence, Task, createSmithers, subRunResultSchema } from "smithers-rs";
import { z } from "zod";
const { Workflow, smithers, outputs } = createSmithers({ sub: subRunResultSchema, done: z.object({ ok: z.boolean() }) });
export default smithers(() => (
  <Workflow name="parent"><Sequence>
    <Task id="call" output={outputs.sub} workflow="./child.tsx" />
    <Task id="done" output={outputs.done}>{{ ok: true }}</Task>
  </Sequence></Workflow>
));`;

test("a sub-run waiting on a <Timer> makes its caller waiting-timer; `resume` of the caller once due fires it and both finish", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  box.write("child.tsx", TIMER_CHILD_TSX);
  const parent = box.write("parent.tsx", TIMER_PARENT_TSX);
  const { spawnCli, waitFor } = await import("./helpers/durability.js");
  // `up` stays with a waiting-timer run: watch for the status, then stop it.
  const up = spawnCli(["up", parent, "--db", box.db, "--run-id", "p1"], {});
  const read = (fn) => {
    const engine = new SmithersEngine({ dbPath: box.db });
    try {
      return fn(engine);
    } finally {
      engine.close();
    }
  };
  await waitFor(() => {
    try {
      return read((e) => e.getRun("p1").status) === "waiting-timer";
    } catch {
      return false;
    }
  }, { what: "the caller to be waiting-timer" });
  assert.equal(up.child.exitCode, null, "smithers up stays with a run that waits on its sub-run's timer");
  up.child.kill("SIGKILL");
  await up.done;
  const child = read((e) => e.getRun("p1.call.0"));
  assert.equal(child.status, "waiting-timer");
  assert.equal(read((e) => e.pendingApprovals({ runId: "p1" }).length), 0, "no approval is pending anywhere");

  // Two hours later (test clock): `resume` of the caller fires the sub-run's timer, resumes
  // the sub-run, whose end moves the caller on.
  const later = { SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(2 * 3_600_000) };
  const resumed = await smithers(["resume", "p1", "--json"], { db: box.db, env: later });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(read((e) => e.getRun("p1.call.0").status), "finished");
  const info = read((e) => e.inspect("p1"));
  assert.equal(info.run.status, "finished");
  assert.deepEqual(info.outputs.find((o) => o.nodeId === "done").value, { ok: true });
  assert.equal(info.outputs.find((o) => o.nodeId === "call").value.outputs["after-cool-down"].v, 7);
});

test("a caller waiting on a sub-run's <Timer>: `smithers up` stays and, once due, fires it and finishes both", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  box.write("child.tsx", TIMER_CHILD_TSX.replace('duration="1h"', 'duration="300ms"'));
  const parent = box.write("parent.tsx", TIMER_PARENT_TSX);
  const up = await smithers(["up", parent, "--json", "--run-id", "p2"], { db: box.db });
  assert.equal(up.code, 0, up.stderr);
  assert.equal(up.json.status, "finished");
  const engine = new SmithersEngine({ dbPath: box.db });
  t.after(() => engine.close());
  assert.equal(engine.getRun("p2.call.0").status, "finished");
  const waited = engine.events("p2", { limit: 1000 }).filter((e) => e.type === "RunStatusChanged").map((e) => e.status);
  assert.ok(waited.includes("waiting-timer"), `the caller waited as waiting-timer: ${waited.join(", ")}`);
});

// A caller parked on its sub-run follows what the sub-run waits on when that changes: a gate
// decided, then a <Timer>; a timer fired, then a gate. `ps` and `inspect` show the caller's
// current wait (it kept the first one).
const childWith = (steps) => `/** @jsxImportSource smithers-rs */
import { Approval, Sequence, Task, Timer, approvalDecisionSchema, createSmithers } from "smithers-rs";
import { z } from "zod";
const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema, step: z.object({ v: z.number() }) });
export default smithers(() => (
  <Workflow name="child"><Sequence>
    ${steps}
    <Task id="after-cool-down" output={outputs.step}>{{ v: 7 }}</Task>
  </Sequence></Workflow>
));`;
const GATE = `<Approval id="ok" output={outputs.gate} request={{ title: "Go on?" }} />`;

async function psAndInspect(db, runId) {
  const [ps, insp, inspText] = await Promise.all([
    smithers(["ps", "--json"], { db }),
    smithers(["inspect", runId, "--json"], { db }),
    smithers(["inspect", runId], { db }),
  ]);
  for (const r of [ps, insp, inspText]) assert.equal(r.code, 0, r.stdout + r.stderr);
  return {
    ps: Object.fromEntries(ps.json.runs.map((r) => [r.runId, r.status])),
    status: insp.json.run.status,
    text: inspText.stdout,
  };
}

test("a caller follows its sub-run from a gate to a <Timer>: after `approve`, `ps` and `inspect` show it waiting-timer", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  box.write("child.tsx", childWith(`${GATE}\n    <Timer id="cool-down" duration="1h" />`));
  const parent = box.write("parent.tsx", TIMER_PARENT_TSX);
  const up = await smithers(["up", parent, "--json", "--run-id", "g1"], { db: box.db });
  assert.equal(up.code, 3, up.stderr);
  assert.equal(up.json.status, "waiting-approval");

  const ok = await smithers(["approve", "g1.call.0", "ok", "--by", "ann", "--json"], { db: box.db });
  assert.equal(ok.code, 0, ok.stderr);
  const seen = await psAndInspect(box.db, "g1");
  assert.equal(seen.ps["g1.call.0"], "waiting-timer");
  assert.equal(seen.ps.g1, "waiting-timer", "the caller waits on its sub-run's timer now");
  assert.equal(seen.status, "waiting-timer");
  assert.match(seen.text, /^run g1 \(parent\): waiting-timer$/m);

  // Two hours later (test clock): `resume` of the caller fires the timer; both finish.
  const later = { SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(2 * 3_600_000) };
  const resumed = await smithers(["resume", "g1", "--json"], { db: box.db, env: later });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((await psAndInspect(box.db, "g1")).status, "finished");
});

test("a caller follows its sub-run from a <Timer> to a gate: `up` waits the timer out and stops waiting-approval (exit 3)", async (t) => {
  const box = sandbox();
  t.after(() => box.cleanup());
  box.write("child.tsx", childWith(`<Timer id="cool-down" duration="300ms" />\n    ${GATE}`));
  const parent = box.write("parent.tsx", TIMER_PARENT_TSX);
  const up = await smithers(["up", parent, "--json", "--run-id", "g2"], { db: box.db });
  assert.equal(up.code, 3, up.stdout + up.stderr);
  assert.equal(up.json.status, "waiting-approval");
  const seen = await psAndInspect(box.db, "g2");
  assert.equal(seen.ps["g2.call.0"], "waiting-approval");
  assert.equal(seen.ps.g2, "waiting-approval", "the caller waits for its sub-run's gate now");
  assert.equal(seen.status, "waiting-approval");
  const engine = new SmithersEngine({ dbPath: box.db });
  t.after(() => engine.close());
  assert.deepEqual(engine.pendingApprovals({ runId: "g2" }).map((a) => [a.runId, a.nodeId]), [["g2.call.0", "ok"]]);
  const waited = engine.events("g2", { limit: 1000 }).filter((e) => e.type === "RunStatusChanged").map((e) => e.status);
  assert.deepEqual(waited.slice(-2), ["waiting-timer", "waiting-approval"]);

  const ok = await smithers(["approve", "g2.call.0", "ok", "--by", "ann", "--json"], { db: box.db });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(engine.getRun("g2").status, "finished", "the sub-run's end resumed its caller");
});

// `why` of a caller parked on a sub-run names the sub-run and what it waits on, down to the
// deepest run that waits: its gate with the approve command, or its timer with its due time.
// On both stores (PostgreSQL: a server of this file's own, a schema per test).
const MID_TSX = `/** @jsxImportSource smithers-rs */
import { Sequence, Task, createSmithers, subRunResultSchema } from "smithers-rs";
const { Workflow, smithers, outputs } = createSmithers({ sub: subRunResultSchema });
export default smithers(() => (
  <Workflow name="mid"><Sequence><Task id="inner" output={outputs.sub} workflow="./child.tsx" /></Sequence></Workflow>
));`;
const TOP_TSX = TIMER_PARENT_TSX.replace("./child.tsx", "./mid.tsx");

for (const store of ["sqlite", "postgres"]) {
  const dbOf = async (box) => (store === "postgres" ? (await import("./helpers/postgres.js")).pgDatabase("why") : box.db);

  test(`[${store}] \`why\` of a caller names its sub-run's sub-run and the gate it waits on, with the approve command`, async (t) => {
    const box = sandbox();
    t.after(() => box.cleanup());
    const db = await dbOf(box);
    box.write("child.tsx", childWith(GATE));
    box.write("mid.tsx", MID_TSX);
    const top = box.write("top.tsx", TOP_TSX);
    const up = await smithers(["up", top, "--json", "--run-id", "w1"], { db });
    assert.equal(up.code, 3, up.stdout + up.stderr);
    assert.equal(up.json.status, "waiting-approval");

    const json = await smithers(["why", "w1", "--json"], { db });
    assert.equal(json.code, 0, json.stderr);
    const [b] = json.json.blockers;
    assert.equal(json.json.blockers.length, 1, JSON.stringify(json.json.blockers));
    assert.equal(b.kind, "sub-run");
    assert.equal(b.nodeId, "call");
    assert.equal(b.subRunId, "w1.call.0");
    assert.equal(b.subRunStatus, "waiting-approval");
    const [midB] = b.subRun.blockers;
    assert.equal(midB.kind, "sub-run");
    assert.equal(midB.nodeId, "inner");
    assert.equal(midB.subRunId, "w1.call.0.inner.0");
    assert.deepEqual(
      b.waitsOn.map((w) => [w.runId, w.kind, w.nodeId]),
      [["w1.call.0.inner.0", "approval", "ok"]],
      "the deepest wait: the grandchild's gate",
    );
    assert.match(b.unblocker, /^npx smithers approve w1\.call\.0\.inner\.0\b/);
    assert.match(json.json.summary, /call waits for its sub-run w1\.call\.0 .*inner waits for its sub-run w1\.call\.0\.inner\.0 .*Approval requested — no decision yet: Go on\?/);

    const text = await smithers(["why", "w1"], { db });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /call: waits for its sub-run w1\.call\.0 \(waiting-approval\)/);
    assert.match(text.stdout, /inner: waits for its sub-run w1\.call\.0\.inner\.0 \(waiting-approval\)/);
    assert.match(text.stdout, /w1\.call\.0\.inner\.0 ok: Approval requested — no decision yet: Go on\?/);
    assert.match(text.stdout, /Unblock: npx smithers approve w1\.call\.0\.inner\.0/);

    // The printed command does unblock it: the grandchild, then its callers, finish.
    const ok = await smithers(["approve", "w1.call.0.inner.0", "--by", "ann", "--json"], { db });
    assert.equal(ok.code, 0, ok.stderr);
    const after = await smithers(["why", "w1", "--json"], { db });
    assert.equal(after.json.status, "finished");
    assert.deepEqual(after.json.blockers, []);
  });

  test(`[${store}] \`why\` of a caller waiting-timer names its sub-run and the sub-run's <Timer> with its due time`, async (t) => {
    const box = sandbox();
    t.after(() => box.cleanup());
    const db = await dbOf(box);
    box.write("child.tsx", childWith(`${GATE}\n    <Timer id="cool-down" duration="1h" />`));
    const parent = box.write("parent.tsx", TIMER_PARENT_TSX);
    const up = await smithers(["up", parent, "--json", "--run-id", "w2"], { db });
    assert.equal(up.code, 3, up.stdout + up.stderr);
    const before = Date.now();
    const ok = await smithers(["approve", "w2.call.0", "ok", "--by", "ann", "--json"], { db });
    assert.equal(ok.code, 0, ok.stderr);

    const json = await smithers(["why", "w2", "--json"], { db });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.json.status, "waiting-timer");
    assert.equal(json.json.blockers.length, 1, JSON.stringify(json.json.blockers));
    const [b] = json.json.blockers;
    assert.equal(b.kind, "sub-run");
    assert.equal(b.subRunId, "w2.call.0");
    assert.equal(b.subRunStatus, "waiting-timer");
    const [w] = b.waitsOn;
    assert.deepEqual([b.waitsOn.length, w.runId, w.kind, w.nodeId], [1, "w2.call.0", "timer", "cool-down"]);
    const due = Date.parse(w.dueAt);
    assert.ok(due >= before + 3_600_000 - 5_000 && due <= Date.now() + 3_600_000 + 5_000, `due in an hour: ${w.dueAt}`);
    assert.match(b.unblocker, /^npx smithers resume w2\b/);
    assert.ok(json.json.summary.includes(`call waits for its sub-run w2.call.0 (waiting-timer): cool-down waits until ${w.dueAt}`), json.json.summary);

    const text = await smithers(["why", "w2"], { db });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /call: waits for its sub-run w2\.call\.0 \(waiting-timer\)/);
    assert.ok(text.stdout.includes(`w2.call.0 cool-down waits until ${w.dueAt} (a <Timer>)`), text.stdout);
    assert.match(text.stdout, /Unblock: npx smithers resume w2/);

    // The printed command does unblock it once due (test clock two hours on).
    const later = { SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(2 * 3_600_000) };
    const resumed = await smithers(["resume", "w2", "--json"], { db, env: later });
    assert.equal(resumed.code, 0, resumed.stderr);
    const after = await smithers(["why", "w2", "--json"], { db });
    assert.equal(after.json.status, "finished");
  });
}
