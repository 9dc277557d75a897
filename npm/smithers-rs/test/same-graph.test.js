// One workflow written three ways — JSX (fixtures/ship/ship.tsx), TOON (ship.toon) and the
// builder (below) — renders to the same graph descriptor at every step of a run, registers
// the same tables and input schema, and its task bodies compute the same outputs.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { approval, branch, fields, loadWorkflow, loop, parallel, renderWorkflow, task, workflow } from "../src/index.js";

const DIR = join(dirname(fileURLToPath(import.meta.url)), "fixtures/ship");

function shipBuilder() {
  const build = task("build", {
    output: fields({ version: "string", tags: "string[]" }),
    run: ({ input }) => ({ version: "2.0." + input.service.length, tags: ["lts", input.env] }),
  });
  const gate = approval("approve-deploy", {
    needs: { build },
    request: ({ build, input }) => ({ title: `Deploy ${build.version} to ${input.env}?`, summary: `Tags: ${build.tags.join(", ")}` }),
    onDeny: "skip",
  });
  const deployment = z.object({ region: z.enum(["eu", "us"]), url: z.string() });
  const deployTo = (region, extra = {}) =>
    task(`deploy-${region}`, {
      needs: [gate, build],
      output: deployment,
      table: "deployment",
      run: ({ build }) => ({ region, url: `https://${region}.example.com/${build.version}` }),
      ...extra,
    });
  const check = task("check", {
    output: fields({ healthy: "boolean", round: "number" }),
    run: ({ loop }) => ({ healthy: loop.iteration >= 2, round: loop.iteration }),
  });
  const notify = task("notify", {
    needs: { build },
    output: fields({ message: "string", note: "string?" }),
    run: ({ build }) => ({ message: "shipped " + build.version, note: null }),
  });
  return workflow({
    name: "ship",
    input: fields({ service: "string", env: "'staging' | 'prod'" }),
    steps: [
      build,
      gate,
      parallel([deployTo("eu", { timeoutMs: 30_000, maxAttempts: 2 }), deployTo("us")], { maxConcurrency: 2 }),
      loop({ id: "verify", needs: { check }, until: ({ check }) => check?.healthy, maxIterations: 3 }, [check]),
      branch({ if: ({ input }) => input.env === "prod", then: [notify] }),
    ],
  });
}

const row = (table, nodeId, value, iteration = 0) => ({ table, nodeId, iteration, value });
const BUILD = row("build", "build", { version: "2.0.3", tags: ["lts", "prod"] });
const DECIDED = (approved) => row("approveDeploy", "approve-deploy", { approved, note: null, decidedBy: "alice", decidedAt: "2026-01-01T00:00:00.000Z" });
const DEPLOYED = [
  row("deployment", "deploy-eu", { region: "eu", url: "https://eu.example.com/2.0.3" }),
  row("deployment", "deploy-us", { region: "us", url: "https://us.example.com/2.0.3" }),
];
const CHECK = (iteration, healthy) => row("check", "check", { healthy, round: iteration + 1 }, iteration);
const NODE_LOOPS = { check: "verify" };

/** The snapshots a run of the workflow goes through, and a few off its happy path. */
const SNAPSHOTS = {
  start: { outputs: [] },
  built: { outputs: [BUILD] },
  approved: { outputs: [BUILD, DECIDED(true)] },
  denied: { outputs: [BUILD, DECIDED(false)] },
  "first check": { outputs: [BUILD, DECIDED(true), ...DEPLOYED, CHECK(0, false)], loops: { verify: 0 } },
  "second round": { outputs: [BUILD, DECIDED(true), ...DEPLOYED, CHECK(0, false)], loops: { verify: 1 } },
  healthy: { outputs: [BUILD, DECIDED(true), ...DEPLOYED, CHECK(0, false), CHECK(1, true)], loops: { verify: 1 } },
  staging: { outputs: [BUILD], input: { service: "api", env: "staging" } },
};

const snapshot = ({ outputs, loops = {}, input = { service: "api", env: "prod" } }) => ({
  runId: "run-1",
  input,
  loops,
  nodeLoops: NODE_LOOPS,
  outputs,
});

describe("one workflow as JSX, TOON and builder", async () => {
  const ways = {
    jsx: await loadWorkflow(join(DIR, "ship.tsx")),
    toon: await loadWorkflow(join(DIR, "ship.toon")),
    builder: shipBuilder(),
  };

  test("the same tables and input schema", () => {
    assert.deepEqual(ways.toon.jsonSchemas, ways.jsx.jsonSchemas);
    assert.deepEqual(ways.builder.jsonSchemas, ways.jsx.jsonSchemas);
    assert.deepEqual(ways.toon.inputSchema, ways.jsx.inputSchema);
    assert.deepEqual(ways.builder.inputSchema, ways.jsx.inputSchema);
    assert.deepEqual(Object.keys(ways.jsx.jsonSchemas).sort(), ["approveDeploy", "build", "check", "deployment", "notify"]);
  });

  for (const [name, snap] of Object.entries(SNAPSHOTS)) {
    test(`the same graph descriptor: ${name}`, () => {
      const [jsx, toon, builder] = [ways.jsx, ways.toon, ways.builder].map((wf) => renderWorkflow(wf, snapshot(snap)).graph);
      assert.deepEqual(toon, jsx);
      assert.deepEqual(builder, jsx);
    });
  }

  test("the graph is what the workflow says (not three equal mistakes)", () => {
    const { graph } = renderWorkflow(ways.toon, snapshot(SNAPSHOTS.built));
    assert.deepEqual(graph.renderDeps, ["build", "check"]);
    const [build, gate, par, verify, br] = graph.root.children;
    assert.equal(build.id, "build");
    assert.deepEqual(gate.approval, {
      mode: "decision",
      onDeny: "skip",
      request: { title: "Deploy 2.0.3 to prod?", summary: "Tags: lts, prod", metadata: null },
    });
    assert.deepEqual(par.children.map((t) => [t.id, t.output, t.dependsOn, t.retries, t.timeoutMs]), [
      ["deploy-eu", "deployment", ["approve-deploy", "build"], 1, 30_000],
      ["deploy-us", "deployment", ["approve-deploy", "build"], undefined, undefined],
    ]);
    assert.equal(par.maxConcurrency, 2);
    assert.deepEqual([verify.kind, verify.id, verify.until, verify.maxIterations, verify.onMaxReached], ["loop", "verify", false, 3, "return-last"]);
    assert.deepEqual(br.children[0].children.map((t) => [t.id, t.dependsOn]), [["notify", ["build"]]]);
    const start = renderWorkflow(ways.toon, snapshot(SNAPSHOTS.start)).graph;
    assert.equal(start.root.children[1].approval.request.title, "approve-deploy", "the title waits for build's output");
    assert.equal(renderWorkflow(ways.toon, snapshot(SNAPSHOTS.healthy)).graph.root.children[3].until, true);
    assert.deepEqual(renderWorkflow(ways.toon, snapshot(SNAPSHOTS.staging)).graph.root.children[4], { kind: "group", children: [] });
  });

  test("task bodies compute the same outputs", async () => {
    for (const snap of [SNAPSHOTS["first check"], SNAPSHOTS["second round"]]) {
      const renders = Object.values(ways).map((wf) => renderWorkflow(wf, snapshot(snap)));
      const ids = [...renders[0].computeFns.keys()].sort();
      assert.deepEqual(ids, ["build", "check", "deploy-eu", "deploy-us", "notify"]);
      for (const r of renders) assert.deepEqual([...r.computeFns.keys()].sort(), ids);
      for (const id of ids) {
        const [jsx, toon, builder] = await Promise.all(renders.map((r) => r.computeFns.get(id)(r.ctx)));
        assert.deepEqual(toon, jsx, id);
        assert.deepEqual(builder, jsx, id);
      }
    }
    const r = renderWorkflow(ways.toon, snapshot(SNAPSHOTS["second round"]));
    assert.deepEqual(await r.computeFns.get("check")(), { healthy: true, round: 2 });
    assert.deepEqual(await r.computeFns.get("deploy-us")(), { region: "us", url: "https://us.example.com/2.0.3" });
  });
});
