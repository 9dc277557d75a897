// Every surface on PostgreSQL: `--db postgres://…` and `SMITHERS_DB=postgres://…` for the CLI,
// `new SmithersEngine({ database })`, and `smithers serve --db postgres://…`, on a server of the
// test's own (helpers/postgres.js). A run waits at its gate, is approved from another process
// and finishes; a second decision is refused with the code SQLite's store gives.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { join } from "node:path";
import { EXAMPLES, expectExit, runIdOf, sandbox, smithers } from "./helpers/cli.js";
import { waitFor } from "./helpers/durability.js";
import { pgDatabase } from "./helpers/postgres.js";
import { client, startServe } from "./helpers/serve.js";
import { SmithersEngine, approvalDecisionSchema, createSmithers } from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";

const h = (type, props, ...c) => jsx(type, c.length === 0 ? { ...props } : { ...props, children: c.length === 1 ? c[0] : c });

const PUBLISH = join(EXAMPLES, "publish-approval.tsx");

describe("PostgreSQL: every surface", () => {
  const box = sandbox("smithers-pg-");
  after(() => box.cleanup());

  test("up → waiting → approve from another process → finished; a second decision gets SQLite's code", async () => {
    const codes = {};
    for (const [store, db] of [["postgres", pgDatabase("cli")], ["sqlite", box.db]]) {
      const up = await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Hello"}'], { db });
      assert.match(up.stdout, /waiting-approval/);
      const runId = runIdOf(up.stdout);
      const approve = await expectExit(assert, 0, ["approve", runId, "--by", "alice", "--note", "ship it"], { db });
      assert.match(approve.stdout, new RegExp(`approved publish-approval in run ${runId} by alice`));
      assert.match(approve.stdout, new RegExp(`^run ${runId}: finished$`, "m"));
      const twice = await expectExit(assert, 1, ["deny", runId, "--node", "publish-approval", "--by", "mallory", "--json"], { db });
      codes[store] = twice.json.error.code;
      assert.equal(twice.json.error.details.decidedBy, "alice");
      // The decision row is in the table named by the gate's output, on either store.
      const info = await expectExit(assert, 0, ["inspect", runId, "--json"], { db });
      assert.equal(info.json.run.status, "finished");
      const row = info.json.outputs.find((o) => o.table === "publishApproval");
      assert.equal(row.value.approved, true);
      assert.equal(row.value.decidedBy, "alice");
      assert.equal(row.value.note, "ship it");
    }
    assert.equal(codes.postgres, "ALREADY_DECIDED");
    assert.equal(codes.postgres, codes.sqlite);
  });

  test("SMITHERS_DB=postgres://… reaches every command; a schema that holds no runs is DB_NOT_FOUND", async () => {
    const db = pgDatabase("env");
    const env = { SMITHERS_DB: db };
    const up = await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Env"}', "--run-id", "env-1"], { env });
    assert.match(up.stdout, /^run env-1: waiting-approval$/m);
    const ps = await expectExit(assert, 0, ["ps", "--json"], { env });
    assert.deepEqual(ps.json.runs.map((r) => [r.runId, r.status]), [["env-1", "waiting-approval"]]);
    await expectExit(assert, 0, ["why", "env-1"], { env });
    await expectExit(assert, 0, ["migrate"], { env });
    await expectExit(assert, 0, ["approve", "env-1", "--by", "bob"], { env });
    const inspect = await expectExit(assert, 0, ["inspect", "env-1", "--json"], { env });
    assert.equal(inspect.json.run.status, "finished");
    // A mistyped schema is not created by a read.
    const missing = await expectExit(assert, 4, ["ps", "--json"], { env: { SMITHERS_DB: pgDatabase("nothing") } });
    assert.equal(missing.json.error.code, "DB_NOT_FOUND");
    assert.doesNotMatch(missing.stdout + missing.stderr, /password/);
  });

  test("new SmithersEngine({ database: 'postgres://…' }) starts, parks and resumes on a decision", async () => {
    const database = pgDatabase("api");
    const { Workflow, Sequence, Task, Approval, smithers: wf, outputs } = createSmithers({
      gate: approvalDecisionSchema,
      done: { type: "object", properties: { by: { type: "string" } }, required: ["by"] },
    });
    const workflow = wf((ctx) => {
      const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
      return h(
        Workflow,
        { name: "api" },
        h(
          Sequence,
          {},
          h(Approval, { id: "gate", output: outputs.gate, request: { title: "Go?" } }),
          decision ? h(Task, { id: "done", output: outputs.done }, () => ({ by: decision.decidedBy })) : null,
        ),
      );
    });
    const engine = new SmithersEngine({ database });
    try {
      assert.equal(engine.dbPath, database);
      const started = await engine.run(workflow, { runId: "api-1" });
      assert.equal(started.status, "waiting-approval");
      // Another engine (another connection) sees the run and decides.
      const other = new SmithersEngine({ database });
      try {
        assert.equal(other.pendingApprovals().length, 1);
      } finally {
        other.close();
      }
      const outcome = await engine.approve("api-1", { decidedBy: "carol" });
      assert.equal(outcome.status, "approved");
      assert.equal((await outcome.done).status, "finished");
      const info = engine.inspect("api-1");
      assert.deepEqual(info.outputs.find((o) => o.table === "done").value, { by: "carol" });
      await assert.rejects(engine.approve("api-1", { nodeId: "gate", decidedBy: "dave" }), { code: "ALREADY_DECIDED" });
    } finally {
      engine.close();
    }
  });

  test("smithers serve --db postgres://…: the API lists, decides, refuses a second decision, and finishes the run", async (t) => {
    const db = pgDatabase("serve");
    const token = "pg-serve-token-0123456789";
    const config = box.write("serve.json", JSON.stringify({ tokens: [{ user: "alice", token, scopes: ["approve"] }] }));
    const server = await startServe({ db, config });
    t.after(() => server.stop("SIGKILL"));
    assert.doesNotMatch(JSON.stringify(server), /password/);
    const api = client(server.url, token);
    const up = await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Served"}', "--run-id", "srv-1", "--json"], { db });
    assert.equal(up.json.runId, "srv-1");
    const pending = await api("/v1/approvals");
    assert.equal(pending.status, 200);
    assert.deepEqual(pending.body.approvals.map((a) => [a.runId, a.nodeId]), [["srv-1", "publish-approval"]]);
    const ok = await api("/v1/runs/srv-1/nodes/publish-approval/approve", { body: { note: "via http" } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await waitFor(async () => (await api("/v1/runs/srv-1")).body.run.status === "finished", { timeoutMs: 20_000, what: "srv-1 finished" });
    const twice = await api("/v1/runs/srv-1/nodes/publish-approval/deny", { body: {} });
    assert.equal(twice.status, 409);
    assert.equal(twice.body.error.code, "ALREADY_DECIDED");
    // A run started and decided by other processes (the CLI) is seen by the server.
    await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Other"}', "--run-id", "srv-2"], { db });
    await expectExit(assert, 0, ["approve", "srv-2", "--by", "bob"], { db });
    assert.equal((await api("/v1/runs/srv-2")).body.run.status, "finished");
    // A decision recorded by another process that does not resume the run: the server hears
    // the commit (LISTEN/NOTIFY) and drives the run to its end.
    await expectExit(assert, 3, ["up", PUBLISH, "--input", '{"title":"Third"}', "--run-id", "srv-3"], { db });
    await expectExit(assert, 0, ["approve", "srv-3", "--by", "bob", "--no-resume"], { db });
    await waitFor(async () => (await api("/v1/runs/srv-3")).body.run.status === "finished", { timeoutMs: 20_000, what: "srv-3 driven by serve" });
  });

  test("two smithers serve processes on one database: a decision made elsewhere is driven once, both streams see the run end", async (t) => {
    const db = pgDatabase("two");
    const token = "pg-two-token-0123456789";
    const config = box.write("serve-two.json", JSON.stringify({ tokens: [{ user: "alice", token, scopes: ["approve", "read"] }] }));
    const effects = join(box.dir, "two-effects.log");
    const wf = box.write(
      "two.tsx",
      `/** @jsxImportSource smithers-orchestrator */
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { appendFileSync } from "node:fs";
const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema, done: { type: "object", properties: { pid: { type: "number" } }, required: ["pid"] } });
export default smithers((ctx) => {
  const decision = ctx.outputMaybe(outputs.gate, { nodeId: "gate" });
  return (
    <Workflow name="two">
      <Sequence>
        <Approval id="gate" output={outputs.gate} request={{ title: "Go?" }} />
        {decision ? <Task id="after" output={outputs.done}>{() => { appendFileSync(${JSON.stringify(effects)}, "after " + process.pid + "\\n"); return { pid: process.pid }; }}</Task> : null}
      </Sequence>
    </Workflow>
  );
});
`,
    );
    const a = await startServe({ db, config });
    t.after(() => a.stop("SIGKILL"));
    const b = await startServe({ db, config });
    t.after(() => b.stop("SIGKILL"));
    const apiA = client(a.url, token);
    const apiB = client(b.url, token);
    const runs = ["two-1", "two-2", "two-3"];
    for (const runId of runs) await expectExit(assert, 3, ["up", wf, "--run-id", runId], { db });
    for (const runId of runs) await expectExit(assert, 0, ["approve", runId, "--by", "bob", "--no-resume"], { db });
    for (const runId of runs) {
      await waitFor(async () => (await apiA(`/v1/runs/${runId}`)).body.run.status === "finished", { timeoutMs: 30_000, what: `${runId} finished` });
      assert.equal((await apiB(`/v1/runs/${runId}`)).body.run.status, "finished");
    }
    // Each run's task ran exactly once, in one of the two servers.
    const { readFileSync } = await import("node:fs");
    const lines = readFileSync(effects, "utf8").trim().split("\n");
    assert.equal(lines.length, runs.length, lines.join("\n"));
  });
});

