// The builder: task / approval / sequence / parallel / branch / loop / workflow, the graph it
// renders, its errors, running it with SmithersEngine, and its TypeScript types.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import {
  SmithersEngine,
  SmithersError,
  approval,
  approvalDecisionSchema,
  branch,
  fields,
  loop,
  parallel,
  renderWorkflow,
  sequence,
  tableKeyFor,
  task,
  workflow,
} from "../src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const snap = (outputs = [], extra = {}) => ({ runId: "r1", input: {}, loops: {}, nodeLoops: {}, outputs, ...extra });
const row = (table, nodeId, value, iteration = 0) => ({ table, nodeId, iteration, value });
const render = (wf, s = snap()) => renderWorkflow(wf, s);
const tasksOf = (node, out = []) => {
  if (node.kind === "task") out.push(node);
  for (const c of node.children ?? []) tasksOf(c, out);
  return out;
};
const byId = (graph, id) => tasksOf(graph.root).find((t) => t.id === id);
const code = (c) => (err) => {
  assert.ok(err instanceof SmithersError, `expected SmithersError, got ${err}`);
  assert.equal(err.code, c, err.message);
  return true;
};
const num = fields({ v: "number" });

describe("builder graphs", () => {
  test("a deploy workflow: tables from ids, dependsOn from needs, request rendered once needs have outputs", () => {
    let requests = 0;
    const build = task("build", { output: fields({ version: "string" }), run: () => ({ version: "1.0" }) });
    const gate = approval("approve-deploy", {
      needs: { build },
      request: ({ build, input }) => {
        requests += 1;
        return { title: `Deploy ${build.version} to ${input.env}?` };
      },
    });
    const deploy = task("deploy", { needs: [build, gate], output: fields({ url: "string" }), run: () => ({ url: "u" }) });
    const wf = workflow({ name: "deploy", steps: [build, gate, deploy] });
    assert.equal(wf.source, "builder");
    assert.deepEqual(Object.keys(wf.jsonSchemas), ["build", "approveDeploy", "deploy"]);
    assert.deepEqual(wf.jsonSchemas.approveDeploy, JSON.parse(JSON.stringify(approvalDecisionSchema)));

    const g0 = render(wf, snap([], { input: { env: "prod" } })).graph;
    assert.equal(requests, 0, "the request function waits for build's output");
    assert.deepEqual(g0.renderDeps, ["build"]);
    assert.deepEqual(g0.root.children, [
      { kind: "task", id: "build", iteration: 0, output: "build", body: { type: "compute" } },
      {
        kind: "task",
        id: "approve-deploy",
        iteration: 0,
        output: "approveDeploy",
        body: { type: "approval" },
        dependsOn: ["build"],
        approval: { mode: "decision", onDeny: "continue", request: { title: "approve-deploy", summary: null, metadata: null } },
        label: "approve-deploy",
      },
      { kind: "task", id: "deploy", iteration: 0, output: "deploy", body: { type: "compute" }, dependsOn: ["build", "approve-deploy"] },
    ]);
    const g1 = render(wf, snap([row("build", "build", { version: "1.0" })], { input: { env: "prod" } })).graph;
    assert.equal(requests, 1);
    assert.equal(byId(g1, "approve-deploy").approval.request.title, "Deploy 1.0 to prod?");

    const untitled = workflow({ name: "w", steps: [approval("g", { request: () => ({ summary: "no title" }) })] });
    assert.throws(() => render(untitled), code("INVALID_PROP"));
  });

  test("run gets { input, ctx, loop, ...needs } by alias, or by id for a list", async () => {
    const a = task("step-a", { output: num, run: () => ({ v: 2 }) });
    const b = task("b", {
      needs: { first: a },
      output: num,
      run: ({ first, input, ctx, loop }) => ({ v: first.v * input.k + (ctx.runId === "r1" ? 100 : 0) + loop.iteration }),
    });
    const c = task("c", { needs: [a, "b"], output: num, run: (deps) => ({ v: deps["step-a"].v + deps.b.v }) });
    const r = render(workflow({ name: "w", steps: [a, b, c] }), snap([], { input: { k: 5 } }));
    r.addOutput(row("stepA", "step-a", { v: 2 }));
    assert.deepEqual(await r.computeFns.get("b")(), { v: 110 });
    r.addOutput(row("b", "b", { v: 110 }));
    assert.deepEqual(await r.computeFns.get("c")(), { v: 112 });
    assert.deepEqual(r.graph.renderDeps, []);
  });

  test("containers, conditions and options", () => {
    const a = task("a", { output: num, run: () => ({ v: 1 }), retries: 2, timeoutMs: 500, continueOnFail: true, label: "A" });
    const b = task("b", { needs: { a }, output: num, run: () => ({ v: 1 }), skipIf: ({ a }) => a?.v === 1, maxAttempts: 4 });
    const yes = task("yes", { output: num, run: () => ({ v: 1 }) });
    const no = task("no", { output: num, run: () => ({ v: 1 }) });
    const attempt = task("attempt", { output: fields({ ok: "boolean" }), run: ({ loop }) => ({ ok: loop.iteration >= 2 }) });
    // yes and no would be used twice: refused when the workflow is built.
    assert.throws(
      () => workflow({ name: "w", steps: [parallel([yes, no].map((n) => sequence(n))), branch({ if: true, then: yes, else: no })] }),
      code("DUPLICATE_ID"),
    );
    const wf2 = workflow({
      name: "w",
      steps: [
        sequence(a, [b], null, false),
        branch({ needs: { a }, if: ({ a }) => a?.v > 0, then: yes, else: [no] }),
        loop({ id: "l", needs: { attempt }, until: ({ attempt }) => attempt?.ok, maxIterations: 3, onMaxReached: "fail" }, [attempt]),
        parallel([task("p", { output: num, run: () => ({ v: 1 }) })], { maxConcurrency: 1 }),
      ],
    });
    const g0 = render(wf2).graph;
    const [seq, br, lp, par] = g0.root.children;
    assert.deepEqual(seq.children.map((t) => t.id), ["a", "b"]);
    assert.deepEqual(byId(g0, "a"), { kind: "task", id: "a", iteration: 0, output: "a", body: { type: "compute" }, retries: 2, timeoutMs: 500, continueOnFail: true, label: "A" });
    assert.deepEqual([byId(g0, "b").skip, byId(g0, "b").retries, byId(g0, "b").dependsOn], [undefined, 3, ["a"]]);
    assert.deepEqual(br, { kind: "group", children: [{ kind: "sequence", children: [byId(g0, "no")] }] });
    assert.deepEqual({ ...lp, children: lp.children.map((c) => c.id) }, { kind: "loop", id: "l", until: false, maxIterations: 3, onMaxReached: "fail", children: ["attempt"] });
    assert.equal(par.maxConcurrency, 1);

    const g1 = render(wf2, snap([row("a", "a", { v: 1 }), row("attempt", "attempt", { ok: true }, 1)], { loops: { l: 1 }, nodeLoops: { attempt: "l" } })).graph;
    assert.equal(byId(g1, "b").skip, true);
    assert.equal(g1.root.children[1].children[0].id, "yes");
    assert.equal(g1.root.children[2].until, true);
    assert.equal(byId(g1, "attempt").iteration, 1);
  });

  test("tables: table option, shared tables, tableKeyFor", () => {
    assert.equal(tableKeyFor("approve-deploy"), "approveDeploy");
    assert.equal(tableKeyFor("release.build"), "releaseBuild");
    assert.equal(tableKeyFor("already_snake"), "already_snake");
    const review = (id) => approval(id, { table: "review", request: { title: id, summary: "s" }, onDeny: "continue", allowedScopes: ["release"] });
    const signoff = z.object({ area: z.string() });
    const wf = workflow({
      name: "w",
      steps: [review("legal"), review("security"), task("x", { output: signoff, table: "signoff", run: () => ({ area: "x" }) }), task("y", { output: signoff, table: "signoff", run: () => ({ area: "y" }) })],
    });
    assert.deepEqual(Object.keys(wf.jsonSchemas), ["review", "signoff"]);
    const g = render(wf).graph;
    assert.deepEqual(byId(g, "security").approval, {
      mode: "decision",
      onDeny: "continue",
      request: { title: "security", summary: "s", metadata: null },
      allowedScopes: ["release"],
    });
  });

  test("fields() is TOON's field types", () => {
    assert.deepEqual(fields({ a: "string", b: "'x' | 'y'", c: "number[]?", d: { e: "boolean" } }), {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        a: { type: "string" },
        b: { type: "string", enum: ["x", "y"] },
        c: { anyOf: [{ type: "array", items: { type: "number" } }, { type: "null" }] },
        d: { type: "object", properties: { e: { type: "boolean" } }, required: ["e"], additionalProperties: false },
      },
      required: ["a", "b", "d"],
      additionalProperties: false,
    });
    assert.throws(() => fields({ a: "strnig" }), code("INVALID_FIELD_TYPE"));
    assert.throws(() => fields({}), code("INVALID_FIELD_TYPE"));
  });
});

describe("builder errors", () => {
  const ok = (id = "a") => task(id, { output: num, run: () => ({ v: 1 }) });

  test("duplicate ids and unknown needs, when the workflow is built", () => {
    assert.throws(() => workflow({ name: "w", steps: [ok(), parallel([ok()])] }), code("DUPLICATE_ID"));
    assert.throws(() => workflow({ name: "w", steps: [ok(), loop({ id: "a" }, [ok("b")])] }), code("DUPLICATE_ID"));
    assert.throws(() => workflow({ name: "w", steps: [task("b", { needs: ["nope"], output: num, run: () => ({ v: 1 }) })] }), code("UNKNOWN_NEED"));
    assert.throws(() => workflow({ name: "w", steps: [task("b", { needs: ["b"], output: num, run: () => ({ v: 1 }) })] }), code("UNKNOWN_NEED"));
    // A handle that is not in the workflow is unknown too.
    assert.throws(() => workflow({ name: "w", steps: [task("b", { needs: { x: ok("elsewhere") }, output: num, run: () => ({ v: 1 }) })] }), code("UNKNOWN_NEED"));
  });

  test("bad arguments", () => {
    assert.throws(() => task("", { output: num, run: () => 1 }), code("INVALID_ARGUMENT"));
    assert.throws(() => task("a", { output: num }), code("INVALID_ARGUMENT"));
    assert.throws(() => task("a", { run: () => 1 }), code("INVALID_ARGUMENT"));
    assert.throws(() => task("a", { output: num, run: () => 1, retries: 1, maxAttempts: 2 }), code("INVALID_ARGUMENT"));
    assert.throws(() => approval("g", { request: { summary: "x" } }), code("INVALID_ARGUMENT"));
    assert.throws(() => approval("g", { request: { title: "t" }, onDeny: "later" }), code("INVALID_ARGUMENT"));
    // An option no builder function takes is refused, named, not ignored.
    assert.throws(() => approval("g", { request: { title: "t" }, timeout: 5 }), (e) => e.code === "UNSUPPORTED_PROP" && e.details.option === "timeout");
    assert.throws(() => task("t", { output: num, run: () => ({ v: 1 }), retry: 2 }), code("UNSUPPORTED_PROP"));
    assert.throws(() => workflow({ name: "w", steps: [task("t", { output: num, run: () => ({ v: 1 }) })], db: "x" }), code("UNSUPPORTED_PROP"));
    assert.throws(() => loop({ id: "l", onMaxReached: "never" }, []), code("INVALID_ARGUMENT"));
    assert.throws(() => sequence({ kind: "task", id: "fake" }), code("INVALID_ARGUMENT"));
    assert.throws(() => workflow({ name: "w", steps: [] }), code("INVALID_ARGUMENT"));
    assert.throws(() => workflow({ name: "w", steps: [{ id: "x" }] }), code("INVALID_ARGUMENT"));
    assert.throws(() => workflow({ name: "w", steps: [ok(), task("b", { needs: { input: ok() }, output: num, run: () => 1 })] }), code("INVALID_ARGUMENT"));
  });

  test("tables: a derived key that is no identifier, conflicting schemas, reserved names", () => {
    assert.throws(() => workflow({ name: "w", steps: [ok("1st")] }), code("INVALID_IDENTIFIER"));
    workflow({ name: "w", steps: [task("1st", { output: num, table: "first", run: () => ({ v: 1 }) })] });
    assert.throws(() => workflow({ name: "w", steps: [ok("smithers-x")] }), code("INVALID_IDENTIFIER"));
    const other = fields({ w: "string" });
    assert.throws(() => workflow({ name: "w", steps: [ok("a"), task("b", { output: other, table: "a", run: () => ({ w: "" }) })] }), code("OUTPUT_CONFLICT"));
    assert.throws(() => workflow({ name: "w", steps: [ok("a-b"), task("a_b", { output: other, run: () => ({ w: "" }) })] }), code("OUTPUT_CONFLICT"));
  });
});

describe("running a builder workflow", () => {
  const dbDir = () => mkdtempSync(join(tmpdir(), "smithers-builder-"));

  test("SmithersEngine.start takes it: waits at the gate, approve resumes it", async (t) => {
    const dir = dbDir();
    const engine = new SmithersEngine({ dbPath: join(dir, "smithers.db") });
    t.after(() => {
      engine.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const build = task("build", { output: fields({ version: "string" }), run: async ({ input }) => ({ version: `${input.major}.0.0` }) });
    const gate = approval("approve-deploy", { needs: { build }, request: ({ build }) => ({ title: `Deploy ${build.version}?`, summary: "All green." }) });
    const deploy = task("deploy", {
      needs: { build, gate },
      output: fields({ url: "string", by: "string?" }),
      run: ({ build, gate }) => ({ url: `https://example.com/${build.version}`, by: gate.decidedBy }),
    });
    const wf = workflow({ name: "svc-deploy", input: fields({ major: "number" }), steps: [build, gate, deploy] });

    const { runId, done } = await engine.start(wf, { input: { major: 3 } });
    assert.equal((await done).status, "waiting-approval");
    const [pending] = engine.pendingApprovals({ runId });
    assert.deepEqual([pending.nodeId, pending.title, pending.summary], ["approve-deploy", "Deploy 3.0.0?", "All green."]);
    assert.equal(engine.getRun(runId).workflowName, "svc-deploy");

    const decision = await engine.approve(runId, { decidedBy: "alice", note: "ok" });
    assert.equal((await decision.done).status, "finished");
    const outputs = Object.fromEntries(engine.inspect(runId).outputs.map((o) => [o.nodeId, o.value]));
    assert.deepEqual(outputs.deploy, { url: "https://example.com/3.0.0", by: "alice" });
    assert.equal(outputs["approve-deploy"].approved, true);
    assert.equal(outputs["approve-deploy"].note, "ok");

    await assert.rejects(engine.run(wf, { input: { major: "three" } }), code("INVALID_INPUT"));
  });

  test('a denial is recorded and the run goes on (default, "continue", "skip"); "fail" fails the run', async (t) => {
    const dir = dbDir();
    const engine = new SmithersEngine({ dbPath: join(dir, "smithers.db") });
    t.after(() => {
      engine.close();
      rmSync(dir, { recursive: true, force: true });
    });
    for (const onDeny of [undefined, "continue", "skip", "fail"]) {
      const gate = approval("gate", { request: { title: "Risky step?" }, ...(onDeny ? { onDeny } : {}) });
      const risky = task("risky", { needs: { gate }, output: num, run: ({ gate }) => ({ v: gate.approved ? 1 : 0 }) });
      const safe = task("safe", { output: num, run: () => ({ v: 2 }) });
      const wf = workflow({ name: `deny-${onDeny}`, steps: [parallel([sequence(gate, risky), safe])] });
      const first = await engine.run(wf);
      assert.equal(first.status, "waiting-approval");
      const decision = await engine.deny(first.runId, { decidedBy: "bob" });
      const end = await decision.done;
      const info = engine.inspect(first.runId);
      const states = Object.fromEntries(info.nodes.map((n) => [n.nodeId, n.state]));
      if (onDeny === "fail") {
        assert.equal(end.status, "failed");
        assert.equal(end.error.code, "APPROVAL_DENIED");
        assert.equal(states.gate, "failed");
        assert.equal(states.risky, "cancelled");
      } else {
        assert.equal(end.status, "finished", String(onDeny));
        assert.deepEqual(states, { gate: "finished", risky: "finished", safe: "finished" });
        assert.equal(info.outputs.find((o) => o.nodeId === "risky").value.v, 0, "risky read approved: false");
      }
    }
  });
});

describe("builder types", () => {
  let tsc = null;
  try {
    tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin/tsc");
  } catch {
    // TypeScript is not installed here (it comes with @napi-rs/cli, a dev dependency).
  }

  test("index.d.ts and tools.d.ts type the builder and agent tasks (tsc --strict on fixtures/builder-types.ts, agent-types.ts)", { skip: !tsc && "typescript not installed", timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "smithers-types-"));
    try {
      const config = join(dir, "tsconfig.json");
      writeFileSync(
        config,
        JSON.stringify({
          compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", types: [], skipLibCheck: false },
          files: [join(HERE, "fixtures/builder-types.ts"), join(HERE, "fixtures/agent-types.ts")],
        }),
      );
      const out = await new Promise((done) => {
        execFile(process.execPath, [tsc, "-p", config], (error, stdout, stderr) => done({ code: error ? error.code : 0, text: stdout + stderr }));
      });
      assert.equal(out.code, 0, out.text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
