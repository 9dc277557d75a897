// Durability across processes: kill -9 mid-task and at a wait, racing approvers, and a
// decision made by the CLI while another live process drives the run.
// Every test has its own temp dir and database; every child process is killed in `after`.
// durability-postgres.test.js runs the same tests on PostgreSQL (SMITHERS_TEST_STORE=postgres:
// each test's database is a schema of its own on the file's server).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import {
  GATE_TSX,
  KILLMID_TSX,
  PKG_INDEX_URL,
  TWO_GATES_TSX,
  cli,
  cliJson,
  countEffects,
  freshDir,
  killAll,
  readEffects,
  removeDirs,
  spawnCli,
  spawnNode,
  waitFor,
  writeIn,
} from "./helpers/durability.js";
import { pgDatabase } from "./helpers/postgres.js";

/** The test's database: `<dir>/smithers.db`, or a fresh schema on PostgreSQL. */
const dbIn = (dir) => (process.env.SMITHERS_TEST_STORE === "postgres" ? pgDatabase("dur") : join(dir, "smithers.db"));

after(() => {
  killAll();
  removeDirs();
});

const TIMEOUT = 120_000;

/** Reads a run's state from the database (a fresh connection, closed at once). */
function inspectDb(dbPath, runId) {
  const engine = new SmithersEngine({ dbPath });
  try {
    return { ...engine.inspect(runId), events: engine.events(runId, { limit: 10_000 }) };
  } finally {
    engine.close();
  }
}

const nodeOf = (info, id) => info.nodes.find((n) => n.nodeId === id);
const describeRun = (r) => `exit ${r.code} ${r.signal ?? ""}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/**
 * A compute task \`busy\` (waits for $RELEASE) in parallel with <Approval gate> -> \`down\`
 * (only once approved). Effects go to $EFFECTS.
 */
const BUSY_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Parallel, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
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
    <Workflow name="busy">
      <Parallel>
        <Task id="busy" output={outputs.step}>
          {async () => {
            mark("busy-start");
            await until(process.env.RELEASE as string);
            mark("busy-end");
            return { v: 1 };
          }}
        </Task>
        <Sequence>
          <Approval id="gate" output={outputs.gate} request={{ title: "Go?" }} />
          {decision?.approved ? (
            <Task id="down" output={outputs.step}>
              {() => {
                mark("down");
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

describe("kill -9", { timeout: TIMEOUT }, () => {
  test("kill -9 mid-task: resume re-runs only the interrupted task, completed ones never again", async () => {
    const dir = freshDir();
    const wf = writeIn(dir, "killmid.tsx", KILLMID_TSX);
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "kill-mid-1";

    const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
    await waitFor(() => readEffects(effects).some((e) => e.what === "slow-start"), { what: "slow-start in the effects file" });
    up.child.kill("SIGKILL");
    const killed = await up.done;
    assert.equal(killed.signal, "SIGKILL", describeRun(killed));

    // What the dead process left: pre finished, slow in progress, owned by a dead pid.
    let info = inspectDb(db, runId);
    assert.equal(info.run.status, "running");
    assert.equal(nodeOf(info, "pre").state, "finished");
    assert.equal(nodeOf(info, "slow").state, "in-progress");

    // `why` says the run needs a resume: its driver is gone (not "being driven by" it).
    const why = await cliJson(["why", runId, "--db", db]);
    assert.equal(why.code, 0, describeRun(why));
    assert.deepEqual(
      why.json.blockers.map((b) => b.kind),
      ["resume"],
      `why after kill -9: ${JSON.stringify(why.json)}`,
    );
    assert.match(why.json.blockers[0].unblocker, new RegExp(`smithers resume ${runId}`));

    // The slow task may finish now; resume (no --force: the owner is dead).
    writeFileSync(release, "");
    const resumed = await cli(["resume", runId, "--db", db], { env });
    assert.equal(resumed.code, 3, describeRun(resumed));
    assert.match(resumed.stdout, /waiting-approval/);
    assert.match(resumed.stdout, /gate/);

    let counts = countEffects(effects);
    assert.equal(counts.pre, 1, "pre ran exactly once in total");
    assert.equal(counts["slow-start"], 2, "slow started twice (once per process)");
    assert.equal(counts["slow-end"], 1, "slow finished once");
    assert.equal(counts.after, undefined, "after waits for the gate");
    const pids = readEffects(effects).filter((e) => e.what === "slow-start").map((e) => e.pid);
    assert.notEqual(pids[0], pids[1], "the second slow-start comes from the resuming process");

    info = inspectDb(db, runId);
    assert.equal(info.run.status, "waiting-approval");
    assert.equal(info.run.owner, null, "a waiting run has no owner");
    assert.equal(nodeOf(info, "slow").state, "finished");
    assert.equal(nodeOf(info, "slow").attempts, 2);
    assert.equal(nodeOf(info, "pre").attempts, 1);
    const abandoned = info.events.filter((e) => e.type === "NodeAbandoned");
    assert.deepEqual(abandoned.map((e) => [e.nodeId, e.attempt]), [["slow", 1]]);
    assert.deepEqual(info.approvals.map((a) => [a.nodeId, a.status]), [["gate", "requested"]]);

    const approved = await cli(["approve", runId, "--db", db, "--by", "alice", "--note", "go"], { env });
    assert.equal(approved.code, 0, describeRun(approved));
    assert.match(approved.stdout, /finished/);

    counts = countEffects(effects);
    assert.deepEqual(counts, { pre: 1, "slow-start": 2, "slow-end": 1, after: 1 });
    info = inspectDb(db, runId);
    assert.equal(info.run.status, "finished");
    assert.ok(info.nodes.every((n) => n.state === "finished"), JSON.stringify(info.nodes));
    const gate = info.outputs.find((o) => o.nodeId === "gate");
    assert.equal(gate.value.approved, true);
    assert.equal(gate.value.decidedBy, "alice");
    assert.equal(gate.value.note, "go");
  });

  test("resume refuses (RUN_OWNED) while the owner is alive, and takes over once it is killed", async () => {
    const dir = freshDir();
    const wf = writeIn(dir, "killmid.tsx", KILLMID_TSX);
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "kill-mid-2";

    const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
    await waitFor(() => readEffects(effects).some((e) => e.what === "slow-start"), { what: "slow-start" });

    const refused = await cliJson(["resume", runId, "--db", db], { env });
    assert.notEqual(refused.code, 0, describeRun(refused));
    assert.equal(refused.json.error.code, "RUN_OWNED");
    assert.ok(up.child.exitCode === null, "the owner is still running");

    up.child.kill("SIGKILL");
    await up.done;
    writeFileSync(release, "");
    const resumed = await cli(["resume", runId, "--db", db], { env });
    assert.equal(resumed.code, 3, describeRun(resumed));
    assert.deepEqual(countEffects(effects), { pre: 1, "slow-start": 2, "slow-end": 1 });
  });

  test("kill -9 while waiting at the gate: the CLI approves, resumes and finishes the run", async () => {
    const dir = freshDir();
    const wf = writeIn(dir, "killmid.tsx", KILLMID_TSX);
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    writeFileSync(release, ""); // slow does not block in this test
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "kill-wait-1";
    // An embedding service: runs the workflow with the Node API, then stays alive.
    const script = writeIn(
      dir,
      "service.mjs",
      `import { SmithersEngine } from ${JSON.stringify(PKG_INDEX_URL)};
const engine = new SmithersEngine({ dbPath: ${JSON.stringify(db)} });
const result = await engine.run(${JSON.stringify(wf)}, { runId: ${JSON.stringify(runId)} });
console.log("RESULT " + JSON.stringify(result));
setInterval(() => {}, 1 << 30);
`,
    );
    const service = spawnNode([script], { env });
    const line = await waitFor(() => /RESULT (.*)\n/.exec(service.output().stdout)?.[1], {
      what: "the service to reach the gate",
    }).catch((e) => {
      throw new Error(`${e.message}\n${JSON.stringify(service.output())}`);
    });
    assert.equal(JSON.parse(line).status, "waiting-approval");
    service.child.kill("SIGKILL");
    const killed = await service.done;
    assert.equal(killed.signal, "SIGKILL");

    assert.deepEqual(countEffects(effects), { pre: 1, "slow-start": 1, "slow-end": 1 });
    const approved = await cliJson(["approve", runId, "--db", db, "--by", "carol"], { env });
    assert.equal(approved.code, 0, describeRun(approved));
    assert.equal(approved.json.status, "approved");
    assert.equal(approved.json.decidedBy, "carol");
    assert.equal(approved.json.run.status, "finished");

    // Every completed task ran exactly once, the last one in the CLI process.
    assert.deepEqual(countEffects(effects), { pre: 1, "slow-start": 1, "slow-end": 1, after: 1 });
    const afterPid = readEffects(effects).find((e) => e.what === "after").pid;
    assert.notEqual(afterPid, service.child.pid);
    const info = inspectDb(db, runId);
    assert.equal(info.run.status, "finished");
    assert.ok(info.nodes.every((n) => n.state === "finished" && n.attempts <= 1), JSON.stringify(info.nodes));
  });

  test("kill -9 of the driver while its gate waits in parallel: the CLI approves and takes the run over", async () => {
    const dir = freshDir();
    const wf = writeIn(dir, "busy.tsx", BUSY_TSX);
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "kill-parallel-1";

    const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
    await waitFor(() => readEffects(effects).some((e) => e.what === "busy-start"), { what: "busy-start" });
    await waitFor(() => inspectDb(db, runId).approvals.some((a) => a.status === "requested"), { what: "the gate" });
    up.child.kill("SIGKILL");
    await up.done;
    assert.equal(inspectDb(db, runId).run.status, "running", "a run with work in flight is not parked");

    writeFileSync(release, "");
    const approved = await cliJson(["approve", runId, "--db", db, "--by", "frank"], { env });
    assert.equal(approved.code, 0, describeRun(approved));
    assert.equal(approved.json.needsResume, true, "the dead owner does not count");
    assert.equal(approved.json.owner, null);
    assert.equal(approved.json.run.status, "finished");
    assert.deepEqual(countEffects(effects), { "busy-start": 2, "busy-end": 1, down: 1 });
    const info = inspectDb(db, runId);
    assert.equal(info.run.status, "finished");
    assert.equal(nodeOf(info, "busy").attempts, 2);
    assert.equal(nodeOf(info, "down").attempts, 1);
  });

  test("two resumers racing after a kill -9: one drives, the interrupted task re-runs once", async () => {
    const dir = freshDir();
    const wf = writeIn(dir, "killmid.tsx", KILLMID_TSX);
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "kill-race-1";

    const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
    await waitFor(() => readEffects(effects).some((e) => e.what === "slow-start"), { what: "slow-start" });
    up.child.kill("SIGKILL");
    await up.done;

    // Both start before slow can finish; slow is released once both have begun.
    const r1 = spawnCli(["resume", runId, "--db", db, "--json"], { env });
    const r2 = spawnCli(["resume", runId, "--db", db, "--json"], { env });
    await waitFor(() => countEffects(effects)["slow-start"] >= 2, { what: "a resumer to restart slow" });
    writeFileSync(release, "");
    const results = await Promise.all([r1.done, r2.done]);
    const codes = results.map((r) => r.code).sort();
    // The loser finds the run driven (RUN_OWNED), or, if it came late, finds it parked and
    // parks it again: either way nothing runs twice.
    for (const r of results) {
      const json = JSON.parse(r.stdout);
      if (r.code === 1) assert.equal(json.error.code, "RUN_OWNED", describeRun(r));
      else assert.equal(json.status, "waiting-approval", describeRun(r));
    }
    assert.ok(codes.includes(3), `one resumer reached the gate: ${codes}`);
    assert.deepEqual(countEffects(effects), { pre: 1, "slow-start": 2, "slow-end": 1 });
    const info = inspectDb(db, runId);
    assert.equal(info.run.status, "waiting-approval");
    assert.equal(nodeOf(info, "slow").attempts, 2);
  });

  test("smithers cancel while another process drives the run: the driver stops, nothing else runs", async () => {
    const dir = freshDir();
    const wf = writeIn(dir, "killmid.tsx", KILLMID_TSX);
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "cancel-live-1";

    const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
    await waitFor(() => readEffects(effects).some((e) => e.what === "slow-start"), { what: "slow-start" });
    const cancelled = await cliJson(["cancel", runId, "--db", db], { env });
    assert.equal(cancelled.code, 0, describeRun(cancelled));
    assert.equal(cancelled.json.status, "cancelled");
    writeFileSync(release, "");
    const end = await up.done;
    assert.equal(end.code, 2, describeRun(end));
    assert.match(end.stdout, /cancelled/);
    const info = inspectDb(db, runId);
    assert.equal(info.run.status, "cancelled");
    assert.deepEqual(info.approvals, [], "the gate after slow was never requested");
    const counts = countEffects(effects);
    assert.equal(counts.pre, 1);
    assert.equal(counts["slow-start"], 1);
    assert.equal(counts.after, undefined);
    // Resuming a cancelled run runs nothing.
    const resumed = await cli(["resume", runId, "--db", db], { env });
    assert.equal(resumed.code, 2, describeRun(resumed));
    assert.equal(countEffects(effects)["slow-start"], 1);
  });
});

describe("kill -9 with loops and retries", { timeout: TIMEOUT }, () => {
  test("kill -9 inside a loop: resume goes on at the same iteration, earlier iterations never re-run", async () => {
    const dir = freshDir();
    const wf = writeIn(
      dir,
      "loop.tsx",
      `/** @jsxImportSource smithers-orchestrator */
import { Loop, Sequence, Task, createSmithers } from "smithers-orchestrator";
import { appendFileSync, existsSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ v: z.number(), it: z.number() }) });
const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);

export default smithers((ctx) => {
  const last = ctx.latest(outputs.step, "step");
  return (
    <Workflow name="loop-kill">
      <Sequence>
        <Loop id="l" until={(last?.v ?? 0) >= 3} maxIterations={10}>
          <Task id="step" output={outputs.step}>
            {async () => {
              const it = ctx.iteration;
              mark(\`step-\${it}\`);
              if (it === 1) {
                while (!existsSync(process.env.RELEASE as string)) await new Promise((r) => setTimeout(r, 20));
              }
              return { v: (ctx.latest(outputs.step, "step")?.v ?? 0) + 1, it };
            }}
          </Task>
        </Loop>
        <Task id="done" output={outputs.step}>
          {() => {
            mark("done");
            return { v: ctx.iterationCount(outputs.step, "step"), it: -1 };
          }}
        </Task>
      </Sequence>
    </Workflow>
  );
});
`,
    );
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "loop-kill-1";
    const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
    await waitFor(() => readEffects(effects).some((e) => e.what === "step-1"), { what: "iteration 1 to start" });
    up.child.kill("SIGKILL");
    await up.done;

    writeFileSync(release, "");
    const resumed = await cli(["resume", runId, "--db", db], { env });
    assert.equal(resumed.code, 0, describeRun(resumed));
    assert.deepEqual(countEffects(effects), { "step-0": 1, "step-1": 2, "step-2": 1, done: 1 });
    const info = inspectDb(db, runId);
    assert.equal(info.run.status, "finished");
    const rows = info.outputs.filter((o) => o.nodeId === "step").map((o) => [o.iteration, o.value.v, o.value.it]);
    assert.deepEqual(rows.sort(), [
      [0, 1, 0],
      [1, 2, 1],
      [2, 3, 2],
    ]);
    assert.equal(info.outputs.find((o) => o.nodeId === "done").value.v, 3);
  });

  test(
    "an attempt abandoned by kill -9 does not use up the task's retries",
    
    async () => {
      const dir = freshDir();
      const wf = writeIn(
        dir,
        "flaky.tsx",
        `/** @jsxImportSource smithers-orchestrator */
import { Task, createSmithers } from "smithers-orchestrator";
import { appendFileSync, existsSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ v: z.number() }) });
const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);
let callsHere = 0;

export default smithers(() => (
  <Workflow name="flaky">
    <Task id="flaky" output={outputs.step} retries={1}>
      {async () => {
        callsHere += 1;
        mark("flaky");
        // First process: hang until killed. Later: fail once, then succeed.
        while (!existsSync(process.env.RELEASE as string)) await new Promise((r) => setTimeout(r, 20));
        if (callsHere === 1) throw new Error("transient");
        return { v: callsHere };
      }}
    </Task>
  </Workflow>
));
`,
      );
      const db = dbIn(dir);
      const effects = join(dir, "effects.log");
      const release = join(dir, "release");
      const env = { EFFECTS: effects, RELEASE: release };
      const runId = "flaky-kill-1";
      const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
      await waitFor(() => readEffects(effects).length === 1, { what: "the first attempt" });
      up.child.kill("SIGKILL");
      await up.done;
      writeFileSync(release, "");
      const resumed = await cli(["resume", runId, "--db", db], { env });
      assert.equal(countEffects(effects).flaky, 3, "killed, failed, retried");
      assert.equal(resumed.code, 0, describeRun(resumed));
      assert.equal(inspectDb(db, runId).run.status, "finished");
    },
  );
});

describe("two approvers racing", { timeout: TIMEOUT }, () => {
  test("exactly one decision is recorded; the loser gets ALREADY_DECIDED or NO_PENDING_APPROVALS", async (t) => {
    const dir = freshDir();
    const wf = writeIn(dir, "race.tsx", GATE_TSX);
    const db = dbIn(dir);
    const outcomes = { ALREADY_DECIDED: 0, NO_PENDING_APPROVALS: 0 };
    for (let i = 0; i < 10; i++) {
      const effects = join(dir, `effects-${i}.log`);
      const env = { EFFECTS: effects };
      const runId = `race-${i}`;
      const up = await cli(["up", wf, "--db", db, "--run-id", runId], { env });
      assert.equal(up.code, 3, describeRun(up));

      // Even rounds: approve vs deny; odd rounds: two approvals by different people.
      const kinds = i % 2 === 0 ? ["approve", "deny"] : ["approve", "approve"];
      const who = ["alice", "bob"];
      const [a, b] = await Promise.all(
        kinds.map((kind, k) => cliJson([kind, runId, "--db", db, "--by", who[k], "--note", `${who[k]}-${i}`], { env })),
      );
      const results = [a, b];
      const winners = results.filter((r) => r.code === 0);
      const losers = results.filter((r) => r.code !== 0);
      assert.equal(winners.length, 1, `round ${i}: exactly one winner\n${results.map(describeRun).join("\n")}`);
      const winner = winners[0];
      const loser = losers[0];
      const winnerIdx = results.indexOf(winner);
      assert.equal(winner.json.ok, true);
      assert.equal(winner.json.decidedBy, who[winnerIdx]);
      assert.equal(winner.json.run.status, "finished");

      assert.equal(loser.json.ok, false);
      const code = loser.json.error.code;
      assert.ok(code === "ALREADY_DECIDED" || code === "NO_PENDING_APPROVALS", `round ${i}: loser code ${code}`);
      outcomes[code] += 1;
      if (code === "ALREADY_DECIDED") {
        assert.equal(loser.code, 1);
        const { details, message } = loser.json.error;
        assert.equal(details.decidedBy, who[winnerIdx]);
        assert.equal(details.status, kinds[winnerIdx] === "approve" ? "approved" : "denied");
        assert.match(details.decidedAt, /^\d{4}-\d\d-\d\dT/);
        assert.ok(message.includes(who[winnerIdx]), `message names who decided: ${message}`);
        assert.ok(message.includes(details.decidedAt), `message names when: ${message}`);
      } else {
        assert.equal(loser.code, 4);
      }

      // One decision in the store, by the winner, and the run went on accordingly.
      const info = inspectDb(db, runId);
      assert.equal(info.approvals.length, 1);
      const [approval] = info.approvals;
      assert.equal(approval.status, kinds[winnerIdx] === "approve" ? "approved" : "denied");
      assert.equal(approval.decidedBy, who[winnerIdx]);
      assert.equal(approval.note, `${who[winnerIdx]}-${i}`);
      const decisions = info.events.filter((e) => e.type === "ApprovalGranted" || e.type === "ApprovalDenied");
      assert.equal(decisions.length, 1, `round ${i}: one decision event`);
      assert.equal(info.run.status, "finished");
      const counts = countEffects(effects);
      assert.equal(counts.pre, 1);
      assert.equal(counts.after ?? 0, approval.status === "approved" ? 1 : 0);
    }
    // Neither loser outcome is required, but both must be one of the two.
    assert.equal(outcomes.ALREADY_DECIDED + outcomes.NO_PENDING_APPROVALS, 10);
    t.diagnostic(`loser outcomes: ${JSON.stringify(outcomes)}`);
  });
});

describe("two approvers of two different gates at once", { timeout: TIMEOUT }, () => {
  test("both decisions count, the run finishes with each branch run once", async () => {
    const dir = freshDir();
    const wf = writeIn(dir, "two-gates.tsx", TWO_GATES_TSX);
    const db = dbIn(dir);
    for (let i = 0; i < 8; i++) {
      const effects = join(dir, `effects-${i}.log`);
      const env = { EFFECTS: effects };
      const runId = `two-${i}`;
      const up = await cli(["up", wf, "--db", db, "--run-id", runId], { env });
      assert.equal(up.code, 3, describeRun(up));
      // Whoever claims the run second finds it driven by the first: that is not an error,
      // the driver claimed it after both decisions were committed and picks them up.
      const [a, b] = await Promise.all([
        cliJson(["approve", runId, "--db", db, "--node", "g1", "--by", "alice"], { env }),
        cliJson(["approve", runId, "--db", db, "--node", "g2", "--by", "bob"], { env }),
      ]);
      // An approver whose resume parked the run before the other decision was committed
      // reports the run as it left it (3, waiting); the other one then finishes it (0).
      assert.ok([0, 3].includes(a.code), `round ${i}: ${describeRun(a)}`);
      assert.ok([0, 3].includes(b.code), `round ${i}: ${describeRun(b)}`);
      assert.ok(a.code === 0 || b.code === 0, `round ${i}: neither approver saw the run finish`);
      for (const r of [a, b]) {
        assert.equal(r.json.status, "approved");
        if (r.json.run === null) assert.ok(r.json.owner, `round ${i}: no run and no owner: ${r.stdout}`);
      }
      const info = inspectDb(db, runId);
      assert.equal(info.run.status, "finished", `round ${i}`);
      assert.deepEqual(countEffects(effects), { a1: 1, a2: 1 });
      assert.deepEqual(info.approvals.map((x) => [x.nodeId, x.status, x.decidedBy]), [
        ["g1", "approved", "alice"],
        ["g2", "approved", "bob"],
      ]);
    }
  });
});

describe("a decision while another live process drives the run", { timeout: TIMEOUT }, () => {
  test("the CLI records it without taking over; the driving process picks it up", async () => {
    const dir = freshDir();
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "live-driver-1";
    const wf = writeIn(dir, "busy.tsx", BUSY_TSX);
    const script = writeIn(
      dir,
      "driver.mjs",
      `import { SmithersEngine } from ${JSON.stringify(PKG_INDEX_URL)};
const engine = new SmithersEngine({ dbPath: ${JSON.stringify(db)} });
const result = await engine.run(${JSON.stringify(wf)}, { runId: ${JSON.stringify(runId)} });
console.log("RESULT " + JSON.stringify(result));
engine.close();
`,
    );
    const driver = spawnNode([script], { env });
    // The busy task runs and the gate is requested: the run is driven, not parked.
    await waitFor(() => readEffects(effects).some((e) => e.what === "busy-start"), { what: "busy-start" });
    await waitFor(
      () => {
        const info = inspectDb(db, runId);
        return info.approvals.some((a) => a.nodeId === "gate" && a.status === "requested");
      },
      { what: "the gate to be requested" },
    );
    let info = inspectDb(db, runId);
    assert.equal(info.run.status, "running");
    assert.ok(info.run.owner, "the driving process owns the run");
    // While it is alive, `why` names it (the gate is also pending).
    const why = await cliJson(["why", runId, "--db", db]);
    assert.ok(why.json.blockers.some((b) => b.kind === "approval"), JSON.stringify(why.json));
    assert.ok(!why.json.blockers.some((b) => b.kind === "resume"), JSON.stringify(why.json));

    const approved = await cliJson(["approve", runId, "--db", db, "--by", "dave"], { env });
    assert.equal(approved.code, 0, describeRun(approved));
    assert.equal(approved.json.status, "approved");
    assert.equal(approved.json.needsResume, false);
    assert.equal(approved.json.owner, info.run.owner, "the outcome names the live owner");
    assert.equal(approved.json.run, null, "the CLI did not drive the run");
    // The driver may already have run `down` (it watches for decisions while busy runs),
    // but never the CLI.
    assert.ok(readEffects(effects).every((e) => e.pid === driver.child.pid), "the CLI ran no task");
    info = inspectDb(db, runId);
    assert.equal(info.run.owner, approved.json.owner, "the owner is unchanged");

    writeFileSync(release, "");
    const end = await driver.done;
    assert.equal(end.code, 0, describeRun(end));
    const result = JSON.parse(/RESULT (.*)\n/.exec(end.stdout)[1]);
    assert.equal(result.status, "finished");

    const effectsNow = readEffects(effects);
    assert.deepEqual(countEffects(effects), { "busy-start": 1, "busy-end": 1, down: 1 });
    assert.ok(effectsNow.every((e) => e.pid === driver.child.pid), "every task ran in the driving process");
    info = inspectDb(db, runId);
    assert.equal(info.run.status, "finished");
    assert.equal(info.approvals[0].decidedBy, "dave");
  });

  test("the human-readable CLI says the run is driven by another process", async () => {
    const dir = freshDir();
    const db = dbIn(dir);
    const effects = join(dir, "effects.log");
    const release = join(dir, "release");
    const env = { EFFECTS: effects, RELEASE: release };
    const runId = "live-driver-2";
    const wf = writeIn(
      dir,
      "busy2.tsx",
      `/** @jsxImportSource smithers-orchestrator */
import { Approval, Parallel, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { appendFileSync, existsSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  step: z.object({ v: z.number() }),
  gate: approvalDecisionSchema,
});
const until = async (file: string) => {
  while (!existsSync(file)) await new Promise((r) => setTimeout(r, 20));
};

export default smithers(() => (
  <Workflow name="busy2">
    <Parallel>
      <Task id="busy" output={outputs.step}>
        {async () => {
          appendFileSync(process.env.EFFECTS as string, \`busy-start \${process.pid}\\n\`);
          await until(process.env.RELEASE as string);
          return { v: 1 };
        }}
      </Task>
      <Approval id="gate" output={outputs.gate} request={{ title: "Go?" }} />
    </Parallel>
  </Workflow>
));
`,
    );
    const up = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
    await waitFor(() => readEffects(effects).some((e) => e.what === "busy-start"), { what: "busy-start" });
    await waitFor(() => inspectDb(db, runId).approvals.some((a) => a.status === "requested"), { what: "the gate" });

    const approved = await cli(["approve", runId, "--db", db, "--by", "erin"], { env });
    assert.equal(approved.code, 0, describeRun(approved));
    assert.match(approved.stdout, /approved gate in run live-driver-2 by erin/);
    assert.match(approved.stdout, /is driven by .*picks the decision up/);

    writeFileSync(release, "");
    const end = await up.done;
    assert.equal(end.code, 0, describeRun(end));
    assert.match(end.stdout, /finished/);
    assert.equal(inspectDb(db, runId).run.status, "finished");
  });
});
