// Durable timers through the CLI and the Node API: a <Timer> and a gate's deadline survive a
// kill -9 of `smithers up`, fire exactly once when the next command finds them due (also when
// two processes race for them), and the deploy-gate example auto-denies after its hour. The
// clock is moved with the test-only SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: no test waits for a
// due time.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { EXAMPLES, expectExit, smithers } from "./helpers/cli.js";
import { countEffects, freshDir, killAll, removeDirs, spawnCli, waitFor, writeIn } from "./helpers/durability.js";
import { client, startServe } from "./helpers/serve.js";

after(() => {
  killAll();
  removeDirs();
});

const HOUR = 3_600_000;
const WFE_TSX_FOR_HTTP = `/** @jsxImportSource smithers-orchestrator */
import { createSmithers, Sequence, Signal, WaitForEvent } from "smithers-orchestrator";
import { z } from "zod";
const { Workflow, Task, smithers, outputs } = createSmithers({
  deployEvent: z.object({ ok: z.boolean(), version: z.string() }),
  feedback: z.object({ rating: z.number() }),
  summary: z.object({ text: z.string() }),
});
export default smithers((ctx) => (
  <Workflow name="wfe">
    <Sequence>
      <WaitForEvent id="wait-deploy" event="deploy.completed" correlationId="d-1" output={outputs.deployEvent} timeoutMs={600000} />
      <Signal id="feedback" schema={outputs.feedback}>
        {(f) => <Task id="summary" output={outputs.summary}>{{ text: \`rated \${f.rating}\` }}</Task>}
      </Signal>
    </Sequence>
  </Workflow>
));
`;
/** Every engine of a command started with this sees the time two hours from now. */
const LATER = { SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(2 * HOUR) };

/** `before` -> <Timer duration="1h"> -> `after`; effects go to $EFFECTS. */
const TIMER_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Sequence, Task, Timer, createSmithers } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ v: z.number() }) });
const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);

export default smithers(() => (
  <Workflow name="cool-down">
    <Sequence>
      <Task id="before" output={outputs.step}>{() => (mark("before"), { v: 1 })}</Task>
      <Timer id="cool-down" duration="1h" />
      <Task id="after" output={outputs.step}>{() => (mark("after"), { v: 2 })}</Task>
    </Sequence>
  </Workflow>
));
`;

function readDb(db, fn) {
  const engine = new SmithersEngine({ dbPath: db });
  try {
    return fn(engine);
  } finally {
    engine.close();
  }
}

const eventsOf = (db, runId, type) => readDb(db, (e) => e.events(runId, { limit: 10_000 }).filter((ev) => ev.type === type));

/** `smithers up` of the timer workflow, left waiting on its timer, then killed with kill -9. */
async function upThenKill(t, extraEnv = {}) {
  const dir = freshDir("smithers-timers-");
  const db = join(dir, "smithers.db");
  const effects = join(dir, "effects.log");
  const file = writeIn(dir, "cool-down.tsx", TIMER_TSX);
  const env = { EFFECTS: effects, ...extraEnv };
  const up = spawnCli(["up", file, "--db", db, "--run-id", "cool"], { env });
  // `up` stays with a run that waits only on timers: wait for the row, then kill it.
  const run = await waitFor(
    () => {
      try {
        const summary = readDb(db, (e) => e.getRun("cool"));
        return summary.status === "waiting-timer" ? summary : null;
      } catch {
        return null;
      }
    },
    { what: "the run to wait on its timer" },
  );
  assert.equal(up.child.exitCode, null, "smithers up waits with its run");
  up.child.kill("SIGKILL");
  const killed = await up.done;
  assert.equal(killed.signal, "SIGKILL");
  return { dir, db, effects, file, env, run, upOutput: killed };
}

describe("<Timer> across kill -9", () => {
  test("the timer is a row: after kill -9, resume before it is due waits; once due (test clock) it fires once and the run finishes", async (t) => {
    const { db, effects, env, upOutput } = await upThenKill(t, { SMITHERS_LOG: "debug" });
    assert.match(upOutput.stderr, /DEBUG smithers_core::timer: timer scheduled run_id="cool" node_id="cool-down" iteration=0 kind="timer" round=1 due_at_ms=\d+ due_in_ms=3600000/);
    const timers = readDb(db, (e) => e.native.runTimers("cool"));
    assert.deepEqual(timers.map((x) => [x.nodeId, x.kind, x.status]), [["cool-down", "timer", "scheduled"]]);
    assert.equal(readDb(db, (e) => e.listRuns({ status: "waiting-timer" })).length, 1, "ps lists it waiting-timer");

    // Two hours later by the test clock: resume fires the timer (logged) and drives the run on.
    const resumed = await expectExit(assert, 0, ["resume", "cool", "--json"], { db, env: { ...env, ...LATER } });
    assert.equal(resumed.json.status, "finished");
    assert.match(resumed.stderr, /INFO smithers_core::timer: timer fired run_id="cool" node_id="cool-down" iteration=0 kind="timer" due_at_ms=\d+ lag_ms=\d+ outcome="finished" run_status="running"/);
    assert.deepEqual(countEffects(effects), { before: 1, after: 1 });
    assert.equal(eventsOf(db, "cool", "TimerFired").length, 1);
    // Nothing is due any more: another resume changes nothing.
    await expectExit(assert, 0, ["resume", "cool"], { db, env: { ...env, ...LATER } });
    assert.equal(eventsOf(db, "cool", "TimerFired").length, 1);
    assert.deepEqual(countEffects(effects), { before: 1, after: 1 });
  });

  test("two processes racing to fire one due timer: it fires once, the step after it runs once", async (t) => {
    const { db, effects, env } = await upThenKill(t);
    const racers = [0, 1].map(() => smithers(["resume", "cool", "--json"], { db, env: { ...env, ...LATER } }));
    const results = await Promise.all(racers);
    // One drove the run to its end; the other found it taken (RUN_OWNED) or already finished.
    const codes = results.map((r) => r.code).sort();
    assert.ok(codes[0] === 0, `one resume finished the run: ${JSON.stringify(results.map((r) => [r.code, r.stderr]))}`);
    assert.equal(readDb(db, (e) => e.getRun("cool")).status, "finished");
    assert.equal(eventsOf(db, "cool", "TimerFired").length, 1, "fired once");
    assert.deepEqual(countEffects(effects), { before: 1, after: 1 });
    const row = readDb(db, (e) => e.native.runTimers("cool"))[0];
    assert.equal(row.status, "fired");
    assert.equal(row.outcome, "finished");
  });

  test("a run that waits on a past `until` fires at once in `smithers up`", async () => {
    const dir = freshDir("smithers-timers-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "past.tsx", TIMER_TSX.replace('duration="1h"', 'until="2001-01-01T00:00:00Z"'));
    const up = await expectExit(assert, 0, ["up", file, "--json"], { db, env: { EFFECTS: join(dir, "effects.log") } });
    assert.equal(up.json.status, "finished");
  });
});

describe("deadlines on gates", () => {
  const EXAMPLE = join(EXAMPLES, "deploy-gate-timeout.tsx");

  test("examples/deploy-gate-timeout.tsx: after its hour the gate is denied by system:timeout, once, and a late approval is refused", async () => {
    const dir = freshDir("smithers-deadline-");
    const db = join(dir, "smithers.db");
    const up = await expectExit(assert, 3, ["up", EXAMPLE, "--input", '{"version":"1.4.2"}', "--run-id", "d1", "--json"], { db });
    assert.equal(up.json.status, "waiting-approval");
    const [pending] = up.json.pendingApprovals;
    assert.equal(pending.nodeId, "deploy-approval");
    // Within the hour nothing fires.
    await expectExit(assert, 3, ["resume", "d1"], { db });
    assert.equal(eventsOf(db, "d1", "ApprovalTimedOut").length, 0);

    // Two hours later: a late approval finds the gate decided by the deadline.
    const late = await smithers(["approve", "d1", "deploy-approval", "--by", "alice", "--json"], { db, env: LATER });
    assert.notEqual(late.code, 0);
    assert.match(late.stdout + late.stderr, /ALREADY_DECIDED/);
    assert.match(late.stdout + late.stderr, /system:timeout/);
    const info = readDb(db, (e) => e.inspect("d1"));
    assert.equal(info.run.status, "finished", "the CLI that fired the deadline resumed the run");
    const decision = info.outputs.find((o) => o.table === "deployApproval").value;
    assert.equal(decision.approved, false);
    assert.equal(decision.decidedBy, "system:timeout");
    assert.deepEqual(info.outputs.find((o) => o.table === "outcome").value, { shipped: false, version: "1.4.2", why: "nobody decided within the hour" });
    assert.equal(eventsOf(db, "d1", "ApprovalTimedOut").length, 1);
    assert.deepEqual(eventsOf(db, "d1", "ApprovalReminder").map((e) => e.n), [1, 2, 3], "reminded at 15, 30 and 45 minutes");
    assert.equal(eventsOf(db, "d1", "ApprovalDenied").length, 1);
    assert.equal(eventsOf(db, "d1", "ApprovalDenied")[0].decidedBy, "system:timeout");
  });

  test("a deadline passed while no process ran: two resumes racing record it once; nobody may decide as system:timeout", async () => {
    const dir = freshDir("smithers-deadline-");
    const db = join(dir, "smithers.db");
    await expectExit(assert, 3, ["up", EXAMPLE, "--input", '{"version":"2.0.0"}', "--run-id", "d2"], { db });
    const forged = await smithers(["deny", "d2", "deploy-approval", "--by", "system:timeout"], { db });
    assert.notEqual(forged.code, 0);
    assert.match(forged.stderr, /INVALID_DECISION/);
    const results = await Promise.all([0, 1].map(() => smithers(["resume", "d2", "--json"], { db, env: LATER })));
    assert.ok(results.some((r) => r.code === 0 && r.json?.status === "finished"), JSON.stringify(results.map((r) => [r.code, r.stderr])));
    assert.equal(eventsOf(db, "d2", "ApprovalTimedOut").length, 1);
    assert.equal(eventsOf(db, "d2", "ApprovalDenied").length, 1);
    assert.equal(readDb(db, (e) => e.getRun("d2")).status, "finished");
  });

  test("an embedding service's engine fires a deadline with its own wake-up (startTimers) and resumes the run", async () => {
    const dir = freshDir("smithers-deadline-");
    const db = join(dir, "smithers.db");
    const { loadWorkflow } = await import("../npm/smithers-rs/src/loader/load.js");
    const wf = await loadWorkflow(EXAMPLE);
    const starter = new SmithersEngine({ dbPath: db });
    const run = await starter.run(wf, { input: { version: "3.0.0" }, runId: "d3", workflowPath: EXAMPLE });
    assert.equal(run.status, "waiting-approval");
    starter.close();
    // A service started two hours later (test clock): its one wake-up is due at once.
    process.env.SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS = String(2 * HOUR);
    let service;
    try {
      service = new SmithersEngine({ dbPath: db });
    } finally {
      delete process.env.SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS;
    }
    const timedOut = [];
    service.on("ApprovalTimedOut", (e) => timedOut.push(e));
    service.startTimers();
    await waitFor(() => service.getRun("d3").status === "finished", { what: "the service to fire the deadline and finish the run" });
    service.close();
    assert.equal(timedOut.length, 1);
    assert.equal(timedOut[0].onTimeout, "deny");
    assert.equal(timedOut[0].decidedBy, "system:timeout");
  });
});

describe("deadlines in TOON and Dagu YAML", () => {
  const TOON = `name: toon-deadline
steps[2]:
  - kind: approval
    id: sign-off
    request:
      title: "Sign off?"
    timeoutMs: 3600000
    onTimeout: approve

  - id: after
    needs[1]: sign-off
    run: "({ by: sign-off.decidedBy, approved: sign-off.approved })"
    output:
      by: string?
      approved: boolean
`;
  const DAG = `name: dag-deadline
steps:
  - id: build
    command: echo built
    approval:
      prompt: "Ship the build?"
      timeout_sec: 3600
      on_timeout: deny
  - id: ship
    depends: [build]
    command: echo shipped
`;

  test("TOON kind: approval with timeoutMs and onTimeout: approve is approved by system:timeout once due", async () => {
    const dir = freshDir("smithers-deadline-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "flow.toon", TOON);
    await expectExit(assert, 3, ["up", file, "--run-id", "t1"], { db });
    const done = await expectExit(assert, 0, ["resume", "t1", "--json"], { db, env: LATER });
    assert.equal(done.json.status, "finished");
    const info = readDb(db, (e) => e.inspect("t1"));
    assert.deepEqual(info.outputs.find((o) => o.nodeId === "after").value, { by: "system:timeout", approved: true });
  });

  test("a Dagu step's approval: with timeout_sec and on_timeout: deny rejects the step once due (the run is rejected)", async () => {
    const dir = freshDir("smithers-deadline-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "dag.yaml", DAG);
    await expectExit(assert, 3, ["up", file, "--run-id", "y1"], { db });
    const timers = readDb(db, (e) => e.native.runTimers("y1"));
    assert.deepEqual(timers.map((t) => [t.nodeId, t.kind, t.round]), [["build", "approval-timeout", 1]]);
    const done = await smithers(["resume", "y1", "--json"], { db, env: LATER });
    assert.equal(done.json.status, "rejected", done.stderr);
    const info = readDb(db, (e) => e.inspect("y1"));
    const review = info.approvals.find((a) => a.nodeId === "build");
    assert.equal(review.status, "rejected");
    assert.equal(review.decidedBy, "system:timeout");
    assert.equal(info.nodes.find((n) => n.nodeId === "ship").state, "cancelled");
  });
});

describe("reminders and escalation", () => {
  const GATE_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema, done: z.object({ by: z.string().nullable() }) });

export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "release" });
  return (
    <Workflow name="remind-escalate">
      <Sequence>
        <Approval id="release" output={outputs.gate} request={{ title: "Release?" }} allowedUsers={["alice"]}
          remind={{ every: "15m", max: 2 }} escalate={[{ after: "30m", allowedUsers: ["bob"] }]} />
        {decision ? <Task id="done" output={outputs.done}>{{ by: decision.decidedBy }}</Task> : null}
      </Sequence>
    </Workflow>
  );
});
`;
  const at = (minutes) => ({ SMITHERS_TEST_ONLY_CLOCK_OFFSET_MS: String(minutes * 60_000) });

  test("reminders every 15 minutes (at most 2) and, after 30, bob may decide too; each fired once by whichever command came", async () => {
    const dir = freshDir("smithers-remind-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "gate.tsx", GATE_TSX);
    await expectExit(assert, 3, ["up", file, "--run-id", "e1"], { db });
    const refused = await smithers(["approve", "e1", "release", "--by", "bob"], { db });
    assert.match(refused.stderr, /FORBIDDEN/);
    // 20 minutes later: the first reminder.
    await expectExit(assert, 3, ["resume", "e1"], { db, env: at(20) });
    assert.deepEqual(eventsOf(db, "e1", "ApprovalReminder").map((e) => e.n), [1]);
    // 40 minutes later: the second (the last: max 2) and the escalation; bob may decide now.
    const why = await smithers(["resume", "e1"], { db, env: at(40) });
    assert.equal(why.code, 3, why.stderr);
    assert.deepEqual(eventsOf(db, "e1", "ApprovalReminder").map((e) => e.n), [1, 2]);
    const [escalated] = eventsOf(db, "e1", "ApprovalEscalated");
    assert.deepEqual(escalated.allowedUsers, ["alice", "bob"]);
    const pending = readDb(db, (e) => e.pendingApprovals({ runId: "e1" }));
    assert.deepEqual(pending[0].allowedUsers, ["alice", "bob"], "listings show who may decide now");
    await expectExit(assert, 0, ["approve", "e1", "release", "--by", "bob"], { db, env: at(41) });
    assert.equal(readDb(db, (e) => e.getRun("e1")).status, "finished");
    // Much later: no third reminder (max 2), nothing left to fire.
    await expectExit(assert, 0, ["resume", "e1"], { db, env: at(600) });
    assert.equal(eventsOf(db, "e1", "ApprovalReminder").length, 2);
    assert.equal(readDb(db, (e) => e.native.nextTimerDue()), null);
  });
});

describe("<WaitForEvent> and <Signal>", () => {
  const WFE_TSX = `/** @jsxImportSource smithers-orchestrator */
import { createSmithers, Sequence, Signal, WaitForEvent } from "smithers-orchestrator";
import { z } from "zod";
const { Workflow, Task, smithers, outputs } = createSmithers({
  deployEvent: z.object({ ok: z.boolean(), version: z.string() }),
  feedback: z.object({ rating: z.number() }),
  summary: z.object({ text: z.string() }),
});
export default smithers((ctx) => (
  <Workflow name="wfe">
    <Sequence>
      <WaitForEvent id="wait-deploy" event="deploy.completed" correlationId="d-1" output={outputs.deployEvent} timeoutMs={600000} />
      <Signal id="feedback" schema={outputs.feedback}>
        {(f) => <Task id="summary" output={outputs.summary}>{{ text: \`rated \${f.rating}\` }}</Task>}
      </Signal>
    </Sequence>
  </Workflow>
));
`;

  test("a run waits for events sent with smithers signal: a payload that does not fit is refused, a correlationId must match; <Signal> children mount with the payload", async () => {
    const dir = freshDir("smithers-signal-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "wfe.tsx", WFE_TSX);
    const up = await expectExit(assert, 3, ["up", file, "--run-id", "s1"], { db });
    assert.match(up.stdout, /send: +npx smithers signal s1 deploy\.completed --correlation-id d-1/);
    const bad = await smithers(["signal", "s1", "deploy.completed", "--data", '{"ok":true}'], { db });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /HUMAN_TASK_VALIDATION_FAILED/);
    const elsewhere = await smithers(["signal", "s1", "deploy.completed", "--correlation-id", "d-2", "--data", '{"ok":true,"version":"1"}'], { db });
    assert.equal(elsewhere.code, 4);
    assert.match(elsewhere.stderr, /NO_PENDING_APPROVALS/);
    await expectExit(assert, 0, ["signal", "s1", "deploy.completed", "--data", '{"ok":true,"version":"1.2"}'], { db });
    const done = await expectExit(assert, 0, ["signal", "s1", "feedback", "--data", '{"rating":4}', "--json"], { db });
    assert.equal(done.json.runStatus, "finished");
    const info = readDb(db, (e) => e.inspect("s1"));
    const out = (n) => info.outputs.find((o) => o.nodeId === n)?.value;
    assert.deepEqual(out("wait-deploy"), { ok: true, version: "1.2" });
    assert.deepEqual(out("summary"), { text: "rated 4" });
    assert.equal(info.approvals.find((a) => a.nodeId === "feedback").decidedBy, "signal");
  });

  test("a <WaitForEvent timeoutMs> whose time passed fails the run (Smithers' onTimeout fail), once", async () => {
    const dir = freshDir("smithers-signal-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "wfe.tsx", WFE_TSX);
    await expectExit(assert, 3, ["up", file, "--run-id", "s2"], { db });
    const r = await smithers(["resume", "s2", "--json"], { db, env: LATER });
    assert.equal(r.json?.status, "failed", r.stderr);
    assert.equal(eventsOf(db, "s2", "ApprovalTimedOut").length, 1);
    const late = await smithers(["signal", "s2", "deploy.completed", "--data", '{"ok":true,"version":"1"}'], { db });
    assert.notEqual(late.code, 0);
  });
});

test("POST /v1/runs/:run/signals/:event sends an event through smithers serve, as the token's user", async (t) => {
  const dir = freshDir("smithers-signal-http-");
  const db = join(dir, "smithers.db");
  const file = writeIn(dir, "wfe.tsx", WFE_TSX_FOR_HTTP);
  const config = writeIn(dir, "serve.json", JSON.stringify({ tokens: [{ user: "deployer", token: "signal-token-0123456789abcdef", scopes: ["approve", "read"] }] }));
  await expectExit(assert, 3, ["up", file, "--run-id", "h1"], { db });
  const server = await startServe({ db, config });
  t.after(() => server.stop("SIGKILL"));
  const api = client(server.url, "signal-token-0123456789abcdef");
  const none = await api("/v1/runs/h1/signals/nothing", { body: { data: {} } });
  assert.equal(none.status, 404, JSON.stringify(none.body));
  const bad = await api("/v1/runs/h1/signals/deploy.completed", { body: { data: { ok: "yes" } } });
  assert.equal(bad.status, 422, JSON.stringify(bad.body));
  const ok = await api("/v1/runs/h1/signals/deploy.completed", { body: { data: { ok: true, version: "7" }, correlationId: "d-1" } });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.decidedBy, "deployer");
  await waitFor(async () => (await api("/v1/runs/h1")).body.run?.status === "waiting-approval" && (await api("/v1/approvals")).body.approvals?.some((a) => a.nodeId === "feedback"), { timeoutMs: 20_000, what: "the run to wait for the next event" });
  assert.equal((await api("/v1/runs/h1/signals/feedback", { body: { data: { rating: 2 } } })).status, 200);
  await waitFor(async () => (await api("/v1/runs/h1")).body.run?.status === "finished", { timeoutMs: 20_000, what: "the run to finish" });
});

describe("a driver with task bodies in flight fires its own run's timers", () => {
  // <Parallel>: a long task that waits (up to 30 s) for the task after a 300 ms <Timer> to
  // have run. Only a driver that fires its own due timer while the long body runs lets it see
  // that: otherwise the timer is fired after the long task ends (when the run parks).
  const PARALLEL_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Parallel, Sequence, Task, Timer, createSmithers } from "smithers-orchestrator";
import { existsSync, writeFileSync } from "node:fs";
import { z } from "zod";
const { Workflow, smithers, outputs } = createSmithers({ long: z.object({ sawAfter: z.boolean() }), after: z.object({ v: z.number() }) });
const MARK = process.env.MARK as string;
export default smithers(() => (
  <Workflow name="timer-beside-long">
    <Parallel>
      <Task id="long" output={outputs.long}>{async () => {
        const until = Date.now() + 30000;
        while (!existsSync(MARK) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        return { sawAfter: existsSync(MARK) };
      }}</Task>
      <Sequence>
        <Timer id="short" duration="300ms" />
        <Task id="after" output={outputs.after}>{() => (writeFileSync(MARK, "after"), { v: 1 })}</Task>
      </Sequence>
    </Parallel>
  </Workflow>
));
`;

  test("smithers up: the task after a short <Timer> starts while a long task still runs", async () => {
    const dir = freshDir("smithers-timer-inflight-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "beside.tsx", PARALLEL_TSX);
    const up = await expectExit(assert, 0, ["up", file, "--json", "--run-id", "beside"], { db, env: { MARK: join(dir, "after.mark") } });
    assert.equal(up.json.status, "finished");
    const info = readDb(db, (e) => e.inspect("beside"));
    const long = info.outputs.find((o) => o.nodeId === "long");
    assert.deepEqual(long.value, { sawAfter: true }, "the task after the timer ran before the long task ended");
    const fired = eventsOf(db, "beside", "TimerFired");
    assert.equal(fired.length, 1);
    assert.equal(fired[0].outcome, "finished");
  });

  test("engine.run (Node API): the same, in one process", async () => {
    const dir = freshDir("smithers-timer-inflight-");
    const db = join(dir, "smithers.db");
    const file = writeIn(dir, "beside.tsx", PARALLEL_TSX);
    process.env.MARK = join(dir, "after.mark");
    const engine = new SmithersEngine({ dbPath: db });
    try {
      const result = await engine.run(file, { runId: "beside-api" });
      assert.equal(result.status, "finished");
      const long = engine.inspect("beside-api").outputs.find((o) => o.nodeId === "long");
      assert.deepEqual(long.value, { sawAfter: true });
    } finally {
      engine.close();
      delete process.env.MARK;
    }
  });
});
