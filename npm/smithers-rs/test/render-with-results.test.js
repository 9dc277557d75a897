// A render sent with the results it read (issue 13): when the last render read the output of
// a task that finished, the driver renders at once with the row the core will store and sends
// both in one call (`completeTasks(runId, results, { graphJson | graphId })`). The core applies
// that graph only when recording the results changed exactly that; otherwise the driver takes
// the row back out and renders from what the core recorded. A graph named by an id that is
// not the plan's is refused with STALE_GRAPH, and nothing changes.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { z } from "zod";
import { Sequence, SmithersEngine, SmithersError, Task, Workflow, createElement as h, createSmithers } from "../src/index.js";
import { NativeEngine } from "../src/native.js";

const step = z.object({ v: z.number() });
const { outputs, smithers } = createSmithers({ step });

/** Runs `wf` on a new database, recording the driving calls the driver made. */
async function runCounting(wf, check) {
  const dir = mkdtempSync(join(tmpdir(), "smithers-rwr-"));
  try {
    const engine = new SmithersEngine({ dbPath: join(dir, "r.db") });
    const calls = [];
    for (const method of ["submitGraph", "submitSameGraph", "completeTasks", "advance"]) {
      const real = engine.native[method].bind(engine.native);
      engine.native[method] = (...args) => {
        const render = args[2];
        const entry = { method, render: render ? (render.graphId !== undefined ? "id" : "text") : null };
        calls.push(entry);
        const out = real(...args);
        entry.applied = out.graphApplied;
        return out;
      };
    }
    const result = await engine.run(wf);
    const inspection = engine.inspect(result.runId);
    engine.close();
    return check(result, inspection, calls);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("a render sent with the results it read", () => {
  test("a sequence whose render reads each output: one call per task, the same outputs", async () => {
    const n = 25;
    const wf = smithers((ctx) => {
      const children = [];
      for (let i = 0; i < n; i++) {
        const prev = i === 0 ? null : ctx.outputMaybe(outputs.step, { nodeId: `t${i - 1}` });
        children.push(h(Task, { id: `t${i}`, output: outputs.step, key: `t${i}` }, () => ({ v: prev ? prev.v + 1 : 0 })));
      }
      return h(Workflow, { name: "reading" }, h(Sequence, null, children));
    });
    await runCounting(wf, (result, inspection, calls) => {
      assert.equal(result.status, "finished");
      assert.equal(inspection.outputs.length, n);
      for (const r of inspection.outputs) assert.equal(r.value.v, Number(r.nodeId.slice(1)), JSON.stringify(r));
      // The first render goes alone; the n - 1 renders after a read output travel with it, as
      // the plan's graph id (the render is the same text); the last output is read by nobody.
      assert.deepEqual(
        calls.map((c) => `${c.method}${c.render ? `+${c.render}` : ""}`),
        ["submitGraph", ...Array(n - 1).fill("completeTasks+id"), "completeTasks"],
      );
      assert.ok(calls.filter((c) => c.render).every((c) => c.applied === true));
    });
  });

  test("a render that changes the graph travels as text, and its new task runs", async () => {
    const wf = smithers((ctx) => {
      const a = ctx.outputMaybe(outputs.step, { nodeId: "a" });
      return h(
        Workflow,
        { name: "grows" },
        h(
          Sequence,
          null,
          h(Task, { id: "a", output: outputs.step }, () => ({ v: 1 })),
          a ? h(Task, { id: "b", output: outputs.step, label: `after ${a.v}` }, () => ({ v: a.v + 1 })) : null,
        ),
      );
    });
    await runCounting(wf, (result, inspection, calls) => {
      assert.equal(result.status, "finished");
      assert.deepEqual(
        inspection.outputs.map((r) => [r.nodeId, r.value.v]),
        [
          ["a", 1],
          ["b", 2],
        ],
      );
      assert.deepEqual(
        calls.map((c) => [c.method, c.render, c.applied]),
        [
          ["submitGraph", null, false],
          ["completeTasks", "text", true],
          ["completeTasks", null, false],
        ],
      );
    });
  });

  test("a value the core refuses: the graph rendered with it is not applied, the run goes on from what was recorded", async () => {
    // a's value does not fit its schema; a render that saw a row for it would add `extra`.
    const wf = smithers((ctx) => {
      const a = ctx.outputMaybe(outputs.step, { nodeId: "a" });
      return h(
        Workflow,
        { name: "refused" },
        h(
          Sequence,
          null,
          h(Task, { id: "a", output: outputs.step, continueOnFail: true }, () => ({ v: "not a number" })),
          a ? h(Task, { id: "extra", output: outputs.step }, () => ({ v: 9 })) : null,
          h(Task, { id: "b", output: outputs.step }, () => ({ v: a ? 100 : 2 })),
        ),
      );
    });
    await runCounting(wf, (result, inspection, calls) => {
      assert.equal(result.status, "finished");
      const nodes = Object.fromEntries(inspection.nodes.map((n) => [n.nodeId, n.state]));
      assert.deepEqual(nodes, { a: "failed", b: "finished" }, "extra was never written");
      assert.deepEqual(
        inspection.outputs.map((r) => [r.nodeId, r.value.v]),
        [["b", 2]],
        "b ran with the closure of a render that saw no row for a",
      );
      assert.deepEqual(
        calls.map((c) => [c.method, c.render, c.applied]),
        [
          ["submitGraph", null, false],
          ["completeTasks", "text", false],
          // The render owed, from what was recorded: the first graph again, by its id.
          ["submitSameGraph", null, false],
          ["completeTasks", null, false],
        ],
      );
    });
  });
});

describe("completeTasks with a render, at the binding", () => {
  const schema = { type: "object", properties: { v: { type: "number" } }, required: ["v"], additionalProperties: false };
  const graph = (ids) =>
    JSON.stringify({
      version: 1,
      workflow: { name: "w" },
      schemas: { step: schema },
      renderDeps: ["a"],
      root: { kind: "sequence", children: ids.map((id) => ({ kind: "task", id, output: "step", body: { type: "compute" } })) },
    });
  const result = (nodeId, attempt, v) => JSON.stringify([{ nodeId, iteration: 0, attempt, ok: true, value: { v } }]);

  test("a stale graph id is refused with STALE_GRAPH and changes nothing; the right one goes on", () => {
    const dir = mkdtempSync(join(tmpdir(), "smithers-rwr-"));
    const native = new NativeEngine(join(dir, "n.db"));
    try {
      native.createRun({ runId: "s1", workflowName: "w", inputJson: "{}" });
      const first = native.submitGraph("s1", graph(["a", "b"]));
      assert.ok(first.graphId > 0);
      const [a] = first.tasks;
      const before = JSON.stringify(native.inspect("s1"));
      for (const graphId of [first.graphId + 1000, 0, -1]) {
        assert.throws(
          () => native.completeTasks("s1", result("a", a.attempt, 1), { graphId }),
          (e) => e instanceof SmithersError && e.code === "STALE_GRAPH" && e.details.currentGraphId === first.graphId,
        );
        assert.throws(() => native.submitSameGraph("s1", graphId), (e) => e?.code === "STALE_GRAPH");
      }
      // Both or neither: the call is malformed, nothing is read.
      for (const render of [{ graphId: first.graphId, graphJson: graph(["a", "b"]) }, {}]) {
        assert.throws(() => native.completeTasks("s1", result("a", a.attempt, 1), render), (e) => e?.code === "INVALID_ARGUMENT");
      }
      assert.equal(JSON.stringify(native.inspect("s1")), before, "nothing changed");

      const next = native.completeTasks("s1", result("a", a.attempt, 1), { graphId: first.graphId });
      assert.equal(next.graphApplied, true);
      assert.equal(next.graphId, first.graphId);
      assert.deepEqual(
        next.tasks.map((t) => t.nodeId),
        ["b"],
      );
      assert.deepEqual(JSON.parse(next.outputsJson), [{ table: "step", nodeId: "a", iteration: 0, value: { v: 1 } }]);
    } finally {
      native.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a late result leaves the graph unapplied: nothing of it is written, a render is owed", () => {
    const dir = mkdtempSync(join(tmpdir(), "smithers-rwr-"));
    const native = new NativeEngine(join(dir, "n.db"));
    try {
      native.createRun({ runId: "s2", workflowName: "w", inputJson: "{}" });
      const first = native.submitGraph("s2", graph(["a", "b"]));
      const [a] = first.tasks;
      native.completeTasks("s2", result("a", a.attempt, 1));
      const late = native.completeTasks("s2", result("a", a.attempt, 5), { graphJson: graph(["a", "b", "extra"]) });
      assert.equal(late.graphApplied, false);
      assert.equal(late.needsRender, true);
      assert.deepEqual(late.tasks, []);
      const info = native.inspect("s2");
      assert.deepEqual(
        info.nodes.map((n) => n.nodeId).sort(),
        ["a", "b"],
      );
      assert.deepEqual(
        info.outputs.map((r) => r.value.v),
        [1],
      );
    } finally {
      native.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
