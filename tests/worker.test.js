// `smithers worker` spreading work over processes, on SQLite and on PostgreSQL: four worker
// processes race over many queued runs and every task runs exactly once, every run finishes,
// and the work is shared; a decision recorded by another process (`approve --no-resume`) and
// a timer that comes due are picked up by a waiting worker, which drives the run on.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { cli, freshDir, killAll, readEffects, removeDirs, waitFor, writeIn } from "./helpers/durability.js";
import { pgDatabase } from "./helpers/postgres.js";
import { enqueue, startWorker, withEngine } from "./helpers/workers.js";

after(() => {
  killAll();
  removeDirs();
});

/** Two short tasks; each appends `<task>:<n> <pid>` to $EFFECTS. */
const SHORT_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Sequence, Task, createSmithers } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ pid: z.number() }) });
const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);

export default smithers((ctx) => (
  <Workflow name="short">
    <Sequence>
      <Task id="a" output={outputs.step}>{() => { mark(\`a:\${ctx.input.n}\`); return { pid: process.pid }; }}</Task>
      <Task id="b" output={outputs.step}>{() => { mark(\`b:\${ctx.input.n}\`); return { pid: process.pid }; }}</Task>
    </Sequence>
  </Workflow>
));
`;

/** `pre` -> <Approval gate> -> `after` (when approved) -> <Timer 1s> -> `last`. */
const GATE_TIMER_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, Timer, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ v: z.number() }), gate: approvalDecisionSchema });
const mark = (what: string) => appendFileSync(process.env.EFFECTS as string, \`\${what} \${process.pid}\\n\`);

export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="gate-timer">
      <Sequence>
        <Task id="pre" output={outputs.step}>{() => (mark("pre"), { v: 1 })}</Task>
        <Approval id="gate" output={outputs.gate} request={{ title: "Go?" }} onDeny="continue" />
        {decision?.approved ? <Task id="after" output={outputs.step}>{() => (mark("after"), { v: 2 })}</Task> : null}
        <Timer id="pause" duration="1s" />
        <Task id="last" output={outputs.step}>{() => (mark("last"), { v: 3 })}</Task>
      </Sequence>
    </Workflow>
  );
});
`;

// The figure: four workers racing over 1,000 runs.
const RUNS = 1000;

for (const store of ["sqlite", "postgres"]) {
  describe(`smithers worker on ${store}`, { timeout: 400_000 }, () => {
    test(`4 workers race over ${RUNS} queued runs: each task exactly once, every run finished, work shared`, async () => {
      const dir = freshDir("smithers-workers-");
      const db = store === "postgres" ? pgDatabase("workers") : join(dir, "smithers.db");
      const file = writeIn(dir, "short.tsx", SHORT_TSX);
      const effects = join(dir, "effects.log");
      // Queued before any worker runs: running, driven by nobody.
      const [first] = await enqueue(db, file, 1, () => ({ n: 0 }));
      withEngine(db, (e) => {
        const run = e.getRun(first);
        assert.equal(run.status, "running");
        assert.equal(run.owner, null);
      });
      // All four up before the rest is queued, so no worker has the queue to itself.
      const workers = Array.from({ length: 4 }, () => startWorker(db, { env: { EFFECTS: effects } }));
      await waitFor(() => workers.every((w) => w.events().some((e) => e.event === "started")), { what: "four workers up" });
      const ids = [first, ...(await enqueue(db, file, RUNS - 1, (i) => ({ n: i + 1 })))];
      assert.equal(new Set(ids).size, RUNS);
      await waitFor(() => readEffects(effects).length >= RUNS * 2, { timeoutMs: 300_000, what: `${RUNS * 2} task effects` });
      await waitFor(() => withEngine(db, (e) => e.listRuns({ status: "finished", limit: RUNS + 1 }).length === RUNS), {
        timeoutMs: 30_000,
        what: "every run finished",
      });
      const ends = await Promise.all(workers.map((w) => w.stop("SIGTERM")));
      for (const end of ends) assert.equal(end.code, 0, end.stderr);

      const counts = {};
      for (const { what } of readEffects(effects)) counts[what] = (counts[what] ?? 0) + 1;
      for (let i = 0; i < RUNS; i++) {
        assert.equal(counts[`a:${i}`], 1, `a:${i} ran once`);
        assert.equal(counts[`b:${i}`], 1, `b:${i} ran once`);
      }
      assert.equal(Object.keys(counts).length, RUNS * 2);
      // Each run was claimed (taken) by exactly one worker, and more than one worker took work.
      const took = workers.flatMap((w) => w.took().map((t) => t.runId));
      assert.equal(took.length, RUNS, "each run taken once");
      assert.deepEqual(new Set(took), new Set(ids));
      assert.ok(workers.filter((w) => w.took().length > 0).length >= 2, `work shared: ${workers.map((w) => w.took().length)}`);
      for (const w of workers) {
        const events = w.events();
        assert.equal(events.at(-1).event, "stopped");
        assert.equal(events.filter((e) => e.event === "released" && e.status === "finished").length, w.took().length);
      }
      withEngine(db, (e) => {
        for (const id of ids.slice(0, 20)) assert.equal(e.getRun(id).owner, null);
      });
    });

    test("a decision recorded by another process and a timer that comes due wake a waiting worker, which drives the run on", async () => {
      const dir = freshDir("smithers-workers-");
      const db = store === "postgres" ? pgDatabase("wake") : join(dir, "smithers.db");
      const file = writeIn(dir, "gate-timer.tsx", GATE_TIMER_TSX);
      const effects = join(dir, "effects.log");
      const env = { EFFECTS: effects };
      // Queued through the CLI: `up --detach` records the run and exits 0 without driving it.
      const queued = await cli(["up", file, "--db", db, "--detach", "--json"], { env });
      assert.equal(queued.code, 0, queued.stderr);
      const { runId, status } = JSON.parse(queued.stdout);
      assert.equal(status, "queued");
      assert.deepEqual(readEffects(effects), []);

      const workers = [startWorker(db, { env }), startWorker(db, { env })];
      await waitFor(() => withEngine(db, (e) => e.getRun(runId).status === "waiting-approval"), { what: "the run at its gate" });
      // Parked at the gate: let go, nobody drives it.
      await waitFor(() => withEngine(db, (e) => e.getRun(runId).owner === null), { what: "the run released" });

      const approved = await cli(["approve", runId, "--db", db, "--no-resume", "--by", "alice"], { env });
      assert.equal(approved.code, 0, approved.stderr);
      await waitFor(() => withEngine(db, (e) => e.getRun(runId).status === "finished"), { what: "the run finished by a worker" });

      const ends = await Promise.all(workers.map((w) => w.stop("SIGINT")));
      for (const end of ends) assert.equal(end.code, 0, end.stderr);
      const counts = {};
      for (const { what } of readEffects(effects)) counts[what] = (counts[what] ?? 0) + 1;
      assert.deepEqual(counts, { pre: 1, after: 1, last: 1 });
      const workerPids = new Set(workers.map((w) => w.child.pid));
      for (const { what, pid } of readEffects(effects)) assert.ok(workerPids.has(pid), `${what} ran in a worker`);
      // Taken at least three times: queued, after the decision, after the timer fired (a
      // worker that read the run as ready just before another parked it may claim it once more
      // and find it parked: it runs nothing, the counts above say so).
      const took = workers.flatMap((w) => w.took()).filter((t) => t.runId === runId);
      assert.ok(took.length >= 3, JSON.stringify(took));
      withEngine(db, (e) => {
        const fired = e.events(runId, { limit: 1000 }).filter((ev) => ev.type === "TimerFired");
        assert.equal(fired.length, 1, "the timer fired once");
      });
    });
  });
}
