// `smithers worker` faults, on SQLite and on PostgreSQL:
//   - kill -9 of a worker mid-run: another worker adopts its run (once the owner is found
//     gone: its lease expired, or on SQLite its process is gone) and finishes it; the task
//     that had completed never runs again, the interrupted one runs again;
//   - SIGTERM: the worker stops taking work, releases the run it drives (its lease let go) and
//     exits 0; another worker takes the run at once — long before the lease would expire;
//   - a worker frozen (SIGSTOP: cut off from the database) past its lease: another worker
//     adopts its run, and its late writes once it thaws are refused (fencing);
//   - PostgreSQL only: the server restarted under load (pg_ctl restart of a server of the
//     test's own): workers reconnect, every run finishes, no completed task runs again;
//     and the same with runs that call a sub-workflow: every parent and every sub-run ends,
//     none is left owned (a sub-run whose release failed is let go once the server is back).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { countEffects, freshDir, killAll, readEffects, removeDirs, slowTsx, waitFor, writeIn } from "./helpers/durability.js";
import { pgDatabase, pgOwnServer } from "./helpers/postgres.js";
import { enqueue, startWorker, withEngine } from "./helpers/workers.js";

after(() => {
  killAll();
  removeDirs();
});

const SLOW_TSX = slowTsx("slow");

function setup(store, name) {
  const dir = freshDir("smithers-worker-faults-");
  const db = store === "postgres" ? pgDatabase(name) : join(dir, "smithers.db");
  const file = writeIn(dir, "slow.tsx", SLOW_TSX);
  const effects = join(dir, "effects.log");
  const release = join(dir, "release");
  return { db, file, effects, release, env: { EFFECTS: effects, RELEASE: release } };
}

/** Three compute tasks, each marking `<task>:<n> <pid>` (n: the run's input) and taking a moment. */
const STEPS_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Sequence, Task, createSmithers } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ n: z.number() }) });

export default smithers((ctx) => {
  const step = (id: string) => async () => {
    appendFileSync(process.env.EFFECTS as string, \`\${id}:\${ctx.input.n} \${process.pid}\\n\`);
    await new Promise((r) => setTimeout(r, 15));
    return { n: Number(ctx.input.n) };
  };
  return (
    <Workflow name="steps">
      <Sequence>
        <Task id="a" output={outputs.step}>{step("a")}</Task>
        <Task id="b" output={outputs.step}>{step("b")}</Task>
        <Task id="c" output={outputs.step}>{step("c")}</Task>
      </Sequence>
    </Workflow>
  );
});
`;

const startedBy = (effects, what) => readEffects(effects).filter((e) => e.what === what).map((e) => e.pid);

for (const store of ["sqlite", "postgres"]) {
  describe(`smithers worker faults on ${store}`, { timeout: 120_000 }, () => {
    test("kill -9 of a worker mid-run: another worker adopts the run after the lease; no completed task runs again", async () => {
      const { db, file, effects, release, env } = setup(store, "kill9");
      const [runId] = await enqueue(db, file, 1);
      // A short lease: the dead worker's claim runs out soon.
      const workerEnv = { ...env, SMITHERS_LEASE_MS: "600" };
      const first = startWorker(db, { env: workerEnv });
      await waitFor(() => startedBy(effects, "slow-start").length === 1, { what: "slow started in the first worker" });
      assert.deepEqual(startedBy(effects, "slow-start"), [first.child.pid]);
      const second = startWorker(db, { env: workerEnv });
      await waitFor(() => second.events().some((e) => e.event === "started"), { what: "the second worker up" });
      first.child.kill("SIGKILL");
      await first.done;

      await waitFor(() => startedBy(effects, "slow-start").length === 2, { what: "slow started again in the second worker" });
      const [took] = second.took();
      assert.equal(took.runId, runId);
      assert.equal(took.why, "owner-gone");
      writeFileSync(release, "");
      await waitFor(() => withEngine(db, (e) => e.getRun(runId).status === "finished"), { what: "the run finished" });
      const end = await second.stop("SIGTERM");
      assert.equal(end.code, 0, end.stderr);

      const counts = countEffects(effects);
      assert.deepEqual(counts, { pre: 1, "slow-start": 2, "slow-end": 1, after: 1 });
      for (const what of ["slow-end", "after"]) assert.deepEqual(startedBy(effects, what), [second.child.pid]);
      withEngine(db, (e) => {
        const info = e.inspect(runId);
        assert.equal(info.nodes.find((n) => n.nodeId === "pre").attempts, 1, "pre never ran again");
        assert.equal(info.nodes.find((n) => n.nodeId === "slow").attempts, 2);
        const events = e.events(runId, { limit: 1000 });
        assert.deepEqual(events.filter((ev) => ev.type === "NodeAbandoned").map((ev) => ev.nodeId), ["slow"]);
        assert.equal(info.outputs.find((o) => o.nodeId === "slow").value.pid, second.child.pid);
      });
    });

    test("SIGTERM: the worker releases its run and exits 0; another worker takes it at once, not at lease expiry", async () => {
      const { db, file, effects, release, env } = setup(store, "term");
      const [runId] = await enqueue(db, file, 1);
      // A lease far longer than the test: only a release lets another worker in.
      const workerEnv = { ...env, SMITHERS_LEASE_MS: "600000" };
      const first = startWorker(db, { env: workerEnv, args: ["--grace-ms", "200"] });
      await waitFor(() => startedBy(effects, "slow-start").length === 1, { what: "slow started in the first worker" });
      const second = startWorker(db, { env: workerEnv });
      await waitFor(() => second.events().some((e) => e.event === "started"), { what: "the second worker up" });
      // Live owner, long lease: the second worker leaves the run alone.
      assert.deepEqual(second.took(), []);
      assert.equal(withEngine(db, (e) => e.getRun(runId).owner !== null), true);

      const end = await first.stop("SIGTERM");
      assert.equal(end.code, 0, end.stderr);
      const events = first.events();
      assert.ok(events.some((e) => e.event === "stopping" && e.signal === "SIGTERM"));
      assert.ok(events.some((e) => e.event === "released" && e.runId === runId && e.why === "stopping"), JSON.stringify(events));
      assert.equal(events.at(-1).event, "stopped");

      await waitFor(() => second.took().some((t) => t.runId === runId), { what: "the second worker to take the run" });
      assert.equal(second.took()[0].why, "ready", "taken as released, not as a dead owner's");
      await waitFor(() => startedBy(effects, "slow-start").length === 2, { what: "slow started again" });
      writeFileSync(release, "");
      await waitFor(() => withEngine(db, (e) => e.getRun(runId).status === "finished"), { what: "the run finished" });
      const end2 = await second.stop("SIGINT");
      assert.equal(end2.code, 0, end2.stderr);

      const counts = countEffects(effects);
      // The first worker's body may still have seen the release file before its process ended;
      // its completion is refused either way (the run is no longer its): after runs once.
      assert.equal(counts.pre, 1);
      assert.equal(counts["slow-start"], 2);
      assert.equal(counts.after, 1);
      assert.deepEqual(startedBy(effects, "after"), [second.child.pid]);
      withEngine(db, (e) => {
        const info = e.inspect(runId);
        assert.equal(info.run.owner, null);
        assert.equal(info.nodes.find((n) => n.nodeId === "pre").attempts, 1);
      });
    });

    test("a worker frozen past its lease: another worker adopts its run; its late writes are refused", async () => {
      const { db, file, effects, release, env } = setup(store, "frozen");
      const [runId] = await enqueue(db, file, 1);
      const workerEnv = { ...env, SMITHERS_LEASE_MS: "600" };
      const first = startWorker(db, { env: workerEnv });
      await waitFor(() => startedBy(effects, "slow-start").length === 1, { what: "slow started in the first worker" });
      // Cut off: the process (its lease keeper with it) stops; the database hears nothing
      // more from it while the lease runs out.
      first.child.kill("SIGSTOP");
      const second = startWorker(db, { env: workerEnv });
      await waitFor(() => second.took().some((t) => t.runId === runId), { what: "the second worker to adopt the run" });
      assert.equal(second.took()[0].why, "owner-gone");
      await waitFor(() => startedBy(effects, "slow-start").length === 2, { what: "slow started again in the second worker" });
      writeFileSync(release, "");
      await waitFor(() => withEngine(db, (e) => e.getRun(runId).status === "finished"), { what: "the run finished" });

      // Thawed: its body sees the release file and reports `slow` (and would go on to
      // `after`): the database refuses it — the run is no longer its.
      first.child.kill("SIGCONT");
      await waitFor(() => first.events().some((e) => e.event === "released" && e.runId === runId), {
        what: "the thawed worker to give the run up",
      });
      const gaveUp = first.events().find((e) => e.event === "released" && e.runId === runId);
      assert.equal(gaveUp.status, "lost", JSON.stringify(gaveUp));
      await waitFor(() => startedBy(effects, "slow-end").length === 2, { what: "the thawed body to end" });
      const end = await first.stop("SIGTERM");
      assert.equal(end.code, 0, end.stderr);
      const end2 = await second.stop("SIGTERM");
      assert.equal(end2.code, 0, end2.stderr);

      const counts = countEffects(effects);
      assert.deepEqual(counts, { pre: 1, "slow-start": 2, "slow-end": 2, after: 1 });
      assert.deepEqual(startedBy(effects, "after"), [second.child.pid]);
      withEngine(db, (e) => {
        const info = e.inspect(runId);
        assert.equal(info.run.status, "finished");
        assert.equal(info.nodes.find((n) => n.nodeId === "pre").attempts, 1, "pre never ran again");
        assert.equal(info.nodes.find((n) => n.nodeId === "slow").attempts, 2);
        assert.equal(info.nodes.find((n) => n.nodeId === "after").attempts, 1);
        // What the frozen worker reported was never recorded: the output is the adopter's.
        assert.equal(info.outputs.find((o) => o.nodeId === "slow").value.pid, second.child.pid);
        const finished = e.events(runId, { limit: 1000 }).filter((ev) => ev.type === "NodeFinished");
        assert.deepEqual(finished.map((ev) => ev.nodeId).sort(), ["after", "pre", "slow"]);
      });
    });
  });
}

describe("smithers worker: PostgreSQL restarted under load", { timeout: 180_000 }, () => {
  test("workers reconnect; every run finishes; no completed task runs again", async () => {
    const server = pgOwnServer();
    const db = server.database("restart");
    const dir = freshDir("smithers-worker-restart-");
    const file = writeIn(dir, "steps.tsx", STEPS_TSX);
    const effects = join(dir, "effects.log");
    const runs = 40;
    const ids = await enqueue(db, file, runs);
    // Leases far longer than the test: runs must come back through the workers' own
    // reconnecting and releasing, not through an expired lease.
    const env = { EFFECTS: effects, SMITHERS_LEASE_MS: "600000" };
    const workers = [startWorker(db, { env }), startWorker(db, { env })];
    const finishedNow = () => withEngine(db, (e) => ids.filter((id) => e.getRun(id).status === "finished").length);
    await waitFor(() => readEffects(effects).length >= 20, { what: "the workers under way" });
    server.restart();
    assert.ok(finishedNow() < runs, "the restart landed mid-way");
    try {
      await waitFor(() => finishedNow() === runs, { what: "every run to finish after the restart", timeoutMs: 120_000 });
    } catch (e) {
      // What each worker said about the runs left (took, claim-failed, released, errors),
      // and its stderr: the mechanism of a run left behind is in them.
      const left = withEngine(db, (en) => ids.map((id) => en.getRun(id)).filter((r) => r.status !== "finished"));
      const about = left.slice(0, 3).map((r) => ({ run: r, said: workers.map((w, i) => ({ worker: i, pid: w.child.pid, lines: w.events().filter((ev) => ev.runId === r.runId) })) }));
      const errors = workers.map((w) => w.events().filter((ev) => ev.event !== "took" && ev.event !== "released").slice(-15));
      const stderr = workers.map((w) => w.stderr().slice(-3000));
      throw new Error(`${e.message}: ${JSON.stringify(about)} ${JSON.stringify(errors)} stderr: ${JSON.stringify(stderr)}`);
    }
    for (const w of workers) {
      const end = await w.stop("SIGTERM");
      assert.equal(end.code, 0, end.stderr);
    }

    const counts = countEffects(effects);
    withEngine(db, (e) => {
      for (const [n, id] of ids.entries()) {
        const info = e.inspect(id);
        assert.equal(info.run.status, "finished");
        const history = e.events(id, { limit: 1000 });
        const finished = history.filter((ev) => ev.type === "NodeFinished");
        // Each task completed once, with no attempt after the one that completed it, and its
        // body ran at most once per attempt the database recorded: a body is run again only
        // when its completion never committed (cut off by the restart), never after it did.
        // An attempt whose start committed while its reply was lost to the restart (the
        // connection ended at COMMIT) never ran its body: the run's next claim abandoned it.
        assert.deepEqual(finished.map((ev) => ev.nodeId).sort(), ["a", "b", "c"], id);
        for (const task of ["a", "b", "c"]) {
          const node = info.nodes.find((x) => x.nodeId === task);
          const bodies = counts[`${task}:${n}`] ?? 0;
          const abandoned = history.filter((ev) => ev.type === "NodeAbandoned" && ev.nodeId === task).length;
          const completedAt = finished.find((ev) => ev.nodeId === task).attempt;
          if (completedAt !== node.attempts || bodies > node.attempts || bodies < node.attempts - abandoned) {
            // The run's history and what the workers said about it show where an attempt went.
            const events = history.map((ev) => [ev.type, ev.nodeId, ev.attempt, ev.timestampMs]);
            const said = workers.map((w) => w.events().filter((ev) => ev.runId === id));
            assert.fail(`${id} ${task}: ${bodies} bodies run, ${node.attempts} attempts (${abandoned} abandoned), completed at attempt ${completedAt}; events ${JSON.stringify(events)}; workers ${JSON.stringify(said)}`);
          }
        }
      }
    });
  });
});

/** A parent calling CHILD_TSX as a sub-run between two compute tasks (effects as STEPS_TSX). */
const PARENT_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Sequence, Task, createSmithers, subRunResultSchema } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ n: z.number() }), sub: subRunResultSchema });

export default smithers((ctx) => {
  const step = (id: string) => async () => {
    appendFileSync(process.env.EFFECTS as string, \`\${id}:\${ctx.input.n} \${process.pid}\\n\`);
    await new Promise((r) => setTimeout(r, 15));
    return { n: Number(ctx.input.n) };
  };
  return (
    <Workflow name="parent">
      <Sequence>
        <Task id="a" output={outputs.step}>{step("a")}</Task>
        <Task id="call" output={outputs.sub} workflow="./child.tsx" input={{ n: Number(ctx.input.n) }} />
        <Task id="c" output={outputs.step}>{step("c")}</Task>
      </Sequence>
    </Workflow>
  );
});
`;

const CHILD_TSX = STEPS_TSX.replace('name="steps"', 'name="child"').replace(/step\("([abc])"\)/g, 'step("child-$1")');

describe("smithers worker: PostgreSQL restarted under load, runs with sub-runs", { timeout: 180_000 }, () => {
  test("every parent and sub-run ends; none is left owned; no completed task runs again", async () => {
    const server = pgOwnServer();
    const db = server.database("restartsub");
    const dir = freshDir("smithers-worker-restart-sub-");
    const file = writeIn(dir, "parent.tsx", PARENT_TSX);
    writeIn(dir, "child.tsx", CHILD_TSX);
    const effects = join(dir, "effects.log");
    const runs = 30;
    const ids = await enqueue(db, file, runs);
    const children = ids.map((id) => `${id}.call.0`);
    // Leases far longer than the test: a sub-run left owned by a live worker would be renewed
    // by it forever; runs must come back through the workers' own releasing.
    const env = { EFFECTS: effects, SMITHERS_LEASE_MS: "600000" };
    const workers = [startWorker(db, { env }), startWorker(db, { env })];
    const ended = (e, id) => {
      try {
        return ["finished", "failed", "cancelled"].includes(e.getRun(id).status);
      } catch {
        return false;
      }
    };
    const endedNow = () => withEngine(db, (e) => [...ids, ...children].filter((id) => ended(e, id)).length);
    await waitFor(() => readEffects(effects).filter((x) => x.what.startsWith("child-")).length >= 15, { what: "the sub-runs under way" });
    server.restart();
    assert.ok(endedNow() < 2 * runs, "the restart landed mid-way");
    try {
      await waitFor(() => endedNow() === 2 * runs, { what: "every parent and sub-run to end after the restart", timeoutMs: 120_000 });
    } catch (e) {
      const left = withEngine(db, (en) =>
        [...ids, ...children].filter((id) => !ended(en, id)).map((id) => {
          try {
            return en.getRun(id);
          } catch (err) {
            return { runId: id, error: err.code };
          }
        }),
      );
      const errors = workers.map((w) => w.events().filter((ev) => ev.event !== "took" && ev.event !== "released").slice(-10));
      throw new Error(`${e.message}: ${left.length} left, e.g. ${JSON.stringify(left.slice(0, 4))} ${JSON.stringify(errors)}`);
    }
    for (const w of workers) {
      const end = await w.stop("SIGTERM");
      assert.equal(end.code, 0, end.stderr);
    }

    const counts = countEffects(effects);
    withEngine(db, (e) => {
      for (const [n, id] of ids.entries()) {
        for (const [runId, tasks, prefix] of [
          [id, ["a", "c"], ""],
          [children[n], ["a", "b", "c"], "child-"],
        ]) {
          const info = e.inspect(runId);
          assert.equal(info.run.status, "finished", `${runId}: ${JSON.stringify(info.run.error ?? null)}`);
          assert.equal(info.run.owner, null, `${runId} is left owned`);
          const history = e.events(runId, { limit: 1000 });
          const finished = history.filter((ev) => ev.type === "NodeFinished");
          for (const task of tasks) {
            // Each body ran at most once per attempt recorded, and again only when its
            // completion never committed (as in the test above).
            const node = info.nodes.find((x) => x.nodeId === task);
            const bodies = counts[`${prefix}${task}:${n}`] ?? 0;
            const abandoned = history.filter((ev) => ev.type === "NodeAbandoned" && ev.nodeId === task).length;
            const completedAt = finished.find((ev) => ev.nodeId === task)?.attempt;
            if (completedAt !== node.attempts || bodies > node.attempts || bodies < node.attempts - abandoned) {
              const events = history.map((ev) => [ev.type, ev.nodeId, ev.attempt, ev.timestampMs]);
              assert.fail(`${runId} ${task}: ${bodies} bodies run, ${node.attempts} attempts (${abandoned} abandoned), completed at attempt ${completedAt}; events ${JSON.stringify(events)}`);
            }
          }
        }
      }
    });
  });
});
