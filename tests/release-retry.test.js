// Releases that fail because the PostgreSQL server is stopped at that moment (a server of the
// test's own: pg_ctl stop, then start), on a live engine whose lease keeper would renew what it
// still owns forever (leases far longer than the test):
//   - a sub-run whose drive and release fail is let go once the server is back, and so is its
//     parent; both finish when resumed;
//   - a release being tried again never lets go of a run a drive here holds again;
// and (SQLite) a Worker stopped in a process that lives on lets go of the sub-runs its drives
// drive, not only of their callers: another worker takes both at once, not at lease expiry.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { Worker } from "../npm/smithers-rs/src/worker.js";
import { countEffects, freshDir, removeDirs, slowTsx, waitFor, writeIn } from "./helpers/durability.js";
import { pgOwnServer } from "./helpers/postgres.js";

after(() => removeDirs());

const PARENT_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Sequence, Task, createSmithers, subRunResultSchema } from "smithers-orchestrator";
const { Workflow, smithers, outputs } = createSmithers({ sub: subRunResultSchema });
export default smithers(() => (
  <Workflow name="parent"><Sequence><Task id="call" output={outputs.sub} workflow="./child.tsx" /></Sequence></Workflow>
));
`;

/** Its one body calls the test's hook first (which stops the server, once). */
const CHILD_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Sequence, Task, createSmithers } from "smithers-orchestrator";
import { z } from "zod";
const { Workflow, smithers, outputs } = createSmithers({ step: z.object({ n: z.number() }) });
export default smithers(() => (
  <Workflow name="child"><Sequence><Task id="x" output={outputs.step}>{async () => {
    globalThis.__releaseRetryHook?.();
    return { n: 1 };
  }}</Task></Sequence></Workflow>
));
`;

const GATE_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema });
export default smithers(() => (
  <Workflow name="gate"><Sequence><Approval id="ok" output={outputs.gate} request={{ title: "ok?" }} /></Sequence></Workflow>
));
`;

describe("releases retried while the PostgreSQL server is stopped", { timeout: 120_000 }, () => {
  test("a sub-run whose release failed (server stopped) is let go by its live engine once the server is back", async (t) => {
    const server = pgOwnServer();
    const db = server.database("subrelease");
    const dir = freshDir("smithers-release-retry-");
    writeIn(dir, "child.tsx", CHILD_TSX);
    const parentFile = writeIn(dir, "parent.tsx", PARENT_TSX);
    const engine = new SmithersEngine({ database: db, leaseMs: 600_000 });
    t.after(() => engine.close());
    let stopped = false;
    globalThis.__releaseRetryHook = () => {
      if (stopped) return;
      stopped = true;
      server.stop();
    };
    t.after(() => delete globalThis.__releaseRetryHook);

    const { runId, done } = await engine.start(parentFile, {});
    const childId = `${runId}.call.0`;
    // The child's completion, its release, the parent's: all meet a stopped server.
    await done.then(
      () => {},
      () => {},
    );
    assert.ok(stopped, "the child's body ran and stopped the server");
    server.start();
    const owner = engine.native.ownerId();
    const read = (id) => engine.native.runSummaryAsync(id).catch(() => null);
    // The engine lives on (its lease keeper renews what it owns): only its own retried
    // releases can let the runs go.
    await waitFor(async () => (await read(childId))?.owner === null, { what: "the sub-run let go", timeoutMs: 20_000 });
    await waitFor(async () => (await read(runId))?.owner === null, { what: "the parent let go", timeoutMs: 20_000 });
    assert.equal((await read(childId)).status, "running");
    assert.notEqual(owner, null);

    // Nothing was lost: resumed, the parent drives its sub-run to its end, and ends.
    const result = await engine.resume(runId);
    assert.equal(result.status, "finished", JSON.stringify(result));
    assert.equal((await read(childId)).status, "finished");
    assert.equal((await read(childId)).owner, null);
  });

  test("a release tried again while a drive here holds the run again leaves the run to that drive", async (t) => {
    const server = pgOwnServer();
    const db = server.database("heldrelease");
    const dir = freshDir("smithers-release-held-");
    const file = writeIn(dir, "gate.tsx", GATE_TSX);
    const engine = new SmithersEngine({ database: db, leaseMs: 600_000 });
    t.after(() => engine.close());
    const { runId, done } = await engine.start(file, {});
    assert.equal((await done).status, "waiting-approval");
    const native = engine.native;
    const me = native.ownerId();

    await native.claimRunAsync(runId);
    assert.equal((await native.runSummaryAsync(runId)).owner, me);
    server.stop();
    // Fails (the server is stopped): tried again 100 ms later, then 200, 400, … up to 2 s.
    await native.releaseRunRetrying(runId);
    // Driven here again before a retry commits.
    const unhold = native.hold(runId);
    server.start();
    // Long enough for the retries to reach the server back (at most 2 s apart).
    await new Promise((r) => setTimeout(r, 5_000));
    const summary = await native.runSummaryAsync(runId);
    assert.equal(summary.owner, me, "a retried release let go of a run driven here again");
    assert.ok(native.isHeld(runId));

    // Its drive ends: let go now.
    unhold();
    assert.equal(native.isHeld(runId), false);
    await native.releaseRunRetrying(runId);
    assert.equal((await native.runSummaryAsync(runId)).owner, null);
  });
});

test("a Worker stopped in a live process lets go of the sub-run its drive drives; another worker takes both at once", async (t) => {
  const dir = freshDir("smithers-release-stop-");
  const db = join(dir, "smithers.db");
  const effects = join(dir, "effects.log");
  const release = join(dir, "release");
  writeIn(dir, "child.tsx", slowTsx("child"));
  const parentFile = writeIn(dir, "parent.tsx", PARENT_TSX);
  process.env.EFFECTS = effects;
  process.env.RELEASE = release;
  t.after(() => {
    delete process.env.EFFECTS;
    delete process.env.RELEASE;
  });
  const queue = new SmithersEngine({ database: db });
  t.after(() => queue.close());
  const { runId } = await queue.enqueue(parentFile, {});
  const childId = `${runId}.call.0`;
  // Leases far longer than the test, in a process that lives on: only a release lets another
  // worker in.
  const first = new Worker({ database: db, leaseMs: 600_000, pollMs: 20 });
  first.start();
  await waitFor(() => countEffects(effects)["slow-start"] === 1, { what: "the sub-run's slow task under way" });
  const stopped = await first.stop({ graceMs: 100 });
  assert.deepEqual(stopped.released.sort(), [childId, runId].sort());
  assert.equal(stopped.finished, 0);
  assert.equal(queue.getRun(childId).owner, null, "the sub-run is let go");
  assert.equal(queue.getRun(runId).owner, null);

  const second = new Worker({ database: db, leaseMs: 600_000, pollMs: 20, sweepMs: 60_000 });
  t.after(() => second.stop({ graceMs: 0 }));
  second.start();
  await waitFor(() => countEffects(effects)["slow-start"] === 2, { what: "the sub-run's slow task run again by the second worker", timeoutMs: 10_000 });
  writeIn(dir, "release", "");
  await waitFor(() => queue.getRun(runId).status === "finished", { what: "the parent finished", timeoutMs: 20_000 });
  assert.equal(queue.getRun(childId).status, "finished");
  await second.stop({ graceMs: 1000 });
  assert.equal(queue.getRun(childId).owner, null);
  assert.equal(queue.getRun(runId).owner, null);
});
