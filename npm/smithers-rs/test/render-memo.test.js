// Re-renders that reuse what did not change (issue 13): the driver keeps a memo per run, a
// render takes the last render's node for a <Task> whose props and place are the same, and
// sameGraph takes such a node found again at its place for equal without walking it. These
// tests hold the memo to one rule: a render with it gives exactly what a render without it
// gives (graph, compute bodies, refusals), at every step of a run.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { z } from "zod";
import { Approval, Loop, Sequence, SmithersEngine, SmithersError, Task, Workflow, approvalDecisionSchema, createElement as h, createSmithers } from "../src/index.js";
import { sameGraph } from "../src/driver.js";
import { SEALED, newRenderMemo, outputIndex, renderWorkflow } from "../src/render.js";

const step = z.object({ v: z.number() });
const { outputs, smithers } = createSmithers({ step, gate: approvalDecisionSchema });
const row = (nodeId, v, iteration = 0) => ({ table: "step", nodeId, iteration, value: { v } });
const snap = (outputs, loops = {}, memo) => ({ runId: "r1", input: { n: 1 }, loops, nodeLoops: { c: "outer", d: "inner" }, outputs, ...(memo ? { memo } : {}) });
const code = (c) => (err) => err instanceof SmithersError && err.code === c;

// Every kind of prop the memo must tell apart: a label that changes with the state, a task
// that appears, a static body, dependsOn arrays rebuilt each render, an object prop (never
// sealed), a command's cwd, tasks in a loop (its iteration) and in nested loops.
const workflow = smithers((ctx) => {
  const a = ctx.outputMaybe(outputs.step, { nodeId: "a" });
  return h(
    Workflow,
    { name: "memo" },
    h(
      Sequence,
      null,
      h(Task, { id: "a", output: outputs.step }, () => ({ v: 1 })),
      h(Task, { id: "b", output: outputs.step, label: a ? `after ${a.v}` : "waiting", dependsOn: ["a"] }, () => ({ v: (a?.v ?? 0) + 1 })),
      a ? h(Task, { id: "late", output: outputs.step, retries: 2 }, () => ({ v: 7 })) : null,
      h(Task, { id: "static", output: outputs.step }, { v: 8 }),
      h(Task, { id: "meta", output: outputs.step, meta: { seen: a?.v ?? null } }, () => ({ v: 3 })),
      h(Task, { id: "cmd", output: outputs.step, command: "echo '{\"v\":4}'", parse: "json", cwd: "sub" }),
      h(
        Loop,
        { id: "outer", until: false, maxIterations: 3 },
        h(Task, { id: "c", output: outputs.step }, () => ({ v: ctx.iteration })),
        h(Loop, { id: "inner", until: false, maxIterations: 2 }, h(Task, { id: "d", output: outputs.step }, () => ({ v: 9 }))),
      ),
    ),
  );
});

const STATES = [
  [[], {}],
  [[], {}],
  [[row("a", 1)], {}],
  [[row("a", 1)], {}],
  [[row("a", 5)], {}],
  [[row("a", 5), row("c", 0)], { outer: 1, inner: 0 }],
  [[row("a", 5), row("c", 0)], { outer: 1, inner: 1 }],
  [[row("a", 5), row("c", 0), row("c", 1, 1)], { outer: 2, inner: 0 }],
];

describe("render memo", () => {
  test("a render with the memo gives the graph and the bodies a render without it gives, at every step", async () => {
    const memo = newRenderMemo();
    let reused = 0;
    let previous = null;
    for (const [rows, loops] of STATES) {
      const withMemo = renderWorkflow(workflow, snap(rows, loops, memo));
      const without = renderWorkflow(workflow, snap(rows, loops));
      assert.deepEqual(JSON.parse(JSON.stringify(withMemo.graph)), JSON.parse(JSON.stringify(without.graph)));
      const ids = [...without.computeFns.keys()].sort();
      assert.deepEqual([...withMemo.computeFns.keys()].sort(), ids);
      assert.equal(withMemo.computeFns.size, ids.length);
      // A reused node's body is this render's function (it closes over this render's ctx).
      for (const id of ids) assert.deepEqual(await withMemo.computeFns.get(id)(), await without.computeFns.get(id)(), id);
      if (previous) {
        const tasks = (g) => g.root.children[0].children;
        reused += tasks(withMemo.graph).filter((n, i) => n === tasks(previous)[i]).length;
      }
      previous = withMemo.graph;
    }
    // Not vacuous: unchanged tasks were taken from the memo; changed ones never.
    assert.ok(reused >= 10, `reused ${reused}`);
    const last = renderWorkflow(workflow, snap(...STATES.at(-1), memo)).graph.root.children[0].children;
    const again = renderWorkflow(workflow, snap(...STATES.at(-1), memo)).graph.root.children[0].children;
    const byId = (nodes, id) => nodes.find((n) => n.id === id);
    for (const id of ["a", "b", "late", "cmd"]) assert.equal(byId(again, id), byId(last, id), `${id} is reused`);
    assert.ok(SEALED.has(byId(again, "a")));
    for (const id of ["meta", "static"]) {
      assert.notEqual(byId(again, id), byId(last, id), `${id}: an object prop is never sealed`);
      assert.ok(!SEALED.has(byId(again, id)));
    }
  });

  test("a duplicate id is refused when the first of the two comes from the memo", () => {
    const twice = (dup, kind) =>
      smithers(() =>
        h(
          Workflow,
          { name: "dup" },
          h(Sequence, null, h(Task, { id: "x", output: outputs.step }, () => ({ v: 1 })), dup ? (kind === "task" ? h(Task, { id: "x", output: outputs.step }, () => ({ v: 2 })) : h(Approval, { id: "x", output: outputs.gate, request: { title: "?" } })) : null),
        ),
      );
    for (const kind of ["task", "approval"]) {
      const memo = newRenderMemo();
      let dup = false;
      const wf = smithers((ctx) => twice(dup, kind).build(ctx));
      renderWorkflow(wf, snap([], {}, memo));
      dup = true;
      assert.throws(() => renderWorkflow(wf, snap([], {}, memo)), code("DUPLICATE_ID"), kind);
    }
  });

  test("sameGraph takes a sealed node at its place for equal, and still sees a mutated value of the workflow's", () => {
    const value = { v: 1 };
    const wf = smithers(() => h(Workflow, { name: "s" }, h(Task, { id: "a", output: outputs.step }, () => ({ v: 0 })), h(Task, { id: "b", output: outputs.step }, value)));
    const memo = newRenderMemo();
    const g1 = renderWorkflow(wf, snap([], {}, memo)).graph;
    const last = JSON.parse(JSON.stringify(g1));
    const g2 = renderWorkflow(wf, snap([], {}, memo)).graph;
    assert.equal(g2.root.children[0], g1.root.children[0]);
    assert.ok(sameGraph(g2, last, g1));
    value.v = 2; // the static body is the workflow's object: not sealed, compared by value
    const g3 = renderWorkflow(wf, snap([], {}, memo)).graph;
    assert.equal(sameGraph(g3, last, g2), false);
    // A sealed node is only taken for equal at its own place.
    const swapped = { ...g2, root: { ...g2.root, children: [g2.root.children[1], g2.root.children[0]] } };
    assert.equal(sameGraph(swapped, last, g2), false);
  });

  test("reads found again at their place see the index as it is now: rows added, replaced, withdrawn", () => {
    // The driver's index and memo, kept across renders: a read at the place the last render
    // read the same node takes the entry found there (render.js readEntries).
    const wf = smithers((ctx) => {
      const a = ctx.outputMaybe(outputs.step, { nodeId: "a" });
      const b = ctx.outputMaybe(outputs.step, { nodeId: "b" });
      const latest = ctx.latest(outputs.step, "a");
      return h(
        Workflow,
        { name: "reads" },
        h(Sequence, null, h(Task, { id: "a", output: outputs.step, label: `a=${a?.v ?? "-"} b=${b?.v ?? "-"} latest=${latest?.v ?? "-"}` }, () => ({ v: 1 }))),
      );
    });
    const index = outputIndex("r1", []);
    const memo = newRenderMemo();
    const label = (rows) => {
      const cached = renderWorkflow(wf, { ...snap([]), index, memo }).graph.root.children[0].children[0].label;
      const fresh = renderWorkflow(wf, snap(rows)).graph.root.children[0].children[0].label;
      assert.equal(cached, fresh);
      return cached;
    };
    const rows = [];
    assert.equal(label(rows), "a=- b=- latest=-");
    assert.equal(label(rows), "a=- b=- latest=-");
    index.add(row("a", 1));
    rows.push(row("a", 1));
    assert.equal(label(rows), "a=1 b=- latest=1");
    assert.equal(label(rows), "a=1 b=- latest=1");
    index.add(row("a", 2));
    rows[0] = row("a", 2);
    assert.equal(label(rows), "a=2 b=- latest=2");
    index.add(row("b", 3));
    rows.push(row("b", 3));
    assert.equal(label(rows), "a=2 b=3 latest=2");
    const undo = index.put(row("a", 4, 1));
    assert.equal(label([...rows, row("a", 4, 1)]), "a=2 b=3 latest=4");
    undo();
    assert.equal(label(rows), "a=2 b=3 latest=2");
    index.drop({ table: "step", nodeId: "a", iteration: 0 });
    rows.shift();
    assert.equal(label(rows), "a=- b=3 latest=-");
    // The reads were taken from their places (not looked up again) in these renders.
    assert.ok(memo.depsEntries.filter(Boolean).length >= 2);
  });

  test("a run of a sequence reading the previous output computes every step from the latest render", async () => {
    const dir = mkdtempSync(join(tmpdir(), "smithers-memo-"));
    try {
      const n = 60;
      const wf = smithers((ctx) => {
        const children = [];
        for (let i = 0; i < n; i++) {
          const prev = i === 0 ? null : ctx.outputMaybe(outputs.step, { nodeId: `t${i - 1}` });
          children.push(h(Task, { id: `t${i}`, output: outputs.step, key: `t${i}` }, () => ({ v: prev ? prev.v + 1 : 0 })));
        }
        return h(Workflow, { name: "reading" }, h(Sequence, null, children));
      });
      const engine = new SmithersEngine({ dbPath: join(dir, "m.db") });
      const result = await engine.run(wf);
      assert.equal(result.status, "finished");
      const rows = engine.inspect(result.runId).outputs;
      engine.close();
      assert.equal(rows.length, n);
      for (const r of rows) assert.equal(r.value.v, Number(r.nodeId.slice(1)), JSON.stringify(r));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
