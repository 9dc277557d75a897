// Leases across processes, on SQLite and on PostgreSQL: a process that stops renewing (frozen
// with SIGSTOP: alive, but cut off) loses its run once the lease expires; another process
// adopts it without --force and finishes it, running the interrupted task again and nothing
// that had finished; the frozen process, thawed, finishes its task body late and is fenced —
// its completion is refused (RUN_OWNED) and nothing it reports is recorded.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { SmithersEngine } from "../npm/smithers-rs/src/index.js";
import { cli, countEffects, freshDir, killAll, readEffects, removeDirs, slowTsx, spawnCli, waitFor, writeIn } from "./helpers/durability.js";
import { pgDatabase } from "./helpers/postgres.js";

after(() => {
  killAll();
  removeDirs();
});

const LEASE_TSX = slowTsx("lease");

function inspectDb(database, runId) {
  const engine = new SmithersEngine({ database });
  try {
    return { ...engine.inspect(runId), events: engine.events(runId, { limit: 10_000 }) };
  } finally {
    engine.close();
  }
}

const describeRun = (r) => `exit ${r.code} ${r.signal ?? ""}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

for (const store of ["sqlite", "postgres"]) {
  describe(`leases on ${store}`, { timeout: 120_000 }, () => {
    test("a frozen owner loses its run at lease expiry; another process adopts it; the late completion is fenced", async () => {
      const dir = freshDir("smithers-lease-");
      const db = store === "postgres" ? pgDatabase("lease") : join(dir, "smithers.db");
      const wf = writeIn(dir, "lease.tsx", LEASE_TSX);
      const effects = join(dir, "effects.log");
      const release = join(dir, "release");
      const env = { EFFECTS: effects, RELEASE: release, SMITHERS_LEASE_MS: "300" };
      const runId = `lease-${store}`;

      const owner = spawnCli(["up", wf, "--db", db, "--run-id", runId], { env });
      await waitFor(() => readEffects(effects).some((e) => e.what === "slow-start"), { what: "slow-start" });
      const ownerPid = readEffects(effects).find((e) => e.what === "slow-start").pid;
      // Cut off: alive (its pid exists), but it renews nothing any more.
      owner.child.kill("SIGSTOP");
      await waitFor(
        () => {
          const run = inspectDb(db, runId).run;
          return run.leaseExpiresAt !== null && Date.parse(run.leaseExpiresAt) < Date.now() - 50;
        },
        { what: "the frozen owner's lease to expire" },
      );
      assert.equal(inspectDb(db, runId).run.owner !== null, true, "the frozen process still is the recorded owner");

      // Another process adopts the run: no --force, the lease is the owner's claim.
      writeFileSync(release, "");
      const adopted = await cli(["resume", runId, "--db", db], { env });
      assert.equal(adopted.code, 0, describeRun(adopted));
      assert.match(adopted.stdout, new RegExp(`run ${runId}: finished`));

      // The frozen process wakes up, finishes its body late and reports it: refused.
      owner.child.kill("SIGCONT");
      const late = await owner.done;
      assert.match(late.stdout + late.stderr, /RUN_OWNED/, describeRun(late));

      const counts = countEffects(effects);
      assert.equal(counts.pre, 1, "pre never ran again");
      assert.equal(counts["slow-start"], 2, "slow started once per process");
      assert.equal(counts.after, 1, "after ran once, in the adopting process");
      const info = inspectDb(db, runId);
      assert.equal(info.run.status, "finished");
      assert.equal(info.run.owner, null);
      const slow = info.outputs.find((o) => o.nodeId === "slow");
      assert.notEqual(slow.value.pid, ownerPid, "the recorded output is the adopter's, not the fenced owner's");
      assert.equal(info.nodes.find((n) => n.nodeId === "slow").attempts, 2);
      assert.deepEqual(
        info.events.filter((e) => e.type === "NodeAbandoned").map((e) => [e.nodeId, e.attempt]),
        [["slow", 1]],
      );
      assert.equal(info.events.filter((e) => e.type === "NodeFinished" && e.nodeId === "slow").length, 1);
    });
  });
}
